#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! The supervised proxy (JSR 289 supervised mode): the application sees a
//! branch's final error response and sends the call on to another target
//! (busy -> voicemail).

mod common;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use session_store::{MemoryStore, Store};
use sip_app::{
    AppError, AppRouter, Context, Engine, EngineConfig, IncomingRequest, ProxyOptions, Rule,
    SipRouter,
};
use tokio::net::UdpSocket;

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

/// A UAS on a socket that answers every INVITE with `status`.
async fn uas(status: u16) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0_u8; 8192];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !text.starts_with("INVITE ") {
                continue;
            }
            let mut r = format!(
                "SIP/2.0 {status} {}\r\n",
                if status == 200 { "OK" } else { "Busy Here" }
            );
            for l in text.lines() {
                let lower = l.to_ascii_lowercase();
                if ["via:", "from:", "call-id:", "cseq:", "record-route:"]
                    .iter()
                    .any(|h| lower.starts_with(h))
                {
                    r.push_str(l);
                    r.push_str("\r\n");
                } else if lower.starts_with("to:") {
                    r.push_str(l);
                    r.push_str(";tag=uas\r\n");
                }
            }
            if status == 200 {
                r.push_str(&format!("Contact: <sip:vm@{addr}>\r\n"));
            }
            r.push_str("Content-Length: 0\r\n\r\n");
            let _ = sock.send_to(r.as_bytes(), from).await;
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_supervisor_sends_a_busy_call_to_voicemail() {
    let (busy, _b) = uas(486).await;
    let (vm, _v) = uas(200).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (stack, addr) = common::loopback_stack().await;
    let app = SipRouter::new().invite(on_invite).with_state(
        "forwarder",
        Forwarder {
            first: format!("sip:bob@{busy}"),
            voicemail: format!("sip:vm@{vm}"),
            seen: Arc::clone(&seen),
        },
    );
    let _engine = Engine::start(
        stack,
        EngineConfig::new("c1"),
        Store::from(MemoryStore::new()),
        AppRouter::new().route(Rule::any(), app),
    );
    let ua = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = ua.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:bob@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-sv1\r\n\
         From: <sip:alice@{me}>;tag=al\r\nTo: <sip:bob@{addr}>\r\nCall-ID: sup@test\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:alice@{me}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    ua.send_to(invite.as_bytes(), addr).await.unwrap();
    let mut buf = vec![0_u8; 8192];
    let fin = loop {
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), ua.recv_from(&mut buf))
            .await
            .expect("a final answer within 5 s")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 1") {
            break text;
        }
    };
    assert!(
        fin.starts_with("SIP/2.0 200"),
        "the voicemail answered: {fin}"
    );
    assert!(fin.contains(&format!("Contact: <sip:vm@{vm}>")), "{fin}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [(format!("sip:bob@{busy}"), 486)],
        "the supervisor saw the busy branch"
    );
}
