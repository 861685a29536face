//! The dialog layer (RFC 3261 §12): dialogs created by 2xx and by 1xx with a
//! To tag (early dialogs, several per INVITE when a proxy forks), route sets,
//! remote target refresh, local and remote CSeq, requests built inside a
//! dialog (§12.2.1.1), glare (§14.1, §14.2: 491), reliable provisionals and
//! PRACK (RFC 3262), UPDATE (RFC 3311) and subscriptions (RFC 6665) as
//! dialog usages (RFC 5057).
//!
//! Like the transaction layer it is sans-IO: it reads and builds messages
//! and keeps state; the caller sends what it builds through the
//! [`crate::Endpoint`]. A dialog owns copies of the few header values it
//! needs, so it outlives the messages that made it.

use std::collections::HashMap;

use sip_message::headers::{
    CSeq, Contact, Event as EventHeader, RAck, RSeq, Require, SubscriptionState,
};
use sip_message::{HeaderName, Method, RequestBuilder, SipMessage, Uri};

use crate::types::IdGenerator;

/// Identifies a dialog (§12): Call-ID, local tag, remote tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// The Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog a request received belongs to: local tag from To, remote
    /// tag from From (§12.2.2). `None` when the request has no To tag.
    #[must_use]
    pub fn of_request(msg: &SipMessage) -> Option<DialogId> {
        Some(DialogId {
            call_id: msg.call_id()?.to_owned(),
            local_tag: msg.to_tag()?.to_owned(),
            remote_tag: msg.from_tag().unwrap_or("").to_owned(),
        })
    }

    /// The dialog a response received belongs to: local tag from From,
    /// remote tag from To (§12.1.2).
    #[must_use]
    pub fn of_response(msg: &SipMessage) -> Option<DialogId> {
        Some(DialogId {
            call_id: msg.call_id()?.to_owned(),
            local_tag: msg.from_tag().unwrap_or("").to_owned(),
            remote_tag: msg.to_tag()?.to_owned(),
        })
    }
}

/// Where a dialog is in its life (§12: early, confirmed; then gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response with a To tag.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
    /// Ended (BYE, a 481/408 to an in-dialog request, all usages gone).
    Terminated,
}

/// Why a dialog operation failed; each fault a UAS must answer knows its
/// status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    /// The message lacks what the dialog needs (a tag, Call-ID, CSeq, a
    /// Contact with a URI).
    #[error("message cannot create or use a dialog: {0}")]
    Malformed(&'static str),
    /// A request with a lower CSeq than the last one (§12.2.2: 500).
    #[error("CSeq lower than the dialog's remote sequence number")]
    OutOfOrder,
    /// An INVITE or UPDATE while one is pending on this dialog (§14.2,
    /// RFC 3311 §5.2: 491).
    #[error("a re-INVITE or UPDATE is already in progress")]
    Glare,
    /// A PRACK that acknowledges no reliable provisional (RFC 3262 §3: 481).
    #[error("PRACK matches no unacknowledged reliable provisional")]
    NoSuchProvisional,
    /// The dialog has ended.
    #[error("dialog terminated")]
    Terminated,
    /// Building a request failed.
    #[error("building a request failed: {0}")]
    Build(#[from] sip_message::BuildError),
}

impl DialogError {
    /// The status a UAS answers with.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            DialogError::OutOfOrder => 500,
            DialogError::Glare => 491,
            DialogError::NoSuchProvisional | DialogError::Terminated => 481,
            DialogError::Malformed(_) | DialogError::Build(_) => 400,
        }
    }
}

/// A subscription usage (RFC 6665 §4.1, §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The event package (and template), e.g. `presence`.
    pub event: String,
    /// The `id` parameter, if any.
    pub id: Option<String>,
    /// `pending`, `active` or `terminated` (from Subscription-State).
    pub state: SubscriptionPhase,
    /// The last expiry the notifier gave, in seconds.
    pub expires: Option<u32>,
}

/// The state of a subscription usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionPhase {
    /// SUBSCRIBE sent or accepted, no NOTIFY yet, or `pending`.
    Pending,
    /// `active`.
    Active,
    /// `terminated`: the usage is gone.
    Terminated,
}

