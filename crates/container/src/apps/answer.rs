//! The answering test service: answers INVITE with 180 then 200 and an SDP
//! offer/answer body, accepts MESSAGE and OPTIONS; BYE is answered by the
//! container's default (200, the dialog ends).

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

/// INVITE: (180,) 200 with SDP. A re-INVITE is answered the same way.
pub async fn on_invite(cx: Context<Answer>, req: IncomingRequest) -> Result<(), AppError> {
    let Some(req) = crate::auth::admit(cx.state().auth.as_ref(), req, cx.stack()).await? else {
        return Ok(());
    };
    if cx.state().ring && !req.is_in_dialog() {
        req.provisional(180)?;
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
