//! A deterministic simulation of `sip-proto` endpoints, in the shape of
//! quinn-proto's `tests/util.rs` (`Pair::step`): a virtual clock, endpoints
//! with a transaction user (TU) each, and a seeded network of in-flight
//! datagrams with per-link loss, delay, jitter (reordering) and black holes.
//!
//! * [`Sim::step`] advances the clock to the earliest of the next delivery,
//!   the next `poll_timeout()` of any endpoint and the next TU action, and
//!   does everything due then; after every call into an endpoint it drains
//!   `poll_output()`, as the crate's contract asks.
//! * Every transmit (time, from, to, bytes, fate), every delivery and every
//!   event is recorded per node, so tests assert exact virtual times.
//! * A node is an [`Endpoint`] driven by a TU closure, or a raw scripted
//!   peer (no endpoint) that only records what reaches it: an RFC 2543 UA,
//!   a sender of broken requests.
//!
//! The clock is read once, in [`Sim::new`]: every instant after that is
//! the start plus virtual time.

// Shared by several test binaries, each of which uses a part of it.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::headers::{CSeq, Contact, To, Via};
use sip_message::{Method, RequestBuilder, ResponseBuilder, SipMessage};
use sip_proto::{Endpoint, Event, Output, Peer, ProtoError, Timers, Transmit, TransportKind, TxId};

// ---- addresses and small helpers -----------------------------------------------------------

/// The UAC's address.
pub const UAC_ADDR: &str = "192.0.2.1:5060";
/// The UAS's address.
pub const UAS_ADDR: &str = "192.0.2.2:5060";
/// A second UAS (forking).
pub const UAS2_ADDR: &str = "192.0.2.3:5060";

/// Parses a socket address literal.
pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// Milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Whole milliseconds of a duration (the simulations run on whole
/// milliseconds unless jitter is on).
pub fn as_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).expect("fits")
}

/// Timers with small custom values, to show T1, T2, T4 and D are honoured.
pub fn custom_timers() -> Timers {
    Timers {
        t1: ms(100),
        t2: ms(400),
        t4: ms(1500),
        d: ms(10_000),
        trying: ms(50),
    }
}

/// The send times (relative, ms) of a retransmitting timer that starts at
/// `t1`, doubles, is capped at `cap` (if any), and stops before `end`: the
/// first send at 0 included.
pub fn backoff_schedule(t1: Duration, cap: Option<Duration>, end: Duration) -> Vec<u64> {
    let mut out = vec![0];
    let mut at = Duration::ZERO;
    let mut interval = t1;
    loop {
        at += interval;
        if at >= end {
            return out;
        }
        out.push(as_ms(at));
        interval *= 2;
        if let Some(c) = cap {
            interval = interval.min(c);
        }
    }
}

/// A SplitMix64 generator: the network's and the TUs' only randomness.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A whole number of milliseconds in `lo..=hi`.
    pub fn ms_between(&mut self, lo: u64, hi: u64) -> Duration {
        ms(lo + self.below(hi - lo + 1))
    }

    /// One of the items.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        let i = usize::try_from(self.below(items.len() as u64)).expect("fits");
        items[i]
    }
}

// ---- records ---------------------------------------------------------------------------------

/// What became of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// On its way; delivered at this instant.
    InFlight(Instant),
    /// Dropped by the link's random loss.
    Lost,
    /// Dropped by a black-holed link.
    BlackHoled,
    /// Dropped by the test's filter.
    Filtered,
}

/// One transmit out of an endpoint (or a raw send).
#[derive(Debug, Clone)]
pub struct Sent {
    /// When.
    pub at: Instant,
    /// From whom.
    pub from: SocketAddr,
    /// To whom.
    pub to: SocketAddr,
    /// Over what.
    pub transport: TransportKind,
    /// The transaction the endpoint named.
    pub tx: Option<TxId>,
    /// The bytes.
    pub bytes: Bytes,
    /// The bytes, parsed.
    pub msg: Option<SipMessage>,
    /// What the network did with it (the fate towards `to`; forked copies
    /// are recorded at the receiver).
    pub fate: Fate,
    /// Position in the simulation's total order of records.
    pub order: u64,
}

