//! The error log, in Apache's line format:
//! `[Thu Nov 26 12:00:00.123456 2026] [mpm_prefork:notice] [pid 1234] AH00163: …`.
//!
//! Every process writes to its standard error, one `write` per line; the supervisor points
//! standard error at the ErrorLog file before it forks, as Apache does, so CGI scripts' stderr
//! lands there too. A line logged inside a `<VirtualHost>`'s `site` span goes to that site's
//! own ErrorLog instead, when it has one ([`crate::site_logs`]). No background writer thread:
//! the forking roles must stay single-threaded.

use std::fmt;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::site_logs;

/// Installs the global subscriber, writing Apache-format lines to standard error (or to a
/// site's own ErrorLog).
pub fn init(max_level: Level) {
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::from_level(max_level))
        .with(SiteLayer)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).event_format(ApacheFormat))
        .try_init();
}

/// The site a `site` span serves (a span extension).
#[derive(Debug, Clone, Copy)]
struct SiteNumber(usize);

/// Notes the site number of each `site` span as it opens, so a line logged inside one finds it.
struct SiteLayer;

impl<S> Layer<S> for SiteLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != site_logs::SITE_SPAN {
            return;
        }
        let mut number = SiteField(None);
        attrs.record(&mut number);
        if let (Some(number), Some(span)) = (number.0, ctx.span(id)) {
            span.extensions_mut().insert(SiteNumber(number));
        }
    }
}

/// Reads the `site` field of a span.
struct SiteField(Option<usize>);

impl Visit for SiteField {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "site" {
            self.0 = usize::try_from(value).ok();
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
}

/// Standard error as it was before a reload pointed it at the new configuration's ErrorLog:
/// put back when the reload fails, so the generation that keeps serving keeps its log.
pub struct PreviousStderr(OwnedFd);

impl PreviousStderr {
    pub fn restore(self) {
        // SAFETY: dup2 onto descriptor 2 from a descriptor this value owns.
        unsafe { libc::dup2(self.0.as_raw_fd(), 2) };
    }
}

/// [`redirect_stderr`], keeping what standard error was.
pub fn redirect_stderr_keeping(path: &Path) -> std::io::Result<PreviousStderr> {
    // SAFETY: F_DUPFD_CLOEXEC duplicates descriptor 2 into a new descriptor only we own.
    let previous = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 3) };
    if previous < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `previous` was just created and nothing else owns it.
    let previous = PreviousStderr(unsafe { OwnedFd::from_raw_fd(previous) });
    redirect_stderr(path)?;
    Ok(previous)
}

/// Points standard error at the ErrorLog file (appending, created if missing).
pub fn redirect_stderr(path: &Path) -> std::io::Result<()> {
    let file = weir_edge::access_log::open_log_file(path)?;
    // SAFETY: dup2 onto descriptor 2 replaces standard error; `file` stays valid for the call.
    if unsafe { libc::dup2(file.as_raw_fd(), 2) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

struct ApacheFormat;

impl<S, N> FormatEvent<S, N> for ApacheFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let site = ctx.event_scope().and_then(|scope| {
            scope.from_root().find_map(|span| span.extensions().get::<SiteNumber>().map(|site| site.0))
        });
        if let Some(file) = site.and_then(site_logs::file) {
            // The site's own file, in one write (appended whole, as standard error's lines
            // are); nothing goes to standard error for it.
            let mut line = String::new();
            apache_line(ctx, Writer::new(&mut line), event)?;
            let _ = (&*file).write_all(line.as_bytes());
            return Ok(());
        }
        apache_line(ctx, writer, event)
    }
}

/// One line in Apache's format.
fn apache_line<S, N>(ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let meta = event.metadata();
    write!(
        writer,
        "[{}] [{}:{}] [pid {}] ",
        apache_time(SystemTime::now()),
        module_of(meta.target()),
        level_word(*meta.level()),
        std::process::id()
    )?;
    ctx.field_format().format_fields(writer.by_ref(), event)?;
    writeln!(writer)
}

/// Apache's module name for the part of weir that logged, so grep habits carry over.
fn module_of(target: &str) -> &'static str {
    if target.starts_with("weir_prefork") {
        "mpm_prefork"
    } else if target.starts_with("weir_apps::cgi") {
        "cgi"
    } else if target.starts_with("weir_edge::tls") {
        "ssl"
    } else {
        "core"
    }
}

fn level_word(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "notice",
        Level::DEBUG => "debug",
        Level::TRACE => "trace1",
    }
}

/// `Thu Nov 26 12:00:00.123456 2026`, in UTC.
pub fn apache_time(time: SystemTime) -> String {
    let since = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let t = weir_edge::utc::Utc::from_unix(since.as_secs());
    format!(
        "{} {} {:02} {:02}:{:02}:{:02}.{:06} {}",
        t.weekday_abbr(),
        t.month_abbr(),
        t.day,
        t.hour,
        t.minute,
        t.second,
        since.subsec_micros(),
        t.year
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn time_as_apache_writes_it() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_694_400_123_456);
        assert_eq!(apache_time(t), "Thu Nov 26 12:00:00.123456 2026");
    }
}
