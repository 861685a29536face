//! Prints the rendezvous order of the keys given on the command line over
//! three containers, and the owner after one of them goes down.
//!
//! `cargo run -p balance --example rendezvous -- call-1@host c2.5f3a9b0c11d2e4f7`

use std::io::Write;
use std::time::Instant;

use balance::{Backend, Cluster, HealthPolicy, Signal};

fn main() -> std::io::Result<()> {
    let cluster: Cluster<()> = Cluster::new(HealthPolicy::default());
    for id in ["c1", "c2", "c3"] {
        if let Err(e) = cluster.add(Backend::new(id, 1), ()) {
            return Err(std::io::Error::other(e));
        }
    }
    let mut out = std::io::stdout().lock();
    let keys: Vec<String> = std::env::args().skip(1).collect();
    let now = Instant::now();
    for key in &keys {
        let order: Vec<String> = cluster
            .view()
            .order(key.as_bytes())
            .iter()
            .map(|m| m.backend.id.clone())
            .collect();
        writeln!(out, "{key}: {}", order.join(" > "))?;
    }
    // Two failures (fall = 2) take c1 down.
    cluster.record("c1", Signal::ProbeFailed, now);
    cluster.record("c1", Signal::ProbeFailed, now);
    for key in &keys {
        let owner = cluster
            .view()
            .pick_new(key.as_bytes(), now)
            .map(|m| m.backend.id.clone());
        writeln!(out, "{key} with c1 down: {owner:?}")?;
    }
    Ok(())
}
