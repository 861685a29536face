//! `sip-proto`: the SIP transaction layer (RFC 3261 §17, RFC 6026) and
//! dialog layer (§12, RFC 3262, RFC 3311, RFC 6665 usages), sans-IO.
//!
//! No sockets, no clock, no randomness of its own: time comes in as an
//! argument to every call, branches and tags come from a seeded
//! [`IdGenerator`], and what to send comes out of [`Endpoint::poll_output`].
//! The same code runs under the async stack and under a deterministic
//! simulation with a virtual clock.
//!
//! # Layout
//! * `endpoint`: [`Endpoint`], matching, the transitions, [`Output`], [`Event`].
//! * `dialog`: [`Dialog`], [`Dialogs`], [`DialogId`]: §12 dialogs and their usages.
//! * `transaction`: the state machines' data: [`TxKind`], [`TxState`], [`TimerName`].
//! * `key`: matching keys (§17.1.3, §17.2.3) and the ACK-to-2xx key.
//! * `timer_wheel`: the endpoint's timers on a hierarchical timing wheel
//!   (O(1) arm and disarm, exact deadlines, time only as an argument).
//! * `types`: [`Timers`], [`TxId`], [`IdGenerator`]; [`Peer`] and
//!   [`TransportKind`] come from `sip-message`.
//! * `error`: [`ProtoError`].
//!
//! # The loop
//! ```
//! use std::time::{Duration, Instant};
//! use sip_proto::{Endpoint, Output, Peer, Timers, TransportKind};
//! use sip_message::RequestBuilder;
//!
//! let mut ep = Endpoint::new(Timers::default(), 7);
//! let now = Instant::now();
//! let branch = ep.ids().branch();
//! let options = RequestBuilder::new(sip_message::Method::Options, "sip:bob@192.0.2.2")?
//!     .header("Via", &format!("SIP/2.0/UDP 192.0.2.1:5060;branch={branch}"))
//!     .header("Max-Forwards", "70")
//!     .header("From", "<sip:alice@192.0.2.1>;tag=a")
//!     .header("To", "<sip:bob@192.0.2.2>")
//!     .header("Call-ID", "c1@192.0.2.1")
//!     .header("CSeq", "1 OPTIONS")
//!     .build()?;
//! let peer = Peer { transport: TransportKind::Udp, addr: "192.0.2.2:5060".parse()? };
//! let tx = ep.send_request(now, options, peer)?;
//! // Drain: the first output is the request to send.
//! assert!(matches!(ep.poll_output(), Some(Output::Transmit(t)) if t.tx == Some(tx)));
//! // No answer: Timer E retransmits after T1.
//! assert_eq!(ep.poll_timeout(), Some(now + Duration::from_millis(500)));
//! ep.handle_timeout(now + Duration::from_millis(500));
//! assert!(matches!(ep.poll_output(), Some(Output::Transmit(_))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod dialog;
mod endpoint;
mod error;
mod key;
mod timer_wheel;
mod transaction;
mod types;

pub use dialog::{
    Dialog, DialogError, DialogId, DialogState, Dialogs, Subscription, SubscriptionPhase,
};
pub use endpoint::{Endpoint, Event, Output, Transmit};
pub use error::ProtoError;
pub use sip_message::{Peer, TransportKind};
pub use transaction::{TimerName, TxKind, TxState};
pub use types::{
    IdGenerator, SHRINK_FLOOR, Timers, TxId, TxIdHasher, TxMap, push_hex, shrink_after_burst,
};
