//! URIs: `sip` / `sips` (RFC 3261 §19.1, §25.1), `tel` (RFC 3966), and any
//! other scheme kept as an opaque absolute URI (RFC 3986 §4.3).
//!
//! Every type borrows from the text it was parsed from; nothing is copied.
//! `Display` writes the URI exactly as it was received.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::UriError;
use crate::params::Params;
use crate::scan::eq_unescaped;

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
        let b = s.as_bytes();
        match b.first() {
            None | Some(b'.') => return Err(UriError::Host),
            Some(b'[') => {
                let inner = s
                    .get(1..)
                    .and_then(|i| i.strip_suffix(']'))
                    .ok_or(UriError::Host)?;
                return parse_ipv6(inner).map(Host::Ipv6).ok_or(UriError::Host);
            }
            Some(_) => {}
        }
        // hostname = *( domainlabel "." ) toplabel [ "." ]; '_' tolerated as
        // it is met in the field (SRV-style names). One pass: characters,
        // no empty label, and whether it is all digits and dots (IPv4).
        let mut numeric = true;
        let mut prev_dot = false;
        for &c in b {
            if !class::is(c, class::HOST) {
                return Err(UriError::Host);
            }
            let dot = c == b'.';
            if dot && prev_dot {
                return Err(UriError::Host);
            }
            prev_dot = dot;
            numeric &= dot || c.is_ascii_digit();
        }
        if numeric {
            return parse_ipv4(b).map(Host::Ipv4).ok_or(UriError::Host);
        }
        Ok(Host::Domain(s))
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

/// IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT (§25.1):
/// leading zeros allowed, each group at most 255.
fn parse_ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    // One pass: `group` counts the dots seen, `v` and `len` the digits of
    // the group being read.
    let mut octets = [0u8; 4];
    let (mut group, mut v, mut len) = (0usize, 0u16, 0usize);
    for &c in b {
        if c == b'.' {
            if len == 0 || group >= 3 {
                return None;
            }
            *octets.get_mut(group)? = u8::try_from(v).ok()?;
            (group, v, len) = (group + 1, 0, 0);
        } else if c.is_ascii_digit() && len < 3 {
            v = v * 10 + u16::from(c - b'0');
            len += 1;
        } else {
            return None;
        }
    }
    if len == 0 || group != 3 {
        return None;
    }
    *octets.get_mut(3)? = u8::try_from(v).ok()?;
    Some(Ipv4Addr::from(octets))
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

/// Character classes of RFC 3261 §25.1 URI parts, one bit each, looked up
/// in a table so a URI is validated in one pass.
mod class {
    pub(super) const USER: u8 = 1;
    pub(super) const PASSWORD: u8 = 2;
    pub(super) const PARAM: u8 = 4;
    pub(super) const HEADER: u8 = 8;
    pub(super) const HOST: u8 = 16;
    /// A parameter list: PARAM characters and the ';' between parameters.
    pub(super) const PARAMS: u8 = 32;

    const fn classes(b: u8) -> u8 {
        // unreserved = alphanum / mark; mark = -_.!~*'()
        let unreserved = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            );
        let mut c = 0;
        // user = unreserved / escaped / user-unreserved (&=+$,;?/)
        if unreserved
            || matches!(
                b,
                b'%' | b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/'
            )
        {
            c |= USER;
        }
        // password = unreserved / escaped / &=+$,
        if unreserved || matches!(b, b'%' | b'&' | b'=' | b'+' | b'$' | b',') {
            c |= PASSWORD;
        }
        // paramchar = param-unreserved ([]/:&+$) / unreserved / escaped, and
        // '=' between name and value.
        if unreserved
            || matches!(
                b,
                b'%' | b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$' | b'='
            )
        {
            c |= PARAM;
        }
        // hname / hvalue = hnv-unreserved ([]/?:+$) / unreserved / escaped,
        // and '=' '&' between them.
        if unreserved
            || matches!(
                b,
                b'%' | b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'=' | b'&'
            )
        {
            c |= HEADER;
        }
        // hostname characters; '_' tolerated as met in the field.
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_') {
            c |= HOST;
        }
        if c & PARAM != 0 || b == b';' {
            c |= PARAMS;
        }
        c
    }

    #[allow(clippy::indexing_slicing)] // i < 256
    const fn table() -> [u8; 256] {
        let mut t = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = classes(i as u8);
            i += 1;
        }
        t
    }

    pub(super) static TABLE: [u8; 256] = table();

    #[inline]
    #[allow(clippy::indexing_slicing)] // a u8 indexes a 256-entry table
    pub(super) fn is(b: u8, class: u8) -> bool {
        TABLE[b as usize] & class != 0
    }
}

