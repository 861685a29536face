//! What each fuzz target checks, as plain functions of the input bytes.
//!
//! The fuzz targets in `fuzz/fuzz_targets/` call these, and the ordinary
//! test `crates/sip-message/tests/fuzz_corpus.rs` includes this file (by
//! `#[path]`) to replay the committed corpus on stable in CI. So this file
//! depends on nothing but `sip_message`, `bytes` and `std`.
//!
//! Every check must hold for any input: a panic, from the codec or from an
//! `assert!` below, is a bug (the codec promises never to panic on input).
//!
//! | target          | function                | input                        |
//! |-----------------|-------------------------|------------------------------|
//! | `parse`         | [`check_parse`]         | one datagram                 |
//! | `framer`        | [`check_framer`]        | chunking byte, then a stream |
//! | `uri`           | [`check_uri`]           | one URI (UTF-8)              |
//! | `typed_headers` | [`check_typed_headers`] | one header value (UTF-8)     |
//!
//! The bugs these checks found are fixed; their inputs stay in
//! `fuzz/regressions/` and replay as tests.

// A check reports a failure by panicking: that is what a fuzzer catches.
#![allow(clippy::panic)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use sip_message::headers::{self as h, TypedHeader};
use sip_message::{
    BuildError, Frame, HeaderName, Host, Limits, Method, NameAddr, Params, ParseError,
    ResponseBuilder, Role, SipMessage, StreamFramer, Transport, Uri, ValidationError, validate,
};

/// The Via a forwarding proxy adds in the rewrite of [`check_parse`].
const PROXY_VIA: &str = "SIP/2.0/UDP proxy.fuzz.invalid:5060;branch=z9hG4bKfuzz";

/// Every typed header type in `sip_message::headers`, one call of
/// `$f::<Type>(args)` each. Keep in step with `headers.rs`: a type added
/// there and not here is not fuzzed.
macro_rules! for_each_typed_header {
    ($f:ident($($arg:expr),*)) => {
        $f::<h::Via<'_>>($($arg),*);
        $f::<h::From<'_>>($($arg),*);
        $f::<h::To<'_>>($($arg),*);
        $f::<h::Route<'_>>($($arg),*);
        $f::<h::RecordRoute<'_>>($($arg),*);
        $f::<h::Path<'_>>($($arg),*);
        $f::<h::ReferTo<'_>>($($arg),*);
        $f::<h::ReferredBy<'_>>($($arg),*);
        $f::<h::PAssertedIdentity<'_>>($($arg),*);
        $f::<h::Contact<'_>>($($arg),*);
        $f::<h::CallId<'_>>($($arg),*);
        $f::<h::CSeq<'_>>($($arg),*);
        $f::<h::MaxForwards>($($arg),*);
        $f::<h::ContentLength>($($arg),*);
        $f::<h::Expires>($($arg),*);
        $f::<h::MinExpires>($($arg),*);
        $f::<h::RSeq>($($arg),*);
        $f::<h::MinSe>($($arg),*);
        $f::<h::ContentType<'_>>($($arg),*);
        $f::<h::Supported<'_>>($($arg),*);
        $f::<h::Require<'_>>($($arg),*);
        $f::<h::ProxyRequire<'_>>($($arg),*);
        $f::<h::Unsupported<'_>>($($arg),*);
        $f::<h::AllowEvents<'_>>($($arg),*);
        $f::<h::Allow<'_>>($($arg),*);
        $f::<h::WwwAuthenticate<'_>>($($arg),*);
        $f::<h::ProxyAuthenticate<'_>>($($arg),*);
        $f::<h::Authorization<'_>>($($arg),*);
        $f::<h::ProxyAuthorization<'_>>($($arg),*);
        $f::<h::Event<'_>>($($arg),*);
        $f::<h::SubscriptionState<'_>>($($arg),*);
        $f::<h::RAck<'_>>($($arg),*);
        $f::<h::Replaces<'_>>($($arg),*);
        $f::<h::SessionExpires<'_>>($($arg),*);
        $f::<h::Reason<'_>>($($arg),*);
        $f::<h::RetryAfter<'_>>($($arg),*);
        $f::<h::Timestamp<'_>>($($arg),*);
        $f::<h::Date>($($arg),*);
    };
}

