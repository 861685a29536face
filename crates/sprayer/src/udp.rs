//! UDP: one listening socket per service and a soft flow table.
//!
//! A datagram from a client with no flow picks an edge by Maglev of the
//! client's address, opens an upstream socket (unspecified address of the
//! edge's family, port 0) connected to the edge, and spawns the flow's reply
//! task: every datagram the edge sends to that socket is relayed to the
//! client from the listening socket, so the client sees answers come from the
//! address it sent to. Later datagrams of the flow go through the same
//! upstream socket. When the flow's edge is no longer usable, the next
//! datagram re-targets the flow (the upstream socket is connected to the new
//! edge). Datagrams are never parsed.
//!
//! The flow table is owned by the service's receive loop (no lock on the
//! data path); the reply tasks share only an atomic "last active" time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::{debug, warn};

use crate::config::{Target, UdpConfig};
use crate::edges::{Edge, EdgeSet};
use crate::flows::{Activity, FlowTable};
use crate::maglev::flow_hash;
use crate::{Clock, ServiceStats};

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

struct FlowShared {
    edge: ArcSwap<Edge>,
    last_active: AtomicU64,
}

struct Flow {
    shared: Arc<FlowShared>,
    upstream: Arc<UdpSocket>,
    reply: AbortHandle,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.reply.abort();
    }
}

impl Activity for Flow {
    fn last_active(&self) -> u64 {
        self.shared.last_active.load(Ordering::Relaxed)
    }
}

/// One UDP service's relay.
pub(crate) struct UdpRelay {
    pub(crate) name: String,
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) target: Target,
    pub(crate) edges: Arc<EdgeSet>,
    pub(crate) config: UdpConfig,
    pub(crate) clock: Clock,
    pub(crate) stats: Arc<ServiceStats>,
    /// When the last rate-limited warning was logged (clock ms, 0: never).
    pub(crate) last_warn: AtomicU64,
}

