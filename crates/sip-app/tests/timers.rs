#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Application timers on real engines: a repeating timer fires into its
//! handler until cancelled, and a timer of a container that died fires
//! exactly once on a survivor.

mod common;
use std::net::SocketAddr;
use std::time::Duration;

use session_store::{MemoryStore, SessionStore, Store, StoredTimer};
use sip_app::{
    AppError, AppRouter, Context, Engine, EngineConfig, IncomingRequest, Rule, SessionId,
    SessionRecord, SipRouter, TimerEvent, TimerRecord,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

struct Ticker {
    fired: mpsc::UnboundedSender<(String, String, u64)>,
    stop_after: u64,
}

async fn on_message(cx: Context<Ticker>, req: IncomingRequest) -> Result<(), AppError> {
    cx.session().set("count", &0_u64)?;
    cx.set_timer(
        "tick",
        Duration::from_millis(50),
        Some(Duration::from_millis(50)),
        serde_json::json!({"what": "tick"}),
    );
    req.accept().await
}

async fn on_timer(cx: Context<Ticker>, t: TimerEvent) -> Result<(), AppError> {
    let n = cx.session().get::<u64>("count")?.unwrap_or(0) + 1;
    cx.session().set("count", &n)?;
    if n >= cx.state().stop_after {
        cx.cancel_timer(&t.id);
    }
    let _ = cx
        .state()
        .fired
        .send((cx.node().to_owned(), t.payload["what"].to_string(), n));
    Ok(())
}

async fn engine(
    node: &str,
    store: Store,
    stop_after: u64,
) -> (
    Engine,
    SocketAddr,
    mpsc::UnboundedReceiver<(String, String, u64)>,
) {
    let (stack, addr) = common::loopback_stack().await;
    let (tx, rx) = mpsc::unbounded_channel();
    let app = SipRouter::new()
        .message(on_message)
        .timer(on_timer)
        .with_state(
            "ticker",
            Ticker {
                fired: tx,
                stop_after,
            },
        );
    let router = AppRouter::new().route(Rule::any(), app);
    let engine = Engine::start(stack, EngineConfig::new(node), store, router);
    (engine, addr, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, String, u64)>) -> (String, String, u64) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a timer fired in time")
        .expect("the engine is running")
}

/// Waits (bounded) until `f` holds.
async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 5 s");
}

