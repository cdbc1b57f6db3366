//! The mapping file as a tree of TOML values that remember where they are.
//!
//! Every load error names a line, so the compiler works on a [`Node`] tree in which each value and each key
//! keeps its byte span. The spans come from `toml_edit`'s immutable document (the parser underneath the `toml`
//! crate, whose `toml::Spanned` loses them for dotted keys such as `location.address = "…"`); this module copies
//! that document into the small tree below and turns byte offsets into line and column.

use toml_edit::{ImDocument, Item, Table, TableLike, Value};

/// A byte range in the mapping text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl From<std::ops::Range<usize>> for Span {
    fn from(r: std::ops::Range<usize>) -> Self {
        Self {
            start: r.start,
            end: r.end,
        }
    }
}

/// A TOML value with its span.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) span: Span,
    pub(crate) kind: Kind,
}

/// The TOML value itself.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A TOML date-time literal, as written.
    Datetime(String),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

/// One `key = value` of a table; the key span is where errors about the entry point.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) key_span: Span,
    pub(crate) value: Node,
}

impl Node {
    /// The entries, if this is a table.
    pub(crate) fn entries(&self) -> Option<&[Entry]> {
        match &self.kind {
            Kind::Table(entries) => Some(entries),
            _ => None,
        }
    }

    /// The text, if this is a string.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A short description of the value's TOML type, for messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Str(_) => "a string",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Bool(_) => "a boolean",
            Kind::Datetime(_) => "a date-time",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
        }
    }

    /// The value as plain JSON (tables become objects), for constants.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as Json;
        match &self.kind {
            Kind::Str(s) | Kind::Datetime(s) => Json::String(s.clone()),
            Kind::Int(i) => Json::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            Kind::Bool(b) => Json::Bool(*b),
            Kind::Array(items) => Json::Array(items.iter().map(Node::to_json).collect()),
            Kind::Table(entries) => Json::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Parses mapping text; a syntax error comes back with its span and message.
pub(crate) fn parse(text: &str) -> Result<Node, (Span, String)> {
    let doc = ImDocument::parse(text).map_err(|e| {
        let span = e.span().map(Span::from).unwrap_or_default();
        // toml_edit's message is multi-line ("invalid string\nexpected `\"`"); keep it on one line.
        let message = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        (span, format!("TOML syntax error: {message}"))
    })?;
    Ok(table(doc.as_table(), Span::default()))
}

fn table(t: &Table, fallback: Span) -> Node {
    Node {
        span: t.span().map(Span::from).unwrap_or(fallback),
        kind: Kind::Table(entries(t, fallback)),
    }
}

/// The entries of a table or an inline table, each with the span of its key (`fallback` where it has none).
fn entries(t: &dyn TableLike, fallback: Span) -> Vec<Entry> {
    let mut entries = Vec::new();
    for (key, item) in t.iter() {
        let key_span = t
            .get_key_value(key)
            .and_then(|(k, _)| k.span())
            .map(Span::from)
            .unwrap_or(fallback);
        if let Some(value) = item_node(item, key_span) {
            entries.push(Entry {
                key: key.to_string(),
                key_span,
                value,
            });
        }
    }
    entries
}

fn item_node(item: &Item, key_span: Span) -> Option<Node> {
    match item {
        Item::None => None,
        Item::Value(v) => Some(value(v, key_span)),
        Item::Table(t) => Some(table(t, key_span)),
        Item::ArrayOfTables(a) => Some(Node {
            span: a.span().map(Span::from).unwrap_or(key_span),
            kind: Kind::Array(a.iter().map(|t| table(t, key_span)).collect()),
        }),
    }
}

fn value(v: &Value, fallback: Span) -> Node {
    let span = v.span().map(Span::from).unwrap_or(fallback);
    let kind = match v {
        Value::String(s) => Kind::Str(s.value().clone()),
        Value::Integer(i) => Kind::Int(*i.value()),
        Value::Float(f) => Kind::Float(*f.value()),
        Value::Boolean(b) => Kind::Bool(*b.value()),
        Value::Datetime(d) => Kind::Datetime(d.value().to_string()),
        Value::Array(a) => Kind::Array(a.iter().map(|v| value(v, span)).collect()),
        Value::InlineTable(t) => Kind::Table(entries(t, span)),
    };
    Node { span, kind }
}

/// Turns byte offsets into 1-based line and column numbers.
#[derive(Debug)]
pub(crate) struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { text, starts }
    }

    /// Line and column (both 1-based; the column counts characters) of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(1, |prefix| prefix.chars().count() + 1);
        (line, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_spans_of_dotted_keys_and_inline_tables() {
        let text = "target = \"x\"\n[fields]\nlocation.address = \"addr\"\nb = { path = \"p\" }\n";
        let root = parse(text).unwrap();
        let lines = LineIndex::new(text);
        let fields = &root.entries().unwrap()[1];
        assert_eq!(fields.key, "fields");
        let entries = fields.value.entries().unwrap();
        assert_eq!(entries[0].key, "location");
        assert_eq!(lines.line_col(entries[0].key_span.start), (3, 1));
        let inner = &entries[0].value.entries().unwrap()[0];
        assert_eq!(inner.key, "address");
        assert_eq!(lines.line_col(inner.value.span.start).0, 3);
        let path = &entries[1].value.entries().unwrap()[0];
        assert_eq!(lines.line_col(path.key_span.start), (4, 7));
    }

    #[test]
    fn syntax_errors_have_a_span() {
        let text = "target = \"x\"\nsource_system = \n";
        let (span, message) = parse(text).unwrap_err();
        assert_eq!(LineIndex::new(text).line_col(span.start).0, 2);
        assert!(message.starts_with("TOML syntax error"), "{message}");
    }

    #[test]
    fn columns_count_characters() {
        let lines = LineIndex::new("a\n网格 = 1");
        assert_eq!(lines.line_col(2 + "网格 ".len()), (2, 4));
        assert_eq!(lines.line_col(0), (1, 1));
        assert_eq!(lines.line_col(1000), (2, 7));
    }
}
