//! Property tests of the codec over generated SIP messages.
//!
//! The generator in [`model`] builds structurally varied but valid messages
//! (RFC 3261 §7, §25.1): extension methods, `sip`/`sips`/`tel` URIs with
//! every part, IPv4/IPv6/domain hosts, header names in any case and in
//! compact form (§7.3.3), whitespace wherever SWS/LWS allows it, folded
//! lines (§7.3.1), list values with commas inside quotes and `<>`, and
//! bodies with Content-Length. It remembers what it wrote, so each property
//! checks the parser's typed values against the generator's, not against
//! another parse.
//!
//! `differential.rs` includes this file for [`model`]; see [`config`].

// Test code: a failed unwrap or index is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use sip_message::headers::{self as h, TypedHeader};
use sip_message::{
    EditError, Frame, HeaderName, Host, Limits, Method, ParseError, ResponseBuilder, Role,
    SipMessage, StreamFramer, Transport, Uri, validate,
};

use model::{GenMessage, GenSipUri, GenUri, Kind, Rendered};

/// Generators of valid messages and URIs, and what they wrote.
#[allow(dead_code)]
pub(crate) mod model {
    use std::fmt::Write as _;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::ops::Range;

    use proptest::collection::vec;
    use proptest::option;
    use proptest::prelude::*;
    use proptest::sample::select;
    use sip_message::Host;

    // ---- whitespace -----------------------------------------------------------

    /// SWS = [LWS], LWS = [*WSP CRLF] 1*WSP (§25.1): folds included.
    const SWS: [&str; 7] = ["", " ", "\t", "  ", "\r\n ", " \r\n\t", "\t\r\n  "];
    /// LWS: at least one WSP.
    const LWS: [&str; 5] = [" ", "\t", "   ", "\r\n ", " \r\n\t"];
    /// Between a header name and its colon: `*( SP / HTAB )`, no fold.
    const HWS: [&str; 3] = ["", " ", "\t"];

