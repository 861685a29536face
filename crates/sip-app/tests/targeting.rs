#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Session targeting (JSR 289 §15.11): initial requests with the same
//! session key join one application session, on any container of the
//! cluster (two engines on one store here); an initial request to an
//! encoded URI (the session's token in the Request-URI) joins that
//! session.

mod common;
use std::net::SocketAddr;
use std::time::Duration;

use session_store::{MemoryStore, Store};
use sip_app::{
    AppError, AppRouter, Context, Engine, EngineConfig, IncomingRequest, Rule, SipRouter,
};
use tokio::net::UdpSocket;

struct Rooms;

async fn on_message(cx: Context<Rooms>, req: IncomingRequest) -> Result<(), AppError> {
    let n = cx.session().get::<u32>("members")?.unwrap_or(0) + 1;
    cx.session().set("members", &n)?;
    // A room outlives the requests that join it.
    cx.session().set_invalidate_when_ready(false);
    let r = req
        .response(200, None)?
        .header("X-Members", &n.to_string())
        .header("X-Session", cx.session_id().as_str());
    req.send(r, 200).await
}

fn room(request: &sip_message::SipMessage) -> Option<String> {
    request
        .headers_named("X-Room")
        .next()
        .and_then(|h| h.value().ok())
        .map(str::to_owned)
}

async fn engine(node: &str, store: Store) -> (Engine, SocketAddr) {
    let (stack, addr) = common::loopback_stack().await;
    let app = SipRouter::new()
        .message(on_message)
        .session_key(room)
        .with_state("rooms", Rooms);
    let engine = Engine::start(
        stack,
        EngineConfig::new(node),
        store,
        AppRouter::new().route(Rule::any(), app),
    );
    (engine, addr)
}

async fn message(to: SocketAddr, uri: &str, room: Option<&str>, n: u32) -> (String, String) {
    let ua = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = ua.local_addr().unwrap();
    let room = room.map_or_else(String::new, |r| format!("X-Room: {r}\r\n"));
    let msg = format!(
        "MESSAGE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-t{n}\r\n\
         From: <sip:a@{me}>;tag=t{n}\r\nTo: <sip:room@{to}>\r\nCall-ID: target-{n}@test\r\n\
         CSeq: 1 MESSAGE\r\n{room}Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    ua.send_to(msg.as_bytes(), to).await.unwrap();
    let mut buf = vec![0_u8; 8192];
    let (len, _) = tokio::time::timeout(Duration::from_secs(5), ua.recv_from(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
    assert!(text.starts_with("SIP/2.0 200"), "{text}");
    let h = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap()
            .to_owned()
    };
    (h("X-Members"), h("X-Session"))
}

#[tokio::test]
async fn requests_with_one_key_join_one_session_on_any_container() {
    let store = Store::from(MemoryStore::new());
    let (_a, addr_a) = engine("c1", store.clone()).await;
    let (_b, addr_b) = engine("c2", store.clone()).await;
    let uri_a = format!("sip:room@{addr_a}");
    let uri_b = format!("sip:room@{addr_b}");

    let (n1, s1) = message(addr_a, &uri_a, Some("blue"), 1).await;
    let (n2, s2) = message(addr_a, &uri_a, Some("blue"), 2).await;
    assert_eq!((n1.as_str(), n2.as_str()), ("1", "2"));
    assert_eq!(s1, s2, "one key, one session");
    // Another room: another session.
    let (n, s) = message(addr_a, &uri_a, Some("green"), 3).await;
    assert_eq!(n, "1");
    assert_ne!(s, s1);
    // No key: a new session each time.
    let (n, s) = message(addr_a, &uri_a, None, 4).await;
    assert_eq!(n, "1");
    assert_ne!(s, s1);
    // The same key on the other container joins the same session (it is
    // found through the store's index and loaded).
    let (n3, s3) = message(addr_b, &uri_b, Some("blue"), 5).await;
    assert_eq!((n3.as_str(), s3.as_str()), ("3", s1.as_str()));
    // An encoded URI (the session's token in the Request-URI) joins it too,
    // without the key.
    let encoded = format!("sip:room@{addr_b};sbt={s1}");
    let (n4, s4) = message(addr_b, &encoded, None, 6).await;
    assert_eq!((n4.as_str(), s4.as_str()), ("4", s1.as_str()));
    // Back on the first container, whose copy is now stale: it reloads
    // the session instead of losing a compare-and-set.
    let (n5, s5) = message(addr_a, &uri_a, Some("blue"), 7).await;
    assert_eq!((n5.as_str(), s5.as_str()), ("5", s1.as_str()));
}
