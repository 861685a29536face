//! The application API of the container: SIP servlets (JSR 289) in
//! idiomatic Rust.
//!
//! An application is a [`SipRouter`] of async handlers, one per method,
//! given its state with [`SipRouter::with_state`]. Each handler gets a
//! [`Context`] (the state, the application session, the container's
//! services) and an [`IncomingRequest`], a handle whose final answers
//! (`accept`, `reject`, `respond`, `proxy`) consume it: one request, one
//! final answer; what a handler leaves unanswered the container answers
//! (the handler's error status, or 500).
//!
//! ```no_run
//! use sip_app::{AppError, Context, IncomingRequest, SipRouter};
//!
//! struct State;
//!
//! async fn on_invite(cx: Context<State>, invite: IncomingRequest) -> Result<(), AppError> {
//!     cx.session().set("caller", &invite.request().from_tag())?;
//!     invite.provisional(180)?;
//!     invite.accept().await
//! }
//!
//! let app = SipRouter::new().invite(on_invite).with_state("answer", State);
//! ```
//!
//! Application sessions ([`SessionRecord`]) are versioned, serializable
//! records written to the session store before any message that reveals
//! their new state leaves; one handler of a session runs at a time. Their
//! ids are the cluster's affinity tokens (docs/CLUSTER.md), stamped into
//! the Record-Route and Contact the container sends, so a session's
//! requests find their container through any edge, and a session whose
//! container died is loaded from the store by the next one.
//!
//! # Layout
//! * `router`: [`SipRouter`], [`Handler`], [`Application`].
//! * `approuter`: [`AppRouter`], which application takes an initial request.
//! * `request`: [`IncomingRequest`], the answering handle.
//! * `context`: [`Context`], state, session and services for a handler.
//! * `session`: [`SessionId`], [`SessionRecord`], [`AppSession`].
//! * `proxy`: the stateful proxy (§16), [`ProxyOptions`].
//! * `b2bua`: the back-to-back user agent, [`B2buaOptions`]; both legs'
//!   state in the session record, so a survivor continues the call.
//! * `routing`: Record-Route, Contact, next hops.
//! * `engine`: [`Engine`], from stack events to handlers.
//! * `converged`: HTTP routes of applications ([`SipRouter::http`],
//!   [`Engine::serve_http`]) in the application session the `SBSESSION`
//!   cookie or the `sbt` query parameter names.
//! * `timers`: application timers ([`Context::set_timer`],
//!   [`SipRouter::timer`]), fired by the session's owner, or by a survivor
//!   when the owner died (through the store's timer index), exactly once.
//!
//! # Testing an application
//! `sip_testkit::lab` runs the engine and scripted phones on an in-process
//! network, without a socket, on tokio's paused clock: a handler's timers
//! and the transaction timers run in virtual time
//! (`crates/sip-app/tests/in_process.rs` has one test per answering
//! handle, the proxy's best-response rules, B2BUA relaying, timers and
//! composition).
//!
//! # Call control and what is not built
//! Tracked in issue 4: the B2BUA relays re-INVITEs, BYE, CANCEL and
//! reliable provisionals with their PRACK (bodies included) and lists
//! each leg's pending messages ([`Context::pending_messages`]). REFER
//! reaches the application's handler, which answers it and reports
//! progress with NOTIFYs through [`Context::send_in_dialog`]. An INVITE
//! with Replaces (RFC 3891) or Join (RFC 3911) that names a dialog this
//! container is a user agent in is delivered in that dialog's session
//! ([`IncomingRequest::replaces`], [`IncomingRequest::join`]), or refused
//! as the RFCs say (400, 481, 486, 603); one naming a dialog the container
//! does not know is routed as an initial request (a proxy forwards it to
//! the user agent that has the dialog; an application that answers it
//! 2xx gets 481 instead). Whether the named dialog was created by an
//! INVITE is not checked, and joining does not mix media: the
//! application decides what a join means. The SUBSCRIBE/NOTIFY
//! subscription state of RFC 6665 (expiry, refresh, termination) is the
//! application's to keep: the container records the dialog and routes
//! the requests. Digest
//! authentication is a layer of the `container` crate (`sip-auth`).

mod approuter;
mod b2bua;
mod context;
mod converged;
mod dar;
mod engine;
mod error;
mod proxy;
mod request;
mod router;
mod routing;
mod session;
mod timers;

pub use approuter::{AppRouter, Rule};
pub use b2bua::{B2buaOptions, B2buaOutcome};
pub use context::Context;
pub use converged::{COOKIE_NAME, encode_url};
pub use dar::{Dar, DarEntry, DarError, Region, RouteModifier};
pub use engine::{Engine, EngineConfig, Stats, unix_ms};
pub use error::AppError;
pub use proxy::{ProxyOptions, ProxyOutcome, Supervisor};
pub use request::{IncomingRequest, Join, Replaces};
pub use router::{
    Application, BoxFuture, Handler, HttpHandler, HttpRequest, HttpResponse, SessionKey, SipRouter,
    TimerEvent, TimerHandler,
};
pub use routing::TOKEN_PARAM;
pub use session::{
    AppSession, DialogRecord, DialogRole, DialogState, SessionEvent, SessionId, SessionListener,
    SessionRecord, TimerRecord, UaLeg, UaMode,
};
