//! The edge proxy: a stateless SIP forwarder and HTTP reverse proxy in front
//! of a set of containers, with session affinity, health checks and
//! failover (issue 5; the wire contract is `docs/CLUSTER.md`, the operator's
//! reference `docs/EDGE.md`).
//!
//! It owns the edge's behaviour end to end: the config file, the per-message
//! forwarding decision (RFC 3261 §16.11: no per-call state, so any edge can
//! take any message and an edge can die without losing a call), the SIP
//! receive loop, active probes, the HTTP reverse proxy with the edge's own
//! `/_sb/` routes (health, metrics, admin API), and the counters.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = edge::EdgeConfig::load(std::path::Path::new("edge.toml"))?;
//! let edge = edge::Edge::start(config).await?;
//! println!("SIP on {:?}, HTTP on {}", edge.sip_addr(sip_message::TransportKind::Udp), edge.http_addr());
//! edge.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! * `config`: [`EdgeConfig`] and its parts; the TOML file and its validation.
//! * `forward`: [`Forwarder`], the sans-IO decision for one SIP message
//!   ([`Decision`], [`Action`]): which container, which bytes.
//! * `container`: [`Container`], [`ContainerCounters`].
//! * `probe`: active health checks (SIP OPTIONS, HTTP `/_sb/health`).
//! * `membership`: containers announced in a session store (`members`),
//!   polled and reconciled with the cluster view.
//! * `udp`: the edge's UDP sockets and their reader threads, read here
//!   (not in `sip-transport`) so each datagram meets the admission limit
//!   and the size limit before it is parsed, and what is not SIP is
//!   counted; batched system calls.
//! * `admission`: the per-source token buckets (`[limits]`), sans-IO.
//! * `http`: the reverse proxy and the `/_sb/` routes.
//! * `metrics`: [`EdgeCounters`] and the Prometheus text.
//! * this file: [`Edge`] (start, addresses, shutdown) and the SIP loop.
//!
//! # Threads
//! The UDP sockets are read by plain OS threads, one per socket, and a UDP
//! address has one socket per core (`[listen] udp_threads`, sharing the
//! port with `SO_REUSEPORT`): each blocks in `recvmmsg`, decides the
//! datagrams it got in order and sends their output in one `sendmmsg`
//! (`udp` says why). Everything else runs as tasks on the caller's tokio
//! runtime: the stream transports' loop, the probes, membership, HTTP, and
//! the sends that may wait (a stream send, a name lookup), which the
//! readers hand to that runtime. The decision allocates only the output
//! bytes and the branch. Routers read the cluster view without a lock
//! ([`balance::Cluster::view`]); the admission table is one mutex, held
//! for one hash lookup per message from outside.
//!
//! # Bad input
//! Before a message is decided: a source over `[limits] per_source_rps` is
//! dropped (`sb_edge_sip_throttled_total`, one warning per source per
//! 10 s; the containers are never limited); a datagram over
//! `max_message_size` or that does not parse is dropped and counted by
//! reason (`sb_edge_sip_dropped_total{reason}`). A request that parses but
//! fails validation is answered 400 naming the fault when its top Via can
//! route the answer, else dropped (`reason="malformed"`).