/// One dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    id: DialogId,
    state: DialogState,
    local_seq: Option<u32>,
    remote_seq: Option<u32>,
    /// Our From/To value, with our tag.
    local: String,
    /// The peer's From/To value, with its tag.
    remote: String,
    remote_target: String,
    /// Route values in the order requests carry them.
    route_set: Vec<String>,
    secure: bool,
    /// Whether an INVITE session usage exists (not yet ended by BYE).
    invite_usage: bool,
    /// A re-INVITE or UPDATE we sent and that has no final response yet.
    pending_out: Option<Method<'static>>,
    /// A re-INVITE or UPDATE we received and have not answered finally.
    pending_in: Option<Method<'static>>,
    /// RFC 3262: the RSeq of our next reliable provisional.
    next_rseq: Option<u32>,
    /// RFC 3262: reliable provisionals sent and not yet PRACKed: (RSeq, CSeq).
    unacked: Vec<(u32, u32)>,
    /// RFC 3262: the last RSeq received from the peer.
    remote_rseq: Option<u32>,
    subscriptions: Vec<Subscription>,
}

fn owned_method(m: Method<'_>) -> Method<'static> {
    match m {
        Method::Invite => Method::Invite,
        Method::Update => Method::Update,
        _ => Method::Extension("OTHER"),
    }
}

fn header_value(msg: &SipMessage, name: HeaderName) -> Option<String> {
    msg.header(name)
        .map(|h| String::from_utf8_lossy(h.value_bytes()).into_owned())
}

fn contact_uri(msg: &SipMessage) -> Option<String> {
    match msg.typed::<Contact<'_>>()?.ok()? {
        Contact::Addr(a) => Some(a.uri().as_str().to_owned()),
        Contact::Star => None,
    }
}

