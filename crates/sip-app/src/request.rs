//! The answering handle a handler gets with each request.
//!
//! Final answers consume the handle (`accept`, `reject`, `respond`,
//! `proxy`), so one request gets one final answer. A handle dropped
//! without a final answer is answered by the container: with the status of
//! the handler's error, or 500 when the handler returned `Ok` without
//! answering.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use sip_message::{Peer, ResponseBuilder, SipMessage};
use sip_stack::ServerTransaction;

use crate::AppError;
use crate::b2bua::{B2buaOptions, B2buaOutcome};
use crate::engine::Shared;
use crate::proxy::{ProxyOptions, ProxyOutcome};
use crate::session::{DialogRecord, DialogRole, DialogState, SessionCell, UaLeg};

/// The server transaction, shared with the container so it can answer
/// what the handler left unanswered.
#[derive(Debug, Default)]
pub(crate) struct TxSlot {
    pub(crate) tx: Mutex<Option<ServerTransaction>>,
    /// The final status sent through it (0: none yet).
    status: std::sync::atomic::AtomicU16,
}

impl TxSlot {
    pub(crate) fn set_status(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn status(&self) -> Option<u16> {
        Some(self.status.load(std::sync::atomic::Ordering::Relaxed)).filter(|s| *s != 0)
    }

    pub(crate) fn take(&self) -> Option<ServerTransaction> {
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(Option<&ServerTransaction>) -> R) -> R {
        let g = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        f(g.as_ref())
    }
}

/// What a Replaces header (RFC 3891) names: a dialog by Call-ID and tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    /// The dialog's Call-ID.
    pub call_id: String,
    /// The `to-tag` parameter.
    pub to_tag: String,
    /// The `from-tag` parameter.
    pub from_tag: String,
    /// `early-only`: replace the dialog only while it is early.
    pub early_only: bool,
}

/// What a Join header (RFC 3911) names: a dialog whose conversation the
/// new INVITE joins (barge-in, monitoring, a conference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    /// The dialog's Call-ID.
    pub call_id: String,
    /// The `to-tag` parameter.
    pub to_tag: String,
    /// The `from-tag` parameter.
    pub from_tag: String,
}

/// One Replaces or Join header value, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DialogRef {
    /// Join (RFC 3911) rather than Replaces (RFC 3891).
    pub(crate) join: bool,
    pub(crate) call_id: String,
    pub(crate) to_tag: Option<String>,
    pub(crate) from_tag: Option<String>,
    /// Replaces' `early-only` flag (Join has none).
    pub(crate) early_only: bool,
}

impl DialogRef {
    /// The header's name, for reason phrases.
    pub(crate) fn what(&self) -> &'static str {
        if self.join { "join" } else { "replace" }
    }
}

/// `callid *(SEMI (to-tag / from-tag / early-flag / generic-param))`
/// (RFC 3891 §6.1, RFC 3911 §7.1); `None` without a Call-ID.
fn dialog_ref(value: &str, join: bool) -> Option<DialogRef> {
    let mut parts = value.split(';').map(str::trim);
    let call_id = parts.next().filter(|c| !c.is_empty())?.to_owned();
    let mut r = DialogRef {
        join,
        call_id,
        to_tag: None,
        from_tag: None,
        early_only: false,
    };
    for p in parts {
        match p.split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("to-tag") => {
                r.to_tag = Some(v.trim().to_owned());
            }
            Some((k, v)) if k.trim().eq_ignore_ascii_case("from-tag") => {
                r.from_tag = Some(v.trim().to_owned());
            }
            None if !join && p.eq_ignore_ascii_case("early-only") => r.early_only = true,
            _ => {}
        }
    }
    Some(r)
}

/// Every Replaces and Join value of a request (Replaces first); a value
/// without a Call-ID is left out.
pub(crate) fn dialog_refs(request: &SipMessage) -> Vec<DialogRef> {
    let mut out = Vec::new();
    for (name, join) in [("Replaces", false), ("Join", true)] {
        for h in request.headers_named(name) {
            if let Some(r) = h.value().ok().and_then(|v| dialog_ref(v, join)) {
                out.push(r);
            }
        }
    }
    out
}

