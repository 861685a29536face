//! Test support: stand-in containers (real SIP endpoints on `sip-stack`,
//! with a tiny HTTP server), a raw UDP SIP caller, and a raw HTTP client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code,
    unreachable_pub,
    missing_docs
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use edge::{AffinityKey, ContainerConfig, Edge, EdgeConfig, HealthConfig, LimitsConfig, Listen};
use sip_message::{ResponseBuilder, SipMessage};
use sip_stack::{Stack, StackConfig, StackEvent};
use sip_transport::TransportConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

/// The public address the edges in these tests share (never bound: the
/// edge's Via carries `rport`, so answers come back to the real socket).
pub const PUBLIC: &str = "127.0.0.1:5999";

/// What a stand-in container saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub call_id: String,
}

/// A stand-in container: answers OPTIONS 200, INVITE 180 + 200 (with a
/// Record-Route carrying its token), BYE 200; an INVITE to user `slow` gets
/// only a 180 and waits for a CANCEL. Records every request.
pub struct StandIn {
    pub node: String,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// When set, the container ignores everything (as if it hung).
    pub silent: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

static TOKEN_SEQ: AtomicU64 = AtomicU64::new(1);

impl StandIn {
    pub async fn start(node: &str) -> StandIn {
        let mut stack = Stack::start(StackConfig {
            transport: TransportConfig {
                udp: vec!["127.0.0.1:0".parse().unwrap()],
                ..TransportConfig::default()
            },
            shards: 1,
            dedicated_threads: false,
            ..StackConfig::default()
        })
        .await
        .unwrap();
        let sip = stack
            .handle()
            .local_addr(sip_message::TransportKind::Udp)
            .unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let silent = Arc::new(AtomicBool::new(false));
        let node_s = node.to_owned();
        let (seen2, silent2) = (Arc::clone(&seen), Arc::clone(&silent));
        let sip_task = tokio::spawn(async move {
            // Unanswered transactions are kept: dropping one may answer it.
            let mut hung = Vec::new();
            while let Some(ev) = stack.next_event().await {
                if silent2.load(Ordering::SeqCst) {
                    hung.push(ev);
                    continue;
                }
                match ev {
                    StackEvent::Request(mut tx) => {
                        let req = tx.request().clone();
                        let method = req.method().unwrap().as_str().to_owned();
                        let call_id = req.call_id().unwrap_or("").to_owned();
                        seen2.lock().unwrap().push(Seen {
                            method: method.clone(),
                            call_id: call_id.clone(),
                        });
                        let tag = format!("{node_s}tag");
                        match method.as_str() {
                            "INVITE" => {
                                let r180 = ResponseBuilder::for_request(&req, 180, Some(&tag))
                                    .unwrap()
                                    .build()
                                    .unwrap();
                                tx.respond(r180);
                                let slow = req.request_uri_str().unwrap_or("").contains("slow@");
                                if slow {
                                    let seen3 = Arc::clone(&seen2);
                                    tokio::spawn(async move {
                                        tx.cancelled().await;
                                        seen3.lock().unwrap().push(Seen {
                                            method: "CANCEL".into(),
                                            call_id: call_id.clone(),
                                        });
                                        let r487 = ResponseBuilder::for_request(
                                            tx.request(),
                                            487,
                                            Some(&tag),
                                        )
                                        .unwrap()
                                        .build()
                                        .unwrap();
                                        tx.respond(r487);
                                    });
                                    continue;
                                }
                                if req.request_uri_str().unwrap_or("").contains("busy@") {
                                    let busy = ResponseBuilder::for_request(&req, 503, Some(&tag))
                                        .unwrap()
                                        .header("Retry-After", "30")
                                        .build()
                                        .unwrap();
                                    tx.respond(busy);
                                    continue;
                                }
                                let n = TOKEN_SEQ.fetch_add(1, Ordering::Relaxed);
                                let token = format!("{node_s}.{n:016x}");
                                let r200 = ResponseBuilder::for_request(&req, 200, Some(&tag))
                                    .unwrap()
                                    .header(
                                        "Record-Route",
                                        &format!("<sip:{PUBLIC};lr;sbt={token}>"),
                                    )
                                    .header(
                                        "Contact",
                                        &format!("<sip:{node_s}@{PUBLIC};sbt={token}>"),
                                    )
                                    .build()
                                    .unwrap();
                                tx.respond(r200);
                            }
                            _ => {
                                let ok = ResponseBuilder::for_request(&req, 200, Some(&tag))
                                    .unwrap()
                                    .build()
                                    .unwrap();
                                tx.respond(ok);
                            }
                        }
                    }
                    StackEvent::Ack { request, .. } => {
                        seen2.lock().unwrap().push(Seen {
                            method: "ACK".into(),
                            call_id: request.call_id().unwrap_or("").to_owned(),
                        });
                    }
                    _ => {}
                }
            }
        });
        // HTTP: `/_sb/health` says ok, everything else answers the node id.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = listener.local_addr().unwrap();
        let node_h = node.to_owned();
        let silent3 = Arc::clone(&silent);
        let silent4 = Arc::clone(&silent);
        let app = axum::Router::new()
            .route(
                "/_sb/health",
                axum::routing::get(move || {
                    let silent = Arc::clone(&silent4);
                    async move {
                        if silent.load(Ordering::SeqCst) {
                            std::future::pending::<()>().await;
                        }
                        "ok"
                    }
                }),
            )
            .fallback(move || {
                let node = node_h.clone();
                let silent = Arc::clone(&silent3);
                async move {
                    if silent.load(Ordering::SeqCst) {
                        std::future::pending::<()>().await;
                    }
                    node
                }
            });
        let http_task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StandIn {
            node: node.to_owned(),
            sip,
            http,
            seen,
            silent,
            tasks: vec![sip_task, http_task],
        }
    }

