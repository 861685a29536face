//! Where messages go: our own Record-Route and Contact (with the affinity
//! token of docs/CLUSTER.md), the next hop of a request (§16.6 step 7,
//! §8.1.2), and the next hop of a response (§18.2.2, RFC 3581).

use std::net::{IpAddr, SocketAddr};

use sip_message::headers::{Route, Via};
use sip_message::{Host, Peer, SipMessage, SipUri, TransportKind, Uri};

use crate::engine::Shared;
use crate::{AppError, SessionId};

/// The URI parameter that carries the affinity token.
pub const TOKEN_PARAM: &str = "sbt";

/// FNV-1a, 64 bits: a stable hash (the same in every process) for
/// choosing an edge and for the loop-detection suffix of our branches.
pub(crate) fn fnv1a(s: &str) -> u64 {
    fnv1a_update(FNV1A_START, s.as_bytes())
}

/// FNV-1a's offset basis: the hash of nothing.
pub(crate) const FNV1A_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Continues an FNV-1a hash over `bytes` (several fields hashed as one).
pub(crate) fn fnv1a_update(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The user part of a SIP Request-URI.
pub(crate) fn uri_user(uri: &str) -> Option<&str> {
    match Uri::parse(uri).ok()? {
        Uri::Sip(s) => s.user(),
        _ => None,
    }
}

/// The affinity token of a SIP URI (`;sbt=`), when well formed.
pub(crate) fn uri_token(uri: &SipUri<'_>) -> Option<SessionId> {
    uri.params()
        .get(TOKEN_PARAM)
        .flatten()
        .and_then(SessionId::parse)
}

/// The token in a request's Request-URI.
pub(crate) fn request_uri_token(msg: &SipMessage) -> Option<SessionId> {
    // Most Request-URIs carry no token: look for its name before parsing
    // (parameter names match without regard to case, §19.1.4).
    let needle = TOKEN_PARAM.as_bytes();
    if !msg
        .request_uri_str()?
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
    {
        return None;
    }
    match msg.request_uri()? {
        Uri::Sip(s) => uri_token(&s),
        _ => None,
    }
}

/// Whether the top Route names us (§16.4): `Some(token)` when it does
/// (the token when it carries one), `None` when it is someone else's or
/// absent.
pub(crate) fn own_route(shared: &Shared, msg: &SipMessage) -> Option<Option<SessionId>> {
    let uri = top_route_uri(msg)?;
    if let Some(token) = uri_token(&uri) {
        return Some(Some(token));
    }
    shared.is_own(uri.host_str(), uri.port()).then_some(None)
}

/// The SIP URI of the top Route. A Route value is `<uri>` and its
/// parameters (§20.34, §25.1 `route-param`): the URI between the brackets
/// is parsed alone rather than the whole name-addr, which would also
/// check the display name and parameters. The stack validated every Route
/// of a received request in full already, so this is the URI the typed
/// parser gives; a value of another shape (a display name) is parsed in
/// full.
fn top_route_uri(msg: &SipMessage) -> Option<SipUri<'_>> {
    let value = msg.header(sip_message::HeaderName::Route)?.value().ok()?;
    let bracketed = value.strip_prefix('<').and_then(|rest| {
        let end = rest.bytes().position(|b| b == b'>')?;
        rest.get(..end)
    });
    let uri = match bracketed {
        Some(text) => Uri::parse(text).ok()?,
        None => *msg.typed::<Route<'_>>()?.ok()?.uri(),
    };
    match uri {
        Uri::Sip(u) => Some(u),
        _ => None,
    }
}

/// `sip:[user@]PUBLIC;sbt=ID[;transport=tcp]`: where the peer reaches this
/// session again.
pub(crate) fn contact_uri(
    shared: &Shared,
    id: &SessionId,
    user: Option<&str>,
    source: Peer,
) -> String {
    let mut s = String::from("sip:");
    if let Some(u) = user {
        s.push_str(u);
        s.push('@');
    }
    s.push_str(shared.public_host_port());
    s.push_str(";sbt=");
    s.push_str(id.as_str());
    push_transport(&mut s, source.transport);
    s
}

/// `<sip:PUBLIC;lr;sbt=ID>`: the Record-Route value of a proxy.
pub(crate) fn record_route(shared: &Shared, id: &SessionId, inbound: TransportKind) -> String {
    let mut s = String::with_capacity(64);
    s.push_str("<sip:");
    s.push_str(shared.public_host_port());
    s.push_str(";lr;sbt=");
    s.push_str(id.as_str());
    push_transport(&mut s, inbound);
    s.push('>');
    s
}

