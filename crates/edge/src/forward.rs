//! The forwarding decision for one SIP message, sans-IO: what to send where,
//! with which bytes (RFC 3261 §16.11 stateless proxying, CLUSTER.md).
//!
//! [`Forwarder::decide`] reads a parsed message, the address it came from and
//! the current cluster view, and returns a [`Decision`]: send these bytes to
//! this peer, resolve a name first, answer statelessly, report a probe
//! response, or drop. It does no I/O, reads no clock (time is an argument)
//! and keeps no state between messages: any edge decides the same way.
//!
//! * Requests from outside go to a container: by the affinity token (`sbt`
//!   of the top Route, else of the Request-URI), else by rendezvous of the
//!   affinity key over the containers that take new sessions.
//! * Requests from a container (source = its `sip` address) go to the
//!   outside: by the top Route, else the Request-URI; a target that is the
//!   cluster's public address goes back in.
//! * Every forwarded request gets the edge's Via
//!   (`SIP/2.0/<T> PUBLIC;branch=z9hG4bK-sb<hash>;rport`), the branch derived
//!   from the incoming top Via only, so a retransmission through another
//!   edge carries the same Via. The incoming top Via gets `received`/`rport`
//!   (§18.2.1, RFC 3581).
//! * Responses lose the edge's Via and go to the next Via (§16.11, §18.2.2).
//! * Edits are splices: bytes the edge does not change pass verbatim.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use balance::{ClusterView, Member, Signal, State};
use bytes::Bytes;
use sip_message::headers::{From as FromHeader, RetryAfter, Route, To, Via};
use sip_message::{
    EditError, Host, Method, Peer, ResponseBuilder, Role, SipMessage, SipUri, TopVia,
    TransportKind, Uri, top_via_response_peer, top_via_stamp, validate,
};
use xxhash_rust::xxh3::Xxh3Default;

use crate::config::{AffinityKey, EdgeConfig};
use crate::container::Container;
use crate::metrics::inc;

/// The prefix of every branch the edge writes (after the magic cookie).
pub const BRANCH_PREFIX: &str = "z9hG4bK-sb";
/// The prefix of the branches of the edge's OPTIONS probes.
pub const PROBE_BRANCH_PREFIX: &str = "z9hG4bK-sbprobe.";
/// The Via parameter naming the stream connection a request came on, so the
/// response goes back over it (the edge keeps no state).
const CONNECTION_PARAM: &str = "sbc";

/// What to do with one message.
#[derive(Debug)]
pub enum Action {
    /// Send `bytes` to `to`.
    Send {
        /// The next hop.
        to: Peer,
        /// The edited message.
        bytes: Bytes,
        /// The container it goes to, if it goes to one (for passive health:
        /// a failed send marks it).
        container: Option<Arc<Container>>,
    },
    /// Resolve `host` (a name), then send `bytes` to it.
    Resolve {
        /// The name.
        host: String,
        /// The port.
        port: u16,
        /// The transport.
        transport: TransportKind,
        /// The edited message.
        bytes: Bytes,
    },
    /// Answer the request statelessly: send `bytes` back to `to` (from the
    /// socket the request came on).
    Reply {
        /// Where the response goes (§18.2.2, RFC 3581).
        to: Peer,
        /// The status code.
        status: u16,
        /// The response.
        bytes: Bytes,
    },
    /// A response to one of the edge's OPTIONS probes.
    ProbeResponse {
        /// The probe's branch.
        branch: String,
        /// The status code.
        status: u16,
        /// Its Retry-After, in seconds.
        retry_after: Option<u32>,
    },
    /// Nothing to send.
    Drop(DropReason),
}

/// Why a message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// A response whose top Via is not the edge's (§18.1.2: discard).
    NotOurVia,
    /// A response with no Via below the edge's.
    NoNextVia,
    /// The next Via or target cannot be turned into an address.
    Unroutable,
    /// A faulty ACK or an ACK that cannot be routed: never answered (§17).
    Ack,
    /// A message too broken to answer (no usable Via, From, To, ...).
    Malformed,
    /// A datagram that is not a SIP message (random bytes, a truncated
    /// message, a broken start line or header). Decided before parsing
    /// completes, so never answered.
    Unparsable,
    /// A datagram over `[limits] max_message_size`.
    TooLarge,
}

impl DropReason {
    /// Every reason, in the order of [`DropReason::index`].
    pub const ALL: [DropReason; 7] = [
        DropReason::NotOurVia,
        DropReason::NoNextVia,
        DropReason::Unroutable,
        DropReason::Ack,
        DropReason::Malformed,
        DropReason::Unparsable,
        DropReason::TooLarge,
    ];

