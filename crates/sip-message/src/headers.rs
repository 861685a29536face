//! Typed header values, parsed on demand from the message index.
//!
//! Each type implements [`TypedHeader`]: its header name and a parser from
//! one value (one element of a comma-separated list, for list headers).
//! Types borrow from the message; read them with
//! [`SipMessage::typed`](crate::SipMessage::typed) or
//! [`SipMessage::typed_all`](crate::SipMessage::typed_all).

use std::net::IpAddr;
use std::ops::Deref;

use crate::addr::{AddrForm, NameAddr};
use crate::error::HeaderErrorKind;
use crate::method::Method;
use crate::name::HeaderName;
use crate::params::Params;
use crate::scan::{Cursor, is_lws, is_token, is_token_str, is_word, parse_decimal, trim};
use crate::uri::Host;

/// A header with a typed value.
pub trait TypedHeader<'a>: Sized {
    /// The header this type reads.
    const NAME: HeaderName;
    /// Whether an empty header value is a valid, empty list (e.g. `Supported:`).
    const ALLOW_EMPTY: bool = false;
    /// Parses one value (one list element for list headers).
    fn parse(value: &'a str) -> Result<Self, HeaderErrorKind>;
}

type R<T> = Result<T, HeaderErrorKind>;

/// Header parameters after `;`, or an empty list; then the end of the value.
fn params_to_end<'a>(c: &mut Cursor<'a>) -> R<Params<'a>> {
    let p = if c.eat_sep(b';') {
        Params::parse_header(c).map_err(|_| HeaderErrorKind::Param)?
    } else {
        Params::empty()
    };
    c.end()?;
    Ok(p)
}

fn delta_seconds(s: &str) -> R<u32> {
    let v = parse_decimal(trim(s), u64::from(u32::MAX))?;
    u32::try_from(v).map_err(|_| HeaderErrorKind::Number)
}

// ---- Via ---------------------------------------------------------------------

/// One Via value (RFC 3261 §20.42; `received` may be an IPv6 address with or
/// without brackets, RFC 5118 §4.5; `rport` per RFC 3581).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    protocol_name: &'a str,
    protocol_version: &'a str,
    transport: &'a str,
    host_text: &'a str,
    host: Host<'a>,
    port: Option<u16>,
    params: Params<'a>,
}

impl<'a> TypedHeader<'a> for Via<'a> {
    const NAME: HeaderName = HeaderName::Via;

    fn parse(value: &'a str) -> R<Self> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        // sent-protocol = protocol-name SLASH protocol-version SLASH transport,
        // with SWS around the slashes (RFC 4475 §3.1.1.1).
        let protocol_name = c.token().map_err(|_| HeaderErrorKind::SentProtocol)?;
        if !c.eat_sep(b'/') {
            return Err(HeaderErrorKind::SentProtocol);
        }
        let protocol_version = c.token().map_err(|_| HeaderErrorKind::SentProtocol)?;
        if !c.eat_sep(b'/') {
            return Err(HeaderErrorKind::SentProtocol);
        }
        let transport = c.token().map_err(|_| HeaderErrorKind::SentProtocol)?;
        if !c.skip_ws() {
            return Err(HeaderErrorKind::SentProtocol);
        }
        // sent-by = host [ COLON port ]
        let start = c.pos();
        if c.peek() == Some(b'[') {
            c.take_while(|b| b != b']');
            if !c.eat(b']') {
                return Err(HeaderErrorKind::Host);
            }
        } else {
            c.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        }
        let host_text = c.slice(start, c.pos());
        let host = Host::parse(host_text).map_err(|_| HeaderErrorKind::Host)?;
        let mut port = None;
        if c.eat_sep(b':') {
            let n = c.number(u64::from(u16::MAX))?;
            port = Some(u16::try_from(n).map_err(|_| HeaderErrorKind::Number)?);
        }
        let params = params_to_end(&mut c)?;
        let via = Via {
            protocol_name,
            protocol_version,
            transport,
            host_text,
            host,
            port,
            params,
        };
        // Known parameters must follow their grammar (§20.42, RFC 3581);
        // one pass over the list.
        for (name, value) in params.iter() {
            let ok = if name.eq_ignore_ascii_case("branch") {
                value.is_some_and(is_token_str)
            } else if name.eq_ignore_ascii_case("received") {
                Host::parse_lenient(value.unwrap_or("")).is_ok()
            } else if name.eq_ignore_ascii_case("rport") {
                value.is_none_or(|p| parse_decimal(p, u64::from(u16::MAX)).is_ok())
            } else if name.eq_ignore_ascii_case("ttl") {
                parse_decimal(value.unwrap_or(""), 255).is_ok()
            } else if name.eq_ignore_ascii_case("maddr") {
                Host::parse(value.unwrap_or("")).is_ok()
            } else {
                true
            };
            if !ok {
                return Err(HeaderErrorKind::Param);
            }
        }
        Ok(via)
    }
}

