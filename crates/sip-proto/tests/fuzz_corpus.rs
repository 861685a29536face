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

use std::path::{Path, PathBuf};

#[allow(unreachable_pub, dead_code)]
#[path = "../../../fuzz/src/endpoint.rs"]
mod endpoint;

#[allow(unreachable_pub, dead_code)]
#[path = "../../../fuzz/src/replay.rs"]
mod replay;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

#[test]
fn endpoint_seeds_replay_cleanly() {
    replay::replay(
        &fuzz_dir(),
        "seeds",
        "endpoint",
        endpoint::check_endpoint,
        true,
    );
}

#[test]
fn endpoint_corpus_replays_cleanly() {
    replay::replay(
        &fuzz_dir(),
        "corpus",
        "endpoint",
        endpoint::check_endpoint,
        true,
    );
}
