//! The message: one parse of the bytes into an index of the start line and
//! header lines (RFC 3261 §7), with typed values parsed on demand.
//!
//! The index stores byte ranges into the original [`Bytes`]; a header value
//! keeps its folding (`CRLF 1*WSP`, §7.3.1) and typed parsers treat the fold
//! as whitespace, so nothing is copied or unfolded.

use std::fmt;
use std::sync::OnceLock;

use bytes::Bytes;
use bytestring::ByteString;

use crate::HeaderName;
use crate::error::{HeaderError, HeaderErrorKind, ParseError, StartLineFault};
use crate::headers::TypedHeader;
use crate::method::Method;
use crate::name::MAX_KNOWN_LEN;
use crate::scan::{ListSplit, is_token, parse_decimal};
use crate::uri::Uri;

/// A byte range into the message. `u32` keeps the index small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        // Messages are bounded by `Limits::max_message_size` (u32).
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        }
    }

    /// This range moved from `from` to `to` (a copy of the bytes it
    /// points into starts at `to` where the original started at `from`).
    pub(crate) fn moved(self, from: u32, to: u32) -> Span {
        Span {
            start: self.start - from + to,
            end: self.end - from + to,
        }
    }

    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Size limits enforced while parsing and framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (start line, headers and body) in bytes.
    pub max_message_size: u32,
    /// Largest number of header lines (continuation lines not counted).
    pub max_headers: u32,
}

impl Default for Limits {
    /// 64 KiB (the largest UDP datagram) and 256 header lines.
    fn default() -> Self {
        Limits {
            max_message_size: 65_535,
            max_headers: 256,
        }
    }
}

/// Whether the message came in a datagram or was framed from a stream; it
/// decides what a missing or short Content-Length means (RFC 3261 §18.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: no Content-Length means the body is the rest of the datagram;
    /// bytes past Content-Length are discarded.
    Datagram,
    /// TCP, TLS, WebSocket: Content-Length is mandatory and must match.
    Stream,
}

/// The parsed start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartLine {
    Request {
        method: Span,
        uri: Span,
        version: Span,
    },
    Response {
        version: Span,
        code: u16,
        reason: Span,
    },
}

impl StartLine {
    /// The same parse for a copy of the line (see [`Span::moved`]).
    pub(crate) fn moved(self, from: u32, to: u32) -> StartLine {
        match self {
            StartLine::Request {
                method,
                uri,
                version,
            } => StartLine::Request {
                method: method.moved(from, to),
                uri: uri.moved(from, to),
                version: version.moved(from, to),
            },
            StartLine::Response {
                version,
                code,
                reason,
            } => StartLine::Response {
                version: version.moved(from, to),
                code,
                reason: reason.moved(from, to),
            },
        }
    }
}

/// One header line in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderField {
    pub(crate) name: HeaderName,
    pub(crate) name_span: Span,
    pub(crate) value: Span,
    /// The whole line including its continuation lines and final line break.
    pub(crate) line: Span,
}

impl HeaderField {
    /// The same field in a copy of its line (see [`Span::moved`]).
    pub(crate) fn moved(self, from: u32, to: u32) -> HeaderField {
        HeaderField {
            name: self.name,
            name_span: self.name_span.moved(from, to),
            value: self.value.moved(from, to),
            line: self.line.moved(from, to),
        }
    }
}

/// Positions of the headers a proxy reads on every message, found while
/// indexing so that reading them is a lookup, not a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Hot {
    via: Option<u16>,
    from: Option<u16>,
    to: Option<u16>,
    call_id: Option<u16>,
    cseq: Option<u16>,
    max_forwards: Option<u16>,
    route: Option<u16>,
    content_length: Option<u16>,
    /// A Content-Type line was seen.
    content_type: bool,
    /// Bit `i` set: `SINGLE_VALUED[i]` appears more than once.
    repeated: u8,
}

/// Headers that may appear at most once (§20; RFC 4475 §3.3.8), in the
/// order validation reports them; their repetitions are noted while
/// indexing ([`SipMessage::repeated_single_valued`]), not counted by a
/// scan per name.
pub const SINGLE_VALUED: [HeaderName; 6] = [
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::MaxForwards,
    HeaderName::ContentType,
];

impl Hot {
    /// Records header line `idx` if it is the first of a hot header, and
    /// the repetition of a single-valued one; a second Content-Length is a
    /// framing error (RFC 4475 §3.3.9).
    fn note(&mut self, name: HeaderName, idx: usize) -> Result<(), ParseError> {
        // The bits follow `SINGLE_VALUED`.
        let (slot, single) = match name {
            HeaderName::Via => (&mut self.via, 0),
            HeaderName::From => (&mut self.from, 1),
            HeaderName::To => (&mut self.to, 1 << 1),
            HeaderName::CallId => (&mut self.call_id, 1 << 2),
            HeaderName::CSeq => (&mut self.cseq, 1 << 3),
            HeaderName::MaxForwards => (&mut self.max_forwards, 1 << 4),
            HeaderName::Route => (&mut self.route, 0),
            HeaderName::ContentLength => {
                if self.content_length.is_some() {
                    return Err(ParseError::DuplicateContentLength);
                }
                (&mut self.content_length, 0)
            }
            HeaderName::ContentType => {
                if self.content_type {
                    self.repeated |= 1 << 5;
                }
                self.content_type = true;
                return Ok(());
            }
            _ => return Ok(()),
        };
        let again = slot.is_some();
        slot.get_or_insert(u16::try_from(idx).unwrap_or(u16::MAX));
        if again {
            self.repeated |= single;
        }
        Ok(())
    }
}

