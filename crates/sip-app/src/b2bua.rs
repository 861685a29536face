//! The back-to-back user agent (JSR 289 `B2buaHelper`): two linked dialogs
//! (legs), each with this container as a user agent.
//!
//! * Setup ([`IncomingRequest::b2bua`](crate::IncomingRequest::b2bua)):
//!   the INVITE of leg A becomes a new INVITE on leg B (new Call-ID, new
//!   tags, the body copied); B's provisionals are relayed to A with our To
//!   tag, B's 2xx is acknowledged at once and answered to A with B's body,
//!   a final error is relayed. A CANCEL from A cancels B (487 to A); a 2xx
//!   that crosses the CANCEL is acknowledged and hung up with a BYE.
//! * Inside the call ([`relay`]): a request on one leg is sent on the
//!   other, built from the other leg's dialog state (§12.2.1.1): BYE is
//!   answered 200 at once (the call is over on our side whatever the
//!   other leg says), re-INVITE waits for the other leg's final response
//!   (its 2xx is acknowledged there at once and relayed with its body),
//!   other methods (INFO, UPDATE, MESSAGE, NOTIFY, OPTIONS) relay their
//!   final response. When the container relays on its own (no handler for
//!   the method) it gives the session's turn up once the request has left,
//!   and lists it pending on both legs until the answer
//!   ([`Context::pending_messages`](crate::Context::pending_messages)).
//! * Both legs' user-agent state ([`UaLeg`]) lives in the session record,
//!   written before each request or 2xx leaves, so any container that
//!   loads the session (after its owner died) continues the call: a BYE
//!   from either side reaches the other.
//! * Reliable provisionals (RFC 3262): leg B's INVITE says `Supported:
//!   100rel` when A's did; B's reliable provisional goes to A reliably,
//!   with our own RSeq, and A's PRACK is relayed: the PRACK the B2BUA sends
//!   to B (`RAck` with B's RSeq, in B's early dialog) carries A's PRACK
//!   body, and B's answer (status and body) answers A's PRACK: offer and
//!   answer in PRACK cross the B2BUA. When A cannot PRACK, the B2BUA
//!   PRACKs B itself and A hears the provisional unreliably.
//!
//!
//! Not relayed: an INVITE without an offer (the offer in the 2xx and the
//! answer in the ACK): the ACK towards B is sent as soon as B's 2xx
//! arrives.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use sip_message::headers::{Contact, From, MaxForwards, RecordRoute, To};
use sip_message::{Method, Peer, RequestBuilder, ResponseBuilder, SipMessage, TransportKind};
use sip_stack::{ClientEvent, ServerTransaction};
use tracing::debug;

use crate::AppError;
use crate::engine::{Shared, commit};
use crate::routing;
use crate::session::{DialogRecord, DialogRole, DialogState, SessionCell, UaLeg, UaMode, millis};

/// How to place leg B.
#[derive(Debug, Clone)]
pub struct B2buaOptions {
    /// Leg B's Request-URI.
    pub target: String,
    /// Leg B's From URI. Default: leg A's From URI.
    pub from: Option<String>,
    /// Leg B's To URI. Default: the target.
    pub to: Option<String>,
    /// Give up when leg B has no final response after this long (CANCEL
    /// it; A gets 408). Default: none (the transaction's timer B).
    pub timeout: Option<Duration>,
    /// User and password to answer a 401/407 from leg B's side with
    /// (digest, `sip-auth`): the INVITE is sent again once with
    /// credentials. Default: none (the challenge is relayed to A).
    pub credentials: Option<(String, String)>,
}

impl B2buaOptions {
    /// Leg B to `target`, with the defaults.
    #[must_use]
    pub fn to(target: impl Into<String>) -> B2buaOptions {
        B2buaOptions {
            target: target.into(),
            from: None,
            to: None,
            timeout: None,
            credentials: None,
        }
    }
}

/// What a B2BUA call setup came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct B2buaOutcome {
    /// The final status leg A was answered with.
    pub status: u16,
    /// Leg B's Call-ID.
    pub b_call_id: String,
}

fn build_err(e: impl std::fmt::Display) -> AppError {
    AppError::Build(e.to_string())
}

/// The peer a request on a leg goes to: an edge when the container has
/// any, else the first route, else the remote target.
async fn hop(shared: &Shared, call_id: &str, ua: &UaLeg) -> Result<Peer, AppError> {
    if let Some(edge) = shared.pick_edge(call_id) {
        return Ok(Peer {
            transport: TransportKind::Udp,
            addr: edge,
        });
    }
    let first = ua
        .route_set
        .first()
        .map_or(ua.remote_target.as_str(), String::as_str);
    routing::peer_of_uri(first).await
}

