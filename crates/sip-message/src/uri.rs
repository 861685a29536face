//! URIs: `sip` / `sips` (RFC 3261 §19.1, §25.1), `tel` (RFC 3966), and any
//! other scheme kept as an opaque absolute URI (RFC 3986 §4.3).
//!
//! Every type borrows from the text it was parsed from; nothing is copied.
//! `Display` writes the URI exactly as it was received.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::UriError;
use crate::params::Params;
use crate::scan::{eq_unescaped, escapes_valid};

/// A parsed URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uri<'a> {
    /// `sip:` or `sips:`.
    Sip(SipUri<'a>),
    /// `tel:` (RFC 3966).
    Tel(TelUri<'a>),
    /// Any other scheme, kept opaque (RFC 3261 §19: a UAS that does not
    /// support it answers 416).
    Other(AbsoluteUri<'a>),
}

impl<'a> Uri<'a> {
    /// Parses a URI. `s` must hold the URI alone, without surrounding `<>`
    /// or whitespace.
    pub fn parse(s: &'a str) -> Result<Uri<'a>, UriError> {
        let colon = s.find(':').ok_or(UriError::Scheme)?;
        let scheme = s.get(..colon).ok_or(UriError::Scheme)?;
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse(s).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            TelUri::parse(s).map(Uri::Tel)
        } else {
            AbsoluteUri::parse(s).map(Uri::Other)
        }
    }

    /// The URI as received.
    #[must_use]
    pub fn as_str(&self) -> &'a str {
        match self {
            Uri::Sip(u) => u.raw,
            Uri::Tel(u) => u.raw,
            Uri::Other(u) => u.raw,
        }
    }

    /// The scheme as received (e.g. `sip`, `SIPS`, `tel`, `mailto`).
    #[must_use]
    pub fn scheme(&self) -> &'a str {
        let raw = self.as_str();
        raw.split(':').next().unwrap_or(raw)
    }

    /// The SIP URI, if this is one.
    #[must_use]
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// Equality per RFC 3261 §19.1.4 for SIP URIs, RFC 3966 §4 for tel URIs,
    /// and exact text for other schemes (scheme case-insensitive).
    #[must_use]
    pub fn eq_rfc(&self, other: &Uri<'_>) -> bool {
        match (self, other) {
            (Uri::Sip(a), Uri::Sip(b)) => a.eq_rfc(b),
            (Uri::Tel(a), Uri::Tel(b)) => a.eq_rfc(b),
            (Uri::Other(a), Uri::Other(b)) => {
                a.scheme.eq_ignore_ascii_case(b.scheme) && a.rest == b.rest
            }
            _ => false,
        }
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The host part of a SIP URI or Via.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A domain name, as received.
    Domain(&'a str),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 reference (written in brackets on the wire, RFC 5118).
    Ipv6(Ipv6Addr),
}

impl<'a> Host<'a> {
    /// Parses a host: `[IPv6]`, dotted IPv4, or a domain name.
    pub fn parse(s: &'a str) -> Result<Host<'a>, UriError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(UriError::Host)?;
            return parse_ipv6(inner).map(Host::Ipv6).ok_or(UriError::Host);
        }
        if s.is_empty() {
            return Err(UriError::Host);
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return s.parse().map(Host::Ipv4).map_err(|_| UriError::Host);
        }
        // hostname = *( domainlabel "." ) toplabel [ "." ]; '_' tolerated as
        // it is met in the field (SRV-style names).
        let ok = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            && !s.starts_with('.')
            && !s.contains("..");
        if ok {
            Ok(Host::Domain(s))
        } else {
            Err(UriError::Host)
        }
    }

    /// Parses a host that may be a bare IPv6 address without brackets (the
    /// Via `received` parameter, RFC 5118 §4.5).
    pub fn parse_lenient(s: &'a str) -> Result<Host<'a>, UriError> {
        if s.contains(':') && !s.starts_with('[') {
            return parse_ipv6(s).map(Host::Ipv6).ok_or(UriError::Host);
        }
        Host::parse(s)
    }

    /// Equality: domains ASCII case-insensitive, addresses by value.
    #[must_use]
    pub fn eq_rfc(&self, other: &Host<'_>) -> bool {
        match (self, other) {
            (Host::Domain(a), Host::Domain(b)) => a.eq_ignore_ascii_case(b),
            (Host::Ipv4(a), Host::Ipv4(b)) => a == b,
            (Host::Ipv6(a), Host::Ipv6(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Parses an IPv6 address, also accepting the `:::` form that RFC 3261's
/// ABNF bug allowed before an embedded IPv4 address (RFC 5118 §4.10).
fn parse_ipv6(s: &str) -> Option<Ipv6Addr> {
    if let Ok(a) = s.parse() {
        return Some(a);
    }
    let at = s.find(":::")?;
    let mut buf = [0u8; 64];
    let (head, tail) = (s.get(..at)?, s.get(at + 1..)?);
    let len = head.len() + tail.len();
    buf.get_mut(..head.len())?.copy_from_slice(head.as_bytes());
    buf.get_mut(head.len()..len)?
        .copy_from_slice(tail.as_bytes());
    std::str::from_utf8(buf.get(..len)?).ok()?.parse().ok()
}

/// A `sip:` or `sips:` URI (RFC 3261 §19.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    raw: &'a str,
    secure: bool,
    user: Option<&'a str>,
    password: Option<&'a str>,
    host_text: &'a str,
    host: Host<'a>,
    port: Option<u16>,
    params: Params<'a>,
    headers: Option<&'a str>,
}

/// `unreserved` (§25.1): alphanum and `-_.!~*'()`.
const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

fn is_user_char(b: u8) -> bool {
    // user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
    is_unreserved(b)
        || matches!(
            b,
            b'%' | b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/'
        )
}

fn is_password_char(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'%' | b'&' | b'=' | b'+' | b'$' | b',')
}

fn is_param_char(b: u8) -> bool {
    // paramchar = param-unreserved / unreserved / escaped, plus '=' between
    // name and value; '[' ']' ':' for IPv6 maddr (param-unreserved).
    is_unreserved(b)
        || matches!(
            b,
            b'%' | b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$' | b'='
        )
}

fn is_header_char(b: u8) -> bool {
    // hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$"
    is_unreserved(b)
        || matches!(
            b,
            b'%' | b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'=' | b'&'
        )
}

impl<'a> SipUri<'a> {
    /// Parses a `sip:` or `sips:` URI.
    pub fn parse(s: &'a str) -> Result<SipUri<'a>, UriError> {
        let (secure, rest) = if let Some(r) = strip_prefix_ci(s, "sips:") {
            (true, r)
        } else if let Some(r) = strip_prefix_ci(s, "sip:") {
            (false, r)
        } else {
            return Err(UriError::Scheme);
        };
        // userinfo: an '@' may appear in no later part of the URI, so the
        // first '@' ends it. The user part may hold ';', '?' and ',' (§25.1
        // user-unreserved, RFC 4475 §3.1.1.9).
        let (user, password, hostpart) = match rest.find('@') {
            Some(at) => {
                let userinfo = rest.get(..at).unwrap_or("");
                let hostpart = rest.get(at + 1..).unwrap_or("");
                let (user, password) = match userinfo.find(':') {
                    Some(c) => (
                        userinfo.get(..c).unwrap_or(""),
                        Some(userinfo.get(c + 1..).unwrap_or("")),
                    ),
                    None => (userinfo, None),
                };
                if user.is_empty() || !user.bytes().all(is_user_char) || !escapes_valid(user) {
                    return Err(UriError::User);
                }
                if let Some(p) = password
                    && (!p.bytes().all(is_password_char) || !escapes_valid(p))
                {
                    return Err(UriError::User);
                }
                (Some(user), password, hostpart)
            }
            None => (None, None, rest),
        };
        // hostport
        let host_end = if hostpart.starts_with('[') {
            hostpart.find(']').map(|i| i + 1).ok_or(UriError::Host)?
        } else {
            hostpart.find([':', ';', '?']).unwrap_or(hostpart.len())
        };
        let host_text = hostpart.get(..host_end).ok_or(UriError::Host)?;
        let host = Host::parse(host_text)?;
        let mut tail = hostpart.get(host_end..).unwrap_or("");
        let mut port = None;
        if let Some(p) = tail.strip_prefix(':') {
            let end = p.find([';', '?']).unwrap_or(p.len());
            let digits = p.get(..end).unwrap_or("");
            if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(UriError::Port);
            }
            port = Some(digits.parse::<u16>().map_err(|_| UriError::Port)?);
            tail = p.get(end..).unwrap_or("");
        }
        let mut params = Params::empty();
        if let Some(p) = tail.strip_prefix(';') {
            let end = p.find('?').unwrap_or(p.len());
            let raw = p.get(..end).unwrap_or("");
            if !raw.bytes().all(|b| is_param_char(b) || b == b';') || !escapes_valid(raw) {
                return Err(UriError::Param);
            }
            params = Params::parse_uri(raw).map_err(|_| UriError::Param)?;
            tail = p.get(end..).unwrap_or("");
        }
        let mut headers = None;
        if let Some(h) = tail.strip_prefix('?') {
            if h.is_empty() || !h.bytes().all(is_header_char) || !escapes_valid(h) {
                return Err(UriError::Headers);
            }
            headers = Some(h);
            tail = "";
        }
        if !tail.is_empty() {
            return Err(UriError::Char);
        }
        Ok(SipUri {
            raw: s,
            secure,
            user,
            password,
            host_text,
            host,
            port,
            params,
            headers,
        })
    }

    /// The URI as received.
    #[must_use]
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// `true` for `sips:`.
    #[must_use]
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The user part, still escaped (decode with [`crate::unescape`]).
    #[must_use]
    pub fn user(&self) -> Option<&'a str> {
        self.user
    }

    /// The password, still escaped.
    #[must_use]
    pub fn password(&self) -> Option<&'a str> {
        self.password
    }

    /// The host.
    #[must_use]
    pub fn host(&self) -> Host<'a> {
        self.host
    }

    /// The host exactly as written (IPv6 with its brackets).
    #[must_use]
    pub fn host_str(&self) -> &'a str {
        self.host_text
    }

    /// The explicit port, if any (absent is not the same as 5060, §19.1.4).
    #[must_use]
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The URI parameters.
    #[must_use]
    pub fn params(&self) -> Params<'a> {
        self.params
    }

    /// The `?headers` part without the `?`, still escaped.
    #[must_use]
    pub fn headers(&self) -> Option<&'a str> {
        self.headers
    }

    /// The `transport` parameter.
    #[must_use]
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }

    /// Whether the `lr` parameter is present (loose routing, §16.12).
    #[must_use]
    pub fn lr(&self) -> bool {
        self.params.contains("lr")
    }

    /// The `maddr` parameter.
    #[must_use]
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    /// The `user` parameter (`phone`, `ip`, `dialstring`).
    #[must_use]
    pub fn user_param(&self) -> Option<&'a str> {
        self.params.get("user").flatten()
    }

    /// URI equality per RFC 3261 §19.1.4.
    #[must_use]
    pub fn eq_rfc(&self, other: &SipUri<'_>) -> bool {
        if self.secure != other.secure || self.port != other.port {
            return false;
        }
        // userinfo: case-sensitive, escapes decoded.
        match (self.user, other.user) {
            (None, None) => {}
            (Some(a), Some(b)) if eq_unescaped(a, b, false) => {}
            _ => return false,
        }
        match (self.password, other.password) {
            (None, None) => {}
            (Some(a), Some(b)) if eq_unescaped(a, b, false) => {}
            _ => return false,
        }
        if !self.host.eq_rfc(&other.host) {
            return false;
        }
        // Parameters: user, ttl, method, maddr and transport must match when
        // either side has them; others only when both have them.
        for (name, value) in self.params.iter() {
            match other.params.get_unescaped(name) {
                Some(v) if !eq_opt_unescaped(value, v) => return false,
                None if is_significant_uri_param(name) => return false,
                _ => {}
            }
        }
        for (name, _) in other.params.iter() {
            if is_significant_uri_param(name) && self.params.get_unescaped(name).is_none() {
                return false;
            }
        }
        // Headers: never ignored; every header on one side matches the other.
        match (self.headers, other.headers) {
            (None, None) => true,
            (Some(a), Some(b)) => headers_subset(a, b) && headers_subset(b, a),
            _ => false,
        }
    }
}

