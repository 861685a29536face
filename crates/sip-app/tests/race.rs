#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Two containers racing for one session (an edge sent a request of the
//! session to both while its health view flipped): the store's
//! compare-and-set lets exactly one write win; the loser drops its stale
//! copy and its answer (a 200 claiming the state it failed to write) is
//! not sent: it answers 500 saying why.

mod common;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use session_store::{MemoryStore, SessionStore, Store};
use sip_app::{
    AppError, AppRouter, Context, Engine, EngineConfig, IncomingRequest, Rule, SessionId,
    SessionRecord, SipRouter,
};
use tokio::net::UdpSocket;
use tokio::sync::Barrier;

struct Racer {
    barrier: Arc<Barrier>,
}

async fn on_invite(_cx: Context<Racer>, req: IncomingRequest) -> Result<(), AppError> {
    req.accept().await
}

async fn on_info(cx: Context<Racer>, req: IncomingRequest) -> Result<(), AppError> {
    // Both containers hold the session at the same version here.
    cx.state().barrier.wait().await;
    cx.session().set("winner", &cx.node())?;
    req.accept().await
}

async fn engine(node: &str, store: Store, barrier: Arc<Barrier>) -> (Engine, SocketAddr) {
    let (stack, addr) = common::loopback_stack().await;
    let app = SipRouter::new()
        .invite(on_invite)
        .info(on_info)
        .with_state("racer", Racer { barrier });
    let router = AppRouter::new().route(Rule::any(), app);
    let mut cfg = EngineConfig::new(node);
    // Both containers are "the cluster" at one public address, as behind
    // an edge: the Contact's token names the session, not the container.
    cfg.public = Some("127.0.0.1:5999".to_owned());
    (Engine::start(stack, cfg, store, router), addr)
}

async fn transact(ua: &UdpSocket, to: SocketAddr, msg: &str) -> String {
    ua.send_to(msg.as_bytes(), to).await.unwrap();
    let mut buf = vec![0_u8; 8192];
    loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), ua.recv_from(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 1") {
            return text;
        }
    }
}

fn header<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_two_racing_containers_writes_and_answers() {
    let store = Store::from(MemoryStore::new());
    let barrier = Arc::new(Barrier::new(2));
    let (a, addr_a) = engine("c1", store.clone(), Arc::clone(&barrier)).await;
    let (b, addr_b) = engine("c2", store.clone(), Arc::clone(&barrier)).await;

    // A call answered by c1: its session is in the store.
    let ua = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = ua.local_addr().unwrap();
    let ok = transact(
        &ua,
        addr_a,
        &format!(
            "INVITE sip:racer@{addr_a} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-r1\r\n\
             From: <sip:a@{me}>;tag=ra\r\nTo: <sip:racer@{addr_a}>\r\nCall-ID: race@test\r\n\
             CSeq: 1 INVITE\r\nContact: <sip:a@{me}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ),
    )
    .await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let to = header(&ok, "To").to_owned();
    let target = header(&ok, "Contact")
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned();
    let id = SessionId::parse(
        target
            .split("sbt=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap(),
    )
    .unwrap();
    ua.send_to(
        format!(
            "ACK {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-r2\r\n\
             From: <sip:a@{me}>;tag=ra\r\nTo: {to}\r\nCall-ID: race@test\r\nCSeq: 1 ACK\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
        addr_a,
    )
    .await
    .unwrap();

    // The same INFO reaches both containers (each copy with the Via of
    // the socket that waits for its answer).
    let info = |via: SocketAddr| {
        format!(
            "INFO {target} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK-r3\r\n\
             From: <sip:a@{me}>;tag=ra\r\nTo: {to}\r\nCall-ID: race@test\r\nCSeq: 2 INFO\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let ua_a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ua_b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (info_a, info_b) = (
        info(ua_a.local_addr().unwrap()),
        info(ua_b.local_addr().unwrap()),
    );
    let (ra, rb) = tokio::join!(
        transact(&ua_a, addr_a, &info_a),
        transact(&ua_b, addr_b, &info_b)
    );
    let answers = [ra.lines().next().unwrap(), rb.lines().next().unwrap()];
    let winners = answers
        .iter()
        .filter(|l| l.starts_with("SIP/2.0 200"))
        .count();
    assert_eq!(winners, 1, "exactly one 200: {answers:?}");
    let loser_line = answers
        .iter()
        .find(|l| !l.starts_with("SIP/2.0 200"))
        .unwrap();
    assert_eq!(
        *loser_line,
        "SIP/2.0 500 Server Internal Error (session changed on another container)"
    );
    let winner = if ra.starts_with("SIP/2.0 200") {
        "c1"
    } else {
        "c2"
    };
    // The store has the winner's write.
    let stored = store.get(&id.store_key()).await.unwrap().unwrap();
    let record: SessionRecord = serde_json::from_slice(&stored.value).unwrap();
    assert_eq!(record.attributes["winner"], serde_json::json!(winner));
    // The loser dropped its stale copy.
    let (loser, kept) = if winner == "c1" { (&b, &a) } else { (&a, &b) };
    assert_eq!(loser.live_sessions(), 0);
    assert_eq!(kept.live_sessions(), 1);
    assert_eq!(
        loser
            .stats()
            .store_conflicts
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
