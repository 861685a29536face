//! The timers of RFC 3261 §17 (A to K), RFC 6026 (L, M), the UAS core's 2xx
//! retransmission (§13.3.1.4) and the 100 Trying delay (§17.2.1), each at
//! exact virtual times: defaults (T1 = 500 ms, T2 = 4 s, T4 = 5 s, D = 32 s)
//! and custom values, over UDP and TCP.
//!
//! Every link has a 10 ms one-way delay unless a test says otherwise, so a
//! request sent at 0 reaches the UAS at 10 and its answer the UAC at 20.

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
use sip_message::{Method, RequestBuilder, ResponseBuilder};
use sip_proto::{Event, TimerName, Timers, TransportKind, TxId, TxState};

const UDP: TransportKind = TransportKind::Udp;
const TCP: TransportKind = TransportKind::Tcp;

/// Starts a client transaction on the UAC towards the UAS.
fn start(sim: &mut Sim, method: Method<'static>, t: TransportKind) -> TxId {
    sim.act(UAC, |cx| {
        let r = cx.request(method, addr(UAS_ADDR), t);
        cx.send_request(r, peer(t, UAS_ADDR)).expect("send_request")
    })
}

/// Runs until nothing is left to happen (bounded).
fn settle(sim: &mut Sim) {
    assert!(sim.run(Duration::from_secs(600)), "{}", sim.trace());
}

fn x64(t: &Timers) -> u64 {
    as_ms(t.t1 * 64)
}

fn ack_requests(p: &Packet) -> bool {
    p.msg.as_ref().is_some_and(|m| is_request(m, "ACK"))
}

/// Every transmit of `node` names `tx`.
fn all_sent_by(sim: &Sim, node: NodeId, tx: TxId) {
    for s in &sim.node(node).sent {
        assert_eq!(s.tx, Some(tx), "{}", sim.trace());
    }
}

// ---- Timers A and B (§17.1.1.2) --------------------------------------------------------------

fn invite_into_black_hole(timers: Timers, t: TransportKind) -> (Sim, TxId) {
    let mut sim = Sim::pair(timers, silent(), silent());
    sim.link(UAC, UAS).black_hole = true;
    let tx = start(&mut sim, Method::Invite, t);
    settle(&mut sim);
    (sim, tx)
}

#[test]
fn timer_a_doubles_until_timer_b_fires_at_64_t1() {
    let (sim, tx) = invite_into_black_hole(Timers::default(), UDP);
    let uac = sim.node(UAC);
    let sends = uac.sent_requests_ms("INVITE");
    assert_eq!(sends, [0, 500, 1500, 3500, 7500, 15500, 31500]);
    let gaps: Vec<u64> = sends.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [500, 1000, 2000, 4000, 8000, 16000]);
    assert_eq!(
        uac.events_ms(|_| true),
        [
            (
                32_000,
                Event::Timeout {
                    tx,
                    timer: TimerName::B
                }
            ),
            (32_000, Event::Terminated { tx }),
        ]
    );
    all_sent_by(&sim, UAC, tx);
    assert_eq!(sim.ep(UAC).transaction_count(), 0);
}

#[test]
fn timer_a_and_b_follow_custom_t1() {
    let t = custom_timers();
    let (sim, tx) = invite_into_black_hole(t, UDP);
    let uac = sim.node(UAC);
    // T1 = 100 ms: 0, 100, 300, 700, 1500, 3100, 6300; B at 6400.
    assert_eq!(
        uac.sent_requests_ms("INVITE"),
        backoff_schedule(t.t1, None, t.t1 * 64)
    );
    assert_eq!(
        uac.sent_requests_ms("INVITE"),
        [0, 100, 300, 700, 1500, 3100, 6300]
    );
    assert_eq!(
        uac.events_ms(|e| matches!(e, Event::Timeout { .. })),
        [(
            x64(&t),
            Event::Timeout {
                tx,
                timer: TimerName::B
            }
        )]
    );
    assert_eq!(uac.terminated_ms(tx), Some(6400));
}

#[test]
fn no_timer_a_over_tcp_only_timer_b() {
    for timers in [Timers::default(), custom_timers()] {
        let (sim, tx) = invite_into_black_hole(timers, TCP);
        let uac = sim.node(UAC);
        assert_eq!(uac.sent_requests_ms("INVITE"), [0]);
        assert_eq!(
            uac.events_ms(|_| true),
            [
                (
                    x64(&timers),
                    Event::Timeout {
                        tx,
                        timer: TimerName::B
                    }
                ),
                (x64(&timers), Event::Terminated { tx }),
            ]
        );
    }
}

// ---- Timers E and F (§17.1.2.2) --------------------------------------------------------------

fn options_into_black_hole(timers: Timers, t: TransportKind) -> (Sim, TxId) {
    let mut sim = Sim::pair(timers, silent(), silent());
    sim.link(UAC, UAS).black_hole = true;
    let tx = start(&mut sim, Method::Options, t);
    settle(&mut sim);
    (sim, tx)
}

