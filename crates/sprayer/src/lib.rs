//! The sprayer: the L4 load balancer in front of the edge proxies. It owns
//! spreading UDP datagrams and TCP connections over the edges by a
//! consistent hash of the client's address, health-checking the edges, and
//! taking a dead edge out within `fall * interval + timeout`. It reads no
//! SIP and keeps no per-call state: the UDP flow table is soft state whose
//! loss only loses mappings that the hash recreates.
//!
//! Clients talk to one address: UDP answers from an edge are relayed from
//! the sprayer's listening socket, TCP is proxied byte for byte.
//!
//! # Layout
//! - [`config`]: the TOML file and the validated [`SprayerConfig`].
//! - [`maglev`]: Maglev consistent hashing and the flow hash.
//! - `edges`: the edge set, each edge's health and counters, its prober task,
//!   and the picker (a primary Maglev table over all edges and a fallback
//!   table over the healthy ones, so an edge's failure moves only its flows).
//! - `health`: the rise/fall counter and the `GET /_sb/health` probe.
//! - `flows`: the bounded UDP flow table with idle expiry (sans-IO).
//! - `udp`: the UDP relay of a service; `tcp`: the TCP proxy of a service.
//! - `metrics`: Prometheus text.
//!
//! `docs/SPRAYER.md` has the config reference, what happens when an edge
//! dies, HA with two sprayers (keepalived) and the Kubernetes mapping.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use sprayer::{Proto, Sprayer, SprayerConfig};
//! let config = SprayerConfig::load(std::path::Path::new("sprayer.toml"))?;
//! let sprayer = Sprayer::start(config).await?;
//! println!("SIP on {:?}", sprayer.local_addr("sip", Proto::Udp));
//! sprayer.shutdown().await;
//! # Ok(()) }
//! ```

pub mod config;
mod edges;
mod flows;
mod health;
pub mod maglev;
mod metrics;
mod tcp;
mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

pub use config::{
    EdgeSpec, HealthConfig, Proto, ServiceConfig, SprayerConfig, Target, TcpConfig, UdpConfig,
};

/// Errors of [`Sprayer::start`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SprayerError {
    /// A listening socket could not be bound.
    #[error("service {service}: cannot bind {proto} {addr}: {source}")]
    Bind {
        /// The service.
        service: String,
        /// The protocol.
        proto: Proto,
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `start` was called outside a tokio runtime.
    #[error("the sprayer must be started inside a tokio runtime")]
    NoRuntime,
}

/// The health of one edge as the sprayer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EdgeStatus {
    /// The edge's name.
    pub name: String,
    /// Whether it passes its health checks (flows are picked onto it).
    pub up: bool,
}

/// Milliseconds since the sprayer started (tokio's clock, so tests can pause
/// it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: tokio::time::Instant,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            epoch: tokio::time::Instant::now(),
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Counters of one service (both protocols).
#[derive(Debug, Default)]
pub(crate) struct ServiceStats {
    /// Gauge: flows in the UDP table.
    pub(crate) flows: AtomicU64,
    pub(crate) flows_created: AtomicU64,
    pub(crate) flows_expired: AtomicU64,
    pub(crate) flows_evicted: AtomicU64,
    pub(crate) flows_moved: AtomicU64,
    pub(crate) tcp_accepted: AtomicU64,
    pub(crate) dropped_no_edge: AtomicU64,
}

