//! Lexical building blocks of RFC 3261 §25.1 over header values.
//!
//! Header values handed to typed parsers are slices of the original message
//! and may contain folded lines (`CRLF 1*WSP`); every whitespace skip here
//! treats CR and LF as linear white space, so folding needs no unfolding copy.

use crate::error::HeaderErrorKind;

/// `token` characters (§25.1): alphanum and `-.!%*_+`'~`.
#[inline]
#[allow(clippy::indexing_slicing)] // a u8 indexes a 256-entry table
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[b as usize]
}

const fn token_char(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~')
}

#[allow(clippy::indexing_slicing)] // i < 256
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = token_char(i as u8);
        i += 1;
    }
    t
};

/// `word` characters (§25.1), used by Call-ID.
#[inline]
pub(crate) fn is_word(b: u8) -> bool {
    is_token(b)
        || matches!(
            b,
            b'(' | b')'
                | b'<'
                | b'>'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'{'
                | b'}'
        )
}

/// Finds a byte. Below 32 bytes a plain loop beats a vectorised search's
/// setup; header values (a Via, a Route) are often longer, and there
/// `memchr` looks at 32 bytes a step.
#[inline]
pub(crate) fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    if haystack.len() < 32 {
        haystack.iter().position(|&b| b == needle)
    } else {
        memchr::memchr(needle, haystack)
    }
}

/// Linear white space inside a header value (folding included).
#[inline]
pub(crate) const fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Replaces every fold (`CRLF 1*WSP`, also a bare LF) with one SP
/// (§7.3.1: a fold is equivalent to a single space). Borrows when there is
/// nothing to unfold.
pub(crate) fn unfold(s: &str) -> std::borrow::Cow<'_, str> {
    if memchr::memchr2(b'\r', b'\n', s.as_bytes()).is_none() {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['\r', '\n']) {
        out.push_str(rest.get(..i).unwrap_or(""));
        let after = rest.get(i..).unwrap_or("");
        let after = after.strip_prefix('\r').unwrap_or(after);
        let after = after.strip_prefix('\n').unwrap_or(after);
        if after.starts_with([' ', '\t']) {
            out.push(' ');
            rest = after.trim_start_matches([' ', '\t']);
        } else {
            // Not a fold: keep the break so the caller can refuse it.
            out.push_str(rest.get(i..i + 1).unwrap_or(""));
            rest = rest.get(i + 1..).unwrap_or("");
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Whether a header value would end its line early (a CR or LF that is not
/// a fold): writing it would inject header lines. (A NUL is legal inside a
/// quoted-pair, §25.1, as RFC 4475 `intmeth` shows.)
pub(crate) fn breaks_line(v: &str) -> bool {
    let b = v.as_bytes();
    b.iter().enumerate().any(|(i, &c)| match c {
        b'\r' => !(b.get(i + 1) == Some(&b'\n') && matches!(b.get(i + 2), Some(b' ' | b'\t'))),
        b'\n' => !matches!(b.get(i + 1), Some(b' ' | b'\t')),
        _ => false,
    })
}

/// Trims linear white space from both ends.
#[inline]
pub(crate) fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_lws(c as u8))
}

/// Whether every byte is a token character and there is at least one.
#[inline]
pub(crate) fn is_token_str(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token)
}

