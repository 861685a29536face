//! The edge on real sockets: stand-in containers on `sip-stack`, a raw UDP
//! caller, two edges sharing one public address.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use balance::{Backend, rendezvous_order};
use common::{Caller, PUBLIC, StandIn, edge, token_of_response};
use edge::{Edge, HealthConfig};
use sip_message::{SipMessage, TransportKind};

fn owner(key: &str, nodes: &[&str]) -> String {
    let backends: Vec<Backend> = nodes.iter().map(|n| Backend::new(*n, 1)).collect();
    rendezvous_order(key.as_bytes(), &backends)
        .next()
        .unwrap()
        .id
        .clone()
}

async fn three() -> (StandIn, StandIn, StandIn) {
    (
        StandIn::start("c1").await,
        StandIn::start("c2").await,
        StandIn::start("c3").await,
    )
}

fn who<'a>(all: &'a [&'a StandIn], call_id: &str, method: &str) -> Vec<&'a str> {
    all.iter()
        .filter(|c| c.methods(call_id).iter().any(|m| m == method))
        .map(|c| c.node.as_str())
        .collect()
}

#[tokio::test]
async fn calls_spread_by_call_id_and_dialogs_follow_the_token() {
    let (c1, c2, c3) = three().await;
    let all = [&c1, &c2, &c3];
    let edge = edge(&all).await;
    let to = edge.sip_addr(TransportKind::Udp).unwrap();
    let caller = Caller::new().await;
    let mut per_node: HashMap<String, u32> = HashMap::new();
    for i in 0..30 {
        let call_id = format!("call-{i}@test");
        caller
            .send(
                to,
                &caller.invite(&call_id, "bob", &format!("z9hG4bKinv{i}"), ""),
            )
            .await;
        let (ok, from) = caller.expect(200).await;
        // Responses come back through the edge.
        assert_eq!(from, to);
        assert_eq!(ok.call_id(), Some(call_id.as_str()));
        let token = token_of_response(&ok);
        let node = token.split('.').next().unwrap().to_owned();
        assert_eq!(node, owner(&call_id, &["c1", "c2", "c3"]), "{call_id}");
        assert_eq!(who(&all, &call_id, "INVITE"), [node.as_str()]);
        // In-dialog ACK and BYE carry the token in the Route.
        let route = format!("Route: <sip:{PUBLIC};lr;sbt={token}>\r\n");
        let uri = format!("sip:{node}@{PUBLIC};sbt={token}");
        let ack = caller.request(
            "ACK",
            &uri,
            &call_id,
            1,
            &format!("z9hG4bKack{i}"),
            &format!("{node}tag"),
            &route,
        );
        caller.send(to, &ack).await;
        let bye = caller.request(
            "BYE",
            &uri,
            &call_id,
            2,
            &format!("z9hG4bKbye{i}"),
            &format!("{node}tag"),
            &route,
        );
        caller.send(to, &bye).await;
        let (ok, _) = caller.expect(200).await;
        assert_eq!(ok.cseq().unwrap().0, 2);
        assert_eq!(who(&all, &call_id, "BYE"), [node.as_str()]);
        *per_node.entry(node).or_default() += 1;
    }
    assert_eq!(per_node.len(), 3, "{per_node:?}");
    // The ACKs went to the same containers (they are not answered, so check
    // after the BYEs, which were sent after them on the same path).
    for i in 0..30 {
        let call_id = format!("call-{i}@test");
        assert_eq!(who(&all, &call_id, "ACK"), who(&all, &call_id, "INVITE"));
    }
    edge.shutdown().await;
}

#[tokio::test]
async fn cancel_reaches_the_invite_container() {
    let (c1, c2, c3) = three().await;
    let all = [&c1, &c2, &c3];
    let edge = edge(&all).await;
    let to = edge.sip_addr(TransportKind::Udp).unwrap();
    let caller = Caller::new().await;
    for i in 0..6 {
        let call_id = format!("cancel-{i}@test");
        let branch = format!("z9hG4bKslow{i}");
        caller
            .send(to, &caller.invite(&call_id, "slow", &branch, ""))
            .await;
        caller.expect(180).await;
        let cancel = caller.request(
            "CANCEL",
            "sip:slow@example.com",
            &call_id,
            1,
            &branch,
            "",
            "",
        );
        caller.send(to, &cancel).await;
        // 200 for the CANCEL and 487 for the INVITE, in either order.
        let mut got = Vec::new();
        for _ in 0..4 {
            let (m, _) = caller.recv().await;
            got.push((m.status().unwrap(), m.cseq().unwrap().1.as_str().to_owned()));
            if got.iter().any(|g| g.0 == 487) && got.iter().any(|g| g.0 == 200 && g.1 == "CANCEL") {
                break;
            }
        }
        assert!(got.iter().any(|g| g.0 == 487), "{got:?}");
        let invite_at = who(&all, &call_id, "INVITE");
        assert_eq!(invite_at.len(), 1);
        assert_eq!(who(&all, &call_id, "CANCEL"), invite_at);
        // The caller ACKs the 487 (same branch as the INVITE, §17.1.1.3).
        let ack = caller.request(
            "ACK",
            "sip:slow@example.com",
            &call_id,
            1,
            &branch,
            &format!("{}tag", invite_at[0]),
            "",
        );
        caller.send(to, &ack).await;
    }
    edge.shutdown().await;
}

#[tokio::test]
async fn retransmission_through_a_second_edge_hits_the_same_transaction() {
    let (c1, c2, c3) = three().await;
    let all = [&c1, &c2, &c3];
    let a = edge(&all).await;
    let b = edge(&all).await;
    let (to_a, to_b) = (
        a.sip_addr(TransportKind::Udp).unwrap(),
        b.sip_addr(TransportKind::Udp).unwrap(),
    );
    let caller = Caller::new().await;
    let call_id = "retrans@test";
    let invite = caller.invite(call_id, "slow", "z9hG4bKretrans", "");
    caller.send(to_a, &invite).await;
    let (_, from) = caller.expect(180).await;
    assert_eq!(from, to_a);
    // The same bytes through edge B: the same Via reaches the container,
    // whose INVITE transaction answers the retransmission with its last
    // provisional, back through B.
    caller.send(to_b, &invite).await;
    // The container answers the retransmission with its last provisional,
    // to where its transaction answers (edge A, which the first copy came
    // through); what matters is that B forwarded it and the container did
    // not see a new transaction.
    caller.expect(180).await;
    let forwarded_by_b: u64 = b
        .view()
        .members()
        .iter()
        .map(|m| {
            m.data
                .counters
                .sip_in
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert_eq!(forwarded_by_b, 1);
    let at = who(&all, call_id, "INVITE");
    assert_eq!(at.len(), 1);
    let node = all.iter().find(|c| c.node == at[0]).unwrap();
    assert_eq!(
        node.methods(call_id),
        ["INVITE"],
        "the retransmission made a second transaction"
    );
    let cancel = caller.request(
        "CANCEL",
        "sip:slow@example.com",
        call_id,
        1,
        "z9hG4bKretrans",
        "",
        "",
    );
    caller.send(to_b, &cancel).await;
    caller.expect(487).await;
    assert_eq!(node.methods(call_id), ["INVITE", "CANCEL"]);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn max_forwards_zero_is_483_and_a_loop_is_482() {
    let (c1, c2, c3) = three().await;
    let edge = edge(&[&c1, &c2, &c3]).await;
    let to = edge.sip_addr(TransportKind::Udp).unwrap();
    let caller = Caller::new().await;
    let inv = caller
        .invite("mf0@test", "bob", "z9hG4bKmf0", "")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    caller.send(to, &inv).await;
    let (r, _) = caller.expect(483).await;
    assert_eq!(r.reason(), Some("Too Many Hops"));

    // A request that carries the Via this edge would add: a loop.
    let first = caller.invite("loop@test", "bob", "z9hG4bKloop", "");
    let msg = SipMessage::parse(bytes::Bytes::from(first.clone())).unwrap();
    let ours = edge::derive_branch(&msg, &msg.top_via().unwrap());
    let looped = first.replacen(
        "Max-Forwards",
        &format!("Via: SIP/2.0/UDP {PUBLIC};branch={ours};rport\r\nMax-Forwards"),
        1,
    );
    caller.send(to, &looped).await;
    let (r, _) = caller.expect(482).await;
    assert_eq!(r.reason(), Some("Loop Detected"));

    // A request the edge cannot forward: 400 naming the fault.
    let bad = caller
        .invite("x@test", "bob", "z9hG4bKbad", "")
        .replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
    caller.send(to, &bad).await;
    let (r, _) = caller.expect(400).await;
    assert_eq!(
        r.reason(),
        Some("CSeq method does not match the request method")
    );
    assert_eq!(
        edge.counters()
            .replied_483
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    edge.shutdown().await;
}

#[tokio::test]
async fn a_container_that_stops_answering_goes_down_and_its_dialogs_fail_over() {
    let (c1, c2, c3) = three().await;
    let all = [&c1, &c2, &c3];
    let health = HealthConfig {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(100),
        rise: 2,
        fall: 2,
    };
    let edge = Edge::start(common::edge_config(&all, health))
        .await
        .unwrap();
    let to = edge.sip_addr(TransportKind::Udp).unwrap();
    let caller = Caller::new().await;
    // Find a call on c2.
    let mut dialog = None;
    for i in 0..40 {
        let call_id = format!("fo-{i}@test");
        if owner(&call_id, &["c1", "c2", "c3"]) != "c2" {
            continue;
        }
        caller
            .send(
                to,
                &caller.invite(&call_id, "bob", &format!("z9hG4bKfo{i}"), ""),
            )
            .await;
        let (ok, _) = caller.expect(200).await;
        dialog = Some((call_id, token_of_response(&ok)));
        break;
    }
    let (call_id, token) = dialog.unwrap();
    c2.silent.store(true, std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    // Bounded wait: fall (2) probes of interval + timeout, plus slack.
    let mut down = false;
    for _ in 0..100 {
        if edge.view().get("c2").unwrap().state == balance::State::Down {
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    assert!(down, "c2 not marked down");
    assert!(
        took < Duration::from_millis(100 * 3 + 100 + 300),
        "took {took:?}"
    );
    // The dialog's BYE goes to the first container in rendezvous order of
    // the token that is up.
    let backends = [
        Backend::new("c1", 1),
        Backend::new("c2", 1),
        Backend::new("c3", 1),
    ];
    let expected = rendezvous_order(token.as_bytes(), &backends)
        .find(|b| b.id != "c2")
        .unwrap()
        .id
        .clone();
    let route = format!("Route: <sip:{PUBLIC};lr;sbt={token}>\r\n");
    let bye = caller.request(
        "BYE",
        "sip:c2@example.com",
        &call_id,
        2,
        "z9hG4bKfobye",
        "c2tag",
        &route,
    );
    caller.send(to, &bye).await;
    let (ok, _) = caller.expect(200).await;
    assert_eq!(ok.cseq().unwrap().0, 2);
    assert_eq!(who(&all, &call_id, "BYE"), [expected.as_str()]);
    let failovers: u64 = edge
        .view()
        .members()
        .iter()
        .map(|m| {
            m.data
                .counters
                .failovers
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert_eq!(failovers, 1);
    // Answering again brings it back after `rise` probes.
    c2.silent.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut up = false;
    for _ in 0..100 {
        if edge.view().get("c2").unwrap().state == balance::State::Up {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up, "c2 did not come back");
    edge.shutdown().await;
}

#[tokio::test]
async fn a_503_with_retry_after_steers_new_calls_away() {
    let (c1, c2, c3) = three().await;
    let all = [&c1, &c2, &c3];
    let edge = edge(&all).await;
    let to = edge.sip_addr(TransportKind::Udp).unwrap();
    let caller = Caller::new().await;
    // A call that hashes to c1 meets a busy c1: 503 Retry-After: 30.
    let call_id = (0..50)
        .map(|i| format!("ovl-{i}@test"))
        .find(|c| owner(c, &["c1", "c2", "c3"]) == "c1")
        .unwrap();
    caller
        .send(to, &caller.invite(&call_id, "busy", "z9hG4bKovl", ""))
        .await;
    let (r, _) = caller.expect(503).await;
    assert_eq!(r.call_id(), Some(call_id.as_str()));
    assert!(matches!(
        edge.view().get("c1").unwrap().state,
        balance::State::Overloaded { .. }
    ));
    // New calls that would hash to c1 go elsewhere now.
    for i in 0..40 {
        let call_id = format!("after-{i}@test");
        caller
            .send(
                to,
                &caller.invite(&call_id, "bob", &format!("z9hG4bKaft{i}"), ""),
            )
            .await;
        caller.expect(200).await;
        assert_ne!(who(&all, &call_id, "INVITE"), ["c1"]);
    }
    // A 503 from an address that is not a container is not believed.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let forged = format!(
        "SIP/2.0 503 Service Unavailable\r\nVia: SIP/2.0/UDP {PUBLIC};branch=z9hG4bK-sbx;rport\r\n\
         Via: SIP/2.0/UDP {};branch=z9hG4bKx;rport\r\nTo: <sip:bob@example.com>;tag=x\r\n\
         From: <sip:alice@example.com>;tag=caller\r\nCall-ID: forged@test\r\nCSeq: 1 INVITE\r\n\
         Retry-After: 30\r\nContent-Length: 0\r\n\r\n",
        caller.addr
    );
    sock.send_to(forged.as_bytes(), to).await.unwrap();
    caller.expect(503).await;
    assert_eq!(edge.view().get("c2").unwrap().state, balance::State::Up);
    assert_eq!(edge.view().get("c3").unwrap().state, balance::State::Up);
    edge.shutdown().await;
}

#[tokio::test]
async fn udp_reader_threads_share_the_port_and_stop_at_shutdown() {
    let c1 = StandIn::start("c1").await;
    let mut config = common::edge_config(&[&c1], common::quiet_health());
    config.listen.udp_threads = 3;
    let edge = Edge::start(config).await.unwrap();
    let to = edge.sip_addr(TransportKind::Udp).unwrap();
    // Callers on many ports: the kernel spreads their flows over the three
    // sockets; every one is served, and answered from the one address.
    for i in 0..12 {
        let caller = Caller::new().await;
        let call_id = format!("threads-{i}@test");
        caller
            .send(
                to,
                &caller.invite(&call_id, "bob", &format!("z9hG4bKthr{i}"), ""),
            )
            .await;
        let (ok, from) = caller.expect(200).await;
        assert_eq!(from, to);
        assert_eq!(ok.call_id(), Some(call_id.as_str()));
    }
    assert!(
        edge.counters()
            .sip_received
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 24
    );
    edge.shutdown().await;
    // Every reader has ended and closed its socket: the port is free
    // again for a plain (non-shared) bind.
    std::net::UdpSocket::bind(to).expect("the UDP port is free after shutdown");
}
