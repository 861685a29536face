//! Edits as splices: a proxy changes a few headers and forwards the rest of
//! the bytes verbatim (DESIGN.md, "edits are applied as splices").
//!
//! An [`Editor`] records replacements of byte ranges of the original message
//! and insertions; [`Editor::write_to`] copies the original bytes between
//! them. Nothing is re-serialized from a parsed form, so headers the editor
//! did not touch leave exactly as they came.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ParseError;
use crate::headers::MaxForwards;
use crate::message::{HeaderField, Limits, SipMessage, Span, Transport};
use crate::name::HeaderName;

/// Why an edit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EditError {
    /// A header name is not a token, or a value holds CR, LF or NUL (which
    /// would inject header lines).
    #[error("header name or value would break the message framing")]
    Injection,
    /// Max-Forwards is 0: a proxy answers 483 (§16.3 step 3).
    #[error("Max-Forwards is zero")]
    TooManyHops,
    /// Max-Forwards is malformed.
    #[error("Max-Forwards is malformed")]
    BadMaxForwards,
    /// There is no Route header to pop.
    #[error("no Route header")]
    NoRoute,
    /// There is no Via header.
    #[error("no Via header")]
    NoVia,
    /// The edit touches bytes an earlier edit of this editor already
    /// replaced in part (every edit refers to the original message).
    #[error("edit overlaps an earlier edit")]
    Overlap,
}

/// Replace `at` (an empty range is a pure insertion) with `text`. `key`
/// names the header a keyed insertion added, so a second `replace` of an
/// absent header replaces the first one's line instead of adding another.
#[derive(Debug, Clone)]
struct Splice {
    at: Span,
    text: (u32, u32),
    key: Option<Box<str>>,
}

/// A set of edits to one message, applied when serializing.
#[derive(Debug)]
pub struct Editor<'m> {
    msg: &'m SipMessage,
    splices: Vec<Splice>,
    arena: String,
    body: Option<Bytes>,
}

fn check_value(v: &str) -> Result<(), EditError> {
    if crate::scan::breaks_line(v) {
        Err(EditError::Injection)
    } else {
        Ok(())
    }
}

fn check_name(n: &str) -> Result<(), EditError> {
    if crate::scan::is_token_str(n) {
        Ok(())
    } else {
        Err(EditError::Injection)
    }
}

