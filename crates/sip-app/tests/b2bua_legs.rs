#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! B2BUA legs as the application sees them (JSR 289 B2buaHelper): listed
//! with their state and link, and unlinked: after `unlink_leg`, A's BYE is
//! answered by the container and ends only leg A; leg B gets no BYE. In
//! process (`sip_testkit::lab`), on tokio's paused clock.

use std::time::Duration;

use sip_app::{AppError, AppRouter, Context, IncomingRequest, Rule, SipRouter};
use sip_testkit::lab::{Dialog, Lab};
use tokio::sync::mpsc;

struct Bridge {
    callee: String,
    legs: mpsc::UnboundedSender<usize>,
}

async fn on_invite(cx: Context<Bridge>, req: IncomingRequest) -> Result<(), AppError> {
    let target = cx.state().callee.clone();
    req.b2bua_to(&target).await?;
    Ok(())
}

async fn on_info(cx: Context<Bridge>, req: IncomingRequest) -> Result<(), AppError> {
    let legs = cx.b2bua_legs();
    let _ = cx.state().legs.send(legs.len());
    let call_id = req.request().call_id().unwrap_or("").to_owned();
    assert!(cx.unlink_leg(&call_id), "the leg was linked");
    assert!(
        cx.b2bua_legs()
            .iter()
            .all(|l| l.ua.as_ref().unwrap().link.is_none())
    );
    req.accept().await
}

#[tokio::test(start_paused = true)]
async fn an_unlinked_leg_ends_alone() {
    let lab = Lab::new();
    let mut bob = lab.phone("b", "10.0.1.1:5060").unwrap();
    let (legs_tx, mut legs_rx) = mpsc::unbounded_channel();
    let app = SipRouter::new().invite(on_invite).info(on_info).with_state(
        "bridge",
        Bridge {
            callee: bob.uri(),
            legs: legs_tx,
        },
    );
    let srv = lab
        .engine("10.0.0.1:5060", AppRouter::new().route(Rule::any(), app))
        .await
        .unwrap();
    let mut alice = lab.phone("a", "10.0.0.2:5060").unwrap();
    let invite = alice.invite("sip:b@10.0.0.1:5060").unwrap();
    alice.send(&invite, srv.addr());
    let leg_b = bob.expect_request("INVITE").await.unwrap();
    bob.reply(&leg_b, 200, Some("bee")).unwrap();
    let ok = alice.expect_status(200).await.unwrap();
    let ack = alice.ack(&invite, &ok).unwrap();
    let mut dialog = Dialog::as_uac(&invite, &ok);
    let hop = dialog.next_hop().unwrap();
    alice.send(&ack, hop);
    bob.expect_request("ACK").await.unwrap();

    let info = dialog.request(&mut alice, "INFO", &[], "").unwrap();
    alice.send(&info, hop);
    assert_eq!(alice.expect_final().await.unwrap().status(), Some(200));
    assert_eq!(legs_rx.recv().await, Some(2), "two legs listed");

    let bye = dialog.request(&mut alice, "BYE", &[], "").unwrap();
    alice.send(&bye, hop);
    assert_eq!(
        alice.expect_final().await.unwrap().status(),
        Some(200),
        "leg A's BYE answered by the container"
    );
    // Leg B is left alone: nothing reaches it in a minute (virtual time).
    bob.silent_for(Duration::from_secs(60)).await.unwrap();
}
