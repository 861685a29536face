//! The JSR 289 default application router file (SIP Servlet 1.1,
//! appendix C): one line per method, listing the applications an initial
//! request of that method passes through, in order.
//!
//! ```text
//! # comments start with #
//! INVITE: ("screening", "DAR:From", "ORIGINATING", "", "NO_ROUTE", "0"), ("proxy", "DAR:To", "TERMINATING", "", "NO_ROUTE", "1")
//! REGISTER: ("registrar", "DAR:To", "TERMINATING", "", "NO_ROUTE", "0")
//! ```
//!
//! Each tuple: application name, subscriber identity (`DAR:From`, `DAR:To`
//! or `DAR:<header>`), routing region (`ORIGINATING`, `TERMINATING`,
//! `NEUTRAL`), route (a SIP URI or ""), route modifier (`ROUTE`,
//! `ROUTE_BACK`, `NO_ROUTE`) and the state info (the order). Parsed by hand:
//! the format is a few lines of tuples that no general parser reads, and
//! every error must name its line.

use std::collections::HashMap;

/// The routing region of an application in a composition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// Serves the caller.
    Originating,
    /// Serves the callee.
    Terminating,
    /// Neither.
    Neutral,
}

/// The route modifier of a DAR entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteModifier {
    /// Send the request to the route first (an external hop).
    Route,
    /// Send it to the route and back to the container.
    RouteBack,
    /// No route: the next application of the chain.
    NoRoute,
}

/// One application of a method's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DarEntry {
    /// The application's name.
    pub app: String,
    /// Whose identity the application serves: `DAR:From`, `DAR:To`, ...
    pub identity: String,
    /// The routing region.
    pub region: Region,
    /// An external route ("" for none).
    pub route: String,
    /// The route modifier.
    pub modifier: RouteModifier,
    /// The state info: the entry's place in the chain.
    pub order: u32,
}

/// A DAR file: per method, the chain of applications in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dar {
    chains: HashMap<String, Vec<DarEntry>>,
}

/// A DAR file that cannot be read: the line (1-based) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DarError {
    /// The line, counting from 1.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl Dar {
    /// Parses a DAR file's text.
    pub fn parse(text: &str) -> Result<Dar, DarError> {
        let mut chains: HashMap<String, Vec<DarEntry>> = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |message: String| DarError { line, message };
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with('!') {
                continue;
            }
            let (method, rest) = l
                .split_once(':')
                .ok_or_else(|| err("expected `METHOD: (...)`".to_owned()))?;
            let method = method.trim();
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(err(format!("{method:?} is not a SIP method")));
            }
            if chains.contains_key(method) {
                return Err(err(format!("{method} is listed twice")));
            }
            let mut entries = Vec::new();
            for tuple in tuples(rest.trim()).map_err(err)? {
                entries.push(entry(&tuple).map_err(err)?);
            }
            if entries.is_empty() {
                return Err(err(format!("{method} lists no application")));
            }
            entries.sort_by_key(|e| e.order);
            chains.insert(method.to_owned(), entries);
        }
        Ok(Dar { chains })
    }

    /// The chain for a method, in order (empty when the method is not
    /// listed).
    #[must_use]
    pub fn chain(&self, method: &str) -> &[DarEntry] {
        self.chains.get(method).map_or(&[], Vec::as_slice)
    }

    /// Every application name the file mentions.
    pub fn apps(&self) -> impl Iterator<Item = &str> {
        self.chains.values().flatten().map(|e| e.app.as_str())
    }
}

/// Splits `("a", "b"), ("c", "d")` into lists of strings.
fn tuples(s: &str) -> Result<Vec<Vec<String>>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            break;
        }
        let body = rest
            .strip_prefix('(')
            .ok_or_else(|| format!("expected `(` at {rest:?}"))?;
        let mut fields = Vec::new();
        let mut r = body.trim_start();
        loop {
            let q = r
                .strip_prefix('"')
                .ok_or_else(|| format!("expected a quoted field at {r:?}"))?;
            let end = q.find('"').ok_or("an unterminated quoted field")?;
            fields.push(q.get(..end).unwrap_or("").to_owned());
            r = q.get(end + 1..).unwrap_or("").trim_start();
            if let Some(after) = r.strip_prefix(',') {
                r = after.trim_start();
            } else if let Some(after) = r.strip_prefix(')') {
                rest = after.trim_start();
                break;
            } else {
                return Err(format!("expected `,` or `)` at {r:?}"));
            }
        }
        out.push(fields);
    }
    Ok(out)
}

