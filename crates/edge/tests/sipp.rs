//! SIPp as the outside caller, through the edge to three stand-in
//! containers: the built-in `uac` scenario (every call must succeed), and
//! held calls across a drain (the drained container finishes its calls and
//! takes no new ones).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{StandIn, edge, http};
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

/// A call that follows the dialog's route set (`rrs`): its ACK and BYE
/// carry the container's token in the Route, as a real UA's would, and the
/// BYE comes after the `-d` hold.
const HELD_CALL: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="held call through the edge">
  <send retrans="500">
    <![CDATA[
      INVITE sip:bob@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:bob@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:bob@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:bob@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"#;

/// Runs `calls` held calls (Call-IDs `<prefix>-<n>@sipp`) at 30 a second
/// through `to`, each held `hold_ms` before its BYE, on a blocking thread.
fn held_calls(
    scenario: &std::path::Path,
    to: std::net::SocketAddr,
    prefix: &str,
    calls: u32,
    hold_ms: u32,
) -> tokio::task::JoinHandle<std::process::Output> {
    let mut cmd = Command::new("/usr/bin/sipp");
    cmd.arg("-sf")
        .arg(scenario)
        .args([
            "-m",
            &calls.to_string(),
            "-r",
            "30",
            "-d",
            &hold_ms.to_string(),
        ])
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            "0",
            "-cid_str",
            &format!("{prefix}-%u@sipp"),
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
    tokio::task::spawn_blocking(move || {
        sip_testkit::process::run(cmd, Duration::from_secs(60)).unwrap()
    })
}

fn call_ids(c: &StandIn, method: &str, prefix: &str) -> Vec<String> {
    c.seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.method == method && s.call_id.starts_with(prefix))
        .map(|s| s.call_id.clone())
        .collect()
}

fn assert_success(what: &str, out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{what}: sipp failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_a_container_mid_hold_completes_its_calls_and_takes_no_new_ones() {
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
    let scenario = std::env::temp_dir().join(format!("edge-held-call-{}.xml", std::process::id()));
    std::fs::write(&scenario, HELD_CALL).unwrap();

    // 30 calls held 4 s; the drain comes once they are all established.
    let held = held_calls(&scenario, to, "held", 30, 4000);
    let acked = |c: &StandIn| call_ids(c, "ACK", "held-").len();
    let mut established = false;
    for _ in 0..500 {
        if acked(&c1) + acked(&c2) + acked(&c3) == 30 {
            established = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(established, "the held calls were not all established");
    let held_on_c1 = call_ids(&c1, "INVITE", "held-");
    assert!(!held_on_c1.is_empty(), "no held call on c1");
    assert_eq!(
        http(
            edge.http_addr(),
            "POST",
            "/_sb/admin/containers/c1/drain",
            "",
            ""
        )
        .await
        .0,
        200
    );
    // Every held call is still in its hold: no BYE yet.
    let byes = |c: &StandIn| call_ids(c, "BYE", "held-").len();
    assert_eq!(
        byes(&c1) + byes(&c2) + byes(&c3),
        0,
        "the hold ended before the drain"
    );

    // New calls while c1 drains and its calls are held.
    let fresh = held_calls(&scenario, to, "new", 30, 1);
    let fresh = fresh.await.unwrap();
    let held = held.await.unwrap();
    assert_success("held calls", &held);
    assert_success("new calls", &fresh);

    // The drained container finished its calls: each BYE of a call it held
    // reached it (the token in the Route), and no other container.
    let mut byes_on_c1 = call_ids(&c1, "BYE", "held-");
    byes_on_c1.sort();
    let mut want = held_on_c1.clone();
    want.sort();
    assert_eq!(byes_on_c1, want);
    for c in [&c2, &c3] {
        let byes = call_ids(c, "BYE", "held-");
        assert!(byes.iter().all(|id| !held_on_c1.contains(id)), "{byes:?}");
    }
    // It took no new call; the others took them all.
    assert!(call_ids(&c1, "INVITE", "new-").is_empty());
    assert_eq!(
        call_ids(&c2, "INVITE", "new-").len() + call_ids(&c3, "INVITE", "new-").len(),
        30
    );
    assert_eq!(
        edge.view().get("c1").unwrap().state,
        balance::State::Draining
    );
    let _ = std::fs::remove_file(&scenario);
    edge.shutdown().await;
}