/// Tags of a leg: (local, remote).
fn tags(d: &DialogRecord) -> (&str, &str) {
    match d.role {
        DialogRole::Uac => (&d.from_tag, &d.to_tag),
        _ => (&d.to_tag, &d.from_tag),
    }
}

/// A request inside a leg (§12.2.1.1), with its Via for `peer`.
#[allow(clippy::too_many_arguments)]
fn leg_request(
    shared: &Shared,
    d: &DialogRecord,
    ua: &UaLeg,
    method: &str,
    cseq: u32,
    peer: Peer,
    contact: Option<&str>,
    body: Option<(&str, Bytes)>,
    max_forwards: u32,
) -> Result<SipMessage, AppError> {
    let m = Method::parse(method).ok_or_else(|| build_err("bad method"))?;
    let (local, remote) = tags(d);
    let mut b = RequestBuilder::new(m, &ua.remote_target)
        .map_err(build_err)?
        .header(
            "Via",
            &routing::via(shared, peer.transport, &shared.stack.branch()),
        )
        .header("Max-Forwards", &max_forwards.to_string());
    for r in &ua.route_set {
        b = b.header("Route", &format!("<{r}>"));
    }
    let to = if remote.is_empty() {
        format!("<{}>", ua.remote_uri)
    } else {
        format!("<{}>;tag={remote}", ua.remote_uri)
    };
    b = b
        .header("From", &format!("<{}>;tag={local}", ua.local_uri))
        .header("To", &to)
        .header("Call-ID", &d.call_id)
        .header("CSeq", &format!("{cseq} {method}"));
    if let Some(c) = contact {
        b = b.header("Contact", &format!("<{c}>"));
    }
    if let Some((ct, body)) = body {
        b = b.body(ct, body);
    }
    b.build().map_err(build_err)
}

fn content_type(msg: &SipMessage) -> Option<String> {
    msg.header(sip_message::HeaderName::ContentType)
        .and_then(|h| h.value().ok())
        .map(str::to_owned)
}

fn body_of(msg: &SipMessage) -> Option<(String, Bytes)> {
    let body = msg.body_bytes();
    if body.is_empty() {
        return None;
    }
    Some((content_type(msg)?, body))
}

/// The Contact URI of a message (the remote target it sets).
pub(crate) fn contact_uri(msg: &SipMessage) -> Option<String> {
    msg.typed_all::<Contact<'_>>()
        .filter_map(Result::ok)
        .find_map(|c| match c {
            Contact::Addr(a) => Some(a.uri().as_str().to_owned()),
            Contact::Star => None,
        })
}

/// Record-Route URIs of a message, in order.
pub(crate) fn record_routes(msg: &SipMessage) -> Vec<String> {
    msg.typed_all::<RecordRoute<'_>>()
        .filter_map(Result::ok)
        .map(|r| r.uri().as_str().to_owned())
        .collect()
}

/// A response to a leg's request, relayed from the other leg: status,
/// reason, body; our Contact on a dialog-creating 1xx/2xx of an INVITE.
fn relayed(
    request: &SipMessage,
    from: &SipMessage,
    to_tag: Option<&str>,
    contact: Option<&str>,
) -> Result<SipMessage, AppError> {
    let status = from.status().unwrap_or(500);
    let reason = from
        .reason()
        .unwrap_or_else(|| sip_message::default_reason(status));
    let mut b = ResponseBuilder::with_reason(request, status, reason, to_tag).map_err(build_err)?;
    if let Some(c) = contact.filter(|_| status > 100 && status < 300) {
        b = b.header("Contact", &format!("<{c}>"));
    }
    if let Some((ct, body)) = body_of(from) {
        b = b.body(&ct, body);
    }
    b.build().map_err(build_err)
}

fn answer(
    tx: &ServerTransaction,
    request: &SipMessage,
    status: u16,
    reason: &str,
    tag: Option<&str>,
) {
    if let Ok(r) =
        ResponseBuilder::with_reason(request, status, reason, tag).and_then(ResponseBuilder::build)
    {
        tx.respond(r);
    }
}

/// Sends the ACK for a 2xx on a leg (outside any transaction; again for
/// each retransmission of the 2xx).
async fn ack(shared: &Shared, d: &DialogRecord, ua: &UaLeg, cseq: u32) {
    let Ok(peer) = hop(shared, &d.call_id, ua).await else {
        return;
    };
    if let Ok(a) = leg_request(shared, d, ua, "ACK", cseq, peer, None, None, 70) {
        shared.stack.send_stateless(&a, peer);
    }
}

fn set_leg(cell: &SessionCell, call_id: &str, f: impl FnOnce(&mut DialogRecord)) {
    cell.with(|d| {
        if let Some(dl) = d.record.dialogs.iter_mut().find(|x| x.call_id == call_id) {
            f(dl);
            d.dirty = true;
        }
    });
}