impl<'a> Via<'a> {
    /// `SIP` in `SIP/2.0/UDP`.
    #[must_use]
    pub fn protocol_name(&self) -> &'a str {
        self.protocol_name
    }

    /// `2.0` in `SIP/2.0/UDP`.
    #[must_use]
    pub fn protocol_version(&self) -> &'a str {
        self.protocol_version
    }

    /// The transport token as written (`UDP`, `TCP`, `TLS`, `WS`, ...).
    #[must_use]
    pub fn transport(&self) -> &'a str {
        self.transport
    }

    /// The sent-by host.
    #[must_use]
    pub fn host(&self) -> Host<'a> {
        self.host
    }

    /// The sent-by host as written.
    #[must_use]
    pub fn host_str(&self) -> &'a str {
        self.host_text
    }

    /// The sent-by port, if written.
    #[must_use]
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// All parameters.
    #[must_use]
    pub fn params(&self) -> Params<'a> {
        self.params
    }

    /// The `branch` parameter.
    #[must_use]
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// Whether the branch starts with the RFC 3261 magic cookie `z9hG4bK`
    /// (§8.1.1.7); if not, the sender is an RFC 2543 element.
    #[must_use]
    pub fn has_magic_cookie(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with("z9hG4bK"))
    }

    /// The `received` parameter.
    #[must_use]
    pub fn received(&self) -> Option<IpAddr> {
        match Host::parse_lenient(self.params.get("received").flatten()?).ok()? {
            Host::Ipv4(a) => Some(IpAddr::V4(a)),
            Host::Ipv6(a) => Some(IpAddr::V6(a)),
            Host::Domain(_) => None,
        }
    }

    /// The `rport` parameter: `None` absent, `Some(None)` present without a
    /// value (a request asking for it), `Some(Some(port))` filled in.
    #[must_use]
    pub fn rport(&self) -> Option<Option<u16>> {
        let v = self.params.get("rport")?;
        Some(v.and_then(|p| p.parse().ok()))
    }

    /// The `maddr` parameter.
    #[must_use]
    pub fn maddr(&self) -> Option<Host<'a>> {
        Host::parse(self.params.get("maddr").flatten()?).ok()
    }

    /// The `ttl` parameter.
    #[must_use]
    pub fn ttl(&self) -> Option<u8> {
        self.params.get("ttl").flatten()?.parse().ok()
    }
}

// ---- addresses ---------------------------------------------------------------

macro_rules! addr_header {
    ($(#[$doc:meta])* $ty:ident, $name:ident, $parse:ident) => {
        addr_header!(@def $(#[$doc])* $ty, $name, |v| $parse(v));
    };
    ($(#[$doc:meta])* $ty:ident, $name:ident, $form:expr) => {
        addr_header!(@def $(#[$doc])* $ty, $name, |v| NameAddr::parse(v, $form));
    };
    (@def $(#[$doc:meta])* $ty:ident, $name:ident, $parse:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $ty<'a>(pub NameAddr<'a>);

        impl<'a> TypedHeader<'a> for $ty<'a> {
            const NAME: HeaderName = HeaderName::$name;

            fn parse(value: &'a str) -> R<Self> {
                let parse: fn(&'a str) -> R<NameAddr<'a>> = $parse;
                parse(value).map($ty)
            }
        }

        impl<'a> Deref for $ty<'a> {
            type Target = NameAddr<'a>;

            fn deref(&self) -> &NameAddr<'a> {
                &self.0
            }
        }
    };
}

/// From and To: a `tag` parameter has a token value (§25.1 tag-param).
fn tagged(value: &str) -> R<NameAddr<'_>> {
    let a = NameAddr::parse(value, AddrForm::Either)?;
    if let Some(tag) = a.params().get("tag")
        && !tag.is_some_and(is_token_str)
    {
        return Err(HeaderErrorKind::Param);
    }
    Ok(a)
}

addr_header!(
    /// The From header (§20.20); its `tag` identifies the dialog.
    From, From, tagged);
addr_header!(
    /// The To header (§20.39).
    To, To, tagged);
addr_header!(
    /// One Route value (§20.34); name-addr form only.
    Route, Route, AddrForm::NameAddrOnly);
addr_header!(
    /// One Record-Route value (§20.30); name-addr form only.
    RecordRoute, RecordRoute, AddrForm::NameAddrOnly);
addr_header!(
    /// One Path value (RFC 3327); name-addr form only.
    Path, Path, AddrForm::NameAddrOnly);
addr_header!(
    /// The Refer-To header (RFC 3515); may carry `?Replaces=` in its URI.
    ReferTo, ReferTo, AddrForm::Either);
addr_header!(
    /// The Referred-By header (RFC 3892).
    ReferredBy, ReferredBy, AddrForm::Either);
addr_header!(
    /// One P-Asserted-Identity value (RFC 3325).
    PAssertedIdentity, PAssertedIdentity, AddrForm::Either);

/// One Contact value (§20.10): `*` or an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (REGISTER removing all bindings, §10.2.2).
    Star,
    /// An address with its parameters.
    Addr(NameAddr<'a>),
}

impl<'a> TypedHeader<'a> for Contact<'a> {
    const NAME: HeaderName = HeaderName::Contact;

    fn parse(value: &'a str) -> R<Self> {
        if trim(value) == "*" {
            return Ok(Contact::Star);
        }
        let a = NameAddr::parse(value, AddrForm::Either)?;
        let p = a.params();
        if let Some(q) = p.get("q") {
            parse_qvalue(q.unwrap_or(""))?;
        }
        if let Some(e) = p.get("expires") {
            delta_seconds(e.unwrap_or(""))?;
        }
        if let Some(r) = p.get("reg-id") {
            delta_seconds(r.unwrap_or(""))?;
        }
        Ok(Contact::Addr(a))
    }
}

impl<'a> Contact<'a> {
    /// The address, unless this is `*`.
    #[must_use]
    pub fn addr(&self) -> Option<&NameAddr<'a>> {
        match self {
            Contact::Star => None,
            Contact::Addr(a) => Some(a),
        }
    }

    /// The `q` parameter in thousandths (0..=1000).
    #[must_use]
    pub fn q(&self) -> Option<u16> {
        parse_qvalue(self.addr()?.params().get("q").flatten()?).ok()
    }

    /// The `expires` parameter in seconds.
    #[must_use]
    pub fn expires(&self) -> Option<u32> {
        delta_seconds(self.addr()?.params().get("expires").flatten()?).ok()
    }

    /// The `+sip.instance` parameter (RFC 5626), without its quotes.
    #[must_use]
    pub fn instance(&self) -> Option<&'a str> {
        self.addr()?.params().get("+sip.instance").flatten()
    }

    /// The `reg-id` parameter (RFC 5626).
    #[must_use]
    pub fn reg_id(&self) -> Option<u32> {
        delta_seconds(self.addr()?.params().get("reg-id").flatten()?).ok()
    }
}

/// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in
/// thousandths.
fn parse_qvalue(s: &str) -> R<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderErrorKind::Param);
    }
    let mut f: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        f += u16::from(b - b'0') * [100, 10, 1].get(i).copied().unwrap_or(0);
    }
    match int {
        "0" => Ok(f),
        "1" if f == 0 => Ok(1000),
        _ => Err(HeaderErrorKind::Param),
    }
}

