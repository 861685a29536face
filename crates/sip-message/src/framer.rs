//! Cutting a byte stream (TCP, TLS, WebSocket) into messages (RFC 3261
//! §18.3): the header section ends at the first empty line, Content-Length
//! (mandatory on streams) gives the body. CRLF keepalives between messages
//! (RFC 5626 §3.5.1: a CRLFCRLF ping, a CRLF pong) are reported, not parsed.
//!
//! The framer keeps only a scan offset between calls, so bytes arriving in
//! small reads are not rescanned, and it allocates nothing: a frame is split
//! off the caller's `BytesMut` without copying.

use bytes::{Bytes, BytesMut};

use crate::error::ParseError;
use crate::message::Limits;

/// One item cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A double-CRLF keepalive ping (RFC 5626 §4.4.1); answer with a CRLF pong.
    Ping,
    /// A single-CRLF keepalive pong.
    Pong,
    /// The bytes of one whole message (start line to end of body).
    Message(Bytes),
}

/// Frames SIP messages from a byte stream.
#[derive(Debug, Clone)]
pub struct StreamFramer {
    limits: Limits,
    /// How far the search for the end of the header section has looked.
    scanned: usize,
    /// Header lines counted so far in the current message.
    lines: u32,
    /// The length of the current message once its header section is known.
    total: Option<usize>,
}

impl StreamFramer {
    /// A framer with the given limits.
    #[must_use]
    pub fn new(limits: Limits) -> StreamFramer {
        StreamFramer {
            limits,
            scanned: 0,
            lines: 0,
            total: None,
        }
    }

    /// Cuts the next frame off the front of `buf`. `Ok(None)`: more bytes are
    /// needed. An error is fatal for the connection (the stream can no longer
    /// be framed); the caller closes it.
    pub fn next_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ParseError> {
        if self.scanned == 0 {
            // Keepalives appear only between messages.
            if buf.starts_with(b"\r\n\r\n") {
                let _ = buf.split_to(4);
                return Ok(Some(Frame::Ping));
            }
            if buf.as_ref() == b"\r" || buf.as_ref() == b"\r\n\r" {
                // Possibly half a keepalive: wait for the next byte.
                return Ok(None);
            }
            if buf.starts_with(b"\r\n") {
                // A pong. (A ping split after its first CRLF reads as two
                // pongs: harmless, the peer pings again.)
                let _ = buf.split_to(2);
                return Ok(Some(Frame::Pong));
            }
        }
        match self.message_len(buf)? {
            Some(len) => {
                self.scanned = 0;
                self.lines = 0;
                self.total = None;
                Ok(Some(Frame::Message(buf.split_to(len).freeze())))
            }
            None => Ok(None),
        }
    }

    /// The total length of the message at the front of `buf`, once its
    /// header section and body are complete.
    fn message_len(&mut self, buf: &[u8]) -> Result<Option<usize>, ParseError> {
        let max = self.limits.max_message_size as usize;
        if let Some(total) = self.total {
            return Ok((buf.len() >= total).then_some(total));
        }
        // Resume three bytes back so an empty line split across reads is
        // found.
        let from = self.scanned.saturating_sub(3);
        let window = buf.get(from..).unwrap_or_default();
        let Some(rel) = header_end(window) else {
            self.lines += count_lines(buf.get(self.scanned..).unwrap_or_default());
            self.scanned = buf.len();
            return self.check_partial(buf.len());
        };
        let head_end = from + rel;
        let head = buf.get(..head_end).unwrap_or_default();
        let lines = self.lines
            + count_lines(
                buf.get(self.scanned.min(head_end)..head_end)
                    .unwrap_or_default(),
            );
        if lines > self.limits.max_headers + 2 {
            return Err(ParseError::TooManyHeaders {
                limit: self.limits.max_headers,
            });
        }
        let cl = content_length(head)?.ok_or(ParseError::MissingContentLength)?;
        let total = head_end
            .checked_add(cl as usize)
            .filter(|t| *t <= max)
            .ok_or(ParseError::TooLarge {
                limit: self.limits.max_message_size,
            })?;
        // Remember the length so a slow body does not rescan the headers.
        self.scanned = head_end;
        self.total = Some(total);
        Ok((buf.len() >= total).then_some(total))
    }

    fn check_partial(&self, have: usize) -> Result<Option<usize>, ParseError> {
        if have > self.limits.max_message_size as usize {
            return Err(ParseError::TooLarge {
                limit: self.limits.max_message_size,
            });
        }
        if self.lines > self.limits.max_headers + 1 {
            return Err(ParseError::TooManyHeaders {
                limit: self.limits.max_headers,
            });
        }
        Ok(None)
    }
}

impl Default for StreamFramer {
    fn default() -> Self {
        StreamFramer::new(Limits::default())
    }
}

