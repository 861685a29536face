//! The server side: [`Authenticator`] issues challenges (RFC 3261 §22.2,
//! §22.3) and verifies credentials against a [`UserDirectory`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::algorithm::{Algorithm, Ha1, ResponseQop, ct_eq, digest_response};
use crate::directory::UserDirectory;
use crate::nonce::NonceKey;
use crate::parse::{Credentials, ParseError, parse_credentials, push_quoted};

/// Shortest secret accepted for the nonce MAC, in bytes.
pub const MIN_SECRET_LEN: usize = 16;
/// Nonce lifetime when none is configured.
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// How far in the future a nonce's timestamp may be (clock skew between the
/// containers of a cluster) when none is configured.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(30);

/// Who challenges: a user agent server or registrar (401) or a proxy (407).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// 401 Unauthorized with `WWW-Authenticate`; answered in `Authorization`.
    Www,
    /// 407 Proxy Authentication Required with `Proxy-Authenticate`;
    /// answered in `Proxy-Authorization`.
    Proxy,
}

impl ChallengeKind {
    /// The status code of the challenge response.
    #[must_use]
    pub fn status(self) -> u16 {
        match self {
            ChallengeKind::Www => 401,
            ChallengeKind::Proxy => 407,
        }
    }

    /// The header carrying the challenge.
    #[must_use]
    pub fn challenge_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "WWW-Authenticate",
            ChallengeKind::Proxy => "Proxy-Authenticate",
        }
    }

    /// The header carrying the credentials.
    #[must_use]
    pub fn credentials_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "Authorization",
            ChallengeKind::Proxy => "Proxy-Authorization",
        }
    }
}

/// What to answer to credentials with a wrong password or an unknown user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadCredentialsPolicy {
    /// Challenge again with a fresh nonce (the default): a UA can ask its
    /// user for another password, and a wrong password looks the same as an
    /// unknown user. A UAC does not resend credentials that were just
    /// refused (RFC 3261 §22.1), so this does not loop.
    #[default]
    Rechallenge,
    /// Answer 403 Forbidden.
    Forbid,
}

/// A problem with the authenticator's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The nonce secret is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("nonce secret must be at least {MIN_SECRET_LEN} bytes, got {0}")]
    SecretTooShort(usize),
    /// No algorithm to offer.
    #[error("at least one digest algorithm must be offered")]
    NoAlgorithms,
    /// The realm is empty or holds a control character.
    #[error("realm must be non-empty and free of control characters")]
    BadRealm,
    /// A zero nonce lifetime.
    #[error("nonce lifetime must be positive")]
    ZeroLifetime,
}

/// The request being authenticated: what the digest covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestRequest<'a> {
    /// The method, e.g. `REGISTER` (for ACK and CANCEL, see RFC 3261 §22.1).
    pub method: &'a str,
    /// The Request-URI as sent (the digest `uri`).
    pub uri: &'a str,
}

/// A successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The authenticated username.
    pub username: String,
    /// The algorithm used.
    pub algorithm: Algorithm,
    /// The nonce answered; with `nc`, what a replay cache would key on.
    pub nonce: String,
    /// When the nonce was issued.
    pub nonce_issued: SystemTime,
    /// `nc` when `qop=auth` was used.
    pub nc: Option<u32>,
}