/// A parsed SIP request or response: the original bytes and an index over
/// them.
#[derive(Clone)]
pub struct SipMessage {
    buf: Bytes,
    start: StartLine,
    start_line: Span,
    headers: Vec<HeaderField>,
    hot: Hot,
    /// Offset of the empty line that ends the header section.
    headers_end: u32,
    body: Span,
    content_length: Option<u32>,
    /// The start line and header section (`buf` up to `headers_end`) as
    /// text, checked to be UTF-8 once when the message is indexed; `None`
    /// when it is not (then each value is checked when it is read, and
    /// only values with bad bytes fail). Every text accessor slices it, so
    /// reading a header value or an identifier does not check its bytes
    /// again.
    text: Option<ByteString>,
    /// The dialog and transaction identifiers, parsed on first use and kept
    /// (every layer reads them; none should parse them twice).
    ids: OnceLock<Option<Ids>>,
}

/// Positions of the identifiers of a message (Call-ID, CSeq, tags, top Via
/// branch), found by the typed parsers once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ids {
    call_id: Span,
    cseq: u32,
    cseq_method: Span,
    from_tag: Option<Span>,
    to_tag: Option<Span>,
    branch: Option<Span>,
    via: Option<ViaIds>,
}

/// What transport and transaction layers read from the top Via.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ViaIds {
    transport: Span,
    host: Span,
    port: Option<u16>,
    /// `None`: no rport; `Some(None)`: bare rport; `Some(Some(p))`: filled.
    rport: Option<Option<u16>>,
}

/// The top Via, as the transaction and transport layers read it (parsed
/// once with the message's identifiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopVia<'m> {
    /// The transport token (`UDP`, `TCP`, ...).
    pub transport: &'m str,
    /// The sent-by host as written (IPv6 in brackets).
    pub host: &'m str,
    /// The sent-by port, if written.
    pub port: Option<u16>,
    /// The `rport` parameter: `None` absent, `Some(None)` bare.
    pub rport: Option<Option<u16>>,
    /// The branch.
    pub branch: Option<&'m str>,
}

/// Two messages are equal when their bytes and index are; the cache of
/// parsed identifiers does not count.
impl PartialEq for SipMessage {
    fn eq(&self, other: &Self) -> bool {
        self.buf == other.buf
            && self.start == other.start
            && self.start_line == other.start_line
            && self.headers == other.headers
            && self.headers_end == other.headers_end
            && self.body == other.body
            && self.content_length == other.content_length
    }
}

impl Eq for SipMessage {}

impl SipMessage {
    /// Equal bytes and equal index, the hot-header positions included.
    #[cfg(test)]
    pub(crate) fn same_index(&self, other: &SipMessage) -> bool {
        self == other && self.hot == other.hot
    }
}

impl fmt::Debug for SipMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipMessage")
            .field("start_line", &self.start_line_str())
            .field("headers", &self.headers.len())
            .field("body", &self.body().len())
            .finish()
    }
}

/// A view of one header line.
#[derive(Debug, Clone, Copy)]
pub struct HeaderRef<'m> {
    msg: &'m SipMessage,
    field: &'m HeaderField,
}

impl<'m> HeaderRef<'m> {
    /// The header's name.
    #[must_use]
    pub fn name(&self) -> HeaderName {
        self.field.name
    }

    /// The name as spelled on the wire (e.g. `v`, `VIA`).
    #[must_use]
    pub fn wire_name(&self) -> &'m [u8] {
        self.msg.slice(self.field.name_span)
    }

    /// The raw value, folding included, surrounding whitespace trimmed.
    #[must_use]
    pub fn value_bytes(&self) -> &'m [u8] {
        self.msg.slice(self.field.value)
    }

    pub(crate) fn value_span(&self) -> Span {
        self.field.value
    }

    pub(crate) fn name_span(&self) -> Span {
        self.field.name_span
    }

    /// The whole line, continuation lines and line break included.
    pub(crate) fn line_bytes(&self) -> &'m [u8] {
        self.msg.slice(self.field.line)
    }

    pub(crate) fn line_span(&self) -> Span {
        self.field.line
    }

    /// The value as UTF-8, or [`HeaderErrorKind::Encoding`].
    pub fn value(&self) -> Result<&'m str, HeaderError> {
        self.msg
            .text_of(self.field.value)
            .ok_or_else(|| HeaderErrorKind::Encoding.at(self.field.name))
    }
}

/// The maximum value of `Content-Length` this crate accepts.
const MAX_CONTENT_LENGTH: u64 = u32::MAX as u64;

impl SipMessage {
    /// Parses one message received in a datagram (RFC 3261 §18.3), with
    /// default [`Limits`].
    pub fn parse(buf: Bytes) -> Result<SipMessage, ParseError> {
        SipMessage::parse_with(buf, Transport::Datagram, &Limits::default())
    }

    /// Parses one message with explicit transport semantics and limits.
    pub fn parse_with(
        buf: Bytes,
        transport: Transport,
        limits: &Limits,
    ) -> Result<SipMessage, ParseError> {
        SipMessage::index(buf, transport, limits, None, |_| None)
    }

