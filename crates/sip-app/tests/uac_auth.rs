#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Requests an application sends answer digest challenges
//! (`Context::send_request_as`): a server that challenges with 401 (a real
//! `sip_auth::Authenticator`) accepts the second try with the right
//! password and keeps refusing a wrong one.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use session_store::{MemoryStore, Store};
use sip_app::{
    AppError, AppRouter, Context, Engine, EngineConfig, IncomingRequest, Rule, SipRouter,
};
use sip_auth::{Authenticator, ChallengeKind, MemoryDirectory};
use sip_message::{ResponseBuilder, SipMessage};
use tokio::net::UdpSocket;

struct Sender {
    server: String,
}

async fn on_message(cx: Context<Sender>, req: IncomingRequest) -> Result<(), AppError> {
    let password = String::from_utf8_lossy(req.request().body()).into_owned();
    let status = cx
        .send_request_as(
            "MESSAGE",
            &cx.state().server,
            None,
            Some(("alice", &password)),
        )
        .await?;
    let r = req
        .response(200, None)?
        .header("X-Outcome", &status.to_string());
    req.send(r, 200).await
}

/// A UDP server that demands digest credentials for user alice.
async fn challenger() -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let auth =
            Authenticator::new("test.example", b"a secret of sixteen bytes or more").unwrap();
        let mut users = MemoryDirectory::new();
        users.insert_password("alice", "wonderland");
        let mut buf = vec![0_u8; 8192];
        let mut salt = 0_u64;
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(req) = SipMessage::parse(bytes::Bytes::copy_from_slice(&buf[..n])) else {
                continue;
            };
            if !req.is_request() || req.method().is_some_and(|m| m.as_str() == "ACK") {
                continue;
            }
            let now = SystemTime::now();
            salt += 1;
            let r = match auth.verify_message(now, &req, ChallengeKind::Www, &users) {
                Ok(_) => ResponseBuilder::for_request(&req, 200, Some("srv")).unwrap(),
                Err(rejection) => {
                    let reply = auth.reply(&rejection, now, salt.to_le_bytes(), ChallengeKind::Www);
                    let mut b =
                        ResponseBuilder::for_request(&req, reply.status, Some("srv")).unwrap();
                    for (name, value) in &reply.headers {
                        b = b.header(name, value);
                    }
                    b
                }
            };
            let _ = sock.send_to(r.build().unwrap().as_bytes(), from).await;
        }
    });
    addr
}

async fn outcome(engine: SocketAddr, password: &str, n: u32) -> String {
    let ua = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = ua.local_addr().unwrap();
    let msg = format!(
        "MESSAGE sip:send@{engine} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-ua{n}\r\n\
         From: <sip:t@{me}>;tag=u{n}\r\nTo: <sip:send@{engine}>\r\nCall-ID: uacauth-{n}@test\r\n\
         CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{password}",
        password.len()
    );
    ua.send_to(msg.as_bytes(), engine).await.unwrap();
    let mut buf = vec![0_u8; 8192];
    let (len, _) = tokio::time::timeout(Duration::from_secs(10), ua.recv_from(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("X-Outcome: "))
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned()
}

#[tokio::test]
async fn an_application_request_answers_a_401_with_its_credentials() {
    let server = challenger().await;
    let (stack, addr) = common::loopback_stack().await;
    let app = SipRouter::new().message(on_message).with_state(
        "sender",
        Sender {
            server: format!("sip:inbox@{server}"),
        },
    );
    let _engine = Engine::start(
        stack,
        EngineConfig::new("c1"),
        Store::from(MemoryStore::new()),
        AppRouter::new().route(Rule::any(), app),
    );
    assert_eq!(outcome(addr, "wonderland", 1).await, "200");
    assert_eq!(
        outcome(addr, "not-it", 2).await,
        "401",
        "a wrong password is refused"
    );
}