impl<'m> Editor<'m> {
    /// Starts editing `msg`.
    #[must_use]
    pub fn new(msg: &'m SipMessage) -> Editor<'m> {
        Editor {
            msg,
            splices: Vec::with_capacity(4),
            arena: String::with_capacity(160),
            body: None,
        }
    }

    /// Records an edit. Edits are kept non-overlapping: an edit of the same
    /// range replaces the earlier one, an edit covering earlier ones
    /// absorbs them, and an edit partly inside an earlier replacement is
    /// refused ([`EditError::Overlap`]). Insertions at one point keep their
    /// order.
    fn splice(
        &mut self,
        at: Span,
        key: Option<&str>,
        write: impl FnOnce(&mut String),
    ) -> Result<(), EditError> {
        let inside = |outer: Span, p: u32| outer.start < p && p < outer.end;
        if at.start == at.end {
            if self.splices.iter().any(|s| inside(s.at, at.start)) {
                return Err(EditError::Overlap);
            }
        } else {
            for s in &self.splices {
                let covered = at.start <= s.at.start && s.at.end <= at.end;
                let overlaps = if s.at.start == s.at.end {
                    inside(at, s.at.start)
                } else {
                    s.at.start < at.end && at.start < s.at.end
                };
                if overlaps && !covered {
                    return Err(EditError::Overlap);
                }
            }
            self.splices.retain(|s| {
                let empty = s.at.start == s.at.end;
                let covered = at.start <= s.at.start && s.at.end <= at.end;
                !(covered && (!empty || inside(at, s.at.start)))
            });
        }
        if let Some(k) = key {
            self.splices.retain(|s| {
                !s.key
                    .as_deref()
                    .is_some_and(|sk| sk.eq_ignore_ascii_case(k))
            });
        }
        let start = u32::try_from(self.arena.len()).unwrap_or(u32::MAX);
        write(&mut self.arena);
        let end = u32::try_from(self.arena.len()).unwrap_or(u32::MAX);
        self.splices.push(Splice {
            at,
            text: (start, end),
            key: key.map(Box::from),
        });
        Ok(())
    }

    fn insertion_point(&self, before: Option<HeaderName>) -> u32 {
        before
            .and_then(|n| self.msg.fields().iter().find(|f| f.name == n))
            .map_or_else(
                || u32::try_from(self.msg.headers_end()).unwrap_or(u32::MAX),
                |f| f.line.start,
            )
    }

    fn insert_line(
        &mut self,
        at: u32,
        key: Option<&str>,
        name: &str,
        value: &str,
    ) -> Result<(), EditError> {
        self.splice(Span { start: at, end: at }, key, |a| {
            a.push_str(name);
            a.push_str(": ");
            a.push_str(value);
            a.push_str("\r\n");
        })
    }

    /// Adds a Via above the topmost one (§16.6 step 8). `value` is the text
    /// after `Via: `, e.g. `SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK...`.
    pub fn prepend_via(&mut self, value: &str) -> Result<&mut Self, EditError> {
        check_value(value)?;
        let at = self.insertion_point(Some(HeaderName::Via));
        self.insert_line(at, None, "Via", value)?;
        Ok(self)
    }

    /// Adds a Record-Route above the topmost one (§16.6 step 4), or at the
    /// end of the header section when there is none. `value` is a
    /// name-addr, e.g. `<sip:proxy.example.com;lr>`.
    pub fn prepend_record_route(&mut self, value: &str) -> Result<&mut Self, EditError> {
        check_value(value)?;
        let at = self.insertion_point(Some(HeaderName::RecordRoute));
        self.insert_line(at, None, "Record-Route", value)?;
        Ok(self)
    }

    /// Adds a header line at the end of the header section.
    pub fn add(&mut self, name: &str, value: &str) -> Result<&mut Self, EditError> {
        check_name(name)?;
        check_value(value)?;
        let at = self.insertion_point(None);
        self.insert_line(at, None, name, value)?;
        Ok(self)
    }

    /// Removes every line of a header (matched by name, case-insensitively,
    /// compact forms included).
    pub fn remove(&mut self, name: &str) -> &mut Self {
        let lines: Vec<Span> = self
            .msg
            .headers_named(name)
            .map(|h| h.line_span())
            .collect();
        for line in lines {
            // Whole lines never partly overlap other edits of lines.
            let _ = self.splice(line, None, |_| {});
        }
        self
    }

    /// Replaces every line of a header with one line holding `value`, at
    /// the place of the first (or at the end, if the header was absent).
    pub fn replace(&mut self, name: &str, value: &str) -> Result<&mut Self, EditError> {
        check_name(name)?;
        check_value(value)?;
        let mut lines = self.msg.headers_named(name).map(|h| h.line_span());
        match lines.next() {
            Some(first) => {
                let rest: Vec<Span> = lines.collect();
                self.splice(first, None, |a| {
                    let _ = write!(a, "{name}: {value}\r\n");
                })?;
                for l in rest {
                    self.splice(l, None, |_| {})?;
                }
            }
            None => {
                let at = self.insertion_point(None);
                self.insert_line(at, Some(name), name, value)?;
            }
        }
        Ok(self)
    }

    /// Decrements Max-Forwards and returns the new value; adds
    /// `Max-Forwards: 70` when absent (§16.6 step 3). Fails at zero (the
    /// proxy answers 483, §16.3).
    pub fn decrement_max_forwards(&mut self) -> Result<u8, EditError> {
        match self.msg.typed::<MaxForwards>() {
            None => {
                let at = self.insertion_point(None);
                self.insert_line(at, Some("Max-Forwards"), "Max-Forwards", "70")?;
                Ok(70)
            }
            Some(Err(_)) => Err(EditError::BadMaxForwards),
            Some(Ok(MaxForwards(0))) => Err(EditError::TooManyHops),
            Some(Ok(MaxForwards(n))) => {
                let span = self
                    .msg
                    .header(HeaderName::MaxForwards)
                    .map(|h| h.value_span())
                    .ok_or(EditError::BadMaxForwards)?;
                let n = n - 1;
                self.splice(span, None, |a| {
                    let _ = write!(a, "{n}");
                })?;
                Ok(n)
            }
        }
    }

    /// Removes the first Route value (§16.4, §16.12: a loose router pops
    /// itself). A Route line with several values loses only its first.
    pub fn pop_route(&mut self) -> Result<&mut Self, EditError> {
        self.pop_first(HeaderName::Route, EditError::NoRoute)
    }

    /// Removes the top Via value (§16.7 step 3, §16.11: a proxy forwarding
    /// a response removes its own Via). A Via line with several values
    /// loses only its first.
    pub fn pop_via(&mut self) -> Result<&mut Self, EditError> {
        self.pop_first(HeaderName::Via, EditError::NoVia)
    }

    fn pop_first(&mut self, name: HeaderName, absent: EditError) -> Result<&mut Self, EditError> {
        let h = self.msg.header(name).ok_or(absent)?;
        let value = h.value_span();
        let text = h.value().map_err(|_| absent)?;
        let mut split = crate::scan::ListSplit::new(text);
        let _first = split.next();
        match split.next_start() {
            None => {
                let line = h.line_span();
                self.splice(line, None, |_| {})?;
            }
            Some(offset) => {
                // Cut from the start of the value to the second element.
                let cut = Span {
                    start: value.start,
                    end: value.start + u32::try_from(offset).unwrap_or(0),
                };
                self.splice(cut, None, |_| {})?;
            }
        }
        Ok(self)
    }

    /// Records where a request came from in its top Via (§18.2.1, RFC 3581
    /// §4): appends `;received=<ip>` and fills a bare `;rport` with the
    /// source port. Only the top Via value changes.
    pub fn via_received(
        &mut self,
        received: &str,
        rport: Option<u16>,
    ) -> Result<&mut Self, EditError> {
        if received.is_empty()
            || !received
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
        {
            return Err(EditError::Injection);
        }
        let h = self.msg.header(HeaderName::Via).ok_or(EditError::NoVia)?;
        let value = h.value_span();
        let text = h.value().map_err(|_| EditError::NoVia)?;
        let end = crate::scan::first_element_end(text);
        let element = text.get(..end).unwrap_or("");
        if let (Some(port), Some(at)) = (rport, bare_param_end(element, "rport")) {
            let at = value.start + u32::try_from(at).unwrap_or(0);
            self.splice(Span { start: at, end: at }, None, |a| {
                let _ = write!(a, "={port}");
            })?;
        }
        let at = value.start + u32::try_from(end).unwrap_or(0);
        self.splice(Span { start: at, end: at }, Some(";received"), |a| {
            a.push_str(";received=");
            a.push_str(received);
        })?;
        Ok(self)
    }

    /// Replaces the Request-URI (§16.6 step 2, §16.12 strict routing).
    pub fn set_request_uri(&mut self, uri: &str) -> Result<&mut Self, EditError> {
        if uri.is_empty() || uri.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(EditError::Injection);
        }
        if let Some(span) = self.msg.request_uri_span() {
            self.splice(span, None, |a| a.push_str(uri))?;
        }
        Ok(self)
    }