/// Why a request was not authenticated. [`Rejection::action`] says what to
/// answer; [`Authenticator::reply`] builds it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// No Digest credentials at all.
    #[error("no credentials")]
    Missing,
    /// Digest credentials only for other realms (RFC 3261 §22.3).
    #[error("credentials for another realm: {0:?}")]
    OtherRealm(String),
    /// Credentials that do not parse (peer error).
    #[error("malformed credentials: {0}")]
    Malformed(#[from] ParseError),
    /// A required parameter is missing (peer error).
    #[error("credentials lack the {0} parameter")]
    MissingParam(&'static str),
    /// `nc` is not 8 hex digits (peer error).
    #[error("nc is not 8 hex digits")]
    BadNonceCount,
    /// The digest `uri` differs from the Request-URI (RFC 2617 §3.2.2.5).
    #[error("digest uri does not match the Request-URI")]
    UriMismatch,
    /// An algorithm this authenticator does not offer.
    #[error("algorithm not offered: {0:?}")]
    UnsupportedAlgorithm(String),
    /// A `qop` other than `auth` (e.g. `auth-int`, never offered).
    #[error("qop not offered: {0:?}")]
    UnsupportedQop(String),
    /// No `qop` while the authenticator requires `qop=auth`.
    #[error("qop=auth is required")]
    QopRequired,
    /// `userhash=true` (RFC 7616 §3.4.4), never offered.
    #[error("userhash is not supported")]
    UserhashUnsupported,
    /// A nonce this cluster did not issue for this realm (forged, tampered,
    /// from another realm, or from the future beyond the allowed skew).
    #[error("invalid nonce")]
    InvalidNonce,
    /// Right password, expired nonce: challenge with `stale=true`
    /// (RFC 7616 §3.3).
    #[error("stale nonce")]
    Stale,
    /// Wrong password, or a user unknown for this algorithm.
    #[error("bad credentials for user {username:?}")]
    BadCredentials {
        /// The username the peer sent.
        username: String,
    },
}

/// What to answer to a [`Rejection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// 401 or 407 with challenges; `stale=true` when `stale`.
    Challenge {
        /// Whether to set `stale=true`.
        stale: bool,
    },
    /// 403 Forbidden.
    Forbidden,
    /// 400 Bad Request.
    BadRequest,
}

impl Rejection {
    /// What to answer, under a bad-credentials policy.
    #[must_use]
    pub fn action(&self, policy: BadCredentialsPolicy) -> Action {
        match self {
            Rejection::Malformed(_)
            | Rejection::MissingParam(_)
            | Rejection::BadNonceCount
            | Rejection::UriMismatch => Action::BadRequest,
            Rejection::Stale => Action::Challenge { stale: true },
            Rejection::BadCredentials { .. } => match policy {
                BadCredentialsPolicy::Rechallenge => Action::Challenge { stale: false },
                BadCredentialsPolicy::Forbid => Action::Forbidden,
            },
            Rejection::Missing
            | Rejection::OtherRealm(_)
            | Rejection::UnsupportedAlgorithm(_)
            | Rejection::UnsupportedQop(_)
            | Rejection::QopRequired
            | Rejection::UserhashUnsupported
            | Rejection::InvalidNonce => Action::Challenge { stale: false },
        }
    }
}

/// A response to send: a status and the headers to add to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// 400, 401, 403 or 407.
    pub status: u16,
    /// Header name and value pairs, in order: one `WWW-Authenticate` or
    /// `Proxy-Authenticate` per offered algorithm, strongest first
    /// (RFC 8760 §2.4). Empty for 400 and 403.
    pub headers: Vec<(&'static str, String)>,
}