fn push_transport(s: &mut String, t: TransportKind) {
    match t {
        TransportKind::Tcp => s.push_str(";transport=tcp"),
        TransportKind::Tls => s.push_str(";transport=tls"),
        TransportKind::Ws | TransportKind::Wss => s.push_str(";transport=ws"),
        _ => {}
    }
}

/// The transport a client used: the transport of the Via below the
/// cluster's edge Via, when an edge forwarded the request, else the
/// packet's.
pub(crate) fn inbound_transport(msg: &SipMessage, packet: TransportKind) -> TransportKind {
    // Most requests come straight from their client: the top branch (read
    // with the identifiers) says so without parsing any Via in full.
    if !msg
        .top_branch()
        .is_some_and(|b| b.starts_with("z9hG4bK-sb"))
    {
        return packet;
    }
    // The Vias in order: a malformed one is not skipped (the next would
    // be the wrong hop's), it leaves the packet's transport.
    let mut vias = msg.typed_all::<Via<'_>>();
    let Some(Ok(top)) = vias.next() else {
        return packet;
    };
    if !top.branch().is_some_and(|b| b.starts_with("z9hG4bK-sb")) {
        return packet;
    }
    match vias.next() {
        Some(Ok(client)) => TransportKind::from_via_token(client.transport()).unwrap_or(packet),
        _ => packet,
    }
}

/// A Via for a request we send: `SIP/2.0/T local;branch=..;rport`.
pub(crate) fn via(shared: &Shared, transport: TransportKind, branch: &str) -> String {
    const PARAMS: usize = ";branch=".len() + ";rport".len();
    let mut v;
    if let Some(sent_by) = shared.via_sent_by(transport) {
        v = String::with_capacity(sent_by.len() + branch.len() + PARAMS);
        v.push_str(sent_by);
    } else {
        let addr = shared
            .local(transport)
            .or_else(|| shared.local(TransportKind::Udp))
            .map_or_else(|| "invalid.invalid".to_owned(), |a| a.to_string());
        v = format!("SIP/2.0/{} {addr}", transport.via_token());
        v.reserve(branch.len() + PARAMS);
    }
    v.push_str(";branch=");
    v.push_str(branch);
    v.push_str(";rport");
    v
}

/// The next hop of a request: an edge when the container has any (the
/// edge forwards by Route / Request-URI, docs/CLUSTER.md), else the top
/// Route (loose routing, §16.6 step 7), else the Request-URI.
///
/// Read from the request as received, before the proxy's edits:
/// `pop_own` skips the top Route (ours, which the edits pop), and
/// `request_uri` is the Request-URI the edits set, when they set one.
pub(crate) async fn next_hop(
    shared: &Shared,
    msg: &SipMessage,
    pop_own: bool,
    request_uri: Option<&str>,
) -> Result<Peer, AppError> {
    next_hop_now(shared, msg, pop_own, request_uri)?
        .resolve()
        .await
}

/// [`next_hop`] up to the name lookup: [`Hop::Ready`] when the hop's
/// host is an address.
pub(crate) fn next_hop_now<'m>(
    shared: &Shared,
    msg: &'m SipMessage,
    pop_own: bool,
    request_uri: Option<&'m str>,
) -> Result<Hop<'m>, AppError> {
    if let Some(edge) = shared.pick_edge(msg.call_id().unwrap_or("")) {
        return Ok(Hop::Ready(Peer {
            transport: TransportKind::Udp,
            addr: edge,
        }));
    }
    let route = if pop_own {
        msg.typed_nth::<Route<'_>>(1)
    } else {
        msg.typed::<Route<'_>>()
    };
    match route {
        Some(Ok(route)) => hop_of_uri(route.uri().as_str()),
        _ => hop_of_uri(request_uri.or_else(|| msg.request_uri_str()).unwrap_or("")),
    }
}

/// A URI's next hop before any name lookup.
pub(crate) enum Hop<'a> {
    /// The host is an address.
    Ready(Peer),
    /// The host (or maddr) is a name to resolve.
    Lookup {
        /// The URI, for the error when the name does not resolve.
        uri: &'a str,
        transport: TransportKind,
        name: &'a str,
        port: u16,
    },
}

