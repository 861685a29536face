//! Differential tests against `sipx-sip`, a second, independent parser.
//!
//! Both parsers read the same bytes; what each says about the values a
//! proxy and a UA act on is reduced to a plain [`Summary`] and compared:
//! method and Request-URI, every Via hop, From/To, Call-ID, CSeq,
//! Max-Forwards, Route, Contact, Content-Length and body. The inputs are the
//! RFC 4475 valid messages and the generated messages of `properties.rs`.
//! URI equality (RFC 3261 §19.1.4) is compared the same way on generated
//! pairs of URIs.
//!
//! Where the two disagree, RFC 3261 decides. A case where sipx-sip is wrong
//! is skipped with the section that says so; a case where we are wrong is a
//! `known_bug_*` test (ignored until the parser is fixed) with a minimal
//! input.

// Test code: a failed unwrap or index is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "properties.rs"]
#[allow(dead_code, unused_imports, clippy::all)]
mod properties;

use std::fmt::Debug;
use std::net::IpAddr;

use bytes::Bytes;
use properties::model::{self, GenMessage, GenSipUri, GenUri};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use sip_message::headers as ours_h;
use sip_message::{Host, SipMessage, Uri};
use sipx_sip::headers as sipx_h;
use sipx_testkit::rfc4475::{self, Expect};

// ---- summaries -----------------------------------------------------------------------

/// A host, compared by value: a name as written, an address by value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostValue {
    Name(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct UriValue {
    text: String,
    user: Option<String>,
    host: Option<HostValue>,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ViaValue {
    transport: String,
    host: HostValue,
    port: Option<u16>,
    branch: Option<String>,
    received: Option<IpAddr>,
    rport: Option<Option<u16>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AddrValue {
    uri: String,
    tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ContactValue {
    /// The URI, or `*`.
    uri: String,
    expires: Option<String>,
    q: Option<String>,
}

/// A header's values, or the fact that the parser refused them.
type Parsed<T> = Result<T, String>;

/// What one parser says about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    method: Option<String>,
    request_uri: Option<UriValue>,
    status: Option<u16>,
    vias: Parsed<Vec<ViaValue>>,
    from: Option<Parsed<AddrValue>>,
    to: Option<Parsed<AddrValue>>,
    call_id: Option<Parsed<String>>,
    cseq: Option<Parsed<(u32, String)>>,
    max_forwards: Option<Parsed<u8>>,
    routes: Parsed<Vec<String>>,
    contacts: Parsed<Vec<ContactValue>>,
    content_length: Option<u64>,
    body: Vec<u8>,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn bracketless_ip(s: &str) -> Option<IpAddr> {
    s.strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s)
        .parse()
        .ok()
}

fn all<T, E: Debug>(it: impl Iterator<Item = Result<T, E>>) -> Parsed<Vec<T>> {
    it.collect::<Result<_, _>>().map_err(|e| format!("{e:?}"))
}

fn one<T, E: Debug>(r: Option<Result<T, E>>) -> Option<Parsed<T>> {
    r.map(|r| r.map_err(|e| format!("{e:?}")))
}

fn ours_host(h: &Host<'_>) -> HostValue {
    match h {
        Host::Domain(d) => HostValue::Name((*d).to_owned()),
        Host::Ipv4(a) => HostValue::Ip(IpAddr::V4(*a)),
        Host::Ipv6(a) => HostValue::Ip(IpAddr::V6(*a)),
    }
}

fn sipx_host(h: &sipx_sip::Host) -> HostValue {
    match h {
        sipx_sip::Host::Name(n) => HostValue::Name(text(n.as_bytes())),
        sipx_sip::Host::Ip(a) => HostValue::Ip(*a),
    }
}

fn ours_uri(u: &Uri<'_>) -> UriValue {
    let sip = u.as_sip();
    UriValue {
        text: u.as_str().to_owned(),
        user: sip.and_then(|s| s.user()).map(str::to_owned),
        host: sip.map(|s| ours_host(&s.host())),
        port: sip.and_then(|s| s.port()),
    }
}

fn sipx_uri(u: &sipx_sip::Uri) -> UriValue {
    UriValue {
        text: u.to_string(),
        user: u.user().map(text),
        host: u.host().map(sipx_host),
        port: u.port(),
    }
}

fn ours_summary(m: &SipMessage) -> Summary {
    let addr = |a: &sip_message::NameAddr<'_>| AddrValue {
        uri: a.uri().as_str().to_owned(),
        tag: a.tag().map(str::to_owned),
    };
    Summary {
        method: m.method().map(|m| m.as_str().to_owned()),
        request_uri: m.request_uri().map(|u| ours_uri(&u)),
        status: m.status(),
        vias: all(m.typed_all::<ours_h::Via<'_>>().map(|v| {
            v.map(|v| ViaValue {
                transport: v.transport().to_owned(),
                host: ours_host(&v.host()),
                port: v.port(),
                branch: v.branch().map(str::to_owned),
                received: v.received(),
                rport: v.rport(),
            })
        })),
        from: one(m.typed::<ours_h::From<'_>>().map(|r| r.map(|a| addr(&a)))),
        to: one(m.typed::<ours_h::To<'_>>().map(|r| r.map(|a| addr(&a)))),
        call_id: one(m
            .typed::<ours_h::CallId<'_>>()
            .map(|r| r.map(|c| c.0.to_owned()))),
        cseq: one(m
            .typed::<ours_h::CSeq<'_>>()
            .map(|r| r.map(|c| (c.seq, c.method.as_str().to_owned())))),
        max_forwards: one(m.typed::<ours_h::MaxForwards>().map(|r| r.map(|v| v.0))),
        routes: all(m
            .typed_all::<ours_h::Route<'_>>()
            .map(|r| r.map(|r| r.uri().as_str().to_owned()))),
        contacts: all(m.typed_all::<ours_h::Contact<'_>>().map(|c| {
            c.map(|c| match c.addr() {
                None => ContactValue {
                    uri: "*".to_owned(),
                    expires: None,
                    q: None,
                },
                Some(a) => ContactValue {
                    uri: a.uri().as_str().to_owned(),
                    expires: a.params().get("expires").flatten().map(str::to_owned),
                    q: a.params().get("q").flatten().map(str::to_owned),
                },
            })
        })),
        content_length: m.content_length().map(u64::from),
        body: m.body().to_vec(),
    }
}