/// A cursor over one header value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.s.len()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    /// Moves forward `n` bytes (clamped to the end).
    pub(crate) fn advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.s.len());
    }

    pub(crate) fn bump(&mut self) {
        if self.pos < self.s.len() {
            self.pos += 1;
        }
    }

    pub(crate) fn slice(&self, from: usize, to: usize) -> &'a str {
        self.s.get(from..to).unwrap_or("")
    }

    /// Skips linear white space; returns whether any was skipped.
    pub(crate) fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_lws) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Consumes `b` (after optional whitespace on both sides, as SWS
    /// around separators allows, §25.1) and returns whether it was there.
    pub(crate) fn eat_sep(&mut self, b: u8) -> bool {
        let save = self.pos;
        self.skip_ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            self.skip_ws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    /// Consumes `b` exactly here.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Takes bytes while `f` holds.
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.slice(start, self.pos)
    }

    /// A non-empty token.
    pub(crate) fn token(&mut self) -> Result<&'a str, HeaderErrorKind> {
        let t = self.take_while(is_token);
        if t.is_empty() {
            Err(HeaderErrorKind::Token)
        } else {
            Ok(t)
        }
    }

    /// A quoted string starting at `"`; returns the content between the
    /// quotes with quoted-pairs left escaped (§25.1).
    pub(crate) fn quoted(&mut self) -> Result<&'a str, HeaderErrorKind> {
        if !self.eat(b'"') {
            return Err(HeaderErrorKind::Token);
        }
        let start = self.pos;
        let bytes = self.s.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b'"' => {
                    let inner = self.slice(start, self.pos);
                    self.pos += 1;
                    return Ok(inner);
                }
                // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                b'\\' => match bytes.get(self.pos + 1) {
                    Some(&n) if n <= 0x7f && n != b'\r' && n != b'\n' => self.pos += 2,
                    _ => return Err(HeaderErrorKind::UnterminatedQuote),
                },
                _ => self.pos += 1,
            }
        }
        Err(HeaderErrorKind::UnterminatedQuote)
    }

    /// A non-negative decimal integer that fits `max`.
    pub(crate) fn number(&mut self, max: u64) -> Result<u64, HeaderErrorKind> {
        let digits = self.take_while(|b| b.is_ascii_digit());
        parse_decimal(digits, max)
    }

    /// Fails unless only whitespace is left.
    pub(crate) fn end(&mut self) -> Result<(), HeaderErrorKind> {
        self.skip_ws();
        if self.is_empty() {
            Ok(())
        } else {
            Err(HeaderErrorKind::Trailing)
        }
    }
}

/// Parses decimal digits (at least one, at most 20) into a value `<= max`.
pub(crate) fn parse_decimal(digits: &str, max: u64) -> Result<u64, HeaderErrorKind> {
    if digits.is_empty() {
        return Err(HeaderErrorKind::Number);
    }
    // Leading zeros are digits too (`1*DIGIT`); they do not count towards
    // the length bound.
    let significant = digits.trim_start_matches('0');
    let digits = if significant.is_empty() {
        "0"
    } else {
        significant
    };
    if digits.len() > 20 {
        return Err(HeaderErrorKind::Number);
    }
    let mut v: u64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return Err(HeaderErrorKind::Number);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(HeaderErrorKind::Number)?;
    }
    if v > max {
        return Err(HeaderErrorKind::Number);
    }
    Ok(v)
}

/// Splits a list header value at top-level commas: commas inside quoted
/// strings or `<...>` do not separate values (§7.3.1). Yields the trimmed
/// elements, including empty ones (callers decide whether `,,` is an error).
#[derive(Debug, Clone)]
pub(crate) struct ListSplit<'a> {
    s: &'a str,
    pos: usize,
    done: bool,
}

impl<'a> ListSplit<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        ListSplit {
            s,
            pos: 0,
            done: false,
        }
    }

    /// Where the next element starts (leading whitespace skipped), if any.
    pub(crate) fn next_start(&self) -> Option<usize> {
        if self.done {
            return None;
        }
        let b = self.s.as_bytes();
        let mut i = self.pos;
        while b.get(i).copied().is_some_and(is_lws) {
            i += 1;
        }
        Some(i)
    }
}

impl<'a> Iterator for ListSplit<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.done {
            return None;
        }
        let bytes = self.s.as_bytes();
        let start = self.pos;
        if crate::scan::find_byte(b',', bytes.get(start..).unwrap_or_default()).is_none() {
            self.done = true;
            return Some(trim(self.s.get(start..).unwrap_or("")));
        }
        let mut i = start;
        let mut in_quote = false;
        let mut in_angle = false;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'\\' if in_quote => i += 1,
                b'"' if !in_angle => in_quote = !in_quote,
                b'<' if !in_quote => in_angle = true,
                b'>' if !in_quote => in_angle = false,
                b',' if !in_quote && !in_angle => {
                    self.pos = i + 1;
                    return Some(trim(self.s.get(start..i).unwrap_or("")));
                }
                _ => {}
            }
            i += 1;
        }
        self.done = true;
        Some(trim(self.s.get(start..).unwrap_or("")))
    }
}

