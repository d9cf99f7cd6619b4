//! Basic authentication (RFC 7617) at the edge: the `Authorization` header read, the password
//! checked against the `AuthUserFile` off the reactor, and the failures counted per source.
//!
//! A bcrypt check costs milliseconds of CPU, so a flood of wrong passwords must not become a
//! flood of work that stalls everything else the edge serves:
//! - checks run on tokio's blocking threads, at most [`running_checks`] at once (half the
//!   machine's cores, at least one), so the other half always serves the reactor;
//! - at most [`QUEUED_PER_CHECK`] times as many wait, each for at most [`MAX_CHECK_WAIT`];
//!   beyond either a request gets 503 with Retry-After, never an unbounded queue;
//! - a source (an IPv4 address, an IPv6 /64) that fails `AuthFailureBlock` checks within its
//!   window gets 429 for the window, and its passwords are not checked at all meanwhile.
//!
//! Verified credentials are not cached: a cache would hold, for every recent password, a fast
//! verifier (a keyed hash of it) in the edge's memory, undoing bcrypt's cost for whoever reads
//! that memory; the concurrency cap bounds the CPU a check costs instead.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use tokio::sync::Semaphore;
use weir_conf::auth::{Check, FailureBlock, UserFile, UserFileError};
use weir_conf::location::Location;

use crate::body::{self, Body};
use crate::log_gate::LogGate;
use crate::source::Source;

/// Requests that may wait for a check, per check that may run.
pub const QUEUED_PER_CHECK: usize = 16;

/// Longest a request waits for its check to start. Sixteen bcrypt checks of cost 5 take well
/// under a second; on a machine busy with a flood they take more, and a person logging in is
/// better told to retry than kept waiting, while the flood holds no request longer than this.
pub const MAX_CHECK_WAIT: Duration = Duration::from_secs(2);

/// Most sources whose failures are remembered; past it the oldest unblocked one is forgotten,
/// so memory stays bounded whatever the number of addresses an attacker uses.
const MAX_SOURCES: usize = 65_536;

/// Checks that may run at once: half the cores, at least one. Password checks are pure CPU;
/// more at once than this only slows the reactor's threads, not the answers.
pub fn running_checks() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// What a request needs to be let in: the realm to name and the file to check against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub user_file: PathBuf,
}

/// The outcome of [`BasicAuth::authenticate`], with the user name the client sent, if any
/// (the access log's `%u`, as Apache logs it also for a failed attempt).
pub enum Outcome {
    /// The password is the user's.
    User(String),
    /// Answer with this: 401, 429, 503 or 500.
    Refused { response: Response<Body>, user: Option<String> },
}

/// The password files, read before privileges are dropped, and the limits on checking them.
pub struct BasicAuth {
    files: HashMap<PathBuf, Arc<UserFile>>,
    /// Permits for checks admitted (running or waiting); none left: 503.
    admitted: Arc<Semaphore>,
    /// Permits for checks running.
    running: Arc<Semaphore>,
    retry_after: HeaderValue,
    failures: Option<Failures>,
    /// The 503 for a full queue is worth one line a minute.
    busy_log: LogGate,
}

impl BasicAuth {
    /// Reads every `AuthUserFile` the sections name (as root, before the privilege drop, as the
    /// TLS key is read: the files may be readable by root alone).
    pub fn load(locations: &[Location], block: Option<FailureBlock>) -> Result<BasicAuth, UserFileError> {
        let mut files = HashMap::new();
        for path in locations.iter().filter_map(|l| l.auth.user_file.as_ref()) {
            if !files.contains_key(path) {
                files.insert(path.clone(), Arc::new(UserFile::read(path)?));
            }
        }
        Ok(Self::with_files(files, block, running_checks()))
    }

