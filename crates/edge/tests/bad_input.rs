//! Bad input at the edge, on real sockets: datagrams that are not SIP, too
//! large, or unanswerable are dropped and counted by reason and never reach
//! a container; a flood from one source is throttled and counted; everyone
//! else keeps being served meanwhile.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{Caller, PUBLIC, StandIn, edge_config, http, quiet_health, token_of_response};
use edge::{DropReason, Edge, LimitsConfig, PROBE_BRANCH_PREFIX};
use sip_message::TransportKind;

/// A branch for a request of `call_id` (a token: no `@`).
fn branch(kind: &str, call_id: &str) -> String {
    let id: String = call_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("z9hG4bK{kind}{id}")
}

/// A whole call from `caller` through the edge at `to`: INVITE, 200, ACK,
/// BYE, 200 (the BYE by the dialog's token).
async fn call(caller: &Caller, to: SocketAddr, call_id: &str) {
    caller
        .send(
            to,
            &caller.invite(call_id, "bob", &branch("i", call_id), ""),
        )
        .await;
    let (ok, _) = caller.expect(200).await;
    assert_eq!(ok.call_id(), Some(call_id));
    let token = token_of_response(&ok);
    let node = token.split('.').next().unwrap().to_owned();
    let route = format!("Route: <sip:{PUBLIC};lr;sbt={token}>\r\n");
    let uri = format!("sip:{node}@{PUBLIC};sbt={token}");
    let tag = format!("{node}tag");
    let ack = caller.request("ACK", &uri, call_id, 1, &branch("a", call_id), &tag, &route);
    caller.send(to, &ack).await;
    let bye = caller.request("BYE", &uri, call_id, 2, &branch("b", call_id), &tag, &route);
    caller.send(to, &bye).await;
    let (ok, _) = caller.expect(200).await;
    assert_eq!(ok.cseq().unwrap().1.as_str(), "BYE");
}

/// Every request the containers saw, but the edge's probes.
fn seen_call_ids(all: &[&StandIn]) -> Vec<String> {
    all.iter()
        .flat_map(|c| c.seen.lock().unwrap().clone())
        .map(|s| s.call_id)
        .filter(|c| !c.starts_with(PROBE_BRANCH_PREFIX))
        .collect()
}