/// A request's first Replaces (or Join) value with both tags.
fn first_ref(request: &SipMessage, join: bool) -> Option<(String, String, String, bool)> {
    let name = if join { "Join" } else { "Replaces" };
    let value = request.headers_named(name).next()?.value().ok()?;
    let r = dialog_ref(value, join)?;
    Some((r.call_id, r.to_tag?, r.from_tag?, r.early_only))
}

/// Parses a request's Replaces header; `None` when absent or without both
/// tags.
fn replaces_of(request: &SipMessage) -> Option<Replaces> {
    let (call_id, to_tag, from_tag, early_only) = first_ref(request, false)?;
    Some(Replaces {
        call_id,
        to_tag,
        from_tag,
        early_only,
    })
}

/// Parses a request's Join header; `None` when absent or without both
/// tags.
fn join_of(request: &SipMessage) -> Option<Join> {
    let (call_id, to_tag, from_tag, _) = first_ref(request, true)?;
    Some(Join {
        call_id,
        to_tag,
        from_tag,
    })
}

/// A request to answer.
pub struct IncomingRequest {
    pub(crate) request: SipMessage,
    pub(crate) source: Peer,
    pub(crate) slot: Arc<TxSlot>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) cell: Arc<SessionCell>,
    /// Our tag for the dialog this request creates or belongs to.
    pub(crate) to_tag: String,
    /// Whether it arrived inside a dialog of this session.
    pub(crate) in_dialog: bool,
    /// The applications still to come in a composition (DAR chain).
    pub(crate) chain: Vec<crate::Application>,
    /// The RSeq of the last reliable provisional sent (0: none yet).
    pub(crate) rseq: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for IncomingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingRequest")
            .field("request", &self.request.start_line_str())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl IncomingRequest {
    /// The dialog an INVITE with a Replaces header (RFC 3891) replaces.
    /// When that is a dialog this container is a user agent in, the
    /// engine delivers the INVITE in its session (or answers 481, 486 or
    /// 603 itself), so the application finds the old call in
    /// [`Context::b2bua_legs`](crate::Context::b2bua_legs) or ends it with
    /// [`Context::send_in_dialog`](crate::Context::send_in_dialog). A
    /// Replaces naming a dialog the container does not know arrives as an
    /// initial request: a proxy forwards it; answering it 2xx gets 481.
    #[must_use]
    pub fn replaces(&self) -> Option<Replaces> {
        replaces_of(&self.request)
    }

    /// The dialog an INVITE with a Join header (RFC 3911) joins. As with
    /// Replaces, the engine delivers it in the session of that dialog when
    /// the dialog is one of this container's (400 with Replaces too, 481
    /// when the tags match none, 603 when it has ended); the application
    /// decides how to mix or conference the two.
    #[must_use]
    pub fn join(&self) -> Option<Join> {
        join_of(&self.request)
    }

    /// An initial INVITE whose Replaces or Join names no live dialog of
    /// this session: a user agent answering it must refuse it (RFC 3891
    /// §3, RFC 3911 §4: 481). The engine delivers one that names a dialog
    /// of this container in that dialog's session; one naming a dialog the
    /// container does not know is routed as an initial request, as a proxy
    /// forwards it to the user agent that has the dialog.
    fn unmatched_reference(&self) -> Option<AppError> {
        if self.in_dialog || self.method_str() != "INVITE" {
            return None;
        }
        let refs = dialog_refs(&self.request);
        let [r] = refs.as_slice() else {
            return (!refs.is_empty()).then(|| {
                AppError::with_reason(400, "Bad Request (more than one Replaces or Join)")
            });
        };
        let live = match (&r.to_tag, &r.from_tag) {
            (Some(to), Some(from)) => self.cell.with(|d| {
                d.record
                    .dialog(&r.call_id, to, from)
                    .is_some_and(|x| x.state != crate::DialogState::Terminated)
            }),
            _ => false,
        };
        (!live).then(|| {
            AppError::with_reason(
                481,
                format!(
                    "Call/Transaction Does Not Exist (no dialog to {})",
                    r.what()
                ),
            )
        })
    }

    /// The request.
    #[must_use]
    pub fn request(&self) -> &SipMessage {
        &self.request
    }

    /// Where it came from.
    #[must_use]
    pub fn source(&self) -> Peer {
        self.source
    }

    /// Whether it arrived inside an existing dialog of this session.
    #[must_use]
    pub fn is_in_dialog(&self) -> bool {
        self.in_dialog
    }

    pub(crate) fn method_str(&self) -> String {
        self.request
            .method()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default()
    }

    /// The Request-URI's user part, if it is a SIP URI with one.
    #[must_use]
    pub fn uri_user(&self) -> Option<&str> {
        crate::routing::uri_user(self.request.request_uri_str()?)
    }

    /// A response builder for this request with our To tag (for headers
    /// or a body the shortcuts below do not set); send it with
    /// [`IncomingRequest::send`].
    pub fn response(&self, status: u16, reason: Option<&str>) -> Result<ResponseBuilder, AppError> {
        let tag = (status > 100).then_some(self.to_tag.as_str());
        let b = match reason {
            Some(r) => ResponseBuilder::with_reason(&self.request, status, r, tag),
            None => ResponseBuilder::for_request(&self.request, status, tag),
        };
        b.map_err(|e| AppError::Build(e.to_string()))
    }

    /// Sends a provisional response (101 to 199; 180 Ringing, 183 Session
    /// Progress).
    pub fn provisional(&self, status: u16) -> Result<(), AppError> {
        if !(101..200).contains(&status) {
            return Err(AppError::Build(format!("{status} is not a provisional")));
        }
        let r = self.response(status, None)?;
        let r = self
            .with_contact(r, status)
            .build()
            .map_err(|e| AppError::Build(e.to_string()))?;
        self.slot.with(|tx| match tx {
            Some(tx) => {
                tx.respond(r);
                Ok(())
            }
            None => Err(AppError::AlreadyAnswered),
        })
    }

    /// Whether the caller supports reliable provisionals (`100rel` in
    /// Supported or Require, RFC 3262).
    #[must_use]
    pub fn supports_100rel(&self) -> bool {
        let has = |v: Option<&str>| v.is_some_and(|t| t.eq_ignore_ascii_case("100rel"));
        self.request
            .typed_all::<sip_message::headers::Supported<'_>>()
            .filter_map(Result::ok)
            .any(|s| has(Some(s.0)))
            || self
                .request
                .typed_all::<sip_message::headers::Require<'_>>()
                .filter_map(Result::ok)
                .any(|r| has(Some(r.0)))
    }

    /// Sends a reliable provisional (RFC 3262: `Require: 100rel`, `RSeq`)
    /// and waits for its PRACK: retransmitted by the stack until it
    /// arrives; after 64*T1 without one the request is answered 500 by the
    /// container (the `Err` this returns). The caller must support 100rel
    /// ([`IncomingRequest::supports_100rel`]).
    pub async fn provisional_reliable(&self, status: u16) -> Result<(), AppError> {
        if !(101..200).contains(&status) {
            return Err(AppError::Build(format!("{status} is not a provisional")));
        }
        if !self.supports_100rel() {
            return Err(AppError::Build(
                "the caller does not support 100rel".to_owned(),
            ));
        }
        let previous = self.rseq.load(std::sync::atomic::Ordering::Relaxed);
        let rseq = if previous == 0 {
            // RFC 3262 §3: the first RSeq is random, 1 to 2**31 - 1.
            let r = u32::from_str_radix(self.shared.stack.tag().get(..8).unwrap_or("1"), 16)
                .unwrap_or(1);
            (r & 0x3fff_ffff).max(1)
        } else {
            previous + 1
        };
        self.rseq.store(rseq, std::sync::atomic::Ordering::Relaxed);
        let r = self
            .response(status, None)?
            .header("Require", "100rel")
            .header("RSeq", &rseq.to_string());
        let r = self
            .with_contact(r, status)
            .build()
            .map_err(|e| AppError::Build(e.to_string()))?;
        let (wake, woken) = tokio::sync::oneshot::channel();
        let key = (self.request.call_id().unwrap_or("").to_owned(), rseq);
        self.shared
            .pracks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key.clone(),
                crate::engine::PrackWait::Local(Arc::clone(&self.slot), wake),
            );
        let sent = self.slot.with(|tx| match tx {
            Some(tx) => {
                tx.respond_reliable(r);
                true
            }
            None => false,
        });
        if !sent {
            self.shared
                .pracks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
            return Err(AppError::AlreadyAnswered);
        }
        let wait = self.shared.config.prack_timeout;
        match tokio::time::timeout(wait, woken).await {
            Ok(Ok(())) => Ok(()),
            _ => {
                self.shared
                    .pracks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&key);
                Err(AppError::with_reason(
                    500,
                    "Server Internal Error (no PRACK for the reliable provisional)",
                ))
            }
        }
    }

    /// Answers 200 OK (INVITE: with our Contact; the dialog is recorded in
    /// the session).
    pub async fn accept(self) -> Result<(), AppError> {
        let r = self.response(200, None)?;
        self.send_final(r, 200, false).await
    }

    /// Answers 200 OK with a body (an SDP answer for an INVITE).
    pub async fn accept_with(self, content_type: &str, body: Bytes) -> Result<(), AppError> {
        let r = self.response(200, None)?.body(content_type, body);
        self.send_final(r, 200, false).await
    }

    /// Answers with a final error status and its default reason phrase.
    pub async fn reject(self, status: u16) -> Result<(), AppError> {
        self.respond(status, None).await
    }

    /// Answers with a final status and reason phrase.
    pub async fn respond(self, status: u16, reason: Option<&str>) -> Result<(), AppError> {
        if status < 200 {
            return Err(AppError::Build(format!("{status} is not final")));
        }
        let r = self.response(status, reason)?;
        self.send_final(r, status, false).await
    }

    /// Sends a response built with [`IncomingRequest::response`] (final
    /// or provisional).
    pub async fn send(self, response: ResponseBuilder, status: u16) -> Result<(), AppError> {
        if status < 200 {
            let r = self
                .with_contact(response, status)
                .build()
                .map_err(|e| AppError::Build(e.to_string()))?;
            return self.slot.with(|tx| match tx {
                Some(tx) => {
                    tx.respond(r);
                    Ok(())
                }
                None => Err(AppError::AlreadyAnswered),
            });
        }
        self.send_final(response, status, true).await
    }

    /// Proxies the request to one target URI (stateful, record-routing).
    /// Returns the outcome once a final response went upstream.
    pub async fn proxy_to(self, target: &str) -> Result<ProxyOutcome, AppError> {
        self.proxy(ProxyOptions::to([target.to_owned()])).await
    }

    /// Proxies with options: several targets in parallel or in sequence,
    /// branch timeouts, recursion on 3xx (RFC 3261 §16).
    ///
    /// In a composition (a DAR chain, [`AppRouter::from_dar`](crate::AppRouter::from_dar))
    /// an application that is not the last one proxies to the next
    /// application instead: the request, with its Request-URI set to the
    /// first target, runs the next application's handler (in an
    /// application session of its own), and the outcome is the final
    /// status the rest of the chain answered.
    pub async fn proxy(self, options: ProxyOptions) -> Result<ProxyOutcome, AppError> {
        if !self.chain.is_empty() {
            let target = options.targets.first().cloned();
            return crate::engine::next_in_chain(self, target).await;
        }
        let slot = Arc::clone(&self.slot);
        let tx = self.slot.take().ok_or(AppError::AlreadyAnswered)?;
        let outcome = crate::proxy::run(
            self.shared,
            self.cell,
            tx,
            self.request,
            self.source,
            options,
        )
        .await?;
        slot.set_status(outcome.status);
        Ok(outcome)
    }

    /// Acts as a back-to-back user agent for this INVITE: places leg B to
    /// `target` and links the two calls (see [`B2buaOptions`]). Returns
    /// once leg A has its final answer; the rest of the call (BYE,
    /// re-INVITE, INFO from either side) is relayed by the container. On a
    /// re-INVITE inside a B2BUA call it relays it ([`IncomingRequest::relay`];
    /// `b_call_id` is then empty).
    pub async fn b2bua_to(self, target: &str) -> Result<B2buaOutcome, AppError> {
        self.b2bua(B2buaOptions::to(target)).await
    }

    /// [`IncomingRequest::b2bua_to`] with options.
    pub async fn b2bua(self, options: B2buaOptions) -> Result<B2buaOutcome, AppError> {
        if self.in_dialog {
            // A re-INVITE of a B2BUA call: to the other leg.
            let status = self.relay().await?;
            return Ok(B2buaOutcome {
                status,
                b_call_id: String::new(),
            });
        }
        if self.method_str() != "INVITE" {
            return Err(AppError::with_reason(
                500,
                "Server Internal Error (b2bua takes an INVITE)",
            ));
        }
        if let Some(refused) = self.unmatched_reference() {
            return Err(refused);
        }
        let slot = Arc::clone(&self.slot);
        // Leg A's INVITE is pending until answered.
        let _pending = self.cell.pending(
            self.request.call_id().unwrap_or(""),
            crate::UaMode::Uas,
            Arc::new(self.request.clone()),
            Some(Arc::clone(&slot)),
        );
        let tx = self.slot.take().ok_or(AppError::AlreadyAnswered)?;
        let outcome = crate::b2bua::setup(
            self.shared,
            self.cell,
            tx,
            self.request,
            self.to_tag,
            self.source,
            options,
        )
        .await?;
        slot.set_status(outcome.status);
        Ok(outcome)
    }

    /// Relays a request inside a B2BUA call to the other leg and answers
    /// it with the other leg's answer (what the container does on its own
    /// for a method the application does not handle). Returns the status
    /// sent.
    pub async fn relay(self) -> Result<u16, AppError> {
        let tx = self.slot.take().ok_or(AppError::AlreadyAnswered)?;
        // The handler keeps the turn: it runs on after the relay.
        match crate::b2bua::relay(&self.shared, &self.cell, tx, &self.request, &mut None).await {
            Ok(status) => {
                self.slot.set_status(status);
                Ok(status)
            }
            Err(tx) => {
                // Not a B2BUA leg: put it back for the container to answer.
                *self.slot.tx.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
                Err(AppError::with_reason(
                    481,
                    "Call/Transaction Does Not Exist (not a B2BUA call)",
                ))
            }
        }
    }

    /// Whether the request creates a dialog when answered 1xx/2xx
    /// (§12.1).
    fn creates_dialog(&self) -> bool {
        self.request
            .method()
            .is_some_and(|m| matches!(m.as_str(), "INVITE" | "SUBSCRIBE" | "REFER"))
    }

    /// `<contact>` for this session: a dialog-creating response carries our
    /// Contact (§12.1.1), with the session's token so the peer's next
    /// request finds it (docs/CLUSTER.md).
    fn contact_value(&self) -> String {
        let contact =
            crate::routing::contact_uri(&self.shared, &self.cell.id, self.uri_user(), self.source);
        format!("<{contact}>")
    }

    /// Adds our Contact to a provisional that creates an early dialog.
    fn with_contact(&self, r: ResponseBuilder, status: u16) -> ResponseBuilder {
        if self.creates_dialog()
            && status > 100
            && status < 300
            && self
                .request
                .header(sip_message::HeaderName::Contact)
                .is_some()
        {
            r.header("Contact", &self.contact_value())
        } else {
            r
        }
    }

    /// Sends a final response: our Contact added to a 2xx that creates a
    /// dialog, the dialog recorded, the session written, then the response
    /// sent (docs/CLUSTER.md: write, then send). `app_built`: the
    /// application built the response and may have set a Contact itself.
    async fn send_final(
        self,
        response: ResponseBuilder,
        status: u16,
        app_built: bool,
    ) -> Result<(), AppError> {
        if (200..300).contains(&status)
            && let Some(refused) = self.unmatched_reference()
        {
            return Err(refused);
        }
        let r = if app_built {
            self.with_contact_if_missing(response)?
        } else {
            let response = if (200..300).contains(&status) && self.creates_dialog() {
                response.header("Contact", &self.contact_value())
            } else {
                response
            };
            response
                .build()
                .map_err(|e| AppError::Build(e.to_string()))?
        };
        if r.status().is_some_and(|s| (200..300).contains(&s)) {
            self.record_dialog(&self.method_str(), &r);
        }
        crate::engine::commit(&self.shared, &self.cell).await?;
        let tx = self.slot.take().ok_or(AppError::AlreadyAnswered)?;
        self.slot.set_status(r.status().unwrap_or(status));
        tx.respond(r);
        Ok(())
    }

    /// An application-built final response: our Contact is added to a
    /// dialog-creating 2xx only when the application set none.
    fn with_contact_if_missing(&self, response: ResponseBuilder) -> Result<SipMessage, AppError> {
        let built = response
            .build()
            .map_err(|e| AppError::Build(e.to_string()))?;
        let needs_contact = self.creates_dialog()
            && built.status().is_some_and(|s| (200..300).contains(&s))
            && built.header(sip_message::HeaderName::Contact).is_none();
        if !needs_contact {
            return Ok(built);
        }
        let mut e = built.edit();
        e.add("Contact", &self.contact_value())
            .map_err(|e| AppError::Build(e.to_string()))?;
        e.into_message().map_err(|e| AppError::Build(e.to_string()))
    }

    fn record_dialog(&self, method: &str, response: &SipMessage) {
        let (Some(call_id), Some(from_tag), Some(to_tag)) = (
            self.request.call_id(),
            self.request.from_tag(),
            response.to_tag(),
        ) else {
            return;
        };
        let lifetime = self.shared.config.dialog_lifetime;
        match method {
            "INVITE" | "SUBSCRIBE" | "REFER" if !self.in_dialog => {
                self.shared
                    .ua_dialogs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(call_id.to_owned(), self.cell.id.clone());
                // Enough to send requests in the dialog later (a BYE, a
                // NOTIFY): Context::send_in_dialog.
                let to = self
                    .request
                    .typed::<sip_message::headers::To<'_>>()
                    .and_then(Result::ok)
                    .map(|t| t.uri().as_str().to_owned());
                let from = self
                    .request
                    .typed::<sip_message::headers::From<'_>>()
                    .and_then(Result::ok)
                    .map(|f| f.uri().as_str().to_owned());
                let ua = UaLeg {
                    local_uri: to.unwrap_or_default(),
                    remote_uri: from.unwrap_or_default(),
                    remote_target: crate::b2bua::contact_uri(&self.request).unwrap_or_default(),
                    route_set: crate::b2bua::record_routes(&self.request),
                    local_cseq: 0,
                    link: None,
                };
                self.cell.with(|d| {
                    d.record.upsert_dialog(DialogRecord {
                        call_id: call_id.to_owned(),
                        from_tag: from_tag.to_owned(),
                        to_tag: to_tag.to_owned(),
                        role: DialogRole::Uas,
                        state: DialogState::Confirmed,
                        ua: Some(ua),
                    });
                    let at =
                        crate::engine::unix_ms().saturating_add(crate::session::millis(lifetime));
                    d.record.expires_unix_ms = d.record.expires_unix_ms.max(at);
                    d.dirty = true;
                });
            }
            "BYE" => self.cell.with(|d| {
                if let Some(dl) = d.record.dialog_mut(call_id, from_tag, to_tag) {
                    dl.state = DialogState::Terminated;
                    d.dirty = true;
                }
            }),
            _ => {}
        }
    }
}
