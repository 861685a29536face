//! Parsing of challenges (`WWW-Authenticate`, `Proxy-Authenticate`) and
//! credentials (`Authorization`, `Proxy-Authorization`): RFC 3261 §25.1
//! (`challenge`, `credentials`), RFC 7235 §2.1 (several challenges in one
//! value, token68), RFC 7616 §3.3 and §3.4.
//!
//! Values borrow from the input; a quoted string with escapes (`\"`, `\\`)
//! is unescaped into an owned string. Parameter names compare
//! case-insensitively; unknown parameters are kept and ignored by the
//! accessors that do not ask for them.

use std::borrow::Cow;

/// Most parameters accepted in one challenge or credentials value.
pub const MAX_PARAMS: usize = 32;
/// Most challenges accepted in one header value.
pub const MAX_CHALLENGES: usize = 16;
/// Longest header value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 8192;

/// Why a challenge or credentials value did not parse. `at` is a byte
/// offset into the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The value is empty or only whitespace and commas.
    #[error("empty authentication header value")]
    Empty,
    /// The value is longer than [`MAX_VALUE_LEN`].
    #[error("authentication header value longer than {MAX_VALUE_LEN} bytes")]
    TooLong,
    /// Expected a token (a scheme or a parameter name).
    #[error("expected a token at byte {at}")]
    ExpectedToken {
        /// Byte offset.
        at: usize,
    },
    /// A parameter name not followed by `=`.
    #[error("expected '=' at byte {at}")]
    ExpectedEquals {
        /// Byte offset.
        at: usize,
    },
    /// A parameter without a value.
    #[error("expected a parameter value at byte {at}")]
    ExpectedValue {
        /// Byte offset.
        at: usize,
    },
    /// Something other than `,` after a parameter.
    #[error("expected ',' at byte {at}")]
    ExpectedComma {
        /// Byte offset.
        at: usize,
    },
    /// A quoted string without its closing quote.
    #[error("unterminated quoted string starting at byte {at}")]
    UnterminatedQuote {
        /// Byte offset of the opening quote.
        at: usize,
    },
    /// A control character, or a bad escape inside a quoted string.
    #[error("invalid character at byte {at}")]
    InvalidCharacter {
        /// Byte offset.
        at: usize,
    },
    /// The same parameter twice in one challenge or credentials (RFC 7235 §2.1).
    #[error("parameter given twice at byte {at}")]
    DuplicateParam {
        /// Byte offset of the second occurrence.
        at: usize,
    },
    /// More than [`MAX_PARAMS`] parameters or [`MAX_CHALLENGES`] challenges.
    #[error("too many parameters or challenges")]
    TooMany,
    /// A credentials value holding more than one set of credentials.
    #[error("more than one credentials in one header value, second at byte {at}")]
    TrailingCredentials {
        /// Byte offset of the second scheme.
        at: usize,
    },
}

/// One `name=value` parameter; a quoted value is unquoted and unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParam<'a> {
    /// The name as written.
    pub name: &'a str,
    /// The value, unquoted and unescaped.
    pub value: Cow<'a, str>,
    /// Whether the value was a quoted string.
    pub quoted: bool,
}

/// The parameters of one challenge or credentials, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthParams<'a> {
    params: Vec<AuthParam<'a>>,
}

impl<'a> AuthParams<'a> {
    /// A parameter's value by name (case-insensitive).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_ref())
    }

    /// Every parameter in order.
    pub fn iter(&self) -> impl Iterator<Item = &AuthParam<'a>> {
        self.params.iter()
    }

    /// Number of parameters.
    #[must_use]
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether there are no parameters.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
}

/// One challenge from `WWW-Authenticate` or `Proxy-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge<'a> {
    /// The scheme as written, e.g. `Digest`.
    pub scheme: &'a str,
    /// A token68 in place of parameters (other schemes); never for Digest.
    pub token68: Option<&'a str>,
    /// The parameters.
    pub params: AuthParams<'a>,
}