    /// Rendering state: the text so far and the whitespace picks, consumed
    /// in order (they shrink to 0: no optional whitespace, one SP).
    pub(crate) struct Out<'a> {
        pub(crate) s: String,
        ws: &'a [u8],
        i: usize,
    }

    impl<'a> Out<'a> {
        pub(crate) fn new(ws: &'a [u8]) -> Out<'a> {
            Out {
                s: String::new(),
                ws,
                i: 0,
            }
        }

        fn pick(&mut self) -> usize {
            let p = if self.ws.is_empty() {
                0
            } else {
                self.ws[self.i % self.ws.len()]
            };
            self.i += 1;
            usize::from(p)
        }

        pub(crate) fn sws(&mut self) {
            let p = self.pick();
            self.s.push_str(SWS[p % SWS.len()]);
        }

        pub(crate) fn lws(&mut self) {
            let p = self.pick();
            self.s.push_str(LWS[p % LWS.len()]);
        }

        fn hws(&mut self) {
            let p = self.pick();
            self.s.push_str(HWS[p % HWS.len()]);
        }

        pub(crate) fn push(&mut self, s: &str) {
            self.s.push_str(s);
        }

        fn len(&self) -> usize {
            self.s.len()
        }
    }

    // ---- hosts ----------------------------------------------------------------

    /// A host as generated (§19.1.1 `host`, RFC 5118 IPv6 references).
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) enum GenHost {
        Domain(String),
        V4(Ipv4Addr),
        /// The address and whether its hex digits are written upper-case.
        V6(Ipv6Addr, bool),
    }

    impl GenHost {
        pub(crate) fn render(&self) -> String {
            match self {
                GenHost::Domain(d) => d.clone(),
                GenHost::V4(a) => a.to_string(),
                GenHost::V6(a, upper) => {
                    let s = a.to_string();
                    format!("[{}]", if *upper { s.to_ascii_uppercase() } else { s })
                }
            }
        }

        /// Whether our parser's host is this one (domains as written).
        pub(crate) fn matches(&self, host: &Host<'_>) -> bool {
            match (self, host) {
                (GenHost::Domain(d), Host::Domain(x)) => d == x,
                (GenHost::V4(a), Host::Ipv4(b)) => a == b,
                (GenHost::V6(a, _), Host::Ipv6(b)) => a == b,
                _ => false,
            }
        }

        pub(crate) fn ip(&self) -> Option<IpAddr> {
            match self {
                GenHost::Domain(_) => None,
                GenHost::V4(a) => Some(IpAddr::V4(*a)),
                GenHost::V6(a, _) => Some(IpAddr::V6(*a)),
            }
        }

        /// The same host with the case of a domain's letters flipped.
        pub(crate) fn case_flipped(&self) -> GenHost {
            match self {
                GenHost::Domain(d) => GenHost::Domain(flip_case(d)),
                GenHost::V6(a, upper) => GenHost::V6(*a, !upper),
                other => other.clone(),
            }
        }
    }

    pub(crate) fn flip_case(s: &str) -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }

    /// hostname = *( domainlabel "." ) toplabel [ "." ] (§25.1).
    pub(crate) fn domain() -> impl Strategy<Value = String> {
        const LABEL_TAIL: &str = r"([a-zA-Z0-9-]{0,5}[a-zA-Z0-9])?";
        proptest::string::string_regex(&format!(
            r"([a-zA-Z0-9]{LABEL_TAIL}\.){{0,3}}[a-zA-Z]{LABEL_TAIL}\.?"
        ))
        .unwrap()
    }

    /// Dotted decimal without leading zeros (`010.0.0.1` is valid too, but
    /// see `known_bug_ipv4_with_leading_zeros` in `differential.rs`).
    pub(crate) fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
        any::<[u8; 4]>().prop_map(Ipv4Addr::from)
    }

    /// IPv6 addresses with runs of zero groups, so `::` compression and
    /// embedded IPv4 forms appear.
    pub(crate) fn ipv6() -> BoxedStrategy<Ipv6Addr> {
        prop_oneof![
            proptest::array::uniform8(prop_oneof![3 => Just(0u16), 1 => any::<u16>()]),
            any::<[u16; 8]>(),
            ipv4().prop_map(|a| a.to_ipv6_mapped().segments()),
        ]
        .prop_map(Ipv6Addr::from)
        .boxed()
    }

    pub(crate) fn host() -> BoxedStrategy<GenHost> {
        prop_oneof![
            4 => domain().prop_map(GenHost::Domain),
            2 => ipv4().prop_map(GenHost::V4),
            2 => (ipv6(), any::<bool>()).prop_map(|(a, u)| GenHost::V6(a, u)),
        ]
        .boxed()
    }

    // ---- URIs -----------------------------------------------------------------

    /// `token` (§25.1).
    pub(crate) fn token() -> impl Strategy<Value = String> {
        r"[a-zA-Z0-9.!%*_+`'~-]{1,10}"
    }

    /// user = 1*( unreserved / escaped / user-unreserved ) (§25.1).
    pub(crate) fn user() -> impl Strategy<Value = String> {
        r"([a-zA-Z0-9_.!~*'()&=+$,;?/-]|%[0-9a-fA-F]{2}){1,10}"
    }

    /// password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," ).
    pub(crate) fn password() -> impl Strategy<Value = String> {
        r"([a-zA-Z0-9_.!~*'()&=+$,-]|%[0-9a-fA-F]{2}){0,8}"
    }

    /// pname / pvalue = 1*paramchar (§25.1).
    pub(crate) fn paramchars(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!(
            r"([a-zA-Z0-9_.!~*'()\[\]/:&+$-]|%[0-9a-fA-F]{{2}}){{1,{max}}}"
        ))
        .unwrap()
    }

    /// hname = 1*( hnv-unreserved / unreserved / escaped ); hvalue may be empty.
    pub(crate) fn hnvchars(min: usize, max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!(
            r"([a-zA-Z0-9_.!~*'()\[\]/?:+$-]|%[0-9a-fA-F]{{2}}){{{min},{max}}}"
        ))
        .unwrap()
    }

    pub(crate) fn method_token() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => select(vec![
                "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO", "UPDATE",
                "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "REFER", "MESSAGE",
            ])
            .prop_map(String::from),
            // Extension methods (§27.4), including lower-case spellings of
            // known ones, which are different methods (§7.1).
            1 => token(),
            1 => select(vec!["invite", "NEWMETHOD", "!interesting-Method0123456789_*+`.%'~"])
                .prop_map(String::from),
        ]
    }

    pub(crate) type Param = (String, Option<String>);

    /// One uri-parameter (§19.1.1), known ones with their grammar.
    pub(crate) fn uri_param() -> BoxedStrategy<Param> {
        let some = |v: &str| Some(v.to_owned());
        prop_oneof![
            1 => (
                select(vec!["transport", "TRANSPORT", "Transport"]),
                select(vec!["udp", "tcp", "TLS", "sctp", "ws", "WSS", "x-quic"])
            )
                .prop_map(move |(n, v)| (n.to_owned(), some(v))),
            1 => select(vec!["lr", "LR", "Lr"]).prop_map(|n| (n.to_owned(), None)),
            1 => (select(vec!["maddr", "MADDR"]), host())
                .prop_map(|(n, h)| (n.to_owned(), Some(h.render()))),
            1 => (select(vec!["user", "User"]), select(vec!["phone", "ip", "dialstring"]))
                .prop_map(move |(n, v)| (n.to_owned(), some(v))),
            1 => any::<u8>().prop_map(|t| ("ttl".to_owned(), Some(t.to_string()))),
            // Method is a token, but '%' and '`' are no paramchars.
            1 => r"[a-zA-Z0-9.!*_+'~-]{1,10}".prop_map(|m| ("method".to_owned(), Some(m))),
            3 => (
                prop_oneof![
                    paramchars(8),
                    select(vec!["x", "foo", "newparam", "security"]).prop_map(String::from)
                ],
                option::of(paramchars(10))
            ),
        ]
        .boxed()
    }

    /// A `sip:` or `sips:` URI (§19.1.1, §25.1).
    #[derive(Debug, Clone)]
    pub(crate) struct GenSipUri {
        /// `sip`, `SIP`, `sips`, ... (the scheme is case-insensitive).
        pub(crate) scheme: String,
        pub(crate) user: Option<String>,
        pub(crate) password: Option<String>,
        pub(crate) host: GenHost,
        pub(crate) port: Option<u16>,
        pub(crate) params: Vec<Param>,
        pub(crate) headers: Vec<(String, String)>,
    }

    impl GenSipUri {
        pub(crate) fn secure(&self) -> bool {
            self.scheme.eq_ignore_ascii_case("sips")
        }

        pub(crate) fn render(&self) -> String {
            let mut s = format!("{}:", self.scheme);
            if let Some(u) = &self.user {
                s.push_str(u);
                if let Some(p) = &self.password {
                    s.push(':');
                    s.push_str(p);
                }
                s.push('@');
            }
            s.push_str(&self.host.render());
            if let Some(p) = self.port {
                let _ = write!(s, ":{p}");
            }
            s.push_str(&render_params(&self.params));
            if !self.headers.is_empty() {
                s.push('?');
                s.push_str(&self.headers_str());
            }
            s
        }

        /// The `?headers` part without the `?`.
        pub(crate) fn headers_str(&self) -> String {
            self.headers
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        }
    }

    pub(crate) fn render_params(params: &[Param]) -> String {
        let mut s = String::new();
        for (n, v) in params {
            s.push(';');
            s.push_str(n);
            if let Some(v) = v {
                s.push('=');
                s.push_str(v);
            }
        }
        s
    }

    pub(crate) fn sip_uri() -> BoxedStrategy<GenSipUri> {
        (
            select(vec!["sip", "sip", "sip", "sips", "SIP", "Sips"]),
            option::of((user(), option::weighted(0.2, password()))),
            host(),
            option::weighted(0.4, any::<u16>()),
            vec(uri_param(), 0..4),
            prop_oneof![
                4 => Just(Vec::new()),
                1 => vec((hnvchars(1, 8), hnvchars(0, 8)), 1..3),
            ],
        )
            .prop_map(|(scheme, userinfo, host, port, mut params, headers)| {
                // A parameter name appears once: see
                // `known_bug_eq_rfc_with_a_repeated_parameter` for why.
                let mut seen = Vec::new();
                params.retain(|(n, _)| {
                    let key = sip_message::unescape(n).to_ascii_lowercase();
                    let new = !seen.contains(&key);
                    seen.push(key);
                    new
                });
                let (user, password) = match userinfo {
                    Some((u, p)) => (Some(u), p),
                    None => (None, None),
                };
                GenSipUri {
                    scheme: scheme.to_owned(),
                    user,
                    password,
                    host,
                    port,
                    params,
                    headers,
                }
            })
            .boxed()
    }

    /// Any generated URI.
    #[derive(Debug, Clone)]
    pub(crate) enum GenUri {
        Sip(GenSipUri),
        /// `tel:` (RFC 3966): the number and its parameters.
        Tel(String, Vec<Param>),
        /// Another scheme, kept opaque.
        Other(String),
    }

    impl GenUri {
        pub(crate) fn render(&self) -> String {
            match self {
                GenUri::Sip(u) => u.render(),
                GenUri::Tel(n, p) => format!("tel:{n}{}", render_params(p)),
                GenUri::Other(s) => s.clone(),
            }
        }

        /// Whether the addr-spec form is impossible (§20.10: a URI with a
        /// comma, semicolon or question mark needs the name-addr form).
        pub(crate) fn needs_angle(&self) -> bool {
            self.render().contains([',', ';', '?'])
        }

        /// Applies `f` to every character string of the URI after the scheme.
        pub(crate) fn map_text(&mut self, f: &dyn Fn(&str) -> String) {
            let params = |p: &mut Vec<Param>| {
                for (n, v) in p.iter_mut() {
                    *n = f(n);
                    if let Some(v) = v {
                        *v = f(v);
                    }
                }
            };
            match self {
                GenUri::Sip(u) => {
                    u.user = u.user.as_deref().map(f);
                    u.password = u.password.as_deref().map(f);
                    params(&mut u.params);
                    for (n, v) in &mut u.headers {
                        *n = f(n);
                        *v = f(v);
                    }
                }
                GenUri::Tel(n, p) => {
                    *n = f(n);
                    params(p);
                }
                GenUri::Other(_) => {}
            }
        }

        pub(crate) fn as_sip(&self) -> Option<&GenSipUri> {
            match self {
                GenUri::Sip(u) => Some(u),
                _ => None,
            }
        }
    }

    /// RFC 3966 telephone-subscriber with parameters.
    pub(crate) fn tel_uri() -> BoxedStrategy<GenUri> {
        let tel_param = || (r"[a-zA-Z0-9-]{1,8}", option::of(paramchars(8)));
        prop_oneof![
            (
                r"\+[0-9.()-]{0,5}[0-9][0-9.()-]{0,8}",
                vec(tel_param(), 0..2)
            )
                .prop_map(|(n, p)| GenUri::Tel(n, p)),
            (
                r"[0-9a-fA-F*.()-]{0,4}[0-9a-fA-F*][0-9a-fA-F*.()-]{0,4}",
                prop_oneof![
                    r"\+[0-9]{1,6}".prop_map(String::from),
                    domain().prop_map(|d| d.trim_end_matches('.').to_owned())
                ],
                vec(tel_param(), 0..2)
            )
                .prop_map(|(n, ctx, mut p)| {
                    p.insert(0, ("phone-context".to_owned(), Some(ctx)));
                    GenUri::Tel(n, p)
                }),
        ]
        .boxed()
    }

    pub(crate) fn uri() -> BoxedStrategy<GenUri> {
        prop_oneof![
            8 => sip_uri().prop_map(GenUri::Sip),
            1 => tel_uri(),
            1 => select(vec![
                "mailto:alice@example.com",
                "urn:service:sos",
                "im:bob@example.org",
                "http://www.example.com/a/b",
            ])
            .prop_map(|s| GenUri::Other(s.to_owned())),
        ]
        .boxed()
    }

    // ---- header values --------------------------------------------------------

    /// qdtext and quoted-pairs (§25.1), without the surrounding quotes.
    pub(crate) fn quoted_content() -> BoxedStrategy<String> {
        vec(
            prop_oneof![
                6 => r"[a-zA-Z0-9 !#-\[\]-~]{1,4}",
                1 => select(vec!["\\\"", "\\\\", "\\a", ",", "<", ">", ";", "é", "日本", "\t"])
                    .prop_map(String::from),
                // qdtext = LWS / ...: a quoted string may fold.
                1 => Just("\r\n ".to_owned()),
            ],
            0..5,
        )
        .prop_map(|v| v.concat())
        .boxed()
    }

    /// gen-value = token / host / quoted-string (§25.1).
    #[derive(Debug, Clone)]
    pub(crate) enum GenValue {
        Token(String),
        Host(GenHost),
        Quoted(String),
    }

    impl GenValue {
        pub(crate) fn render(&self) -> String {
            match self {
                GenValue::Token(t) => t.clone(),
                GenValue::Host(h) => h.render(),
                GenValue::Quoted(q) => format!("\"{q}\""),
            }
        }
    }

    pub(crate) fn gen_value() -> BoxedStrategy<GenValue> {
        prop_oneof![
            3 => token().prop_map(GenValue::Token),
            1 => host().prop_map(GenValue::Host),
            1 => quoted_content().prop_map(GenValue::Quoted),
        ]
        .boxed()
    }

    /// An extension header parameter; the `x` prefix keeps it apart from the
    /// parameters the tests look up.
    pub(crate) fn ext_param() -> BoxedStrategy<(String, Option<GenValue>)> {
        (r"x[a-zA-Z0-9.!%*_+`'~-]{0,6}", option::of(gen_value())).boxed()
    }

    /// `SEMI name [EQUAL value]` with SWS around `;` and `=`.
    fn render_hparam(o: &mut Out<'_>, name: &str, value: Option<&str>) {
        o.sws();
        o.push(";");
        o.sws();
        o.push(name);
        if let Some(v) = value {
            o.sws();
            o.push("=");
            o.sws();
            o.push(v);
        }
    }

    // ---- Via --------------------------------------------------------------------

    #[derive(Debug, Clone)]
    pub(crate) enum ViaParam {
        Branch(String),
        /// The address, and for IPv6 whether it is written in brackets.
        Received(IpAddr, bool),
        Rport(Option<u16>),
        Ttl(u8),
        Maddr(GenHost),
        Ext(String, Option<GenValue>),
    }

    /// One via-parm (§20.42, §25.1; rport RFC 3581).
    #[derive(Debug, Clone)]
    pub(crate) struct GenVia {
        pub(crate) protocol: String,
        pub(crate) version: String,
        pub(crate) transport: String,
        pub(crate) host: GenHost,
        pub(crate) port: Option<u16>,
        /// Write `host SWS ":" SWS port` (COLON = SWS ":" SWS, §25.1).
        pub(crate) spaced_colon: bool,
        /// 0: lower-case parameter names, 1: upper, 2: capitalized.
        pub(crate) name_case: u8,
        pub(crate) params: Vec<ViaParam>,
    }

    impl GenVia {
        pub(crate) fn branch(&self) -> Option<&str> {
            self.params.iter().find_map(|p| match p {
                ViaParam::Branch(b) => Some(b.as_str()),
                _ => None,
            })
        }

        pub(crate) fn received(&self) -> Option<IpAddr> {
            self.params.iter().find_map(|p| match p {
                ViaParam::Received(a, _) => Some(*a),
                _ => None,
            })
        }

        pub(crate) fn rport(&self) -> Option<Option<u16>> {
            self.params.iter().find_map(|p| match p {
                ViaParam::Rport(r) => Some(*r),
                _ => None,
            })
        }

        pub(crate) fn ttl(&self) -> Option<u8> {
            self.params.iter().find_map(|p| match p {
                ViaParam::Ttl(t) => Some(*t),
                _ => None,
            })
        }

        fn name(&self, n: &str) -> String {
            match self.name_case % 3 {
                0 => n.to_owned(),
                1 => n.to_ascii_uppercase(),
                _ => {
                    let mut s = n.to_owned();
                    s[..1].make_ascii_uppercase();
                    s
                }
            }
        }

        pub(crate) fn render(&self, o: &mut Out<'_>) {
            o.push(&self.protocol);
            o.sws();
            o.push("/");
            o.sws();
            o.push(&self.version);
            o.sws();
            o.push("/");
            o.sws();
            o.push(&self.transport);
            o.lws();
            o.push(&self.host.render());
            if let Some(p) = self.port {
                if self.spaced_colon {
                    o.sws();
                    o.push(":");
                    o.sws();
                } else {
                    o.push(":");
                }
                o.push(&p.to_string());
            }
            for p in &self.params {
                let (name, value) = match p {
                    ViaParam::Branch(b) => (self.name("branch"), Some(b.clone())),
                    ViaParam::Received(IpAddr::V6(a), true) => {
                        (self.name("received"), Some(format!("[{a}]")))
                    }
                    ViaParam::Received(a, _) => (self.name("received"), Some(a.to_string())),
                    ViaParam::Rport(r) => (self.name("rport"), r.map(|r| r.to_string())),
                    ViaParam::Ttl(t) => (self.name("ttl"), Some(t.to_string())),
                    ViaParam::Maddr(h) => (self.name("maddr"), Some(h.render())),
                    ViaParam::Ext(n, v) => (n.clone(), v.as_ref().map(GenValue::render)),
                };
                render_hparam(o, &name, value.as_deref());
            }
        }
    }

    pub(crate) fn via() -> BoxedStrategy<GenVia> {
        let known = (
            option::weighted(
                0.9,
                prop_oneof![
                    3 => r"z9hG4bK[a-zA-Z0-9.!%*_+`'~-]{1,16}",
                    1 => token(),
                ]
                .prop_map(ViaParam::Branch),
            ),
            option::weighted(
                0.3,
                prop_oneof![
                    ipv4().prop_map(|a| ViaParam::Received(IpAddr::V4(a), false)),
                    (ipv6(), any::<bool>()).prop_map(|(a, b)| ViaParam::Received(IpAddr::V6(a), b)),
                ],
            ),
            option::weighted(0.3, option::of(any::<u16>()).prop_map(ViaParam::Rport)),
            option::weighted(0.1, any::<u8>().prop_map(ViaParam::Ttl)),
            option::weighted(0.1, host().prop_map(ViaParam::Maddr)),
            vec(ext_param().prop_map(|(n, v)| ViaParam::Ext(n, v)), 0..2),
        );
        (
            prop_oneof![4 => Just("SIP".to_owned()), 1 => token()],
            prop_oneof![4 => Just("2.0".to_owned()), 1 => token()],
            prop_oneof![
                4 => select(vec!["UDP", "TCP", "TLS", "SCTP", "WS", "WSS", "udp", "TLS-SCTP"])
                    .prop_map(String::from),
                1 => token(),
            ],
            host(),
            option::of(any::<u16>()),
            proptest::bool::weighted(0.1),
            0u8..3,
            known,
        )
            .prop_flat_map(
                |(protocol, version, transport, host, port, spaced, case, k)| {
                    let (branch, received, rport, ttl, maddr, ext) = k;
                    let mut params: Vec<ViaParam> = [branch, received, rport, ttl, maddr]
                        .into_iter()
                        .flatten()
                        .collect();
                    params.extend(ext);
                    Just(params).prop_shuffle().prop_map(move |params| GenVia {
                        protocol: protocol.clone(),
                        version: version.clone(),
                        transport: transport.clone(),
                        host: host.clone(),
                        port,
                        spaced_colon: spaced,
                        name_case: case,
                        params,
                    })
                },
            )
            .boxed()
    }

    // ---- addresses ----------------------------------------------------------------

    #[derive(Debug, Clone)]
    pub(crate) enum GenDisplay {
        None,
        /// display-name = *(token LWS): the words.
        Tokens(Vec<String>),
        /// A quoted-string's content.
        Quoted(String),
    }

    /// name-addr or addr-spec with header parameters (§20.10).
    #[derive(Debug, Clone)]
    pub(crate) struct GenAddr {
        pub(crate) display: GenDisplay,
        pub(crate) uri: GenUri,
        /// The name-addr form (`<uri>`).
        pub(crate) angle: bool,
        pub(crate) params: Vec<(String, Option<GenValue>)>,
    }

    impl GenAddr {
        pub(crate) fn render(&self, o: &mut Out<'_>) {
            match &self.display {
                GenDisplay::None => {}
                GenDisplay::Tokens(words) => {
                    for (i, w) in words.iter().enumerate() {
                        if i > 0 {
                            o.lws();
                        }
                        o.push(w);
                    }
                    o.sws();
                }
                GenDisplay::Quoted(q) => {
                    o.push(&format!("\"{q}\""));
                    o.sws();
                }
            }
            if self.angle {
                o.push(&format!("<{}>", self.uri.render()));
            } else {
                o.push(&self.uri.render());
            }
            for (n, v) in &self.params {
                render_hparam(o, n, v.as_ref().map(GenValue::render).as_deref());
            }
        }

        /// The value of a header parameter the generator put in.
        pub(crate) fn param(&self, name: &str) -> Option<Option<String>> {
            self.params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_ref().map(GenValue::render))
        }
    }

    /// An address; `params` are its header parameters, `name_addr_only`
    /// for Route and Record-Route (§25.1 route-param).
    pub(crate) fn addr(
        params: BoxedStrategy<Vec<(String, Option<GenValue>)>>,
        name_addr_only: bool,
    ) -> impl Strategy<Value = GenAddr> {
        (
            prop_oneof![
                2 => Just(GenDisplay::None),
                1 => vec(r"[a-zA-Z0-9.!%*_+`'~-]{1,8}", 1..3).prop_map(GenDisplay::Tokens),
                1 => quoted_content().prop_map(GenDisplay::Quoted),
            ],
            uri(),
            any::<bool>(),
            params,
        )
            .prop_map(move |(display, uri, angle, params)| {
                let angle = angle
                    || name_addr_only
                    || uri.needs_angle()
                    || !matches!(display, GenDisplay::None);
                GenAddr {
                    display,
                    uri,
                    angle,
                    params,
                }
            })
    }

    /// From / To: a tag (maybe) and extension parameters, in any order.
    pub(crate) fn from_to() -> BoxedStrategy<GenAddr> {
        let params = (
            option::weighted(0.8, token()),
            vec(ext_param(), 0..2),
            any::<bool>(),
        )
            .prop_map(|(tag, mut ext, first)| {
                if let Some(t) = tag {
                    let p = ("tag".to_owned(), Some(GenValue::Token(t)));
                    if first {
                        ext.insert(0, p);
                    } else {
                        ext.push(p);
                    }
                }
                ext
            })
            .boxed();
        addr(params, false).boxed()
    }

    pub(crate) fn route() -> BoxedStrategy<GenAddr> {
        addr(vec(ext_param(), 0..2).boxed(), true).boxed()
    }

    /// qvalue (§25.1) with its value in thousandths.
    pub(crate) fn qvalue() -> BoxedStrategy<(String, u16)> {
        prop_oneof![
            (0u16..1000, 0usize..4).prop_map(|(q, digits)| {
                let text = match digits {
                    0 => "0".to_owned(),
                    1 => format!("0.{}", q / 100),
                    2 => format!("0.{:02}", q / 10),
                    _ => format!("0.{q:03}"),
                };
                let value = match digits {
                    0 => 0,
                    1 => q / 100 * 100,
                    2 => q / 10 * 10,
                    _ => q,
                };
                (text, value)
            }),
            select(vec!["1", "1.", "1.0", "1.00", "1.000"]).prop_map(|s| (s.to_owned(), 1000)),
            Just(("0.".to_owned(), 0)),
        ]
        .boxed()
    }

    /// One contact-param (§20.10) with `q` and `expires` (§20.10, §10.2.1.1).
    #[derive(Debug, Clone)]
    pub(crate) struct GenContact {
        pub(crate) addr: GenAddr,
        pub(crate) q: Option<(String, u16)>,
        pub(crate) expires: Option<u32>,
    }

    pub(crate) fn contact() -> BoxedStrategy<GenContact> {
        (
            addr(vec(ext_param(), 0..2).boxed(), false),
            option::of(qvalue()),
            option::of(any::<u32>()),
            option::weighted(0.2, Just(())),
            any::<bool>(),
        )
            .prop_map(|(mut addr, q, expires, instance, upper)| {
                let name = |n: &str| {
                    if upper {
                        n.to_ascii_uppercase()
                    } else {
                        n.to_owned()
                    }
                };
                if let Some((text, _)) = &q {
                    addr.params
                        .insert(0, (name("q"), Some(GenValue::Token(text.clone()))));
                }
                if let Some(e) = expires {
                    addr.params
                        .push((name("expires"), Some(GenValue::Token(e.to_string()))));
                }
                if instance.is_some() {
                    // RFC 5626: a quoted `<urn>` with a comma and a ';' inside.
                    addr.params.push((
                        "+sip.instance".to_owned(),
                        Some(GenValue::Quoted("<urn:uuid:f81d4fae,x;y>".to_owned())),
                    ));
                }
                GenContact { addr, q, expires }
            })
            .boxed()
    }

    // ---- messages -----------------------------------------------------------------

    /// Which header a line is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Kind {
        Via,
        From,
        To,
        CallId,
        CSeq,
        MaxForwards,
        Route,
        RecordRoute,
        Contact,
        ContentLength,
        ContentType,
        Subject,
        Extension,
    }

    #[derive(Debug, Clone)]
    pub(crate) enum GenHeader {
        Via(Vec<GenVia>),
        From(GenAddr),
        To(GenAddr),
        CallId(String),
        /// The number and its leading zeros; the method is the request's.
        CSeq(u32, u8),
        MaxForwards(u8, u8),
        Route(Vec<GenAddr>),
        RecordRoute(Vec<GenAddr>),
        Contact(Vec<GenContact>),
        ContactStar,
        /// Leading zeros of the length.
        ContentLength(u8),
        ContentType(String),
        Subject(Vec<String>),
        Extension(String, String),
    }

    /// A header and how its name is spelled: 0 canonical, 1 lower, 2 upper,
    /// 3 compact (when there is one), 4 alternating case.
    #[derive(Debug, Clone)]
    pub(crate) struct GenLine {
        pub(crate) header: GenHeader,
        pub(crate) name_style: u8,
    }

    #[derive(Debug, Clone)]
    pub(crate) enum GenStart {
        Request { method: String, uri: GenUri },
        Response { code: u16, reason: String },
    }

    /// A message and everything the generator decided about it.
    #[derive(Debug, Clone)]
    pub(crate) struct GenMessage {
        pub(crate) start: GenStart,
        /// The method in CSeq (the request's method for a request).
        pub(crate) cseq_method: String,
        pub(crate) lines: Vec<GenLine>,
        pub(crate) body: Vec<u8>,
        /// `SIP/2.0`, or another spelling of it (§7.1: case-insensitive).
        pub(crate) version: &'static str,
        /// CRLFs before the start line (§7.5), datagram only.
        pub(crate) leading_crlf: u8,
        /// Octets after the body in the datagram, dropped (§18.3).
        pub(crate) trailing: Vec<u8>,
        pub(crate) ws: Vec<u8>,
    }

    /// One rendered header line.
    #[derive(Debug, Clone)]
    pub(crate) struct Line {
        pub(crate) kind: Kind,
        /// The whole line with its CRLF.
        pub(crate) text: String,
        /// The name as written.
        pub(crate) name: String,
        /// The value within `text` (after the colon and SWS, before CRLF).
        pub(crate) value: Range<usize>,
        /// List elements within `text`.
        pub(crate) elems: Vec<Range<usize>>,
    }

    /// The wire form of a generated message.
    #[derive(Debug, Clone)]
    pub(crate) struct Rendered {
        /// The whole datagram (leading CRLFs and trailing octets included).
        pub(crate) wire: Vec<u8>,
        /// The message itself: start line to the end of the body.
        pub(crate) message: Vec<u8>,
        pub(crate) start_line: String,
        pub(crate) lines: Vec<Line>,
    }

    fn spell(canonical: &str, compact: Option<char>, style: u8) -> String {
        match style % 5 {
            0 => canonical.to_owned(),
            1 => canonical.to_ascii_lowercase(),
            2 => canonical.to_ascii_uppercase(),
            3 => compact.map_or_else(|| canonical.to_owned(), |c| c.to_string()),
            _ => canonical
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_ascii_lowercase()
                    } else {
                        c.to_ascii_uppercase()
                    }
                })
                .collect(),
        }
    }

    impl GenMessage {
        /// The message as sent on a stream: Content-Length present, nothing
        /// before or after it.
        pub(crate) fn for_stream(mut self) -> GenMessage {
            if !self
                .lines
                .iter()
                .any(|l| matches!(l.header, GenHeader::ContentLength(_)))
            {
                self.lines.push(GenLine {
                    header: GenHeader::ContentLength(0),
                    name_style: 0,
                });
            }
            self.leading_crlf = 0;
            self.trailing.clear();
            self
        }

        /// The same message without folded lines: every whitespace pick
        /// becomes one of the first three (none of which folds).
        pub(crate) fn unfolded(mut self) -> GenMessage {
            for w in &mut self.ws {
                *w %= 3;
            }
            self
        }

        /// Calls `f` on every Via hop of the message.
        pub(crate) fn for_each_via(&mut self, f: &mut dyn FnMut(&mut GenVia)) {
            for l in &mut self.lines {
                if let GenHeader::Via(v) = &mut l.header {
                    v.iter_mut().for_each(&mut *f);
                }
            }
        }

        /// Calls `f` on every URI of the message.
        pub(crate) fn for_each_uri(&mut self, f: &mut dyn FnMut(&mut GenUri)) {
            if let GenStart::Request { uri, .. } = &mut self.start {
                f(uri);
            }
            for l in &mut self.lines {
                match &mut l.header {
                    GenHeader::From(a) | GenHeader::To(a) => f(&mut a.uri),
                    GenHeader::Route(v) | GenHeader::RecordRoute(v) => {
                        v.iter_mut().for_each(|a| f(&mut a.uri));
                    }
                    GenHeader::Contact(v) => v.iter_mut().for_each(|c| f(&mut c.addr.uri)),
                    _ => {}
                }
            }
        }

        pub(crate) fn is_request(&self) -> bool {
            matches!(self.start, GenStart::Request { .. })
        }

        pub(crate) fn request_uri(&self) -> Option<&GenUri> {
            match &self.start {
                GenStart::Request { uri, .. } => Some(uri),
                GenStart::Response { .. } => None,
            }
        }

        pub(crate) fn headers(&self) -> impl Iterator<Item = &GenHeader> {
            self.lines.iter().map(|l| &l.header)
        }

        pub(crate) fn vias(&self) -> Vec<&GenVia> {
            self.headers()
                .filter_map(|h| match h {
                    GenHeader::Via(v) => Some(v),
                    _ => None,
                })
                .flatten()
                .collect()
        }

        pub(crate) fn from(&self) -> Option<&GenAddr> {
            self.headers().find_map(|h| match h {
                GenHeader::From(a) => Some(a),
                _ => None,
            })
        }

        pub(crate) fn to(&self) -> Option<&GenAddr> {
            self.headers().find_map(|h| match h {
                GenHeader::To(a) => Some(a),
                _ => None,
            })
        }

        pub(crate) fn call_id(&self) -> Option<&str> {
            self.headers().find_map(|h| match h {
                GenHeader::CallId(c) => Some(c.as_str()),
                _ => None,
            })
        }

        pub(crate) fn cseq(&self) -> Option<u32> {
            self.headers().find_map(|h| match h {
                GenHeader::CSeq(n, _) => Some(*n),
                _ => None,
            })
        }

        pub(crate) fn max_forwards(&self) -> Option<u8> {
            self.headers().find_map(|h| match h {
                GenHeader::MaxForwards(n, _) => Some(*n),
                _ => None,
            })
        }

        pub(crate) fn routes(&self) -> Vec<&GenAddr> {
            self.headers()
                .filter_map(|h| match h {
                    GenHeader::Route(v) => Some(v),
                    _ => None,
                })
                .flatten()
                .collect()
        }

        pub(crate) fn record_routes(&self) -> Vec<&GenAddr> {
            self.headers()
                .filter_map(|h| match h {
                    GenHeader::RecordRoute(v) => Some(v),
                    _ => None,
                })
                .flatten()
                .collect()
        }

        /// Contacts in order; `None` for `Contact: *`.
        pub(crate) fn contacts(&self) -> Vec<Option<&GenContact>> {
            let mut out = Vec::new();
            for h in self.headers() {
                match h {
                    GenHeader::Contact(v) => out.extend(v.iter().map(Some)),
                    GenHeader::ContactStar => out.push(None),
                    _ => {}
                }
            }
            out
        }

        pub(crate) fn has_content_length(&self) -> bool {
            self.headers()
                .any(|h| matches!(h, GenHeader::ContentLength(_)))
        }

        pub(crate) fn render(&self) -> Rendered {
            let mut o = Out::new(&self.ws);
            let start_line = match &self.start {
                GenStart::Request { method, uri } => {
                    format!("{method} {} {}", uri.render(), self.version)
                }
                GenStart::Response { code, reason } => {
                    format!("{} {code} {reason}", self.version)
                }
            };
            let mut lines = Vec::new();
            for l in &self.lines {
                lines.push(self.render_line(l, &mut o));
            }
            let mut message = Vec::new();
            message.extend_from_slice(start_line.as_bytes());
            message.extend_from_slice(b"\r\n");
            for l in &lines {
                message.extend_from_slice(l.text.as_bytes());
            }
            message.extend_from_slice(b"\r\n");
            message.extend_from_slice(&self.body);
            let mut wire = b"\r\n".repeat(usize::from(self.leading_crlf));
            wire.extend_from_slice(&message);
            if self.has_content_length() {
                wire.extend_from_slice(&self.trailing);
            }
            Rendered {
                wire,
                message,
                start_line,
                lines,
            }
        }

        fn render_line(&self, l: &GenLine, o: &mut Out<'_>) -> Line {
            let (kind, canonical, compact) = match &l.header {
                GenHeader::Via(_) => (Kind::Via, "Via", Some('v')),
                GenHeader::From(_) => (Kind::From, "From", Some('f')),
                GenHeader::To(_) => (Kind::To, "To", Some('t')),
                GenHeader::CallId(_) => (Kind::CallId, "Call-ID", Some('i')),
                GenHeader::CSeq(..) => (Kind::CSeq, "CSeq", None),
                GenHeader::MaxForwards(..) => (Kind::MaxForwards, "Max-Forwards", None),
                GenHeader::Route(_) => (Kind::Route, "Route", None),
                GenHeader::RecordRoute(_) => (Kind::RecordRoute, "Record-Route", None),
                GenHeader::Contact(_) | GenHeader::ContactStar => {
                    (Kind::Contact, "Contact", Some('m'))
                }
                GenHeader::ContentLength(_) => (Kind::ContentLength, "Content-Length", Some('l')),
                GenHeader::ContentType(_) => (Kind::ContentType, "Content-Type", Some('c')),
                GenHeader::Subject(_) => (Kind::Subject, "Subject", Some('s')),
                GenHeader::Extension(n, _) => (Kind::Extension, n.as_str(), None),
            };
            let name = spell(canonical, compact, l.name_style);
            o.s.clear();
            o.push(&name);
            o.hws();
            o.push(":");
            o.sws();
            let value_start = o.len();
            let mut elems = Vec::new();
            match &l.header {
                GenHeader::Via(hops) => list(o, hops, &mut elems, |o, v| v.render(o)),
                GenHeader::From(a) | GenHeader::To(a) => a.render(o),
                GenHeader::CallId(c) => o.push(c),
                GenHeader::CSeq(n, zeros) => {
                    o.push(&"0".repeat(usize::from(*zeros)));
                    o.push(&n.to_string());
                    o.lws();
                    o.push(&self.cseq_method);
                }
                GenHeader::MaxForwards(n, zeros) => {
                    o.push(&"0".repeat(usize::from(*zeros)));
                    o.push(&n.to_string());
                }
                GenHeader::Route(v) | GenHeader::RecordRoute(v) => {
                    list(o, v, &mut elems, |o, a| a.render(o));
                }
                GenHeader::Contact(v) => list(o, v, &mut elems, |o, c| c.addr.render(o)),
                GenHeader::ContactStar => o.push("*"),
                GenHeader::ContentLength(zeros) => {
                    o.push(&"0".repeat(usize::from(*zeros)));
                    o.push(&self.body.len().to_string());
                }
                GenHeader::ContentType(t) => o.push(t),
                GenHeader::Subject(words) => {
                    for (i, w) in words.iter().enumerate() {
                        if i > 0 {
                            o.lws();
                        }
                        o.push(w);
                    }
                }
                GenHeader::Extension(_, v) => o.push(v),
            }
            let value = value_start..o.len();
            o.push("\r\n");
            Line {
                kind,
                text: o.s.clone(),
                name,
                value,
                elems,
            }
        }
    }

    /// Writes list elements separated by COMMA = SWS "," SWS (§7.3.1).
    fn list<T>(
        o: &mut Out<'_>,
        items: &[T],
        elems: &mut Vec<Range<usize>>,
        f: impl Fn(&mut Out<'_>, &T),
    ) {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                o.sws();
                o.push(",");
                o.sws();
            }
            let start = o.len();
            f(o, item);
            elems.push(start..o.len());
        }
    }

    /// word [ "@" word ] (§25.1).
    pub(crate) fn call_id() -> BoxedStrategy<String> {
        const WORD: &str = r#"[a-zA-Z0-9.!%*_+`'~()<>:\\"/\[\]?{}-]"#;
        proptest::string::string_regex(&format!("{WORD}{{1,16}}(@{WORD}{{1,12}})?"))
            .unwrap()
            .boxed()
    }

    /// Reason-Phrase = *(reserved / unreserved / escaped / UTF8-NONASCII /
    /// UTF8-CONT / SP / HTAB) (§25.1).
    pub(crate) fn reason() -> BoxedStrategy<String> {
        vec(
            prop_oneof![
                6 => r"[a-zA-Z0-9;/?:@&=+$,_.!~*'() \t-]{1,6}",
                1 => r"%[0-9a-fA-F]{2}",
                1 => select(vec!["é", "Überweisung", "日本語", "🙂"]).prop_map(String::from),
            ],
            0..4,
        )
        .prop_map(|v| v.concat())
        .boxed()
    }

    /// An extension header's value: tokens, quoted strings with commas,
    /// `<>` groups with commas, separated by spaces, commas and `;`.
    pub(crate) fn ext_value() -> BoxedStrategy<String> {
        vec(
            (
                prop_oneof![
                    3 => token(),
                    1 => quoted_content().prop_map(|q| format!("\"{q}\"")),
                    1 => uri().prop_map(|u| format!("<{}>", u.render())),
                ],
                select(vec![" ", ", ", ",", " ;", "=", "\r\n "]),
            ),
            0..5,
        )
        .prop_map(|parts| {
            let mut s = String::new();
            for (i, (piece, sep)) in parts.iter().enumerate() {
                if i > 0 {
                    s.push_str(sep);
                }
                s.push_str(piece);
            }
            s
        })
        .boxed()
    }

    fn start_line() -> BoxedStrategy<GenStart> {
        prop_oneof![
            3 => (method_token(), uri())
                .prop_map(|(method, uri)| GenStart::Request { method, uri }),
            1 => (100u16..700, reason())
                .prop_map(|(code, reason)| GenStart::Response { code, reason }),
        ]
        .boxed()
    }

    fn headers() -> BoxedStrategy<Vec<GenHeader>> {
        let core = (
            vec(vec(via(), 1..4).prop_map(GenHeader::Via), 1..3),
            from_to().prop_map(GenHeader::From),
            from_to().prop_map(GenHeader::To),
            call_id().prop_map(GenHeader::CallId),
            (0u32..1 << 31, 0u8..3).prop_map(|(n, z)| GenHeader::CSeq(n, z)),
            option::weighted(0.8, (any::<u8>(), 0u8..3))
                .prop_map(|mf| mf.map(|(n, z)| GenHeader::MaxForwards(n, z))),
        );
        let routing = (
            vec(vec(route(), 1..4).prop_map(GenHeader::Route), 0..3),
            vec(vec(route(), 1..3).prop_map(GenHeader::RecordRoute), 0..2),
            prop_oneof![
                6 => vec(vec(contact(), 1..4).prop_map(GenHeader::Contact), 0..3),
                1 => Just(vec![GenHeader::ContactStar]),
            ],
        );
        let other = (
            vec((r"X-[A-Za-z0-9-]{1,10}", ext_value()), 0..4),
            option::weighted(0.3, vec(r"[a-zA-Z0-9.,;:!?'()éü日-]{1,8}", 1..4)),
            option::weighted(
                0.3,
                select(vec![
                    "application/sdp",
                    "text/plain;charset=UTF-8",
                    "multipart/mixed ; boundary=\"x,y\"",
                ]),
            ),
            option::weighted(0.9, 0u8..3),
        );
        (core, routing, other)
            .prop_map(|(core, routing, other)| {
                let (vias, from, to, call_id, cseq, mf) = core;
                let (routes, rrs, contacts) = routing;
                let (exts, subject, ctype, cl) = other;
                let mut v = vias;
                v.extend([from, to, call_id, cseq]);
                v.extend(mf);
                v.extend(routes);
                v.extend(rrs);
                v.extend(contacts);
                v.extend(
                    exts.into_iter()
                        .map(|(n, val)| GenHeader::Extension(n, val)),
                );
                v.extend(subject.map(GenHeader::Subject));
                v.extend(ctype.map(|t| GenHeader::ContentType(t.to_owned())));
                v.extend(cl.map(GenHeader::ContentLength));
                v
            })
            .boxed()
    }

    /// A valid message, headers in any order.
    pub(crate) fn message() -> BoxedStrategy<GenMessage> {
        (
            start_line(),
            method_token(),
            headers().prop_shuffle(),
            vec(0u8..5, 24),
            vec(any::<u8>(), 0..48),
            0u8..3,
            prop_oneof![3 => Just(Vec::new()), 1 => vec(any::<u8>(), 1..16)],
            vec(any::<u8>(), 0..40),
            select(vec!["SIP/2.0", "SIP/2.0", "SIP/2.0", "sip/2.0"]),
        )
            .prop_map(
                |(start, other_method, headers, styles, body, crlf, trailing, ws, version)| {
                    let cseq_method = match &start {
                        GenStart::Request { method, .. } => method.clone(),
                        GenStart::Response { .. } => other_method,
                    };
                    let lines = headers
                        .into_iter()
                        .zip(styles.iter().cycle())
                        .map(|(header, &name_style)| GenLine { header, name_style })
                        .collect();
                    GenMessage {
                        start,
                        cseq_method,
                        lines,
                        body,
                        version,
                        leading_crlf: crlf,
                        trailing,
                        ws,
                    }
                },
            )
            .boxed()
    }
}