    /// Replaces the body, and with it Content-Length and (when given)
    /// Content-Type.
    pub fn set_body(
        &mut self,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<&mut Self, EditError> {
        if let Some(ct) = content_type {
            self.replace("Content-Type", ct)?;
        }
        let len = body.len().to_string();
        self.replace("Content-Length", &len)?;
        self.body = Some(body);
        Ok(self)
    }

    /// Adds Content-Length when the message has none (a datagram forwarded
    /// onto a stream transport needs one, §18.3).
    pub fn ensure_content_length(&mut self) -> &mut Self {
        if self.msg.content_length().is_none() && self.body.is_none() {
            let len = self.msg.body().len().to_string();
            let at = self.insertion_point(None);
            let _ = self.insert_line(at, Some("Content-Length"), "Content-Length", &len);
        }
        self
    }

    /// The length of the serialized message.
    #[must_use]
    pub fn len(&self) -> usize {
        let sl = self.msg.start_line_span();
        let body = self.msg.body_span();
        let mut n = (body.start - sl.start) as usize;
        for s in &self.splices {
            n = (n + (s.text.1 - s.text.0) as usize)
                .saturating_sub((s.at.end - s.at.start) as usize);
        }
        n + self.body.as_ref().map_or(self.msg.body().len(), Bytes::len)
    }

    /// Whether the serialized message would be empty (never: a message has
    /// at least a start line).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the edited message: original bytes between the splices.
    pub fn write_to(&mut self, out: &mut impl BufMut) {
        self.emit(out, None);
    }

    /// Writes the edited message; with `runs`, records where each stretch
    /// of the original header section landed.
    fn emit(&mut self, out: &mut impl BufMut, mut runs: Option<&mut Vec<Run>>) {
        // Stable sort: insertions at one point keep the order they were made.
        // Insertions at a point come before a replacement starting there.
        self.splices.sort_by_key(|s| (s.at.start, s.at.end));
        let src = self.msg.as_bytes();
        let sl = self.msg.start_line_span();
        let body = self.msg.body_span();
        let mut cursor = sl.start as usize;
        let mut written = 0usize;
        let mut copy = |out: &mut dyn BufMut, from: usize, to: usize, written: &mut usize| {
            let bytes = src.get(from..to).unwrap_or_default();
            out.put_slice(bytes);
            if let (Some(runs), Ok(from), Ok(at), Ok(len)) = (
                runs.as_deref_mut(),
                u32::try_from(from),
                u32::try_from(*written),
                u32::try_from(bytes.len()),
            ) {
                runs.push(Run { from, at, len });
            }
            *written += bytes.len();
        };
        for s in &self.splices {
            let start = s.at.start as usize;
            if start > cursor {
                copy(out, cursor, start, &mut written);
                cursor = start;
            }
            let text = self
                .arena
                .as_bytes()
                .get(s.text.0 as usize..s.text.1 as usize)
                .unwrap_or_default();
            out.put_slice(text);
            written += text.len();
            cursor = cursor.max(s.at.end as usize);
        }
        let head_end = body.start as usize;
        if cursor < head_end {
            copy(out, cursor, head_end, &mut written);
        }
        match &self.body {
            Some(b) => out.put_slice(b),
            None => out.put_slice(self.msg.body()),
        }
    }

    /// Serializes into new bytes.
    #[must_use]
    pub fn to_bytes(mut self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len());
        self.write_to(&mut out);
        out.freeze()
    }

