//! `sip-stack`: the async shell around the sans-IO [`sip_proto::Endpoint`].
//!
//! It owns the shards and the plumbing between transports and transaction
//! user: every message of a call is handled by the shard that owns its
//! Call-ID (a stable hash), by the same endpoint, in order, without locks.
//! Each shard is one task that owns its endpoint, drains its outputs after
//! every input (sends bytes, delivers events), and sleeps once, until the
//! endpoint's next deadline: there is no timer task per transaction (the
//! endpoint keeps its timers on a timing wheel).
//!
//! UDP: with shards on threads of their own (the default), or with a
//! single shard, each shard binds its own socket on every UDP address, on
//! one shared port (`SO_REUSEPORT`): the kernel spreads datagrams over the
//! shards by source; a shard reads its socket itself, up to 32 datagrams
//! per system call, hands a message whose Call-ID another shard owns to
//! that shard, and sends what a round of input produced in one batch
//! (`sip_transport::ShardSocket`). Stream transports (TCP, TLS, WS) are
//! read by [`sip_transport::Transports`] and steered to the owning shard
//! by one task; shards without threads of their own (several on the
//! caller's runtime) get UDP that way too.
//!
//! The transaction user sees:
//! * [`StackHandle::send_request`]: starts a client transaction and returns
//!   a [`ClientTransaction`] that yields its responses.
//! * [`StackEvent`]s from [`Stack::next_event`]: new requests as
//!   [`ServerTransaction`]s to answer, ACKs for 2xx, cancellations.
//!
//! # Layout
//! * `shard`: the shard task, the command it takes, the events it routes,
//!   its UDP sockets and their batches.
//! * this file: [`Stack`], [`StackHandle`], the transaction handles.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use sip_stack::{Stack, StackConfig, StackEvent};
//! let mut stack = Stack::start(StackConfig::udp("127.0.0.1:5060".parse()?)).await?;
//! while let Some(StackEvent::Request(tx)) = stack.next_event().await {
//!     let ok = sip_message::ResponseBuilder::for_request(tx.request(), 200, Some("t1"))?.build()?;
//!     tx.respond(ok);
//! }
//! # Ok(()) }
//! ```

mod shard;

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use sip_message::{Peer, SipMessage, TransportKind};
use sip_proto::{IdGenerator, Timers, TxId};
use sip_transport::{ShardSocketBinding, TransportConfig, TransportError, Transports};
use tokio::sync::{mpsc, oneshot};

use crate::shard::{Command, Shard};

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// What to listen on.
    pub transport: TransportConfig,
    /// How many shards (endpoints). Default: the number of CPUs.
    pub shards: usize,
    /// Transaction timer values.
    pub timers: Timers,
    /// How late a transaction timer may fire (default 10 ms): a shard
    /// wakes for timers on a grid of this step, so the timers due within
    /// one step cost one wake-up. RFC 3261's timers are hundreds of
    /// milliseconds and more; zero fires each at its exact millisecond.
    pub timer_slack: std::time::Duration,
    /// Seed for branches, tags and Call-IDs.
    pub seed: u64,
    /// Run each shard on a thread of its own (the default). `false` runs
    /// the shards as tasks on the caller's runtime: with one shard on a
    /// current-thread runtime, the whole stack and its user share one
    /// thread and no message crosses threads (a small UA, a test tool).
    pub dedicated_threads: bool,
    /// Sent-by values (`host` or `host:port`) of trusted relays: the
    /// cluster's public address, which every edge writes in its Via. A
    /// retransmission relayed with one of them from a new address (another
    /// edge, the first one died) moves its server transaction's responses
    /// there (sip-proto `Endpoint::with_relays`). Default: none.
    pub relays: Vec<String>,
}

impl StackConfig {
    /// A stack on one UDP address with defaults.
    #[must_use]
    pub fn udp(addr: SocketAddr) -> StackConfig {
        StackConfig {
            transport: TransportConfig {
                udp: vec![addr],
                ..TransportConfig::default()
            },
            ..StackConfig::default()
        }
    }
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            transport: TransportConfig::default(),
            shards: std::thread::available_parallelism().map_or(1, usize::from),
            timers: Timers::default(),
            timer_slack: std::time::Duration::from_millis(10),
            seed: seed_from_time(),
            dedicated_threads: true,
            relays: Vec::new(),
        }
    }
}

