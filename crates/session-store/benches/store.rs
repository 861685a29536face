//! Store round trips: `get` and `put` (compare-and-set) on the memory store,
//! and on Redis when `REDIS_URL` is set (for example
//! `REDIS_URL=redis://127.0.0.1:6379/ cargo bench -p session-store`).
//!
//! * `get`: read one 1 KB record.
//! * `put`: read-version-then-write one 1 KB record (the container's update).
//! * `put_many/16`: sixteen 1 KB writes in one call (one pipeline on Redis).

// A benchmark fails loudly when its store does not answer.
#![allow(clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use session_store::{SessionStore, Store, Write};
use tokio::runtime::Runtime;

const VALUE: [u8; 1024] = [7; 1024];

fn bench_store(c: &mut Criterion, name: &str, url: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = rt.block_on(Store::open(url)).expect("open the store");
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));

    let key = "bench:get";
    let version = rt.block_on(async {
        let current = store.get(key).await.expect("get").map_or(0, |r| r.version);
        store
            .put(key, VALUE.to_vec(), current, None)
            .await
            .expect("put")
    });
    assert!(version > 0);
    group.bench_function("get", |b| {
        b.iter(|| run(&rt, store.get(black_box(key))).expect("get"))
    });

    let key = "bench:put";
    let mut version = rt
        .block_on(store.get(key))
        .expect("get")
        .map_or(0, |r| r.version);
    group.bench_function("put", |b| {
        b.iter(|| {
            version = run(&rt, store.put(key, VALUE.to_vec(), version, None)).expect("put");
        })
    });

    group.throughput(Throughput::Elements(16));
    let keys: Vec<String> = (0..16).map(|i| format!("bench:many:{i}")).collect();
    let mut versions: Vec<u64> = keys
        .iter()
        .map(|k| {
            rt.block_on(store.get(k))
                .expect("get")
                .map_or(0, |r| r.version)
        })
        .collect();
    group.bench_function("put_many/16", |b| {
        b.iter(|| {
            let writes = keys
                .iter()
                .zip(&versions)
                .map(|(key, &expected)| Write {
                    key: key.clone(),
                    value: VALUE.to_vec(),
                    expected,
                    ttl: None,
                })
                .collect();
            let results = run(&rt, store.put_many(writes)).expect("put_many");
            for (v, r) in versions.iter_mut().zip(results) {
                *v = r.expect("no conflict in the bench");
            }
        })
    });
    group.finish();
}

fn run<F: std::future::Future>(rt: &Runtime, f: F) -> F::Output {
    rt.block_on(f)
}

fn benches(c: &mut Criterion) {
    bench_store(c, "memory", "memory");
    if let Ok(url) = std::env::var("REDIS_URL") {
        bench_store(c, "redis", &url);
    }
}

criterion_group!(store, benches);
criterion_main!(store);
