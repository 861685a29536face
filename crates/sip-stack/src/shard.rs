//! One shard: a task that owns a [`sip_proto::Endpoint`] and connects it to
//! the transports and to the transaction user.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use sip_message::{Method, Peer, SipMessage};
use sip_proto::{
    Endpoint, Event, Output, ProtoError, TimerName, Timers, TxId, TxMap, shrink_after_burst,
};
use sip_transport::{Incoming, ShardSocket, Transports};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::{ClientEvent, ServerTransaction, StackEvent};

/// What a shard is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// A message from the transports.
    Receive(Incoming),
    /// Start a client transaction.
    SendRequest {
        request: SipMessage,
        peer: Peer,
        events: mpsc::UnboundedSender<Box<ClientEvent>>,
        reply: oneshot::Sender<Result<TxId, ProtoError>>,
    },
    /// Answer a server transaction.
    Respond(TxId, SipMessage),
    /// Forward a response through a server transaction (a proxy: no 2xx
    /// retransmission by this hop).
    Forward(TxId, SipMessage),
    /// Send a reliable provisional (RFC 3262): retransmitted until
    /// [`Command::PrackReceived`].
    RespondReliable(TxId, SipMessage),
    /// The PRACK for a reliable provisional of this INVITE arrived.
    PrackReceived(TxId),
    /// Cancel an INVITE client transaction.
    Cancel(TxId),
    /// Send bytes outside any transaction.
    Stateless(Bytes, Peer),
    /// A stream send for this transaction failed (from a peer writer task).
    TransportFailed(TxId),
    /// The transaction user dropped a server transaction without a final
    /// response: answer 500.
    Abandon(TxId),
}

/// How many more commands a shard takes after one, before it sends what
/// they produced (one `sendmmsg` for the lot).
const COMMAND_BATCH: usize = 64;

/// How long a peer writer task waits for the next message before it ends.
const WRITER_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

pub(crate) struct Shard {
    endpoint: Endpoint,
    transports: Transports,
    /// This shard's own command sender, handed to server transactions.
    /// Weak, so the shard ends when the last handle to the stack is gone.
    me: mpsc::WeakUnboundedSender<Command>,
    events: mpsc::UnboundedSender<StackEvent>,
    clients: TxMap<mpsc::UnboundedSender<Box<ClientEvent>>>,
    cancels: TxMap<oneshot::Sender<()>>,
    /// INVITE requests of server transactions, for AckTimeout reports.
    invites: TxMap<bytes::Bytes>,
    /// The local socket each server transaction's request arrived on, so
    /// UDP responses leave from it (RFC 3581 §4).
    locals: TxMap<Peer>,
    /// The local socket of the message being received, for the server
    /// transaction it may create.
    arrived_on: Option<Peer>,
    /// One writer task per stream peer, so a connect or a slow peer never
    /// holds the shard, and messages to one peer keep their order.
    writers: HashMap<Peer, mpsc::UnboundedSender<(Bytes, Option<TxId>)>>,
    /// How late a timer may fire so that timers due close together fire
    /// in one wake-up (see [`crate::StackConfig::timer_slack`]).
    slack: std::time::Duration,
    /// Maps the endpoint's monotonic clock onto tokio's.
    epoch: Instant,
    epoch_std: std::time::Instant,
    /// The UDP sockets this shard reads and sends from itself (one per
    /// configured UDP address; empty when the transports own UDP).
    udp: Vec<ShardSocket>,
    /// Per socket of `udp`: datagrams waiting to be sent in one batch, and
    /// the transaction each belongs to.
    udp_out: Vec<UdpQueue>,
    /// Messages of the last batch read.
    received: Vec<Incoming>,
    /// This shard's place among `shards`, which owns a Call-ID, and the
    /// way to hand it a message read on this shard's socket.
    index: usize,
    shards: Option<Arc<[mpsc::WeakUnboundedSender<Command>]>>,
}