// ---- parse -------------------------------------------------------------------

/// `parse`: the input as one datagram. When it parses: validation in both
/// roles, every typed header read, the unedited message serializes to its
/// own bytes, and a proxy's forward rewrite re-parses.
pub fn check_parse(data: &[u8]) {
    let Ok(msg) = SipMessage::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    exercise_message(&msg, Transport::Datagram);
}

/// Everything [`check_parse`] does with a parsed message; the `framer`
/// target does the same with each message it frames.
fn exercise_message(msg: &SipMessage, transport: Transport) {
    read_index(msg);

    let forward = validate(msg, Role::Forward);
    let uas = validate(msg, Role::Uas);
    for e in [forward, uas].into_iter().filter_map(Result::err) {
        check_validation_error(e);
    }
    // A UAS checks everything a forwarder checks, and more.
    assert!(
        uas.is_err() || forward.is_ok(),
        "valid for a UAS but not forwardable: {forward:?}"
    );
    if forward.is_ok() {
        light_readers_agree(msg);
    }

    for_each_typed_header!(read_all(msg));

    // An unedited message leaves exactly as it came (edits are splices).
    let editor = msg.edit();
    let len = editor.len();
    let out = editor.to_bytes();
    assert_eq!(out.len(), len, "Editor::len disagrees with to_bytes");
    assert_eq!(
        out,
        msg.message_bytes(),
        "unedited message does not round-trip"
    );

    forward_rewrite(msg, transport);
    edited_index_agrees(msg);

    if msg.is_request() {
        answer(msg, forward.err(), uas.is_ok());
    }
}

/// Reads the start line and every header line of the index.
/// The identifiers (`call_id()`, `top_via()`, the tags) come from light
/// readers, not the typed parsers; on a forwardable message they must read
/// and agree with the typed parsers wherever those accept the header (a
/// forwarder that validates a message and then cannot key it would drop it
/// unanswered).
fn light_readers_agree(msg: &SipMessage) {
    assert!(
        msg.call_id().is_some(),
        "forwardable, but the identifiers do not read"
    );
    if let Some(Ok(via)) = msg.typed::<h::Via<'_>>() {
        let light = msg
            .top_via()
            .expect("the typed Via reads, the light one must");
        assert_eq!(light.transport, via.transport(), "Via transport");
        assert_eq!(light.host, via.host_str(), "Via host");
        assert_eq!(light.port, via.port(), "Via port");
        assert_eq!(light.rport, via.rport(), "Via rport");
        assert_eq!(light.branch, via.branch(), "Via branch");
    }
    if let Some(Ok(from)) = msg.typed::<h::From<'_>>() {
        assert_eq!(msg.from_tag(), from.tag(), "From tag");
    }
    if let Some(Ok(to)) = msg.typed::<h::To<'_>>() {
        assert_eq!(msg.to_tag(), to.tag(), "To tag");
    }
}