#[test]
fn timer_e_doubles_capped_at_t2_until_timer_f() {
    let (sim, tx) = options_into_black_hole(Timers::default(), UDP);
    let uac = sim.node(UAC);
    let sends = uac.sent_requests_ms("OPTIONS");
    assert_eq!(
        sends,
        [
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
        ]
    );
    let gaps: Vec<u64> = sends.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps,
        [500, 1000, 2000, 4000, 4000, 4000, 4000, 4000, 4000, 4000]
    );
    assert_eq!(
        uac.events_ms(|_| true),
        [
            (
                32_000,
                Event::Timeout {
                    tx,
                    timer: TimerName::F
                }
            ),
            (32_000, Event::Terminated { tx }),
        ]
    );
    all_sent_by(&sim, UAC, tx);
}

#[test]
fn timer_e_and_f_follow_custom_t1_t2() {
    let t = custom_timers();
    let (sim, tx) = options_into_black_hole(t, UDP);
    let uac = sim.node(UAC);
    let sends = uac.sent_requests_ms("OPTIONS");
    assert_eq!(sends, backoff_schedule(t.t1, Some(t.t2), t.t1 * 64));
    // T1 = 100 ms, T2 = 400 ms.
    assert_eq!(&sends[..6], [0, 100, 300, 700, 1100, 1500]);
    assert_eq!(uac.terminated_ms(tx), Some(6400));
    assert_eq!(
        uac.events_ms(|e| matches!(e, Event::Timeout { .. })),
        [(
            6400,
            Event::Timeout {
                tx,
                timer: TimerName::F
            }
        )]
    );
}

#[test]
fn no_timer_e_over_tcp_only_timer_f() {
    for timers in [Timers::default(), custom_timers()] {
        let (sim, tx) = options_into_black_hole(timers, TCP);
        let uac = sim.node(UAC);
        assert_eq!(uac.sent_requests_ms("OPTIONS"), [0]);
        assert_eq!(
            uac.events_ms(|e| matches!(e, Event::Timeout { .. })),
            [(
                x64(&timers),
                Event::Timeout {
                    tx,
                    timer: TimerName::F
                }
            )]
        );
    }
}

/// The UAS TU sends a provisional and never a final: in Proceeding Timer E
/// resets to T2 (§17.1.2.2); Timer F still ends the transaction.
fn options_in_proceeding(timers: Timers) -> (Sim, TxId) {
    let uas: Tu = Box::new(|cx, e| {
        if let Event::Request { tx, request, .. } = e {
            let r = response(request, 100, "u", cx.me);
            cx.respond(*tx, r).unwrap();
        }
    });
    let mut sim = Sim::pair(timers, silent(), uas);
    let tx = start(&mut sim, Method::Options, UDP);
    sim.run_until_ms(x64(&timers) + 1000);
    (sim, tx)
}

#[test]
fn timer_e_in_proceeding_retransmits_every_t2() {
    let (sim, tx) = options_in_proceeding(Timers::default());
    let uac = sim.node(UAC);
    // The 100 arrives at 20: the first Timer E (at T1) finds Proceeding and
    // resets to T2.
    assert_eq!(uac.responses_heard(tx)[0], (20, 100));
    assert_eq!(
        uac.sent_requests_ms("OPTIONS"),
        [0, 500, 4500, 8500, 12500, 16500, 20500, 24500, 28500]
    );
    assert_eq!(
        uac.events_ms(|e| matches!(e, Event::Timeout { .. })),
        [(
            32_000,
            Event::Timeout {
                tx,
                timer: TimerName::F
            }
        )]
    );
    // The UAS resends its provisional to every retransmission (§17.2.2).
    assert_eq!(
        sim.node(UAS).sent_responses_ms(100, "OPTIONS"),
        [10, 510, 4510, 8510, 12510, 16510, 20510, 24510, 28510]
    );
    assert_eq!(sim.node(UAS).events_ms(|_| true).len(), 1);
}

#[test]
fn timer_e_in_proceeding_custom_t2() {
    let t = custom_timers();
    let (sim, tx) = options_in_proceeding(t);
    let uac = sim.node(UAC);
    let mut expect = vec![0];
    let mut at = t.t1;
    while at < t.t1 * 64 {
        expect.push(as_ms(at));
        at += t.t2;
    }
    assert_eq!(uac.sent_requests_ms("OPTIONS"), expect);
    assert_eq!(&expect[..4], [0, 100, 500, 900]);
    assert_eq!(uac.terminated_ms(tx), Some(6400));
}

// ---- Timer D (§17.1.1.2) ---------------------------------------------------------------------

fn invite_rejected(timers: Timers, t: TransportKind) -> (Sim, TxId) {
    let mut sim = Sim::pair(timers, silent(), answer_with(486, "busy"));
    let tx = start(&mut sim, Method::Invite, t);
    settle(&mut sim);
    (sim, tx)
}

