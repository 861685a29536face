//! Real Redis servers on loopback for tests (feature `testing`): this
//! crate's tests use them, and so can the container's.
//!
//! * [`RedisServer::start`]: a `redis-server` on a free port of 127.0.0.1,
//!   without persistence (`--save "" --appendonly no`), its files in a
//!   fresh temporary directory; [`stop`](RedisServer::stop) kills it (as a
//!   crash would), [`restart`](RedisServer::restart) starts it again on the
//!   same port, and dropping it kills it and removes its directory.
//! * [`RedisServer::start_replica_of`]: a replica, for `WAIT` tests.
//! * [`RedisCluster::start`]: a Redis Cluster of N primaries, slots split
//!   evenly, ready when every node says `cluster_state:ok`.
//!
//! The binary is `redis-server` from `PATH`, or `$REDIS_SERVER`
//! (`scripts/test.sh` installs Debian's `redis-server`). Every wait is
//! bounded: a server that does not answer `PING` within 10 s fails the
//! test, it never hangs it.
//!
//! ```no_run
//! use session_store::testing::RedisServer;
//! use session_store::{SessionStore, Store};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), session_store::StoreError> {
//! let redis = RedisServer::start();
//! let store = Store::open(&redis.url()).await?;
//! store.put("k", b"v".to_vec(), 0, None).await?;
//! # Ok(())
//! # }
//! ```