// ---- configuration ---------------------------------------------------------------

/// `cases` cases in this file's own test binary; none when `differential.rs`
/// includes this file for its generators (its test binary would otherwise
/// run every property a second time). Failures are never persisted: the
/// tests own no files besides themselves.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: if module_path!() == "properties" {
            cases
        } else {
            0
        },
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn parse(bytes: &[u8]) -> Result<SipMessage, ParseError> {
    SipMessage::parse(Bytes::copy_from_slice(bytes))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---- checks of typed values against the generator -------------------------------------

/// Whether our parse of a URI holds what the generator wrote.
fn check_uri(got: &Uri<'_>, want: &GenUri) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.as_str(), want.render());
    match (got, want) {
        (Uri::Sip(u), GenUri::Sip(w)) => check_sip_uri(u, w)?,
        (Uri::Tel(t), GenUri::Tel(number, params)) => {
            prop_assert_eq!(t.number(), number.as_str());
            let got: Vec<_> = t.params().iter().collect();
            let want: Vec<_> = params
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_deref()))
                .collect();
            prop_assert_eq!(got, want);
        }
        (Uri::Other(_), GenUri::Other(_)) => {}
        _ => prop_assert!(false, "wrong URI kind: {:?} for {:?}", got, want),
    }
    Ok(())
}