    /// The `reason` label of `sb_edge_sip_dropped_total`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            DropReason::NotOurVia => "not_our_via",
            DropReason::NoNextVia => "no_next_via",
            DropReason::Unroutable => "unroutable",
            DropReason::Ack => "ack",
            DropReason::Malformed => "malformed",
            DropReason::Unparsable => "unparsable",
            DropReason::TooLarge => "too_large",
        }
    }

    /// The position of this reason in [`DropReason::ALL`].
    #[must_use]
    pub fn index(self) -> usize {
        match self {
            DropReason::NotOurVia => 0,
            DropReason::NoNextVia => 1,
            DropReason::Unroutable => 2,
            DropReason::Ack => 3,
            DropReason::Malformed => 4,
            DropReason::Unparsable => 5,
            DropReason::TooLarge => 6,
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::NotOurVia => "response whose top Via is not ours",
            DropReason::NoNextVia => "response with no Via below ours",
            DropReason::Unroutable => "no address for the next hop",
            DropReason::Ack => "ACK not forwardable (never answered)",
            DropReason::Malformed => "message too malformed to answer",
            DropReason::Unparsable => "not a SIP message",
            DropReason::TooLarge => "message over max_message_size",
        })
    }
}

/// The decision for one message: the action, and a passive health signal
/// for a container when the message says something about it.
#[derive(Debug)]
pub struct Decision {
    /// What to send.
    pub action: Action,
    /// A health signal for a container (a 503 with Retry-After, or a
    /// response from a container marked down).
    pub health: Option<(Arc<Container>, Signal)>,
}

impl From<Action> for Decision {
    fn from(action: Action) -> Decision {
        Decision {
            action,
            health: None,
        }
    }
}

/// The stateless forwarding logic of one edge.
#[derive(Debug, Clone)]
pub struct Forwarder {
    public: String,
    public_host: String,
    public_port: Option<u16>,
    affinity_key: AffinityKey,
}

/// Where a request goes.
enum Target<'m> {
    /// To a container (from outside, or a container addressing the cluster).
    Inward,
    /// To an address outside.
    Addr(Peer),
    /// To a name outside.
    Name(&'m str, u16, TransportKind),
}

impl Forwarder {
    /// The forwarder for an edge configured by `config`.
    #[must_use]
    pub fn new(config: &EdgeConfig) -> Forwarder {
        Forwarder::with(&config.public, config.affinity_key.clone())
    }

    /// A forwarder for the public address `public` (`host:port`) hashing
    /// initial requests on `affinity_key`.
    #[must_use]
    pub fn with(public: &str, affinity_key: AffinityKey) -> Forwarder {
        let (host, port) = split_host_port(public);
        Forwarder {
            public: public.to_owned(),
            public_host: host.to_ascii_lowercase(),
            public_port: port,
            affinity_key,
        }
    }

    /// The public address (`host:port`), the sent-by of the edge's Vias.
    #[must_use]
    pub fn public(&self) -> &str {
        &self.public
    }

    /// Decides what to do with `msg`, received from `source`, given the
    /// cluster `view` at time `now`. Counts into the containers' counters.
    #[must_use]
    pub fn decide(
        &self,
        msg: &SipMessage,
        source: Peer,
        view: &ClusterView<Container>,
        now: Instant,
    ) -> Decision {
        let inside = (source.transport == TransportKind::Udp)
            .then(|| {
                view.members()
                    .iter()
                    .find(|m| m.data.config.sip == source.addr)
            })
            .flatten();
        if msg.is_request() {
            self.request(msg, source, inside, view, now)
        } else {
            self.response(msg, inside, view)
        }
    }

    // ---- requests ---------------------------------------------------------