#[tokio::test]
async fn a_repeating_timer_fires_until_cancelled_and_its_session_then_ends() {
    let store = Store::from(MemoryStore::new());
    let (engine, addr, mut fired) = engine("c1", store.clone(), 3).await;
    let ua = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = ua.local_addr().unwrap();
    let msg = format!(
        "MESSAGE sip:ticker@{addr} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-t1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:a@{me}>;tag=a1\r\n\
         To: <sip:ticker@{addr}>\r\n\
         Call-ID: timer-1@test\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    ua.send_to(msg.as_bytes(), addr).await.unwrap();
    let mut buf = vec![0_u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), ua.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        buf[..n].starts_with(b"SIP/2.0 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );

    for want in 1..=3 {
        let (node, what, n) = next(&mut fired).await;
        assert_eq!((node.as_str(), what.as_str(), n), ("c1", "\"tick\"", want));
    }
    // Cancelled at the third: no timer and no dialog left, so the session
    // is ready and goes, from the container and from the store.
    until("the session's removal", async || {
        engine.live_sessions() == 0
    })
    .await;
    until("the store's emptying", async || {
        store.record_count().await.unwrap() == 0
    })
    .await;
    assert!(fired.try_recv().is_err(), "no firing after the cancel");
    let due = store.take_due_timers(u64::MAX, 10).await.unwrap();
    assert!(due.is_empty(), "the store's timer index is empty: {due:?}");
}

#[tokio::test]
async fn a_dead_containers_timer_fires_exactly_once_on_a_survivor() {
    let store = Store::from(MemoryStore::new());
    // What container c9 left behind when it died: a session with a timer
    // that is now overdue, and the timer's entry in the store's index.
    let id = SessionId::parse("c9.00000000000000aa").unwrap();
    let now = sip_app::unix_ms();
    let mut record = SessionRecord::new(id.clone(), "ticker", now, Duration::from_secs(60));
    record
        .attributes
        .insert("count".into(), serde_json::json!(41));
    record.timers.push(TimerRecord {
        id: "wake".into(),
        due_unix_ms: now - 3000,
        period_ms: None,
        payload: serde_json::json!({"what": "wake"}),
    });
    store
        .put(
            &id.store_key(),
            serde_json::to_vec(&record).unwrap(),
            0,
            Some(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    store
        .put_timer(StoredTimer {
            session: id.as_str().to_owned(),
            id: "wake".into(),
            due_unix_ms: now - 1000,
            payload: Vec::new(),
        })
        .await
        .unwrap();

    // Two survivors poll the same store.
    let (b, _, mut fired_b) = engine("c2", store.clone(), 100).await;
    let (c, _, mut fired_c) = engine("c3", store.clone(), 100).await;
    let (node, what, n) = tokio::select! {
        f = next(&mut fired_b) => f,
        f = next(&mut fired_c) => f,
    };
    assert!(node == "c2" || node == "c3", "{node}");
    assert_eq!(
        (what.as_str(), n),
        ("\"wake\"", 42),
        "its attributes came with it"
    );
    // A one-shot timer on a session with no dialog: the session is done.
    until("the session's removal from the store", async || {
        store.get(&id.store_key()).await.unwrap().is_none()
    })
    .await;
    // Both survivors poll the index at least once more: nobody fires again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(fired_b.try_recv().is_err() && fired_c.try_recv().is_err());
    assert_eq!(b.live_sessions() + c.live_sessions(), 0);
    assert_eq!(
        b.stats()
            .sessions_loaded
            .load(std::sync::atomic::Ordering::Relaxed)
            + c.stats()
                .sessions_loaded
                .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "one survivor took the session over"
    );
}

struct Keeper;

async fn keep(cx: Context<Keeper>, req: IncomingRequest) -> Result<(), AppError> {
    cx.session().set("a", &1)?;
    cx.session().set("b", &2)?;
    cx.session().remove("a");
    // Kept until it expires.
    cx.session().set_invalidate_when_ready(false);
    req.accept().await
}

#[tokio::test]
async fn listeners_see_creation_attributes_expiry_and_destruction() {
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&events);
    let (stack, addr) = common::loopback_stack().await;
    let app = SipRouter::new()
        .message(keep)
        .on_session(move |_id, ev| seen.lock().unwrap().push(ev.clone()))
        .with_state("keeper", Keeper);
    let mut cfg = EngineConfig::new("c1");
    cfg.session_lifetime = Duration::from_millis(200);
    let engine = Engine::start(
        stack,
        cfg,
        Store::from(MemoryStore::new()),
        AppRouter::new().route(Rule::any(), app),
    );
    let ua = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = ua.local_addr().unwrap();
    let msg = format!(
        "MESSAGE sip:k@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-l1\r\n\
         From: <sip:a@{me}>;tag=l1\r\nTo: <sip:k@{addr}>\r\nCall-ID: listen@test\r\n\
         CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    ua.send_to(msg.as_bytes(), addr).await.unwrap();
    let mut buf = vec![0_u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), ua.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200"));
    // The sweeper (once a second) expires it.
    until("the session's expiry", async || engine.live_sessions() == 0).await;
    use sip_app::SessionEvent as E;
    assert_eq!(
        *events.lock().unwrap(),
        [
            E::Created,
            E::AttributeSet("a".into()),
            E::AttributeSet("b".into()),
            E::AttributeRemoved("a".into()),
            E::Expired,
            E::Destroyed,
        ]
    );
}
