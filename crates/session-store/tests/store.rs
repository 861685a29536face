//! The semantics of [`SessionStore`], one generic body per property, run
//! against the memory store (paused clock), a real `redis-server` and a real
//! three-node Redis Cluster. Then what only Redis has: the server stopped and
//! restarted under load, `WAIT` with a replica, scripts flushed, prefixes.
//!
//! Every Redis test starts its own server on a free loopback port
//! ([`RedisServer`]), so tests run in parallel and see no one else's keys.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashSet;
use std::time::Duration;

use session_store::testing::{RedisCluster, RedisServer};
use session_store::{Member, SessionStore, Store, StoreError, StoredTimer, Versioned, Write};
use tokio::time::{Instant, sleep};

/// The time unit of the TTL bodies: one second on the memory store's
/// paused clock, 200 ms of real time on Redis (a "still there" check then
/// has 200 ms of margin against scheduling hiccups).
const MEMORY_UNIT: Duration = Duration::from_secs(1);
const REDIS_UNIT: Duration = Duration::from_millis(200);

async fn memory() -> Store {
    Store::open("memory").await.unwrap()
}

async fn redis() -> (RedisServer, Store) {
    let server = RedisServer::start();
    let store = Store::open(&server.url()).await.unwrap();
    assert_eq!(store.kind(), "redis");
    (server, store)
}