    fn with_files(
        files: HashMap<PathBuf, Arc<UserFile>>,
        block: Option<FailureBlock>,
        running: usize,
    ) -> BasicAuth {
        BasicAuth {
            files,
            admitted: Arc::new(Semaphore::new(running * (1 + QUEUED_PER_CHECK))),
            running: Arc::new(Semaphore::new(running)),
            retry_after: HeaderValue::from_static("1"),
            failures: block.map(Failures::new),
            busy_log: LogGate::default(),
        }
    }

    /// How many users each file names, for the start-up log.
    pub fn summary(&self) -> Vec<(&Path, usize)> {
        self.files.iter().map(|(path, file)| (path.as_path(), file.len())).collect()
    }

    /// Checks the credentials a request carries against `challenge`'s file.
    pub async fn authenticate(&self, peer: IpAddr, headers: &HeaderMap, challenge: &Challenge) -> Outcome {
        let source = Source::of(peer);
        if let Some(refused) = self.refused_if_blocked(source) {
            return refused;
        }
        let Some((user, password)) = credentials(headers) else {
            // No credentials, or another scheme: ask for them (not a failure: every browser
            // asks first without any).
            return Outcome::Refused { response: challenge_response(&challenge.realm), user: None };
        };
        let Some(file) = self.files.get(&challenge.user_file).cloned() else {
            tracing::error!(file = %challenge.user_file.display(), "AuthUserFile was not read at start");
            return Outcome::Refused {
                response: body::error_page(StatusCode::INTERNAL_SERVER_ERROR),
                user: Some(user),
            };
        };
        let Ok(admitted) = self.admitted.clone().try_acquire_owned() else {
            return Outcome::Refused { response: self.busy(), user: Some(user) };
        };
        let Ok(Ok(running)) =
            tokio::time::timeout(MAX_CHECK_WAIT, self.running.clone().acquire_owned()).await
        else {
            return Outcome::Refused { response: self.busy(), user: Some(user) };
        };
        // Asked again now that the check may run, and again below before a success counts: the
        // checks of a burst sent at once all passed the first question before any had failed,
        // and so got 9 to 39 guesses past a block of 3, the right password among them.
        if let Some(refused) = self.refused_if_blocked(source) {
            return refused;
        }
        let name = user.clone();
        // The permits go with the check: a client that hangs up drops this future, but not the
        // check already running, whose place must stay taken until it ends.
        let check = tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            file.check(&name, &password)
        })
        .await;
        match check {
            Ok(Check::Granted) => self.refused_if_blocked(source).unwrap_or(Outcome::User(user)),
            Ok(failed) => {
                let why = if failed == Check::Unknown {
                    "AH01618: user not found"
                } else {
                    "AH01617: Password Mismatch"
                };
                tracing::debug!(client = %peer, user = %user.escape_debug(), "user {}: authentication failure: {why}", user.escape_debug());
                if let Some(failures) = &self.failures {
                    failures.failed(source);
                }
                Outcome::Refused { response: challenge_response(&challenge.realm), user: Some(user) }
            }
            Err(error) => {
                tracing::error!(%error, "a password check failed");
                Outcome::Refused {
                    response: body::error_page(StatusCode::INTERNAL_SERVER_ERROR),
                    user: Some(user),
                }
            }
        }
    }
}

impl BasicAuth {
    /// 429 with Retry-After while `source` is blocked by AuthFailureBlock.
    fn refused_if_blocked(&self, source: Source) -> Option<Outcome> {
        let wait = self.failures.as_ref()?.blocked(source)?;
        let mut response = body::error_page(StatusCode::TOO_MANY_REQUESTS);
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        Some(Outcome::Refused { response, user: None })
    }

    /// 503 with Retry-After: the checks are all taken and the line is full, or too slow.
    fn busy(&self) -> Response<Body> {
        if let Some(held_back) = self.busy_log.due() {
            tracing::warn!(
                held_back,
                "Basic authentication: every password check is busy and the line is full or has waited {} s; answering 503 (lines like this one held back: {held_back})",
                MAX_CHECK_WAIT.as_secs()
            );
        }
        let mut response = body::error_page(StatusCode::SERVICE_UNAVAILABLE);
        response.headers_mut().insert(header::RETRY_AFTER, self.retry_after.clone());
        response
    }
}

