//! Seeded properties over random traffic: a UAC starts a random mix of
//! INVITE and non-INVITE transactions (some INVITEs it cancels), a UAS TU
//! answers each with random provisional and final responses after random
//! delays, over UDP links with random loss (0-30 %), delay and jitter
//! (reordering), or over TCP. For every seed:
//!
//! * (a) every transaction on both sides terminates, within
//!   64*T1 + T4 (+ 1 s slack) after its last activity (a transmit or an
//!   event naming it);
//! * (b) the UAC TU never hears two final responses for a non-INVITE
//!   transaction, nor two non-2xx finals (or a 2xx and a non-2xx) for an
//!   INVITE;
//! * (c) no transmit or event names a transaction after its Terminated;
//! * (d) both endpoints end with `transaction_count() == 0` and no timer;
//! * (e) the UAS TU hears each request once, however many copies arrive;
//! * (f) the UAC TU learns an outcome for every transaction: a final, a
//!   timeout or a transport error.
//!
//! `SIP_SIM_SEED=n` runs one seed (and its trace is in the failure message
//! of any property it breaks).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod sim;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use sim::*;
use sip_message::{Method, SipMessage};
use sip_proto::{Event, Timers, TransportKind, TxId};

const SEEDS: u64 = 200;

/// A UAS TU answering at random.
fn random_uas(seed: u64) -> Tu {
    let mut rng = Rng::new(seed);
    let mut invites: HashMap<TxId, (SipMessage, String)> = HashMap::new();
    Box::new(move |cx, e| match e {
        Event::Request { tx, request, .. } => {
            let tx = *tx;
            let invite = is_request(request, "INVITE");
            let tag = format!("t{:x}", rng.next_u64());
            if invite {
                invites.insert(tx, (request.clone(), tag.clone()));
            }
            if rng.chance(0.6) {
                let code = if invite {
                    rng.pick(&[180, 183])
                } else {
                    rng.pick(&[100, 182])
                };
                let r = response(request, code, &tag, cx.me);
                let d = rng.ms_between(0, 400);
                cx.after(d, move |cx| {
                    let _ = cx.respond(tx, r);
                });
            }
            let finals: &[u16] = if invite {
                &[200, 200, 486, 404, 603, 302]
            } else {
                &[200, 202, 404, 500]
            };
            let r = response(request, rng.pick(finals), &tag, cx.me);
            let d = rng.ms_between(0, 3000);
            cx.after(d, move |cx| {
                // Refused when a CANCEL's 487 went first.
                let _ = cx.respond(tx, r);
            });
        }
        Event::Cancelled { invite } => {
            let (req, tag) = &invites[invite];
            let r = response(req, 487, tag, cx.me);
            cx.respond(*invite, r).expect("487 to a cancelled INVITE");
        }
        _ => {}
    })
}

/// One random run; returns the simulation after it settled.
fn simulate(seed: u64) -> Sim {
    let mut rng = Rng::new(seed);
    let timers = Timers::default();
    let t = if rng.chance(0.2) {
        TransportKind::Tcp
    } else {
        TransportKind::Udp
    };
    let mut sim = Sim::new(seed);
    sim.add_endpoint("uac", addr(UAC_ADDR), timers, seed, acking_uac(t));
    sim.add_endpoint(
        "uas",
        addr(UAS_ADDR),
        timers,
        seed.wrapping_add(1),
        random_uas(seed ^ 0xA5A5),
    );
    for (a, b) in [(UAC, UAS), (UAS, UAC)] {
        let loss = rng.unit() * 0.3;
        let delay = rng.ms_between(1, 80);
        let jitter = rng.ms_between(0, 150);
        let l = sim.link(a, b);
        l.loss = loss;
        l.delay = delay;
        l.jitter = jitter;
    }
    if t == TransportKind::Udp {
        // Some runs add an outage of both directions (up to 30 s, short
        // enough for every retransmission schedule to outlast it), or
        // lose the UAC -> UAS direction for good from some moment on:
        // timers B, F, H and L get their turn.
        let outage = rng
            .chance(0.15)
            .then(|| (rng.ms_between(0, 8000), rng.ms_between(1000, 30_000)));
        let dead_from = rng.chance(0.1).then(|| rng.ms_between(0, 8000));
        let uac = addr(UAC_ADDR);
        sim.set_filter(move |rel, p| {
            outage.is_some_and(|(s, d)| rel >= s && rel < s + d)
                || dead_from.is_some_and(|s| rel >= s && p.from == uac)
        });
    }
    let n = 1 + rng.below(8);
    for _ in 0..n {
        let at = rng.ms_between(0, 5000);
        let method = if rng.chance(0.5) {
            Method::Invite
        } else {
            rng.pick(&[Method::Options, Method::Message, Method::Info])
        };
        let cancel_after =
            (method == Method::Invite && rng.chance(0.3)).then(|| rng.ms_between(0, 2500));
        sim.act(UAC, move |cx| {
            cx.after(at, move |cx| {
                let r = cx.request(method, addr(UAS_ADDR), t);
                let tx = cx.send_request(r, peer(t, UAS_ADDR)).expect("send");
                if let Some(d) = cancel_after {
                    cx.after(d, move |cx| {
                        // Refused when the INVITE already has its final.
                        let _ = cx.cancel(tx);
                    });
                }
            });
        });
    }
    assert!(
        sim.run(Duration::from_secs(1200)),
        "seed {seed}: still busy after 20 virtual minutes"
    );
    sim
}