fn sipx_summary(m: &sipx_sip::Message) -> Summary {
    let h = m.headers();
    let addr = |a: &sipx_sip::Address| AddrValue {
        uri: a.uri.to_string(),
        tag: a.tag().map(text),
    };
    let req = m.as_request();
    Summary {
        method: req.map(|r| text(r.method.as_bytes())),
        request_uri: req.map(|r| sipx_uri(&r.uri)),
        status: m.as_response().map(|r| r.status.code()),
        vias: all(h.typed_all::<sipx_h::Via>().map(|v| {
            v.map(|v| ViaValue {
                transport: text(&v.transport),
                host: sipx_host(&v.host),
                port: v.port,
                branch: v.branch().map(text),
                received: v.received().and_then(|r| bracketless_ip(&text(r))),
                rport: v.rport().map(|p| p.and_then(|p| text(p).parse().ok())),
            })
        })),
        from: one(h.typed::<sipx_h::From>().map(|r| r.map(|a| addr(&a)))),
        to: one(h.typed::<sipx_h::To>().map(|r| r.map(|a| addr(&a)))),
        call_id: one(h.typed::<sipx_h::CallId>().map(|r| r.map(|c| text(&c.0)))),
        cseq: one(h
            .typed::<sipx_h::CSeq>()
            .map(|r| r.map(|c| (c.sequence, text(c.method.as_bytes()))))),
        max_forwards: one(h.typed::<sipx_h::MaxForwards>().map(|r| r.map(|v| v.0))),
        routes: all(h
            .typed_all::<sipx_h::Route>()
            .map(|r| r.map(|r| r.uri.to_string()))),
        contacts: all(h.typed_all::<sipx_h::ContactValue>().map(|c| {
            c.map(|c| match c {
                sipx_h::ContactValue::Wildcard => ContactValue {
                    uri: "*".to_owned(),
                    expires: None,
                    q: None,
                },
                sipx_h::ContactValue::Address(a) => ContactValue {
                    uri: a.uri.to_string(),
                    expires: a.param("expires").map(text),
                    q: a.param("q").map(text),
                },
            })
        })),
        content_length: h
            .typed::<sipx_h::ContentLength>()
            .and_then(Result::ok)
            .map(|c| c.0),
        body: m.body().to_vec(),
    }
}

