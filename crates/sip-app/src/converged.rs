//! Converged HTTP: applications' HTTP routes on the container's HTTP port,
//! sharing the application session with SIP (JSR 289 §15, the
//! ConvergedHttpSession idea).
//!
//! The session of an HTTP request is the one its `SBSESSION` cookie names,
//! else its `sbt` query parameter (an encoded URL, [`encode_url`]), the
//! same token a SIP dialog of the session carries (docs/CLUSTER.md), so
//! the edge sends both to one container and a survivor loads it from the
//! store after its owner died. A request naming no live session of the
//! application gets a new one. Sessions that HTTP created live until they
//! expire (an HTTP session has no dialog to end it); the response sets the
//! cookie while the session lives.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};

use crate::context::RawContext;
use crate::engine::{Engine, find_or_load, finish};
use crate::session::SessionId;
use crate::{HttpRequest, HttpResponse, TOKEN_PARAM};

/// The cookie that carries the session token.
pub const COOKIE_NAME: &str = "SBSESSION";

/// `url` with the session's token as the `sbt` query parameter, for links
/// a client follows without cookies.
#[must_use]
pub fn encode_url(url: &str, session: &SessionId) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{TOKEN_PARAM}={}", session.as_str())
}

/// The token an HTTP request carries: cookie first, then query.
fn token(req: &HttpRequest) -> Option<SessionId> {
    let from_cookie = req
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .and_then(|(_, v)| SessionId::parse(v.trim()));
    from_cookie.or_else(|| {
        req.uri()
            .query()?
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == TOKEN_PARAM)
            .and_then(|(_, v)| SessionId::parse(v))
    })
}

fn plain(status: u16, text: &str) -> HttpResponse {
    let mut r = http::Response::new(Bytes::from(format!("{text}\n")));
    *r.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

impl Engine {
    /// Serves an HTTP request with the application route it matches:
    /// `None` when no application has one (the container answers 404).
    pub async fn serve_http(&self, req: HttpRequest) -> Option<HttpResponse> {
        let shared = &self.shared;
        let (app, handler) = shared
            .router
            .http(req.method().as_str(), req.uri().path())?;
        shared.stats.http_requests.fetch_add(1, Ordering::Relaxed);
        let existing = match token(&req) {
            Some(id) => find_or_load(shared, &id)
                .await
                .filter(|c| c.with(|d| d.record.app == app.name() && !d.record.invalidated)),
            None => None,
        };
        // An HTTP session ends by expiry, not when "ready".
        let cell = existing.unwrap_or_else(|| crate::engine::new_session(shared, &app, None, true));
        let turn = cell.turn.lock().await;
        let raw = RawContext {
            shared: Arc::clone(shared),
            cell: Arc::clone(&cell),
            listener: app.listener(),
        };
        let result = handler(raw, req).await;
        // Written before the response reveals the session's state.
        let write = crate::engine::commit(shared, &cell).await;
        drop(turn);
        let mut response = match (result, write) {
            (Ok(r), Ok(())) => r,
            (Err(e), _) | (Ok(_), Err(e)) => {
                let (status, reason) = e.response_status();
                plain(
                    if (400..600).contains(&status) {
                        status
                    } else {
                        500
                    },
                    &reason,
                )
            }
        };
        finish(shared, &cell).await;
        let live = shared
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&cell.id);
        if live
            && let Ok(v) =
                http::HeaderValue::from_str(&format!("{COOKIE_NAME}={}; Path=/; HttpOnly", cell.id))
        {
            response.headers_mut().append(SET_COOKIE, v);
        }
        Some(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_cookie_then_the_query() {
        let id = "c2.00000000000000ab";
        let req = http::Request::builder()
            .uri(format!("/x?a=1&sbt={id}"))
            .header(COOKIE, "a=b; SBSESSION=c1.00000000000000cd")
            .body(Bytes::new())
            .unwrap_or_default();
        assert_eq!(
            token(&req).map(|t| t.to_string()).as_deref(),
            Some("c1.00000000000000cd")
        );
        let req = http::Request::builder()
            .uri(format!("/x?a=1&sbt={id}"))
            .body(Bytes::new())
            .unwrap_or_default();
        assert_eq!(token(&req).map(|t| t.to_string()).as_deref(), Some(id));
        let req = http::Request::builder()
            .uri("/x?sbt=../../etc")
            .body(Bytes::new())
            .unwrap_or_default();
        assert_eq!(token(&req), None);
        let s = SessionId::parse(id).unwrap_or_else(|| SessionId::new("c2", 0xab));
        assert_eq!(encode_url("/a?b=1", &s), format!("/a?b=1&sbt={id}"));
        assert_eq!(encode_url("/a", &s), format!("/a?sbt={id}"));
    }
}
