//! `config.yaml` read with a YAML 1.2 parser (`saphyr-parser`) and flattened as Flink's
//! `GlobalConfiguration` flattens it: nested mapping keys joined with `.`, a list kept whole (it
//! is never one of hakeeper's settings), and scalars resolved by YAML's core schema, as the
//! `CoreSchema` of Flink's `YamlParserUtils` resolves them, then written out as Flink writes the
//! resulting Java value when it reads it as a string (see [`core_text`]).

use std::collections::HashMap;
use std::rc::Rc;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};

use super::{FlinkConfError, Value};

/// How deep mappings and lists may nest, aliases included (Flink's own keys need fewer than ten).
const MAX_NESTING: usize = 64;

/// How many mapping entries the flattened document may have once aliases are expanded, and how
/// many bytes its keys may take: a few aliases of aliases can otherwise stand for billions.
const MAX_ENTRIES: usize = 1 << 20;
const MAX_KEY_BYTES: usize = 1 << 26;

/// How often a tab after `:` is replaced by a space before giving up (see [`read`]).
const MAX_TAB_FIXES: usize = 256;

/// One flattened setting: the dotted key, the line its last key part was written on, its value.
#[derive(Debug)]
pub(super) struct Flat {
    pub key: String,
    pub line: usize,
    pub value: Value,
}

fn syntax(line: usize, message: impl Into<String>) -> FlinkConfError {
    FlinkConfError::Syntax {
        line,
        message: message.into(),
    }
}

/// Read `text` as one YAML document whose root is a mapping (or empty), flattened in file order.
///
/// `saphyr-parser` refuses a tab between `:` and a value that starts with a letter or `-`
/// (`key:<TAB>value`), which YAML 1.2 and Flink's parser accept; such a tab is replaced by a
/// space (the value does not change) and the text read again.
pub(super) fn read(text: &str) -> Result<Vec<Flat>, FlinkConfError> {
    let mut fixed: Option<String> = None;
    for _ in 0..MAX_TAB_FIXES {
        let source = fixed.as_deref().unwrap_or(text);
        match Builder::new(source).run() {
            Err(Failure::Scan(e)) if e.info().starts_with("':' must be followed") => {
                let end = source
                    .char_indices()
                    .nth(e.marker().index())
                    .map_or(source.len(), |(at, _)| at);
                let start = source[..end].trim_end_matches([' ', '\t']).len();
                if !source[start..end].contains('\t') {
                    return Err(scan_error(&e, source));
                }
                let mut next = source.to_string();
                next.replace_range(start..end, &" ".repeat(end - start));
                fixed = Some(next);
            }
            Err(Failure::Scan(e)) => return Err(scan_error(&e, source)),
            Err(Failure::Other(e)) => return Err(e),
            Ok(doc) => return Ok(doc),
        }
    }
    Err(syntax(
        1,
        "too many tabs after `:`; separate keys from values with spaces",
    ))
}

/// A parser error, its line kept within the text (an unclosed quote or bracket is reported at
/// the end of the input, which may be a line past the last).
fn scan_error(e: &ScanError, source: &str) -> FlinkConfError {
    let last = source
        .split('\n')
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, _)| i + 1)
        .last()
        .unwrap_or(1);
    let mut line = e.marker().line().clamp(1, last);
    let info = e.info();
    if info.contains("tab") {
        // The parser notices a tab where the token before it ends; name the line it indents.
        let indented_by_tab = |l: &str| {
            !l.trim().is_empty()
                && l.chars()
                    .take_while(|c| *c == ' ' || *c == '\t')
                    .any(|c| c == '\t')
        };
        if let Some(at) = source
            .split('\n')
            .enumerate()
            .skip(line - 1)
            .find(|(_, l)| indented_by_tab(l))
        {
            line = at.0 + 1;
        }
    }
    // (The parser's messages quote at most one character of the input, one of `%@` and a
    // backquote, so they never show part of a value.)
    let message = if info.contains("unknown anchor") {
        "an alias (`*name`) refers to no anchor (`&name`) defined before it".to_string()
    } else if info.contains("tab") {
        "a tab indents this line; YAML indents with spaces only".to_string()
    } else if info.contains("quoted scalar") {
        format!("not valid YAML: {info}; is a quote left open?")
    } else if info.contains("did not find expected key")
        || info.contains("mapping values are not allowed")
        || info.contains("indentation")
    {
        format!(
            "not valid YAML: {info}; check this line's indentation against the lines above, and quote a value that contains `: `"
        )
    } else {
        format!("not valid YAML: {info}")
    };
    syntax(line, message)
}

