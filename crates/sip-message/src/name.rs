//! Header names: the known ones as an enum, compact forms (RFC 3261 §7.3.3),
//! case-insensitive lookup (§7.3.1), and which headers carry comma-separated
//! lists (§7.3.1: only those whose grammar is `#(...)`).

use std::fmt;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal, $lower:literal, $compact:expr, $list:expr; )*) => {
        /// The name of a header field.
        ///
        /// Known names are variants; any other name is [`HeaderName::Other`], and
        /// its spelling is kept in the message bytes. Comparison of names is
        /// case-insensitive (RFC 3261 §7.3.1); compact forms map to their full
        /// name (§7.3.3, RFC 3265, RFC 3515, RFC 4028).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $(
                #[doc = concat!("`", $canon, "`")]
                $variant,
            )*
            /// A header this crate has no name for; kept verbatim.
            Other,
        }

        impl HeaderName {
            /// The canonical spelling, or `"extension-header"` for [`HeaderName::Other`].
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "extension-header",
                }
            }

            /// The compact form, if the header has one.
            #[must_use]
            pub const fn compact(self) -> Option<char> {
                match self {
                    $( HeaderName::$variant => $compact, )*
                    HeaderName::Other => None,
                }
            }

            /// Whether the header's grammar is a comma-separated list, so one
            /// header line may carry several values (RFC 3261 §7.3.1).
            #[must_use]
            pub const fn is_list(self) -> bool {
                match self {
                    $( HeaderName::$variant => $list, )*
                    HeaderName::Other => false,
                }
            }

            fn from_lower(lower: &[u8]) -> HeaderName {
                match lower {
                    $( $lower => HeaderName::$variant, )*
                    _ => HeaderName::Other,
                }
            }
        }
    };
}

header_names! {
    Accept => "Accept", b"accept", None, true;
    AcceptContact => "Accept-Contact", b"accept-contact", Some('a'), true;
    AcceptEncoding => "Accept-Encoding", b"accept-encoding", None, true;
    AcceptLanguage => "Accept-Language", b"accept-language", None, true;
    AlertInfo => "Alert-Info", b"alert-info", None, true;
    Allow => "Allow", b"allow", None, true;
    AllowEvents => "Allow-Events", b"allow-events", Some('u'), true;
    AuthenticationInfo => "Authentication-Info", b"authentication-info", None, false;
    Authorization => "Authorization", b"authorization", None, false;
    CallId => "Call-ID", b"call-id", Some('i'), false;
    CallInfo => "Call-Info", b"call-info", None, true;
    Contact => "Contact", b"contact", Some('m'), true;
    ContentDisposition => "Content-Disposition", b"content-disposition", None, false;
    ContentEncoding => "Content-Encoding", b"content-encoding", Some('e'), true;
    ContentLanguage => "Content-Language", b"content-language", None, true;
    ContentLength => "Content-Length", b"content-length", Some('l'), false;
    ContentType => "Content-Type", b"content-type", Some('c'), false;
    CSeq => "CSeq", b"cseq", None, false;
    Date => "Date", b"date", None, false;
    ErrorInfo => "Error-Info", b"error-info", None, true;
    Event => "Event", b"event", Some('o'), false;
    Expires => "Expires", b"expires", None, false;
    From => "From", b"from", Some('f'), false;
    InReplyTo => "In-Reply-To", b"in-reply-to", None, true;
    MaxForwards => "Max-Forwards", b"max-forwards", None, false;
    MinExpires => "Min-Expires", b"min-expires", None, false;
    MinSe => "Min-SE", b"min-se", None, false;
    MimeVersion => "MIME-Version", b"mime-version", None, false;
    Organization => "Organization", b"organization", None, false;
    PAssertedIdentity => "P-Asserted-Identity", b"p-asserted-identity", None, true;
    PPreferredIdentity => "P-Preferred-Identity", b"p-preferred-identity", None, true;
    Path => "Path", b"path", None, true;
    Priority => "Priority", b"priority", None, false;
    ProxyAuthenticate => "Proxy-Authenticate", b"proxy-authenticate", None, false;
    ProxyAuthorization => "Proxy-Authorization", b"proxy-authorization", None, false;
    ProxyRequire => "Proxy-Require", b"proxy-require", None, true;
    RAck => "RAck", b"rack", None, false;
    Reason => "Reason", b"reason", None, true;
    RejectContact => "Reject-Contact", b"reject-contact", Some('j'), true;
    RecordRoute => "Record-Route", b"record-route", None, true;
    ReferTo => "Refer-To", b"refer-to", Some('r'), false;
    ReferredBy => "Referred-By", b"referred-by", Some('b'), false;
    Replaces => "Replaces", b"replaces", None, false;
    ReplyTo => "Reply-To", b"reply-to", None, false;
    Require => "Require", b"require", None, true;
    RetryAfter => "Retry-After", b"retry-after", None, false;
    Route => "Route", b"route", None, true;
    RSeq => "RSeq", b"rseq", None, false;
    Server => "Server", b"server", None, false;
    SessionExpires => "Session-Expires", b"session-expires", Some('x'), false;
    Subject => "Subject", b"subject", Some('s'), false;
    SubscriptionState => "Subscription-State", b"subscription-state", None, false;
    Supported => "Supported", b"supported", Some('k'), true;
    Timestamp => "Timestamp", b"timestamp", None, false;
    To => "To", b"to", Some('t'), false;
    Unsupported => "Unsupported", b"unsupported", None, true;
    UserAgent => "User-Agent", b"user-agent", None, false;
    Via => "Via", b"via", Some('v'), true;
    Warning => "Warning", b"warning", None, true;
    WwwAuthenticate => "WWW-Authenticate", b"www-authenticate", None, false;
}

