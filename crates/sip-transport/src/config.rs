//! What to bind and the limits every connection lives under.

use std::net::SocketAddr;
use std::time::Duration;

use sip_message::Limits;

use crate::tls::{TlsClient, TlsServer};

/// The addresses to bind and the limits to enforce. Port 0 binds an
/// ephemeral port; [`Transports::local_addrs`](crate::Transports::local_addrs)
/// tells which.
#[derive(Debug, Clone, Default)]
pub struct TransportConfig {
    /// UDP sockets.
    pub udp: Vec<SocketAddr>,
    /// TCP listeners.
    pub tcp: Vec<SocketAddr>,
    /// TLS listeners, each with its certificate.
    pub tls: Vec<(SocketAddr, TlsServer)>,
    /// WebSocket listeners (RFC 7118, `ws://`).
    pub ws: Vec<SocketAddr>,
    /// Secure WebSocket listeners (`wss://`), each with its certificate.
    pub wss: Vec<(SocketAddr, TlsServer)>,
    /// Limits on messages and connections.
    pub limits: TransportLimits,
    /// How to verify servers when connecting out over TLS or WSS; without
    /// it, sending to a `Tls` or `Wss` peer fails with
    /// [`TransportError::NoTlsClient`](crate::TransportError::NoTlsClient).
    pub tls_client: Option<TlsClient>,
    /// Set `SO_REUSEPORT` on UDP sockets and listeners (Unix), so several
    /// sockets, of this process or of others, can bind the same port and
    /// the kernel spreads traffic over them. Default: off. The stack's
    /// shards share their UDP port among themselves whatever this says
    /// ([`bind_shard_sockets`](crate::bind_shard_sockets)); with it off, a
    /// port another process holds is refused rather than shared.
    pub reuse_port: bool,
    /// Bind the `udp` addresses on this in-process network instead of on
    /// sockets (tests without sockets, on a virtual clock; see
    /// [`MemoryNetwork`](crate::MemoryNetwork)). Stream listeners are still
    /// real.
    pub memory: Option<crate::MemoryNetwork>,
}

/// Limits on messages and connections. Each limit, when a peer hits it,
/// logs one `warn` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportLimits {
    /// Message size and header count, enforced when reading (UDP datagrams,
    /// stream framing, WebSocket messages) and, for the size, when sending.
    pub message: Limits,
    /// Connections open at once, over all stream transports, inbound and
    /// outbound together. An inbound connection over the limit is closed at
    /// once; an outbound one fails with
    /// [`TransportError::TooManyConnections`](crate::TransportError::TooManyConnections).
    pub max_connections: usize,
    /// A connection that neither received nor sent a message (or a
    /// keepalive received) for this long is closed.
    pub idle_timeout: Duration,
    /// On connections this side opened, send a keepalive this often:
    /// a CRLFCRLF ping on TCP and TLS (RFC 5626 §4.4.1), a WebSocket ping
    /// on WS and WSS. `None`: no keepalives (the default; servers answer
    /// pings but do not send them).
    pub keepalive: Option<Duration>,
    /// Time allowed to open a TCP connection and finish its TLS and
    /// WebSocket handshakes, in either direction.
    pub handshake_timeout: Duration,
    /// Time a write may take, and time a sender waits for room in a
    /// connection's send queue, before the peer is judged stuck.
    pub write_timeout: Duration,
    /// Messages per connection waiting to be written.
    pub send_queue: usize,
    /// Received messages waiting for the consumer of
    /// [`Transports::bind`](crate::Transports::bind)'s receiver; when it is
    /// full, reading stops (backpressure) until there is room.
    pub incoming_queue: usize,
}

impl Default for TransportLimits {
    /// 64 KiB messages, 10 000 connections, 2 minutes idle, no keepalives,
    /// 10 s handshakes and writes, queues of 256 and 1024 messages.
    fn default() -> Self {
        TransportLimits {
            message: Limits::default(),
            max_connections: 10_000,
            idle_timeout: Duration::from_secs(120),
            keepalive: None,
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            send_queue: 256,
            incoming_queue: 1024,
        }
    }
}