fn check_sip_uri(u: &sip_message::SipUri<'_>, w: &GenSipUri) -> Result<(), TestCaseError> {
    prop_assert_eq!(u.is_secure(), w.secure());
    prop_assert_eq!(u.user(), w.user.as_deref());
    prop_assert_eq!(u.password(), w.password.as_deref());
    prop_assert!(
        w.host.matches(&u.host()),
        "host {:?} vs {:?}",
        u.host(),
        w.host
    );
    prop_assert_eq!(u.host_str(), w.host.render());
    prop_assert_eq!(u.port(), w.port);
    let got: Vec<_> = u.params().iter().collect();
    let want: Vec<_> = w
        .params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_deref()))
        .collect();
    prop_assert_eq!(got, want);
    let headers = (!w.headers.is_empty()).then(|| w.headers_str());
    prop_assert_eq!(u.headers(), headers.as_deref());
    Ok(())
}

fn check_addr(got: &sip_message::NameAddr<'_>, want: &model::GenAddr) -> Result<(), TestCaseError> {
    check_uri(got.uri(), &want.uri)?;
    prop_assert_eq!(got.is_name_addr(), want.angle);
    match &want.display {
        model::GenDisplay::None => prop_assert_eq!(got.display_name(), None),
        model::GenDisplay::Quoted(q) => {
            prop_assert_eq!(got.display_name(), Some(q.as_str()));
            prop_assert!(got.display_name_is_quoted());
        }
        model::GenDisplay::Tokens(words) => {
            let d = got.display_name().unwrap_or_default();
            let got_words: Vec<_> = d
                .split([' ', '\t', '\r', '\n'])
                .filter(|w| !w.is_empty())
                .collect();
            prop_assert_eq!(&got_words, words);
        }
    }
    let got: Vec<_> = got
        .params()
        .iter()
        .map(|(n, v)| (n.to_owned(), v.map(str::to_owned)))
        .collect();
    let want: Vec<_> = want
        .params
        .iter()
        .map(|(n, v)| {
            let v = v.as_ref().map(|v| match v {
                // Params report a quoted value without its quotes.
                model::GenValue::Quoted(q) => q.clone(),
                other => other.render(),
            });
            (n.clone(), v)
        })
        .collect();
    prop_assert_eq!(got, want);
    Ok(())
}

