#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Applications tested in process (`sip_testkit::lab`): the engine and
//! scripted phones on an in-process network, no socket, on tokio's paused
//! clock, so every timer in here (a 30 s application timer, a 32 s PRACK
//! wait, a branch timeout) runs in virtual time, exactly.
//!
//! * each answering handle: accept, reject, respond with a reason,
//!   provisional then accept, reliable provisional with and without PRACK,
//!   dropped unanswered (500), methods without a handler (405 / 501);
//! * the proxy: relaying with Record-Route, and §16.7's best-response
//!   rules over forked branches (lowest class, 503 -> 500, a 6xx cancels
//!   the others, a 2xx cancels the others, sequential after a busy);
//! * the B2BUA: answer, re-INVITE, BYE and CANCEL relayed between legs,
//!   a reliable provisional and its PRACK relayed (or PRACKed by the
//!   B2BUA when leg A cannot);
//! * timers on the virtual clock: one-shot, repeating, cancelled;
//! * composition: a DAR chain runs its applications in the file's order;
//! * requests the application sends in its dialogs: NOTIFYs for a REFER,
//!   a subscription's NOTIFYs until its expiry timer ends it, the BYE of a
//!   call an INVITE with Replaces took over.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sip_app::{
    AppError, AppRouter, Context, Dar, IncomingRequest, ProxyOptions, Rule, SipRouter, TimerEvent,
    UaMode,
};
use sip_testkit::lab::{Dialog, Lab, LabEngine, Phone, Received, header};
use tokio::time::Instant;

const SERVER: &str = "10.0.0.1:5060";

async fn server(lab: &Lab, router: AppRouter) -> LabEngine {
    lab.engine(SERVER, router).await.unwrap()
}

fn target(user: &str) -> String {
    format!("sip:{user}@{SERVER}")
}

/// Sends an INVITE to the server and returns it with the final response
/// (provisionals skipped), which it ACKs.
async fn call(
    phone: &mut Phone,
    srv: &LabEngine,
    user: &str,
) -> (sip_message::SipMessage, Received) {
    let invite = phone.invite(&target(user)).unwrap();
    phone.send(&invite, srv.addr());
    let fin = phone.expect_final().await.unwrap();
    let ack = phone.ack(&invite, &fin).unwrap();
    let hop = if fin.status().unwrap() < 300 {
        Dialog::as_uac(&invite, &fin).next_hop().unwrap()
    } else {
        srv.addr()
    };
    phone.send(&ack, hop);
    (invite, fin)
}

// ---------------------------------------------------------------------------
// Answering handles

async fn answering(_cx: Context<()>, req: IncomingRequest) -> Result<(), AppError> {
    match req.uri_user().unwrap_or("") {
        "accept" => req.accept().await,
        "busy" => req.reject(486).await,
        "holiday" => {
            req.respond(480, Some("Temporarily Unavailable (on holiday)"))
                .await
        }
        "ring" => {
            req.provisional(180)?;
            tokio::time::sleep(Duration::from_secs(5)).await;
            req.accept().await
        }
        "early" => {
            req.provisional_reliable(183).await?;
            req.accept().await
        }
        // Returns without answering: the container answers 500.
        _ => Ok(()),
    }
}

async fn bye(_cx: Context<()>, req: IncomingRequest) -> Result<(), AppError> {
    req.accept().await
}

fn answering_router() -> AppRouter {
    let app = SipRouter::new()
        .invite(answering)
        .bye(bye)
        .with_state("answering", ());
    AppRouter::new().route(Rule::any(), app)
}

#[tokio::test(start_paused = true)]
async fn accept_answers_200_and_the_bye_ends_the_session() {
    let lab = Lab::new();
    let srv = server(&lab, answering_router()).await;
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let (invite, ok) = call(&mut alice, &srv, "accept").await;
    assert_eq!(ok.status(), Some(200));
    assert!(
        header(&ok, "Contact").is_some(),
        "a 2xx names the dialog's target"
    );
    assert_eq!(srv.engine().live_sessions(), 1);
    let mut dialog = Dialog::as_uac(&invite, &ok);
    let bye = dialog.request(&mut alice, "BYE", &[], "").unwrap();
    alice.send(&bye, dialog.next_hop().unwrap());
    alice.expect_status(200).await.unwrap();
    // The session is ready (no dialog, no timer) and goes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(srv.engine().live_sessions(), 0);
}

#[tokio::test(start_paused = true)]
async fn reject_and_respond_send_their_status_and_reason() {
    let lab = Lab::new();
    let srv = server(&lab, answering_router()).await;
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let (_, busy) = call(&mut alice, &srv, "busy").await;
    assert_eq!(busy.status(), Some(486));
    let (_, away) = call(&mut alice, &srv, "holiday").await;
    assert_eq!(away.status(), Some(480));
    assert_eq!(away.reason(), Some("Temporarily Unavailable (on holiday)"));
}

