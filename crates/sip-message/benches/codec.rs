//! Codec benchmarks, ours against `sipx-sip` and `rsip` in the same run.
//!
//! `cargo bench -p sip-message --bench codec`
//!
//! * `parse`: index a 1 KB INVITE with SDP.
//! * `proxy_decode`: parse, then read what a proxy needs: top Via (branch),
//!   From and To tags, Call-ID, CSeq, Max-Forwards, every Route URI.
//! * `forward_rewrite`: parse, add a Via, decrement Max-Forwards, serialize.
//! * `framer`: cut 64 INVITEs out of one stream buffer.

// A benchmark fails loudly when its fixture does not parse.
#![allow(clippy::expect_used, missing_docs)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rsip::prelude::*;
use sip_message::headers::{CSeq, CallId, From, MaxForwards, Route, To, Via};
use sip_message::{Frame, Limits, SipMessage, StreamFramer, Transport};

const SDP: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=sendrecv\r\n";

/// A realistic ~1 KB INVITE: two Routes, Record-Route, tags, SDP.
fn invite() -> Bytes {
    let head = format!(
        "INVITE sip:bob@biloxi.example.com:5062;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;received=198.51.100.7;rport=40123\r\n\
Max-Forwards: 70\r\n\
Route: <sip:p1.example.com;lr>\r\n\
Route: <sip:p2.example.net:5070;lr;transport=tcp>\r\n\
Record-Route: <sip:rr.example.org;lr>\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 2 INVITE\r\n\
Contact: <sip:alice@192.0.2.10:5060;transport=udp>;expires=3600;q=0.7\r\n\
Content-Type: application/sdp\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER, NOTIFY\r\n\
Supported: replaces, timer, 100rel\r\n\
User-Agent: Switchboard-Bench/1.0 (criterion)\r\n\
Session-Expires: 1800;refresher=uac\r\n\
P-Asserted-Identity: \"Alice\" <sip:+15551234567@atlanta.example.com;user=phone>\r\n\
Content-Length: {}\r\n\r\n",
        SDP.len()
    );
    let mut v = head.into_bytes();
    v.extend_from_slice(SDP.as_bytes());
    Bytes::from(v)
}

// Each decoder returns (routes, cseq, max-forwards) so the parsers can be
// checked against each other before they are timed.
fn ours_decode(m: &SipMessage) -> Option<(usize, u32, u32)> {
    let via: Via<'_> = m.typed()?.ok()?;
    let from: From<'_> = m.typed()?.ok()?;
    let to: To<'_> = m.typed()?.ok()?;
    let call_id: CallId<'_> = m.typed()?.ok()?;
    let cseq: CSeq<'_> = m.typed()?.ok()?;
    let mf: MaxForwards = m.typed()?.ok()?;
    let mut routes = 0;
    for r in m.typed_all::<Route<'_>>() {
        black_box(r.ok()?.uri());
        routes += 1;
    }
    black_box((via.branch(), from.tag(), to.tag(), call_id.0));
    Some((routes, cseq.seq, u32::from(mf.0)))
}

fn sipx_decode(m: &sipx_sip::Message) -> Option<(usize, u32, u32)> {
    use sipx_sip::headers as h;
    let hs = m.headers();
    let via: h::Via = hs.typed::<h::Via>()?.ok()?;
    let from: h::From = hs.typed::<h::From>()?.ok()?;
    let to: h::To = hs.typed::<h::To>()?.ok()?;
    let call_id: h::CallId = hs.typed::<h::CallId>()?.ok()?;
    let cseq: h::CSeq = hs.typed::<h::CSeq>()?.ok()?;
    let mf: h::MaxForwards = hs.typed::<h::MaxForwards>()?.ok()?;
    let mut routes = 0;
    for r in hs.typed_all::<h::Route>() {
        black_box(r.ok()?);
        routes += 1;
    }
    black_box((via.branch(), from.tag(), to.tag(), call_id.0));
    Some((routes, cseq.sequence, u32::from(mf.0)))
}

fn rsip_decode(m: &rsip::SipMessage) -> Option<(usize, u32, u32)> {
    let rsip::SipMessage::Request(req) = m else {
        return None;
    };
    let via = req.via_header().ok()?.typed().ok()?;
    let from = req.from_header().ok()?.typed().ok()?;
    let to = req.to_header().ok()?.typed().ok()?;
    let call_id = req.call_id_header().ok()?.value().to_owned();
    let cseq = req.cseq_header().ok()?.typed().ok()?;
    let mf = req.max_forwards_header().ok()?.num().ok()?;
    let mut routes = 0;
    for h in req.headers.iter() {
        if let rsip::Header::Route(r) = h {
            routes += r.typed().ok()?.uris().len();
        }
    }
    black_box((
        via.branch().cloned(),
        from.tag().cloned(),
        to.tag().cloned(),
        call_id,
    ));
    Some((routes, cseq.seq, mf))
}