    fn request(
        &self,
        msg: &SipMessage,
        source: Peer,
        inside: Option<&Member<Container>>,
        view: &ClusterView<Container>,
        now: Instant,
    ) -> Decision {
        let is_ack = matches!(msg.method(), Some(Method::Ack));
        if let Err(e) = validate(msg, Role::Forward) {
            return self.reply(msg, source, e.status(), &e.reason_phrase(), is_ack);
        }
        let Some(top) = msg.top_via() else {
            return self.reply(msg, source, 400, "Bad Via header", is_ack);
        };
        let branch = derive_branch(msg, &top);
        // §16.3 step 4: a request carrying our own Via with the branch we
        // would add has been here before.
        let looped = msg
            .headers_of(sip_message::HeaderName::Via)
            .any(|h| memchr::memmem::find(h.value_bytes(), branch.as_bytes()).is_some());
        if looped {
            return self.reply(msg, source, 482, "Loop Detected", is_ack);
        }
        let mut edit = msg.edit();
        // §16.6 step 3; §16.3 step 3: 483 at zero.
        match edit.decrement_max_forwards() {
            Ok(_) => {}
            Err(EditError::TooManyHops) => {
                return self.reply(msg, source, 483, "Too Many Hops", is_ack);
            }
            Err(_) => return self.reply(msg, source, 400, "Bad Max-Forwards header", is_ack),
        }
        let target = match inside {
            None => Target::Inward,
            Some(_) => match self.outside_target(msg) {
                Some(t) => t,
                None => return self.reply(msg, source, 400, "Bad Route or Request-URI", is_ack),
            },
        };
        // §18.2.1, RFC 3581 §4: note where the request came from.
        if let Some(stamp) = top_via_stamp(&top, source)
            && edit
                .via_received(&stamp.received.to_string(), stamp.rport)
                .is_err()
        {
            return self.reply(msg, source, 400, "Bad Via header", is_ack);
        }
        let mut via = String::with_capacity(96);
        let transport = match &target {
            Target::Inward => TransportKind::Udp,
            Target::Addr(p) => p.transport,
            Target::Name(_, _, t) => *t,
        };
        via.push_str("SIP/2.0/");
        via.push_str(transport.via_token());
        via.push(' ');
        via.push_str(&self.public);
        via.push_str(";branch=");
        via.push_str(&branch);
        via.push_str(";rport");
        if source.transport.is_reliable() {
            // The response must return over this connection (§18.2.2).
            via.push(';');
            via.push_str(CONNECTION_PARAM);
            via.push('=');
            encode_peer(&mut via, source);
        }
        if edit.prepend_via(&via).is_err() {
            return Action::Drop(DropReason::Malformed).into();
        }
        if transport.is_reliable() {
            // §18.3: a stream needs Content-Length.
            edit.ensure_content_length();
        }
        match target {
            Target::Inward => {
                let picked = match token_of(msg) {
                    Some(token) => {
                        let node = token.split_once('.').map_or(token, |(n, _)| n);
                        view.pick_owned(node, token.as_bytes(), now)
                    }
                    // A CANCEL or a non-2xx ACK continues an INVITE that
                    // may have reached a container since drained.
                    None if matches!(msg.method().map(|m| m.as_str()), Some("CANCEL" | "ACK")) => {
                        view.pick_continuing(self.key_of(msg), now)
                            .map(|m| (m, false))
                    }
                    None => view.pick_new(self.key_of(msg), now).map(|m| (m, false)),
                };
                let Some((member, failover)) = picked else {
                    return self.reply(msg, source, 503, "No Container Available", is_ack);
                };
                let counters = &member.data.counters;
                inc(&counters.sip_in);
                if failover {
                    inc(&counters.failovers);
                }
                Action::Send {
                    to: Peer {
                        transport: TransportKind::Udp,
                        addr: member.data.config.sip,
                    },
                    bytes: edit.to_bytes(),
                    container: Some(Arc::clone(&member.data)),
                }
                .into()
            }
            Target::Addr(to) => {
                if let Some(m) = inside {
                    inc(&m.data.counters.sip_out);
                }
                Action::Send {
                    to,
                    bytes: edit.to_bytes(),
                    container: None,
                }
                .into()
            }
            Target::Name(host, port, transport) => {
                if let Some(m) = inside {
                    inc(&m.data.counters.sip_out);
                }
                Action::Resolve {
                    host: host.to_owned(),
                    port,
                    transport,
                    bytes: edit.to_bytes(),
                }
                .into()
            }
        }
    }