fn read_index(msg: &SipMessage) {
    black_box((
        msg.method().map(|m| m.as_str()),
        msg.request_uri_str(),
        msg.request_uri(),
    ));
    black_box((msg.version(), msg.is_sip_2_0(), msg.status(), msg.reason()));
    black_box((
        msg.start_line_str(),
        msg.body(),
        msg.body_bytes(),
        msg.content_length(),
    ));
    black_box(msg.as_bytes());
    assert_eq!(
        msg.is_request(),
        msg.method().is_some(),
        "request without a method"
    );
    assert_eq!(
        msg.is_request(),
        msg.status().is_none(),
        "request with a status"
    );
    if let Some(uri) = msg.request_uri_str() {
        // The Request-URI was checked when the message was parsed.
        assert!(
            Uri::parse(uri).is_ok(),
            "Request-URI {uri:?} parsed, then not"
        );
    }
    if let Some(n) = msg.content_length() {
        assert_eq!(
            msg.body().len(),
            n as usize,
            "body length differs from Content-Length"
        );
    }
    let mut lines = 0;
    for hdr in msg.headers() {
        lines += 1;
        let name = hdr.name();
        black_box((hdr.wire_name(), hdr.value_bytes(), hdr.value().ok()));
        assert!(
            name.matches(hdr.wire_name()),
            "{name:?} does not match its wire name"
        );
        assert!(
            msg.headers_of(name).next().is_some() && msg.header(name).is_some(),
            "{name:?} present in headers() but not found by name"
        );
        if let Ok(wire) = std::str::from_utf8(hdr.wire_name()) {
            assert!(
                msg.headers_named(wire).next().is_some(),
                "{wire:?} not found by its wire name"
            );
        }
        for v in msg.values(name) {
            black_box(v.ok());
        }
        black_box((
            name.as_str(),
            name.compact(),
            name.is_list(),
            msg.count(name),
        ));
    }
    assert_eq!(lines, msg.headers().count());
    // The repetitions noted while indexing agree with counting.
    assert_eq!(
        msg.repeated_single_valued(),
        sip_message::SINGLE_VALUED
            .into_iter()
            .find(|n| msg.count(*n) > 1),
        "repeated single-valued header"
    );
}

/// A validation error's status and reason phrase, which a server writes into
/// a status line: it must not be able to break the line.
fn check_validation_error(e: ValidationError) {
    let status = e.status();
    assert!((400..=699).contains(&status), "{e:?} answers {status}");
    let reason = e.reason_phrase();
    assert!(
        !reason.bytes().any(|b| b < b' ' && b != b'\t'),
        "reason phrase {reason:?} holds control characters"
    );
}

/// Reads every value of one typed header from the message.
fn read_all<'m, H: TypedHeader<'m> + Exercise>(msg: &'m SipMessage) {
    for v in msg.typed_all::<H>().flatten() {
        v.exercise();
    }
    if let Some(Ok(v)) = msg.typed::<H>() {
        v.exercise();
    }
}