fn check_timer_d(timers: Timers, t: TransportKind) {
    let (sim, tx) = invite_rejected(timers, t);
    let uac = sim.node(UAC);
    assert_eq!(uac.responses_heard(tx), [(20, 486)], "{}", sim.trace());
    // The client transaction itself ACKs the 486 (§17.1.1.3).
    let acks: Vec<&Sent> = uac
        .sent
        .iter()
        .filter(|s| s.msg.as_ref().is_some_and(|m| is_request(m, "ACK")))
        .collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(uac.rel(acks[0].at), 20);
    assert_eq!(acks[0].tx, Some(tx));
    let ack = acks[0].msg.as_ref().unwrap();
    let invite = uac.sent[0].msg.as_ref().unwrap();
    assert_eq!(branch(ack), branch(invite), "same branch as the INVITE");
    assert_eq!(cseq_number(ack), Some(1));
    assert_eq!(cseq_method(ack).as_deref(), Some("ACK"));
    assert_eq!(to_tag(ack).as_deref(), Some("busy"), "To of the response");
    assert_eq!(ack.request_uri_str(), invite.request_uri_str());
    // Timer D: at least 32 s on UDP (the configured value), zero on TCP.
    let d = if t == UDP { as_ms(timers.d) } else { 0 };
    assert_eq!(uac.terminated_ms(tx), Some(20 + d));
    // The UAS: Completed at 10, the ACK at 30, Timer I (T4 / 0).
    let uas = sim.node(UAS);
    let stx = uas
        .first_tx(|e| matches!(e, Event::Request { .. }))
        .unwrap();
    let i = if t == UDP { as_ms(timers.t4) } else { 0 };
    assert_eq!(uas.terminated_ms(stx), Some(30 + i));
    assert_eq!(sim.ep(UAC).transaction_count(), 0);
    assert_eq!(sim.ep(UAS).transaction_count(), 0);
}

#[test]
fn timer_d_udp_waits_32_s() {
    check_timer_d(Timers::default(), UDP);
    let (sim, tx) = invite_rejected(Timers::default(), UDP);
    assert_eq!(sim.node(UAC).terminated_ms(tx), Some(32_020));
}

#[test]
fn timer_d_tcp_is_zero() {
    check_timer_d(Timers::default(), TCP);
}

#[test]
fn timer_d_custom() {
    check_timer_d(custom_timers(), UDP);
    check_timer_d(custom_timers(), TCP);
}

#[test]
fn timer_d_absorbs_retransmitted_finals_and_reacks_them() {
    // The first ACK is lost: the UAS retransmits the 486 (Timer G), the
    // client ACKs it again without telling the TU.
    let mut sim = Sim::pair(Timers::default(), silent(), answer_with(486, "busy"));
    let mut first = true;
    sim.set_filter(move |_, p| {
        let drop = first && ack_requests(p);
        if drop {
            first = false;
        }
        drop
    });
    let tx = start(&mut sim, Method::Invite, UDP);
    settle(&mut sim);
    let uac = sim.node(UAC);
    assert_eq!(uac.responses_heard(tx), [(20, 486)]);
    assert_eq!(uac.sent_requests_ms("ACK"), [20, 520]);
    assert!(uac.sent.iter().all(|s| s.tx == Some(tx)));
    assert_eq!(uac.terminated_ms(tx), Some(32_020));
    let uas = sim.node(UAS);
    assert_eq!(uas.sent_responses_ms(486, "INVITE"), [10, 510]);
    let stx = uas
        .first_tx(|e| matches!(e, Event::Request { .. }))
        .unwrap();
    assert_eq!(uas.terminated_ms(stx), Some(530 + 5000));
}

// ---- Timers G and H (§17.2.1) ----------------------------------------------------------------

fn check_timer_g_h(timers: Timers, t: TransportKind) {
    let mut sim = Sim::pair(timers, silent(), answer_with(486, "busy"));
    // Every ACK is lost (over TCP: a peer that never ACKs).
    sim.set_filter(|_, p| ack_requests(p));
    let tx = start(&mut sim, Method::Invite, t);
    settle(&mut sim);
    let uas = sim.node(UAS);
    let stx = uas
        .first_tx(|e| matches!(e, Event::Request { .. }))
        .unwrap();
    let expect: Vec<u64> = if t == UDP {
        backoff_schedule(timers.t1, Some(timers.t2), timers.t1 * 64)
            .into_iter()
            .map(|x| x + 10)
            .collect()
    } else {
        vec![10]
    };
    assert_eq!(uas.sent_responses_ms(486, "INVITE"), expect);
    let h = 10 + x64(&timers);
    assert_eq!(
        uas.events_ms(|e| !matches!(e, Event::Request { .. })),
        [
            (
                h,
                Event::Timeout {
                    tx: stx,
                    timer: TimerName::H
                }
            ),
            (h, Event::Terminated { tx: stx }),
        ]
    );
    all_sent_by(&sim, UAS, stx);
    // The client ACKed every copy; its TU heard one 486.
    let uac = sim.node(UAC);
    assert_eq!(uac.responses_heard(tx), [(20, 486)]);
    let acks: Vec<u64> = expect.iter().map(|x| x + 10).collect();
    assert_eq!(uac.sent_requests_ms("ACK"), acks);
}