    /// Indexes `buf`. `start` is the start line's parse when the caller
    /// already has it (bytes copied from a message parsed before, spans
    /// given for `buf`); `known(pos)` returns the header field that starts
    /// at `pos` when the caller knows it (the same), so its line is not
    /// scanned again. With neither this is [`SipMessage::parse_with`]; with
    /// them the result must be, and is where the callers are tested, the
    /// same as without (see [`crate::Editor::into_message`]).
    pub(crate) fn index(
        buf: Bytes,
        transport: Transport,
        limits: &Limits,
        start: Option<StartLine>,
        mut known: impl FnMut(usize) -> Option<HeaderField>,
    ) -> Result<SipMessage, ParseError> {
        if buf.len() > limits.max_message_size as usize {
            return Err(ParseError::TooLarge {
                limit: limits.max_message_size,
            });
        }
        let b: &[u8] = &buf;
        // §7.5: CRLFs before the start line are ignored.
        let mut pos = 0;
        while b.get(pos..pos + 2) == Some(b"\r\n") {
            pos += 2;
        }
        if pos >= b.len() {
            return Err(ParseError::Empty);
        }
        let (sl_end, next) = line_end(b, pos).ok_or(ParseError::Unterminated)?;
        let start_line = Span::new(pos, sl_end);
        let start = match start {
            Some(s) => s,
            None => parse_start_line(b, pos, sl_end)?,
        };
        let sl_start = pos;
        // The line number of the line at `at`, for errors (1: start line).
        let line_no = |at: usize| {
            let before = b.get(sl_start..at).unwrap_or_default();
            u32::try_from(memchr::memchr_iter(b'\n', before).count() + 1).unwrap_or(u32::MAX)
        };
        pos = next;

        let mut headers: Vec<HeaderField> = Vec::with_capacity(24);
        let mut hot = Hot::default();
        let mut content_length = None;
        let headers_end;
        loop {
            if let Some(field) = known(pos) {
                if headers.len() >= limits.max_headers as usize {
                    return Err(ParseError::TooManyHeaders {
                        limit: limits.max_headers,
                    });
                }
                hot.note(field.name, headers.len())?;
                headers.push(field);
                pos = field.line.end as usize;
                continue;
            }
            let Some((end, next)) = line_end(b, pos) else {
                return Err(ParseError::Unterminated);
            };
            if end == pos {
                headers_end = u32::try_from(pos).unwrap_or(u32::MAX);
                pos = next;
                break;
            }
            let first = b.get(pos).copied().unwrap_or(b'\r');
            if first == b' ' || first == b'\t' {
                // Continuation of the previous header (§7.3.1).
                let Some(prev) = headers.last_mut() else {
                    return Err(ParseError::HeaderLine { line: line_no(pos) });
                };
                let value_end = trim_end(b, pos, end);
                if value_end > pos {
                    if prev.value.start == prev.value.end {
                        prev.value.start = u32::try_from(skip_wsp(b, pos, end)).unwrap_or(u32::MAX);
                    }
                    prev.value.end = u32::try_from(value_end).unwrap_or(u32::MAX);
                }
                prev.line.end = u32::try_from(next).unwrap_or(u32::MAX);
                pos = next;
                continue;
            }
            if headers.len() >= limits.max_headers as usize {
                return Err(ParseError::TooManyHeaders {
                    limit: limits.max_headers,
                });
            }
            // One pass over the name: token characters, lowercased into a
            // small buffer for the lookup, then optional WSP and ':'.
            let mut lower = [0u8; MAX_KNOWN_LEN];
            let mut i = pos;
            while i < end {
                let c = b.get(i).copied().unwrap_or(0);
                if !is_token(c) {
                    break;
                }
                if let Some(slot) = lower.get_mut(i - pos) {
                    *slot = c.to_ascii_lowercase();
                }
                i += 1;
            }
            let name_end = i;
            let colon = skip_wsp(b, name_end, end);
            if name_end == pos || b.get(colon) != Some(&b':') || colon >= end {
                return Err(ParseError::HeaderLine { line: line_no(pos) });
            }
            let name_len = name_end - pos;
            let name = match lower.get(..name_len) {
                Some(l) => HeaderName::from_lowercase(l),
                None => HeaderName::Other,
            };
            let vstart = skip_wsp(b, colon + 1, end);
            let vend = trim_end(b, vstart, end);
            hot.note(name, headers.len())?;
            headers.push(HeaderField {
                name,
                name_span: Span::new(pos, name_end),
                value: Span::new(vstart, vend),
                line: Span::new(pos, next),
            });
            pos = next;
        }
        if let Some(i) = hot.content_length {
            let f = headers
                .get(usize::from(i))
                .ok_or(ParseError::BadContentLength)?;
            let v = std::str::from_utf8(b.get(f.value.range()).unwrap_or_default())
                .map_err(|_| ParseError::BadContentLength)?;
            let v = crate::scan::trim(v);
            let n =
                parse_decimal(v, MAX_CONTENT_LENGTH).map_err(|_| ParseError::BadContentLength)?;
            content_length = Some(u32::try_from(n).map_err(|_| ParseError::BadContentLength)?);
        }
        let available = b.len() - pos;
        let body_len = match (content_length, transport) {
            (Some(n), _) => {
                if n as usize > available {
                    return Err(ParseError::Truncated {
                        declared: n,
                        available: u32::try_from(available).unwrap_or(u32::MAX),
                    });
                }
                n as usize
            }
            (None, Transport::Datagram) => available,
            (None, Transport::Stream) => return Err(ParseError::MissingContentLength),
        };
        Ok(SipMessage {
            start,
            start_line,
            headers,
            hot,
            headers_end,
            body: Span::new(pos, pos + body_len),
            content_length,
            text: head_text(&buf, headers_end as usize),
            ids: OnceLock::new(),
            buf,
        })
    }

