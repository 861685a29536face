//! The client side: [`DigestClient`] answers challenges for requests the
//! application sends (RFC 3261 §22.2, §22.3).

use std::fmt;

use crate::algorithm::{Algorithm, Ha1, ResponseQop, digest_response, format_nc};
use crate::parse::{Challenge, ParseError, parse_challenges, push_quoted};
use crate::server::{ChallengeKind, DigestRequest};

/// Why a challenge could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A challenge value did not parse.
    #[error("malformed challenge: {0}")]
    Malformed(#[from] ParseError),
    /// No Digest challenge (for the configured realm, if any).
    #[error("no digest challenge to answer")]
    NoDigestChallenge,
    /// Digest challenges, none with an algorithm this client computes.
    #[error("no supported algorithm offered")]
    UnsupportedAlgorithm,
    /// Digest challenges offering only `qop` values other than `auth`.
    #[error("no supported qop offered")]
    UnsupportedQop,
    /// The chosen challenge lacks `realm` or `nonce`.
    #[error("challenge lacks the {0} parameter")]
    MissingParam(&'static str),
    /// The nonce count wrapped around; a fresh challenge is needed.
    #[error("nonce count exhausted")]
    NonceCountExhausted,
}

/// An `Authorization` or `Proxy-Authorization` header to add to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// `Authorization` or `Proxy-Authorization`.
    pub header: &'static str,
    /// The credentials value.
    pub value: String,
}

#[derive(Clone)]
struct Answered {
    kind: ChallengeKind,
    realm: String,
    nonce: String,
    opaque: Option<String>,
    algorithm: Algorithm,
    qop_auth: bool,
    nc: u32,
}

/// Answers digest challenges with one username and password.
///
/// It remembers the last challenge answered so that later requests can
/// carry credentials up front ([`DigestClient::authorize`]) with an
/// increasing nonce count. Sans-IO: the client nonce comes from the caller.
///
/// A request that carried credentials and is challenged again without
/// `stale=true` had them refused; do not answer that challenge with the
/// same password (RFC 3261 §22.1). [`Challenge::stale`] tells.
#[derive(Clone)]
pub struct DigestClient {
    username: String,
    password: String,
    realm: Option<String>,
    last: Option<Answered>,
}

impl fmt::Debug for DigestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestClient")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

fn challenge_qop(c: &Challenge<'_>) -> Option<bool> {
    // Some(true): use qop=auth; Some(false): no qop offered (RFC 2069);
    // None: only qop values we do not support.
    let mut any = false;
    for q in c.qop_options() {
        any = true;
        if q.eq_ignore_ascii_case("auth") {
            return Some(true);
        }
    }
    if any { None } else { Some(false) }
}