/// Equality of what the parsers found, where two refusals agree whatever
/// their reasons.
trait Agree {
    fn agrees(&self, other: &Self) -> bool;
}

impl<T: PartialEq> Agree for Result<T, String> {
    fn agrees(&self, other: &Self) -> bool {
        match (self, other) {
            (Ok(a), Ok(b)) => a == b,
            (Err(_), Err(_)) => true,
            _ => false,
        }
    }
}

impl<T: Agree> Agree for Option<T> {
    fn agrees(&self, other: &Self) -> bool {
        match (self, other) {
            (Some(a), Some(b)) => a.agrees(b),
            (None, None) => true,
            _ => false,
        }
    }
}

macro_rules! agree_by_eq {
    ($($t:ty),*) => {$(
        impl Agree for $t {
            fn agrees(&self, other: &Self) -> bool {
                self == other
            }
        }
    )*};
}

agree_by_eq!(String, u16, u64, UriValue, Vec<u8>);

/// The fields on which the two summaries differ, named.
fn differences(ours: &Summary, sipx: &Summary) -> Vec<String> {
    let mut out = Vec::new();
    macro_rules! field {
        ($($f:ident),*) => {$(
            if !ours.$f.agrees(&sipx.$f) {
                out.push(format!(
                    "{}:\n    ours: {:?}\n    sipx: {:?}",
                    stringify!($f), ours.$f, sipx.$f
                ));
            }
        )*};
    }
    field!(
        method,
        request_uri,
        status,
        vias,
        from,
        to,
        call_id,
        cseq,
        max_forwards,
        routes,
        contacts,
        content_length,
        body
    );
    out
}

fn parse_both(bytes: &[u8]) -> (Result<Summary, String>, Result<Summary, String>) {
    let ours = SipMessage::parse(Bytes::copy_from_slice(bytes))
        .map(|m| ours_summary(&m))
        .map_err(|e| e.to_string());
    let sipx =
        sipx_sip::parse_datagram(Bytes::copy_from_slice(bytes), &sipx_sip::Limits::datagram())
            .map(|m| sipx_summary(&m))
            .map_err(|e| e.to_string());
    (ours, sipx)
}

fn compare(bytes: &[u8]) -> Vec<String> {
    match parse_both(bytes) {
        (Ok(ours), Ok(sipx)) => differences(&ours, &sipx),
        (Err(e), Ok(_)) => vec![format!("only sipx parses; ours: {e}")],
        (Ok(_), Err(e)) => vec![format!("only ours parses; sipx: {e}")],
        (Err(_), Err(_)) => vec!["neither parses".to_owned()],
    }
}

// ---- RFC 4475 ---------------------------------------------------------------------------

#[test]
fn rfc4475_valid_messages_agree() {
    let mut report = Vec::new();
    let mut compared = 0;
    for case in rfc4475::CASES
        .iter()
        .filter(|c| c.expect == Expect::ParseOk)
    {
        let diffs = compare(case.bytes);
        compared += 1;
        if !diffs.is_empty() {
            report.push(format!(
                "{} (§{}):\n  {}",
                case.name,
                case.section,
                diffs.join("\n  ")
            ));
        }
    }
    // The 13 of §3.1.1 and the 14 valid ones of §3.2 to §3.4.
    assert_eq!(compared, 27);
    assert!(report.is_empty(), "{}", report.join("\n"));
}

