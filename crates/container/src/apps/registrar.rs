//! The registrar (RFC 3261 §10.3, RFC 5626 §6, RFC 3327): binds an address
//! of record to contacts in the location service.
//!
//! * Several contacts per AOR, each with its own expiry (the `expires`
//!   parameter, else the Expires header, else the default) and q value.
//! * `Contact: *` with `Expires: 0` removes every binding; `*` with
//!   anything else is a 400.
//! * An expiry under Min-Expires is refused with 423 and Min-Expires.
//! * A REGISTER with the Call-ID of a binding and a CSeq not above it is
//!   out of order and refused (§10.3 step 7).
//! * RFC 5626: a binding with `+sip.instance` (and `reg-id`) replaces the
//!   binding of the same instance (and reg-id) whatever its URI.
//! * The 200 lists every current binding with its remaining expiry.

use std::time::Duration;

use sip_app::{AppError, Context, IncomingRequest};
use sip_message::headers::{CSeq, Contact, Expires, To};

use super::location::{Binding, Location, canonical_aor};

/// The registrar's settings.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// Shortest accepted registration (423 below it).
    pub min_expires: Duration,
    /// Longest granted registration (longer requests are shortened).
    pub max_expires: Duration,
    /// Expiry when the request names none.
    pub default_expires: Duration,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(7200),
            default_expires: Duration::from_secs(3600),
        }
    }
}

/// The registrar's state.
#[derive(Debug, Clone)]
pub struct Registrar {
    /// Where bindings live.
    pub location: Location,
    /// Settings.
    pub config: RegistrarConfig,
    /// Digest authentication in front (None: open).
    pub auth: Option<crate::auth::AuthLayer>,
}

fn bad(reason: &str) -> AppError {
    AppError::with_reason(400, format!("Bad Request ({reason})"))
}

/// One Contact of the REGISTER, read.
struct Requested {
    uri: String,
    expires: u64,
    q: u16,
    instance: Option<String>,
    reg_id: Option<u32>,
}

/// Handles a REGISTER.
pub async fn on_register(cx: Context<Registrar>, req: IncomingRequest) -> Result<(), AppError> {
    let Some(req) = crate::auth::admit(cx.state().auth.as_ref(), req, cx.stack()).await? else {
        return Ok(());
    };
    let r = req.request();
    let to = r
        .typed::<To<'_>>()
        .ok_or_else(|| bad("no To"))?
        .map_err(|_| bad("unreadable To"))?;
    let aor = canonical_aor(to.uri().as_str()).ok_or_else(|| bad("To is not a SIP URI"))?;
    let call_id = r.call_id().ok_or_else(|| bad("no Call-ID"))?.to_owned();
    let cseq = r
        .typed::<CSeq<'_>>()
        .and_then(Result::ok)
        .map(|c| c.seq)
        .ok_or_else(|| bad("no CSeq"))?;
    let header_expires = match r.typed::<Expires>() {
        None => None,
        Some(Ok(Expires(e))) => Some(u64::from(e)),
        Some(Err(_)) => return Err(bad("unreadable Expires")),
    };
    let state = cx.state();
    let cfg = &state.config;
    let mut star = false;
    let mut wanted = Vec::new();
    for c in r.typed_all::<Contact<'_>>() {
        match c.map_err(|_| bad("unreadable Contact"))? {
            Contact::Star => star = true,
            Contact::Addr(a) => {
                let p = a.params();
                let expires = match p.get("expires").flatten() {
                    Some(v) => v
                        .parse::<u64>()
                        .map_err(|_| bad("unreadable expires parameter"))?,
                    None => header_expires.unwrap_or(cfg.default_expires.as_secs()),
                };
                let q = match p.get("q").flatten() {
                    Some(v) => parse_q(v).ok_or_else(|| bad("q must be 0 to 1"))?,
                    None => 1000,
                };
                wanted.push(Requested {
                    uri: a.uri().as_str().to_owned(),
                    expires,
                    q,
                    instance: p
                        .get("+sip.instance")
                        .flatten()
                        .map(|s| s.trim_matches('"').to_owned()),
                    reg_id: p.get("reg-id").flatten().and_then(|v| v.parse().ok()),
                });
            }
        }
    }
    if star && (!wanted.is_empty() || header_expires != Some(0)) {
        return Err(bad("Contact: * needs Expires: 0 and no other Contact"));
    }
    // §10.3 step 7: Min-Expires.
    let min = cfg.min_expires.as_secs();
    if wanted.iter().any(|w| w.expires > 0 && w.expires < min) {
        let resp = req
            .response(423, Some("Interval Too Brief"))?
            .header("Min-Expires", &min.to_string());
        return req.send(resp, 423).await;
    }
    let paths: Vec<String> = r
        .values(sip_message::HeaderName::Path)
        .filter_map(Result::ok)
        .map(str::to_owned)
        .collect();
    let now = sip_app::unix_ms();
    // Read, change, compare-and-set; a concurrent REGISTER for the AOR
    // makes us read again.
    let mut attempt = 0;
    let bindings = loop {
        attempt += 1;
        let (mut bindings, version) = state.location.lookup(&aor, now).await?;
        if star {
            bindings.clear();
        }
        for w in &wanted {
            let pos = bindings
                .iter()
                .position(|b| match (&w.instance, &b.instance) {
                    (Some(i), Some(j)) => i == j && w.reg_id == b.reg_id,
                    _ => same_uri(&b.contact, &w.uri),
                });
            if let Some(i) = pos
                && let Some(b) = bindings.get(i)
                && b.call_id == call_id
                && cseq <= b.cseq
            {
                return Err(AppError::with_reason(
                    500,
                    "Server Internal Error (REGISTER out of order)",
                ));
            }
            if let Some(i) = pos {
                bindings.remove(i);
            }
            if w.expires > 0 {
                let secs = w.expires.min(cfg.max_expires.as_secs());
                bindings.push(Binding {
                    contact: w.uri.clone(),
                    expires_unix_ms: now + secs * 1000,
                    q: w.q,
                    call_id: call_id.clone(),
                    cseq,
                    instance: w.instance.clone(),
                    reg_id: w.reg_id,
                    path: paths.clone(),
                });
            }
        }
        match state.location.store(&aor, &bindings, version, now).await {
            Ok(()) => break bindings,
            Err(session_store::StoreError::Conflict { .. }) if attempt < 5 => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut resp = req.response(200, None)?;
    for b in &bindings {
        let left = b.expires_unix_ms.saturating_sub(now).div_ceil(1000);
        resp = resp.header("Contact", &format!("<{}>;expires={left}", b.contact));
    }
    req.send(resp, 200).await
}

/// `q` is 0 to 1 with up to three decimals (§20.10).
fn parse_q(v: &str) -> Option<u16> {
    let f: f64 = v.parse().ok()?;
    (0.0..=1.0)
        .contains(&f)
        .then(|| (f * 1000.0).round() as u16)
}

/// URI equality for bindings (§19.1.4).
fn same_uri(a: &str, b: &str) -> bool {
    match (sip_message::Uri::parse(a), sip_message::Uri::parse(b)) {
        (Ok(x), Ok(y)) => x.eq_rfc(&y),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values() {
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("x"), None);
    }

    #[test]
    fn binding_uris_compare_by_rfc() {
        assert!(same_uri("sip:a@EXAMPLE.com", "sip:a@example.com"));
        assert!(!same_uri("sip:a@example.com", "sip:b@example.com"));
    }
}
