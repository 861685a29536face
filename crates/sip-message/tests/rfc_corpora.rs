//! Every RFC 4475 and RFC 5118 message, with its expected verdict: the valid
//! ones parse with the right values, the invalid ones are rejected by the
//! right layer with the status the RFC names.
//!
//! The messages come bit-exact from the `sipx-testkit` crate; the verdicts
//! below are ours, written from the RFC text (each case cites its section).

// Test helpers outside #[test] functions may fail loudly on their fixtures.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use bytes::Bytes;
use sip_message::headers::{
    CSeq, CallId, Contact, ContentType, From, MaxForwards, RecordRoute, To, Via,
};
use sip_message::{
    HeaderErrorKind, HeaderName, Host, Method, ParseError, Role, SipMessage, StartLineFault, Uri,
    ValidationError, validate,
};
use sipx_testkit::{rfc4475, rfc5118};

/// Which layer must object, and with which status.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    /// Parses and validates for a UAS.
    Valid,
    /// The bytes cannot be parsed (framing, start line): 400.
    Parse(ParseError),
    /// Parses, but even a forwarder must reject it.
    Forward(u16),
    /// Forwardable, but a UAS must reject it with this status.
    Uas(u16),
}

use Verdict::*;

fn verdict_4475(name: &str) -> Option<Verdict> {
    Some(match name {
        // §3.1.1 valid messages.
        "wsinv" | "intmeth" | "esc01" | "escnull" | "esc02" | "lwsdisp" | "longreq" | "dblreq"
        | "semiuri" | "transports" | "mpart01" | "unreason" | "noreason" => Valid,
        // §3.1.2 invalid messages.
        "badinv01" => Forward(400),
        "clerr" => Parse(ParseError::Truncated {
            declared: 9999,
            available: 154,
        }),
        "ncl" => Parse(ParseError::BadContentLength),
        "scalar02" | "scalarlg" => Forward(400),
        "quotbal" => Forward(400),
        "ltgtruri" => Parse(ParseError::RequestLine(StartLineFault::RequestUri)),
        "lwsruri" | "lwsstart" | "trws" => Parse(ParseError::RequestLine(StartLineFault::Spacing)),
        "escruri" => Uas(400),
        "baddate" => Uas(400),
        "regbadct" => Uas(400),
        "badaspec" => Forward(400),
        // The archive's baddn has no empty line after its headers: on a
        // datagram that is a truncated message (see the sipx-testkit notes).
        "baddn" => Parse(ParseError::Unterminated),
        "badvers" => Forward(505),
        "mismatch01" | "mismatch02" => Forward(400),
        "bigcode" => Parse(ParseError::StatusLine(StartLineFault::StatusCode)),
        // §3.2, §3.3, §3.4.
        "badbranch" => Valid,
        "insuf" => Forward(400),
        "unkscm" | "novelsc" => Uas(416),
        "unksm2" | "bext01" | "invut" | "regaut01" => Valid,
        "multi01" => Forward(400),
        "mcl01" => Parse(ParseError::DuplicateContentLength),
        "bcast" | "zeromf" | "cparam01" | "cparam02" | "regescrt" | "sdp01" | "inv2543" => Valid,
        _ => return None,
    })
}

fn observe(bytes: Bytes) -> Result<SipMessage, Verdict> {
    let msg = SipMessage::parse(bytes).map_err(Parse)?;
    if let Err(e) = validate(&msg, Role::Forward) {
        return Err(Forward(e.status()));
    }
    if let Err(e) = validate(&msg, Role::Uas) {
        return Err(Uas(e.status()));
    }
    Ok(msg)
}

fn check_case(name: &str, bytes: Bytes, expected: Verdict) -> Option<String> {
    std::panic::catch_unwind(|| check_case_inner(name, bytes, expected))
        .err()
        .map(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| format!("{name}: panicked"))
        })
}

fn check_case_inner(name: &str, bytes: Bytes, expected: Verdict) {
    let got = observe(bytes.clone());
    let verdict = match &got {
        Ok(_) => Valid,
        Err(v) => *v,
    };
    let detail = match SipMessage::parse(bytes.clone()) {
        Ok(m) => format!(
            "forward: {:?}, uas: {:?}",
            validate(&m, Role::Forward),
            validate(&m, Role::Uas)
        ),
        Err(e) => format!("parse: {e}"),
    };
    assert_eq!(verdict, expected, "{name}: {detail}");
    if let Ok(msg) = got {
        // Unedited serialization is the message, byte for byte.
        assert_eq!(
            msg.edit().to_bytes(),
            msg.message_bytes(),
            "{name}: round trip"
        );
        let again = SipMessage::parse(msg.message_bytes()).expect("reparse");
        assert_eq!(again.headers().count(), msg.headers().count(), "{name}");
    }
}

