//! Compare-and-set in action: four tasks increment one counter with
//! read-modify-write loops; every lost race is a `Conflict`, retried, and the
//! counter ends exact. Uses the memory store, or Redis when `REDIS_URL` is
//! set:
//!
//! ```sh
//! cargo run -p session-store --example cas
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run -p session-store --example cas
//! ```

#![allow(clippy::print_stdout)]

use session_store::{SessionStore, Store, StoreError};

const TASKS: u64 = 4;
const INCREMENTS: u64 = 250;

/// Adds one to the counter at `key`, retrying lost races; returns how many
/// races it lost.
async fn increment(store: &Store, key: &str) -> Result<u64, StoreError> {
    let mut conflicts = 0;
    loop {
        let (version, n) = match store.get(key).await? {
            Some(record) => (record.version, decode(&record.value)),
            None => (0, 0),
        };
        match store
            .put(key, (n + 1).to_be_bytes().to_vec(), version, None)
            .await
        {
            Ok(_) => return Ok(conflicts),
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(other) => return Err(other),
        }
    }
}

fn decode(value: &[u8]) -> u64 {
    value.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "memory".to_owned());
    let store = Store::open(&url).await?;
    let key = "example:counter";
    // Start from scratch: delete whatever an earlier run left.
    if let Some(old) = store.get(key).await? {
        store.delete(key, old.version).await?;
    }

    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for _ in 0..INCREMENTS {
                    conflicts += increment(&store, key).await?;
                }
                Ok::<u64, StoreError>(conflicts)
            })
        })
        .collect();
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await??;
    }

    let record = store.get(key).await?.ok_or("the counter vanished")?;
    println!(
        "{} store: counter = {} at version {} after {} lost races (retried)",
        store.kind(),
        decode(&record.value),
        record.version,
        conflicts
    );
    assert_eq!(decode(&record.value), TASKS * INCREMENTS);
    Ok(())
}