impl Hop<'_> {
    /// The peer, looking the name up first when there is one.
    pub(crate) async fn resolve(self) -> Result<Peer, AppError> {
        match self {
            Hop::Ready(peer) => Ok(peer),
            Hop::Lookup {
                uri,
                transport,
                name,
                port,
            } => match resolve_host(Host::Domain(name), port).await {
                Some(addr) => Ok(Peer { transport, addr }),
                None => Err(AppError::Target {
                    target: uri.to_owned(),
                    reason: "cannot resolve the host".to_owned(),
                }),
            },
        }
    }
}

/// Where a SIP URI points: its host (an IP address, or a name resolved
/// with the system resolver; no NAPTR/SRV), its port (5060, 5061 for
/// `sips`/TLS), its transport parameter (§19.1.2, RFC 3263 §4 simplified:
/// no SRV lookup).
pub(crate) async fn peer_of_uri(uri: &str) -> Result<Peer, AppError> {
    hop_of_uri(uri)?.resolve().await
}

/// [`peer_of_uri`] up to the name lookup.
fn hop_of_uri(uri: &str) -> Result<Hop<'_>, AppError> {
    let bad = |reason: &str| AppError::Target {
        target: uri.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = Uri::parse(uri).map_err(|_| bad("not a URI"))?;
    let Uri::Sip(sip) = parsed else {
        return Err(bad("not a sip or sips URI"));
    };
    // Transport values compare without regard to case (§19.1.1).
    let is = |t: &str, name: &str| t.eq_ignore_ascii_case(name);
    let transport = match sip.transport() {
        None if sip.is_secure() => TransportKind::Tls,
        None => TransportKind::Udp,
        Some(t) if is(t, "udp") => TransportKind::Udp,
        Some(t) if is(t, "tcp") && sip.is_secure() => TransportKind::Tls,
        Some(t) if is(t, "tcp") => TransportKind::Tcp,
        Some(t) if is(t, "tls") => TransportKind::Tls,
        Some(t) if is(t, "ws") && sip.is_secure() => TransportKind::Wss,
        Some(t) if is(t, "ws") => TransportKind::Ws,
        Some(t) if is(t, "wss") => TransportKind::Wss,
        Some(_) => return Err(bad("unsupported transport")),
    };
    let port = sip.port().unwrap_or(if transport == TransportKind::Tls {
        5061
    } else {
        5060
    });
    // The URI's host is parsed already; a maddr is parsed here.
    let host = match sip.maddr() {
        Some(maddr) => Host::parse(maddr).map_err(|_| bad("cannot resolve the host"))?,
        None => sip.host(),
    };
    let ip = match host {
        Host::Ipv4(a) => IpAddr::V4(a),
        Host::Ipv6(a) => IpAddr::V6(a),
        Host::Domain(name) => {
            return Ok(Hop::Lookup {
                uri,
                transport,
                name,
                port,
            });
        }
    };
    Ok(Hop::Ready(Peer {
        transport,
        addr: SocketAddr::new(ip, port),
    }))
}

async fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    resolve_host(Host::parse(host).ok()?, port).await
}

async fn resolve_host(host: Host<'_>, port: u16) -> Option<SocketAddr> {
    match host {
        Host::Ipv4(a) => Some(SocketAddr::new(IpAddr::V4(a), port)),
        Host::Ipv6(a) => Some(SocketAddr::new(IpAddr::V6(a), port)),
        Host::Domain(d) => tokio::net::lookup_host((d, port)).await.ok()?.next(),
    }
}

/// Where a response goes once our Via is popped: the new top Via's
/// `received`/`rport` or sent-by (§18.2.2, RFC 3581 §4).
pub(crate) async fn response_hop(msg: &SipMessage) -> Option<Peer> {
    let via = msg.typed::<Via<'_>>()?.ok()?;
    let transport = TransportKind::from_via_token(via.transport())?;
    let rport = via
        .params()
        .get("rport")
        .flatten()
        .and_then(|p| p.parse::<u16>().ok());
    let port = rport.or(via.port()).unwrap_or(5060);
    let addr = match via.received() {
        Some(ip) => SocketAddr::new(ip, port),
        None => resolve(via.host_str(), port).await?,
    };
    Some(Peer { transport, addr })
}