/// Datagrams for one socket, sent together.
#[derive(Debug, Default)]
struct UdpQueue {
    datagrams: Vec<(SocketAddr, Bytes)>,
    txs: Vec<Option<TxId>>,
    failed: Vec<(usize, sip_transport::TransportError)>,
}

/// A seed no peer can learn, for the endpoint's transaction index
/// (`Endpoint::with_index_seed`): std's `RandomState` is keyed from the OS.
fn secret_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64)
}

impl Shard {
    pub(crate) fn new(
        timers: Timers,
        slack: std::time::Duration,
        seed: u64,
        transports: Transports,
        me: mpsc::WeakUnboundedSender<Command>,
        events: mpsc::UnboundedSender<StackEvent>,
    ) -> Shard {
        let epoch = Instant::now();
        Shard {
            endpoint: Endpoint::new(timers, seed).with_index_seed(secret_seed()),
            transports,
            me,
            events,
            clients: TxMap::default(),
            cancels: TxMap::default(),
            invites: TxMap::default(),
            locals: TxMap::default(),
            arrived_on: None,
            writers: HashMap::new(),
            slack,
            epoch,
            epoch_std: epoch.into_std(),
            udp: Vec::new(),
            udp_out: Vec::new(),
            received: Vec::new(),
            index: 0,
            shards: None,
        }
    }

    /// Trusts relays writing these sent-by values (`StackConfig::relays`).
    pub(crate) fn with_relays(mut self, relays: &[String]) -> Shard {
        self.endpoint = self.endpoint.with_relays(relays);
        self
    }

    /// Gives the shard UDP sockets of its own to read and send from, and
    /// (with several shards) its index and every shard's command sender,
    /// so a message read here whose Call-ID another shard owns reaches it.
    pub(crate) fn with_udp(
        mut self,
        sockets: Vec<ShardSocket>,
        index: usize,
        shards: Option<Arc<[mpsc::WeakUnboundedSender<Command>]>>,
    ) -> Shard {
        self.udp_out = sockets.iter().map(|_| UdpQueue::default()).collect();
        self.udp = sockets;
        self.index = index;
        self.shards = shards;
        self
    }

    /// The endpoint's notion of now. Tokio's clock (which tests can pause)
    /// is the source; the endpoint only ever sees it as an argument.
    fn now(&self) -> std::time::Instant {
        self.epoch_std + (Instant::now() - self.epoch)
    }

    /// When to wake for a timer due at `at`: `at` rounded up to the next
    /// multiple of the slack since the shard started, so every timer due
    /// within one slack interval fires in the same wake-up (at 1,000 calls
    /// a second the transaction timers alone would otherwise wake the
    /// shard thousands of times a second). Never earlier than `at`.
    fn wake_at(&self, at: std::time::Instant) -> Instant {
        let since = at.saturating_duration_since(self.epoch_std);
        let slack = self.slack.as_nanos();
        if slack == 0 {
            return self.epoch + since;
        }
        let rounded = since.as_nanos().div_ceil(slack).saturating_mul(slack);
        let rounded = u64::try_from(rounded).map_or(since, std::time::Duration::from_nanos);
        self.epoch + rounded
    }