// ---- scalars -----------------------------------------------------------------

/// The Call-ID header (§20.8): `word [ "@" word ]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallId<'a>(pub &'a str);

impl<'a> TypedHeader<'a> for CallId<'a> {
    const NAME: HeaderName = HeaderName::CallId;

    fn parse(value: &'a str) -> R<Self> {
        let v = trim(value);
        if v.is_empty() {
            return Err(HeaderErrorKind::Empty);
        }
        let (a, b) = v.split_once('@').unwrap_or((v, "x"));
        let word = |w: &str| !w.is_empty() && w.bytes().all(is_word);
        if word(a) && word(b) {
            Ok(CallId(v))
        } else {
            Err(HeaderErrorKind::Invalid)
        }
    }
}

/// The CSeq header (§20.16): a sequence number below 2**31 (§8.1.1.5) and
/// the method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// The sequence number.
    pub seq: u32,
    /// The method.
    pub method: Method<'a>,
}

impl<'a> TypedHeader<'a> for CSeq<'a> {
    const NAME: HeaderName = HeaderName::CSeq;

    fn parse(value: &'a str) -> R<Self> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        // §8.1.1.5: the sequence number is below 2**31.
        let seq = c.number(0x7fff_ffff)?;
        if !c.skip_ws() {
            return Err(HeaderErrorKind::Invalid);
        }
        let method = Method::from_token(c.token()?);
        c.end()?;
        Ok(CSeq {
            seq: u32::try_from(seq).map_err(|_| HeaderErrorKind::Number)?,
            method,
        })
    }
}

macro_rules! number_header {
    ($(#[$doc:meta])* $ty:ident, $name:ident, $t:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $ty(pub $t);

        impl<'a> TypedHeader<'a> for $ty {
            const NAME: HeaderName = HeaderName::$name;

            fn parse(value: &'a str) -> R<Self> {
                let v = parse_decimal(trim(value), u64::from(<$t>::MAX))?;
                <$t>::try_from(v).map($ty).map_err(|_| HeaderErrorKind::Number)
            }
        }
    };
}

number_header!(
    /// Max-Forwards (§20.22): 0 to 255.
    MaxForwards, MaxForwards, u8);
number_header!(
    /// Content-Length (§20.14).
    ContentLength, ContentLength, u32);
number_header!(
    /// Expires (§20.19), delta-seconds.
    Expires, Expires, u32);
number_header!(
    /// Min-Expires (§20.23).
    MinExpires, MinExpires, u32);
number_header!(
    /// RSeq (RFC 3262 §7.1): 1 to 2**31-1 in practice, any u32 accepted.
    RSeq, RSeq, u32);
number_header!(
    /// Min-SE (RFC 4028).
    MinSe, MinSe, u32);

/// Content-Type (§20.15): `type/subtype *(;param)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentType<'a> {
    /// The media type, e.g. `application`.
    pub media_type: &'a str,
    /// The subtype, e.g. `sdp`.
    pub subtype: &'a str,
    /// Parameters, e.g. `boundary`.
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for ContentType<'a> {
    const NAME: HeaderName = HeaderName::ContentType;

    fn parse(value: &'a str) -> R<Self> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let media_type = c.token()?;
        if !c.eat_sep(b'/') {
            return Err(HeaderErrorKind::Invalid);
        }
        let subtype = c.token()?;
        let params = params_to_end(&mut c)?;
        Ok(ContentType {
            media_type,
            subtype,
            params,
        })
    }
}

