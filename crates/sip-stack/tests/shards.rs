//! Shards that own their UDP sockets: several shards bound on one port
//! (127.0.0.1, port 0, `SO_REUSEPORT`), each reading its own socket in
//! batches, handing a message whose Call-ID another shard owns to that
//! shard. Raw UDP sockets play the callers, from many source ports, so
//! the kernel spreads them over the shards' sockets.
//!
//! Every wait is bounded; the bursts are bounded in count.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sip_message::{Method, ResponseBuilder, SipMessage, TransportKind};
use sip_proto::Timers;
use sip_stack::{Stack, StackConfig, StackEvent};
use sip_transport::TransportConfig;
use tokio::net::UdpSocket;

const WAIT: Duration = Duration::from_secs(10);
const SHARDS: usize = 4;

async fn start() -> (Stack, SocketAddr) {
    let stack = Stack::start(StackConfig {
        transport: TransportConfig {
            udp: vec!["127.0.0.1:0".parse().unwrap()],
            ..TransportConfig::default()
        },
        shards: SHARDS,
        // No 2xx retransmission within the test: each 200 is sent once.
        timers: Timers {
            t1: Duration::from_secs(5),
            ..Timers::default()
        },
        seed: 11,
        dedicated_threads: true,
        ..StackConfig::default()
    })
    .await
    .unwrap();
    let addr = stack.handle().local_addr(TransportKind::Udp).unwrap();
    assert_ne!(addr.port(), 0, "port 0 resolved");
    (stack, addr)
}

fn request(method: &str, to: SocketAddr, from: SocketAddr, call_id: &str, cseq: u32) -> String {
    let to_tag = "";
    format!(
        "{method} sip:uas@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};rport;branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:uas@{to}>{to_tag}\r\n\
         From: <sip:uac@{from}>;tag=f-{call_id}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:uac@{from}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The ACK for a 2xx (its own transaction, §13.2.2.4) or a non-2xx (same
/// branch as the INVITE, §17.1.1.3).
fn ack(
    resp: &SipMessage,
    to: SocketAddr,
    from: SocketAddr,
    call_id: &str,
    same_branch: bool,
) -> String {
    let to_header = String::from_utf8_lossy(
        resp.headers_of(sip_message::HeaderName::To)
            .next()
            .unwrap()
            .value_bytes(),
    )
    .into_owned();
    let branch = if same_branch {
        format!("z9hG4bK-{call_id}")
    } else {
        format!("z9hG4bK-ack-{call_id}")
    };
    format!(
        "ACK sip:uas@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};rport;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         To: {to_header}\r\n\
         From: <sip:uac@{from}>;tag=f-{call_id}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Receives one SIP message, bounded.
async fn recv(socket: &UdpSocket) -> (SipMessage, SocketAddr) {
    let mut buf = vec![0u8; 65_535];
    let (n, src) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("a message within the wait")
        .unwrap();
    (
        SipMessage::parse(Bytes::copy_from_slice(&buf[..n])).unwrap(),
        src,
    )
}

fn call_id(m: &SipMessage) -> String {
    m.call_id().unwrap().to_owned()
}

/// A burst of INVITEs from many source ports to several shards on one
/// port: the transaction user sees every call once, every caller gets
/// exactly one 200 per call, from the port it called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_on_one_port_answer_every_call_of_a_burst_exactly_once() {
    const CALLERS: usize = 48;
    const CALLS_EACH: usize = 6;
    let (mut stack, addr) = start().await;
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let seen_by_tu = Arc::clone(&seen);
    let uas = tokio::spawn(async move {
        while let Some(event) = stack.next_event().await {
            if let StackEvent::Request(tx) = event {
                assert_eq!(tx.request().method(), Some(Method::Invite));
                *seen_by_tu
                    .lock()
                    .unwrap()
                    .entry(call_id(tx.request()))
                    .or_default() += 1;
                let ok = ResponseBuilder::for_request(tx.request(), 200, Some("uas"))
                    .unwrap()
                    .build()
                    .unwrap();
                tx.respond(ok);
            }
        }
    });

    let mut callers = Vec::new();
    for c in 0..CALLERS {
        callers.push(tokio::spawn(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let me = socket.local_addr().unwrap();
            for k in 0..CALLS_EACH {
                let invite = request("INVITE", addr, me, &format!("burst-{c}-{k}"), 1);
                socket.send_to(invite.as_bytes(), addr).await.unwrap();
            }
            let mut oks: HashMap<String, usize> = HashMap::new();
            while oks.len() < CALLS_EACH {
                let (resp, src) = recv(&socket).await;
                assert_eq!(src, addr, "answered from the port called");
                if resp.status() == Some(200) {
                    let id = call_id(&resp);
                    *oks.entry(id.clone()).or_default() += 1;
                    let ack = ack(&resp, addr, me, &id, false);
                    socket.send_to(ack.as_bytes(), addr).await.unwrap();
                }
            }
            // Nothing more comes: no second 200 for any call.
            let mut buf = [0u8; 2048];
            let extra =
                tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buf)).await;
            if let Ok(Ok((n, _))) = extra {
                let m = SipMessage::parse(Bytes::copy_from_slice(&buf[..n])).unwrap();
                assert_ne!(m.status(), Some(200), "a second 200 for {:?}", m.call_id());
            }
            oks
        }));
    }
    for caller in callers {
        let oks = tokio::time::timeout(WAIT, caller)
            .await
            .expect("caller finished")
            .unwrap();
        assert_eq!(oks.len(), CALLS_EACH);
        assert!(oks.values().all(|n| *n == 1), "one 200 per call: {oks:?}");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.len(),
        CALLERS * CALLS_EACH,
        "every call reached the TU"
    );
    assert!(seen.values().all(|n| *n == 1), "each call once");
    drop(seen);
    uas.abort();
}

