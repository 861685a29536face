//! Light readers of the identifiers every message is matched by: the top
//! Via's transport, sent-by, `rport` and `branch`, and the `tag` of From
//! and To.
//!
//! Written by hand next to the typed parsers ([`crate::headers`]) because
//! they run on every message a proxy receives and on every message it
//! builds by editing another, while the typed parsers check the whole
//! grammar (host syntax, every parameter's value, display names, URIs).
//! These readers only find the pieces: a value the typed parser accepts
//! gives the same pieces here. Messages from the network are checked by
//! [`crate::validate`] (the top Via in full in either role, From and To
//! in full for a UAS), so leniency here never lets a malformed message
//! through the validation.

use crate::scan::{Cursor, is_lws, is_token, is_token_str, parse_decimal};

/// The pieces of a Via value the transport and transaction layers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ViaPieces<'a> {
    pub(crate) transport: &'a str,
    /// As written: an IPv6 reference keeps its brackets.
    pub(crate) host: &'a str,
    pub(crate) port: Option<u16>,
    /// `None`: no rport; `Some(None)`: bare; `Some(Some(p))`: filled.
    pub(crate) rport: Option<Option<u16>>,
    pub(crate) branch: Option<&'a str>,
}

/// `name [= value]` after a `;`; the value a token, a host (IPv6
/// references) or a quoted string (returned without its quotes, escapes
/// left as written).
fn param<'a>(c: &mut Cursor<'a>) -> Option<(&'a str, Option<&'a str>)> {
    c.skip_ws();
    let name = c.token().ok()?;
    if !c.eat_sep(b'=') {
        c.skip_ws();
        return Some((name, None));
    }
    let value = if c.peek() == Some(b'"') {
        c.quoted().ok()?
    } else {
        let v = c.take_while(|b| is_token(b) || matches!(b, b'[' | b']' | b':'));
        if v.is_empty() {
            return None;
        }
        v
    };
    c.skip_ws();
    Some((name, Some(value)))
}

/// A port: leading zeros allowed, as the typed parser allows them.
fn port_number(digits: &str) -> Option<u16> {
    parse_decimal(digits, u64::from(u16::MAX))
        .ok()
        .and_then(|p| u16::try_from(p).ok())
}

/// The first Via of a Via header value; `None` when it is malformed.
pub(crate) fn top_via(value: &str) -> Option<ViaPieces<'_>> {
    let mut c = Cursor::new(value);
    c.skip_ws();
    // sent-protocol = name SLASH version SLASH transport (SWS around).
    c.token().ok()?;
    if !c.eat_sep(b'/') {
        return None;
    }
    c.token().ok()?;
    if !c.eat_sep(b'/') {
        return None;
    }
    let transport = c.token().ok()?;
    if !c.skip_ws() {
        return None;
    }
    let host = if c.peek() == Some(b'[') {
        let start = c.pos();
        c.take_while(|b| b != b']');
        if !c.eat(b']') {
            return None;
        }
        c.slice(start, c.pos())
    } else {
        c.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    if host.is_empty() {
        return None;
    }
    let port = if c.eat_sep(b':') {
        Some(port_number(c.take_while(|b| b.is_ascii_digit()))?)
    } else {
        None
    };
    let mut rport = None;
    let mut branch = None;
    while c.eat_sep(b';') {
        let (name, v) = param(&mut c)?;
        // The first of a repeated parameter counts, as in `Params::get`.
        if name.eq_ignore_ascii_case("branch") {
            let b = v.filter(|b| is_token_str(b))?;
            branch = branch.or(Some(b));
        } else if name.eq_ignore_ascii_case("rport") {
            let p = match v {
                None => None,
                Some(p) => Some(port_number(p)?),
            };
            rport = rport.or(Some(p));
        }
    }
    c.skip_ws();
    // The next Via of a list, or the end.
    matches!(c.peek(), None | Some(b',')).then_some(ViaPieces {
        transport,
        host,
        port,
        rport,
        branch,
    })
}