    pub fn config(&self) -> ContainerConfig {
        ContainerConfig {
            node: self.node.clone(),
            sip: self.sip,
            http: Some(self.http),
            weight: 1,
        }
    }

    /// The methods this container saw for a Call-ID.
    pub fn methods(&self, call_id: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.call_id == call_id)
            .map(|s| s.method.clone())
            .collect()
    }
}

pub fn edge_config(containers: &[&StandIn], health: HealthConfig) -> EdgeConfig {
    EdgeConfig {
        node: "e1".into(),
        public: PUBLIC.into(),
        listen: Listen {
            udp: vec!["127.0.0.1:0".parse().unwrap()],
            udp_threads: 0,
            tcp: vec!["127.0.0.1:0".parse().unwrap()],
            tls: vec![],
            ws: vec![],
            wss: vec![],
            tls_cert: None,
            http: "127.0.0.1:0".parse().unwrap(),
        },
        affinity_key: AffinityKey::CallId,
        health,
        containers: containers.iter().map(|c| c.config()).collect(),
        members: None,
        limits: LimitsConfig::default(),
        source: None,
    }
}

/// Probes slow enough not to disturb, fast enough to converge.
pub fn quiet_health() -> HealthConfig {
    HealthConfig {
        interval: Duration::from_secs(5),
        timeout: Duration::from_secs(1),
        rise: 2,
        fall: 2,
    }
}

pub async fn edge(containers: &[&StandIn]) -> Edge {
    Edge::start(edge_config(containers, quiet_health()))
        .await
        .unwrap()
}

/// A SIP caller on a raw UDP socket.
pub struct Caller {
    pub sock: UdpSocket,
    pub addr: SocketAddr,
}

impl Caller {
    pub async fn new() -> Caller {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        Caller { sock, addr }
    }

    pub fn invite(&self, call_id: &str, user: &str, branch: &str, extra: &str) -> String {
        self.request(
            "INVITE",
            &format!("sip:{user}@example.com"),
            call_id,
            1,
            branch,
            "",
            extra,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn request(
        &self,
        method: &str,
        uri: &str,
        call_id: &str,
        cseq: u32,
        branch: &str,
        to_tag: &str,
        extra: &str,
    ) -> String {
        let to_tag = if to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={to_tag}")
        };
        format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {};branch={branch};rport\r\n\
             {extra}Max-Forwards: 70\r\n\
             To: <sip:bob@example.com>{to_tag}\r\n\
             From: <sip:alice@example.com>;tag=caller\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Contact: <sip:alice@{}>\r\n\
             Content-Length: 0\r\n\r\n",
            self.addr, self.addr
        )
    }

    pub async fn send(&self, to: SocketAddr, text: &str) {
        self.sock.send_to(text.as_bytes(), to).await.unwrap();
    }

    /// The next message, within 5 s.
    pub async fn recv(&self) -> (SipMessage, SocketAddr) {
        let mut buf = vec![0u8; 65536];
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), self.sock.recv_from(&mut buf))
            .await
            .expect("no message within 5 s")
            .unwrap();
        buf.truncate(n);
        (SipMessage::parse(Bytes::from(buf)).unwrap(), from)
    }

    /// Receives until a response with `status` (bounded: 10 messages).
    pub async fn expect(&self, status: u16) -> (SipMessage, SocketAddr) {
        for _ in 0..10 {
            let (m, from) = self.recv().await;
            if m.status() == Some(status) {
                return (m, from);
            }
        }
        panic!("no {status} within 10 messages");
    }
}

/// The `sbt` token of a 2xx's Record-Route.
pub fn token_of_response(resp: &SipMessage) -> String {
    let rr = resp
        .headers_of(sip_message::HeaderName::RecordRoute)
        .next()
        .unwrap()
        .value()
        .unwrap()
        .to_owned();
    let at = rr.find("sbt=").unwrap() + 4;
    rr[at..].trim_end_matches('>').to_owned()
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    let mut s = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    // Chunked bodies: good enough for the small bodies here.
    let body = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.split("\r\n").nth(1).unwrap_or("").to_owned()
    } else {
        body
    };
    (status, body)
}
