//! The edge's UDP sockets: bound and read here rather than in
//! `sip-transport`, so that every datagram is seen before it is parsed. A
//! source over its admission limit then costs one table lookup, not a
//! parse, and a datagram that is not SIP or is too large is counted by
//! reason instead of vanishing in the transport layer.
//!
//! Sending: a datagram leaves from the socket it answers (`local`), else
//! from the first socket of the destination's address family (what
//! `sip-transport` does too).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use sip_message::{Limits, ParseError, Peer, SipMessage, Transport, TransportKind};
use sip_transport::{Incoming, TransportError};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tracing::{debug, trace};

use crate::Shared;
use crate::forward::DropReason;

/// The UDP receive buffer asked for (bursts of calls, and floods that the
/// admission limit is dropping, must not push out everyone else's
/// datagrams); the kernel caps it at `net.core.rmem_max`.
const RECV_BUFFER: usize = 4 << 20;

/// The edge's UDP sockets.
#[derive(Debug)]
pub(crate) struct UdpSockets {
    sockets: Vec<(Peer, Arc<UdpSocket>)>,
    limits: Limits,
}

impl UdpSockets {
    /// Binds one socket per address (port 0: any free port).
    pub(crate) fn bind(addrs: &[SocketAddr], limits: Limits) -> Result<UdpSockets, TransportError> {
        let mut sockets = Vec::with_capacity(addrs.len());
        for &addr in addrs {
            let err = |source| TransportError::Bind {
                transport: TransportKind::Udp,
                addr,
                source,
            };
            let socket = bind_one(addr).map_err(err)?;
            let local = socket.local_addr().map_err(err)?;
            sockets.push((
                Peer {
                    transport: TransportKind::Udp,
                    addr: local,
                },
                Arc::new(socket),
            ));
        }
        Ok(UdpSockets { sockets, limits })
    }

    /// The bound addresses, port 0 resolved.
    pub(crate) fn local_addrs(&self) -> impl Iterator<Item = Peer> + '_ {
        self.sockets.iter().map(|(p, _)| *p)
    }

    /// The sockets, to read.
    pub(crate) fn sockets(&self) -> impl Iterator<Item = (Peer, Arc<UdpSocket>)> + '_ {
        self.sockets.iter().map(|(p, s)| (*p, Arc::clone(s)))
    }

    /// Sends one datagram to `to`, from `local` when it is one of these
    /// sockets, else from the first socket of `to`'s address family.
    pub(crate) async fn send(
        &self,
        local: Option<Peer>,
        to: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), TransportError> {
        let limit = self.limits.max_message_size;
        if bytes.len() > limit as usize {
            return Err(TransportError::MessageTooLarge {
                size: bytes.len(),
                limit,
            });
        }
        let socket = local
            .and_then(|l| self.sockets.iter().find(|(p, _)| *p == l))
            .or_else(|| {
                self.sockets
                    .iter()
                    .find(|(p, _)| p.addr.is_ipv4() == to.is_ipv4())
            })
            .map(|(_, s)| s)
            .ok_or(TransportError::NoSocket {
                transport: TransportKind::Udp,
                addr: to,
            })?;
        socket
            .send_to(bytes, to)
            .await
            .map(drop)
            .map_err(|source| TransportError::Send {
                peer: Peer {
                    transport: TransportKind::Udp,
                    addr: to,
                },
                source,
            })
    }
}

fn bind_one(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    if socket.set_recv_buffer_size(RECV_BUFFER).is_err() {
        debug!(%addr, "could not enlarge the UDP receive buffer");
    }
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Whether a datagram is a keepalive (CRLFs, or nothing): not a message.
fn is_keepalive(data: &[u8]) -> bool {
    data.iter()
        .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
}

/// Reads `socket` until `stop`: each datagram is counted, admitted or
/// throttled by its source, size-checked, parsed and handled.
pub(crate) async fn receive(
    shared: Arc<Shared>,
    socket: Arc<UdpSocket>,
    local: Peer,
    mut stop: watch::Receiver<bool>,
) {
    let limits = shared.udp.limits;
    let max = limits.max_message_size as usize;
    // One byte more than the limit tells an oversized datagram from one
    // that fits.
    let mut buf = vec![0u8; max + 1];
    loop {
        let received = tokio::select! {
            biased;
            _ = stop.changed() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let (len, addr) = match received {
            Ok(r) => r,
            Err(error) => {
                // E.g. an ICMP error reported for an earlier send.
                debug!(socket = %local, %error, "UDP receive error");
                continue;
            }
        };
        let data = buf.get(..len).unwrap_or_default();
        let source = Peer {
            transport: TransportKind::Udp,
            addr,
        };
        if is_keepalive(data) {
            trace!(%source, "keepalive datagram");
            continue;
        }
        crate::metrics::inc(&shared.counters.sip_received);
        if !crate::admit(&shared, source) {
            continue;
        }
        if len > max {
            debug!(%source, limit = max, "datagram over max_message_size dropped");
            shared.counters.count_drop(DropReason::TooLarge);
            continue;
        }
        match SipMessage::parse_with(Bytes::copy_from_slice(data), Transport::Datagram, &limits) {
            Ok(message) => {
                let incoming = Incoming {
                    message,
                    source,
                    local,
                };
                crate::handle(&shared, incoming).await;
            }
            Err(ParseError::TooLarge { .. }) => {
                debug!(%source, limit = max, "datagram over max_message_size dropped");
                shared.counters.count_drop(DropReason::TooLarge);
            }
            Err(error) => {
                // Never answered: without a parsed Via there is no way back.
                debug!(%source, %error, "datagram that is not SIP dropped");
                shared.counters.count_drop(DropReason::Unparsable);
            }
        }
    }
}
