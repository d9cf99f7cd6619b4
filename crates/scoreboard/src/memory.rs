//! Memory figures from /proc, read the same way by the pool master (MaxMemoryPerChild), the edge
//! (server-status, sizing advice) and `weir configtest` (the sizing warning).

/// A process's resident and proportional set sizes, in bytes, from /proc/PID/smaps_rollup.
pub fn rss_pss(pid: i32) -> (Option<u64>, Option<u64>) {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
        return (None, None);
    };
    (kib_field(&text, "Rss:"), kib_field(&text, "Pss:"))
}

/// This process's own resident and proportional set sizes, in bytes, read without touching the
/// heap: a worker reports its own figures, and a fresh worker's heap pages are still shared
/// with its pool master until it writes to them, so a report that allocated would itself make
/// the worker larger (each written page becomes its own copy).
pub fn own_rss_pss() -> (Option<u64>, Option<u64>) {
    let mut buffer = [0u8; 2048];
    let Some(len) = read_into("/proc/self/smaps_rollup", &mut buffer) else {
        return (None, None);
    };
    let Ok(text) = std::str::from_utf8(&buffer[..len]) else {
        return (None, None);
    };
    (kib_field(text, "Rss:"), kib_field(text, "Pss:"))
}

/// Reads a small file (a /proc entry) into `buffer`, without touching the heap; the length
/// read, at most the buffer's. `None` if it cannot be opened or read.
pub fn read_into(path: &str, buffer: &mut [u8]) -> Option<usize> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut len = 0;
    while len < buffer.len() {
        match file.read(&mut buffer[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(len)
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
        let (own_rss, own_pss) = own_rss_pss();
        assert!(own_rss.is_some_and(|b| b > 0) && own_pss.is_some_and(|b| b > 0));
    }
}