/// Deterministic bytes that are not SIP.
fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn garbage_oversized_and_unanswerable_datagrams_are_counted_and_not_forwarded() {
    let (c1, c2, c3) = (
        StandIn::start("c1").await,
        StandIn::start("c2").await,
        StandIn::start("c3").await,
    );
    let all = [&c1, &c2, &c3];
    let mut config = edge_config(&all, quiet_health());
    config.limits.max_message_size = 4096;
    // One UDP reader: the edge then decides datagrams in the order they
    // arrive, which the checks below rely on (with a socket per core, two
    // clients' datagrams may be read by different threads).
    config.listen.udp_threads = 1;
    let edge = Edge::start(config).await.unwrap();
    let to = edge.sip_addr(TransportKind::Udp).unwrap();
    let bad = Caller::new().await;
    let good = Caller::new().await;

    call(&good, to, "good-1@test").await;

    // Not SIP: random bytes, a message whose Content-Length promises more
    // than the datagram holds, a message cut inside its headers.
    bad.sock.send_to(&noise(300, 7), to).await.unwrap();
    let invite = bad.invite("truncated@test", "bob", "z9hG4bKtr", "");
    let truncated = invite.replace(
        "Content-Length: 0\r\n\r\n",
        "Content-Length: 500\r\n\r\nv=0\r\n",
    );
    bad.send(to, &truncated).await;
    bad.send(to, &invite[..invite.len() / 2]).await;
    // A keepalive is not a message: not counted at all.
    bad.send(to, "\r\n\r\n").await;
    // Too large: a well-formed INVITE over the 4096-byte limit.
    let padding = format!("X-Padding: {}\r\n", "a".repeat(5000));
    bad.send(
        to,
        &bad.invite("large@test", "bob", "z9hG4bKlarge", &padding),
    )
    .await;
    // A request whose Via cannot route an answer: dropped, not answered.
    let bad_via = bad.invite("badvia@test", "bob", "z9hG4bKbv", "").replacen(
        "Via: SIP/2.0/UDP ",
        "Via: SIP/2.0/UDP ;;;",
        1,
    );
    bad.send(to, &bad_via).await;
    // A response that did not come through this edge.
    let stray = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKstray\r\nTo: <sip:bob@example.com>;tag=x\r\n\
         From: <sip:alice@example.com>;tag=y\r\nCall-ID: stray@test\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        bad.addr
    );
    bad.send(to, &stray).await;
    // A request without a Call-ID but with a usable Via: 400 naming it.
    let no_call_id = bad
        .invite("nocallid@test", "bob", "z9hG4bKnc", "")
        .replace("Call-ID: nocallid@test\r\n", "");
    bad.send(to, &no_call_id).await;
    let (r, from) = bad.expect(400).await;
    assert_eq!(from, to);
    assert_eq!(r.reason(), Some("Missing Call-ID header"));

    // Meanwhile, and after all that, another client's call goes through.
    // The edge reads its socket in order, so once this call is done every
    // datagram above has been decided.
    call(&good, to, "good-2@test").await;

    let c = edge.counters();
    assert_eq!(c.dropped(DropReason::Unparsable), 3);
    assert_eq!(c.dropped(DropReason::TooLarge), 1);
    assert_eq!(c.dropped(DropReason::Malformed), 1);
    assert_eq!(c.dropped(DropReason::NotOurVia), 1);
    assert_eq!(c.sip_dropped.load(Ordering::Relaxed), 6);
    assert_eq!(c.replied_400.load(Ordering::Relaxed), 1);
    assert_eq!(c.sip_throttled.load(Ordering::Relaxed), 0);
    // Nothing but the good calls reached a container ...
    let mut seen = seen_call_ids(&all);
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["good-1@test", "good-2@test"]);
    // ... and the bad client got nothing but its 400.
    let mut buf = [0u8; 2048];
    assert!(bad.sock.try_recv_from(&mut buf).is_err());

    let (_, text) = http(edge.http_addr(), "GET", "/_sb/metrics", "", "").await;
    for line in [
        "sb_edge_sip_dropped_total{reason=\"unparsable\"} 3",
        "sb_edge_sip_dropped_total{reason=\"too_large\"} 1",
        "sb_edge_sip_dropped_total{reason=\"malformed\"} 1",
        "sb_edge_sip_dropped_total{reason=\"not_our_via\"} 1",
        "sb_edge_sip_dropped_total{reason=\"ack\"} 0",
        "sb_edge_sip_replies_total{status=\"400\"} 1",
        "sb_edge_sip_throttled_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    edge.shutdown().await;
}

