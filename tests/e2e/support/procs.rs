//! Reading the process tree from /proc.

/// One process as /proc shows it.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    /// The command line as `ps` shows it (process titles overwrite it).
    pub cmdline: String,
}

/// Every process on the machine.
pub fn all() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok()).filter_map(read).collect()
}

/// One process, if it still exists.
pub fn read(pid: i32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, pgrp field 5.
    if fields.first() == Some(&"Z") {
        return None;
    }
    let ppid = fields.get(1)?.parse().ok()?;
    let pgid = fields.get(2)?.parse().ok()?;
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline =
        String::from_utf8_lossy(&raw).split('\0').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
    Some(Proc { pid, ppid, pgid, cmdline })
}

/// Live processes in a process group.
pub fn in_group(pgid: i32) -> Vec<Proc> {
    all().into_iter().filter(|p| p.pgid == pgid).collect()
}

/// Children of `pid`.
pub fn children(pid: i32) -> Vec<Proc> {
    all().into_iter().filter(|p| p.ppid == pid).collect()
}

/// Children of `pid` whose title is `title`.
pub fn children_titled(pid: i32, title: &str) -> Vec<Proc> {
    children(pid).into_iter().filter(|p| p.cmdline == title).collect()
}

/// A field of /proc/PID/status, such as `Uid` or `NoNewPrivs`.
pub fn status_field(pid: i32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(|value| value.trim().to_string())
}

/// Whether any readable mapping of `pid` contains `needle`. Reads /proc/PID/mem region by
/// region, as listed in /proc/PID/maps.
pub fn memory_contains(pid: i32, needle: &[u8]) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem"))?;
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) else {
            continue;
        };
        let mut region = vec![0u8; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_err() {
            continue;
        }
        let mut filled = 0;
        while filled < region.len() {
            match mem.read(&mut region[filled..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => filled += n,
            }
        }
        if region[..filled].windows(needle.len()).any(|w| w == needle) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A `/proc/PID/status` figure in KiB (`VmHWM`, `VmRSS`); panics when the process or the field
/// is gone, which a test reading it does not expect.
pub fn status_kib(pid: i32, field: &str) -> u64 {
    let value = status_field(pid, field).unwrap_or_else(|| panic!("no {field} for {pid}"));
    value.trim_end_matches("kB").trim().parse().unwrap_or_else(|_| panic!("{field} {value:?}"))
}