/// The end of the first element of a list value: the first top-level comma
/// (not in quotes or `<>`), or the end, with trailing whitespace trimmed.
pub(crate) fn first_element_end(s: &str) -> usize {
    let first = ListSplit::new(s).next().unwrap_or("");
    // `first` is a trimmed subslice that starts at or after index 0.
    let lead = s.len()
        - s.trim_start_matches(|c: char| c.is_ascii() && is_lws(c as u8))
            .len();
    lead + first.len()
}

/// Compares two strings per RFC 3261 §19.1.4: an escaped character equals
/// the character itself unless it is reserved (`;/?:@&=+$,`), which keeps
/// its escaped meaning; hex digits of escapes compare case-insensitively.
/// Either case-sensitive or ASCII case-insensitive. No allocation.
pub(crate) fn eq_unescaped(a: &str, b: &str, ignore_case: bool) -> bool {
    let mut x = CompareUnits(Unescape::new(a.as_bytes()));
    let mut y = CompareUnits(Unescape::new(b.as_bytes()));
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(p), Some(q)) => {
                let same = if ignore_case && p < 0x100 && q < 0x100 {
                    (p as u8).eq_ignore_ascii_case(&(q as u8))
                } else {
                    p == q
                };
                if !same {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// The units URI comparison works on: a byte, or (above 0xff) an escaped
/// reserved byte that must not equal its literal form.
struct CompareUnits<'a>(Unescape<'a>);

impl Iterator for CompareUnits<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        let escaped = self.0.s.get(self.0.i) == Some(&b'%');
        let before = self.0.i;
        let b = self.0.next()?;
        let decoded = escaped && self.0.i == before + 3;
        if decoded && b";/?:@&=+$,".contains(&b) {
            Some(0x100 | u16::from(b))
        } else {
            Some(u16::from(b))
        }
    }
}

/// Iterator over the bytes of a string with `%HH` escapes decoded; a `%` not
/// followed by two hex digits stands for itself.
#[derive(Debug, Clone)]
pub(crate) struct Unescape<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Unescape<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Self {
        Unescape { s, i: 0 }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl Iterator for Unescape<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let b = *self.s.get(self.i)?;
        if b == b'%'
            && let (Some(h), Some(l)) = (
                self.s.get(self.i + 1).copied().and_then(hex),
                self.s.get(self.i + 2).copied().and_then(hex),
            )
        {
            self.i += 3;
            return Some(h << 4 | l);
        }
        self.i += 1;
        Some(b)
    }
}

/// Decodes `%HH` escapes into an owned byte vector (for callers that need
/// the user part as bytes, e.g. a registrar key).
#[must_use]
pub fn unescape(s: &str) -> Vec<u8> {
    Unescape::new(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_split_respects_quotes_and_angles() {
        let v: Vec<_> =
            ListSplit::new(r#""a, b" <sip:x@y;p=1,2>, <sip:z>;q=0.5 , sip:w"#).collect();
        assert_eq!(v, [r#""a, b" <sip:x@y;p=1,2>"#, "<sip:z>;q=0.5", "sip:w"]);
        let v: Vec<_> = ListSplit::new(r#""a\", b", c"#).collect();
        assert_eq!(v, [r#""a\", b""#, "c"]);
        let v: Vec<_> = ListSplit::new("a,,b").collect();
        assert_eq!(v, ["a", "", "b"]);
    }

    #[test]
    fn quoted_strings_and_numbers() {
        let mut c = Cursor::new(r#""a \"b\"" rest"#);
        assert_eq!(c.quoted(), Ok(r#"a \"b\""#));
        assert_eq!(
            Cursor::new("\"abc").quoted(),
            Err(HeaderErrorKind::UnterminatedQuote)
        );
        assert_eq!(
            parse_decimal("4294967296", u64::from(u32::MAX)),
            Err(HeaderErrorKind::Number)
        );
        assert_eq!(parse_decimal("42", 100), Ok(42));
        assert_eq!(
            parse_decimal("36893488147419103232", u64::MAX),
            Err(HeaderErrorKind::Number)
        );
    }

    #[test]
    fn unescaped_comparison() {
        assert!(eq_unescaped("al%69ce", "alice", false));
        assert!(!eq_unescaped("Alice", "alice", false));
        assert!(eq_unescaped("%41lice", "alice", true));
        assert!(eq_unescaped("100%", "100%", false));
        assert_eq!(unescape("a%00b"), b"a\0b");
    }
}
