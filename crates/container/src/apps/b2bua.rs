//! The B2BUA service: an INVITE for `<prefix><user>@domain` is answered
//! back to back (see `sip_app::B2buaOptions`), leg B going to the
//! registered contact of `<user>@domain` with the highest q. Both legs are
//! in the application session, so BYE and re-INVITE from either side are
//! relayed to the other, by whichever container holds the session.

use sip_app::{AppError, B2buaOptions, Context, IncomingRequest};

use super::location::{Location, canonical_aor};

/// The service's state.
#[derive(Debug, Clone)]
pub struct B2bua {
    /// Where bindings live.
    pub location: Location,
    /// The user prefix that selects the service.
    pub prefix: String,
    /// Credentials for a 401/407 from leg B's side.
    pub credentials: Option<(String, String)>,
    /// Digest authentication in front (None: open).
    pub auth: Option<crate::auth::AuthLayer>,
}

/// INVITE for `<prefix><user>`: leg B to `<user>`'s contact.
pub async fn on_invite(cx: Context<B2bua>, req: IncomingRequest) -> Result<(), AppError> {
    let Some(req) = crate::auth::admit(cx.state().auth.as_ref(), req, cx.stack()).await? else {
        return Ok(());
    };
    let uri = req.request().request_uri_str().unwrap_or("").to_owned();
    let parsed = sip_message::Uri::parse(&uri).ok().and_then(|u| {
        u.as_sip().map(|s| {
            let host = match s.port() {
                Some(p) => format!("{}:{p}", s.host_str()),
                None => s.host_str().to_owned(),
            };
            (s.user().map(str::to_owned), host)
        })
    });
    let Some((Some(user), host)) = parsed else {
        return Err(AppError::with_reason(416, "Unsupported URI Scheme"));
    };
    let callee = user
        .strip_prefix(&cx.state().prefix)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| AppError::with_reason(404, "Not Found (no user after the B2BUA prefix)"))?;
    let aor = canonical_aor(&format!("sip:{callee}@{host}"))
        .ok_or_else(|| AppError::with_reason(404, "Not Found (bad user)"))?;
    let (bindings, _) = cx.state().location.lookup(&aor, sip_app::unix_ms()).await?;
    let Some(best) = bindings.iter().max_by_key(|b| b.q) else {
        return Err(AppError::with_reason(
            404,
            "Not Found (no registered contact)",
        ));
    };
    let mut options = B2buaOptions::to(best.contact.clone());
    options.to = Some(aor);
    options.credentials = cx.state().credentials.clone();
    req.b2bua(options).await?;
    Ok(())
}
