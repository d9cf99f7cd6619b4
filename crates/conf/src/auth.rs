//! `AuthUserFile`: the password files Apache's `htpasswd` tool writes, read and checked.
//!
//! One `user:hash` a line; blank lines and lines starting with `#` are skipped and the first
//! line for a user wins, as mod_authn_file reads them. The hashes weir reads are the ones
//! `htpasswd` writes and Apache checks: bcrypt (`-B`, `$2y$`), SHA-crypt (`-2` and `-5`, `$5$`
//! and `$6$`, also with `rounds=`), apr1-MD5 (`-m`, `$apr1$`) and SHA-1 (`-s`, `{SHA}`).
//! Traditional crypt(3) DES (`-d`) is refused: it reads only the first eight characters of a
//! password and falls to a brute force in hours. So are plain text (`-p`, which Apache on Unix
//! cannot check either) and glibc's MD5-crypt `$1$`, which htpasswd does not write.
//!
//! Read by `weir configtest` and by the edge before it drops its privileges, never by the
//! supervisor: the pool master it forks (and so every worker) would inherit the hashes.
//! Nothing here starts a thread; a bcrypt check costs milliseconds of CPU, so the edge runs
//! [`UserFile::check`] off its reactor.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Largest bcrypt cost accepted: `htpasswd -C` takes 4 to 17. One check at 17 takes seconds.
const MAX_BCRYPT_COST: u32 = 17;

/// SHA-crypt's rounds when a hash does not name them (`htpasswd -r`'s default too).
const SHA_CRYPT_ROUNDS: u32 = 5_000;

/// Most SHA-crypt rounds accepted: a second or so of CPU per check, as bcrypt's cost 17 costs
/// more; the algorithm allows a billion (minutes per check).
const MAX_SHA_CRYPT_ROUNDS: u32 = 2_000_000;

/// Why a password file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserFileError {
    /// The file is missing or cannot be read by the process reading it.
    #[error("AuthUserFile '{}' cannot be read: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    /// A line that is no `user:hash` weir can check.
    #[error("AuthUserFile '{}' line {line}: {reason}", path.display())]
    BadLine { path: PathBuf, line: usize, reason: String },
}

/// A password hash in one of the formats weir checks.
#[derive(Clone, PartialEq, Eq)]
enum Hash {
    /// `$2y$NN$…` (also `$2a$`, `$2b$`), kept whole for the bcrypt crate, with its cost.
    Bcrypt { text: String, cost: u32 },
    /// `$5$[rounds=N$]salt$hash` (SHA-256) or `$6$…` (SHA-512), kept whole for sha-crypt.
    ShaCrypt { text: String, sha512: bool, rounds: u32 },
    /// `$apr1$salt$hash`: the salt (at most 8 characters) and the 22-character hash.
    Apr1 { salt: String, hash: String },
    /// `{SHA}base64`: the SHA-1 digest of the password.
    Sha1([u8; 20]),
}

impl Hash {
    fn parse(text: &str) -> Result<Hash, String> {
        let remake = "make it again with htpasswd -B (bcrypt)";
        if let Some(rest) = text.strip_prefix("$apr1$") {
            let (salt, hash) = rest.split_once('$').ok_or("an apr1-MD5 hash without its salt")?;
            if salt.is_empty() || salt.len() > 8 || hash.len() != 22 || !hash.bytes().all(is_crypt64) {
                return Err("a malformed apr1-MD5 hash".to_string());
            }
            return Ok(Hash::Apr1 { salt: salt.to_string(), hash: hash.to_string() });
        }
        if let Some(encoded) = text.strip_prefix("{SHA}") {
            let digest = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
                .and_then(|bytes| <[u8; 20]>::try_from(bytes).ok())
                .ok_or("a malformed {SHA} hash (base64 of a 20-byte SHA-1 digest)")?;
            return Ok(Hash::Sha1(digest));
        }
        for prefix in ["$2y$", "$2a$", "$2b$"] {
            if let Some(rest) = text.strip_prefix(prefix) {
                let bad = || "a malformed bcrypt hash".to_string();
                let (cost, tail) = rest.split_once('$').ok_or_else(bad)?;
                let cost: u32 = cost.parse().map_err(|_| bad())?;
                if cost < 4 || tail.len() != 53 || !tail.bytes().all(is_crypt64) {
                    return Err(bad());
                }
                if cost > MAX_BCRYPT_COST {
                    return Err(format!(
                        "a bcrypt hash of cost {cost}, above the {MAX_BCRYPT_COST} htpasswd allows: one check would take minutes"
                    ));
                }
                return Ok(Hash::Bcrypt { text: text.to_string(), cost });
            }
        }
        if let Some(rest) = text.strip_prefix("$5$").or_else(|| text.strip_prefix("$6$")) {
            return sha_crypt(text, rest);
        }
        if text.starts_with("$1$") {
            return Err(format!("a $1$ (MD5-crypt) hash, which weir does not read; {remake}"));
        }
        if text.len() == 13 && text.bytes().all(is_crypt64) {
            return Err(format!(
                "a crypt(3) DES hash, which weir refuses: it checks only the first 8 characters of a password and falls to a brute force in hours; {remake}"
            ));
        }
        Err(format!(
            "not a password hash weir reads (bcrypt, apr1-MD5 or {{SHA}}): plain text is refused; {remake}"
        ))
    }

