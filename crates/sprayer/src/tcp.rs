//! TCP: accept, pick an edge by Maglev of the client's address, connect
//! (with a timeout; on failure the next usable edge), then copy both ways,
//! counting bytes as they pass (SIP connections live long).
//!
//! A connection ends when either side closes, when the sprayer shuts down,
//! or when its edge is found dead (down and unreachable): the client
//! reconnects and the new connection avoids the dead edge. An edge that is
//! down but answering (draining: `503`) keeps its connections until they end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::sync::atomic::AtomicU64;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::ServiceStats;
use crate::config::{Target, TcpConfig};
use crate::edges::{Edge, EdgeSet};
use crate::maglev::flow_hash;

/// Idle time before TCP keepalive probes on both legs (a vanished peer
/// does not hold a connection forever).
const KEEPALIVE: Duration = Duration::from_secs(30);

/// One TCP service's proxy.
pub(crate) struct TcpProxy {
    pub(crate) name: String,
    pub(crate) listener: TcpListener,
    pub(crate) target: Target,
    pub(crate) edges: Arc<EdgeSet>,
    pub(crate) config: TcpConfig,
    pub(crate) stats: Arc<ServiceStats>,
}

impl TcpProxy {
    /// Runs until `shutdown` turns true; open connections are closed then.
    pub(crate) async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                () = crate::stopped(&mut shutdown) => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                r = self.listener.accept() => match r {
                    Ok((client, peer)) => {
                        self.stats.tcp_accepted.fetch_add(1, Ordering::Relaxed);
                        conns.spawn(proxy(
                            client,
                            peer,
                            self.target,
                            Arc::clone(&self.edges),
                            self.config,
                            Arc::clone(&self.stats),
                        ));
                    }
                    Err(e) => {
                        // Out of descriptors and the like: back off briefly
                        // rather than spin.
                        warn!(service = %self.name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        conns.shutdown().await;
    }
}

async fn proxy(
    mut client: TcpStream,
    peer: SocketAddr,
    target: Target,
    edges: Arc<EdgeSet>,
    config: TcpConfig,
    stats: Arc<ServiceStats>,
) {
    let candidates = edges.picker().candidates(flow_hash(&peer));
    drop(edges);
    let mut chosen: Option<(Arc<Edge>, TcpStream)> = None;
    for edge in candidates {
        let to = edge.spec.addr(target);
        match tokio::time::timeout(config.connect_timeout, TcpStream::connect(to)).await {
            Ok(Ok(s)) => {
                chosen = Some((edge, s));
                break;
            }
            Ok(Err(e)) => debug!(edge = %edge.spec.name, error = %e, "connect failed"),
            Err(_) => debug!(edge = %edge.spec.name, "connect timed out"),
        }
        edge.stats
            .tcp_connect_failures
            .fetch_add(1, Ordering::Relaxed);
    }
    let Some((edge, mut upstream)) = chosen else {
        stats.dropped_no_edge.fetch_add(1, Ordering::Relaxed);
        debug!(%peer, "no edge took the connection");
        return;
    };
    for s in [&client, &upstream] {
        let _ = s.set_nodelay(true);
        let ka = socket2::TcpKeepalive::new().with_time(KEEPALIVE);
        let _ = socket2::SockRef::from(s).set_tcp_keepalive(&ka);
    }
    let st = &edge.stats;
    st.tcp_connections.fetch_add(1, Ordering::Relaxed);
    st.tcp_active.fetch_add(1, Ordering::Relaxed);
    let mut dead = edge.dead_signal();
    dead.borrow_and_update();
    let (mut cr, mut cw) = client.split();
    let (mut ur, mut uw) = upstream.split();
    let both = async {
        tokio::try_join!(
            pump(&mut cr, &mut uw, &st.tcp_to_edge_bytes),
            pump(&mut ur, &mut cw, &st.tcp_to_client_bytes),
        )
    };
    tokio::select! {
        r = both => if let Err(e) = r {
            debug!(%peer, edge = %edge.spec.name, error = %e, "connection ended");
        },
        _ = dead.changed() => {
            debug!(%peer, edge = %edge.spec.name, "edge dead: closing the client's connection");
        }
    }
    st.tcp_active.fetch_sub(1, Ordering::Relaxed);
}

/// Copy buffer per direction.
const COPY_BUF: usize = 16 * 1024;

/// Copies one direction until end of stream, then half-closes the writer
/// (the other direction goes on, as `copy_bidirectional` does).
async fn pump<R, W>(r: &mut R, w: &mut W, bytes: &AtomicU64) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return w.shutdown().await;
        }
        w.write_all(buf.get(..n).unwrap_or_default()).await?;
        bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}