#[test]
fn timer_g_doubles_capped_at_t2_until_timer_h() {
    check_timer_g_h(Timers::default(), UDP);
    let mut sim = Sim::pair(Timers::default(), silent(), answer_with(486, "busy"));
    sim.set_filter(|_, p| ack_requests(p));
    start(&mut sim, Method::Invite, UDP);
    settle(&mut sim);
    let sends = sim.node(UAS).sent_responses_ms(486, "INVITE");
    assert_eq!(
        sends,
        [
            10, 510, 1510, 3510, 7510, 11510, 15510, 19510, 23510, 27510, 31510
        ]
    );
}

#[test]
fn timer_g_h_custom() {
    check_timer_g_h(custom_timers(), UDP);
}

#[test]
fn no_timer_g_over_tcp_only_timer_h() {
    check_timer_g_h(Timers::default(), TCP);
    check_timer_g_h(custom_timers(), TCP);
}

// ---- Timer I (§17.2.1) -----------------------------------------------------------------------

/// Responses take 600 ms to reach the UAC, so the UAS sends the 486 more
/// than once before the first ACK arrives (Timer G, and in answer to the
/// INVITE copies of Timer A, §17.2.1), and the UAC ACKs every copy: the
/// later ACKs reach a Confirmed transaction, which absorbs them.
fn check_timer_i(timers: Timers, t: TransportKind) {
    let mut sim = Sim::pair(timers, silent(), answer_with(486, "busy"));
    sim.link(UAS, UAC).delay = ms(600);
    start(&mut sim, Method::Invite, t);
    settle(&mut sim);
    let uas = sim.node(UAS);
    let stx = uas
        .first_tx(|e| matches!(e, Event::Request { .. }))
        .unwrap();
    // 486 at 10, reaches the UAC at 610, its ACK reaches the UAS at 620.
    let confirmed = 620;
    let mut sends: Vec<u64> = vec![10];
    if t == UDP {
        let x64 = timers.t1 * 64;
        // Timer G's copies.
        let g = backoff_schedule(timers.t1, Some(timers.t2), x64).into_iter();
        sends.extend(g.skip(1).map(|x| x + 10).filter(|&x| x < confirmed));
        // Answers to the INVITE copies the UAC sent before 610.
        let a = backoff_schedule(timers.t1, None, x64).into_iter();
        sends.extend(a.skip(1).filter(|&x| x < 610).map(|x| x + 10));
        sends.sort_unstable();
    }
    assert_eq!(
        uas.sent_responses_ms(486, "INVITE"),
        sends,
        "{}",
        sim.trace()
    );
    let acks: Vec<u64> = sends.iter().map(|x| x + 610).collect();
    assert_eq!(uas.received_ms(|m| is_request(m, "ACK")), acks);
    if t == UDP {
        assert!(acks.len() >= 2, "some ACK arrives in Confirmed");
    }
    // Nothing is sent after the ACK; the TU hears nothing of the ACKs.
    assert!(uas.sent.iter().all(|s| uas.rel(s.at) < confirmed));
    let i = if t == UDP { as_ms(timers.t4) } else { 0 };
    assert_eq!(
        uas.events_ms(|e| !matches!(e, Event::Request { .. })),
        [(confirmed + i, Event::Terminated { tx: stx })]
    );
}

#[test]
fn timer_i_udp_is_t4_and_absorbs_acks() {
    check_timer_i(Timers::default(), UDP);
}

#[test]
fn timer_i_tcp_is_zero() {
    check_timer_i(Timers::default(), TCP);
}

#[test]
fn timer_i_custom_t4() {
    check_timer_i(custom_timers(), UDP);
}

#[test]
fn confirmed_state_is_observable() {
    let mut sim = Sim::pair(Timers::default(), silent(), answer_with(486, "busy"));
    start(&mut sim, Method::Invite, UDP);
    sim.run_until_ms(29);
    let stx = sim
        .node(UAS)
        .first_tx(|e| matches!(e, Event::Request { .. }))
        .unwrap();
    assert_eq!(sim.ep(UAS).state(stx), Some(TxState::Completed));
    sim.run_until_ms(30);
    assert_eq!(sim.ep(UAS).state(stx), Some(TxState::Confirmed));
    sim.run_until_ms(5029);
    assert_eq!(sim.ep(UAS).state(stx), Some(TxState::Confirmed));
    sim.run_until_ms(5030);
    assert_eq!(sim.ep(UAS).state(stx), None);
}

// ---- Timers J and K (§17.2.2, §17.1.2.2) -----------------------------------------------------