impl Challenge<'_> {
    /// Whether the scheme is `Digest` (case-insensitive).
    #[must_use]
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }
    /// `realm`.
    #[must_use]
    pub fn realm(&self) -> Option<&str> {
        self.params.get("realm")
    }
    /// `nonce`.
    #[must_use]
    pub fn nonce(&self) -> Option<&str> {
        self.params.get("nonce")
    }
    /// `opaque`.
    #[must_use]
    pub fn opaque(&self) -> Option<&str> {
        self.params.get("opaque")
    }
    /// `algorithm` as written (absent means MD5).
    #[must_use]
    pub fn algorithm(&self) -> Option<&str> {
        self.params.get("algorithm")
    }
    /// `stale=true` (case-insensitive).
    #[must_use]
    pub fn stale(&self) -> bool {
        self.params
            .get("stale")
            .is_some_and(|s| s.eq_ignore_ascii_case("true"))
    }
    /// The `qop` options offered, e.g. `auth`, `auth-int`.
    pub fn qop_options(&self) -> impl Iterator<Item = &str> {
        self.params
            .get("qop")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

/// Credentials from `Authorization` or `Proxy-Authorization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// The scheme as written, e.g. `Digest`.
    pub scheme: &'a str,
    /// A token68 in place of parameters (other schemes); never for Digest.
    pub token68: Option<&'a str>,
    /// The parameters.
    pub params: AuthParams<'a>,
}

impl Credentials<'_> {
    /// Whether the scheme is `Digest` (case-insensitive).
    #[must_use]
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }
    /// `username`.
    #[must_use]
    pub fn username(&self) -> Option<&str> {
        self.params.get("username")
    }
    /// `realm`.
    #[must_use]
    pub fn realm(&self) -> Option<&str> {
        self.params.get("realm")
    }
    /// `nonce`.
    #[must_use]
    pub fn nonce(&self) -> Option<&str> {
        self.params.get("nonce")
    }
    /// `uri` (the digest-uri).
    #[must_use]
    pub fn uri(&self) -> Option<&str> {
        self.params.get("uri")
    }
    /// `response`.
    #[must_use]
    pub fn response(&self) -> Option<&str> {
        self.params.get("response")
    }
    /// `algorithm` as written (absent means MD5).
    #[must_use]
    pub fn algorithm(&self) -> Option<&str> {
        self.params.get("algorithm")
    }
    /// `qop`.
    #[must_use]
    pub fn qop(&self) -> Option<&str> {
        self.params.get("qop")
    }
    /// `cnonce`.
    #[must_use]
    pub fn cnonce(&self) -> Option<&str> {
        self.params.get("cnonce")
    }
    /// `nc` as written.
    #[must_use]
    pub fn nc(&self) -> Option<&str> {
        self.params.get("nc")
    }
    /// `opaque`.
    #[must_use]
    pub fn opaque(&self) -> Option<&str> {
        self.params.get("opaque")
    }
}

/// Parses a `WWW-Authenticate` or `Proxy-Authenticate` value: one or more
/// challenges separated by commas (RFC 7235 §4.1).
///
/// # Errors
/// [`ParseError`] on malformed input; never panics.
pub fn parse_challenges(value: &str) -> Result<Vec<Challenge<'_>>, ParseError> {
    Ok(parse_list(value)?
        .into_iter()
        .map(|(_, scheme, token68, params)| Challenge {
            scheme,
            token68,
            params,
        })
        .collect())
}

/// Parses an `Authorization` or `Proxy-Authorization` value: exactly one
/// set of credentials (RFC 3261 §25.1).
///
/// # Errors
/// [`ParseError`] on malformed input or a second scheme; never panics.
pub fn parse_credentials(value: &str) -> Result<Credentials<'_>, ParseError> {
    let mut list = parse_list(value)?.into_iter();
    let (_, scheme, token68, params) = list.next().ok_or(ParseError::Empty)?;
    if let Some((at, _, _, _)) = list.next() {
        return Err(ParseError::TrailingCredentials { at });
    }
    Ok(Credentials {
        scheme,
        token68,
        params,
    })
}