/// `Editor::into_message` (which takes the index of untouched lines over
/// from the original) must index exactly as a parse of the same bytes.
fn edited_index_agrees(msg: &SipMessage) {
    type Edit = fn(&mut sip_message::Editor<'_>);
    const EDITS: [Edit; 6] = [
        |_| {},
        |e| {
            let _ = e.pop_via();
        },
        |e| {
            let _ = e.prepend_via(PROXY_VIA);
            let _ = e.prepend_record_route("<sip:rr.example;lr>");
            let _ = e.decrement_max_forwards();
            let _ = e.pop_route();
            let _ = e.via_received("192.0.2.7", Some(5062));
        },
        |e| {
            let _ = e.pop_via();
            let _ = e.via_received("192.0.2.7", None);
        },
        |e| {
            let _ = e.replace("From", "<sip:b2bua@192.0.2.1>;tag=x");
            let _ = e.remove("Call-ID");
        },
        |e| {
            let _ = e.set_request_uri("sip:carol@192.0.2.9");
            let _ = e.remove("Record-Route");
            let _ = e.replace("Contact", "<sip:b2bua@192.0.2.1>");
            let _ = e.set_body(Some("text/plain"), Bytes::from_static(b"x"));
        },
    ];
    // The identifiers are taken over only when the original has read them
    // (cached on the message once read): half the rounds edit a fresh
    // parse of the same bytes that has not, half one that has.
    let Ok(fresh) = SipMessage::parse(msg.message_bytes()) else {
        return;
    };
    let read = fresh.clone();
    let _ = read.call_id();
    for (i, edit) in EDITS.iter().enumerate() {
        let unread;
        let msg = if i % 2 == 1 {
            &read
        } else {
            unread = SipMessage::parse(fresh.message_bytes()).unwrap_or_else(|_| fresh.clone());
            &unread
        };
        let mut a = msg.edit();
        edit(&mut a);
        let mut b = msg.edit();
        edit(&mut b);
        let parsed = SipMessage::parse(a.to_bytes());
        let indexed = b.into_message();
        assert_eq!(
            parsed, indexed,
            "edit set {i}: into_message disagrees with parse"
        );
        if let (Ok(p), Ok(x)) = (&parsed, &indexed) {
            let ids = |m: &SipMessage| {
                format!(
                    "{:?} {:?} {:?} {:?} {:?} {:?}",
                    m.call_id(),
                    m.cseq(),
                    m.from_tag(),
                    m.to_tag(),
                    m.top_via(),
                    m.top_branch()
                )
            };
            assert_eq!(
                ids(p),
                ids(x),
                "edit set {i}: identifiers taken over wrongly"
            );
        }
    }
}

/// What a loose-routing proxy does (RFC 3261 §16.6, §16.4): a Via on top,
/// one hop less, the first Route popped. The result must parse, with the
/// new Via first and every untouched value as it was.
fn forward_rewrite(msg: &SipMessage, transport: Transport) {
    let mut edit = msg.edit();
    assert!(
        edit.prepend_via(PROXY_VIA).is_ok(),
        "prepend_via refused a clean value"
    );
    let hops = edit.decrement_max_forwards().ok();
    let popped = edit.pop_route().is_ok();
    let len = edit.len();
    let out = edit.to_bytes();
    assert_eq!(
        out.len(),
        len,
        "Editor::len disagrees with to_bytes after edits"
    );

    // The edits add at most two lines (Via, Max-Forwards) and a few bytes:
    // widen the limits by that much, the limits are not what is tested.
    let default = Limits::default();
    let limits = Limits {
        max_message_size: default
            .max_message_size
            .max(u32::try_from(out.len()).unwrap_or(u32::MAX)),
        max_headers: default.max_headers + 2,
    };
    let again = match SipMessage::parse_with(out.clone(), transport, &limits) {
        Ok(m) => m,
        Err(e) => panic!(
            "forward rewrite does not re-parse: {e:?}\n{:?}",
            String::from_utf8_lossy(&out)
        ),
    };
    let top = again.header(HeaderName::Via).map(|v| v.value_bytes());
    assert_eq!(
        top,
        Some(PROXY_VIA.as_bytes()),
        "the added Via is not the topmost"
    );
    assert_eq!(again.count(HeaderName::Via), msg.count(HeaderName::Via) + 1);
    assert_eq!(again.body(), msg.body(), "the rewrite changed the body");
    if let Some(n) = hops {
        let mf = again.typed::<h::MaxForwards>().and_then(Result::ok);
        assert_eq!(
            mf,
            Some(h::MaxForwards(n)),
            "Max-Forwards not decremented to {n}"
        );
    }
    let routes = |m: &SipMessage| -> Vec<Option<String>> {
        m.values(HeaderName::Route)
            .map(|v| v.ok().map(str::to_owned))
            .collect()
    };
    let before = routes(msg);
    let after = routes(&again);
    if popped {
        assert_eq!(
            after,
            before.get(1..).unwrap_or_default(),
            "pop_route removed more than one value"
        );
    } else {
        assert_eq!(after, before, "a failed pop_route changed Route");
    }
}

/// A UAS answering a request (RFC 3261 §8.2.6): with the status its
/// validation asks for, or 200. A request a UAS accepts can be answered;
/// for others the builder may refuse. What it builds must be a response to
/// this request.
fn answer(msg: &SipMessage, fault: Option<ValidationError>, uas_valid: bool) {
    let (code, reason) = match fault {
        Some(e) => (e.status(), e.reason_phrase()),
        None => (200, "OK".to_owned()),
    };
    let built =
        ResponseBuilder::with_reason(msg, code, &reason, Some("fuzz")).and_then(|b| b.build());
    let resp = match built {
        Ok(resp) => resp,
        // Copying the request's Vias can take a response near the size
        // limit over it.
        Err(BuildError::Parse(ParseError::TooLarge { .. })) => return,
        Err(e) if uas_valid => panic!("cannot answer a request a UAS accepts: {e:?}"),
        Err(_) => return,
    };
    assert_eq!(
        resp.status(),
        Some(code),
        "built response has the wrong status"
    );
    assert_eq!(resp.reason(), Some(reason.as_str()));
    assert_eq!(
        resp.count(HeaderName::Via),
        msg.count(HeaderName::Via),
        "response does not copy every Via"
    );
    if code > 100 {
        let tag = resp
            .typed::<h::To<'_>>()
            .and_then(Result::ok)
            .map(|t| t.tag().is_some());
        assert!(tag != Some(false), "non-100 response whose To has no tag");
    }
}

// ---- framer ------------------------------------------------------------------

/// `framer`: the first byte chooses how the rest is cut into reads; the
/// stream is framed read by read and again in one read. Both give the same
/// messages at the same offsets and fail alike (keepalives may be grouped
/// differently: a ping split after its first CRLF reads as two pongs, as
/// the framer documents). No byte is lost or duplicated, and every message
/// frame either fails to parse or parses with stream semantics into exactly
/// the frame's bytes.
pub fn check_framer(data: &[u8]) {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let chunked = frame_stream(stream, Chunks::new(selector));
    let whole = frame_stream(stream, Chunks::whole());
    assert_eq!(
        chunked.outcome(),
        whole.outcome(),
        "framing depends on how the stream was cut (selector {selector})"
    );
    for framed in [&chunked, &whole] {
        if framed.error.is_none() {
            let consumed: usize = framed.frames.iter().map(frame_len).sum();
            assert_eq!(
                consumed + framed.rest.len(),
                stream.len(),
                "framer lost or duplicated bytes"
            );
        }
    }
    let limits = Limits::default();
    for frame in &whole.frames {
        let Frame::Message(bytes) = frame else {
            continue;
        };
        assert!(!bytes.is_empty(), "empty message frame");
        let Ok(msg) = SipMessage::parse_with(bytes.clone(), Transport::Stream, &limits) else {
            continue;
        };
        // The parser's end of the message is the framer's: otherwise the
        // bytes between would be dropped, or read as a message by one and
        // not the other (request smuggling).
        assert_eq!(
            msg.message_bytes(),
            *bytes,
            "framer and parser disagree on where the message ends"
        );
        exercise_message(&msg, Transport::Stream);
    }
}

/// How a stream is cut into reads.
struct Chunks {
    mode: u8,
    n: usize,
    state: u32,
    flip: bool,
}

impl Chunks {
    /// `selector & 3`: 0 one byte at a time; 1 fixed reads of `n`; 2 reads
    /// of pseudo-random length in `1..=n`; 3 reads alternating 1 and `n`,
    /// where `n = selector / 4 + 1` (1 to 64).
    fn new(selector: u8) -> Chunks {
        Chunks {
            mode: selector & 3,
            n: usize::from(selector >> 2) + 1,
            state: 0x9E37_79B9 ^ u32::from(selector),
            flip: false,
        }
    }

    /// The whole stream in one read.
    fn whole() -> Chunks {
        Chunks {
            mode: 1,
            n: usize::MAX,
            state: 0,
            flip: false,
        }
    }

    fn next_len(&mut self) -> usize {
        match self.mode {
            0 => 1,
            1 => self.n,
            2 => {
                // xorshift32
                self.state ^= self.state << 13;
                self.state ^= self.state >> 17;
                self.state ^= self.state << 5;
                1 + (self.state as usize) % self.n
            }
            _ => {
                self.flip = !self.flip;
                if self.flip { 1 } else { self.n }
            }
        }
    }
}

/// What framing one stream produced.
struct Framed {
    frames: Vec<Frame>,
    error: Option<ParseError>,
    /// Bytes left in the buffer at the end (an incomplete message).
    rest: Bytes,
}

impl Framed {
    /// The message frames with their offsets in the stream, and whether
    /// framing failed.
    fn outcome(&self) -> (Vec<(usize, &Bytes)>, bool) {
        let mut offset = 0;
        let mut messages = Vec::new();
        for f in &self.frames {
            if let Frame::Message(b) = f {
                messages.push((offset, b));
            }
            offset += frame_len(f);
        }
        (messages, self.error.is_some())
    }
}

fn frame_len(f: &Frame) -> usize {
    match f {
        Frame::Ping => 4,
        Frame::Pong => 2,
        Frame::Message(b) => b.len(),
    }
}

/// Feeds `stream` to a framer in the reads `chunks` gives, taking every
/// frame after each read, until the stream ends or framing fails.
fn frame_stream(stream: &[u8], mut chunks: Chunks) -> Framed {
    let mut framer = StreamFramer::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let (read, tail) = rest.split_at(chunks.next_len().min(rest.len()));
        rest = tail;
        buf.extend_from_slice(read);
        loop {
            match framer.next_frame(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => {
                    return Framed {
                        frames,
                        error: Some(e),
                        rest: buf.freeze(),
                    };
                }
            }
        }
    }
    Framed {
        frames,
        error: None,
        rest: buf.freeze(),
    }
}