mod admission;
mod config;
mod container;
mod forward;
mod http;
mod membership;
mod metrics;
mod probe;
mod udp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use balance::{Cluster, HealthPolicy, Signal};
use bytes::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sip_message::{Peer, TransportKind};
use sip_transport::{
    Incoming, TlsServer, TransportConfig, TransportError, TransportLimits, Transports,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

pub use config::{
    AffinityKey, ContainerConfig, DEFAULT_MEMBERS_INTERVAL, EdgeConfig, HealthConfig, LimitsConfig,
    Listen, MAX_UDP_THREADS, MembersConfig, SourceKey, is_node_id,
};
pub use container::{Container, ContainerCounters, Origin};
pub use forward::{
    Action, BRANCH_PREFIX, Decision, DropReason, Forwarder, PROBE_BRANCH_PREFIX, derive_branch,
    token_of,
};
pub use membership::{SETTLE_MIN, settle_window};
pub use metrics::EdgeCounters;
pub use session_store::Store;

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeError {
    /// A SIP transport could not be bound, or a TLS certificate not read.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The HTTP port could not be bound.
    #[error("cannot bind HTTP on {addr}: {source}")]
    HttpBind {
        /// The configured address.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Two containers with one node id.
    #[error(transparent)]
    Membership(#[from] balance::MembershipError),
    /// A UDP reader thread could not be started.
    #[error("cannot start a UDP reader thread: {0}")]
    Threads(std::io::Error),
}

type ProbeReply = oneshot::Sender<(u16, Option<u32>)>;

/// State shared by the SIP loop, the probes and the HTTP handlers.
pub(crate) struct Shared {
    config: EdgeConfig,
    forwarder: Forwarder,
    cluster: Cluster<Container>,
    counters: EdgeCounters,
    transports: Transports,
    udp: udp::UdpSockets,
    /// `None` when `[limits] per_source_rps` is 0.
    admission: Option<Mutex<admission::Admission>>,
    http_client: Client<HttpConnector, axum::body::Body>,
    probes: Mutex<HashMap<String, ProbeReply>>,
}

impl Shared {
    /// Now, on the runtime's clock (paused in tests).
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    /// Sends `bytes` to `to`: UDP from the edge's sockets (from `local`
    /// when given), streams through the transports.
    async fn send_to(
        &self,
        local: Option<Peer>,
        to: Peer,
        bytes: Bytes,
    ) -> Result<(), TransportError> {
        match (to.transport, local) {
            (TransportKind::Udp, _) => self.udp.send(local, to.addr, &bytes).await,
            (_, Some(local)) => self.transports.send_from(local, to, bytes).await,
            (_, None) => self.transports.send(to, bytes).await,
        }
    }

    fn pending_probes(&self) -> MutexGuard<'_, HashMap<String, ProbeReply>> {
        self.probes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the configured containers (reload), keeping the counters of
    /// those that stay. Containers from membership stay unless the file now
    /// names them (the file wins).
    fn replace_containers(&self, containers: Vec<ContainerConfig>) {
        let view = self.cluster.view();
        let announced: Vec<(ContainerConfig, Origin)> = view
            .members()
            .iter()
            .filter(|m| {
                m.data.origin == Origin::Membership
                    && !containers.iter().any(|c| c.node == m.backend.id)
            })
            .map(|m| (m.data.config.clone(), Origin::Membership))
            .collect();
        let list = containers
            .into_iter()
            .map(|c| (c, Origin::Config))
            .chain(announced)
            .map(|(config, origin)| {
                let counters = view
                    .get(&config.node)
                    .map(|m| Arc::clone(&m.data.counters))
                    .unwrap_or_default();
                (
                    http::backend_of(&config),
                    Container {
                        config,
                        counters,
                        origin,
                    },
                )
            })
            .collect();
        self.cluster.replace(list);
    }

    /// Updates the addresses of some containers in one view swap; the others
    /// are kept as they are, and every container keeps its health, draining
    /// state, counters and origin.
    fn update_containers(&self, mut changed: Vec<ContainerConfig>) {
        let view = self.cluster.view();
        let list = view
            .members()
            .iter()
            .map(|m| {
                let config = match changed.iter().position(|c| c.node == m.backend.id) {
                    Some(i) => changed.swap_remove(i),
                    None => m.data.config.clone(),
                };
                (
                    http::backend_of(&config),
                    Container {
                        config,
                        counters: Arc::clone(&m.data.counters),
                        origin: m.data.origin,
                    },
                )
            })
            .collect();
        self.cluster.replace(list);
    }
}

/// A running edge. Dropping it without [`Edge::shutdown`] leaves its tasks
/// running until the runtime stops.
#[derive(Debug)]
pub struct Edge {
    shared: Arc<Shared>,
    http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The UDP reader threads (`udp`).
    readers: Option<udp::Readers>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("node", &self.config.node)
            .field("transports", &self.transports)
            .finish_non_exhaustive()
    }
}

impl Edge {
    /// Binds the SIP transports and the HTTP port, and starts forwarding,
    /// probing and serving HTTP on the current tokio runtime. Containers
    /// start up (traffic flows at once) and follow their probes.
    ///
    /// With [`EdgeConfig::members`], a task opens that store and polls its
    /// members (see [`Edge::start_with_members`]); the edge starts even when
    /// the store cannot be reached yet, and keeps trying.
    pub async fn start(config: EdgeConfig) -> Result<Edge, EdgeError> {
        let members = config
            .members
            .as_ref()
            .map(|m| (membership::Source::Url(m.url.clone()), m.interval));
        Edge::start_inner(config, members).await
    }

    /// [`Edge::start`] with the membership store given as an object (a
    /// [`Store`] shared in-process, as tests do) instead of the URL in
    /// [`EdgeConfig::members`], which is ignored; the poll interval is
    /// `config.members`' (else [`DEFAULT_MEMBERS_INTERVAL`]). Containers
    /// announced in `store` join the cluster view, and leave it when their
    /// announcement lapses; `config.containers` stay regardless.
    pub async fn start_with_members(config: EdgeConfig, store: Store) -> Result<Edge, EdgeError> {
        let interval = config
            .members
            .as_ref()
            .map_or(DEFAULT_MEMBERS_INTERVAL, |m| m.interval);
        Edge::start_inner(config, Some((membership::Source::Store(store), interval))).await
    }

    async fn start_inner(
        config: EdgeConfig,
        members: Option<(membership::Source, std::time::Duration)>,
    ) -> Result<Edge, EdgeError> {
        let l = &config.listen;
        let tls = match &l.tls_cert {
            Some((cert, key)) if !l.tls.is_empty() || !l.wss.is_empty() => {
                Some(TlsServer::from_pem_files(cert, key)?)
            }
            _ => None,
        };
        let with_tls = |addrs: &[SocketAddr]| -> Vec<(SocketAddr, TlsServer)> {
            match &tls {
                Some(t) => addrs.iter().map(|a| (*a, t.clone())).collect(),
                None => Vec::new(),
            }
        };
        let mut udp = l.udp.clone();
        if udp.is_empty() {
            // The containers are reached over UDP: keep one socket for them.
            udp.push(SocketAddr::from(([0, 0, 0, 0], 0)));
        }
        let mut limits = TransportLimits::default();
        limits.message.max_message_size = config.limits.max_message_size;
        let threads = match l.udp_threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
        };
        let udp = udp::UdpSockets::bind(&udp, threads, limits.message)?;
        let transport = TransportConfig {
            udp: Vec::new(),
            tcp: l.tcp.clone(),
            tls: with_tls(&l.tls),
            ws: l.ws.clone(),
            wss: with_tls(&l.wss),
            limits,
            ..TransportConfig::default()
        };
        let (transports, incoming) = Transports::bind(transport).await?;
        let http_listener = tokio::net::TcpListener::bind(l.http)
            .await
            .map_err(|source| EdgeError::HttpBind {
                addr: l.http,
                source,
            })?;
        let http_addr = http_listener
            .local_addr()
            .map_err(|source| EdgeError::HttpBind {
                addr: l.http,
                source,
            })?;

        let cluster = Cluster::new(HealthPolicy {
            rise: config.health.rise,
            fall: config.health.fall,
            start_up: true,
        });
        for c in &config.containers {
            cluster.add(
                http::backend_of(c),
                Container {
                    config: c.clone(),
                    counters: Arc::default(),
                    origin: Origin::Config,
                },
            )?;
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.health.timeout));
        connector.set_nodelay(true);
        let http_client = Client::builder(TokioExecutor::new()).build(connector);
        let shared = Arc::new(Shared {
            forwarder: Forwarder::new(&config),
            admission: admission::Admission::new(&config.limits).map(Mutex::new),
            config,
            cluster,
            counters: EdgeCounters::default(),
            transports,
            udp,
            http_client,
            probes: Mutex::new(HashMap::new()),
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(sip_loop(
            Arc::clone(&shared),
            incoming,
            stop_rx.clone(),
        )));
        let readers = udp::UdpSockets::start_readers(&shared, &tokio::runtime::Handle::current())
            .map_err(EdgeError::Threads)?;
        let stopper = readers.stopper();
        let mut readers_stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            // Dropped when the edge shuts down, or with the runtime.
            let _stopper = stopper;
            let _ = readers_stop.changed().await;
        }));
        tasks.push(tokio::spawn(probe::run(
            Arc::clone(&shared),
            stop_rx.clone(),
        )));
        let with_members = members.is_some();
        if let Some((source, interval)) = members {
            tasks.push(tokio::spawn(membership::run(
                Arc::clone(&shared),
                source,
                interval,
                stop_rx.clone(),
            )));
        }
        let app =
            http::router(Arc::clone(&shared)).into_make_service_with_connect_info::<SocketAddr>();
        let mut http_stop = stop_rx;
        tasks.push(tokio::spawn(async move {
            let serve = axum::serve(http_listener, app).with_graceful_shutdown(async move {
                let _ = http_stop.changed().await;
            });
            if let Err(e) = serve.await {
                warn!(error = %e, "HTTP server stopped");
            }
        }));
        info!(
            node = %shared.config.node,
            public = %shared.config.public,
            sip = ?shared.udp.local_addrs().chain(shared.transports.local_addrs()).collect::<Vec<_>>(),
            http = %http_addr,
            containers = shared.config.containers.len(),
            members = with_members,
            "edge started"
        );
        Ok(Edge {
            shared,
            http_addr,
            stop,
            tasks,
            readers: Some(readers),
        })
    }

    /// The first bound SIP address of a transport (port 0 resolved).
    #[must_use]
    pub fn sip_addr(&self, t: TransportKind) -> Option<SocketAddr> {
        match t {
            TransportKind::Udp => self.shared.udp.local_addrs().next().map(|p| p.addr),
            _ => self.shared.transports.local_addr(t),
        }
    }

    /// The bound HTTP address.
    #[must_use]
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The edge-wide counters.
    #[must_use]
    pub fn counters(&self) -> &EdgeCounters {
        &self.shared.counters
    }

    /// The current cluster view (containers, states, counters).
    #[must_use]
    pub fn view(&self) -> Arc<balance::ClusterView<Container>> {
        self.shared.cluster.view()
    }

    /// Stops receiving, probing and serving HTTP, and closes the sockets.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(readers) = self.readers {
            let _ = tokio::task::spawn_blocking(move || readers.join()).await;
        }
        let transports = self.shared.transports.clone();
        transports.shutdown().await;
        info!(node = %self.shared.config.node, "edge stopped");
    }
}