#[tokio::test(start_paused = true)]
async fn a_provisional_reaches_the_caller_before_the_answer() {
    let lab = Lab::new();
    let srv = server(&lab, answering_router()).await;
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let invite = alice.invite(&target("ring")).unwrap();
    let start = Instant::now();
    alice.send(&invite, srv.addr());
    let ringing = alice.expect_status(180).await.unwrap();
    assert!(ringing.to_tag().is_some(), "a 180 opens an early dialog");
    let ok = alice.expect_status(200).await.unwrap();
    assert_eq!(ok.to_tag(), ringing.to_tag(), "one dialog");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_millis(5100),
        "the handler's 5 s of ringing, in virtual time: {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reliable_provisional_waits_for_its_prack() {
    let lab = Lab::new();
    let srv = server(&lab, answering_router()).await;
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let sdp = alice.sdp();
    let invite = alice
        .request("INVITE", &target("early"), &["Supported: 100rel"], &sdp)
        .unwrap();
    alice.send(&invite, srv.addr());
    let early = alice.expect_status(183).await.unwrap();
    assert_eq!(header(&early, "Require").as_deref(), Some("100rel"));
    let rseq = header(&early, "RSeq").unwrap();
    // Not acknowledged yet: the 183 is retransmitted (T1, 2*T1, ...).
    let again = alice.expect_status(183).await.unwrap();
    assert_eq!(header(&again, "RSeq").unwrap(), rseq);
    let mut dialog = Dialog::as_uac(&invite, &early);
    let rack = format!("RAck: {rseq} 1 INVITE");
    let prack = dialog.request(&mut alice, "PRACK", &[&rack], "").unwrap();
    alice.send(&prack, dialog.next_hop().unwrap());
    let mut statuses = Vec::new();
    while statuses.len() < 2 {
        let r = alice.recv().await.unwrap();
        match r.status() {
            Some(183) => {} // a retransmission already on its way
            Some(s) => statuses.push((s, r.cseq().unwrap().1.as_str().to_owned())),
            None => panic!("unexpected request"),
        }
    }
    statuses.sort();
    assert_eq!(
        statuses,
        [(200, "INVITE".to_owned()), (200, "PRACK".to_owned())],
        "the PRACK is answered and the handler goes on to accept"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reliable_provisional_never_pracked_ends_in_500_after_64_t1() {
    let lab = Lab::new();
    let srv = server(&lab, answering_router()).await;
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let sdp = alice.sdp();
    let invite = alice
        .request("INVITE", &target("early"), &["Supported: 100rel"], &sdp)
        .unwrap();
    let start = Instant::now();
    alice.send(&invite, srv.addr());
    let fin = alice.expect_final().await.unwrap();
    assert_eq!(fin.status(), Some(500), "{:?}", fin.reason());
    assert!(
        fin.reason().unwrap().contains("no PRACK"),
        "{:?}",
        fin.reason()
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(32) && waited < Duration::from_secs(33),
        "64*T1 in virtual time: {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_the_handler_leaves_unanswered_gets_500() {
    let lab = Lab::new();
    let srv = server(&lab, answering_router()).await;
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let (_, fin) = call(&mut alice, &srv, "forgetful").await;
    assert_eq!(fin.status(), Some(500));
}

#[tokio::test(start_paused = true)]
async fn a_from_the_application_cannot_read_gets_400_naming_it() {
    // The stack validates for forwarding (From's framing and tag only);
    // before a handler runs, From and To must parse in full.
    let lab = Lab::new();
    let srv = server(&lab, answering_router()).await;
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let invite = alice.invite(&target("accept")).unwrap();
    let text = String::from_utf8(invite.as_bytes().to_vec()).unwrap();
    let from = header(&invite, "From").unwrap();
    let bad = text.replacen(&from, "<sip:alice@[bad>;tag=1", 1);
    assert_ne!(bad, text);
    alice.send_raw(bad.as_bytes(), srv.addr());
    let r = alice.expect_final().await.unwrap();
    assert_eq!(r.status(), Some(400));
    let reason = r.reason().unwrap_or_default().to_owned();
    assert!(reason.contains("From"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn methods_without_a_handler_get_405_with_allow_or_501() {
    let lab = Lab::new();
    let srv = server(&lab, answering_router()).await;
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let message = alice
        .request("MESSAGE", &target("accept"), &[], "hello")
        .unwrap();
    alice.send(&message, srv.addr());
    let r = alice.expect_final().await.unwrap();
    assert_eq!(r.status(), Some(405));
    let allow = header(&r, "Allow").unwrap();
    assert!(allow.contains("INVITE") && allow.contains("BYE"), "{allow}");
    let odd = alice.request("FROB", &target("accept"), &[], "").unwrap();
    alice.send(&odd, srv.addr());
    assert_eq!(alice.expect_final().await.unwrap().status(), Some(501));
}

// ---------------------------------------------------------------------------
// Proxy

struct Fork {
    targets: Vec<String>,
    parallel: bool,
}

async fn fork(cx: Context<Fork>, req: IncomingRequest) -> Result<(), AppError> {
    let mut options = ProxyOptions::to(cx.state().targets.clone());
    options.parallel = cx.state().parallel;
    req.proxy(options).await?;
    Ok(())
}

/// `n` phones `b0`, `b1`, ... at 10.0.1.1, 10.0.1.2, ...
fn phones(lab: &Lab, n: usize) -> Vec<Phone> {
    (0..n)
        .map(|i| {
            lab.phone(&format!("b{i}"), &format!("10.0.1.{}:5060", i + 1))
                .unwrap()
        })
        .collect()
}

async fn proxy_lab(n: usize, parallel: bool) -> (Lab, LabEngine, Phone, Vec<Phone>) {
    let lab = Lab::new();
    let phones = phones(&lab, n);
    let app = SipRouter::new().invite(fork).with_state(
        "fork",
        Fork {
            targets: phones.iter().map(Phone::uri).collect(),
            parallel,
        },
    );
    let srv = server(&lab, AppRouter::new().route(Rule::any(), app)).await;
    let alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    (lab, srv, alice, phones)
}

#[tokio::test(start_paused = true)]
async fn the_proxy_relays_a_call_and_stays_on_its_path() {
    let (_lab, srv, mut alice, mut bobs) = proxy_lab(1, true).await;
    let bob = &mut bobs[0];
    let invite = alice.invite(&target("bob")).unwrap();
    alice.send(&invite, srv.addr());
    let got = bob.expect_request("INVITE").await.unwrap();
    assert_eq!(got.call_id(), invite.call_id(), "a proxy keeps the Call-ID");
    assert_eq!(got.request_uri_str(), Some(bob.uri().as_str()));
    assert!(
        header(&got, "Record-Route").unwrap().contains(SERVER),
        "record-routed"
    );
    assert_eq!(header(&got, "Max-Forwards").as_deref(), Some("69"));
    bob.reply(&got, 180, Some("bob")).unwrap();
    let ok = bob.reply(&got, 200, Some("bob")).unwrap();
    alice.expect_status(180).await.unwrap();
    let ok_up = alice.expect_status(200).await.unwrap();
    assert_eq!(ok_up.to_tag(), Some("bob"));
    // ACK and BYE follow the Record-Route through the proxy to bob.
    let ack = alice.ack(&invite, &ok_up).unwrap();
    let mut dialog = Dialog::as_uac(&invite, &ok_up);
    assert_eq!(dialog.next_hop(), Some(srv.addr()));
    alice.send(&ack, srv.addr());
    bob.expect_request("ACK").await.unwrap();
    let bye = dialog.request(&mut alice, "BYE", &[], "").unwrap();
    alice.send(&bye, srv.addr());
    let bye_in = bob.expect_request("BYE").await.unwrap();
    bob.reply(&bye_in, 200, None).unwrap();
    alice.expect_status(200).await.unwrap();
    drop(ok);
}

#[tokio::test(start_paused = true)]
async fn a_2xx_after_the_request_context_ended_still_reaches_the_caller() {
    // RFC 6026 §7.3: a proxy forwards every 2xx of an INVITE upstream, the
    // callee's retransmissions and a late fork's answer, also after its
    // request context ended with the first 2xx.
    let (_lab, srv, mut alice, mut bobs) = proxy_lab(1, true).await;
    let bob = &mut bobs[0];
    let invite = alice.invite(&target("bob")).unwrap();
    alice.send(&invite, srv.addr());
    let got = bob.expect_request("INVITE").await.unwrap();
    let ok = bob.reply(&got, 200, Some("bob")).unwrap();
    assert_eq!(
        alice.expect_status(200).await.unwrap().to_tag(),
        Some("bob")
    );
    // The context is over; the callee did not see an ACK and retransmits
    // its 2xx after T1 (§13.3.1.4), on the virtual clock.
    tokio::time::sleep(Duration::from_millis(500)).await;
    bob.send(&ok, got.from);
    let again = alice.expect_status(200).await.unwrap();
    assert_eq!(again.to_tag(), Some("bob"));
    assert_eq!(again.call_id(), invite.call_id());
    // A 2xx with our Via on top that matches no transaction (another
    // branch) is stray: dropped, not forwarded (RFC 6026 §8.9). The next
    // thing the caller hears is the fork below.
    let branch = got.top_branch().unwrap().to_owned();
    let stray = String::from_utf8_lossy(&ok.message_bytes())
        .replace(&branch, "z9hG4bK-not-ours")
        .replace("tag=bob", "tag=bob-stray");
    bob.send_raw(stray.as_bytes(), got.from);
    // A second fork downstream answers too: another dialog, forwarded.
    let fork = bob.reply(&got, 200, Some("bob-fork")).unwrap();
    let forked = alice.expect_status(200).await.unwrap();
    assert_eq!(forked.to_tag(), Some("bob-fork"));
    assert_eq!(
        forked.top_branch(),
        invite.top_branch(),
        "our Via popped: the caller's own on top"
    );
    drop(fork);
}

/// Proxies `bob` to `carol` at this server (a spiral: the request comes
/// back with another Request-URI), `carol` to the phone, and `loop` to
/// `loop` at this server (a loop: it comes back with the same one).
async fn spiral(cx: Context<String>, req: IncomingRequest) -> Result<(), AppError> {
    let next = match req.uri_user() {
        Some("bob") => target("carol"),
        Some("carol") => cx.state().clone(),
        _ => target("loop"),
    };
    req.proxy(ProxyOptions::to([next])).await?;
    Ok(())
}

/// The server running [`spiral`], alice calling and carol's phone at
/// 10.0.1.1:5060.
async fn spiral_lab() -> (Lab, LabEngine, Phone, Phone) {
    let lab = Lab::new();
    let carol = lab.phone("carol", "10.0.1.1:5060").unwrap();
    let app = SipRouter::new()
        .invite(spiral)
        .with_state("spiral", carol.uri());
    let srv = server(&lab, AppRouter::new().route(Rule::any(), app)).await;
    let alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    (lab, srv, alice, carol)
}

#[tokio::test(start_paused = true)]
async fn a_spiral_is_proxied_and_a_loop_gets_482() {
    let (_lab, srv, mut alice, mut carol) = spiral_lab().await;

    // bob -> carol@server -> the phone: through the server twice.
    let invite = alice.invite(&target("bob")).unwrap();
    alice.send(&invite, srv.addr());
    let got = carol.expect_request("INVITE").await.unwrap();
    assert_eq!(
        got.count(sip_message::HeaderName::Via),
        3,
        "alice's Via and the server's twice"
    );
    carol.reply(&got, 486, None).unwrap();
    assert_eq!(alice.expect_final().await.unwrap().status(), Some(486));

    // loop -> loop@server: the second pass finds its own Via for the same
    // Request-URI (§16.3 step 4).
    let (_, fin) = call(&mut alice, &srv, "loop").await;
    assert_eq!(fin.status(), Some(482));
    assert!(
        header(&fin, "Via").is_some(),
        "the 482 comes back through the first pass"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_routed_back_through_the_server_with_the_same_uri_spirals() {
    // The Request-URI stays `loop@server` on both passes, but the Route set
    // differs (the first pass pops one entry): a spiral, not a loop (§16.3
    // step 4, RFC 5393 §4.2). The request leaves by its last Route entry.
    let (_lab, srv, mut alice, mut carol) = spiral_lab().await;
    let invite = alice.invite(&target("loop")).unwrap();
    let mut e = invite.edit();
    e.add(
        "Route",
        &format!("<sip:{SERVER};lr>, <sip:{SERVER};lr>, <sip:10.0.1.1:5060;lr>"),
    )
    .unwrap();
    let invite = e.into_message().unwrap();
    alice.send(&invite, srv.addr());
    let got = carol.expect_request("INVITE").await.unwrap();
    assert_eq!(
        got.count(sip_message::HeaderName::Via),
        3,
        "alice's Via and the server's twice"
    );
    assert_eq!(got.request_uri_str(), Some(target("loop").as_str()));
    carol.reply(&got, 486, None).unwrap();
    assert_eq!(alice.expect_final().await.unwrap().status(), Some(486));
}

/// Forks to every phone, lets each answer with its status (0: rings and
/// stays silent), and returns what alice got and which phones were
/// cancelled.
async fn fork_outcome(statuses: &[u16]) -> (u16, Vec<bool>) {
    let (_lab, srv, mut alice, mut bobs) = proxy_lab(statuses.len(), true).await;
    let invite = alice.invite(&target("group")).unwrap();
    alice.send(&invite, srv.addr());
    let mut invites = Vec::new();
    for b in &mut bobs {
        invites.push(b.expect_request("INVITE").await.unwrap());
    }
    for (i, (b, inv)) in bobs.iter().zip(&invites).enumerate() {
        let tag = format!("b{i}");
        b.reply(inv, 180, Some(&tag)).unwrap();
        if statuses[i] != 0 {
            b.reply(inv, statuses[i], Some(&tag)).unwrap();
        }
    }
    let fin = alice.expect_final().await.unwrap();
    let mut cancelled = Vec::new();
    for (i, (b, inv)) in bobs.iter_mut().zip(&invites).enumerate() {
        if statuses[i] != 0 {
            cancelled.push(false);
            continue;
        }
        let got = b
            .recv_within(Duration::from_secs(1), "a CANCEL")
            .await
            .ok()
            .filter(|m| m.method().is_some_and(|m| m.as_str() == "CANCEL"));
        if let Some(c) = &got {
            b.reply(c, 200, None).unwrap();
            b.reply(inv, 487, Some(&format!("b{i}"))).unwrap();
        }
        cancelled.push(got.is_some());
    }
    (fin.status().unwrap(), cancelled)
}

#[tokio::test(start_paused = true)]
async fn best_response_is_the_lowest_class_and_a_lone_503_becomes_500() {
    // §16.7 step 6: 4xx beats 5xx whatever the order of arrival.
    assert_eq!(fork_outcome(&[503, 486]).await.0, 486);
    assert_eq!(fork_outcome(&[486, 404]).await.0, 486, "first of a class");
    // A 503 would make the caller think the proxy is overloaded.
    assert_eq!(fork_outcome(&[503]).await.0, 500);
}

#[tokio::test(start_paused = true)]
async fn a_6xx_cancels_the_ringing_branches_and_wins() {
    let (status, cancelled) = fork_outcome(&[0, 603]).await;
    assert_eq!(status, 603);
    assert_eq!(cancelled, [true, false], "the ringing branch was cancelled");
}

#[tokio::test(start_paused = true)]
async fn a_2xx_cancels_the_ringing_branches() {
    let (status, cancelled) = fork_outcome(&[0, 200, 0]).await;
    assert_eq!(status, 200);
    assert_eq!(cancelled, [true, false, true]);
}

#[tokio::test(start_paused = true)]
async fn sequential_forking_tries_the_next_target_after_a_busy() {
    let (_lab, srv, mut alice, mut bobs) = proxy_lab(2, false).await;
    let invite = alice.invite(&target("hunt")).unwrap();
    alice.send(&invite, srv.addr());
    let first = bobs[0].expect_request("INVITE").await.unwrap();
    bobs[0].reply(&first, 180, Some("b0")).unwrap();
    bobs[1]
        .silent_for(Duration::from_secs(1))
        .await
        .expect("the second target waits for the first's answer");
    bobs[0].reply(&first, 486, Some("b0")).unwrap();
    bobs[0].expect_request("ACK").await.unwrap();
    let second = bobs[1].expect_request("INVITE").await.unwrap();
    bobs[1].reply(&second, 200, Some("b1")).unwrap();
    let ok = alice.expect_final().await.unwrap();
    assert_eq!((ok.status(), ok.to_tag()), (Some(200), Some("b1")));
}

/// Hunts through its targets one by one, giving a silent hop 1 s and a
/// ringing one 3 s.
async fn timed_hunt(cx: Context<Vec<String>>, req: IncomingRequest) -> Result<(), AppError> {
    let mut options = ProxyOptions::to(cx.state().clone());
    options.parallel = false;
    options.no_response_timeout = Some(Duration::from_secs(1));
    options.branch_timeout = Some(Duration::from_secs(3));
    req.proxy(options).await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_silent_hop_is_given_up_and_a_ringing_one_cancelled_at_its_timeout() {
    let lab = Lab::new();
    let mut bobs = phones(&lab, 3);
    let targets = bobs.iter().map(Phone::uri).collect();
    let app = SipRouter::new()
        .invite(timed_hunt)
        .with_state("hunt", targets);
    let srv = server(&lab, AppRouter::new().route(Rule::any(), app)).await;
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let invite = alice.invite(&target("hunt")).unwrap();
    let start = Instant::now();
    alice.send(&invite, srv.addr());
    // b0 never answers, not even 100: after 1 s the hunt moves on.
    bobs[0].expect_request("INVITE").await.unwrap();
    let second = bobs[1].expect_request("INVITE").await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "no-response timeout"
    );
    // b1 rings and rings: after its 3 s the proxy cancels it (§16.10 /
    // §9.1) and counts it as 408, then tries b2.
    bobs[1].reply(&second, 180, Some("b1")).unwrap();
    alice.expect_status(180).await.unwrap();
    let cancel = bobs[1].expect_request("CANCEL").await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(4),
        "branch timeout, from the branch's start"
    );
    bobs[1].reply(&cancel, 200, None).unwrap();
    bobs[1].reply(&second, 487, Some("b1")).unwrap();
    let third = bobs[2].expect_request("INVITE").await.unwrap();
    bobs[2].reply(&third, 200, Some("b2")).unwrap();
    let ok = alice.expect_final().await.unwrap();
    assert_eq!((ok.status(), ok.to_tag()), (Some(200), Some("b2")));
}

// ---------------------------------------------------------------------------
// B2BUA

struct Bridge {
    callee: String,
}

async fn bridge(cx: Context<Bridge>, req: IncomingRequest) -> Result<(), AppError> {
    let callee = cx.state().callee.clone();
    req.b2bua_to(&callee).await?;
    Ok(())
}

async fn b2bua_lab() -> (Lab, LabEngine, Phone, Phone) {
    let lab = Lab::new();
    let bob = lab.phone("bob", "10.0.1.1:5060").unwrap();
    let app = SipRouter::new()
        .invite(bridge)
        .with_state("bridge", Bridge { callee: bob.uri() });
    let srv = server(&lab, AppRouter::new().route(Rule::any(), app)).await;
    let alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    (lab, srv, alice, bob)
}

#[tokio::test(start_paused = true)]
async fn the_b2bua_relays_answer_reinvite_and_bye_between_its_legs() {
    let (_lab, srv, mut alice, mut bob) = b2bua_lab().await;
    let invite = alice.invite(&target("bob")).unwrap();
    alice.send(&invite, srv.addr());
    let leg_b = bob.expect_request("INVITE").await.unwrap();
    assert_ne!(
        leg_b.call_id(),
        invite.call_id(),
        "leg B is a dialog of its own"
    );
    assert_ne!(leg_b.from_tag(), invite.from_tag());
    assert!(!leg_b.body().is_empty(), "the offer goes on to leg B");
    bob.reply(&leg_b, 180, Some("bob")).unwrap();
    alice.expect_status(180).await.unwrap();
    let ok_b = bob.reply(&leg_b, 200, Some("bob")).unwrap();
    let ok_a = alice.expect_status(200).await.unwrap();
    assert_ne!(ok_a.to_tag(), Some("bob"), "leg A has the B2BUA's tag");
    let ack = alice.ack(&invite, &ok_a).unwrap();
    alice.send(&ack, srv.addr());
    bob.expect_request("ACK").await.unwrap();

    // A re-INVITE on leg A becomes one on leg B; B's answer comes back.
    let mut dialog_a = Dialog::as_uac(&invite, &ok_a);
    let sdp = alice.sdp().replace("4000", "4002");
    let reinvite = dialog_a.request(&mut alice, "INVITE", &[], &sdp).unwrap();
    alice.send(&reinvite, dialog_a.next_hop().unwrap());
    let re_b = bob.expect_request("INVITE").await.unwrap();
    assert_eq!(re_b.call_id(), leg_b.call_id());
    assert!(String::from_utf8_lossy(re_b.body()).contains("4002"));
    bob.reply(&re_b, 200, None).unwrap();
    let re_ok = alice.expect_final().await.unwrap();
    assert_eq!(re_ok.status(), Some(200));
    let ack2 = alice.ack(&reinvite, &re_ok).unwrap();
    alice.send(&ack2, dialog_a.next_hop().unwrap());
    bob.expect_request("ACK").await.unwrap();

    // BYE from A: B gets a BYE, its 200 ends the call on both legs.
    let bye = dialog_a.request(&mut alice, "BYE", &[], "").unwrap();
    alice.send(&bye, dialog_a.next_hop().unwrap());
    let bye_b = bob.expect_request("BYE").await.unwrap();
    assert_eq!(bye_b.call_id(), leg_b.call_id());
    bob.reply(&bye_b, 200, None).unwrap();
    alice.expect_status(200).await.unwrap();
    drop(ok_b);
}

#[tokio::test(start_paused = true)]
async fn the_b2bua_relays_a_reliable_provisional_and_its_prack() {
    let (_lab, srv, mut alice, mut bob) = b2bua_lab().await;
    let sdp = alice.sdp();
    let invite = alice
        .request("INVITE", &target("bob"), &["Supported: 100rel"], &sdp)
        .unwrap();
    alice.send(&invite, srv.addr());
    let leg_b = bob.expect_request("INVITE").await.unwrap();
    assert_eq!(
        header(&leg_b, "Supported").as_deref(),
        Some("100rel"),
        "B may answer reliably since A can PRACK"
    );
    bob.reply_with(&leg_b, 183, Some("bob"), &["Require: 100rel", "RSeq: 7"])
        .unwrap();
    let early = alice.expect_status(183).await.unwrap();
    assert_eq!(header(&early, "Require").as_deref(), Some("100rel"));
    let rseq_a = header(&early, "RSeq").unwrap();
    // B hears no PRACK before A sends one.
    bob.silent_for(Duration::from_millis(100)).await.unwrap();
    let mut dialog_a = Dialog::as_uac(&invite, &early);
    let rack = format!("RAck: {rseq_a} 1 INVITE");
    // An offer in the PRACK (RFC 3262 section 5): it crosses to B, and B's
    // answer comes back in the 200 for A's PRACK.
    let offer = alice.sdp().replace("4000", "4010");
    let prack = dialog_a
        .request(&mut alice, "PRACK", &[&rack], &offer)
        .unwrap();
    alice.send(&prack, dialog_a.next_hop().unwrap());
    let prack_b = bob.expect_request("PRACK").await.unwrap();
    assert_eq!(header(&prack_b, "RAck").as_deref(), Some("7 1 INVITE"));
    assert_eq!(prack_b.call_id(), leg_b.call_id());
    assert_eq!(prack_b.to_tag(), Some("bob"), "in B's early dialog");
    assert!(
        String::from_utf8_lossy(prack_b.body()).contains("4010"),
        "A's offer"
    );
    let prack_cseq = prack_b.cseq().unwrap().0;
    assert!(prack_cseq > 1, "above the INVITE's CSeq");
    let answer = bob.sdp().replace("4000", "4020");
    let ok_prack = bob.response(&prack_b, 200, None).unwrap();
    let mut e = ok_prack.edit();
    e.set_body(Some("application/sdp"), bytes::Bytes::from(answer))
        .unwrap();
    let ok_prack = sip_message::SipMessage::parse(e.to_bytes()).unwrap();
    bob.send(&ok_prack, prack_b.from);
    let ok_a = alice.expect_status(200).await.unwrap();
    assert_eq!(ok_a.cseq().unwrap().1.as_str(), "PRACK");
    assert!(
        String::from_utf8_lossy(ok_a.body()).contains("4020"),
        "B's answer"
    );
    // A's 183 is no longer retransmitted: only the answer comes now.
    bob.reply(&leg_b, 200, Some("bob")).unwrap();
    let ok = alice.expect_final().await.unwrap();
    assert_eq!(ok.status(), Some(200));
    let ack = alice.ack(&invite, &ok).unwrap();
    alice.send(&ack, srv.addr());
    bob.expect_request("ACK").await.unwrap();
    let mut dialog_a = Dialog::as_uac(&invite, &ok);
    dialog_a.cseq = 2;
    let bye = dialog_a.request(&mut alice, "BYE", &[], "").unwrap();
    alice.send(&bye, dialog_a.next_hop().unwrap());
    let bye_b = bob.expect_request("BYE").await.unwrap();
    assert!(
        bye_b.cseq().unwrap().0 > prack_cseq,
        "leg B's CSeq moves on"
    );
}

/// Answers a MESSAGE with what is pending on the session's legs:
/// `X-Pending: <A|B>:<uas|uac>:<METHOD>`, comma-separated, leg A (the
/// B2BUA's UAS leg) first.
async fn report_pending(cx: Context<Bridge>, req: IncomingRequest) -> Result<(), AppError> {
    let mut legs = cx.b2bua_legs();
    legs.sort_by_key(|l| l.role != sip_app::DialogRole::Uas);
    let mut seen = Vec::new();
    for (name, leg) in ["A", "B"].iter().zip(&legs) {
        for (mode, m) in [(UaMode::Uas, "uas"), (UaMode::Uac, "uac")] {
            for p in cx.pending_messages(&leg.call_id, mode) {
                let method = p
                    .method()
                    .map(|x| x.as_str().to_owned())
                    .unwrap_or_default();
                seen.push(format!("{name}:{m}:{method}"));
            }
        }
    }
    let list = if seen.is_empty() {
        "none".to_owned()
    } else {
        seen.join(",")
    };
    let response = req.response(200, None)?.header("X-Pending", &list);
    req.send(response, 200).await
}

#[tokio::test(start_paused = true)]
async fn a_relay_waiting_for_the_other_leg_holds_nothing_up_and_is_listed_pending() {
    let lab = Lab::new();
    let mut bob = lab.phone("bob", "10.0.1.1:5060").unwrap();
    let app = SipRouter::new()
        .invite(bridge)
        .on("MESSAGE", report_pending)
        .with_state("bridge", Bridge { callee: bob.uri() });
    let srv = server(&lab, AppRouter::new().route(Rule::any(), app)).await;
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let invite = alice.invite(&target("bob")).unwrap();
    alice.send(&invite, srv.addr());
    let leg_b = bob.expect_request("INVITE").await.unwrap();
    let ok_b = bob.reply(&leg_b, 200, Some("bob")).unwrap();
    let ok_a = alice.expect_status(200).await.unwrap();
    let ack = alice.ack(&invite, &ok_a).unwrap();
    alice.send(&ack, srv.addr());
    bob.expect_request("ACK").await.unwrap();
    let mut dialog_a = Dialog::as_uac(&invite, &ok_a);
    let mut dialog_b = Dialog::as_uas(&leg_b, &ok_b);

    // On an idle call only the MESSAGE being handled is pending.
    let msg = dialog_b.request(&mut bob, "MESSAGE", &[], "").unwrap();
    bob.send(&msg, dialog_b.next_hop().unwrap());
    let idle = bob.expect_status(200).await.unwrap();
    assert_eq!(header(&idle, "X-Pending").as_deref(), Some("B:uas:MESSAGE"));

    // Alice's INFO is relayed to bob, who does not answer yet: it is
    // pending on both legs, and bob's MESSAGE meanwhile is served at once
    // (the relay does not hold the session while bob thinks).
    let info = dialog_a.request(&mut alice, "INFO", &[], "").unwrap();
    alice.send(&info, dialog_a.next_hop().unwrap());
    let info_b = bob.expect_request("INFO").await.unwrap();
    let asked = Instant::now();
    let msg = dialog_b.request(&mut bob, "MESSAGE", &[], "").unwrap();
    bob.send(&msg, dialog_b.next_hop().unwrap());
    let busy = bob.expect_status(200).await.unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "MESSAGE waited {:?}",
        asked.elapsed()
    );
    assert_eq!(
        header(&busy, "X-Pending").as_deref(),
        Some("A:uas:INFO,B:uas:MESSAGE,B:uac:INFO")
    );
    bob.reply(&info_b, 200, None).unwrap();
    assert_eq!(alice.expect_final().await.unwrap().status(), Some(200));

    // A BYE from bob while alice's next INFO waits for bob: alice gets the
    // BYE first, not after the INFO's 32 s timeout.
    let info = dialog_a.request(&mut alice, "INFO", &[], "").unwrap();
    alice.send(&info, dialog_a.next_hop().unwrap());
    let info_b = bob.expect_request("INFO").await.unwrap();
    let asked = Instant::now();
    let bye = dialog_b.request(&mut bob, "BYE", &[], "").unwrap();
    bob.send(&bye, dialog_b.next_hop().unwrap());
    let bye_a = alice.expect_request("BYE").await.unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "BYE waited {:?}",
        asked.elapsed()
    );
    alice.reply(&bye_a, 200, None).unwrap();
    bob.expect_status(200).await.unwrap();
    // Bob's late answer to the INFO still reaches alice.
    bob.reply(&info_b, 481, None).unwrap();
    assert_eq!(alice.expect_final().await.unwrap().status(), Some(481));
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(
        srv.engine().live_sessions(),
        0,
        "the call's session is gone"
    );
}

#[tokio::test(start_paused = true)]
async fn the_b2bua_pracks_leg_b_itself_when_leg_a_cannot() {
    let (_lab, srv, mut alice, mut bob) = b2bua_lab().await;
    let invite = alice.invite(&target("bob")).unwrap();
    alice.send(&invite, srv.addr());
    let leg_b = bob.expect_request("INVITE").await.unwrap();
    assert!(header(&leg_b, "Supported").is_none());
    // B insists (Require) anyway: the B2BUA acknowledges it.
    bob.reply_with(&leg_b, 180, Some("bob"), &["Require: 100rel", "RSeq: 1"])
        .unwrap();
    let ringing = alice.expect_status(180).await.unwrap();
    assert!(header(&ringing, "RSeq").is_none(), "unreliable towards A");
    let prack_b = bob.expect_request("PRACK").await.unwrap();
    assert_eq!(header(&prack_b, "RAck").as_deref(), Some("1 1 INVITE"));
    bob.reply(&prack_b, 200, None).unwrap();
    bob.reply(&leg_b, 200, Some("bob")).unwrap();
    assert_eq!(alice.expect_final().await.unwrap().status(), Some(200));
}

#[tokio::test(start_paused = true)]
async fn a_cancel_on_leg_a_cancels_leg_b() {
    let (_lab, srv, mut alice, mut bob) = b2bua_lab().await;
    let invite = alice.invite(&target("bob")).unwrap();
    alice.send(&invite, srv.addr());
    let leg_b = bob.expect_request("INVITE").await.unwrap();
    bob.reply(&leg_b, 180, Some("bob")).unwrap();
    alice.expect_status(180).await.unwrap();
    let cancel = format!(
        "CANCEL {ruri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nFrom: {from}\r\n\
         To: {to}\r\nCall-ID: {cid}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
        ruri = invite.request_uri_str().unwrap(),
        via = header(&invite, "Via").unwrap(),
        from = header(&invite, "From").unwrap(),
        to = header(&invite, "To").unwrap(),
        cid = invite.call_id().unwrap(),
    );
    alice.send_raw(cancel.as_bytes(), srv.addr());
    alice.expect_status(200).await.unwrap();
    let cancel_b = bob.expect_request("CANCEL").await.unwrap();
    bob.reply(&cancel_b, 200, None).unwrap();
    bob.reply(&leg_b, 487, Some("bob")).unwrap();
    let fin = alice.expect_final().await.unwrap();
    assert_eq!(fin.status(), Some(487));
}

// ---------------------------------------------------------------------------
// Timers on the virtual clock

struct Alarm {
    fired: Arc<Mutex<Vec<(String, Duration)>>>,
    start: Instant,
}

async fn alarm_invite(cx: Context<Alarm>, req: IncomingRequest) -> Result<(), AppError> {
    cx.set_timer("once", Duration::from_secs(30), None, serde_json::json!(1));
    cx.set_timer(
        "every",
        Duration::from_secs(10),
        Some(Duration::from_secs(10)),
        serde_json::json!(2),
    );
    cx.set_timer("never", Duration::from_secs(20), None, serde_json::json!(3));
    req.accept().await
}

async fn alarm_info(cx: Context<Alarm>, req: IncomingRequest) -> Result<(), AppError> {
    cx.cancel_timer("never");
    req.accept().await
}

async fn alarm_fired(cx: Context<Alarm>, t: TimerEvent) -> Result<(), AppError> {
    let at = cx.state().start.elapsed();
    cx.state().fired.lock().unwrap().push((t.id.clone(), at));
    if t.id == "every" && at >= Duration::from_secs(40) {
        cx.cancel_timer("every");
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn timers_fire_on_time_repeat_and_stay_cancelled() {
    let lab = Lab::new();
    let fired = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let app = SipRouter::new()
        .invite(alarm_invite)
        .on("INFO", alarm_info)
        .timer(alarm_fired)
        .with_state(
            "alarm",
            Alarm {
                fired: Arc::clone(&fired),
                start,
            },
        );
    let srv = server(&lab, AppRouter::new().route(Rule::any(), app)).await;
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let (invite, ok) = call(&mut alice, &srv, "alarm").await;
    let mut dialog = Dialog::as_uac(&invite, &ok);
    let info = dialog.request(&mut alice, "INFO", &[], "").unwrap();
    alice.send(&info, dialog.next_hop().unwrap());
    alice.expect_status(200).await.unwrap();
    tokio::time::sleep(Duration::from_secs(120)).await;
    let mut fired = fired.lock().unwrap().clone();
    fired.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    let ids: Vec<&str> = fired.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["every", "every", "every", "once", "every"],
        "10, 20, 30, 30, 40 s; the cancelled one never: {fired:?}"
    );
    for ((_, at), want) in fired.iter().zip([10, 20, 30, 30, 40]) {
        let want = Duration::from_secs(want);
        assert!(
            *at >= want && *at < want + Duration::from_millis(50),
            "due at {want:?}, fired at {at:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Composition

struct Step {
    name: &'static str,
    trail: Arc<Mutex<Vec<&'static str>>>,
    last: bool,
}

async fn step(cx: Context<Step>, req: IncomingRequest) -> Result<(), AppError> {
    cx.state().trail.lock().unwrap().push(cx.state().name);
    if cx.state().last {
        return req.accept().await;
    }
    let uri = req.request().request_uri_str().unwrap_or("").to_owned();
    req.proxy_to(&uri).await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_dar_chain_runs_its_applications_in_the_files_order() {
    let trail = Arc::new(Mutex::new(Vec::new()));
    let app = |name: &'static str, last: bool| {
        SipRouter::new().invite(step).with_state(
            name,
            Step {
                name,
                trail: Arc::clone(&trail),
                last,
            },
        )
    };
    // Listed out of order: the order field (last) decides.
    let dar = Dar::parse(
        "INVITE: (\"answer\", \"DAR:To\", \"TERMINATING\", \"\", \"NO_ROUTE\", \"2\"), \
         (\"screen\", \"DAR:From\", \"ORIGINATING\", \"\", \"NO_ROUTE\", \"0\"), \
         (\"record\", \"DAR:From\", \"NEUTRAL\", \"\", \"NO_ROUTE\", \"1\")\n",
    )
    .unwrap();
    let apps = [
        app("answer", true),
        app("screen", false),
        app("record", false),
    ];
    let router = AppRouter::from_dar(&dar, &apps).unwrap();
    let lab = Lab::new();
    let srv = server(&lab, router).await;
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let (_, ok) = call(&mut alice, &srv, "someone").await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(*trail.lock().unwrap(), ["screen", "record", "answer"]);
}

// ---------------------------------------------------------------------------
// REFER and Replaces (RFC 3515, RFC 3891): requests the application sends
// inside its dialogs

struct Pbx {
    log: Arc<Mutex<Vec<String>>>,
}

async fn pbx_invite(cx: Context<Pbx>, req: IncomingRequest) -> Result<(), AppError> {
    let replaces = req.replaces();
    if let Some(join) = req.join() {
        let legs = cx.b2bua_legs().len();
        req.accept().await?;
        cx.state()
            .log
            .lock()
            .unwrap()
            .push(format!("joined {} ({legs} dialog before)", join.call_id));
        return Ok(());
    }
    req.accept().await?;
    if let Some(old) = replaces {
        let status = cx.send_in_dialog(&old.call_id, "BYE", &[], None).await?;
        cx.state()
            .log
            .lock()
            .unwrap()
            .push(format!("replaced {status}"));
    }
    Ok(())
}

async fn pbx_refer(cx: Context<Pbx>, req: IncomingRequest) -> Result<(), AppError> {
    let call_id = req.request().call_id().unwrap_or("").to_owned();
    req.respond(202, None).await?;
    let frag = |s: &'static str| Some(("message/sipfrag", bytes::Bytes::from_static(s.as_bytes())));
    let first = cx
        .send_in_dialog(
            &call_id,
            "NOTIFY",
            &[
                ("Event", "refer"),
                ("Subscription-State", "active;expires=60"),
            ],
            frag("SIP/2.0 100 Trying"),
        )
        .await?;
    let last = cx
        .send_in_dialog(
            &call_id,
            "NOTIFY",
            &[
                ("Event", "refer"),
                ("Subscription-State", "terminated;reason=noresource"),
            ],
            frag("SIP/2.0 200 OK"),
        )
        .await?;
    cx.state()
        .log
        .lock()
        .unwrap()
        .push(format!("notified {first} {last}"));
    Ok(())
}

fn pbx(log: &Arc<Mutex<Vec<String>>>) -> AppRouter {
    let app = SipRouter::new()
        .invite(pbx_invite)
        .on("REFER", pbx_refer)
        .bye(|_cx: Context<Pbx>, req: IncomingRequest| req.accept())
        .with_state(
            "pbx",
            Pbx {
                log: Arc::clone(log),
            },
        );
    AppRouter::new().route(Rule::any(), app)
}

#[tokio::test(start_paused = true)]
async fn a_refer_is_accepted_and_its_progress_notified_in_the_dialog() {
    let lab = Lab::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let srv = server(&lab, pbx(&log)).await;
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let (invite, ok) = call(&mut alice, &srv, "desk").await;
    let mut dialog = Dialog::as_uac(&invite, &ok);
    let refer = dialog
        .request(&mut alice, "REFER", &["Refer-To: <sip:carol@10.0.0.9>"], "")
        .unwrap();
    alice.send(&refer, dialog.next_hop().unwrap());
    alice.expect_status(202).await.unwrap();
    let mut cseqs = Vec::new();
    for (state, frag) in [("active", "100 Trying"), ("terminated", "200 OK")] {
        let notify = alice.expect_request("NOTIFY").await.unwrap();
        assert_eq!(
            notify.request_uri_str(),
            Some(alice.uri().as_str()),
            "to our Contact"
        );
        assert_eq!(notify.call_id(), invite.call_id());
        assert_eq!(notify.from_tag(), ok.to_tag(), "the container's tag");
        assert_eq!(notify.to_tag(), invite.from_tag());
        assert_eq!(header(&notify, "Event").as_deref(), Some("refer"));
        assert!(
            header(&notify, "Subscription-State")
                .unwrap()
                .starts_with(state)
        );
        assert!(String::from_utf8_lossy(notify.body()).contains(frag));
        cseqs.push(notify.cseq().unwrap().0);
        alice.reply(&notify, 200, None).unwrap();
    }
    assert!(cseqs[1] > cseqs[0], "CSeq grows: {cseqs:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(*log.lock().unwrap(), ["notified 200 200"]);
}

#[tokio::test(start_paused = true)]
async fn an_invite_with_replaces_joins_the_replaced_calls_session() {
    let lab = Lab::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let srv = server(&lab, pbx(&log)).await;
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let (invite, ok) = call(&mut alice, &srv, "desk").await;
    assert_eq!(srv.engine().live_sessions(), 1);
    // Bob takes over alice's call (an attended transfer's last step).
    let mut bob = lab.phone("bob", "10.0.0.3:5060").unwrap();
    let replaces = format!(
        "Replaces: {};to-tag={};from-tag={}",
        invite.call_id().unwrap(),
        ok.to_tag().unwrap(),
        invite.from_tag().unwrap()
    );
    let sdp = bob.sdp();
    let take_over = bob
        .request("INVITE", &target("desk"), &[&replaces], &sdp)
        .unwrap();
    bob.send(&take_over, srv.addr());
    let bob_ok = bob.expect_final().await.unwrap();
    assert_eq!(bob_ok.status(), Some(200));
    let bye = alice.expect_request("BYE").await.unwrap();
    assert_eq!(bye.call_id(), invite.call_id(), "the replaced call ends");
    alice.reply(&bye, 200, None).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(*log.lock().unwrap(), ["replaced 200"]);
    assert_eq!(
        srv.engine().live_sessions(),
        1,
        "one session for both calls"
    );
}

#[tokio::test(start_paused = true)]
async fn early_only_replaces_of_a_confirmed_call_gets_486() {
    let lab = Lab::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let srv = server(&lab, pbx(&log)).await;
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let (invite, ok) = call(&mut alice, &srv, "desk").await;
    let mut bob = lab.phone("bob", "10.0.0.3:5060").unwrap();
    let replaces = format!(
        "Replaces: {};to-tag={};from-tag={};early-only",
        invite.call_id().unwrap(),
        ok.to_tag().unwrap(),
        invite.from_tag().unwrap()
    );
    let sdp = bob.sdp();
    let take_over = bob
        .request("INVITE", &target("desk"), &[&replaces], &sdp)
        .unwrap();
    bob.send(&take_over, srv.addr());
    let r = bob.expect_final().await.unwrap();
    assert_eq!(r.status(), Some(486), "{:?}", r.reason());
    alice
        .silent_for(Duration::from_secs(1))
        .await
        .expect("alice's call goes on");
}

#[tokio::test(start_paused = true)]
async fn replaces_naming_no_dialog_gets_481() {
    let lab = Lab::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let srv = server(&lab, pbx(&log)).await;
    let mut bob = lab.phone("bob", "10.0.0.3:5060").unwrap();
    let sdp = bob.sdp();
    let invite = bob
        .request(
            "INVITE",
            &target("desk"),
            &["Replaces: nosuchcall;to-tag=a;from-tag=b"],
            &sdp,
        )
        .unwrap();
    bob.send(&invite, srv.addr());
    let r = bob.expect_final().await.unwrap();
    assert_eq!(r.status(), Some(481));
    assert_eq!(
        r.reason(),
        Some("Call/Transaction Does Not Exist (no dialog to replace)")
    );
    assert_eq!(srv.engine().live_sessions(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_join_is_delivered_in_the_joined_calls_session_or_refused_as_rfc_3911_says() {
    let lab = Lab::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let srv = server(&lab, pbx(&log)).await;
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let (invite, ok) = call(&mut alice, &srv, "desk").await;
    let names =
        |to: &str, from: &str| format!("{};to-tag={to};from-tag={from}", invite.call_id().unwrap());
    let (to, from) = (ok.to_tag().unwrap(), invite.from_tag().unwrap());
    let ask = |user: &str, addr: &str, extra: &[String]| {
        let mut p = lab.phone(user, addr).unwrap();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let sdp = p.sdp();
        let inv = p.request("INVITE", &target("desk"), &extra, &sdp).unwrap();
        p.send(&inv, srv.addr());
        p
    };

    // Bob barges in: the INVITE reaches the pbx in alice's call's session.
    let mut bob = ask(
        "bob",
        "10.0.0.3:5060",
        &[format!("Join: {}", names(to, from))],
    );
    assert_eq!(bob.expect_final().await.unwrap().status(), Some(200));
    assert_eq!(srv.engine().live_sessions(), 1, "one session for both");
    alice
        .silent_for(Duration::from_secs(1))
        .await
        .expect("a join leaves the joined call up");
    assert_eq!(
        *log.lock().unwrap(),
        [format!(
            "joined {} (1 dialog before)",
            invite.call_id().unwrap()
        )]
    );

    // Join with Replaces (RFC 3911 §4: 400), tags that match nothing
    // (481).
    let mut carol = ask(
        "carol",
        "10.0.0.4:5060",
        &[
            format!("Join: {}", names(to, from)),
            format!("Replaces: {}", names(to, from)),
        ],
    );
    let r = carol.expect_final().await.unwrap();
    assert_eq!(
        (r.status(), r.reason()),
        (
            Some(400),
            Some("Bad Request (more than one Replaces or Join)")
        )
    );
    let mut dave = ask(
        "dave",
        "10.0.0.5:5060",
        &[format!("Join: {}", names("x", from))],
    );
    let r = dave.expect_final().await.unwrap();
    assert_eq!(
        (r.status(), r.reason()),
        (
            Some(481),
            Some("Call/Transaction Does Not Exist (no dialog to join)")
        )
    );

    // Alice hangs up; her call's dialog has ended (bob's keeps the
    // session): a join now gets 603 (RFC 3911 §4).
    let mut dialog = Dialog::as_uac(&invite, &ok);
    let bye = dialog.request(&mut alice, "BYE", &[], "").unwrap();
    alice.send(&bye, dialog.next_hop().unwrap());
    alice.expect_status(200).await.unwrap();
    let mut erin = ask(
        "erin",
        "10.0.0.6:5060",
        &[format!("Join: {}", names(to, from))],
    );
    let r = erin.expect_final().await.unwrap();
    assert_eq!(
        (r.status(), r.reason()),
        (Some(603), Some("Declined (the dialog to join has ended)"))
    );
    assert_eq!(srv.engine().live_sessions(), 1);
}

#[tokio::test(start_paused = true)]
async fn replaces_naming_a_dialog_the_container_only_proxies_is_forwarded() {
    // An attended transfer through the proxy: carol's INVITE with
    // Replaces names alice's call with bob, which the container only
    // record-routes; bob, who has the dialog, decides.
    let (lab, srv, mut alice, mut bobs) = proxy_lab(1, true).await;
    let bob = &mut bobs[0];
    let invite = alice.invite(&target("bob")).unwrap();
    alice.send(&invite, srv.addr());
    let got = bob.expect_request("INVITE").await.unwrap();
    bob.reply(&got, 200, Some("bob")).unwrap();
    let ok = alice.expect_status(200).await.unwrap();
    let ack = alice.ack(&invite, &ok).unwrap();
    alice.send(&ack, srv.addr());
    bob.expect_request("ACK").await.unwrap();
    let mut carol = lab.phone("carol", "10.0.0.4:5060").unwrap();
    let replaces = format!(
        "Replaces: {};to-tag=bob;from-tag={}",
        invite.call_id().unwrap(),
        invite.from_tag().unwrap()
    );
    let sdp = carol.sdp();
    let take_over = carol
        .request("INVITE", &target("bob"), &[&replaces], &sdp)
        .unwrap();
    carol.send(&take_over, srv.addr());
    let forwarded = bob.expect_request("INVITE").await.unwrap();
    assert_eq!(
        header(&forwarded, "Replaces"),
        Some(replaces["Replaces: ".len()..].to_owned())
    );
    bob.reply(&forwarded, 200, Some("bob2")).unwrap();
    assert_eq!(carol.expect_final().await.unwrap().status(), Some(200));
}

// ---------------------------------------------------------------------------
// A subscription (RFC 6665) kept by the application: SUBSCRIBE answered
// with its expiry, NOTIFYs in the subscription's dialog, and a timer that
// ends it with a final NOTIFY when it expires.

struct Presence {
    log: Arc<Mutex<Vec<String>>>,
}

async fn presence_subscribe(cx: Context<Presence>, req: IncomingRequest) -> Result<(), AppError> {
    let call_id = req.request().call_id().unwrap_or("").to_owned();
    let expires: u64 = sip_testkit::lab::header(req.request(), "Expires")
        .and_then(|e| e.trim().parse().ok())
        .unwrap_or(3600)
        .min(60);
    let ok = req
        .response(200, None)?
        .header("Expires", &expires.to_string());
    req.send(ok, 200).await?;
    cx.session().set("subscription", &call_id)?;
    cx.set_timer(
        "expiry",
        Duration::from_secs(expires),
        None,
        serde_json::json!(call_id),
    );
    let state = format!("active;expires={expires}");
    let open = Some((
        "application/pidf+xml",
        bytes::Bytes::from_static(b"<open/>"),
    ));
    let s = cx
        .send_in_dialog(
            &call_id,
            "NOTIFY",
            &[("Event", "presence"), ("Subscription-State", &state)],
            open,
        )
        .await?;
    cx.state().log.lock().unwrap().push(format!("notify {s}"));
    Ok(())
}

async fn presence_expired(cx: Context<Presence>, t: TimerEvent) -> Result<(), AppError> {
    let call_id = t.payload.as_str().unwrap_or("").to_owned();
    let s = cx
        .send_in_dialog(
            &call_id,
            "NOTIFY",
            &[
                ("Event", "presence"),
                ("Subscription-State", "terminated;reason=timeout"),
            ],
            None,
        )
        .await?;
    cx.state().log.lock().unwrap().push(format!("expired {s}"));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_subscription_is_notified_and_ends_when_it_expires() {
    let lab = Lab::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let app = SipRouter::new()
        .on("SUBSCRIBE", presence_subscribe)
        .timer(presence_expired)
        .with_state(
            "presence",
            Presence {
                log: Arc::clone(&log),
            },
        );
    let srv = server(&lab, AppRouter::new().route(Rule::any(), app)).await;
    let mut watcher = lab.phone("watcher", "10.0.0.2:5060").unwrap();
    let sub = watcher
        .request(
            "SUBSCRIBE",
            &target("alice"),
            &["Event: presence", "Expires: 30"],
            "",
        )
        .unwrap();
    let start = Instant::now();
    watcher.send(&sub, srv.addr());
    let ok = watcher.expect_status(200).await.unwrap();
    assert_eq!(header(&ok, "Expires").as_deref(), Some("30"));
    let first = watcher.expect_request("NOTIFY").await.unwrap();
    assert_eq!(
        first.call_id(),
        sub.call_id(),
        "in the subscription's dialog"
    );
    assert_eq!(first.from_tag(), ok.to_tag());
    assert_eq!(
        header(&first, "Subscription-State").as_deref(),
        Some("active;expires=30")
    );
    watcher.reply(&first, 200, None).unwrap();
    let last = watcher.expect_request("NOTIFY").await.unwrap();
    watcher.reply(&last, 200, None).unwrap();
    let at = start.elapsed();
    assert!(
        at >= Duration::from_secs(30) && at < Duration::from_millis(30_100),
        "the subscription ends at its expiry, virtual time: {at:?}"
    );
    assert_eq!(
        header(&last, "Subscription-State").as_deref(),
        Some("terminated;reason=timeout")
    );
    assert!(last.cseq().unwrap().0 > first.cseq().unwrap().0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(*log.lock().unwrap(), ["notify 200", "expired 200"]);
}
