//! `switchboard inspect`: one raw message in, JSON out.

use bytes::Bytes;
use serde_json::{Map, Value, json};
use sip_message::headers::{CSeq, CallId, Contact, From, MaxForwards, RecordRoute, Route, To, Via};
use sip_message::{Limits, NameAddr, Role, SipMessage, Transport, Uri, validate};

/// What `inspect` prints, and whether the message was valid.
pub(crate) struct Report {
    pub(crate) json: String,
    pub(crate) valid: bool,
}

pub(crate) fn inspect(bytes: Bytes, forward: bool, stream: bool) -> Report {
    let transport = if stream {
        Transport::Stream
    } else {
        Transport::Datagram
    };
    let role = if forward { Role::Forward } else { Role::Uas };
    let msg = match SipMessage::parse_with(bytes, transport, &Limits::default()) {
        Ok(m) => m,
        Err(e) => {
            let out = json!({
                "valid": false,
                "stage": "parse",
                "status": e.status(),
                "error": e.to_string(),
            });
            return Report {
                json: pretty(&out),
                valid: false,
            };
        }
    };
    let mut out = describe(&msg);
    let valid = match validate(&msg, role) {
        Ok(()) => true,
        Err(e) => {
            out.insert("stage".into(), json!("validate"));
            out.insert("status".into(), json!(e.status()));
            out.insert("reason".into(), json!(e.reason_phrase()));
            out.insert("error".into(), json!(e.to_string()));
            false
        }
    };
    out.insert("valid".into(), json!(valid));
    out.insert("role".into(), json!(role.to_string()));
    Report {
        json: pretty(&Value::Object(out)),
        valid,
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// Typed values, or the header error as a string, so a malformed header
/// still shows what is wrong with it.
fn or_error<T>(
    r: Option<Result<T, sip_message::HeaderError>>,
    f: impl FnOnce(T) -> Value,
) -> Value {
    match r {
        None => Value::Null,
        Some(Ok(v)) => f(v),
        Some(Err(e)) => json!({ "error": e.to_string() }),
    }
}

fn uri_json(u: &Uri<'_>) -> Value {
    match u {
        Uri::Sip(s) => json!({
            "uri": s.as_str(),
            "scheme": if s.is_secure() { "sips" } else { "sip" },
            "user": s.user(),
            "host": s.host().to_string(),
            "port": s.port(),
            "params": s.params().iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
            "headers": s.headers(),
        }),
        Uri::Tel(t) => json!({ "uri": t.to_string(), "scheme": "tel", "number": t.number() }),
        Uri::Other(o) => json!({ "uri": o.to_string(), "scheme": o.scheme() }),
    }
}

fn addr_json(a: &NameAddr<'_>) -> Value {
    json!({
        "display_name": a.display_name(),
        "uri": uri_json(a.uri()),
        "tag": a.tag(),
        "params": a.params().iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
    })
}

fn list<T>(
    items: impl Iterator<Item = Result<T, sip_message::HeaderError>>,
    f: impl Fn(T) -> Value,
) -> Value {
    Value::Array(
        items
            .map(|r| match r {
                Ok(v) => f(v),
                Err(e) => json!({ "error": e.to_string() }),
            })
            .collect(),
    )
}

fn describe(msg: &SipMessage) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("start_line".into(), json!(msg.start_line_str()));
    if msg.is_request() {
        m.insert("type".into(), json!("request"));
        m.insert(
            "method".into(),
            json!(msg.method().map(|x| x.as_str().to_owned())),
        );
        m.insert(
            "request_uri".into(),
            msg.request_uri().map_or(Value::Null, |u| uri_json(&u)),
        );
    } else {
        m.insert("type".into(), json!("response"));
        m.insert("status_code".into(), json!(msg.status()));
        m.insert("reason_phrase".into(), json!(msg.reason()));
    }
    m.insert("version".into(), json!(msg.version()));
    m.insert(
        "via".into(),
        list(msg.typed_all::<Via<'_>>(), |v| {
            json!({
                "transport": v.transport(),
                "host": v.host().to_string(),
                "port": v.port(),
                "branch": v.branch(),
                "received": v.received().map(|a| a.to_string()),
                "rport": v.rport().map(|p| p.map_or(Value::Bool(true), |n| json!(n))),
                "maddr": v.maddr().map(|h| h.to_string()),
                "ttl": v.ttl(),
            })
        }),
    );
    m.insert(
        "from".into(),
        or_error(msg.typed::<From<'_>>(), |f| addr_json(&f)),
    );
    m.insert(
        "to".into(),
        or_error(msg.typed::<To<'_>>(), |t| addr_json(&t)),
    );
    m.insert(
        "call_id".into(),
        or_error(msg.typed::<CallId<'_>>(), |c| json!(c.0)),
    );
    m.insert(
        "cseq".into(),
        or_error(
            msg.typed::<CSeq<'_>>(),
            |c| json!({ "seq": c.seq, "method": c.method.as_str() }),
        ),
    );
    m.insert(
        "max_forwards".into(),
        or_error(msg.typed::<MaxForwards>(), |mf| json!(mf.0)),
    );
    m.insert(
        "route".into(),
        list(msg.typed_all::<Route<'_>>(), |r| addr_json(&r)),
    );
    m.insert(
        "record_route".into(),
        list(msg.typed_all::<RecordRoute<'_>>(), |r| addr_json(&r)),
    );
    m.insert(
        "contact".into(),
        list(msg.typed_all::<Contact<'_>>(), |c| match c.addr() {
            None => json!("*"),
            Some(a) => {
                let mut v = addr_json(a);
                if let Value::Object(o) = &mut v {
                    o.insert("expires".into(), json!(c.expires()));
                    o.insert("q".into(), json!(c.q().map(|q| f64::from(q) / 1000.0)));
                }
                v
            }
        }),
    );
    m.insert("content_length".into(), json!(msg.content_length()));
    m.insert("body_length".into(), json!(msg.body().len()));
    m.insert("header_lines".into(), json!(msg.headers().count()));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid() {
        let ok = inspect(
            Bytes::from_static(
                b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            ),
            false,
            false,
        );
        assert!(ok.valid, "{}", ok.json);
        let v: Value = serde_json::from_str(&ok.json).unwrap();
        assert_eq!(v["via"][0]["branch"], "z9hG4bK1");
        assert_eq!(v["from"]["tag"], "1");

        let bad = inspect(
            Bytes::from_static(b"OPTIONS sip:a@b SIP/7.0\r\n\r\n"),
            false,
            false,
        );
        assert!(!bad.valid);
        let v: Value = serde_json::from_str(&bad.json).unwrap();
        assert_eq!(v["status"], 505);

        let garbage = inspect(Bytes::from_static(b"\x00\x01hello"), false, false);
        assert!(!garbage.valid);
        let v: Value = serde_json::from_str(&garbage.json).unwrap();
        assert_eq!(v["stage"], "parse");
        assert_eq!(v["status"], 400);
    }
}