// ---- uri ---------------------------------------------------------------------

/// `uri`: a URI that parses compares equal to itself (RFC 3261 §19.1.4),
/// displays as received, and equals itself with its scheme upper-cased
/// (schemes are case-insensitive, RFC 3986 §3.1).
pub fn check_uri(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = Uri::parse(text) else {
        return;
    };
    assert!(uri.eq_rfc(&uri), "URI not equal to itself: {text:?}");
    assert_eq!(uri.to_string(), text, "Display differs from the input");
    assert_eq!(uri.as_str(), text);
    exercise_uri(&uri);

    let scheme = uri.scheme();
    let upper = format!(
        "{}{}",
        scheme.to_ascii_uppercase(),
        text.get(scheme.len()..).unwrap_or("")
    );
    match Uri::parse(&upper) {
        Ok(u) => {
            assert!(
                u.eq_rfc(&uri) && uri.eq_rfc(&u),
                "{upper:?} not equal to {text:?}"
            );
        }
        Err(e) => panic!("{text:?} parses but {upper:?} does not: {e:?}"),
    }
}

fn exercise_uri(uri: &Uri<'_>) {
    black_box((uri.scheme(), uri.as_sip().is_some()));
    match uri {
        Uri::Sip(u) => {
            black_box((
                u.as_str(),
                u.is_secure(),
                u.user(),
                u.password(),
                u.host_str(),
            ));
            black_box((
                u.port(),
                u.headers(),
                u.transport(),
                u.lr(),
                u.maddr(),
                u.user_param(),
            ));
            exercise_host(u.host());
            assert!(
                Host::parse(u.host_str()).is_ok(),
                "host {:?} parsed, then not",
                u.host_str()
            );
            exercise_params(u.params());
            if let Some(user) = u.user() {
                black_box(sip_message::unescape(user));
            }
            assert!(u.eq_rfc(u));
        }
        Uri::Tel(t) => {
            black_box((t.number(), t.is_global(), t.digits().count()));
            exercise_params(t.params());
            assert!(t.eq_rfc(t));
        }
        Uri::Other(a) => {
            black_box((a.scheme(), a.rest()));
        }
    }
}