enum Entry<'a> {
    Sent,
    Event(&'a EventRecord),
}

fn check(sim: &Sim) -> Result<(), String> {
    let timers = Timers::default();
    let bound = timers.t1 * 64 + timers.t4 + Duration::from_secs(1);
    for id in [UAC, UAS] {
        let node = sim.node(id);
        let mut entries: Vec<(u64, Instant, Option<TxId>, Entry<'_>)> = Vec::new();
        for s in &node.sent {
            entries.push((s.order, s.at, s.tx, Entry::Sent));
        }
        for e in &node.events {
            entries.push((e.order, e.at, event_tx(&e.event), Entry::Event(e)));
        }
        entries.sort_by_key(|(order, ..)| *order);
        let mut last: HashMap<TxId, Instant> = HashMap::new();
        let mut ended: HashMap<TxId, Instant> = HashMap::new();
        for (_, at, tx, entry) in &entries {
            let Some(tx) = *tx else { continue };
            if ended.contains_key(&tx) {
                return Err(format!(
                    "(c) {}: {tx} named at {:?} after its Terminated",
                    node.name,
                    *at - sim.start
                ));
            }
            if matches!(entry, Entry::Event(e) if e.event == Event::Terminated { tx }) {
                let idle = *at - last[&tx];
                if idle > bound {
                    return Err(format!(
                        "(a) {}: {tx} terminated {idle:?} after its last activity",
                        node.name
                    ));
                }
                ended.insert(tx, *at);
            } else {
                last.insert(tx, *at);
            }
        }
        if let Some(tx) = last.keys().find(|tx| !ended.contains_key(tx)) {
            return Err(format!("(a) {}: {tx} never terminated", node.name));
        }
        let ep = node.ep();
        if ep.transaction_count() != 0 || ep.poll_timeout().is_some() {
            return Err(format!(
                "(d) {}: {} transactions left, timer {:?}",
                node.name,
                ep.transaction_count(),
                ep.poll_timeout()
            ));
        }
    }

    // (b) and (f): what the UAC TU heard per client transaction.
    let uac = sim.node(UAC);
    let started: Vec<(TxId, String)> = uac
        .sent
        .iter()
        .filter_map(|s| {
            let m = s.msg.as_ref()?;
            let method = m.method()?.as_str().to_owned();
            (method != "ACK").then_some((s.tx?, method))
        })
        .collect::<HashMap<_, _>>()
        .into_iter()
        .collect();
    for (tx, method) in started {
        let finals: Vec<u16> = uac
            .responses_heard(tx)
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| *s >= 200)
            .collect();
        let ok = finals.iter().filter(|s| (200..300).contains(*s)).count();
        let other = finals.len() - ok;
        if method == "INVITE" {
            if other > 1 || (other == 1 && ok > 0) {
                return Err(format!("(b) INVITE {tx} heard finals {finals:?}"));
            }
        } else if finals.len() > 1 {
            return Err(format!("(b) {method} {tx} heard finals {finals:?}"));
        }
        let failed = uac.events.iter().any(|e| match &e.event {
            Event::Timeout { tx: t, .. } | Event::TransportError { tx: t } => *t == tx,
            _ => false,
        });
        if finals.is_empty() && !failed {
            return Err(format!("(f) {method} {tx}: no final, no timeout"));
        }
    }

    // (e): one Request event per request.
    let mut seen = HashSet::new();
    for e in &sim.node(UAS).events {
        if let Event::Request { request, .. } = &e.event {
            let key = (
                call_id(request),
                cseq_number(request),
                request.method().map(|m| m.as_str().to_owned()),
            );
            if !seen.insert(key.clone()) {
                return Err(format!("(e) the UAS TU heard {key:?} twice"));
            }
        }
    }
    Ok(())
}

fn seeds() -> Vec<u64> {
    match std::env::var("SIP_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIP_SIM_SEED is a number")],
        Err(_) => (0..SEEDS).collect(),
    }
}

#[test]
fn random_traffic_over_a_lossy_network_keeps_the_invariants() {
    let mut transactions = 0;
    let mut lost = 0;
    for seed in seeds() {
        let sim = simulate(seed);
        if let Err(e) = check(&sim) {
            panic!(
                "seed {seed}: {e}\n(rerun: SIP_SIM_SEED={seed})\n{}",
                sim.trace()
            );
        }
        transactions += sim
            .node(UAC)
            .events
            .iter()
            .filter(|e| matches!(e.event, Event::Terminated { .. }))
            .count();
        lost += sim
            .nodes
            .iter()
            .flat_map(|n| &n.sent)
            .filter(|s| s.fate == Fate::Lost)
            .count();
    }
    // The runs did exercise something.
    if std::env::var("SIP_SIM_SEED").is_err() {
        assert!(transactions > 2 * SEEDS as usize, "{transactions}");
        assert!(lost > 100, "{lost}");
    }
}

#[test]
fn the_same_seed_replays_the_same_run() {
    for seed in [3, 17, 101] {
        let (a, b) = (simulate(seed), simulate(seed));
        assert_eq!(a.trace(), b.trace());
        assert!(!a.trace().is_empty());
    }
}