    /// Indexes a message the builders wrote, from the positions they
    /// recorded while writing, without scanning the header lines again.
    /// `fields` holds, per header line, the name's start and end, the
    /// value's start and end (untrimmed) and the end of the line. The
    /// result equals what [`SipMessage::parse`] makes of the same bytes
    /// (the builder tests check it).
    pub(crate) fn from_built(
        buf: Bytes,
        start_line_end: usize,
        fields: &[[usize; 5]],
        headers_end: usize,
    ) -> Result<SipMessage, ParseError> {
        let limits = Limits::default();
        if buf.len() > limits.max_message_size as usize {
            return Err(ParseError::TooLarge {
                limit: limits.max_message_size,
            });
        }
        if fields.len() > limits.max_headers as usize {
            return Err(ParseError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        let b: &[u8] = &buf;
        let start = parse_start_line(b, 0, start_line_end)?;
        let mut headers = Vec::with_capacity(fields.len());
        let mut hot = Hot::default();
        let mut content_length = None;
        for (i, &[ns, ne, vs, ve, le]) in fields.iter().enumerate() {
            let name = HeaderName::from_bytes(b.get(ns..ne).unwrap_or_default());
            let vstart = skip_wsp(b, vs, ve);
            let vend = trim_end(b, vstart, ve);
            hot.note(name, i)?;
            if name == HeaderName::ContentLength {
                let v = std::str::from_utf8(b.get(vstart..vend).unwrap_or_default())
                    .map_err(|_| ParseError::BadContentLength)?;
                let n = parse_decimal(v, MAX_CONTENT_LENGTH)
                    .map_err(|_| ParseError::BadContentLength)?;
                content_length = Some(u32::try_from(n).map_err(|_| ParseError::BadContentLength)?);
            }
            headers.push(HeaderField {
                name,
                name_span: Span::new(ns, ne),
                value: Span::new(vstart, vend),
                line: Span::new(ns, le),
            });
        }
        let body_start = headers_end + 2;
        let body_len = content_length.unwrap_or(0) as usize;
        if body_start + body_len > b.len() {
            return Err(ParseError::Truncated {
                declared: content_length.unwrap_or(0),
                available: u32::try_from(b.len().saturating_sub(body_start)).unwrap_or(u32::MAX),
            });
        }
        Ok(SipMessage {
            start,
            start_line: Span::new(0, start_line_end),
            headers,
            hot,
            headers_end: u32::try_from(headers_end).unwrap_or(u32::MAX),
            body: Span::new(body_start, body_start + body_len),
            content_length,
            text: head_text(&buf, headers_end),
            ids: OnceLock::new(),
            buf,
        })
    }

    // ---- raw access -------------------------------------------------------

    pub(crate) fn slice(&self, s: Span) -> &[u8] {
        self.buf.get(s.range()).unwrap_or_default()
    }

    /// The text of a span: a slice of the header section checked when the
    /// message was indexed, else (bytes that are not UTF-8, or the body)
    /// checked now; `None` when they are not UTF-8.
    fn text_of(&self, s: Span) -> Option<&str> {
        if let Some(t) = self.text.as_deref().and_then(|t| t.get(s.range())) {
            return Some(t);
        }
        std::str::from_utf8(self.slice(s)).ok()
    }

    fn str_of(&self, s: Span) -> &str {
        self.text_of(s).unwrap_or_default()
    }

    /// The bytes the message was parsed from (including any bytes after the
    /// body that a datagram carried and Content-Length excluded).
    #[must_use]
    pub fn as_bytes(&self) -> &Bytes {
        &self.buf
    }

    /// The bytes of the message itself: start line to the end of the body.
    #[must_use]
    pub fn message_bytes(&self) -> Bytes {
        self.buf
            .slice(self.start_line.start as usize..self.body.end as usize)
    }

    /// The start line, without its line break.
    #[must_use]
    pub fn start_line_str(&self) -> &str {
        self.str_of(self.start_line)
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        self.slice(self.body)
    }

    /// The body as a cheap reference-counted slice.
    #[must_use]
    pub fn body_bytes(&self) -> Bytes {
        self.buf.slice(self.body.range())
    }

    /// The declared Content-Length, if any.
    #[must_use]
    pub fn content_length(&self) -> Option<u32> {
        self.content_length
    }

    pub(crate) fn fields(&self) -> &[HeaderField] {
        &self.headers
    }

    pub(crate) fn headers_end(&self) -> usize {
        self.headers_end as usize
    }

    pub(crate) fn start_line_span(&self) -> Span {
        self.start_line
    }

    /// The start line's parse (spans into this message's bytes).
    pub(crate) fn start_parsed(&self) -> StartLine {
        self.start
    }

    pub(crate) fn body_span(&self) -> Span {
        self.body
    }

    // ---- start line -------------------------------------------------------

    /// Whether this is a request.
    #[must_use]
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The method of a request; `None` for a response.
    #[must_use]
    pub fn method(&self) -> Option<Method<'_>> {
        match self.start {
            StartLine::Request { method, .. } => Some(Method::from_token(self.str_of(method))),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI as written; `None` for a response.
    #[must_use]
    pub fn request_uri_str(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { uri, .. } => Some(self.str_of(uri)),
            StartLine::Response { .. } => None,
        }
    }

    pub(crate) fn request_uri_span(&self) -> Option<Span> {
        match self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI; `None` for a response. (It was checked when the
    /// message was parsed.)
    #[must_use]
    pub fn request_uri(&self) -> Option<Uri<'_>> {
        self.request_uri_str().and_then(|s| Uri::parse(s).ok())
    }

    /// The SIP-Version text of the start line (e.g. `SIP/2.0`).
    #[must_use]
    pub fn version(&self) -> &str {
        match self.start {
            StartLine::Request { version, .. } | StartLine::Response { version, .. } => {
                self.str_of(version)
            }
        }
    }

    /// Whether the version is SIP/2.0 (case-insensitive).
    #[must_use]
    pub fn is_sip_2_0(&self) -> bool {
        self.version().eq_ignore_ascii_case("SIP/2.0")
    }

    /// The status code of a response; `None` for a request.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response (may be empty); `None` for a request.
    #[must_use]
    pub fn reason(&self) -> Option<&str> {
        match self.start {
            StartLine::Response { reason, .. } => Some(self.str_of(reason)),
            StartLine::Request { .. } => None,
        }
    }

    // ---- identifiers, parsed once ------------------------------------------

    /// The span of a slice of this message's bytes.
    fn span_of(&self, s: &str) -> Option<Span> {
        let base = self.buf.as_ptr() as usize;
        let p = s.as_ptr() as usize;
        (p >= base && p + s.len() <= base + self.buf.len())
            .then(|| Span::new(p - base, p - base + s.len()))
    }

    fn ids(&self) -> Option<&Ids> {
        self.ids
            .get_or_init(|| {
                use crate::headers::{CSeq, CallId};
                let call_id: CallId<'_> = self.typed()?.ok()?;
                let cseq: CSeq<'_> = self.typed()?.ok()?;
                // The pieces only (`crate::light`): the URIs of From and
                // To and the whole grammar of the Via are left to
                // `validate` and the typed headers.
                let tag = |name| crate::light::tag(self.header(name)?.value().ok()?).ok();
                let from_tag = tag(HeaderName::From)?;
                let to_tag = tag(HeaderName::To)?;
                let (branch, via) = self.via_ids();
                let cseq_value = self.header(HeaderName::CSeq)?.value().ok()?;
                let method = cseq.method.as_str();
                // The method ends the value (`1*DIGIT LWS Method`).
                let at = match cseq_value.len().checked_sub(method.len()) {
                    Some(at) if cseq_value.ends_with(method) => at,
                    _ => cseq_value.rfind(method)?,
                };
                Some(Ids {
                    call_id: self.span_of(call_id.0)?,
                    cseq: cseq.seq,
                    cseq_method: self.span_of(cseq_value.get(at..at + method.len())?)?,
                    from_tag: from_tag.and_then(|t| self.span_of(t)),
                    to_tag: to_tag.and_then(|t| self.span_of(t)),
                    branch,
                    via,
                })
            })
            .as_ref()
    }

    /// The top Via's branch and pieces (for [`SipMessage::ids`]).
    fn via_ids(&self) -> (Option<Span>, Option<ViaIds>) {
        let top = self
            .header(HeaderName::Via)
            .and_then(|h| h.value().ok())
            .and_then(crate::light::top_via);
        let branch = top.and_then(|v| v.branch).and_then(|b| self.span_of(b));
        let via = top.and_then(|v| {
            Some(ViaIds {
                transport: self.span_of(v.transport)?,
                host: self.span_of(v.host)?,
                port: v.port,
                rport: v.rport,
            })
        });
        (branch, via)
    }

    /// Takes over the identifiers `original` has parsed already, for this
    /// message made by copying stretches of `original`'s bytes
    /// (`moved(span)`: where a span of the original landed, when it was
    /// copied whole). They are taken only where the first Call-ID, CSeq,
    /// From and To (and Via, else it is read again) have the same values,
    /// moved, as the original's: the same bytes read the same way. Without
    /// them, or when `original` has not parsed its identifiers, nothing is
    /// taken and they are parsed on first use, as for any message.
    pub(crate) fn take_ids_of(&self, original: &SipMessage, moved: impl Fn(Span) -> Option<Span>) {
        let Some(Some(ids)) = original.ids.get() else {
            return;
        };
        let same = |name: HeaderName| match (original.header(name), self.header(name)) {
            (Some(o), Some(n)) => moved(o.value_span()) == Some(n.value_span()),
            _ => false,
        };
        if ![
            HeaderName::CallId,
            HeaderName::CSeq,
            HeaderName::From,
            HeaderName::To,
        ]
        .into_iter()
        .all(same)
        {
            return;
        }
        let (branch, via) = if same(HeaderName::Via) {
            let via = ids.via.and_then(|v| {
                Some(ViaIds {
                    transport: moved(v.transport)?,
                    host: moved(v.host)?,
                    ..v
                })
            });
            (ids.branch.and_then(&moved), via)
        } else {
            self.via_ids()
        };
        // A tag the original has must land whole (`None`: it did not).
        let tag = |t: Option<Span>| match t {
            None => Some(None),
            Some(t) => moved(t).map(Some),
        };
        let (Some(call_id), Some(cseq_method), Some(from_tag), Some(to_tag)) = (
            moved(ids.call_id),
            moved(ids.cseq_method),
            tag(ids.from_tag),
            tag(ids.to_tag),
        ) else {
            return;
        };
        let _ = self.ids.set(Some(Ids {
            call_id,
            cseq: ids.cseq,
            cseq_method,
            from_tag,
            to_tag,
            branch,
            via,
        }));
    }

    /// The Call-ID, when Call-ID, CSeq, From and To all parse (the
    /// identifiers are parsed together, once, and kept).
    #[must_use]
    pub fn call_id(&self) -> Option<&str> {
        self.ids().map(|i| self.str_of(i.call_id))
    }

    /// The CSeq number and method.
    #[must_use]
    pub fn cseq(&self) -> Option<(u32, Method<'_>)> {
        self.ids()
            .map(|i| (i.cseq, Method::from_token(self.str_of(i.cseq_method))))
    }

    /// The From tag.
    #[must_use]
    pub fn from_tag(&self) -> Option<&str> {
        self.ids()?.from_tag.map(|s| self.str_of(s))
    }

    /// The To tag.
    #[must_use]
    pub fn to_tag(&self) -> Option<&str> {
        self.ids()?.to_tag.map(|s| self.str_of(s))
    }

    /// The branch of the top Via.
    #[must_use]
    pub fn top_branch(&self) -> Option<&str> {
        self.ids()?.branch.map(|s| self.str_of(s))
    }

    /// The top Via's transport, sent-by, rport and branch.
    #[must_use]
    pub fn top_via(&self) -> Option<TopVia<'_>> {
        let ids = self.ids()?;
        let v = ids.via?;
        Some(TopVia {
            transport: self.str_of(v.transport),
            host: self.str_of(v.host),
            port: v.port,
            rport: v.rport,
            branch: ids.branch.map(|s| self.str_of(s)),
        })
    }

    // ---- headers ----------------------------------------------------------

    /// All header lines in order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderRef<'_>> {
        self.headers
            .iter()
            .map(move |field| HeaderRef { msg: self, field })
    }

    /// Header lines with the given name, in order. For
    /// [`HeaderName::Other`], use [`SipMessage::headers_named`].
    pub fn headers_of(&self, name: HeaderName) -> impl Iterator<Item = HeaderRef<'_>> {
        self.headers
            .iter()
            .filter(move |f| f.name == name)
            .map(move |field| HeaderRef { msg: self, field })
    }