    /// Whether `password` matches. The comparisons take the same time wherever they differ.
    fn matches(&self, password: &[u8]) -> bool {
        match self {
            // The crate compares in constant time.
            Hash::Bcrypt { text, .. } => bcrypt::verify(password, text).unwrap_or(false),
            Hash::ShaCrypt { text, sha512, .. } => {
                // A password that is not UTF-8 cannot be checked by the crate: it matches nothing.
                let Ok(password) = std::str::from_utf8(password) else { return false };
                // The crate compares in constant time.
                match sha512 {
                    true => sha_crypt::sha512_check(password, text).is_ok(),
                    false => sha_crypt::sha256_check(password, text).is_ok(),
                }
            }
            Hash::Apr1 { salt, hash } => {
                apr1(password, salt.as_bytes()).as_bytes().ct_eq(hash.as_bytes()).into()
            }
            Hash::Sha1(digest) => Sha1::digest(password).as_slice().ct_eq(digest.as_slice()).into(),
        }
    }

    /// How much a check costs, to pick the costliest hash as the stand-in for unknown users.
    fn work(&self) -> u64 {
        match self {
            Hash::Bcrypt { cost, .. } => 1 << (*cost + 10),
            // About bcrypt's cost 5 at the default 5,000 rounds, as measured here.
            Hash::ShaCrypt { rounds, .. } => u64::from(*rounds) * 6,
            Hash::Apr1 { .. } => 1000,
            Hash::Sha1(_) => 1,
        }
    }
}

/// `$5$…` or `$6$…` (`rest` is what follows the prefix), checked for shape and rounds.
fn sha_crypt(text: &str, rest: &str) -> Result<Hash, String> {
    let sha512 = text.starts_with("$6$");
    let bad = || format!("a malformed {} SHA-crypt hash", &text[..3]);
    let (rounds, rest) = match rest.strip_prefix("rounds=") {
        Some(tail) => {
            let (rounds, rest) = tail.split_once('$').ok_or_else(bad)?;
            (rounds.parse::<u32>().map_err(|_| bad())?, rest)
        }
        None => (SHA_CRYPT_ROUNDS, rest),
    };
    let (salt, hash) = rest.split_once('$').ok_or_else(bad)?;
    let length = if sha512 { 86 } else { 43 };
    if salt.contains('$')
        || hash.len() != length
        || !hash.bytes().all(is_crypt64)
        || !(1000..=999_999_999).contains(&rounds)
    {
        return Err(bad());
    }
    if rounds > MAX_SHA_CRYPT_ROUNDS {
        return Err(format!(
            "a SHA-crypt hash of {rounds} rounds, above the {MAX_SHA_CRYPT_ROUNDS} weir checks: one check would take seconds"
        ));
    }
    Ok(Hash::ShaCrypt { text: text.to_string(), sha512, rounds })
}

/// The characters of crypt's base-64 alphabet (`./0-9A-Za-z`).
fn is_crypt64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'/'
}

/// One password file, read whole.
#[derive(Clone, PartialEq, Eq)]
pub struct UserFile {
    path: PathBuf,
    users: HashMap<String, Hash>,
    /// The costliest hash of the file: an unknown user's password is checked against it and
    /// the answer thrown away, so an unknown user takes as long as a wrong password and user
    /// names cannot be told apart by timing. (It holds for a file whose hashes all have one
    /// cost, which is what `htpasswd` with one option writes.)
    stand_in: Option<Hash>,
}