/// One datagram that reached a node.
#[derive(Debug, Clone)]
pub struct Received {
    /// When.
    pub at: Instant,
    /// From whom.
    pub from: SocketAddr,
    /// Over what.
    pub transport: TransportKind,
    /// The bytes.
    pub bytes: Bytes,
    /// The bytes, parsed.
    pub msg: Option<SipMessage>,
}

/// One event out of an endpoint.
#[derive(Debug, Clone)]
pub struct EventRecord {
    /// When.
    pub at: Instant,
    /// What.
    pub event: Event,
    /// Position in the simulation's total order of records.
    pub order: u64,
}

/// The transaction an event names, if any.
pub fn event_tx(e: &Event) -> Option<TxId> {
    match e {
        Event::Request { tx, .. }
        | Event::Response { tx, .. }
        | Event::Timeout { tx, .. }
        | Event::TransportError { tx }
        | Event::Terminated { tx } => Some(*tx),
        Event::Cancelled { invite } => Some(*invite),
        Event::Ack { tx, .. } => *tx,
        _ => None,
    }
}

/// The method of a request, or of the CSeq of a response.
pub fn cseq_method(m: &SipMessage) -> Option<String> {
    let c: CSeq<'_> = m.typed()?.ok()?;
    Some(c.method.as_str().to_owned())
}

/// Whether `m` is a request with this method.
pub fn is_request(m: &SipMessage, method: &str) -> bool {
    m.method().is_some_and(|x| x.as_str() == method)
}

/// Whether `m` is a response with this status to a request with this method.
pub fn is_response(m: &SipMessage, code: u16, method: &str) -> bool {
    m.status() == Some(code) && cseq_method(m).as_deref() == Some(method)
}

/// The top Via branch.
pub fn branch(m: &SipMessage) -> Option<String> {
    let v: Via<'_> = m.typed()?.ok()?;
    v.branch().map(str::to_owned)
}

/// The To tag.
pub fn to_tag(m: &SipMessage) -> Option<String> {
    let t: To<'_> = m.typed()?.ok()?;
    t.tag().map(str::to_owned)
}

/// The CSeq number.
pub fn cseq_number(m: &SipMessage) -> Option<u32> {
    let c: CSeq<'_> = m.typed()?.ok()?;
    Some(c.seq)
}

/// The Call-ID.
pub fn call_id(m: &SipMessage) -> Option<String> {
    let c: sip_message::headers::CallId<'_> = m.typed()?.ok()?;
    Some(c.0.to_owned())
}

// ---- the TU's view ---------------------------------------------------------------------------

/// A node's index in the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub usize);

/// The first node added.
pub const UAC: NodeId = NodeId(0);
/// The second node added.
pub const UAS: NodeId = NodeId(1);
/// The third node added.
pub const UAS2: NodeId = NodeId(2);

