//! Cluster membership on real sockets: containers announced in a session
//! store join the edge's view, take traffic, and leave it when their
//! announcement lapses; static containers stay; a store outage keeps the
//! last known list.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Caller, PUBLIC, StandIn, edge_config, http, token_of_response};
use edge::{Edge, EdgeConfig, HealthConfig, MembersConfig, Origin};
use session_store::testing::RedisServer;
use session_store::{Member, MemoryStore, SessionStore, Store};
use sip_message::TransportKind;
use tokio::time::Instant;

/// Polls `cond` every 20 ms until it holds; panics with `what` after
/// `within`. Returns how long it took.
async fn wait_until<F, Fut>(within: Duration, what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A container announcing itself every `period` with `ttl`, as the
/// container does, until stopped.
struct Announcer {
    task: tokio::task::JoinHandle<()>,
}

impl Announcer {
    fn start(store: Store, c: &StandIn, period: Duration, ttl: Duration) -> Announcer {
        let member = Member {
            node: c.node.clone(),
            sip: c.sip.to_string(),
            http: c.http.to_string(),
        };
        Announcer {
            task: tokio::spawn(async move {
                loop {
                    // A store that is down is retried next period.
                    let _ = store.announce(&member, ttl).await;
                    tokio::time::sleep(period).await;
                }
            }),
        }
    }

    /// Stops announcing; returns when no announcement is in flight.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn nodes(edge: &Edge) -> Vec<(String, Origin)> {
    let mut v: Vec<_> = edge
        .view()
        .members()
        .iter()
        .map(|m| (m.backend.id.clone(), m.data.origin))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn has(edge: &Edge, node: &str) -> bool {
    edge.view().get(node).is_some()
}

/// The body the container behind the edge answers for a session token.
async fn http_owner(edge: &Edge, token: &str) -> String {
    let (status, body) = http(
        edge.http_addr(),
        "GET",
        "/app",
        &format!("Cookie: SBSESSION={token}\r\n"),
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn fast_health() -> HealthConfig {
    HealthConfig {
        interval: Duration::from_millis(200),
        timeout: Duration::from_millis(500),
        rise: 2,
        fall: 2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_containers_join_take_traffic_and_leave_when_they_lapse() {
    let (c1, c2, c3) = (
        StandIn::start("c1").await,
        StandIn::start("c2").await,
        StandIn::start("c3").await,
    );
    let interval = Duration::from_millis(100);
    let ttl = Duration::from_secs(1);
    // c3 is static; c1 and c2 come from membership.
    let mut config = edge_config(&[&c3], fast_health());
    config.members = Some(MembersConfig {
        url: "memory".into(),
        interval,
    });
    let store = Store::from(MemoryStore::new());
    let edge = Edge::start_with_members(config, store.clone())
        .await
        .unwrap();
    let a1 = Announcer::start(store.clone(), &c1, Duration::from_millis(300), ttl);
    let a2 = Announcer::start(store.clone(), &c2, Duration::from_millis(300), ttl);
    // c3 also announced, at another address: the static entry wins.
    let impostor = Member {
        node: "c3".into(),
        sip: c1.sip.to_string(),
        http: c1.http.to_string(),
    };
    store
        .announce(&impostor, Duration::from_secs(60))
        .await
        .unwrap();

    wait_until(Duration::from_secs(5), "c1 and c2 join", || async {
        has(&edge, "c1") && has(&edge, "c2")
    })
    .await;
    assert_eq!(
        nodes(&edge),
        [
            ("c1".to_owned(), Origin::Membership),
            ("c2".to_owned(), Origin::Membership),
            ("c3".to_owned(), Origin::Config),
        ]
    );
    assert_eq!(edge.view().get("c3").unwrap().data.config.sip, c3.sip);

    // SIP: new calls spread over all three; every one is answered.
    let caller = Caller::new().await;
    let to = edge.sip_addr(TransportKind::Udp).unwrap();
    let mut owners = std::collections::BTreeSet::new();
    for i in 0..24 {
        caller
            .send(
                to,
                &caller.invite(&format!("m{i}@test"), "bob", &format!("z9hG4bKm{i}"), ""),
            )
            .await;
        let (ok, _) = caller.expect(200).await;
        owners.insert(token_of_response(&ok).split('.').next().unwrap().to_owned());
    }
    assert_eq!(
        owners.into_iter().collect::<Vec<_>>(),
        ["c1", "c2", "c3"],
        "new calls reach the announced containers"
    );
    // HTTP by token reaches each announced container.
    assert_eq!(http_owner(&edge, "c1.00000000000000ab").await, "c1");
    assert_eq!(http_owner(&edge, "c2.00000000000000ab").await, "c2");
    // The health checker probes the announced containers too.
    wait_until(Duration::from_secs(5), "c1 probed", || async {
        edge.view()
            .get("c1")
            .is_some_and(|m| m.data.counters.probes_ok.load(Ordering::Relaxed) > 0)
    })
    .await;

    let (_, text) = http(edge.http_addr(), "GET", "/_sb/metrics", "", "").await;
    for line in [
        "sb_edge_container_source{node=\"c1\",source=\"membership\"} 1",
        "sb_edge_container_source{node=\"c2\",source=\"membership\"} 1",
        "sb_edge_container_source{node=\"c3\",source=\"config\"} 1",
        "sb_edge_members_errors_total 0",
        "sb_edge_members_announced 3",
        "# TYPE sb_edge_members_polls_total counter",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    assert!(edge.counters().members_polls.load(Ordering::Relaxed) > 0);

    // c2 stops announcing: it leaves within the TTL and one poll.
    a2.stop().await;
    let took = wait_until(
        ttl + interval + Duration::from_secs(2),
        "c2 leaves",
        || async { !has(&edge, "c2") },
    )
    .await;
    assert!(
        took <= ttl + interval + Duration::from_millis(500),
        "c2 left after {took:?}"
    );
    assert!(has(&edge, "c1") && has(&edge, "c3"));
    // Its sessions fail over by rendezvous to a survivor.
    let body = http_owner(&edge, "c2.00000000000000ab").await;
    assert!(body == "c1" || body == "c3", "{body}");

    // It comes back when it announces again.
    let a2 = Announcer::start(store.clone(), &c2, Duration::from_millis(300), ttl);
    wait_until(Duration::from_secs(5), "c2 rejoins", || async {
        has(&edge, "c2")
    })
    .await;
    assert_eq!(http_owner(&edge, "c2.00000000000000ab").await, "c2");

    // A static container is never removed by membership, announced or not.
    store
        .announce(&impostor, Duration::from_millis(1))
        .await
        .unwrap();
    a1.stop().await;
    a2.stop().await;
    // Both at once is an empty answer: believed after the settling window.
    wait_until(
        ttl + edge::settle_window(interval) + Duration::from_secs(3),
        "c1 and c2 leave",
        || async { !has(&edge, "c1") && !has(&edge, "c2") },
    )
    .await;
    assert_eq!(nodes(&edge), [("c3".to_owned(), Origin::Config)]);
    edge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_address_is_updated_in_place() {
    let (c1, other) = (StandIn::start("c1").await, StandIn::start("c9").await);
    let mut config = edge_config(&[], fast_health());
    config.members = Some(MembersConfig {
        url: "memory".into(),
        interval: Duration::from_millis(50),
    });
    let store = Store::from(MemoryStore::new());
    let edge = Edge::start_with_members(config, store.clone())
        .await
        .unwrap();
    let mut member = Member {
        node: "c1".into(),
        sip: c1.sip.to_string(),
        http: c1.http.to_string(),
    };
    store
        .announce(&member, Duration::from_secs(60))
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "c1 joins", || async {
        has(&edge, "c1")
    })
    .await;
    assert_eq!(http_owner(&edge, "c1.0000000000000001").await, "c1");
    let counters = std::sync::Arc::clone(&edge.view().get("c1").unwrap().data.counters);
    // c1 restarts elsewhere (the stand-in answers with its own name, c9).
    member.sip = other.sip.to_string();
    member.http = other.http.to_string();
    store
        .announce(&member, Duration::from_secs(60))
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "c1 moves", || async {
        edge.view()
            .get("c1")
            .is_some_and(|m| m.data.config.sip == other.sip)
    })
    .await;
    assert_eq!(http_owner(&edge, "c1.0000000000000001").await, "c9");
    let view = edge.view();
    let m = view.get("c1").unwrap();
    assert_eq!(m.data.origin, Origin::Membership);
    assert_eq!(m.data.config.http, Some(other.http));
    assert!(
        std::sync::Arc::ptr_eq(&m.data.counters, &counters),
        "counters kept"
    );
    drop(view);
    edge.shutdown().await;
}

/// The file's `members` URL on a real Redis: the edge starts while Redis is
/// down, picks the containers up once it is there, keeps them through an
/// outage and an empty restart, and drops one that stops announcing; a
/// reload of the file keeps the announced containers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_from_redis_by_url_survive_an_outage() {
    let (c1, c2) = (StandIn::start("c1").await, StandIn::start("c2").await);
    let mut redis = RedisServer::start();
    let url = format!("{}?timeout_ms=300", redis.url());
    redis.stop();

    let dir = std::env::temp_dir().join(format!("edge-members-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("edge.toml");
    std::fs::write(
        &path,
        format!(
            "node = \"e1\"\npublic = \"{PUBLIC}\"\nmembers = \"{url}\"\nmembers_interval_ms = 100\n\
             [listen]\nudp = [\"127.0.0.1:0\"]\nhttp = \"127.0.0.1:0\"\n[health]\ninterval_ms = 5000\n"
        ),
    )
    .unwrap();
    let config = EdgeConfig::load(&path).unwrap();
    assert_eq!(config.members.as_ref().unwrap().url, url);
    // Redis is down: the edge starts anyway and counts the failed polls.
    let edge = Edge::start(config).await.unwrap();
    let errors = || edge.counters().members_errors.load(Ordering::Relaxed);
    wait_until(Duration::from_secs(5), "failed polls counted", || async {
        errors() >= 2
    })
    .await;
    assert!(edge.view().members().is_empty());

    redis.restart();
    let store = Store::open(&url).await.unwrap();
    let ttl = Duration::from_secs(2);
    let period = Duration::from_millis(300);
    let a1 = Announcer::start(store.clone(), &c1, period, ttl);
    let a2 = Announcer::start(store.clone(), &c2, period, ttl);
    wait_until(
        Duration::from_secs(10),
        "c1 and c2 join from Redis",
        || async { has(&edge, "c1") && has(&edge, "c2") },
    )
    .await;
    assert_eq!(http_owner(&edge, "c2.00000000000000cd").await, "c2");

    // Redis dies: the last known list stays, poll after poll.
    redis.stop();
    let before = errors();
    wait_until(Duration::from_secs(10), "polls fail", || async {
        errors() >= before + 5
    })
    .await;
    // Longer than the TTL: a lapse would have removed them by now.
    let until = Instant::now() + ttl + Duration::from_millis(500);
    while Instant::now() < until {
        assert!(has(&edge, "c1") && has(&edge, "c2"), "{:?}", nodes(&edge));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(http_owner(&edge, "c1.00000000000000cd").await, "c1");

    // It comes back empty (no persistence); the containers re-announce and
    // the edge never drops them in between.
    redis.restart();
    let polls = || edge.counters().members_polls.load(Ordering::Relaxed);
    let errors_at_restart = errors();
    let polls_at_restart = polls();
    wait_until(Duration::from_secs(10), "polls succeed again", || async {
        assert!(has(&edge, "c1") && has(&edge, "c2"), "{:?}", nodes(&edge));
        polls() - polls_at_restart >= 5 + (errors() - errors_at_restart)
    })
    .await;
    let until = Instant::now() + edge::settle_window(Duration::from_millis(100));
    while Instant::now() < until {
        assert!(has(&edge, "c1") && has(&edge, "c2"), "{:?}", nodes(&edge));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The file reloads: the announced containers stay.
    let (status, body) = http(edge.http_addr(), "POST", "/_sb/admin/reload", "", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        nodes(&edge),
        [
            ("c1".to_owned(), Origin::Membership),
            ("c2".to_owned(), Origin::Membership),
        ]
    );

    // c1 stops announcing: gone within its TTL and a poll.
    a1.stop().await;
    let took = wait_until(ttl + Duration::from_secs(3), "c1 leaves", || async {
        !has(&edge, "c1")
    })
    .await;
    assert!(
        took <= ttl + Duration::from_millis(600),
        "c1 left after {took:?}"
    );
    assert_eq!(nodes(&edge), [("c2".to_owned(), Origin::Membership)]);

    let (_, text) = http(edge.http_addr(), "GET", "/_sb/metrics", "", "").await;
    assert!(
        text.contains("sb_edge_container_source{node=\"c2\",source=\"membership\"} 1"),
        "{text}"
    );
    assert!(!text.contains("sb_edge_members_errors_total 0\n"), "{text}");
    a2.stop().await;
    edge.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