/// Never prints a hash.
impl fmt::Debug for UserFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserFile({}, {} users)", self.path.display(), self.users.len())
    }
}

impl UserFile {
    /// Reads and checks every line of the file at `path`.
    pub fn read(path: &Path) -> Result<UserFile, UserFileError> {
        let text = std::fs::read(path).map_err(|error| UserFileError::Unreadable {
            path: path.to_path_buf(),
            reason: error.to_string(),
        })?;
        Self::parse(path, &String::from_utf8_lossy(&text))
    }

    /// Reads a file's text as if from `path`; every bad line is reported, the first one here.
    pub fn parse(path: &Path, text: &str) -> Result<UserFile, UserFileError> {
        let mut users = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad =
                |reason: String| UserFileError::BadLine { path: path.to_path_buf(), line: index + 1, reason };
            let Some((user, rest)) = line.split_once(':') else {
                return Err(bad("no ':' between a user name and a password hash".to_string()));
            };
            if user.is_empty() {
                return Err(bad("an empty user name".to_string()));
            }
            // mod_authn_file reads the hash up to the next ':' (later fields are comments).
            let hash = rest.split(':').next().unwrap_or("");
            let hash = Hash::parse(hash).map_err(|reason| bad(format!("user '{user}' has {reason}")))?;
            users.entry(user.to_string()).or_insert(hash);
        }
        let stand_in = users.values().max_by_key(|hash| hash.work()).cloned();
        Ok(UserFile { path: path.to_path_buf(), users, stand_in })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many users the file names.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file names no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks a user's password: [`Check::Unknown`] for a user the file does not name, after
    /// as much work as a wrong password costs.
    pub fn check(&self, user: &str, password: &[u8]) -> Check {
        match self.users.get(user) {
            Some(hash) if hash.matches(password) => Check::Granted,
            Some(_) => Check::Mismatch,
            None => {
                if let Some(stand_in) = &self.stand_in {
                    std::hint::black_box(stand_in.matches(password));
                }
                Check::Unknown
            }
        }
    }
}

/// `AuthFailureBlock failures seconds` (weir): a source (an IPv4 address, an IPv6 /64) that
/// fails this many Basic password checks within `window` gets 429 for every request that needs
/// a password, for `window` from its last counted failure, without its passwords being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureBlock {
    pub failures: u32,
    pub window: std::time::Duration,
}

impl Default for FailureBlock {
    /// Ten failures within ten minutes block the source for ten minutes: room for a person
    /// mistyping (fail2ban's default allows five), and a guesser gets ten tries per ten minutes
    /// instead of as many as the CPU can check.
    fn default() -> Self {
        FailureBlock { failures: 10, window: std::time::Duration::from_secs(600) }
    }
}

impl FailureBlock {
    /// `AuthFailureBlock 10 600`, or `Off` (also `0`).
    pub fn parse(args: &[String]) -> Result<Option<FailureBlock>, crate::Problem> {
        let bad = |reason: &str| crate::Problem::BadValue {
            directive: "AuthFailureBlock",
            value: args.join(" "),
            reason: reason.to_string(),
        };
        match args {
            [off] if off.eq_ignore_ascii_case("off") || off == "0" => Ok(None),
            [failures, seconds] => {
                let failures: u32 =
                    failures.parse().map_err(|_| bad("expected a number of failures, then seconds"))?;
                let seconds: u64 =
                    seconds.parse().map_err(|_| bad("expected a number of failures, then seconds"))?;
                if failures == 0 {
                    return Ok(None);
                }
                if seconds == 0 || seconds > 86_400 {
                    return Err(bad("the window must be from 1 to 86400 seconds"));
                }
                Ok(Some(FailureBlock { failures, window: std::time::Duration::from_secs(seconds) }))
            }
            _ => Err(bad("expected failures and seconds, such as AuthFailureBlock 10 600, or Off")),
        }
    }
}

/// The outcome of a password check, in mod_auth_basic's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The password is the user's.
    Granted,
    /// The user exists and the password is not theirs (AH01617 Password Mismatch).
    Mismatch,
    /// No such user (AH01618 user not found).
    Unknown,
}

