//! The proxy to registered users: an initial request for an address of
//! record goes to its registered contacts (parallel fork when they share a
//! q value, in q order otherwise, §16.6); a request for a URI that is not
//! one of our domains goes on to that URI (an outbound proxy).

use sip_app::{AppError, Context, IncomingRequest, ProxyOptions};

use super::location::{Location, canonical_aor_of};

/// The proxy's state.
#[derive(Debug, Clone)]
pub struct ProxyApp {
    /// Where bindings live.
    pub location: Location,
    /// Domains this cluster is responsible for. Empty: every domain (a
    /// development set-up), so only unregistered users fail.
    pub domains: Vec<String>,
    /// Static next hops for users with no registered contact (see
    /// `proxy_routes` in the config); a hop silent for 1 s is skipped.
    pub routes: Vec<String>,
    /// Digest authentication in front (None: open).
    pub auth: Option<crate::auth::AuthLayer>,
}

/// Handles any initial request routed to the proxy.
pub async fn on_request(cx: Context<ProxyApp>, req: IncomingRequest) -> Result<(), AppError> {
    let Some(req) = crate::auth::admit(cx.state().auth.as_ref(), req, cx.stack()).await? else {
        return Ok(());
    };
    // The Request-URI, parsed once for the address of record and the host.
    let (aor, host) = match req.request().request_uri() {
        Some(sip_message::Uri::Sip(s)) => (canonical_aor_of(&s), s.host_str().to_ascii_lowercase()),
        _ => return Err(AppError::with_reason(416, "Unsupported URI Scheme")),
    };
    let state = cx.state();
    let ours =
        state.domains.is_empty() || state.domains.iter().any(|d| d.eq_ignore_ascii_case(&host));
    let (bindings, _) = state.location.lookup(&aor, sip_app::unix_ms()).await?;
    if bindings.is_empty() && ours && !state.routes.is_empty() {
        // The dispatcher set: a hash of the Call-ID picks the first hop
        // (the same call always lands on the same one), the others follow.
        let n = state.routes.len();
        let call_id = req.request().call_id().unwrap_or("");
        let first = usize::try_from(fnv1a(call_id) % n as u64).unwrap_or(0);
        let mut options =
            ProxyOptions::to((0..n).filter_map(|i| state.routes.get((first + i) % n).cloned()));
        options.parallel = false;
        options.no_response_timeout = Some(std::time::Duration::from_secs(1));
        req.proxy(options).await?;
        return Ok(());
    }
    if bindings.is_empty() {
        if !ours {
            // Not our domain: forward to the Request-URI.
            let uri = req.request().request_uri_str().unwrap_or("").to_owned();
            req.proxy(ProxyOptions::to([uri])).await?;
            return Ok(());
        }
        return Err(AppError::with_reason(
            404,
            "Not Found (no registered contact)",
        ));
    }
    let same_q = bindings
        .windows(2)
        .all(|w| matches!(w, [a, b] if a.q == b.q));
    let mut options = ProxyOptions::to(bindings.into_iter().map(|b| b.contact));
    options.parallel = same_q;
    req.proxy(options).await?;
    Ok(())
}

/// FNV-1a, 64 bits: a stable hash of the Call-ID.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