/// Something a TU does later (`Ctx::after`).
pub type Action = Box<dyn FnOnce(&mut Ctx<'_>)>;

/// A transaction user: reacts to the endpoint's events.
pub type Tu = Box<dyn FnMut(&mut Ctx<'_>, &Event)>;

/// A TU that does nothing.
pub fn silent() -> Tu {
    Box::new(|_, _| {})
}

#[derive(Default)]
struct Agenda {
    seq: u64,
    items: BTreeMap<(Instant, u64), (NodeId, Action)>,
}

/// What a TU (or a test acting as one) sees while it runs: the virtual
/// time, its endpoint, and a way to act later.
pub struct Ctx<'a> {
    /// The virtual time.
    pub now: Instant,
    /// The start of the simulation.
    pub start: Instant,
    /// This node's address.
    pub me: SocketAddr,
    /// This node's endpoint.
    pub ep: &'a mut Endpoint,
    node: NodeId,
    agenda: &'a mut Agenda,
}

impl Ctx<'_> {
    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Runs `f` as this node's TU after `d`.
    pub fn after(&mut self, d: Duration, f: impl FnOnce(&mut Ctx<'_>) + 'static) {
        self.agenda.seq += 1;
        self.agenda
            .items
            .insert((self.now + d, self.agenda.seq), (self.node, Box::new(f)));
    }

    /// `Endpoint::respond` now.
    pub fn respond(&mut self, tx: TxId, response: SipMessage) -> Result<(), ProtoError> {
        self.ep.respond(self.now, tx, response)
    }

    /// `Endpoint::forward_response` now (a proxy relaying a response).
    pub fn forward(&mut self, tx: TxId, response: SipMessage) -> Result<(), ProtoError> {
        self.ep.forward_response(self.now, tx, response)
    }

    /// `Endpoint::send_request` now.
    pub fn send_request(&mut self, request: SipMessage, to: Peer) -> Result<TxId, ProtoError> {
        self.ep.send_request(self.now, request, to)
    }

    /// `Endpoint::cancel` now.
    pub fn cancel(&mut self, invite: TxId) -> Result<Option<TxId>, ProtoError> {
        self.ep.cancel(self.now, invite)
    }

    /// A new request from this node (see [`request`]).
    pub fn request(&mut self, method: Method<'_>, to: SocketAddr, t: TransportKind) -> SipMessage {
        let n = self.ep.ids().next_u64();
        let call = format!("{n:016x}@{}", self.me.ip());
        request(self.ep, method, self.me, to, t, &call, 1)
    }
}

// ---- message builders ------------------------------------------------------------------------

/// A request from `from` to `to`: a fresh RFC 3261 branch from the
/// endpoint's generator, a From tag, a Contact on INVITE.
pub fn request(
    ep: &mut Endpoint,
    method: Method<'_>,
    from: SocketAddr,
    to: SocketAddr,
    transport: TransportKind,
    call_id: &str,
    cseq: u32,
) -> SipMessage {
    let branch = ep.ids().branch();
    let tag = ep.ids().tag();
    let mut b = RequestBuilder::new(method, &format!("sip:bob@{to}"))
        .expect("request line")
        .header(
            "Via",
            &format!("SIP/2.0/{transport} {from};branch={branch}"),
        )
        .header("Max-Forwards", "70")
        .header("From", &format!("<sip:alice@{}>;tag={tag}", from.ip()))
        .header("To", &format!("<sip:bob@{}>", to.ip()))
        .header("Call-ID", call_id)
        .header("CSeq", &format!("{cseq} {method}"));
    if method == Method::Invite {
        b = b.header("Contact", &format!("<sip:alice@{from}>"));
    }
    b.build().expect("request")
}

/// A response to `req` with this To tag; provisional (but 100) and 2xx
/// responses to INVITE carry a Contact at `me` (§12.1.1).
pub fn response(req: &SipMessage, code: u16, tag: &str, me: SocketAddr) -> SipMessage {
    let mut b = ResponseBuilder::for_request(req, code, Some(tag)).expect("response");
    if is_request(req, "INVITE") && code > 100 && code < 300 {
        b = b.header("Contact", &format!("<sip:bob@{me}>"));
    }
    b.build().expect("response")
}

/// The ACK a UAC core sends for a 2xx (§13.2.2.4): a new transaction (new
/// branch), Request-URI the remote target (the 2xx's Contact), From,
/// To (with the tag), Call-ID of the response, CSeq number of the INVITE
/// with method ACK. Returns the ACK and where it goes.
pub fn ack_for_2xx(
    ep: &mut Endpoint,
    resp: &SipMessage,
    me: SocketAddr,
    transport: TransportKind,
) -> (SipMessage, Peer) {
    let contact: Contact<'_> = resp.typed().expect("2xx has a Contact").expect("Contact");
    let target = contact.addr().expect("not *").uri().to_string();
    let host_port = target.split_once('@').map_or(target.as_str(), |(_, h)| h);
    let to_addr: SocketAddr = host_port.parse().expect("Contact is ip:port");
    let header = |name| {
        String::from_utf8_lossy(resp.header(name).expect("header").value_bytes()).into_owned()
    };
    let branch = ep.ids().branch();
    let seq = cseq_number(resp).expect("CSeq");
    let ack = RequestBuilder::new(Method::Ack, &target)
        .expect("request line")
        .header("Via", &format!("SIP/2.0/{transport} {me};branch={branch}"))
        .header("Max-Forwards", "70")
        .header("From", &header(sip_message::HeaderName::From))
        .header("To", &header(sip_message::HeaderName::To))
        .header("Call-ID", &header(sip_message::HeaderName::CallId))
        .header("CSeq", &format!("{seq} ACK"))
        .build()
        .expect("ACK");
    (
        ack,
        Peer {
            transport,
            addr: to_addr,
        },
    )
}

// ---- the network -----------------------------------------------------------------------------

/// One directed link's behaviour.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// Probability of losing a datagram (unreliable transports only).
    pub loss: f64,
    /// One-way delay.
    pub delay: Duration,
    /// Extra delay, uniform in `[0, jitter]`, drawn per datagram
    /// (unreliable transports only): reorders.
    pub jitter: Duration,
    /// Drop everything.
    pub black_hole: bool,
}

