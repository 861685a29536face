//! The transaction layer endpoint: owns every transaction, matches messages
//! to them, runs their timers, and says what to send and what happened.
//!
//! The contract (as in quinn-proto and str0m): after every call that
//! mutates the endpoint (`receive`, `send_request`, `respond`, `cancel`,
//! `transport_error`, `handle_timeout`), drain [`Endpoint::poll_output`]
//! until it returns `None`, then sleep until [`Endpoint::poll_timeout`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::headers::Via;
use sip_message::{
    HeaderName, Method, RequestBuilder, ResponseBuilder, Role, SipMessage, validate,
};

use crate::error::ProtoError;
use crate::key::{AckKey, TxKey};
use crate::timer_wheel::TimerWheel;
use crate::transaction::{TimerName, Transaction, TxKind, TxState};
use crate::types::{IdGenerator, Timers, TxId, TxMap, shrink_after_burst};
use sip_message::Peer;

/// Something the endpoint wants done or wants known.
// An event (a message, 320 bytes) is the common output; outputs are
// drained as they are made, and boxing events would allocate per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes to this peer.
    Transmit(Transmit),
    /// Tell the transaction user.
    Event(Event),
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub peer: Peer,
    /// The message.
    pub bytes: Bytes,
    /// The transaction it belongs to; `None` for stateless sends.
    pub tx: Option<TxId>,
}

/// What the transaction user (the UA core, a proxy core, a dialog layer)
/// hears from the transaction layer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A new request created a server transaction; answer it with
    /// [`Endpoint::respond`].
    Request {
        /// The new server transaction.
        tx: TxId,
        /// The request (with `received` / `rport` recorded in its top Via).
        request: SipMessage,
        /// Where it came from.
        source: Peer,
    },
    /// An ACK for a 2xx (its own transaction, §17.1.1.3): for the dialog
    /// layer. `tx` is the INVITE server transaction whose 2xx it
    /// acknowledges, if this endpoint still has it and this is the first
    /// ACK for it (its 2xx retransmissions stop); copies that follow (a UAC
    /// ACKs every 2xx retransmission it gets) come with `tx: None`, so
    /// each answered call is confirmed once.
    Ack {
        /// The INVITE server transaction, for the first ACK of its 2xx.
        tx: Option<TxId>,
        /// The ACK.
        request: SipMessage,
        /// Where it came from.
        source: Peer,
    },
    /// A CANCEL matched an INVITE server transaction that has not answered
    /// finally; the endpoint answered the CANCEL with 200 (§9.2). The TU
    /// should answer the INVITE with 487.
    Cancelled {
        /// The INVITE server transaction.
        invite: TxId,
    },
    /// A response for a client transaction (provisional, final, and in
    /// Accepted every further 2xx: retransmissions and forks, RFC 6026).
    Response {
        /// The client transaction.
        tx: TxId,
        /// The response.
        response: SipMessage,
        /// Where it came from (a TU that no longer follows the
        /// transaction handles it as a stray response from there).
        source: Peer,
    },
    /// A response that matches no client transaction (§18.1.2). A UA drops
    /// it; a stateless proxy forwards it.
    StrayResponse {
        /// The response.
        response: SipMessage,
        /// Where it came from.
        source: Peer,
    },
    /// The transaction timed out: timer B or F (no final response; the TU
    /// treats it as 408, §8.1.3.1), H (no ACK for a non-2xx), or L with the
    /// 2xx never acknowledged (§13.3.1.4: the UAS should end the session).
    Timeout {
        /// The transaction.
        tx: TxId,
        /// Which timer.
        timer: TimerName,
    },
    /// The transport failed for this transaction (§8.1.3.1, §17.1.4).
    TransportError {
        /// The transaction.
        tx: TxId,
    },
    /// A request that failed validation was answered statelessly.
    Rejected {
        /// The status sent (400, 416, 505, ...).
        status: u16,
        /// Where the request came from.
        source: Peer,
    },
    /// The transaction is gone; no further event names it.
    Terminated {
        /// The transaction.
        tx: TxId,
    },
}

/// The hasher of the transaction and ACK indexes, whose keys (branches,
/// tags, Call-IDs) come from the network: foldhash (std's SipHash cost
/// about 1.5% of a proxied call's CPU, docs/BENCHMARKS.md). Its seed must
/// be secret, or an attacker can pick colliding branches: the core takes
/// no randomness of its own, so the caller gives it
/// ([`Endpoint::with_index_seed`]; `sip-stack` takes one from the OS).
/// [`Endpoint::new`] derives one from its seed, which its generated
/// branches and tags reveal: fine for tests and simulations only.
type KeyHash = foldhash::fast::FixedState;

fn key_hash(seed: u64) -> KeyHash {
    foldhash::fast::FixedState::with_seed(seed.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15)
}

/// The transaction layer.
#[derive(Debug)]
pub struct Endpoint {
    cfg: Timers,
    ids: IdGenerator,
    next_tx: u64,
    /// Boxed: at high rates hundreds of thousands of transactions wait out
    /// Timers J and L, and growing the map then moves pointers, not records.
    txs: TxMap<Box<Transaction>>,
    by_key: HashMap<TxKey, TxId, KeyHash>,
    by_ack: HashMap<AckKey, TxId, KeyHash>,
    clock: TimerWheel,
    out: Outbox,
    /// Sent-by values (host, port) of trusted relays, see
    /// [`Endpoint::with_relays`].
    relays: Vec<(String, Option<u16>)>,
}