fn conflict(result: Result<u64, StoreError>) -> (u64, u64) {
    match result {
        Err(StoreError::Conflict {
            expected, current, ..
        }) => (expected, current),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

// ---------------------------------------------------------------- bodies

/// Put, get, versions, and the compare-and-set rules for absent keys.
async fn basic_cas(s: Store) {
    assert_eq!(s.get("k").await.unwrap(), None);
    assert_eq!(s.put("k", b"one".to_vec(), 0, None).await.unwrap(), 1);
    assert_eq!(
        s.get("k").await.unwrap(),
        Some(Versioned {
            version: 1,
            value: b"one".to_vec()
        })
    );
    // Creating what exists, and updating with a stale or future version.
    assert_eq!(conflict(s.put("k", b"x".to_vec(), 0, None).await), (0, 1));
    assert_eq!(conflict(s.put("k", b"x".to_vec(), 2, None).await), (2, 1));
    // Updating what does not exist.
    assert_eq!(
        conflict(s.put("absent", b"x".to_vec(), 3, None).await),
        (3, 0)
    );
    assert_eq!(s.put("k", b"two".to_vec(), 1, None).await.unwrap(), 2);
    let got = s.get("k").await.unwrap().unwrap();
    assert_eq!((got.version, got.value.as_slice()), (2, &b"two"[..]));
    // Binary values and odd keys round-trip.
    let bytes: Vec<u8> = (0..=255).collect();
    let key = "app:{x}/sip:1 *?[]";
    s.put(key, bytes.clone(), 0, None).await.unwrap();
    assert_eq!(s.get(key).await.unwrap().unwrap().value, bytes);
    s.put("empty", Vec::new(), 0, None).await.unwrap();
    assert_eq!(
        s.get("empty").await.unwrap().unwrap().value,
        Vec::<u8>::new()
    );
}

/// Two writers who read the same version: exactly one wins.
async fn two_writers_one_wins(s: Store) {
    s.put("session", b"v1".to_vec(), 0, None).await.unwrap();
    let version = s.get("session").await.unwrap().unwrap().version;
    let (a, b) = tokio::join!(
        s.put("session", b"from-a".to_vec(), version, None),
        s.put("session", b"from-b".to_vec(), version, None)
    );
    let (winner, loser) = match (&a, &b) {
        (Ok(_), Err(_)) => (a, b),
        (Err(_), Ok(_)) => (b, a),
        _ => panic!("exactly one must win: {a:?} {b:?}"),
    };
    assert_eq!(winner.unwrap(), version + 1);
    assert_eq!(conflict(loser), (version, version + 1));
}

/// 20 concurrent read-modify-write loops with retry end with exactly 20.
async fn counter_race(s: Store) {
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut conflicts = 0u32;
                loop {
                    let (version, n) = match s.get("counter").await.unwrap() {
                        Some(r) => (
                            r.version,
                            String::from_utf8(r.value).unwrap().parse().unwrap(),
                        ),
                        None => (0, 0u64),
                    };
                    tokio::task::yield_now().await;
                    match s
                        .put("counter", (n + 1).to_string().into_bytes(), version, None)
                        .await
                    {
                        Ok(_) => return conflicts,
                        Err(StoreError::Conflict { .. }) => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let record = s.get("counter").await.unwrap().unwrap();
    assert_eq!(record.value, b"20");
    assert_eq!(record.version, 20);
}

/// Compare-and-delete.
async fn delete_cas(s: Store) {
    // Absent: expected 0 is fine, anything else a conflict.
    s.delete("nothing", 0).await.unwrap();
    match s.delete("nothing", 4).await {
        Err(StoreError::Conflict {
            expected: 4,
            current: 0,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    s.put("k", b"v".to_vec(), 0, None).await.unwrap();
    s.put("k", b"v".to_vec(), 1, None).await.unwrap();
    for stale in [0, 1, 3] {
        match s.delete("k", stale).await {
            Err(StoreError::Conflict { current: 2, .. }) => {}
            other => panic!("delete with {stale}: {other:?}"),
        }
    }
    assert!(s.get("k").await.unwrap().is_some());
    s.delete("k", 2).await.unwrap();
    assert_eq!(s.get("k").await.unwrap(), None);
    // Gone means version 0 again.
    assert_eq!(s.put("k", b"again".to_vec(), 0, None).await.unwrap(), 1);
}

/// TTL: expiry, reset by each put, removal of the TTL by a put without one.
async fn ttl(s: Store, unit: Duration) {
    s.put("t", b"1".to_vec(), 0, Some(unit * 3)).await.unwrap();
    s.put("forever", b"1".to_vec(), 0, None).await.unwrap();
    s.put("was-ttl", b"1".to_vec(), 0, Some(unit * 3))
        .await
        .unwrap();
    s.put("was-ttl", b"2".to_vec(), 1, None).await.unwrap();
    sleep(unit * 2).await;
    assert!(s.get("t").await.unwrap().is_some(), "expired too early");
    // Each put resets the TTL.
    s.put("t", b"2".to_vec(), 1, Some(unit * 3)).await.unwrap();
    sleep(unit * 2).await;
    assert_eq!(
        s.get("t").await.unwrap().unwrap().version,
        2,
        "reset TTL expired"
    );
    sleep(unit * 2).await;
    assert_eq!(s.get("t").await.unwrap(), None, "did not expire");
    // Expired is absent: version 0 again, stale versions conflict.
    assert_eq!(conflict(s.put("t", b"x".to_vec(), 2, None).await), (2, 0));
    assert_eq!(s.put("t", b"new".to_vec(), 0, None).await.unwrap(), 1);
    assert!(s.get("forever").await.unwrap().is_some());
    assert!(
        s.get("was-ttl").await.unwrap().is_some(),
        "a put without TTL keeps it"
    );
}

/// put_many: each write its own CAS, applied in order, results in order.
async fn put_many_mixed(s: Store) {
    assert_eq!(s.put_many(Vec::new()).await.unwrap().len(), 0);
    s.put("a", b"a1".to_vec(), 0, None).await.unwrap();
    let w = |key: &str, expected: u64| Write {
        key: key.to_owned(),
        value: format!("{key}@{expected}").into_bytes(),
        expected,
        ttl: None,
    };
    let results = s
        .put_many(vec![
            w("b", 0), // creates b
            w("a", 0), // a exists
            w("a", 1), // updates a
            w("b", 1), // builds on the first write of the batch
            w("c", 5), // c does not exist
            Write {
                ttl: Some(Duration::from_secs(3600)),
                ..w("d", 0)
            },
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 6);
    assert_eq!(results[0], Ok(1));
    assert!(matches!(
        results[1],
        Err(StoreError::Conflict {
            expected: 0,
            current: 1,
            ..
        })
    ));
    assert_eq!(results[2], Ok(2));
    assert_eq!(results[3], Ok(2));
    assert!(matches!(
        &results[4],
        Err(StoreError::Conflict { key, expected: 5, current: 0 }) if key == "c"
    ));
    assert_eq!(results[5], Ok(1));
    assert_eq!(s.get("a").await.unwrap().unwrap().value, b"a@1");
    assert_eq!(s.get("b").await.unwrap().unwrap().value, b"b@1");
    assert_eq!(s.get("c").await.unwrap(), None);
    // Many keys at once (on a cluster: many slots, several nodes).
    let many: Vec<Write> = (0..200).map(|i| w(&format!("k{i}"), 0)).collect();
    let results = s.put_many(many).await.unwrap();
    assert!(results.iter().all(|r| *r == Ok(1)), "{results:?}");
    assert_eq!(s.record_count().await.unwrap(), 203); // a, b, d and the 200
}

fn timer(session: &str, id: &str, due: u64) -> StoredTimer {
    StoredTimer {
        session: session.to_owned(),
        id: id.to_owned(),
        due_unix_ms: due,
        payload: format!("{session}/{id}@{due}").into_bytes(),
    }
}

/// Timers: replace, remove, and two concurrent takers get each due timer
/// exactly once, earliest first.
async fn timers(s: Store) {
    let mut due = HashSet::new();
    for i in 0..50u64 {
        let t = timer(&format!("s{}", i % 5), &format!("t{i}"), 1000 + i);
        due.insert((t.session.clone(), t.id.clone()));
        s.put_timer(t).await.unwrap();
    }
    for i in 0..10u64 {
        s.put_timer(timer("later", &format!("l{i}"), 10_000 + i))
            .await
            .unwrap();
    }
    // Replacing moves it to the future; removing drops it; absent is fine.
    s.put_timer(timer("s0", "t0", 20_000)).await.unwrap();
    due.remove(&("s0".to_owned(), "t0".to_owned()));
    s.remove_timer("s1", "t1").await.unwrap();
    due.remove(&("s1".to_owned(), "t1".to_owned()));
    s.remove_timer("s1", "t1").await.unwrap();
    s.remove_timer("nobody", "nothing").await.unwrap();
    assert_eq!(s.take_due_timers(5000, 0).await.unwrap(), Vec::new());
    assert_eq!(s.take_due_timers(999, 100).await.unwrap(), Vec::new());

    let taker = |s: Store| async move {
        let mut got = Vec::new();
        loop {
            let batch = s.take_due_timers(5000, 7).await.unwrap();
            if batch.is_empty() {
                return got;
            }
            assert!(batch.len() <= 7);
            assert!(
                batch
                    .windows(2)
                    .all(|w| w[0].due_unix_ms <= w[1].due_unix_ms)
            );
            got.extend(batch);
            tokio::task::yield_now().await;
        }
    };
    let (a, b) = tokio::join!(taker(s.clone()), taker(s.clone()));
    let mut seen = HashSet::new();
    for t in a.iter().chain(&b) {
        assert!(
            seen.insert((t.session.clone(), t.id.clone())),
            "taken twice: {t:?}"
        );
        assert_eq!(
            *t,
            timer(&t.session, &t.id, t.due_unix_ms),
            "payload round trip"
        );
        assert!(t.due_unix_ms <= 5000);
    }
    assert_eq!(seen, due);
    // The rest: the future ones and the replaced one, earliest first.
    let rest = s.take_due_timers(u64::MAX, 100).await.unwrap();
    assert_eq!(rest.len(), 11);
    assert_eq!(rest[0], timer("later", "l0", 10_000));
    assert_eq!(rest[10], timer("s0", "t0", 20_000));
    assert!(s.take_due_timers(u64::MAX, 100).await.unwrap().is_empty());
}

fn member(node: &str, port: u16) -> Member {
    Member {
        node: node.to_owned(),
        sip: format!("127.0.0.1:{port}"),
        http: format!("127.0.0.1:{}", port + 1000),
    }
}

/// Members: announced with a TTL, replaced by a new announcement, gone
/// when not refreshed.
async fn members_ttl(s: Store, unit: Duration) {
    assert_eq!(s.members().await.unwrap(), Vec::new());
    s.announce(&member("b", 5062), unit * 3).await.unwrap();
    s.announce(&member("a", 5061), unit * 3).await.unwrap();
    assert_eq!(
        s.members().await.unwrap(),
        vec![member("a", 5061), member("b", 5062)]
    );
    // A new announcement replaces the addresses.
    s.announce(&member("a", 6061), unit * 3).await.unwrap();
    assert_eq!(
        s.members().await.unwrap(),
        vec![member("a", 6061), member("b", 5062)]
    );
    sleep(unit * 2).await;
    s.announce(&member("b", 5062), unit * 3).await.unwrap(); // b refreshes, a does not
    sleep(unit * 2).await;
    assert_eq!(s.members().await.unwrap(), vec![member("b", 5062)]);
    sleep(unit * 2).await;
    assert_eq!(s.members().await.unwrap(), Vec::new());
}

/// record_count counts live records only: not timers, not members, not
/// deleted or expired records.
async fn record_count(s: Store, unit: Duration) {
    assert_eq!(s.record_count().await.unwrap(), 0);
    s.put("r1", b"1".to_vec(), 0, None).await.unwrap();
    s.put("r2", b"2".to_vec(), 0, None).await.unwrap();
    s.put("r3", b"3".to_vec(), 0, Some(unit)).await.unwrap();
    s.put_timer(timer("r1", "t", 5)).await.unwrap();
    s.announce(&member("n", 1), unit * 100).await.unwrap();
    assert_eq!(s.record_count().await.unwrap(), 3);
    s.delete("r2", 1).await.unwrap();
    assert_eq!(s.record_count().await.unwrap(), 2);
    sleep(unit * 2).await;
    assert_eq!(s.record_count().await.unwrap(), 1);
}

// ---------------------------------------------------------------- memory

#[tokio::test]
async fn memory_basic_cas() {
    basic_cas(memory().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_two_writers_one_wins() {
    two_writers_one_wins(memory().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_counter_race() {
    counter_race(memory().await).await;
}

#[tokio::test]
async fn memory_delete_cas() {
    delete_cas(memory().await).await;
}

#[tokio::test(start_paused = true)]
async fn memory_ttl() {
    ttl(memory().await, MEMORY_UNIT).await;
}

#[tokio::test]
async fn memory_put_many_mixed() {
    put_many_mixed(memory().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_timers() {
    timers(memory().await).await;
}

#[tokio::test(start_paused = true)]
async fn memory_members_ttl() {
    members_ttl(memory().await, MEMORY_UNIT).await;
}

#[tokio::test(start_paused = true)]
async fn memory_record_count() {
    record_count(memory().await, MEMORY_UNIT).await;
}

/// Records nobody reads again are still dropped: the sweep.
#[tokio::test(start_paused = true)]
async fn memory_sweep_drops_untouched_records() {
    let s = session_store::MemoryStore::new();
    for i in 0..1000 {
        s.put(
            &format!("k{i}"),
            vec![0; 100],
            0,
            Some(Duration::from_secs(5)),
        )
        .await
        .unwrap();
    }
    assert_eq!(s.sweep(), 1000);
    sleep(Duration::from_secs(6)).await;
    // The next write to each shard sweeps it; `sweep` does all at once.
    assert_eq!(s.sweep(), 0);
    assert_eq!(s.record_count().await.unwrap(), 0);
}

// ---------------------------------------------------------------- redis

#[tokio::test]
async fn redis_basic_cas() {
    let (_server, s) = redis().await;
    basic_cas(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_writers_one_wins() {
    let (_server, s) = redis().await;
    two_writers_one_wins(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_counter_race() {
    let (_server, s) = redis().await;
    counter_race(s).await;
}

#[tokio::test]
async fn redis_delete_cas() {
    let (_server, s) = redis().await;
    delete_cas(s).await;
}

#[tokio::test]
async fn redis_ttl() {
    let (_server, s) = redis().await;
    ttl(s, REDIS_UNIT).await;
}

#[tokio::test]
async fn redis_put_many_mixed() {
    let (_server, s) = redis().await;
    put_many_mixed(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_timers() {
    let (_server, s) = redis().await;
    timers(s).await;
}

#[tokio::test]
async fn redis_members_ttl() {
    let (_server, s) = redis().await;
    members_ttl(s, REDIS_UNIT).await;
}

#[tokio::test]
async fn redis_record_count() {
    let (_server, s) = redis().await;
    record_count(s, REDIS_UNIT).await;
}

/// Every body against a real three-node Redis Cluster, each under its own
/// prefix (one cluster for all: it takes a few seconds to form).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_runs_every_body() {
    let cluster = RedisCluster::start(3);
    let open = |prefix: &str| {
        let url = format!("{}?prefix={prefix}", cluster.url());
        async move { Store::open(&url).await.unwrap() }
    };
    basic_cas(open("basic").await).await;
    two_writers_one_wins(open("two").await).await;
    counter_race(open("race").await).await;
    delete_cas(open("delete").await).await;
    put_many_mixed(open("many").await).await;
    timers(open("timers").await).await;
    record_count(open("count").await, REDIS_UNIT).await;
    tokio::join!(
        ttl(open("ttl").await, REDIS_UNIT),
        members_ttl(open("members").await, REDIS_UNIT)
    );
    // The records did spread over the nodes.
    let spread = cluster
        .nodes()
        .iter()
        .filter(|n| n.command(&["DBSIZE"]).unwrap() != "0")
        .count();
    assert_eq!(spread, 3);
}

/// What the container sees when Redis dies: every call fails with
/// Unavailable within the timeout (no hang), and once Redis is back the
/// same store works again, without being rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_calls_fail_fast_and_recover_after_restart() {
    let mut server = RedisServer::start();
    let timeout = Duration::from_millis(300);
    let s = Store::open(&format!("{}?timeout_ms=300", server.url()))
        .await
        .unwrap();
    s.put("k", b"v".to_vec(), 0, None).await.unwrap();
    server.stop();

    let bound = timeout + Duration::from_millis(200);
    macro_rules! unavailable {
        ($call:expr) => {{
            let started = Instant::now();
            let result = $call.await;
            let took = started.elapsed();
            assert!(
                matches!(result, Err(StoreError::Unavailable(_))),
                "{}: {result:?}",
                stringify!($call)
            );
            assert!(took < bound, "{} took {took:?}", stringify!($call));
        }};
    }
    for _ in 0..3 {
        unavailable!(s.get("k"));
        unavailable!(s.put("k", b"w".to_vec(), 1, None));
        unavailable!(s.delete("k", 1));
        unavailable!(s.put_many(vec![Write {
            key: "k".into(),
            value: vec![],
            expected: 1,
            ttl: None
        }]));
        unavailable!(s.put_timer(timer("s", "t", 1)));
        unavailable!(s.remove_timer("s", "t"));
        unavailable!(s.take_due_timers(10, 10));
        unavailable!(s.announce(&member("n", 1), Duration::from_secs(1)));
        unavailable!(s.members());
        unavailable!(s.record_count());
    }

    server.restart();
    // The data died with the server (no persistence): version 0 again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match s.put("k", b"back".to_vec(), 0, None).await {
            Ok(1) => break,
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                sleep(Duration::from_millis(20)).await;
            }
            other => panic!("after the restart: {other:?}"),
        }
    }
    // Everything works, scripts included (the restarted server had none).
    assert_eq!(s.get("k").await.unwrap().unwrap().value, b"back");
    s.put_timer(timer("s", "t", 1)).await.unwrap();
    assert_eq!(s.take_due_timers(10, 10).await.unwrap().len(), 1);
    s.announce(&member("n", 1), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(s.members().await.unwrap().len(), 1);
    assert_eq!(s.record_count().await.unwrap(), 1);
}

/// Redis stopped and restarted while four writers run: they only ever see
/// successes and Unavailable (never a hang, never another error), and
/// succeed again after the restart by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_during_load() {
    let mut server = RedisServer::start();
    let s = Store::open(&format!("{}?timeout_ms=300", server.url()))
        .await
        .unwrap();
    let stop_at = Instant::now() + Duration::from_millis(300);
    let restart_at = stop_at + Duration::from_millis(500);
    let end = restart_at + Duration::from_millis(1500);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                let key = format!("w{w}");
                let (mut ok_before, mut unavailable, mut ok_after) = (0u32, 0u32, 0u32);
                let mut version = 0;
                while Instant::now() < end {
                    let started = Instant::now();
                    let result = s.put(&key, b"x".to_vec(), version, None).await;
                    assert!(
                        started.elapsed() < Duration::from_millis(600),
                        "a call hung"
                    );
                    match result {
                        Ok(v) => {
                            version = v;
                            if started > restart_at {
                                ok_after += 1;
                            } else {
                                ok_before += 1;
                            }
                        }
                        Err(StoreError::Unavailable(_)) => {
                            unavailable += 1;
                            // The write may or may not have landed: re-read.
                            if let Ok(current) = s.get(&key).await {
                                version = current.map_or(0, |r| r.version);
                            }
                            sleep(Duration::from_millis(10)).await;
                        }
                        Err(StoreError::Conflict { current, .. }) => version = current,
                        Err(e) => panic!("writer {w}: {e}"),
                    }
                }
                (ok_before, unavailable, ok_after)
            })
        })
        .collect();
    sleep(stop_at - Instant::now()).await;
    server.stop();
    sleep(restart_at - Instant::now()).await;
    server.restart();
    for writer in writers {
        let (before, unavailable, after) = writer.await.unwrap();
        assert!(before > 0, "no write before the stop");
        assert!(unavailable > 0, "the stop went unnoticed");
        assert!(after > 0, "no write after the restart");
    }
}

/// `?wait=1`: writes wait for the replica; with the replica gone they fail
/// with NotReplicated (applied on the primary, not acknowledged).
#[tokio::test]
async fn redis_wait_for_replica() {
    let primary = RedisServer::start();
    let mut replica = RedisServer::start_replica_of(&primary);
    let s = Store::open(&format!("{}?wait=1&wait_timeout_ms=100", primary.url()))
        .await
        .unwrap();
    assert_eq!(s.put("k", b"v".to_vec(), 0, None).await.unwrap(), 1);
    // Acknowledged means the replica has it now.
    assert_eq!(replica.command(&["HGET", "sb:r:k", "v"]).unwrap(), "1");
    let results = s
        .put_many(vec![Write {
            key: "m".into(),
            value: b"1".to_vec(),
            expected: 0,
            ttl: None,
        }])
        .await
        .unwrap();
    assert_eq!(results, vec![Ok(1)]);
    s.put_timer(timer("s", "t", 1)).await.unwrap();

    replica.stop();
    let started = Instant::now();
    match s.put("k", b"w".to_vec(), 1, None).await {
        Err(StoreError::NotReplicated {
            acked: 0,
            wanted: 1,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(800));
    // It was applied on the primary: the version moved.
    assert_eq!(s.get("k").await.unwrap().unwrap().version, 2);
    // Reads and membership do not wait.
    s.announce(&member("n", 1), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(s.take_due_timers(10, 10).await.unwrap().len(), 1);
}

/// Scripts flushed on the server (as after a restart or on a new node):
/// loaded again transparently, for single writes and pipelines alike.
#[tokio::test]
async fn redis_scripts_flushed_are_reloaded() {
    let (server, s) = redis().await;
    s.put("k", b"1".to_vec(), 0, None).await.unwrap();
    server.command(&["SCRIPT", "FLUSH"]).unwrap();
    assert_eq!(s.put("k", b"2".to_vec(), 1, None).await.unwrap(), 2);
    server.command(&["SCRIPT", "FLUSH"]).unwrap();
    let writes = (0..5)
        .map(|i| Write {
            key: format!("m{i}"),
            value: vec![],
            expected: 0,
            ttl: None,
        })
        .collect();
    assert!(
        s.put_many(writes)
            .await
            .unwrap()
            .iter()
            .all(|r| *r == Ok(1))
    );
    server.command(&["SCRIPT", "FLUSH"]).unwrap();
    s.delete("k", 2).await.unwrap();
    server.command(&["SCRIPT", "FLUSH"]).unwrap();
    assert_eq!(s.members().await.unwrap(), Vec::new());
}

/// Keys live under the prefix; stores with different prefixes share a
/// server without seeing each other.
#[tokio::test]
async fn redis_prefixes_separate_stores() {
    let server = RedisServer::start();
    let a = Store::open(&server.url()).await.unwrap();
    let b = Store::open(&format!("{}?prefix=other", server.url()))
        .await
        .unwrap();
    a.put("k", b"a".to_vec(), 0, None).await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), None);
    b.put("k", b"b".to_vec(), 0, None).await.unwrap();
    a.put_timer(timer("s", "t", 1)).await.unwrap();
    a.announce(&member("n", 1), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(b.take_due_timers(10, 10).await.unwrap(), Vec::new());
    assert_eq!(b.members().await.unwrap(), Vec::new());
    assert_eq!(
        (
            a.record_count().await.unwrap(),
            b.record_count().await.unwrap()
        ),
        (1, 1)
    );
    // The documented layout.
    for key in ["sb:r:k", "other:r:k", "sb:{timers}:due", "sb:{timers}:data"] {
        assert_eq!(server.command(&["EXISTS", key]).unwrap(), "1", "{key}");
    }
    for key in ["sb:{members}:exp", "sb:{members}:info"] {
        assert_eq!(server.command(&["EXISTS", key]).unwrap(), "1", "{key}");
    }
    assert_eq!(server.command(&["TYPE", "sb:r:k"]).unwrap(), "hash");
    // A record with a TTL has it on its key.
    a.put("ttl", b"x".to_vec(), 0, Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let pttl: u64 = server
        .command(&["PTTL", "sb:r:ttl"])
        .unwrap()
        .parse()
        .unwrap();
    assert!((59_000..=60_000).contains(&pttl), "{pttl}");
}

/// Foreign data under the prefix is an error, not a panic or a wrong value.
#[tokio::test]
async fn redis_foreign_data_is_an_error() {
    let (server, s) = redis().await;
    server.command(&["SET", "sb:r:k", "not a hash"]).unwrap();
    assert!(matches!(s.get("k").await, Err(StoreError::Backend(_))));
    assert!(matches!(
        s.put("k", vec![], 0, None).await,
        Err(StoreError::Backend(_))
    ));
    server
        .command(&["HSET", "sb:r:h", "v", "seven", "d", "x"])
        .unwrap();
    assert!(matches!(s.get("h").await, Err(StoreError::Corrupt(_))));
}

/// Opening a store whose Redis is not there fails within the timeout.
#[tokio::test]
async fn redis_open_unreachable_is_unavailable() {
    let mut server = RedisServer::start();
    let url = format!("{}?timeout_ms=300", server.url());
    server.stop();
    let started = Instant::now();
    match Store::open(&url).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_millis(800));
    assert!(matches!(
        Store::open("redis://127.0.0.1:1/?wait=x").await,
        Err(StoreError::Config(_))
    ));
}

/// A server demoted to a replica (a failover behind a virtual IP) answers
/// writes with READONLY: Unavailable, and the store drops that connection
/// so its next call connects afresh (to whatever the address now reaches).
#[tokio::test]
async fn redis_demoted_primary_is_unavailable_and_reconnected() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    let s = Store::open(&a.url()).await.unwrap();
    s.put("k", b"v".to_vec(), 0, None).await.unwrap();
    let store_connections = || -> HashSet<String> {
        a.command(&["CLIENT", "LIST"])
            .unwrap()
            .lines()
            .filter(|l| !l.contains("cmd=client|list"))
            .filter_map(|l| l.split(' ').next().map(str::to_owned))
            .collect()
    };
    let before = store_connections();
    assert_eq!(before.len(), 1, "{before:?}");

    a.command(&["REPLICAOF", "127.0.0.1", &b.port().to_string()])
        .unwrap();
    match s.put("k", b"w".to_vec(), 1, None).await {
        Err(StoreError::Unavailable(message)) => assert!(message.contains("ReadOnly"), "{message}"),
        other => panic!("{other:?}"),
    }
    a.command(&["REPLICAOF", "NO", "ONE"]).unwrap();
    assert_eq!(s.put("k2", b"v".to_vec(), 0, None).await.unwrap(), 1);
    let after = store_connections();
    assert!(
        after.is_disjoint(&before),
        "still on the old connection: {before:?} {after:?}"
    );
}