fn bench(c: &mut Criterion) {
    let msg = invite();
    // All three parsers must agree on the message before they are timed.
    let ours = ours_decode(&SipMessage::parse(msg.clone()).expect("ours parses"));
    let sipx = sipx_decode(
        &sipx_sip::parse_datagram(msg.clone(), &sipx_sip::Limits::datagram()).expect("sipx parses"),
    );
    let rsip = rsip_decode(&rsip::SipMessage::try_from(msg.as_ref()).expect("rsip parses"));
    assert_eq!(ours, Some((2, 2, 70)));
    assert_eq!(ours, sipx);
    assert_eq!(ours, rsip);

    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(msg.len() as u64));
    g.bench_function("switchboard", |b| {
        b.iter(|| SipMessage::parse(black_box(msg.clone())).ok())
    });
    g.bench_function("sipx-sip", |b| {
        let limits = sipx_sip::Limits::datagram();
        b.iter(|| sipx_sip::parse_datagram(black_box(msg.clone()), &limits).ok())
    });
    g.bench_function("rsip", |b| {
        b.iter(|| rsip::SipMessage::try_from(black_box(msg.as_ref())).ok())
    });
    g.finish();

    let mut g = c.benchmark_group("proxy_decode");
    g.bench_function("switchboard", |b| {
        b.iter(|| {
            SipMessage::parse(black_box(msg.clone()))
                .ok()
                .and_then(|m| ours_decode(&m))
        })
    });
    g.bench_function("sipx-sip", |b| {
        let limits = sipx_sip::Limits::datagram();
        b.iter(|| {
            sipx_sip::parse_datagram(black_box(msg.clone()), &limits)
                .ok()
                .and_then(|m| sipx_decode(&m))
        })
    });
    g.bench_function("rsip", |b| {
        b.iter(|| {
            rsip::SipMessage::try_from(black_box(msg.as_ref()))
                .ok()
                .and_then(|m| rsip_decode(&m))
        })
    });
    g.finish();

    let via = "SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKedge1";
    let mut g = c.benchmark_group("forward_rewrite");
    g.bench_function("switchboard", |b| {
        b.iter(|| {
            let m = SipMessage::parse(black_box(msg.clone())).ok()?;
            let mut e = m.edit();
            e.prepend_via(via).ok()?;
            e.decrement_max_forwards().ok()?;
            Some(e.to_bytes())
        })
    });
    g.bench_function("sipx-sip", |b| {
        use sipx_sip::{Header, HeaderName, headers::MaxForwards};
        let limits = sipx_sip::Limits::datagram();
        b.iter(|| {
            let mut m = sipx_sip::parse_datagram(black_box(msg.clone()), &limits).ok()?;
            let hs = m.headers_mut();
            let mf = hs.typed::<MaxForwards>()?.ok()?.0;
            let pos = hs
                .iter()
                .position(|x| x.name() == &HeaderName::MaxForwards)?;
            hs.remove_first(&HeaderName::MaxForwards);
            hs.insert(
                pos,
                Header::build(HeaderName::MaxForwards, (mf - 1).to_string()).ok()?,
            );
            hs.push_front(Header::build(HeaderName::Via, via).ok()?);
            Some(m.to_bytes())
        })
    });
    g.bench_function("rsip", |b| {
        b.iter(|| {
            let rsip::SipMessage::Request(mut req) =
                rsip::SipMessage::try_from(black_box(msg.as_ref())).ok()?
            else {
                return None;
            };
            let mf = req.max_forwards_header().ok()?.num().ok()?;
            req.max_forwards_header_mut()
                .ok()?
                .replace((mf - 1).to_string());
            let mut hs: Vec<rsip::Header> = req.headers.into();
            hs.insert(0, rsip::headers::Via::new(via).into());
            req.headers = hs.into();
            Some(Vec::<u8>::from(req))
        })
    });
    g.finish();

    let mut stream = BytesMut::new();
    for _ in 0..64 {
        stream.extend_from_slice(&msg);
    }
    let stream = stream.freeze();
    let mut g = c.benchmark_group("framer");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("switchboard_64_invites", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(stream.as_ref());
            let mut f = StreamFramer::default();
            let mut n = 0;
            while let Ok(Some(Frame::Message(m))) = f.next_frame(&mut buf) {
                black_box(m);
                n += 1;
            }
            n
        })
    });
    g.bench_function("switchboard_64_invites_frame_and_parse", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(stream.as_ref());
            let mut f = StreamFramer::default();
            let mut n = 0;
            while let Ok(Some(Frame::Message(m))) = f.next_frame(&mut buf) {
                let parsed = SipMessage::parse_with(m, Transport::Stream, &Limits::default());
                black_box(parsed.ok());
                n += 1;
            }
            n
        })
    });
    // sipx-sip's stream parser frames and parses in one step.
    g.bench_function("sipx-sip_64_invites_frame_and_parse", |b| {
        b.iter(|| {
            let mut p = sipx_sip::StreamParser::new(sipx_sip::Limits::stream());
            p.push(black_box(stream.as_ref()))
                .map(|v| v.len())
                .unwrap_or(0)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
