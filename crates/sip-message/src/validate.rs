//! Validation, separate from framing: the message parsed; may a server act
//! on it? Each fault knows the status a server answers (RFC 3261 §8.2,
//! §16.3) and a reason phrase that names it.
//!
//! Two depths:
//! * [`Role::Forward`] checks what forwarding needs (Via, Call-ID, CSeq,
//!   Max-Forwards, Route, and of From and To their framing and tags, not
//!   their URIs), so a message with a malformed unrelated header or URI
//!   stays forwardable (RFC 3261 §16.3 step 1).
//! * [`Role::Uas`] also checks the Request-URI scheme (416) and every known
//!   header a UAS may interpret.

use std::fmt;

use crate::error::{HeaderError, HeaderErrorKind};
use crate::headers::{self as h, TypedHeader};
use crate::message::SipMessage;
use crate::name::HeaderName;
use crate::uri::Uri;

/// How deep to validate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A proxy or edge forwarding the message: routing headers only.
    Forward,
    /// A UAS (or registrar, or application) acting on the message.
    Uas,
}

/// Why a parsed message may not be acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The SIP-Version is not 2.0 (§8.2.1 ... answer 505).
    #[error("SIP version {0}.{1} not supported")]
    Version(u8, u8),
    /// A mandatory header is absent (§8.1.1).
    #[error("missing {0} header")]
    Missing(HeaderName),
    /// A header that may appear once appears more than once (RFC 4475 §3.3.8).
    #[error("more than one {0} header")]
    Repeated(HeaderName),
    /// A header value is malformed.
    #[error("{0}")]
    Header(HeaderError),
    /// The CSeq method differs from the request method (§8.1.1.5).
    #[error("CSeq method does not match the request method")]
    CSeqMethod,
    /// The Request-URI scheme is not one a UAS supports (§8.2.2.1 ... 416).
    #[error("unsupported URI scheme")]
    UriScheme,
    /// The Request-URI carries `?headers` (§19.1.5: not allowed in a
    /// Request-URI; RFC 4475 §3.1.2.11).
    #[error("Request-URI must not carry headers")]
    RequestUriHeaders,
}

impl ValidationError {
    /// The status code a server answers to a request with this fault.
    /// (A faulty response is discarded, §18.1.2.)
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            ValidationError::Version(..) => 505,
            ValidationError::UriScheme => 416,
            _ => 400,
        }
    }

    /// A reason phrase that names the fault, ready for a status line.
    #[must_use]
    pub fn reason_phrase(&self) -> String {
        match self {
            ValidationError::Version(..) => "Version Not Supported".to_owned(),
            ValidationError::UriScheme => "Unsupported URI Scheme".to_owned(),
            other => {
                let mut s = other.to_string();
                if let Some(first) = s.get_mut(..1) {
                    first.make_ascii_uppercase();
                }
                s
            }
        }
    }
}

/// Validates a parsed message for the given role.
pub fn validate(msg: &SipMessage, role: Role) -> Result<(), ValidationError> {
    if !msg.is_sip_2_0() {
        let (maj, min) = version_numbers(msg.version());
        return Err(ValidationError::Version(maj, min));
    }
    let bad = |e: HeaderError| ValidationError::Header(e);
    let mandatory = [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
        HeaderName::CSeq,
    ];
    for name in mandatory {
        if msg.header(name).is_none() {
            return Err(ValidationError::Missing(name));
        }
    }
    // Headers that may appear at most once (§20; RFC 4475 §3.3.8).
    if let Some(name) = msg.repeated_single_valued() {
        return Err(ValidationError::Repeated(name));
    }
    // A forwarder reads the top Via only (the ones below go on as they
    // came, §16.3 step 1); a UAS echoes them all in its responses.
    let checked = if role == Role::Forward { 1 } else { usize::MAX };
    for v in msg.typed_all::<h::Via<'_>>().take(checked) {
        v.map_err(bad)?;
    }
    // The identifiers are parsed once and cached on the message; only when
    // they fail are the headers parsed again, for the error that names the
    // fault.
    let cseq_method = match msg.cseq() {
        Some((_, method)) => method,
        None => {
            required::<h::From<'_>>(msg)?;
            required::<h::To<'_>>(msg)?;
            required::<h::CallId<'_>>(msg)?;
            required::<h::CSeq<'_>>(msg)?.method
        }
    };
    if let Some(mf) = msg.typed::<h::MaxForwards>() {
        mf.map_err(bad)?;
    }
    for r in msg.typed_all::<h::Route<'_>>() {
        r.map_err(bad)?;
    }
    if let Some(method) = msg.method()
        && cseq_method != method
    {
        return Err(ValidationError::CSeqMethod);
    }
    if role == Role::Forward {
        // §16.3 step 1: what forwarding reads must be well formed (of From
        // and To, the framing and the tag), the rest is passed on as it came.
        return Ok(());
    }
    check_addresses(msg)?;
    if let Some(uri) = msg.request_uri() {
        match uri {
            Uri::Sip(u) if u.headers().is_some() => return Err(ValidationError::RequestUriHeaders),
            Uri::Sip(_) | Uri::Tel(_) => {}
            Uri::Other(_) => return Err(ValidationError::UriScheme),
        }
    }
    for f in msg.headers() {
        let name = f.name();
        let value = f.value().map_err(bad)?;
        check_known(name, value).map_err(|k| bad(k.at(name)))?;
    }
    Ok(())
}