fn eq_opt_unescaped(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => eq_unescaped(a, b, true),
        _ => false,
    }
}

fn is_significant_uri_param(name: &str) -> bool {
    ["user", "ttl", "method", "maddr", "transport"]
        .iter()
        .any(|p| eq_unescaped(name, p, true))
}

fn headers_subset(a: &str, b: &str) -> bool {
    a.split('&').all(|ha| {
        let (na, va) = ha.split_once('=').unwrap_or((ha, ""));
        b.split('&').any(|hb| {
            let (nb, vb) = hb.split_once('=').unwrap_or((hb, ""));
            eq_unescaped(na, nb, true) && eq_unescaped(va, vb, false)
        })
    })
}

fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

impl fmt::Display for SipUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

/// A `tel:` URI (RFC 3966).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelUri<'a> {
    raw: &'a str,
    number: &'a str,
    params: Params<'a>,
}

impl<'a> TelUri<'a> {
    /// Parses a `tel:` URI: a global number (`+` and digits) or a local
    /// number with a `phone-context` parameter (RFC 3966 §5.1).
    pub fn parse(s: &'a str) -> Result<TelUri<'a>, UriError> {
        let rest = strip_prefix_ci(s, "tel:").ok_or(UriError::Scheme)?;
        let end = rest.find(';').unwrap_or(rest.len());
        let number = rest.get(..end).unwrap_or("");
        let params_raw = rest.get(end..).and_then(|p| p.strip_prefix(';'));
        let params = match params_raw {
            Some(p) => {
                if !p.bytes().all(|b| is_param_char(b) || b == b';') || !escapes_valid(p) {
                    return Err(UriError::Param);
                }
                Params::parse_uri(p).map_err(|_| UriError::Param)?
            }
            None => Params::empty(),
        };
        let visual = |b: u8| matches!(b, b'-' | b'.' | b'(' | b')');
        let valid = if let Some(global) = number.strip_prefix('+') {
            global.bytes().any(|b| b.is_ascii_digit())
                && global.bytes().all(|b| b.is_ascii_digit() || visual(b))
        } else {
            number
                .bytes()
                .any(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#')
                && number
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#' || visual(b))
                && params.contains("phone-context")
        };
        if !valid {
            return Err(UriError::TelNumber);
        }
        Ok(TelUri {
            raw: s,
            number,
            params,
        })
    }

    /// The number as written, visual separators included.
    #[must_use]
    pub fn number(&self) -> &'a str {
        self.number
    }

    /// Whether the number is global (`+` prefixed).
    #[must_use]
    pub fn is_global(&self) -> bool {
        self.number.starts_with('+')
    }

    /// The parameters.
    #[must_use]
    pub fn params(&self) -> Params<'a> {
        self.params
    }