#[test]
fn rfc4475_every_case_has_its_verdict() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in rfc4475::CASES {
        let Some(expected) = verdict_4475(case.name) else {
            // test.dat: in the archive, referenced by no section; must not panic.
            assert_eq!(case.name, "test");
            let _ = observe(Bytes::from_static(case.bytes));
            continue;
        };
        failures.extend(check_case(
            case.name,
            Bytes::from_static(case.bytes),
            expected,
        ));
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(checked, 49, "every referenced case is classified");
}

#[test]
fn rfc5118_every_case_has_its_verdict() {
    let mut failures = Vec::new();
    for case in rfc5118::CASES {
        let expected = match case.name {
            // §4.2: an IPv6 address without brackets in the Request-URI.
            "ipv6-bad" => Parse(ParseError::RequestLine(StartLineFault::RequestUri)),
            _ => Valid,
        };
        failures.extend(check_case(case.name, case.wire(), expected));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn msg4475(name: &str) -> SipMessage {
    let case = rfc4475::case(name).expect("case");
    SipMessage::parse(Bytes::from_static(case.bytes)).expect("parses")
}

fn msg5118(name: &str) -> SipMessage {
    let case = rfc5118::CASES
        .iter()
        .find(|c| c.name == name)
        .expect("case");
    SipMessage::parse(case.wire()).expect("parses")
}

fn vias(m: &SipMessage) -> Vec<Via<'_>> {
    m.typed_all::<Via<'_>>().map(|v| v.expect("via")).collect()
}

#[test]
fn wsinv_values() {
    let m = msg4475("wsinv");
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(
        m.request_uri_str(),
        Some("sip:vivekg@chair-dnrc.example.com;unknownparam")
    );
    let to: To<'_> = m.typed().unwrap().unwrap();
    assert_eq!(to.tag(), Some("1918181833n"));
    assert_eq!(to.uri().as_str(), "sip:vivekg@chair-dnrc.example.com");
    let from: From<'_> = m.typed().unwrap().unwrap();
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(from.display_name(), Some(r#"J Rosenberg \\\""#));
    assert_eq!(m.typed::<MaxForwards>().unwrap(), Ok(MaxForwards(68)));
    let cseq: CSeq<'_> = m.typed().unwrap().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    let v = vias(&m);
    assert_eq!(v.len(), 3);
    assert_eq!(
        (v[0].transport(), v[0].branch()),
        ("UDP", Some("390skdjuw"))
    );
    assert_eq!(
        (v[1].transport(), v[1].branch()),
        ("TCP", Some("z9hG4bK9ikj8"))
    );
    assert_eq!(v[2].host(), Host::Ipv4("192.168.255.111".parse().unwrap()));
    assert_eq!(v[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(m.body().len(), 150);
    assert_eq!(m.headers_named("NewFangledHeader").count(), 1);
    let route = m
        .typed::<sip_message::headers::Route<'_>>()
        .unwrap()
        .unwrap();
    assert!(route.uri().as_sip().unwrap().lr());
    let ct: ContentType<'_> = m.typed().unwrap().unwrap();
    assert!(ct.is("application", "sdp"));
}

#[test]
fn intmeth_values() {
    let m = msg4475("intmeth");
    let method = m.method().unwrap();
    assert_eq!(
        method.as_str(),
        "!interesting-Method0123456789_*+`.%indeed'~"
    );
    let cseq: CSeq<'_> = m.typed().unwrap().unwrap();
    assert_eq!(cseq.method, method);
    let uri = m.request_uri().unwrap();
    let sip = uri.as_sip().unwrap();
    assert_eq!(
        sip.user(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        sip.password(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    let from: From<'_> = m.typed().unwrap().unwrap();
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(from.display_name(), Some("token1~` token2'+_ token3*%!.-"));
    assert_eq!(
        from.params().get("fromParam''~+*_!.-%"),
        Some(Some(
            "\u{0440}\u{0430}\u{0431}\u{043e}\u{0442}\u{0430}\u{044e}\u{0449}\u{0438}\u{0439}"
        ))
    );
    let call_id: CallId<'_> = m.typed().unwrap().unwrap();
    assert_eq!(call_id.0, "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{");
}

#[test]
fn escapes() {
    let m = msg4475("esc01");
    let uri = m.request_uri().unwrap();
    assert_eq!(
        uri.as_sip().unwrap().user(),
        Some("sips%3Auser%40example.com")
    );
    assert_eq!(
        sip_message::unescape("sips%3Auser%40example.com"),
        b"sips:user@example.com"
    );
    let m = msg4475("esc02");
    assert_eq!(m.method().unwrap().as_str(), "RE%47IST%45R");
    let m = msg4475("escnull");
    let contacts: Vec<_> = m.typed_all::<Contact<'_>>().map(Result::unwrap).collect();
    assert_eq!(contacts.len(), 2);
    let user = contacts[1]
        .addr()
        .unwrap()
        .uri()
        .as_sip()
        .unwrap()
        .user()
        .unwrap();
    assert_eq!(sip_message::unescape(user), b"\0\0");
    let m = msg4475("esc01");
    let to: To<'_> = m.typed().unwrap().unwrap();
    let to_user = to.uri().as_sip().unwrap().user().unwrap();
    assert_eq!(sip_message::unescape(to_user), b"user");
    let c: Contact<'_> = m.typed().unwrap().unwrap();
    let sip = *c.addr().unwrap().uri().as_sip().unwrap();
    assert_eq!(sip.params().get_unescaped("lr"), Some(None));
    assert_eq!(
        sip.params().get_unescaped("name"),
        Some(Some("v%61lue%25%34%31"))
    );
}

#[test]
fn assorted_valid_values() {
    let m = msg4475("lwsdisp");
    assert_eq!(
        m.typed::<From<'_>>().unwrap().unwrap().display_name(),
        Some("caller")
    );

    let m = msg4475("longreq");
    assert_eq!(vias(&m).len(), 34);
    let to: To<'_> = m.typed().unwrap().unwrap();
    assert_eq!(to.uri().as_sip().unwrap().port(), Some(6000));

    let m = msg4475("dblreq");
    assert_eq!(m.body(), b"");
    assert!(m.message_bytes().len() < m.as_bytes().len());

    let m = msg4475("semiuri");
    assert_eq!(
        m.request_uri().unwrap().as_sip().unwrap().user(),
        Some("user;par=u%40example.net")
    );
    assert_eq!(m.values(HeaderName::Accept).count(), 6);

    let m = msg4475("transports");
    let t: Vec<_> = vias(&m).iter().map(|v| v.transport()).collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);

    let m = msg4475("mpart01");
    let ct: ContentType<'_> = m.typed().unwrap().unwrap();
    assert!(ct.is("multipart", "mixed"));
    assert_eq!(ct.params.get("boundary"), Some(Some("7a9cbec02ceef655")));

    let m = msg4475("unreason");
    assert_eq!(m.status(), Some(200));
    assert_eq!(
        m.reason(),
        Some("= 2**3 * 5**2 но сто девяносто девять - простое")
    );

    let m = msg4475("noreason");
    assert_eq!((m.status(), m.reason()), (Some(100), Some("")));

    // §3.2.1: the branch is the magic cookie alone; a transaction layer
    // must cope, the parser just reports it.
    let m = msg4475("badbranch");
    assert_eq!(vias(&m)[0].branch(), Some("z9hG4bK"));

    let m = msg4475("unksm2");
    let to: To<'_> = m.typed().unwrap().unwrap();
    assert!(matches!(to.uri(), Uri::Other(u) if u.scheme() == "isbn"));

    let m = msg4475("bcast");
    assert_eq!(
        vias(&m)[1].host(),
        Host::Ipv4("255.255.255.255".parse().unwrap())
    );

    let m = msg4475("zeromf");
    assert_eq!(m.typed::<MaxForwards>().unwrap(), Ok(MaxForwards(0)));

    let m = msg4475("cparam01");
    let c: Contact<'_> = m.typed().unwrap().unwrap();
    // §3.3.12: in the addr-spec form, `;unknownparam` belongs to the header.
    assert_eq!(c.addr().unwrap().params().get("unknownparam"), Some(None));
    assert!(
        c.addr()
            .unwrap()
            .uri()
            .as_sip()
            .unwrap()
            .params()
            .is_empty()
    );

    let m = msg4475("cparam02");
    let c: Contact<'_> = m.typed().unwrap().unwrap();
    assert!(
        c.addr()
            .unwrap()
            .uri()
            .as_sip()
            .unwrap()
            .params()
            .contains("unknownparam")
    );

    let m = msg4475("regescrt");
    let c: Contact<'_> = m.typed().unwrap().unwrap();
    assert_eq!(
        c.addr().unwrap().uri().as_sip().unwrap().headers(),
        Some("Route=%3Csip:sip.example.com%3E")
    );

    let m = msg4475("inv2543");
    assert!(vias(&m)[0].branch().is_none());
    assert!(m.header(HeaderName::MaxForwards).is_none());
    assert_eq!(m.content_length(), None);
    assert!(m.body().starts_with(b"v=0"));
    let rr: RecordRoute<'_> = m.typed().unwrap().unwrap();
    assert_eq!(rr.uri().as_sip().unwrap().maddr(), Some("ss1.example.com"));
}

#[test]
fn invalid_cases_name_their_fault() {
    let fault = |name: &str, role: Role| validate(&msg4475(name), role).unwrap_err();
    assert!(matches!(fault("badinv01", Role::Forward),
        ValidationError::Header(e) if e.header == HeaderName::Via));
    assert!(matches!(fault("scalar02", Role::Forward),
        ValidationError::Header(e) if e.header == HeaderName::CSeq && e.kind == HeaderErrorKind::Number));
    assert!(matches!(fault("quotbal", Role::Forward),
        ValidationError::Header(e) if e.header == HeaderName::To && e.kind == HeaderErrorKind::UnterminatedQuote));
    assert!(matches!(fault("baddate", Role::Uas),
        ValidationError::Header(e) if e.header == HeaderName::Date));
    assert!(matches!(fault("regbadct", Role::Uas),
        ValidationError::Header(e) if e.header == HeaderName::Contact && e.kind == HeaderErrorKind::NeedsAngleBrackets));
    assert_eq!(
        fault("escruri", Role::Uas),
        ValidationError::RequestUriHeaders
    );
    assert_eq!(
        fault("badvers", Role::Forward),
        ValidationError::Version(7, 0)
    );
    assert_eq!(
        fault("mismatch01", Role::Forward),
        ValidationError::CSeqMethod
    );
    assert_eq!(
        fault("mismatch02", Role::Forward),
        ValidationError::CSeqMethod
    );
    assert!(matches!(
        fault("insuf", Role::Forward),
        ValidationError::Missing(_)
    ));
    assert!(matches!(
        fault("multi01", Role::Forward),
        ValidationError::Repeated(_)
    ));
    assert_eq!(fault("unkscm", Role::Uas), ValidationError::UriScheme);
    assert_eq!(fault("novelsc", Role::Uas), ValidationError::UriScheme);
    assert_eq!(
        fault("badvers", Role::Forward).reason_phrase(),
        "Version Not Supported"
    );
    assert_eq!(
        fault("mismatch01", Role::Forward).reason_phrase(),
        "CSeq method does not match the request method"
    );
}

#[test]
fn rfc5118_values() {
    let m = msg5118("ipv6-good");
    let host = m.request_uri().unwrap().as_sip().unwrap().host();
    assert_eq!(host, Host::Ipv6("2001:db8::10".parse().unwrap()));

    let m = msg5118("port-ambiguous");
    let u = m.request_uri().unwrap();
    let sip = u.as_sip().unwrap();
    assert_eq!(
        (sip.host(), sip.port()),
        (Host::Ipv6("2001:db8::10:5070".parse().unwrap()), None)
    );

    let m = msg5118("port-unambiguous");
    let u = m.request_uri().unwrap();
    let sip = u.as_sip().unwrap();
    assert_eq!(
        (sip.host(), sip.port()),
        (Host::Ipv6("2001:db8::10".parse().unwrap()), Some(5070))
    );

    for name in [
        "via-received-param-with-delim",
        "via-received-param-no-delim",
    ] {
        let m = msg5118(name);
        assert_eq!(
            vias(&m)[0].received(),
            Some("2001:db8::9:255".parse().unwrap()),
            "{name}"
        );
    }

    let m = msg5118("mult-ip-in-header");
    let v = vias(&m);
    assert_eq!(v.len(), 3);
    assert_eq!(
        (v[0].host(), v[0].port()),
        (Host::Ipv6("2001:db8::9:1".parse().unwrap()), Some(6050))
    );
    assert_eq!(v[2].received(), Some("192.0.2.200".parse().unwrap()));

    let m = msg5118("ipv4-mapped-ipv6");
    let v = vias(&m);
    assert_eq!(
        (v[0].host(), v[0].port()),
        (
            Host::Ipv6("::ffff:192.0.2.10".parse().unwrap()),
            Some(19823)
        )
    );
    let c: Contact<'_> = m.typed().unwrap().unwrap();
    let host = c.addr().unwrap().uri().as_sip().unwrap().host();
    assert_eq!(host, Host::Ipv6("::ffff:192.0.2.2".parse().unwrap()));

    for name in ["ipv6-bug-abnf-3-colons", "ipv6-correct-abnf-2-colons"] {
        let m = msg5118(name);
        let host = m.request_uri().unwrap().as_sip().unwrap().host();
        assert_eq!(
            host,
            Host::Ipv6("2001:db8::192.0.2.1".parse().unwrap()),
            "{name}"
        );
    }
}