impl ContentType<'_> {
    /// Case-insensitive comparison with `type/subtype`.
    #[must_use]
    pub fn is(&self, media_type: &str, subtype: &str) -> bool {
        self.media_type.eq_ignore_ascii_case(media_type)
            && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

// ---- token lists -------------------------------------------------------------

macro_rules! token_list_header {
    ($(#[$doc:meta])* $ty:ident, $name:ident, $empty:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $ty<'a>(pub &'a str);

        impl<'a> TypedHeader<'a> for $ty<'a> {
            const NAME: HeaderName = HeaderName::$name;
            const ALLOW_EMPTY: bool = $empty;

            fn parse(value: &'a str) -> R<Self> {
                let v = trim(value);
                if is_token_str(v) { Ok($ty(v)) } else { Err(HeaderErrorKind::Token) }
            }
        }
    };
}

token_list_header!(
    /// One option tag of Supported (§20.37); the header may be empty.
    Supported, Supported, true);
token_list_header!(
    /// One option tag of Require (§20.32).
    Require, Require, false);
token_list_header!(
    /// One option tag of Proxy-Require (§20.29).
    ProxyRequire, ProxyRequire, false);
token_list_header!(
    /// One option tag of Unsupported (§20.40).
    Unsupported, Unsupported, false);
token_list_header!(
    /// One event package of Allow-Events (RFC 6665 §8.2.2).
    AllowEvents, AllowEvents, false);

/// One method of Allow (§20.5); the header may be empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allow<'a>(pub Method<'a>);

impl<'a> TypedHeader<'a> for Allow<'a> {
    const NAME: HeaderName = HeaderName::Allow;
    const ALLOW_EMPTY: bool = true;

    fn parse(value: &'a str) -> R<Self> {
        Method::parse(trim(value))
            .map(Allow)
            .ok_or(HeaderErrorKind::Token)
    }
}

// ---- authentication ----------------------------------------------------------

/// A digest algorithm (RFC 3261 §22.4, RFC 7616, RFC 8760).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm<'a> {
    /// MD5 (the default when absent).
    Md5,
    /// MD5-sess.
    Md5Sess,
    /// SHA-256 (RFC 8760).
    Sha256,
    /// SHA-256-sess.
    Sha256Sess,
    /// SHA-512-256 (RFC 8760).
    Sha512_256,
    /// SHA-512-256-sess.
    Sha512_256Sess,
    /// Any other token.
    Other(&'a str),
}

impl<'a> Algorithm<'a> {
    /// Maps an algorithm token (case-insensitive).
    #[must_use]
    pub fn parse(s: &'a str) -> Algorithm<'a> {
        const KNOWN: [(&str, Algorithm<'static>); 6] = [
            ("MD5", Algorithm::Md5),
            ("MD5-sess", Algorithm::Md5Sess),
            ("SHA-256", Algorithm::Sha256),
            ("SHA-256-sess", Algorithm::Sha256Sess),
            ("SHA-512-256", Algorithm::Sha512_256),
            ("SHA-512-256-sess", Algorithm::Sha512_256Sess),
        ];
        KNOWN
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map_or(Algorithm::Other(s), |(_, a)| *a)
    }
}

/// The comma-separated `name=value` parameters of a challenge or credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthParams<'a> {
    raw: &'a str,
}

impl<'a> AuthParams<'a> {
    fn parse(c: &mut Cursor<'a>) -> R<AuthParams<'a>> {
        let start = c.pos();
        let mut end = start;
        loop {
            c.skip_ws();
            if c.is_empty() {
                break;
            }
            c.token()?;
            if !c.eat_sep(b'=') {
                return Err(HeaderErrorKind::Param);
            }
            if c.peek() == Some(b'"') {
                c.quoted()?;
            } else {
                // token68 values may end in '='.
                let v = c.take_while(|b| is_token(b) || matches!(b, b'/' | b'=' | b':'));
                if v.is_empty() {
                    return Err(HeaderErrorKind::Param);
                }
            }
            end = c.pos();
            if !c.eat_sep(b',') {
                break;
            }
        }
        c.end()?;
        Ok(AuthParams {
            raw: c.slice(start, end),
        })
    }

    /// Parameters in order, quoted values without their quotes.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let mut c = Cursor::new(self.raw);
        std::iter::from_fn(move || {
            c.skip_ws();
            if c.is_empty() {
                return None;
            }
            let name = c.take_while(is_token);
            c.eat_sep(b'=');
            let value = if c.peek() == Some(b'"') {
                c.quoted().unwrap_or("")
            } else {
                c.take_while(|b| b != b',' && !is_lws(b))
            };
            c.take_while(|b| b != b',');
            c.eat(b',');
            Some((name, value))
        })
    }

    /// A parameter by name (case-insensitive).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// A challenge: WWW-Authenticate (§20.44) or Proxy-Authenticate (§20.27).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge<'a> {
    /// The scheme, e.g. `Digest`.
    pub scheme: &'a str,
    /// The parameters.
    pub params: AuthParams<'a>,
}

/// Credentials: Authorization (§20.7) or Proxy-Authorization (§20.28).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// The scheme, e.g. `Digest`.
    pub scheme: &'a str,
    /// The parameters.
    pub params: AuthParams<'a>,
}

fn parse_auth<'a>(value: &'a str) -> R<(&'a str, AuthParams<'a>)> {
    let mut c = Cursor::new(value);
    c.skip_ws();
    let scheme = c.token()?;
    if !c.skip_ws() && !c.is_empty() {
        return Err(HeaderErrorKind::Token);
    }
    let params = AuthParams::parse(&mut c)?;
    Ok((scheme, params))
}

macro_rules! auth_header {
    ($(#[$doc:meta])* $ty:ident, $name:ident, $inner:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $ty<'a>(pub $inner<'a>);

        impl<'a> TypedHeader<'a> for $ty<'a> {
            const NAME: HeaderName = HeaderName::$name;

            fn parse(value: &'a str) -> R<Self> {
                let (scheme, params) = parse_auth(value)?;
                Ok($ty($inner { scheme, params }))
            }
        }

        impl<'a> Deref for $ty<'a> {
            type Target = $inner<'a>;

            fn deref(&self) -> &$inner<'a> {
                &self.0
            }
        }
    };
}