fn entry(f: &[String]) -> Result<DarEntry, String> {
    let [app, identity, region, route, modifier, order] = f else {
        return Err(format!("a tuple has 6 fields, this one {}", f.len()));
    };
    if app.is_empty() {
        return Err("an empty application name".to_owned());
    }
    let region = match region.as_str() {
        "ORIGINATING" => Region::Originating,
        "TERMINATING" => Region::Terminating,
        "NEUTRAL" => Region::Neutral,
        other => {
            return Err(format!(
                "region {other:?} is not ORIGINATING, TERMINATING or NEUTRAL"
            ));
        }
    };
    let modifier = match modifier.as_str() {
        "ROUTE" => RouteModifier::Route,
        "ROUTE_BACK" => RouteModifier::RouteBack,
        "NO_ROUTE" => RouteModifier::NoRoute,
        other => {
            return Err(format!(
                "route modifier {other:?} is not ROUTE, ROUTE_BACK or NO_ROUTE"
            ));
        }
    };
    if modifier != RouteModifier::NoRoute {
        return Err(format!(
            "{app}: routes to external hops (ROUTE, ROUTE_BACK) are not supported; use NO_ROUTE"
        ));
    }
    let order = order
        .parse()
        .map_err(|_| format!("state info {order:?} is not a number"))?;
    Ok(DarEntry {
        app: app.clone(),
        identity: identity.clone(),
        region,
        route: route.clone(),
        modifier,
        order,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dar_file_parses_into_ordered_chains() {
        let dar = Dar::parse(
            "# the default application router file\n\
             INVITE: (\"proxy\", \"DAR:To\", \"TERMINATING\", \"\", \"NO_ROUTE\", \"1\"), (\"screening\", \"DAR:From\", \"ORIGINATING\", \"\", \"NO_ROUTE\", \"0\")\n\
             \n\
             REGISTER: (\"registrar\", \"DAR:To\", \"TERMINATING\", \"\", \"NO_ROUTE\", \"0\")\n",
        )
        .unwrap_or_default();
        let names: Vec<&str> = dar.chain("INVITE").iter().map(|e| e.app.as_str()).collect();
        assert_eq!(names, ["screening", "proxy"]);
        assert_eq!(dar.chain("INVITE")[0].region, Region::Originating);
        assert_eq!(dar.chain("REGISTER").len(), 1);
        assert!(dar.chain("BYE").is_empty());
    }

    #[test]
    fn errors_name_the_line() {
        let bad = [
            ("INVITE (\"a\")", 1, "METHOD"),
            (
                "\nINVITE: (\"a\", \"DAR:To\", \"UP\", \"\", \"NO_ROUTE\", \"0\")",
                2,
                "region",
            ),
            ("INVITE: (\"a\", \"DAR:To\")", 1, "6 fields"),
            (
                "INVITE: (\"a\", \"DAR:To\", \"NEUTRAL\", \"\", \"NO_ROUTE\", \"x\")",
                1,
                "state info",
            ),
            ("INVITE: (\"a", 1, "unterminated"),
            (
                "INVITE: (\"a\", \"DAR:To\", \"NEUTRAL\", \"sip:x\", \"ROUTE\", \"0\")",
                1,
                "not supported",
            ),
            (
                "invite: (\"a\", \"DAR:To\", \"NEUTRAL\", \"\", \"NO_ROUTE\", \"0\")",
                1,
                "method",
            ),
        ];
        for (text, line, what) in bad {
            let e = Dar::parse(text).err();
            assert!(
                e.as_ref()
                    .is_some_and(|e| e.line == line && e.message.contains(what)),
                "{text:?}: {e:?}"
            );
        }
    }
}