/// The INVITE leaves from one source port, its CANCEL (§9.1) from
/// another, so the kernel often delivers them to different shards'
/// sockets: the CANCEL still matches the INVITE (200, not 481), because
/// the shard that reads it hands it to the shard owning the Call-ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_read_by_another_shard_still_matches_its_invite() {
    const CALLS: usize = 32;
    let (mut stack, addr) = start().await;
    let uas = tokio::spawn(async move {
        while let Some(event) = stack.next_event().await {
            if let StackEvent::Request(mut tx) = event {
                tokio::spawn(async move {
                    if tokio::time::timeout(WAIT, tx.cancelled()).await.is_ok() {
                        let terminated =
                            ResponseBuilder::for_request(tx.request(), 487, Some("uas"))
                                .unwrap()
                                .build()
                                .unwrap();
                        tx.respond(terminated);
                    }
                });
            }
        }
    });
    let mut calls = Vec::new();
    for c in 0..CALLS {
        calls.push(tokio::spawn(async move {
            let inviter = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let canceller = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let me = inviter.local_addr().unwrap();
            let id = format!("cancel-{c}");
            inviter
                .send_to(request("INVITE", addr, me, &id, 1).as_bytes(), addr)
                .await
                .unwrap();
            // The CANCEL once the INVITE is known to be there (its 100).
            let (trying, _) = recv(&inviter).await;
            assert_eq!(trying.status(), Some(100));
            canceller
                .send_to(request("CANCEL", addr, me, &id, 1).as_bytes(), addr)
                .await
                .unwrap();
            // RFC 3581: the CANCEL's answer goes to the port it came from.
            let (answer, _) = recv(&canceller).await;
            assert_eq!(answer.status(), Some(200), "{id}: the CANCEL matched");
            let (final_response, _) = recv(&inviter).await;
            assert_eq!(final_response.status(), Some(487), "{id}: the INVITE ended");
            let ack = ack(&final_response, addr, me, &id, true);
            inviter.send_to(ack.as_bytes(), addr).await.unwrap();
        }));
    }
    for call in calls {
        tokio::time::timeout(WAIT, call)
            .await
            .expect("call finished")
            .unwrap();
    }
    uas.abort();
}
