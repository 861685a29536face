#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Interop: SIPp computes MD5 digest answers itself (`[authentication]`);
//! a tiny UDP registrar on 127.0.0.1 challenges with [`Authenticator`] and
//! checks them. Skipped, with a message, when `sipp` is not on PATH.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use sip_auth::{Algorithm, Authenticator, ChallengeKind, MemoryDirectory, Rejection};
use sip_message::{ResponseBuilder, SipMessage};
use tokio::net::UdpSocket;

fn sipp() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("sipp"))
        .find(|p| p.is_file())
}

/// What the registrar decided for each REGISTER.
type Outcomes = Arc<Mutex<Vec<Result<String, Rejection>>>>;

async fn registrar(auth: Authenticator, users: MemoryDirectory) -> (SocketAddr, Outcomes) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let outcomes: Outcomes = Arc::default();
    let seen = outcomes.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        let mut salt = 0u64;
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(msg) = SipMessage::parse(Bytes::copy_from_slice(&buf[..n])) else {
                continue;
            };
            if !msg.is_request() {
                continue;
            }
            salt += 1;
            let now = SystemTime::now();
            let verdict = auth.verify_message(now, &msg, ChallengeKind::Www, &users);
            let reply = match &verdict {
                Ok(_) => ResponseBuilder::for_request(&msg, 200, Some("reg")),
                Err(rejection) => {
                    let r = auth.reply(rejection, now, salt.to_be_bytes(), ChallengeKind::Www);
                    let mut b = ResponseBuilder::for_request(&msg, r.status, Some("reg"));
                    for (name, value) in &r.headers {
                        b = b.map(|b| b.header(name, value));
                    }
                    b
                }
            };
            seen.lock()
                .unwrap()
                .push(verdict.map(|a| format!("{} {}", a.username, a.algorithm)));
            let out = reply.unwrap().build().unwrap();
            let _ = sock.send_to(out.as_bytes(), from).await;
        }
    });
    (addr, outcomes)
}

fn run_sipp(sipp: &Path, to: SocketAddr, user: &str, password: &str, calls: u32) -> bool {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp-register.xml");
    let mut child = Command::new(sipp)
        .arg("-sf")
        .arg(&scenario)
        .args(["-s", user, "-au", user, "-ap", password])
        .args(["-m", &calls.to_string(), "-r", "20"])
        .args(["-i", "127.0.0.1", "-p", "0"])
        .args(["-timeout", "20s", "-timeout_error", "-nostdin"])
        .arg(to.to_string())
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sipp did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn users() -> MemoryDirectory {
    let mut d = MemoryDirectory::new();
    d.insert_password("alice", "wonderland");
    d
}

#[tokio::test]
async fn sipp_md5_digest_is_accepted_and_a_wrong_password_refused() {
    let Some(sipp) = sipp() else {
        eprintln!("SKIPPED: `sipp` is not on PATH; install SIPp to run the digest interop test");
        return;
    };
    // SIPp computes MD5 only: offer MD5 (an authenticator offering SHA-256
    // as well lists it first, which SIPp 3.6 refuses).
    let auth = Authenticator::new("127.0.0.1", b"interop test secret, 32 bytes!!")
        .unwrap()
        .with_algorithms(&[Algorithm::Md5])
        .unwrap()
        .with_qop_required(true);
    let (addr, outcomes) = registrar(auth, users()).await;

    let s = sipp.clone();
    let ok = tokio::task::spawn_blocking(move || run_sipp(&s, addr, "alice", "wonderland", 5))
        .await
        .unwrap();
    let seen = std::mem::take(&mut *outcomes.lock().unwrap());
    assert!(ok, "sipp failed; the registrar saw {seen:#?}");
    let accepted = seen.iter().filter(|o| o.is_ok()).count();
    let challenged = seen
        .iter()
        .filter(|o| matches!(o, Err(Rejection::Missing)))
        .count();
    assert_eq!((accepted, challenged), (5, 5), "{seen:#?}");
    assert!(seen.iter().flatten().all(|u| u == "alice MD5"), "{seen:#?}");

    let ok = tokio::task::spawn_blocking(move || run_sipp(&sipp, addr, "alice", "not-it", 1))
        .await
        .unwrap();
    let seen = std::mem::take(&mut *outcomes.lock().unwrap());
    assert!(
        !ok,
        "sipp should fail on the second 401; registrar saw {seen:#?}"
    );
    assert!(
        seen.iter().any(
            |o| matches!(o, Err(Rejection::BadCredentials { username }) if username == "alice")
        ),
        "{seen:#?}"
    );
}