/// (offset of the scheme, scheme, token68, parameters)
type Item<'a> = (usize, &'a str, Option<&'a str>, AuthParams<'a>);

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn eof(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// Skips linear whitespace (SP, HT, and folded CRLF); true if any.
    fn skip_lws(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn skip_lws_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n' | b',')) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        // Only ASCII bytes were taken, so both ends are char boundaries.
        self.s.get(start..self.pos).unwrap_or("")
    }

    fn token(&mut self) -> Result<&'a str, ParseError> {
        let at = self.pos;
        let t = self.take_while(is_tchar);
        if t.is_empty() {
            return Err(ParseError::ExpectedToken { at });
        }
        Ok(t)
    }

    /// A quoted string (RFC 3261 §25.1 `quoted-string`), cursor on the quote.
    fn quoted(&mut self) -> Result<Cow<'a, str>, ParseError> {
        let open = self.pos;
        self.pos += 1;
        let body_start = self.pos;
        let mut owned: Option<String> = None;
        let mut run_start = self.pos;
        loop {
            let Some(b) = self.peek() else {
                return Err(ParseError::UnterminatedQuote { at: open });
            };
            match b {
                b'"' => {
                    let run = self.s.get(run_start..self.pos).unwrap_or("");
                    let value = match owned {
                        Some(mut o) => {
                            o.push_str(run);
                            Cow::Owned(o)
                        }
                        None => Cow::Borrowed(self.s.get(body_start..self.pos).unwrap_or("")),
                    };
                    self.pos += 1;
                    return Ok(value);
                }
                b'\\' => {
                    // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                    let at = self.pos;
                    let escaped = self.s.as_bytes().get(at + 1).copied();
                    match escaped {
                        Some(e) if e.is_ascii() && e != b'\r' && e != b'\n' => {
                            let o = owned.get_or_insert_with(String::new);
                            o.push_str(self.s.get(run_start..at).unwrap_or(""));
                            o.push(char::from(e));
                            self.pos += 2;
                            run_start = self.pos;
                        }
                        Some(_) => return Err(ParseError::InvalidCharacter { at }),
                        None => return Err(ParseError::UnterminatedQuote { at: open }),
                    }
                }
                b'\t' | b'\r' | b'\n' => self.pos += 1,
                c if c < 0x20 || c == 0x7f => {
                    return Err(ParseError::InvalidCharacter { at: self.pos });
                }
                _ => self.pos += 1,
            }
        }
    }

    /// An unquoted parameter value: a token, or token68-like text
    /// (`/`, `=`, `:` appear in real-world nonces and URIs).
    fn bare_value(&mut self) -> Result<Cow<'a, str>, ParseError> {
        let at = self.pos;
        let v = self.take_while(|b| is_tchar(b) || matches!(b, b'/' | b'=' | b':' | b'@'));
        if v.is_empty() {
            return Err(ParseError::ExpectedValue { at });
        }
        Ok(Cow::Borrowed(v))
    }

    /// After a scheme and whitespace: a token68 followed by the end of the
    /// element, or `None` (cursor unchanged) when parameters follow.
    fn token68(&mut self) -> Option<&'a str> {
        let start = self.pos;
        let t = self.take_while(is_token68_char);
        while self.peek() == Some(b'=') {
            self.pos += 1;
        }
        let end = self.pos;
        self.skip_lws();
        if !t.is_empty() && (self.eof() || self.peek() == Some(b',')) {
            // `name=` with no value reads as a token68 too; a Digest
            // challenge then simply lacks that parameter.
            return self.s.get(start..end);
        }
        self.pos = start;
        None
    }
}

fn parse_list(value: &str) -> Result<Vec<Item<'_>>, ParseError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(ParseError::TooLong);
    }
    let mut c = Cursor { s: value, pos: 0 };
    let mut out: Vec<Item<'_>> = Vec::new();
    c.skip_lws_and_commas();
    if c.eof() {
        return Err(ParseError::Empty);
    }
    while !c.eof() {
        if out.len() >= MAX_CHALLENGES {
            return Err(ParseError::TooMany);
        }
        let scheme_at = c.pos;
        let scheme = c.token()?;
        let had_ws = c.skip_lws();
        if c.eof() || c.peek() == Some(b',') {
            out.push((scheme_at, scheme, None, AuthParams::default()));
            c.skip_lws_and_commas();
            continue;
        }
        if !had_ws {
            return Err(ParseError::InvalidCharacter { at: c.pos });
        }
        if let Some(t68) = c.token68() {
            out.push((scheme_at, scheme, Some(t68), AuthParams::default()));
            c.skip_lws_and_commas();
            continue;
        }
        let params = parse_params(&mut c)?;
        out.push((scheme_at, scheme, None, params));
    }
    Ok(out)
}