/// Whether a response's top Via is one of ours (sent-by = a local
/// address).
pub(crate) fn top_via_is_ours(shared: &Shared, msg: &SipMessage) -> bool {
    msg.top_via().is_some_and(|v| shared.is_own(v.host, v.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_transport_behind_an_edge() {
        let msg = |vias: &str| {
            let s = format!(
                "INVITE sip:b@x SIP/2.0\r\n{vias}From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\n\
                 Call-ID: c\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            );
            SipMessage::parse(bytes::Bytes::from(s)).unwrap()
        };
        let edge = "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-sb1;rport\r\n";
        let udp = TransportKind::Udp;
        // Straight from the client: the packet's transport.
        let direct = msg("Via: SIP/2.0/TCP 10.0.0.9;branch=z9hG4bK2\r\n");
        assert_eq!(inbound_transport(&direct, udp), udp);
        // Behind an edge: the client's Via, the one below the edge's.
        let behind = msg(&format!(
            "{edge}Via: SIP/2.0/TCP 10.0.0.9;branch=z9hG4bK2\r\n"
        ));
        assert_eq!(inbound_transport(&behind, udp), TransportKind::Tcp);
        // A malformed client Via is not skipped for the one below it.
        let malformed = msg(&format!(
            "{edge}Via: SIP/2.0/TCP ;;;\r\nVia: SIP/2.0/TLS 10.0.0.8;branch=z9hG4bK3\r\n"
        ));
        assert_eq!(inbound_transport(&malformed, udp), udp);
    }

    #[tokio::test]
    async fn uri_next_hops() {
        let p = peer_of_uri("sip:bob@127.0.0.1:5070").await.unwrap();
        assert_eq!(p.addr, "127.0.0.1:5070".parse().unwrap());
        assert_eq!(p.transport, TransportKind::Udp);
        let p = peer_of_uri("sip:bob@127.0.0.1;transport=TCP")
            .await
            .unwrap();
        assert_eq!((p.transport, p.addr.port()), (TransportKind::Tcp, 5060));
        let p = peer_of_uri("sips:bob@[::1]").await.unwrap();
        assert_eq!((p.transport, p.addr.port()), (TransportKind::Tls, 5061));
        assert!(peer_of_uri("tel:+1234").await.is_err());
        assert!(
            peer_of_uri("sip:bob@127.0.0.1;transport=sctp")
                .await
                .is_err()
        );
        // A name is looked up (the system resolver: `localhost` works
        // without a network); a maddr overrides the host.
        let p = peer_of_uri("sip:bob@localhost:5071").await.unwrap();
        assert!(p.addr.ip().is_loopback() && p.addr.port() == 5071);
        let p = peer_of_uri("sip:bob@localhost;maddr=10.0.0.7")
            .await
            .unwrap();
        assert_eq!(p.addr, "10.0.0.7:5060".parse().unwrap());
    }

    #[test]
    fn addresses_are_hops_at_once_and_names_wait_for_a_lookup() {
        let ready = |uri: &str| match hop_of_uri(uri) {
            Ok(Hop::Ready(p)) => Some(p),
            _ => None,
        };
        assert_eq!(
            ready("sip:bob@10.0.0.1:5070;transport=tcp"),
            Some(Peer {
                transport: TransportKind::Tcp,
                addr: "10.0.0.1:5070".parse().unwrap()
            })
        );
        assert_eq!(
            ready("sip:bob@example.com;maddr=10.0.0.2").map(|p| p.addr),
            Some("10.0.0.2:5060".parse().unwrap())
        );
        assert!(matches!(
            hop_of_uri("sips:bob@example.com"),
            Ok(Hop::Lookup {
                transport: TransportKind::Tls,
                name: "example.com",
                port: 5061,
                ..
            })
        ));
        assert!(hop_of_uri("sip:bob@10.0.0.1;maddr=not..a..host").is_err());
        assert!(hop_of_uri("mailto:bob@example.com").is_err());
    }

    #[test]
    fn tokens_in_uris() {
        let Ok(Uri::Sip(u)) = Uri::parse("sip:1.2.3.4;lr;sbt=c1.00000000000000ff") else {
            panic!()
        };
        assert_eq!(uri_token(&u).unwrap().node(), "c1");
        let Ok(Uri::Sip(u)) = Uri::parse("sip:1.2.3.4;lr;sbt=../etc") else {
            panic!()
        };
        assert_eq!(uri_token(&u), None);
    }
}
