//! Call flows through the simulation: CANCEL (§9), forked 2xx (RFC 6026),
//! transport errors (§17.1.4, RFC 6026 §7.1), RFC 2543 peers (§17.2.3) and
//! requests that fail validation (§8.2, §16.3), at exact virtual times.
//!
//! Links have a 10 ms one-way delay unless a test says otherwise.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod sim;

use std::collections::HashMap;
use std::time::Duration;

use sim::*;
use sip_message::{Method, SipMessage};
use sip_proto::{Endpoint, Event, ProtoError, Timers, TransportKind, TxId, TxState};

const UDP: TransportKind = TransportKind::Udp;
const TCP: TransportKind = TransportKind::Tcp;

fn start(sim: &mut Sim, method: Method<'static>, t: TransportKind) -> TxId {
    sim.act(UAC, |cx| {
        let r = cx.request(method, addr(UAS_ADDR), t);
        cx.send_request(r, peer(t, UAS_ADDR)).expect("send_request")
    })
}

fn settle(sim: &mut Sim) {
    assert!(sim.run(Duration::from_secs(600)), "{}", sim.trace());
}

/// A called UA: rings after `ring` (if any), answers `answer` = (status,
/// after) (if any), and answers a CANCELled INVITE with 487 when
/// `honours_cancel`.
fn callee(ring: Option<Duration>, answer: Option<(u16, Duration)>, honours_cancel: bool) -> Tu {
    let mut invites: HashMap<TxId, SipMessage> = HashMap::new();
    Box::new(move |cx, e| match e {
        Event::Request { tx, request, .. } if is_request(request, "INVITE") => {
            let tx = *tx;
            invites.insert(tx, request.clone());
            if let Some(d) = ring {
                let r = response(request, 180, "callee", cx.me);
                cx.after(d, move |cx| {
                    let _ = cx.respond(tx, r);
                });
            }
            if let Some((code, d)) = answer {
                let r = response(request, code, "callee", cx.me);
                cx.after(d, move |cx| {
                    let _ = cx.respond(tx, r);
                });
            }
        }
        Event::Cancelled { invite } if honours_cancel => {
            let r = response(&invites[invite], 487, "callee", cx.me);
            cx.respond(*invite, r).expect("487");
        }
        _ => {}
    })
}

fn sent_of<'a>(node: &'a Node, method: &str) -> Vec<&'a Sent> {
    node.sent
        .iter()
        .filter(|s| s.msg.as_ref().is_some_and(|m| is_request(m, method)))
        .collect()
}

fn header(m: &SipMessage, name: sip_message::HeaderName) -> Vec<&[u8]> {
    m.headers_of(name).map(|h| h.value_bytes()).collect()
}

// ---- CANCEL (§9) -----------------------------------------------------------------------------

#[test]
fn cancel_before_any_provisional_is_held_until_the_first_1xx() {
    let mut sim = Sim::pair(
        Timers::default(),
        acking_uac(UDP),
        callee(Some(ms(1000)), None, true),
    );
    // The UAS's 100 Trying (210) is lost, so the 180 is the first 1xx.
    sim.set_filter(|_, p| p.msg.as_ref().is_some_and(|m| m.status() == Some(100)));
    let tx = start(&mut sim, Method::Invite, UDP);
    sim.run_until_ms(100);
    // §9.1: no provisional yet, so no CANCEL on the wire.
    assert_eq!(sim.act(UAC, |cx| cx.cancel(tx)), Ok(None));
    sim.run_until_ms(1019);
    assert!(sent_of(sim.node(UAC), "CANCEL").is_empty());
    settle(&mut sim);

    let (uac, uas) = (sim.node(UAC), sim.node(UAS));
    // The 180 (sent 1010) arrives at 1020 and releases the CANCEL.
    assert_eq!(uac.sent_requests_ms("INVITE"), [0, 500]);
    let cancels = sent_of(uac, "CANCEL");
    assert_eq!(cancels.len(), 1);
    assert_eq!(uac.rel(cancels[0].at), 1020);
    let ctx = cancels[0].tx.unwrap();
    assert_ne!(ctx, tx);
    // §9.1: Request-URI, Call-ID, To, From, CSeq number as the INVITE; one
    // Via, the INVITE's top Via (same branch).
    let invite = uac.sent[0].msg.clone().unwrap();
    let cancel = cancels[0].msg.clone().unwrap();
    use sip_message::HeaderName as H;
    assert_eq!(cancel.request_uri_str(), invite.request_uri_str());
    for h in [H::CallId, H::To, H::From, H::Via] {
        assert_eq!(header(&cancel, h), header(&invite, h), "{h:?}");
    }
    assert_eq!(cseq_number(&cancel), Some(1));
    assert_eq!(cseq_method(&cancel).as_deref(), Some("CANCEL"));

    // The UAS answers the CANCEL itself, the TU hears Cancelled and sends
    // 487; the client transaction ACKs the 487.
    let stx = uas
        .first_tx(|e| matches!(e, Event::Request { .. }))
        .unwrap();
    assert_eq!(uas.sent_responses_ms(200, "CANCEL"), [1030]);
    assert_eq!(
        uas.events_ms(|e| matches!(e, Event::Cancelled { .. })),
        [(1030, Event::Cancelled { invite: stx })]
    );
    assert_eq!(uas.sent_responses_ms(487, "INVITE"), [1030]);
    assert_eq!(uac.responses_heard(tx), [(1020, 180), (1040, 487)]);
    assert_eq!(uac.responses_heard(ctx), [(1040, 200)]);
    let acks = sent_of(uac, "ACK");
    assert_eq!((uac.rel(acks[0].at), acks[0].tx), (1040, Some(tx)));
    assert_eq!(uas.received_ms(|m| is_request(m, "ACK")), [1050]);
    // Timer D, K on the UAC; I, J on the UAS.
    assert_eq!(uac.terminated_ms(tx), Some(1040 + 32_000));
    assert_eq!(uac.terminated_ms(ctx), Some(1040 + 5000));
    assert_eq!(uas.terminated_ms(stx), Some(1050 + 5000));
    assert_eq!(sim.ep(UAC).transaction_count(), 0);
    assert_eq!(sim.ep(UAS).transaction_count(), 0);
}