    /// Header lines whose name matches `name` case-insensitively (compact
    /// forms of known headers included).
    pub fn headers_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = HeaderRef<'s>> + 's {
        let known = HeaderName::from_bytes(name.as_bytes());
        self.headers
            .iter()
            .filter(move |f| {
                if known == HeaderName::Other {
                    f.name == HeaderName::Other
                        && self
                            .slice(f.name_span)
                            .eq_ignore_ascii_case(name.as_bytes())
                } else {
                    f.name == known
                }
            })
            .map(move |field| HeaderRef { msg: self, field })
    }

    /// The first line of a header, raw.
    #[must_use]
    pub fn header(&self, name: HeaderName) -> Option<HeaderRef<'_>> {
        let idx = match name {
            HeaderName::Via => self.hot.via,
            HeaderName::From => self.hot.from,
            HeaderName::To => self.hot.to,
            HeaderName::CallId => self.hot.call_id,
            HeaderName::CSeq => self.hot.cseq,
            HeaderName::MaxForwards => self.hot.max_forwards,
            HeaderName::Route => self.hot.route,
            HeaderName::ContentLength => self.hot.content_length,
            _ => {
                return self.headers_of(name).next();
            }
        };
        let field = self.headers.get(usize::from(idx?))?;
        Some(HeaderRef { msg: self, field })
    }

    /// How many lines of a header there are.
    #[must_use]
    pub fn count(&self, name: HeaderName) -> usize {
        self.headers.iter().filter(|f| f.name == name).count()
    }

    /// The first of [`SINGLE_VALUED`] (From, To, Call-ID, CSeq,
    /// Max-Forwards, Content-Type, in that order) that appears more than
    /// once: noted while indexing, no scan.
    #[must_use]
    pub fn repeated_single_valued(&self) -> Option<HeaderName> {
        SINGLE_VALUED
            .iter()
            .enumerate()
            .find(|(i, _)| self.hot.repeated & (1 << i) != 0)
            .map(|(_, n)| *n)
    }

    /// Every value of a header, list headers split at top-level commas
    /// (§7.3.1), as UTF-8 text.
    pub fn values(&self, name: HeaderName) -> impl Iterator<Item = Result<&str, HeaderError>> {
        self.headers_of(name).flat_map(move |h| {
            let (single, list) = match h.value() {
                Err(e) => (Some(Err(e)), None),
                Ok(v) if name.is_list() => (None, Some(ListSplit::new(v).map(Ok))),
                Ok(v) => (Some(Ok(v)), None),
            };
            single.into_iter().chain(list.into_iter().flatten())
        })
    }

    /// The first value of a typed header: `None` when absent.
    #[must_use]
    pub fn typed<'m, H: TypedHeader<'m>>(&'m self) -> Option<Result<H, HeaderError>> {
        let h = self.header(H::NAME)?;
        Some(h.value().and_then(|v| {
            let first = if H::NAME.is_list() {
                ListSplit::new(v).next().unwrap_or(v)
            } else {
                v
            };
            H::parse(first).map_err(|k| k.at(H::NAME))
        }))
    }

    /// Every value of a typed header, in order, list values split. An empty
    /// list element (`a,,b`) is reported as an error.
    pub fn typed_all<'m, H: TypedHeader<'m>>(
        &'m self,
    ) -> impl Iterator<Item = Result<H, HeaderError>> + 'm {
        self.elements(H::NAME, H::ALLOW_EMPTY)
            .map(|v| parse_element::<H>(v))
    }

    /// The `n`th element (from 0) of all `H` headers, parsed; the elements
    /// before it are skipped without parsing them. The same as
    /// `typed_all::<H>().nth(n)`.
    pub fn typed_nth<'m, H: TypedHeader<'m>>(&'m self, n: usize) -> Option<Result<H, HeaderError>> {
        self.elements(H::NAME, H::ALLOW_EMPTY)
            .nth(n)
            .map(parse_element::<H>)
    }

    /// The raw elements of all `H` headers, in order (list headers split
    /// at their commas).
    fn elements(
        &self,
        name: HeaderName,
        allow_empty: bool,
    ) -> impl Iterator<Item = Result<&str, HeaderError>> {
        self.headers_of(name)
            .filter(move |h| !(allow_empty && h.value_bytes().is_empty()))
            .flat_map(move |h| {
                let (single, list) = match h.value() {
                    Err(e) => (Some(Err(e)), None),
                    Ok(v) if name.is_list() => (None, Some(ListSplit::new(v).map(Ok))),
                    Ok(v) => (Some(Ok(v)), None),
                };
                single.into_iter().chain(list.into_iter().flatten())
            })
    }
}

