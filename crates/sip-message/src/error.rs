//! Errors of the codec, one type per layer, each cheap to copy.
//!
//! * [`ParseError`]: the bytes cannot be turned into a message (start line,
//!   header line syntax, framing). A server answers 400 when it can.
//! * [`HeaderError`]: one header's value does not follow its grammar. The
//!   message still parses and may be forwarded if the header is not one the
//!   forwarder needs.
//! * [`crate::ValidationError`]: everything parses, but the message is not one
//!   a server may act on (missing mandatory header, CSeq method mismatch,
//!   unsupported version or URI scheme); it knows the status to answer.

use std::fmt;

use crate::HeaderName;

/// Why a message could not be parsed. `Copy`, no allocation: this is the hot
/// path's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The input is empty or only whitespace.
    #[error("empty message")]
    Empty,
    /// The start line is not `Method SP Request-URI SP SIP-Version` (§7.1).
    #[error("malformed Request-Line: {0}")]
    RequestLine(StartLineFault),
    /// The start line is not `SIP-Version SP Status-Code SP Reason-Phrase` (§7.2).
    #[error("malformed Status-Line: {0}")]
    StatusLine(StartLineFault),
    /// A header line has no colon, an empty or non-token name, or is a
    /// continuation line with nothing to continue (§7.3).
    #[error("malformed header line {line}")]
    HeaderLine {
        /// 1-based line number in the message (the start line is line 1).
        line: u32,
    },
    /// The header section does not end with an empty line (§7).
    #[error("header section not terminated by an empty line")]
    Unterminated,
    /// Content-Length is not a non-negative decimal integer (§20.14).
    #[error("bad Content-Length value")]
    BadContentLength,
    /// Content-Length appears more than once (RFC 4475 §3.3.9).
    #[error("more than one Content-Length")]
    DuplicateContentLength,
    /// Content-Length promises more bytes than the datagram holds (§18.3).
    #[error("Content-Length {declared} larger than the {available} body bytes received")]
    Truncated {
        /// The declared Content-Length.
        declared: u32,
        /// The body bytes actually present.
        available: u32,
    },
    /// A stream message without Content-Length (§18.3: mandatory on streams).
    #[error("Content-Length missing on a stream transport")]
    MissingContentLength,
    /// The message is larger than the configured limit.
    #[error("message larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u32,
    },
    /// More header lines than the configured limit.
    #[error("more than {limit} header lines")]
    TooManyHeaders {
        /// The limit.
        limit: u32,
    },
}

/// What is wrong with a start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartLineFault {
    /// Elements are not separated by exactly one SP, or there is trailing
    /// whitespace (RFC 4475 §3.1.2.9, §3.1.2.10).
    Spacing,
    /// The method is not a token.
    Method,
    /// The Request-URI is missing, contains whitespace, is enclosed in `<>`,
    /// or is not a valid absolute URI (RFC 4475 §3.1.2.7, §3.1.2.8).
    RequestUri,
    /// The version is not `SIP/digits.digits`.
    Version,
    /// The status code is not three digits in 100..=699 (RFC 4475 §3.1.2.19).
    StatusCode,
    /// The reason phrase holds control characters.
    Reason,
    /// The line is not valid UTF-8.
    Encoding,
}

impl fmt::Display for StartLineFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StartLineFault::Spacing => "elements must be separated by single spaces",
            StartLineFault::Method => "method is not a token",
            StartLineFault::RequestUri => "invalid Request-URI",
            StartLineFault::Version => "invalid SIP-Version",
            StartLineFault::StatusCode => "status code must be three digits, 100 to 699",
            StartLineFault::Reason => "reason phrase holds control characters",
            StartLineFault::Encoding => "not valid UTF-8",
        })
    }
}

impl ParseError {
    /// The status a server answers when it can still read enough of the
    /// request to build a response: always 400 (RFC 3261 §21.4.1), except
    /// 513 for a message over the size limit (§21.5.14).
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            ParseError::TooLarge { .. } => 513,
            _ => 400,
        }
    }
}

/// A header value that does not follow its grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bad {header} header: {kind}")]
pub struct HeaderError {
    /// Which header.
    pub header: HeaderName,
    /// What is wrong.
    pub kind: HeaderErrorKind,
}

/// What is wrong with a header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderErrorKind {
    /// The header is absent.
    #[error("missing")]
    Missing,
    /// The value is empty.
    #[error("empty value")]
    Empty,
    /// A number is out of range or not a number.
    #[error("number out of range or malformed")]
    Number,
    /// A quoted string is not terminated.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// `<` without `>`.
    #[error("unterminated <...>")]
    UnterminatedAngle,
    /// The URI does not parse.
    #[error("{0}")]
    Uri(UriError),
    /// An addr-spec with `,`, `;` or `?` in its URI must be in `<>` (§20.10).
    #[error("URI with ';', ',' or '?' must be enclosed in <>")]
    NeedsAngleBrackets,
    /// A parameter is malformed.
    #[error("malformed parameter")]
    Param,
    /// A token was expected.
    #[error("token expected")]
    Token,
    /// Unexpected characters after the value.
    #[error("unexpected characters after the value")]
    Trailing,
    /// Empty elements in a comma-separated list (`,,`).
    #[error("empty list element")]
    EmptyElement,
    /// A Via sent-protocol is not `name/version/transport`.
    #[error("sent-protocol must be name/version/transport")]
    SentProtocol,
    /// A host is neither a domain, an IPv4 address nor an IPv6 reference.
    #[error("invalid host")]
    Host,
    /// A date is not an RFC 1123 date in GMT (§20.17).
    #[error("not an RFC 1123 date in GMT")]
    Date,
    /// The value is not valid UTF-8.
    #[error("not valid UTF-8")]
    Encoding,
    /// The header appears more than once where only one is allowed.
    #[error("appears more than once")]
    Repeated,
    /// The value has a form this header does not allow.
    #[error("invalid value")]
    Invalid,
}

/// Why a URI does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// No `scheme:` prefix.
    #[error("URI has no scheme")]
    Scheme,
    /// The host part is missing or invalid.
    #[error("URI host invalid")]
    Host,
    /// The port is not a number in 0..=65535.
    #[error("URI port invalid")]
    Port,
    /// The user part holds characters that must be escaped.
    #[error("URI user part invalid")]
    User,
    /// A `%` escape is not followed by two hex digits where escapes are required.
    #[error("URI escape invalid")]
    Escape,
    /// A URI parameter is malformed.
    #[error("URI parameter invalid")]
    Param,
    /// The `?headers` part is malformed.
    #[error("URI headers invalid")]
    Headers,
    /// Whitespace or other characters a URI may not hold.
    #[error("URI holds invalid characters")]
    Char,
    /// A `tel` URI number is not a global or local number (RFC 3966).
    #[error("tel URI number invalid")]
    TelNumber,
}

impl From<UriError> for HeaderErrorKind {
    fn from(e: UriError) -> Self {
        HeaderErrorKind::Uri(e)
    }
}

impl HeaderErrorKind {
    /// Attaches the header name.
    #[must_use]
    pub(crate) fn at(self, header: HeaderName) -> HeaderError {
        HeaderError { header, kind: self }
    }
}