impl Default for Link {
    fn default() -> Link {
        Link {
            loss: 0.0,
            delay: ms(10),
            jitter: Duration::ZERO,
            black_hole: false,
        }
    }
}

/// A datagram in flight, as the filter sees it.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Sender.
    pub from: SocketAddr,
    /// Receiver.
    pub to: SocketAddr,
    /// Transport.
    pub transport: TransportKind,
    /// The bytes.
    pub bytes: Bytes,
    /// Parsed.
    pub msg: Option<SipMessage>,
}

/// Decides to drop (true) a datagram at the moment it is sent.
pub type Filter = Box<dyn FnMut(Duration, &Packet) -> bool>;

struct Fork {
    from: SocketAddr,
    to: SocketAddr,
    also: SocketAddr,
    only: Box<dyn Fn(&Packet) -> bool>,
}

// ---- nodes and the simulation ----------------------------------------------------------------

/// One simulated host.
pub struct Node {
    /// A name for traces.
    pub name: String,
    /// Its address.
    pub addr: SocketAddr,
    /// Its endpoint; `None` for a raw scripted peer.
    pub ep: Option<Endpoint>,
    tu: Tu,
    /// Everything it sent.
    pub sent: Vec<Sent>,
    /// Everything that reached it.
    pub received: Vec<Received>,
    /// Every event of its endpoint.
    pub events: Vec<EventRecord>,
    start: Instant,
}

impl Node {
    /// The endpoint.
    pub fn ep(&self) -> &Endpoint {
        self.ep.as_ref().expect("an endpoint node")
    }

    /// Milliseconds since the start.
    pub fn rel(&self, at: Instant) -> u64 {
        as_ms(at - self.start)
    }

    /// Send times (ms) of the messages that satisfy `pred`.
    pub fn sent_ms(&self, pred: impl Fn(&Sent, &SipMessage) -> bool) -> Vec<u64> {
        self.sent
            .iter()
            .filter(|s| s.msg.as_ref().is_some_and(|m| pred(s, m)))
            .map(|s| self.rel(s.at))
            .collect()
    }

    /// Send times (ms) of requests with this method.
    pub fn sent_requests_ms(&self, method: &str) -> Vec<u64> {
        self.sent_ms(|_, m| is_request(m, method))
    }

    /// Send times (ms) of responses with this status to this method.
    pub fn sent_responses_ms(&self, code: u16, method: &str) -> Vec<u64> {
        self.sent_ms(|_, m| is_response(m, code, method))
    }

    /// Receive times (ms) of messages that satisfy `pred`.
    pub fn received_ms(&self, pred: impl Fn(&SipMessage) -> bool) -> Vec<u64> {
        self.received
            .iter()
            .filter(|r| r.msg.as_ref().is_some_and(&pred))
            .map(|r| self.rel(r.at))
            .collect()
    }

    /// The events that satisfy `pred`, with their times (ms).
    pub fn events_ms(&self, pred: impl Fn(&Event) -> bool) -> Vec<(u64, Event)> {
        self.events
            .iter()
            .filter(|e| pred(&e.event))
            .map(|e| (self.rel(e.at), e.event.clone()))
            .collect()
    }

