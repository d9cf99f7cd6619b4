//! server-status, answered by the edge from the scoreboard: Apache's HTML page, the `?auto`
//! text that Prometheus' apache_exporter scrapes (Apache prefork's fields, in Apache's order,
//! then weir's own), and `?json`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{header, HeaderValue, Response};
use weir_scoreboard::{now_us, Recycle, Reject, Scoreboard, SlotView, State};

use crate::body::{self, Body};

/// What the page needs besides the scoreboard.
pub struct StatusContext<'a> {
    pub scoreboard: &'a Scoreboard,
    /// The host name line of `?auto` (ServerName, or the request's Host).
    pub host: &'a str,
    /// Memory kept for everything but workers, for the sizing advice.
    pub sizing_reserve: u64,
    pub max_request_workers: usize,
}

/// Figures computed once per request of the page.
struct Figures {
    now_us: u64,
    started_us: u64,
    uptime: u64,
    generation: u32,
    accesses: u64,
    bytes: u64,
    duration_ms: u64,
    cpu_user: f64,
    cpu_system: f64,
    children_user: f64,
    children_system: f64,
    busy: usize,
    idle: usize,
    graceful: usize,
    board: String,
    workers: Vec<(SlotView, Option<u64>, Option<u64>)>,
    load: [f64; 3],
    average_pss: Option<u64>,
    suggested_workers: Option<u64>,
}

fn figures(context: &StatusContext<'_>) -> Figures {
    let counters = context.scoreboard.counters();
    let now = now_us();
    let started = counters.started_us.load(Ordering::Relaxed);
    let uptime = now.saturating_sub(started) / 1_000_000;
    let mut board = String::with_capacity(context.scoreboard.len());
    let (mut busy, mut idle, mut graceful) = (0, 0, 0);
    let mut workers = Vec::new();
    let (mut children_user, mut children_system) = (0.0, 0.0);
    for slot in context.scoreboard.slots() {
        let view = slot.view();
        board.push(view.state.char());
        match view.state {
            State::Waiting => idle += 1,
            State::Graceful => graceful += 1,
            state if state.is_busy() => busy += 1,
            _ => {}
        }
        if view.pid > 0 {
            if let Some((user, system)) = cpu_seconds(view.pid) {
                children_user += user;
                children_system += system;
            }
            // The worker's own figures: it is not dumpable, so its /proc memory files are
            // closed to the edge.
            let (rss, pss) = (view.rss, view.pss);
            workers.push((view, rss, pss));
        }
    }
    let pss: Vec<u64> = workers.iter().filter_map(|(_, _, pss)| *pss).collect();
    let average_pss = (!pss.is_empty()).then(|| pss.iter().sum::<u64>() / pss.len() as u64);
    let suggested_workers = average_pss.and_then(|avg| {
        let total = weir_scoreboard::memory::mem_total()?;
        Some(total.saturating_sub(context.sizing_reserve) / avg.max(1))
    });
    let (cpu_user, cpu_system) = cpu_seconds(std::process::id() as i32).unwrap_or((0.0, 0.0));
    Figures {
        now_us: now,
        started_us: started,
        uptime,
        generation: counters.generation.load(Ordering::Relaxed),
        accesses: counters.accesses.load(Ordering::Relaxed),
        bytes: counters.bytes.load(Ordering::Relaxed),
        duration_ms: counters.duration_us.load(Ordering::Relaxed) / 1000,
        cpu_user,
        cpu_system,
        children_user,
        children_system,
        busy,
        idle,
        graceful,
        board,
        workers,
        load: load_average(),
        average_pss,
        suggested_workers,
    }
}

