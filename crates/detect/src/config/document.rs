//! Locating configuration errors: a TOML text parsed once with the span of every key and
//! value, so a validation error found by key path names the exact line and column.

use super::ConfigError;

/// A place in a configuration text: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text` (an offset past the end is the end).
    pub fn of(text: &str, offset: usize) -> Location {
        let (line, column) = line_col(text, offset);
        Location { line, column }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`; an offset past the end
/// or inside a character counts from the nearest character boundary before it.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1; // 0 is always a boundary, so this stops
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A TOML text parsed once, with the span of every key and value, so that errors found while
/// validating name the exact place of the value by its key path. Reusable by any configuration
/// table of the project (the daemon's own tables, say):
///
/// ```
/// use rampart_detect::config::Document;
/// #[derive(serde::Deserialize)]
/// struct Inputs { port: u16 }
/// let doc = Document::parse("[a]\nport = 1\n[b]\nport = 0\n", "d.toml").unwrap();
/// let _: std::collections::BTreeMap<String, Inputs> = doc.deserialize().unwrap();
/// let error = doc.invalid("b.port", "must be at least 1");
/// assert_eq!(error.to_string(), "d.toml:4:8: `b.port`: must be at least 1");
/// ```
#[derive(Debug, Clone)]
pub struct Document<'a> {
    file: String,
    text: &'a str,
    root: toml::Spanned<toml::de::DeTable<'a>>,
}

impl<'a> Document<'a> {
    /// Parses `text`; `file` labels error messages.
    pub fn parse(text: &'a str, file: &str) -> Result<Self, ConfigError> {
        let root = toml::de::DeTable::parse(text).map_err(|e| parse_error(file, text, &e))?;
        Ok(Document { file: file.to_owned(), text, root })
    }

    /// The document as `T` (unknown keys and wrong types are errors at their place, as far as
    /// `T`'s serde attributes say so).
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        T::deserialize(toml::de::Deserializer::from(self.root.clone()))
            .map_err(|e| parse_error(&self.file, self.text, &e))
    }

    /// The same document without the top-level tables `names` (another component's tables in
    /// a shared file); places keep referring to the original text.
    pub fn without_tables(&self, names: &[&str]) -> Document<'a> {
        let span = self.root.span();
        let mut kept = toml::de::DeTable::new();
        for (key, value) in self.root.get_ref() {
            if !names.iter().any(|n| *n == key.get_ref().as_ref()) {
                kept.insert(key.clone(), value.clone());
            }
        }
        Document { file: self.file.clone(), text: self.text, root: toml::Spanned::new(span, kept) }
    }

    /// Where the value at dotted `path` is (`group.1.prefixes.0`: array elements by index).
    /// A path that is not in the document gives the place of its longest leading part that is
    /// (a missing key: its table), and the start of the text when none is.
    pub fn locate(&self, path: &str) -> Location {
        let mut span = 0..0;
        let mut value: Option<&toml::de::DeValue<'a>> = None;
        let mut table = Some(self.root.get_ref());
        for segment in path.split('.').filter(|s| !s.is_empty()) {
            let next = match (table, value) {
                (Some(table), _) => {
                    table.iter().find(|(key, _)| key.get_ref().as_ref() == segment).map(|(_, v)| v)
                }
                (None, Some(toml::de::DeValue::Array(items))) => {
                    segment.parse::<usize>().ok().and_then(|i| items.get(i))
                }
                _ => None,
            };
            let Some(next) = next else { break };
            span = next.span();
            value = Some(next.get_ref());
            table = next.get_ref().as_table();
        }
        Location::of(self.text, span.start)
    }

    /// A validation error for the value at `path`, located in the text.
    pub fn invalid(&self, path: &str, message: impl Into<String>) -> ConfigError {
        let Location { line, column } = self.locate(path);
        ConfigError::Invalid {
            file: self.file.clone(),
            line,
            column,
            key: path.to_owned(),
            message: message.into(),
        }
    }
}

fn parse_error(file: &str, text: &str, error: &toml::de::Error) -> ConfigError {
    let Location { line, column } =
        error.span().map_or(Location { line: 1, column: 1 }, |s| Location::of(text, s.start));
    ConfigError::Parse { file: file.to_owned(), line, column, message: error.message().trim().to_owned() }
}
