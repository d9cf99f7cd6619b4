//! Directives a reload cannot apply. Everything else takes effect in the new generation (the
//! edge and the pool are forked afresh from the new configuration); these are fixed when weir
//! starts, so a reload that changes one is refused, naming it, rather than silently ignored:
//!
//! - `User`, `Group`, `EdgeUser`, `EdgeGroup`: the accounts are resolved once, and RuntimeDir,
//!   the pool socket and the logs were checked and made for them.
//! - `PidFile`: the supervisor holds it locked for its life; `weir stop` finds it there.
//! - `RuntimeDir`: where the supervisor's pool sockets and reload status live.
//! - `ServerLimit`: the scoreboard is one shared mapping made before the first fork (Apache
//!   ignores a change with AH00179; weir refuses the reload instead, so it cannot go unseen).
//! - `LogLevel`: the error log's filter is installed once, before any fork.

use weir_conf::Config;

/// Why `new` cannot replace `running` by a reload; empty when it can.
pub fn fixed_at_start(running: &Config, new: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    let mut check = |name: &str, was: String, now: String| {
        if was != now {
            changed.push(format!(
                "{name} cannot change on reload (running: {was}, file: {now}); restart weir to apply it"
            ));
        }
    };
    let account = |value: &Option<String>| value.clone().unwrap_or_else(|| "(default)".to_string());
    check("User", account(&running.user), account(&new.user));
    check("Group", account(&running.group), account(&new.group));
    check("EdgeUser", account(&running.edge_user), account(&new.edge_user));
    check("EdgeGroup", account(&running.edge_group), account(&new.edge_group));
    check("PidFile", running.pid_file.display().to_string(), new.pid_file.display().to_string());
    check("RuntimeDir", running.runtime_dir.display().to_string(), new.runtime_dir.display().to_string());
    check("ServerLimit", running.pool.server_limit.to_string(), new.pool.server_limit.to_string());
    check("LogLevel", format!("{:?}", running.log_level), format!("{:?}", new.log_level));
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(extra: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.conf");
        std::fs::write(&path, format!("Listen 127.0.0.1:0 http\nRuntimeDir /run/weir-test\nPidFile /run/weir-test/weir.pid\n{extra}")).unwrap();
        Config::load(&path).unwrap()
    }

    #[test]
    fn each_fixed_directive_is_named_and_others_pass() {
        let base = load("");
        assert!(fixed_at_start(&base, &load("Timeout 5\nMaxRequestWorkers 3\n")).is_empty());
        for (extra, name) in [
            ("User daemon\n", "User"),
            ("Group daemon\n", "Group"),
            ("EdgeUser daemon\n", "EdgeUser"),
            ("EdgeGroup daemon\n", "EdgeGroup"),
            ("PidFile /run/other.pid\n", "PidFile"),
            ("RuntimeDir /run/other\n", "RuntimeDir"),
            ("ServerLimit 300\nMaxRequestWorkers 300\n", "ServerLimit"),
            ("LogLevel debug\n", "LogLevel"),
        ] {
            let problems = fixed_at_start(&base, &load(extra));
            assert_eq!(problems.len(), 1, "{extra}: {problems:?}");
            assert!(problems[0].starts_with(&format!("{name} cannot change on reload")), "{problems:?}");
        }
    }
}