auth_header!(
    /// WWW-Authenticate (§20.44).
    WwwAuthenticate, WwwAuthenticate, Challenge);
auth_header!(
    /// Proxy-Authenticate (§20.27).
    ProxyAuthenticate, ProxyAuthenticate, Challenge);
auth_header!(
    /// Authorization (§20.7).
    Authorization, Authorization, Credentials);
auth_header!(
    /// Proxy-Authorization (§20.28).
    ProxyAuthorization, ProxyAuthorization, Credentials);

impl<'a> Challenge<'a> {
    /// Whether the scheme is Digest.
    #[must_use]
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }
    /// `realm`.
    #[must_use]
    pub fn realm(&self) -> Option<&'a str> {
        self.params.get("realm")
    }
    /// `nonce`.
    #[must_use]
    pub fn nonce(&self) -> Option<&'a str> {
        self.params.get("nonce")
    }
    /// `opaque`.
    #[must_use]
    pub fn opaque(&self) -> Option<&'a str> {
        self.params.get("opaque")
    }
    /// `stale=true`.
    #[must_use]
    pub fn stale(&self) -> bool {
        self.params
            .get("stale")
            .is_some_and(|s| s.eq_ignore_ascii_case("true"))
    }
    /// `algorithm` (MD5 when absent).
    #[must_use]
    pub fn algorithm(&self) -> Algorithm<'a> {
        self.params
            .get("algorithm")
            .map_or(Algorithm::Md5, Algorithm::parse)
    }
    /// The `qop` options offered (`auth`, `auth-int`).
    pub fn qop_options(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .get("qop")
            .unwrap_or("")
            .split(',')
            .map(trim)
            .filter(|s| !s.is_empty())
    }
    /// `domain`.
    #[must_use]
    pub fn domain(&self) -> Option<&'a str> {
        self.params.get("domain")
    }
    /// `userhash=true` (RFC 7616).
    #[must_use]
    pub fn userhash(&self) -> bool {
        self.params
            .get("userhash")
            .is_some_and(|s| s.eq_ignore_ascii_case("true"))
    }
}

impl<'a> Credentials<'a> {
    /// Whether the scheme is Digest.
    #[must_use]
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }
    /// `username`.
    #[must_use]
    pub fn username(&self) -> Option<&'a str> {
        self.params.get("username")
    }
    /// `realm`.
    #[must_use]
    pub fn realm(&self) -> Option<&'a str> {
        self.params.get("realm")
    }
    /// `nonce`.
    #[must_use]
    pub fn nonce(&self) -> Option<&'a str> {
        self.params.get("nonce")
    }
    /// `uri` (the digest-uri).
    #[must_use]
    pub fn uri(&self) -> Option<&'a str> {
        self.params.get("uri")
    }
    /// `response`.
    #[must_use]
    pub fn response(&self) -> Option<&'a str> {
        self.params.get("response")
    }
    /// `algorithm` (MD5 when absent).
    #[must_use]
    pub fn algorithm(&self) -> Algorithm<'a> {
        self.params
            .get("algorithm")
            .map_or(Algorithm::Md5, Algorithm::parse)
    }
    /// `cnonce`.
    #[must_use]
    pub fn cnonce(&self) -> Option<&'a str> {
        self.params.get("cnonce")
    }
    /// `opaque`.
    #[must_use]
    pub fn opaque(&self) -> Option<&'a str> {
        self.params.get("opaque")
    }
    /// `qop`.
    #[must_use]
    pub fn qop(&self) -> Option<&'a str> {
        self.params.get("qop")
    }
    /// `nc`, the nonce count (8 hex digits).
    #[must_use]
    pub fn nonce_count(&self) -> Option<u32> {
        u32::from_str_radix(self.params.get("nc")?, 16).ok()
    }
    /// `userhash=true` (RFC 7616).
    #[must_use]
    pub fn userhash(&self) -> bool {
        self.params
            .get("userhash")
            .is_some_and(|s| s.eq_ignore_ascii_case("true"))
    }
}

// ---- events ------------------------------------------------------------------

/// Event (RFC 6665 §8.2.1): `package[.template] *(;param)`, e.g. `presence;id=1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// The event type, templates included (e.g. `presence.winfo`).
    pub event_type: &'a str,
    /// Parameters (`id`).
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for Event<'a> {
    const NAME: HeaderName = HeaderName::Event;

    fn parse(value: &'a str) -> R<Self> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let event_type = c.token()?;
        let params = params_to_end(&mut c)?;
        Ok(Event { event_type, params })
    }
}

impl<'a> Event<'a> {
    /// The package, without templates (`presence` of `presence.winfo`).
    #[must_use]
    pub fn package(&self) -> &'a str {
        self.event_type.split('.').next().unwrap_or(self.event_type)
    }
    /// The `id` parameter.
    #[must_use]
    pub fn id(&self) -> Option<&'a str> {
        self.params.get("id").flatten()
    }
}

/// Subscription-State (RFC 6665 §8.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionState<'a> {
    /// `active`, `pending`, `terminated` or an extension.
    pub state: &'a str,
    /// Parameters (`expires`, `reason`, `retry-after`).
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for SubscriptionState<'a> {
    const NAME: HeaderName = HeaderName::SubscriptionState;

    fn parse(value: &'a str) -> R<Self> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let state = c.token()?;
        let params = params_to_end(&mut c)?;
        for p in ["expires", "retry-after"] {
            if let Some(v) = params.get(p) {
                delta_seconds(v.unwrap_or(""))?;
            }
        }
        Ok(SubscriptionState { state, params })
    }
}