impl UdpRelay {
    /// Runs until `shutdown` turns true; drops every flow on the way out.
    pub(crate) async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut table: FlowTable<Flow> = FlowTable::new(self.config.max_flows);
        let idle_ms = u64::try_from(self.config.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let sweep_every =
            (self.config.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
        let mut sweep = tokio::time::interval(sweep_every);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            tokio::select! {
                () = crate::stopped(&mut shutdown) => break,
                _ = sweep.tick() => {
                    let gone = table.expire(self.clock.now_ms(), idle_ms);
                    if !gone.is_empty() {
                        debug!(service = %self.name, flows = gone.len(), "idle flows expired");
                        self.stats.flows_expired.fetch_add(gone.len() as u64, Ordering::Relaxed);
                    }
                    self.stats.flows.store(table.len() as u64, Ordering::Relaxed);
                }
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, client)) => {
                        if let Some(data) = buf.get(..n) {
                            self.forward(&mut table, client, data).await;
                        }
                    }
                    // An ICMP error for an earlier send_to (Linux reports
                    // them on unconnected sockets too): nothing to do.
                    Err(e) => debug!(service = %self.name, error = %e, "udp receive error"),
                },
            }
        }
        table.clear();
        self.stats.flows.store(0, Ordering::Relaxed);
    }

    async fn forward(&self, table: &mut FlowTable<Flow>, client: SocketAddr, data: &[u8]) {
        let now = self.clock.now_ms();
        let mut stale = false;
        if let Some(flow) = table.get(&client) {
            let edge = flow.shared.edge.load_full();
            if edge.is_usable() || self.retarget(flow, client).await {
                flow.shared.last_active.store(now, Ordering::Relaxed);
                let edge = flow.shared.edge.load();
                send_up(&flow.upstream, &edge, data).await;
                return;
            }
            stale = true;
        }
        if stale {
            // Could not re-target in place (no edge, other address family):
            // start over with a new flow.
            table.remove(&client);
        }
        let Some(edge) = self.edges.picker().pick(flow_hash(&client)).cloned() else {
            self.stats.dropped_no_edge.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let flow = match self.open_flow(client, edge, now).await {
            Ok(f) => f,
            Err(e) => {
                // Out of descriptors under a flood of new sources: warn at
                // most once a second.
                let last = self.last_warn.load(Ordering::Relaxed);
                if last == 0 || now.saturating_sub(last) >= 1000 {
                    self.last_warn.store(now.max(1), Ordering::Relaxed);
                    warn!(service = %self.name, %client, error = %e, "cannot open an upstream socket (more are not logged for a second)");
                }
                self.stats.dropped_no_edge.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        send_up(&flow.upstream, &flow.shared.edge.load(), data).await;
        self.stats.flows_created.fetch_add(1, Ordering::Relaxed);
        if table.insert(client, flow, now).is_some() {
            self.stats.flows_evicted.fetch_add(1, Ordering::Relaxed);
        }
        self.stats
            .flows
            .store(table.len() as u64, Ordering::Relaxed);
    }

    /// Points a flow whose edge is down at the edge the picker gives now;
    /// false when that needs a new flow.
    async fn retarget(&self, flow: &Flow, client: SocketAddr) -> bool {
        let picker = self.edges.picker();
        let Some(next) = picker.pick(flow_hash(&client)) else {
            return false;
        };
        let old = flow.shared.edge.load();
        if Arc::ptr_eq(next, &old) {
            // Fail-open: no usable edge and the picker still says this one.
            return true;
        }
        let to = next.spec.addr(self.target);
        if to.is_ipv4() != old.spec.addr(self.target).is_ipv4() {
            return false;
        }
        if let Err(e) = flow.upstream.connect(to).await {
            debug!(service = %self.name, %client, error = %e, "re-target failed");
            return false;
        }
        debug!(service = %self.name, %client, from = %old.spec.name, to = %next.spec.name, "flow moved");
        flow.shared.edge.store(Arc::clone(next));
        self.stats.flows_moved.fetch_add(1, Ordering::Relaxed);
        true
    }

    async fn open_flow(
        &self,
        client: SocketAddr,
        edge: Arc<Edge>,
        now: u64,
    ) -> std::io::Result<Flow> {
        let to = edge.spec.addr(self.target);
        let any: IpAddr = if to.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let upstream = Arc::new(UdpSocket::bind(SocketAddr::new(any, 0)).await?);
        upstream.connect(to).await?;
        let shared = Arc::new(FlowShared {
            edge: ArcSwap::new(edge),
            last_active: AtomicU64::new(now),
        });
        let reply = tokio::spawn(relay_replies(
            Arc::clone(&upstream),
            Arc::clone(&self.socket),
            client,
            Arc::clone(&shared),
            self.clock,
        ));
        Ok(Flow {
            shared,
            upstream,
            reply: reply.abort_handle(),
        })
    }
}

async fn send_up(upstream: &UdpSocket, edge: &Edge, data: &[u8]) {
    match upstream.send(data).await {
        Ok(n) => {
            edge.stats
                .udp_to_edge_packets
                .fetch_add(1, Ordering::Relaxed);
            edge.stats
                .udp_to_edge_bytes
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        Err(e) => {
            edge.stats.udp_send_errors.fetch_add(1, Ordering::Relaxed);
            debug!(edge = %edge.spec.name, error = %e, "udp send to edge failed");
        }
    }
}

/// The reply task of one flow: edge -> upstream socket -> listening socket
/// -> client. Runs until the flow is dropped (aborted).
async fn relay_replies(
    upstream: Arc<UdpSocket>,
    listen: Arc<UdpSocket>,
    client: SocketAddr,
    shared: Arc<FlowShared>,
    clock: Clock,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match upstream.recv(&mut buf).await {
            Ok(n) => {
                let Some(data) = buf.get(..n) else { continue };
                shared.last_active.store(clock.now_ms(), Ordering::Relaxed);
                let edge = shared.edge.load();
                match listen.send_to(data, client).await {
                    Ok(n) => {
                        edge.stats
                            .udp_to_client_packets
                            .fetch_add(1, Ordering::Relaxed);
                        edge.stats
                            .udp_to_client_bytes
                            .fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        edge.stats.udp_send_errors.fetch_add(1, Ordering::Relaxed);
                        debug!(%client, error = %e, "udp send to client failed");
                    }
                }
            }
            // ICMP port unreachable from the edge reported on the connected
            // socket: the edge is gone; health checks take it out.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                debug!(%client, error = %e, "edge refused a datagram");
            }
            Err(e) => {
                warn!(%client, error = %e, "upstream udp socket failed; the flow stops relaying");
                return;
            }
        }
    }
}
