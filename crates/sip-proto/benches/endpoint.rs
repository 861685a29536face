//! Transaction layer cost per call, with many transactions alive.
//!
//! `cargo bench -p sip-proto --bench endpoint`
//!
//! * `uas_invite_call`: one UAS INVITE transaction as a call sees it:
//!   receive INVITE, respond 180 and 200, receive the ACK (2xx
//!   retransmissions stop), with 10 000 other INVITE transactions alive, so
//!   timer arming and matching run against a full table.
//! * `uas_non_invite`: receive OPTIONS, respond 200.
//! * `uas_invite_call_steady_100k`: the same call at steady state with
//!   100 000 answered calls waiting out Timer L (64*T1 = 32 s): the clock
//!   advances 320 µs per call, so every call arms Trying, the 2xx
//!   retransmission and L, disarms two of them, and one older call's L
//!   fires and ends its transaction. Timer arming, disarming and firing
//!   run against a full table, as in a UAS at about 3,000 calls per
//!   second.

// A benchmark fails loudly when its fixture does not build.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use sip_message::{Peer, ResponseBuilder, SipMessage, TransportKind};
use sip_proto::{Endpoint, Event, Output, Timers};

fn request(method: &str, n: u64, to_tag: Option<&str>) -> SipMessage {
    let to = to_tag.map_or_else(String::new, |t| format!(";tag={t}"));
    let branch = if method == "ACK" {
        format!("a{n}")
    } else {
        format!("{n}")
    };
    let raw = format!(
        "{method} sip:bob@192.0.2.2 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@192.0.2.1>;tag=a{n}\r\n\
         To: <sip:bob@192.0.2.2>{to}\r\n\
         Call-ID: call-{n}@192.0.2.1\r\n\
         CSeq: 1 {}\r\n\
         Contact: <sip:alice@192.0.2.1:5060>\r\n\
         Content-Length: 0\r\n\r\n",
        if method == "ACK" { "ACK" } else { method }
    );
    SipMessage::parse(Bytes::from(raw)).expect("fixture parses")
}

fn peer() -> Peer {
    Peer {
        transport: TransportKind::Udp,
        addr: "192.0.2.1:5060".parse().expect("address"),
    }
}

/// One call through the UAS at `t`: INVITE, 180, 200, ACK; then the
/// timers due at `t` fire.
fn call(ep: &mut Endpoint, t: Instant, n: u64) {
    let invite = request("INVITE", n, None);
    let tx = receive(ep, t, invite.clone()).expect("transaction");
    let ringing = ResponseBuilder::for_request(&invite, 180, Some("b"))
        .unwrap()
        .build()
        .unwrap();
    ep.respond(t, tx, ringing).unwrap();
    let ok = ResponseBuilder::for_request(&invite, 200, Some("b"))
        .unwrap()
        .build()
        .unwrap();
    ep.respond(t, tx, ok).unwrap();
    let ack = request("ACK", n, Some("b"));
    ep.receive(t, ack, peer());
    ep.handle_timeout(t);
    while let Some(o) = ep.poll_output() {
        black_box(o);
    }
}

/// Receives a request and returns the server transaction it created.
fn receive(ep: &mut Endpoint, now: Instant, msg: SipMessage) -> Option<sip_proto::TxId> {
    ep.receive(now, msg, peer());
    let mut tx = None;
    while let Some(out) = ep.poll_output() {
        if let Output::Event(Event::Request { tx: t, .. }) = out {
            tx = Some(t);
        }
    }
    tx
}

fn bench(c: &mut Criterion) {
    // The bench is the clock source; the endpoint only sees the value.
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut ep = Endpoint::new(Timers::default(), 1);
    // 10 000 calls ringing: their timers stay armed.
    for n in 0..10_000 {
        let invite = request("INVITE", n, None);
        let tx = receive(&mut ep, now, invite.clone()).expect("transaction");
        let ringing = ResponseBuilder::for_request(&invite, 180, Some("b"))
            .unwrap()
            .build()
            .unwrap();
        ep.respond(now, tx, ringing).unwrap();
        while ep.poll_output().is_some() {}
    }
    let mut n = 1_000_000u64;
    c.bench_function("uas_invite_call", |b| {
        b.iter(|| {
            n += 1;
            let t = now + Duration::from_micros(n);
            let invite = request("INVITE", n, None);
            let tx = receive(&mut ep, t, invite.clone()).expect("transaction");
            let ringing = ResponseBuilder::for_request(&invite, 180, Some("b"))
                .unwrap()
                .build()
                .unwrap();
            ep.respond(t, tx, ringing).unwrap();
            let ok = ResponseBuilder::for_request(&invite, 200, Some("b"))
                .unwrap()
                .build()
                .unwrap();
            ep.respond(t, tx, ok).unwrap();
            let ack = request("ACK", n, Some("b"));
            ep.receive(t, ack, peer());
            while let Some(o) = ep.poll_output() {
                black_box(o);
            }
        });
    });
    c.bench_function("uas_non_invite", |b| {
        b.iter(|| {
            n += 1;
            let t = now + Duration::from_micros(n);
            let options = request("OPTIONS", n, None);
            let tx = receive(&mut ep, t, options.clone()).expect("transaction");
            let ok = ResponseBuilder::for_request(&options, 200, Some("b"))
                .unwrap()
                .build()
                .unwrap();
            ep.respond(t, tx, ok).unwrap();
            while let Some(o) = ep.poll_output() {
                black_box(o);
            }
        });
    });
}

fn steady(c: &mut Criterion) {
    const LIVE: u64 = 100_000;
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let mut ep = Endpoint::new(Timers::default(), 2);
    // 64*T1 spread over LIVE calls: one L fires per new call.
    let step = Timers::default().t1x64() / LIVE as u32;
    let mut n = 0u64;
    for _ in 0..LIVE {
        call(&mut ep, start + step * n as u32, n);
        n += 1;
    }
    c.bench_function("uas_invite_call_steady_100k", |b| {
        b.iter(|| {
            let t = start + step * n as u32;
            call(&mut ep, t, n);
            n += 1;
        });
    });
    // Steady: about LIVE calls still alive.
    assert!(ep.transaction_count() <= LIVE as usize + 2);
}

criterion_group!(benches, bench, steady);
criterion_main!(benches);