use std::io::{self, Read, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to answer `PING` after it was spawned.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// How long a cluster may take to agree it is whole.
const CLUSTER_READY_WITHIN: Duration = Duration::from_secs(30);
/// Attempts at a free port (another process may take the one we picked).
const PORT_ATTEMPTS: usize = 5;

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A `redis-server` process on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port; panics when it cannot (no
    /// `redis-server` installed, or it does not come up).
    #[allow(clippy::panic)]
    pub fn start() -> RedisServer {
        RedisServer::try_start_with(&[])
            .unwrap_or_else(|e| panic!("cannot start redis-server for the test: {e}"))
    }

    /// Like [`start`](Self::start), with more `redis-server` arguments
    /// (`["--maxmemory", "1mb"]`).
    #[allow(clippy::panic)]
    pub fn start_with(extra: &[&str]) -> RedisServer {
        RedisServer::try_start_with(extra)
            .unwrap_or_else(|e| panic!("cannot start redis-server for the test: {e}"))
    }

    /// Starts a replica of `primary` and waits until its replication link
    /// is up; panics when it cannot.
    #[allow(clippy::panic)]
    pub fn start_replica_of(primary: &RedisServer) -> RedisServer {
        let port = primary.port.to_string();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let info = replica
                .command(&["INFO", "replication"])
                .unwrap_or_default();
            if info.contains("master_link_status:up") {
                return replica;
            }
            if Instant::now() > deadline {
                panic!(
                    "replica on port {} never linked to its primary: {info}",
                    replica.port
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// [`start_with`](Self::start_with) without the panic.
    pub fn try_start_with(extra: &[&str]) -> io::Result<RedisServer> {
        let dir = std::env::temp_dir().join(format!(
            "session-store-redis-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let mut server = RedisServer {
            port: 0,
            dir,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port()?;
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no attempt made")))
    }

    /// `redis://127.0.0.1:PORT/`, for [`Store::open`](crate::Store::open)
    /// (add `?prefix=…` and the like as needed).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The TCP port it listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its working directory (log file `redis.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the process runs (not stopped, not exited).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the server (`SIGKILL`, as a crash) and reaps it. Its data is
    /// gone: there is no persistence.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server if it runs, and starts it again on the same port;
    /// panics when it does not come back.
    #[allow(clippy::panic)]
    pub fn restart(&mut self) {
        self.stop();
        // The port was ours a moment ago; retry briefly in case the kernel
        // has not released it yet.
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!("redis-server did not restart on port {}: {e}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Runs one command and returns its answer as text (bulk string, simple
    /// string or integer), for checks in tests: `["INFO", "replication"]`.
    pub fn command(&self, args: &[&str]) -> io::Result<String> {
        command(self.port, args)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let binary = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let log = self.dir.join("redis.log");
        let mut cmd = Command::new(&binary);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{binary}: {e}")))?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if !self.is_running() {
                self.child = None;
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(3).collect();
                return Err(io::Error::other(format!(
                    "redis-server on port {} exited: {}",
                    self.port,
                    tail.join(" | ")
                )));
            }
            if command(self.port, &["PING"]).is_ok_and(|pong| pong == "PONG") {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("redis-server on port {} did not answer PING", self.port),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of primaries on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `primaries` nodes (at least 1), splits the 16384 slots
    /// between them and waits until all agree the cluster is ok; panics
    /// when it cannot.
    #[allow(clippy::panic)]
    pub fn start(primaries: usize) -> RedisCluster {
        RedisCluster::try_start(primaries)
            .unwrap_or_else(|e| panic!("cannot start a Redis Cluster for the test: {e}"))
    }

    /// [`start`](Self::start) without the panic.
    pub fn try_start(primaries: usize) -> io::Result<RedisCluster> {
        let primaries = primaries.max(1);
        let mut nodes = Vec::with_capacity(primaries);
        for _ in 0..primaries {
            // The cluster bus port must be free too, and below 65536.
            let bus = free_port()?.to_string();
            nodes.push(RedisServer::try_start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                &bus,
                "--cluster-node-timeout",
                "3000",
            ])?);
        }
        const SLOTS: usize = 16384;
        for (i, node) in nodes.iter().enumerate() {
            let first = (SLOTS * i / primaries).to_string();
            let last = (SLOTS * (i + 1) / primaries - 1).to_string();
            node.command(&["CLUSTER", "ADDSLOTSRANGE", &first, &last])?;
        }
        if let Some((first, rest)) = nodes.split_first() {
            for node in rest {
                let bus = node
                    .extra
                    .iter()
                    .skip_while(|a| *a != "--cluster-port")
                    .nth(1)
                    .cloned()
                    .unwrap_or_default();
                first.command(&["CLUSTER", "MEET", "127.0.0.1", &node.port.to_string(), &bus])?;
            }
        }
        let deadline = Instant::now() + CLUSTER_READY_WITHIN;
        let wanted = format!("cluster_known_nodes:{primaries}");
        loop {
            let ready = nodes.iter().all(|n| {
                n.command(&["CLUSTER", "INFO"])
                    .is_ok_and(|info| info.contains("cluster_state:ok") && info.contains(&wanted))
            });
            if ready {
                return Ok(RedisCluster { nodes });
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the cluster's nodes never agreed on cluster_state:ok",
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis-cluster://127.0.0.1:P1,127.0.0.1:P2,…`, for
    /// [`Store::open`](crate::Store::open).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis-cluster://{}", hosts.join(","))
    }

    /// Its nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}

fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// One RESP command on a fresh connection, answer as text. Small on
/// purpose: the fixture must not depend on the code under test.
fn command(port: u16, args: &[&str]) -> io::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    stream.write_all(&request)?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        answer.extend_from_slice(buf.get(..n).unwrap_or_default());
        if let Some(text) = parse_reply(&answer)? {
            return Ok(text);
        }
    }
}

/// A complete simple reply as text, or None when more bytes are needed.
fn parse_reply(bytes: &[u8]) -> io::Result<Option<String>> {
    let Some(line_end) = bytes.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = String::from_utf8_lossy(bytes.get(1..line_end).unwrap_or_default()).into_owned();
    match bytes.first() {
        Some(b'+' | b':') => Ok(Some(line)),
        Some(b'-') => Err(io::Error::other(line)),
        Some(b'$') => {
            let len: i64 = line
                .parse()
                .map_err(|_| io::Error::other(format!("bad bulk length {line:?}")))?;
            if len < 0 {
                return Ok(Some(String::new()));
            }
            let start = line_end + 2;
            let end = start + usize::try_from(len).unwrap_or(0);
            match bytes.get(start..end) {
                Some(body) if bytes.len() >= end + 2 => {
                    Ok(Some(String::from_utf8_lossy(body).into_owned()))
                }
                _ => Ok(None),
            }
        }
        _ => Err(io::Error::other(format!(
            "reply type not handled by the fixture: {:?}",
            String::from_utf8_lossy(bytes)
        ))),
    }
}