/// From and To parsed in full, URIs included: what [`Role::Uas`] checks
/// of them beyond [`Role::Forward`]. For a container whose stack validated
/// a request for forwarding and now hands it to an application.
///
/// # Errors
/// The first of the two that is missing or does not parse.
pub fn check_addresses(msg: &SipMessage) -> Result<(), ValidationError> {
    required::<h::From<'_>>(msg)?;
    required::<h::To<'_>>(msg)?;
    Ok(())
}

fn required<'m, H: TypedHeader<'m>>(msg: &'m SipMessage) -> Result<H, ValidationError> {
    match msg.typed::<H>() {
        None => Err(ValidationError::Missing(H::NAME)),
        Some(r) => r.map_err(ValidationError::Header),
    }
}

/// Parses every value of a known header line with its typed parser.
fn check_known(name: HeaderName, value: &str) -> Result<(), HeaderErrorKind> {
    fn all<'a, H: TypedHeader<'a>>(value: &'a str) -> Result<(), HeaderErrorKind> {
        if H::ALLOW_EMPTY && value.is_empty() {
            return Ok(());
        }
        if H::NAME.is_list() {
            for v in crate::scan::ListSplit::new(value) {
                if v.is_empty() {
                    return Err(HeaderErrorKind::EmptyElement);
                }
                H::parse(v)?;
            }
            Ok(())
        } else {
            H::parse(value).map(|_| ())
        }
    }
    match name {
        HeaderName::Contact => all::<h::Contact<'_>>(value),
        HeaderName::RecordRoute => all::<h::RecordRoute<'_>>(value),
        HeaderName::Path => all::<h::Path<'_>>(value),
        HeaderName::ContentType => all::<h::ContentType<'_>>(value),
        HeaderName::Expires => all::<h::Expires>(value),
        HeaderName::MinExpires => all::<h::MinExpires>(value),
        HeaderName::Allow => all::<h::Allow<'_>>(value),
        HeaderName::Supported => all::<h::Supported<'_>>(value),
        HeaderName::Require => all::<h::Require<'_>>(value),
        HeaderName::ProxyRequire => all::<h::ProxyRequire<'_>>(value),
        HeaderName::Unsupported => all::<h::Unsupported<'_>>(value),
        HeaderName::Authorization => all::<h::Authorization<'_>>(value),
        HeaderName::ProxyAuthorization => all::<h::ProxyAuthorization<'_>>(value),
        HeaderName::WwwAuthenticate => all::<h::WwwAuthenticate<'_>>(value),
        HeaderName::ProxyAuthenticate => all::<h::ProxyAuthenticate<'_>>(value),
        HeaderName::Event => all::<h::Event<'_>>(value),
        HeaderName::AllowEvents => all::<h::AllowEvents<'_>>(value),
        HeaderName::SubscriptionState => all::<h::SubscriptionState<'_>>(value),
        HeaderName::RSeq => all::<h::RSeq>(value),
        HeaderName::RAck => all::<h::RAck<'_>>(value),
        HeaderName::ReferTo => all::<h::ReferTo<'_>>(value),
        HeaderName::ReferredBy => all::<h::ReferredBy<'_>>(value),
        HeaderName::Replaces => all::<h::Replaces<'_>>(value),
        HeaderName::PAssertedIdentity => all::<h::PAssertedIdentity<'_>>(value),
        HeaderName::Reason => all::<h::Reason<'_>>(value),
        HeaderName::SessionExpires => all::<h::SessionExpires<'_>>(value),
        HeaderName::MinSe => all::<h::MinSe>(value),
        HeaderName::RetryAfter => all::<h::RetryAfter<'_>>(value),
        HeaderName::Date => all::<h::Date>(value),
        HeaderName::Timestamp => all::<h::Timestamp<'_>>(value),
        _ => Ok(()),
    }
}

