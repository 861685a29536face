//! Call screening, an application meant to run first in a composition
//! (a DAR file chain, `[apps] router`): a request from a blocked caller is
//! declined with 603; any other goes on to the next application of the
//! chain (or, last in a chain, on to its Request-URI).
//!
//! A blocked entry is a caller URI (`sip:spam@example.com`, compared
//! without parameters, case-insensitively) or `*@domain` for a whole
//! domain.

use sip_app::{AppError, Context, IncomingRequest};
use sip_message::headers::From;

/// The screening service's state.
#[derive(Debug, Clone, Default)]
pub struct Screening {
    /// Blocked callers: URIs or `*@domain`.
    pub blocked: Vec<String>,
}

impl Screening {
    /// Whether a caller (From URI user and host) is blocked.
    #[must_use]
    pub fn blocks(&self, user: Option<&str>, host: &str) -> bool {
        self.blocked.iter().any(|b| {
            let b = b.trim_start_matches("sip:").trim_start_matches("sips:");
            let (bu, bh) = b.split_once('@').unwrap_or(("", b));
            bh.eq_ignore_ascii_case(host)
                && (bu == "*" || user.is_some_and(|u| u.eq_ignore_ascii_case(bu)))
        })
    }
}

/// Any initial request.
pub async fn on_request(cx: Context<Screening>, req: IncomingRequest) -> Result<(), AppError> {
    let caller = req
        .request()
        .typed::<From<'_>>()
        .and_then(Result::ok)
        .and_then(|f| {
            f.uri()
                .as_sip()
                .map(|u| (u.user().map(str::to_owned), u.host_str().to_owned()))
        });
    if let Some((user, host)) = &caller
        && cx.state().blocks(user.as_deref(), host)
    {
        return Err(AppError::with_reason(603, "Decline (caller screened)"));
    }
    cx.session().set("screened", &true)?;
    let target = req.request().request_uri_str().unwrap_or("").to_owned();
    req.proxy_to(&target).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_callers_by_uri_and_domain() {
        let s = Screening {
            blocked: vec!["sip:spam@example.com".into(), "*@bad.example".into()],
        };
        assert!(s.blocks(Some("spam"), "example.com"));
        assert!(s.blocks(Some("SPAM"), "EXAMPLE.com"));
        assert!(s.blocks(Some("anyone"), "bad.example"));
        assert!(!s.blocks(Some("alice"), "example.com"));
        assert!(!s.blocks(None, "example.com"));
    }
}
