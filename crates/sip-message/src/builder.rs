//! Building new messages: requests, and responses built from a request per
//! RFC 3261 §8.2.6.
//!
//! A builder writes the wire text and parses it once at the end, so a built
//! message is indexed exactly like a received one and a builder can never
//! produce a message this crate would not accept.

use bytes::Bytes;

use crate::error::ParseError;
use crate::headers::To;
use crate::message::SipMessage;
use crate::method::Method;
use crate::name::HeaderName;
use crate::scan::is_token_str;
use crate::uri::Uri;

/// Why a message could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A header name is not a token or a value holds CR, LF or NUL.
    #[error("header name or value would break the message framing")]
    Injection,
    /// The Request-URI does not parse.
    #[error("invalid Request-URI")]
    RequestUri,
    /// The status code is outside 100..=699.
    #[error("status code outside 100..=699")]
    Status,
    /// A response can only be built from a request.
    #[error("not a request")]
    NotARequest,
    /// The result did not parse (a header value broke the grammar).
    #[error("built message does not parse: {0}")]
    Parse(ParseError),
}

/// The reason phrase RFC 3261 §21 (and extensions) give a status code.
#[must_use]
pub fn default_reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        429 => "Provide Referrer Identity",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}

/// Formats a number into `buf` without allocating.
fn itoa_buf(mut n: usize, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    std::str::from_utf8(buf.get(i..).unwrap_or_default()).unwrap_or("0")
}

/// Header lines and body shared by both builders.
#[derive(Debug, Default)]
struct Parts {
    head: Vec<u8>,
    /// Where the start line ends (before its CRLF).
    start_line_end: usize,
    /// Per header line: name start, name end, value start, value end, line
    /// end (after its line break).
    fields: Vec<[usize; 5]>,
    body: Option<Bytes>,
    error: Option<BuildError>,
}

impl Parts {
    fn header(&mut self, name: &str, value: &str) {
        if self.error.is_some() {
            return;
        }
        // A folded value (copied from a received message) is written on
        // one line: §7.3.1 makes the fold equivalent to one SP. Values
        // without CR or LF (nearly all) skip the unfolding and its check.
        let plain = memchr::memchr2(b'\r', b'\n', value.as_bytes()).is_none();
        let value = if plain {
            std::borrow::Cow::Borrowed(value)
        } else {
            crate::scan::unfold(value)
        };
        let bad_name = !is_token_str(name);
        if bad_name || (!plain && crate::scan::breaks_line(&value)) {
            self.error = Some(BuildError::Injection);
            return;
        }
        self.push_line(name, &value);
    }

    fn push_line(&mut self, name: &str, value: &str) {
        self.head.reserve(name.len() + value.len() + 4);
        let ns = self.head.len();
        self.head.extend_from_slice(name.as_bytes());
        let ne = self.head.len();
        self.head.extend_from_slice(b": ");
        let vs = self.head.len();
        self.head.extend_from_slice(value.as_bytes());
        let ve = self.head.len();
        self.head.extend_from_slice(b"\r\n");
        self.fields.push([ns, ne, vs, ve, ve + 2]);
    }

    /// Copies a header line of a received message byte for byte (its
    /// spelling, folding and line break), with `suffix` (e.g. `;tag=x`)
    /// appended to its value. No re-validation: the line was parsed.
    fn copy_line(&mut self, h: crate::HeaderRef<'_>, suffix: Option<&str>) {
        if self.error.is_some() {
            return;
        }
        let (line, name, value) = (h.line_span(), h.name_span(), h.value_span());
        let raw = h.line_bytes();
        let cut = (value.end - line.start) as usize;
        let base = self.head.len();
        let extra = suffix.map_or(0, str::len);
        self.head.reserve(raw.len() + extra);
        self.head.extend_from_slice(raw.get(..cut).unwrap_or(raw));
        if let Some(suffix) = suffix {
            self.head.extend_from_slice(suffix.as_bytes());
        }
        self.head
            .extend_from_slice(raw.get(cut..).unwrap_or_default());
        let at = |p: u32| base + (p - line.start) as usize;
        self.fields.push([
            base,
            at(name.end),
            at(value.start),
            at(value.end) + extra,
            base + raw.len() + extra,
        ]);
    }

    fn start_line(&mut self, line: std::fmt::Arguments<'_>) {
        let _ = std::io::Write::write_fmt(&mut self.head, line);
        self.start_line_end = self.head.len();
        self.head.extend_from_slice(b"\r\n");
    }