async fn sip_loop(
    shared: Arc<Shared>,
    mut incoming: mpsc::Receiver<Incoming>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let msg = tokio::select! {
            m = incoming.recv() => m,
            _ = stop.changed() => return,
        };
        let Some(msg) = msg else { return };
        metrics::inc(&shared.counters.sip_received);
        if admit(&shared, msg.source) {
            handle(&shared, msg).await;
        }
    }
}

/// Whether a message from `source` is within its source's admission limit
/// (`[limits]`); counts and logs the ones that are not. The containers are
/// never limited.
fn admit(shared: &Shared, source: Peer) -> bool {
    let Some(table) = &shared.admission else {
        return true;
    };
    if source.transport == TransportKind::Udp
        && shared
            .cluster
            .view()
            .members()
            .iter()
            .any(|m| m.data.config.sip == source.addr)
    {
        return true;
    }
    let now = shared.now();
    let (verdict, tracked) = {
        let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
        (table.check(source.addr, now), table.tracked())
    };
    shared.counters.sources_tracked.store(
        u64::try_from(tracked).unwrap_or(u64::MAX),
        std::sync::atomic::Ordering::Relaxed,
    );
    match verdict {
        admission::Verdict::Admit => true,
        admission::Verdict::Drop { warn } => {
            metrics::inc(&shared.counters.sip_throttled);
            if let Some(dropped) = warn {
                warn!(
                    source = %source,
                    dropped,
                    rps = shared.config.limits.per_source_rps,
                    burst = shared.config.limits.per_source_burst,
                    "source over its admission limit: messages dropped"
                );
            }
            false
        }
    }
}

