//! The answering test service: answers INVITE with 180 then 200 and an SDP
//! offer/answer body, accepts MESSAGE and OPTIONS; BYE is answered by the
//! container's default (200, the dialog ends).

use bytes::Bytes;
use sip_app::{AppError, Context, IncomingRequest};

/// The test service's state.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// Send 180 Ringing before the 200.
    pub ring: bool,
}

fn sdp(host: &str) -> Bytes {
    let (family, ip) = if host.contains(':') {
        ("IP6", host)
    } else {
        ("IP4", host)
    };
    Bytes::from(format!(
        "v=0\r\no=switchboard 1 1 IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    ))
}

/// INVITE: (180,) 200 with SDP. A re-INVITE is answered the same way.
pub async fn on_invite(cx: Context<Answer>, req: IncomingRequest) -> Result<(), AppError> {
    if cx.state().ring && !req.is_in_dialog() {
        req.provisional(180)?;
    }
    let host = cx
        .stack()
        .local_addr(sip_message::TransportKind::Udp)
        .map_or_else(|| "127.0.0.1".to_owned(), |a| a.ip().to_string());
    req.accept_with("application/sdp", sdp(&host)).await
}

/// MESSAGE, OPTIONS: 200.
pub async fn on_ok(_cx: Context<Answer>, req: IncomingRequest) -> Result<(), AppError> {
    req.accept().await
}
