//! Transports and peers: which transport a message travels on and the
//! address at the other end, and symmetric response routing: what a
//! server notes in the top Via of a request it received (RFC 3261 §18.2.1,
//! RFC 3581 §4) and where the response goes (§18.2.2, RFC 3581 §4). Shared
//! by the transport layer, the transaction layer and the edge, which all
//! speak of "where a message goes"; pure functions, no I/O.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::Host;
use crate::headers::Via;

/// A transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// UDP: unreliable, retransmission timers run (§17).
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket.
    Wss,
}

impl TransportKind {
    /// Whether the transport is reliable: no retransmissions, zero wait
    /// timers (§17.1.1.2, §17.1.2.2, §17.2.1, §17.2.2).
    #[must_use]
    pub fn is_reliable(self) -> bool {
        !matches!(self, TransportKind::Udp)
    }

    /// The token used in Via (`UDP`, `TCP`, `TLS`, `WS`, `WSS`).
    #[must_use]
    pub fn via_token(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
            TransportKind::Ws => "WS",
            TransportKind::Wss => "WSS",
        }
    }

    /// Maps a Via transport token (case-insensitive).
    #[must_use]
    pub fn from_via_token(t: &str) -> Option<TransportKind> {
        [
            TransportKind::Udp,
            TransportKind::Tcp,
            TransportKind::Tls,
            TransportKind::Ws,
            TransportKind::Wss,
        ]
        .into_iter()
        .find(|k| k.via_token().eq_ignore_ascii_case(t))
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.via_token())
    }
}

/// The other end of a message: transport and address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The transport.
    pub transport: TransportKind,
    /// The remote socket address.
    pub addr: SocketAddr,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport, self.addr)
    }
}

/// The default SIP port for UDP, TCP and WS (RFC 3261 §19.1.2).
const DEFAULT_PORT: u16 = 5060;

/// The parameters to add to the top Via of a received request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViaStamp {
    /// The `received` parameter: the source IP address of the request.
    pub received: IpAddr,
    /// The value for a bare `rport` parameter: the source port.
    pub rport: Option<u16>,
}

/// What to stamp into the top Via of a request that arrived from `source`,
/// or `None` when nothing is needed.
///
/// * RFC 3261 §18.2.1: `received` when the sent-by host is not the source
///   IP address (a domain name, or another address).
/// * RFC 3581 §4: a bare `rport` gets the source port, and `received` is
///   added even when the address matches.
#[must_use]
pub fn via_stamp(via: &Via<'_>, source: Peer) -> Option<ViaStamp> {
    stamp(via.host(), via.rport(), source)
}

/// [`via_stamp`] from a message's cached top Via.
#[must_use]
pub fn top_via_stamp(via: &crate::TopVia<'_>, source: Peer) -> Option<ViaStamp> {
    let host = Host::parse(via.host).ok()?;
    stamp(host, via.rport, source)
}

fn stamp(host: Host<'_>, rport: Option<Option<u16>>, source: Peer) -> Option<ViaStamp> {
    let ip = source.addr.ip().to_canonical();
    let rport = matches!(rport, Some(None)).then_some(source.addr.port());
    let same_host = match host {
        Host::Ipv4(a) => IpAddr::V4(a) == ip,
        Host::Ipv6(a) => IpAddr::V6(a).to_canonical() == ip,
        Host::Domain(_) => false,
    };
    (!same_host || rport.is_some()).then_some(ViaStamp {
        received: ip,
        rport,
    })
}