fn exercise_host(host: Host<'_>) {
    assert!(host.eq_rfc(&host), "host not equal to itself: {host:?}");
    black_box(host.to_string());
}

fn exercise_params(p: Params<'_>) {
    black_box((p.as_str(), p.is_empty()));
    for (name, value) in p.iter() {
        black_box((p.get(name), p.get_unescaped(name), p.contains(name), value));
        assert!(
            p.contains(name),
            "parameter {name:?} iterated but not found"
        );
    }
}

// ---- typed_headers -----------------------------------------------------------

/// `typed_headers`: the input as one header value, given to every typed
/// parser directly and, as a line of each header, inside a message (which
/// splits list values). A value that parses can be read in full; an address
/// written back with `Display` parses to the same address.
pub fn check_typed_headers(data: &[u8]) {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    for_each_typed_header!(parse_value(value));

    let mut text = String::with_capacity(64 + 40 * value.len());
    text.push_str("OPTIONS sip:fuzz.invalid SIP/2.0\r\n");
    for name in typed_header_names() {
        if name != HeaderName::ContentLength {
            text.push_str(name.as_str());
            text.push_str(": ");
            text.push_str(value);
            text.push_str("\r\n");
        }
    }
    text.push_str("\r\n");
    if let Ok(msg) = SipMessage::parse(Bytes::from(text)) {
        for_each_typed_header!(read_all(&msg));
    }
}