fn check_timer_j_k(timers: Timers, t: TransportKind) {
    let mut sim = Sim::pair(timers, silent(), answer_with(200, "ok"));
    if t == UDP {
        // The first 200 is lost: the retransmitted OPTIONS is answered from
        // the stored response.
        let mut first = true;
        sim.set_filter(move |_, p| {
            let drop = first && p.msg.as_ref().is_some_and(|m| m.status() == Some(200));
            if drop {
                first = false;
            }
            drop
        });
    }
    let tx = start(&mut sim, Method::Options, t);
    settle(&mut sim);
    let (uac, uas) = (sim.node(UAC), sim.node(UAS));
    let stx = uas
        .first_tx(|e| matches!(e, Event::Request { .. }))
        .unwrap();
    let t1 = as_ms(timers.t1);
    if t == UDP {
        assert_eq!(uac.sent_requests_ms("OPTIONS"), [0, t1]);
        assert_eq!(uas.sent_responses_ms(200, "OPTIONS"), [10, t1 + 10]);
        assert!(uas.sent.iter().all(|s| s.tx == Some(stx)));
        assert_eq!(uac.responses_heard(tx), [(t1 + 20, 200)]);
        // Timer K: T4 after the final; Timer J: 64*T1 after it.
        assert_eq!(uac.terminated_ms(tx), Some(t1 + 20 + as_ms(timers.t4)));
        assert_eq!(uas.terminated_ms(stx), Some(10 + x64(&timers)));
    } else {
        assert_eq!(uac.sent_requests_ms("OPTIONS"), [0]);
        assert_eq!(uac.responses_heard(tx), [(20, 200)]);
        assert_eq!(uac.terminated_ms(tx), Some(20));
        assert_eq!(uas.terminated_ms(stx), Some(10));
    }
    // One transaction, one Request event, however many copies arrived.
    assert_eq!(
        uas.events_ms(|e| matches!(e, Event::Request { .. })).len(),
        1
    );
    assert_eq!(sim.ep(UAC).transaction_count(), 0);
    assert_eq!(sim.ep(UAS).transaction_count(), 0);
}

#[test]
fn timer_j_and_k_udp() {
    check_timer_j_k(Timers::default(), UDP);
}

#[test]
fn timer_j_and_k_tcp_are_zero() {
    check_timer_j_k(Timers::default(), TCP);
}

#[test]
fn timer_j_and_k_custom() {
    check_timer_j_k(custom_timers(), UDP);
}

#[test]
fn timer_j_answers_late_retransmissions_from_the_stored_response() {
    // The UAC's link is slow to deliver: a retransmission reaches the UAS
    // long after it answered, still in Completed.
    let mut sim = Sim::pair(Timers::default(), silent(), answer_with(404, "nf"));
    sim.link(UAS, UAC).delay = ms(2000);
    let tx = start(&mut sim, Method::Options, UDP);
    settle(&mut sim);
    let uac = sim.node(UAC);
    // E fires at 500 and 1500 before the 404 arrives at 2010.
    assert_eq!(uac.sent_requests_ms("OPTIONS"), [0, 500, 1500]);
    assert_eq!(uac.responses_heard(tx), [(2010, 404)]);
    let uas = sim.node(UAS);
    assert_eq!(uas.sent_responses_ms(404, "OPTIONS"), [10, 510, 1510]);
    assert_eq!(
        uas.events_ms(|e| matches!(e, Event::Request { .. })).len(),
        1
    );
}

// ---- Timers L and M, the 2xx retransmission (RFC 6026, §13.3.1.4) ----------------------------

fn invite_accepted(timers: Timers, t: TransportKind, ack_lost_until: Option<u64>) -> (Sim, TxId) {
    let mut sim = Sim::pair(timers, acking_uac(t), answer_with(200, "ok"));
    match ack_lost_until {
        Some(until) => sim.set_filter(move |rel, p| as_ms(rel) < until && ack_requests(p)),
        None => sim.set_filter(|_, p| ack_requests(p)),
    }
    let tx = start(&mut sim, Method::Invite, t);
    settle(&mut sim);
    (sim, tx)
}