// ---- generated messages -------------------------------------------------------------------

fn differential_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(differential_config(256))]

    #[test]
    fn generated_messages_agree(m in model::message()) {
        // §7.5 tells stream transports to skip CRLFs before the start line;
        // on a datagram sipx-sip refuses them and we skip them: both allowed.
        let mut m = GenMessage { leading_crlf: 0, ..m };
        // `(` and `)` are URI characters (§25.1 mark); sipx-sip reads them as
        // a comment and stops splitting lists (`sipx_deviations_skipped_above`).
        m.for_each_uri(&mut |u| u.map_text(&|s| s.replace(['(', ')'], "-")));
        // sent-by = host [ COLON port ], COLON = SWS ":" SWS (§25.1); sipx-sip
        // refuses `host : port` in a Via.
        m.for_each_via(&mut |v| v.spaced_colon = false);
        // sipx-sip caps a header at 16 continuation lines, a resource limit
        // of its own (RFC 3261 §7.3.1 sets none): fold less often, and skip
        // the rare line that still folds more.
        for w in &mut m.ws {
            if *w >= 32 {
                *w %= 3;
            }
        }
        let r = m.render();
        prop_assume!(r.lines.iter().all(|l| l.text.matches("\r\n").count() <= 17));
        let diffs = compare(&r.wire);
        prop_assert!(diffs.is_empty(), "{}\nmessage: {:?}", diffs.join("\n"), text(&r.wire));
    }
}

// ---- URI equality ---------------------------------------------------------------------------

/// One change to a URI; some keep it equal under §19.1.4, some do not.
#[derive(Debug, Clone)]
enum UriEdit {
    /// Case of scheme, host and parameters; order of parameters and headers.
    Respell,
    /// Write the user octet at this index as `%HH`.
    EscapeUser(prop::sample::Index, bool),
    /// Write a parameter value's octet at this index as `%HH`.
    EscapeParam(prop::sample::Index, prop::sample::Index, bool),
    /// Change the case of a user octet.
    FlipUserCase(prop::sample::Index),
    AddParam(model::Param),
    RemoveParam(prop::sample::Index),
    Port(Option<u16>),
    AddHeader(String, String),
    Secure,
    Host(model::GenHost),
}

fn uri_edit() -> impl Strategy<Value = UriEdit> {
    use prop::sample::Index;
    prop_oneof![
        3 => Just(UriEdit::Respell),
        2 => (any::<Index>(), any::<bool>()).prop_map(|(i, u)| UriEdit::EscapeUser(i, u)),
        2 => (any::<Index>(), any::<Index>(), any::<bool>())
            .prop_map(|(i, j, u)| UriEdit::EscapeParam(i, j, u)),
        1 => any::<Index>().prop_map(UriEdit::FlipUserCase),
        2 => model::uri_param().prop_map(UriEdit::AddParam),
        1 => any::<Index>().prop_map(UriEdit::RemoveParam),
        1 => proptest::option::of(any::<u16>()).prop_map(UriEdit::Port),
        1 => (model::hnvchars(1, 6), model::hnvchars(0, 6))
            .prop_map(|(n, v)| UriEdit::AddHeader(n, v)),
        // No edit changes the case of a header value: there we differ from
        // sipx-sip, and sipx-sip is right (see
        // `known_bug_uri_header_values_compare_case_sensitively`).
        1 => Just(UriEdit::Secure),
        1 => model::host().prop_map(UriEdit::Host),
    ]
}