impl<'a> SubscriptionState<'a> {
    /// `expires`.
    #[must_use]
    pub fn expires(&self) -> Option<u32> {
        delta_seconds(self.params.get("expires").flatten()?).ok()
    }
    /// `reason`.
    #[must_use]
    pub fn reason(&self) -> Option<&'a str> {
        self.params.get("reason").flatten()
    }
    /// `retry-after`.
    #[must_use]
    pub fn retry_after(&self) -> Option<u32> {
        delta_seconds(self.params.get("retry-after").flatten()?).ok()
    }
}

// ---- reliable provisionals, replaces, session timers ------------------------

/// RAck (RFC 3262 §7.2): `response-num CSeq-num Method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RAck<'a> {
    /// The RSeq of the acknowledged response.
    pub rseq: u32,
    /// The CSeq number of the acknowledged response.
    pub cseq: u32,
    /// The CSeq method of the acknowledged response.
    pub method: Method<'a>,
}

impl<'a> TypedHeader<'a> for RAck<'a> {
    const NAME: HeaderName = HeaderName::RAck;

    fn parse(value: &'a str) -> R<Self> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let rseq = c.number(u64::from(u32::MAX))?;
        c.skip_ws();
        let cseq = c.number(u64::from(u32::MAX))?;
        c.skip_ws();
        let method = Method::from_token(c.token()?);
        c.end()?;
        Ok(RAck {
            rseq: u32::try_from(rseq).map_err(|_| HeaderErrorKind::Number)?,
            cseq: u32::try_from(cseq).map_err(|_| HeaderErrorKind::Number)?,
            method,
        })
    }
}

/// Replaces (RFC 3891 §6.1): `callid *(;to-tag|from-tag|early-only|param)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replaces<'a> {
    /// The Call-ID of the dialog to replace.
    pub call_id: &'a str,
    /// Parameters.
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for Replaces<'a> {
    const NAME: HeaderName = HeaderName::Replaces;

    fn parse(value: &'a str) -> R<Self> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let call_id = c.take_while(|b| (is_word(b) || b == b'@') && b != b';');
        CallId::parse(call_id)?;
        let params = params_to_end(&mut c)?;
        if !params.contains("to-tag") || !params.contains("from-tag") {
            return Err(HeaderErrorKind::Param);
        }
        Ok(Replaces { call_id, params })
    }
}

impl<'a> Replaces<'a> {
    /// `to-tag`.
    #[must_use]
    pub fn to_tag(&self) -> Option<&'a str> {
        self.params.get("to-tag").flatten()
    }
    /// `from-tag`.
    #[must_use]
    pub fn from_tag(&self) -> Option<&'a str> {
        self.params.get("from-tag").flatten()
    }
    /// `early-only`.
    #[must_use]
    pub fn early_only(&self) -> bool {
        self.params.contains("early-only")
    }
}

/// Session-Expires (RFC 4028 §4): `delta-seconds [;refresher=uac|uas]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires<'a> {
    /// The session interval in seconds.
    pub delta: u32,
    /// Parameters (`refresher`).
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for SessionExpires<'a> {
    const NAME: HeaderName = HeaderName::SessionExpires;

    fn parse(value: &'a str) -> R<Self> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let delta = c.number(u64::from(u32::MAX))?;
        let params = params_to_end(&mut c)?;
        Ok(SessionExpires {
            delta: u32::try_from(delta).map_err(|_| HeaderErrorKind::Number)?,
            params,
        })
    }
}

impl<'a> SessionExpires<'a> {
    /// `refresher` (`uac` or `uas`).
    #[must_use]
    pub fn refresher(&self) -> Option<&'a str> {
        self.params.get("refresher").flatten()
    }
}

/// One Reason value (RFC 3326): `protocol ;cause=N ;text="..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason<'a> {
    /// `SIP`, `Q.850` or another token.
    pub protocol: &'a str,
    /// Parameters.
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for Reason<'a> {
    const NAME: HeaderName = HeaderName::Reason;

    fn parse(value: &'a str) -> R<Self> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let protocol = c.token()?;
        let params = params_to_end(&mut c)?;
        if let Some(cause) = params.get("cause") {
            parse_decimal(cause.unwrap_or(""), u64::from(u16::MAX))?;
        }
        Ok(Reason { protocol, params })
    }
}

impl<'a> Reason<'a> {
    /// `cause`.
    #[must_use]
    pub fn cause(&self) -> Option<u16> {
        self.params.get("cause").flatten()?.parse().ok()
    }
    /// `text`, without its quotes.
    #[must_use]
    pub fn text(&self) -> Option<&'a str> {
        self.params.get("text").flatten()
    }
}

/// Retry-After (§20.33): `delta-seconds [ comment ] *(;param)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter<'a> {
    /// Seconds to wait.
    pub delta: u32,
    /// The comment between parentheses, if any, without them.
    pub comment: Option<&'a str>,
    /// Parameters (`duration`).
    pub params: Params<'a>,
}