    /// Serializes and indexes the edited message: the same as
    /// `SipMessage::parse(editor.to_bytes())` (a datagram, default
    /// limits), without scanning again the start line and the header lines
    /// the edits left alone: their index is the original message's, moved
    /// to where they landed. A proxy forwards most lines untouched, so this
    /// is most of the work of indexing a forwarded message saved.
    pub fn into_message(mut self) -> Result<SipMessage, ParseError> {
        let mut out = BytesMut::with_capacity(self.len());
        let mut runs = Vec::with_capacity(self.splices.len() + 1);
        self.emit(&mut out, Some(&mut runs));
        let buf = out.freeze();
        let msg = self.msg;
        let sl = msg.start_line_span();
        // The start line is the original's when every edit lies below it.
        let below_start_line = msg
            .fields()
            .first()
            .map_or(msg.headers_end(), |f| f.line.start as usize);
        let start = self
            .splices
            .iter()
            .all(|s| s.at.start as usize >= below_start_line)
            .then(|| msg.start_parsed().moved(sl.start, 0));
        let fields = msg.fields();
        let (mut r, mut f) = (0usize, 0usize);
        // Both cursors only move forward: the indexer asks in order.
        let known = |pos: usize| -> Option<HeaderField> {
            let pos = u32::try_from(pos).ok()?;
            while runs.get(r).is_some_and(|run: &Run| run.at + run.len <= pos) {
                r += 1;
            }
            let run = runs.get(r).filter(|run| run.at <= pos)?;
            let orig = pos - run.at + run.from;
            while fields.get(f).is_some_and(|field| field.line.start < orig) {
                f += 1;
            }
            let field = fields.get(f)?;
            (field.line.start == orig && field.line.end <= run.from + run.len)
                .then(|| field.moved(run.from, run.at))
        };
        let edited = SipMessage::index(buf, Transport::Datagram, &Limits::default(), start, known)?;
        edited.take_ids_of(msg, |s: Span| {
            runs.iter()
                .find(|run| run.from <= s.start && s.end <= run.from + run.len)
                .map(|run| s.moved(run.from, run.at))
        });
        Ok(edited)
    }
}