    /// When (ms) the transaction's Terminated event came.
    pub fn terminated_ms(&self, tx: TxId) -> Option<u64> {
        self.events
            .iter()
            .find(|e| e.event == Event::Terminated { tx })
            .map(|e| self.rel(e.at))
    }

    /// The first transaction named by an event satisfying `pred`.
    pub fn first_tx(&self, pred: impl Fn(&Event) -> bool) -> Option<TxId> {
        self.events
            .iter()
            .find(|e| pred(&e.event))
            .and_then(|e| event_tx(&e.event))
    }

    /// The responses the TU heard for a client transaction: (ms, status).
    pub fn responses_heard(&self, tx: TxId) -> Vec<(u64, u16)> {
        self.events
            .iter()
            .filter_map(|e| match &e.event {
                Event::Response {
                    tx: t, response, ..
                } if *t == tx => Some((self.rel(e.at), response.status().unwrap_or(0))),
                _ => None,
            })
            .collect()
    }
}

/// The simulation: nodes, network, virtual clock.
pub struct Sim {
    /// The epoch: the one clock reading of the whole run.
    pub start: Instant,
    /// The virtual time.
    pub now: Instant,
    /// The hosts.
    pub nodes: Vec<Node>,
    /// Links without an entry in `links` behave like this.
    pub default_link: Link,
    links: HashMap<(SocketAddr, SocketAddr), Link>,
    in_flight: BTreeMap<(Instant, u64), Packet>,
    tcp_tail: HashMap<(SocketAddr, SocketAddr), Instant>,
    seq: u64,
    rng: Rng,
    agenda: Agenda,
    forks: Vec<Fork>,
    filter: Option<Filter>,
    order: u64,
}

impl Sim {
    /// A simulation whose network draws from `seed`.
    #[allow(clippy::disallowed_methods)] // The one clock reading: the virtual epoch.
    pub fn new(seed: u64) -> Sim {
        let start = Instant::now();
        Sim {
            start,
            now: start,
            nodes: Vec::new(),
            default_link: Link::default(),
            links: HashMap::new(),
            in_flight: BTreeMap::new(),
            tcp_tail: HashMap::new(),
            seq: 0,
            rng: Rng::new(seed),
            agenda: Agenda::default(),
            forks: Vec::new(),
            filter: None,
            order: 0,
        }
    }

    /// The usual pair: a UAC at 192.0.2.1:5060 and a UAS at 192.0.2.2:5060.
    pub fn pair(timers: Timers, uac: Tu, uas: Tu) -> Sim {
        let mut sim = Sim::new(1);
        sim.add_endpoint("uac", addr(UAC_ADDR), timers, 11, uac);
        sim.add_endpoint("uas", addr(UAS_ADDR), timers, 22, uas);
        sim
    }

    /// Adds an endpoint node.
    pub fn add_endpoint(
        &mut self,
        name: &str,
        at: SocketAddr,
        timers: Timers,
        seed: u64,
        tu: Tu,
    ) -> NodeId {
        self.add(name, at, Some(Endpoint::new(timers, seed)), tu)
    }

    /// Adds an endpoint node built by the caller (relays, index seed).
    pub fn add_built_endpoint(
        &mut self,
        name: &str,
        at: SocketAddr,
        ep: Endpoint,
        tu: Tu,
    ) -> NodeId {
        self.add(name, at, Some(ep), tu)
    }

    /// Adds a raw peer: no endpoint, it only records what reaches it.
    pub fn add_raw(&mut self, name: &str, at: SocketAddr) -> NodeId {
        self.add(name, at, None, silent())
    }

    fn add(&mut self, name: &str, at: SocketAddr, ep: Option<Endpoint>, tu: Tu) -> NodeId {
        self.nodes.push(Node {
            name: name.to_owned(),
            addr: at,
            ep,
            tu,
            sent: Vec::new(),
            received: Vec::new(),
            events: Vec::new(),
            start: self.start,
        });
        NodeId(self.nodes.len() - 1)
    }