/// A seed from the wall clock and the process id, for branch and tag
/// uniqueness across runs. (Only the async shell reads the clock; the
/// protocol core takes the seed as an argument.)
fn seed_from_time() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 32)
}

/// Why the stack could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StackError {
    /// The transports failed to bind or send.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The transaction layer refused (no Via branch, wrong state, ...).
    #[error(transparent)]
    Proto(#[from] sip_proto::ProtoError),
    /// The stack has stopped.
    #[error("the stack has stopped")]
    Stopped,
    /// A shard's thread or runtime could not be started.
    #[error("cannot start a shard: {0}")]
    Runtime(std::io::Error),
}

/// What the stack tells the transaction user.
#[derive(Debug)]
#[non_exhaustive]
pub enum StackEvent {
    /// A new request: answer it through the handle.
    Request(ServerTransaction),
    /// An ACK for a 2xx (end to end, §13.2.2.4); `acknowledged` says whether
    /// it matched a 2xx this stack sent (its retransmissions stopped).
    Ack {
        /// The ACK.
        request: SipMessage,
        /// Where it came from.
        source: Peer,
        /// Whether it is the first ACK for a 2xx of ours (copies that
        /// follow, and ACKs of dialogs this stack only passes on: false).
        acknowledged: bool,
    },
    /// A 2xx this stack sent was never acknowledged within 64*T1
    /// (§13.3.1.4): the session should be ended with a BYE.
    AckTimeout {
        /// The 2xx's INVITE.
        request: SipMessage,
    },
    /// A 2xx for an INVITE client transaction whose handle was dropped
    /// (RFC 6026: the transaction, in Accepted, still matches 2xx
    /// retransmissions and forks; a proxy whose request context ended
    /// forwards them statelessly, without keeping a task per transaction
    /// for them). A response to a dropped non-INVITE transaction is
    /// absorbed (§16.7 step 5: after the final response only a 2xx to an
    /// INVITE goes on).
    LateResponse {
        /// The response.
        response: SipMessage,
        /// Where it came from.
        source: Peer,
    },
    /// A response that matched no client transaction (§18.1.2): a proxy
    /// does not forward it (RFC 6026 §8.9 rewrote §18.1.2: any element
    /// but a stateless proxy discards it; the Accepted state now matches
    /// every late 2xx, so what matches nothing is stray); a UA may log it.
    StrayResponse {
        /// The response.
        response: SipMessage,
        /// Where it came from.
        source: Peer,
    },
}

/// What a client transaction reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// Responses are the common case; boxing them would allocate per response.
#[allow(clippy::large_enum_variant)]
pub enum ClientEvent {
    /// A response (every 2xx, including forks and retransmissions, for
    /// INVITE: RFC 6026).
    Response(SipMessage),
    /// No final response in time (timer B or F): treat as 408 (§8.1.3.1).
    Timeout,
    /// The transport failed (§8.1.3.1: treat as 503).
    TransportError,
}

/// A client transaction in progress.
#[derive(Debug)]
pub struct ClientTransaction {
    id: TxId,
    shard: mpsc::UnboundedSender<Command>,
    /// Boxed: a channel allocates its slots 32 at a time, and a
    /// transaction's channel lives for one transaction; 32 unboxed
    /// messages made that 7 KiB per transaction, allocated and freed
    /// thousands of times a second.
    events: mpsc::UnboundedReceiver<Box<ClientEvent>>,
}

impl ClientTransaction {
    /// The next response or failure; `None` once the transaction has ended.
    /// Dropping the handle stops the events; the transaction runs on, and
    /// a 2xx to an INVITE it still receives comes as
    /// [`StackEvent::LateResponse`].
    pub async fn next(&mut self) -> Option<ClientEvent> {
        self.events.recv().await.map(|e| *e)
    }

    /// [`ClientTransaction::next`] as a poll, for a task that follows
    /// several transactions at once (a proxy's branches).
    pub fn poll_next(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<ClientEvent>> {
        self.events.poll_recv(cx).map(|e| e.map(|e| *e))
    }

    /// Cancels an INVITE (§9.1); the CANCEL leaves once a provisional has
    /// arrived.
    pub fn cancel(&self) {
        let _ = self.shard.send(Command::Cancel(self.id));
    }

    /// The transaction id.
    #[must_use]
    pub fn id(&self) -> TxId {
        self.id
    }
}

/// A received request and the way to answer it.
#[derive(Debug)]
pub struct ServerTransaction {
    id: TxId,
    request: SipMessage,
    source: Peer,
    shard: mpsc::UnboundedSender<Command>,
    cancelled: Option<oneshot::Receiver<()>>,
    /// Whether a final response was handed over (else dropping answers 500).
    answered: std::sync::atomic::AtomicBool,
}

impl Drop for ServerTransaction {
    /// An unanswered request must not hang its caller: the stack answers
    /// 500 for it (DESIGN.md: dropping an unanswered handle sends 500).
    fn drop(&mut self) {
        if !self.answered.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = self.shard.send(Command::Abandon(self.id));
        }
    }
}