    /// The next hop of a request from a container: the top Route (loose
    /// routing, §16.12), else the Request-URI (§16.6 step 7). `None` when
    /// neither is a usable SIP URI.
    fn outside_target<'m>(&self, msg: &'m SipMessage) -> Option<Target<'m>> {
        let route = match msg.typed::<Route<'m>>() {
            Some(Ok(r)) => Some(r),
            Some(Err(_)) => return None,
            None => None,
        };
        let uri: Uri<'m> = match route {
            Some(r) => *r.uri(),
            None => msg.request_uri()?,
        };
        let sip = uri.as_sip()?;
        if self.is_public(sip) {
            return Some(Target::Inward);
        }
        Some(uri_target(sip))
    }

    fn is_public(&self, uri: &SipUri<'_>) -> bool {
        uri.host_str().eq_ignore_ascii_case(&self.public_host)
            && uri.port().or(Some(5060)) == self.public_port.or(Some(5060))
    }

    /// The affinity key of an initial request.
    fn key_of<'m>(&self, msg: &'m SipMessage) -> &'m [u8] {
        let call_id = msg.call_id().unwrap_or("").as_bytes();
        let user = |uri: &Uri<'m>| -> Option<&'m str> {
            match uri {
                Uri::Sip(s) => s.user(),
                Uri::Tel(t) => Some(t.number()),
                _ => None,
            }
        };
        let key = match &self.affinity_key {
            AffinityKey::CallId => None,
            AffinityKey::ToUser => match msg.typed::<To<'m>>() {
                Some(Ok(to)) => user(to.uri()),
                _ => None,
            },
            AffinityKey::FromUser => match msg.typed::<FromHeader<'m>>() {
                Some(Ok(from)) => user(from.uri()),
                _ => None,
            },
            AffinityKey::Header(name) => msg
                .headers()
                .find(|h| h.wire_name().eq_ignore_ascii_case(name.as_bytes()))
                .and_then(|h| h.value().ok())
                .map(str::trim),
        };
        key.map_or(call_id, str::as_bytes)
    }

    /// A stateless answer to a request, or a drop for an ACK (§17: an ACK is
    /// never answered).
    fn reply(
        &self,
        msg: &SipMessage,
        source: Peer,
        status: u16,
        reason: &str,
        is_ack: bool,
    ) -> Decision {
        if is_ack {
            return Action::Drop(DropReason::Ack).into();
        }
        // §18.2.2: the answer goes where the top Via says; without a usable
        // one there is nowhere to send it. (Read on its own: the cached
        // identifiers are missing when Call-ID, CSeq, From or To is bad.)
        let Some(Ok(via)) = msg.typed::<Via<'_>>() else {
            return Action::Drop(DropReason::Malformed).into();
        };
        let top = TopVia {
            transport: via.transport(),
            host: via.host_str(),
            port: via.port(),
            rport: via.rport(),
            branch: via.branch(),
        };
        // A To tag that is the same for every retransmission (§16.11 keeps
        // no state; the tag comes from the request).
        let mut h = Xxh3Default::new();
        h.update(msg.call_id().unwrap_or("").as_bytes());
        h.update(msg.top_branch().unwrap_or("").as_bytes());
        let tag = format!("sb{:016x}", h.digest());
        let built = ResponseBuilder::with_reason(msg, status, reason, Some(&tag))
            .and_then(ResponseBuilder::build);
        let Ok(response) = built else {
            return Action::Drop(DropReason::Malformed).into();
        };
        let to = top_via_response_peer(&top, source);
        Action::Reply {
            to,
            status,
            bytes: response.message_bytes(),
        }
        .into()
    }

    // ---- responses --------------------------------------------------------

    fn response(
        &self,
        msg: &SipMessage,
        inside: Option<&Member<Container>>,
        view: &ClusterView<Container>,
    ) -> Decision {
        let mut vias = msg.typed_all::<Via<'_>>();
        let Some(Ok(top)) = vias.next() else {
            return Action::Drop(DropReason::Malformed).into();
        };
        let ours = top.host_str().eq_ignore_ascii_case(&self.public_host)
            && top.port() == self.public_port
            && top.branch().is_some_and(|b| b.starts_with(BRANCH_PREFIX));
        if !ours {
            return Action::Drop(DropReason::NotOurVia).into();
        }
        let status = msg.status().unwrap_or(0);
        let retry_after = match msg.typed::<RetryAfter<'_>>() {
            Some(Ok(r)) => Some(r.delta),
            _ => None,
        };
        if let Some(branch) = top.branch().filter(|b| b.starts_with(PROBE_BRANCH_PREFIX)) {
            return Action::ProbeResponse {
                branch: branch.to_owned(),
                status,
                retry_after,
            }
            .into();
        }
        let mut health = None;
        if let Some(m) = inside {
            inc(&m.data.counters.sip_out);
            inc(&m.data.counters.responses);
            if let (503, Some(secs)) = (status, retry_after) {
                inc(&m.data.counters.overloads);
                let signal = Signal::Overloaded {
                    retry_after: Duration::from_secs(u64::from(secs)),
                };
                health = Some((Arc::clone(&m.data), signal));
            } else if m.state == State::Down {
                health = Some((Arc::clone(&m.data), Signal::ResponseSeen));
            }
        }
        let Some(Ok(next)) = vias.next() else {
            return Decision {
                action: Action::Drop(DropReason::NoNextVia),
                health,
            };
        };
        let dest = match top
            .params()
            .get(CONNECTION_PARAM)
            .flatten()
            .and_then(decode_peer)
        {
            Some(p) => Target::Addr(p),
            None => match via_target(&next) {
                Some(t) => t,
                None => {
                    return Decision {
                        action: Action::Drop(DropReason::Unroutable),
                        health,
                    };
                }
            },
        };
        let mut edit = msg.edit();
        if edit.pop_via().is_err() {
            return Decision {
                action: Action::Drop(DropReason::Malformed),
                health,
            };
        }
        let action = match dest {
            Target::Addr(to) => {
                if to.transport.is_reliable() {
                    edit.ensure_content_length();
                }
                let container = view
                    .members()
                    .iter()
                    .find(|m| to.transport == TransportKind::Udp && m.data.config.sip == to.addr)
                    .map(|m| {
                        inc(&m.data.counters.sip_in);
                        Arc::clone(&m.data)
                    });
                Action::Send {
                    to,
                    bytes: edit.to_bytes(),
                    container,
                }
            }
            Target::Name(host, port, transport) => {
                if transport.is_reliable() {
                    edit.ensure_content_length();
                }
                Action::Resolve {
                    host: host.to_owned(),
                    port,
                    transport,
                    bytes: edit.to_bytes(),
                }
            }
            Target::Inward => Action::Drop(DropReason::Unroutable),
        };
        Decision { action, health }
    }
}