/// `s` with one of its unreserved octets written as `%HH`. (Escaping a
/// reserved one makes another URI; we get that wrong, see
/// `known_bug_escaped_reserved_characters_are_equal_to_themselves`.)
fn escape_nth(s: &str, i: prop::sample::Index, upper: bool) -> String {
    let b = s.as_bytes();
    let mut plain = Vec::new();
    let mut k = 0;
    while k < b.len() {
        if b[k] == b'%' {
            k += 3;
        } else {
            if b[k].is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b[k]) {
                plain.push(k);
            }
            k += 1;
        }
    }
    if plain.is_empty() {
        return s.to_owned();
    }
    let at = plain[i.index(plain.len())];
    let hex = if upper {
        format!("%{:02X}", b[at])
    } else {
        format!("%{:02x}", b[at])
    };
    format!("{}{hex}{}", &s[..at], &s[at + 1..])
}

fn apply(u: &GenSipUri, e: &UriEdit) -> GenSipUri {
    let mut v = u.clone();
    match e {
        UriEdit::Respell => {
            v.scheme = model::flip_case(&v.scheme);
            v.host = v.host.case_flipped();
            for (n, val) in &mut v.params {
                *n = model::flip_case(n);
                *val = val.as_deref().map(model::flip_case);
            }
            v.params.reverse();
            v.headers.reverse();
        }
        UriEdit::EscapeUser(i, upper) => {
            v.user = v.user.as_deref().map(|s| escape_nth(s, *i, *upper));
        }
        UriEdit::EscapeParam(i, j, upper) => {
            if !v.params.is_empty() {
                let k = i.index(v.params.len());
                if let Some(val) = &mut v.params[k].1 {
                    *val = escape_nth(val, *j, *upper);
                }
            }
        }
        UriEdit::FlipUserCase(i) => {
            v.user = v.user.as_deref().map(|s| {
                let mut b = s.as_bytes().to_vec();
                let k = i.index(b.len());
                if b[k].is_ascii_alphabetic()
                    && !s[..k].ends_with('%')
                    && !s[..k.saturating_sub(1)].ends_with('%')
                {
                    b[k] ^= 0x20;
                }
                String::from_utf8(b).unwrap()
            });
        }
        UriEdit::AddParam(p) => {
            let key = sip_message::unescape(&p.0).to_ascii_lowercase();
            if !v
                .params
                .iter()
                .any(|(n, _)| sip_message::unescape(n).to_ascii_lowercase() == key)
            {
                v.params.push(p.clone());
            }
        }
        UriEdit::RemoveParam(i) => {
            if !v.params.is_empty() {
                v.params.remove(i.index(v.params.len()));
            }
        }
        UriEdit::Port(p) => v.port = *p,
        UriEdit::AddHeader(n, val) => v.headers.push((n.clone(), val.clone())),
        UriEdit::Secure => {
            v.scheme = if v.secure() { "sip" } else { "sips" }.to_owned();
        }
        UriEdit::Host(h) => v.host = h.clone(),
    }
    v
}

/// Our §19.1.4 verdict and sipx-sip's on a pair of URIs.
fn verdicts(a: &str, b: &str) -> Result<(bool, bool), TestCaseError> {
    let (oa, ob) = (Uri::parse(a), Uri::parse(b));
    let sa = sipx_sip::Uri::parse(Bytes::copy_from_slice(a.as_bytes()));
    let sb = sipx_sip::Uri::parse(Bytes::copy_from_slice(b.as_bytes()));
    match (oa, ob, sa, sb) {
        (Ok(oa), Ok(ob), Ok(sa), Ok(sb)) => {
            let ours = oa.eq_rfc(&ob);
            let sipx = sa.equivalent(&sb);
            prop_assert_eq!(ours, ob.eq_rfc(&oa), "ours not symmetric: {} {}", a, b);
            prop_assert_eq!(sipx, sb.equivalent(&sa), "sipx not symmetric: {} {}", a, b);
            Ok((ours, sipx))
        }
        other => Err(TestCaseError::fail(format!("{a} / {b}: {other:?}"))),
    }
}

