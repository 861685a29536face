//! Replays the committed inputs of the `endpoint` fuzz target through the
//! same check the target runs (`fuzz/src/endpoint.rs`), so CI exercises
//! them on stable and without libFuzzer. See `fuzz/README.md`.
//!
//! * `fuzz/seeds/endpoint/`: hand-made operation sequences (a call
//!   answered and ACKed, retransmissions through a second edge, CANCEL,
//!   a UAC INVITE cancelled) and every `parse` seed as a datagram.
//! * `fuzz/corpus/endpoint/`: the minimized corpus after fuzzing.
//!
//! A missing or empty directory fails the test: inputs were lost.

#![allow(clippy::expect_used, clippy::panic)]

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

#[allow(unreachable_pub, dead_code)]
#[path = "../../../fuzz/src/endpoint.rs"]
mod endpoint;

fn replay(kind: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join("endpoint");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("input directory {} unreadable: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "input directory {} is empty",
        dir.display()
    );
    let mut failures = Vec::new();
    for file in &files {
        let data = fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| endpoint::check_endpoint(&data))) {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(non-string panic)");
            failures.push(format!("{}: {msg}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn endpoint_seeds_replay_cleanly() {
    replay("seeds");
}

#[test]
fn endpoint_corpus_replays_cleanly() {
    replay("corpus");
}