/// A stretch of the original message copied into the edited one: `len`
/// bytes from offset `from` of the original, at offset `at` of the copy.
#[derive(Debug, Clone, Copy)]
struct Run {
    from: u32,
    at: u32,
    len: u32,
}

/// The end offset of the name of a parameter `name` that has no value, in a
/// Via value like `SIP/2.0/UDP h;branch=x;rport`.
fn bare_param_end(element: &str, name: &str) -> Option<usize> {
    let bytes = element.as_bytes();
    let mut offset = element.find(';')?;
    let mut start = offset + 1;
    let mut in_quote = false;
    let matches = |from: usize, to: usize| {
        let param = element.get(from..to).unwrap_or("");
        let trimmed = param.trim_end_matches([' ', '\t', '\r', '\n']);
        trimmed
            .trim_start()
            .eq_ignore_ascii_case(name)
            .then_some(from + trimmed.len())
    };
    loop {
        offset += 1;
        match bytes.get(offset) {
            Some(b'"') => in_quote = !in_quote,
            Some(b';') if !in_quote => {
                if let Some(end) = matches(start, offset) {
                    return Some(end);
                }
                start = offset + 1;
            }
            None => return matches(start, offset),
            _ => {}
        }
    }
}

impl SipMessage {
    /// Starts a set of edits on this message.
    #[must_use]
    pub fn edit(&self) -> Editor<'_> {
        Editor::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n\
        Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
        Route: <sip:p3.example.com;lr>\r\n\
        Max-Forwards: 70\r\n\
        x-custom :   Kept   As   Is\r\n\
        Content-Length: 4\r\n\r\nbody";

