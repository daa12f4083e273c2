//! `config.yaml` read with a YAML 1.2 parser (`saphyr-parser`) and flattened as Flink's
//! `GlobalConfiguration` flattens it: nested mapping keys joined with `.`, a list kept whole (it
//! is never one of hakeeper's settings), and scalars resolved by YAML's core schema, as the
//! `CoreSchema` of Flink's `YamlParserUtils` resolves them, then written out as Flink writes the
//! resulting Java value when it reads it as a string (see [`core_text`]).

use std::collections::HashMap;
use std::rc::Rc;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};

use super::{Construct, Value};

/// How deep mappings and lists may nest, aliases included (Flink's own keys need fewer than ten).
pub(super) const MAX_NESTING: usize = 64;

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

/// What a document turned out to be.
#[derive(Debug)]
pub(super) enum Root {
    /// No content, or only a null.
    Empty,
    /// A mapping, flattened; and whether any of its values was itself a mapping.
    Mapping { flat: Vec<Flat>, nested: bool },
    /// A scalar or a list: not a configuration.
    Other,
}

#[derive(Debug)]
pub(super) struct Doc {
    pub root: Root,
    /// Whether an anchor, alias or tag was used anywhere.
    pub properties: bool,
}

/// Why a text is not a configuration YAML can give.
#[derive(Debug)]
pub(super) struct Error {
    pub line: usize,
    pub message: String,
    /// Whether reading the text line by line instead cannot help: the text is YAML, but not one
    /// configuration (a second document, too deep, too large once expanded).
    pub fatal: bool,
}

impl Error {
    fn new(line: usize, message: impl Into<String>) -> Self {
        Error {
            line,
            message: message.into(),
            fatal: false,
        }
    }

    fn fatal(line: usize, message: impl Into<String>) -> Self {
        Error {
            line,
            message: message.into(),
            fatal: true,
        }
    }
}

/// Read `text` as one YAML document; line numbers in the result are shifted by `offset`.
///
/// `saphyr-parser` refuses a tab between `:` and a value that starts with a letter or `-`
/// (`key:<TAB>value`), which YAML 1.2 and Flink's parser accept; such a tab is replaced by a
/// space (the value does not change) and the text read again.
pub(super) fn read(text: &str, offset: usize) -> Result<Doc, Error> {
    let mut fixed: Option<String> = None;
    for _ in 0..MAX_TAB_FIXES {
        let source = fixed.as_deref().unwrap_or(text);
        match Builder::new(source, offset).run() {
            Err(Failure::Scan(e)) if e.info().starts_with("':' must be followed") => {
                let end = source
                    .char_indices()
                    .nth(e.marker().index())
                    .map_or(source.len(), |(at, _)| at);
                let start = source[..end].trim_end_matches([' ', '\t']).len();
                if !source[start..end].contains('\t') {
                    return Err(scan_error(&e, source, offset));
                }
                let mut next = source.to_string();
                next.replace_range(start..end, &" ".repeat(end - start));
                fixed = Some(next);
            }
            Err(Failure::Scan(e)) => return Err(scan_error(&e, source, offset)),
            Err(Failure::Other(e)) => return Err(e),
            Ok(doc) => return Ok(doc),
        }
    }
    Err(Error::new(
        offset + 1,
        "too many tabs after `:`; separate keys from values with spaces",
    ))
}

/// A parser error, its line kept within the text (an unclosed quote or bracket is reported at
/// the end of the input, which may be a line past the last).
fn scan_error(e: &ScanError, source: &str, offset: usize) -> Error {
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
    let line = offset + line;
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
    Error::new(line, message)
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
    Other(Error),
}

struct Builder<'a> {
    source: &'a str,
    /// Each line's start, for looking at what precedes a key.
    line_starts: Vec<usize>,
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    offset: usize,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Rc<Node>>,
    root: Option<Rc<Node>>,
    documents: usize,
    properties: bool,
}

impl<'a> Builder<'a> {
    fn new(source: &'a str, offset: usize) -> Self {
        let line_starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Builder {
            source,
            line_starts,
            parser: Parser::new_from_str(source),
            offset,
            stack: Vec::new(),
            anchors: HashMap::new(),
            root: None,
            documents: 0,
            properties: false,
        }
    }

    fn line(&self, span: &Span) -> usize {
        self.offset + span.start.line()
    }