impl<'a> TypedHeader<'a> for RetryAfter<'a> {
    const NAME: HeaderName = HeaderName::RetryAfter;

    fn parse(value: &'a str) -> R<Self> {
        let mut c = Cursor::new(value);
        c.skip_ws();
        let delta = c.number(u64::from(u32::MAX))?;
        c.skip_ws();
        let mut comment = None;
        if c.eat(b'(') {
            let start = c.pos();
            let mut depth = 1u32;
            while let Some(b) = c.peek() {
                match b {
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b'\\' => c.bump(),
                    _ => {}
                }
                c.bump();
            }
            comment = Some(c.slice(start, c.pos()));
            if !c.eat(b')') {
                return Err(HeaderErrorKind::Invalid);
            }
        }
        let params = params_to_end(&mut c)?;
        if let Some(d) = params.get("duration") {
            delta_seconds(d.unwrap_or(""))?;
        }
        Ok(RetryAfter {
            delta: u32::try_from(delta).map_err(|_| HeaderErrorKind::Number)?,
            comment,
            params,
        })
    }
}

/// Timestamp (§20.38): `1*DIGIT ["." *DIGIT] [ LWS delay ]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp<'a> {
    /// The timestamp as written.
    pub value: &'a str,
    /// The delay as written.
    pub delay: Option<&'a str>,
}

impl<'a> TypedHeader<'a> for Timestamp<'a> {
    const NAME: HeaderName = HeaderName::Timestamp;

    fn parse(value: &'a str) -> R<Self> {
        fn decimal(s: &str) -> bool {
            let (i, f) = s.split_once('.').unwrap_or((s, ""));
            (!i.is_empty() || !f.is_empty())
                && i.bytes().all(|b| b.is_ascii_digit())
                && f.bytes().all(|b| b.is_ascii_digit())
        }
        let mut c = Cursor::new(value);
        c.skip_ws();
        let v = c.take_while(|b| b.is_ascii_digit() || b == b'.');
        if v.is_empty() || !v.bytes().next().is_some_and(|b| b.is_ascii_digit()) || !decimal(v) {
            return Err(HeaderErrorKind::Number);
        }
        c.skip_ws();
        let d = c.take_while(|b| b.is_ascii_digit() || b == b'.');
        c.end()?;
        if !d.is_empty() && !decimal(d) {
            return Err(HeaderErrorKind::Number);
        }
        Ok(Timestamp {
            value: v,
            delay: (!d.is_empty()).then_some(d),
        })
    }
}

/// Date (§20.17): an RFC 1123 date, always GMT, e.g.
/// `Sat, 13 Nov 2010 23:29:00 GMT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    /// Year.
    pub year: u16,
    /// Month, 1 to 12.
    pub month: u8,
    /// Day of the month, 1 to 31.
    pub day: u8,
    /// Hour, 0 to 23.
    pub hour: u8,
    /// Minute, 0 to 59.
    pub minute: u8,
    /// Second, 0 to 60 (a leap second).
    pub second: u8,
}

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl<'a> TypedHeader<'a> for Date {
    const NAME: HeaderName = HeaderName::Date;

    fn parse(value: &'a str) -> R<Self> {
        // wkday "," SP date1 SP time SP "GMT"; date1 = 2DIGIT SP month SP 4DIGIT
        let v = trim(value);
        let mut parts = v.split(' ');
        let bad = HeaderErrorKind::Date;
        let wk = parts.next().ok_or(bad)?;
        let wk = wk.strip_suffix(',').ok_or(bad)?;
        if !WEEKDAYS.contains(&wk) {
            return Err(bad);
        }
        let num = |s: Option<&str>, len: usize, max: u64| -> R<u64> {
            let s = s.ok_or(bad)?;
            if s.len() != len {
                return Err(bad);
            }
            parse_decimal(s, max).map_err(|_| bad)
        };
        let day = num(parts.next(), 2, 31)?;
        let month_s = parts.next().ok_or(bad)?;
        let month = MONTHS.iter().position(|m| *m == month_s).ok_or(bad)? + 1;
        let year = num(parts.next(), 4, 9999)?;
        let time = parts.next().ok_or(bad)?;
        let mut t = time.split(':');
        let hour = num(t.next(), 2, 23)?;
        let minute = num(t.next(), 2, 59)?;
        let second = num(t.next(), 2, 60)?;
        if t.next().is_some() || day == 0 {
            return Err(bad);
        }
        if parts.next() != Some("GMT") || parts.next().is_some() {
            return Err(bad);
        }
        let small = |v: u64| u8::try_from(v).map_err(|_| bad);
        Ok(Date {
            year: u16::try_from(year).map_err(|_| bad)?,
            month: small(month as u64)?,
            day: small(day)?,
            hour: small(hour)?,
            minute: small(minute)?,
            second: small(second)?,
        })
    }
}