fn check_via(got: &h::Via<'_>, want: &model::GenVia) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.protocol_name(), want.protocol.as_str());
    prop_assert_eq!(got.protocol_version(), want.version.as_str());
    prop_assert_eq!(got.transport(), want.transport.as_str());
    prop_assert!(
        want.host.matches(&got.host()),
        "via host {:?} vs {:?}",
        got.host(),
        want.host
    );
    prop_assert_eq!(got.port(), want.port);
    prop_assert_eq!(got.branch(), want.branch());
    prop_assert_eq!(got.received(), want.received());
    prop_assert_eq!(got.rport(), want.rport());
    prop_assert_eq!(got.ttl(), want.ttl());
    Ok(())
}

/// Every typed value the generator knows, read back from our parse.
fn check_message(msg: &SipMessage, m: &GenMessage, r: &Rendered) -> Result<(), TestCaseError> {
    // The index: one entry per line, names and values where they were written.
    prop_assert_eq!(msg.headers().count(), r.lines.len());
    for (got, want) in msg.headers().zip(&r.lines) {
        prop_assert_eq!(lossy(got.wire_name()), want.name.clone());
        prop_assert_eq!(
            lossy(got.value_bytes()),
            want.text[want.value.clone()].to_owned()
        );
    }
    match &m.start {
        model::GenStart::Request { method, uri } => {
            prop_assert_eq!(msg.method().map(|m| m.as_str()), Some(method.as_str()));
            prop_assert_eq!(msg.method(), Some(Method::from_token(method)));
            let got = msg.request_uri().expect("Request-URI");
            check_uri(&got, uri)?;
        }
        model::GenStart::Response { code, reason } => {
            prop_assert_eq!(msg.status(), Some(*code));
            prop_assert_eq!(msg.reason(), Some(reason.as_str()));
        }
    }
    let vias: Vec<_> = msg.typed_all::<h::Via<'_>>().collect::<Result<_, _>>()?;
    let want = m.vias();
    prop_assert_eq!(vias.len(), want.len());
    for (got, want) in vias.iter().zip(&want) {
        check_via(got, want)?;
    }
    let from = msg.typed::<h::From<'_>>().expect("From")?;
    let want = m.from().expect("generated");
    check_addr(&from, want)?;
    prop_assert_eq!(from.tag().map(str::to_owned), want.param("tag").flatten());
    let to = msg.typed::<h::To<'_>>().expect("To")?;
    let want = m.to().expect("generated");
    check_addr(&to, want)?;
    prop_assert_eq!(to.tag().map(str::to_owned), want.param("tag").flatten());
    prop_assert_eq!(
        msg.typed::<h::CallId<'_>>().expect("Call-ID")?.0,
        m.call_id().expect("generated")
    );
    let cseq = msg.typed::<h::CSeq<'_>>().expect("CSeq")?;
    prop_assert_eq!(Some(cseq.seq), m.cseq());
    prop_assert_eq!(cseq.method.as_str(), m.cseq_method.as_str());
    prop_assert_eq!(
        msg.typed::<h::MaxForwards>().transpose()?.map(|v| v.0),
        m.max_forwards()
    );
    let routes: Vec<_> = msg.typed_all::<h::Route<'_>>().collect::<Result<_, _>>()?;
    let want = m.routes();
    prop_assert_eq!(routes.len(), want.len());
    for (got, want) in routes.iter().zip(&want) {
        check_addr(got, want)?;
    }
    let rrs: Vec<_> = msg
        .typed_all::<h::RecordRoute<'_>>()
        .collect::<Result<_, _>>()?;
    prop_assert_eq!(rrs.len(), m.record_routes().len());
    let contacts: Vec<_> = msg
        .typed_all::<h::Contact<'_>>()
        .collect::<Result<_, _>>()?;
    let want = m.contacts();
    prop_assert_eq!(contacts.len(), want.len());
    for (got, want) in contacts.iter().zip(&want) {
        match (got, want) {
            (h::Contact::Star, None) => {}
            (h::Contact::Addr(a), Some(w)) => {
                check_addr(a, &w.addr)?;
                prop_assert_eq!(got.q(), w.q.as_ref().map(|q| q.1));
                prop_assert_eq!(got.expires(), w.expires);
            }
            _ => prop_assert!(false, "contact {:?} vs {:?}", got, want),
        }
    }
    let cl = m
        .has_content_length()
        .then(|| u32::try_from(m.body.len()).unwrap());
    prop_assert_eq!(msg.content_length(), cl);
    prop_assert_eq!(
        msg.typed::<h::ContentLength>().transpose()?.map(|c| c.0),
        cl
    );
    if cl.is_some() {
        prop_assert_eq!(msg.body(), &m.body[..]);
    } else {
        // Without Content-Length a datagram's body is the rest of it (§18.3).
        prop_assert_eq!(msg.body(), &r.wire[r.wire.len() - m.body.len()..]);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    /// parse, then serialize unedited: the same bytes; every typed value is
    /// the one written.
    #[test]
    fn parse_serialize_round_trip(m in model::message()) {
        let r = m.render();
        let msg = match parse(&r.wire) {
            Ok(msg) => msg,
            Err(e) => return Err(TestCaseError::fail(format!("{e}: {:?}", lossy(&r.wire)))),
        };
        prop_assert_eq!(&msg.message_bytes()[..], &r.message[..]);
        prop_assert_eq!(&msg.edit().to_bytes()[..], &r.message[..]);
        let again = parse(&msg.message_bytes()).unwrap();
        prop_assert_eq!(again.headers().count(), msg.headers().count());
        check_message(&msg, &m, &r).map_err(|e| {
            TestCaseError::fail(format!("{e}\nmessage: {:?}", lossy(&r.wire)))
        })?;
        // A forwarder may act on every generated message; a UAS too, unless
        // the Request-URI has headers (§19.1.5) or an unknown scheme (§8.2.2.1).
        prop_assert_eq!(validate(&msg, Role::Forward), Ok(()), "{:?}", lossy(&r.wire));
        let uas_ok = match m.request_uri() {
            Some(GenUri::Sip(u)) => u.headers.is_empty(),
            Some(GenUri::Other(_)) => false,
            _ => true,
        };
        if uas_ok {
            prop_assert_eq!(validate(&msg, Role::Uas), Ok(()), "{:?}", lossy(&r.wire));
        }
    }
}

// ---- URIs ---------------------------------------------------------------------------

fn parse_uri(text: &str) -> Result<Uri<'_>, TestCaseError> {
    Uri::parse(text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))
}

/// A variant of `u` that RFC 3261 §19.1.4 calls the same URI: scheme,
/// host and parameter names and values in another case ("comparison of
/// all other components of the URI is case-insensitive"), parameters in
/// another order ("the ordering of parameters and header fields is not
/// significant").
fn same_uri_respelled(u: &GenSipUri, order: &[usize]) -> GenSipUri {
    let mut v = u.clone();
    v.scheme = model::flip_case(&v.scheme);
    v.host = v.host.case_flipped();
    v.params = order
        .iter()
        .filter_map(|&i| u.params.get(i))
        .map(|(n, val)| (model::flip_case(n), val.as_deref().map(model::flip_case)))
        .collect();
    v.headers.reverse();
    v
}

