//! UDP through a real sprayer to real echo edges on 127.0.0.1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Backend, Client, config, fast_health, is_up, metric, wait_health};
use sprayer::{Proto, Sprayer};

async fn edges(n: usize) -> Vec<Backend> {
    let mut out = Vec::new();
    for i in 1..=n {
        out.push(Backend::start(&format!("e{i}")).await);
    }
    out
}

#[tokio::test]
async fn one_client_sticks_to_one_edge_and_hears_the_sprayer() {
    let bs = edges(3).await;
    let s = Sprayer::start(config(
        bs.iter().map(Backend::spec).collect(),
        fast_health(),
    ))
    .await
    .unwrap();
    let addr = s.local_addr("sip", Proto::Udp).unwrap();
    let c = Client::new().await;
    let mut seen = None;
    for i in 0..10 {
        let (answer, from) = c.ask(addr, &format!("m{i}")).await;
        assert_eq!(from, addr, "the answer comes from the sprayer's address");
        let edge = answer.split_once(':').unwrap().0.to_owned();
        assert_eq!(
            *seen.get_or_insert(edge.clone()),
            edge,
            "one flow, one edge"
        );
    }
    let m = s.metrics_text();
    assert_eq!(metric(&m, "sprayer_udp_flows{service=\"sip\"}"), 1);
    let edge = seen.unwrap();
    let sent = metric(
        &m,
        &format!(
            "sprayer_edge_packets_total{{edge=\"{edge}\",proto=\"udp\",direction=\"to_edge\"}}"
        ),
    );
    assert!(sent >= 10, "{m}");
    s.shutdown().await;
}

#[tokio::test]
async fn many_clients_spread_over_all_edges() {
    let bs = edges(3).await;
    let s = Sprayer::start(config(
        bs.iter().map(Backend::spec).collect(),
        fast_health(),
    ))
    .await
    .unwrap();
    let addr = s.local_addr("sip", Proto::Udp).unwrap();
    let mut count: HashMap<String, usize> = HashMap::new();
    for i in 0..150 {
        let c = Client::new().await;
        *count
            .entry(c.edge_of(addr, &format!("hi{i}")).await)
            .or_default() += 1;
    }
    assert_eq!(count.len(), 3, "{count:?}");
    for (e, n) in &count {
        // Ideal 50 each; a binomial spread stays well within 25..80.
        assert!((25..=80).contains(n), "{e}: {n} of 150 ({count:?})");
    }
    s.shutdown().await;
}

/// An edge whose health fails is out within fall*interval+timeout; its
/// clients move to the others; no other client moves.
#[tokio::test]
async fn a_failing_edge_is_out_in_time_and_only_its_clients_move() {
    let bs = edges(3).await;
    let health = fast_health();
    let s = Sprayer::start(config(bs.iter().map(Backend::spec).collect(), health))
        .await
        .unwrap();
    let addr = s.local_addr("sip", Proto::Udp).unwrap();
    let mut clients = Vec::new();
    for i in 0..60 {
        let c = Client::new().await;
        let e = c.edge_of(addr, &format!("a{i}")).await;
        clients.push((c, e));
    }
    assert!(clients.iter().any(|(_, e)| e == "e2"), "some client on e2");

    let t0 = Instant::now();
    bs[1].set_healthy(false);
    wait_health(&s, Duration::from_secs(5), |st| {
        is_up(st, "e2") == Some(false)
    })
    .await;
    let took = t0.elapsed();
    let bound = health.interval * health.fall + health.timeout;
    // Slack for a loaded 2-core machine; the bound itself is 200 ms here.
    assert!(
        took <= bound + Duration::from_millis(400),
        "out after {took:?}, bound {bound:?}"
    );

    let mut moved = 0;
    for (i, (c, before)) in clients.iter().enumerate() {
        let now = c.edge_of(addr, &format!("b{i}")).await;
        if before == "e2" {
            assert_ne!(now, "e2", "a client of the failed edge stayed on it");
            moved += 1;
        } else {
            assert_eq!(&now, before, "a client of a healthy edge moved");
        }
    }
    assert!(moved > 0);
    let m = s.metrics_text();
    assert_eq!(metric(&m, "sprayer_edge_up{edge=\"e2\"}"), 0);
    assert_eq!(
        metric(&m, "sprayer_udp_flows_moved_total{service=\"sip\"}"),
        moved
    );

    // It comes back after `rise` good checks; new clients reach it again.
    bs[1].set_healthy(true);
    wait_health(&s, Duration::from_secs(5), |st| {
        is_up(st, "e2") == Some(true)
    })
    .await;
    s.shutdown().await;
}