/// The affinity token of a request: the `sbt` parameter of the top Route
/// URI, else of the Request-URI (CLUSTER.md).
#[must_use]
pub fn token_of(msg: &SipMessage) -> Option<&str> {
    if let Some(Ok(route)) = msg.typed::<Route<'_>>()
        && let Some(sip) = route.uri().as_sip()
        && let Some(Some(t)) = sip.params().get("sbt")
        && !t.is_empty()
    {
        return Some(t);
    }
    let uri = msg.request_uri()?;
    let t = uri.as_sip()?.params().get("sbt")??;
    (!t.is_empty()).then_some(t)
}

/// The edge's branch for a request whose top Via is `top`: derived only
/// from that Via's branch and sent-by (CLUSTER.md; §16.11), so the CANCEL
/// and a non-2xx ACK get their INVITE's branch and a retransmission gets
/// the same branch on every edge. An RFC 2543 Via (no magic cookie) is
/// hashed with the §16.11 fallback inputs: the whole top Via, Call-ID,
/// CSeq number, From tag, To tag and Request-URI.
#[must_use]
pub fn derive_branch(msg: &SipMessage, top: &TopVia<'_>) -> String {
    let mut h = Xxh3Default::new();
    match top.branch {
        Some(b) if b.starts_with("z9hG4bK") => {
            h.update(b.as_bytes());
            h.update(b"\n");
            h.update(top.host.to_ascii_lowercase().as_bytes());
            h.update(b":");
            h.update(&top.port.unwrap_or(0).to_be_bytes());
        }
        _ => {
            if let Some(v) = msg.header(sip_message::HeaderName::Via) {
                h.update(v.value_bytes());
            }
            h.update(b"\n");
            h.update(msg.call_id().unwrap_or("").as_bytes());
            h.update(&msg.cseq().map_or(0, |(n, _)| n).to_be_bytes());
            h.update(msg.from_tag().unwrap_or("").as_bytes());
            h.update(b"\n");
            h.update(msg.to_tag().unwrap_or("").as_bytes());
            h.update(b"\n");
            h.update(msg.request_uri_str().unwrap_or("").as_bytes());
        }
    }
    format!("{BRANCH_PREFIX}{:032x}", h.digest128())
}

fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        // [v6]:port
        if let Some((host, tail)) = rest.split_once(']') {
            let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
            return (s.get(..host.len() + 2).unwrap_or(s), port);
        }
        return (s, None);
    }
    match s.rsplit_once(':') {
        Some((h, p)) => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (s, None),
        },
        None => (s, None),
    }
}

fn default_port(t: TransportKind) -> u16 {
    match t {
        TransportKind::Tls | TransportKind::Wss => 5061,
        _ => 5060,
    }
}

/// Where a request to `uri` goes: host, port and `transport` parameter
/// (§19.1.2, no RFC 3263 SRV).
fn uri_target<'m>(uri: &SipUri<'m>) -> Target<'m> {
    let transport = match uri.transport() {
        Some(t) => TransportKind::from_via_token(t).unwrap_or(TransportKind::Udp),
        None if uri.is_secure() => TransportKind::Tls,
        None => TransportKind::Udp,
    };
    let port = uri.port().unwrap_or_else(|| default_port(transport));
    match uri.host() {
        Host::Ipv4(a) => Target::Addr(Peer {
            transport,
            addr: SocketAddr::new(IpAddr::V4(a), port),
        }),
        Host::Ipv6(a) => Target::Addr(Peer {
            transport,
            addr: SocketAddr::new(IpAddr::V6(a), port),
        }),
        Host::Domain(name) => Target::Name(name, port, transport),
    }
}

/// Where a response goes by its Via (§18.2.2, RFC 3581 §4): `received`
/// (else the sent-by host), `rport` (else the sent-by port).
fn via_target<'m>(via: &Via<'m>) -> Option<Target<'m>> {
    let transport = TransportKind::from_via_token(via.transport())?;
    let port = match via.rport() {
        Some(Some(p)) => p,
        _ => via.port().unwrap_or_else(|| default_port(transport)),
    };
    let ip = match via.received() {
        Some(ip) => ip,
        None => match via.host() {
            Host::Ipv4(a) => IpAddr::V4(a),
            Host::Ipv6(a) => IpAddr::V6(a),
            Host::Domain(name) => return Some(Target::Name(name, port, transport)),
        },
    };
    Some(Target::Addr(Peer {
        transport,
        addr: SocketAddr::new(ip, port),
    }))
}