#[test]
fn the_100_trying_releases_a_held_cancel() {
    let mut sim = Sim::pair(
        Timers::default(),
        silent(),
        callee(Some(ms(1000)), None, true),
    );
    let tx = start(&mut sim, Method::Invite, UDP);
    sim.run_until_ms(100);
    assert_eq!(sim.act(UAC, |cx| cx.cancel(tx)), Ok(None));
    settle(&mut sim);
    let (uac, uas) = (sim.node(UAC), sim.node(UAS));
    // 100 Trying at 210 (§17.2.1), at the UAC at 220: the CANCEL leaves.
    assert_eq!(uac.responses_heard(tx)[0], (220, 100));
    assert_eq!(uac.sent_requests_ms("CANCEL"), [220]);
    assert_eq!(uac.sent_requests_ms("INVITE"), [0]);
    assert_eq!(uas.sent_responses_ms(487, "INVITE"), [230]);
    // The TU's 180 at 1010 finds the transaction Completed: refused.
    assert!(uas.sent_responses_ms(180, "INVITE").is_empty());
    assert_eq!(uac.responses_heard(tx), [(220, 100), (240, 487)]);
}

#[test]
fn cancel_after_180_gets_200_and_the_invite_487() {
    for t in [UDP, TCP] {
        let mut sim = Sim::pair(
            Timers::default(),
            acking_uac(t),
            callee(Some(Duration::ZERO), None, true),
        );
        let tx = start(&mut sim, Method::Invite, t);
        sim.run_until_ms(1000);
        let ctx = sim.act(UAC, |cx| cx.cancel(tx)).unwrap().unwrap();
        settle(&mut sim);
        let (uac, uas) = (sim.node(UAC), sim.node(UAS));
        let stx = uas
            .first_tx(|e| matches!(e, Event::Request { .. }))
            .unwrap();
        assert_eq!(uac.sent_requests_ms("CANCEL"), [1000]);
        assert_eq!(uas.sent_responses_ms(200, "CANCEL"), [1010]);
        assert_eq!(
            uas.events_ms(|e| matches!(e, Event::Cancelled { .. })),
            [(1010, Event::Cancelled { invite: stx })]
        );
        assert_eq!(uas.sent_responses_ms(487, "INVITE"), [1010]);
        assert_eq!(uac.responses_heard(tx), [(20, 180), (1020, 487)]);
        assert_eq!(uac.responses_heard(ctx), [(1020, 200)]);
        assert_eq!(uac.sent_requests_ms("ACK"), [1020]);
        assert_eq!(uas.received_ms(|m| is_request(m, "ACK")), [1030]);
        assert_eq!(sim.ep(UAC).transaction_count(), 0);
        assert_eq!(sim.ep(UAS).transaction_count(), 0);
    }
}