/// Answers `/server-status`, `?auto` or `?json`.
pub fn page(context: &StatusContext<'_>, query: Option<&str>) -> Response<Body> {
    let figures = figures(context);
    let query = query.unwrap_or("");
    let (text, content_type) = if query.split('&').any(|q| q == "auto") {
        (auto(context, &figures), "text/plain; charset=ISO-8859-1")
    } else if query.split('&').any(|q| q == "json") {
        (json(context, &figures), "application/json")
    } else {
        (html(context, &figures), "text/html; charset=ISO-8859-1")
    };
    let mut response = Response::new(body::full(text));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Apache prefork's `?auto`, field for field, then weir's figures.
fn auto(context: &StatusContext<'_>, f: &Figures) -> String {
    let counters = context.scoreboard.counters();
    let uptime = f.uptime.max(1) as f64;
    let cpu = f.cpu_user + f.cpu_system + f.children_user + f.children_system;
    let mut out = String::new();
    let _ = writeln!(out, "{}", context.host);
    let _ = writeln!(out, "ServerVersion: weir/{} (Unix)", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "ServerMPM: prefork");
    let _ = writeln!(out, "Server Built: weir {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "CurrentTime: {}", apache_date(f.now_us));
    let _ = writeln!(out, "RestartTime: {}", apache_date(f.started_us));
    let _ = writeln!(out, "ParentServerConfigGeneration: {}", f.generation);
    let _ = writeln!(out, "ParentServerMPMGeneration: {}", f.generation.saturating_sub(1));
    let _ = writeln!(out, "ServerUptimeSeconds: {}", f.uptime);
    let _ = writeln!(out, "ServerUptime: {}", human_duration(f.uptime));
    let _ = writeln!(out, "Load1: {:.2}", f.load[0]);
    let _ = writeln!(out, "Load5: {:.2}", f.load[1]);
    let _ = writeln!(out, "Load15: {:.2}", f.load[2]);
    let _ = writeln!(out, "Total Accesses: {}", f.accesses);
    let _ = writeln!(out, "Total kBytes: {}", f.bytes / 1024);
    let _ = writeln!(out, "Total Duration: {}", f.duration_ms);
    let _ = writeln!(out, "CPUUser: {}", g(f.cpu_user));
    let _ = writeln!(out, "CPUSystem: {}", g(f.cpu_system));
    let _ = writeln!(out, "CPUChildrenUser: {}", g(f.children_user));
    let _ = writeln!(out, "CPUChildrenSystem: {}", g(f.children_system));
    let _ = writeln!(out, "CPULoad: {}", g(cpu / uptime * 100.0));
    let _ = writeln!(out, "Uptime: {}", f.uptime);
    let _ = writeln!(out, "ReqPerSec: {}", g(f.accesses as f64 / uptime));
    let _ = writeln!(out, "BytesPerSec: {}", g(f.bytes as f64 / uptime));
    let per_request = |x: f64| if f.accesses == 0 { 0.0 } else { x / f.accesses as f64 };
    let _ = writeln!(out, "BytesPerReq: {}", g(per_request(f.bytes as f64)));
    let _ = writeln!(out, "DurationPerReq: {}", g(per_request(f.duration_ms as f64)));
    let _ = writeln!(out, "BusyWorkers: {}", f.busy);
    let _ = writeln!(out, "GracefulWorkers: {}", f.graceful);
    let _ = writeln!(out, "IdleWorkers: {}", f.idle);
    let _ = writeln!(out, "Scoreboard: {}", f.board);
    // weir's own figures come after Apache's, so Apache's parsers never meet them first.
    let _ = writeln!(out, "QueueLength: {}", counters.queue_length.load(Ordering::Relaxed));
    let _ = writeln!(out, "QueuedRequests: {}", counters.queued.load(Ordering::Relaxed));
    let _ = writeln!(out, "QueueWaitMs: {}", counters.queue_wait_us.load(Ordering::Relaxed) / 1000);
    let _ = writeln!(out, "TLSHandshakes: {}", counters.handshakes.load(Ordering::Relaxed));
    for why in Reject::ALL {
        let _ = writeln!(out, "Rejected{}: {}", why.name(), counters.rejects(why));
    }
    for why in Recycle::ALL {
        let _ = writeln!(out, "Recycled{}: {}", why.name(), counters.recycles(why));
    }
    let _ = writeln!(out, "WorkerPssAvgKB: {}", f.average_pss.map_or(0, |b| b / 1024));
    let _ = writeln!(out, "SuggestedMaxRequestWorkers: {}", f.suggested_workers.unwrap_or(0));
    out
}

fn json(context: &StatusContext<'_>, f: &Figures) -> String {
    let counters = context.scoreboard.counters();
    let rejects: serde_json::Map<String, serde_json::Value> =
        Reject::ALL.iter().map(|why| (why.name().to_string(), counters.rejects(*why).into())).collect();
    let recycles: serde_json::Map<String, serde_json::Value> =
        Recycle::ALL.iter().map(|why| (why.name().to_string(), counters.recycles(*why).into())).collect();
    let workers: Vec<serde_json::Value> = f
        .workers
        .iter()
        .map(|(view, rss, pss)| {
            serde_json::json!({
                "pid": view.pid,
                "generation": view.generation,
                "state": view.state.char().to_string(),
                "requests": view.requests,
                "bytes": view.bytes,
                "seconds_since_last_request": seconds_since(f.now_us, view.last_request_us),
                "request": view.request_line,
                "rss_bytes": rss,
                "pss_bytes": pss,
            })
        })
        .collect();
    serde_json::json!({
        "server_version": format!("weir/{} (Unix)", env!("CARGO_PKG_VERSION")),
        "mpm": "prefork",
        "host": context.host,
        "uptime_seconds": f.uptime,
        "config_generation": f.generation,
        "load": f.load,
        "total_accesses": f.accesses,
        "total_bytes": f.bytes,
        "total_duration_ms": f.duration_ms,
        "busy_workers": f.busy,
        "idle_workers": f.idle,
        "graceful_workers": f.graceful,
        "scoreboard": f.board,
        "queue_length": counters.queue_length.load(Ordering::Relaxed),
        "queued_requests": counters.queued.load(Ordering::Relaxed),
        "queue_wait_ms": counters.queue_wait_us.load(Ordering::Relaxed) / 1000,
        "tls_handshakes": counters.handshakes.load(Ordering::Relaxed),
        "rejected": rejects,
        "recycled": recycles,
        "max_request_workers": context.max_request_workers,
        "worker_pss_average_bytes": f.average_pss,
        "suggested_max_request_workers": f.suggested_workers,
        "workers": workers,
    })
    .to_string()
}

fn html(context: &StatusContext<'_>, f: &Figures) -> String {
    let counters = context.scoreboard.counters();
    let uptime = f.uptime.max(1) as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html><head><title>weir Status</title></head><body>\n\
         <h1>weir Server Status for {host}</h1>\n\
         <dl><dt>Server Version: weir/{version} (Unix)</dt>\n<dt>Server MPM: prefork</dt>\n</dl><hr /><dl>\n\
         <dt>Current Time: {now}</dt>\n<dt>Restart Time: {restart}</dt>\n\
         <dt>Parent Server Config. Generation: {generation}</dt>\n<dt>Server uptime: {uptime}</dt>\n\
         <dt>Server load: {l1:.2} {l5:.2} {l15:.2}</dt>\n\
         <dt>Total accesses: {accesses} - Total Traffic: {kb} kB - Total Duration: {duration}</dt>\n\
         <dt>CPU Usage: u{cu} s{cs} cu{ccu} cs{ccs}</dt>\n\
         <dt>{rps} requests/sec - {bps} B/second - {bpr} B/request - {dpr} ms/request</dt>\n\
         <dt>{busy} requests currently being processed, {idle} idle workers</dt>\n</dl>\n",
        host = escape(context.host),
        version = env!("CARGO_PKG_VERSION"),
        now = apache_date(f.now_us),
        restart = apache_date(f.started_us),
        generation = f.generation,
        uptime = human_duration(f.uptime),
        l1 = f.load[0],
        l5 = f.load[1],
        l15 = f.load[2],
        accesses = f.accesses,
        kb = f.bytes / 1024,
        duration = f.duration_ms,
        cu = g(f.cpu_user),
        cs = g(f.cpu_system),
        ccu = g(f.children_user),
        ccs = g(f.children_system),
        rps = g(f.accesses as f64 / uptime),
        bps = g(f.bytes as f64 / uptime),
        bpr = g(if f.accesses == 0 { 0.0 } else { f.bytes as f64 / f.accesses as f64 }),
        dpr = g(if f.accesses == 0 { 0.0 } else { f.duration_ms as f64 / f.accesses as f64 }),
        busy = f.busy,
        idle = f.idle,
    );
    out.push_str("<pre>");
    for (index, c) in f.board.chars().enumerate() {
        if index > 0 && index % 64 == 0 {
            out.push('\n');
        }
        out.push(c);
    }
    out.push_str(
        "</pre>\n<p>Scoreboard Key:<br />\n\"<b><code>_</code></b>\" Waiting for Connection, \
         \"<b><code>S</code></b>\" Starting up, \"<b><code>R</code></b>\" Reading Request,<br />\n\
         \"<b><code>W</code></b>\" Sending Reply, \"<b><code>K</code></b>\" Keepalive (read), \
         \"<b><code>L</code></b>\" Logging,<br />\n\"<b><code>G</code></b>\" Gracefully finishing, \
         \"<b><code>I</code></b>\" Idle cleanup of worker, \"<b><code>.</code></b>\" Open slot with no current process</p>\n",
    );
    let _ = write!(
        out,
        "<h2>Queue and limits</h2>\n<dl><dt>Requests waiting for a worker: {}</dt>\n<dt>Requests that waited: {} ({} ms in all)</dt>\n<dt>TLS handshakes: {}</dt>\n",
        counters.queue_length.load(Ordering::Relaxed),
        counters.queued.load(Ordering::Relaxed),
        counters.queue_wait_us.load(Ordering::Relaxed) / 1000,
        counters.handshakes.load(Ordering::Relaxed)
    );
    for why in Reject::ALL {
        let _ = writeln!(out, "<dt>Refused at the edge, {}: {}</dt>", why.name(), counters.rejects(why));
    }
    for why in Recycle::ALL {
        let _ = writeln!(out, "<dt>Workers replaced, {}: {}</dt>", why.name(), counters.recycles(why));
    }
    out.push_str("</dl>\n<h2>Sizing</h2>\n<dl>\n");
    match (f.average_pss, f.suggested_workers) {
        (Some(avg), Some(suggested)) => {
            let _ = write!(
                out,
                "<dt>Average worker size (PSS): {} KiB</dt>\n<dt>Suggested MaxRequestWorkers: {suggested} ((memory - {} MiB reserve) / average worker), configured: {}</dt>\n",
                avg / 1024,
                context.sizing_reserve >> 20,
                context.max_request_workers
            );
        }
        _ => out.push_str("<dt>No worker to measure yet.</dt>\n"),
    }
    out.push_str(
        "</dl>\n<table border=\"0\"><tr><th>Srv</th><th>PID</th><th>Gen</th><th>Acc</th><th>M</th>\
         <th>SS</th><th>Bytes</th><th>RSS KiB</th><th>PSS KiB</th><th>Request</th></tr>\n",
    );
    for (index, (view, rss, pss)) in f.workers.iter().enumerate() {
        let _ = writeln!(
            out,
            "<tr><td><b>{index}</b></td><td>{}</td><td>{}</td><td>{}</td><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            view.pid,
            view.generation,
            view.requests,
            view.state.char(),
            seconds_since(f.now_us, view.last_request_us),
            view.bytes,
            rss.map_or(0, |b| b / 1024),
            pss.map_or(0, |b| b / 1024),
            escape(&view.request_line)
        );
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

fn seconds_since(now_us: u64, then_us: u64) -> u64 {
    if then_us == 0 {
        0
    } else {
        now_us.saturating_sub(then_us) / 1_000_000
    }
}

/// C's `%g`: six significant digits, no trailing zeros, as Apache prints these figures.
pub fn g(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return "0".to_string();
    }
    let exponent = value.abs().log10().floor() as i32;
    if !(-5..6).contains(&exponent) {
        let text = format!("{:.5e}", value);
        return text;
    }
    let decimals = (5 - exponent).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// `Thursday, 26-Nov-2026 12:00:00 UTC`, Apache's status date.
fn apache_date(us: u64) -> String {
    let t = crate::utc::Utc::from_unix(us / 1_000_000);
    format!(
        "{}, {:02}-{}-{} {:02}:{:02}:{:02} UTC",
        t.weekday_name(),
        t.day,
        t.month_abbr(),
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}

/// `1 day 2 hours 3 minutes 4 seconds`, as Apache words uptime.
fn human_duration(secs: u64) -> String {
    let parts = [
        (secs / 86_400, "day"),
        (secs / 3600 % 24, "hour"),
        (secs / 60 % 60, "minute"),
        (secs % 60, "second"),
    ];
    let words: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}{}", if *n == 1 { "" } else { "s" }))
        .collect();
    if words.is_empty() {
        "0 seconds".to_string()
    } else {
        words.join(" ")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut fields = text.split_whitespace().map(|f| f.parse().unwrap_or(0.0));
    [fields.next().unwrap_or(0.0), fields.next().unwrap_or(0.0), fields.next().unwrap_or(0.0)]
}

/// User and system CPU seconds of a process, from /proc/PID/stat.
fn cpu_seconds(pid: i32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf takes a constant and no pointers.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user / ticks, system / ticks))
}

/// How long since a time, for logs.
pub fn since(time: SystemTime) -> Duration {
    SystemTime::now().duration_since(time).unwrap_or_default()
}

/// Unix seconds of a time, for JSON logs.
pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_style_g() {
        assert_eq!(g(0.0), "0");
        assert_eq!(g(0.00277778), "0.00277778");
        assert_eq!(g(1.42222222), "1.42222");
        assert_eq!(g(512.0), "512");
        assert_eq!(g(123456.7), "123457");
    }

    #[test]
    fn words_and_dates() {
        assert_eq!(human_duration(3723), "1 hour 2 minutes 3 seconds");
        assert_eq!(human_duration(0), "0 seconds");
        assert_eq!(apache_date(1_795_694_400_000_000), "Thursday, 26-Nov-2026 12:00:00 UTC");
    }
}
