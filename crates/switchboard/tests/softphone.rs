//! A real softphone (issue 4): two baresip instances (Debian's baresip
//! 1.0) register with `switchboard container` and one calls the other
//! through the container's proxy; both report the call established and
//! RTP flows between them. Audio is a sine generator and a file sink, so
//! no sound device is needed; everything stays on the loopback interface.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{Scratch, wait_for};

/// A port free for UDP and TCP, with the next one free for TCP too
/// (baresip listens for TLS on port + 1).
fn phone_port() -> u16 {
    for _ in 0..200 {
        let p = sip_testkit::sipp::free_port(false);
        let ok = p < u16::MAX
            && UdpSocket::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 1)).is_ok();
        if ok {
            return p;
        }
    }
    panic!("no free port pair for baresip");
}

fn phone(dir: &Scratch, user: &str, registrar: SocketAddr, answer: &str) -> std::path::PathBuf {
    let home = dir.0.join(user);
    std::fs::create_dir_all(&home).unwrap();
    let port = phone_port();
    std::fs::write(
        home.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{port}\n\
             audio_player aufile,{}\naudio_source ausine,440\naudio_alert aufile,/dev/null\n\
             ausrc_srate 48000\nauplay_srate 48000\nausrc_channels 2\nauplay_channels 2\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule ausine.so\nmodule aufile.so\n\
             module_app account.so\nmodule_app menu.so\nrtp_ports 30000-30999\n",
            home.join("heard.wav").display()
        ),
    )
    .unwrap();
    std::fs::write(
        home.join("accounts"),
        format!("<sip:{user}@{registrar};transport=udp>;regint=600;answermode={answer}\n"),
    )
    .unwrap();
    home
}

fn baresip(home: &std::path::Path, seconds: u32, exec: Option<&str>) -> std::process::Child {
    let out = std::fs::File::create(home.join("out.log")).unwrap();
    // Line-buffered, so the log can be watched while it runs.
    let mut cmd = Command::new("stdbuf");
    cmd.current_dir(home)
        .args(["-oL", "-eL", "baresip"])
        .arg("-f")
        .arg(home)
        .args(["-4", "-n", "127.0.0.1", "-t", &seconds.to_string()]);
    if let Some(e) = exec {
        cmd.args(["-e", e]);
    }
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("baresip runs (Debian package baresip; scripts/test.sh installs it)")
}

fn log(home: &std::path::Path) -> String {
    std::fs::read_to_string(home.join("out.log")).unwrap_or_default()
}

#[test]
fn two_baresip_phones_register_and_call_through_the_container() {
    if Command::new("baresip").arg("-h").output().is_err() {
        panic!("baresip is not installed (scripts/test.sh installs it)");
    }
    let mut cmd = common::switchboard();
    cmd.args(["container", "--listen", "127.0.0.1:0"]);
    let (_c, line) = sip_testkit::process::spawn_with_banner(cmd, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("container did not start: {e}"));
    let registrar: SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("udp:"))
        .and_then(|a| a.parse().ok())
        .unwrap();
    let dir = Scratch::new("softphone");
    let bob = phone(&dir, "bob", registrar, "auto");
    let alice = phone(&dir, "alice", registrar, "manual");

    let mut bob_proc = baresip(&bob, 20, None);
    wait_for("bob registers", Duration::from_secs(10), || {
        log(&bob).contains("200 OK () [1 binding]").then_some(())
    });
    let mut alice_proc = baresip(&alice, 8, Some(&format!("/dial sip:bob@{registrar}")));
    wait_for("alice's call ends", Duration::from_secs(20), || {
        alice_proc.try_wait().ok().flatten()
    });
    let _ = bob_proc.kill();
    let _ = bob_proc.wait();
    let (a, b) = (log(&alice), log(&bob));
    assert!(a.contains("Call established: sip:bob@"), "alice:\n{a}");
    assert!(b.contains("Call established: sip:alice@"), "bob:\n{b}");
    assert!(
        a.contains("incoming rtp for 'audio' established")
            && b.contains("incoming rtp for 'audio' established"),
        "RTP both ways:\nalice:\n{a}\nbob:\n{b}"
    );
}