impl ServerTransaction {
    /// The request (with `received` / `rport` recorded in its top Via).
    #[must_use]
    pub fn request(&self) -> &SipMessage {
        &self.request
    }

    /// Where it came from.
    #[must_use]
    pub fn source(&self) -> Peer {
        self.source
    }

    /// The transaction id.
    #[must_use]
    pub fn id(&self) -> TxId {
        self.id
    }

    /// Sends a response (provisional or final) through the transaction.
    pub fn respond(&self, response: SipMessage) {
        if response.status().is_some_and(|s| s >= 200) {
            self.answered
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let _ = self.shard.send(Command::Respond(self.id, response));
    }

    /// Sends a reliable provisional (RFC 3262, 101 to 199, carrying
    /// `Require: 100rel` and `RSeq`), retransmitted (T1, doubling) until
    /// [`ServerTransaction::prack_received`].
    pub fn respond_reliable(&self, response: SipMessage) {
        let _ = self.shard.send(Command::RespondReliable(self.id, response));
    }

    /// The PRACK for this INVITE's reliable provisional arrived: its
    /// retransmissions stop.
    pub fn prack_received(&self) {
        let _ = self.shard.send(Command::PrackReceived(self.id));
    }

    /// Forwards a response (a proxy relaying what a downstream UAS sent,
    /// §16.7): a 2xx to an INVITE is sent once, not retransmitted by this
    /// hop, and its ACK is not expected here (RFC 6026).
    pub fn forward(&self, response: SipMessage) {
        if response.status().is_some_and(|s| s >= 200) {
            self.answered
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let _ = self.shard.send(Command::Forward(self.id, response));
    }

    /// Resolves when a CANCEL for this INVITE arrived (the stack answered
    /// the CANCEL with 200; answer the INVITE with 487). Never resolves
    /// for other methods.
    pub async fn cancelled(&mut self) {
        match self.cancelled.as_mut() {
            Some(rx) => {
                if rx.await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
}

/// A cheap, cloneable handle to a running stack.
#[derive(Debug, Clone)]
pub struct StackHandle {
    shards: Arc<[mpsc::UnboundedSender<Command>]>,
    transports: Transports,
    /// The UDP addresses the shards bound themselves (port 0 resolved).
    udp_addrs: Arc<[SocketAddr]>,
    ids: Arc<Mutex<IdGenerator>>,
}

impl StackHandle {
    fn shard_for(&self, msg: &SipMessage) -> Result<&mpsc::UnboundedSender<Command>, StackError> {
        let idx = msg
            .call_id()
            .map_or(0, |c| shard_index(c, self.shards.len()));
        self.shards.get(idx).ok_or(StackError::Stopped)
    }

    /// Starts a client transaction: `request` must carry a top Via with a
    /// branch (see [`StackHandle::branch`]).
    pub async fn send_request(
        &self,
        request: SipMessage,
        peer: Peer,
    ) -> Result<ClientTransaction, StackError> {
        let shard = self.shard_for(&request)?.clone();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (reply_tx, reply) = oneshot::channel();
        shard
            .send(Command::SendRequest {
                request,
                peer,
                events: events_tx,
                reply: reply_tx,
            })
            .map_err(|_| StackError::Stopped)?;
        let id = reply.await.map_err(|_| StackError::Stopped)??;
        Ok(ClientTransaction { id, shard, events })
    }

    /// Sends a message outside any transaction (the ACK for a 2xx).
    pub fn send_stateless(&self, msg: &SipMessage, peer: Peer) {
        if let Ok(shard) = self.shard_for(msg) {
            let _ = shard.send(Command::Stateless(msg.message_bytes(), peer));
        }
    }

    /// A new branch with the RFC 3261 magic cookie.
    #[must_use]
    pub fn branch(&self) -> String {
        self.branch_with_room(0)
    }

    /// A new branch with room for `extra` more bytes (a suffix the caller
    /// appends).
    pub fn branch_with_room(&self, extra: usize) -> String {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .branch_with_room(extra)
    }

    /// A new tag.
    #[must_use]
    pub fn tag(&self) -> String {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tag()
    }

    /// A new Call-ID at `host`.
    #[must_use]
    pub fn call_id(&self, host: &str) -> String {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .call_id(host)
    }

    /// The address bound for a transport.
    #[must_use]
    pub fn local_addr(&self, transport: TransportKind) -> Option<SocketAddr> {
        match (transport, self.udp_addrs.first()) {
            (TransportKind::Udp, Some(addr)) => Some(*addr),
            _ => self.transports.local_addr(transport),
        }
    }

    /// Every bound address: the shards' UDP sockets, then what the
    /// transports bound.
    #[must_use]
    pub fn local_addrs(&self) -> Vec<Peer> {
        let udp = self.udp_addrs.iter().map(|addr| Peer {
            transport: TransportKind::Udp,
            addr: *addr,
        });
        udp.chain(self.transports.local_addrs()).collect()
    }

    /// The transports, for direct use (connect with a TLS server name, ...).
    /// UDP sockets the shards own are not among them: send UDP through
    /// the stack.
    #[must_use]
    pub fn transports(&self) -> &Transports {
        &self.transports
    }
}

/// The shard that owns a Call-ID: a stable hash, so every message of a
/// call lands on one shard.
pub(crate) fn shard_index(call_id: &str, shards: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    call_id.hash(&mut h);
    (h.finish() % shards.max(1) as u64) as usize
}

/// A running stack.
#[derive(Debug)]
pub struct Stack {
    handle: StackHandle,
    shards: Vec<ShardEvents>,
    /// Which shard [`Stack::next_event`] looks at first (round robin).
    next: usize,
}

/// The events of one shard, and the runtime of the thread that shard runs
/// on (with [`StackConfig::dedicated_threads`]).
///
/// A transaction user that handles a shard's events on that shard's own
/// runtime ([`ShardEvents::runtime`]) keeps a call on one thread: the
/// request, the application's handler, the client transactions it starts
/// and their responses never wake another thread. Handing an event to a
/// task on another runtime costs a cross-thread wake-up each way, which on
/// a proxy is more CPU than the SIP work itself.
#[derive(Debug)]
pub struct ShardEvents {
    events: mpsc::UnboundedReceiver<StackEvent>,
    runtime: Option<tokio::runtime::Handle>,
}

impl ShardEvents {
    /// The shard's next event; `None` once the stack has stopped.
    pub async fn next_event(&mut self) -> Option<StackEvent> {
        self.events.recv().await
    }

    /// The runtime of the shard's own thread, to spawn the task that
    /// handles these events on; `None` when the shard runs on the caller's
    /// runtime.
    #[must_use]
    pub fn runtime(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref()
    }
}

impl Stack {
    /// Binds the transports on the current tokio runtime and starts the
    /// shards, each on its own thread with a current-thread runtime (or,
    /// without `dedicated_threads`, as tasks on the caller's runtime).
    ///
    /// UDP: when the shards run on threads of their own, or there is only
    /// one, every shard binds its own socket on each UDP address (with
    /// `SO_REUSEPORT` when there are several: the kernel spreads datagrams
    /// over them by source) and reads and sends on it itself, in batches;
    /// a message whose Call-ID another shard owns is handed to it. Port 0
    /// is bound by the first shard and shared by the others. Otherwise the
    /// transports own the UDP sockets, as they own every stream listener,
    /// and a steering task hands each message to its shard.
    pub async fn start(config: StackConfig) -> Result<Stack, StackError> {
        let shards_n = config.shards.max(1);
        let mut transport = config.transport;
        // UDP on an in-process network stays with the transports.
        let shard_udp = (config.dedicated_threads || shards_n == 1) && transport.memory.is_none();
        let mut udp_bindings: Vec<Vec<ShardSocketBinding>> = Vec::new();
        if shard_udp && !transport.udp.is_empty() {
            udp_bindings =
                sip_transport::bind_shard_sockets(&transport.udp, shards_n, transport.reuse_port)?;
            transport.udp.clear();
        }
        let udp_addrs: Arc<[SocketAddr]> = udp_bindings
            .first()
            .map(|b| b.iter().map(|s| s.local().addr).collect())
            .unwrap_or_default();
        let limits = transport.limits;
        let (transports, incoming) = Transports::bind(transport).await?;
        let mut incoming = Some(incoming);
        let mut shard_events = Vec::with_capacity(shards_n);
        let mut seeds = IdGenerator::new(config.seed);
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..shards_n).map(|_| mpsc::unbounded_channel()).unzip();
        let peers: Arc<[mpsc::WeakUnboundedSender<Command>]> = senders
            .iter()
            .map(mpsc::UnboundedSender::downgrade)
            .collect();
        let mut udp_bindings = udp_bindings.into_iter();
        for (i, (tx, rx)) in senders.iter().zip(receivers).enumerate() {
            let (events_tx, events) = mpsc::unbounded_channel();
            let shard = Shard::new(
                config.timers,
                config.timer_slack,
                seeds.next_u64(),
                transports.clone(),
                tx.downgrade(),
                events_tx,
            )
            .with_relays(&config.relays);
            let udp = udp_bindings.next().unwrap_or_default();
            let register = |udp: Vec<ShardSocketBinding>| {
                udp.into_iter()
                    .map(|b| b.register(limits))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(StackError::Runtime)
            };
            let others = (shards_n > 1).then(|| Arc::clone(&peers));
            if config.dedicated_threads {
                // One thread and one current-thread runtime per shard: the
                // endpoint, its timers, its UDP sockets and its peer
                // writers never migrate, and a call's messages are handled
                // on one core.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(StackError::Runtime)?;
                let sockets = {
                    let _on = runtime.enter();
                    register(udp)?
                };
                let shard = shard.with_udp(sockets, i, others);
                shard_events.push(ShardEvents {
                    events,
                    runtime: Some(runtime.handle().clone()),
                });
                std::thread::Builder::new()
                    .name(format!("sip-shard-{i}"))
                    // The shard's loop is a task of its runtime, not the
                    // future `block_on` drives: the engine's tasks wake it
                    // for every command, and waking the `block_on` future
                    // made the scheduler poll the driver once more without
                    // blocking (one `epoll_wait` per message, strace).
                    .spawn(move || {
                        runtime.block_on(async move {
                            // A panic in the loop ends the thread as it did
                            // when the loop was the `block_on` future.
                            if let Err(e) = tokio::spawn(shard.run(rx, None)).await
                                && e.is_panic()
                            {
                                std::panic::resume_unwind(e.into_panic());
                            }
                        });
                    })
                    .map_err(StackError::Runtime)?;
            } else {
                let shard = shard.with_udp(register(udp)?, i, others);
                // A single shard on the user's runtime reads the transports
                // itself; several need the steering task below.
                let direct = (shards_n == 1).then(|| incoming.take()).flatten();
                shard_events.push(ShardEvents {
                    events,
                    runtime: None,
                });
                tokio::spawn(shard.run(rx, direct));
            }
        }
        let handle = StackHandle {
            shards: senders.into(),
            transports,
            udp_addrs,
            ids: Arc::new(Mutex::new(IdGenerator::new(seeds.next_u64()))),
        };
        // Steer every message the transports receive to the shard that
        // owns its Call-ID. Weak senders: the stack stops (shards end,
        // transports close) once the user has dropped every handle.
        let steer = peers;
        let stack = Stack {
            handle,
            shards: shard_events,
            next: 0,
        };
        let Some(mut incoming) = incoming else {
            return Ok(stack);
        };
        tokio::spawn(async move {
            while let Some(m) = incoming.recv().await {
                let idx = m
                    .message
                    .call_id()
                    .map_or(0, |c| shard_index(c, steer.len()));
                match steer.get(idx).and_then(mpsc::WeakUnboundedSender::upgrade) {
                    Some(shard) if shard.send(Command::Receive(m)).is_ok() => {}
                    _ => break,
                }
            }
        });
        Ok(stack)
    }

    /// A handle for sending requests from other tasks.
    #[must_use]
    pub fn handle(&self) -> StackHandle {
        self.handle.clone()
    }

    /// The next event for the transaction user, from any shard.
    pub async fn next_event(&mut self) -> Option<StackEvent> {
        let n = self.shards.len();
        let start = self.next;
        let shards = &mut self.shards;
        let (i, ev) = std::future::poll_fn(|cx| {
            let mut open = false;
            for k in 0..n {
                let i = (start + k) % n;
                let Some(s) = shards.get_mut(i) else { continue };
                match s.events.poll_recv(cx) {
                    std::task::Poll::Ready(Some(ev)) => {
                        return std::task::Poll::Ready((i, Some(ev)));
                    }
                    std::task::Poll::Ready(None) => {}
                    std::task::Poll::Pending => open = true,
                }
            }
            if open {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready((start, None))
            }
        })
        .await;
        self.next = (i + 1) % n.max(1);
        ev
    }

    /// Splits the stack into its handle and each shard's events, so the
    /// transaction user can handle every shard's events on that shard's
    /// own thread (see [`ShardEvents`]).
    #[must_use]
    pub fn into_shards(self) -> (StackHandle, Vec<ShardEvents>) {
        (self.handle, self.shards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_spread_and_stick() {
        let a = shard_index("abc@host", 4);
        assert_eq!(a, shard_index("abc@host", 4));
        let used: std::collections::HashSet<_> = (0..100)
            .map(|i| shard_index(&format!("call-{i}"), 4))
            .collect();
        assert_eq!(used.len(), 4);
    }

    /// A message read on one shard's socket whose Call-ID another shard
    /// owns is handled by the owner: deterministic here, since only shard
    /// 0's socket is known to the sender; shard 1 answers from its own
    /// (other) port, which shows who handled it.
    #[tokio::test]
    #[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    async fn a_message_read_by_another_shard_reaches_its_owner() {
        use sip_message::ResponseBuilder;
        use std::time::Duration;

        let wait = Duration::from_secs(5);
        let (transports, _incoming) = Transports::bind(TransportConfig::default()).await.unwrap();
        let bind = || {
            let b = sip_transport::bind_shard_sockets(&["127.0.0.1:0".parse().unwrap()], 1, false)
                .unwrap();
            b.into_iter()
                .flatten()
                .map(|b| {
                    b.register(sip_transport::TransportLimits::default())
                        .unwrap()
                })
                .collect::<Vec<_>>()
        };
        let (a, b) = (bind(), bind());
        let (a_addr, b_addr) = (a[0].local().addr, b[0].local().addr);
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..2).map(|_| mpsc::unbounded_channel::<Command>()).unzip();
        let peers: Arc<[mpsc::WeakUnboundedSender<Command>]> = senders
            .iter()
            .map(mpsc::UnboundedSender::downgrade)
            .collect();
        for (i, (rx, udp)) in receivers.into_iter().zip([a, b]).enumerate() {
            let shard = Shard::new(
                Timers::default(),
                std::time::Duration::from_millis(10),
                i as u64,
                transports.clone(),
                senders[i].downgrade(),
                events_tx.clone(),
            )
            .with_udp(udp, i, Some(Arc::clone(&peers)));
            tokio::spawn(shard.run(rx, None));
        }
        let raw = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let from = raw.local_addr().unwrap();
        for owner in [1, 0] {
            let call_id = (0..)
                .map(|n| format!("owned-{n}"))
                .find(|c| shard_index(c, 2) == owner)
                .unwrap();
            let options = format!(
                "OPTIONS sip:x@{a_addr} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {from};rport;branch=z9hG4bK{owner}x\r\n\
                 Max-Forwards: 70\r\n\
                 To: <sip:x@{a_addr}>\r\n\
                 From: <sip:t@{from}>;tag=1\r\n\
                 Call-ID: {call_id}\r\n\
                 CSeq: 1 OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            raw.send_to(options.as_bytes(), a_addr).await.unwrap();
            let Ok(Some(StackEvent::Request(tx))) = tokio::time::timeout(wait, events.recv()).await
            else {
                panic!("no request");
            };
            let ok = ResponseBuilder::for_request(tx.request(), 200, Some("s"))
                .unwrap()
                .build()
                .unwrap();
            tx.respond(ok);
            let mut buf = vec![0u8; 4096];
            let (n, src) = tokio::time::timeout(wait, raw.recv_from(&mut buf))
                .await
                .expect("an answer")
                .unwrap();
            assert!(
                std::str::from_utf8(&buf[..n])
                    .unwrap()
                    .starts_with("SIP/2.0 200")
            );
            let expected = if owner == 1 { b_addr } else { a_addr };
            assert_eq!(src, expected, "the owner (shard {owner}) answered");
        }
        drop(senders);
    }
}