fn check_l_m_with_ack(timers: Timers, t: TransportKind, ack_lost_until: u64) {
    let (sim, tx) = invite_accepted(timers, t, Some(ack_lost_until));
    let (uac, uas) = (sim.node(UAC), sim.node(UAS));
    let stx = uas
        .first_tx(|e| matches!(e, Event::Request { .. }))
        .unwrap();
    // The 2xx leaves at 10 + k (k from the doubling schedule); each copy
    // reaches the UAC 10 ms later and is ACKed at once; the first ACK sent
    // at or after `ack_lost_until` gets through 10 ms later.
    let schedule: Vec<u64> = backoff_schedule(timers.t1, Some(timers.t2), timers.t1 * 64)
        .into_iter()
        .map(|x| x + 10)
        .collect();
    let (acked_copy, ack_at) = schedule
        .iter()
        .map(|s| s + 10)
        .enumerate()
        .find(|(_, arrival)| *arrival >= ack_lost_until)
        .map(|(i, arrival)| (i, arrival + 10))
        .unwrap();
    let sends = &schedule[..=acked_copy];
    assert_eq!(
        uas.sent_responses_ms(200, "INVITE"),
        sends,
        "{}",
        sim.trace()
    );
    assert_eq!(
        uas.events_ms(|e| matches!(e, Event::Ack { .. })),
        [(
            ack_at,
            Event::Ack {
                tx: Some(stx),
                request: uas
                    .received
                    .iter()
                    .rev()
                    .find_map(|r| r.msg.clone().filter(|m| is_request(m, "ACK")))
                    .unwrap(),
                source: peer(t, UAC_ADDR),
            }
        )]
    );
    // Timer L: the transaction lingers 64*T1 after the 2xx, quietly.
    assert_eq!(
        uas.events_ms(|e| !matches!(e, Event::Request { .. } | Event::Ack { .. })),
        [(10 + x64(&timers), Event::Terminated { tx: stx })]
    );
    // The UAC TU heard every copy, in Accepted; Timer M ends it 64*T1 after
    // the first.
    let arrivals: Vec<(u64, u16)> = sends.iter().map(|s| (s + 10, 200)).collect();
    assert_eq!(uac.responses_heard(tx), arrivals);
    assert_eq!(uac.terminated_ms(tx), Some(20 + x64(&timers)));
    // The ACKs: one per copy, outside the transaction, each a new
    // transaction (new branch) per §13.2.2.4, to the Contact.
    let invite = uac.sent[0].msg.clone().unwrap();
    let acks: Vec<&Sent> = uac
        .sent
        .iter()
        .filter(|s| s.msg.as_ref().is_some_and(|m| is_request(m, "ACK")))
        .collect();
    assert_eq!(acks.len(), sends.len());
    for a in &acks {
        let m = a.msg.as_ref().unwrap();
        assert_eq!(a.tx, None);
        assert_ne!(branch(m), branch(&invite));
        assert_eq!(m.request_uri_str(), Some("sip:bob@192.0.2.2:5060"));
        assert_eq!(to_tag(m).as_deref(), Some("ok"));
        assert_eq!(cseq_number(m), Some(1));
    }
}

#[test]
fn timer_l_and_m_with_ack_after_2xx_retransmissions() {
    check_l_m_with_ack(Timers::default(), UDP, 3000);
    let (sim, _) = invite_accepted(Timers::default(), UDP, Some(3000));
    assert_eq!(
        sim.node(UAS).sent_responses_ms(200, "INVITE"),
        [10, 510, 1510, 3510]
    );
}

#[test]
fn a_forwarded_2xx_is_sent_once_and_lingers_until_timer_l() {
    // A proxy relays the 2xx: no retransmission by this hop even though
    // the ACK never comes here (RFC 6026 §7.1), and no ACK timeout.
    let timers = Timers::default();
    let mut sim = Sim::pair(timers, acking_uac(UDP), forward_with(200, "ok"));
    sim.set_filter(|_, p| ack_requests(p));
    start(&mut sim, Method::Invite, UDP);
    settle(&mut sim);
    let uas = sim.node(UAS);
    assert_eq!(
        uas.sent_responses_ms(200, "INVITE"),
        [10],
        "{}",
        sim.trace()
    );
    let stx = uas
        .first_tx(|e| matches!(e, Event::Request { .. }))
        .unwrap();
    assert_eq!(
        uas.events_ms(|e| !matches!(e, Event::Request { .. })),
        [(10 + x64(&timers), Event::Terminated { tx: stx })]
    );
}

#[test]
fn timer_l_and_m_prompt_ack() {
    check_l_m_with_ack(Timers::default(), UDP, 0);
    check_l_m_with_ack(Timers::default(), TCP, 0);
}

#[test]
fn timer_l_and_m_custom() {
    check_l_m_with_ack(custom_timers(), UDP, 3000);
    check_l_m_with_ack(custom_timers(), TCP, 0);
}

fn check_l_without_ack(timers: Timers) {
    let (sim, tx) = invite_accepted(timers, UDP, None);
    let (uac, uas) = (sim.node(UAC), sim.node(UAS));
    let stx = uas
        .first_tx(|e| matches!(e, Event::Request { .. }))
        .unwrap();
    let sends: Vec<u64> = backoff_schedule(timers.t1, Some(timers.t2), timers.t1 * 64)
        .into_iter()
        .map(|x| x + 10)
        .collect();
    assert_eq!(uas.sent_responses_ms(200, "INVITE"), sends);
    let l = 10 + x64(&timers);
    assert_eq!(
        uas.events_ms(|e| !matches!(e, Event::Request { .. })),
        [
            (
                l,
                Event::Timeout {
                    tx: stx,
                    timer: TimerName::L
                }
            ),
            (l, Event::Terminated { tx: stx }),
        ]
    );
    assert_eq!(uac.responses_heard(tx).len(), sends.len());
    assert_eq!(uac.terminated_ms(tx), Some(20 + x64(&timers)));
}

