//! The four transaction state machines of RFC 3261 §17 (Figures 5 to 8),
//! with the Accepted state of RFC 6026, as plain data: each state is an enum
//! variant, each transition one arm of an exhaustive match in
//! [`crate::Endpoint`], which owns the transactions and their timers.

use std::time::Duration;

use bytes::Bytes;
use sip_message::SipMessage;

use sip_message::Peer;

/// Which of the four machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    /// INVITE client transaction (§17.1.1, Figure 5).
    ClientInvite,
    /// Non-INVITE client transaction (§17.1.2, Figure 6).
    ClientNonInvite,
    /// INVITE server transaction (§17.2.1, Figure 7).
    ServerInvite,
    /// Non-INVITE server transaction (§17.2.2, Figure 8).
    ServerNonInvite,
}

/// A transaction's state. The names follow the RFC figures; `Accepted` is
/// RFC 6026's addition for INVITE transactions that saw a 2xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    /// Client INVITE: request sent, nothing heard.
    Calling,
    /// Client non-INVITE and server non-INVITE: request sent / received, no
    /// response yet.
    Trying,
    /// A provisional response was received (client) or sent (server).
    Proceeding,
    /// A final response: non-2xx for INVITE, any for non-INVITE.
    Completed,
    /// Server INVITE: the ACK for a non-2xx arrived.
    Confirmed,
    /// INVITE with a 2xx (RFC 6026 §7.1, §7.2).
    Accepted,
    /// Done; the endpoint forgets the transaction.
    Terminated,
}

/// The timers of §17 (Table 4) plus the UAS core's 2xx retransmission
/// (§13.3.1.4) and the 100 Trying delay (§17.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerName {
    /// INVITE client retransmit (unreliable only).
    A,
    /// INVITE client timeout.
    B,
    /// INVITE client wait for response retransmissions in Completed.
    D,
    /// Non-INVITE client retransmit (unreliable only).
    E,
    /// Non-INVITE client timeout.
    F,
    /// INVITE server response retransmit (unreliable only).
    G,
    /// INVITE server wait for ACK.
    H,
    /// INVITE server wait for ACK retransmissions in Confirmed.
    I,
    /// Non-INVITE server wait for request retransmissions in Completed.
    J,
    /// Non-INVITE client wait for response retransmissions in Completed.
    K,
    /// INVITE server wait in Accepted (RFC 6026).
    L,
    /// INVITE client wait in Accepted for 2xx retransmissions and forks
    /// (RFC 6026).
    M,
    /// Send 100 Trying if the TU has not answered an INVITE in 200 ms.
    Trying,
    /// Retransmit a 2xx to INVITE until the ACK arrives (§13.3.1.4).
    Retransmit2xx,
    /// Retransmit a reliable provisional until its PRACK (RFC 3262 §3).
    Reliable1xx,
    /// A CANCEL was sent and no final response came within 64*T1: the
    /// INVITE is treated as cancelled (§9.1).
    Cancelled,
}

/// One transaction.
#[derive(Debug)]
pub(crate) struct Transaction {
    pub(crate) kind: TxKind,
    pub(crate) state: TxState,
    /// Where requests (client) or responses (server) are sent.
    pub(crate) peer: Peer,
    /// The request that created the transaction; let go after the final
    /// response ([`Transaction::shed`]).
    pub(crate) request: Option<SipMessage>,
    /// Client: the request bytes to retransmit.
    pub(crate) request_bytes: Bytes,
    /// Server: the last response sent, to retransmit.
    pub(crate) last_response: Option<Bytes>,
    /// Client INVITE: the ACK for a non-2xx final, resent on retransmissions.
    pub(crate) ack: Option<Bytes>,
    /// The current retransmission interval of timers A, E, G and 2xx.
    pub(crate) interval: Duration,
    /// Server INVITE: whether a provisional was already sent (no 100 needed).
    pub(crate) provisional_sent: bool,
    /// Client INVITE: the TU cancelled before any provisional arrived.
    pub(crate) cancel_pending: bool,
    /// Server INVITE: a reliable provisional awaiting its PRACK, its
    /// retransmission interval, and when to give up (RFC 3262 §3: 64*T1).
    pub(crate) reliable_1xx: Option<(Bytes, Duration, std::time::Instant)>,
    /// Keys under which the endpoint indexes this transaction.
    pub(crate) key: crate::key::TxKey,
    /// Server INVITE in Accepted: the dialog key an ACK must match.
    pub(crate) ack_key: Option<crate::key::AckKey>,
}

impl Transaction {
    /// A new transaction in its first state, no response sent, no timer.
    pub(crate) fn new(
        kind: TxKind,
        state: TxState,
        peer: Peer,
        request: SipMessage,
        request_bytes: Bytes,
        key: crate::key::TxKey,
        t1: Duration,
    ) -> Transaction {
        Transaction {
            kind,
            state,
            peer,
            request: Some(request),
            request_bytes,
            last_response: None,
            ack: None,
            interval: t1,
            provisional_sent: false,
            cancel_pending: false,
            reliable_1xx: None,
            key,
            ack_key: None,
        }
    }

    /// After the final response, lets go of what no later state reads:
    /// the request, its header index and (client) its bytes. The
    /// transaction then waits out its timers (up to 64*T1) with its keys,
    /// its last response and its ACK only: at 1,000 calls per second that
    /// is tens of thousands of transactions, and the heap stopped growing
    /// by their requests (page faults were 5% of a proxy's CPU).
    pub(crate) fn shed(&mut self) {
        self.request = None;
        self.request_bytes = Bytes::new();
    }

    pub(crate) fn reliable(&self) -> bool {
        self.peer.transport.is_reliable()
    }
}
