#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! B2BUA legs as the application sees them (JSR 289 B2buaHelper): listed
//! with their state and link, and unlinked: after `unlink_leg`, A's BYE is
//! answered by the container and ends only leg A; leg B gets no BYE.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use session_store::{MemoryStore, Store};
use sip_app::{
    AppError, AppRouter, Context, Engine, EngineConfig, IncomingRequest, Rule, SipRouter,
};
use tokio::net::UdpSocket;
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

/// Leg B's UAS: answers INVITE 200, BYE 200, and reports each BYE.
async fn callee() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = vec![0_u8; 8192];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let method = text.split(' ').next().unwrap_or("").to_owned();
            if method != "INVITE" && method != "BYE" {
                continue;
            }
            if method == "BYE" {
                let _ = tx.send(text.clone());
            }
            let mut r = String::from("SIP/2.0 200 OK\r\n");
            for l in text.lines() {
                let lower = l.to_ascii_lowercase();
                if ["via:", "from:", "call-id:", "cseq:"]
                    .iter()
                    .any(|h| lower.starts_with(h))
                {
                    r.push_str(l);
                    r.push_str("\r\n");
                } else if lower.starts_with("to:") {
                    r.push_str(l);
                    if !lower.contains("tag=") {
                        r.push_str(";tag=bee");
                    }
                    r.push_str("\r\n");
                }
            }
            r.push_str(&format!(
                "Contact: <sip:b@{addr}>\r\nContent-Length: 0\r\n\r\n"
            ));
            let _ = sock.send_to(r.as_bytes(), from).await;
        }
    });
    (addr, rx)
}

async fn final_answer(ua: &UdpSocket) -> String {
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

#[tokio::test]
async fn an_unlinked_leg_ends_alone() {
    let (b_addr, mut byes) = callee().await;
    let (legs_tx, mut legs_rx) = mpsc::unbounded_channel();
    let (stack, addr) = common::loopback_stack().await;
    let app = SipRouter::new().invite(on_invite).info(on_info).with_state(
        "bridge",
        Bridge {
            callee: format!("sip:b@{b_addr}"),
            legs: legs_tx,
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
        "INVITE sip:b@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-l1\r\n\
         From: <sip:a@{me}>;tag=aa\r\nTo: <sip:b@{addr}>\r\nCall-ID: legs@test\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:a@{me}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    ua.send_to(invite.as_bytes(), addr).await.unwrap();
    let ok = final_answer(&ua).await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let header = |name: &str| {
        ok.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap()
            .to_owned()
    };
    let to = header("To");
    let target = header("Contact")
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned();
    let in_dialog = |method: &str, cseq: u32| {
        format!(
            "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-l{cseq}{method}\r\n\
             From: <sip:a@{me}>;tag=aa\r\nTo: {to}\r\nCall-ID: legs@test\r\nCSeq: {cseq} {method}\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
    };
    ua.send_to(in_dialog("ACK", 1).as_bytes(), addr)
        .await
        .unwrap();
    ua.send_to(in_dialog("INFO", 2).as_bytes(), addr)
        .await
        .unwrap();
    let r = final_answer(&ua).await;
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    assert_eq!(legs_rx.recv().await, Some(2), "two legs listed");
    ua.send_to(in_dialog("BYE", 3).as_bytes(), addr)
        .await
        .unwrap();
    let r = final_answer(&ua).await;
    assert!(
        r.starts_with("SIP/2.0 200"),
        "leg A's BYE answered by the container: {r}"
    );
    // Leg B is left alone (bounded wait for a BYE that must not come).
    let bye = tokio::time::timeout(Duration::from_millis(800), byes.recv()).await;
    assert!(bye.is_err(), "leg B got a BYE after the unlink: {bye:?}");
}