/// Checks that every byte of `s` is in `class` and every `%` starts a
/// `%HH` escape.
fn all_in(s: &[u8], class: u8) -> bool {
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if !class::is(b, class) {
            return false;
        }
        if b == b'%' {
            let hex = |j: usize| s.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !hex(i + 1) || !hex(i + 2) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

impl<'a> SipUri<'a> {
    /// Parses a `sip:` or `sips:` URI, in one pass over its bytes.
    pub fn parse(s: &'a str) -> Result<SipUri<'a>, UriError> {
        let b = s.as_bytes();
        let (secure, start) = match b.get(..5) {
            Some(p) if p.eq_ignore_ascii_case(b"sips:") => (true, 5),
            _ => match b.get(..4) {
                Some(p) if p.eq_ignore_ascii_case(b"sip:") => (false, 4),
                _ => return Err(UriError::Scheme),
            },
        };
        let sub = |from: usize, to: usize| s.get(from..to).ok_or(UriError::Char);
        // userinfo: no '@' may appear in a later part of the URI, so the
        // first '@' ends it. The user part may hold ';', '?' and ',' (§25.1
        // user-unreserved, RFC 4475 §3.1.1.9).
        let rest = b.get(start..).unwrap_or_default();
        let (user, password, host_start) = match crate::scan::find_byte(b'@', rest) {
            Some(at) => {
                let userinfo = rest.get(..at).unwrap_or_default();
                let (user, password) = match crate::scan::find_byte(b':', userinfo) {
                    Some(c) => (
                        sub(start, start + c)?,
                        Some(sub(start + c + 1, start + at)?),
                    ),
                    None => (sub(start, start + at)?, None),
                };
                if user.is_empty() || !all_in(user.as_bytes(), class::USER) {
                    return Err(UriError::User);
                }
                if let Some(p) = password
                    && !all_in(p.as_bytes(), class::PASSWORD)
                {
                    return Err(UriError::User);
                }
                (Some(user), password, start + at + 1)
            }
            None => (None, None, start),
        };
        // host: an IPv6 reference, or hostname / IPv4 characters up to the
        // first ':', ';' or '?'.
        let mut i = host_start;
        if b.get(i) == Some(&b'[') {
            let close = crate::scan::find_byte(b']', b.get(i..).unwrap_or_default())
                .ok_or(UriError::Host)?;
            i += close + 1;
        } else {
            while b.get(i).is_some_and(|&c| class::is(c, class::HOST)) {
                i += 1;
            }
        }
        let host_text = sub(host_start, i)?;
        let host = Host::parse(host_text)?;
        let mut port = None;
        if b.get(i) == Some(&b':') {
            let from = i + 1;
            let mut n: u32 = 0;
            i = from;
            while let Some(&d) = b.get(i).filter(|d| d.is_ascii_digit()) {
                n = n * 10 + u32::from(d - b'0');
                i += 1;
                if i - from > 5 {
                    return Err(UriError::Port);
                }
            }
            if i == from || !matches!(b.get(i), None | Some(b';' | b'?')) {
                return Err(UriError::Port);
            }
            port = Some(u16::try_from(n).map_err(|_| UriError::Port)?);
        }
        let mut params = Params::empty();
        if b.get(i) == Some(&b';') {
            let from = i + 1;
            let end = crate::scan::find_byte(b'?', b.get(from..).unwrap_or_default())
                .map_or(b.len(), |q| from + q);
            let raw = sub(from, end)?;
            if !all_in(raw.as_bytes(), class::PARAMS) {
                return Err(UriError::Param);
            }
            params = Params::parse_uri(raw).map_err(|_| UriError::Param)?;
            i = end;
        }
        let mut headers = None;
        if b.get(i) == Some(&b'?') {
            let h = sub(i + 1, b.len())?;
            if h.is_empty() || !all_in(h.as_bytes(), class::HEADER) {
                return Err(UriError::Headers);
            }
            headers = Some(h);
            i = b.len();
        }
        if i != b.len() {
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
        // either side has them; others only when both have them. A name may
        // repeat, so each side's values must all be found on the other.
        if !params_match(&self.params, &other.params) || !params_match(&other.params, &self.params)
        {
            return false;
        }
        // Headers: never ignored; every header on one side matches the other.
        match (self.headers, other.headers) {
            (None, None) => true,
            (Some(a), Some(b)) => headers_subset(a, b) && headers_subset(b, a),
            _ => false,
        }
    }
}

/// Every parameter of `a` either has an equal same-named parameter in `b`,
/// or (for the parameters §19.1.4 always compares) fails.
fn params_match(a: &Params<'_>, b: &Params<'_>) -> bool {
    a.iter().all(|(name, value)| {
        let mut same_name = b
            .iter()
            .filter(|(n, _)| eq_unescaped(n, name, true))
            .peekable();
        if same_name.peek().is_none() {
            return !is_significant_uri_param(name);
        }
        same_name.any(|(_, v)| eq_opt_unescaped(value, v))
    })
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
        // Header values compare per their header's rules (§19.1.4, §7.3.1:
        // case-insensitive unless stated; Call-ID is case-sensitive, §20.8).
        let value_case = !(eq_unescaped(na, "call-id", true) || eq_unescaped(na, "i", true));
        b.split('&').any(|hb| {
            let (nb, vb) = hb.split_once('=').unwrap_or((hb, ""));
            eq_unescaped(na, nb, true) && eq_unescaped(va, vb, value_case)
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
                if !all_in(p.as_bytes(), class::PARAMS) {
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
        // Every parameter on each side has an equal one on the other (names
        // may repeat).
        let covered = |a: &Params<'_>, b: &Params<'_>| {
            a.iter().all(|(n, v)| {
                b.iter()
                    .any(|(m, w)| eq_unescaped(n, m, true) && eq_opt_unescaped(v, w))
            })
        };
        covered(&self.params, &other.params) && covered(&other.params, &self.params)
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

    /// The one-pass IPv4 reader gives what the grammar's reading gives
    /// (1*3DIGIT four times, dots between, each at most 255).
    #[test]
    fn ipv4_reads_as_the_grammar_says() {
        fn by_groups(b: &[u8]) -> Option<Ipv4Addr> {
            let groups: Vec<&[u8]> = b.split(|&c| c == b'.').collect();
            if groups.len() != 4 {
                return None;
            }
            let mut octets = [0u8; 4];
            for (o, g) in octets.iter_mut().zip(groups) {
                if g.is_empty() || g.len() > 3 || !g.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                *o = u8::try_from(g.iter().fold(0u16, |v, d| v * 10 + u16::from(d - b'0'))).ok()?;
            }
            Some(Ipv4Addr::from(octets))
        }
        let mut inputs: Vec<String> = [
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "256.0.0.1",
            "001.002.003.004",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.0255",
            "",
            "1.2.3.4a",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        // Every string of up to seven characters from "0159.".
        let alphabet = ['0', '1', '5', '9', '.'];
        let mut layer = vec![String::new()];
        for _ in 0..7 {
            layer = layer
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            inputs.extend(layer.iter().cloned());
        }
        for s in ["25.25.25.25", "299.1.1.1", "1.1.1.300", "9.99.999.0"] {
            inputs.push(s.to_owned());
        }
        for s in &inputs {
            assert_eq!(parse_ipv4(s.as_bytes()), by_groups(s.as_bytes()), "{s:?}");
        }
    }
}
