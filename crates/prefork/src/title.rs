//! Process titles, so `ps` tells the roles apart (`weir: edge`, `weir: worker`, …).

use std::sync::OnceLock;

/// Sets the title `ps` shows: the short name (`comm`, 15 bytes) through `PR_SET_NAME`, and the
/// command line by overwriting the argument area in place, as nginx and PostgreSQL do.
/// It allocates nothing once the argument area is known (see [`argument_area`]): a freshly forked
/// worker calls it, and every heap page a worker writes becomes its own copy.
pub fn set(title: &str) {
    // `comm` holds 15 bytes and a NUL; a title with a NUL in it ends there.
    let mut name = [0u8; 16];
    let short = title.as_bytes().split(|&b| b == 0).next().unwrap_or_default();
    let n = short.len().min(15);
    name[..n].copy_from_slice(&short[..n]);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes; `name` is 16 bytes,
    // NUL-terminated, and outlives the call.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
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

/// `arg_start` and `arg_end` from /proc/self/stat (fields 48 and 49), read once per process
/// image: a forked child inherits both the area and this answer.
fn argument_area() -> Option<(usize, usize)> {
    static AREA: OnceLock<Option<(usize, usize)>> = OnceLock::new();
    *AREA.get_or_init(read_argument_area)
}

fn read_argument_area() -> Option<(usize, usize)> {
    // A stat line is well under 1 KiB; the fields wanted are its last ones but two.
    let mut buffer = [0u8; 2048];
    let len = weir_scoreboard::memory::read_into("/proc/self/stat", &mut buffer)?;
    let stat = &buffer[..len];
    // The command name (field 2) may hold spaces or any byte; fields after it start past the
    // last ')'.
    let rest = stat.get(stat.iter().rposition(|&b| b == b')')? + 2..)?;
    // `rest` starts at field 3, so field N is at index N - 3.
    let mut fields = rest.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty()).skip(45);
    let number = |field: &[u8]| std::str::from_utf8(field).ok()?.parse::<usize>().ok();
    let start = number(fields.next()?)?;
    let end = number(fields.next()?)?;
    (end > start).then_some((start, end))
}
