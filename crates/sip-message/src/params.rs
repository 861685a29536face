//! Parameter lists: `;name[=value]` after a URI (uri-parameters, RFC 3261
//! §19.1.1) or after a header value (generic-param, §25.1).
//!
//! A [`Params`] is the raw text of the list, validated once when parsed and
//! walked lazily on lookup: no allocation, and parameter order and spelling
//! are kept as received.

use crate::scan::{Cursor, eq_unescaped, is_lws, is_token};

/// A parameter list, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a str,
    /// No whitespace and no quoted value: split at ';' and '=' directly.
    simple: bool,
}

/// Why a parameter list does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ParamSyntax;

impl<'a> Params<'a> {
    /// An empty list.
    #[must_use]
    pub const fn empty() -> Params<'a> {
        Params {
            raw: "",
            simple: true,
        }
    }

    /// The list as received, without its leading `;`.
    #[must_use]
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Whether the list has no parameters.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub(crate) fn parse_uri(raw: &'a str) -> Result<Params<'a>, ParamSyntax> {
        // Every parameter has a non-empty name: no ";;", no leading or
        // trailing ';', no "=" right after a ';'.
        let mut at_start = true;
        for &c in raw.as_bytes() {
            if at_start && (c == b';' || c == b'=') {
                return Err(ParamSyntax);
            }
            at_start = c == b';';
        }
        if at_start {
            return Err(ParamSyntax);
        }
        Ok(Params { raw, simple: true })
    }

    /// Parses header parameters from the cursor, which stands just after the
    /// first `;` (or at the end of the value, for an empty list). Consumes
    /// up to the end of the list: the end of the input, or a byte that cannot
    /// continue a parameter list.
    pub(crate) fn parse_header(c: &mut Cursor<'a>) -> Result<Params<'a>, ParamSyntax> {
        let start = c.pos();
        let mut end;
        loop {
            c.skip_ws();
            c.token().map_err(|_| ParamSyntax)?;
            end = c.pos();
            if c.eat_sep(b'=') {
                if c.peek() == Some(b'"') {
                    c.quoted().map_err(|_| ParamSyntax)?;
                } else {
                    // gen-value = token / host; host covers IPv6 references.
                    let v = c.take_while(|b| is_token(b) || matches!(b, b'[' | b']' | b':'));
                    if v.is_empty() {
                        return Err(ParamSyntax);
                    }
                }
                end = c.pos();
            }
            if !c.eat_sep(b';') {
                break;
            }
        }
        let raw = c.slice(start, end);
        let simple = !raw.bytes().any(|b| b == b'"' || is_lws(b));
        Ok(Params { raw, simple })
    }

    /// Parameters in order: name and, when there is one, the value (quoted
    /// values without their quotes, escapes left as received).
    #[must_use]
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            c: Cursor::new(self.raw),
            simple: self.simple,
        }
    }

    /// Looks a parameter up by name (ASCII case-insensitive). `None`: absent;
    /// `Some(None)`: present without a value.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Like [`Params::get`], but names compare with `%HH` escapes decoded
    /// (URI parameters may be escaped, RFC 4475 §3.1.1.5).
    #[must_use]
    pub fn get_unescaped(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| eq_unescaped(n, name, true))
            .map(|(_, v)| v)
    }

    /// Whether a parameter is present.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Iterator over a [`Params`] list.
#[derive(Debug, Clone)]
pub struct ParamIter<'a> {
    c: Cursor<'a>,
    simple: bool,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        let c = &mut self.c;
        if self.simple {
            // URI parameters, and header parameters without whitespace or
            // quotes: split at ';' and '='.
            let rest = c.rest();
            if rest.is_empty() {
                return None;
            }
            let end = crate::scan::find_byte(b';', rest.as_bytes()).unwrap_or(rest.len());
            let item = rest.get(..end).unwrap_or("");
            c.advance(end + 1);
            return Some(match crate::scan::find_byte(b'=', item.as_bytes()) {
                Some(eq) => (
                    item.get(..eq).unwrap_or(""),
                    Some(item.get(eq + 1..).unwrap_or("")),
                ),
                None => (item, None),
            });
        }
        c.skip_ws();
        if c.is_empty() {
            return None;
        }
        let name = c.take_while(is_token);
        let mut value = None;
        if c.eat_sep(b'=') {
            if c.peek() == Some(b'"') {
                value = c.quoted().ok();
            } else {
                value = Some(c.take_while(|b| !is_lws(b) && b != b';'));
            }
        }
        // Skip to the next parameter (validated at parse time).
        c.take_while(|b| b != b';');
        c.eat(b';');
        Some((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> Result<Params<'_>, ParamSyntax> {
        let mut c = Cursor::new(s);
        let p = Params::parse_header(&mut c)?;
        if c.end().is_err() {
            return Err(ParamSyntax);
        }
        Ok(p)
    }

    #[test]
    fn header_params_with_spaces_and_quotes() {
        let p = header(r#"tag = abc ; q=0.5;+sip.instance="<urn:uuid:1;x>" ;lr"#).unwrap();
        let all: Vec<_> = p.iter().collect();
        assert_eq!(
            all,
            [
                ("tag", Some("abc")),
                ("q", Some("0.5")),
                ("+sip.instance", Some("<urn:uuid:1;x>")),
                ("lr", None)
            ]
        );
        assert_eq!(p.get("TAG"), Some(Some("abc")));
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.get("nope"), None);
    }

    #[test]
    fn malformed_header_params() {
        assert!(header(";").is_err());
        assert!(header("a=").is_err());
        assert!(header("a=\"x").is_err());
        assert!(header("a;;b").is_err());
        assert!(header("received=[2001:db8::9:255]").is_ok());
    }

    #[test]
    fn uri_params() {
        let p = Params::parse_uri("transport=tcp;lr;%6C%72x;n%61me=v%61lue").unwrap();
        assert_eq!(p.get("transport"), Some(Some("tcp")));
        assert_eq!(p.get_unescaped("lrx"), Some(None));
        assert_eq!(p.get_unescaped("name"), Some(Some("v%61lue")));
        assert!(Params::parse_uri("a;;b").is_err());
    }
}