/// Positions of the octets of `s` that are not part of a `%HH` escape.
fn unescaped_positions(s: &str) -> Vec<usize> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            i += 3;
        } else {
            out.push(i);
            i += 1;
        }
    }
    out
}

/// `s` with the octet at `i` written as `%HH`.
fn escape_at(s: &str, i: usize, upper: bool) -> String {
    let hex = if upper {
        format!("%{:02X}", s.as_bytes()[i])
    } else {
        format!("%{:02x}", s.as_bytes()[i])
    };
    format!("{}{hex}{}", &s[..i], &s[i + 1..])
}

proptest! {
    #![proptest_config(config(256))]

    /// Every part of a generated URI reads back as written.
    #[test]
    fn uris_parse_back(u in model::uri()) {
        let text = u.render();
        let parsed = parse_uri(&text)?;
        check_uri(&parsed, &u)?;
        prop_assert_eq!(parsed.to_string(), text);
    }

    /// §19.1.4 equality is reflexive and symmetric, and ignores the case of
    /// scheme, host and parameters and the order of parameters and headers.
    #[test]
    fn eq_rfc_reflexive_symmetric_case_insensitive(
        u in model::sip_uri(),
        other in model::uri(),
        order in Just((0..4).collect::<Vec<usize>>()).prop_shuffle(),
    ) {
        let text = u.render();
        let a = parse_uri(&text)?;
        prop_assert!(a.eq_rfc(&a), "not reflexive: {}", text);
        let again = parse_uri(&text)?;
        prop_assert!(a.eq_rfc(&again));

        let order: Vec<usize> = order.into_iter().filter(|&i| i < u.params.len()).collect();
        let respelled = same_uri_respelled(&u, &order).render();
        let b = parse_uri(&respelled)?;
        prop_assert!(a.eq_rfc(&b), "{} != {}", text, respelled);
        prop_assert!(b.eq_rfc(&a), "{} != {}", respelled, text);

        let other_text = other.render();
        let c = parse_uri(&other_text)?;
        prop_assert_eq!(a.eq_rfc(&c), c.eq_rfc(&a), "{} vs {}", text, other_text);
        prop_assert_eq!(b.eq_rfc(&c), c.eq_rfc(&b), "{} vs {}", respelled, other_text);
    }

    /// Userinfo compares case-sensitively (§19.1.4), and an unreserved
    /// character equals its `%HH` escape.
    #[test]
    fn eq_rfc_userinfo(
        u in model::sip_uri(),
        user in model::user(),
        pick in any::<prop::sample::Index>(),
        upper in any::<bool>(),
    ) {
        let u = GenSipUri { user: Some(user.clone()), ..u };
        let a_text = u.render();
        let a = parse_uri(&a_text)?;
        let positions = unescaped_positions(&user);
        prop_assume!(!positions.is_empty());
        let i = positions[pick.index(positions.len())];
        let c = user.as_bytes()[i];

        if c.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&c) {
            let mut v = u.clone();
            v.user = Some(escape_at(&user, i, upper));
            let b_text = v.render();
            let b = parse_uri(&b_text)?;
            prop_assert!(a.eq_rfc(&b), "{} != {}", a_text, b_text);
            prop_assert!(b.eq_rfc(&a), "{} != {}", b_text, a_text);
        }
        if c.is_ascii_alphabetic() {
            let mut v = u.clone();
            let mut flipped = user.clone().into_bytes();
            flipped[i] ^= 0x20;
            v.user = Some(String::from_utf8(flipped).unwrap());
            let b_text = v.render();
            let b = parse_uri(&b_text)?;
            prop_assert!(!a.eq_rfc(&b), "{} == {}", a_text, b_text);
            prop_assert!(!b.eq_rfc(&a), "{} == {}", b_text, a_text);
        }
    }
}

// ---- edits ----------------------------------------------------------------------------

const NEW_VIA: &str = "SIP/2.0/TCP proxy.example.net:5070;branch=z9hG4bKproxy1";

/// What a proxy's three edits must produce, built from the generator's
/// lines: the new Via above the first, Max-Forwards one less in place (or a
/// new one at the end, §16.6 step 3), the first Route value gone (§16.4).
fn expected_forward(m: &GenMessage, r: &Rendered) -> Vec<u8> {
    let mut out = format!("{}\r\n", r.start_line);
    let mut via_done = false;
    let first_route = r.lines.iter().position(|l| l.kind == Kind::Route);
    for (i, l) in r.lines.iter().enumerate() {
        if l.kind == Kind::Via && !via_done {
            out.push_str(&format!("Via: {NEW_VIA}\r\n"));
            via_done = true;
        }
        match l.kind {
            Kind::MaxForwards if m.max_forwards() != Some(0) => {
                let n = m.max_forwards().unwrap() - 1;
                out.push_str(&l.text[..l.value.start]);
                out.push_str(&n.to_string());
                out.push_str(&l.text[l.value.end..]);
            }
            Kind::Route if Some(i) == first_route => {
                if l.elems.len() > 1 {
                    out.push_str(&l.text[..l.elems[0].start]);
                    out.push_str(&l.text[l.elems[1].start..]);
                }
            }
            _ => out.push_str(&l.text),
        }
    }
    if m.max_forwards().is_none() {
        out.push_str("Max-Forwards: 70\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&m.body);
    out
}

proptest! {
    #![proptest_config(config(256))]

    /// prepend_via + decrement_max_forwards + pop_route change exactly what
    /// they should; every other byte is as received.
    #[test]
    fn forward_edits_are_exact(m in model::message().prop_map(GenMessage::for_stream)) {
        let r = m.render();
        let msg = parse(&r.wire).unwrap();
        let mut e = msg.edit();
        e.prepend_via(NEW_VIA).unwrap();
        let mf = e.decrement_max_forwards();
        let want_mf = match m.max_forwards() {
            None => Ok(70),
            Some(0) => Err(EditError::TooManyHops),
            Some(n) => Ok(n - 1),
        };
        prop_assert_eq!(mf, want_mf);
        let routes = m.routes();
        let popped = e.pop_route().map(|_| ()).map_err(|e| e.to_owned());
        prop_assert_eq!(popped, if routes.is_empty() { Err(EditError::NoRoute) } else { Ok(()) });
        let len = e.len();
        let out = e.to_bytes();
        prop_assert_eq!(out.len(), len);
        let want = expected_forward(&m, &r);
        prop_assert_eq!(lossy(&out), lossy(&want));

        let fwd = parse(&out).unwrap();
        let vias: Vec<_> = fwd.typed_all::<h::Via<'_>>().collect::<Result<_, _>>()?;
        prop_assert_eq!(vias.len(), m.vias().len() + 1);
        prop_assert_eq!(vias[0].branch(), Some("z9hG4bKproxy1"));
        for (got, want) in vias[1..].iter().zip(m.vias()) {
            check_via(got, want)?;
        }
        let mf = fwd.typed::<h::MaxForwards>().unwrap()?.0;
        prop_assert_eq!(mf, m.max_forwards().map_or(70, |n| n.saturating_sub(1)));
        let got: Vec<String> = fwd
            .typed_all::<h::Route<'_>>()
            .map(|r| r.map(|r| r.uri().to_string()))
            .collect::<Result<_, _>>()?;
        let want: Vec<String> = routes.iter().skip(1).map(|a| a.uri.render()).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(fwd.body(), &m.body[..]);
    }
}

// ---- stream framing ---------------------------------------------------------------------

proptest! {
    #![proptest_config(config(128))]

    /// The framer cuts the same messages out of a stream however it is
    /// chunked, with CRLFCRLF pings (RFC 5626 §4.4.1) between them.
    #[test]
    fn framer_is_chunking_independent(
        msgs in proptest::collection::vec(model::message().prop_map(GenMessage::for_stream), 1..4),
        pings in proptest::collection::vec(0usize..3, 4),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..24),
    ) {
        let mut stream = Vec::new();
        let mut want = Vec::new();
        let mut want_pings = 0;
        for (i, m) in msgs.iter().enumerate() {
            stream.extend_from_slice(&b"\r\n\r\n".repeat(pings[i]));
            want_pings += pings[i];
            let r = m.render();
            stream.extend_from_slice(&r.message);
            want.push(r.message);
        }
        stream.extend_from_slice(&b"\r\n\r\n".repeat(pings[3]));
        want_pings += pings[3];

        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        at.push(0);
        at.push(stream.len());
        at.sort_unstable();
        at.dedup();
        let mut framer = StreamFramer::default();
        let mut buf = BytesMut::new();
        let (mut got, mut got_pings, mut pongs) = (Vec::new(), 0, 0);
        for w in at.windows(2) {
            buf.extend_from_slice(&stream[w[0]..w[1]]);
            while let Some(frame) = framer.next_frame(&mut buf).map_err(|e| {
                TestCaseError::fail(format!("{e} at {at:?} in {:?}", lossy(&stream)))
            })? {
                match frame {
                    Frame::Message(b) => got.push(b.to_vec()),
                    Frame::Ping => got_pings += 1,
                    Frame::Pong => pongs += 1,
                }
            }
        }
        prop_assert!(buf.is_empty(), "left over: {:?}", lossy(&buf));
        prop_assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            prop_assert_eq!(lossy(g), lossy(w));
            let framed = SipMessage::parse_with(
                Bytes::copy_from_slice(g),
                Transport::Stream,
                &Limits::default(),
            );
            prop_assert!(framed.is_ok(), "{:?}", framed);
        }
        // A ping split after its first CRLF reads as two pongs.
        prop_assert_eq!(2 * got_pings + pongs, 2 * want_pings);
    }
}

