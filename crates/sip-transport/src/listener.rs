//! Stream listeners (TCP, TLS, WS, WSS): accept, enforce the connection
//! limit, run the TLS and WebSocket handshakes under a timeout, then hand
//! the connection to its driver.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sip_message::{Peer, TransportKind};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, warn};

use crate::io::Io;
use crate::transports::{Shared, Wire, shutdown_signal};
use crate::ws;

/// Pending connections the kernel queues for `accept`.
const BACKLOG: i32 = 1024;

/// Binds a listener with `SO_REUSEADDR` (a restart does not wait for
/// TIME_WAIT), `SO_REUSEPORT` when asked, and IPv6 sockets IPv6-only so
/// `[::]` and `0.0.0.0` can both be bound on one port.
pub(crate) fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    set_reuse_port(&socket, reuse_port)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// `SO_REUSEPORT` (Unix only; elsewhere asking for it is an error).
pub(crate) fn set_reuse_port(socket: &Socket, on: bool) -> io::Result<()> {
    #[cfg(all(
        unix,
        not(any(
            target_os = "solaris",
            target_os = "illumos",
            target_os = "cygwin",
            target_os = "nuttx"
        ))
    ))]
    {
        socket.set_reuse_port(on)
    }
    #[cfg(not(all(
        unix,
        not(any(
            target_os = "solaris",
            target_os = "illumos",
            target_os = "cygwin",
            target_os = "nuttx"
        ))
    )))]
    {
        let _ = socket;
        if on {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "SO_REUSEPORT is not supported on this platform",
            ))
        } else {
            Ok(())
        }
    }
}

/// Accepts connections until shutdown.
pub(crate) async fn accept(
    shared: Arc<Shared>,
    listener: TcpListener,
    local: Peer,
    tls: Option<TlsAcceptor>,
) {
    let mut shutdown = shared.shutdown_rx();
    loop {
        let accepted = tokio::select! {
            () = shutdown_signal(&mut shutdown) => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors or memory: back off instead of spinning.
                error!(listener = %local, error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let remote = Peer {
            transport: local.transport,
            addr,
        };
        let Some(permit) = shared.permit(remote, true) else {
            drop(tcp);
            continue;
        };
        shared.spawn(inbound(
            Arc::clone(&shared),
            tcp,
            remote,
            local,
            tls.clone(),
            permit,
        ));
    }
}

/// Completes the handshakes of an accepted connection and runs it.
async fn inbound(
    shared: Arc<Shared>,
    tcp: TcpStream,
    remote: Peer,
    listener: Peer,
    tls: Option<TlsAcceptor>,
    permit: OwnedSemaphorePermit,
) {
    let _ = tcp.set_nodelay(true);
    let local = Peer {
        transport: listener.transport,
        addr: tcp.local_addr().unwrap_or(listener.addr),
    };
    let limits = shared.limits;
    let handshake = async {
        let io = match &tls {
            Some(acceptor) => match acceptor.accept(tcp).await {
                Ok(tls) => Io::Tls(Box::new(tls.into())),
                Err(error) => {
                    warn!(%remote, %error, "TLS handshake failed");
                    return None;
                }
            },
            None => Io::Tcp(tcp),
        };
        if matches!(remote.transport, TransportKind::Ws | TransportKind::Wss) {
            match ws::accept(io, &limits).await {
                Ok(socket) => Some(Wire::WebSocket(Box::new(socket))),
                Err(error) => {
                    warn!(%remote, %error, "WebSocket upgrade refused or failed");
                    None
                }
            }
        } else {
            Some(Wire::Stream(io))
        }
    };
    let mut shutdown = shared.shutdown_rx();
    let wire = tokio::select! {
        () = shutdown_signal(&mut shutdown) => return,
        done = tokio::time::timeout(limits.handshake_timeout, handshake) => match done {
            Ok(Some(wire)) => wire,
            Ok(None) => return,
            Err(_) => {
                warn!(%remote, timeout = ?limits.handshake_timeout, "handshake_timeout: closing connection");
                return;
            }
        },
    };
    debug!(%remote, %local, "accepted");
    let reg = shared.register(remote, permit);
    wire.run(shared, reg, local, false).await;
}
