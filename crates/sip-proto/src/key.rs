//! Transaction matching keys (RFC 3261 §17.1.3, §17.2.3) and the dialog key
//! that matches an ACK to the 2xx it acknowledges (§13.3.1.4, §17.2.1 via
//! RFC 6026).

use sip_message::{Method, SipMessage};

/// The magic cookie that marks an RFC 3261 branch (§8.1.1.7).
pub(crate) const MAGIC_COOKIE: &str = "z9hG4bK";

/// How the endpoint finds a transaction from a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TxKey {
    /// A client transaction: top Via branch and CSeq method (§17.1.3).
    Client { branch: Box<str>, method: Box<str> },
    /// A server transaction with an RFC 3261 branch: branch, sent-by and
    /// method, ACK counting as INVITE (§17.2.3).
    Server {
        branch: Box<str>,
        sent_by: Box<str>,
        method: Box<str>,
    },
    /// A server transaction from an RFC 2543 peer (no magic cookie): the
    /// request's identifying headers (§17.2.3, last paragraphs). The To tag
    /// is left out so that the ACK, which carries the tag our response
    /// added, matches its INVITE.
    Legacy {
        request_uri: Box<str>,
        call_id: Box<str>,
        from_tag: Box<str>,
        cseq: u32,
        via: Box<str>,
        method: Box<str>,
    },
}

fn method_class(m: Method<'_>) -> &str {
    match m {
        // §17.2.3: the ACK matches the INVITE's transaction.
        Method::Ack => "INVITE",
        other => other.as_str(),
    }
}

fn sent_by(via: &sip_message::TopVia<'_>) -> Box<str> {
    let mut s = String::with_capacity(via.host.len() + 6);
    s.push_str(via.host);
    s.make_ascii_lowercase();
    if let Some(p) = via.port {
        s.push(':');
        s.push_str(&p.to_string());
    }
    s.into_boxed_str()
}

impl TxKey {
    /// The server key of a request, with `method` overriding the request's
    /// method (CANCEL looks for its INVITE under `INVITE`, §9.2).
    pub(crate) fn server(msg: &SipMessage, method: Option<&str>) -> Option<TxKey> {
        let via = msg.top_via()?;
        let req_method = msg.method()?;
        let method: Box<str> = method.unwrap_or_else(|| method_class(req_method)).into();
        match via.branch {
            Some(b) if b.starts_with(MAGIC_COOKIE) => Some(TxKey::Server {
                branch: b.into(),
                sent_by: sent_by(&via),
                method,
            }),
            _ => {
                let (cseq, _) = msg.cseq()?;
                let via_raw = msg.values(sip_message::HeaderName::Via).next()?.ok()?;
                Some(TxKey::Legacy {
                    request_uri: msg.request_uri_str()?.into(),
                    call_id: msg.call_id()?.into(),
                    from_tag: msg.from_tag().unwrap_or("").into(),
                    cseq,
                    via: via_raw.into(),
                    method,
                })
            }
        }
    }

    /// The client key a response matches (§17.1.3).
    pub(crate) fn client_for_response(msg: &SipMessage) -> Option<TxKey> {
        Some(TxKey::Client {
            branch: msg.top_branch()?.into(),
            method: msg.cseq()?.1.as_str().into(),
        })
    }

    /// The client key of a request we send.
    pub(crate) fn client_for_request(msg: &SipMessage) -> Option<TxKey> {
        Some(TxKey::Client {
            branch: msg.top_branch()?.into(),
            method: msg.method()?.as_str().into(),
        })
    }
}

/// Matches an ACK for a 2xx to the INVITE server transaction that sent the
/// 2xx: Call-ID, From tag, To tag and CSeq number (§12, §13.3.1.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct AckKey {
    call_id: Box<str>,
    from_tag: Box<str>,
    to_tag: Box<str>,
    cseq: u32,
}

impl AckKey {
    /// The key of a message (a 2xx response or an ACK).
    pub(crate) fn of(msg: &SipMessage) -> Option<AckKey> {
        Some(AckKey {
            call_id: msg.call_id()?.into(),
            from_tag: msg.from_tag().unwrap_or("").into(),
            to_tag: msg.to_tag().unwrap_or("").into(),
            cseq: msg.cseq()?.0,
        })
    }

    /// The key of the 2xx a server transaction sends: Call-ID, From tag and
    /// CSeq from its request (parsed already), the To tag from the response
    /// (the only part the UAS chose).
    pub(crate) fn of_2xx(request: &SipMessage, response: &SipMessage) -> Option<AckKey> {
        // The To tag as the ACK's key reads it (`AckKey::of`), from the
        // response's identifiers.
        response.call_id()?;
        Some(AckKey {
            call_id: request.call_id()?.into(),
            from_tag: request.from_tag().unwrap_or("").into(),
            to_tag: response.to_tag().unwrap_or("").into(),
            cseq: request.cseq()?.0,
        })
    }
}