/// Writes a stream peer as a Via parameter token: a transport letter, the
/// IP address bytes and the port in hex.
fn encode_peer(out: &mut String, peer: Peer) {
    use std::fmt::Write as _;
    out.push(match peer.transport {
        TransportKind::Udp => 'u',
        TransportKind::Tcp => 't',
        TransportKind::Tls => 's',
        TransportKind::Ws => 'w',
        TransportKind::Wss => 'x',
    });
    match peer.addr.ip() {
        IpAddr::V4(a) => a.octets().iter().for_each(|b| {
            let _ = write!(out, "{b:02x}");
        }),
        IpAddr::V6(a) => a.octets().iter().for_each(|b| {
            let _ = write!(out, "{b:02x}");
        }),
    }
    let _ = write!(out, "{:04x}", peer.addr.port());
}

fn decode_peer(s: &str) -> Option<Peer> {
    let transport = match s.as_bytes().first()? {
        b'u' => TransportKind::Udp,
        b't' => TransportKind::Tcp,
        b's' => TransportKind::Tls,
        b'w' => TransportKind::Ws,
        b'x' => TransportKind::Wss,
        _ => return None,
    };
    let hex = s.get(1..)?;
    let byte = |i: usize| u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok();
    let (ip, port_at) = match hex.len() {
        12 => {
            let mut o = [0u8; 4];
            for (i, b) in o.iter_mut().enumerate() {
                *b = byte(i)?;
            }
            (IpAddr::from(o), 8)
        }
        36 => {
            let mut o = [0u8; 16];
            for (i, b) in o.iter_mut().enumerate() {
                *b = byte(i)?;
            }
            (IpAddr::from(o), 32)
        }
        _ => return None,
    };
    let port = u16::from_str_radix(hex.get(port_at..)?, 16).ok()?;
    Some(Peer {
        transport,
        addr: SocketAddr::new(ip, port),
    })
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;
    use crate::config::ContainerConfig;
    use balance::{Backend, Cluster, HealthPolicy};

    const PUBLIC: &str = "192.0.2.10:5060";

    fn cluster() -> Cluster<Container> {
        let c = Cluster::new(HealthPolicy {
            rise: 1,
            fall: 1,
            start_up: true,
        });
        for (i, node) in ["c1", "c2", "c3"].iter().enumerate() {
            let sip: SocketAddr = format!("10.0.0.{}:5080", i + 1).parse().unwrap();
            c.add(
                Backend::new(*node, 1),
                Container {
                    config: ContainerConfig {
                        node: (*node).to_owned(),
                        sip,
                        http: None,
                        weight: 1,
                    },
                    counters: Arc::default(),
                    origin: crate::Origin::Config,
                },
            )
            .unwrap();
        }
        c
    }

    fn outside() -> Peer {
        Peer {
            transport: TransportKind::Udp,
            addr: "203.0.113.5:40000".parse().unwrap(),
        }
    }

    fn invite(extra: &str, mf: u8) -> SipMessage {
        SipMessage::parse(Bytes::from(format!(
            "INVITE sip:bob@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKabc;rport\r\n\
             {extra}Max-Forwards: {mf}\r\n\
             To: <sip:bob@example.com>\r\n\
             From: <sip:alice@example.com>;tag=f1\r\n\
             Call-ID: call-1@example.com\r\n\
             CSeq: 1 INVITE\r\n\
             Content-Length: 0\r\n\r\n"
        )))
        .unwrap()
    }

    fn sent(d: Decision) -> (Peer, String) {
        match d.action {
            Action::Send { to, bytes, .. } => (to, String::from_utf8(bytes.to_vec()).unwrap()),
            other => panic!("expected Send, got {other:?}"),
        }
    }

    #[test]
    fn initial_request_gets_via_stamp_and_hop() {
        let c = cluster();
        let f = Forwarder::with(PUBLIC, AffinityKey::CallId);
        let now = Instant::now();
        let (to, text) = sent(f.decide(&invite("", 70), outside(), &c.view(), now));
        let want = c
            .view()
            .pick_new(b"call-1@example.com", now)
            .unwrap()
            .data
            .config
            .sip;
        assert_eq!(to.addr, want);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("INVITE sip:bob@example.com SIP/2.0"));
        let via = lines.next().unwrap();
        assert!(
            via.starts_with("Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-sb"),
            "{via}"
        );
        assert!(via.ends_with(";rport"), "{via}");
        assert_eq!(
            lines.next(),
            Some(
                "Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKabc;rport=40000;received=203.0.113.5"
            )
        );
        assert!(text.contains("Max-Forwards: 69\r\n"));
    }

    #[test]
    fn cancel_and_retransmission_get_the_same_branch() {
        let m1 = invite("", 70);
        let m2 = invite("", 70);
        let cancel = SipMessage::parse(Bytes::from(
            String::from_utf8(m1.as_bytes().to_vec())
                .unwrap()
                .replace("INVITE sip", "CANCEL sip")
                .replace("1 INVITE", "1 CANCEL"),
        ))
        .unwrap();
        let b = |m: &SipMessage| derive_branch(m, &m.top_via().unwrap());
        assert_eq!(b(&m1), b(&m2));
        assert_eq!(b(&m1), b(&cancel));
        let other = SipMessage::parse(Bytes::from(
            String::from_utf8(m1.as_bytes().to_vec())
                .unwrap()
                .replace("z9hG4bKabc", "z9hG4bKabd"),
        ))
        .unwrap();
        assert_ne!(b(&m1), b(&other));
    }

    #[test]
    fn token_routes_to_its_node_and_fails_over_by_rendezvous() {
        let c = cluster();
        let f = Forwarder::with(PUBLIC, AffinityKey::CallId);
        let now = Instant::now();
        let route = "Route: <sip:192.0.2.10:5060;lr;sbt=c2.00000000000000aa>\r\n";
        let (to, text) = sent(f.decide(&invite(route, 70), outside(), &c.view(), now));
        assert_eq!(to.addr, "10.0.0.2:5080".parse().unwrap());
        // The Route stays (the container pops its own).
        assert!(text.contains(route));
        c.record("c2", Signal::ProbeFailed, now);
        let (to, _) = sent(f.decide(&invite(route, 70), outside(), &c.view(), now));
        let want = c
            .view()
            .order(b"c2.00000000000000aa")
            .into_iter()
            .find(|m| m.backend.id != "c2")
            .unwrap()
            .data
            .config
            .sip;
        assert_eq!(to.addr, want);
        assert_eq!(
            c.view()
                .members()
                .iter()
                .map(|m| m
                    .data
                    .counters
                    .failovers
                    .load(std::sync::atomic::Ordering::Relaxed))
                .sum::<u64>(),
            1
        );
    }

    #[test]
    fn max_forwards_zero_is_483_and_ack_is_dropped() {
        let c = cluster();
        let f = Forwarder::with(PUBLIC, AffinityKey::CallId);
        let d = f.decide(&invite("", 0), outside(), &c.view(), Instant::now());
        match d.action {
            Action::Reply { status, to, bytes } => {
                assert_eq!(status, 483);
                assert_eq!(to, outside());
                assert!(bytes.starts_with(b"SIP/2.0 483 Too Many Hops\r\n"));
            }
            other => panic!("{other:?}"),
        }
        let ack = SipMessage::parse(Bytes::from(
            String::from_utf8(invite("", 0).as_bytes().to_vec())
                .unwrap()
                .replace("INVITE sip", "ACK sip")
                .replace("1 INVITE", "1 ACK"),
        ))
        .unwrap();
        let d = f.decide(&ack, outside(), &c.view(), Instant::now());
        assert!(matches!(d.action, Action::Drop(DropReason::Ack)));
    }

    #[test]
    fn own_branch_in_the_via_stack_is_a_loop() {
        let c = cluster();
        let f = Forwarder::with(PUBLIC, AffinityKey::CallId);
        let first = invite("", 70);
        let (_, text) = sent(f.decide(&first, outside(), &c.view(), Instant::now()));
        // The container sends it back to the edge unchanged but for its own
        // Via on top with the original top Via again (a routing loop).
        let looped = text.replacen(
            "Via: ",
            "Via: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKabc;rport\r\nVia: ",
            1,
        );
        let msg = SipMessage::parse(Bytes::from(looped)).unwrap();
        let d = f.decide(&msg, outside(), &c.view(), Instant::now());
        assert!(
            matches!(d.action, Action::Reply { status: 482, .. }),
            "{d:?}"
        );
    }

    #[test]
    fn bad_request_gets_400_naming_the_fault() {
        let c = cluster();
        let f = Forwarder::with(PUBLIC, AffinityKey::CallId);
        let text = String::from_utf8(invite("", 70).as_bytes().to_vec())
            .unwrap()
            .replace("Call-ID: call-1@example.com\r\n", "");
        let msg = SipMessage::parse(Bytes::from(text)).unwrap();
        match f.decide(&msg, outside(), &c.view(), Instant::now()).action {
            Action::Reply { status, bytes, .. } => {
                assert_eq!(status, 400);
                let line = String::from_utf8_lossy(&bytes)
                    .lines()
                    .next()
                    .unwrap()
                    .to_owned();
                assert_eq!(line, "SIP/2.0 400 Missing Call-ID header");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn response_pops_our_via_and_follows_the_next() {
        let c = cluster();
        let f = Forwarder::with(PUBLIC, AffinityKey::CallId);
        let (_, fwd) = sent(f.decide(&invite("", 70), outside(), &c.view(), Instant::now()));
        let req = SipMessage::parse(Bytes::from(fwd)).unwrap();
        let resp = ResponseBuilder::for_request(&req, 503, Some("t1"))
            .unwrap()
            .header("Retry-After", "30")
            .build()
            .unwrap();
        let from = Peer {
            transport: TransportKind::Udp,
            addr: "10.0.0.1:5080".parse().unwrap(),
        };
        let d = f.decide(&resp, from, &c.view(), Instant::now());
        let (node, signal) = d
            .health
            .as_ref()
            .map(|(c, s)| (c.config.node.clone(), *s))
            .unwrap();
        assert_eq!(node, "c1");
        assert_eq!(
            signal,
            Signal::Overloaded {
                retry_after: Duration::from_secs(30)
            }
        );
        let (to, text) = sent(d);
        assert_eq!(to, outside());
        assert!(text.starts_with("SIP/2.0 503 Service Unavailable\r\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKabc;rport=40000"), "{text}");
        // Not our Via: dropped.
        let d = f.decide(
            &SipMessage::parse(Bytes::from(text)).unwrap(),
            from,
            &c.view(),
            Instant::now(),
        );
        assert!(matches!(d.action, Action::Drop(DropReason::NotOurVia)));
    }

    #[test]
    fn stream_source_comes_back_over_its_connection() {
        let c = cluster();
        let f = Forwarder::with(PUBLIC, AffinityKey::CallId);
        let tcp = Peer {
            transport: TransportKind::Tcp,
            addr: "[2001:db8::5]:41000".parse().unwrap(),
        };
        let (_, fwd) = sent(f.decide(&invite("", 70), tcp, &c.view(), Instant::now()));
        let req = SipMessage::parse(Bytes::from(fwd)).unwrap();
        let resp = ResponseBuilder::for_request(&req, 200, Some("t1"))
            .unwrap()
            .build()
            .unwrap();
        let from = Peer {
            transport: TransportKind::Udp,
            addr: "10.0.0.3:5080".parse().unwrap(),
        };
        let (to, _) = sent(f.decide(&resp, from, &c.view(), Instant::now()));
        assert_eq!(to, tcp);
    }

    #[test]
    fn request_from_a_container_follows_its_route_outside() {
        let c = cluster();
        let f = Forwarder::with(PUBLIC, AffinityKey::CallId);
        let msg = SipMessage::parse(Bytes::from_static(
            b"BYE sip:alice@198.51.100.7:5062;transport=tcp SIP/2.0\r\n\
              Via: SIP/2.0/UDP 10.0.0.1:5080;branch=z9hG4bKc1x\r\n\
              Max-Forwards: 70\r\n\
              To: <sip:alice@example.com>;tag=a\r\n\
              From: <sip:bob@example.com>;tag=b\r\n\
              Call-ID: x@y\r\n\
              CSeq: 2 BYE\r\n\r\n",
        ))
        .unwrap();
        let from = Peer {
            transport: TransportKind::Udp,
            addr: "10.0.0.1:5080".parse().unwrap(),
        };
        let (to, text) = sent(f.decide(&msg, from, &c.view(), Instant::now()));
        assert_eq!(to.transport, TransportKind::Tcp);
        assert_eq!(to.addr, "198.51.100.7:5062".parse().unwrap());
        assert!(text.contains("Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK-sb"));
        assert!(text.contains("Content-Length: 0\r\n"));
        // A Route naming a host goes to resolution.
        let routed = String::from_utf8(msg.as_bytes().to_vec()).unwrap().replace(
            "Max-Forwards",
            "Route: <sip:proxy.example.net;lr>\r\nMax-Forwards",
        );
        let d = f.decide(
            &SipMessage::parse(Bytes::from(routed)).unwrap(),
            from,
            &c.view(),
            Instant::now(),
        );
        match d.action {
            Action::Resolve {
                host,
                port,
                transport,
                ..
            } => {
                assert_eq!(
                    (host.as_str(), port, transport),
                    ("proxy.example.net", 5060, TransportKind::Udp)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn peer_encoding_round_trips() {
        for a in ["127.0.0.1:5060", "[::1]:65535", "[2001:db8::1]:1"] {
            for t in [TransportKind::Tcp, TransportKind::Wss] {
                let p = Peer {
                    transport: t,
                    addr: a.parse().unwrap(),
                };
                let mut s = String::new();
                encode_peer(&mut s, p);
                assert_eq!(decode_peer(&s), Some(p));
            }
        }
        assert_eq!(decode_peer("t12"), None);
        assert_eq!(decode_peer(""), None);
        assert_eq!(decode_peer("qzz"), None);
    }

    #[test]
    fn affinity_keys_pick_their_field() {
        let f = Forwarder::with(PUBLIC, AffinityKey::ToUser);
        assert_eq!(f.key_of(&invite("", 70)), b"bob");
        let f = Forwarder::with(PUBLIC, AffinityKey::FromUser);
        assert_eq!(f.key_of(&invite("", 70)), b"alice");
        let f = Forwarder::with(PUBLIC, AffinityKey::Header("X-Key".into()));
        assert_eq!(f.key_of(&invite("X-Key: abc\r\n", 70)), b"abc");
        assert_eq!(f.key_of(&invite("", 70)), b"call-1@example.com");
    }
}