impl DigestClient {
    /// A client with these credentials, answering challenges of any realm.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> DigestClient {
        DigestClient {
            username: username.into(),
            password: password.into(),
            realm: None,
            last: None,
        }
    }

    /// Answers only challenges of `realm`.
    #[must_use]
    pub fn for_realm(mut self, realm: impl Into<String>) -> DigestClient {
        self.realm = Some(realm.into());
        self
    }

    /// Answers the challenges of a 401 (`kind` = `Www`) or 407 (`Proxy`):
    /// every `WWW-Authenticate` / `Proxy-Authenticate` value of the
    /// response. Picks the strongest algorithm offered (SHA-256 over MD5;
    /// the first challenge among equals), uses `qop=auth` when offered
    /// (nc = 1 for a new nonce), and remembers the challenge.
    ///
    /// # Errors
    /// [`ClientError`] when nothing can be answered.
    pub fn answer<'h, I>(
        &mut self,
        kind: ChallengeKind,
        challenges: I,
        request: DigestRequest<'_>,
        cnonce: &str,
    ) -> Result<Authorization, ClientError>
    where
        I: IntoIterator<Item = &'h str>,
    {
        let mut seen_digest = false;
        let mut seen_alg = false;
        let mut best: Option<(Algorithm, bool, Challenge<'h>)> = None;
        for value in challenges {
            for c in parse_challenges(value)? {
                if !c.is_digest() {
                    continue;
                }
                if let (Some(want), Some(got)) = (&self.realm, c.realm())
                    && want != got
                {
                    continue;
                }
                seen_digest = true;
                let Some(alg) = Algorithm::from_token(c.algorithm().unwrap_or("MD5")) else {
                    continue;
                };
                seen_alg = true;
                let Some(qop_auth) = challenge_qop(&c) else {
                    continue;
                };
                if best
                    .as_ref()
                    .is_none_or(|(b, _, _)| alg.strength() > b.strength())
                {
                    best = Some((alg, qop_auth, c));
                }
            }
        }
        let Some((algorithm, qop_auth, chosen)) = best else {
            return Err(if !seen_digest {
                ClientError::NoDigestChallenge
            } else if !seen_alg {
                ClientError::UnsupportedAlgorithm
            } else {
                ClientError::UnsupportedQop
            });
        };
        let realm = chosen.realm().ok_or(ClientError::MissingParam("realm"))?;
        let nonce = chosen.nonce().ok_or(ClientError::MissingParam("nonce"))?;
        let state = Answered {
            kind,
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            opaque: chosen.opaque().map(str::to_owned),
            algorithm,
            qop_auth,
            nc: 0,
        };
        self.last = Some(state);
        self.authorize(request, cnonce)
    }

    /// Credentials for another request with the nonce of the last
    /// challenge answered, nc one higher (RFC 7616 §3.4). A proxy's
    /// challenge (407) may be reused only within the same Call-ID
    /// (RFC 3261 §22.3); a registrar's or UAS's (401) has no such limit. A server that finds the nonce expired
    /// answers with `stale=true`: answer that challenge again.
    ///
    /// # Errors
    /// [`ClientError::NoDigestChallenge`] before any challenge was answered;
    /// [`ClientError::NonceCountExhausted`] after 2^32 - 1 uses.
    pub fn authorize(
        &mut self,
        request: DigestRequest<'_>,
        cnonce: &str,
    ) -> Result<Authorization, ClientError> {
        let Some(last) = self.last.as_mut() else {
            return Err(ClientError::NoDigestChallenge);
        };
        last.nc = last
            .nc
            .checked_add(1)
            .ok_or(ClientError::NonceCountExhausted)?;
        let last = last.clone();
        Ok(self.build(&last, request, cnonce))
    }

    /// The challenge answered last: realm, algorithm, nonce count.
    #[must_use]
    pub fn current(&self) -> Option<(&str, Algorithm, u32)> {
        self.last
            .as_ref()
            .map(|a| (a.realm.as_str(), a.algorithm, a.nc))
    }

    /// Forgets the last challenge (e.g. after the server refused it).
    pub fn reset(&mut self) {
        self.last = None;
    }

    fn build(&self, a: &Answered, request: DigestRequest<'_>, cnonce: &str) -> Authorization {
        let ha1 = Ha1::compute(a.algorithm, &self.username, &a.realm, &self.password);
        let qop = if a.qop_auth {
            ResponseQop::Auth { cnonce, nc: a.nc }
        } else {
            ResponseQop::None
        };
        let response = digest_response(&ha1, &a.nonce, qop, request.method, request.uri);
        let mut v = String::from("Digest username=");
        push_quoted(&mut v, &self.username);
        v.push_str(", realm=");
        push_quoted(&mut v, &a.realm);
        v.push_str(", nonce=");
        push_quoted(&mut v, &a.nonce);
        v.push_str(", uri=");
        push_quoted(&mut v, request.uri);
        v.push_str(", response=\"");
        v.push_str(&response);
        v.push_str("\", algorithm=");
        v.push_str(a.algorithm.token());
        if let ResponseQop::Auth { cnonce, nc } = qop {
            v.push_str(", cnonce=");
            push_quoted(&mut v, cnonce);
            v.push_str(", qop=auth, nc=");
            v.push_str(&format_nc(nc));
        }
        if let Some(o) = &a.opaque {
            v.push_str(", opaque=");
            push_quoted(&mut v, o);
        }
        Authorization {
            header: a.kind.credentials_header(),
            value: v,
        }
    }
}