    fn msg(s: &str) -> SipMessage {
        SipMessage::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    /// Messages for [`into_message_indexes_as_a_parse_would`]: folded and
    /// compact headers, several Via values on a line, leading CRLFs, bodies.
    const SHAPES: &[&str] = &[
        INVITE,
        "\r\n\r\nINVITE sip:b@x;transport=udp SIP/2.0\r\n\
         v: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b;branch=z9hG4bK0\r\n\
         f: <sip:a@x>;tag=1\r\nt: <sip:b@x>\r\ni: c1\r\n\
         Subject: folded\r\n  over\r\n\tthree lines\r\n\
         CSeq: 1 INVITE\r\nMax-Forwards: 3\r\nl: 3\r\n\r\nabcEXTRA",
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP p;branch=z9hG4bK2;rport\r\n\
         Via: SIP/2.0/UDP a;branch=z9hG4bK1\r\nRecord-Route: <sip:p;lr>\r\n\
         From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c1\r\n\
         CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n\
         Content-Length: 0\r\n\r\n",
        "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP p;branch=z9hG4bK2\r\n\r\n",
        "OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP a;rport;branch=z9hG4bK1\r\n\r\n",
    ];

    type Edit = fn(&mut Editor<'_>);

    /// Each edit alone and all of them in turn.
    const EDITS: &[Edit] = &[
        |_| {},
        |e| {
            let _ = e.prepend_via("SIP/2.0/UDP proxy;branch=z9hG4bK9");
        },
        |e| {
            let _ = e.pop_via();
        },
        |e| {
            let _ = e.decrement_max_forwards();
        },
        |e| {
            let _ = e.pop_route();
        },
        |e| {
            let _ = e.via_received("192.0.2.7", Some(5062));
        },
        |e| {
            let _ = e.set_request_uri("sip:carol@192.0.2.9:5070");
        },
        |e| {
            let _ = e.replace("Subject", "new");
        },
        |e| {
            let _ = e.replace("X-Absent", "added");
        },
        |e| {
            let _ = e.remove("Via");
        },
        |e| {
            let _ = e.remove("Subject");
        },
        |e| {
            let _ = e.add("X-Added", "1");
        },
        |e| {
            let _ = e.add("Content-Length", "0");
        },
        |e| {
            let _ = e.set_body(Some("text/plain"), Bytes::from_static(b"hello"));
        },
        |e| {
            e.ensure_content_length();
        },
        |e| {
            let _ = e.prepend_record_route("<sip:rr.example;lr>");
        },
        |e| {
            let _ = e.prepend_via("SIP/2.0/UDP proxy;branch=z9hG4bK9");
            let _ = e.prepend_record_route("<sip:rr.example;lr>");
            let _ = e.decrement_max_forwards();
            let _ = e.pop_route();
            let _ = e.via_received("192.0.2.7", None);
        },
        |e| {
            let _ = e.pop_via();
            let _ = e.remove("Record-Route");
            let _ = e.set_request_uri("sip:d@y");
            let _ = e.set_body(None, Bytes::new());
        },
    ];

    #[test]
    fn into_message_indexes_as_a_parse_would() {
        for (i, shape) in SHAPES.iter().enumerate() {
            for (j, edit) in EDITS.iter().enumerate() {
                // A fresh original each round: its identifiers are cached
                // once read.
                let m = msg(shape);
                let mut a = m.edit();
                edit(&mut a);
                let mut b = m.edit();
                edit(&mut b);
                // The identifiers are taken over when the original read
                // them: read them on every other round.
                if j % 2 == 1 {
                    let _ = m.call_id();
                }
                match (SipMessage::parse(a.to_bytes()), b.into_message()) {
                    (Ok(parsed), Ok(indexed)) => {
                        assert!(
                            parsed.same_index(&indexed),
                            "shape {i}, edit {j}:\n{parsed:?}\n{indexed:?}"
                        );
                        let ids = |m: &SipMessage| {
                            format!(
                                "{:?} {:?} {:?} {:?} {:?} {:?}",
                                m.call_id(),
                                m.cseq(),
                                m.from_tag(),
                                m.to_tag(),
                                m.top_via(),
                                m.top_branch()
                            )
                        };
                        assert_eq!(ids(&parsed), ids(&indexed), "shape {i}, edit {j}");
                    }
                    (Err(p), Err(e)) => assert_eq!(p, e, "shape {i}, edit {j}"),
                    (p, e) => panic!("shape {i}, edit {j}: parse {p:?}, into_message {e:?}"),
                }
            }
        }
    }

    #[test]
    fn unedited_message_round_trips_byte_for_byte() {
        let m = msg(INVITE);
        assert_eq!(m.edit().to_bytes(), INVITE.as_bytes());
    }

    #[test]
    fn forward_rewrite() {
        let m = msg(INVITE);
        let mut e = m.edit();
        e.prepend_via("SIP/2.0/UDP proxy;branch=z9hG4bK2").unwrap();
        assert_eq!(e.decrement_max_forwards(), Ok(69));
        e.pop_route().unwrap();
        let len = e.len();
        let out = e.to_bytes();
        assert_eq!(out.len(), len);
        let expected = "INVITE sip:bob@example.com SIP/2.0\r\n\
            Via: SIP/2.0/UDP proxy;branch=z9hG4bK2\r\n\
            Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1\r\n\
            Route: <sip:p2.example.com;lr>\r\n\
            Route: <sip:p3.example.com;lr>\r\n\
            Max-Forwards: 69\r\n\
            x-custom :   Kept   As   Is\r\n\
            Content-Length: 4\r\n\r\nbody";
        assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
    }

    #[test]
    fn pop_route_twice_removes_the_line() {
        let m = msg(INVITE);
        let once = m.edit().pop_route().map(|_| ()).ok();
        assert!(once.is_some());
        let m2 = msg(&String::from_utf8(m.edit().pop_route().unwrap().serialized()).unwrap());
        let out = m2.edit().pop_route().unwrap().serialized();
        let m3 = msg(std::str::from_utf8(&out).unwrap());
        let routes: Vec<_> = m3.values(HeaderName::Route).map(Result::unwrap).collect();
        assert_eq!(routes, ["<sip:p3.example.com;lr>"]);
    }

    #[test]
    fn record_route_goes_on_top() {
        let m = msg(
            "INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n\
            Record-Route: <sip:p1;lr>\r\nContent-Length: 0\r\n\r\n",
        );
        let mut e = m.edit();
        e.prepend_record_route("<sip:p2;lr>").unwrap();
        let out = msg(std::str::from_utf8(&e.to_bytes()).unwrap());
        let rr: Vec<_> = out
            .values(HeaderName::RecordRoute)
            .map(Result::unwrap)
            .collect();
        assert_eq!(rr, ["<sip:p2;lr>", "<sip:p1;lr>"]);
        let m = msg("OPTIONS sip:b@x SIP/2.0\r\nContent-Length: 0\r\n\r\n");
        let mut e = m.edit();
        e.prepend_record_route("<sip:p2;lr>").unwrap();
        assert!(e.prepend_record_route("<sip:p\r\nX: y>").is_err());
    }

    #[test]
    fn pop_via_removes_only_the_top_value() {
        let r = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP p1;branch=z9hG4bKa, SIP/2.0/UDP p2;branch=z9hG4bKb\r\n\
            Via: SIP/2.0/UDP ua;branch=z9hG4bKc\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\n\
            Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let m = msg(r);
        let once = msg(std::str::from_utf8(&m.edit().pop_via().unwrap().serialized()).unwrap());
        assert_eq!(once.top_branch(), Some("z9hG4bKb"));
        let twice = msg(std::str::from_utf8(&once.edit().pop_via().unwrap().serialized()).unwrap());
        assert_eq!(twice.top_branch(), Some("z9hG4bKc"));
        assert_eq!(twice.count(HeaderName::Via), 1);
        let none = msg("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(none.edit().pop_via().map(|_| ()), Err(EditError::NoVia));
    }

    #[test]
    fn replace_remove_add_body() {
        let m = msg(INVITE);
        let mut e = m.edit();
        e.remove("X-Custom");
        e.replace("Route", "<sip:only;lr>").unwrap();
        e.add("Subject", "hi").unwrap();
        e.set_body(Some("text/plain"), Bytes::from_static(b"hello"))
            .unwrap();
        let out = msg(std::str::from_utf8(&e.to_bytes()).unwrap());
        assert_eq!(out.body(), b"hello");
        assert_eq!(out.content_length(), Some(5));
        assert_eq!(out.count(HeaderName::Route), 1);
        assert!(out.headers_named("x-custom").next().is_none());
        assert_eq!(
            out.header(HeaderName::Subject).unwrap().value().unwrap(),
            "hi"
        );
    }

    #[test]
    fn refuses_injection_and_zero_hops() {
        let m = msg(INVITE);
        assert_eq!(
            m.edit().add("X", "a\r\nVia: evil").err(),
            Some(EditError::Injection)
        );
        assert_eq!(
            m.edit().add("Bad Name", "v").err(),
            Some(EditError::Injection)
        );
        let z = msg(&INVITE.replace("Max-Forwards: 70", "Max-Forwards: 0"));
        assert_eq!(
            z.edit().decrement_max_forwards(),
            Err(EditError::TooManyHops)
        );
        let none = msg(&INVITE.replace("Max-Forwards: 70\r\n", ""));
        let mut e = none.edit();
        assert_eq!(e.decrement_max_forwards(), Ok(70));
    }

    #[test]
    fn via_received_and_rport() {
        let m = msg(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h:5060;rport;branch=z9hG4bK1 , SIP/2.0/UDP x\r\nl: 0\r\n\r\n",
        );
        let mut e = m.edit();
        e.via_received("192.0.2.1", Some(40000)).unwrap();
        let out = String::from_utf8(e.serialized()).unwrap();
        assert!(
            out.contains("Via: SIP/2.0/UDP h:5060;rport=40000;branch=z9hG4bK1;received=192.0.2.1 , SIP/2.0/UDP x\r\n"),
            "{out}"
        );
        let m = msg(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1;rport\r\nl: 0\r\n\r\n",
        );
        let mut e = m.edit();
        e.via_received("2001:db8::1", Some(5)).unwrap();
        let out = String::from_utf8(e.serialized()).unwrap();
        assert!(
            out.contains("branch=z9hG4bK1;rport=5;received=2001:db8::1\r\n"),
            "{out}"
        );
        assert_eq!(
            m.edit().via_received("evil;x", None).err(),
            Some(EditError::Injection)
        );
    }

    impl Editor<'_> {
        fn serialized(&mut self) -> Vec<u8> {
            let mut v = Vec::new();
            self.write_to(&mut v);
            v
        }
    }
}
