//! Test backends: a fake edge with a UDP and a TCP echo that prefix the
//! edge's name, on one port, and a real HTTP health endpoint (axum) that the
//! test can switch to failing or stop.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use sprayer::{
    EdgeSpec, HealthConfig, Proto, ServiceConfig, SprayerConfig, Target, TcpConfig, UdpConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// A fake edge.
pub struct Backend {
    pub name: String,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    healthy: Arc<AtomicBool>,
    udp_task: JoinHandle<()>,
    tcp_task: JoinHandle<()>,
    http_task: Option<JoinHandle<()>>,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        // UDP and TCP on the same port number (bounded retries).
        let mut bound = None;
        for _ in 0..32 {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(addr).await {
                bound = Some((udp, tcp));
                break;
            }
        }
        let (udp, tcp) = bound.expect("a port free for UDP and TCP");
        let sip = udp.local_addr().unwrap();
        let tag = format!("{name}:");
        let udp_tag = tag.clone();
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                let mut out = udp_tag.clone().into_bytes();
                out.extend_from_slice(&buf[..n]);
                let _ = udp.send_to(&out, from).await;
            }
        });
        let tcp_tag = tag.clone();
        let tcp_task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut s, _)) = tcp.accept().await else {
                    continue;
                };
                let tag = tcp_tag.clone();
                conns.spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let mut out = tag.clone().into_bytes();
                        out.extend_from_slice(&buf[..n]);
                        if s.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let healthy = Arc::new(AtomicBool::new(true));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/_sb/health", get(health))
            .with_state(Arc::clone(&healthy));
        let http_task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Backend {
            name: name.to_owned(),
            sip,
            http,
            healthy,
            udp_task,
            tcp_task,
            http_task: Some(http_task),
        }
    }

    pub fn spec(&self) -> EdgeSpec {
        EdgeSpec {
            name: self.name.clone(),
            sip: self.sip,
            http: self.http,
        }
    }

    /// The health route answers 503 (or 200 again).
    pub fn set_healthy(&self, up: bool) {
        self.healthy.store(up, Ordering::SeqCst);
    }

    /// Stops the HTTP server only (health checks find nothing listening);
    /// SIP keeps working.
    pub fn stop_http(&mut self) {
        if let Some(t) = self.http_task.take() {
            t.abort();
        }
    }

    /// Kills the whole edge: SIP sockets and the HTTP server.
    pub fn kill(&mut self) {
        self.udp_task.abort();
        self.tcp_task.abort();
        if let Some(t) = self.http_task.take() {
            t.abort();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn health(State(up): State<Arc<AtomicBool>>) -> (StatusCode, &'static str) {
    if up.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    }
}

/// A config with one "sip" service (UDP+TCP) on 127.0.0.1:0.
pub fn config(edges: Vec<EdgeSpec>, health: HealthConfig) -> SprayerConfig {
    SprayerConfig {
        services: vec![ServiceConfig {
            name: "sip".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            protocols: vec![Proto::Udp, Proto::Tcp],
            target: Target::Sip,
        }],
        health,
        udp: UdpConfig::default(),
        tcp: TcpConfig {
            connect_timeout: Duration::from_millis(500),
        },
        edges,
    }
}

pub fn fast_health() -> HealthConfig {
    HealthConfig {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(100),
        fall: 2,
        rise: 2,
    }
}

/// A UDP client: sends `msg` to `to`, returns (answer, where it came from).
pub struct Client {
    pub sock: UdpSocket,
}

impl Client {
    pub async fn new() -> Client {
        Client {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    pub async fn ask(&self, to: SocketAddr, msg: &str) -> (String, SocketAddr) {
        let mut buf = vec![0u8; 65536];
        // UDP: a datagram can be lost (the first of a new flow while the
        // edge starts); retry a few times, each with a deadline.
        for _ in 0..5 {
            self.sock.send_to(msg.as_bytes(), to).await.unwrap();
            if let Ok(r) =
                tokio::time::timeout(Duration::from_secs(1), self.sock.recv_from(&mut buf)).await
            {
                let (n, from) = r.unwrap();
                return (String::from_utf8_lossy(&buf[..n]).into_owned(), from);
            }
        }
        panic!("no answer to {msg:?} from {to}");
    }

    /// The edge name in an answer `name:msg`.
    pub async fn edge_of(&self, to: SocketAddr, msg: &str) -> String {
        let (answer, _) = self.ask(to, msg).await;
        let (edge, echoed) = answer.split_once(':').unwrap();
        assert_eq!(echoed, msg);
        edge.to_owned()
    }
}

/// Waits until `check` holds on the sprayer's edge status, bounded by `limit`.
pub async fn wait_health(
    sprayer: &sprayer::Sprayer,
    limit: Duration,
    check: impl Fn(&[sprayer::EdgeStatus]) -> bool,
) {
    let mut rx = sprayer.health_changes();
    tokio::time::timeout(limit, async {
        loop {
            if check(&sprayer.edge_status()) {
                return;
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("health state reached in time");
}

pub fn is_up(status: &[sprayer::EdgeStatus], name: &str) -> Option<bool> {
    status.iter().find(|s| s.name == name).map(|s| s.up)
}

pub async fn tcp_roundtrip(s: &mut TcpStream, msg: &str) -> String {
    s.write_all(msg.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    // The echo answers "name:msg" in one write; read until it is complete.
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed");
            got.extend_from_slice(&buf[..n]);
            if got.ends_with(msg.as_bytes()) {
                return;
            }
        }
    })
    .await
    .expect("tcp answer in time");
    String::from_utf8(got).unwrap()
}

/// The value of one sample line `name{labels} value` in Prometheus text.
pub fn metric(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name_and_labels)
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no metric {name_and_labels} in\n{text}"))
}