fn parse_value<'a, H: TypedHeader<'a> + Exercise>(value: &'a str) {
    if let Ok(v) = H::parse(value) {
        v.exercise();
    }
}

/// The header names of every typed header.
fn typed_header_names() -> Vec<HeaderName> {
    fn name<'a, H: TypedHeader<'a>>(names: &mut Vec<HeaderName>) {
        names.push(H::NAME);
    }
    let mut names = Vec::with_capacity(40);
    for_each_typed_header!(name(&mut names));
    names
}

// ---- reading typed values in full --------------------------------------------

/// Reads every part of a parsed value, through its public accessors.
trait Exercise {
    fn exercise(&self);
}

fn exercise_name_addr(a: &NameAddr<'_>) {
    black_box((
        a.display_name(),
        a.display_name_is_quoted(),
        a.is_name_addr(),
        a.tag(),
    ));
    exercise_uri(a.uri());
    exercise_params(a.params());
}

/// Address headers also round-trip through `Display`: what a UA writes back
/// must parse to the same address.
macro_rules! exercise_addr {
    ($($ty:ident),*) => {$(
        impl Exercise for h::$ty<'_> {
            fn exercise(&self) {
                exercise_name_addr(&self.0);
                let written = self.0.to_string();
                match h::$ty::parse(&written) {
                    Ok(again) => {
                        assert_eq!(again.0.to_string(), written, "Display is not a fixed point");
                        assert_eq!(again.uri().as_str(), self.uri().as_str());
                        assert_eq!(again.display_name(), self.display_name());
                        assert_eq!(again.params().as_str(), self.params().as_str());
                    }
                    Err(e) => panic!(
                        "{} written as {written:?} does not parse: {e:?}",
                        stringify!($ty)
                    ),
                }
            }
        }
    )*};
}

exercise_addr!(
    From,
    To,
    Route,
    RecordRoute,
    Path,
    ReferTo,
    ReferredBy,
    PAssertedIdentity
);

impl Exercise for h::Contact<'_> {
    fn exercise(&self) {
        black_box((self.q(), self.expires(), self.instance(), self.reg_id()));
        if let Some(a) = self.addr() {
            exercise_name_addr(a);
            let written = a.to_string();
            assert!(
                h::Contact::parse(&written).is_ok(),
                "Contact written as {written:?} does not parse"
            );
        }
    }
}

impl Exercise for h::Via<'_> {
    fn exercise(&self) {
        black_box((
            self.protocol_name(),
            self.protocol_version(),
            self.transport(),
        ));
        black_box((
            self.host_str(),
            self.port(),
            self.branch(),
            self.has_magic_cookie(),
        ));
        black_box((self.received(), self.rport(), self.ttl()));
        exercise_host(self.host());
        if let Some(m) = self.maddr() {
            exercise_host(m);
        }
        exercise_params(self.params());
    }
}

fn exercise_method(m: Method<'_>) {
    let s = m.as_str();
    assert!(!s.is_empty(), "empty method");
    assert_eq!(
        Method::from_token(s),
        m,
        "method {s:?} does not map back to itself"
    );
}

impl Exercise for h::CallId<'_> {
    fn exercise(&self) {
        assert!(!self.0.is_empty(), "empty Call-ID");
    }
}

impl Exercise for h::CSeq<'_> {
    fn exercise(&self) {
        assert!(
            self.seq < 1 << 31,
            "CSeq {} not below 2**31 (§8.1.1.5)",
            self.seq
        );
        exercise_method(self.method);
    }
}