/// Record-Route values in order, each as written (a name-addr).
fn record_route(msg: &SipMessage) -> Vec<String> {
    msg.values(HeaderName::RecordRoute)
        .filter_map(Result::ok)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

fn is_secure(msg: &SipMessage) -> bool {
    msg.request_uri()
        .and_then(|u| u.as_sip().map(|s| s.is_secure()))
        .unwrap_or(false)
}

impl Dialog {
    /// The UAC side: a dialog from the request we sent and a 1xx (with a To
    /// tag) or 2xx response to it (§12.1.2). The route set is the
    /// response's Record-Route in reverse; the remote target its Contact.
    pub fn uac(request: &SipMessage, response: &SipMessage) -> Result<Dialog, DialogError> {
        let id = DialogId::of_response(response).ok_or(DialogError::Malformed("To tag"))?;
        let status = response.status().ok_or(DialogError::Malformed("status"))?;
        let cseq: CSeq<'_> = request
            .typed()
            .and_then(Result::ok)
            .ok_or(DialogError::Malformed("CSeq"))?;
        let mut route_set = record_route(response);
        route_set.reverse();
        let method = request.method().ok_or(DialogError::Malformed("method"))?;
        Ok(Dialog {
            id,
            state: if status < 200 {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            local_seq: Some(cseq.seq),
            remote_seq: None,
            local: header_value(request, HeaderName::From).ok_or(DialogError::Malformed("From"))?,
            remote: header_value(response, HeaderName::To).ok_or(DialogError::Malformed("To"))?,
            remote_target: contact_uri(response).ok_or(DialogError::Malformed("Contact"))?,
            route_set,
            secure: is_secure(request),
            invite_usage: method == Method::Invite,
            pending_out: None,
            pending_in: None,
            next_rseq: None,
            unacked: Vec::new(),
            remote_rseq: None,
            subscriptions: Vec::new(),
        })
    }

    /// The UAS side: a dialog from a request we answer with a 1xx or 2xx
    /// carrying `local_tag` in its To (§12.1.1). The route set is the
    /// request's Record-Route in order; the remote target its Contact.
    pub fn uas(
        request: &SipMessage,
        local_tag: &str,
        provisional: bool,
    ) -> Result<Dialog, DialogError> {
        // Call-ID, CSeq and the tags come from the message's cached
        // identifiers (parsed once, with From and To).
        let call_id = request.call_id().ok_or(DialogError::Malformed("Call-ID"))?;
        let (cseq, _) = request.cseq().ok_or(DialogError::Malformed("CSeq"))?;
        let to_value = header_value(request, HeaderName::To).ok_or(DialogError::Malformed("To"))?;
        let local = if request.to_tag().is_some() {
            to_value
        } else {
            format!("{to_value};tag={local_tag}")
        };
        let method = request.method().ok_or(DialogError::Malformed("method"))?;
        Ok(Dialog {
            id: DialogId {
                call_id: call_id.to_owned(),
                local_tag: local_tag.to_owned(),
                remote_tag: request.from_tag().unwrap_or("").to_owned(),
            },
            state: if provisional {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            local_seq: None,
            remote_seq: Some(cseq),
            local,
            remote: header_value(request, HeaderName::From)
                .ok_or(DialogError::Malformed("From"))?,
            remote_target: contact_uri(request).ok_or(DialogError::Malformed("Contact"))?,
            route_set: record_route(request),
            secure: is_secure(request),
            invite_usage: method == Method::Invite,
            pending_out: None,
            pending_in: if method == Method::Invite {
                Some(Method::Invite)
            } else {
                None
            },
            next_rseq: None,
            unacked: Vec::new(),
            remote_rseq: None,
            subscriptions: Vec::new(),
        })
    }

    /// The dialog's identifier.
    #[must_use]
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// Early, confirmed or terminated.
    #[must_use]
    pub fn state(&self) -> DialogState {
        self.state
    }

    /// The URI requests are sent to (the peer's Contact).
    #[must_use]
    pub fn remote_target(&self) -> &str {
        &self.remote_target
    }

    /// The route set, in the order requests carry it.
    #[must_use]
    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    /// The local CSeq number of the last request we sent.
    #[must_use]
    pub fn local_seq(&self) -> Option<u32> {
        self.local_seq
    }

    /// The CSeq number of the last request the peer sent.
    #[must_use]
    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }

    /// Whether the dialog was established over `sips` (§12.1.1).
    #[must_use]
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The subscription usages.
    #[must_use]
    pub fn subscriptions(&self) -> &[Subscription] {
        &self.subscriptions
    }

    /// Ends the dialog (BYE sent or received, §15).
    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
        self.invite_usage = false;
    }

    // ---- requests we send -------------------------------------------------

    /// Builds a request inside the dialog (§12.2.1.1): Request-URI and Route
    /// from the remote target and route set (loose or strict routing), To,
    /// From and Call-ID from the dialog, CSeq one above the last. `via` is
    /// the complete Via value with a new branch; `contact` is our Contact,
    /// needed on target refresh requests (re-INVITE, UPDATE, SUBSCRIBE,
    /// NOTIFY). For ACK use [`Dialog::ack`]. The caller adds the rest
    /// (body, Event, RAck, ...) and sends it to the first Route URI, or to
    /// the Request-URI when there is no Route.
    pub fn request(
        &mut self,
        method: Method<'_>,
        via: &str,
        contact: Option<&str>,
        ids: &mut IdGenerator,
    ) -> Result<RequestBuilder, DialogError> {
        if self.state == DialogState::Terminated {
            return Err(DialogError::Terminated);
        }
        if matches!(method, Method::Invite | Method::Update) {
            if self.pending_out.is_some() {
                return Err(DialogError::Glare);
            }
            self.pending_out = Some(owned_method(method));
        }
        // §12.2.1.1: an empty local sequence number gets a random start
        // below 2**31 (§8.1.1.5).
        let seq = match self.local_seq {
            Some(s) => s.wrapping_add(1),
            None => (ids.next_u64() % 0x7fff_ffff) as u32 + 1,
        };
        self.local_seq = Some(seq);
        let mut b = self.base(method, via, seq)?;
        if let Some(c) = contact {
            b = b.header("Contact", c);
        }
        Ok(b)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_seq` (§13.2.2.4):
    /// built like an in-dialog request, with the INVITE's CSeq number.
    pub fn ack(&self, invite_seq: u32, via: &str) -> Result<RequestBuilder, DialogError> {
        self.base(Method::Ack, via, invite_seq)
    }

    fn base(&self, method: Method<'_>, via: &str, seq: u32) -> Result<RequestBuilder, DialogError> {
        let first_route_uri = self.route_set.first().map(|r| route_uri(r));
        let loose = first_route_uri
            .as_deref()
            .and_then(|u| Uri::parse(u).ok())
            .is_some_and(|u| u.as_sip().is_some_and(|s| s.lr()));
        let (request_uri, routes): (String, Vec<String>) = match first_route_uri {
            None => (self.remote_target.clone(), Vec::new()),
            Some(_) if loose => (self.remote_target.clone(), self.route_set.clone()),
            // §12.2.1.1 strict routing: the first route becomes the
            // Request-URI; the remote target goes last in Route.
            Some(first) => {
                let mut rest: Vec<String> = self.route_set.iter().skip(1).cloned().collect();
                rest.push(format!("<{}>", self.remote_target));
                (first, rest)
            }
        };
        let mut b = RequestBuilder::new(method, &request_uri)?
            .header("Via", via)
            .header("Max-Forwards", "70")
            .header("From", &self.local)
            .header("To", &self.remote)
            .header("Call-ID", &self.id.call_id)
            .header("CSeq", &format!("{seq} {method}"));
        for r in &routes {
            b = b.header("Route", r);
        }
        Ok(b)
    }

    /// Where a request built by [`Dialog::request`] goes first: the first
    /// Route URI, else the remote target (§8.1.2).
    #[must_use]
    pub fn next_hop(&self) -> String {
        self.route_set
            .first()
            .map_or_else(|| self.remote_target.clone(), |r| route_uri(r))
    }

    /// A response arrived for a request we sent inside this dialog (or for
    /// the request that created it). Confirms an early dialog on 2xx and
    /// recomputes its route set (§13.2.2.4); refreshes the remote target on
    /// a 2xx to a target refresh request (§12.2.1.2); ends the dialog on
    /// 481 or 408 (§12.2.1.2).
    pub fn on_response(&mut self, request_method: Method<'_>, response: &SipMessage) {
        let Some(status) = response.status() else {
            return;
        };
        if status >= 200 && matches!(request_method, Method::Invite | Method::Update) {
            self.pending_out = None;
        }
        if (200..300).contains(&status) {
            if self.state == DialogState::Early && request_method == Method::Invite {
                self.state = DialogState::Confirmed;
                let mut rr = record_route(response);
                rr.reverse();
                self.route_set = rr;
            }
            if is_target_refresh(request_method)
                && let Some(c) = contact_uri(response)
            {
                self.remote_target = c;
            }
        }
        if matches!(status, 408 | 481) && request_method != Method::Invite {
            self.terminate();
        }
        if status >= 300 && self.state == DialogState::Early && request_method == Method::Invite {
            // §12.3: a non-2xx final ends the early dialog.
            self.terminate();
        }
    }

    // ---- requests we receive ----------------------------------------------

    /// A request arrived inside this dialog (§12.2.2): checks CSeq order,
    /// detects glare (§14.2), refreshes the remote target, and notes BYE.
    /// On `Err`, answer with [`DialogError::status`].
    pub fn on_request(&mut self, request: &SipMessage) -> Result<(), DialogError> {
        if self.state == DialogState::Terminated {
            return Err(DialogError::Terminated);
        }
        let method = request.method().ok_or(DialogError::Malformed("method"))?;
        let cseq: CSeq<'_> = request
            .typed()
            .and_then(Result::ok)
            .ok_or(DialogError::Malformed("CSeq"))?;
        if !matches!(method, Method::Ack | Method::Cancel) {
            if let Some(r) = self.remote_seq
                && cseq.seq < r
            {
                return Err(DialogError::OutOfOrder);
            }
            if matches!(method, Method::Invite | Method::Update) {
                // §14.2: an INVITE (or UPDATE, RFC 3311 §5.2) while ours is
                // pending, or while theirs is unanswered.
                if self.pending_out.is_some() || self.pending_in.is_some() {
                    return Err(DialogError::Glare);
                }
                self.pending_in = Some(owned_method(method));
            }
            self.remote_seq = Some(cseq.seq);
        }
        if is_target_refresh(method)
            && let Some(c) = contact_uri(request)
        {
            self.remote_target = c;
        }
        if method == Method::Bye {
            self.terminate();
        }
        Ok(())
    }

    /// We sent the final response to a re-INVITE or UPDATE we received.
    pub fn answered(&mut self, status: u16) {
        if status >= 200 {
            self.pending_in = None;
            if self.state == DialogState::Early && (200..300).contains(&status) {
                self.state = DialogState::Confirmed;
            }
        }
    }

    // ---- reliable provisionals (RFC 3262) ---------------------------------

    /// The RSeq for the next reliable provisional we send to the request
    /// with CSeq `cseq` (RFC 3262 §3: random start, then +1). The caller
    /// adds `Require: 100rel` and `RSeq: n`, and sends it with
    /// [`crate::Endpoint::respond_reliable`].
    pub fn next_rseq(&mut self, cseq: u32, ids: &mut IdGenerator) -> u32 {
        let n = self
            .next_rseq
            .unwrap_or_else(|| (ids.next_u64() % 0x7fff_ffff) as u32 + 1);
        self.next_rseq = Some(n.wrapping_add(1));
        self.unacked.push((n, cseq));
        n
    }

    /// A PRACK arrived (RFC 3262 §3): returns the RSeq it acknowledges, so
    /// the retransmissions of that provisional stop. Unknown RAck: 481.
    pub fn on_prack(&mut self, prack: &SipMessage) -> Result<u32, DialogError> {
        let rack: RAck<'_> = prack
            .typed()
            .and_then(Result::ok)
            .ok_or(DialogError::Malformed("RAck"))?;
        let pos = self
            .unacked
            .iter()
            .position(|&(r, c)| r == rack.rseq && c == rack.cseq && rack.method == Method::Invite)
            .ok_or(DialogError::NoSuchProvisional)?;
        self.unacked.remove(pos);
        self.on_request(prack)?;
        Ok(rack.rseq)
    }

    /// A reliable provisional arrived (RFC 3262 §4). Returns the RAck value
    /// to put in the PRACK (`rseq cseq method`) when it is the next one in
    /// order, `None` for a retransmission or an unreliable provisional.
    pub fn on_reliable_provisional(&mut self, response: &SipMessage) -> Option<String> {
        let reliable = response
            .typed_all::<Require<'_>>()
            .filter_map(Result::ok)
            .any(|r| r.0.eq_ignore_ascii_case("100rel"));
        if !reliable {
            return None;
        }
        let rseq: RSeq = response.typed()?.ok()?;
        let cseq: CSeq<'_> = response.typed()?.ok()?;
        match self.remote_rseq {
            // §4: a retransmission (or an older one): discard.
            Some(last) if rseq.0 <= last => None,
            // Out of order: §4 says discard until the earlier one arrives.
            Some(last) if rseq.0 != last.wrapping_add(1) => None,
            _ => {
                self.remote_rseq = Some(rseq.0);
                Some(format!("{} {} {}", rseq.0, cseq.seq, cseq.method))
            }
        }
    }

    // ---- subscriptions (RFC 6665) -----------------------------------------

    /// Adds a subscription usage (after SUBSCRIBE sent or accepted).
    pub fn add_subscription(&mut self, event: &str, id: Option<&str>) {
        if !self
            .subscriptions
            .iter()
            .any(|s| s.event == event && s.id.as_deref() == id)
        {
            self.subscriptions.push(Subscription {
                event: event.to_owned(),
                id: id.map(str::to_owned),
                state: SubscriptionPhase::Pending,
                expires: None,
            });
        }
    }

    /// A NOTIFY arrived (RFC 6665 §4.1.3): updates the matching usage from
    /// Subscription-State; a `terminated` usage is removed, and a dialog
    /// left with no usage terminates (RFC 5057 §5).
    pub fn on_notify(&mut self, notify: &SipMessage) -> Result<SubscriptionPhase, DialogError> {
        self.on_request(notify)?;
        let event: EventHeader<'_> = notify
            .typed()
            .and_then(Result::ok)
            .ok_or(DialogError::Malformed("Event"))?;
        let state: SubscriptionState<'_> = notify
            .typed()
            .and_then(Result::ok)
            .ok_or(DialogError::Malformed("Subscription-State"))?;
        let phase = match state.state.to_ascii_lowercase().as_str() {
            "active" => SubscriptionPhase::Active,
            "terminated" => SubscriptionPhase::Terminated,
            _ => SubscriptionPhase::Pending,
        };
        let sub = self
            .subscriptions
            .iter_mut()
            .find(|s| {
                s.event.eq_ignore_ascii_case(event.event_type) && s.id.as_deref() == event.id()
            })
            .ok_or(DialogError::NoSuchProvisional)?;
        sub.state = phase;
        sub.expires = state.expires();
        if phase == SubscriptionPhase::Terminated {
            self.subscriptions
                .retain(|s| s.state != SubscriptionPhase::Terminated);
            if self.subscriptions.is_empty() && !self.invite_usage {
                self.state = DialogState::Terminated;
            }
        }
        Ok(phase)
    }
}

/// Requests that refresh the remote target (§12.2, RFC 3311, RFC 6665).
fn is_target_refresh(m: Method<'_>) -> bool {
    matches!(
        m,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
    )
}

/// The URI inside a Route value `<uri>;params`.
fn route_uri(route: &str) -> String {
    let inner = route
        .split_once('<')
        .and_then(|(_, r)| r.split_once('>'))
        .map_or(route, |(u, _)| u);
    inner.trim().to_owned()
}

/// The dialogs of one endpoint, matched by [`DialogId`].
#[derive(Debug, Default)]
pub struct Dialogs {
    map: HashMap<DialogId, Dialog>,
}

impl Dialogs {
    /// An empty table.
    #[must_use]
    pub fn new() -> Dialogs {
        Dialogs::default()
    }

    /// Adds a dialog (a fork's early dialog, a confirmed one), replacing
    /// any with the same id.
    pub fn insert(&mut self, dialog: Dialog) {
        self.map.insert(dialog.id.clone(), dialog);
    }

    /// The dialog a received request belongs to. A request with a To tag
    /// and no dialog is answered 481 (§12.2.2).
    pub fn for_request(&mut self, request: &SipMessage) -> Option<&mut Dialog> {
        let id = DialogId::of_request(request)?;
        self.map.get_mut(&id)
    }

    /// The dialog a received response belongs to.
    pub fn for_response(&mut self, response: &SipMessage) -> Option<&mut Dialog> {
        let id = DialogId::of_response(response)?;
        self.map.get_mut(&id)
    }

    /// A dialog by id.
    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.map.get_mut(id)
    }

    /// Forgets terminated dialogs; returns how many were removed.
    pub fn sweep(&mut self) -> usize {
        let before = self.map.len();
        self.map.retain(|_, d| d.state != DialogState::Terminated);
        before - self.map.len()
    }

    /// How many dialogs there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sip_message::ResponseBuilder;
    use sip_message::headers::To;

    fn parse(s: &str) -> SipMessage {
        SipMessage::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    fn invite() -> SipMessage {
        parse(
            "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776\r\n\
             Max-Forwards: 70\r\n\
             To: Bob <sip:bob@biloxi.example.com>\r\n\
             From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710\r\n\
             CSeq: 314159 INVITE\r\n\
             Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
             Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n\
             Content-Length: 0\r\n\r\n",
        )
    }

    fn ok_with(req: &SipMessage, status: u16, tag: &str, contact: &str) -> SipMessage {
        let mut b = ResponseBuilder::for_request(req, status, Some(tag))
            .unwrap()
            .header("Contact", contact);
        for rr in req.values(HeaderName::RecordRoute) {
            b = b.header("Record-Route", rr.unwrap());
        }
        b.build().unwrap()
    }

    #[test]
    fn uac_and_uas_dialogs_mirror_each_other() {
        let inv = invite();
        let ok = ok_with(&inv, 200, "a6c85cf", "<sip:bob@192.0.2.4>");
        let uac = Dialog::uac(&inv, &ok).unwrap();
        let uas = Dialog::uas(&inv, "a6c85cf", false).unwrap();
        assert_eq!(uac.id().call_id, uas.id().call_id);
        assert_eq!(uac.id().local_tag, uas.id().remote_tag);
        assert_eq!(uac.id().remote_tag, uas.id().local_tag);
        // §12.1.2: the UAC reverses Record-Route; §12.1.1: the UAS keeps it.
        assert_eq!(
            uac.route_set(),
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert_eq!(
            uas.route_set(),
            ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
        );
        assert_eq!(uac.remote_target(), "sip:bob@192.0.2.4");
        assert_eq!(uas.remote_target(), "sip:alice@pc33.atlanta.example.com");
        assert_eq!(uac.state(), DialogState::Confirmed);
    }

    #[test]
    fn in_dialog_request_loose_and_strict_routing() {
        let inv = invite();
        let ok = ok_with(&inv, 200, "t", "<sip:bob@192.0.2.4>");
        let mut d = Dialog::uac(&inv, &ok).unwrap();
        let mut ids = IdGenerator::new(1);
        let bye = d
            .request(
                Method::Bye,
                "SIP/2.0/UDP pc33;branch=z9hG4bKb",
                None,
                &mut ids,
            )
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(bye.request_uri_str(), Some("sip:bob@192.0.2.4"));
        let routes: Vec<_> = bye.values(HeaderName::Route).map(Result::unwrap).collect();
        assert_eq!(
            routes,
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert_eq!(bye.typed::<CSeq<'_>>().unwrap().unwrap().seq, 314_160);
        assert_eq!(bye.typed::<To<'_>>().unwrap().unwrap().tag(), Some("t"));
        assert_eq!(d.next_hop(), "sip:p1.example.com;lr");

        // Strict routing: no lr on the first route.
        let strict = parse(&String::from_utf8_lossy(&inv.message_bytes()).replace(
            "<sip:p2.example.com;lr>, <sip:p1.example.com;lr>",
            "<sip:p2.example.com;lr>, <sip:p1.example.com>",
        ));
        let ok = ok_with(&strict, 200, "t", "<sip:bob@192.0.2.4>");
        let mut d = Dialog::uac(&strict, &ok).unwrap();
        let bye = d
            .request(
                Method::Bye,
                "SIP/2.0/UDP pc33;branch=z9hG4bKc",
                None,
                &mut ids,
            )
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(bye.request_uri_str(), Some("sip:p1.example.com"));
        let routes: Vec<_> = bye.values(HeaderName::Route).map(Result::unwrap).collect();
        assert_eq!(routes, ["<sip:p2.example.com;lr>", "<sip:bob@192.0.2.4>"]);
    }

    #[test]
    fn early_dialogs_per_fork_then_confirmed() {
        let inv = invite();
        let r1 = ok_with(&inv, 180, "fork1", "<sip:bob@192.0.2.4>");
        let r2 = ok_with(&inv, 183, "fork2", "<sip:bob@192.0.2.5>");
        let mut dialogs = Dialogs::new();
        dialogs.insert(Dialog::uac(&inv, &r1).unwrap());
        dialogs.insert(Dialog::uac(&inv, &r2).unwrap());
        assert_eq!(dialogs.len(), 2);
        let ok = ok_with(&inv, 200, "fork2", "<sip:bob@192.0.2.6>");
        let d = dialogs.for_response(&ok).unwrap();
        assert_eq!(d.state(), DialogState::Early);
        d.on_response(Method::Invite, &ok);
        assert_eq!(d.state(), DialogState::Confirmed);
        assert_eq!(d.remote_target(), "sip:bob@192.0.2.6");
    }

    #[test]
    fn cseq_order_glare_target_refresh_and_bye() {
        let inv = invite();
        let mut uas = Dialog::uas(&inv, "b", false).unwrap();
        uas.answered(200);
        let reinvite = |seq: u32, contact: &str| {
            parse(&format!(
                "INVITE sip:bob@192.0.2.4 SIP/2.0\r\nVia: SIP/2.0/UDP pc33;branch=z9hG4bK{seq}\r\n\
                 To: <sip:bob@biloxi.example.com>;tag=b\r\nFrom: <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
                 Call-ID: a84b4c76e66710\r\nCSeq: {seq} INVITE\r\nContact: {contact}\r\nContent-Length: 0\r\n\r\n"
            ))
        };
        assert_eq!(
            uas.on_request(&reinvite(1, "<sip:x@y>")),
            Err(DialogError::OutOfOrder)
        );
        assert_eq!(DialogError::OutOfOrder.status(), 500);
        uas.on_request(&reinvite(314_160, "<sip:alice@192.0.2.9>"))
            .unwrap();
        assert_eq!(uas.remote_target(), "sip:alice@192.0.2.9");
        // A second re-INVITE before we answered the first: 491.
        assert_eq!(
            uas.on_request(&reinvite(314_161, "<sip:a@b>")),
            Err(DialogError::Glare)
        );
        uas.answered(200);
        // Our own re-INVITE pending, theirs arrives: 491 (§14.2).
        let mut ids = IdGenerator::new(3);
        uas.request(
            Method::Invite,
            "SIP/2.0/UDP b;branch=z9hG4bKx",
            Some("<sip:bob@192.0.2.4>"),
            &mut ids,
        )
        .unwrap();
        let e = uas.on_request(&reinvite(314_162, "<sip:a@b>")).unwrap_err();
        assert_eq!(e.status(), 491);
        // And we may not start a second one ourselves.
        assert!(
            uas.request(
                Method::Update,
                "SIP/2.0/UDP b;branch=z9hG4bKy",
                None,
                &mut ids
            )
            .is_err()
        );
        let bye = parse(
            "BYE sip:bob@192.0.2.4 SIP/2.0\r\nVia: SIP/2.0/UDP pc33;branch=z9hG4bKbye\r\n\
             To: <sip:bob@biloxi.example.com>;tag=b\r\nFrom: <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
             Call-ID: a84b4c76e66710\r\nCSeq: 314170 BYE\r\nContent-Length: 0\r\n\r\n",
        );
        uas.on_request(&bye).unwrap();
        assert_eq!(uas.state(), DialogState::Terminated);
    }

    #[test]
    fn prack_flow() {
        let inv = invite();
        let mut ids = IdGenerator::new(9);
        let mut uas = Dialog::uas(&inv, "b", true).unwrap();
        let rseq = uas.next_rseq(314_159, &mut ids);
        let p183 = ResponseBuilder::for_request(&inv, 183, Some("b"))
            .unwrap()
            .header("Contact", "<sip:bob@192.0.2.4>")
            .header("Require", "100rel")
            .header("RSeq", &rseq.to_string())
            .build()
            .unwrap();
        let mut uac = Dialog::uac(&inv, &p183).unwrap();
        let rack = uac.on_reliable_provisional(&p183).unwrap();
        assert_eq!(rack, format!("{rseq} 314159 INVITE"));
        assert_eq!(
            uac.on_reliable_provisional(&p183),
            None,
            "retransmission discarded"
        );
        let prack = uac
            .request(
                Method::Prack,
                "SIP/2.0/UDP pc33;branch=z9hG4bKp",
                None,
                &mut ids,
            )
            .unwrap()
            .header("RAck", &rack)
            .build()
            .unwrap();
        assert_eq!(uas.on_prack(&prack), Ok(rseq));
        assert_eq!(uas.on_prack(&prack).unwrap_err().status(), 481);
    }

    #[test]
    fn subscription_usage_ends_the_dialog() {
        let sub = parse(
            "SUBSCRIBE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33;branch=z9hG4bKs\r\n\
             To: <sip:bob@biloxi.example.com>\r\nFrom: <sip:alice@atlanta.example.com>;tag=s1\r\n\
             Call-ID: sub1\r\nCSeq: 1 SUBSCRIBE\r\nEvent: presence\r\nContact: <sip:alice@pc33>\r\nContent-Length: 0\r\n\r\n",
        );
        let ok = ok_with(&sub, 202, "n1", "<sip:bob@192.0.2.4>");
        let mut d = Dialog::uac(&sub, &ok).unwrap();
        d.add_subscription("presence", None);
        let notify = |state: &str, seq: u32| {
            parse(&format!(
                "NOTIFY sip:alice@pc33 SIP/2.0\r\nVia: SIP/2.0/UDP b;branch=z9hG4bKn{seq}\r\n\
                 To: <sip:alice@atlanta.example.com>;tag=s1\r\nFrom: <sip:bob@biloxi.example.com>;tag=n1\r\n\
                 Call-ID: sub1\r\nCSeq: {seq} NOTIFY\r\nEvent: presence\r\nSubscription-State: {state}\r\n\
                 Contact: <sip:bob@192.0.2.4>\r\nContent-Length: 0\r\n\r\n"
            ))
        };
        assert_eq!(
            d.on_notify(&notify("active;expires=600", 1)),
            Ok(SubscriptionPhase::Active)
        );
        assert_eq!(d.subscriptions()[0].expires, Some(600));
        assert_eq!(
            d.on_notify(&notify("terminated;reason=timeout", 2)),
            Ok(SubscriptionPhase::Terminated)
        );
        assert_eq!(d.state(), DialogState::Terminated);
    }
}
