//! Two endpoints and a virtual clock: an INVITE answered 486, the ACK the
//! client transaction sends, and the timers that end both transactions.
//! No sockets and no real time: what sip-proto is for.
//!
//! `cargo run -p sip-proto --example loopback`

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use bytes::Bytes;
use sip_message::{Method, Peer, RequestBuilder, ResponseBuilder, SipMessage, TransportKind};
use sip_proto::{Endpoint, Event, Output, Timers};

fn main() {
    let alice_addr = Peer {
        transport: TransportKind::Udp,
        addr: "192.0.2.1:5060".parse().unwrap(),
    };
    let bob_addr = Peer {
        transport: TransportKind::Udp,
        addr: "192.0.2.2:5060".parse().unwrap(),
    };
    let mut alice = Endpoint::new(Timers::default(), 1);
    let mut bob = Endpoint::new(Timers::default(), 2);
    // The example is the clock; the endpoints only see its readings.
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let mut now = start;

    let branch = alice.ids().branch();
    let invite = RequestBuilder::new(Method::Invite, "sip:bob@192.0.2.2")
        .unwrap()
        .header(
            "Via",
            &format!("SIP/2.0/UDP 192.0.2.1:5060;branch={branch}"),
        )
        .header("Max-Forwards", "70")
        .header("From", "<sip:alice@192.0.2.1>;tag=a1")
        .header("To", "<sip:bob@192.0.2.2>")
        .header("Call-ID", "loopback-1@192.0.2.1")
        .header("CSeq", "1 INVITE")
        .build()
        .unwrap();
    alice.send_request(now, invite, bob_addr).unwrap();

    // Shuttle datagrams and fire timers until both sides are idle.
    loop {
        let mut moved = false;
        while let Some(out) = alice.poll_output() {
            moved = true;
            match out {
                Output::Transmit(t) => {
                    println!(
                        "{:>6} ms alice -> bob  {}",
                        ms(start, now),
                        first_line(&t.bytes)
                    );
                    bob.receive(now, SipMessage::parse(t.bytes).unwrap(), alice_addr);
                }
                Output::Event(e) => println!("{:>6} ms alice: {}", ms(start, now), describe(&e)),
            }
        }
        while let Some(out) = bob.poll_output() {
            moved = true;
            match out {
                Output::Transmit(t) => {
                    println!(
                        "{:>6} ms bob -> alice  {}",
                        ms(start, now),
                        first_line(&t.bytes)
                    );
                    alice.receive(now, SipMessage::parse(t.bytes).unwrap(), bob_addr);
                }
                Output::Event(Event::Request { tx, request, .. }) => {
                    println!(
                        "{:>6} ms bob: request {}",
                        ms(start, now),
                        request.start_line_str()
                    );
                    let busy = ResponseBuilder::for_request(&request, 486, Some("b1"))
                        .unwrap()
                        .build()
                        .unwrap();
                    bob.respond(now, tx, busy).unwrap();
                }
                Output::Event(e) => println!("{:>6} ms bob: {}", ms(start, now), describe(&e)),
            }
        }
        if moved {
            continue;
        }
        let next = [alice.poll_timeout(), bob.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(at) = next else { break };
        now = at;
        alice.handle_timeout(now);
        bob.handle_timeout(now);
    }
    println!(
        "done at {} ms: {} and {} transactions left",
        ms(start, now),
        alice.transaction_count(),
        bob.transaction_count()
    );
}

fn ms(start: Instant, now: Instant) -> u128 {
    (now - start).as_millis()
}

fn first_line(b: &Bytes) -> String {
    String::from_utf8_lossy(b)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

fn describe(e: &Event) -> String {
    match e {
        Event::Response { response, .. } => format!("response {}", response.start_line_str()),
        Event::Terminated { tx } => format!("{tx} terminated"),
        other => format!("{other:?}").chars().take(80).collect(),
    }
}
