//! The access log: Combined Log Format (what goaccess, fail2ban and every log analyser read),
//! Common, or JSON with weir's extra figures. Lines go to a writer thread through a bounded
//! queue, so a slow disk never stalls the edge's runtime; if the queue is ever full a line is
//! dropped and counted rather than blocking a client.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::time::{Duration, SystemTime};

use weir_conf::LogFormat;

use crate::utc::Utc;

/// Lines that may wait for the writer.
const QUEUE: usize = 16 * 1024;

/// An open access log.
pub struct AccessLog {
    format: LogFormat,
    lines: SyncSender<String>,
    /// Lines dropped because the writer fell behind.
    pub dropped: AtomicU64,
}

/// What one line records.
pub struct Entry<'a> {
    pub client: SocketAddr,
    pub time: SystemTime,
    pub request_line: &'a str,
    pub status: u16,
    pub bytes: Option<u64>,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// JSON only: how long the request took, microseconds.
    pub duration_us: u64,
    /// JSON only: how long it waited for a worker, microseconds.
    pub queue_wait_us: Option<u64>,
    /// JSON only: `TLSv1.3`, or none for plain HTTP.
    pub tls: Option<&'a str>,
    /// JSON only: `HTTP/1.1`, `HTTP/2.0`.
    pub protocol: &'a str,
    /// JSON only: the worker that answered, when one did.
    pub worker_pid: Option<i32>,
    pub request_id: Option<&'a str>,
    /// `%u`: the user the request named in its Basic credentials.
    pub user: Option<&'a str>,
}

/// Opens a log file for appending the way every weir log is opened, by root: created mode 0640
/// (a log holds other clients' URLs and addresses, not for scripts to read), never through a
/// symlink at its last step (a link planted where the log should be would have root append to
/// whatever it names), and never blocking (a FIFO planted there would hang the opener until
/// someone reads it: it is refused, as is anything but a regular file).
pub fn open_log_file(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|error| match error.raw_os_error() {
            // What a non-blocking open for writing says of a FIFO nobody reads.
            Some(libc::ENXIO) => std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            _ => error,
        })?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

impl AccessLog {
    /// Opens (creating, appending) the log and starts its writer thread. Called in the edge, before
    /// privileges are dropped; the edge is the one role allowed threads.
    pub fn open(path: &Path, format: LogFormat) -> std::io::Result<AccessLog> {
        let file = open_log_file(path)?;
        let (lines, queue) = mpsc::sync_channel::<String>(QUEUE);
        std::thread::Builder::new().name("weir-access-log".to_string()).spawn(move || {
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
            loop {
                match queue.recv_timeout(Duration::from_millis(200)) {
                    Ok(line) => {
                        let _ = out.write_all(line.as_bytes());
                    }
                    // Quiet for a moment: what is buffered goes to the file, so tail -f and
                    // fail2ban see lines within a fraction of a second.
                    Err(RecvTimeoutError::Timeout) => {
                        let _ = out.flush();
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        let _ = out.flush();
                        return;
                    }
                }
            }
        })?;
        Ok(AccessLog { format, lines, dropped: AtomicU64::new(0) })
    }

    /// Queues one line. A full queue drops the line (counted), never the client.
    pub fn write(&self, entry: &Entry<'_>) {
        let line = match self.format {
            LogFormat::Combined => format_combined(entry),
            LogFormat::Common => format_common(entry),
            LogFormat::Json => format_json(entry),
        };
        if self.lines.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `%h %l %u %t "%r" %>s %b`.
pub fn format_common(entry: &Entry<'_>) -> String {
    let bytes = entry.bytes.filter(|b| *b > 0).map_or("-".to_string(), |b| b.to_string());
    format!(
        "{} - {} [{}] \"{}\" {} {}\n",
        entry.client.ip(),
        log_user(entry.user),
        clf_time(entry.time),
        escape(entry.request_line),
        entry.status,
        bytes
    )
}

/// One JSON object per line.
pub fn format_json(entry: &Entry<'_>) -> String {
    let value = serde_json::json!({
        "time": clf_time(entry.time),
        "client": entry.client.ip().to_string(),
        "request": entry.request_line,
        "status": entry.status,
        "bytes": entry.bytes.unwrap_or(0),
        "referer": entry.referer,
        "user_agent": entry.user_agent,
        "duration_us": entry.duration_us,
        "queue_wait_us": entry.queue_wait_us,
        "tls": entry.tls,
        "protocol": entry.protocol,
        "worker_pid": entry.worker_pid,
        "request_id": entry.request_id,
        "user": entry.user,
    });
    format!("{value}\n")
}

/// `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`, with Apache's escaping of quotes,
/// backslashes and control bytes inside the quoted fields.
pub fn format_combined(entry: &Entry<'_>) -> String {
    let bytes = entry.bytes.filter(|b| *b > 0).map_or("-".to_string(), |b| b.to_string());
    format!(
        "{} - {} [{}] \"{}\" {} {} \"{}\" \"{}\"\n",
        entry.client.ip(),
        log_user(entry.user),
        clf_time(entry.time),
        escape(entry.request_line),
        entry.status,
        bytes,
        escape(entry.referer.unwrap_or("-")),
        escape(entry.user_agent.unwrap_or("-")),
    )
}

/// `%u`: `-` for none; escaped as the quoted fields are, and a space too, so a user name the
/// client chose cannot shift the fields that log readers (fail2ban, goaccess) split on.
fn log_user(user: Option<&str>) -> String {
    match user {
        None | Some("") => "-".to_string(),
        Some(user) => escape(user).replace(' ', "\\x20"),
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32 & 0xff)),
            c => out.push(c),
        }
    }
    out
}

/// `26/Nov/2026:12:00:00 +0000`: logs are in UTC, which needs no time-zone database.
pub fn clf_time(time: SystemTime) -> String {
    let secs = time.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let t = Utc::from_unix(secs);
    format!("{:02}/{}/{}:{:02}:{:02}:{:02} +0000", t.day, t.month_abbr(), t.year, t.hour, t.minute, t.second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_line() {
        let entry = Entry {
            client: "192.0.2.1:4444".parse().unwrap(),
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_700_000),
            request_line: "GET /a\"b HTTP/1.1",
            status: 200,
            bytes: Some(1024),
            referer: None,
            user_agent: Some("curl/8"),
            duration_us: 1500,
            queue_wait_us: None,
            tls: Some("TLSv1.3"),
            protocol: "HTTP/1.1",
            worker_pid: None,
            request_id: Some("r-1"),
            user: None,
        };
        let json: serde_json::Value = serde_json::from_str(&format_json(&entry)).unwrap();
        assert_eq!(json["status"], 200);
        assert_eq!(json["tls"], "TLSv1.3");
        assert!(format_common(&entry).ends_with("\" 200 1024\n"));
        assert_eq!(
            format_combined(&entry),
            "192.0.2.1 - - [26/Nov/2026:13:33:20 +0000] \"GET /a\\\"b HTTP/1.1\" 200 1024 \"-\" \"curl/8\"\n"
        );
        let named = Entry { user: Some("bob"), ..entry };
        assert!(format_combined(&named).starts_with("192.0.2.1 - bob [26/Nov/2026"));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&format_json(&named)).unwrap()["user"], "bob");
        // A name the client chose cannot add fields or lines.
        let forged = Entry { user: Some("x - 10.0.0.1 \"\n"), ..named };
        assert!(
            format_common(&forged).starts_with("192.0.2.1 - x\\x20-\\x2010.0.0.1\\x20\\\"\\x0a ["),
            "{}",
            format_common(&forged)
        );
    }
}
