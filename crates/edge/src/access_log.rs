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

use weir_conf::log_format::LogItem;
use weir_conf::LogFormat;

use crate::utc::Utc;

/// Lines that may wait for the writer.
const QUEUE: usize = 16 * 1024;

/// An open access log.
pub struct AccessLog {
    format: LogFormat,
    /// A `LogFormat` of the site's own, used instead of `format`.
    custom: Option<Custom>,
    lines: SyncSender<String>,
    /// Lines dropped because the writer fell behind.
    pub dropped: AtomicU64,
}

/// A site's own format, with the header names it reads.
struct Custom {
    items: Vec<LogItem>,
    request_headers: Vec<String>,
    response_headers: Vec<String>,
    /// `%v`.
    server_name: String,
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
    /// `%p`: the port the request came in on.
    pub local_port: u16,
    /// `%{Name}i`: the values of [`AccessLog::request_values`]' headers.
    pub request_headers: &'a [Option<String>],
    /// `%{Name}o`: likewise for the response.
    pub response_headers: &'a [Option<String>],
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
    pub fn open(
        path: &Path,
        format: LogFormat,
        items: Option<&[LogItem]>,
        server_name: &str,
    ) -> std::io::Result<AccessLog> {
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
        let custom = items.map(|items| Custom {
            request_headers: weir_conf::log_format::request_headers(items),
            response_headers: items
                .iter()
                .filter_map(|item| match item {
                    LogItem::ResponseHeader(name) => Some(name.clone()),
                    _ => None,
                })
                .collect(),
            items: items.to_vec(),
            server_name: server_name.to_string(),
        });
        Ok(AccessLog { format, custom, lines, dropped: AtomicU64::new(0) })
    }

    /// The request headers the format logs, taken before the request is consumed; empty (and
    /// free) for the built-in formats.
    pub fn request_values(&self, headers: &http::HeaderMap) -> Vec<Option<String>> {
        self.custom.as_ref().map_or_else(Vec::new, |c| values(&c.request_headers, headers))
    }

    /// The response headers the format logs.
    pub fn response_values(&self, headers: &http::HeaderMap) -> Vec<Option<String>> {
        self.custom.as_ref().map_or_else(Vec::new, |c| values(&c.response_headers, headers))
    }

