//! Addresses: `name-addr` and `addr-spec` with header parameters (RFC 3261
//! §20.10, §25.1), as in From, To, Contact, Route, Record-Route, Path,
//! Refer-To, Referred-By and P-Asserted-Identity.
//!
//! In the addr-spec form (no `<>`), a `;` ends the URI: what follows are
//! header parameters, so `To: sip:bob@b.example;tag=1` has a `tag` header
//! parameter, not a URI parameter (§20.10).

use std::fmt;

use crate::error::HeaderErrorKind;
use crate::params::Params;
use crate::scan::{Cursor, is_lws, is_token};
use crate::uri::Uri;

/// An address with optional display name and header parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    display_name: Option<&'a str>,
    display_quoted: bool,
    uri: Uri<'a>,
    bracketed: bool,
    params: Params<'a>,
}

/// Which forms an address header admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddrForm {
    /// name-addr or addr-spec (From, To, Contact, Refer-To, ...).
    Either,
    /// name-addr only (Route, Record-Route, Path: §25.1 `route-param`).
    NameAddrOnly,
}

impl<'a> NameAddr<'a> {
    /// Parses one address value (already split from a list) with its
    /// header parameters.
    pub(crate) fn parse(s: &'a str, form: AddrForm) -> Result<NameAddr<'a>, HeaderErrorKind> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        if c.is_empty() {
            return Err(HeaderErrorKind::Empty);
        }
        let mut display_name = None;
        let mut display_quoted = false;
        let bracketed;
        let uri_text;
        if c.peek() == Some(b'"') {
            let q = c.quoted()?;
            display_name = Some(q);
            display_quoted = true;
            c.skip_ws();
            uri_text = angle(&mut c)?;
            bracketed = true;
        } else if c.peek() == Some(b'<') {
            uri_text = angle(&mut c)?;
            bracketed = true;
        } else if let Some(lt) = find_angle(c.rest()) {
            // display-name = *(token LWS): tokens separated by whitespace.
            let start = c.pos();
            let dn = c.slice(start, start + lt);
            let trimmed = crate::scan::trim(dn);
            if trimmed.is_empty() || !trimmed.bytes().all(|b| is_token(b) || is_lws(b)) {
                return Err(HeaderErrorKind::Token);
            }
            display_name = Some(trimmed);
            for _ in 0..lt {
                c.bump();
            }
            uri_text = angle(&mut c)?;
            bracketed = true;
        } else {
            if form == AddrForm::NameAddrOnly {
                return Err(HeaderErrorKind::NeedsAngleBrackets);
            }
            // addr-spec: the URI runs to the first ';' or whitespace.
            uri_text = c.take_while(|b| b != b';' && !is_lws(b));
            if uri_text.contains([',', '?']) {
                return Err(HeaderErrorKind::NeedsAngleBrackets);
            }
            bracketed = false;
        }
        let uri = Uri::parse(uri_text)?;
        let params = if c.eat_sep(b';') {
            Params::parse_header(&mut c).map_err(|_| HeaderErrorKind::Param)?
        } else {
            Params::empty()
        };
        c.end()?;
        Ok(NameAddr {
            display_name,
            display_quoted,
            uri,
            bracketed,
            params,
        })
    }

    /// The display name: for a quoted one, the text between the quotes with
    /// quoted-pairs left escaped; for a token one, the tokens as written.
    #[must_use]
    pub fn display_name(&self) -> Option<&'a str> {
        self.display_name
    }

    /// Whether the display name was a quoted string.
    #[must_use]
    pub fn display_name_is_quoted(&self) -> bool {
        self.display_quoted
    }

    /// The URI.
    #[must_use]
    pub fn uri(&self) -> &Uri<'a> {
        &self.uri
    }

    /// Whether the URI was enclosed in `<>` (name-addr form).
    #[must_use]
    pub fn is_name_addr(&self) -> bool {
        self.bracketed
    }

    /// The header parameters after the address.
    #[must_use]
    pub fn params(&self) -> Params<'a> {
        self.params
    }

    /// The `tag` parameter (From, To).
    #[must_use]
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
}

impl fmt::Display for NameAddr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.display_name, self.display_quoted) {
            (Some(d), true) => write!(f, "\"{d}\" ")?,
            (Some(d), false) => write!(f, "{d} ")?,
            (None, _) => {}
        }
        if self.bracketed {
            write!(f, "<{}>", self.uri)?;
        } else {
            write!(f, "{}", self.uri)?;
        }
        if !self.params.is_empty() {
            write!(f, ";{}", self.params.as_str())?;
        }
        Ok(())
    }
}

/// Reads `<uri>`; no whitespace may follow `<` or precede `>` (§25.1 LAQUOT,
/// RAQUOT; RFC 4475 §3.1.2.14).
fn angle<'a>(c: &mut Cursor<'a>) -> Result<&'a str, HeaderErrorKind> {
    if !c.eat(b'<') {
        return Err(HeaderErrorKind::Token);
    }
    let uri = c.take_while(|b| b != b'>');
    if !c.eat(b'>') {
        return Err(HeaderErrorKind::UnterminatedAngle);
    }
    if uri.is_empty() || uri.bytes().any(is_lws) {
        return Err(HeaderErrorKind::Uri(crate::error::UriError::Char));
    }
    Ok(uri)
}

/// Position of a `<` that starts a name-addr after a token display name.
fn find_angle(s: &str) -> Option<usize> {
    let lt = s.find('<')?;
    // A ';' before the '<' means the '<' belongs to a parameter value.
    if s.get(..lt)?.contains([';', '"']) {
        return None;
    }
    Some(lt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<NameAddr<'_>, HeaderErrorKind> {
        NameAddr::parse(s, AddrForm::Either)
    }

    #[test]
    fn forms() {
        let a = p(r#""J Rosenberg \\\""       <sip:jdrosen@example.com>;tag = 98asjd8"#).unwrap();
        assert_eq!(a.display_name(), Some(r#"J Rosenberg \\\""#));
        assert_eq!(a.tag(), Some("98asjd8"));
        let a = p("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(a.display_name(), Some("caller"));
        let a = p("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert!(!a.is_name_addr());
        assert_eq!(a.tag(), Some("1918181833n"));
        assert_eq!(a.uri().as_str(), "sip:vivekg@chair-dnrc.example.com");
        let a = p("<sip:a@b;lr>").unwrap();
        assert!(a.uri().as_sip().unwrap().lr());
    }

    #[test]
    fn torture_faults() {
        assert_eq!(
            p(r#""Mr. J. User <sip:j.user@example.com>"#),
            Err(HeaderErrorKind::UnterminatedQuote)
        );
        assert!(p(r#""Watson, Thomas" < sip:t.watson@example.org >"#).is_err());
        assert!(p("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
        assert_eq!(
            p("sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
            Err(HeaderErrorKind::NeedsAngleBrackets)
        );
        assert!(p(r#""Joe" <sip:joe@example.org>;;;;"#).is_err());
        assert!(NameAddr::parse("sip:a@b;lr", AddrForm::NameAddrOnly).is_err());
    }
}