// ------------------------------------------------------------------------------------------------
// Building a tree from the parser's events

#[derive(Debug)]
enum Node {
    /// Resolved: `None` for a null.
    Scalar(Option<String>),
    List {
        flow: bool,
    },
    Map(Vec<(Key, Rc<Node>)>),
}

#[derive(Debug)]
struct Key {
    text: String,
    line: usize,
}

enum Frame {
    List {
        flow: bool,
        anchor: usize,
    },
    Map {
        anchor: usize,
        /// Whether it is a block mapping (whose keys a tab must not indent).
        block: bool,
        entries: Vec<(Key, Rc<Node>)>,
        key: Option<Key>,
        /// Each key's first line, to name both when one is repeated.
        seen: HashMap<String, usize>,
    },
}

enum Failure {
    Scan(ScanError),
    Other(FlinkConfError),
}

struct Builder<'a> {
    source: &'a str,
    /// Each line's start, for looking at what precedes a key.
    line_starts: Vec<usize>,
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Rc<Node>>,
    /// The document's root node and its line.
    root: Option<(Rc<Node>, usize)>,
    documents: usize,
}

impl<'a> Builder<'a> {
    fn new(source: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Builder {
            source,
            line_starts,
            parser: Parser::new_from_str(source),
            stack: Vec::new(),
            anchors: HashMap::new(),
            root: None,
            documents: 0,
        }
    }

    fn run(mut self) -> Result<Vec<Flat>, Failure> {
        while let Some(next) = self.parser.next_event() {
            let (event, span) = next.map_err(Failure::Scan)?;
            self.event(event, span).map_err(Failure::Other)?;
        }
        let mut flattener = Flattener::default();
        match self.root {
            None => {}
            Some((root, line)) => match &*root {
                Node::Scalar(None) => {}
                Node::Map(entries) => flattener.map(entries, "", 0).map_err(Failure::Other)?,
                _ => {
                    return Err(Failure::Other(syntax(
                        line,
                        "the document is not a mapping of `key: value` settings",
                    )));
                }
            },
        }
        Ok(flattener.out)
    }