// ---- responses ------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(128))]

    /// A UAS can answer every valid request (§8.2.6.2): the response copies
    /// Via, From, To, Call-ID and CSeq, and adds a To tag when there was none.
    #[test]
    fn responses_build_for_every_request(m in model::message().prop_map(GenMessage::unfolded)) {
        prop_assume!(m.is_request());
        let r = m.render();
        // A folded quoted string: see `known_bug_response_to_a_folded_request`.
        prop_assume!(!r.lines.iter().any(|l| {
            matches!(l.kind, Kind::Via | Kind::From | Kind::To) && l.text.trim_end().contains('\n')
        }));
        let req = parse(&r.wire).unwrap();
        let resp = ResponseBuilder::for_request(&req, 180, Some("uas-tag"))
            .and_then(ResponseBuilder::build);
        let resp = match resp {
            Ok(resp) => resp,
            Err(e) => return Err(TestCaseError::fail(format!("{e}: {:?}", lossy(&r.wire)))),
        };
        // The builder's own index is the one a parse of its bytes makes.
        prop_assert_eq!(&resp, &parse(&resp.message_bytes()).unwrap());
        let got: Vec<_> = resp.typed_all::<h::Via<'_>>().collect::<Result<_, _>>()?;
        prop_assert_eq!(got.len(), m.vias().len());
        for (g, w) in got.iter().zip(m.vias()) {
            check_via(g, w)?;
        }
        let to = resp.typed::<h::To<'_>>().unwrap()?;
        let want_tag = m.to().unwrap().param("tag").flatten();
        let want_tag = want_tag.unwrap_or_else(|| "uas-tag".to_owned());
        prop_assert_eq!(to.tag(), Some(want_tag.as_str()));
        prop_assert_eq!(resp.typed::<h::CallId<'_>>().unwrap()?.0, m.call_id().unwrap());
        prop_assert_eq!(resp.typed::<h::CSeq<'_>>().unwrap()?.seq, m.cseq().unwrap());
    }
}

// ---- hostile input ---------------------------------------------------------------------

/// Runs one value through every typed parser and every accessor.
fn every_typed_parser(v: &str) {
    fn parse<'a, T: TypedHeader<'a>>(v: &'a str) -> Option<T> {
        T::parse(v).ok()
    }
    if let Some(via) = parse::<h::Via<'_>>(v) {
        let _ = (
            via.branch(),
            via.received(),
            via.rport(),
            via.maddr(),
            via.ttl(),
        );
        let _ = (
            via.host(),
            via.port(),
            via.has_magic_cookie(),
            via.params().iter().count(),
        );
    }
    for a in [
        parse::<h::From<'_>>(v).map(|a| a.0),
        parse::<h::To<'_>>(v).map(|a| a.0),
        parse::<h::Route<'_>>(v).map(|a| a.0),
        parse::<h::RecordRoute<'_>>(v).map(|a| a.0),
        parse::<h::Path<'_>>(v).map(|a| a.0),
        parse::<h::ReferTo<'_>>(v).map(|a| a.0),
        parse::<h::ReferredBy<'_>>(v).map(|a| a.0),
        parse::<h::PAssertedIdentity<'_>>(v).map(|a| a.0),
    ]
    .into_iter()
    .flatten()
    {
        let _ = (
            a.tag(),
            a.display_name(),
            a.to_string(),
            a.params().iter().count(),
        );
        let _ = a.uri().eq_rfc(a.uri());
    }
    if let Some(c) = parse::<h::Contact<'_>>(v) {
        let _ = (
            c.q(),
            c.expires(),
            c.instance(),
            c.reg_id(),
            c.addr().map(ToString::to_string),
        );
    }
    let _ = (parse::<h::CallId<'_>>(v), parse::<h::CSeq<'_>>(v));
    let _ = (
        parse::<h::MaxForwards>(v),
        parse::<h::ContentLength>(v),
        parse::<h::Expires>(v),
    );
    let _ = (
        parse::<h::MinExpires>(v),
        parse::<h::RSeq>(v),
        parse::<h::MinSe>(v),
    );
    if let Some(ct) = parse::<h::ContentType<'_>>(v) {
        let _ = (ct.is("application", "sdp"), ct.params.iter().count());
    }
    let _ = (parse::<h::Supported<'_>>(v), parse::<h::Require<'_>>(v));
    let _ = (
        parse::<h::ProxyRequire<'_>>(v),
        parse::<h::Unsupported<'_>>(v),
    );
    let _ = (parse::<h::AllowEvents<'_>>(v), parse::<h::Allow<'_>>(v));
    for c in [
        parse::<h::WwwAuthenticate<'_>>(v).map(|c| c.0),
        parse::<h::ProxyAuthenticate<'_>>(v).map(|c| c.0),
    ]
    .into_iter()
    .flatten()
    {
        let _ = (
            c.realm(),
            c.nonce(),
            c.opaque(),
            c.stale(),
            c.algorithm(),
            c.domain(),
        );
        let _ = (
            c.qop_options().count(),
            c.userhash(),
            c.is_digest(),
            c.params.iter().count(),
        );
    }
    for c in [
        parse::<h::Authorization<'_>>(v).map(|c| c.0),
        parse::<h::ProxyAuthorization<'_>>(v).map(|c| c.0),
    ]
    .into_iter()
    .flatten()
    {
        let _ = (
            c.username(),
            c.realm(),
            c.nonce(),
            c.uri(),
            c.response(),
            c.algorithm(),
        );
        let _ = (
            c.cnonce(),
            c.opaque(),
            c.qop(),
            c.nonce_count(),
            c.userhash(),
            c.is_digest(),
        );
    }
    if let Some(e) = parse::<h::Event<'_>>(v) {
        let _ = (e.package(), e.id());
    }
    if let Some(s) = parse::<h::SubscriptionState<'_>>(v) {
        let _ = (s.expires(), s.reason(), s.retry_after());
    }
    let _ = parse::<h::RAck<'_>>(v);
    if let Some(r) = parse::<h::Replaces<'_>>(v) {
        let _ = (r.to_tag(), r.from_tag(), r.early_only());
    }
    if let Some(s) = parse::<h::SessionExpires<'_>>(v) {
        let _ = s.refresher();
    }
    if let Some(r) = parse::<h::Reason<'_>>(v) {
        let _ = (r.cause(), r.text());
    }
    let _ = (parse::<h::RetryAfter<'_>>(v), parse::<h::Timestamp<'_>>(v));
    if let Some(d) = parse::<h::Date>(v) {
        let _ = d.unix_seconds();
    }
    if let Ok(u) = Uri::parse(v) {
        let _ = (u.scheme(), u.eq_rfc(&u), u.to_string());
        if let Some(s) = u.as_sip() {
            let _ = (
                s.transport(),
                s.lr(),
                s.maddr(),
                s.user_param(),
                s.params().iter().count(),
            );
        }
    }
    let _ = (
        Host::parse(v),
        Host::parse_lenient(v),
        Method::parse(v),
        sip_message::unescape(v),
    );
    let _ = HeaderName::from_bytes(v.as_bytes());
}