    /// Digits of the number without visual separators.
    pub fn digits(&self) -> impl Iterator<Item = u8> + 'a {
        self.number
            .bytes()
            .filter(|b| !matches!(b, b'-' | b'.' | b'(' | b')'))
    }

    /// Equality per RFC 3966 §4: numbers without visual separators,
    /// parameters in any order (names and values case-insensitive).
    #[must_use]
    pub fn eq_rfc(&self, other: &TelUri<'_>) -> bool {
        if !self
            .digits()
            .map(|b| b.to_ascii_lowercase())
            .eq(other.digits().map(|b| b.to_ascii_lowercase()))
        {
            return false;
        }
        self.params.iter().count() == other.params.iter().count()
            && self.params.iter().all(|(n, v)| {
                other
                    .params
                    .get_unescaped(n)
                    .is_some_and(|w| eq_opt_unescaped(v, w))
            })
    }
}

impl fmt::Display for TelUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

/// A URI of a scheme this crate does not interpret, kept opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbsoluteUri<'a> {
    raw: &'a str,
    scheme: &'a str,
    rest: &'a str,
}

impl<'a> AbsoluteUri<'a> {
    /// Parses `scheme ":" rest` (RFC 3986 §3.1 scheme; the rest must be
    /// non-empty and hold no whitespace or control characters).
    pub fn parse(s: &'a str) -> Result<AbsoluteUri<'a>, UriError> {
        let (scheme, rest) = s.split_once(':').ok_or(UriError::Scheme)?;
        let mut sb = scheme.bytes();
        let scheme_ok = sb.next().is_some_and(|b| b.is_ascii_alphabetic())
            && sb.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_ok {
            return Err(UriError::Scheme);
        }
        if rest.is_empty()
            || rest
                .bytes()
                .any(|b| b <= b' ' || b == 0x7f || b == b'<' || b == b'>')
        {
            return Err(UriError::Char);
        }
        Ok(AbsoluteUri {
            raw: s,
            scheme,
            rest,
        })
    }

    /// The scheme.
    #[must_use]
    pub fn scheme(&self) -> &'a str {
        self.scheme
    }

