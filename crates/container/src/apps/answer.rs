//! The answering test service: answers INVITE with 180 then 200 and an SDP
//! offer/answer body, accepts MESSAGE and OPTIONS; BYE is answered by the
//! container's default (200, the dialog ends).
//!
//! It is also a converged application: each call records `caller` and
//! `calls` in its application session, and `GET /answer/session` shows the
//! session the request names (cookie `SBSESSION` or `?sbt=`, the token of
//! the call's Contact) as JSON, with the node serving it; `POST
//! /answer/session` with a JSON object sets attributes (a new session when
//! none is named). `POST /answer/timer` with `{"delay_ms": N, "notify":
//! "sip:..."}` sets an application timer on the session: when it fires, on
//! whichever container holds the session then, the service sends a
//! MESSAGE to `notify` saying which node fired it (the failover test's
//! probe).

use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;
use sip_app::{AppError, Context, IncomingRequest};

/// The test service's state.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// Send 180 Ringing before the 200.
    pub ring: bool,
    /// Digest authentication in front (None: open).
    pub auth: Option<crate::auth::AuthLayer>,
}

/// A one-stream PCMU SDP body at `ip`/`port` (also used by `switchboard
/// ua`).
#[must_use]
pub fn sdp(ip: IpAddr, port: u16) -> Bytes {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    Bytes::from(format!(
        "v=0\r\no=switchboard 1 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    ))
}

/// INVITE: (180,) 200 with SDP; the 180 is reliable (100rel, PRACK) when
/// the caller supports it. A re-INVITE is answered the same way.
pub async fn on_invite(cx: Context<Answer>, req: IncomingRequest) -> Result<(), AppError> {
    let Some(req) = crate::auth::admit(cx.state().auth.as_ref(), req, cx.stack()).await? else {
        return Ok(());
    };
    if cx.state().ring && !req.is_in_dialog() {
        if req.supports_100rel() {
            // RFC 3262: a reliable 180, and the 200 once it is PRACKed.
            req.provisional_reliable(180).await?;
        } else {
            req.provisional(180)?;
        }
    }
    if !req.is_in_dialog() {
        let calls = cx.session().get::<u64>("calls")?.unwrap_or(0) + 1;
        cx.session().set("calls", &calls)?;
        let caller = req
            .request()
            .typed::<sip_message::headers::From<'_>>()
            .and_then(Result::ok)
            .map(|f| f.uri().as_str().to_owned());
        cx.session().set("caller", &caller)?;
    }
    let ip = cx
        .stack()
        .local_addr(sip_message::TransportKind::Udp)
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
    req.accept_with("application/sdp", sdp(ip, 9)).await
}

/// MESSAGE, OPTIONS: 200.
pub async fn on_ok(cx: Context<Answer>, req: IncomingRequest) -> Result<(), AppError> {
    let Some(req) = crate::auth::admit(cx.state().auth.as_ref(), req, cx.stack()).await? else {
        return Ok(());
    };
    req.accept().await
}

/// The session as JSON: id, the node serving it, attributes.
fn session_json(cx: &Context<Answer>) -> Result<sip_app::HttpResponse, AppError> {
    let s = cx.session();
    let mut attributes = serde_json::Map::new();
    for name in s.names() {
        if let Some(v) = s.get::<serde_json::Value>(&name)? {
            attributes.insert(name, v);
        }
    }
    let body = serde_json::json!({
        "session": s.id().as_str(),
        "node": cx.node(),
        "attributes": attributes,
    });
    let mut r = sip_app::HttpResponse::new(Bytes::from(body.to_string()));
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// `GET /answer/session`.
pub async fn http_get(
    cx: Context<Answer>,
    _req: sip_app::HttpRequest,
) -> Result<sip_app::HttpResponse, AppError> {
    session_json(&cx)
}

/// `POST /answer/session`: a JSON object's members become attributes.
pub async fn http_post(
    cx: Context<Answer>,
    req: sip_app::HttpRequest,
) -> Result<sip_app::HttpResponse, AppError> {
    let v: serde_json::Value = serde_json::from_slice(req.body())
        .map_err(|e| AppError::with_reason(400, format!("the body is not JSON: {e}")))?;
    let serde_json::Value::Object(members) = v else {
        return Err(AppError::with_reason(400, "the body is not a JSON object"));
    };
    for (k, v) in members {
        cx.session().set(&k, &v)?;
    }
    session_json(&cx)
}

/// `POST /answer/timer`: `{"delay_ms": N, "notify": "sip:..."}`.
pub async fn http_timer(
    cx: Context<Answer>,
    req: sip_app::HttpRequest,
) -> Result<sip_app::HttpResponse, AppError> {
    #[derive(serde::Deserialize)]
    struct Ask {
        delay_ms: u64,
        notify: String,
    }
    let ask: Ask = serde_json::from_slice(req.body())
        .map_err(|e| AppError::with_reason(400, format!("want {{delay_ms, notify}}: {e}")))?;
    cx.set_timer(
        "notify",
        std::time::Duration::from_millis(ask.delay_ms),
        None,
        serde_json::json!({ "notify": ask.notify }),
    );
    session_json(&cx)
}

/// A timer fired: MESSAGE to the URI it names, saying who fired it.
pub async fn on_timer(cx: Context<Answer>, t: sip_app::TimerEvent) -> Result<(), AppError> {
    let Some(target) = t.payload.get("notify").and_then(|v| v.as_str()) else {
        return Ok(());
    };
    let text = format!(
        "timer {} of session {} fired on {}",
        t.id,
        cx.session_id(),
        cx.node()
    );
    let status = cx
        .send_request("MESSAGE", target, Some(("text/plain", Bytes::from(text))))
        .await?;
    tracing::debug!(status, "timer notification sent");
    Ok(())
}
