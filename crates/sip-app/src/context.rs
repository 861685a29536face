//! What a handler gets besides the request: the application's state, its
//! application session, and the container's services.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::Shared;
use crate::session::{AppSession, SessionCell, TimerRecord, millis};
use crate::{AppError, SessionId};

/// The untyped part of a [`Context`].
#[derive(Clone)]
pub(crate) struct RawContext {
    pub(crate) shared: Arc<Shared>,
    pub(crate) cell: Arc<SessionCell>,
    pub(crate) listener: Option<Arc<crate::session::SessionListener>>,
}

/// A handler's context: state, session, services.
pub struct Context<S> {
    pub(crate) state: Arc<S>,
    pub(crate) raw: RawContext,
}

impl<S> Clone for Context<S> {
    fn clone(&self) -> Self {
        Context {
            state: Arc::clone(&self.state),
            raw: self.raw.clone(),
        }
    }
}

impl<S> std::fmt::Debug for Context<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("session", &self.raw.cell.id)
            .finish_non_exhaustive()
    }
}

impl<S> Context<S> {
    /// The application's state.
    #[must_use]
    pub fn state(&self) -> &S {
        &self.state
    }

    /// The application session this request belongs to.
    #[must_use]
    pub fn session(&self) -> AppSession<'_> {
        AppSession {
            cell: &self.raw.cell,
            now_unix_ms: crate::engine::unix_ms(),
            listener: self.raw.listener.as_deref(),
        }
    }

    /// The session id (the affinity token).
    #[must_use]
    pub fn session_id(&self) -> &SessionId {
        &self.raw.cell.id
    }

    /// This container's node id.
    #[must_use]
    pub fn node(&self) -> &str {
        &self.raw.shared.config.node
    }

    /// The session store, for application data beyond the session (the
    /// registrar's bindings).
    #[must_use]
    pub fn store(&self) -> &session_store::Store {
        &self.raw.shared.store
    }

    /// The SIP stack, for requests the application sends itself.
    #[must_use]
    pub fn stack(&self) -> &sip_stack::StackHandle {
        &self.raw.shared.stack
    }

    /// Sets a timer on this session (JSR 289 ServletTimer): after `delay`
    /// the application's `timer` handler runs with `payload`, on whichever
    /// container owns the session then. A timer with the same id is
    /// replaced. `period` makes it repeat.
    pub fn set_timer(
        &self,
        id: &str,
        delay: Duration,
        period: Option<Duration>,
        payload: serde_json::Value,
    ) {
        let due = crate::engine::unix_ms().saturating_add(millis(delay));
        self.raw.cell.with(|d| {
            d.record.timers.retain(|t| t.id != id);
            d.record.timers.push(TimerRecord {
                id: id.to_owned(),
                due_unix_ms: due,
                period_ms: period.map(millis),
                payload,
            });
            d.dirty = true;
        });
        crate::timers::arm(&self.raw.shared, &self.raw.cell.id, id, due);
    }

    /// Cancels a timer of this session.
    pub fn cancel_timer(&self, id: &str) {
        self.raw.cell.with(|d| {
            let before = d.record.timers.len();
            d.record.timers.retain(|t| t.id != id);
            d.dirty |= d.record.timers.len() != before;
        });
    }

    /// Sends a request outside any dialog (the JSR 289 SipFactory's
    /// `createRequest` + `send`): `method` to `target`, From this
    /// container's node at the cluster's public address, a new Call-ID and
    /// tag, through the edges when the container has any. Returns the final
    /// status (408 when nothing answered, 503 when the target cannot be
    /// reached).
    pub async fn send_request(
        &self,
        method: &str,
        target: &str,
        body: Option<(&str, bytes::Bytes)>,
    ) -> Result<u16, AppError> {
        self.send_request_as(method, target, body, None).await
    }

    /// Sends a request inside a dialog of this session in which the
    /// container is a user agent (a call the application answered, either
    /// leg of a B2BUA call; JSR 289 `SipSession.createRequest`): a NOTIFY
    /// for a REFER's progress, an INFO, a BYE that ends a call from the
    /// application's side. `extra` header lines (name, value) and `body`
    /// go in as given; CSeq, tags, the remote target and the route set
    /// come from the dialog. Returns the final status (408 when nothing
    /// answered); a BYE ends the dialog whatever the answer.
    pub async fn send_in_dialog(
        &self,
        call_id: &str,
        method: &str,
        extra: &[(&str, &str)],
        body: Option<(&str, bytes::Bytes)>,
    ) -> Result<u16, AppError> {
        crate::b2bua::send_in_dialog(
            &self.raw.shared,
            &self.raw.cell,
            call_id,
            method,
            extra,
            body,
        )
        .await
    }

    /// [`Context::send_request`], answering a 401 or 407 once with digest
    /// credentials (`user`, `password`; `sip-auth`): the request is sent
    /// again with CSeq 2 and an `Authorization` / `Proxy-Authorization`
    /// header for the strongest algorithm offered.
    pub async fn send_request_as(
        &self,
        method: &str,
        target: &str,
        body: Option<(&str, bytes::Bytes)>,
        credentials: Option<(&str, &str)>,
    ) -> Result<u16, AppError> {
        let shared = &self.raw.shared;
        let m = sip_message::Method::parse(method)
            .ok_or_else(|| AppError::Build(format!("{method:?} is not a method")))?;
        let call_id = shared.stack.call_id("sb");
        let peer = match shared.pick_edge(&call_id) {
            Some(edge) => sip_message::Peer {
                transport: sip_message::TransportKind::Udp,
                addr: edge,
            },
            None => crate::routing::peer_of_uri(target).await?,
        };
        let from = format!(
            "<sip:{}@{}>;tag={}",
            shared.config.node,
            shared.public_host_port(),
            shared.stack.tag()
        );
        let build = |cseq: u32, authorization: Option<&sip_auth::Authorization>| {
            let mut b = sip_message::RequestBuilder::new(m, target)
                .map_err(|e| AppError::Target {
                    target: target.to_owned(),
                    reason: e.to_string(),
                })?
                .header(
                    "Via",
                    &crate::routing::via(shared, peer.transport, &shared.stack.branch()),
                )
                .header("Max-Forwards", "70")
                .header("From", &from)
                .header("To", &format!("<{target}>"))
                .header("Call-ID", &call_id)
                .header("CSeq", &format!("{cseq} {method}"));
            if let Some(a) = authorization {
                b = b.header(a.header, &a.value);
            }
            if let Some((ct, body)) = &body {
                b = b.body(ct, body.clone());
            }
            b.build().map_err(|e| AppError::Build(e.to_string()))
        };
        let mut cseq = 1;
        let mut request = build(cseq, None)?;
        loop {
            let mut ct = shared
                .stack
                .send_request(request, peer)
                .await
                .map_err(|_| AppError::Stopped)?;
            let fin = loop {
                match ct.next().await {
                    Some(sip_stack::ClientEvent::Response(r)) => {
                        if r.status().is_some_and(|s| s >= 200) {
                            break r;
                        }
                    }
                    Some(sip_stack::ClientEvent::TransportError) => return Ok(503),
                    Some(sip_stack::ClientEvent::Timeout) | None => return Ok(408),
                    Some(_) => {}
                }
            };
            let status = fin.status().unwrap_or(500);
            let kind = match status {
                401 => sip_auth::ChallengeKind::Www,
                407 => sip_auth::ChallengeKind::Proxy,
                _ => return Ok(status),
            };
            let Some((user, password)) = credentials.filter(|_| cseq == 1) else {
                return Ok(status);
            };
            let mut client = sip_auth::DigestClient::new(user, password);
            let Ok(answer) = client.answer(
                kind,
                sip_auth::challenges_of(&fin, kind),
                sip_auth::DigestRequest {
                    method,
                    uri: target,
                },
                &shared.stack.tag(),
            ) else {
                return Ok(status);
            };
            cseq += 1;
            request = build(cseq, Some(&answer))?;
        }
    }

    /// The B2BUA legs of this session (dialogs this container is a user
    /// agent in, with their state and link), as JSR 289's B2buaHelper
    /// shows them.
    #[must_use]
    pub fn b2bua_legs(&self) -> Vec<crate::DialogRecord> {
        self.raw.cell.with(|d| {
            d.record
                .dialogs
                .iter()
                .filter(|x| x.ua.is_some())
                .cloned()
                .collect()
        })
    }

    /// The requests of the leg (a dialog this container is a user agent
    /// in, by Call-ID) that have no final response yet, oldest first
    /// (JSR 289 `B2buaHelper.getPendingMessages`): [`UaMode::Uas`] the
    /// ones received on it and not yet answered, [`UaMode::Uac`] the ones
    /// sent on it (relayed from the other leg, or by
    /// [`Context::send_in_dialog`]) and not yet answered by the peer.
    ///
    /// While the container relays a request to the other leg it does not
    /// hold the session, so a handler that runs meanwhile (a request from
    /// the other side, a timer, an HTTP request) sees the relayed request
    /// pending on both legs. A received request is listed once its turn
    /// to run came (one that waits for the session behind a handler is
    /// not yet). Kept in memory only: transactions do not move to another
    /// container with the session.
    ///
    /// [`UaMode::Uas`]: crate::UaMode::Uas
    /// [`UaMode::Uac`]: crate::UaMode::Uac
    #[must_use]
    pub fn pending_messages(
        &self,
        call_id: &str,
        mode: crate::UaMode,
    ) -> Vec<sip_message::SipMessage> {
        self.raw.cell.pending_messages(call_id, mode)
    }

    /// Unlinks the leg with this Call-ID from its partner (both sides):
    /// requests on either are no longer relayed to the other; the
    /// container answers them itself (BYE ends only that leg), or the
    /// application's handlers do. Returns whether the leg was linked.
    pub fn unlink_leg(&self, call_id: &str) -> bool {
        self.raw.cell.with(|d| {
            let partner = d
                .record
                .dialogs
                .iter_mut()
                .find(|x| x.call_id == call_id)
                .and_then(|x| x.ua.as_mut())
                .and_then(|u| u.link.take());
            if let Some(p) = &partner
                && let Some(u) = d
                    .record
                    .dialogs
                    .iter_mut()
                    .find(|x| x.call_id == *p)
                    .and_then(|x| x.ua.as_mut())
            {
                u.link = None;
            }
            d.dirty |= partner.is_some();
            partner.is_some()
        })
    }

    /// Links two legs of this session (relinking for third-party call
    /// control): from now on requests on one are relayed to the other.
    /// Both must be B2BUA legs of this session; each loses its previous
    /// partner.
    pub fn link_legs(&self, a: &str, b: &str) -> Result<(), AppError> {
        let legs = self.b2bua_legs();
        for c in [a, b] {
            if !legs.iter().any(|l| l.call_id == c) {
                return Err(AppError::Build(format!(
                    "{c} is not a B2BUA leg of this session"
                )));
            }
        }
        self.unlink_leg(a);
        self.unlink_leg(b);
        self.raw.cell.with(|d| {
            for (me, other) in [(a, b), (b, a)] {
                if let Some(u) = d
                    .record
                    .dialogs
                    .iter_mut()
                    .find(|x| x.call_id == me)
                    .and_then(|x| x.ua.as_mut())
                {
                    u.link = Some(other.to_owned());
                }
            }
            d.dirty = true;
        });
        Ok(())
    }

    /// Writes the session to the store now (the container also does it
    /// before any message that reveals the session's state leaves).
    pub async fn commit(&self) -> Result<(), AppError> {
        crate::engine::commit(&self.raw.shared, &self.raw.cell).await
    }
}