/// The end of the header section: just past the first empty line, where a
/// line ends with CRLF or, as the parser also accepts, a bare LF (so framer
/// and parser agree on where a message ends).
fn header_end(b: &[u8]) -> Option<usize> {
    for lf in memchr::memchr_iter(b'\n', b) {
        match (b.get(lf + 1), b.get(lf + 2)) {
            (Some(b'\n'), _) => return Some(lf + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(lf + 3),
            _ => {}
        }
    }
    None
}

fn count_lines(b: &[u8]) -> u32 {
    u32::try_from(memchr::memchr_iter(b'\n', b).count()).unwrap_or(u32::MAX)
}

/// Finds Content-Length (or `l`) in a complete header section and parses it,
/// folded values included, without allocating.
fn content_length(head: &[u8]) -> Result<Option<u32>, ParseError> {
    let mut found = None;
    let Some(first_lf) = memchr::memchr(b'\n', head) else {
        return Ok(None);
    };
    let mut pos = first_lf + 1;
    while pos < head.len() {
        let rest = head.get(pos..).unwrap_or_default();
        let line_end = memchr::memchr(b'\n', rest).map_or(head.len(), |i| pos + i);
        let line = head.get(pos..line_end).unwrap_or_default();
        if !matches!(line.first(), Some(b' ' | b'\t'))
            && let Some(colon) = memchr::memchr(b':', line)
        {
            let name = trim_ascii_end(line.get(..colon).unwrap_or_default());
            if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
                if found.is_some() {
                    return Err(ParseError::DuplicateContentLength);
                }
                found = Some(content_length_value(head, pos + colon + 1)?);
            }
        }
        pos = line_end + 1;
    }
    Ok(found)
}

/// Parses `*LWS 1*DIGIT *LWS` starting at `i`, where a line break followed
/// by whitespace is a fold (§7.3.1) and any other line break ends the value.
fn content_length_value(head: &[u8], mut i: usize) -> Result<u32, ParseError> {
    let mut value: u64 = 0;
    let mut digits = 0u32;
    let mut after_digits = false;
    loop {
        match head.get(i).copied() {
            None => break,
            Some(b' ' | b'\t' | b'\r') => after_digits = digits > 0,
            Some(b'\n') => {
                if !matches!(head.get(i + 1), Some(b' ' | b'\t')) {
                    break;
                }
                after_digits = digits > 0;
            }
            Some(d @ b'0'..=b'9') if !after_digits => {
                digits += 1;
                // Bound the value, not the digits: leading zeros are legal.
                value = value * 10 + u64::from(d - b'0');
                if value > u64::from(u32::MAX) {
                    return Err(ParseError::BadContentLength);
                }
            }
            Some(_) => return Err(ParseError::BadContentLength),
        }
        i += 1;
    }
    if digits == 0 {
        return Err(ParseError::BadContentLength);
    }
    u32::try_from(value).map_err(|_| ParseError::BadContentLength)
}

fn trim_ascii_end(mut s: &[u8]) -> &[u8] {
    while let Some((&last, rest)) = s.split_last() {
        if last == b' ' || last == b'\t' {
            s = rest;
        } else {
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"MESSAGE sip:b@c SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 5\r\n\r\nhello";

    fn frames(input: &[u8], chunk: usize) -> Result<Vec<Frame>, ParseError> {
        let mut f = StreamFramer::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(c);
            while let Some(frame) = f.next_frame(&mut buf)? {
                out.push(frame);
            }
        }
        Ok(out)
    }

    #[test]
    fn frames_messages_and_keepalives_in_any_chunking() {
        let mut input = Vec::new();
        input.extend_from_slice(MSG);
        input.extend_from_slice(b"\r\n\r\n");
        input.extend_from_slice(MSG);
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let got = frames(&input, chunk).unwrap();
            let messages: Vec<_> = got
                .iter()
                .filter(|f| matches!(f, Frame::Message(_)))
                .collect();
            assert_eq!(
                messages,
                [&Frame::Message(Bytes::from_static(MSG)); 2],
                "chunk {chunk}"
            );
            assert!(got.len() <= 4, "chunk {chunk}: {got:?}");
        }
        assert_eq!(frames(&input, 4096).unwrap()[1], Frame::Ping);
    }

    #[test]
    fn pong_is_a_single_crlf() {
        let got = frames(b"\r\n", 4096).unwrap();
        assert_eq!(got, [Frame::Pong]);
    }

    #[test]
    fn stream_errors() {
        let no_cl = b"MESSAGE sip:b@c SIP/2.0\r\nVia: x\r\n\r\n";
        assert_eq!(frames(no_cl, 4096), Err(ParseError::MissingContentLength));
        let neg = b"MESSAGE sip:b@c SIP/2.0\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(frames(neg, 4096), Err(ParseError::BadContentLength));
        let two = b"MESSAGE sip:b@c SIP/2.0\r\nl: 1\r\nContent-Length : 1\r\n\r\nx";
        assert_eq!(frames(two, 4096), Err(ParseError::DuplicateContentLength));
        let huge = b"MESSAGE sip:b@c SIP/2.0\r\nl: 99999999\r\n\r\n";
        assert_eq!(
            frames(huge, 4096),
            Err(ParseError::TooLarge { limit: 65_535 })
        );
        let endless = vec![b'a'; 70_000];
        assert_eq!(
            frames(&endless, 1000),
            Err(ParseError::TooLarge { limit: 65_535 })
        );
        let many = format!("MESSAGE sip:b@c SIP/2.0\r\n{}", "X: y\r\n".repeat(400));
        assert_eq!(
            frames(many.as_bytes(), 50),
            Err(ParseError::TooManyHeaders { limit: 256 })
        );
    }

    #[test]
    fn folded_content_length() {
        let m = b"MESSAGE sip:b@c SIP/2.0\r\nContent-Length:\r\n 2\r\n\r\nhi";
        let got = frames(m, 4096).unwrap();
        assert_eq!(got, [Frame::Message(Bytes::from_static(m))]);
    }
}