/// Outputs waiting for [`Endpoint::poll_output`].
#[derive(Debug, Default)]
struct Outbox {
    queue: VecDeque<Output>,
}

impl Outbox {
    fn event(&mut self, e: Event) {
        self.queue.push_back(Output::Event(e));
    }

    fn transmit(&mut self, peer: Peer, bytes: Bytes, tx: Option<TxId>) {
        self.queue
            .push_back(Output::Transmit(Transmit { peer, bytes, tx }));
    }
}

impl Endpoint {
    /// An endpoint with the given timer values and a seed for the branches,
    /// tags and Call-IDs it generates.
    #[must_use]
    pub fn new(timers: Timers, seed: u64) -> Endpoint {
        Endpoint {
            cfg: timers,
            ids: IdGenerator::new(seed),
            next_tx: 1,
            txs: TxMap::default(),
            by_key: HashMap::with_hasher(key_hash(seed)),
            by_ack: HashMap::with_hasher(key_hash(seed)),
            clock: TimerWheel::default(),
            out: Outbox::default(),
            relays: Vec::new(),
        }
    }

    /// The same endpoint trusting relays that write one of these sent-by
    /// values (`host` or `host:port`) in their Via: the edges of a cluster,
    /// which all write the cluster's public address. A retransmission
    /// whose top Via carries one of them and that arrives from another
    /// address than the original (the first edge died; another carries
    /// the client's retransmission with the same branch) moves the server
    /// transaction's responses there. Without relays, or for any other
    /// Via, responses stay where the request first came from (§17.2.3,
    /// §18.2.2): a peer that learnt a transaction's branch and sent-by
    /// (every downstream hop of a proxy does) cannot redirect its
    /// responses by sending a copy of the request from elsewhere. The
    /// relays' sent-by is in every request they carry, so the trust rests
    /// on who can reach this endpoint: behind a cluster's edges, only
    /// the edges and the cluster's own servers should (OPERATIONS.md). A
    /// missing port counts as 5060 on both sides.
    #[must_use]
    pub fn with_relays<S: AsRef<str>>(mut self, sent_by: impl IntoIterator<Item = S>) -> Endpoint {
        self.relays = sent_by
            .into_iter()
            .map(|s| {
                let s = s.as_ref();
                match s.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
                    Some((host, Ok(port))) => (host.to_ascii_lowercase(), Some(port)),
                    _ => (s.to_ascii_lowercase(), None),
                }
            })
            .collect();
        self
    }

    /// Whether the request's top Via was written by a trusted relay.
    fn relayed(&self, msg: &SipMessage) -> bool {
        !self.relays.is_empty()
            && msg.top_via().is_some_and(|v| {
                self.relays.iter().any(|(host, port)| {
                    v.host.eq_ignore_ascii_case(host)
                        && v.port.unwrap_or(5060) == port.unwrap_or(5060)
                })
            })
    }

    /// The same endpoint with the transaction and ACK indexes hashed with
    /// a seed of the caller's (call it before the first message): give it
    /// a secret one, see `KeyHash`.
    #[must_use]
    pub fn with_index_seed(mut self, seed: u64) -> Endpoint {
        self.by_key = HashMap::with_hasher(key_hash(seed));
        self.by_ack = HashMap::with_hasher(key_hash(seed));
        self
    }

    /// The generator for branches, tags and Call-IDs of requests the TU builds.
    pub fn ids(&mut self) -> &mut IdGenerator {
        &mut self.ids
    }

    /// The timer values.
    #[must_use]
    pub fn timers(&self) -> &Timers {
        &self.cfg
    }

    /// How many transactions are alive.
    #[must_use]
    pub fn transaction_count(&self) -> usize {
        self.txs.len()
    }

    /// The state of a transaction, if it exists.
    #[must_use]
    pub fn state(&self, tx: TxId) -> Option<TxState> {
        self.txs.get(&tx).map(|t| t.state)
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.queue.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] must next be called: never later
    /// than the earliest armed timer, usually exactly its deadline (after
    /// the earliest timer of a coarse slot was stopped it can be earlier;
    /// calling `handle_timeout` then fires nothing and the next answer is
    /// closer). `None` when no timer is armed.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.clock.next_deadline()
    }

    fn terminate(&mut self, id: TxId) {
        let Some(tx) = self.txs.remove(&id) else {
            return;
        };
        self.by_key.remove(&tx.key);
        if let Some(k) = &tx.ack_key {
            self.by_ack.remove(k);
            shrink_after_burst(&mut self.by_ack);
        }
        shrink_after_burst(&mut self.txs);
        shrink_after_burst(&mut self.by_key);
        self.clock.disarm_all(id);
        self.out.event(Event::Terminated { tx: id });
    }

    fn new_id(&mut self) -> TxId {
        let id = TxId(self.next_tx);
        self.next_tx += 1;
        id
    }

    // ---- from the network -------------------------------------------------

    /// A message arrived from the transport.
    pub fn receive(&mut self, now: Instant, msg: SipMessage, source: Peer) {
        if msg.is_request() {
            self.receive_request(now, msg, source);
        } else {
            self.receive_response(now, msg, source);
        }
    }

    fn receive_request(&mut self, now: Instant, msg: SipMessage, source: Peer) {
        if let Err(e) = validate(&msg, Role::Forward) {
            // §8.2, §16.3, §21.4.1: answer what can be answered; never answer an ACK.
            if msg.method() != Some(Method::Ack)
                && msg.typed::<Via<'_>>().is_some_and(|v| v.is_ok())
            {
                let tag = self.ids.tag();
                // §18.2.1, §18.2.2: stamp the Via and answer where a stateful
                // response would go.
                let peer = response_peer(&msg, source);
                let msg = record_source(msg, source);
                if let Ok(resp) =
                    ResponseBuilder::with_reason(&msg, e.status(), &e.reason_phrase(), Some(&tag))
                        .and_then(ResponseBuilder::build)
                {
                    self.out.transmit(peer, resp.message_bytes(), None);
                }
                self.out.event(Event::Rejected {
                    status: e.status(),
                    source,
                });
            }
            return;
        }
        let msg = record_source(msg, source);
        let method = msg.method().unwrap_or(Method::Extension(""));
        let Some(key) = TxKey::server(&msg, None) else {
            return;
        };
        if method == Method::Cancel {
            self.receive_cancel(now, msg, key, source);
            return;
        }
        if let Some(&id) = self.by_key.get(&key) {
            self.retransmitted_request(now, id, &msg, source);
            return;
        }
        if method == Method::Ack {
            // An ACK that matches no transaction acknowledges a 2xx (§17.2.3:
            // it is not part of the INVITE transaction).
            let tx = AckKey::of(&msg)
                .and_then(|k| self.by_ack.get(&k).copied())
                .filter(|&id| self.clock.is_armed(id, TimerName::Retransmit2xx));
            if let Some(id) = tx {
                self.clock.disarm(id, TimerName::Retransmit2xx);
            }
            self.out.event(Event::Ack {
                tx,
                request: msg,
                source,
            });
            return;
        }
        let id = self.new_id();
        let (kind, state) = if method == Method::Invite {
            (TxKind::ServerInvite, TxState::Proceeding)
        } else {
            (TxKind::ServerNonInvite, TxState::Trying)
        };
        self.txs.insert(
            id,
            Box::new(Transaction::new(
                kind,
                state,
                response_peer(&msg, source),
                msg.clone(),
                Bytes::new(),
                key.clone(),
                self.cfg.t1,
            )),
        );
        self.by_key.insert(key, id);
        if kind == TxKind::ServerInvite {
            // §17.2.1: 100 Trying if the TU has not answered in 200 ms.
            self.clock
                .arm(now, id, TimerName::Trying, now + self.cfg.trying);
        }
        self.out.event(Event::Request {
            tx: id,
            request: msg,
            source,
        });
    }

    /// A request that matched an existing server transaction.
    ///
    /// A retransmission relayed by a trusted relay ([`Endpoint::with_relays`])
    /// that arrives from elsewhere than the original (same transport, a
    /// different address: in a cluster another edge carries it with the
    /// same branch because the first edge died) moves where the
    /// transaction's responses go: the resent response, Timer G copies and
    /// 2xx retransmissions follow the retransmission's Via and source
    /// (§18.2.2 applied to the request that asked), not an address that
    /// may no longer answer.
    fn retransmitted_request(&mut self, now: Instant, id: TxId, msg: &SipMessage, source: Peer) {
        let relayed = self.relayed(msg);
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        let is_ack = msg.method() == Some(Method::Ack);
        let server = matches!(tx.kind, TxKind::ServerInvite | TxKind::ServerNonInvite);
        if server && !is_ack && relayed {
            let peer = response_peer(msg, source);
            if peer.transport == tx.peer.transport {
                tx.peer = peer;
            }
        }
        match (tx.kind, tx.state, is_ack) {
            // §17.2.1: the ACK for a non-2xx confirms; timer I absorbs
            // further ACKs (zero on reliable transports).
            (TxKind::ServerInvite, TxState::Completed, true) => {
                tx.state = TxState::Confirmed;
                let wait = if tx.reliable() {
                    Duration::ZERO
                } else {
                    self.cfg.t4
                };
                self.clock.disarm(id, TimerName::G);
                self.clock.disarm(id, TimerName::H);
                self.clock.arm(now, id, TimerName::I, now + wait);
            }
            (TxKind::ServerInvite, TxState::Confirmed, true) => {}
            // An RFC 2543 ACK for a 2xx can carry the INVITE's branch.
            (TxKind::ServerInvite, TxState::Accepted, true) => {
                let first = self.clock.is_armed(id, TimerName::Retransmit2xx);
                self.clock.disarm(id, TimerName::Retransmit2xx);
                self.out.event(Event::Ack {
                    tx: first.then_some(id),
                    request: msg.clone(),
                    source,
                });
            }
            (_, _, true) => {}
            // §17.2.1: a retransmitted INVITE gets the last provisional or
            // final again; RFC 6026 §7.1: in Accepted it is absorbed.
            (TxKind::ServerInvite, TxState::Proceeding | TxState::Completed, false) => {
                if let Some(b) = tx.last_response.clone() {
                    let peer = tx.peer;
                    self.out.transmit(peer, b, Some(id));
                }
            }
            (TxKind::ServerInvite, _, false) => {}
            // §17.2.2: Trying absorbs; Proceeding and Completed resend.
            (TxKind::ServerNonInvite, TxState::Proceeding | TxState::Completed, false) => {
                if let Some(b) = tx.last_response.clone() {
                    let peer = tx.peer;
                    self.out.transmit(peer, b, Some(id));
                }
            }
            (TxKind::ServerNonInvite, _, false) => {}
            (TxKind::ClientInvite | TxKind::ClientNonInvite, _, false) => {}
        }
    }

    /// §9.2: a CANCEL is its own non-INVITE server transaction, answered by
    /// the endpoint: 200 when it matches a transaction, 481 when not.
    fn receive_cancel(&mut self, now: Instant, msg: SipMessage, key: TxKey, source: Peer) {
        if let Some(&id) = self.by_key.get(&key) {
            self.retransmitted_request(now, id, &msg, source);
            return;
        }
        let target = TxKey::server(&msg, Some("INVITE"))
            .and_then(|k| self.by_key.get(&k).copied())
            .filter(|id| {
                self.txs
                    .get(id)
                    .is_some_and(|t| t.kind == TxKind::ServerInvite)
            });
        let id = self.new_id();
        self.txs.insert(
            id,
            Box::new(Transaction::new(
                TxKind::ServerNonInvite,
                TxState::Trying,
                response_peer(&msg, source),
                msg,
                Bytes::new(),
                key.clone(),
                self.cfg.t1,
            )),
        );
        self.by_key.insert(key, id);
        let status = if target.is_some() { 200 } else { 481 };
        // §9.2: the CANCEL's response SHOULD carry the To tag of the
        // INVITE's response.
        let invite_tag = target
            .and_then(|t| self.txs.get(&t))
            .and_then(|t| t.last_response.as_ref())
            .and_then(|b| SipMessage::parse(b.clone()).ok())
            .and_then(|r| {
                r.typed::<sip_message::headers::To<'_>>()
                    .and_then(Result::ok)
                    .and_then(|t| t.tag().map(str::to_owned))
            });
        let _ = self.respond_inner(now, id, status, invite_tag);
        if let Some(invite) = target
            && self
                .txs
                .get(&invite)
                .is_some_and(|t| t.state == TxState::Proceeding)
        {
            self.out.event(Event::Cancelled { invite });
        }
    }

    fn respond_inner(
        &mut self,
        now: Instant,
        id: TxId,
        status: u16,
        tag: Option<String>,
    ) -> Result<(), ProtoError> {
        let tx = self
            .txs
            .get(&id)
            .ok_or(ProtoError::UnknownTransaction(id))?;
        let tag = tag.unwrap_or_else(|| self.ids.tag());
        let request = tx.request.as_ref().ok_or(ProtoError::InvalidState {
            tx: id,
            state: tx.state,
        })?;
        let resp = ResponseBuilder::for_request(request, status, Some(&tag))?.build()?;
        self.respond(now, id, resp)
    }

    fn receive_response(&mut self, now: Instant, msg: SipMessage, source: Peer) {
        let id = TxKey::client_for_response(&msg).and_then(|k| self.by_key.get(&k).copied());
        let Some(id) = id else {
            self.out.event(Event::StrayResponse {
                response: msg,
                source,
            });
            return;
        };
        let Some(status) = msg.status() else {
            return;
        };
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        let reliable = tx.reliable();
        let provisional = status < 200;
        let success = (200..300).contains(&status);
        match (tx.kind, tx.state) {
            // §17.1.1.2, Figure 5.
            (TxKind::ClientInvite, TxState::Calling | TxState::Proceeding) => {
                self.clock.disarm(id, TimerName::A);
                self.clock.disarm(id, TimerName::B);
                if !provisional {
                    self.clock.disarm(id, TimerName::Cancelled);
                }
                if provisional {
                    let was_calling = tx.state == TxState::Calling;
                    tx.state = TxState::Proceeding;
                    let cancel_pending = std::mem::take(&mut tx.cancel_pending);
                    self.out.event(Event::Response {
                        tx: id,
                        response: msg,
                        source,
                    });
                    if was_calling && cancel_pending {
                        let _ = self.send_cancel(now, id);
                    }
                } else if success {
                    // RFC 6026 §7.2: Accepted; the TU sends the ACK.
                    tx.state = TxState::Accepted;
                    tx.shed();
                    self.clock
                        .arm(now, id, TimerName::M, now + self.cfg.t1x64());
                    self.out.event(Event::Response {
                        tx: id,
                        response: msg,
                        source,
                    });
                } else {
                    // §17.1.1.3: the transaction ACKs a non-2xx itself.
                    tx.state = TxState::Completed;
                    let ack = tx
                        .request
                        .as_ref()
                        .and_then(|r| build_ack(r, &msg).ok())
                        .map(|a| a.message_bytes());
                    tx.ack = ack.clone();
                    tx.shed();
                    let peer = tx.peer;
                    if let Some(ack) = ack {
                        self.out.transmit(peer, ack, Some(id));
                    }
                    let wait = if reliable { Duration::ZERO } else { self.cfg.d };
                    self.clock.arm(now, id, TimerName::D, now + wait);
                    self.out.event(Event::Response {
                        tx: id,
                        response: msg,
                        source,
                    });
                }
            }
            (TxKind::ClientInvite, TxState::Completed) => {
                // A retransmitted final: ACK it again, the TU hears nothing.
                if !provisional
                    && !success
                    && let Some(ack) = tx.ack.clone()
                {
                    let peer = tx.peer;
                    self.out.transmit(peer, ack, Some(id));
                }
            }
            (TxKind::ClientInvite, TxState::Accepted) => {
                // RFC 6026 §8.4: every 2xx goes to the TU (forks, retransmissions).
                if success {
                    self.out.event(Event::Response {
                        tx: id,
                        response: msg,
                        source,
                    });
                }
            }
            // §17.1.2.2, Figure 6.
            (TxKind::ClientNonInvite, TxState::Trying | TxState::Proceeding) => {
                if provisional {
                    tx.state = TxState::Proceeding;
                } else {
                    tx.state = TxState::Completed;
                    tx.shed();
                    self.clock.disarm(id, TimerName::E);
                    self.clock.disarm(id, TimerName::F);
                    let wait = if reliable {
                        Duration::ZERO
                    } else {
                        self.cfg.t4
                    };
                    self.clock.arm(now, id, TimerName::K, now + wait);
                }
                self.out.event(Event::Response {
                    tx: id,
                    response: msg,
                    source,
                });
            }
            (TxKind::ClientNonInvite, _) | (TxKind::ClientInvite, _) => {}
            (TxKind::ServerInvite | TxKind::ServerNonInvite, _) => {}
        }
    }

    // ---- from the transaction user ----------------------------------------

    /// Starts a client transaction: sends `request` to `peer` and runs its
    /// retransmissions and timeout. The request must carry a top Via with
    /// an RFC 3261 branch (use [`Endpoint::ids`]). ACK is not a transaction:
    /// send it with [`Endpoint::send_stateless`].
    pub fn send_request(
        &mut self,
        now: Instant,
        request: SipMessage,
        peer: Peer,
    ) -> Result<TxId, ProtoError> {
        let method = request.method().ok_or(ProtoError::NotARequest)?;
        if method == Method::Ack {
            return Err(ProtoError::AckIsNotATransaction);
        }
        let key = TxKey::client_for_request(&request).ok_or(ProtoError::MissingBranch)?;
        if self.by_key.contains_key(&key) {
            return Err(ProtoError::DuplicateBranch);
        }
        let id = self.new_id();
        let bytes = request.message_bytes();
        let invite = method == Method::Invite;
        let reliable = peer.transport.is_reliable();
        self.txs.insert(
            id,
            Box::new(Transaction::new(
                if invite {
                    TxKind::ClientInvite
                } else {
                    TxKind::ClientNonInvite
                },
                if invite {
                    TxState::Calling
                } else {
                    TxState::Trying
                },
                peer,
                request,
                bytes.clone(),
                key.clone(),
                self.cfg.t1,
            )),
        );
        self.by_key.insert(key, id);
        self.out.transmit(peer, bytes, Some(id));
        let (retransmit, timeout) = if invite {
            (TimerName::A, TimerName::B)
        } else {
            (TimerName::E, TimerName::F)
        };
        // §17.1.1.2, §17.1.2.2: retransmissions only on unreliable transports.
        if !reliable {
            self.clock.arm(now, id, retransmit, now + self.cfg.t1);
        }
        self.clock.arm(now, id, timeout, now + self.cfg.t1x64());
        Ok(id)
    }

    /// Sends a response through a server transaction.
    pub fn respond(
        &mut self,
        now: Instant,
        id: TxId,
        response: SipMessage,
    ) -> Result<(), ProtoError> {
        let status = response.status().ok_or(ProtoError::NotAResponse)?;
        let tx = self
            .txs
            .get_mut(&id)
            .ok_or(ProtoError::UnknownTransaction(id))?;
        let bytes = response.message_bytes();
        let peer = tx.peer;
        let reliable = tx.reliable();
        let provisional = status < 200;
        let success = (200..300).contains(&status);
        match (tx.kind, tx.state) {
            // §17.2.1, Figure 7; RFC 6026 §7.1.
            (TxKind::ServerInvite, TxState::Proceeding) => {
                tx.last_response = Some(bytes.clone());
                if provisional {
                    tx.provisional_sent = true;
                    self.clock.disarm(id, TimerName::Trying);
                } else if success {
                    tx.state = TxState::Accepted;
                    let ack_key = tx
                        .request
                        .as_ref()
                        .and_then(|r| AckKey::of_2xx(r, &response));
                    tx.ack_key = ack_key.clone();
                    tx.shed();
                    tx.interval = self.cfg.t1;
                    if let Some(k) = ack_key {
                        self.by_ack.insert(k, id);
                    }
                    self.clock.disarm(id, TimerName::Trying);
                    // §13.3.1.4: the 2xx is retransmitted end to end (a
                    // downstream hop may be unreliable) until the ACK.
                    self.clock
                        .arm(now, id, TimerName::Retransmit2xx, now + self.cfg.t1);
                    self.clock
                        .arm(now, id, TimerName::L, now + self.cfg.t1x64());
                } else {
                    tx.state = TxState::Completed;
                    tx.shed();
                    tx.interval = self.cfg.t1;
                    self.clock.disarm(id, TimerName::Trying);
                    if !reliable {
                        self.clock.arm(now, id, TimerName::G, now + self.cfg.t1);
                    }
                    self.clock
                        .arm(now, id, TimerName::H, now + self.cfg.t1x64());
                }
            }
            (TxKind::ServerInvite, TxState::Accepted) if success => {
                // A 2xx retransmitted by the TU itself.
                tx.last_response = Some(bytes.clone());
            }
            // §17.2.2, Figure 8.
            (TxKind::ServerNonInvite, TxState::Trying | TxState::Proceeding) => {
                tx.last_response = Some(bytes.clone());
                if provisional {
                    tx.state = TxState::Proceeding;
                } else {
                    tx.state = TxState::Completed;
                    tx.shed();
                    let wait = if reliable {
                        Duration::ZERO
                    } else {
                        self.cfg.t1x64()
                    };
                    self.clock.arm(now, id, TimerName::J, now + wait);
                }
            }
            (_, state) => return Err(ProtoError::InvalidState { tx: id, state }),
        }
        self.out.transmit(peer, bytes, Some(id));
        Ok(())
    }

    /// Forwards a response through a server transaction as a stateful proxy
    /// does (§16.7): like [`Endpoint::respond`], except that a 2xx to an
    /// INVITE is not retransmitted by this hop and no ACK is expected here:
    /// the UAS retransmits it end to end and the proxy forwards each
    /// retransmission it receives (RFC 6026 §7.1, §8.1). The transaction
    /// waits in Accepted for timer L, absorbing INVITE retransmissions.
    pub fn forward_response(
        &mut self,
        now: Instant,
        id: TxId,
        response: SipMessage,
    ) -> Result<(), ProtoError> {
        let success = response.status().is_some_and(|s| (200..300).contains(&s));
        self.respond(now, id, response)?;
        if success
            && let Some(tx) = self.txs.get_mut(&id)
            && tx.kind == TxKind::ServerInvite
        {
            self.clock.disarm(id, TimerName::Retransmit2xx);
            if let Some(k) = tx.ack_key.take() {
                self.by_ack.remove(&k);
            }
        }
        Ok(())
    }

    /// The transaction user gave up on a server transaction without a final
    /// response: answer 500 (§21.5.1) so the client does not wait forever.
    /// Nothing happens once a final response was sent.
    pub fn abandon(&mut self, now: Instant, id: TxId) {
        let pending = self.txs.get(&id).is_some_and(|t| {
            matches!(t.kind, TxKind::ServerInvite | TxKind::ServerNonInvite)
                && matches!(t.state, TxState::Trying | TxState::Proceeding)
        });
        if pending {
            let _ = self.respond_inner(now, id, 500, None);
        }
    }

    /// Sends a reliable provisional (RFC 3262 §3) through an INVITE server
    /// transaction and retransmits it (T1, doubling) until
    /// [`Endpoint::prack_received`], or reports `Timeout { timer:
    /// Reliable1xx }` after 64*T1 (the UAS then rejects the INVITE with 5xx).
    /// The response carries `Require: 100rel` and `RSeq` (see
    /// [`crate::Dialog::next_rseq`]).
    pub fn respond_reliable(
        &mut self,
        now: Instant,
        id: TxId,
        response: SipMessage,
    ) -> Result<(), ProtoError> {
        let status = response.status().ok_or(ProtoError::NotAResponse)?;
        if !(101..200).contains(&status) {
            return Err(ProtoError::NotAResponse);
        }
        let bytes = response.message_bytes();
        self.respond(now, id, response)?;
        if let Some(tx) = self.txs.get_mut(&id) {
            tx.reliable_1xx = Some((bytes, self.cfg.t1, now + self.cfg.t1x64()));
            self.clock
                .arm(now, id, TimerName::Reliable1xx, now + self.cfg.t1);
        }
        Ok(())
    }

    /// The PRACK for the reliable provisional of `id` arrived: stop its
    /// retransmissions.
    pub fn prack_received(&mut self, id: TxId) {
        if let Some(tx) = self.txs.get_mut(&id) {
            tx.reliable_1xx = None;
            self.clock.disarm(id, TimerName::Reliable1xx);
        }
    }

    /// Cancels a pending INVITE client transaction (§9.1). Returns the
    /// CANCEL's transaction, or `None` when no provisional has arrived yet:
    /// then the CANCEL leaves with the first provisional (§9.1: a CANCEL
    /// must not be sent before one).
    pub fn cancel(&mut self, now: Instant, invite: TxId) -> Result<Option<TxId>, ProtoError> {
        let tx = self
            .txs
            .get_mut(&invite)
            .ok_or(ProtoError::UnknownTransaction(invite))?;
        match (tx.kind, tx.state) {
            (TxKind::ClientInvite, TxState::Calling) => {
                tx.cancel_pending = true;
                Ok(None)
            }
            (TxKind::ClientInvite, TxState::Proceeding) => self.send_cancel(now, invite).map(Some),
            (_, state) => Err(ProtoError::InvalidState { tx: invite, state }),
        }
    }

    fn send_cancel(&mut self, now: Instant, invite: TxId) -> Result<TxId, ProtoError> {
        let tx = self
            .txs
            .get(&invite)
            .ok_or(ProtoError::UnknownTransaction(invite))?;
        let request = tx.request.as_ref().ok_or(ProtoError::InvalidState {
            tx: invite,
            state: tx.state,
        })?;
        let cancel = build_cancel(request)?;
        let peer = tx.peer;
        let id = self.send_request(now, cancel, peer)?;
        // §9.1: no final response within 64*T1 of the CANCEL: the INVITE
        // is treated as cancelled and its transaction destroyed.
        self.clock
            .arm(now, invite, TimerName::Cancelled, now + self.cfg.t1x64());
        Ok(id)
    }

    /// Sends a message outside any transaction: the ACK for a 2xx, or a
    /// statelessly forwarded message.
    pub fn send_stateless(&mut self, msg: &SipMessage, peer: Peer) {
        self.out.transmit(peer, msg.message_bytes(), None);
    }

    /// The transport could not deliver for this transaction (§17.1.4,
    /// §17.2.4): it terminates and the TU hears of it.
    pub fn transport_error(&mut self, _now: Instant, id: TxId) {
        let Some(tx) = self.txs.get(&id) else {
            return;
        };
        self.out.event(Event::TransportError { tx: id });
        // RFC 6026 §7.1: an INVITE server transaction keeps its state on a
        // transport error (a retransmitted INVITE must still match it);
        // its own timers end it.
        if tx.kind != TxKind::ServerInvite {
            self.terminate(id);
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clock.advance(now);
        while let Some((id, timer)) = self.clock.pop_due(now) {
            self.fire(now, id, timer);
        }
    }

    fn retransmit_request(&mut self, id: TxId) {
        if let Some(tx) = self.txs.get(&id) {
            let (peer, bytes) = (tx.peer, tx.request_bytes.clone());
            self.out.transmit(peer, bytes, Some(id));
        }
    }

    fn retransmit_response(&mut self, id: TxId) {
        if let Some(tx) = self.txs.get(&id)
            && let Some(bytes) = tx.last_response.clone()
        {
            let peer = tx.peer;
            self.out.transmit(peer, bytes, Some(id));
        }
    }

    fn fire(&mut self, now: Instant, id: TxId, timer: TimerName) {
        let Some(tx) = self.txs.get_mut(&id) else {
            return;
        };
        let t2 = self.cfg.t2;
        match (tx.kind, tx.state, timer) {
            // Timer A doubles without a cap (§17.1.1.2).
            (TxKind::ClientInvite, TxState::Calling, TimerName::A) => {
                tx.interval *= 2;
                let next = now + tx.interval;
                self.retransmit_request(id);
                self.clock.arm(now, id, TimerName::A, next);
            }
            (
                TxKind::ClientInvite,
                TxState::Calling | TxState::Proceeding,
                TimerName::Cancelled,
            )
            | (TxKind::ClientInvite, TxState::Calling, TimerName::B)
            | (TxKind::ClientNonInvite, TxState::Trying | TxState::Proceeding, TimerName::F)
            | (TxKind::ServerInvite, TxState::Completed, TimerName::H) => {
                self.out.event(Event::Timeout { tx: id, timer });
                self.terminate(id);
            }
            // Timer E doubles up to T2; in Proceeding it is T2 (§17.1.2.2).
            (
                TxKind::ClientNonInvite,
                state @ (TxState::Trying | TxState::Proceeding),
                TimerName::E,
            ) => {
                tx.interval = if state == TxState::Proceeding {
                    t2
                } else {
                    (tx.interval * 2).min(t2)
                };
                let next = now + tx.interval;
                self.retransmit_request(id);
                self.clock.arm(now, id, TimerName::E, next);
            }
            // Timer G doubles up to T2 (§17.2.1); so does the 2xx (§13.3.1.4).
            (TxKind::ServerInvite, TxState::Completed, TimerName::G)
            | (TxKind::ServerInvite, TxState::Accepted, TimerName::Retransmit2xx) => {
                tx.interval = (tx.interval * 2).min(t2);
                let next = now + tx.interval;
                self.retransmit_response(id);
                self.clock.arm(now, id, timer, next);
            }
            (TxKind::ServerInvite, TxState::Proceeding, TimerName::Reliable1xx) => {
                if let Some((bytes, interval, give_up)) = tx.reliable_1xx.take() {
                    if now >= give_up {
                        self.out.event(Event::Timeout { tx: id, timer });
                    } else {
                        let peer = tx.peer;
                        let interval = interval * 2;
                        tx.reliable_1xx = Some((bytes.clone(), interval, give_up));
                        self.out.transmit(peer, bytes, Some(id));
                        // The last wait ends at the give-up time (RFC 3262 §3: 64*T1).
                        self.clock.arm(
                            now,
                            id,
                            TimerName::Reliable1xx,
                            (now + interval).min(give_up),
                        );
                    }
                }
            }
            (TxKind::ServerInvite, TxState::Accepted, TimerName::L) => {
                // The 2xx was never acknowledged (§13.3.1.4).
                if self.clock.is_armed(id, TimerName::Retransmit2xx) {
                    self.out.event(Event::Timeout { tx: id, timer });
                }
                self.terminate(id);
            }
            (TxKind::ServerInvite, TxState::Proceeding, TimerName::Trying)
                if !tx.provisional_sent =>
            {
                // §8.2.6.1: a 100 carries no To tag.
                let trying = tx.request.as_ref().map(|r| {
                    ResponseBuilder::for_request(r, 100, None).and_then(ResponseBuilder::build)
                });
                if let Some(Ok(t)) = trying {
                    let _ = self.respond(now, id, t);
                }
            }
            (TxKind::ClientInvite, TxState::Completed, TimerName::D)
            | (TxKind::ClientInvite, TxState::Accepted, TimerName::M)
            | (TxKind::ClientNonInvite, TxState::Completed, TimerName::K)
            | (TxKind::ServerInvite, TxState::Confirmed, TimerName::I)
            | (TxKind::ServerNonInvite, TxState::Completed, TimerName::J) => {
                self.terminate(id);
            }
            // A timer whose state has passed: nothing to do.
            _ => {}
        }
    }
}