    fn finish(self) -> Result<SipMessage, BuildError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut parts = self;
        let len = parts.body.as_ref().map_or(0, Bytes::len);
        parts.push_line("Content-Length", itoa_buf(len, &mut [0u8; 20]));
        let headers_end = parts.head.len();
        parts.head.extend_from_slice(b"\r\n");
        let (sl_end, fields) = (parts.start_line_end, std::mem::take(&mut parts.fields));
        let mut out = parts.head;
        if let Some(body) = parts.body {
            out.extend_from_slice(&body);
        }
        SipMessage::from_built(Bytes::from(out), sl_end, &fields, headers_end)
            .map_err(BuildError::Parse)
    }

    fn body(&mut self, content_type: &str, body: Bytes) {
        self.header("Content-Type", content_type);
        self.body = Some(body);
    }
}

/// Builds a request. Content-Length is added from the body.
#[derive(Debug)]
pub struct RequestBuilder {
    parts: Parts,
}

impl RequestBuilder {
    /// Starts `METHOD uri SIP/2.0`.
    pub fn new(method: Method<'_>, uri: &str) -> Result<RequestBuilder, BuildError> {
        if uri.bytes().any(|b| b <= b' ') || Uri::parse(uri).is_err() {
            return Err(BuildError::RequestUri);
        }
        if !is_token_str(method.as_str()) {
            return Err(BuildError::Injection);
        }
        let mut parts = Parts::default();
        parts.start_line(format_args!("{method} {uri} SIP/2.0"));
        Ok(RequestBuilder { parts })
    }

    /// Adds a header line.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> RequestBuilder {
        self.parts.header(name, value);
        self
    }

    /// Sets the body and its Content-Type.
    #[must_use]
    pub fn body(mut self, content_type: &str, body: Bytes) -> RequestBuilder {
        self.parts.body(content_type, body);
        self
    }

    /// Writes and parses the request.
    pub fn build(self) -> Result<SipMessage, BuildError> {
        self.parts.finish()
    }
}

/// Builds a response to a request (§8.2.6.2): Via lines, From, To, Call-ID
/// and CSeq copied; a To tag added when the request's To had none and the
/// response is not a 100 (§8.2.6.2); Timestamp copied into a 100 (§8.2.6.1).
#[derive(Debug)]
pub struct ResponseBuilder {
    parts: Parts,
}

impl ResponseBuilder {
    /// Starts a response with `code` and the default reason phrase. `to_tag`
    /// is the tag the UAS chose for its side of the dialog; it is added
    /// only when the request's To has no tag.
    pub fn for_request(
        request: &SipMessage,
        code: u16,
        to_tag: Option<&str>,
    ) -> Result<ResponseBuilder, BuildError> {
        ResponseBuilder::with_reason(request, code, default_reason(code), to_tag)
    }

    /// Like [`ResponseBuilder::for_request`] with an explicit reason phrase.
    pub fn with_reason(
        request: &SipMessage,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Result<ResponseBuilder, BuildError> {
        if !request.is_request() {
            return Err(BuildError::NotARequest);
        }
        if !(100..=699).contains(&code) {
            return Err(BuildError::Status);
        }
        if reason.bytes().any(|b| b < b' ' && b != b'\t') {
            return Err(BuildError::Injection);
        }
        let mut parts = Parts::default();
        parts.start_line(format_args!("SIP/2.0 {code} {reason}"));
        // §8.2.6.2: Via, From, To, Call-ID and CSeq are copied; the lines
        // are copied as received (spelling and folding included).
        parts.head.reserve(request.headers_end());
        for via in request.headers_of(HeaderName::Via) {
            parts.copy_line(via, None);
        }
        for name in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            let Some(h) = request.header(name) else {
                continue;
            };
            if name == HeaderName::To && code > 100 {
                let has_tag = match request.call_id() {
                    // The identifiers parsed: the To tag is cached.
                    Some(_) => request.to_tag().is_some(),
                    None => matches!(request.typed::<To<'_>>(), Some(Ok(t)) if t.tag().is_some()),
                };
                if let (false, Some(tag)) = (has_tag, to_tag) {
                    if !is_token_str(tag) {
                        return Err(BuildError::Injection);
                    }
                    parts.copy_line(h, Some(&format!(";tag={tag}")));
                    continue;
                }
            }
            parts.copy_line(h, None);
        }
        if code == 100
            && let Some(ts) = request.header(HeaderName::Timestamp)
        {
            parts.copy_line(ts, None);
        }
        Ok(ResponseBuilder { parts })
    }

    /// Adds a header line.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> ResponseBuilder {
        self.parts.header(name, value);
        self
    }