/// Parameters up to the end of the value or the start of the next
/// challenge (a token not followed by `=`).
fn parse_params<'a>(c: &mut Cursor<'a>) -> Result<AuthParams<'a>, ParseError> {
    let mut params: Vec<AuthParam<'a>> = Vec::new();
    loop {
        let name_at = c.pos;
        let name = c.token()?;
        c.skip_lws();
        if c.peek() != Some(b'=') {
            return Err(ParseError::ExpectedEquals { at: c.pos });
        }
        c.pos += 1;
        c.skip_lws();
        let (value, quoted) = match c.peek() {
            Some(b'"') => (c.quoted()?, true),
            _ => (c.bare_value()?, false),
        };
        if params.iter().any(|p| p.name.eq_ignore_ascii_case(name)) {
            return Err(ParseError::DuplicateParam { at: name_at });
        }
        if params.len() >= MAX_PARAMS {
            return Err(ParseError::TooMany);
        }
        params.push(AuthParam {
            name,
            value,
            quoted,
        });
        c.skip_lws();
        if c.eof() {
            break;
        }
        if c.peek() != Some(b',') {
            return Err(ParseError::ExpectedComma { at: c.pos });
        }
        c.skip_lws_and_commas();
        if c.eof() {
            break;
        }
        // A token followed by '=' is another parameter; anything else
        // starts the next challenge (RFC 7235 §4.1).
        let save = c.pos;
        let next = c.take_while(is_tchar);
        c.skip_lws();
        let is_param = !next.is_empty() && c.peek() == Some(b'=');
        c.pos = save;
        if !is_param {
            break;
        }
    }
    Ok(AuthParams { params })
}

/// Appends `s` as a quoted string, escaping `"` and `\` (RFC 3261 §25.1).
pub(crate) fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn one_digest_challenge() {
        let v = r#"Digest realm="atlanta.com", nonce="84a4cc6f3082121f32b42a2187831a9e", qop="auth,auth-int", algorithm=MD5, stale=FALSE"#;
        let cs = parse_challenges(v).unwrap();
        assert_eq!(cs.len(), 1);
        let c = &cs[0];
        assert!(c.is_digest());
        assert_eq!(c.realm(), Some("atlanta.com"));
        assert_eq!(c.algorithm(), Some("MD5"));
        assert!(!c.stale());
        assert_eq!(c.qop_options().collect::<Vec<_>>(), ["auth", "auth-int"]);
    }

    #[test]
    fn escapes_are_unescaped() {
        let c = parse_credentials(r#"Digest username="a\"b\\c", realm="r""#).unwrap();
        assert_eq!(c.username(), Some("a\"b\\c"));
        assert!(matches!(
            c.params.iter().next().unwrap().value,
            Cow::Owned(_)
        ));
        let mut s = String::new();
        push_quoted(&mut s, "a\"b\\c");
        assert_eq!(s, r#""a\"b\\c""#);
    }

    #[test]
    fn several_challenges_and_token68() {
        let v = r#"Basic realm="x", Digest realm="a", nonce="n", algorithm=SHA-256, Digest realm="a", nonce="n", Bearer abc==, Negotiate"#;
        let cs = parse_challenges(v).unwrap();
        let schemes: Vec<_> = cs.iter().map(|c| c.scheme).collect();
        assert_eq!(
            schemes,
            ["Basic", "Digest", "Digest", "Bearer", "Negotiate"]
        );
        assert_eq!(cs[3].token68, Some("abc=="));
        assert_eq!(cs[1].algorithm(), Some("SHA-256"));
    }
}