/// Runs bytes through the parser, the validators, every typed header of the
/// message, the editor and the framer. Nothing may panic; a message that
/// parses must survive the proxy edits and parse again.
fn exercise(bytes: &[u8], cuts: &[prop::sample::Index]) -> Result<(), TestCaseError> {
    let _ = SipMessage::parse_with(
        Bytes::copy_from_slice(bytes),
        Transport::Stream,
        &Limits::default(),
    );
    if let Ok(msg) = parse(bytes) {
        let _ = (validate(&msg, Role::Forward), validate(&msg, Role::Uas));
        let _ = (
            msg.method(),
            msg.request_uri(),
            msg.status(),
            msg.reason(),
            msg.body(),
        );
        for h in msg.headers() {
            if let Ok(v) = h.value() {
                every_typed_parser(v);
            }
        }
        let _ = msg.typed_all::<h::Via<'_>>().count();
        let _ = msg.typed_all::<h::Route<'_>>().count();
        let _ = msg.typed_all::<h::Contact<'_>>().count();
        let _ = msg.values(HeaderName::Route).count();
        if msg.is_request() {
            let _ =
                ResponseBuilder::for_request(&msg, 200, Some("t")).and_then(ResponseBuilder::build);
        }
        prop_assert_eq!(&msg.edit().to_bytes()[..], &msg.message_bytes()[..]);
        let mut e = msg.edit();
        let _ = e.prepend_via(NEW_VIA);
        let _ = e.decrement_max_forwards();
        let _ = e.pop_route();
        let len = e.len();
        let out = e.to_bytes();
        prop_assert_eq!(out.len(), len);
        let again = parse(&out);
        prop_assert!(
            again.is_ok(),
            "{:?} -> {:?}: {:?}",
            lossy(bytes),
            lossy(&out),
            again
        );
    }
    let mut framer = StreamFramer::default();
    let mut buf = BytesMut::new();
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    at.extend([0, bytes.len()]);
    at.sort_unstable();
    at.dedup();
    'feed: for w in at.windows(2) {
        buf.extend_from_slice(&bytes[w[0]..w[1]]);
        loop {
            match framer.next_frame(&mut buf) {
                Ok(Some(Frame::Message(m))) => {
                    let _ = SipMessage::parse_with(m, Transport::Stream, &Limits::default());
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    Ok(())
}

/// One way to damage a message.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Insert(prop::sample::Index, Vec<u8>),
    Delete(prop::sample::Index, usize),
    Truncate(prop::sample::Index),
    Duplicate(prop::sample::Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..4),
        proptest::sample::select(vec![
            b"\r\n".to_vec(),
            b"\r\n ".to_vec(),
            b",".to_vec(),
            b";".to_vec(),
            b"\"".to_vec(),
            b"<".to_vec(),
            b">".to_vec(),
            b":".to_vec(),
            b"%".to_vec(),
            b"@".to_vec(),
            b"[".to_vec(),
            b"\r\n\r\n".to_vec(),
            b"\n".to_vec(),
            b"\\".to_vec(),
            b"\xff".to_vec(),
        ]),
    ];
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<prop::sample::Index>(), interesting).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<prop::sample::Index>(), 1usize..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        (any::<prop::sample::Index>(), 1usize..40).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn mutate(b: &mut Vec<u8>, m: &Mutation) {
    if b.is_empty() {
        return;
    }
    match m {
        Mutation::Flip(i, x) => {
            let i = i.index(b.len());
            b[i] ^= *x;
        }
        Mutation::Insert(i, bytes) => {
            let i = i.index(b.len() + 1);
            b.splice(i..i, bytes.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let i = i.index(b.len());
            b.drain(i..(i + n).min(b.len()));
        }
        Mutation::Truncate(i) => b.truncate(i.index(b.len())),
        Mutation::Duplicate(i, n) => {
            let i = i.index(b.len());
            let part = b[i..(i + n).min(b.len())].to_vec();
            b.splice(i..i, part);
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        exercise(&bytes, &cuts)?;
        every_typed_parser(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_text_never_panics_typed_parsers(
        s in "\\PC{0,80}",
        t in r#"[ -~\t\r\n]{0,80}"#,
        // SIP's own punctuation, so the parsers get past their first byte.
        sip in r#"([a-zA-Z0-9]{1,3}|[ \t;=",<>:@/\\.()\[\]%*+?&!~'`_-]|\r\n ?){0,40}"#,
    ) {
        every_typed_parser(&s);
        every_typed_parser(&t);
        every_typed_parser(&sip);
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn mutated_messages_never_panic(
        m in model::message(),
        mutations in proptest::collection::vec(mutation(), 1..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut bytes = m.render().wire;
        for mu in &mutations {
            mutate(&mut bytes, mu);
        }
        exercise(&bytes, &cuts)?;
    }
}

// ---- editing in general -------------------------------------------------------------------

/// One call on an [`sip_message::Editor`].
#[derive(Debug, Clone)]
enum EditOp {
    PrependVia,
    Add(&'static str, String),
    Remove(&'static str),
    Replace(&'static str, String),
    DecrementMaxForwards,
    PopRoute,
    SetRequestUri(String),
    SetBody(Option<&'static str>, Vec<u8>),
    EnsureContentLength,
}

/// Headers an edit may name (`l` and `v` are compact forms).
const EDIT_NAMES: [&str; 9] = [
    "Via",
    "Route",
    "Max-Forwards",
    "Content-Length",
    "Contact",
    "X-Edited",
    "Subject",
    "l",
    "v",
];

fn edit_op() -> impl Strategy<Value = EditOp> {
    use proptest::sample::select;
    // Adding or replacing Content-Length would lie about the body: the
    // caller's fault, not the editor's.
    let settable = || {
        select(vec![
            "Via",
            "Route",
            "Max-Forwards",
            "Contact",
            "X-Edited",
            "Subject",
            "v",
        ])
    };
    prop_oneof![
        Just(EditOp::PrependVia),
        (settable(), r"[a-zA-Z0-9 ;=<>:@.-]{0,12}").prop_map(|(n, v)| EditOp::Add(n, v)),
        select(EDIT_NAMES.to_vec()).prop_map(EditOp::Remove),
        (settable(), r"[0-9]{1,3}").prop_map(|(n, v)| EditOp::Replace(n, v)),
        Just(EditOp::DecrementMaxForwards),
        Just(EditOp::PopRoute),
        model::sip_uri().prop_map(|u| EditOp::SetRequestUri(u.render())),
        (
            proptest::option::of(Just("text/plain")),
            proptest::collection::vec(any::<u8>(), 0..8)
        )
            .prop_map(|(t, b)| EditOp::SetBody(t, b)),
        Just(EditOp::EnsureContentLength),
    ]
}

impl EditOp {
    /// The existing lines (by header) the operation rewrites or removes;
    /// `None` stands for the start line.
    fn rewrites(&self) -> Vec<Option<HeaderName>> {
        let n = |s: &str| Some(HeaderName::from_bytes(s.as_bytes()));
        match self {
            EditOp::PrependVia | EditOp::Add(..) | EditOp::EnsureContentLength => vec![],
            EditOp::Remove(name) | EditOp::Replace(name, _) => vec![n(name)],
            EditOp::DecrementMaxForwards => vec![Some(HeaderName::MaxForwards)],
            EditOp::PopRoute => vec![Some(HeaderName::Route)],
            EditOp::SetRequestUri(_) => vec![None],
            EditOp::SetBody(t, _) => {
                let mut v = vec![Some(HeaderName::ContentLength)];
                if t.is_some() {
                    v.push(Some(HeaderName::ContentType));
                }
                v
            }
        }
    }

    /// The header the operation may change.
    fn touches(&self) -> Vec<HeaderName> {
        let n = |s: &str| HeaderName::from_bytes(s.as_bytes());
        match self {
            EditOp::PrependVia => vec![HeaderName::Via],
            EditOp::Add(name, _) | EditOp::Remove(name) | EditOp::Replace(name, _) => vec![n(name)],
            EditOp::DecrementMaxForwards => vec![HeaderName::MaxForwards],
            EditOp::PopRoute => vec![HeaderName::Route],
            EditOp::SetRequestUri(_) => vec![],
            EditOp::SetBody(..) => vec![HeaderName::ContentLength, HeaderName::ContentType],
            EditOp::EnsureContentLength => vec![HeaderName::ContentLength],
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Any sequence of edits gives a message that parses, whose length is
    /// what `len()` promised, and whose untouched headers are as received.
    #[test]
    fn any_edit_sequence_keeps_the_message_whole(
        m in model::message().prop_map(GenMessage::for_stream),
        ops in proptest::collection::vec(edit_op(), 1..5).prop_filter(
            // Two edits of one line garble it: see the known_bug_editor_* tests.
            "each line edited once",
            |ops| {
                let all: Vec<_> = ops.iter().flat_map(EditOp::rewrites).collect();
                all.iter().enumerate().all(|(i, a)| !all[..i].contains(a))
            },
        ),
    ) {
        let r = m.render();
        let msg = parse(&r.wire).unwrap();
        let mut e = msg.edit();
        for op in &ops {
            let _ = match op {
                EditOp::PrependVia => e.prepend_via(NEW_VIA).map(|_| ()),
                EditOp::Add(n, v) => e.add(n, v).map(|_| ()),
                EditOp::Remove(n) => Ok(e.remove(n)).map(|_| ()),
                EditOp::Replace(n, v) => e.replace(n, v).map(|_| ()),
                EditOp::DecrementMaxForwards => e.decrement_max_forwards().map(|_| ()),
                EditOp::PopRoute => e.pop_route().map(|_| ()),
                EditOp::SetRequestUri(u) => e.set_request_uri(u).map(|_| ()),
                EditOp::SetBody(t, b) => e.set_body(*t, Bytes::copy_from_slice(b)).map(|_| ()),
                EditOp::EnsureContentLength => Ok(e.ensure_content_length()).map(|_| ()),
            };
        }
        let len = e.len();
        let out = e.to_bytes();
        let edited = parse(&out);
        prop_assert!(edited.is_ok(), "{:?} -> {:?}", edited, lossy(&out));
        let edited = edited.unwrap();
        prop_assert_eq!(out.len(), len, "{:?}", lossy(&out));
        let touched: Vec<HeaderName> = ops.iter().flat_map(EditOp::touches).collect();
        let kept = |m: &SipMessage| -> Vec<(String, String)> {
            m.headers()
                .filter(|h| !touched.contains(&h.name()))
                .map(|h| (lossy(h.wire_name()), lossy(h.value_bytes())))
                .collect()
        };
        prop_assert_eq!(kept(&edited), kept(&msg), "{:?}", lossy(&out));
    }
}

// ---- known bugs -------------------------------------------------------------------------
//
// Minimal inputs the properties above found, each with what RFC 3261 asks
// for. They are ignored until the codec is fixed: run them with
// `cargo test -p sip-message --test properties -- --ignored`.

const FOLDED_REQUEST: &[u8] = b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP\r\n a.example.com;branch=z9hG4bK1\r\n\
From: <sip:alice@example.com>;tag=1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: c1\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

/// §7.3.1 allows any header to be folded, and §8.2.6.2 has a response copy
/// Via, From, To, Call-ID and CSeq. `ResponseBuilder::with_reason` copies
/// the raw values, folds included, through the CR/LF injection check, so a
/// UAS cannot answer a folded request (RFC 4475 §3.1.1.1 `wsinv` among
/// them): `Err(Injection)`.
#[test]
fn fixed_response_to_a_folded_request() {
    let req = parse(FOLDED_REQUEST).unwrap();
    let resp = ResponseBuilder::for_request(&req, 200, Some("t"))
        .and_then(ResponseBuilder::build)
        .unwrap();
    let via = resp.typed::<h::Via<'_>>().unwrap().unwrap();
    assert_eq!(via.branch(), Some("z9hG4bK1"));
}

/// §19.1.4 equality must at least be reflexive. With a parameter repeated
/// (the grammar does not forbid it), each occurrence is compared with the
/// other URI's first one: `sip:a@h;x=1;x=2` is not equal to itself, and
/// `;x=1;x=2` vs `;x=1` is not symmetric.
#[test]
fn fixed_eq_rfc_with_a_repeated_parameter() {
    let a = Uri::parse("sip:a@h;x=1;x=2").unwrap();
    assert!(a.eq_rfc(&a));
    let b = Uri::parse("sip:a@h;x=1").unwrap();
    assert_eq!(a.eq_rfc(&b), b.eq_rfc(&a));
}

/// Two edits of one line: `replace` then `decrement_max_forwards` writes
/// both replacements, the second glued to the next line, so
/// `Max-Forwards: 70\r\nl: 0` becomes `Max-Forwards: 10\r\n69l: 0`: the
/// Content-Length line is gone and `len()` is 2 short.
#[test]
fn fixed_editor_replace_then_decrement() {
    let msg = parse(b"OPTIONS sip:a SIP/2.0\r\nMax-Forwards: 70\r\nl: 0\r\n\r\n").unwrap();
    let mut e = msg.edit();
    e.replace("Max-Forwards", "10").unwrap();
    let _ = e.decrement_max_forwards();
    let len = e.len();
    let out = e.to_bytes();
    assert_eq!(out.len(), len, "{:?}", lossy(&out));
    let fwd = parse(&out).unwrap();
    assert_eq!(fwd.content_length(), Some(0), "{:?}", lossy(&out));
    assert_eq!(fwd.count(HeaderName::MaxForwards), 1);
}

/// Each call of `decrement_max_forwards` reads the received value and
/// splices the same bytes: twice gives `Max-Forwards: 6969`.
#[test]
fn fixed_editor_decrement_twice() {
    let msg = parse(b"OPTIONS sip:a SIP/2.0\r\nMax-Forwards: 70\r\n\r\n").unwrap();
    let mut e = msg.edit();
    let _ = e.decrement_max_forwards();
    let _ = e.decrement_max_forwards();
    let out = parse(&e.to_bytes()).unwrap();
    let mf = out.typed::<h::MaxForwards>().unwrap();
    assert!(matches!(mf, Ok(h::MaxForwards(68 | 69))), "{mf:?}");
}

/// A later edit of the same part must replace an earlier one. Twice
/// `set_body` gives two Content-Length lines (the message no longer
/// parses: DuplicateContentLength) and two Content-Type lines; twice
/// `set_request_uri` gives `OPTIONS sip:x@ysip:z@w SIP/2.0`; twice
/// `replace` gives two lines.
#[test]
fn fixed_editor_second_edit_of_the_same_part() {
    let msg = parse(b"OPTIONS sip:a SIP/2.0\r\nRoute: <sip:p1;lr>\r\nl: 0\r\n\r\n").unwrap();
    let mut e = msg.edit();
    e.set_body(Some("text/plain"), Bytes::from_static(b"a"))
        .unwrap();
    e.set_body(Some("text/plain"), Bytes::from_static(b"bc"))
        .unwrap();
    let out = parse(&e.to_bytes()).unwrap();
    assert_eq!(out.body(), b"bc");
    assert_eq!(out.count(HeaderName::ContentType), 1);

    let mut e = msg.edit();
    e.set_request_uri("sip:x@y").unwrap();
    e.set_request_uri("sip:z@w").unwrap();
    let out = parse(&e.to_bytes()).unwrap();
    assert_eq!(out.request_uri_str(), Some("sip:z@w"));

    let mut e = msg.edit();
    e.replace("Route", "<sip:a;lr>").unwrap();
    e.replace("Route", "<sip:b;lr>").unwrap();
    let out = parse(&e.to_bytes()).unwrap();
    assert_eq!(
        out.values(HeaderName::Route)
            .collect::<Result<Vec<_>, _>>()
            .unwrap(),
        ["<sip:b;lr>"]
    );
}

/// `Editor::len` subtracts every removed range, overlapping ones twice:
/// `remove("Route")` twice underflows (a panic in debug builds, a huge
/// capacity in `to_bytes` in release), and `remove` + `pop_route` makes
/// `len()` 18 for a 31-byte result.
#[test]
fn fixed_editor_len_with_overlapping_removals() {
    let msg =
        parse(b"OPTIONS sip:a SIP/2.0\r\nRoute: <sip:p1;lr>, <sip:p2;lr>\r\nl: 0\r\n\r\n").unwrap();
    let mut e = msg.edit();
    e.remove("Route");
    // The Route line is gone already: popping a value inside it overlaps.
    assert_eq!(e.pop_route().err(), Some(sip_message::EditError::Overlap));
    let len = e.len();
    assert_eq!(e.to_bytes().len(), len);

    let msg =
        parse(b"OPTIONS sip:a SIP/2.0\r\nRoute: <sip:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa>\r\n\r\n")
            .unwrap();
    let mut e = msg.edit();
    e.remove("Route");
    e.remove("Route");
    assert_eq!(&e.to_bytes()[..], b"OPTIONS sip:a SIP/2.0\r\n\r\n");
}

/// Content-Length = 1*DIGIT (§20.14, §25.1): leading zeros are allowed and
/// `SipMessage::parse` takes them, but the stream framer refuses more than
/// ten digits, so the same message is accepted over UDP and kills a TCP
/// connection (`BadContentLength`).
#[test]
fn fixed_framer_content_length_with_leading_zeros() {
    let m = b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 000000000002\r\n\r\nhi";
    assert_eq!(parse(m).unwrap().content_length(), Some(2));
    let mut framer = StreamFramer::default();
    let mut buf = BytesMut::from(&m[..]);
    assert_eq!(
        framer.next_frame(&mut buf),
        Ok(Some(Frame::Message(Bytes::from_static(m))))
    );
}

/// §8.1.1.5: the CSeq number "MUST be less than 2**31", and `CSeq`'s own
/// documentation says so; the parser takes up to 2**32-1.
#[test]
fn fixed_cseq_of_2_pow_31() {
    assert!(h::CSeq::parse("2147483648 INVITE").is_err());
    assert!(h::CSeq::parse("2147483647 INVITE").is_ok());
}
