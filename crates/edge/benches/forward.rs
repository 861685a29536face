//! The per-message forwarding decision and rewrite, without sockets: an
//! initial INVITE from outside (rendezvous over three containers, Via stamp,
//! new Via, Max-Forwards) and a 200 from a container (pop Via, route by the
//! next one). Target: well under 5 µs each.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use balance::{Backend, Cluster, HealthPolicy};
use bytes::Bytes;
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use edge::{Action, AffinityKey, Container, ContainerConfig, Forwarder};
use sip_message::{Peer, ResponseBuilder, SipMessage, TransportKind};

const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@203.0.113.5:5060>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 136\r\n\r\n\
v=0\r\no=alice 2890844526 2890844526 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn cluster() -> Cluster<Container> {
    let c = Cluster::new(HealthPolicy::default());
    for i in 1..=3 {
        let node = format!("c{i}");
        let config = ContainerConfig {
            node: node.clone(),
            sip: format!("10.0.0.{i}:5080").parse().unwrap(),
            http: None,
            weight: 1,
        };
        c.add(
            Backend::new(node, 1),
            Container {
                config,
                counters: Arc::default(),
                origin: edge::Origin::Config,
            },
        )
        .unwrap();
    }
    c
}

fn bench(c: &mut Criterion) {
    let cluster = cluster();
    let forwarder = Forwarder::with("192.0.2.10:5060", AffinityKey::CallId);
    let outside = Peer {
        transport: TransportKind::Udp,
        addr: "203.0.113.5:5060".parse().unwrap(),
    };
    let raw = Bytes::from_static(INVITE.as_bytes());
    let now = Instant::now();

    c.bench_function("edge: parse + forward INVITE from outside", |b| {
        b.iter(|| {
            let msg = SipMessage::parse(raw.clone()).unwrap();
            let view = cluster.view();
            black_box(forwarder.decide(&msg, outside, &view, now))
        });
    });
    let msg = SipMessage::parse(raw.clone()).unwrap();

    // The 200 a container sends back.
    let view = cluster.view();
    let Action::Send { to, bytes, .. } = forwarder.decide(&msg, outside, &view, now).action else {
        panic!("not forwarded");
    };
    let forwarded = SipMessage::parse(bytes).unwrap();
    let ok = ResponseBuilder::for_request(&forwarded, 200, Some("bobtag"))
        .unwrap()
        .header(
            "Record-Route",
            "<sip:192.0.2.10:5060;lr;sbt=c1.5f3a9b0c11d2e4f7>",
        )
        .build()
        .unwrap()
        .message_bytes();
    let from_container = Peer {
        transport: TransportKind::Udp,
        addr: to.addr,
    };
    c.bench_function("edge: parse + forward 200 from a container", |b| {
        b.iter(|| {
            let msg = SipMessage::parse(ok.clone()).unwrap();
            let view = cluster.view();
            black_box(forwarder.decide(&msg, from_container, &view, now))
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