#[test]
fn cancel_racing_a_200_gets_200_but_the_call_is_established() {
    // The UAS answers 200 at 1010; the CANCEL sent at 1005 arrives at 1015
    // and finds the INVITE transaction Accepted.
    let mut sim = Sim::pair(
        Timers::default(),
        acking_uac(UDP),
        callee(Some(Duration::ZERO), Some((200, ms(1000))), true),
    );
    let tx = start(&mut sim, Method::Invite, UDP);
    sim.run_until_ms(1005);
    let ctx = sim.act(UAC, |cx| cx.cancel(tx)).unwrap().unwrap();
    sim.run_until_ms(1100);
    assert_eq!(sim.ep(UAC).state(tx), Some(TxState::Accepted));
    settle(&mut sim);
    let (uac, uas) = (sim.node(UAC), sim.node(UAS));
    let stx = uas
        .first_tx(|e| matches!(e, Event::Request { .. }))
        .unwrap();
    // §9.2: the CANCEL matched a transaction, so 200; a final response was
    // already sent, so no effect: no Cancelled, no 487.
    assert_eq!(uas.sent_responses_ms(200, "CANCEL"), [1015]);
    assert!(
        uas.events_ms(|e| matches!(e, Event::Cancelled { .. }))
            .is_empty()
    );
    assert!(uas.sent_responses_ms(487, "INVITE").is_empty());
    assert_eq!(uas.sent_responses_ms(200, "INVITE"), [1010]);
    // The UAC TU got the 2xx and ACKed it; the UAS matched the ACK.
    assert_eq!(uac.responses_heard(tx), [(20, 180), (1020, 200)]);
    assert_eq!(uac.responses_heard(ctx), [(1025, 200)]);
    assert_eq!(uac.sent_requests_ms("ACK"), [1020]);
    assert_eq!(
        uas.events_ms(|e| matches!(e, Event::Ack { tx: Some(t), .. } if *t == stx))
            .len(),
        1
    );
    assert_eq!(sim.ep(UAC).transaction_count(), 0);
    assert_eq!(sim.ep(UAS).transaction_count(), 0);
}

#[test]
fn cancel_of_a_finished_invite_is_refused() {
    let mut sim = Sim::pair(Timers::default(), silent(), answer_with(486, "busy"));
    let tx = start(&mut sim, Method::Invite, UDP);
    sim.run_until_ms(100);
    assert_eq!(
        sim.act(UAC, |cx| cx.cancel(tx)),
        Err(ProtoError::InvalidState {
            tx,
            state: TxState::Completed
        })
    );
    assert!(sent_of(sim.node(UAC), "CANCEL").is_empty());
}

#[test]
fn held_cancel_is_dropped_when_a_final_comes_first() {
    // §9.1: a CANCEL for a request that got its final is not sent.
    let mut sim = Sim::pair(
        Timers::default(),
        silent(),
        answer_after(486, "busy", ms(100)),
    );
    let tx = start(&mut sim, Method::Invite, UDP);
    sim.run_until_ms(50);
    assert_eq!(sim.act(UAC, |cx| cx.cancel(tx)), Ok(None));
    settle(&mut sim);
    assert!(sent_of(sim.node(UAC), "CANCEL").is_empty());
    assert_eq!(sim.node(UAC).responses_heard(tx), [(120, 486)]);
    assert_eq!(sim.ep(UAC).transaction_count(), 0);
}

#[test]
fn cancel_matching_nothing_gets_481() {
    // A raw UA cancels an INVITE the UAS never saw.
    let mut sim = Sim::new(1);
    sim.add_raw("raw", addr(UAC_ADDR));
    sim.add_endpoint("uas", addr(UAS_ADDR), Timers::default(), 2, silent());
    sim.send_raw(
        UAC,
        addr(UAS_ADDR),
        UDP,
        "CANCEL sip:bob@192.0.2.2:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnothing\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@192.0.2.1>;tag=a\r\n\
         To: <sip:bob@192.0.2.2>\r\n\
         Call-ID: nothing@192.0.2.1\r\n\
         CSeq: 1 CANCEL\r\n\
         Content-Length: 0\r\n\r\n",
    );
    settle(&mut sim);
    let uas = sim.node(UAS);
    assert_eq!(uas.sent_responses_ms(481, "CANCEL"), [10]);
    assert!(
        uas.events_ms(|e| matches!(e, Event::Cancelled { .. }))
            .is_empty()
    );
    assert_eq!(sim.ep(UAS).transaction_count(), 0);
}

// ---- Forked 2xx (RFC 6026 §7.2, §13.2.2.4) ---------------------------------------------------