/// Where to send a response to a request whose top Via is `via` and which
/// arrived from `source`.
///
/// * Reliable transports (TCP, TLS, WS, WSS), RFC 3261 §18.2.2: back over
///   the connection the request came on, which is `source`. (If it has
///   closed, §18.2.2 says to connect to the `received` address and the
///   sent-by port; that retry is the caller's.)
/// * UDP with `rport`, RFC 3581 §4: the source address and port, sent
///   from the socket the request arrived on.
/// * UDP otherwise, §18.2.2: the `received` address (which the server
///   transport sets to the source address whenever the sent-by host
///   differs) and the sent-by port, 5060 if none.
///
/// `maddr` (multicast responses) is not supported: the response goes to
/// the unicast source.
///
#[must_use]
pub fn response_peer(via: &Via<'_>, source: Peer) -> Peer {
    response_to(via.rport(), via.port(), source)
}

/// [`response_peer`] from a message's cached top Via.
#[must_use]
pub fn top_via_response_peer(via: &crate::TopVia<'_>, source: Peer) -> Peer {
    response_to(via.rport, via.port, source)
}

fn response_to(rport: Option<Option<u16>>, port: Option<u16>, source: Peer) -> Peer {
    if source.transport != TransportKind::Udp || rport.is_some() {
        return source;
    }
    let mut addr = source.addr;
    addr.set_port(port.unwrap_or(DEFAULT_PORT));
    Peer {
        transport: TransportKind::Udp,
        addr,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::SipMessage;

    fn via_of(value: &str) -> SipMessage {
        let raw = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: {value}\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        SipMessage::parse(raw.into()).unwrap()
    }

    fn peer(transport: TransportKind, addr: &str) -> Peer {
        Peer {
            transport,
            addr: addr.parse().unwrap(),
        }
    }

    #[test]
    fn stamp_follows_18_2_1_and_3581() {
        let src = peer(TransportKind::Udp, "192.0.2.1:40000");
        let m = via_of("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1");
        let via: Via<'_> = m.typed().unwrap().unwrap();
        assert_eq!(via_stamp(&via, src), None, "same address: nothing to add");

        let m = via_of("SIP/2.0/UDP pc.example.com;branch=z9hG4bK1");
        let via: Via<'_> = m.typed().unwrap().unwrap();
        let stamp = via_stamp(&via, src).unwrap();
        assert_eq!(stamp.received.to_string(), "192.0.2.1");
        assert_eq!(stamp.rport, None);

        let m = via_of("SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK1");
        let via: Via<'_> = m.typed().unwrap().unwrap();
        let stamp = via_stamp(&via, src).unwrap();
        assert_eq!(stamp.rport, Some(40000), "RFC 3581 §4: received added too");

        let v6 = peer(TransportKind::Udp, "[2001:db8::1]:5062");
        let m = via_of("SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bK1");
        let via: Via<'_> = m.typed().unwrap().unwrap();
        assert_eq!(via_stamp(&via, v6), None);
    }

    #[test]
    fn response_goes_where_the_rfcs_say() {
        let src = peer(TransportKind::Udp, "192.0.2.1:40000");
        let m = via_of("SIP/2.0/UDP pc.example.com:5070;branch=z9hG4bK1");
        let via: Via<'_> = m.typed().unwrap().unwrap();
        assert_eq!(
            response_peer(&via, src),
            peer(TransportKind::Udp, "192.0.2.1:5070")
        );

        let m = via_of("SIP/2.0/UDP pc.example.com;branch=z9hG4bK1");
        let via: Via<'_> = m.typed().unwrap().unwrap();
        assert_eq!(
            response_peer(&via, src),
            peer(TransportKind::Udp, "192.0.2.1:5060")
        );

        let m = via_of("SIP/2.0/UDP pc.example.com:5070;rport;branch=z9hG4bK1");
        let via: Via<'_> = m.typed().unwrap().unwrap();
        assert_eq!(response_peer(&via, src), src, "RFC 3581: source port");

        let tcp = peer(TransportKind::Tcp, "192.0.2.1:50000");
        let m = via_of("SIP/2.0/TCP pc.example.com:5060;branch=z9hG4bK1");
        let via: Via<'_> = m.typed().unwrap().unwrap();
        assert_eq!(response_peer(&via, tcp), tcp, "§18.2.2: same connection");
    }
}
