//! Glue for [`sip_message::SipMessage`]: verify a parsed request, read the
//! challenges of a parsed response.

use std::time::SystemTime;

use sip_message::{HeaderName, SipMessage};

use crate::directory::UserDirectory;
use crate::server::{Authenticated, Authenticator, ChallengeKind, DigestRequest, Rejection};

fn credentials_header(kind: ChallengeKind) -> HeaderName {
    match kind {
        ChallengeKind::Www => HeaderName::Authorization,
        ChallengeKind::Proxy => HeaderName::ProxyAuthorization,
    }
}

fn challenge_header(kind: ChallengeKind) -> HeaderName {
    match kind {
        ChallengeKind::Www => HeaderName::WwwAuthenticate,
        ChallengeKind::Proxy => HeaderName::ProxyAuthenticate,
    }
}

impl Authenticator {
    /// [`Authenticator::verify`] for a parsed request: its method,
    /// Request-URI and every `Authorization` (`Www`) or
    /// `Proxy-Authorization` (`Proxy`) header. Header values that are not
    /// UTF-8 are skipped.
    ///
    /// # Errors
    /// A [`Rejection`]; [`Rejection::MissingParam`]`("request")` when `msg`
    /// is a response.
    pub fn verify_message<D: UserDirectory + ?Sized>(
        &self,
        now: SystemTime,
        msg: &SipMessage,
        kind: ChallengeKind,
        directory: &D,
    ) -> Result<Authenticated, Rejection> {
        let (Some(method), Some(uri)) = (msg.method(), msg.request_uri_str()) else {
            return Err(Rejection::MissingParam("request"));
        };
        let request = DigestRequest {
            method: method.as_str(),
            uri,
        };
        let values = msg.values(credentials_header(kind)).filter_map(Result::ok);
        self.verify(now, request, values, directory)
    }
}

/// The challenge values of a 401 (`Www`) or 407 (`Proxy`) response, for
/// [`DigestClient::answer`](crate::DigestClient::answer). Values that are
/// not UTF-8 are skipped.
pub fn challenges_of(msg: &SipMessage, kind: ChallengeKind) -> impl Iterator<Item = &str> {
    msg.values(challenge_header(kind)).filter_map(Result::ok)
}