#[test]
fn forked_2xx_both_reach_the_uac_tu_in_accepted() {
    let mut sim = Sim::new(1);
    sim.add_endpoint(
        "uac",
        addr(UAC_ADDR),
        Timers::default(),
        11,
        acking_uac(UDP),
    );
    sim.add_endpoint(
        "uas1",
        addr(UAS_ADDR),
        Timers::default(),
        22,
        answer_with(200, "b1"),
    );
    sim.add_endpoint(
        "uas2",
        addr(UAS2_ADDR),
        Timers::default(),
        33,
        answer_after(200, "b2", ms(50)),
    );
    // A forking proxy in one line: every INVITE for UAS also reaches UAS2.
    sim.fork(UAC, UAS, UAS2, |p| {
        p.msg.as_ref().is_some_and(|m| is_request(m, "INVITE"))
    });
    let tx = start(&mut sim, Method::Invite, UDP);
    sim.run_until_ms(100);
    assert_eq!(sim.ep(UAC).state(tx), Some(TxState::Accepted));
    settle(&mut sim);

    let uac = sim.node(UAC);
    let heard: Vec<(u64, Option<String>)> = uac
        .events_ms(|e| matches!(e, Event::Response { .. }))
        .into_iter()
        .map(|(at, e)| match e {
            Event::Response {
                tx: t, response, ..
            } => {
                assert_eq!(t, tx);
                (at, to_tag(&response))
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        heard,
        [(20, Some("b1".to_owned())), (70, Some("b2".to_owned()))]
    );
    // One ACK per dialog, each to its own remote target.
    let acks: Vec<(u64, String, Option<String>)> = sent_of(uac, "ACK")
        .into_iter()
        .map(|s| {
            (
                uac.rel(s.at),
                s.to.to_string(),
                to_tag(s.msg.as_ref().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        acks,
        [
            (20, UAS_ADDR.to_owned(), Some("b1".to_owned())),
            (70, UAS2_ADDR.to_owned(), Some("b2".to_owned())),
        ]
    );
    for (node, at) in [(UAS, 30), (UAS2, 80)] {
        let n = sim.node(node);
        let stx = n.first_tx(|e| matches!(e, Event::Request { .. })).unwrap();
        let acked = n.events_ms(|e| matches!(e, Event::Ack { tx: Some(t), .. } if *t == stx));
        assert_eq!(acked.len(), 1, "{}", sim.trace());
        assert_eq!(acked[0].0, at);
        // One 2xx each: the ACK came before the first retransmission.
        assert_eq!(n.sent.len(), 1);
    }
    assert_eq!(uac.terminated_ms(tx), Some(20 + 32_000));
    for n in [UAC, UAS, UAS2] {
        assert_eq!(sim.ep(n).transaction_count(), 0);
    }
}

// ---- Transport errors (§17.1.4, §17.2.4, RFC 6026 §7.1) --------------------------------------

#[test]
fn transport_error_terminates_a_client_transaction() {
    for method in [Method::Options, Method::Invite] {
        for t in [UDP, TCP] {
            let mut sim = Sim::pair(Timers::default(), silent(), silent());
            sim.link(UAC, UAS).black_hole = true;
            let tx = start(&mut sim, method, t);
            sim.run_until_ms(100);
            sim.act(UAC, |cx| cx.ep.transport_error(cx.now, tx));
            settle(&mut sim);
            let uac = sim.node(UAC);
            assert_eq!(
                uac.events_ms(|_| true),
                [
                    (100, Event::TransportError { tx }),
                    (100, Event::Terminated { tx })
                ]
            );
            // No retransmission, no Timer B/F after it.
            assert!(uac.sent.iter().all(|s| uac.rel(s.at) < 100));
            assert_eq!(sim.ep(UAC).transaction_count(), 0);
            assert_eq!(sim.ep(UAC).poll_timeout(), None);
            // A second report for the gone transaction is ignored.
            sim.act(UAC, |cx| cx.ep.transport_error(cx.now, tx));
            assert_eq!(sim.node(UAC).events.len(), 2);
        }
    }
}

#[test]
fn transport_error_terminates_a_non_invite_server_transaction() {
    let mut sim = Sim::pair(Timers::default(), silent(), answer_with(200, "ok"));
    start(&mut sim, Method::Options, UDP);
    sim.run_until_ms(15);
    let stx = sim
        .node(UAS)
        .first_tx(|e| matches!(e, Event::Request { .. }))
        .unwrap();
    sim.act(UAS, |cx| cx.ep.transport_error(cx.now, stx));
    assert_eq!(
        sim.node(UAS)
            .events_ms(|e| !matches!(e, Event::Request { .. })),
        [
            (15, Event::TransportError { tx: stx }),
            (15, Event::Terminated { tx: stx })
        ]
    );
    assert_eq!(sim.ep(UAS).transaction_count(), 0);
}

#[test]

fn transport_error_keeps_an_invite_server_transaction() {
    // The UAS's 2xx fails to send (say, ICMP unreachable on one route); the
    // UAC's INVITE retransmission then arrives. RFC 6026 §7.1: the server
    // transaction MUST NOT discard its state on a transport error; it
    // stays, its timers end it, and the retransmission is absorbed rather
    // than taken for a new request.
    let mut sim = Sim::pair(Timers::default(), silent(), answer_with(200, "ok"));
    sim.link(UAS, UAC).black_hole = true;
    start(&mut sim, Method::Invite, UDP);
    sim.run_until_ms(15);
    let stx = sim
        .node(UAS)
        .first_tx(|e| matches!(e, Event::Request { .. }))
        .unwrap();
    sim.act(UAS, |cx| cx.ep.transport_error(cx.now, stx));
    assert_eq!(
        sim.node(UAS)
            .events_ms(|e| !matches!(e, Event::Request { .. })),
        [(15, Event::TransportError { tx: stx })],
        "inform the TU, keep the state"
    );
    assert_eq!(sim.ep(UAS).state(stx), Some(TxState::Accepted));
    // The INVITE copy sent at 500 arrives at 510: absorbed, no second call.
    sim.run_until_ms(600);
    assert_eq!(
        sim.node(UAS)
            .events_ms(|e| matches!(e, Event::Request { .. }))
            .len(),
        1,
        "{}",
        sim.trace()
    );
}

// ---- RFC 2543 peers (§17.2.3) ----------------------------------------------------------------

fn legacy_invite(via: &str, cseq: u32) -> String {
    format!(
        "INVITE sip:bob@192.0.2.2:5060 SIP/2.0\r\n\
         Via: {via}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@192.0.2.1>;tag=2543a\r\n\
         To: <sip:bob@192.0.2.2>\r\n\
         Call-ID: legacy-1@192.0.2.1\r\n\
         CSeq: {cseq} INVITE\r\n\
         Contact: <sip:alice@192.0.2.1:5060>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

fn legacy_ack(via: &str, to_tag: &str) -> String {
    format!(
        "ACK sip:bob@192.0.2.2:5060 SIP/2.0\r\n\
         Via: {via}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@192.0.2.1>;tag=2543a\r\n\
         To: <sip:bob@192.0.2.2>;tag={to_tag}\r\n\
         Call-ID: legacy-1@192.0.2.1\r\n\
         CSeq: 7 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn rfc_2543_retransmission_and_ack_match_the_transaction() {
    for via in [
        "SIP/2.0/UDP 192.0.2.1:5060",
        "SIP/2.0/UDP 192.0.2.1:5060;branch=2543-no-cookie",
    ] {
        let mut sim = Sim::new(1);
        sim.add_raw("rfc2543", addr(UAC_ADDR));
        sim.add_endpoint(
            "uas",
            addr(UAS_ADDR),
            Timers::default(),
            2,
            callee(Some(Duration::ZERO), Some((486, ms(2000))), true),
        );
        let invite = legacy_invite(via, 7);
        sim.send_raw(UAC, addr(UAS_ADDR), UDP, &invite);
        sim.run_until_ms(500);
        sim.send_raw(UAC, addr(UAS_ADDR), UDP, &invite);
        sim.run_until_ms(2600);
        let tag = {
            let raw = sim.node(UAC);
            assert_eq!(
                raw.received_ms(|m| is_response(m, 180, "INVITE")),
                [20, 520]
            );
            assert_eq!(
                raw.received_ms(|m| is_response(m, 486, "INVITE")),
                [2020, 2520]
            );
            let last = raw.received.last().unwrap().msg.as_ref().unwrap();
            to_tag(last).unwrap()
        };
        sim.send_raw(UAC, addr(UAS_ADDR), UDP, &legacy_ack(via, &tag));
        settle(&mut sim);
        let uas = sim.node(UAS);
        let stx = uas
            .first_tx(|e| matches!(e, Event::Request { .. }))
            .unwrap();
        // One transaction: the copy got the 180 again, the ACK confirmed it
        // (no Timer G copy at 3510), Timer I ended it.
        assert_eq!(uas.sent_responses_ms(180, "INVITE"), [10, 510]);
        assert_eq!(uas.sent_responses_ms(486, "INVITE"), [2010, 2510]);
        assert!(uas.sent.iter().all(|s| s.tx == Some(stx)));
        assert_eq!(
            uas.events_ms(|e| !matches!(e, Event::Request { .. })),
            [(2610 + 5000, Event::Terminated { tx: stx })],
            "{via}: {}",
            sim.trace()
        );
        assert_eq!(
            uas.events_ms(|e| matches!(e, Event::Request { .. })).len(),
            1
        );
        // A new request (next CSeq) is a new transaction.
        sim.send_raw(UAC, addr(UAS_ADDR), UDP, &legacy_invite(via, 8));
        sim.run_until(sim.now + ms(20));
        assert_eq!(
            sim.node(UAS)
                .events_ms(|e| matches!(e, Event::Request { .. }))
                .len(),
            2
        );
    }
}

// ---- Requests that fail validation (§8.2, §16.3, §21.4.1) ------------------------------------

const NO_CALL_ID_OPTIONS: &str = "OPTIONS sip:bob@192.0.2.2:5060 SIP/2.0\r\n\
     Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbad1\r\n\
     Max-Forwards: 70\r\n\
     From: <sip:alice@192.0.2.1>;tag=a\r\n\
     To: <sip:bob@192.0.2.2>\r\n\
     CSeq: 1 OPTIONS\r\n\
     Content-Length: 0\r\n\r\n";

#[test]
fn request_without_call_id_gets_a_stateless_400_naming_it() {
    let mut sim = Sim::new(1);
    sim.add_raw("raw", addr(UAC_ADDR));
    sim.add_endpoint("uas", addr(UAS_ADDR), Timers::default(), 2, silent());
    sim.send_raw(UAC, addr(UAS_ADDR), UDP, NO_CALL_ID_OPTIONS);
    settle(&mut sim);
    let uas = sim.node(UAS);
    assert_eq!(uas.sent.len(), 1);
    let s = &uas.sent[0];
    assert_eq!((uas.rel(s.at), s.tx), (10, None));
    let m = s.msg.as_ref().unwrap();
    assert_eq!(m.status(), Some(400));
    assert_eq!(m.reason(), Some("Missing Call-ID header"));
    assert_eq!(branch(m).as_deref(), Some("z9hG4bKbad1"));
    assert_eq!(
        uas.events_ms(|_| true),
        [(
            10,
            Event::Rejected {
                status: 400,
                source: peer(UDP, UAC_ADDR)
            }
        )]
    );
    assert_eq!(sim.ep(UAS).transaction_count(), 0);
    assert_eq!(sim.node(UAC).received_ms(|m| m.status() == Some(400)), [20]);
}

#[test]
fn cseq_method_mismatch_gets_400() {
    let mut sim = Sim::new(1);
    sim.add_raw("raw", addr(UAC_ADDR));
    sim.add_endpoint("uas", addr(UAS_ADDR), Timers::default(), 2, silent());
    let bad = NO_CALL_ID_OPTIONS.replace(
        "CSeq: 1 OPTIONS\r\n",
        "Call-ID: c@192.0.2.1\r\nCSeq: 1 INVITE\r\n",
    );
    sim.send_raw(UAC, addr(UAS_ADDR), UDP, &bad);
    settle(&mut sim);
    let uas = sim.node(UAS);
    assert_eq!(uas.sent.len(), 1);
    let m = uas.sent[0].msg.as_ref().unwrap();
    assert_eq!(m.status(), Some(400));
    assert_eq!(
        m.reason(),
        Some("CSeq method does not match the request method")
    );
    assert_eq!(sim.ep(UAS).transaction_count(), 0);
}

#[test]
fn faulty_ack_is_not_answered() {
    let mut sim = Sim::new(1);
    sim.add_raw("raw", addr(UAC_ADDR));
    sim.add_endpoint("uas", addr(UAS_ADDR), Timers::default(), 2, silent());
    let ack = NO_CALL_ID_OPTIONS
        .replace("OPTIONS sip", "ACK sip")
        .replace("1 OPTIONS", "1 ACK");
    sim.send_raw(UAC, addr(UAS_ADDR), UDP, &ack);
    settle(&mut sim);
    let uas = sim.node(UAS);
    assert_eq!(uas.received.len(), 1);
    assert!(uas.sent.is_empty());
    assert!(uas.events.is_empty());
}

// ---- Deviations found by this suite ----------------------------------------------------------

#[test]

fn cancelled_invite_without_final_is_destroyed_after_64_t1() {
    // The callee rings and answers the CANCEL (its endpoint does), but its
    // TU never sends 487, as an RFC 2543 UAS may not (§9.1). The UAC's
    // INVITE transaction sits in Proceeding, which has no timer.
    let mut sim = Sim::pair(
        Timers::default(),
        silent(),
        callee(Some(Duration::ZERO), None, false),
    );
    let tx = start(&mut sim, Method::Invite, UDP);
    sim.run_until_ms(1000);
    let ctx = sim.act(UAC, |cx| cx.cancel(tx)).unwrap().unwrap();
    sim.run_until_ms(1000 + 64 * 500 + 1000);
    let uac = sim.node(UAC);
    assert_eq!(uac.responses_heard(ctx), [(1020, 200)]);
    // §9.1: "If there is no final response for the original request in
    // 64*T1 seconds ..., the client SHOULD then consider the original
    // transaction cancelled and SHOULD destroy the client transaction".
    let end = uac.terminated_ms(tx);
    assert!(
        end.is_some_and(|t| t <= 1000 + 64 * 500),
        "INVITE transaction still {:?} at {} ms",
        sim.ep(UAC).state(tx),
        sim.now_ms()
    );
    assert_eq!(sim.ep(UAC).transaction_count(), 0);
}

#[test]

fn stateless_response_follows_the_via_like_stateful_ones() {
    // A UDP client sends from an ephemeral port, with sent-by port 5060 and
    // no rport: §18.2.2 sends responses to the source IP and the sent-by
    // port. The stateful 200 does; the stateless 400 goes to the source
    // port instead.
    let mut sim = Sim::new(1);
    sim.add_raw("raw", addr("192.0.2.1:40000"));
    sim.add_endpoint(
        "uas",
        addr(UAS_ADDR),
        Timers::default(),
        2,
        answer_with(200, "ok"),
    );
    let good = NO_CALL_ID_OPTIONS.replace(
        "CSeq: 1 OPTIONS\r\n",
        "Call-ID: good@192.0.2.1\r\nCSeq: 1 OPTIONS\r\n",
    );
    let good = good.replace("z9hG4bKbad1", "z9hG4bKgood1");
    sim.send_raw(UAC, addr(UAS_ADDR), UDP, &good);
    sim.send_raw(UAC, addr(UAS_ADDR), UDP, NO_CALL_ID_OPTIONS);
    sim.run_until_ms(100);
    let uas = sim.node(UAS);
    let to = |code| {
        uas.sent
            .iter()
            .find(|s| s.msg.as_ref().unwrap().status() == Some(code))
            .unwrap()
            .to
    };
    assert_eq!(to(200), addr("192.0.2.1:5060"), "stateful (passes)");
    assert_eq!(to(400), addr("192.0.2.1:5060"), "stateless");
}

#[test]

fn the_200_to_cancel_carries_the_invite_responses_to_tag() {
    let mut sim = Sim::pair(
        Timers::default(),
        silent(),
        callee(Some(Duration::ZERO), None, true),
    );
    let tx = start(&mut sim, Method::Invite, UDP);
    sim.run_until_ms(1000);
    sim.act(UAC, |cx| cx.cancel(tx)).unwrap().unwrap();
    settle(&mut sim);
    let uas = sim.node(UAS);
    let ok = uas
        .sent
        .iter()
        .filter_map(|s| s.msg.as_ref())
        .find(|m| is_response(m, 200, "CANCEL"))
        .unwrap();
    // §9.2: "The To tag of the response to the CANCEL and the response to
    // the original request SHOULD be the same."
    assert_eq!(to_tag(ok).as_deref(), Some("callee"));
}

// ---- A retransmission from a new address (cluster failover, NAT rebinding) ---------------------

/// A request as two edges of one cluster carry it: the same top Via (the
/// cluster's public address as sent-by, a branch derived from the client's)
/// whichever edge sends it.
fn edge_request(method: &str) -> String {
    format!(
        "{method} sip:bob@192.0.2.2:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK-sbedge1;rport\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-phone1\r\n\
         Max-Forwards: 69\r\n\
         From: <sip:alice@192.0.2.1>;tag=al\r\n\
         To: <sip:bob@192.0.2.2>{to_tag}\r\n\
         Call-ID: failover-1@192.0.2.1\r\n\
         CSeq: 2 {method}\r\n\
         Contact: <sip:alice@192.0.2.1:5060>\r\n\
         Content-Length: 0\r\n\r\n",
        to_tag = if method == "INVITE" { "" } else { ";tag=bb" }
    )
}

/// A UAS behind the cluster's edges: it trusts their sent-by.
fn clustered() -> Endpoint {
    Endpoint::new(Timers::default(), 2).with_relays(["198.51.100.1:5060"])
}

const EDGE1: &str = "192.0.2.10:40000";
const EDGE2: &str = "192.0.2.11:40002";

/// Two edges in front of a UAS `ep` answering with `tu`: `request` comes
/// through edge 1 at 0 ms and again through edge 2 at `again_ms`; runs
/// to `until_ms`. Returns the simulation and the two edges.
fn through_two_edges(
    ep: Endpoint,
    tu: Tu,
    request: &str,
    again_ms: u64,
    until_ms: u64,
) -> (Sim, NodeId, NodeId) {
    let mut sim = Sim::new(1);
    let e1 = sim.add_raw("edge1", addr(EDGE1));
    sim.add_built_endpoint("uas", addr(UAS_ADDR), ep, tu);
    let e2 = sim.add_raw("edge2", addr(EDGE2));
    sim.send_raw(e1, addr(UAS_ADDR), UDP, request);
    sim.run_until_ms(again_ms);
    sim.send_raw(e2, addr(UAS_ADDR), UDP, request);
    sim.run_until_ms(until_ms);
    (sim, e1, e2)
}

#[test]
fn a_non_invite_retransmission_through_another_edge_gets_the_response_there() {
    // Edge 1 carries a BYE and dies before relaying the 200; the client's
    // retransmission reaches the UAS through edge 2 with the same branch and
    // must get the 200 back through edge 2, not toward the dead edge.
    let (sim, e1, e2) = through_two_edges(
        clustered(),
        answer_with(200, "bb"),
        &edge_request("BYE"),
        500,
        1000,
    );
    let ok = |m: &SipMessage| is_response(m, 200, "BYE");
    assert_eq!(sim.node(e1).received_ms(ok), [20], "{}", sim.trace());
    assert_eq!(sim.node(e2).received_ms(ok), [520], "{}", sim.trace());
    // One transaction, one request to the TU.
    let uas = sim.node(UAS);
    assert_eq!(
        uas.events_ms(|e| matches!(e, Event::Request { .. })).len(),
        1
    );
}

#[test]
fn an_invite_retransmission_through_another_edge_moves_its_responses_there() {
    // Proceeding: the 180 is resent to edge 2 and the later 200 and its
    // retransmissions go there too.
    let invite = edge_request("INVITE");
    let (sim, e1, e2) = through_two_edges(
        clustered(),
        callee(Some(Duration::ZERO), Some((200, ms(1000))), false),
        &invite,
        500,
        2000,
    );
    let ringing = |m: &SipMessage| is_response(m, 180, "INVITE");
    let ok = |m: &SipMessage| is_response(m, 200, "INVITE");
    assert_eq!(sim.node(e1).received_ms(ringing), [20], "{}", sim.trace());
    assert!(sim.node(e1).received_ms(ok).is_empty(), "{}", sim.trace());
    assert_eq!(sim.node(e2).received_ms(ringing), [520]);
    assert_eq!(
        sim.node(e2).received_ms(ok),
        [1020, 1520],
        "{}",
        sim.trace()
    );

    // Accepted (RFC 6026): the 200 went to edge 1, which died; the INVITE
    // retransmission through edge 2 is absorbed but the UAS's 2xx
    // retransmissions (§13.3.1.4) now go to edge 2.
    let (sim, e1, e2) = through_two_edges(clustered(), answer_with(200, "bb"), &invite, 700, 2000);
    assert_eq!(sim.node(e1).received_ms(ok), [20, 520], "{}", sim.trace());
    assert_eq!(sim.node(e2).received_ms(ok), [1520], "{}", sim.trace());
    assert_eq!(
        sim.node(UAS)
            .events_ms(|e| matches!(e, Event::Request { .. }))
            .len(),
        1
    );
}

#[test]
fn a_copy_of_a_request_from_elsewhere_does_not_redirect_its_responses() {
    // Without the cluster's sent-by trusted (a server clients reach
    // directly), a copy of the request from another address (a downstream
    // hop that learnt the branch) gets nothing: the 200 goes where the
    // request came from, each time (§17.2.3, §18.2.2).
    for ep in [
        Endpoint::new(Timers::default(), 2),
        Endpoint::new(Timers::default(), 2).with_relays(["192.0.2.99:5060"]),
    ] {
        let (sim, e1, other) =
            through_two_edges(ep, answer_with(200, "bb"), &edge_request("BYE"), 500, 1000);
        let ok = |m: &SipMessage| is_response(m, 200, "BYE");
        assert_eq!(sim.node(e1).received_ms(ok), [20, 520], "{}", sim.trace());
        assert!(sim.node(other).received_ms(ok).is_empty());
    }
}

#[test]
fn only_the_first_ack_of_a_2xx_names_its_transaction() {
    // A UAC ACKs every 2xx copy it gets: the first ACK confirms the call
    // (and stops the 2xx), the copies come without a transaction, so a
    // count of confirmed calls counts each once.
    let mut sim = Sim::new(1);
    sim.add_raw("uac", addr(UAC_ADDR));
    sim.add_endpoint(
        "uas",
        addr(UAS_ADDR),
        Timers::default(),
        2,
        answer_with(200, "bb"),
    );
    let invite = legacy_invite("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv1", 7);
    sim.send_raw(UAC, addr(UAS_ADDR), UDP, &invite);
    sim.run_until_ms(100);
    let ack = legacy_ack("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKack1", "bb");
    sim.send_raw(UAC, addr(UAS_ADDR), UDP, &ack);
    sim.run_until_ms(150);
    sim.send_raw(UAC, addr(UAS_ADDR), UDP, &ack);
    sim.run_until_ms(200);
    let uas = sim.node(UAS);
    let stx = uas
        .first_tx(|e| matches!(e, Event::Request { .. }))
        .unwrap();
    let acks: Vec<(u64, Option<TxId>)> = uas
        .events_ms(|e| matches!(e, Event::Ack { .. }))
        .into_iter()
        .map(|(at, e)| match e {
            Event::Ack { tx, .. } => (at, tx),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(acks, [(110, Some(stx)), (160, None)], "{}", sim.trace());
    // The 200 was sent once: the first ACK came before Timer G's T1.
    assert_eq!(uas.sent_responses_ms(200, "INVITE"), [10]);
}