proptest! {
    #![proptest_config(differential_config(512))]

    #[test]
    fn uri_equality_agrees(
        u in model::sip_uri(),
        edits in proptest::collection::vec(uri_edit(), 1..3),
        other in model::sip_uri(),
    ) {
        let a = u.render();
        let mut v = u.clone();
        for e in &edits {
            v = apply(&v, e);
        }
        let b = v.render();
        let (ours, sipx) = verdicts(&a, &b)?;
        prop_assert_eq!(ours, sipx, "{} vs {} after {:?}", a, b, edits);
        let c = other.render();
        let (ours, sipx) = verdicts(&a, &c)?;
        prop_assert_eq!(ours, sipx, "{} vs {}", a, c);
    }
}

// ---- RFC 5118 -----------------------------------------------------------------------

#[test]
fn rfc5118_valid_messages_agree() {
    let mut report = Vec::new();
    for case in sipx_testkit::rfc5118::CASES
        .iter()
        .filter(|c| c.name != "ipv6-bad")
    {
        let diffs = compare(&case.wire());
        if !diffs.is_empty() {
            report.push(format!("{}:\n  {}", case.name, diffs.join("\n  ")));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

// ---- tel URIs ---------------------------------------------------------------------------

/// The same number with visual separators moved and parameter names and
/// values in another case and order (RFC 3966 §4).
fn tel_respelled(number: &str, params: &[model::Param]) -> String {
    let mut n = String::new();
    for (i, c) in number.chars().enumerate() {
        if !matches!(c, '-' | '.' | '(' | ')') {
            n.push(c);
            if i % 2 == 1 {
                n.push('-');
            }
        }
    }
    let n = n.trim_end_matches('-');
    let mut params: Vec<_> = params
        .iter()
        .map(|(k, v)| (model::flip_case(k), v.as_deref().map(model::flip_case)))
        .collect();
    params.reverse();
    format!("tel:{n}{}", model::render_params(&params))
}

proptest! {
    #![proptest_config(differential_config(256))]

    #[test]
    fn tel_uri_equality_agrees(a in model::tel_uri(), b in model::tel_uri()) {
        let GenUri::Tel(number, params) = &a else { unreachable!() };
        let a_text = a.render();
        let respelled = tel_respelled(number, params);
        let (ours, sipx) = verdicts(&a_text, &respelled)?;
        prop_assert!(ours, "{} != {}", a_text, respelled);
        prop_assert_eq!(ours, sipx, "{} vs {}", a_text, respelled);
        let b_text = b.render();
        let (ours, sipx) = verdicts(&a_text, &b_text)?;
        prop_assert_eq!(ours, sipx, "{} vs {}", a_text, b_text);
    }
}

// ---- where the two disagree -------------------------------------------------------------

/// Inputs on which sipx-sip 1.0.1 is wrong and we are right; the generated
/// tests above steer around them. Should sipx-sip change, this test says
/// which skip can go.
#[test]
fn sipx_deviations_skipped_above() {
    let sipx = |b: &[u8]| {
        sipx_sip::parse_datagram(Bytes::copy_from_slice(b), &sipx_sip::Limits::datagram())
            .map(|m| sipx_summary(&m))
    };
    let ours = |b: &[u8]| SipMessage::parse(Bytes::copy_from_slice(b)).map(|m| ours_summary(&m));

    // §25.1: `(` and `)` are `mark` characters, legal in a URI; inside
    // `<...>` they are no comment. sipx-sip counts them as comment nesting
    // and stops splitting the list, refusing the whole Route.
    let m = b"OPTIONS sip:a SIP/2.0\r\nRoute: <sip:p1;x=(>, <sip:p2;lr>\r\n\r\n";
    assert_eq!(
        ours(m).unwrap().routes,
        Ok(vec!["sip:p1;x=(".to_owned(), "sip:p2;lr".to_owned()])
    );
    assert!(sipx(m).unwrap().routes.is_err());

    // §25.1: sent-by = host [ COLON port ], COLON = SWS ":" SWS.
    let m =
        b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP a.example.com : 5060;branch=z9hG4bK1\r\n\r\n";
    assert_eq!(ours(m).unwrap().vias.unwrap()[0].port, Some(5060));
    assert!(sipx(m).unwrap().vias.is_err());

    // §7.3.1 sets no limit on continuation lines; sipx-sip refuses a header
    // folded more than 16 times (a resource limit of its own).
    let folded = format!(
        "OPTIONS sip:a SIP/2.0\r\nSubject: a{}\r\n\r\n",
        "\r\n b".repeat(17)
    );
    assert!(ours(folded.as_bytes()).is_ok());
    assert!(sipx(folded.as_bytes()).is_err());

    // §7.5: CRLFs before the start line are skipped on streams; on a
    // datagram sipx-sip refuses them, we skip them. Both are allowed.
    let m = b"\r\nOPTIONS sip:a SIP/2.0\r\n\r\n";
    assert!(ours(m).is_ok());
    assert!(sipx(m).is_err());
}

/// §25.1: IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT, so
/// `010.0.0.1` is an address (sipx-sip takes it, as a host name). Our
/// `Host::parse` leaves IPv4 to `Ipv4Addr::from_str`, which refuses leading
/// zeros: the URI, and a Via with that sent-by or `received`, fail with
/// `Host`/`Param`.
#[test]
fn fixed_ipv4_with_leading_zeros() {
    let u = Uri::parse("sip:alice@010.000.000.001:5060").unwrap();
    assert_eq!(
        u.as_sip().unwrap().host(),
        Host::Ipv4("10.0.0.1".parse().unwrap())
    );
    let via = <ours_h::Via<'_> as sip_message::headers::TypedHeader<'_>>::parse(
        "SIP/2.0/UDP 192.0.2.001;received=010.0.0.1",
    )
    .unwrap();
    assert_eq!(via.received(), Some("10.0.0.1".parse().unwrap()));
}

/// §19.1.4: "Characters other than those in the 'reserved' set (see RFC
/// 2396) are equivalent to their '%' HEX HEX encoding": an escaped reserved
/// character is not the character. Our comparison decodes every escape, so
/// `sip:a%3Bb@h` equals `sip:a;b@h` (sipx-sip: not equal).
#[test]
fn fixed_escaped_reserved_characters_are_equal_to_themselves() {
    for (a, b) in [
        ("sip:a%3Bb@h", "sip:a;b@h"),
        ("sip:h;x=a%2Fb", "sip:h;x=a/b"),
    ] {
        let sipx = sipx_sip::Uri::parse(Bytes::from_static(a.as_bytes()))
            .unwrap()
            .equivalent(&sipx_sip::Uri::parse(Bytes::from_static(b.as_bytes())).unwrap());
        assert!(!sipx, "sipx: {a} == {b}");
        let (x, y) = (Uri::parse(a).unwrap(), Uri::parse(b).unwrap());
        assert!(!x.eq_rfc(&y), "{a} == {b}");
        // The same escape with lower-case hex digits is the same URI.
        let lower = Uri::parse(if a.contains("%3B") {
            "sip:a%3bb@h"
        } else {
            "sip:h;x=a%2fb"
        })
        .unwrap();
        assert!(x.eq_rfc(&lower));
    }
}

/// §19.1.4 compares URI header components by the rules of §20, and §7.3.1
/// says "unless otherwise stated ... field values ... are case-insensitive":
/// `?subject=Hi` and `?subject=hi` match (sipx-sip: equal). We compare
/// header values byte for byte. (Call-ID would be the exception, §20.8.)
#[test]
fn fixed_uri_header_values_compare_case_sensitively() {
    let (a, b) = ("sip:a@h?subject=Hi", "sip:a@h?subject=hi");
    let sipx = sipx_sip::Uri::parse(Bytes::from_static(a.as_bytes()))
        .unwrap()
        .equivalent(&sipx_sip::Uri::parse(Bytes::from_static(b.as_bytes())).unwrap());
    assert!(sipx);
    assert!(Uri::parse(a).unwrap().eq_rfc(&Uri::parse(b).unwrap()));
}
