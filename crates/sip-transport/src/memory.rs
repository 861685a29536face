//! An in-process datagram network, for tests that run a whole stack, its
//! applications and their peers without a socket.
//!
//! A [`MemoryNetwork`] is a switch: each [`MemorySocket`] bound on it has
//! an address (any `SocketAddr`, no port is taken on the machine), and a
//! datagram sent to an address reaches the socket bound there, in order,
//! or vanishes when nobody is bound (as UDP to a closed port does). The
//! transports take one as their UDP transport
//! ([`TransportConfig::memory`](crate::TransportConfig::memory)), so the
//! stack above them sees ordinary UDP peers.
//!
//! Nothing here reads a clock, so with tokio's clock paused a test's time
//! is virtual: it moves only when every task waits, straight to the next
//! timer.
//!
//! Hand-written: it is a map of channels; no crate offers a datagram switch
//! shaped like our transports.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::TransportError;

/// Datagrams a socket holds before more are dropped (a full receive
/// buffer).
const QUEUE: usize = 4096;

/// A datagram in flight: its source and its bytes.
type Datagram = (SocketAddr, Bytes);

/// An in-process datagram network (cheap to clone: clones share it).
#[derive(Debug, Clone, Default)]
pub struct MemoryNetwork {
    ports: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Datagram>>>>,
}

impl MemoryNetwork {
    /// An empty network.
    #[must_use]
    pub fn new() -> MemoryNetwork {
        MemoryNetwork::default()
    }

    /// Binds a socket at `addr`. Port 0 is refused (give every party an
    /// address of its own, so a test names them); an address already bound
    /// is refused with `AddrInUse`.
    pub fn bind(&self, addr: SocketAddr) -> Result<MemorySocket, TransportError> {
        let refuse = |kind: std::io::ErrorKind| TransportError::Bind {
            transport: sip_message::TransportKind::Udp,
            addr,
            source: std::io::Error::from(kind),
        };
        if addr.port() == 0 {
            return Err(refuse(std::io::ErrorKind::InvalidInput));
        }
        let mut ports = self.ports.lock().unwrap_or_else(PoisonError::into_inner);
        if ports.get(&addr).is_some_and(|tx| !tx.is_closed()) {
            return Err(refuse(std::io::ErrorKind::AddrInUse));
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        ports.insert(addr, tx);
        Ok(MemorySocket {
            local: addr,
            network: self.clone(),
            rx,
        })
    }

    /// Delivers a datagram from `from` to whoever is bound at `to`.
    /// `false`: nobody is, or its queue is full (the datagram is lost, as
    /// on a real network).
    pub fn deliver(&self, from: SocketAddr, to: SocketAddr, datagram: Bytes) -> bool {
        let tx = self
            .ports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&to)
            .cloned();
        tx.is_some_and(|tx| tx.try_send((from, datagram)).is_ok())
    }

    fn unbind(&self, addr: SocketAddr) {
        let mut ports = self.ports.lock().unwrap_or_else(PoisonError::into_inner);
        if ports.get(&addr).is_some_and(mpsc::Sender::is_closed) {
            ports.remove(&addr);
        }
    }
}

/// A socket on a [`MemoryNetwork`]: sends datagrams from its address and
/// receives those sent to it. Dropping it unbinds the address.
#[derive(Debug)]
pub struct MemorySocket {
    local: SocketAddr,
    network: MemoryNetwork,
    rx: mpsc::Receiver<Datagram>,
}

impl MemorySocket {
    /// The address it is bound at.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The network it is on.
    #[must_use]
    pub fn network(&self) -> &MemoryNetwork {
        &self.network
    }

    /// Sends a datagram to `to`; `false` when it was lost (nobody bound
    /// there, or a full queue).
    pub fn send_to(&self, datagram: Bytes, to: SocketAddr) -> bool {
        self.network.deliver(self.local, to, datagram)
    }

    /// The next datagram and its source; `None` never happens while the
    /// socket is bound (the network keeps a sender), so waiting on it is
    /// waiting for traffic.
    pub async fn recv_from(&mut self) -> Option<(Bytes, SocketAddr)> {
        self.rx.recv().await.map(|(from, d)| (d, from))
    }

    /// A datagram already waiting, without waiting for one.
    pub fn try_recv_from(&mut self) -> Option<(Bytes, SocketAddr)> {
        self.rx.try_recv().ok().map(|(from, d)| (d, from))
    }

    /// A sender of datagrams from this socket's address that can be used
    /// while the socket itself is being read elsewhere.
    #[must_use]
    pub fn sender(&self) -> MemorySender {
        MemorySender {
            local: self.local,
            network: self.network.clone(),
        }
    }
}

impl Drop for MemorySocket {
    fn drop(&mut self) {
        self.rx.close();
        self.network.unbind(self.local);
    }
}

/// Sends datagrams from a [`MemorySocket`]'s address (see
/// [`MemorySocket::sender`]).
#[derive(Debug, Clone)]
pub struct MemorySender {
    local: SocketAddr,
    network: MemoryNetwork,
}

impl MemorySender {
    /// The address datagrams leave from.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends a datagram to `to`; `false` when it was lost.
    pub fn send_to(&self, datagram: Bytes, to: SocketAddr) -> bool {
        self.network.deliver(self.local, to, datagram)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn datagrams_reach_the_bound_address_in_order() {
        let net = MemoryNetwork::new();
        let a = net.bind(addr("10.0.0.1:5060")).unwrap();
        let mut b = net.bind(addr("10.0.0.2:5060")).unwrap();
        assert!(a.send_to(Bytes::from_static(b"one"), b.local_addr()));
        assert!(a.send_to(Bytes::from_static(b"two"), b.local_addr()));
        assert_eq!(
            b.recv_from().await.unwrap(),
            (Bytes::from_static(b"one"), a.local_addr())
        );
        assert_eq!(b.try_recv_from().unwrap().0, Bytes::from_static(b"two"));
        assert!(b.try_recv_from().is_none());
    }

    #[test]
    fn nobody_bound_loses_the_datagram_and_a_dropped_socket_frees_its_address() {
        let net = MemoryNetwork::new();
        let a = net.bind(addr("10.0.0.1:5060")).unwrap();
        assert!(!a.send_to(Bytes::from_static(b"x"), addr("10.0.0.9:5060")));
        let b = net.bind(addr("10.0.0.2:5060")).unwrap();
        assert!(net.bind(addr("10.0.0.2:5060")).is_err());
        drop(b);
        assert!(!a.send_to(Bytes::from_static(b"x"), addr("10.0.0.2:5060")));
        assert!(net.bind(addr("10.0.0.2:5060")).is_ok());
        assert!(net.bind(addr("10.0.0.3:0")).is_err());
    }
}