macro_rules! exercise_number {
    ($($ty:ident),*) => {$(
        impl Exercise for h::$ty {
            fn exercise(&self) {
                black_box(self.0);
            }
        }
    )*};
}

exercise_number!(MaxForwards, ContentLength, Expires, MinExpires, RSeq, MinSe);

impl Exercise for h::ContentType<'_> {
    fn exercise(&self) {
        black_box(self.is(self.media_type, self.subtype));
        exercise_params(self.params);
    }
}

macro_rules! exercise_token {
    ($($ty:ident),*) => {$(
        impl Exercise for h::$ty<'_> {
            fn exercise(&self) {
                assert!(!self.0.is_empty(), "empty token");
            }
        }
    )*};
}

exercise_token!(Supported, Require, ProxyRequire, Unsupported, AllowEvents);

impl Exercise for h::Allow<'_> {
    fn exercise(&self) {
        exercise_method(self.0);
    }
}

macro_rules! exercise_challenge {
    ($($ty:ident),*) => {$(
        impl Exercise for h::$ty<'_> {
            fn exercise(&self) {
                black_box((self.scheme, self.is_digest(), self.realm(), self.nonce()));
                black_box((self.opaque(), self.stale(), self.algorithm(), self.domain()));
                black_box((self.userhash(), self.qop_options().count()));
                for (name, value) in self.params.iter() {
                    black_box((self.params.get(name), value));
                }
            }
        }
    )*};
}

exercise_challenge!(WwwAuthenticate, ProxyAuthenticate);

macro_rules! exercise_credentials {
    ($($ty:ident),*) => {$(
        impl Exercise for h::$ty<'_> {
            fn exercise(&self) {
                black_box((self.scheme, self.is_digest(), self.username(), self.realm()));
                black_box((self.nonce(), self.uri(), self.response(), self.algorithm()));
                black_box((self.cnonce(), self.opaque(), self.qop(), self.nonce_count()));
                black_box(self.userhash());
                for (name, value) in self.params.iter() {
                    black_box((self.params.get(name), value));
                }
            }
        }
    )*};
}

exercise_credentials!(Authorization, ProxyAuthorization);

impl Exercise for h::Event<'_> {
    fn exercise(&self) {
        black_box((self.event_type, self.package(), self.id()));
        exercise_params(self.params);
    }
}

impl Exercise for h::SubscriptionState<'_> {
    fn exercise(&self) {
        black_box((
            self.state,
            self.expires(),
            self.reason(),
            self.retry_after(),
        ));
        exercise_params(self.params);
    }
}

impl Exercise for h::RAck<'_> {
    fn exercise(&self) {
        black_box((self.rseq, self.cseq));
        exercise_method(self.method);
    }
}

impl Exercise for h::Replaces<'_> {
    fn exercise(&self) {
        black_box((
            self.call_id,
            self.to_tag(),
            self.from_tag(),
            self.early_only(),
        ));
        exercise_params(self.params);
    }
}

impl Exercise for h::SessionExpires<'_> {
    fn exercise(&self) {
        black_box((self.delta, self.refresher()));
        exercise_params(self.params);
    }
}

impl Exercise for h::Reason<'_> {
    fn exercise(&self) {
        black_box((self.protocol, self.cause(), self.text()));
        exercise_params(self.params);
    }
}

impl Exercise for h::RetryAfter<'_> {
    fn exercise(&self) {
        black_box((self.delta, self.comment));
        exercise_params(self.params);
    }
}

impl Exercise for h::Timestamp<'_> {
    fn exercise(&self) {
        black_box((self.value, self.delay));
    }
}

impl Exercise for h::Date {
    fn exercise(&self) {
        assert!((1..=12).contains(&self.month), "month {}", self.month);
        assert!((1..=31).contains(&self.day), "day {}", self.day);
        assert!(
            self.hour < 24 && self.minute < 60 && self.second < 61,
            "time {self:?}"
        );
        black_box(self.unix_seconds());
    }
}