/// The longest known header name, in bytes (`authentication-info`,
/// `p-preferred-identity`); longer names are [`HeaderName::Other`] at once.
pub(crate) const MAX_KNOWN_LEN: usize = 20;

impl HeaderName {
    /// Looks up a header name as it appears on the wire: case-insensitive,
    /// compact forms included. Never fails: unknown names are
    /// [`HeaderName::Other`].
    #[must_use]
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        if name.len() > MAX_KNOWN_LEN {
            return HeaderName::Other;
        }
        let mut lower = [0u8; MAX_KNOWN_LEN];
        let Some(dst) = lower.get_mut(..name.len()) else {
            return HeaderName::Other;
        };
        for (d, s) in dst.iter_mut().zip(name) {
            *d = s.to_ascii_lowercase();
        }
        HeaderName::from_lowercase(dst)
    }

    /// Looks up a name already lowercased (at most [`MAX_KNOWN_LEN`] bytes).
    pub(crate) fn from_lowercase(lower: &[u8]) -> HeaderName {
        if let [c] = lower {
            return match c {
                b'a' => HeaderName::AcceptContact,
                b'b' => HeaderName::ReferredBy,
                b'c' => HeaderName::ContentType,
                b'e' => HeaderName::ContentEncoding,
                b'f' => HeaderName::From,
                b'i' => HeaderName::CallId,
                b'j' => HeaderName::RejectContact,
                b'k' => HeaderName::Supported,
                b'l' => HeaderName::ContentLength,
                b'm' => HeaderName::Contact,
                b'o' => HeaderName::Event,
                b'r' => HeaderName::ReferTo,
                b's' => HeaderName::Subject,
                b't' => HeaderName::To,
                b'u' => HeaderName::AllowEvents,
                b'v' => HeaderName::Via,
                b'x' => HeaderName::SessionExpires,
                _ => HeaderName::Other,
            };
        }
        HeaderName::from_lower(lower)
    }

    /// Whether `wire` (a name as it appears in a message) names this header.
    #[must_use]
    pub fn matches(self, wire: &[u8]) -> bool {
        HeaderName::from_bytes(wire) == self
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_knows_compact_forms() {
        assert_eq!(HeaderName::from_bytes(b"VIA"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"call-id"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"I"), HeaderName::CallId);
        assert_eq!(HeaderName::from_bytes(b"l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::from_bytes(b"X-Foo"), HeaderName::Other);
        assert_eq!(
            HeaderName::from_bytes(b"P-Preferred-Identity"),
            HeaderName::PPreferredIdentity
        );
        assert_eq!(
            HeaderName::from_bytes(b"a-very-long-extension-header-name"),
            HeaderName::Other
        );
    }

    #[test]
    fn every_compact_form_maps_back() {
        for c in b'a'..=b'z' {
            let name = HeaderName::from_bytes(&[c]);
            if let Some(compact) = name.compact() {
                assert_eq!(compact as u8, c, "{name}");
            }
        }
    }
}