fn leg(cell: &SessionCell, call_id: &str) -> Option<DialogRecord> {
    cell.with(|d| {
        d.record
            .dialogs
            .iter()
            .find(|x| x.call_id == call_id)
            .cloned()
    })
}

/// A's PRACK, handed over by the engine, and its transaction.
type RelayedPrack = (ServerTransaction, SipMessage);

/// Whether a message names 100rel in Supported or Require (RFC 3262).
fn has_100rel(msg: &SipMessage, require_only: bool) -> bool {
    let is = |t: &str| t.eq_ignore_ascii_case("100rel");
    msg.typed_all::<sip_message::headers::Require<'_>>()
        .filter_map(Result::ok)
        .any(|r| is(r.0))
        || (!require_only
            && msg
                .typed_all::<sip_message::headers::Supported<'_>>()
                .filter_map(Result::ok)
                .any(|s| is(s.0)))
}

/// The RSeq of a reliable provisional (`Require: 100rel` and an RSeq).
fn reliable_rseq(msg: &SipMessage) -> Option<u32> {
    if !has_100rel(msg, true) {
        return None;
    }
    msg.headers_named("RSeq")
        .next()?
        .value()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Leg B's early dialog as its reliable provisional set it: the PRACK
/// goes to its Contact along its Record-Route (§12.1.2).
fn early_leg(b_leg: &DialogRecord, b_ua: &UaLeg, r: &SipMessage) -> (DialogRecord, UaLeg) {
    let mut d = b_leg.clone();
    d.to_tag = r.to_tag().unwrap_or("").to_owned();
    let mut ua = b_ua.clone();
    if let Some(t) = contact_uri(r) {
        ua.remote_target = t;
    }
    let mut routes = record_routes(r);
    routes.reverse();
    ua.route_set = routes;
    (d, ua)
}

/// Sends a PRACK for leg B's reliable provisional `rseq` (of the INVITE
/// with CSeq `invite_cseq`) with CSeq `cseq`, and lets it finish in the
/// background. With `from_a` (A's PRACK and its transaction) the PRACK
/// carries A's body and B's final answer, with its body, answers A's.
async fn prack_leg_b(
    shared: &Arc<Shared>,
    d: &DialogRecord,
    ua: &UaLeg,
    rseq: u32,
    invite_cseq: u32,
    cseq: u32,
    from_a: Option<RelayedPrack>,
) {
    let fail_a = |from_a: Option<RelayedPrack>, status: u16, reason: &str| {
        if let Some((t, r)) = from_a {
            answer(&t, &r, status, reason, None);
        }
    };
    let Ok(peer) = hop(shared, &d.call_id, ua).await else {
        return fail_a(from_a, 503, "Service Unavailable (leg B unreachable)");
    };
    let body = from_a.as_ref().and_then(|(_, r)| body_of(r));
    let Ok(prack) = leg_request(
        shared,
        d,
        ua,
        "PRACK",
        cseq,
        peer,
        None,
        body.as_ref().map(|(ct, b)| (ct.as_str(), b.clone())),
        70,
    ) else {
        return fail_a(from_a, 500, "Server Internal Error (PRACK not built)");
    };
    let mut e = prack.edit();
    let rack = format!("{rseq} {invite_cseq} INVITE");
    if e.add("RAck", &rack).is_err() {
        return;
    }
    let Ok(prack) = e.into_message() else {
        return fail_a(from_a, 500, "Server Internal Error (PRACK not built)");
    };
    let Ok(mut ct) = shared.stack.send_request(prack, peer).await else {
        return fail_a(from_a, 503, "Service Unavailable (leg B unreachable)");
    };
    tokio::spawn(async move {
        let mut from_a = from_a;
        while let Some(ev) = ct.next().await {
            let fin = match ev {
                ClientEvent::Response(r) if r.status().is_some_and(|s| s >= 200) => r,
                ClientEvent::Response(_) => continue,
                ClientEvent::Timeout => {
                    fail_a(from_a.take(), 408, "Request Timeout (PRACK on leg B)");
                    continue;
                }
                _ => {
                    fail_a(from_a.take(), 503, "Service Unavailable (PRACK on leg B)");
                    continue;
                }
            };
            if let Some((t, r)) = from_a.take()
                && let Ok(resp) = relayed(&r, &fin, r.to_tag(), None)
            {
                t.respond(resp);
            }
        }
        fail_a(from_a, 408, "Request Timeout (PRACK on leg B)");
    });
}

/// Runs a B2BUA call setup for an INVITE on leg A to its end.
#[allow(clippy::too_many_lines)]
pub(crate) async fn setup(
    shared: Arc<Shared>,
    cell: Arc<SessionCell>,
    mut tx: ServerTransaction,
    a_req: SipMessage,
    a_tag: String,
    source: Peer,
    options: B2buaOptions,
) -> Result<B2buaOutcome, AppError> {
    let a_call = a_req.call_id().unwrap_or("").to_owned();
    let a_from_tag = a_req.from_tag().unwrap_or("").to_owned();
    let fail = |tx: &ServerTransaction, status: u16, reason: &str| {
        answer(tx, &a_req, status, reason, Some(&a_tag));
        Ok(B2buaOutcome {
            status,
            b_call_id: String::new(),
        })
    };
    let max_forwards = match a_req.typed::<MaxForwards>() {
        Some(Ok(MaxForwards(0))) => return fail(&tx, 483, "Too Many Hops"),
        Some(Ok(MaxForwards(n))) => n - 1,
        Some(Err(_)) => return fail(&tx, 400, "Bad Max-Forwards"),
        None => 70,
    };
    let (Some(Ok(a_from)), Some(Ok(a_to))) = (a_req.typed::<From<'_>>(), a_req.typed::<To<'_>>())
    else {
        return fail(&tx, 400, "Bad Request (From or To unreadable)");
    };
    let a_from_uri = a_from.uri().as_str().to_owned();
    let a_to_uri = a_to.uri().as_str().to_owned();
    let Some(a_target) = contact_uri(&a_req) else {
        return fail(&tx, 400, "Bad Request (INVITE without a Contact)");
    };
    let our_contact_a = routing::contact_uri(
        &shared,
        &cell.id,
        routing::uri_user(a_req.request_uri_str().unwrap_or("")),
        source,
    );

    let b_call = shared.stack.call_id("sb");
    let b_tag = shared.stack.tag();
    let b_ua = UaLeg {
        local_uri: options.from.clone().unwrap_or_else(|| a_from_uri.clone()),
        remote_uri: options.to.clone().unwrap_or_else(|| options.target.clone()),
        remote_target: options.target.clone(),
        route_set: Vec::new(),
        local_cseq: 1,
        link: Some(a_call.clone()),
    };
    let b_leg = DialogRecord {
        call_id: b_call.clone(),
        from_tag: b_tag.clone(),
        to_tag: String::new(),
        role: DialogRole::Uac,
        state: DialogState::Early,
        ua: Some(b_ua.clone()),
    };
    let a_leg = DialogRecord {
        call_id: a_call.clone(),
        from_tag: a_from_tag,
        to_tag: a_tag.clone(),
        role: DialogRole::Uas,
        state: DialogState::Early,
        ua: Some(UaLeg {
            local_uri: a_to_uri,
            remote_uri: a_from_uri,
            remote_target: a_target,
            route_set: record_routes(&a_req),
            local_cseq: 0,
            link: Some(b_call.clone()),
        }),
    };
    let peer = match hop(&shared, &b_call, &b_ua).await {
        Ok(p) => p,
        Err(e) => {
            let (status, reason) = e.response_status();
            return fail(&tx, status, &reason);
        }
    };
    let our_contact_b = routing::contact_uri(&shared, &cell.id, None, peer);
    let body = body_of(&a_req);
    let mut invite = leg_request(
        &shared,
        &b_leg,
        &b_ua,
        "INVITE",
        1,
        peer,
        Some(&our_contact_b),
        body.as_ref().map(|(ct, b)| (ct.as_str(), b.clone())),
        u32::from(max_forwards),
    )?;
    // RFC 3262 across the legs: B may answer reliably when A can PRACK.
    let a_100rel = has_100rel(&a_req, false);
    if a_100rel {
        let mut e = invite.edit();
        e.add("Supported", "100rel").map_err(build_err)?;
        invite = e.into_message().map_err(build_err)?;
    }
    cell.with(|d| {
        d.record.upsert_dialog(a_leg);
        d.record.upsert_dialog(b_leg.clone());
        d.dirty = true;
    });
    {
        let mut idx = shared
            .ua_dialogs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        idx.insert(a_call.clone(), cell.id.clone());
        idx.insert(b_call.clone(), cell.id.clone());
    }
    // Written before leg B's INVITE leaves.
    commit(&shared, &cell).await?;
    let mut _pending_b = cell.pending(&b_call, UaMode::Uac, Arc::new(invite.clone()), None);
    let mut ct = match shared.stack.send_request(invite, peer).await {
        Ok(ct) => ct,
        Err(e) => {
            debug!(error = %e, "leg B not started");
            end_legs(&cell, &a_call, &b_call);
            return fail(&tx, 503, "Service Unavailable (leg B not started)");
        }
    };
    let deadline = options.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut cancelled = false;
    let mut timed_out = false;
    let mut cseq: u32 = 1;
    let mut answered_challenge = false;
    // Reliable provisionals (RFC 3262): leg B's last RSeq seen, the CSeq
    // of our last PRACK on leg B, our RSeq on leg A, and A's PRACKs (each
    // releases the PRACK of one of B's provisionals).
    let mut last_rseq_b: Option<u32> = None;
    let mut prack_cseq: u32 = 1;
    let mut rseq_a: u32 = 0;
    let (prack_tx, mut prack_rx) =
        tokio::sync::mpsc::unbounded_channel::<(DialogRecord, UaLeg, u32, Option<RelayedPrack>)>();
    loop {
        let sleep = async {
            match deadline {
                Some(d) if !timed_out && !cancelled => tokio::time::sleep_until(d).await,
                _ => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            ev = ct.next() => {
                let r = match ev {
                    Some(ClientEvent::Response(r)) => r,
                    Some(ClientEvent::Timeout) | None => {
                        end_legs(&cell, &a_call, &b_call);
                        return fail(&tx, 408, "Request Timeout (leg B)");
                    }
                    Some(ClientEvent::TransportError) => {
                        end_legs(&cell, &a_call, &b_call);
                        return fail(&tx, 503, "Service Unavailable (leg B unreachable)");
                    }
                    Some(_) => continue,
                };
                let status = r.status().unwrap_or(500);
                if status <= 100 {
                    continue;
                }
                if status < 200 {
                    let rseq_b = reliable_rseq(&r);
                    if let Some(n) = rseq_b {
                        // A retransmission (B has not heard our PRACK yet):
                        // relayed once only.
                        if last_rseq_b.is_some_and(|l| n <= l) {
                            continue;
                        }
                        last_rseq_b = Some(n);
                    }
                    if cancelled {
                        continue;
                    }
                    let Ok(p) = relayed(&a_req, &r, Some(&a_tag), Some(&our_contact_a)) else {
                        continue;
                    };
                    let Some(rseq_b) = rseq_b else {
                        tx.respond(p);
                        continue;
                    };
                    let (d, ua) = early_leg(&b_leg, &b_ua, &r);
                    if !a_100rel {
                        // A cannot PRACK: we acknowledge B ourselves and A
                        // hears the provisional unreliably.
                        tx.respond(p);
                        prack_cseq = prack_cseq.max(cseq) + 1;
                        cseq_b_used(&cell, &b_call, prack_cseq);
                        prack_leg_b(&shared, &d, &ua, rseq_b, cseq, prack_cseq, None).await;
                        continue;
                    }
                    // Relayed reliably with our own RSeq; A's PRACK, handed
                    // over by the engine, goes on to B.
                    rseq_a = if rseq_a == 0 {
                        u32::from_str_radix(shared.stack.tag().get(..6).unwrap_or("1"), 16).unwrap_or(1).max(1)
                    } else {
                        rseq_a + 1
                    };
                    let mut e = p.edit();
                    let rel = e.replace("Require", "100rel").is_ok() && e.add("RSeq", &rseq_a.to_string()).is_ok();
                    let Some(p) = rel.then(|| e.into_message().ok()).flatten() else {
                        continue;
                    };
                    let (wake, woken) = tokio::sync::oneshot::channel();
                    shared
                        .pracks
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert((a_call.clone(), rseq_a), crate::engine::PrackWait::Relay(wake));
                    tx.respond_reliable(p);
                    let wait = shared.config.prack_timeout;
                    let to_loop = prack_tx.clone();
                    tokio::spawn(async move {
                        if let Ok(Ok(prack_a)) = tokio::time::timeout(wait, woken).await {
                            let _ = to_loop.send((d, ua, rseq_b, Some(prack_a)));
                        }
                    });
                    continue;
                }
                if status < 300 {
                    let to_tag = r.to_tag().unwrap_or("").to_owned();
                    let target = contact_uri(&r).unwrap_or_else(|| options.target.clone());
                    let mut routes = record_routes(&r);
                    routes.reverse();
                    set_leg(&cell, &b_call, |d| {
                        d.to_tag = to_tag;
                        d.state = DialogState::Confirmed;
                        if let Some(ua) = d.ua.as_mut() {
                            ua.remote_target = target;
                            ua.route_set = routes;
                        }
                    });
                    let b = leg(&cell, &b_call);
                    if cancelled || timed_out {
                        // The 2xx crossed our CANCEL: take the call and
                        // hang it up.
                        if let Some(b) = &b && let Some(ua) = &b.ua {
                            ack(&shared, b, ua, cseq).await;
                            send_bye(&shared, &cell, b).await;
                        }
                        end_legs(&cell, &a_call, &b_call);
                        let (s, why) = if cancelled { (487, "Request Terminated") } else { (408, "Request Timeout (leg B)") };
                        return fail(&tx, s, why);
                    }
                    set_leg(&cell, &a_call, |d| d.state = DialogState::Confirmed);
                    let lifetime = shared.config.dialog_lifetime;
                    cell.with(|d| {
                        let at = crate::engine::unix_ms().saturating_add(millis(lifetime));
                        d.record.expires_unix_ms = d.record.expires_unix_ms.max(at);
                        d.dirty = true;
                    });
                    // Written before the 2xx reveals the call.
                    commit(&shared, &cell).await?;
                    if let Some(b) = &b && let Some(ua) = &b.ua {
                        ack(&shared, b, ua, cseq).await;
                    }
                    let ok = relayed(&a_req, &r, Some(&a_tag), Some(&our_contact_a))?;
                    tx.respond(ok);
                    // Acknowledge B's 2xx retransmissions too.
                    if let Some(b) = b {
                        let shared = Arc::clone(&shared);
                        tokio::spawn(async move {
                            while let Some(ev) = ct.next().await {
                                if let (ClientEvent::Response(r), Some(ua)) = (ev, b.ua.as_ref())
                                    && r.status().is_some_and(|s| (200..300).contains(&s))
                                {
                                    ack(&shared, &b, ua, cseq).await;
                                }
                            }
                        });
                    }
                    return Ok(B2buaOutcome { status, b_call_id: b_call });
                }
                if (status == 401 || status == 407)
                    && !cancelled
                    && !timed_out
                    && !answered_challenge
                    && let Some((user, password)) = &options.credentials
                {
                    answered_challenge = true;
                    if let Some(again) = authenticated_invite(
                        &shared, &cell, &b_call, &r, user, password, cseq + 1, peer, &our_contact_b,
                        body.as_ref().map(|(ct, b)| (ct.as_str(), b.clone())),
                        u32::from(max_forwards),
                    )
                    .await
                    {
                        // The answered INVITE is no longer pending; the one
                        // with credentials is.
                        let listed = cell.pending(&b_call, UaMode::Uac, Arc::new(again.clone()), None);
                        if let Ok(next) = shared.stack.send_request(again, peer).await {
                            _pending_b = listed;
                            cseq += 1;
                            ct = next;
                            continue;
                        }
                    }
                }
                end_legs(&cell, &a_call, &b_call);
                if timed_out {
                    return fail(&tx, 408, "Request Timeout (leg B)");
                }
                let fin = relayed(&a_req, &r, Some(&a_tag), None)?;
                tx.respond(fin);
                return Ok(B2buaOutcome { status, b_call_id: b_call });
            }
            Some((d, ua, rseq_b, prack_a)) = prack_rx.recv() => {
                // A acknowledged our reliable provisional: stop sending it
                // and relay A's PRACK (its body too) to B; B's answer
                // answers A's PRACK.
                tx.prack_received();
                prack_cseq = prack_cseq.max(cseq) + 1;
                cseq_b_used(&cell, &b_call, prack_cseq);
                prack_leg_b(&shared, &d, &ua, rseq_b, cseq, prack_cseq, prack_a).await;
            }
            () = tx.cancelled(), if !cancelled => {
                cancelled = true;
                ct.cancel();
            }
            () = sleep => {
                timed_out = true;
                ct.cancel();
            }
        }
    }
}

/// Records `cseq` as our last CSeq on a leg.
fn set_cseq(cell: &SessionCell, call_id: &str, cseq: u32) {
    set_leg(cell, call_id, |d| {
        if let Some(u) = d.ua.as_mut() {
            u.local_cseq = cseq;
        }
    });
}

/// Leg B has used CSeq `n` (a PRACK): its later requests go above it.
fn cseq_b_used(cell: &SessionCell, b_call: &str, n: u32) {
    set_leg(cell, b_call, |d| {
        if let Some(u) = d.ua.as_mut() {
            u.local_cseq = u.local_cseq.max(n);
        }
    });
}

/// Leg B's INVITE again, with CSeq `cseq` and credentials answering the
/// challenge in `challenge` (401 or 407); the session written first.
#[allow(clippy::too_many_arguments)]
async fn authenticated_invite(
    shared: &Shared,
    cell: &SessionCell,
    b_call: &str,
    challenge: &SipMessage,
    user: &str,
    password: &str,
    cseq: u32,
    peer: Peer,
    contact: &str,
    body: Option<(&str, Bytes)>,
    max_forwards: u32,
) -> Option<SipMessage> {
    let kind = if challenge.status() == Some(401) {
        sip_auth::ChallengeKind::Www
    } else {
        sip_auth::ChallengeKind::Proxy
    };
    let b = leg(cell, b_call)?;
    let ua = b.ua.clone()?;
    let mut client = sip_auth::DigestClient::new(user, password);
    let answer = client
        .answer(
            kind,
            sip_auth::challenges_of(challenge, kind),
            sip_auth::DigestRequest {
                method: "INVITE",
                uri: &ua.remote_target,
            },
            &shared.stack.tag(),
        )
        .ok()?;
    let invite = leg_request(
        shared,
        &b,
        &ua,
        "INVITE",
        cseq,
        peer,
        Some(contact),
        body,
        max_forwards,
    )
    .ok()?;
    let mut e = invite.edit();
    e.add(answer.header, &answer.value).ok()?;
    let invite = e.into_message().ok()?;
    set_cseq(cell, b_call, cseq);
    commit(shared, cell).await.ok()?;
    Some(invite)
}

fn end_legs(cell: &SessionCell, a: &str, b: &str) {
    for c in [a, b] {
        set_leg(cell, c, |d| d.state = DialogState::Terminated);
    }
}

/// Sends a BYE on a leg and lets it finish in the background.
async fn send_bye(shared: &Arc<Shared>, cell: &SessionCell, d: &DialogRecord) {
    let Some(ua) = d.ua.as_ref() else { return };
    let cseq = ua.local_cseq.saturating_add(1);
    set_cseq(cell, &d.call_id, cseq);
    let Ok(peer) = hop(shared, &d.call_id, ua).await else {
        return;
    };
    let Ok(bye) = leg_request(shared, d, ua, "BYE", cseq, peer, None, None, 70) else {
        return;
    };
    if let Ok(mut ct) = shared.stack.send_request(bye, peer).await {
        tokio::spawn(async move { while ct.next().await.is_some() {} });
    }
}

/// Relays a request that arrived inside one leg of a B2BUA call to the
/// other leg. Gives the transaction back when the request's dialog is not
/// a linked B2BUA leg.
///
/// `turn`: the session's turn when the caller holds it only for this
/// relay (the container's default relay, not a handler's): it is given up
/// once the request is on its way to the other leg, so the session's next
/// requests (a BYE from the other side, an INFO) do not wait for the
/// other leg's answer. Requests still leave in order: each is built and
/// sent under the turn.
pub(crate) async fn relay(
    shared: &Arc<Shared>,
    cell: &Arc<SessionCell>,
    tx: ServerTransaction,
    request: &SipMessage,
    turn: &mut Option<tokio::sync::MutexGuard<'_, ()>>,
) -> Result<u16, ServerTransaction> {
    let (Some(call_id), Some(ft), Some(tt)) =
        (request.call_id(), request.from_tag(), request.to_tag())
    else {
        return Err(tx);
    };
    let here = cell.with(|d| d.record.dialog(call_id, ft, tt).cloned());
    let Some(link) = here.as_ref().and_then(|d| d.ua.as_ref()?.link.clone()) else {
        return Err(tx);
    };
    let Some(other) = leg(cell, &link) else {
        return Err(tx);
    };
    let Some(ua) = other.ua.clone() else {
        return Err(tx);
    };
    let method = request
        .method()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    if other.state == DialogState::Terminated
        || other.to_tag.is_empty() && other.role == DialogRole::Uac
    {
        if method == "BYE" {
            end_legs(cell, call_id, &link);
            answer(&tx, request, 200, "OK", None);
            return Ok(200);
        }
        answer(
            &tx,
            request,
            481,
            "Call/Transaction Does Not Exist (other leg gone)",
            None,
        );
        return Ok(481);
    }
    if method == "BYE" {
        // Write the end of the call, send BYE on the other leg, answer.
        end_legs(cell, call_id, &link);
        send_bye(shared, cell, &other).await;
        if let Err(e) = commit(shared, cell).await {
            debug!(error = %e, "ended call not written");
        }
        answer(&tx, request, 200, "OK", None);
        return Ok(200);
    }
    let cseq = ua.local_cseq.saturating_add(1);
    set_cseq(cell, &link, cseq);
    let peer = match hop(shared, &link, &ua).await {
        Ok(p) => p,
        Err(_) => {
            answer(
                &tx,
                request,
                503,
                "Service Unavailable (other leg unreachable)",
                None,
            );
            return Ok(503);
        }
    };
    let is_invite = method == "INVITE";
    let contact = is_invite.then(|| routing::contact_uri(shared, &cell.id, None, peer));
    let body = body_of(request);
    let out = match leg_request(
        shared,
        &other,
        &ua,
        &method,
        cseq,
        peer,
        contact.as_deref(),
        body.as_ref().map(|(ct, b)| (ct.as_str(), b.clone())),
        70,
    ) {
        Ok(m) => m,
        Err(_) => {
            answer(
                &tx,
                request,
                500,
                "Server Internal Error (cannot build the relayed request)",
                None,
            );
            return Ok(500);
        }
    };
    if let Err(e) = commit(shared, cell).await {
        let (s, r) = e.response_status();
        answer(&tx, request, s, &r, None);
        return Ok(s);
    }
    let mut pending = Some(cell.pending(&link, UaMode::Uac, Arc::new(out.clone()), None));
    let Ok(mut ct) = shared.stack.send_request(out, peer).await else {
        answer(
            &tx,
            request,
            503,
            "Service Unavailable (other leg unreachable)",
            None,
        );
        return Ok(503);
    };
    // Busy before the turn goes, so the expiry sweep never sees the
    // session idle in between.
    let _busy = turn.take().map(|t| {
        let busy = cell.busy();
        drop(t);
        busy
    });
    let our_contact = routing::contact_uri(shared, &cell.id, None, tx.source());
    loop {
        match ct.next().await {
            Some(ClientEvent::Response(r)) => {
                let status = r.status().unwrap_or(500);
                if status < 200 {
                    continue;
                }
                // Answered: no longer pending on the other leg.
                pending.take();
                if is_invite && status < 300 {
                    if let Some(t) = contact_uri(&r) {
                        set_leg(cell, &link, |x| {
                            if let Some(u) = x.ua.as_mut() {
                                u.remote_target = t;
                            }
                        });
                    }
                    if let Some(o) = leg(cell, &link)
                        && let Some(u) = &o.ua
                    {
                        ack(shared, &o, u, cseq).await;
                    }
                    let _ = commit(shared, cell).await;
                }
                let contact = (is_invite && status < 300).then_some(our_contact.as_str());
                match relayed(request, &r, None, contact) {
                    Ok(resp) => tx.respond(resp),
                    Err(_) => answer(&tx, request, 500, "Server Internal Error", None),
                }
                if is_invite && status < 300 {
                    let shared = Arc::clone(shared);
                    let cell = Arc::clone(cell);
                    tokio::spawn(async move {
                        while let Some(ev) = ct.next().await {
                            if let ClientEvent::Response(r) = ev
                                && r.status().is_some_and(|s| (200..300).contains(&s))
                                && let Some(o) = leg(&cell, &link)
                                && let Some(u) = &o.ua
                            {
                                ack(&shared, &o, u, cseq).await;
                            }
                        }
                    });
                }
                return Ok(status);
            }
            Some(ClientEvent::Timeout) | None => {
                answer(&tx, request, 408, "Request Timeout (other leg)", None);
                return Ok(408);
            }
            Some(ClientEvent::TransportError) => {
                answer(
                    &tx,
                    request,
                    503,
                    "Service Unavailable (other leg unreachable)",
                    None,
                );
                return Ok(503);
            }
            Some(_) => {}
        }
    }
}

/// Sends a request inside a dialog of the session in which this container
/// is a user agent (an answered call, either leg of a B2BUA call): CSeq
/// one above the last, to the remote target along the route set, with
/// `extra` header lines and a body; the session is written first. Returns
/// the final status (408 when nothing answered). A BYE ends the dialog
/// whatever the answer.
pub(crate) async fn send_in_dialog(
    shared: &Arc<Shared>,
    cell: &Arc<SessionCell>,
    call_id: &str,
    method: &str,
    extra: &[(&str, &str)],
    body: Option<(&str, Bytes)>,
) -> Result<u16, AppError> {
    let found = cell.with(|d| {
        d.record
            .dialogs
            .iter()
            .find(|x| x.call_id == call_id && x.state != DialogState::Terminated && x.ua.is_some())
            .cloned()
    });
    let Some(mut d) = found else {
        return Err(AppError::Build(format!(
            "no dialog {call_id:?} in this session to send {method} in"
        )));
    };
    let Some(mut ua) = d.ua.take() else {
        return Err(AppError::Build(format!(
            "dialog {call_id:?} has no user agent state"
        )));
    };
    let cseq = ua.local_cseq.saturating_add(1);
    ua.local_cseq = cseq;
    set_cseq(cell, call_id, cseq);
    // Written before the request reveals the new CSeq.
    commit(shared, cell).await?;
    let peer = hop(shared, call_id, &ua).await?;
    let contact = routing::contact_uri(shared, &cell.id, None, peer);
    let mut request = leg_request(
        shared,
        &d,
        &ua,
        method,
        cseq,
        peer,
        Some(&contact),
        body,
        70,
    )?;
    if !extra.is_empty() {
        let mut e = request.edit();
        for (name, value) in extra {
            e.add(name, value).map_err(build_err)?;
        }
        request = e.into_message().map_err(build_err)?;
    }
    let _pending = cell.pending(call_id, UaMode::Uac, Arc::new(request.clone()), None);
    let mut ct = shared
        .stack
        .send_request(request, peer)
        .await
        .map_err(|_| AppError::Stopped)?;
    let status = loop {
        match ct.next().await {
            Some(ClientEvent::Response(r)) => match r.status() {
                Some(s) if s >= 200 => break s,
                _ => {}
            },
            Some(ClientEvent::TransportError) => break 503,
            Some(_) | None => break 408,
        }
    };
    if method == "BYE" {
        set_leg(cell, call_id, |x| x.state = DialogState::Terminated);
    }
    Ok(status)
}