#[test]
fn timer_l_without_ack_times_out() {
    check_l_without_ack(Timers::default());
    let (sim, _) = invite_accepted(Timers::default(), UDP, None);
    assert_eq!(
        sim.node(UAS).sent_responses_ms(200, "INVITE"),
        [
            10, 510, 1510, 3510, 7510, 11510, 15510, 19510, 23510, 27510, 31510
        ]
    );
}

#[test]
fn timer_l_without_ack_custom() {
    check_l_without_ack(custom_timers());
}

#[test]
fn accepted_absorbs_invite_retransmissions() {
    // The UAS answers 200 at 110 and the 2xx takes 2 s to arrive: the UAC
    // retransmits the INVITE (Timer A, 500 and 1500) into the UAS's
    // Accepted transaction, which absorbs the copies (RFC 6026 §7.1):
    // no new transaction, no response in answer to them.
    let mut sim = Sim::pair(
        Timers::default(),
        acking_uac(UDP),
        answer_after(200, "ok", ms(100)),
    );
    sim.link(UAS, UAC).delay = ms(2000);
    let tx = start(&mut sim, Method::Invite, UDP);
    settle(&mut sim);
    let (uac, uas) = (sim.node(UAC), sim.node(UAS));
    assert_eq!(uac.sent_requests_ms("INVITE"), [0, 500, 1500]);
    assert_eq!(
        uas.received_ms(|m| is_request(m, "INVITE")),
        [10, 510, 1510]
    );
    assert_eq!(
        uas.events_ms(|e| matches!(e, Event::Request { .. })).len(),
        1
    );
    // Only the 2xx timer's copies (110 + 0.5, 1.5 s), ACKed at 2120.
    assert_eq!(uas.sent_responses_ms(200, "INVITE"), [110, 610, 1610]);
    assert_eq!(uac.responses_heard(tx)[0], (2110, 200));
    assert_eq!(sim.ep(UAC).transaction_count(), 0);
    assert_eq!(sim.ep(UAS).transaction_count(), 0);
}

// ---- 100 Trying (§17.2.1) --------------------------------------------------------------------

#[test]
fn trying_sent_after_200_ms_when_the_tu_is_silent() {
    for (timers, t) in [
        (Timers::default(), UDP),
        (Timers::default(), TCP),
        (custom_timers(), UDP),
    ] {
        let mut sim = Sim::pair(timers, silent(), silent());
        let tx = start(&mut sim, Method::Invite, t);
        sim.run_until_ms(2000);
        let uas = sim.node(UAS);
        let stx = uas
            .first_tx(|e| matches!(e, Event::Request { .. }))
            .unwrap();
        let at = 10 + as_ms(timers.trying);
        assert_eq!(uas.sent_responses_ms(100, "INVITE"), [at]);
        let trying = uas.sent[0].msg.as_ref().unwrap();
        assert_eq!(uas.sent[0].tx, Some(stx));
        assert_eq!(to_tag(trying), None, "a 100 carries no To tag (§8.2.6.1)");
        // The UAC: Proceeding, so Timer A stops (and B: Figure 5).
        let uac = sim.node(UAC);
        assert_eq!(uac.responses_heard(tx), [(at + 10, 100)]);
        assert_eq!(uac.sent_requests_ms("INVITE"), [0]);
        assert_eq!(sim.ep(UAC).state(tx), Some(TxState::Proceeding));
        assert_eq!(sim.ep(UAC).poll_timeout(), None);
    }
}

#[test]
fn no_trying_when_the_tu_rings_within_200_ms() {
    let uas: Tu = Box::new(|cx, e| {
        if let Event::Request { tx, request, .. } = e {
            let (tx, r) = (*tx, response(request, 180, "r", cx.me));
            cx.after(ms(190), move |cx| cx.respond(tx, r).unwrap());
        }
    });
    let mut sim = Sim::pair(Timers::default(), silent(), uas);
    start(&mut sim, Method::Invite, UDP);
    sim.run_until_ms(2000);
    let uas = sim.node(UAS);
    assert_eq!(uas.sent_responses_ms(100, "INVITE"), Vec::<u64>::new());
    assert_eq!(uas.sent_responses_ms(180, "INVITE"), [200]);
}

#[test]
fn retransmitted_invite_gets_the_trying_again() {
    // The 100 is lost; the UAC's first retransmission (500) gets it again.
    let mut sim = Sim::pair(Timers::default(), silent(), silent());
    let mut first = true;
    sim.set_filter(move |_, p| {
        let drop = first && p.msg.as_ref().is_some_and(|m| m.status() == Some(100));
        if drop {
            first = false;
        }
        drop
    });
    let tx = start(&mut sim, Method::Invite, UDP);
    sim.run_until_ms(3000);
    assert_eq!(sim.node(UAS).sent_responses_ms(100, "INVITE"), [210, 510]);
    assert_eq!(sim.node(UAC).sent_requests_ms("INVITE"), [0, 500]);
    assert_eq!(sim.node(UAC).responses_heard(tx), [(520, 100)]);
}

