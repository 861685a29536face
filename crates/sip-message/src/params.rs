//! Parameter lists: `;name[=value]` after a URI (uri-parameters, RFC 3261
//! §19.1.1) or after a header value (generic-param, §25.1).
//!
//! A [`Params`] is the raw text of the list, validated once when parsed and
//! walked lazily on lookup: no allocation, and parameter order and spelling
//! are kept as received.

use crate::scan::{Cursor, eq_unescaped, is_lws, is_token};

/// Which grammar a parameter list follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// uri-parameters: no whitespace, no quotes, escapes allowed.
    Uri,
    /// generic-param: whitespace around `;` and `=`, quoted-string values.
    Header,
}

/// A parameter list, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a str,
    kind: Kind,
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
            kind: Kind::Header,
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
        let p = Params {
            raw,
            kind: Kind::Uri,
        };
        for item in raw.split(';') {
            let name = item.split_once('=').map_or(item, |(n, _)| n);
            if name.is_empty() {
                return Err(ParamSyntax);
            }
        }
        Ok(p)
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
        Ok(Params {
            raw: c.slice(start, end),
            kind: Kind::Header,
        })
    }

    /// Parameters in order: name and, when there is one, the value (quoted
    /// values without their quotes, escapes left as received).
    #[must_use]
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            c: Cursor::new(self.raw),
            kind: self.kind,
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
    kind: Kind,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        let c = &mut self.c;
        if self.kind == Kind::Uri {
            if c.is_empty() {
                return None;
            }
            let item = c.take_while(|b| b != b';');
            c.eat(b';');
            return Some(match item.split_once('=') {
                Some((n, v)) => (n, Some(v)),
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