    /// Queues one line. A full queue drops the line (counted), never the client.
    pub fn write(&self, entry: &Entry<'_>) {
        if let Some(custom) = &self.custom {
            let line = format_custom(custom, entry);
            if self.lines.try_send(line).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
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

fn values(names: &[String], headers: &http::HeaderMap) -> Vec<Option<String>> {
    names
        .iter()
        .map(|name| {
            let mut all =
                headers.get_all(name.as_str()).iter().map(|v| String::from_utf8_lossy(v.as_bytes()));
            let first = all.next()?;
            // Apache logs repeated fields joined with ", ".
            Some(all.fold(first.into_owned(), |joined, next| joined + ", " + &next))
        })
        .collect()
}

/// A line in the site's own `LogFormat`; every field from the client is escaped as Apache
/// escapes it, so no value can start a line or forge a field.
fn format_custom(custom: &Custom, entry: &Entry<'_>) -> String {
    use std::fmt::Write as _;
    let mut line = String::with_capacity(256);
    let (method, target, protocol) = split_request_line(entry.request_line);
    let (path, query) = target.split_once('?').map_or((target, None), |(p, q)| (p, Some(q)));
    let dash = |value: Option<&str>| escape(value.filter(|v| !v.is_empty()).unwrap_or("-"));
    for item in &custom.items {
        match item {
            LogItem::Text(text) => line.push_str(text),
            LogItem::ClientIp => {
                let _ = write!(line, "{}", entry.client.ip());
            }
            LogItem::Logname => line.push('-'),
            LogItem::User => line.push_str(&log_user(entry.user)),
            LogItem::Time => {
                let _ = write!(line, "[{}]", clf_time(entry.time));
            }
            LogItem::RequestLine => line.push_str(&escape(entry.request_line)),
            LogItem::Status => {
                let _ = write!(line, "{}", entry.status);
            }
            LogItem::BytesClf => match entry.bytes.filter(|b| *b > 0) {
                Some(bytes) => {
                    let _ = write!(line, "{bytes}");
                }
                None => line.push('-'),
            },
            LogItem::Bytes => {
                let _ = write!(line, "{}", entry.bytes.unwrap_or(0));
            }
            LogItem::DurationUs => {
                let _ = write!(line, "{}", entry.duration_us);
            }
            LogItem::DurationS => {
                let _ = write!(line, "{}", entry.duration_us / 1_000_000);
            }
            LogItem::RequestHeader(name) => {
                let index = custom.request_headers.iter().position(|n| n == name);
                let value = index.and_then(|i| entry.request_headers.get(i)).and_then(Option::as_deref);
                line.push_str(&dash(value));
            }
            LogItem::ResponseHeader(name) => {
                let index = custom.response_headers.iter().position(|n| n == name);
                let value = index.and_then(|i| entry.response_headers.get(i)).and_then(Option::as_deref);
                line.push_str(&dash(value));
            }
            LogItem::ServerName => line.push_str(&escape(&custom.server_name)),
            LogItem::LocalPort => {
                let _ = write!(line, "{}", entry.local_port);
            }
            LogItem::Path => line.push_str(&escape(path)),
            LogItem::Query => {
                if let Some(query) = query {
                    line.push('?');
                    line.push_str(&escape(query));
                }
            }
            LogItem::Method => line.push_str(&escape(method)),
            LogItem::Protocol => line.push_str(&escape(protocol.unwrap_or(entry.protocol))),
            LogItem::Pid => {
                let _ = write!(line, "{}", std::process::id());
            }
            LogItem::RequestId => line.push_str(&dash(entry.request_id)),
        }
    }
    line.push('\n');
    line
}

/// `METHOD target PROTOCOL` as the client sent it; a malformed line gives what it has.
fn split_request_line(line: &str) -> (&str, &str, Option<&str>) {
    let mut parts = line.splitn(3, ' ');
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    (method, target, parts.next())
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
            local_port: 8443,
            request_headers: &[],
            response_headers: &[],
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

    #[test]
    fn a_logformat_of_the_sites_own() {
        let items = weir_conf::log_format::parse(
            "LogFormat",
            "%v:%p %h %m %U%q %H %>s %b/%B %D %{User-Agent}i|%{X-Missing}i|%{Content-Type}o %{User-Agent}i",
        )
        .unwrap();
        let custom = Custom {
            request_headers: weir_conf::log_format::request_headers(&items),
            response_headers: vec!["content-type".into()],
            items,
            server_name: "meters.example".into(),
        };
        let request = [Some("curl/8 \"x\"".to_string()), None];
        let response = [Some("text/csv".to_string())];
        let entry = Entry {
            client: "192.0.2.1:4444".parse().unwrap(),
            time: SystemTime::UNIX_EPOCH,
            request_line: "GET /r?a=1 HTTP/1.1",
            status: 404,
            bytes: Some(0),
            referer: None,
            user_agent: None,
            duration_us: 1500,
            queue_wait_us: None,
            tls: None,
            protocol: "HTTP/1.1",
            worker_pid: None,
            request_id: None,
            local_port: 8443,
            request_headers: &request,
            response_headers: &response,
            user: None,
        };
        assert_eq!(
            format_custom(&custom, &entry),
            "meters.example:8443 192.0.2.1 GET /r?a=1 HTTP/1.1 404 -/0 1500 curl/8 \\\"x\\\"|-|text/csv curl/8 \\\"x\\\"\n"
        );
        let user = weir_conf::log_format::parse("LogFormat", "%l %u").unwrap();
        let custom = Custom { items: user, ..custom };
        assert_eq!(format_custom(&custom, &Entry { user: Some("bob smith"), ..entry }), "- bob\\x20smith\n");
    }
}