    /// A node.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0]
    }

    /// A node's endpoint.
    pub fn ep(&self, id: NodeId) -> &Endpoint {
        self.node(id).ep()
    }

    /// The link from `a` to `b`, to configure.
    pub fn link(&mut self, a: NodeId, b: NodeId) -> &mut Link {
        let key = (self.nodes[a.0].addr, self.nodes[b.0].addr);
        let d = self.default_link;
        self.links.entry(key).or_insert(d)
    }

    /// Configures both directions between `a` and `b`.
    pub fn both_links(&mut self, a: NodeId, b: NodeId, f: impl Fn(&mut Link)) {
        f(self.link(a, b));
        f(self.link(b, a));
    }

    /// Drops every datagram for which `f(time since start, packet)` is true.
    pub fn set_filter(&mut self, f: impl FnMut(Duration, &Packet) -> bool + 'static) {
        self.filter = Some(Box::new(f));
    }

    /// Copies datagrams sent from `from` to `to` that satisfy `only` to
    /// `also` as well (a forking proxy in one line).
    pub fn fork(
        &mut self,
        from: NodeId,
        to: NodeId,
        also: NodeId,
        only: impl Fn(&Packet) -> bool + 'static,
    ) {
        self.forks.push(Fork {
            from: self.nodes[from.0].addr,
            to: self.nodes[to.0].addr,
            also: self.nodes[also.0].addr,
            only: Box::new(only),
        });
    }

    /// The instant `d` after the start.
    pub fn at(&self, d: Duration) -> Instant {
        self.start + d
    }

    /// Virtual milliseconds since the start.
    pub fn now_ms(&self) -> u64 {
        as_ms(self.now - self.start)
    }

    /// Runs `f` as node `id`'s TU now, then drains the endpoint.
    pub fn act<R>(&mut self, id: NodeId, f: impl FnOnce(&mut Ctx<'_>) -> R) -> R {
        let now = self.now;
        let start = self.start;
        let node = &mut self.nodes[id.0];
        let mut cx = Ctx {
            now,
            start,
            me: node.addr,
            ep: node.ep.as_mut().expect("an endpoint node"),
            node: id,
            agenda: &mut self.agenda,
        };
        let r = f(&mut cx);
        self.drain(id);
        r
    }

    /// Sends raw bytes from node `from` (any node; usually a raw peer).
    pub fn send_raw(&mut self, from: NodeId, to: SocketAddr, transport: TransportKind, raw: &str) {
        let bytes = Bytes::copy_from_slice(raw.as_bytes());
        self.transmit(
            from,
            Transmit {
                peer: Peer {
                    transport,
                    addr: to,
                },
                bytes,
                tx: None,
            },
        );
    }

    /// When something next happens.
    pub fn next_time(&self) -> Option<Instant> {
        let timers = self
            .nodes
            .iter()
            .filter_map(|n| n.ep.as_ref().and_then(Endpoint::poll_timeout));
        let packets = self.in_flight.keys().next().map(|(t, _)| *t);
        let actions = self.agenda.items.keys().next().map(|(t, _)| *t);
        timers.chain(packets).chain(actions).min()
    }

    /// Advances to the next instant anything happens and does all that is
    /// due then: timers (node order), deliveries (send order), TU actions.
    /// False when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        let Some(t) = self.next_time() else {
            return false;
        };
        if t > self.now {
            self.now = t;
        }
        let now = self.now;
        let mut rounds = 0u32;
        loop {
            rounds += 1;
            assert!(rounds < 10_000, "livelock at {} ms", self.now_ms());
            let mut progressed = false;
            for i in 0..self.nodes.len() {
                let due = self.nodes[i]
                    .ep
                    .as_ref()
                    .and_then(Endpoint::poll_timeout)
                    .is_some_and(|t| t <= now);
                if due {
                    if let Some(ep) = self.nodes[i].ep.as_mut() {
                        ep.handle_timeout(now);
                    }
                    self.drain(NodeId(i));
                    progressed = true;
                }
            }
            while let Some(entry) = self.in_flight.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let p = entry.remove();
                self.deliver(p);
                progressed = true;
            }
            while let Some(entry) = self.agenda.items.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let (id, action) = entry.remove();
                self.act(id, action);
                progressed = true;
            }
            if !progressed {
                return true;
            }
        }
    }

    /// Steps through everything due up to `t`, then sets the clock to `t`.
    pub fn run_until(&mut self, t: Instant) {
        while self.next_time().is_some_and(|n| n <= t) {
            self.step();
        }
        if t > self.now {
            self.now = t;
        }
    }

    /// Runs until `d` after the start.
    pub fn run_until_ms(&mut self, d: u64) {
        self.run_until(self.start + ms(d));
    }

    /// Runs until nothing is left to happen or `limit` after the start.
    /// True when quiescent.
    pub fn run(&mut self, limit: Duration) -> bool {
        let end = self.start + limit;
        while let Some(n) = self.next_time() {
            if n > end {
                self.now = end;
                return false;
            }
            self.step();
        }
        true
    }

    fn drain(&mut self, id: NodeId) {
        loop {
            let now = self.now;
            let start = self.start;
            let node = &mut self.nodes[id.0];
            let Some(ep) = node.ep.as_mut() else {
                return;
            };
            let Some(out) = ep.poll_output() else {
                return;
            };
            match out {
                Output::Transmit(t) => self.transmit(id, t),
                Output::Event(e) => {
                    self.order += 1;
                    node.events.push(EventRecord {
                        at: now,
                        event: e.clone(),
                        order: self.order,
                    });
                    let mut cx = Ctx {
                        now,
                        start,
                        me: node.addr,
                        ep,
                        node: id,
                        agenda: &mut self.agenda,
                    };
                    (node.tu)(&mut cx, &e);
                }
            }
        }
    }

    fn transmit(&mut self, id: NodeId, t: Transmit) {
        let from = self.nodes[id.0].addr;
        let msg = SipMessage::parse(t.bytes.clone()).ok();
        let packet = Packet {
            from,
            to: t.peer.addr,
            transport: t.peer.transport,
            bytes: t.bytes.clone(),
            msg: msg.clone(),
        };
        let also: Vec<SocketAddr> = self
            .forks
            .iter()
            .filter(|f| f.from == from && f.to == t.peer.addr && (f.only)(&packet))
            .map(|f| f.also)
            .collect();
        let fate = self.launch(packet.clone());
        for a in also {
            let mut copy = packet.clone();
            copy.to = a;
            self.launch(copy);
        }
        self.order += 1;
        self.nodes[id.0].sent.push(Sent {
            order: self.order,
            at: self.now,
            from,
            to: t.peer.addr,
            transport: t.peer.transport,
            tx: t.tx,
            bytes: t.bytes,
            msg,
            fate,
        });
    }

    fn launch(&mut self, p: Packet) -> Fate {
        let link = self
            .links
            .get(&(p.from, p.to))
            .copied()
            .unwrap_or(self.default_link);
        if link.black_hole {
            return Fate::BlackHoled;
        }
        let rel = self.now - self.start;
        if let Some(f) = self.filter.as_mut()
            && f(rel, &p)
        {
            return Fate::Filtered;
        }
        let reliable = p.transport.is_reliable();
        if !reliable && link.loss > 0.0 && self.rng.chance(link.loss) {
            return Fate::Lost;
        }
        let mut at = self.now + link.delay;
        if !reliable && !link.jitter.is_zero() {
            let j = self
                .rng
                .below(u64::try_from(link.jitter.as_micros()).expect("fits") + 1);
            at += Duration::from_micros(j);
        }
        if reliable {
            // A stream delivers in order.
            let tail = self.tcp_tail.entry((p.from, p.to)).or_insert(at);
            at = at.max(*tail);
            *tail = at;
        }
        self.seq += 1;
        self.in_flight.insert((at, self.seq), p);
        Fate::InFlight(at)
    }

    fn deliver(&mut self, p: Packet) {
        let Some(i) = self.nodes.iter().position(|n| n.addr == p.to) else {
            return;
        };
        let now = self.now;
        self.nodes[i].received.push(Received {
            at: now,
            from: p.from,
            transport: p.transport,
            bytes: p.bytes.clone(),
            msg: p.msg.clone(),
        });
        let Some(ep) = self.nodes[i].ep.as_mut() else {
            return;
        };
        // Received bytes are parsed afresh, as a transport would.
        if let Ok(msg) = SipMessage::parse(p.bytes) {
            ep.receive(
                now,
                msg,
                Peer {
                    transport: p.transport,
                    addr: p.from,
                },
            );
            self.drain(NodeId(i));
        }
    }

    /// A readable trace of every send and event, for failure messages.
    pub fn trace(&self) -> String {
        let mut lines: Vec<(u64, Instant, String)> = Vec::new();
        for n in &self.nodes {
            for s in &n.sent {
                let first = s
                    .msg
                    .as_ref()
                    .map_or("<unparsable>".to_owned(), |m| m.start_line_str().to_owned());
                let fate = match s.fate {
                    Fate::InFlight(at) => {
                        format!("arrives {:.3}s", (at - self.start).as_secs_f64())
                    }
                    other => format!("{other:?}"),
                };
                let tx = s.tx.map_or("-".to_owned(), |t| t.to_string());
                lines.push((
                    s.order,
                    s.at,
                    format!("{} -> {} {tx} {first} ({fate})", n.name, s.to),
                ));
            }
            for e in &n.events {
                let what = match &e.event {
                    Event::Request { tx, request, .. } => {
                        format!("Request {tx} {}", request.start_line_str())
                    }
                    Event::Response { tx, response, .. } => {
                        format!("Response {tx} {}", response.start_line_str())
                    }
                    Event::Ack { tx, .. } => format!("Ack {tx:?}"),
                    other => format!("{other:?}"),
                };
                lines.push((e.order, e.at, format!("{}: {what}", n.name)));
            }
        }
        lines.sort_by_key(|(order, _, _)| *order);
        let mut out = String::new();
        for (_, t, l) in lines {
            let _ = writeln!(out, "{:>9.3}s {l}", (t - self.start).as_secs_f64());
        }
        out
    }
}