/// A running sprayer: its listening sockets, relays and health checks.
pub struct Sprayer {
    edges: Arc<edges::EdgeSet>,
    addrs: Vec<(String, Proto, SocketAddr)>,
    services: Vec<(String, Arc<ServiceStats>)>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Sprayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sprayer")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

/// Attempts at binding UDP and TCP to one port picked by the system.
const SAME_PORT_ATTEMPTS: usize = 16;

impl Sprayer {
    /// Binds every service, starts the relays and the health checks of the
    /// configured edges (which start up; see `docs/SPRAYER.md`).
    pub async fn start(config: SprayerConfig) -> Result<Sprayer, SprayerError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| SprayerError::NoRuntime)?;
        let edges = edges::EdgeSet::new(config.health, runtime);
        let clock = Clock::new();
        let (shutdown, _) = watch::channel(false);
        let mut addrs = Vec::new();
        let mut services = Vec::new();
        let mut udp_relays = Vec::new();
        let mut tcp_proxies = Vec::new();
        for svc in &config.services {
            let (udp, tcp) = bind_service(svc).await?;
            let stats = Arc::new(ServiceStats::default());
            services.push((svc.name.clone(), Arc::clone(&stats)));
            if let Some(socket) = udp {
                let local = socket
                    .local_addr()
                    .map_err(|e| bind_err(svc, Proto::Udp, e))?;
                addrs.push((svc.name.clone(), Proto::Udp, local));
                info!(service = %svc.name, %local, "sprayer listening on udp");
                udp_relays.push(udp::UdpRelay {
                    name: svc.name.clone(),
                    socket: Arc::new(socket),
                    target: svc.target,
                    edges: Arc::clone(&edges),
                    config: config.udp,
                    clock,
                    stats: Arc::clone(&stats),
                    last_warn: AtomicU64::new(0),
                });
            }
            if let Some(listener) = tcp {
                let local = listener
                    .local_addr()
                    .map_err(|e| bind_err(svc, Proto::Tcp, e))?;
                addrs.push((svc.name.clone(), Proto::Tcp, local));
                info!(service = %svc.name, %local, "sprayer listening on tcp");
                tcp_proxies.push(tcp::TcpProxy {
                    name: svc.name.clone(),
                    listener,
                    target: svc.target,
                    edges: Arc::clone(&edges),
                    config: config.tcp,
                    stats,
                });
            }
        }
        edges.set(config.edges);
        let mut tasks = Vec::new();
        for r in udp_relays {
            tasks.push(tokio::spawn(r.run(shutdown.subscribe())));
        }
        for p in tcp_proxies {
            tasks.push(tokio::spawn(p.run(shutdown.subscribe())));
        }
        Ok(Sprayer {
            edges,
            addrs,
            services,
            shutdown,
            tasks,
        })
    }

    /// The bound address of a service (port 0 in config resolved).
    #[must_use]
    pub fn local_addr(&self, service: &str, proto: Proto) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(s, p, _)| s == service && *p == proto)
            .map(|(_, _, a)| *a)
    }

    /// Replaces the edge set at run time (atomic swap). Edges kept with the
    /// same name and addresses keep their health and counters; new edges
    /// start up and are probed; flows of removed edges move on their next
    /// datagram, TCP connections to them are left to finish.
    pub fn set_edges(&self, edges: Vec<EdgeSpec>) {
        self.edges.set(edges);
    }

    /// The edges and their health now.
    #[must_use]
    pub fn edge_status(&self) -> Vec<EdgeStatus> {
        self.edges
            .snapshot()
            .iter()
            .map(|e| EdgeStatus {
                name: e.spec.name.clone(),
                up: e.is_up(),
            })
            .collect()
    }

    /// A receiver whose value changes on every health flip and edge-set
    /// change (await `changed()`, then read [`Sprayer::edge_status`]).
    #[must_use]
    pub fn health_changes(&self) -> watch::Receiver<u64> {
        self.edges.changes()
    }

    /// The counters in Prometheus text format: per edge health, UDP packets
    /// and bytes each way, TCP connections and bytes; per service flows.
    #[must_use]
    pub fn metrics_text(&self) -> String {
        metrics::render(&self.edges.snapshot(), &self.services)
    }

    /// Stops the relays (dropping flows and closing proxied connections)
    /// and the health checks; returns when the tasks are done.
    pub async fn shutdown(mut self) {
        self.stop();
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
        info!("sprayer stopped");
    }

    fn stop(&self) {
        self.shutdown.send_replace(true);
        self.edges.stop();
    }
}

impl Drop for Sprayer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Resolves when the shutdown flag turns true (or its sender is gone).
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

fn bind_err(svc: &ServiceConfig, proto: Proto, source: std::io::Error) -> SprayerError {
    SprayerError::Bind {
        service: svc.name.clone(),
        proto,
        addr: svc.listen,
        source,
    }
}

/// Binds a service's sockets. With port 0 and both protocols, UDP picks the
/// port and TCP takes the same number (retried if TCP finds it taken).
async fn bind_service(
    svc: &ServiceConfig,
) -> Result<(Option<UdpSocket>, Option<TcpListener>), SprayerError> {
    let want_udp = svc.protocols.contains(&Proto::Udp);
    let want_tcp = svc.protocols.contains(&Proto::Tcp);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let udp = if want_udp {
            Some(
                UdpSocket::bind(svc.listen)
                    .await
                    .map_err(|e| bind_err(svc, Proto::Udp, e))?,
            )
        } else {
            None
        };
        let mut tcp_addr = svc.listen;
        if let Some(u) = &udp {
            let local = u.local_addr().map_err(|e| bind_err(svc, Proto::Udp, e))?;
            tcp_addr.set_port(local.port());
        }
        if !want_tcp {
            return Ok((udp, None));
        }
        match TcpListener::bind(tcp_addr).await {
            Ok(l) => return Ok((udp, Some(l))),
            Err(e)
                if udp.is_some()
                    && svc.listen.port() == 0
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && attempt < SAME_PORT_ATTEMPTS => {}
            Err(e) => return Err(bind_err(svc, Proto::Tcp, e)),
        }
    }
}