/// One raw element of an `H` header, parsed (see [`SipMessage::typed_all`]).
fn parse_element<'m, H: TypedHeader<'m>>(
    v: Result<&'m str, HeaderError>,
) -> Result<H, HeaderError> {
    let v = v?;
    if v.is_empty() {
        return Err(HeaderErrorKind::EmptyElement.at(H::NAME));
    }
    H::parse(v).map_err(|k| k.at(H::NAME))
}

/// Finds the end of the line starting at `pos`: returns (end of content,
/// start of next line). Accepts CRLF and, as met in the field, a bare LF.
fn line_end(b: &[u8], pos: usize) -> Option<(usize, usize)> {
    let rest = b.get(pos..)?;
    let lf = memchr::memchr(b'\n', rest)?;
    let end = if lf > 0 && rest.get(lf - 1) == Some(&b'\r') {
        pos + lf - 1
    } else {
        pos + lf
    };
    Some((end, pos + lf + 1))
}

fn skip_wsp(b: &[u8], mut from: usize, to: usize) -> usize {
    while from < to && matches!(b.get(from), Some(b' ' | b'\t')) {
        from += 1;
    }
    from
}

fn trim_end(b: &[u8], from: usize, mut to: usize) -> usize {
    while to > from && matches!(b.get(to - 1), Some(b' ' | b'\t' | b'\r')) {
        to -= 1;
    }
    to
}

/// The header section `buf[..headers_end]` as text, when it is UTF-8 (one
/// check per message; the accessors slice it).
fn head_text(buf: &Bytes, headers_end: usize) -> Option<ByteString> {
    ByteString::try_from(buf.slice(..headers_end.min(buf.len()))).ok()
}