/// An edge killed outright (SIP and HTTP gone): its clients move.
#[tokio::test]
async fn a_killed_edge_loses_its_clients_to_the_others() {
    let mut bs = edges(2).await;
    let s = Sprayer::start(config(
        bs.iter().map(Backend::spec).collect(),
        fast_health(),
    ))
    .await
    .unwrap();
    let addr = s.local_addr("sip", Proto::Udp).unwrap();
    let mut clients = Vec::new();
    for i in 0..20 {
        let c = Client::new().await;
        let e = c.edge_of(addr, &format!("a{i}")).await;
        clients.push((c, e));
    }
    bs[0].kill();
    wait_health(&s, Duration::from_secs(5), |st| {
        is_up(st, "e1") == Some(false)
    })
    .await;
    for (i, (c, _)) in clients.iter().enumerate() {
        assert_eq!(c.edge_of(addr, &format!("b{i}")).await, "e2");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn set_edges_swaps_the_edge_set() {
    let bs = edges(2).await;
    let s = Sprayer::start(config(vec![bs[0].spec()], fast_health()))
        .await
        .unwrap();
    let addr = s.local_addr("sip", Proto::Udp).unwrap();
    let c = Client::new().await;
    assert_eq!(c.edge_of(addr, "x").await, "e1");
    s.set_edges(vec![bs[1].spec()]);
    assert_eq!(
        c.edge_of(addr, "y").await,
        "e2",
        "the flow of a removed edge moves"
    );
    assert_eq!(s.edge_status().len(), 1);
    s.shutdown().await;
}

#[tokio::test]
async fn the_flow_table_is_bounded() {
    let bs = edges(2).await;
    let mut cfg = config(bs.iter().map(Backend::spec).collect(), fast_health());
    cfg.udp.max_flows = 5;
    let s = Sprayer::start(cfg).await.unwrap();
    let addr = s.local_addr("sip", Proto::Udp).unwrap();
    let mut clients = Vec::new();
    for i in 0..8 {
        let c = Client::new().await;
        let e = c.edge_of(addr, &format!("a{i}")).await;
        clients.push((c, e));
    }
    let m = s.metrics_text();
    assert_eq!(metric(&m, "sprayer_udp_flows{service=\"sip\"}"), 5, "{m}");
    assert_eq!(
        metric(&m, "sprayer_udp_flows_evicted_total{service=\"sip\"}"),
        3,
        "{m}"
    );
    // An evicted client loses only its mapping: the hash sends it to the
    // same edge again.
    let (c, e) = &clients[0];
    assert_eq!(&c.edge_of(addr, "again").await, e);
    s.shutdown().await;
}

/// Idle flows are forgotten after the idle timeout (paused tokio time).
#[tokio::test]
async fn idle_flows_expire() {
    let bs = edges(1).await;
    let mut health = fast_health();
    // One probe at start, none while time is paused below.
    health.interval = Duration::from_secs(3600);
    health.timeout = Duration::from_secs(3600);
    let mut cfg = config(bs.iter().map(Backend::spec).collect(), health);
    cfg.udp.idle_timeout = Duration::from_secs(120);
    let s = Sprayer::start(cfg).await.unwrap();
    let addr = s.local_addr("sip", Proto::Udp).unwrap();
    let c = Client::new().await;
    assert_eq!(c.edge_of(addr, "x").await, "e1");
    assert_eq!(
        metric(&s.metrics_text(), "sprayer_udp_flows{service=\"sip\"}"),
        1
    );

    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(60)).await;
    tokio::task::yield_now().await;
    assert_eq!(
        metric(&s.metrics_text(), "sprayer_udp_flows{service=\"sip\"}"),
        1,
        "not idle long enough"
    );
    let mut steps = 0;
    while metric(&s.metrics_text(), "sprayer_udp_flows{service=\"sip\"}") != 0 {
        steps += 1;
        assert!(steps < 200, "flow never expired");
        tokio::time::advance(Duration::from_secs(1)).await;
        tokio::task::yield_now().await;
    }
    let m = s.metrics_text();
    assert_eq!(
        metric(&m, "sprayer_udp_flows_expired_total{service=\"sip\"}"),
        1
    );
    tokio::time::resume();
    // A new datagram makes a new flow.
    assert_eq!(c.edge_of(addr, "y").await, "e1");
    s.shutdown().await;
}

/// Everything the edge sends on a flow is relayed, not one answer per
/// request: here two answers, then a datagram the edge sends on its own
/// later (a SIP 100 Trying, a 200 OK, a retransmitted 200).
#[tokio::test]
async fn every_datagram_from_the_edge_is_relayed() {
    let health_only = Backend::start("h").await;
    let edge = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let spec = sprayer::EdgeSpec {
        name: "talker".into(),
        sip: edge.local_addr().unwrap(),
        http: health_only.http,
    };
    let s = Sprayer::start(config(vec![spec], fast_health()))
        .await
        .unwrap();
    let addr = s.local_addr("sip", Proto::Udp).unwrap();
    let c = Client::new().await;
    c.sock.send_to(b"INVITE", addr).await.unwrap();
    let mut buf = [0u8; 256];
    let (n, upstream) = tokio::time::timeout(Duration::from_secs(5), edge.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"INVITE");
    assert_ne!(
        upstream,
        c.sock.local_addr().unwrap(),
        "the edge sees the sprayer"
    );
    for msg in [&b"100"[..], b"200", b"200 again"] {
        edge.send_to(msg, upstream).await.unwrap();
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), c.sock.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], msg);
        assert_eq!(from, addr);
    }
    let m = s.metrics_text();
    assert_eq!(
        metric(
            &m,
            "sprayer_edge_packets_total{edge=\"talker\",proto=\"udp\",direction=\"to_client\"}"
        ),
        3
    );
    s.shutdown().await;
}
