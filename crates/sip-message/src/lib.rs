//! `sip-message`: Switchboard's SIP codec.
//!
//! It owns the SIP message and everything about its bytes: parsing a
//! datagram or a framed stream message into an index over the original
//! [`bytes::Bytes`] (RFC 3261 §7, §25), typed header values parsed on demand,
//! URIs (`sip`, `sips`, `tel`, opaque others), name-addr / addr-spec,
//! parameters, builders for requests and responses (§8.2.6), edits applied
//! as splices so untouched bytes are forwarded verbatim, a stream framer for
//! TCP/TLS/WS (§18.3, RFC 5626 keepalives), and a validation layer whose
//! errors know the status a server answers.
//!
//! No tokio, no sockets, no clock. It never panics on input and never reads
//! past a limit.
//!
//! # Why our own
//! Existing Rust SIP parsers were measured against RFC 4475 and for speed:
//! none was both correct and fast (see `docs/BENCHMARKS.md`). A zero-copy
//! index that parses typed values only when asked is what a proxy needs:
//! it reads five headers of a message and forwards the rest untouched.
//!
//! # Layout
//! * [`message`](SipMessage): the parse and the index; [`Limits`], [`Transport`].
//! * `name`: [`HeaderName`], compact forms, which headers are lists.
//! * `method`: [`Method`].
//! * `uri`: [`Uri`], [`SipUri`], [`TelUri`], [`AbsoluteUri`], [`Host`];
//!   comparison per §19.1.4.
//! * `addr`: [`NameAddr`]; `params`: [`Params`].
//! * [`headers`]: the typed headers ([`headers::Via`], [`headers::CSeq`], ...).
//! * `edit`: [`Editor`], splices.
//! * `builder`: [`RequestBuilder`], [`ResponseBuilder`].
//! * `framer`: [`StreamFramer`].
//! * `peer`: [`Peer`], [`TransportKind`], [`via_stamp`], [`response_peer`].
//! * `validate`: [`validate()`], [`Role`], [`ValidationError`].
//! * `error`: [`ParseError`], [`HeaderError`], [`UriError`].
//!
//! # Example
//! ```
//! use bytes::Bytes;
//! use sip_message::{SipMessage, headers::{Via, CSeq}, validate, Role};
//!
//! let raw = Bytes::from_static(b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
//!     Max-Forwards: 70\r\n\
//!     To: Bob <sip:bob@biloxi.example.com>\r\n\
//!     From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
//!     Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
//!     CSeq: 314159 INVITE\r\n\
//!     Content-Length: 0\r\n\r\n");
//! let msg = SipMessage::parse(raw)?;
//! validate(&msg, Role::Uas)?;
//! let via: Via<'_> = msg.typed().expect("present")?;
//! assert_eq!(via.branch(), Some("z9hG4bK776asdhds"));
//! let cseq: CSeq<'_> = msg.typed().expect("present")?;
//! assert_eq!(cseq.seq, 314159);
//!
//! // Forward: one Via more, one hop less; every other byte as received.
//! let mut edit = msg.edit();
//! edit.prepend_via("SIP/2.0/UDP proxy.example.com;branch=z9hG4bK1")?;
//! edit.decrement_max_forwards()?;
//! let out = edit.to_bytes();
//! assert!(out.starts_with(b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP proxy"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod addr;
mod builder;
mod edit;
mod error;
mod framer;
pub mod headers;
mod light;
mod message;
mod method;
mod name;
mod params;
mod peer;
mod scan;
mod uri;
mod validate;

pub use addr::NameAddr;
pub use builder::{BuildError, RequestBuilder, ResponseBuilder, default_reason};
pub use edit::{EditError, Editor};
pub use error::{HeaderError, HeaderErrorKind, ParseError, StartLineFault, UriError};
pub use framer::{Frame, StreamFramer};
pub use message::{HeaderRef, Limits, SINGLE_VALUED, SipMessage, TopVia, Transport};
pub use method::Method;
pub use name::HeaderName;
pub use params::{ParamIter, Params};
pub use peer::{
    Peer, TransportKind, ViaStamp, response_peer, top_via_response_peer, top_via_stamp, via_stamp,
};
pub use scan::unescape;
pub use uri::{AbsoluteUri, Host, SipUri, TelUri, Uri};
pub use validate::{Role, ValidationError, check_addresses, validate};