fn parse_start_line(b: &[u8], start: usize, end: usize) -> Result<StartLine, ParseError> {
    let line = b.get(start..end).unwrap_or_default();
    let is_response = line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"));
    let fault = |f| {
        if is_response {
            ParseError::StatusLine(f)
        } else {
            ParseError::RequestLine(f)
        }
    };
    let text = std::str::from_utf8(line).map_err(|_| fault(StartLineFault::Encoding))?;
    // Offsets within the line: [0, sp1) SP [sp1+1, sp2) SP [sp2+1, len).
    // Byte searches (SP is ASCII): a `char` pattern costs a searcher per
    // call, and this runs on every message.
    let space = |t: &str| crate::scan::find_byte(b' ', t.as_bytes());
    let sp1 = space(text).ok_or(fault(StartLineFault::Spacing))?;
    let first = text.get(..sp1).unwrap_or("");
    let rest = text.get(sp1 + 1..).unwrap_or("");
    let span = |from: usize, to: usize| Span::new(start + from, start + to);
    if is_response {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2)
        if !valid_version(first) {
            return Err(fault(StartLineFault::Version));
        }
        let code_end = space(rest).unwrap_or(rest.len());
        let code = rest.get(..code_end).unwrap_or("");
        let reason_start = (sp1 + 1 + code_end + 1).min(text.len());
        let reason = text.get(reason_start..).unwrap_or("");
        if code.len() != 3 || !code.bytes().all(|c| c.is_ascii_digit()) {
            return Err(fault(StartLineFault::StatusCode));
        }
        let n: u16 = code
            .parse()
            .map_err(|_| fault(StartLineFault::StatusCode))?;
        if !(100..=699).contains(&n) {
            return Err(fault(StartLineFault::StatusCode));
        }
        if reason
            .bytes()
            .any(|c| (c < 0x20 && c != b'\t') || c == 0x7f)
        {
            return Err(fault(StartLineFault::Reason));
        }
        return Ok(StartLine::Response {
            version: span(0, sp1),
            code: n,
            reason: span(reason_start, text.len()),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version (§7.1): exactly
    // two single spaces, nothing trailing (RFC 4475 §3.1.2.8 to §3.1.2.10).
    if first.is_empty() {
        return Err(fault(StartLineFault::Spacing));
    }
    if !first.bytes().all(is_token) {
        return Err(fault(StartLineFault::Method));
    }
    let sp2 = sp1 + 1 + space(rest).ok_or(fault(StartLineFault::Spacing))?;
    let uri = text.get(sp1 + 1..sp2).unwrap_or("");
    let version = text.get(sp2 + 1..).unwrap_or("");
    if uri.is_empty()
        || version.is_empty()
        || version.bytes().any(|c| c == b' ' || c == b'\t')
        || uri.bytes().any(|c| c == b'\t')
    {
        return Err(fault(StartLineFault::Spacing));
    }
    if !valid_version(version) {
        return Err(fault(StartLineFault::Version));
    }
    if uri.starts_with('<') || Uri::parse(uri).is_err() {
        return Err(fault(StartLineFault::RequestUri));
    }
    Ok(StartLine::Request {
        method: span(0, sp1),
        uri: span(sp1 + 1, sp2),
        version: span(sp2 + 1, text.len()),
    })
}

/// SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT (§25.1; "SIP" case-insensitive).
fn valid_version(v: &str) -> bool {
    let Some(num) = v
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("SIP/"))
        .and(v.get(4..))
    else {
        return false;
    };
    let dot = crate::scan::find_byte(b'.', num.as_bytes());
    match dot.and_then(|d| Some((num.get(..d)?, num.get(d + 1..)?))) {
        Some((maj, min)) => {
            !maj.is_empty()
                && !min.is_empty()
                && maj.bytes().all(|c| c.is_ascii_digit())
                && min.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<SipMessage, ParseError> {
        SipMessage::parse(Bytes::copy_from_slice(s.as_bytes()))
    }

    const OPTIONS: &str = "OPTIONS sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n\
        To: <sip:bob@example.com>\r\n\
        From: <sip:alice@example.com>;tag=1\r\n\
        Call-ID: c1\r\n\
        CSeq: 1 OPTIONS\r\n\
        Max-Forwards: 70\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn typed_nth_is_typed_all_nth() {
        use crate::headers::Route;
        let m = parse(
            "BYE sip:b@x SIP/2.0\r\nRoute: <sip:p1;lr>, <sip:p2;lr>\r\n\
             Route: <sip:p3;lr>\r\nRoute: bad<\r\n\r\n",
        )
        .unwrap();
        for n in 0..6 {
            let nth = m
                .typed_nth::<Route<'_>>(n)
                .map(|r| r.map(|r| r.uri().as_str().to_owned()));
            let all = m
                .typed_all::<Route<'_>>()
                .nth(n)
                .map(|r| r.map(|r| r.uri().as_str().to_owned()));
            assert_eq!(nth, all, "element {n}");
        }
        assert!(matches!(m.typed_nth::<Route<'_>>(3), Some(Err(_))));
        assert!(m.typed_nth::<Route<'_>>(4).is_none());
    }

    #[test]
    fn indexes_a_request() {
        let m = parse(OPTIONS).unwrap();
        assert!(m.is_request());
        assert_eq!(m.method(), Some(Method::Options));
        assert_eq!(m.request_uri_str(), Some("sip:bob@example.com"));
        assert_eq!(m.version(), "SIP/2.0");
        assert_eq!(m.header(HeaderName::CallId).unwrap().value().unwrap(), "c1");
        assert_eq!(m.count(HeaderName::Via), 1);
        assert_eq!(m.body(), b"");
    }

    #[test]
    fn identifiers_are_parsed_once_and_kept() {
        let m = parse(OPTIONS).unwrap();
        assert_eq!(m.call_id(), Some("c1"));
        assert_eq!(m.cseq(), Some((1, Method::Options)));
        assert_eq!(m.from_tag(), Some("1"));
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.top_branch(), Some("z9hG4bK1"));
        let bad = parse(&OPTIONS.replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS")).unwrap();
        assert_eq!(bad.call_id(), None);
    }

    #[test]
    fn values_read_as_text_whatever_the_rest_of_the_header_section_holds() {
        // UTF-8 throughout (§25.1 TEXT-UTF8): every value reads from the
        // text checked once.
        let utf8 = OPTIONS.replace("Call-ID: c1", "Subject: caf\u{e9} \u{1f4de}\r\nCall-ID: c1");
        let m = parse(&utf8).unwrap();
        assert!(m.text.is_some());
        let subject = m.headers_named("Subject").next().unwrap();
        assert_eq!(subject.value().unwrap(), "caf\u{e9} \u{1f4de}");
        assert_eq!(m.call_id(), Some("c1"));

        // One header with bytes that are not UTF-8: that value fails, the
        // others still read.
        let mut bytes = OPTIONS
            .replace("Call-ID: c1", "Subject: caf?\r\nCall-ID: c1")
            .into_bytes();
        let at = bytes.iter().position(|&b| b == b'?').unwrap();
        bytes[at] = 0xe9;
        let m = SipMessage::parse(Bytes::from(bytes)).unwrap();
        assert!(m.text.is_none());
        let subject = m.headers_named("Subject").next().unwrap();
        assert_eq!(subject.value().unwrap_err().kind, HeaderErrorKind::Encoding);
        assert_eq!(m.call_id(), Some("c1"));
        assert_eq!(m.top_branch(), Some("z9hG4bK1"));
        assert_eq!(m.method(), Some(Method::Options));

        // A body that is not UTF-8 does not matter to the header section.
        let body = OPTIONS.replace("Content-Length: 0", "Content-Length: 2");
        let mut bytes = body.into_bytes();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        let m = SipMessage::parse(Bytes::from(bytes)).unwrap();
        assert!(m.text.is_some());
        assert_eq!(m.body(), &[0xff, 0xfe]);
    }

    #[test]
    fn folding_is_kept_in_the_value() {
        let m = parse(
            "MESSAGE sip:b@c SIP/2.0\r\nSubject: one\r\n  two\r\nX-A:\r\n three\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let s = m.header(HeaderName::Subject).unwrap();
        assert_eq!(s.value().unwrap(), "one\r\n  two");
        let x = m.headers_named("x-a").next().unwrap();
        assert_eq!(x.value().unwrap(), "three");
    }

    #[test]
    fn datagram_body_rules() {
        let m = parse("MESSAGE sip:b@c SIP/2.0\r\nl: 3\r\n\r\nabcdef").unwrap();
        assert_eq!(m.body(), b"abc");
        let m = parse("MESSAGE sip:b@c SIP/2.0\r\n\r\nabcdef").unwrap();
        assert_eq!(m.body(), b"abcdef");
        assert_eq!(
            parse("MESSAGE sip:b@c SIP/2.0\r\nl: 9\r\n\r\nabc"),
            Err(ParseError::Truncated {
                declared: 9,
                available: 3
            })
        );
        assert_eq!(
            parse("MESSAGE sip:b@c SIP/2.0\r\nl: -1\r\n\r\n"),
            Err(ParseError::BadContentLength)
        );
        assert_eq!(
            parse("MESSAGE sip:b@c SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r\na"),
            Err(ParseError::DuplicateContentLength)
        );
        let stream = SipMessage::parse_with(
            Bytes::from_static(b"MESSAGE sip:b@c SIP/2.0\r\n\r\n"),
            Transport::Stream,
            &Limits::default(),
        );
        assert_eq!(stream, Err(ParseError::MissingContentLength));
    }

    #[test]
    fn start_line_faults() {
        let bad = |s: &str| parse(&format!("{s}\r\nl: 0\r\n\r\n")).unwrap_err();
        assert_eq!(
            bad("INVITE  sip:a@b SIP/2.0"),
            ParseError::RequestLine(StartLineFault::Spacing)
        );
        assert_eq!(
            bad("INVITE sip:a@b SIP/2.0 "),
            ParseError::RequestLine(StartLineFault::Spacing)
        );
        assert_eq!(
            bad("INVITE <sip:a@b> SIP/2.0"),
            ParseError::RequestLine(StartLineFault::RequestUri)
        );
        assert_eq!(
            bad("INVITE sip:a@b; lr SIP/2.0"),
            ParseError::RequestLine(StartLineFault::Spacing)
        );
        assert_eq!(
            bad("INVITE sip:a@b SIP/2"),
            ParseError::RequestLine(StartLineFault::Version)
        );
        assert_eq!(
            bad("SIP/2.0 4294967301 x"),
            ParseError::StatusLine(StartLineFault::StatusCode)
        );
        assert_eq!(
            bad("SIP/2.0 099 x"),
            ParseError::StatusLine(StartLineFault::StatusCode)
        );
        assert_eq!(
            bad("SIP/2.0"),
            ParseError::StatusLine(StartLineFault::Spacing)
        );
        let m = parse("SIP/2.0 100\r\nl: 0\r\n\r\n").unwrap();
        assert_eq!(m.status(), Some(100));
        assert_eq!(m.reason(), Some(""));
    }

    #[test]
    fn header_line_faults_and_limits() {
        assert_eq!(
            parse("OPTIONS sip:a@b SIP/2.0\r\nNoColon\r\n\r\n"),
            Err(ParseError::HeaderLine { line: 2 })
        );
        assert_eq!(
            parse("OPTIONS sip:a@b SIP/2.0\r\n continued\r\n\r\n"),
            Err(ParseError::HeaderLine { line: 2 })
        );
        assert_eq!(
            parse("OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n"),
            Err(ParseError::Unterminated)
        );
        let many = format!("OPTIONS sip:a@b SIP/2.0\r\n{}\r\n", "X: y\r\n".repeat(300));
        assert_eq!(parse(&many), Err(ParseError::TooManyHeaders { limit: 256 }));
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("\r\n\r\n"), Err(ParseError::Empty));
    }

    #[test]
    fn list_values_split_at_top_level_commas() {
        let m = parse(
            "OPTIONS sip:a@b SIP/2.0\r\nRoute: <sip:a;lr>, \"x,y\" <sip:b;lr>\r\nRoute: <sip:c>\r\n\r\n",
        )
        .unwrap();
        let v: Vec<_> = m.values(HeaderName::Route).map(Result::unwrap).collect();
        assert_eq!(v, ["<sip:a;lr>", "\"x,y\" <sip:b;lr>", "<sip:c>"]);
    }
}