    /// Everything after `scheme:`.
    #[must_use]
    pub fn rest(&self) -> &'a str {
        self.rest
    }
}

impl fmt::Display for AbsoluteUri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri<'_> {
        SipUri::parse(s).unwrap()
    }

    #[test]
    fn parses_all_parts() {
        let u = sip("sips:alice:secret@Example.COM:5061;transport=tcp;lr?subject=hi&x=y");
        assert!(u.is_secure());
        assert_eq!(u.user(), Some("alice"));
        assert_eq!(u.password(), Some("secret"));
        assert_eq!(u.host(), Host::Domain("Example.COM"));
        assert_eq!(u.port(), Some(5061));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.lr());
        assert_eq!(u.headers(), Some("subject=hi&x=y"));
    }

    #[test]
    fn user_part_may_hold_semicolons() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user(), Some("user;par=u%40example.net"));
        assert_eq!(u.host(), Host::Domain("example.com"));
    }

    #[test]
    fn ipv6_references() {
        let u = sip("sip:[2001:db8::10:5070]");
        assert_eq!(u.host(), Host::Ipv6("2001:db8::10:5070".parse().unwrap()));
        assert_eq!(u.port(), None);
        let u = sip("sip:[2001:db8::10]:5070");
        assert_eq!(u.port(), Some(5070));
        assert!(SipUri::parse("sip:2001:db8::10").is_err());
        assert_eq!(SipUri::parse("sip:host:db8::10"), Err(UriError::Port));
        let u = sip("sip:user@[2001:db8:::192.0.2.1]");
        assert_eq!(u.host(), Host::Ipv6("2001:db8::192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn rejects_bad_uris() {
        for bad in [
            "sip:",
            "sip:@host",
            "sip:user@",
            "sip:user@host:99999",
            "sip:user@host:",
            "sip:us er@host",
            "sip:user@ho st",
            "sip:user@host;a b",
            "sip:user@[::1",
            "sip:user@host?",
            "sip:user@host..com",
        ] {
            assert!(SipUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn comparison_rules_of_19_1_4() {
        let eq = |a: &str, b: &str| sip(a).eq_rfc(&sip(b));
        // The equal pairs of §19.1.4.
        assert!(eq(
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp"
        ));
        assert!(eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(eq(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(eq(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"
        ));
        assert!(eq(
            "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:alice@atlanta.com?priority=urgent&subject=project%20x"
        ));
        // The unequal pairs.
        assert!(!eq(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP"
        ));
        assert!(!eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
        assert!(!eq(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com;transport=udp"
        ));
        assert!(!eq(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com:6000;transport=tcp"
        ));
        assert!(!eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com?Subject=next%20meeting"
        ));
        assert!(!eq("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"));
        assert!(!eq(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;security=off"
        ));
        assert!(!eq("sips:a@b", "sip:a@b"));
    }

    #[test]
    fn tel_uris() {
        let t = TelUri::parse("tel:+1-201-555-0123").unwrap();
        assert!(t.is_global());
        assert!(t.eq_rfc(&TelUri::parse("tel:+12015550123").unwrap()));
        assert!(TelUri::parse("tel:7042;phone-context=example.com").is_ok());
        assert_eq!(TelUri::parse("tel:7042"), Err(UriError::TelNumber));
        assert_eq!(TelUri::parse("tel:+"), Err(UriError::TelNumber));
    }

    #[test]
    fn other_schemes_are_opaque() {
        let u = Uri::parse("mailto:alice@example.com").unwrap();
        assert!(matches!(u, Uri::Other(_)));
        assert_eq!(u.scheme(), "mailto");
        assert!(Uri::parse("9x:foo").is_err());
        assert!(Uri::parse("nocolon").is_err());
    }
}