/// APR's apr1-MD5 (`apr_md5_encode` with the `$apr1$` magic): the 22 characters after the salt.
///
/// Written here because no maintained crate offers it (the crates that do pull in unmaintained
/// cryptography); it is the FreeBSD MD5-crypt of 1994 with another magic string, on top of the
/// md-5 crate. Checked against hashes the real `htpasswd -m` wrote (tests below).
fn apr1(password: &[u8], salt: &[u8]) -> String {
    const MAGIC: &[u8] = b"$apr1$";
    let mut alternate = Md5::new();
    alternate.update(password);
    alternate.update(salt);
    alternate.update(password);
    let alternate = alternate.finalize();
    let mut context = Md5::new();
    context.update(password);
    context.update(MAGIC);
    context.update(salt);
    let mut left = password.len();
    while left > 0 {
        let take = left.min(16);
        context.update(&alternate[..take]);
        left -= take;
    }
    let mut bits = password.len();
    while bits != 0 {
        if bits & 1 == 1 {
            context.update([0u8]);
        } else {
            context.update(&password[..1]);
        }
        bits >>= 1;
    }
    let mut digest = context.finalize();
    // A thousand rounds, to make each guess cost something (little, by today's measure).
    for round in 0..1000 {
        let mut next = Md5::new();
        if round & 1 == 1 {
            next.update(password);
        } else {
            next.update(digest);
        }
        if round % 3 != 0 {
            next.update(salt);
        }
        if round % 7 != 0 {
            next.update(password);
        }
        if round & 1 == 1 {
            next.update(digest);
        } else {
            next.update(password);
        }
        digest = next.finalize();
    }
    let d = digest;
    let mut out = String::with_capacity(22);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64(&mut out, (u32::from(d[a]) << 16) | (u32::from(d[b]) << 8) | u32::from(d[c]), 4);
    }
    to64(&mut out, u32::from(d[11]), 2);
    out
}