/// Where a server transaction sends its responses (§18.2.2, RFC 3581 §4).
fn response_peer(msg: &SipMessage, source: Peer) -> Peer {
    // The cached top Via, else (a message whose identifiers do not parse,
    // answered 400) the Via parsed on its own.
    match msg.top_via() {
        Some(via) => sip_message::top_via_response_peer(&via, source),
        None => match msg.typed::<Via<'_>>() {
            Some(Ok(via)) => sip_message::response_peer(&via, source),
            _ => source,
        },
    }
}

/// §18.2.1 and RFC 3581: note the source address in the top Via when it
/// differs from sent-by, and fill a bare `rport`.
fn record_source(msg: SipMessage, source: Peer) -> SipMessage {
    let stamp = match msg.top_via() {
        Some(via) => sip_message::top_via_stamp(&via, source),
        None => msg
            .typed::<Via<'_>>()
            .and_then(Result::ok)
            .and_then(|via| sip_message::via_stamp(&via, source)),
    };
    let Some(stamp) = stamp else {
        return msg;
    };
    let mut e = msg.edit();
    if e.via_received(&stamp.received.to_string(), stamp.rport)
        .is_err()
    {
        return msg;
    }
    e.into_message().unwrap_or(msg)
}

fn copy(b: RequestBuilder, req: &SipMessage, name: HeaderName) -> RequestBuilder {
    req.headers_of(name).fold(b, |b, h| {
        b.header(name.as_str(), &String::from_utf8_lossy(h.value_bytes()))
    })
}

