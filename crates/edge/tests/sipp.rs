//! SIPp's built-in `uac` scenario as the outside caller, through the edge to
//! three stand-in containers: every call must succeed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{StandIn, edge};
use sip_message::TransportKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_calls_through_the_edge() {
    if !std::path::Path::new("/usr/bin/sipp").exists() {
        panic!("/usr/bin/sipp is required for this test");
    }
    let (c1, c2, c3) = (
        StandIn::start("c1").await,
        StandIn::start("c2").await,
        StandIn::start("c3").await,
    );
    let edge = edge(&[&c1, &c2, &c3]).await;
    let to = edge.sip_addr(TransportKind::Udp).unwrap();
    let mut cmd = Command::new("/usr/bin/sipp");
    cmd.args([
        "-sn",
        "uac",
        "-m",
        "30",
        "-r",
        "30",
        "-i",
        "127.0.0.1",
        "-p",
        "0",
    ])
    .args([
        "-timeout",
        "30s",
        "-timeout_error",
        "-nostdin",
        "-trace_err",
    ])
    .arg(to.to_string())
    .current_dir(std::env::temp_dir());
    let out = tokio::task::spawn_blocking(move || {
        sip_testkit::process::run(cmd, Duration::from_secs(60))
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        out.status.success(),
        "sipp failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let per: Vec<usize> = [&c1, &c2, &c3]
        .iter()
        .map(|c| {
            c.seen
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.method == "INVITE")
                .count()
        })
        .collect();
    assert_eq!(per.iter().sum::<usize>(), 30, "{per:?}");
    assert!(per.iter().all(|&n| n > 0), "{per:?}");
    edge.shutdown().await;
}
