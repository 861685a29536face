//! TOML config files loaded into typed config; every error names the file,
//! the line and the field.
//!
//! The servers (container, edge, sprayer) read their config in two stages
//! (the sozu way): [`ConfigSource::parse`] deserializes the file into a
//! `serde` struct (`deny_unknown_fields`), then the server validates the
//! values and reports each fault with [`ConfigSource::error_at`], which finds
//! the line of the field by its dotted path in the parsed document. Both
//! stages produce a [`ConfigError`] that prints as
//! `FILE:LINE:COLUMN: field PATH: what is wrong`.
//!
//! Written here rather than taken from a crate: `toml` reports a byte span
//! and a message; turning the span into a line and a field path, and finding
//! the line of a field for errors found after deserialization, is the small
//! part no crate does.
//!
//! # Example
//! ```
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Server { listen: String, workers: u32 }
//!
//! let src = config_file::ConfigSource::from_text("server.toml", "listen = \"x\"\nworkers = 0\n");
//! let server: Server = src.parse().unwrap();
//! assert_eq!(server.listen, "x");
//! if server.workers == 0 {
//!     let err = src.error_at("workers", "must be at least 1");
//!     assert_eq!(err.to_string(), "server.toml:2:1: field workers: must be at least 1");
//! }
//! ```

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A config fault: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Dotted field path (`containers[1].sip`), when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if let Some(field) = &self.field {
            write!(f, ": field {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The text of one config file, kept to locate errors in it.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    path: PathBuf,
    text: String,
}

impl ConfigSource {
    /// Reads a file.
    pub fn read(path: impl AsRef<Path>) -> Result<ConfigSource, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            column: None,
            field: None,
            message: format!("cannot read: {e}"),
        })?;
        Ok(ConfigSource {
            path: path.to_path_buf(),
            text,
        })
    }

    /// A source from text (tests, built-in defaults); `label` stands for the
    /// file name in errors.
    #[must_use]
    pub fn from_text(label: impl Into<PathBuf>, text: impl Into<String>) -> ConfigSource {
        ConfigSource {
            path: label.into(),
            text: text.into(),
        }
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's text.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Deserializes the whole file.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(&self.text).map_err(|e| {
            let span = e.span();
            let field = span.as_ref().and_then(|s| self.path_at(s));
            let (line, column) = span.map_or((None, None), |s| {
                let (l, c) = self.line_col(s.start);
                (Some(l), Some(c))
            });
            ConfigError {
                file: self.path.clone(),
                line,
                column,
                field,
                // toml's message is one line; its Display repeats the source.
                message: e.message().trim().to_owned(),
            }
        })
    }

    /// An error about a field found after deserialization (a value out of
    /// range, two things that contradict): `field` is a dotted path with
    /// array indexes, `containers[1].sip`. The line is the field's (or its
    /// nearest existing parent's) when the file has it.
    #[must_use]
    pub fn error_at(&self, field: &str, message: impl Into<String>) -> ConfigError {
        let span = self.span_of(field);
        let (line, column) = span.map_or((None, None), |s| {
            let (l, c) = self.line_col(s.start);
            (Some(l), Some(c))
        });
        ConfigError {
            file: self.path.clone(),
            line,
            column,
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    /// An error about the file as a whole.
    #[must_use]
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.path.clone(),
            line: None,
            column: None,
            field: None,
            message: message.into(),
        }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = self.text.get(..offset).unwrap_or(&self.text);
        let line = before.matches('\n').count() + 1;
        let column = before
            .rfind('\n')
            .map_or(before.len(), |nl| before.len() - nl - 1)
            + 1;
        (line, column)
    }

    /// The span of the item at a dotted path (the key's span for a value,
    /// so the line is where the field is written).
    fn span_of(&self, field: &str) -> Option<Range<usize>> {
        let doc = toml_edit::Document::parse(self.text.as_str()).ok()?;
        let mut best = None;
        let mut item: &toml_edit::Item = doc.as_item();
        for seg in segments(field) {
            match seg {
                Segment::Key(k) => {
                    let table = item.as_table_like()?;
                    let (key, next) = table.get_key_value(k)?;
                    best = key.span().or_else(|| next.span()).or(best);
                    item = next;
                }
                Segment::Index(i) => {
                    if let Some(aot) = item.as_array_of_tables() {
                        let t = aot.get(i)?;
                        best = t.span().or(best);
                        // Index into the array of tables: continue in the table.
                        return self.span_in_table(t, field, best);
                    }
                    let arr = item.as_array()?;
                    let v = arr.get(i)?;
                    best = v.span().or(best);
                    return best;
                }
            }
        }
        best
    }

    /// Continues [`Self::span_of`] inside one table of an array of tables.
    fn span_in_table(
        &self,
        table: &toml_edit::Table,
        field: &str,
        mut best: Option<Range<usize>>,
    ) -> Option<Range<usize>> {
        // The rest of the path after the first `[i]`.
        let rest = field.split_once(']').map_or("", |(_, r)| r);
        let rest = rest.strip_prefix('.').unwrap_or(rest);
        let mut item: Option<&toml_edit::Item> = None;
        let mut table_like: &dyn toml_edit::TableLike = table;
        for seg in segments(rest) {
            let Segment::Key(k) = seg else { break };
            if let Some(it) = item {
                match it.as_table_like() {
                    Some(t) => table_like = t,
                    None => break,
                }
            }
            let Some((key, next)) = table_like.get_key_value(k) else {
                break;
            };
            best = key.span().or_else(|| next.span()).or(best);
            item = Some(next);
        }
        best
    }

    /// The dotted path of the innermost key or value whose span holds `span`.
    fn path_at(&self, span: &Range<usize>) -> Option<String> {
        let doc = toml_edit::Document::parse(self.text.as_str()).ok()?;
        let mut path = String::new();
        walk(doc.as_table(), span, &mut path);
        (!path.is_empty()).then_some(path)
    }
}

