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
    match top_via_plain(value.as_bytes()) {
        Some(read) => read.map(|p| p.of(value)),
        None => top_via_general(value),
    }
}

/// The general reader behind [`top_via`]: any spacing the grammar allows.
fn top_via_general(value: &str) -> Option<ViaPieces<'_>> {
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
    match tag_plain(value.as_bytes()) {
        Some(read) => read.map(|t| t.and_then(|(from, to)| value.get(from..to))),
        None => tag_general(value),
    }
}

/// The general reader behind [`tag`]: quoted display names, addr-specs,
/// whitespace around separators.
fn tag_general(value: &str) -> Result<Option<&str>, ()> {
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
        Some(_) if angle_before_params(c.rest().as_bytes()).is_some() => {
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

/// Where the `<` of a name-addr is, when one comes before any `;` or `"`
/// (as the typed parser tells the forms apart: after a `;` it belongs to
/// a parameter, after a `"` to a quoted display name). One pass, stopping
/// at the first of the three.
fn angle_before_params(b: &[u8]) -> Option<usize> {
    b.iter()
        .position(|&c| matches!(c, b'<' | b';' | b'"'))
        .filter(|&at| b.get(at) == Some(&b'<'))
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

// ---- the plain shapes ------------------------------------------------------
//
// Nearly every Via and From/To a proxy sees is written the plain way:
// `SIP/2.0/UDP host:port;branch=...;rport`, `name <sip:...>;tag=...`, no
// whitespace around the separators, no quoted strings. The readers below
// take that shape in one pass over the bytes and give up (`None`) on
// anything else, which the general readers above then read. Where they do
// not give up they agree with the general readers (unit tests below, and
// the fuzz target's `light_readers_agree` against the typed parsers).

/// The end of the run of bytes from `from` for which `f` holds.
#[inline]
fn run(b: &[u8], from: usize, f: impl Fn(u8) -> bool) -> usize {
    let mut i = from;
    while b.get(i).is_some_and(|&c| f(c)) {
        i += 1;
    }
    i
}

/// A plain parameter from `at` (a `;`): `(name, value, end)`, the value
/// `None` for a bare name. `None`: not plain (whitespace, a quoted value,
/// an empty name or value).
#[inline]
#[allow(clippy::type_complexity)]
fn plain_param(b: &[u8], at: usize) -> Option<((usize, usize), Option<(usize, usize)>, usize)> {
    let name_end = run(b, at + 1, is_token);
    if name_end == at + 1 {
        return None;
    }
    if b.get(name_end) != Some(&b'=') {
        return Some(((at + 1, name_end), None, name_end));
    }
    let v_end = run(b, name_end + 1, |c| {
        is_token(c) || matches!(c, b'[' | b']' | b':')
    });
    if v_end == name_end + 1 {
        return None;
    }
    Some(((at + 1, name_end), Some((name_end + 1, v_end)), v_end))
}

fn eq_name(b: &[u8], (from, to): (usize, usize), name: &[u8]) -> bool {
    b.get(from..to)
        .is_some_and(|n| n.eq_ignore_ascii_case(name))
}

fn all_token(b: &[u8], (from, to): (usize, usize)) -> bool {
    to > from
        && b.get(from..to)
            .is_some_and(|t| t.iter().all(|&c| is_token(c)))
}

/// A run of digits (leading zeros allowed) as a port: what
/// [`port_number`] gives for it, without the text round trip.
fn port_at(b: &[u8], (from, to): (usize, usize)) -> Option<u16> {
    let digits = b.get(from..to).filter(|d| !d.is_empty())?;
    let mut v: u32 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(d - b'0');
        if v > u32::from(u16::MAX) {
            return None;
        }
    }
    u16::try_from(v).ok()
}

/// Where the pieces of a plainly written Via are (offsets into its value).
#[derive(Debug, Clone, Copy)]
struct PlainVia {
    transport: (usize, usize),
    host: (usize, usize),
    port: Option<u16>,
    rport: Option<Option<u16>>,
    branch: Option<(usize, usize)>,
}

impl PlainVia {
    fn of(self, value: &str) -> ViaPieces<'_> {
        let text = |(from, to): (usize, usize)| value.get(from..to).unwrap_or_default();
        ViaPieces {
            transport: text(self.transport),
            host: text(self.host),
            port: self.port,
            rport: self.rport,
            branch: self.branch.map(text),
        }
    }
}

/// `SIP/2.0/transport SP host[:port] *(;param)` then the end or a `,`.
/// `Some(None)`: plain, but malformed where the general reader would
/// refuse it too (a bad port, a branch that is not a token).
fn top_via_plain(b: &[u8]) -> Option<Option<PlainVia>> {
    if b.get(..8) != Some(b"SIP/2.0/".as_slice()) {
        return None;
    }
    let t_end = run(b, 8, is_token);
    if t_end == 8 || b.get(t_end) != Some(&b' ') {
        return None;
    }
    let h_start = t_end + 1;
    let h_end = run(b, h_start, |c| {
        c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_')
    });
    if h_end == h_start {
        return None;
    }
    let mut p = h_end;
    let mut port = None;
    if b.get(p) == Some(&b':') {
        let d_end = run(b, p + 1, |c| c.is_ascii_digit());
        if d_end == p + 1 {
            return None;
        }
        match port_at(b, (p + 1, d_end)) {
            Some(n) => port = Some(n),
            None => return Some(None),
        }
        p = d_end;
    }
    let mut rport = None;
    let mut branch = None;
    loop {
        match b.get(p) {
            None | Some(b',') => break,
            Some(b';') => {}
            Some(_) => return None,
        }
        let (name, value, end) = plain_param(b, p)?;
        if !matches!(b.get(end), None | Some(b';' | b',')) {
            return None;
        }
        if eq_name(b, name, b"branch") {
            match value {
                Some(v) if all_token(b, v) => branch = branch.or(Some(v)),
                _ => return Some(None),
            }
        } else if eq_name(b, name, b"rport") {
            let r = match value {
                None => None,
                Some(v) => match port_at(b, v) {
                    Some(n) => Some(n),
                    None => return Some(None),
                },
            };
            rport = rport.or(Some(r));
        }
        p = end;
    }
    Some(Some(PlainVia {
        transport: (8, t_end),
        host: (h_start, h_end),
        port,
        rport,
        branch,
    }))
}

/// `[token display-name SP]<uri> *(;param)` to the end, no whitespace
/// after the display name, no quotes. `Some(Ok(tag))` with the tag's
/// offsets; `Some(Err(()))` where the general reader refuses the value too.
fn tag_plain(b: &[u8]) -> Option<Result<Option<(usize, usize)>, ()>> {
    let lt = angle_before_params(b)?;
    if b.first().is_some_and(|&c| is_lws(c)) {
        return None;
    }
    // display-name = *(token LWS), as the general reader checks it.
    if !b.get(..lt)?.iter().all(|&c| is_token(c) || is_lws(c)) {
        return Some(Err(()));
    }
    // `<uri>`: no whitespace inside, a ':' in the URI.
    let mut gt = lt + 1;
    let mut colon = false;
    loop {
        match b.get(gt) {
            Some(b'>') => break,
            Some(&c) if is_lws(c) => return None,
            Some(&c) => colon |= c == b':',
            None => return Some(Err(())),
        }
        gt += 1;
    }
    if !colon {
        return Some(Err(()));
    }
    let mut p = gt + 1;
    let mut found = None;
    loop {
        match b.get(p) {
            None => break,
            Some(b';') => {}
            Some(_) => return None,
        }
        let (name, value, end) = plain_param(b, p)?;
        if !matches!(b.get(end), None | Some(b';')) {
            return None;
        }
        if found.is_none() && eq_name(b, name, b"tag") {
            match value {
                Some(v) if all_token(b, v) => found = Some(v),
                _ => return Some(Err(())),
            }
        }
        p = end;
    }
    Some(Ok(found))
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

    /// The plain readers, where they read a value, agree with the general
    /// ones; and the values every proxy sees are plain.
    fn agree(v: &str) {
        if let Some(read) = top_via_plain(v.as_bytes()) {
            assert_eq!(read.map(|p| p.of(v)), top_via_general(v), "Via {v:?}");
        }
        if let Some(read) = tag_plain(v.as_bytes()) {
            let plain = read.map(|t| t.and_then(|(a, b)| v.get(a..b)));
            assert_eq!(plain, tag_general(v), "tag {v:?}");
        }
    }

    #[test]
    fn ports_read_as_port_number_reads_them() {
        for d in [
            "0",
            "5060",
            "05060",
            "65535",
            "65536",
            "0000000000000000000000065535",
            "99999999999",
            "",
        ] {
            assert_eq!(port_at(d.as_bytes(), (0, d.len())), port_number(d), "{d:?}");
        }
    }

    #[test]
    fn plain_readers_agree_with_the_general_ones() {
        let plain_vias = [
            "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-2140-1-0",
            "SIP/2.0/UDP 192.0.2.1:5080;branch=z9hG4bKsb1.2f;rport",
            "SIP/2.0/TCP h.example.com;rport=5062;received=192.0.2.9;branch=z9hG4bK1",
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKa,SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKb",
            "SIP/2.0/UDP h:05060;rport=0005062;branch=z9hG4bKa;branch=z9hG4bKb",
        ];
        for v in plain_vias {
            assert!(
                top_via_plain(v.as_bytes()).is_some_and(|r| r.is_some()),
                "{v}"
            );
            agree(v);
        }
        for v in [
            "SIP/2.0/UDP host:99999;branch=1",
            "SIP/2.0/UDP host;branch",
            "SIP/2.0/UDP host;branch=a;branch",
            "SIP/2.0/UDP host;rport=x1",
            "SIP/2.0/UDP host;branch=[x]",
            "SIP/2.0/UDP host ;branch=1",
            "SIP/2.0/UDP  host",
            "SIP/2.0/UDP [::1]:5060;branch=1",
            "SIP / 2.0 / UDP h;branch=1",
            "sip/2.0/udp h;branch=1",
            "SIP/2.0/UDP h;p=\"q\";branch=1",
            "SIP/2.0/UDP h;branch=1 junk",
            "SIP/2.0/UDP h:;branch=1",
            "SIP/2.0/ h",
        ] {
            agree(v);
        }
        let plain_tags = [
            "<sip:alice@example.com>;tag=1928301774",
            "sipp <sip:sipp@127.0.0.1:5061>;tag=2140SIPpTag001",
            "sut <sip:service@127.0.0.1:5080>",
            "<sip:d@d.example>;TAG=Up",
            "<sip:e@e.example>;tag=first;tag=second",
            "<sip:e@e.example>;x;tag=a",
        ];
        for v in plain_tags {
            assert!(tag_plain(v.as_bytes()).is_some_and(|r| r.is_ok()), "{v}");
            agree(v);
        }
        for v in [
            "<sip:a@b>;tag",
            "<sip:a@b>;tag=[x]",
            "<sip:a@b>;tag=1 junk",
            "<sip:a@b> ;tag=1",
            "<sip:a@b;tag=1",
            "< sip:a@b>;tag=1",
            "<hello>;tag=1",
            "Bell, Alexander <sip:a@b>;tag=43",
            "a b <sip:x@y>;tag=1",
            " <sip:x@y>;tag=1",
            "\"q\" <sip:x@y>;tag=1",
            "sip:x@y;tag=1",
            "<sip:x@y>;p=\"a;tag=b\";tag=c",
            "<sip:x@y>;=1",
            "",
        ] {
            agree(v);
        }
    }

    /// Values built from the pieces the plain readers decide on, with
    /// the spellings that make them give up or refuse mixed in.
    fn value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let pick = |xs: &'static [&'static str]| proptest::sample::select(xs);
        let param = (
            pick(&[";", ";", " ;", "; ", ",", ""]),
            pick(&["branch", "rport", "tag", "TAG", "x", "received", ""]),
            pick(&[
                "",
                "=z9hG4bK1",
                "=1",
                "=5062",
                "=99999",
                "=[::1]",
                "=",
                "=\"q\"",
                "=a b",
            ]),
        )
            .prop_map(|(sep, name, value)| format!("{sep}{name}{value}"));
        let head = pick(&[
            "SIP/2.0/UDP 127.0.0.1:5060",
            "SIP/2.0/UDP h",
            "SIP/2.0/TCP h:99999",
            "SIP/2.0/UDP h:",
            "SIP/2.0/UDP [::1]",
            "SIP/2.0/UDP  h",
            "SIP / 2.0 / UDP h",
            "<sip:a@b>",
            "<sipab>",
            "< sip:a@b>",
            "<sip:a@b",
            "sipp <sip:a@b>",
            "a,b <sip:a@b>",
            "\"q\" <sip:a@b>",
            "sip:a@b",
            " <sip:a@b>",
        ]);
        (
            head,
            proptest::collection::vec(param, 0..4),
            pick(&["", " ", " junk", ","]),
        )
            .prop_map(|(h, ps, tail)| format!("{h}{}{tail}", ps.concat()))
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4096))]
        #[test]
        fn plain_readers_agree_on_any_input(v in value()) {
            agree(&v);
        }
    }
}