/// Sends an OPTIONS and waits for its 200, retransmitting the same request
/// (as a UAC's Timer E would) every 200 ms, at most 25 times.
async fn options(caller: &Caller, to: SocketAddr, call_id: &str) -> Duration {
    let req = caller.request(
        "OPTIONS",
        "sip:bob@example.com",
        call_id,
        1,
        &branch("o", call_id),
        "",
        "",
    );
    let started = Instant::now();
    let mut buf = vec![0u8; 65536];
    for _ in 0..25 {
        caller.send(to, &req).await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        while let Ok(r) = tokio::time::timeout_at(deadline, caller.sock.recv_from(&mut buf)).await {
            let (n, _) = r.unwrap();
            let text = String::from_utf8_lossy(&buf[..n]);
            if text.starts_with("SIP/2.0 200") && text.contains(call_id) {
                return started.elapsed();
            }
        }
    }
    panic!("OPTIONS {call_id} not answered in 25 tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_source_is_throttled_while_others_are_served() {
    let (c1, c2, c3) = (
        StandIn::start("c1").await,
        StandIn::start("c2").await,
        StandIn::start("c3").await,
    );
    let all = [&c1, &c2, &c3];
    let mut config = edge_config(&all, quiet_health());
    config.limits = LimitsConfig {
        per_source_rps: 200,
        per_source_burst: 200,
        ..LimitsConfig::default()
    };
    // One UDP reader: the edge then decides datagrams in the order they
    // arrive, which the checks below rely on (with a socket per core, two
    // clients' datagrams may be read by different threads).
    config.listen.udp_threads = 1;
    let edge = Edge::start(config).await.unwrap();
    let to = edge.sip_addr(TransportKind::Udp).unwrap();
    let good = Caller::new().await;
    options(&good, to, "before@test").await;

    // 20,000 well-formed OPTIONS from one socket, as fast as it can send
    // them; it says when the first 1,000 are out.
    const FLOOD: usize = 20_000;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let flood = std::thread::spawn(move || {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let me = sock.local_addr().unwrap();
        let mut started_tx = Some(started_tx);
        let begun = Instant::now();
        for i in 0..FLOOD {
            let req = format!(
                "OPTIONS sip:bob@example.com SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {me};branch=z9hG4bKflood{i};rport\r\n\
                 Max-Forwards: 70\r\nTo: <sip:bob@example.com>\r\n\
                 From: <sip:flood@example.com>;tag=f\r\nCall-ID: flood-{i}@test\r\n\
                 CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            );
            // A full socket buffer may refuse one; a flood does not care.
            let _ = sock.send_to(req.as_bytes(), to);
            if i == 1_000
                && let Some(tx) = started_tx.take()
            {
                let _ = tx.send(());
            }
        }
        begun.elapsed()
    });
    started_rx.await.unwrap();
    // While the flood runs (and while the edge works through what it
    // queued), another client's requests are still answered.
    let flood_started = Instant::now();
    let mut during = 0;
    for i in 0..5 {
        options(&good, to, &format!("during-{i}@test")).await;
        if !flood.is_finished() {
            during += 1;
        }
    }
    let flood_took = tokio::task::spawn_blocking(move || flood.join().unwrap())
        .await
        .unwrap();
    // The edge reads its one socket in order (one reader thread, above):
    // once this is answered, every flood datagram it received has been
    // decided.
    options(&good, to, "after@test").await;
    let elapsed = flood_started.elapsed() + flood_took;

    let throttled = edge.counters().sip_throttled.load(Ordering::Relaxed);
    let seen = seen_call_ids(&all);
    let flood_forwarded = seen.iter().filter(|c| c.starts_with("flood-")).count() as u64;
    // What the bucket allows: the burst, plus the rate over the time the
    // flood lasted (generously bounded by the whole exchange).
    let allowed = 200 + (200.0 * elapsed.as_secs_f64()).ceil() as u64;
    eprintln!(
        "flood: {FLOOD} sent in {flood_took:?}, {throttled} throttled, {flood_forwarded} \
         forwarded (bound {allowed}), {during} good requests answered while it was sending"
    );
    assert!(flood_forwarded <= allowed, "{flood_forwarded} > {allowed}");
    assert!(
        flood_forwarded >= 200,
        "the burst was not admitted: {flood_forwarded}"
    );
    assert!(throttled >= 5_000, "only {throttled} throttled");
    // The good client's requests all reached a container.
    for id in ["before@test", "after@test"]
        .into_iter()
        .map(str::to_owned)
        .chain((0..5).map(|i| format!("during-{i}@test")))
    {
        assert!(seen.contains(&id), "{id} never reached a container");
    }
    let (_, text) = http(edge.http_addr(), "GET", "/_sb/metrics", "", "").await;
    let line = format!("sb_edge_sip_throttled_total {throttled}");
    assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    edge.shutdown().await;
}

#[tokio::test]
async fn the_containers_are_never_throttled() {
    // One container answers every call, far above a limit of 1 message a
    // second with a burst of 3 (each caller sends exactly 3: INVITE, ACK,
    // BYE, so no caller is over it).
    let c1 = StandIn::start("c1").await;
    let mut config = edge_config(&[&c1], quiet_health());
    config.limits = LimitsConfig {
        per_source_rps: 1,
        per_source_burst: 3,
        ..LimitsConfig::default()
    };
    // One UDP reader: the edge then decides datagrams in the order they
    // arrive, which the checks below rely on (with a socket per core, two
    // clients' datagrams may be read by different threads).
    config.listen.udp_threads = 1;
    let edge = Edge::start(config).await.unwrap();
    let to = edge.sip_addr(TransportKind::Udp).unwrap();
    for i in 0..10 {
        let caller = Caller::new().await;
        call(&caller, to, &format!("exempt-{i}@test")).await;
    }
    assert_eq!(edge.counters().sip_throttled.load(Ordering::Relaxed), 0);
    // A fourth message from one caller is over its limit: dropped, counted.
    let caller = Caller::new().await;
    call(&caller, to, "limited@test").await;
    caller
        .send(to, &caller.invite("limited-2@test", "bob", "z9hG4bKl2", ""))
        .await;
    // The edge reads its socket in order: once another caller's call is
    // through, that INVITE has been decided.
    call(&Caller::new().await, to, "after@test").await;
    assert_eq!(edge.counters().sip_throttled.load(Ordering::Relaxed), 1);
    assert!(c1.methods("limited-2@test").is_empty());
    edge.shutdown().await;
}