/// Digest authentication for one realm, with stateless nonces.
///
/// Sans-IO: the caller passes the time (`now`, wall clock, so that the
/// containers of a cluster agree) and random bytes (`salt`). Cheap to clone
/// and share.
#[derive(Clone)]
pub struct Authenticator {
    realm: String,
    key: NonceKey,
    lifetime: Duration,
    max_skew: Duration,
    algorithms: Vec<Algorithm>,
    qop_required: bool,
    check_uri: bool,
    bad_credentials: BadCredentialsPolicy,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("realm", &self.realm)
            .field("key", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .field("max_skew", &self.max_skew)
            .field("algorithms", &self.algorithms)
            .field("qop_required", &self.qop_required)
            .field("check_uri", &self.check_uri)
            .field("bad_credentials", &self.bad_credentials)
            .finish()
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Authenticator {
    /// An authenticator for `realm` whose nonces are keyed with `secret`.
    /// Every container of a cluster must use the same realm and secret.
    /// Defaults: SHA-256 and MD5 offered, nonce lifetime
    /// [`DEFAULT_NONCE_LIFETIME`], clock skew [`DEFAULT_MAX_CLOCK_SKEW`],
    /// `qop` optional (RFC 2069 clients accepted), digest uri checked,
    /// [`BadCredentialsPolicy::Rechallenge`].
    ///
    /// # Errors
    /// [`ConfigError::SecretTooShort`], [`ConfigError::BadRealm`].
    pub fn new(realm: impl Into<String>, secret: &[u8]) -> Result<Authenticator, ConfigError> {
        let realm = realm.into();
        if realm.is_empty() || realm.chars().any(char::is_control) {
            return Err(ConfigError::BadRealm);
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::SecretTooShort(secret.len()));
        }
        let key = NonceKey::new(secret).ok_or(ConfigError::SecretTooShort(secret.len()))?;
        Ok(Authenticator {
            realm,
            key,
            lifetime: DEFAULT_NONCE_LIFETIME,
            max_skew: DEFAULT_MAX_CLOCK_SKEW,
            algorithms: Algorithm::STRONGEST_FIRST.to_vec(),
            qop_required: false,
            check_uri: true,
            bad_credentials: BadCredentialsPolicy::default(),
        })
    }

    /// Sets how long a nonce is accepted after it was issued.
    ///
    /// # Errors
    /// [`ConfigError::ZeroLifetime`].
    pub fn with_nonce_lifetime(mut self, lifetime: Duration) -> Result<Self, ConfigError> {
        if lifetime.is_zero() {
            return Err(ConfigError::ZeroLifetime);
        }
        self.lifetime = lifetime;
        Ok(self)
    }

    /// Sets how far in the future a nonce timestamp may be.
    #[must_use]
    pub fn with_max_clock_skew(mut self, skew: Duration) -> Self {
        self.max_skew = skew;
        self
    }

    /// Sets the algorithms offered; they are challenged strongest first
    /// whatever the order given, duplicates dropped.
    ///
    /// # Errors
    /// [`ConfigError::NoAlgorithms`] for an empty list.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Result<Self, ConfigError> {
        let mut algs = algorithms.to_vec();
        algs.sort_by_key(|a| std::cmp::Reverse(a.strength()));
        algs.dedup();
        if algs.is_empty() {
            return Err(ConfigError::NoAlgorithms);
        }
        self.algorithms = algs;
        Ok(self)
    }

    /// Requires `qop=auth` (refuses RFC 2069 style credentials).
    #[must_use]
    pub fn with_qop_required(mut self, required: bool) -> Self {
        self.qop_required = required;
        self
    }

    /// Whether to compare the digest `uri` with the Request-URI (default
    /// true). Turn off only behind something that rewrites Request-URIs.
    #[must_use]
    pub fn with_uri_check(mut self, check: bool) -> Self {
        self.check_uri = check;
        self
    }

    /// Sets what to answer to a wrong password or unknown user.
    #[must_use]
    pub fn with_bad_credentials_policy(mut self, policy: BadCredentialsPolicy) -> Self {
        self.bad_credentials = policy;
        self
    }

    /// The realm.
    #[must_use]
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The algorithms offered, strongest first.
    #[must_use]
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The bad-credentials policy.
    #[must_use]
    pub fn bad_credentials_policy(&self) -> BadCredentialsPolicy {
        self.bad_credentials
    }

    /// A fresh nonce issued at `now`.
    #[must_use]
    pub fn nonce(&self, now: SystemTime, salt: [u8; 8]) -> String {
        self.key.issue(&self.realm, unix_secs(now), salt)
    }