/// Decides one message from a stream transport and acts on it.
async fn handle(shared: &Arc<Shared>, incoming: Incoming) {
    if let Some(out) = dispatch(shared, incoming)
        && let Err(e) = shared.udp.send(out.from, out.to, &out.bytes).await
    {
        send_failed(shared, out.to, &e, out.container.as_deref());
    }
}

/// Decides one message and acts on it, except for a datagram to send,
/// which is returned: a UDP reader sends a round's datagrams together,
/// the stream loop one by one. Sends that may wait (streams, name
/// lookups) become tasks on the current runtime.
fn dispatch(shared: &Arc<Shared>, incoming: Incoming) -> Option<udp::UdpOut> {
    let now = shared.now();
    let view = shared.cluster.view();
    let decision = shared
        .forwarder
        .decide(&incoming.message, incoming.source, &view, now);
    drop(view);
    if let Some((container, signal)) = decision.health
        && let Some(state) = shared.cluster.record(&container.config.node, signal, now)
    {
        info!(node = %container.config.node, state = state.name(now), "container state changed");
    }
    match decision.action {
        Action::Send {
            to,
            bytes,
            container,
        } => {
            if to.transport == TransportKind::Udp {
                return Some(udp::UdpOut {
                    from: None,
                    to: to.addr,
                    bytes,
                    container,
                });
            }
            let shared = Arc::clone(shared);
            tokio::spawn(async move { send(&shared, to, bytes, container).await });
        }
        Action::Resolve {
            host,
            port,
            transport,
            bytes,
        } => {
            let shared = Arc::clone(shared);
            tokio::spawn(async move {
                let addr = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .ok()
                    .and_then(|mut a| a.next());
                match addr {
                    Some(addr) => send(&shared, Peer { transport, addr }, bytes, None).await,
                    None => {
                        debug!(host = %host, "next hop does not resolve");
                        metrics::inc(&shared.counters.send_errors);
                    }
                }
            });
        }
        Action::Reply { to, status, bytes } => {
            match status {
                400 => metrics::inc(&shared.counters.replied_400),
                482 => metrics::inc(&shared.counters.replied_482),
                483 => metrics::inc(&shared.counters.replied_483),
                503 => metrics::inc(&shared.counters.replied_503),
                _ => {}
            }
            debug!(status, to = %to, "answered statelessly");
            if to.transport == TransportKind::Udp {
                return Some(udp::UdpOut {
                    from: Some(incoming.local),
                    to: to.addr,
                    bytes,
                    container: None,
                });
            }
            let shared = Arc::clone(shared);
            let local = incoming.local;
            tokio::spawn(async move {
                if let Err(e) = shared.send_to(Some(local), to, bytes).await {
                    debug!(error = %e, "stateless reply not sent");
                    metrics::inc(&shared.counters.send_errors);
                }
            });
        }
        Action::ProbeResponse {
            branch,
            status,
            retry_after,
        } => {
            if let Some(tx) = shared.pending_probes().remove(&branch) {
                let _ = tx.send((status, retry_after));
            }
        }
        Action::Drop(reason) => {
            debug!(source = %incoming.source, %reason, "dropped");
            shared.counters.count_drop(reason);
        }
    }
    None
}

async fn send(shared: &Shared, to: Peer, bytes: Bytes, container: Option<Arc<Container>>) {
    if let Err(e) = shared.send_to(None, to, bytes).await {
        send_failed(shared, to.addr, &e, container.as_deref());
    }
}

/// Counts a failed send, and marks the container it was for (passive
/// health).
fn send_failed(
    shared: &Shared,
    to: SocketAddr,
    error: &TransportError,
    container: Option<&Container>,
) {
    debug!(to = %to, %error, "send failed");
    metrics::inc(&shared.counters.send_errors);
    if let Some(c) = container {
        metrics::inc(&c.counters.transport_errors);
        shared
            .cluster
            .record(&c.config.node, Signal::TransportError, shared.now());
    }
}
