//! The `endpoint` target: sip-proto's transaction layer (`Endpoint`) fed
//! what a hostile network can send it, on a virtual clock.
//!
//! The input is a sequence of operations, each `[op][len: u16 BE][payload]`
//! (a short tail is the last payload):
//!
//! * `op % 6 == 0`: the payload is a datagram from peer A, `1` from peer B
//!   (the same client behind two addresses, as a cluster's two edges), both
//!   over UDP; it is parsed and, when it parses, received;
//! * `2`: the clock advances by `payload[0] * 20` ms and timers fire;
//! * `3`: the transaction user answers the oldest request it has not
//!   answered with `100 + payload[0] * 2 + (payload[1] & 1)` (so 100..=611),
//!   or abandons it (500) when the status does not build;
//! * `4`: the transaction user sends an INVITE (`payload[0]` even) or an
//!   OPTIONS to peer A, over UDP;
//! * `5`: the transaction user cancels its newest INVITE.
//!
//! Checked: nothing panics; every output names a transaction that exists
//! or existed; and once the transaction user has answered every request
//! and cancelled every INVITE, running the clock for ten virtual minutes
//! ends every transaction and leaves no timer (no transaction leaks,
//! whatever the peers sent). The endpoint trusts peer B's sent-by
//! `198.51.100.1:5060` as a relay, so the path that moves a transaction's
//! responses runs too.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::{Method, Peer, RequestBuilder, ResponseBuilder, SipMessage, TransportKind};
use sip_proto::{Endpoint, Event, Output, Timers, TxId};

fn peer(addr: &str) -> Peer {
    Peer {
        transport: TransportKind::Udp,
        addr: addr
            .parse::<SocketAddr>()
            .unwrap_or_else(|_| unreachable!()),
    }
}

/// Runs the operations in `data` against one endpoint.
pub fn check_endpoint(data: &[u8]) {
    let a = peer("192.0.2.1:5060");
    let b = peer("192.0.2.2:40000");
    let me = "192.0.2.9:5060";
    #[allow(clippy::disallowed_methods)] // The one clock reading: the virtual epoch.
    let start = Instant::now();
    let mut now = start;
    let mut ep = Endpoint::new(Timers::default(), 7).with_relays(["198.51.100.1:5060"]);
    let mut ever: Vec<TxId> = Vec::new();
    let mut pending: Vec<(TxId, SipMessage)> = Vec::new();
    let mut invites: Vec<TxId> = Vec::new();

    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        let (len, tail) = match tail {
            [hi, lo, tail @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), tail),
            _ => (tail.len(), &[][..]),
        };
        let (payload, tail) = tail.split_at(len.min(tail.len()));
        rest = tail;
        match op % 6 {
            0 | 1 => {
                let source = if op % 6 == 0 { a } else { b };
                if let Ok(msg) = SipMessage::parse(Bytes::copy_from_slice(payload)) {
                    ep.receive(now, msg, source);
                }
            }
            2 => {
                let step = payload.first().map_or(1, |&n| u64::from(n));
                now += Duration::from_millis(step * 20);
                ep.handle_timeout(now);
            }
            3 => {
                if !pending.is_empty() {
                    let (tx, request) = pending.remove(0);
                    let status = 100
                        + u16::from(payload.first().copied().unwrap_or(100)) * 2
                        + u16::from(payload.get(1).copied().unwrap_or(0) & 1);
                    let built = ResponseBuilder::for_request(&request, status, Some("fz"))
                        .and_then(ResponseBuilder::build);
                    match built {
                        Ok(r) if status >= 200 => {
                            let _ = ep.respond(now, tx, r);
                        }
                        Ok(r) => {
                            let _ = ep.respond(now, tx, r);
                            // A provisional: the request still wants a final.
                            pending.push((tx, request));
                        }
                        Err(_) => ep.abandon(now, tx),
                    }
                }
            }
            4 => {
                let invite = payload.first().is_none_or(|&p| p % 2 == 0);
                let method = if invite {
                    Method::Invite
                } else {
                    Method::Options
                };
                if let Some(tx) = send(&mut ep, now, method, me, a) {
                    ever.push(tx);
                    if invite {
                        invites.push(tx);
                    }
                }
            }
            _ => {
                if let Some(tx) = invites.pop()
                    && let Ok(Some(cancel)) = ep.cancel(now, tx)
                {
                    ever.push(cancel);
                }
            }
        }
        drain(&mut ep, &mut ever, &mut pending);
    }

    // Wind down: answer what is open, cancel every INVITE, run the clock.
    for (tx, _) in pending.drain(..) {
        ep.abandon(now, tx);
    }
    for tx in invites.drain(..) {
        if let Ok(Some(cancel)) = ep.cancel(now, tx) {
            ever.push(cancel);
        }
    }
    drain(&mut ep, &mut ever, &mut pending);
    let end = now + Duration::from_secs(600);
    while let Some(at) = ep.poll_timeout() {
        assert!(
            at <= end,
            "a timer {:?} after the wind-down started",
            at - now
        );
        now = at;
        ep.handle_timeout(now);
        drain(&mut ep, &mut ever, &mut pending);
        // Requests that arrive during the wind-down (none: no input) would
        // be answered here.
        for (tx, _) in pending.drain(..) {
            ep.abandon(now, tx);
        }
    }
    assert_eq!(
        ep.transaction_count(),
        0,
        "transactions outlived their timers ({:?} of virtual time)",
        now - start
    );
}

/// Sends a request the transaction user built to `to`.
fn send(ep: &mut Endpoint, now: Instant, method: Method<'_>, me: &str, to: Peer) -> Option<TxId> {
    let branch = ep.ids().branch();
    let tag = ep.ids().tag();
    let call_id = ep.ids().call_id("fuzz");
    let request = RequestBuilder::new(method, &format!("sip:bob@{}", to.addr))
        .ok()?
        .header("Via", &format!("SIP/2.0/UDP {me};branch={branch}"))
        .header("Max-Forwards", "70")
        .header("From", &format!("<sip:fuzz@{me}>;tag={tag}"))
        .header("To", &format!("<sip:bob@{}>", to.addr))
        .header("Call-ID", &call_id)
        .header("CSeq", &format!("1 {}", method.as_str()))
        .header("Contact", &format!("<sip:fuzz@{me}>"))
        .build()
        .ok()?;
    ep.send_request(now, request, to).ok()
}

/// Takes every output: requests become pending for the transaction user;
/// every named transaction must be one the endpoint created.
fn drain(ep: &mut Endpoint, ever: &mut Vec<TxId>, pending: &mut Vec<(TxId, SipMessage)>) {
    while let Some(out) = ep.poll_output() {
        match out {
            Output::Event(Event::Request { tx, request, .. }) => {
                ever.push(tx);
                pending.push((tx, request));
            }
            Output::Event(Event::Terminated { tx }) => {
                assert!(ever.contains(&tx), "{tx:?} terminated but never seen");
                pending.retain(|(p, _)| *p != tx);
            }
            Output::Transmit(t) => {
                if let Some(tx) = t.tx {
                    // CANCELs the endpoint answers itself create server
                    // transactions the TU never hears of.
                    if !ever.contains(&tx) {
                        ever.push(tx);
                    }
                }
            }
            Output::Event(_) => {}
        }
    }
}