    fn event(&mut self, event: Event<'a>, span: Span) -> Result<(), FlinkConfError> {
        let line = span.start.line();
        let is_map = matches!(event, Event::MappingStart(..));
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(syntax(
                        line,
                        "a second YAML document (`---`); Flink reads a single document",
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(&text, style, tag.as_deref())
                    .map_err(|message| syntax(line, message))?;
                self.complete(Rc::new(Node::Scalar(value)), anchor, line)?;
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or_else(|| {
                    syntax(
                        line,
                        "an alias (`*name`) refers to a node that contains it; YAML allows no cycles",
                    )
                })?;
                self.complete(node, 0, line)?;
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                if let Some(tag) = tag.as_deref() {
                    let expected = if is_map { "map" } else { "seq" };
                    if !(is_core(tag) && tag.suffix == expected || is_non_specific(tag)) {
                        return Err(syntax(line, unknown_tag(tag)));
                    }
                }
                if self.stack.len() >= MAX_NESTING {
                    return Err(syntax(
                        line,
                        format!("mappings nested deeper than {MAX_NESTING} levels"),
                    ));
                }
                // A flow collection's span covers its opening bracket; a block one's is empty.
                let flow = !span.is_empty();
                self.stack.push(if is_map {
                    Frame::Map {
                        anchor,
                        block: !flow,
                        entries: Vec::new(),
                        key: None,
                        seen: HashMap::new(),
                    }
                } else {
                    Frame::List { flow, anchor }
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::List { flow, anchor }) => (Node::List { flow }, anchor),
                    Some(Frame::Map {
                        anchor, entries, ..
                    }) => (Node::Map(entries), anchor),
                    None => return Ok(()),
                };
                self.complete(Rc::new(node), anchor, line)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    /// A node is complete: remember its anchor and place it in its parent.
    fn complete(
        &mut self,
        node: Rc<Node>,
        anchor: usize,
        line: usize,
    ) -> Result<(), FlinkConfError> {
        if anchor > 0 {
            self.anchors.insert(anchor, Rc::clone(&node));
        }
        let tab_before_key = self.tab_before_key(line);
        match self.stack.last_mut() {
            None => self.root = Some((node, line)),
            Some(Frame::List { .. }) => {}
            Some(Frame::Map {
                block,
                entries,
                key,
                seen,
                ..
            }) => match key.take() {
                Some(key) => entries.push((key, node)),
                None => {
                    let text = match &*node {
                        Node::Scalar(Some(text)) => text.clone(),
                        // Java's string concatenation, as in Flink's `keyPrefix + key`.
                        Node::Scalar(None) => "null".to_string(),
                        _ => {
                            return Err(syntax(
                                line,
                                "a list or mapping used as a key; Flink's keys are strings",
                            ));
                        }
                    };
                    if *block && tab_before_key {
                        return Err(syntax(
                            line,
                            "a tab indents this line; YAML indents with spaces only",
                        ));
                    }
                    if let Some(first) = seen.insert(text.clone(), line) {
                        return Err(syntax(
                            line,
                            format!(
                                "a key given twice in the same mapping (first on line {first}); YAML forbids it, and Flink refuses the file"
                            ),
                        ));
                    }
                    *key = Some(Key { text, line });
                }
            },
        }
        Ok(())
    }

    /// Whether a tab comes before the first character of `line` (a key's line).
    fn tab_before_key(&self, line: usize) -> bool {
        let Some(&start) = self.line_starts.get(line - 1) else {
            return false;
        };
        self.source[start..]
            .chars()
            .take_while(|c| *c == ' ' || *c == '\t')
            .any(|c| c == '\t')
    }
}

fn is_core(tag: &Tag) -> bool {
    tag.handle == "tag:yaml.org,2002:"
}

/// `!` alone: "not resolved", which for a scalar means a string.
fn is_non_specific(tag: &Tag) -> bool {
    matches!(
        (tag.handle.as_str(), tag.suffix.as_str()),
        ("!", "") | ("", "!")
    )
}

fn unknown_tag(tag: &Tag) -> String {
    let shown = if is_core(tag) {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    };
    format!("the YAML tag `{shown}` is not one Flink's YAML reader knows")
}

/// A scalar's value: `None` for a null; otherwise its text as Flink reads it as a string.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Option<String>, String> {
    match tag {
        None if style == ScalarStyle::Plain => Ok(core_text(text)),
        None => Ok(Some(text.to_string())),
        Some(tag) if is_non_specific(tag) => Ok(Some(text.to_string())),
        Some(tag) if is_core(tag) => match tag.suffix.as_str() {
            "str" => Ok(Some(text.to_string())),
            "null" => Ok(None),
            "bool" | "int" | "float" => Ok(core_text(text)),
            _ => Err(unknown_tag(tag)),
        },
        Some(tag) => Err(unknown_tag(tag)),
    }
}

// ------------------------------------------------------------------------------------------------
// The core schema

/// A plain scalar as Flink's YAML reader hands it on: YAML 1.2's core schema turns it into a
/// null, a boolean, an integer or a float, and Flink, reading a setting as a string, writes that
/// value out again: `True` becomes `true`, `+7` and `007` become `7`, `0x10` and `0o20` become
/// `16`, `1e3` becomes `1000.0` (Java's `Double.toString`), and `.INF` becomes `.inf`. Any other
/// plain scalar is a string, taken as written.
pub(super) fn core_text(text: &str) -> Option<String> {
    let canonical = match text {
        "" | "~" | "null" | "Null" | "NULL" => return None,
        "true" | "True" | "TRUE" => "true".to_string(),
        "false" | "False" | "FALSE" => "false".to_string(),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => ".inf".to_string(),
        "-.inf" | "-.Inf" | "-.INF" => "-.inf".to_string(),
        ".nan" | ".NaN" | ".NAN" => ".nan".to_string(),
        _ => {
            if let Some(n) = decimal(text) {
                n
            } else if let Some(n) = radix(text, "0o", 8).or_else(|| radix(text, "0x", 16)) {
                n
            } else if let Some(f) = float(text) {
                f
            } else {
                text.to_string()
            }
        }
    };
    Some(canonical)
}

/// `[-+]?[0-9]+` written as Java writes the integer: no `+`, no leading zeros.
fn decimal(text: &str) -> Option<String> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    Some(match (digits.is_empty(), negative) {
        (true, _) => "0".to_string(),
        (false, true) => format!("-{digits}"),
        (false, false) => digits.to_string(),
    })
}

/// `0o[0-7]+` or `0x[0-9a-fA-F]+` in decimal (one that does not fit 128 bits stays as written).
fn radix(text: &str, prefix: &str, base: u32) -> Option<String> {
    let digits = text.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(base)) {
        return None;
    }
    Some(u128::from_str_radix(digits, base).map_or_else(|_| text.to_string(), |n| n.to_string()))
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` written as Java's `Double.toString`
/// writes it. (That is Rust's own float syntax without its `inf` and `nan` words, which the
/// characters allowed here rule out.)
fn float(text: &str) -> Option<String> {
    if !text
        .bytes()
        .all(|b| b.is_ascii_digit() || b".eE+-".contains(&b))
    {
        return None;
    }
    text.parse().ok().map(java_double)
}

/// Java's `Double.toString`, as snakeyaml-engine writes a double (`.inf` for an infinity).
fn java_double(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { ".inf" } else { "-.inf" }.to_string();
    }
    let magnitude = value.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let shown = format!("{value}");
        return if shown.contains('.') {
            shown
        } else {
            format!("{shown}.0")
        };
    }
    // Shortest digits in scientific form, then Java's layout: `d.ddd` (at least one digit
    // after the point) and `E` with the exponent.
    let shown = format!("{value:e}");
    let (mantissa, exponent) = shown.split_once('e').unwrap_or((&shown, "0"));
    if mantissa.contains('.') {
        format!("{mantissa}E{exponent}")
    } else {
        format!("{mantissa}.0E{exponent}")
    }
}

// ------------------------------------------------------------------------------------------------
// Flattening

#[derive(Default)]
struct Flattener {
    out: Vec<Flat>,
    entries: usize,
    key_bytes: usize,
}

impl Flattener {
    fn map(
        &mut self,
        entries: &[(Key, Rc<Node>)],
        prefix: &str,
        depth: usize,
    ) -> Result<(), FlinkConfError> {
        for (key, node) in entries {
            self.entries += 1;
            let full = format!("{prefix}{}", key.text);
            self.key_bytes += full.len();
            if self.entries > MAX_ENTRIES || self.key_bytes > MAX_KEY_BYTES {
                return Err(syntax(
                    key.line,
                    format!(
                        "aliases expand the document to more than {MAX_ENTRIES} settings or {MAX_KEY_BYTES} bytes of keys"
                    ),
                ));
            }
            let value = match &**node {
                Node::Map(inner) => {
                    if depth + 1 >= MAX_NESTING {
                        return Err(syntax(
                            key.line,
                            format!("mappings nested deeper than {MAX_NESTING} levels"),
                        ));
                    }
                    self.map(inner, &format!("{full}."), depth + 1)?;
                    continue;
                }
                Node::Scalar(Some(text)) => Value::Scalar(text.clone()),
                Node::Scalar(None) => Value::Null,
                Node::List { flow: false } => Value::Other("a YAML list"),
                Node::List { flow: true } => Value::Other("a YAML flow list (`[...]`)"),
            };
            self.out.push(Flat {
                key: full,
                line: key.line,
                value,
            });
        }
        Ok(())
    }
}