/// The `tag` of a From or To value: `Ok(None)` without one, `Err` when
/// the value's framing (quotes, angle brackets, header parameters) is
/// broken or the tag is not a token. The URI is not read. The three forms
/// are told apart as the typed parser (`NameAddr`) does: a quoted display
/// name, then `<uri>`; `<uri>`; display-name tokens before a `<` that no
/// `;` or `"` precedes; otherwise an addr-spec, whose URI runs to the
/// first `;` or whitespace (§20.10: what follows are header parameters).
pub(crate) fn tag(value: &str) -> Result<Option<&str>, ()> {
    let mut c = Cursor::new(value);
    c.skip_ws();
    match c.peek() {
        None => return Err(()),
        Some(b'"') => {
            c.quoted().map_err(drop)?;
            c.skip_ws();
            angle(&mut c)?;
        }
        Some(b'<') => angle(&mut c)?,
        Some(_) if token_display_name(c.rest()) => {
            // display-name = *(token LWS)
            let before = c.take_while(|b| b != b'<');
            if !before.bytes().all(|b| is_token(b) || is_lws(b)) {
                return Err(());
            }
            angle(&mut c)?;
        }
        Some(_) => {
            if !c.take_while(|b| b != b';' && !is_lws(b)).contains(':') {
                return Err(());
            }
        }
    }
    let mut found = None;
    while c.eat_sep(b';') {
        let (name, v) = param(&mut c).ok_or(())?;
        if name.eq_ignore_ascii_case("tag") && found.is_none() {
            found = Some(v.filter(|t| is_token_str(t)).ok_or(())?);
        }
    }
    c.end().map_err(drop)?;
    Ok(found)
}

/// Whether a value that starts with neither `"` nor `<` is a name-addr
/// with a token display name: a `<` comes before any `;` or `"` (as the
/// typed parser tells the forms apart). One pass, stopping at the first
/// of the three.
fn token_display_name(rest: &str) -> bool {
    rest.bytes()
        .find(|&b| matches!(b, b'<' | b';' | b'"'))
        .is_some_and(|b| b == b'<')
}

/// `<uri>`, with no whitespace inside the brackets (§25.1 LAQUOT/RAQUOT;
/// RFC 4475 §3.1.2.14), as the typed parser says.
fn angle(c: &mut Cursor<'_>) -> Result<(), ()> {
    if !c.eat(b'<') {
        return Err(());
    }
    let uri = c.take_while(|b| b != b'>' && !is_lws(b));
    if !uri.contains(':') || !c.eat(b'>') {
        return Err(());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::{From, TypedHeader, Via};

    #[test]
    fn via_pieces_agree_with_the_typed_parser() {
        for v in [
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport",
            "SIP/2.0/TCP client.example.com;branch=z9hG4bK1;rport=5062;received=192.0.2.9",
            "SIP / 2.0 / UDP [2001:db8::9]:5070 ; branch = z9hG4bKx",
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKb",
            "SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK;ttl=1;maddr=239.1.1.1",
            "SIP/2.0/UDP h:05060;rport=0005062;branch=z9hG4bKa;branch=z9hG4bKb",
            "SIP/2.0/UDP h:0;rport=0",
        ] {
            let light = top_via(v).unwrap();
            let first = crate::scan::ListSplit::new(v).next().unwrap();
            let full = Via::parse(first).unwrap();
            assert_eq!(light.transport, full.transport(), "{v}");
            assert_eq!(light.host, full.host_str(), "{v}");
            assert_eq!(light.port, full.port(), "{v}");
            assert_eq!(light.rport, full.rport(), "{v}");
            assert_eq!(light.branch, full.branch(), "{v}");
        }
    }

    #[test]
    fn broken_vias_are_refused() {
        for v in [
            "",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP ;branch=1",
            "SIP/2.0 UDP host",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP host:;branch=1",
            "SIP/2.0/UDP [::1;branch=1",
            "SIP/2.0/UDP host;branch",
            "SIP/2.0/UDP host;rport=x",
            "SIP/2.0/UDP host junk",
        ] {
            assert_eq!(top_via(v), None, "{v:?}");
        }
    }

    #[test]
    fn tags_agree_with_the_typed_parser() {
        for v in [
            "<sip:alice@example.com>;tag=1928301774",
            r#""Bob \"the\" <boss>" <sip:bob@b.example;tag=uri-param>;tag=a6c85cf"#,
            "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
            "caller<sip:caller@example.com>;x=\"a;tag=q\";tag=323",
            "<sip:carol@c.example>",
            "<sip:d@d.example>;TAG=Up",
            r#"urn:x";tag=a;q="\"";tag=b"#,
            r#"urn:x";tag=A;q="\"""#,
            "<sip:e@e.example>;tag=first;tag=second",
        ] {
            let full = From::parse(v).unwrap();
            assert_eq!(tag(v), Ok(full.tag()), "{v}");
        }
    }

    #[test]
    fn broken_framing_is_refused() {
        for v in [
            r#""unterminated <sip:a@b>;tag=1"#,
            "<sip:a@b;tag=1",
            "<sip:a@b>;tag",
            "<sip:a@b>;tag=1 junk",
            "<sip:a@b>;=1",
            r#""Watson, Thomas" < sip:t.watson@example.org >"#,
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "",
            "hello",
            ";tag=1",
            "<sip:a@b>junk;tag=1",
            "<hello>;tag=1",
        ] {
            assert_eq!(tag(v), Err(()), "{v:?}");
        }
    }
}