    /// Sets the body and its Content-Type.
    #[must_use]
    pub fn body(mut self, content_type: &str, body: Bytes) -> ResponseBuilder {
        self.parts.body(content_type, body);
        self
    }

    /// Writes and parses the response.
    pub fn build(self) -> Result<SipMessage, BuildError> {
        self.parts.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::{CSeq, From, Via};

    fn invite() -> SipMessage {
        RequestBuilder::new(Method::Invite, "sip:bob@example.com")
            .unwrap()
            .header("Via", "SIP/2.0/UDP a.example.com;branch=z9hG4bK1")
            .header("Via", "SIP/2.0/TCP b.example.com;branch=z9hG4bK0")
            .header("Max-Forwards", "70")
            .header("To", "Bob <sip:bob@example.com>")
            .header("From", "<sip:alice@example.com>;tag=a1")
            .header("Call-ID", "abc@a.example.com")
            .header("CSeq", "1 INVITE")
            .header("Timestamp", "54")
            .body("application/sdp", Bytes::from_static(b"v=0\r\n"))
            .build()
            .unwrap()
    }

    /// The index the builder makes while writing is the index a parse of
    /// the same bytes makes.
    #[test]
    fn built_index_equals_parsed_index() {
        let req = invite();
        let built = [
            req.clone(),
            ResponseBuilder::for_request(&req, 200, Some("x"))
                .unwrap()
                .header("X-Spaces", "  padded value \t ")
                .header("X-Empty", "")
                .header("Subject", "folded\r\n  value")
                .header("v", "SIP/2.0/UDP compact.example.com;branch=z9hG4bKc")
                .body("text/plain", Bytes::from_static(b"hello"))
                .build()
                .unwrap(),
            ResponseBuilder::for_request(&req, 100, None)
                .unwrap()
                .build()
                .unwrap(),
            RequestBuilder::new(Method::Extension("FOO"), "tel:+123")
                .unwrap()
                .header("l", "0")
                .build()
                .unwrap_or_else(|_| req.clone()),
        ];
        for m in built {
            let parsed = SipMessage::parse(m.message_bytes()).unwrap();
            assert_eq!(m, parsed, "{}", String::from_utf8_lossy(&m.message_bytes()));
            assert_eq!(m.call_id(), parsed.call_id());
        }
        // A second Content-Length is refused, as a parse would refuse it.
        let dup = RequestBuilder::new(Method::Options, "sip:a@b")
            .unwrap()
            .header("Content-Length", "0")
            .build();
        assert_eq!(
            dup.err(),
            Some(BuildError::Parse(ParseError::DuplicateContentLength))
        );
    }

    #[test]
    fn request_builder_sets_content_length() {
        let m = invite();
        assert_eq!(m.content_length(), Some(5));
        assert_eq!(m.body(), b"v=0\r\n");
        assert!(crate::validate(&m, crate::Role::Uas).is_ok());
    }

    #[test]
    fn response_copies_the_transaction_headers() {
        let req = invite();
        let resp = ResponseBuilder::for_request(&req, 180, Some("b7"))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(resp.status(), Some(180));
        assert_eq!(resp.reason(), Some("Ringing"));
        let vias: Vec<_> = resp.typed_all::<Via<'_>>().map(Result::unwrap).collect();
        assert_eq!(vias.len(), 2);
        assert_eq!(vias[0].branch(), Some("z9hG4bK1"));
        assert_eq!(resp.typed::<To<'_>>().unwrap().unwrap().tag(), Some("b7"));
        assert_eq!(resp.typed::<From<'_>>().unwrap().unwrap().tag(), Some("a1"));
        assert_eq!(
            resp.typed::<CSeq<'_>>().unwrap().unwrap().method,
            Method::Invite
        );
        assert!(resp.header(HeaderName::Timestamp).is_none());
        let trying = ResponseBuilder::for_request(&req, 100, Some("b7"))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(trying.typed::<To<'_>>().unwrap().unwrap().tag(), None);
        assert!(trying.header(HeaderName::Timestamp).is_some());
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(
            RequestBuilder::new(Method::Invite, "not a uri").err(),
            Some(BuildError::RequestUri)
        );
        let r = RequestBuilder::new(Method::Invite, "sip:a@b")
            .unwrap()
            .header("X", "a\r\nb")
            .build();
        assert_eq!(r.err(), Some(BuildError::Injection));
        let req = invite();
        assert_eq!(
            ResponseBuilder::for_request(&req, 700, None).err(),
            Some(BuildError::Status)
        );
        let resp = ResponseBuilder::for_request(&req, 200, None)
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(
            ResponseBuilder::for_request(&resp, 200, None).err(),
            Some(BuildError::NotARequest)
        );
    }
}