/// §17.1.1.3: the ACK for a non-2xx: Request-URI, Call-ID, From, CSeq number
/// and top Via of the INVITE, To of the response, the INVITE's Route set.
fn build_ack(invite: &SipMessage, response: &SipMessage) -> Result<SipMessage, ProtoError> {
    request_for_invite(invite, Method::Ack, response)
}

/// §9.1: the CANCEL: Request-URI, Call-ID, To, From and CSeq number of the
/// INVITE, its top Via only, its Route set.
fn build_cancel(invite: &SipMessage) -> Result<SipMessage, ProtoError> {
    request_for_invite(invite, Method::Cancel, invite)
}

/// A request of the INVITE's transaction (ACK for a non-2xx, CANCEL): the
/// INVITE's Request-URI, top Via, From, Call-ID, CSeq number and Route set,
/// with the To of `to_from` (the response for an ACK, the INVITE itself
/// for a CANCEL).
fn request_for_invite(
    invite: &SipMessage,
    method: Method<'_>,
    to_from: &SipMessage,
) -> Result<SipMessage, ProtoError> {
    let uri = invite.request_uri_str().ok_or(ProtoError::NotARequest)?;
    let (seq, _) = invite.cseq().ok_or(ProtoError::NotARequest)?;
    let via = invite
        .values(HeaderName::Via)
        .next()
        .and_then(Result::ok)
        .unwrap_or("");
    let mut b = RequestBuilder::new(method, uri)?
        .header("Via", via)
        .header("Max-Forwards", "70");
    b = copy(b, invite, HeaderName::From);
    b = copy(b, to_from, HeaderName::To);
    b = copy(b, invite, HeaderName::CallId);
    b = b.header("CSeq", &format!("{seq} {method}"));
    b = copy(b, invite, HeaderName::Route);
    Ok(b.build()?)
}