    /// Runs the shard. With `incoming`, the shard reads the transports
    /// itself (a single shard sharing the user's thread: no steering hop).
    /// Its own UDP sockets (see [`Shard::with_udp`]) it always reads itself.
    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut incoming: Option<mpsc::Receiver<Incoming>>,
    ) {
        // One timer, moved only when the endpoint's next deadline moves: a
        // new `Sleep` per round registered anew with tokio's timer, which
        // wakes its driver (an eventfd write) whenever the deadline is
        // earlier than the one it parked for, several times per message.
        let sleep = tokio::time::sleep_until(self.epoch);
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            let deadline = self.endpoint.poll_timeout().map(|at| self.wake_at(at));
            if deadline != armed {
                if let Some(at) = deadline {
                    sleep.as_mut().reset(at);
                }
                armed = deadline;
            }
            let received = async {
                match incoming.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let sockets = &self.udp;
            let readable = std::future::poll_fn(|cx| {
                for (i, socket) in sockets.iter().enumerate() {
                    if socket.poll_recv_ready(cx).is_ready() {
                        return Poll::Ready(i);
                    }
                }
                Poll::Pending
            });
            tokio::select! {
                cmd = commands.recv() => {
                    let Some(cmd) = cmd else { break };
                    self.command(cmd).await;
                    self.drain().await;
                    // Take what else is waiting, so its datagrams leave in
                    // one batch.
                    for _ in 0..COMMAND_BATCH {
                        let Ok(cmd) = commands.try_recv() else { break };
                        self.command(cmd).await;
                        self.drain().await;
                    }
                }
                i = readable => self.read_udp(i).await,
                m = received => match m {
                    Some(m) => self.command(Command::Receive(m)).await,
                    // The transports closed: nothing more will arrive.
                    None => incoming = None,
                },
                () = &mut sleep, if armed.is_some() => {
                    armed = None;
                    let now = self.now();
                    self.endpoint.handle_timeout(now);
                }
            }
            self.drain().await;
            self.flush_udp().await;
        }
    }

    /// Reads one batch from the shard's UDP socket `i`: messages whose
    /// Call-ID this shard owns go to its endpoint, the others to the shard
    /// that owns them.
    async fn read_udp(&mut self, i: usize) {
        let mut batch = std::mem::take(&mut self.received);
        if let Some(socket) = self.udp.get_mut(i)
            && let Err(error) = socket.try_recv_batch(&mut batch)
        {
            // E.g. an ICMP error reported for an earlier send.
            debug!(socket = %socket.local(), %error, "UDP receive error");
        }
        for m in batch.drain(..) {
            if let Some(shards) = &self.shards {
                let owner = m
                    .message
                    .call_id()
                    .map_or(0, |c| crate::shard_index(c, shards.len()));
                if owner != self.index {
                    if let Some(shard) = shards
                        .get(owner)
                        .and_then(mpsc::WeakUnboundedSender::upgrade)
                    {
                        let _ = shard.send(Command::Receive(m));
                    }
                    continue;
                }
            }
            self.command(Command::Receive(m)).await;
            self.drain().await;
        }
        self.received = batch;
    }

    /// Sends the datagrams queued on the shard's sockets, a batch per
    /// system call; a transaction whose datagram could not be sent hears
    /// of it (and what that produces is sent too).
    async fn flush_udp(&mut self) {
        // Bounded: each round only sends what the failures of the last
        // one produced.
        for _ in 0..4 {
            let mut any_failed = false;
            for (socket, queue) in self.udp.iter().zip(self.udp_out.iter_mut()) {
                if queue.datagrams.is_empty() {
                    continue;
                }
                socket.send_batch(&queue.datagrams, &mut queue.failed).await;
                queue.datagrams.clear();
                any_failed |= !queue.failed.is_empty();
            }
            if !any_failed {
                for queue in &mut self.udp_out {
                    queue.txs.clear();
                }
                return;
            }
            let now = self.now();
            for q in 0..self.udp_out.len() {
                let Some(queue) = self.udp_out.get_mut(q) else {
                    continue;
                };
                let failed: Vec<_> = queue.failed.drain(..).collect();
                let txs = std::mem::take(&mut queue.txs);
                for (idx, error) in failed {
                    warn!(%error, "send failed");
                    if let Some(Some(id)) = txs.get(idx) {
                        self.endpoint.transport_error(now, *id);
                    }
                }
            }
            self.drain().await;
        }
    }

    async fn command(&mut self, cmd: Command) {
        let now = self.now();
        match cmd {
            Command::Receive(m) => {
                self.arrived_on = Some(m.local);
                self.endpoint.receive(now, m.message, m.source);
            }
            Command::SendRequest {
                request,
                peer,
                events,
                reply,
            } => {
                let r = self.endpoint.send_request(now, request, peer);
                if let Ok(id) = r {
                    self.clients.insert(id, events);
                }
                let _ = reply.send(r);
            }
            Command::Respond(id, response) => {
                if let Err(e) = self.endpoint.respond(now, id, response) {
                    debug!(%id, error = %e, "response not sent");
                }
            }
            Command::Forward(id, response) => {
                if let Err(e) = self.endpoint.forward_response(now, id, response) {
                    debug!(%id, error = %e, "response not forwarded");
                }
            }
            Command::RespondReliable(id, response) => {
                if let Err(e) = self.endpoint.respond_reliable(now, id, response) {
                    debug!(%id, error = %e, "reliable provisional not sent");
                }
            }
            Command::PrackReceived(id) => self.endpoint.prack_received(id),
            Command::Cancel(id) => {
                if let Err(e) = self.endpoint.cancel(now, id) {
                    debug!(%id, error = %e, "cancel refused");
                }
            }
            Command::Stateless(bytes, peer) => self.transmit(peer, bytes, None, None).await,
            Command::TransportFailed(id) => self.endpoint.transport_error(now, id),
            Command::Abandon(id) => self.endpoint.abandon(now, id),
        }
    }

    /// Carries out everything the endpoint asked for, until it asks nothing.
    async fn drain(&mut self) {
        while let Some(out) = self.endpoint.poll_output() {
            match out {
                Output::Transmit(t) => {
                    let local = t.tx.and_then(|id| self.locals.get(&id).copied());
                    self.transmit(t.peer, t.bytes, t.tx, local).await;
                }
                Output::Event(e) => self.event(e),
            }
        }
    }

    /// Sends: UDP at once (a datagram never waits for a peer); stream
    /// transports through the peer's writer task.
    async fn transmit(&mut self, peer: Peer, bytes: Bytes, tx: Option<TxId>, local: Option<Peer>) {
        if peer.transport == sip_message::TransportKind::Udp && !self.udp.is_empty() {
            // From the socket the request arrived on (the same address on
            // every shard), else the first of the peer's address family;
            // sent with the rest of this round's datagrams.
            let found = local
                .and_then(|l| self.udp.iter().position(|s| s.local().addr == l.addr))
                .or_else(|| {
                    self.udp
                        .iter()
                        .position(|s| s.local().addr.is_ipv4() == peer.addr.is_ipv4())
                });
            if let Some(queue) = found.and_then(|i| self.udp_out.get_mut(i)) {
                queue.datagrams.push((peer.addr, bytes));
                queue.txs.push(tx);
                return;
            }
            warn!(%peer, "no UDP socket for this address family: not sent");
            if let Some(id) = tx {
                let now = self.now();
                self.endpoint.transport_error(now, id);
            }
            return;
        }
        if peer.transport == sip_message::TransportKind::Udp {
            let sent = match local {
                Some(local) => self.transports.send_from(local, peer, bytes).await,
                None => self.transports.send(peer, bytes).await,
            };
            if let Err(e) = sent {
                warn!(%peer, error = %e, "send failed");
                if let Some(id) = tx {
                    let now = self.now();
                    self.endpoint.transport_error(now, id);
                }
            }
            return;
        }
        let item = (bytes, tx);
        let item = match self.writers.get(&peer) {
            Some(w) => match w.send(item) {
                Ok(()) => return,
                // The writer ended (idle): start a new one.
                Err(mpsc::error::SendError(item)) => item,
            },
            None => item,
        };
        let w = self.spawn_writer(peer);
        let _ = w.send(item);
        self.writers.insert(peer, w);
    }

    fn spawn_writer(&self, peer: Peer) -> mpsc::UnboundedSender<(Bytes, Option<TxId>)> {
        let (send, mut recv) = mpsc::unbounded_channel::<(Bytes, Option<TxId>)>();
        let transports = self.transports.clone();
        let me = self.me.clone();
        tokio::spawn(async move {
            while let Ok(Some((bytes, tx))) = tokio::time::timeout(WRITER_IDLE, recv.recv()).await {
                if let Err(e) = transports.send(peer, bytes).await {
                    warn!(%peer, error = %e, "send failed");
                    if let (Some(id), Some(me)) = (tx, me.upgrade()) {
                        let _ = me.send(Command::TransportFailed(id));
                    }
                }
            }
        });
        send
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Request {
                tx,
                request,
                source,
            } => {
                // Only UDP responses choose their socket, and a shard with
                // one socket of its own has no choice to remember.
                if let Some(local) = self.arrived_on
                    && local.transport == sip_message::TransportKind::Udp
                    && self.udp.len() != 1
                {
                    self.locals.insert(tx, local);
                }
                let cancelled = if request.method() == Some(sip_message::Method::Invite) {
                    let (send, recv) = oneshot::channel();
                    self.cancels.insert(tx, send);
                    self.invites.insert(tx, request.message_bytes());
                    Some(recv)
                } else {
                    None
                };
                let Some(shard) = self.me.upgrade() else {
                    return;
                };
                let _ = self.events.send(StackEvent::Request(ServerTransaction {
                    id: tx,
                    request,
                    source,
                    shard,
                    cancelled,
                    answered: std::sync::atomic::AtomicBool::new(false),
                }));
            }
            Event::Ack {
                tx,
                request,
                source,
            } => {
                let _ = self.events.send(StackEvent::Ack {
                    request,
                    source,
                    acknowledged: tx.is_some(),
                });
            }
            Event::Cancelled { invite } => {
                if let Some(c) = self.cancels.remove(&invite) {
                    let _ = c.send(());
                }
            }
            Event::Response {
                tx,
                response,
                source,
            } => {
                let Some(c) = self.clients.get(&tx) else {
                    return;
                };
                // The transaction user dropped its handle (a proxy whose
                // request context ended): a 2xx to an INVITE that still
                // comes (a retransmission or a fork, in Accepted, RFC 6026)
                // is a late response to it, which a proxy forwards
                // statelessly; anything else (a late 200 to a non-INVITE
                // answered 408 upstream, §16.7 step 5) nobody needs.
                if let Err(e) = c.send(Box::new(ClientEvent::Response(response)))
                    && let ClientEvent::Response(response) = *e.0
                    && response.status().is_some_and(|s| (200..300).contains(&s))
                    && response.cseq().is_some_and(|(_, m)| m == Method::Invite)
                {
                    let _ = self
                        .events
                        .send(StackEvent::LateResponse { response, source });
                }
            }
            Event::StrayResponse { response, source } => {
                let _ = self
                    .events
                    .send(StackEvent::StrayResponse { response, source });
            }
            Event::Timeout { tx, timer } => {
                if let Some(c) = self.clients.get(&tx) {
                    let _ = c.send(Box::new(ClientEvent::Timeout));
                } else if timer == TimerName::L
                    && let Some(request) = self
                        .invites
                        .get(&tx)
                        .and_then(|b| SipMessage::parse(b.clone()).ok())
                {
                    let _ = self.events.send(StackEvent::AckTimeout { request });
                }
            }
            Event::TransportError { tx } => {
                if let Some(c) = self.clients.get(&tx) {
                    let _ = c.send(Box::new(ClientEvent::TransportError));
                }
            }
            Event::Rejected { status, source } => {
                debug!(%source, status, "rejected a malformed request");
            }
            Event::Terminated { tx } => {
                self.clients.remove(&tx);
                self.cancels.remove(&tx);
                self.invites.remove(&tx);
                self.locals.remove(&tx);
                shrink_after_burst(&mut self.clients);
                shrink_after_burst(&mut self.cancels);
                shrink_after_burst(&mut self.invites);
                shrink_after_burst(&mut self.locals);
            }
            _ => {}
        }
    }
}
