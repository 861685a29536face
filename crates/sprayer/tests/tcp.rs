//! TCP through a real sprayer to real echo edges on 127.0.0.1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::{Backend, config, fast_health, is_up, metric, tcp_roundtrip, wait_health};
use sprayer::{Proto, Sprayer};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

async fn edges(n: usize) -> Vec<Backend> {
    let mut out = Vec::new();
    for i in 1..=n {
        out.push(Backend::start(&format!("e{i}")).await);
    }
    out
}

fn edge_in(answer: &str) -> String {
    answer.split_once(':').unwrap().0.to_owned()
}

#[tokio::test]
async fn proxies_both_ways_on_one_edge() {
    let bs = edges(2).await;
    let s = Sprayer::start(config(
        bs.iter().map(Backend::spec).collect(),
        fast_health(),
    ))
    .await
    .unwrap();
    let addr = s.local_addr("sip", Proto::Tcp).unwrap();
    assert_eq!(
        addr.port(),
        s.local_addr("sip", Proto::Udp).unwrap().port(),
        "one port for both"
    );
    let mut c = TcpStream::connect(addr).await.unwrap();
    let first = tcp_roundtrip(&mut c, "hello").await;
    let edge = edge_in(&first);
    assert_eq!(first, format!("{edge}:hello"));
    let big = "x".repeat(20_000);
    let got = tcp_roundtrip(&mut c, &big).await;
    assert!(got.ends_with(&big));
    assert!(got.starts_with(&format!("{edge}:")));
    // Bytes to the edge are counted before the edge can answer.
    let m = s.metrics_text();
    let up = metric(
        &m,
        &format!("sprayer_edge_bytes_total{{edge=\"{edge}\",proto=\"tcp\",direction=\"to_edge\"}}"),
    );
    assert_eq!(up, 5 + 20_000);
    assert_eq!(
        metric(
            &m,
            &format!("sprayer_edge_tcp_connections_total{{edge=\"{edge}\"}}")
        ),
        1
    );
    assert_eq!(
        metric(&m, &format!("sprayer_edge_tcp_active{{edge=\"{edge}\"}}")),
        1
    );
    s.shutdown().await;
}

/// An edge that refuses connections (its SIP TCP gone, its health still
/// fine): every new connection still succeeds, through the next edge.
#[tokio::test]
async fn a_refused_connect_fails_over_to_the_next_edge() {
    let mut bs = edges(2).await;
    let spec0 = bs[0].spec();
    bs[0].kill(); // SIP and HTTP gone ...
    let s = Sprayer::start(config(vec![spec0, bs[1].spec()], fast_health()))
        .await
        .unwrap();
    // ... but e1 starts "up" and is probed only now: connect right away.
    let addr = s.local_addr("sip", Proto::Tcp).unwrap();
    for i in 0..20 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        let got = tcp_roundtrip(&mut c, &format!("m{i}")).await;
        assert_eq!(edge_in(&got), "e2");
    }
    let m = s.metrics_text();
    assert_eq!(
        metric(&m, "sprayer_edge_tcp_connections_total{edge=\"e1\"}"),
        0
    );
    s.shutdown().await;
}

/// A dead edge (health unreachable) closes its connections; the client
/// reconnects and lands on another edge.
#[tokio::test]
async fn a_dead_edge_closes_its_connections_new_ones_avoid_it() {
    let mut bs = edges(2).await;
    let s = Sprayer::start(config(
        bs.iter().map(Backend::spec).collect(),
        fast_health(),
    ))
    .await
    .unwrap();
    let addr = s.local_addr("sip", Proto::Tcp).unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let edge = edge_in(&tcp_roundtrip(&mut c, "hi").await);
    let idx = if edge == "e1" { 0 } else { 1 };
    // Only its HTTP stops: the SIP connection would live on by itself; the
    // sprayer must close it because the edge is found unreachable.
    bs[idx].stop_http();
    wait_health(&s, Duration::from_secs(5), |st| {
        is_up(st, &edge) == Some(false)
    })
    .await;
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(r, Ok(0) | Err(_)), "closed, got {r:?}");
    for i in 0..5 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        let got = tcp_roundtrip(&mut c, &format!("again{i}")).await;
        assert_ne!(edge_in(&got), edge);
    }
    s.shutdown().await;
}

/// A draining edge (health 503) takes no new connections but keeps the
/// ones it has.
#[tokio::test]
async fn a_draining_edge_keeps_its_connections() {
    let bs = edges(2).await;
    let s = Sprayer::start(config(
        bs.iter().map(Backend::spec).collect(),
        fast_health(),
    ))
    .await
    .unwrap();
    let addr = s.local_addr("sip", Proto::Tcp).unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let edge = edge_in(&tcp_roundtrip(&mut c, "hi").await);
    let idx = if edge == "e1" { 0 } else { 1 };
    bs[idx].set_healthy(false);
    wait_health(&s, Duration::from_secs(5), |st| {
        is_up(st, &edge) == Some(false)
    })
    .await;
    assert_eq!(
        tcp_roundtrip(&mut c, "still").await,
        format!("{edge}:still")
    );
    for i in 0..5 {
        let mut n = TcpStream::connect(addr).await.unwrap();
        let got = tcp_roundtrip(&mut n, &format!("new{i}")).await;
        assert_ne!(edge_in(&got), edge);
    }
    s.shutdown().await;
}

#[tokio::test]
async fn the_http_service_targets_the_edges_http_port() {
    let bs = edges(1).await;
    let mut cfg = config(bs.iter().map(Backend::spec).collect(), fast_health());
    cfg.services.push(sprayer::ServiceConfig {
        name: "http".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        protocols: vec![Proto::Tcp],
        target: sprayer::Target::Http,
    });
    let s = Sprayer::start(cfg).await.unwrap();
    assert!(s.local_addr("http", Proto::Udp).is_none());
    let addr = s.local_addr("http", Proto::Tcp).unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    c.write_all(b"GET /_sb/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.ends_with("ok"), "{got}");
    s.shutdown().await;
}
