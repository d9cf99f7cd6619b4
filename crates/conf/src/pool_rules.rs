//! The prefork directives as Apache reads them: any whole number is taken (negatives too), then
//! out-of-range values are corrected with Apache's own warnings (prefork_check_config), so a
//! pasted mpm_prefork.conf behaves here exactly as it did there. weir differs in one way: a value
//! that is not a number is an error, where Apache's atoi silently reads it as 0.

use crate::config::Pool;

/// Apache prefork's compile-time ceiling for ServerLimit.
pub const MAX_SERVER_LIMIT: i64 = 200_000;

/// The prefork directives as written, before correction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolInput {
    pub start_servers: Option<i64>,
    pub min_spare_servers: Option<i64>,
    pub max_spare_servers: Option<i64>,
    pub max_request_workers: Option<i64>,
    pub server_limit: Option<i64>,
}

/// Applies Apache's corrections, in Apache's order, pushing its warning for each.
pub fn correct(input: &PoolInput, defaults: &Pool, warnings: &mut Vec<String>) -> Pool {
    let get = |value: Option<i64>, default: usize| value.unwrap_or(default as i64);
    let mut server_limit = get(input.server_limit, defaults.server_limit);
    let mut max_workers = get(input.max_request_workers, defaults.max_request_workers);
    let mut start = get(input.start_servers, defaults.start_servers);
    let mut min_spare = get(input.min_spare_servers, defaults.min_spare_servers);
    let mut max_spare = get(input.max_spare_servers, defaults.max_spare_servers);

    if server_limit > MAX_SERVER_LIMIT {
        warnings.push(format!(
            "AH00175: WARNING: ServerLimit of {server_limit} exceeds compile-time limit of {MAX_SERVER_LIMIT} servers, decreasing to {MAX_SERVER_LIMIT}."
        ));
        server_limit = MAX_SERVER_LIMIT;
    } else if server_limit < 1 {
        warnings
            .push(format!("AH00177: WARNING: ServerLimit of {server_limit} not allowed, increasing to 1."));
        server_limit = 1;
    }
    if max_workers > server_limit {
        warnings.push(format!(
            "AH00180: WARNING: MaxRequestWorkers of {max_workers} exceeds ServerLimit value of {server_limit} servers, decreasing MaxRequestWorkers to {server_limit}. To increase, please see the ServerLimit directive."
        ));
        max_workers = server_limit;
    } else if max_workers < 1 {
        warnings.push(format!(
            "AH00182: WARNING: MaxRequestWorkers of {max_workers} not allowed, increasing to 1."
        ));
        max_workers = 1;
    }
    if start < 1 {
        warnings.push(format!("AH00184: WARNING: StartServers of {start} not allowed, increasing to 1."));
        start = 1;
    }
    if min_spare < 1 {
        warnings.push(format!(
            "AH00186: WARNING: MinSpareServers of {min_spare} not allowed, increasing to 1 to avoid almost certain server failure. Please read the documentation."
        ));
        min_spare = 1;
    }
    // Apache makes these two corrections silently at start-up; weir says what it did.
    if max_spare < min_spare + 1 {
        warnings.push(format!(
            "WARNING: MaxSpareServers of {max_spare} is below MinSpareServers + 1, increasing to {}, as Apache does.",
            min_spare + 1
        ));
        max_spare = min_spare + 1;
    }
    if start > max_workers {
        warnings.push(format!(
            "WARNING: StartServers of {start} exceeds MaxRequestWorkers of {max_workers}, starting {max_workers}, as Apache does."
        ));
        start = max_workers;
    }
    // Every value is at least 1 and at most MAX_SERVER_LIMIT (or min_spare + 1) here.
    let count = |n: i64| n.max(1) as usize;
    Pool {
        start_servers: count(start),
        min_spare_servers: count(min_spare),
        max_spare_servers: count(max_spare),
        max_request_workers: count(max_workers),
        server_limit: count(server_limit),
        max_connections_per_child: defaults.max_connections_per_child,
        max_memory_per_child: defaults.max_memory_per_child,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: PoolInput) -> (Pool, Vec<String>) {
        let mut warnings = Vec::new();
        let pool = correct(&input, &Pool::default(), &mut warnings);
        (pool, warnings)
    }

    #[test]
    fn apache_corrections() {
        let (pool, warnings) = run(PoolInput { max_request_workers: Some(300), ..PoolInput::default() });
        assert_eq!(pool.max_request_workers, 256);
        assert!(warnings[0].starts_with("AH00180: WARNING: MaxRequestWorkers of 300 exceeds ServerLimit value of 256 servers, decreasing MaxRequestWorkers to 256."));

        let (pool, warnings) = run(PoolInput {
            min_spare_servers: Some(0),
            max_spare_servers: Some(-3),
            start_servers: Some(-1),
            ..PoolInput::default()
        });
        assert_eq!((pool.start_servers, pool.min_spare_servers, pool.max_spare_servers), (1, 1, 2));
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].contains("StartServers of -1 not allowed, increasing to 1"));
        assert!(warnings[1].contains("MinSpareServers of 0 not allowed"));
        assert!(warnings[2].contains("MaxSpareServers of -3"));

        let (pool, warnings) =
            run(PoolInput { start_servers: Some(30), max_request_workers: Some(20), ..PoolInput::default() });
        assert_eq!(pool.start_servers, 20);
        assert_eq!(warnings.len(), 1);

        let (pool, warnings) =
            run(PoolInput { server_limit: Some(0), max_request_workers: Some(0), ..PoolInput::default() });
        assert_eq!((pool.server_limit, pool.max_request_workers), (1, 1));
        assert!(warnings[0].contains("ServerLimit of 0 not allowed"));
        assert!(warnings
            .iter()
            .any(|w| w.contains("decreasing MaxRequestWorkers") || w.contains("StartServers of 5 exceeds")));
    }

    #[test]
    fn debian_defaults_need_no_correction() {
        let (pool, warnings) = run(PoolInput {
            start_servers: Some(5),
            min_spare_servers: Some(5),
            max_spare_servers: Some(10),
            max_request_workers: Some(150),
            server_limit: None,
        });
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(pool.max_request_workers, 150);
    }
}