/// crypt's base-64: the low 6 bits first.
fn to64(out: &mut String, mut value: u32, count: usize) {
    const ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for _ in 0..count {
        out.push(char::from(ALPHABET[(value & 0x3f) as usize]));
        value >>= 6;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `htpasswd` 2.4 (apache2-utils): -m, -s, -B, -B -C 4, -2, -5, -5 -r 10000.
    const FILE: &str = "\
# made with htpasswd
apr:$apr1$HVxGTZmJ$M5ZuFcUrlcn4xCbZFRlFq0
sha:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=

bc:$2y$05$ipxKR8S7ovRGJDVbbYS9H.v/9sZ5bk/S/jC8kYYmL2SJBZIcM65h6
bc4:$2y$04$3SL8ak47xVKaNEOXX2wD/OAkQQ8LOy3v4NPvQKRgTRrtIoAZDUDxG
apr2:$apr1$/KjkDFtU$J5wl8EFyEujuMTBOw/len0
empty:$apr1$vVirgoq.$i9DhlaNYka6qTKWcBLKXv0
s2:$5$/XeQoIkgRdZTVhaa$8TllkrDQH8nknSXa8kZw07uRrJ9tAoEnc9vNz2zrMC9
s5:$6$TLpjWjSTfBCQ0.cp$R/O6SvdKLY1zWFfbtxxPLZRFySYx2.4R81tQRygJn49cLeiUAh.judi3CZpQZ9CoJ/Q58c7hph6e2Y4Eri9Sa/
s5r:$6$rounds=10000$KdJ14uK6fFuZ0Qk7$s7udxrCO729V1Wa6d1goGqp0SU/fdBng0WfneBQ7trvoEB8xlP5oYeYV7znraQP3z/JyIwcyyHORM7Kl4fcFz/
apr:{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk=
";

    fn file() -> UserFile {
        UserFile::parse(Path::new("/etc/weir/users"), FILE).unwrap()
    }

    #[test]
    fn every_format_htpasswd_writes_checks() {
        let users = file();
        assert_eq!(users.len(), 9);
        for user in ["apr", "sha", "bc", "s2", "s5", "s5r"] {
            assert_eq!(users.check(user, b"secret"), Check::Granted, "{user}");
            assert_eq!(users.check(user, b"Secret"), Check::Mismatch, "{user}");
            assert_eq!(users.check(user, b""), Check::Mismatch, "{user}");
        }
        assert_eq!(users.check("bc4", "pässwörd".as_bytes()), Check::Granted);
        assert_eq!(users.check("apr2", b"p:w x"), Check::Granted, "a colon and a space in a password");
        assert_eq!(users.check("empty", b""), Check::Granted);
        assert_eq!(users.check("apr", b""), Check::Mismatch, "the first line for a user wins");
        assert_eq!(users.check("nobody", b"secret"), Check::Unknown);
        assert_eq!(users.check("APR", b"secret"), Check::Unknown, "user names are case-sensitive");
    }

    #[test]
    fn an_unknown_user_costs_the_costliest_check_of_the_file() {
        let users = file();
        assert!(matches!(users.stand_in, Some(Hash::ShaCrypt { rounds: 10_000, .. })));
        let bcrypt = UserFile::parse(Path::new("u"), &FILE.replace("s5r:", "# s5r:")).unwrap();
        assert!(matches!(bcrypt.stand_in, Some(Hash::Bcrypt { cost: 5, .. })));
        let cheap = UserFile::parse(
            Path::new("u"),
            "a:{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk=\nb:$apr1$vVirgoq.$i9DhlaNYka6qTKWcBLKXv0\n",
        )
        .unwrap();
        assert!(matches!(cheap.stand_in, Some(Hash::Apr1 { .. })));
        assert!(UserFile::parse(Path::new("u"), "# nobody\n").unwrap().stand_in.is_none());
    }

    #[test]
    fn apr1_matches_htpasswd() {
        assert_eq!(apr1(b"secret", b"HVxGTZmJ"), "M5ZuFcUrlcn4xCbZFRlFq0");
        assert_eq!(apr1(b"p:w x", b"/KjkDFtU"), "J5wl8EFyEujuMTBOw/len0");
        assert_eq!(apr1(b"", b"vVirgoq."), "i9DhlaNYka6qTKWcBLKXv0");
    }

    #[test]
    fn the_empty_sha1_vector() {
        let users = UserFile::parse(Path::new("u"), "e:{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk=\n").unwrap();
        assert_eq!(users.check("e", b""), Check::Granted);
    }

    #[test]
    fn refused_lines_name_the_line_and_the_reason() {
        let error = |text: &str| UserFile::parse(Path::new("/etc/weir/users"), text).unwrap_err().to_string();
        let des = error("ok:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n\ndes:Ii7pJNhUe1wII\n");
        assert!(
            des.starts_with("AuthUserFile '/etc/weir/users' line 3: user 'des' has a crypt(3) DES hash"),
            "{des}"
        );
        assert!(des.contains("htpasswd -B"), "{des}");
        assert!(error("plain:secret\n").contains("plain text is refused"));
        assert!(error("s:$6$TLpjWjSTfBCQ0.cp$R/O6SvdKLY1zWFfbtxxPLZRFySYx2\n")
            .contains("malformed $6$ SHA-crypt"));
        assert!(error("m:$1$abcdefgh$0123456789012345678901\n").contains("$1$ (MD5-crypt)"));
        let slow = "s:$5$rounds=50000000$/XeQoIkgRdZTVhaa$8TllkrDQH8nknSXa8kZw07uRrJ9tAoEnc9vNz2zrMC9\n";
        assert!(error(slow).contains("50000000 rounds"), "{}", error(slow));
        assert!(error("nocolon\n").contains("line 1: no ':'"));
        assert!(error(":{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n").contains("empty user name"));
        assert!(error("a:{SHA}short\n").contains("malformed {SHA}"));
        assert!(error("a:$2y$05$short\n").contains("malformed bcrypt"));
        assert!(error("a:$2y$31$ipxKR8S7ovRGJDVbbYS9H.v/9sZ5bk/S/jC8kYYmL2SJBZIcM65h6\n").contains("cost 31"));
        let missing = UserFile::read(Path::new("/nonexistent/weir-users")).unwrap_err().to_string();
        assert!(missing.starts_with("AuthUserFile '/nonexistent/weir-users' cannot be read:"), "{missing}");
    }

    #[test]
    fn debug_shows_no_hash() {
        let text = format!("{:?}", file());
        assert!(!text.contains("$apr1$") && !text.contains("M5Zu"), "{text}");
    }
}