    /// The challenge header values, one per offered algorithm, strongest
    /// first, all carrying the same fresh nonce (RFC 8760 §2.4).
    #[must_use]
    pub fn challenge_values(&self, now: SystemTime, salt: [u8; 8], stale: bool) -> Vec<String> {
        let nonce = self.nonce(now, salt);
        self.algorithms
            .iter()
            .map(|alg| {
                let mut v = String::from("Digest realm=");
                push_quoted(&mut v, &self.realm);
                v.push_str(", nonce=\"");
                v.push_str(&nonce);
                v.push_str("\", algorithm=");
                v.push_str(alg.token());
                v.push_str(", qop=\"auth\"");
                if stale {
                    v.push_str(", stale=true");
                }
                v
            })
            .collect()
    }

    /// A 401 (`Www`) or 407 (`Proxy`) challenge.
    #[must_use]
    pub fn challenge(&self, now: SystemTime, salt: [u8; 8], kind: ChallengeKind) -> Reply {
        self.challenge_reply(now, salt, kind, false)
    }

    fn challenge_reply(
        &self,
        now: SystemTime,
        salt: [u8; 8],
        kind: ChallengeKind,
        stale: bool,
    ) -> Reply {
        Reply {
            status: kind.status(),
            headers: self
                .challenge_values(now, salt, stale)
                .into_iter()
                .map(|v| (kind.challenge_header(), v))
                .collect(),
        }
    }

    /// The response to a rejection: a challenge (stale or not), 403 or 400.
    #[must_use]
    pub fn reply(
        &self,
        rejection: &Rejection,
        now: SystemTime,
        salt: [u8; 8],
        kind: ChallengeKind,
    ) -> Reply {
        match rejection.action(self.bad_credentials) {
            Action::Challenge { stale } => self.challenge_reply(now, salt, kind, stale),
            Action::Forbidden => Reply {
                status: 403,
                headers: Vec::new(),
            },
            Action::BadRequest => Reply {
                status: 400,
                headers: Vec::new(),
            },
        }
    }

