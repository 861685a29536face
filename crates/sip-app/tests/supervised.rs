#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The supervised proxy (JSR 289 supervised mode): the application sees a
//! branch's final error response and sends the call on to another target
//! (busy -> voicemail). In process (`sip_testkit::lab`), on tokio's paused
//! clock.

use std::sync::{Arc, Mutex};

use sip_app::{AppError, AppRouter, Context, IncomingRequest, ProxyOptions, Rule, SipRouter};
use sip_testkit::lab::{Lab, header};

struct Forwarder {
    first: String,
    voicemail: String,
    seen: Arc<Mutex<Vec<(String, u16)>>>,
}

async fn on_invite(cx: Context<Forwarder>, req: IncomingRequest) -> Result<(), AppError> {
    let mut options = ProxyOptions::to([cx.state().first.clone()]);
    let voicemail = cx.state().voicemail.clone();
    let seen = Arc::clone(&cx.state().seen);
    options.supervisor = Some(Arc::new(move |target, response| {
        let status = response.status().unwrap_or(0);
        seen.lock().unwrap().push((target.to_owned(), status));
        if status == 486 {
            vec![voicemail.clone()]
        } else {
            Vec::new()
        }
    }));
    let outcome = req.proxy(options).await?;
    cx.session().set("outcome", &outcome.status)?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_supervisor_sends_a_busy_call_to_voicemail() {
    let lab = Lab::new();
    let mut bob = lab.phone("bob", "10.0.1.1:5060").unwrap();
    let mut vm = lab.phone("vm", "10.0.1.2:5060").unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = SipRouter::new().invite(on_invite).with_state(
        "forwarder",
        Forwarder {
            first: bob.uri(),
            voicemail: vm.uri(),
            seen: Arc::clone(&seen),
        },
    );
    let srv = lab
        .engine("10.0.0.1:5060", AppRouter::new().route(Rule::any(), app))
        .await
        .unwrap();
    let mut alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
    let invite = alice.invite("sip:bob@10.0.0.1:5060").unwrap();
    alice.send(&invite, srv.addr());

    let to_bob = bob.expect_request("INVITE").await.unwrap();
    bob.reply(&to_bob, 486, Some("bob")).unwrap();
    // The proxy ACKs the 486 itself (§17.1.1.3), then tries voicemail.
    bob.expect_request("ACK").await.unwrap();
    let to_vm = vm.expect_request("INVITE").await.unwrap();
    assert_eq!(to_vm.request_uri_str(), Some(vm.uri().as_str()));
    vm.reply(&to_vm, 200, Some("vm")).unwrap();

    let fin = alice.expect_final().await.unwrap();
    assert_eq!(fin.status(), Some(200), "the voicemail answered");
    let contact = header(&fin, "Contact").unwrap();
    assert!(contact.contains("10.0.1.2"), "{contact}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [(bob.uri(), 486)],
        "the supervisor saw the busy branch"
    );
}