impl Date {
    /// Seconds since the Unix epoch.
    #[must_use]
    pub fn unix_seconds(&self) -> i64 {
        // Days from civil (Howard Hinnant's algorithm).
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_spaces_and_ipv6() {
        let v = Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport(), "UDP");
        assert_eq!(v.host(), Host::Ipv4("192.0.2.2".parse().unwrap()));
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.has_magic_cookie());
        let v = Via::parse(
            "SIP/2.0/UDP [2001:db8::9:1]:6050;received=2001:db8::9:255;branch=z9hG4bKas3;rport",
        )
        .unwrap();
        assert_eq!(v.port(), Some(6050));
        assert_eq!(v.received(), Some("2001:db8::9:255".parse().unwrap()));
        assert_eq!(v.rport(), Some(None));
        let v = Via::parse(
            "SIP/2.0/TCP h;received=[2001:db8::9:255];rport=5062;ttl=16;maddr=224.2.0.1",
        )
        .unwrap();
        assert_eq!(v.received(), Some("2001:db8::9:255".parse().unwrap()));
        assert_eq!(v.rport(), Some(Some(5062)));
        assert_eq!(v.ttl(), Some(16));
        assert_eq!(v.maddr(), Some(Host::Ipv4("224.2.0.1".parse().unwrap())));
    }

    #[test]
    fn bad_vias() {
        for bad in [
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/2.0 192.0.2.15",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP host;ttl=300",
            "SIP/2.0/UDP host;received=nothost!",
            "SIP/2.0/UDP host;branch",
        ] {
            assert!(Via::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cseq_and_scalars() {
        assert_eq!(
            CSeq::parse("0009\r\n  INVITE").unwrap(),
            CSeq {
                seq: 9,
                method: Method::Invite
            }
        );
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("1INVITE").is_err());
        assert!(CSeq::parse("1 INVITE x").is_err());
        assert_eq!(MaxForwards::parse("0068"), Ok(MaxForwards(68)));
        assert!(MaxForwards::parse("300").is_err());
        assert!(Expires::parse("1".repeat(40).as_str()).is_err());
        assert_eq!(CallId::parse("a@b").unwrap().0, "a@b");
        assert!(CallId::parse("a b").is_err());
        assert!(CallId::parse("a@").is_err());
    }

    #[test]
    fn contact_params() {
        let c = Contact::parse(r#"<sip:a@b>;q=0.7;expires=3600;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>";reg-id=1"#).unwrap();
        assert_eq!(c.q(), Some(700));
        assert_eq!(c.expires(), Some(3600));
        assert_eq!(
            c.instance(),
            Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>")
        );
        assert_eq!(c.reg_id(), Some(1));
        assert_eq!(Contact::parse(" * "), Ok(Contact::Star));
        assert!(Contact::parse("<sip:a@b>;expires=280297596632815").is_err());
        assert!(Contact::parse("<sip:a@b>;q=1.5").is_err());
    }

    #[test]
    fn auth_headers() {
        let a = Authorization::parse(
            r#"Digest username="bob", realm="biloxi.com", nonce="dcd98b", uri="sip:bob@biloxi.com", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae4", opaque="5ccc", algorithm=SHA-256"#,
        )
        .unwrap();
        assert!(a.is_digest());
        assert_eq!(a.username(), Some("bob"));
        assert_eq!(a.uri(), Some("sip:bob@biloxi.com"));
        assert_eq!(a.nonce_count(), Some(1));
        assert_eq!(a.algorithm(), Algorithm::Sha256);
        let c = WwwAuthenticate::parse(r#"Digest realm="x", qop="auth,auth-int", nonce="n", stale=TRUE, algorithm=SHA-512-256-sess"#).unwrap();
        assert_eq!(c.qop_options().collect::<Vec<_>>(), ["auth", "auth-int"]);
        assert!(c.stale());
        assert_eq!(c.algorithm(), Algorithm::Sha512_256Sess);
        assert!(Authorization::parse("NoOneKnowsThisScheme opaque-data=here").is_ok());
        assert!(Authorization::parse("Digest username=").is_err());
    }

    #[test]
    fn event_family() {
        let e = Event::parse("presence.winfo;id=7").unwrap();
        assert_eq!(e.package(), "presence");
        assert_eq!(e.id(), Some("7"));
        let s = SubscriptionState::parse("terminated;reason=timeout;retry-after=30").unwrap();
        assert_eq!(s.reason(), Some("timeout"));
        assert_eq!(s.retry_after(), Some(30));
        let r = RAck::parse("776656 1 INVITE").unwrap();
        assert_eq!((r.rseq, r.cseq, r.method), (776_656, 1, Method::Invite));
        let r =
            Replaces::parse("98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff;early-only")
                .unwrap();
        assert_eq!(r.call_id, "98732@sip.example.com");
        assert_eq!(r.to_tag(), Some("ff87ff"));
        assert!(r.early_only());
        assert!(Replaces::parse("98732@sip.example.com;to-tag=a").is_err());
    }

    #[test]
    fn misc_headers() {
        let s = SessionExpires::parse("1800;refresher=uas").unwrap();
        assert_eq!((s.delta, s.refresher()), (1800, Some("uas")));
        let r = Reason::parse(r#"Q.850 ;cause=16 ;text="Terminated""#).unwrap();
        assert_eq!(
            (r.protocol, r.cause(), r.text()),
            ("Q.850", Some(16), Some("Terminated"))
        );
        let r = RetryAfter::parse("18000 (I'm in a meeting) ;duration=3600").unwrap();
        assert_eq!((r.delta, r.comment), (18000, Some("I'm in a meeting")));
        let t = Timestamp::parse("54.2 0.5").unwrap();
        assert_eq!((t.value, t.delay), ("54.2", Some("0.5")));
        let d = Date::parse("Sat, 13 Nov 2010 23:29:00 GMT").unwrap();
        assert_eq!(d.unix_seconds(), 1_289_690_940);
        assert!(Date::parse("Fri, 01 Jan 2010 16:00:00 EST").is_err());
        let ct = ContentType::parse("multipart/mixed;boundary=7a9cbec02ceef655").unwrap();
        assert!(ct.is("Multipart", "MIXED"));
        assert_eq!(ct.params.get("boundary"), Some(Some("7a9cbec02ceef655")));
        assert_eq!(Allow::parse(" INVITE ").unwrap().0, Method::Invite);
        assert!(Supported::parse("100rel").is_ok());
    }
}