// ---- ready-made TUs --------------------------------------------------------------------------

/// A UAS TU that answers every request at once with `code` and To tag `tag`.
pub fn answer_with(code: u16, tag: &'static str) -> Tu {
    Box::new(move |cx, e| {
        if let Event::Request { tx, request, .. } = e {
            let r = response(request, code, tag, cx.me);
            cx.respond(*tx, r).expect("respond");
        }
    })
}

/// A proxy-like TU that relays a 2xx (forward, not respond): the hop
/// sends it once and does not wait for the ACK (RFC 6026 §7.1).
pub fn forward_with(code: u16, tag: &'static str) -> Tu {
    Box::new(move |cx, e| {
        if let Event::Request { tx, request, .. } = e {
            let r = response(request, code, tag, cx.me);
            cx.forward(*tx, r).expect("forward");
        }
    })
}

/// A UAS TU that answers every request with `code` after `delay`.
pub fn answer_after(code: u16, tag: &'static str, delay: Duration) -> Tu {
    Box::new(move |cx, e| {
        if let Event::Request { tx, request, .. } = e {
            let (tx, r) = (*tx, response(request, code, tag, cx.me));
            cx.after(delay, move |cx| cx.respond(tx, r).expect("respond"));
        }
    })
}

/// A UAC TU that ACKs every 2xx it hears (transaction or stray), as the UAC
/// core does (§13.2.2.4), over `transport`.
pub fn acking_uac(transport: TransportKind) -> Tu {
    Box::new(move |cx, e| {
        let resp = match e {
            Event::Response { response, .. } | Event::StrayResponse { response, .. } => response,
            _ => return,
        };
        if is_invite_2xx(resp) {
            let me = cx.me;
            let (ack, peer) = ack_for_2xx(cx.ep, resp, me, transport);
            cx.ep.send_stateless(&ack, peer);
        }
    })
}

/// Whether this is a 2xx to INVITE.
pub fn is_invite_2xx(m: &SipMessage) -> bool {
    m.status().is_some_and(|s| (200..300).contains(&s))
        && cseq_method(m).as_deref() == Some("INVITE")
}

/// A peer on `transport` at `a`.
pub fn peer(transport: TransportKind, a: &str) -> Peer {
    Peer {
        transport,
        addr: addr(a),
    }
}
