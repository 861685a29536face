//! `sip-stack`: the async shell around the sans-IO [`sip_proto::Endpoint`].
//!
//! It owns the shards and the plumbing between transports and transaction
//! user: messages from [`sip_transport::Transports`] are steered by a hash
//! of their Call-ID to one shard, so every message of a call is handled by
//! the same endpoint, in order, without locks. Each shard is one task that
//! owns its endpoint, drains its outputs after every input (sends bytes,
//! delivers events), and sleeps once, until the endpoint's next deadline:
//! there is no timer task per transaction.
//!
//! The transaction user sees:
//! * [`StackHandle::send_request`]: starts a client transaction and returns
//!   a [`ClientTransaction`] that yields its responses.
//! * [`StackEvent`]s from [`Stack::next_event`]: new requests as
//!   [`ServerTransaction`]s to answer, ACKs for 2xx, cancellations.
//!
//! # Layout
//! * `shard`: the shard task, the command it takes, the events it routes.
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
use sip_transport::{TransportConfig, TransportError, Transports};
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
    /// Seed for branches, tags and Call-IDs.
    pub seed: u64,
    /// Run each shard on a thread of its own (the default). `false` runs
    /// the shards as tasks on the caller's runtime: with one shard on a
    /// current-thread runtime, the whole stack and its user share one
    /// thread and no message crosses threads (a small UA, a test tool).
    pub dedicated_threads: bool,
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
            seed: seed_from_time(),
            dedicated_threads: true,
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
        /// Whether it matched a 2xx of ours.
        acknowledged: bool,
    },
    /// A 2xx this stack sent was never acknowledged within 64*T1
    /// (§13.3.1.4): the session should be ended with a BYE.
    AckTimeout {
        /// The 2xx's INVITE.
        request: SipMessage,
    },
    /// A response that matched no client transaction (§18.1.2).
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
    events: mpsc::UnboundedReceiver<ClientEvent>,
}

impl ClientTransaction {
    /// The next response or failure; `None` once the transaction has ended.
    pub async fn next(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
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
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .branch()
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
        self.transports.local_addr(transport)
    }

    /// The transports, for direct use (connect with a TLS server name, ...).
    #[must_use]
    pub fn transports(&self) -> &Transports {
        &self.transports
    }
}

/// The shard that owns a Call-ID: a stable hash, so every message of a
/// call lands on one shard.
fn shard_index(call_id: &str, shards: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    call_id.hash(&mut h);
    (h.finish() % shards.max(1) as u64) as usize
}

/// A running stack.
#[derive(Debug)]
pub struct Stack {
    handle: StackHandle,
    events: mpsc::UnboundedReceiver<StackEvent>,
}

impl Stack {
    /// Binds the transports on the current tokio runtime and starts the
    /// shards, each on its own thread with a current-thread runtime.
    pub async fn start(config: StackConfig) -> Result<Stack, StackError> {
        let (transports, incoming) = Transports::bind(config.transport).await?;
        let mut incoming = Some(incoming);
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut seeds = IdGenerator::new(config.seed);
        let mut shards = Vec::with_capacity(config.shards.max(1));
        for i in 0..config.shards.max(1) {
            let (tx, rx) = mpsc::unbounded_channel();
            let shard = Shard::new(
                config.timers,
                seeds.next_u64(),
                transports.clone(),
                tx.downgrade(),
                events_tx.clone(),
            );
            if config.dedicated_threads {
                // One thread and one current-thread runtime per shard: the
                // endpoint, its timers and its peer writers never migrate,
                // and a call's messages are handled on one core.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(StackError::Runtime)?;
                std::thread::Builder::new()
                    .name(format!("sip-shard-{i}"))
                    .spawn(move || runtime.block_on(shard.run(rx, None)))
                    .map_err(StackError::Runtime)?;
            } else {
                // A single shard on the user's runtime reads the transports
                // itself; several need the steering task below.
                let direct = (config.shards.max(1) == 1)
                    .then(|| incoming.take())
                    .flatten();
                tokio::spawn(shard.run(rx, direct));
            }
            shards.push(tx);
        }
        let handle = StackHandle {
            shards: shards.into(),
            transports,
            ids: Arc::new(Mutex::new(IdGenerator::new(seeds.next_u64()))),
        };
        // Steer every received message to the shard that owns its Call-ID.
        // Weak senders: the stack stops (shards end, transports close) once
        // the user has dropped every handle.
        let steer: Vec<_> = handle
            .shards
            .iter()
            .map(mpsc::UnboundedSender::downgrade)
            .collect();
        let Some(mut incoming) = incoming else {
            return Ok(Stack { handle, events });
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
        Ok(Stack { handle, events })
    }

    /// A handle for sending requests from other tasks.
    #[must_use]
    pub fn handle(&self) -> StackHandle {
        self.handle.clone()
    }

    /// The next event for the transaction user.
    pub async fn next_event(&mut self) -> Option<StackEvent> {
        self.events.recv().await
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
}
