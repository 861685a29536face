//! What a held call costs in live heap, in process (`sip_testkit::lab`,
//! dhat's counting allocator, a virtual clock): 1,000 calls through the
//! proxy application and 1,000 through the B2BUA are set up and held;
//! once their transactions have ended (64*T1 later, in virtual time) the
//! heap the engine still holds for them is divided by the calls. Issue 4's
//! goal is under 4 KiB per held call. (The RSS a whole process shows is
//! in docs/BENCHMARKS.md; this is the engine's own share, without the
//! allocator's retention.)
//!
//! One test in this file: dhat counts the whole process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use sip_app::{AppError, AppRouter, Context, IncomingRequest, ProxyOptions, Rule, SipRouter};
use sip_testkit::lab::{Dialog, Lab, LabEngine, Phone};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const CALLS: usize = 1000;
const SERVER: &str = "10.0.0.1:5060";

struct Target(String);

async fn proxy(cx: Context<Target>, req: IncomingRequest) -> Result<(), AppError> {
    let target = cx.state().0.clone();
    req.proxy(ProxyOptions::to([target])).await?;
    Ok(())
}

async fn bridge(cx: Context<Target>, req: IncomingRequest) -> Result<(), AppError> {
    let target = cx.state().0.clone();
    req.b2bua_to(&target).await?;
    Ok(())
}

/// Sets up CALLS calls from alice to bob through the engine and leaves
/// them up; returns the live heap bytes they hold once their
/// transactions are over, per call.
async fn held_bytes_per_call(b2bua: bool) -> u64 {
    let lab = Lab::new();
    let mut bob = lab.phone("bob", "10.0.1.1:5060").unwrap();
    let app = if b2bua {
        SipRouter::new()
            .invite(bridge)
            .with_state("bridge", Target(bob.uri()))
    } else {
        SipRouter::new()
            .invite(proxy)
            .with_state("proxy", Target(bob.uri()))
    };
    let srv: LabEngine = lab
        .engine(SERVER, AppRouter::new().route(Rule::any(), app))
        .await
        .unwrap();
    let mut alice: Phone = lab.phone("alice", "10.0.0.2:5060").unwrap();
    // Warm up with as many calls, hung up: the maps and queues that grow
    // with the load keep their capacity, so what is measured next is what
    // each held call adds.
    let mut dialogs = Vec::new();
    for _ in 0..CALLS {
        dialogs.push(call(&mut alice, &mut bob, &srv).await);
    }
    for mut d in dialogs {
        let bye = d.request(&mut alice, "BYE", &[], "").unwrap();
        alice.send(&bye, d.next_hop().unwrap());
        let bye_in = bob.expect_request("BYE").await.unwrap();
        bob.reply(&bye_in, 200, None).unwrap();
        alice.expect_status(200).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(
        srv.engine().live_sessions(),
        0,
        "the warm-up calls are gone"
    );
    let before = dhat::HeapStats::get().curr_bytes as u64;
    for _ in 0..CALLS {
        call(&mut alice, &mut bob, &srv).await;
    }
    // Every INVITE transaction is over after 64*T1 = 32 s.
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(srv.engine().live_sessions(), CALLS, "every call is held");
    let after = dhat::HeapStats::get().curr_bytes as u64;
    after.saturating_sub(before) / CALLS as u64
}

async fn call(alice: &mut Phone, bob: &mut Phone, srv: &LabEngine) -> Dialog {
    let invite = alice.invite(&format!("sip:bob@{SERVER}")).unwrap();
    alice.send(&invite, srv.addr());
    let inv = bob.expect_request("INVITE").await.unwrap();
    let _ = bob.reply(&inv, 200, Some("bob")).unwrap();
    let ok = alice.expect_final().await.unwrap();
    assert_eq!(ok.status(), Some(200));
    let ack = alice.ack(&invite, &ok).unwrap();
    let dialog = Dialog::as_uac(&invite, &ok);
    alice.send(&ack, dialog.next_hop().unwrap());
    // The ACK reaches bob when the engine relays it (proxy) or sends its
    // own (B2BUA).
    bob.expect_request("ACK").await.unwrap();
    dialog
}

#[tokio::test(start_paused = true)]
async fn a_held_call_costs_under_4_kib() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let proxy = held_bytes_per_call(false).await;
    let b2bua = held_bytes_per_call(true).await;
    println!("live heap per held call: proxy {proxy} B, B2BUA {b2bua} B");
    assert!(proxy < 4096, "proxy: {proxy} bytes per held call");
    assert!(b2bua < 4096, "B2BUA: {b2bua} bytes per held call");
    // Regression guards, a third above today's figures (about 0.9 and
    // 1.9 KiB): a held call that grows by a request's worth (answered
    // requests' room kept in the session was 1.2 KiB) fails here.
    assert!(
        proxy < 1280,
        "proxy: {proxy} bytes per held call (was ~900)"
    );
    assert!(
        b2bua < 2560,
        "B2BUA: {b2bua} bytes per held call (was ~1,900)"
    );
}