// ---- Reliable provisional responses (RFC 3262 §3) --------------------------------------------

/// A UAS that answers an INVITE with a reliable 183 and, when a PRACK for
/// it arrives, stops its retransmissions and answers the PRACK.
fn reliable_uas() -> Tu {
    let mut invite_of: HashMap<String, TxId> = HashMap::new();
    Box::new(move |cx, e| {
        let Event::Request { tx, request, .. } = e else {
            return;
        };
        if is_request(request, "INVITE") {
            invite_of.insert(call_id(request).unwrap(), *tx);
            let r = ResponseBuilder::for_request(request, 183, Some("rel"))
                .unwrap()
                .header("Contact", &format!("<sip:bob@{}>", cx.me))
                .header("Require", "100rel")
                .header("RSeq", "1")
                .build()
                .unwrap();
            cx.ep.respond_reliable(cx.now, *tx, r).unwrap();
        } else if is_request(request, "PRACK") {
            cx.ep.prack_received(invite_of[&call_id(request).unwrap()]);
            let r = response(request, 200, "rel", cx.me);
            cx.respond(*tx, r).unwrap();
        }
    })
}

/// A UAC that PRACKs every reliable provisional it hears (RFC 3262 §4).
fn pracking_uac() -> Tu {
    Box::new(|cx, e| {
        let Event::Response { response: r, .. } = e else {
            return;
        };
        if r.header(sip_message::HeaderName::RSeq).is_none() {
            return;
        }
        let value =
            |name| String::from_utf8_lossy(r.header(name).unwrap().value_bytes()).into_owned();
        use sip_message::HeaderName as H;
        let branch = cx.ep.ids().branch();
        let prack = RequestBuilder::new(Method::Prack, "sip:bob@192.0.2.2:5060")
            .unwrap()
            .header("Via", &format!("SIP/2.0/UDP {};branch={branch}", cx.me))
            .header("Max-Forwards", "70")
            .header("From", &value(H::From))
            .header("To", &value(H::To))
            .header("Call-ID", &value(H::CallId))
            .header("CSeq", "2 PRACK")
            .header("RAck", &format!("{} 1 INVITE", value(H::RSeq)))
            .build()
            .unwrap();
        cx.send_request(prack, peer(UDP, UAS_ADDR)).unwrap();
    })
}

#[test]
fn reliable_provisional_doubles_from_t1_until_prack() {
    // Without a PRACK: T1, doubling, no cap (RFC 3262 §3).
    let mut sim = Sim::pair(Timers::default(), silent(), reliable_uas());
    start(&mut sim, Method::Invite, UDP);
    sim.run_until_ms(32_000);
    assert_eq!(
        sim.node(UAS).sent_responses_ms(183, "INVITE"),
        [10, 510, 1510, 3510, 7510, 15510, 31510]
    );
    // With one: the first copy is PRACKed (PRACK at 20, at the UAS at 30),
    // nothing more is sent.
    let mut sim = Sim::pair(Timers::default(), pracking_uac(), reliable_uas());
    let tx = start(&mut sim, Method::Invite, UDP);
    sim.run_until_ms(70_000);
    let uas = sim.node(UAS);
    assert_eq!(uas.sent_responses_ms(183, "INVITE"), [10]);
    assert_eq!(uas.sent_responses_ms(200, "PRACK"), [30]);
    assert!(
        uas.events_ms(|e| matches!(e, Event::Timeout { .. }))
            .is_empty()
    );
    assert_eq!(sim.node(UAC).responses_heard(tx), [(20, 183)]);
    assert_eq!(sim.ep(UAC).state(tx), Some(TxState::Proceeding));
}

#[test]

fn reliable_provisional_gives_up_after_64_t1() {
    let mut sim = Sim::pair(Timers::default(), silent(), reliable_uas());
    start(&mut sim, Method::Invite, UDP);
    sim.run_until_ms(70_000);
    let uas = sim.node(UAS);
    let stx = uas
        .first_tx(|e| matches!(e, Event::Request { .. }))
        .unwrap();
    // RFC 3262 §3: "If a reliable provisional response is retransmitted
    // for 64*T1 seconds without reception of a corresponding PRACK, the UAS
    // SHOULD reject the original request with a 5xx response": the TU must
    // hear of it at 64*T1 after the first send (10 + 32000).
    assert_eq!(
        uas.events_ms(|e| matches!(e, Event::Timeout { .. })),
        [(
            32_010,
            Event::Timeout {
                tx: stx,
                timer: TimerName::Reliable1xx
            }
        )],
        "{}",
        sim.trace()
    );
    assert_eq!(
        uas.sent_responses_ms(183, "INVITE"),
        [10, 510, 1510, 3510, 7510, 15510, 31510]
    );
}
