//! Maglev cost: one lookup (hash of a client address + table read), and
//! building the table for a few edge counts.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use sprayer::maglev::{Maglev, flow_hash};

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("edge-{i}")).collect()
}

fn lookup(c: &mut Criterion) {
    let table = Maglev::new(&names(8));
    let addrs: Vec<SocketAddr> = (0..1024u16)
        .map(|i| SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 5060 + i)))
        .collect();
    let mut i = 0usize;
    c.bench_function("maglev/lookup (flow hash + table)", |b| {
        b.iter(|| {
            i = (i + 1) % addrs.len();
            let a = addrs
                .get(i)
                .copied()
                .unwrap_or_else(|| SocketAddr::from(([0; 4], 0)));
            black_box(table.lookup(flow_hash(black_box(&a))))
        })
    });
}

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("maglev/build (65537 slots)");
    for n in [2usize, 8, 32] {
        let ns = names(n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &ns, |b, ns| {
            b.iter(|| black_box(Maglev::new(black_box(ns))))
        });
    }
    g.finish();
}

criterion_group!(benches, lookup, build);
criterion_main!(benches);
