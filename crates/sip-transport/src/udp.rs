//! UDP: one socket per configured address, one task receiving datagrams
//! into messages (RFC 3261 §18.3: a datagram is one message).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use sip_message::{ParseError, Peer, SipMessage, Transport, TransportKind};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tracing::{debug, trace, warn};

use crate::listener::set_reuse_port;
use crate::transports::{Incoming, Shared, shutdown_signal};

/// The largest UDP payload (IPv4: 65,507 bytes; IPv6 without jumbograms:
/// 65,527), rounded up.
const MAX_DATAGRAM: usize = 65_535;

/// Binds a UDP socket; `SO_REUSEPORT` when asked, so several shards can
/// bind one port and the kernel spreads datagrams over them by flow.
pub(crate) fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    UdpSocket::from_std(bind_std(addr, reuse_port)?)
}

/// Binds a non-blocking UDP socket, not yet attached to a runtime.
pub(crate) fn bind_std(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    set_reuse_port(&socket, reuse_port)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    // Bursts of calls overflow the default receive buffer (a few hundred
    // KiB) before the reader runs; ask for more. The kernel caps it at
    // net.core.rmem_max, and a refusal is not an error.
    if socket.set_recv_buffer_size(RECV_BUFFER).is_err() {
        tracing::debug!(%addr, "could not enlarge the UDP receive buffer");
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The UDP receive buffer asked for.
const RECV_BUFFER: usize = 4 << 20;

/// Receives datagrams until shutdown. Each becomes one message; what does
/// not parse is dropped.
pub(crate) async fn receive(shared: Arc<Shared>, socket: Arc<UdpSocket>, local: Peer) {
    let limits = shared.limits;
    // No datagram is larger than 64 KiB, whatever the configured limit.
    let max = (limits.message.max_message_size as usize).min(MAX_DATAGRAM);
    // One byte more than the limit tells an oversized datagram from one that fits.
    let mut buf = vec![0u8; max + 1];
    let mut shutdown = shared.shutdown_rx();
    loop {
        let received = tokio::select! {
            () = shutdown_signal(&mut shutdown) => break,
            received = socket.recv_from(&mut buf) => received,
        };
        let (len, addr) = match received {
            Ok(received) => received,
            Err(error) => {
                // E.g. an ICMP error reported for an earlier send.
                debug!(socket = %local, %error, "UDP receive error");
                continue;
            }
        };
        let source = Peer {
            transport: TransportKind::Udp,
            addr,
        };
        if len > max {
            warn!(%source, limit = max, "max_message_size exceeded: datagram dropped");
            continue;
        }
        let data = Bytes::copy_from_slice(buf.get(..len).unwrap_or_default());
        if !hand_on(&shared, data, source, local, &mut shutdown).await {
            break;
        }
    }
}

/// Parses one datagram and hands the message to the consumer; what does
/// not parse is logged and dropped. `false`: shutdown began.
async fn hand_on(
    shared: &Shared,
    data: Bytes,
    source: Peer,
    local: Peer,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    match SipMessage::parse_with(data, Transport::Datagram, &shared.limits.message) {
        Ok(message) => {
            let incoming = Incoming {
                message,
                source,
                local,
            };
            shared.deliver(incoming, shutdown).await
        }
        // A CRLF keepalive datagram, or nothing.
        Err(ParseError::Empty) => {
            trace!(%source, "empty datagram");
            true
        }
        Err(error) => {
            debug!(%source, %error, "malformed datagram dropped");
            true
        }
    }
}

/// Receives datagrams from an in-process socket until shutdown, like
/// [`receive`] does from a real one.
pub(crate) async fn receive_memory(
    shared: Arc<Shared>,
    mut socket: crate::MemorySocket,
    local: Peer,
) {
    let limits = shared.limits;
    let max = (limits.message.max_message_size as usize).min(MAX_DATAGRAM);
    let mut shutdown = shared.shutdown_rx();
    loop {
        let received = tokio::select! {
            () = shutdown_signal(&mut shutdown) => break,
            received = socket.recv_from() => received,
        };
        let Some((data, addr)) = received else { break };
        let source = Peer {
            transport: TransportKind::Udp,
            addr,
        };
        if data.len() > max {
            warn!(%source, limit = max, "max_message_size exceeded: datagram dropped");
            continue;
        }
        if !hand_on(&shared, data, source, local, &mut shutdown).await {
            break;
        }
    }
}
