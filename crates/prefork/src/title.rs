//! Process titles, so `ps` tells the roles apart (`weir: edge`, `weir: worker`, …).

use std::ffi::CString;

/// Sets the title `ps` shows: the short name (`comm`, 15 bytes) through `PR_SET_NAME`, and the
/// command line by overwriting the argument area in place, as nginx and PostgreSQL do.
pub fn set(title: &str) {
    if let Ok(name) = CString::new(title) {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of which the kernel copies at most 16
        // bytes; `name` outlives the call.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
    }
    if let Some((start, end)) = argument_area() {
        let len = end - start;
        if len < 2 {
            return;
        }
        let bytes = title.as_bytes();
        let n = bytes.len().min(len - 1);
        // SAFETY: [start, end) is this process's own argv area as the kernel reports it in
        // /proc/self/stat; it is mapped and writable (it is on the initial stack), and nothing
        // else reads it after start-up: the command line was parsed before any role began.
        unsafe {
            let area = start as *mut u8;
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), area, n);
            std::ptr::write_bytes(area.add(n), 0, len - n);
        }
    }
}

/// `arg_start` and `arg_end` from /proc/self/stat (fields 48 and 49).
fn argument_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields after it start past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so field N is at index N - 3.
    let start = fields.get(45)?.parse().ok()?;
    let end = fields.get(46)?.parse().ok()?;
    (end > start).then_some((start, end))
}