    fn run(mut self) -> Result<Doc, Failure> {
        while let Some(next) = self.parser.next_event() {
            let (event, span) = next.map_err(Failure::Scan)?;
            self.event(event, span).map_err(Failure::Other)?;
        }
        let root = match self.root.as_deref() {
            None | Some(Node::Scalar(None)) => Root::Empty,
            Some(Node::Map(entries)) => {
                let mut flattener = Flattener::default();
                flattener.map(entries, "", 0).map_err(Failure::Other)?;
                Root::Mapping {
                    flat: flattener.out,
                    nested: flattener.nested,
                }
            }
            Some(_) => Root::Other,
        };
        Ok(Doc {
            root,
            properties: self.properties,
        })
    }

    fn event(&mut self, event: Event<'a>, span: Span) -> Result<(), Error> {
        let line = self.line(&span);
        let is_map = matches!(event, Event::MappingStart(..));
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    // (Not fatal: in a file that is not YAML, `--- text` is a line like any other.)
                    return Err(Error::new(
                        line,
                        "a second YAML document (`---`); Flink reads a single document",
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                if anchor > 0 || tag.is_some() {
                    self.properties = true;
                }
                let value = scalar(&text, style, tag.as_deref())
                    .map_err(|message| Error::new(line, message))?;
                self.complete(Rc::new(Node::Scalar(value)), anchor, line)?;
            }
            Event::Alias(id) => {
                self.properties = true;
                let node = self.anchors.get(&id).cloned().ok_or_else(|| {
                    Error::new(
                        line,
                        "an alias (`*name`) refers to a node that contains it; YAML allows no cycles",
                    )
                })?;
                self.complete(node, 0, line)?;
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                if anchor > 0 || tag.is_some() {
                    self.properties = true;
                }
                if let Some(tag) = tag.as_deref() {
                    let expected = if is_map { "map" } else { "seq" };
                    if !(is_core(tag) && tag.suffix == expected || is_non_specific(tag)) {
                        return Err(Error::new(line, unknown_tag(tag)));
                    }
                }
                if self.stack.len() >= MAX_NESTING {
                    return Err(Error::fatal(
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
    fn complete(&mut self, node: Rc<Node>, anchor: usize, line: usize) -> Result<(), Error> {
        if anchor > 0 {
            self.anchors.insert(anchor, Rc::clone(&node));
        }
        let tab_before_key = self.tab_before_key(line);
        match self.stack.last_mut() {
            None => self.root = Some(node),
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
                            return Err(Error::new(
                                line,
                                "a list or mapping used as a key; Flink's keys are strings",
                            ));
                        }
                    };
                    if *block && tab_before_key {
                        return Err(Error::new(
                            line,
                            "a tab indents this line; YAML indents with spaces only",
                        ));
                    }
                    if let Some(first) = seen.insert(text.clone(), line) {
                        return Err(Error::new(
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
        let Some(&start) = self.line_starts.get(line - self.offset - 1) else {
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
/// writes it.
fn float(text: &str) -> Option<String> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(whole)
        && digits(fraction)
        && (!whole.is_empty() || !fraction.is_empty())
        && (mantissa.contains('.') || exponent.is_some());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if !(mantissa_ok && exponent_ok) {
        return None;
    }
    let value: f64 = text.parse().ok()?;
    Some(java_double(value))
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
    nested: bool,
    entries: usize,
    key_bytes: usize,
}

impl Flattener {
    fn map(
        &mut self,
        entries: &[(Key, Rc<Node>)],
        prefix: &str,
        depth: usize,
    ) -> Result<(), Error> {
        for (key, node) in entries {
            self.entries += 1;
            let full = format!("{prefix}{}", key.text);
            self.key_bytes += full.len();
            if self.entries > MAX_ENTRIES || self.key_bytes > MAX_KEY_BYTES {
                return Err(Error::fatal(
                    key.line,
                    format!(
                        "aliases expand the document to more than {MAX_ENTRIES} settings or {MAX_KEY_BYTES} bytes of keys"
                    ),
                ));
            }
            let value = match &**node {
                Node::Map(inner) => {
                    if depth + 1 >= MAX_NESTING {
                        return Err(Error::fatal(
                            key.line,
                            format!("mappings nested deeper than {MAX_NESTING} levels"),
                        ));
                    }
                    self.nested = true;
                    self.map(inner, &format!("{full}."), depth + 1)?;
                    continue;
                }
                Node::Scalar(Some(text)) => Value::Scalar(text.clone()),
                Node::Scalar(None) => Value::Null,
                Node::List { flow: false } => Value::Other(Construct::List),
                Node::List { flow: true } => Value::Other(Construct::FlowList),
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
