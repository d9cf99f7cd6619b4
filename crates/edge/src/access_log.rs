//! The access log in Combined Log Format, which goaccess, fail2ban and every log analyser read.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

/// An open access log.
pub struct AccessLog {
    /// One line per write; the lock keeps lines whole.
    file: Mutex<File>,
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
}

impl AccessLog {
    /// Opens (creating, appending) the log. Called before privileges are dropped.
    pub fn open(path: &Path) -> std::io::Result<AccessLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AccessLog { file: Mutex::new(file) })
    }

    /// Writes one line. A failed write is not the client's problem and is dropped.
    pub fn write(&self, entry: &Entry<'_>) {
        let line = format_combined(entry);
        if let Ok(mut file) = self.file.lock() {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"`, with Apache's escaping of quotes,
/// backslashes and control bytes inside the quoted fields.
pub fn format_combined(entry: &Entry<'_>) -> String {
    let bytes = entry.bytes.filter(|b| *b > 0).map_or("-".to_string(), |b| b.to_string());
    format!(
        "{} - - [{}] \"{}\" {} {} \"{}\" \"{}\"\n",
        entry.client.ip(),
        clf_time(entry.time),
        escape(entry.request_line),
        entry.status,
        bytes,
        escape(entry.referer.unwrap_or("-")),
        escape(entry.user_agent.unwrap_or("-")),
    )
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
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = time.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
        };
        assert_eq!(
            format_combined(&entry),
            "192.0.2.1 - - [26/Nov/2026:13:33:20 +0000] \"GET /a\\\"b HTTP/1.1\" 200 1024 \"-\" \"curl/8\"\n"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