/// The user and password of `Authorization: Basic …`, as mod_auth_basic reads them: the
/// user up to the first ':' of the decoded text, the password after it.
fn credentials(headers: &HeaderMap) -> Option<(String, Vec<u8>)> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// 401 with `WWW-Authenticate: Basic realm="…"`, the realm a quoted-string (RFC 9110 5.6.4).
pub fn challenge_response(realm: &str) -> Response<Body> {
    let mut response = body::error_page(StatusCode::UNAUTHORIZED);
    let mut value = String::with_capacity(realm.len() + 16);
    value.push_str("Basic realm=\"");
    for c in realm.chars() {
        if c == '"' || c == '\\' {
            value.push('\\');
        }
        value.push(c);
    }
    value.push('"');
    // The realm holds no control character (configtest refuses them); UTF-8 is obs-text here.
    if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// `AuthFailureBlock`: failed checks per source in a window, and the sources blocked.
struct Failures {
    rule: FailureBlock,
    sources: Mutex<HashMap<Source, Failing>>,
    /// One line when a source is blocked; a flood of sources gets one a minute.
    log: LogGate,
}

#[derive(Debug, Clone, Copy)]
struct Failing {
    count: u32,
    /// When the window of this count started.
    since: Instant,
    blocked_until: Option<Instant>,
}

impl Failures {
    fn new(rule: FailureBlock) -> Failures {
        Failures { rule, sources: Mutex::new(HashMap::new()), log: LogGate::default() }
    }

    /// How long the source stays blocked, if it is.
    fn blocked(&self, source: Source) -> Option<Duration> {
        let sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        let until = sources.get(&source)?.blocked_until?;
        until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }

    /// Counts a failed check; the one that reaches the limit blocks the source.
    fn failed(&self, source: Source) {
        let now = Instant::now();
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        if !sources.contains_key(&source) && sources.len() >= MAX_SOURCES {
            self.make_room(&mut sources, now);
        }
        let entry = sources.entry(source).or_insert(Failing { count: 0, since: now, blocked_until: None });
        let expired = now.duration_since(entry.since) > self.rule.window;
        if expired || entry.blocked_until.is_some_and(|until| until <= now) {
            *entry = Failing { count: 0, since: now, blocked_until: None };
        }
        entry.count += 1;
        if entry.count >= self.rule.failures && entry.blocked_until.is_none() {
            entry.blocked_until = Some(now + self.rule.window);
            drop(sources);
            if let Some(held_back) = self.log.due() {
                tracing::warn!(
                    client = %source,
                    held_back,
                    "client {source} blocked for {} s after {} failed password checks (AuthFailureBlock; sources blocked since the last such line: {held_back})",
                    self.rule.window.as_secs(),
                    self.rule.failures
                );
            }
        }
    }

    /// Forgets expired entries, and if none has expired, the one whose window started first
    /// among those not blocked (or, all blocked, the one whose block ends first).
    fn make_room(&self, sources: &mut HashMap<Source, Failing>, now: Instant) {
        let window = self.rule.window;
        sources.retain(|_, f| match f.blocked_until {
            Some(until) => until > now,
            None => now.duration_since(f.since) <= window,
        });
        if sources.len() < MAX_SOURCES {
            return;
        }
        let oldest = sources
            .iter()
            .min_by_key(|(_, f)| (f.blocked_until.is_some(), f.blocked_until.unwrap_or(f.since)))
            .map(|(source, _)| *source);
        if let Some(source) = oldest {
            sources.remove(&source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Source {
        Source::of(text.parse().unwrap())
    }

    #[test]
    fn credentials_as_mod_auth_basic_reads_them() {
        let mut headers = HeaderMap::new();
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let mut with = |value: String| {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
            credentials(&headers)
        };
        assert_eq!(with(format!("Basic {}", encode("bob:p:w"))), Some(("bob".into(), b"p:w".to_vec())));
        assert_eq!(with(format!("basic  {}", encode("bob:"))), Some(("bob".into(), Vec::new())));
        assert_eq!(with(format!("Bearer {}", encode("bob:x"))), None);
        assert_eq!(with(format!("Basic {}", encode("no-colon"))), None);
        assert_eq!(with("Basic !!!".to_string()), None);
    }

    #[test]
    fn the_realm_is_a_quoted_string() {
        let response = challenge_response("Meter \"A\" \\ admin");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"Meter \\\"A\\\" \\\\ admin\""
        );
        assert_eq!(
            challenge_response("Zähler").headers()[header::WWW_AUTHENTICATE].as_bytes(),
            "Basic realm=\"Zähler\"".as_bytes()
        );
    }

    #[test]
    fn failures_block_a_source_for_the_window_and_no_other() {
        let failures = Failures::new(FailureBlock { failures: 3, window: Duration::from_secs(60) });
        let a = source("192.0.2.1");
        for _ in 0..2 {
            failures.failed(a);
        }
        assert_eq!(failures.blocked(a), None);
        failures.failed(a);
        let wait = failures.blocked(a).expect("blocked after the third failure");
        assert!(wait > Duration::from_secs(58) && wait <= Duration::from_secs(60), "{wait:?}");
        assert_eq!(failures.blocked(source("192.0.2.2")), None);
        // The IPv6 /64 is the source.
        for n in 0..3 {
            failures.failed(source(&format!("2001:db8:1:2::{n}")));
        }
        assert!(failures.blocked(source("2001:db8:1:2::ffff")).is_some());
        assert!(failures.blocked(source("2001:db8:1:3::1")).is_none());
    }

    #[test]
    fn an_old_window_starts_again() {
        let failures = Failures::new(FailureBlock { failures: 2, window: Duration::from_secs(60) });
        let a = source("192.0.2.1");
        failures.failed(a);
        failures.sources.lock().unwrap().get_mut(&a).unwrap().since -= Duration::from_secs(61);
        failures.failed(a);
        assert_eq!(failures.blocked(a), None, "the first failure is out of the window");
        failures.failed(a);
        assert!(failures.blocked(a).is_some());
    }

    #[test]
    fn memory_is_bounded() {
        let failures = Failures::new(FailureBlock { failures: 5, window: Duration::from_secs(60) });
        for n in 0..(MAX_SOURCES as u32 + 10) {
            failures.failed(Source::of(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))));
        }
        assert!(failures.sources.lock().unwrap().len() <= MAX_SOURCES);
    }

    /// A client that hangs up mid-check does not free the check's place while it still runs:
    /// otherwise connect, send a password, hang up, again, would run any number at once.
    #[tokio::test]
    async fn a_check_keeps_its_place_after_its_client_is_gone() {
        let text = "bob:$2y$12$2.WrvO0mYjTZ7cXpRcX0pOMKvYymCSmZc8Dq07HSgPFwHNqbvKZ8C\n";
        let file = UserFile::parse(Path::new("/u"), text).unwrap();
        let auth = BasicAuth::with_files(HashMap::from([(PathBuf::from("/u"), Arc::new(file))]), None, 1);
        let challenge = Challenge { realm: "r".into(), user_file: "/u".into() };
        let mut headers = HeaderMap::new();
        let credentials = base64::engine::general_purpose::STANDARD.encode("bob:wrong");
        headers
            .insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {credentials}")).unwrap());
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        tokio::select! {
            _ = auth.authenticate(peer, &headers, &challenge) => panic!("a cost-12 check ended at once"),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        assert_eq!(auth.running.available_permits(), 0, "the abandoned check still holds its place");
        let freed = tokio::time::timeout(Duration::from_secs(30), async {
            while auth.running.available_permits() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        assert!(freed.await.is_ok(), "the place came back when the check ended");
    }

    #[tokio::test]
    async fn the_checks_answer_granted_401_and_503() {
        let file = UserFile::parse(Path::new("/u"), "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n").unwrap();
        let files = HashMap::from([(PathBuf::from("/u"), Arc::new(file))]);
        let auth = BasicAuth::with_files(files, None, 1);
        let challenge = Challenge { realm: "r".into(), user_file: "/u".into() };
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        let basic = |text: &str| {
            HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(text)
            ))
            .unwrap()
        };
        headers.insert(header::AUTHORIZATION, basic("bob:secret"));
        assert!(
            matches!(auth.authenticate(peer, &headers, &challenge).await, Outcome::User(u) if u == "bob")
        );
        headers.insert(header::AUTHORIZATION, basic("bob:wrong"));
        let Outcome::Refused { response, user } = auth.authenticate(peer, &headers, &challenge).await else {
            panic!("a wrong password passed");
        };
        assert_eq!((response.status(), user.as_deref()), (StatusCode::UNAUTHORIZED, Some("bob")));
        // The one check running for longer than a request may wait: 503, with Retry-After.
        let running = auth.running.clone().try_acquire_owned().unwrap();
        tokio::time::pause();
        let waited = tokio::time::Instant::now();
        let Outcome::Refused { response, .. } = auth.authenticate(peer, &headers, &challenge).await else {
            panic!("checked while the only check was taken");
        };
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let elapsed = waited.elapsed();
        assert!(
            elapsed >= MAX_CHECK_WAIT && elapsed < MAX_CHECK_WAIT + Duration::from_millis(10),
            "{elapsed:?}"
        );
        tokio::time::resume();
        drop(running);
        // Every admission taken: 503 at once, with Retry-After.
        let _all = auth.admitted.clone().try_acquire_many_owned(1 + QUEUED_PER_CHECK as u32).unwrap();
        let Outcome::Refused { response, .. } = auth.authenticate(peer, &headers, &challenge).await else {
            panic!("admitted past the cap");
        };
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    /// A check that waited for its turn while its source got blocked is not run: guesses sent
    /// all at once got the right password through after 9 to 39 wrong ones with a limit of 3.
    #[tokio::test]
    async fn a_check_queued_when_its_source_is_blocked_is_refused() {
        let file = UserFile::parse(Path::new("/u"), "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n").unwrap();
        let files = HashMap::from([(PathBuf::from("/u"), Arc::new(file))]);
        let rule = FailureBlock { failures: 3, window: Duration::from_secs(60) };
        let auth = BasicAuth::with_files(files, Some(rule), 1);
        let challenge = Challenge { realm: "r".into(), user_file: "/u".into() };
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        let credentials = base64::engine::general_purpose::STANDARD.encode("bob:secret");
        headers
            .insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {credentials}")).unwrap());
        // The only check place is taken, so the right password waits for it.
        let running = auth.running.clone().try_acquire_owned().unwrap();
        let queued = auth.authenticate(peer, &headers, &challenge);
        tokio::pin!(queued);
        assert!(futures_poll_once(&mut queued).await.is_none(), "it waits for its turn");
        // Meanwhile, the burst's other guesses fail and block the source.
        for _ in 0..3 {
            auth.failures.as_ref().unwrap().failed(Source::of(peer));
        }
        drop(running);
        let Outcome::Refused { response, user } = queued.await else {
            panic!("the right password passed a block that came while it waited");
        };
        assert_eq!((response.status(), user), (StatusCode::TOO_MANY_REQUESTS, None));
    }

    /// Polls a future once: its output if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(future: &mut F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut *future).poll(cx) {
                std::task::Poll::Ready(output) => Some(output),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