fn version_numbers(v: &str) -> (u8, u8) {
    let num = v.get(4..).unwrap_or("");
    let (a, b) = num.split_once('.').unwrap_or((num, ""));
    (a.parse().unwrap_or(u8::MAX), b.parse().unwrap_or(u8::MAX))
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Forward => "forward",
            Role::Uas => "uas",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(s: &str) -> SipMessage {
        SipMessage::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    const BASE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n\
        To: <sip:bob@example.com>\r\n\
        From: <sip:alice@example.com>;tag=1\r\n\
        Call-ID: c1\r\n\
        CSeq: 1 INVITE\r\n\
        Max-Forwards: 70\r\n";

    #[test]
    fn every_repeated_single_valued_header_is_named_in_order() {
        // Each one repeated alone, in its long or compact form (`f`, `t`,
        // `i`, `c`: compact names count as the same header).
        let extra = [
            (HeaderName::From, "f: <sip:carol@example.com>;tag=2"),
            (HeaderName::To, "t: <sip:dave@example.com>"),
            (HeaderName::CallId, "i: c2"),
            (HeaderName::CSeq, "CSeq: 2 INVITE"),
            (HeaderName::MaxForwards, "Max-Forwards: 69"),
            (HeaderName::ContentType, "c: application/sdp"),
        ];
        for (name, line) in extra {
            let once = if name == HeaderName::ContentType {
                "Content-Type: application/sdp\r\n"
            } else {
                ""
            };
            let m = msg(&format!("{BASE}{once}{line}\r\n\r\n"));
            assert_eq!(m.count(name), 2, "{line}");
            assert_eq!(m.repeated_single_valued(), Some(name), "{line}");
            assert_eq!(
                validate(&m, Role::Forward),
                Err(ValidationError::Repeated(name))
            );
        }
        // Several repeated: the first in From, To, Call-ID, CSeq,
        // Max-Forwards, Content-Type order, whatever the order on the wire.
        let m = msg(&format!("{BASE}Max-Forwards: 1\r\nTo: <sip:x@y>\r\n\r\n"));
        assert_eq!(m.repeated_single_valued(), Some(HeaderName::To));
        let m = msg(&format!("{BASE}Content-Length: 0\r\n\r\n"));
        assert_eq!(m.repeated_single_valued(), None);
    }

    #[test]
    fn a_sound_request_passes_both_roles() {
        let m = msg(&format!("{BASE}Content-Length: 0\r\n\r\n"));
        assert_eq!(validate(&m, Role::Forward), Ok(()));
        assert_eq!(validate(&m, Role::Uas), Ok(()));
    }

    #[test]
    fn unrelated_bad_header_is_forwardable_but_not_acceptable() {
        let m = msg(&format!(
            "{BASE}Date: yesterday\r\nContent-Length: 0\r\n\r\n"
        ));
        assert_eq!(validate(&m, Role::Forward), Ok(()));
        let e = validate(&m, Role::Uas).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.reason_phrase(),
            "Bad Date header: not an RFC 1123 date in GMT"
        );
    }

    #[test]
    fn faults_and_their_statuses() {
        let m = msg("INVITE sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n");
        let e = validate(&m, Role::Forward).unwrap_err();
        assert_eq!(
            (e.status(), e.reason_phrase().as_str()),
            (400, "Missing Via header")
        );
        let m = msg(&format!("{BASE}CSeq: 2 INVITE\r\n\r\n"));
        assert_eq!(
            validate(&m, Role::Forward),
            Err(ValidationError::Repeated(HeaderName::CSeq))
        );
        let m = msg(&format!("{}\r\n", BASE.replace("1 INVITE", "1 ACK")));
        assert_eq!(
            validate(&m, Role::Forward),
            Err(ValidationError::CSeqMethod)
        );
        let m = msg(&format!(
            "{}\r\n",
            BASE.replace("SIP/2.0\r\n", "SIP/7.0\r\n")
        ));
        assert_eq!(validate(&m, Role::Forward).unwrap_err().status(), 505);
        let m = msg(&format!(
            "{}\r\n",
            BASE.replace("sip:bob@example.com SIP", "mailto:bob@example.com SIP")
        ));
        assert_eq!(validate(&m, Role::Forward), Ok(()));
        assert_eq!(validate(&m, Role::Uas).unwrap_err().status(), 416);
    }
}