    /// Verifies the credentials of a request: every `Authorization` (or
    /// `Proxy-Authorization`) value it carries. Credentials for other
    /// realms are skipped (RFC 3261 §22.3); the first for this realm is
    /// checked.
    ///
    /// # Errors
    /// A [`Rejection`] saying why; [`Authenticator::reply`] turns it into a
    /// response.
    pub fn verify<'h, I, D>(
        &self,
        now: SystemTime,
        request: DigestRequest<'_>,
        credentials: I,
        directory: &D,
    ) -> Result<Authenticated, Rejection>
    where
        I: IntoIterator<Item = &'h str>,
        D: UserDirectory + ?Sized,
    {
        let mut first_error: Option<ParseError> = None;
        let mut no_realm = false;
        let mut other_realm: Option<String> = None;
        let mut ours: Option<Credentials<'h>> = None;
        for value in credentials {
            match parse_credentials(value) {
                Ok(c) if c.is_digest() => match c.realm() {
                    Some(r) if r == self.realm => {
                        ours = Some(c);
                        break;
                    }
                    Some(r) => {
                        other_realm.get_or_insert_with(|| r.to_owned());
                    }
                    None => no_realm = true,
                },
                Ok(_) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let Some(creds) = ours else {
            return Err(match (first_error, no_realm, other_realm) {
                (Some(e), _, _) => Rejection::Malformed(e),
                (None, true, _) => Rejection::MissingParam("realm"),
                (None, false, Some(r)) => Rejection::OtherRealm(r),
                (None, false, None) => Rejection::Missing,
            });
        };
        self.check(now, request, &creds, directory)
    }

    fn check<D: UserDirectory + ?Sized>(
        &self,
        now: SystemTime,
        request: DigestRequest<'_>,
        creds: &Credentials<'_>,
        directory: &D,
    ) -> Result<Authenticated, Rejection> {
        let username = creds
            .username()
            .ok_or(Rejection::MissingParam("username"))?;
        let nonce = creds.nonce().ok_or(Rejection::MissingParam("nonce"))?;
        let uri = creds.uri().ok_or(Rejection::MissingParam("uri"))?;
        let response = creds
            .response()
            .ok_or(Rejection::MissingParam("response"))?;
        // RFC 7616 §3.4: algorithm absent means MD5.
        let alg_token = creds.algorithm().unwrap_or("MD5");
        let algorithm = Algorithm::from_token(alg_token)
            .filter(|a| self.algorithms.contains(a))
            .ok_or_else(|| Rejection::UnsupportedAlgorithm(alg_token.to_owned()))?;
        if creds
            .params
            .get("userhash")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Err(Rejection::UserhashUnsupported);
        }
        let qop = match creds.qop() {
            None if self.qop_required => return Err(Rejection::QopRequired),
            None => ResponseQop::None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let cnonce = creds.cnonce().ok_or(Rejection::MissingParam("cnonce"))?;
                if cnonce.is_empty() {
                    return Err(Rejection::MissingParam("cnonce"));
                }
                let nc = creds.nc().ok_or(Rejection::MissingParam("nc"))?;
                ResponseQop::Auth {
                    cnonce,
                    nc: parse_nc(nc).ok_or(Rejection::BadNonceCount)?,
                }
            }
            Some(q) => return Err(Rejection::UnsupportedQop(q.to_owned())),
        };
        // RFC 2617 §3.2.2.5: the digest-uri must name the Request-URI.
        if self.check_uri && uri != request.uri {
            return Err(Rejection::UriMismatch);
        }
        let issued = self
            .key
            .check(&self.realm, nonce)
            .map_err(|_| Rejection::InvalidNonce)?;
        let now_secs = unix_secs(now);
        if issued > now_secs.saturating_add(self.max_skew.as_secs()) {
            return Err(Rejection::InvalidNonce);
        }
        let bad = || Rejection::BadCredentials {
            username: username.to_owned(),
        };
        let ha1 = directory
            .ha1(username, &self.realm, algorithm)
            .filter(|h| h.algorithm() == algorithm)
            .ok_or_else(bad)?;
        let expected = digest_response(&ha1, nonce, qop, request.method, uri);
        if !ct_eq(
            expected.as_bytes(),
            response.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(bad());
        }
        // RFC 7616 §3.3: a valid digest with an expired nonce is stale.
        if now_secs.saturating_sub(issued) > self.lifetime.as_secs() {
            return Err(Rejection::Stale);
        }
        Ok(Authenticated {
            username: username.to_owned(),
            algorithm,
            nonce: nonce.to_owned(),
            nonce_issued: UNIX_EPOCH + Duration::from_secs(issued),
            nc: match qop {
                ResponseQop::Auth { nc, .. } => Some(nc),
                ResponseQop::None => None,
            },
        })
    }
}

/// `nc`: exactly 8 hex digits (RFC 7616 §3.4).
fn parse_nc(nc: &str) -> Option<u32> {
    if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(nc, 16).ok()
}

/// Checks a digest response against a known HA1, without any nonce policy:
/// for tests and for callers with their own nonces. `false` on anything
/// missing or malformed.
#[must_use]
pub fn response_matches(credentials: &Credentials<'_>, method: &str, ha1: &Ha1) -> bool {
    let (Some(nonce), Some(uri), Some(response)) = (
        credentials.nonce(),
        credentials.uri(),
        credentials.response(),
    ) else {
        return false;
    };
    let qop = match credentials.qop() {
        None => ResponseQop::None,
        Some(q) if q.eq_ignore_ascii_case("auth") => {
            match (credentials.cnonce(), credentials.nc().and_then(parse_nc)) {
                (Some(cnonce), Some(nc)) => ResponseQop::Auth { cnonce, nc },
                _ => return false,
            }
        }
        Some(_) => return false,
    };
    let expected = digest_response(ha1, nonce, qop, method, uri);
    ct_eq(
        expected.as_bytes(),
        response.to_ascii_lowercase().as_bytes(),
    )
}
