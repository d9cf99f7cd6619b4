//! Memory figures from /proc, read the same way by the pool master (MaxMemoryPerChild), the edge
//! (server-status, sizing advice) and `weir configtest` (the sizing warning).

/// A process's resident and proportional set sizes, in bytes, from /proc/PID/smaps_rollup.
pub fn rss_pss(pid: i32) -> (Option<u64>, Option<u64>) {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
        return (None, None);
    };
    (kib_field(&text, "Rss:"), kib_field(&text, "Pss:"))
}

/// A process's proportional set size, in bytes.
pub fn pss(pid: i32) -> Option<u64> {
    rss_pss(pid).1
}

/// The machine's memory, in bytes (MemTotal).
pub fn mem_total() -> Option<u64> {
    kib_field(&std::fs::read_to_string("/proc/meminfo").ok()?, "MemTotal:")
}

/// `Name:   1234 kB` as bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with(name))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_figures_are_readable() {
        let (rss, pss) = rss_pss(std::process::id() as i32);
        assert!(rss.is_some_and(|b| b > 0) && pss.is_some_and(|b| b > 0));
        assert!(mem_total().is_some_and(|b| b > 1 << 20));
    }
}