fn walk(table: &dyn toml_edit::TableLike, span: &Range<usize>, path: &mut String) -> bool {
    for (key, item) in table.iter() {
        let key_span = table.key(key).and_then(toml_edit::Key::span);
        let holds = |s: &Option<Range<usize>>| {
            s.as_ref()
                .is_some_and(|s| s.start <= span.start && span.end <= s.end.max(s.start + 1))
        };
        let item_span = item.span();
        let prefix_len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        if holds(&key_span) {
            return true;
        }
        match item {
            toml_edit::Item::Table(t) if walk(t, span, path) => return true,
            toml_edit::Item::ArrayOfTables(aot) => {
                for (i, t) in aot.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    if walk(t, span, path) || holds(&t.span()) {
                        return true;
                    }
                    path.truncate(len);
                }
            }
            toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) if walk(t, span, path) => {
                return true;
            }
            _ => {}
        }
        if holds(&item_span) {
            return true;
        }
        path.truncate(prefix_len);
    }
    false
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[2].c` -> Key(a), Key(b), Index(2), Key(c).
fn segments(path: &str) -> impl Iterator<Item = Segment<'_>> {
    path.split('.').filter(|s| !s.is_empty()).flat_map(|part| {
        let (key, idx) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let key = (!key.is_empty()).then_some(Segment::Key(key));
        key.into_iter().chain(idx.map(Segment::Index))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        node: String,
        #[serde(default)]
        containers: Vec<Container>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Container {
        sip: String,
        #[serde(default)]
        weight: u32,
    }

    const TEXT: &str =
        "node = \"e1\"\n\n[[containers]]\nsip = \"a\"\n\n[[containers]]\nsip = \"b\"\nweight = 3\n";

    #[test]
    fn parses() {
        let src = ConfigSource::from_text("edge.toml", TEXT);
        let cfg: Cfg = src.parse().unwrap();
        assert_eq!(cfg.containers.len(), 2);
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let src = ConfigSource::from_text(
            "edge.toml",
            "node = \"e1\"\n[[containers]]\nsip = \"a\"\nwieght = 2\n",
        );
        let err = src.parse::<Cfg>().unwrap_err();
        assert_eq!(err.line, Some(4), "{err}");
        assert!(err.message.contains("unknown field"), "{err}");
        assert_eq!(err.field.as_deref(), Some("containers[0].wieght"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let src = ConfigSource::from_text("edge.toml", "node = 5\n");
        let err = src.parse::<Cfg>().unwrap_err();
        assert_eq!(err.line, Some(1));
        assert_eq!(err.field.as_deref(), Some("node"), "{err}");
        assert!(err.to_string().starts_with("edge.toml:1:"), "{err}");
    }

    #[test]
    fn missing_field_is_reported() {
        let src = ConfigSource::from_text("edge.toml", "[[containers]]\nsip = \"a\"\n");
        let err = src.parse::<Cfg>().unwrap_err();
        assert!(err.message.contains("node"), "{err}");
    }

    #[test]
    fn syntax_error_has_a_line() {
        let src = ConfigSource::from_text("edge.toml", "node = \"e1\"\nweight = = 2\n");
        let err = src.parse::<Cfg>().unwrap_err();
        assert_eq!(err.line, Some(2), "{err}");
    }

    #[test]
    fn validation_error_finds_the_line() {
        let src = ConfigSource::from_text("edge.toml", TEXT);
        let err = src.error_at("containers[1].weight", "too heavy");
        assert_eq!(err.line, Some(8), "{err}");
        assert_eq!(
            err.to_string(),
            "edge.toml:8:1: field containers[1].weight: too heavy"
        );
        let err = src.error_at("node", "bad");
        assert_eq!(err.line, Some(1));
        let err = src.error_at("containers[1].missing", "absent");
        assert_eq!(err.line, Some(6), "falls back to the table: {err}");
    }

    #[test]
    fn unreadable_file() {
        let err = ConfigSource::read("/nonexistent/x.toml").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/x.toml: cannot read")
        );
    }
}
