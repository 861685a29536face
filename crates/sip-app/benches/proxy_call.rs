//! The proxy application's cost per call, in process: the engine, its
//! stack and transaction layer on an in-process network
//! (`sip_testkit::lab`), no socket, so the numbers are the container's
//! user-space work (and the two scripted phones') without the kernel's.
//!
//! `cargo bench -p sip-app --bench proxy_call`
//!
//! * `proxy_call`: alice calls bob through a record-routing proxy
//!   application: INVITE, 100, 180, 200, ACK, BYE, 200, as SIPp's UAC and
//!   UAS do in `../shared/bench/`. One iteration is one whole call.
//!
//! The phones parse and build their messages too; compare runs of this
//! bench with each other (A/B), and whole servers with SIPp
//! (docs/BENCHMARKS.md).
//!
//! With `PROXY_CALLS=N` in the environment the bench runs N calls and
//! exits without criterion: a fixed amount of work for
//! `valgrind --tool=callgrind`, whose instruction counts do not depend on
//! the machine's load (run two counts, N and 2N: the difference divided
//! by N is the cost of one call without the start-up).

// A benchmark fails loudly when its fixture does not build.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use criterion::{Criterion, criterion_group};
use sip_app::{AppError, AppRouter, Context, IncomingRequest, ProxyOptions, Rule, SipRouter};
use sip_testkit::lab::{Dialog, Lab, LabEngine, Phone};

/// The servers run on jemalloc (crates/switchboard/src/main.rs); so does
/// this bench.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const SERVER: &str = "10.0.0.1:5060";

struct Target(String);

async fn relay(cx: Context<Target>, req: IncomingRequest) -> Result<(), AppError> {
    req.proxy(ProxyOptions::to([cx.state().0.clone()])).await?;
    Ok(())
}

async fn one_call(alice: &mut Phone, bob: &mut Phone, srv: &LabEngine) {
    let invite = alice.invite(&format!("sip:bob@{SERVER}")).unwrap();
    alice.send(&invite, srv.addr());
    let got = bob.expect_request("INVITE").await.unwrap();
    bob.reply(&got, 180, Some("bob")).unwrap();
    bob.reply(&got, 200, Some("bob")).unwrap();
    alice.expect_status(180).await.unwrap();
    let ok = alice.expect_status(200).await.unwrap();
    let ack = alice.ack(&invite, &ok).unwrap();
    let mut dialog = Dialog::as_uac(&invite, &ok);
    alice.send(&ack, srv.addr());
    bob.expect_request("ACK").await.unwrap();
    let bye = dialog.request(alice, "BYE", &[], "").unwrap();
    alice.send(&bye, srv.addr());
    let bye_in = bob.expect_request("BYE").await.unwrap();
    bob.reply(&bye_in, 200, None).unwrap();
    alice.expect_status(200).await.unwrap();
}

/// A runtime, the proxy engine at `SERVER`, and alice and bob.
fn setup() -> (tokio::runtime::Runtime, Lab, LabEngine, Phone, Phone) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lab = Lab::new();
    let (srv, alice, bob) = rt.block_on(async {
        let bob = lab.phone("bob", "10.0.1.1:5060").unwrap();
        let app = SipRouter::new()
            .invite(relay)
            .with_state("relay", Target(bob.uri()));
        let srv = lab
            .engine(SERVER, AppRouter::new().route(Rule::any(), app))
            .await
            .unwrap();
        let alice = lab.phone("alice", "10.0.0.2:5060").unwrap();
        (srv, alice, bob)
    });
    (rt, lab, srv, alice, bob)
}

fn proxy_call(c: &mut Criterion) {
    let (rt, _lab, srv, mut alice, mut bob) = setup();
    c.bench_function("proxy_call", |b| {
        b.iter(|| rt.block_on(one_call(&mut alice, &mut bob, &srv)));
    });
}

criterion_group!(benches, proxy_call);

fn main() {
    if let Some(n) = std::env::var("PROXY_CALLS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    {
        let (rt, _lab, srv, mut alice, mut bob) = setup();
        rt.block_on(async {
            for _ in 0..n {
                one_call(&mut alice, &mut bob, &srv).await;
            }
        });
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
