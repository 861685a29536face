//! Replaying committed fuzz inputs through a check, for the corpus replay
//! tests (`crates/sip-message/tests/fuzz_corpus.rs`,
//! `crates/sip-proto/tests/fuzz_corpus.rs`), which include this file with
//! `#[path]`: stable Rust, no libFuzzer.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The files of one input directory, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("input directory {} unreadable: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The bytes of one input file.
pub fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs every input of `<fuzz_dir>/<kind>/<target>/` through `check`;
/// reports every failing file (not only the first) with its panic
/// message. A `required` directory that is missing or empty fails: its
/// inputs were lost.
pub fn replay(fuzz_dir: &Path, kind: &str, target: &str, check: fn(&[u8]), required: bool) {
    let dir = fuzz_dir.join(kind).join(target);
    let files = if dir.exists() || required {
        files(&dir)
    } else {
        Vec::new()
    };
    assert!(
        !required || !files.is_empty(),
        "input directory {} is empty",
        dir.display()
    );
    let mut failures = Vec::new();
    for file in &files {
        let data = read(file);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&data))) {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(non-string panic)");
            failures.push(format!("{}: {msg}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {kind}/{target} inputs fail:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
