//! Label and field selectors, parsed and matched the way kube-apiserver does
//! (`k8s.io/apimachinery/pkg/labels` and `k8s.io/apimachinery/pkg/fields`).
//!
//! Error strings copy apimachinery's wording, so they can go straight into a
//! 400 BadRequest `Status.message`.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

// ---------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------

/// A label selector operator (`selection.Operator` in apimachinery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelOp {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One requirement of a label selector: `key <op> values`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: LabelOp,
    /// Sorted and free of duplicates for `in`/`notin`; exactly one value for
    /// `=`, `==`, `!=`, `>` and `<`; empty for exists/does-not-exist.
    values: Vec<String>,
}

impl Requirement {
    fn has_value(&self, v: &str) -> bool {
        self.values.iter().any(|x| x == v)
    }

    /// `Requirement.Matches` from apimachinery.
    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels
            .and_then(|m| m.get(&self.key))
            .and_then(Value::as_str);
        match self.op {
            LabelOp::In | LabelOp::Equals | LabelOp::DoubleEquals => {
                value.is_some_and(|v| self.has_value(v))
            }
            LabelOp::NotIn | LabelOp::NotEquals => value.is_none_or(|v| !self.has_value(v)),
            LabelOp::Exists => value.is_some(),
            LabelOp::DoesNotExist => value.is_none(),
            LabelOp::GreaterThan | LabelOp::LessThan => {
                let Some(have) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.op == LabelOp::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

/// A parsed Kubernetes label selector (the `labelSelector` query parameter).
///
/// All requirements must hold. The empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    /// Sorted by key (stable), as apimachinery does after parsing.
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parse the string form used in `?labelSelector=`, e.g.
    /// `app=web,tier!=db,env in (prod,qa),!legacy,replicas>2`.
    ///
    /// An empty or whitespace-only string matches everything. Errors carry
    /// apimachinery's messages (`unable to parse requirement: ...`,
    /// `found ',', expected: ...`).
    ///
    /// Empty value lists follow apimachinery: `k in ()` and `k notin ()` are
    /// accepted and mean the one-element set `{""}`, so `k in ()` matches only
    /// a label `k` whose value is the empty string and `k notin ()` matches
    /// when `k` is absent or non-empty. Likewise `(a,)` is `{"", "a"}`.
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut parser = Parser::new(s);
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Whether the object's `metadata.labels` satisfy every requirement.
    /// `labels` is `None` when the object has no labels; values that are not
    /// JSON strings count as absent.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True when the selector has no requirements (matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

/// Lexer tokens (apimachinery's `Token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Error,
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn token_for(lit: &[u8]) -> Option<Tok> {
    Some(match lit {
        b")" => Tok::ClosedPar,
        b"," => Tok::Comma,
        b"!" => Tok::DoesNotExist,
        b"==" => Tok::DoubleEquals,
        b"=" => Tok::Equals,
        b">" => Tok::GreaterThan,
        b"in" => Tok::In,
        b"<" => Tok::LessThan,
        b"!=" => Tok::NotEquals,
        b"notin" => Tok::NotIn,
        b"(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(ch: u8) -> bool {
    matches!(ch, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(ch: u8) -> bool {
    matches!(ch, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Byte-oriented lexer mirroring apimachinery's: a byte 0 (end of input or a
/// NUL byte) ends the current token.
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos = self.pos.saturating_sub(1);
    }

    fn lex(&mut self) -> (Tok, String) {
        let mut ch = self.read();
        while is_whitespace(ch) {
            ch = self.read();
        }
        if ch == 0 {
            return (Tok::End, String::new());
        }
        self.unread();
        if is_special_symbol(ch) {
            self.scan_special_symbol()
        } else {
            self.scan_id_or_keyword()
        }
    }

    fn scan_id_or_keyword(&mut self) -> (Tok, String) {
        let mut buf = Vec::new();
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if is_special_symbol(ch) || is_whitespace(ch) {
                self.unread();
                break;
            }
            buf.push(ch);
        }
        // Only ASCII bytes delimit identifiers, so `buf` is valid UTF-8.
        let lit = String::from_utf8_lossy(&buf).into_owned();
        (token_for(&buf).unwrap_or(Tok::Identifier), lit)
    }

    /// Longest match among the symbol tokens (`!=`, `==`, then single chars).
    fn scan_special_symbol(&mut self) -> (Tok, String) {
        let mut last: Option<(Tok, String)> = None;
        let mut buf = Vec::new();
        loop {
            let ch = self.read();
            if ch == 0 {
                break;
            }
            if !is_special_symbol(ch) {
                self.unread();
                break;
            }
            buf.push(ch);
            if let Some(tok) = token_for(&buf) {
                last = Some((tok, String::from_utf8_lossy(&buf).into_owned()));
            } else if last.is_some() {
                self.unread();
                break;
            }
        }
        last.unwrap_or_else(|| {
            (
                Tok::Error,
                format!(
                    "error expected: keyword found '{}'",
                    String::from_utf8_lossy(&buf)
                ),
            )
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    KeyAndOperator,
    /// `in`/`notin` are plain identifiers here (`in in (in)` is legal).
    Values,
}

/// apimachinery's recursive-descent label selector parser.
struct Parser {
    items: Vec<(Tok, String)>,
    position: usize,
}

impl Parser {
    fn new(s: &str) -> Parser {
        let mut lexer = Lexer {
            s: s.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            let done = item.0 == Tok::End;
            items.push(item);
            if done {
                break;
            }
        }
        Parser { items, position: 0 }
    }

    fn item(&self, idx: usize, ctx: Ctx) -> (Tok, String) {
        match self.items.get(idx) {
            Some((tok, lit)) => {
                let tok = match (ctx, tok) {
                    (Ctx::Values, Tok::In | Tok::NotIn) => Tok::Identifier,
                    _ => *tok,
                };
                (tok, lit.clone())
            }
            None => (Tok::End, String::new()),
        }
    }

    fn lookahead(&self, ctx: Ctx) -> (Tok, String) {
        self.item(self.position, ctx)
    }

    fn consume(&mut self, ctx: Ctx) -> (Tok, String) {
        let item = self.item(self.position, ctx);
        self.position += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Ctx::Values);
            match tok {
                Tok::Identifier | Tok::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (t, l) = self.consume(Ctx::Values);
                    match t {
                        Tok::End => return Ok(requirements),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(Ctx::Values);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!("found '{l}', expected: ',' or 'end of string'"));
                        }
                    }
                }
                Tok::End => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, inferred) = self.parse_key_and_infer_operator()?;
        if let Some(op) = inferred {
            return new_requirement(key, op, Vec::new());
        }
        let op = self.parse_operator()?;
        let values = match op {
            LabelOp::In | LabelOp::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_requirement(key, op, values)
    }

    /// Returns the key and, for `!key` / bare `key`, the unary operator.
    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<LabelOp>), String> {
        let mut op = None;
        let (mut tok, mut lit) = self.consume(Ctx::Values);
        if tok == Tok::DoesNotExist {
            op = Some(LabelOp::DoesNotExist);
            (tok, lit) = self.consume(Ctx::Values);
        }
        if tok != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        // apimachinery validates with a nil field path here, hence "<nil>".
        if let Some(e) = validate_label_key(&lit, "<nil>") {
            return Err(e);
        }
        let (next, _) = self.lookahead(Ctx::Values);
        if op.is_none() && (next == Tok::End || next == Tok::Comma) {
            op = Some(LabelOp::Exists);
        }
        Ok((lit, op))
    }

    fn parse_operator(&mut self) -> Result<LabelOp, String> {
        let (tok, lit) = self.consume(Ctx::KeyAndOperator);
        Ok(match tok {
            Tok::In => LabelOp::In,
            Tok::Equals => LabelOp::Equals,
            Tok::DoubleEquals => LabelOp::DoubleEquals,
            Tok::GreaterThan => LabelOp::GreaterThan,
            Tok::LessThan => LabelOp::LessThan,
            Tok::NotIn => LabelOp::NotIn,
            Tok::NotEquals => LabelOp::NotEquals,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        })
    }

    /// `( v1, v2, ... )`; the result is sorted and deduplicated.
    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Ctx::Values);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Ctx::Values);
        match tok {
            Tok::Identifier | Tok::Comma => {
                let set = self.parse_identifiers_list()?;
                let (tok, _) = self.consume(Ctx::Values);
                if tok != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(set.into_iter().collect())
            }
            Tok::ClosedPar => {
                // apimachinery: "()" is the set {""}.
                self.consume(Ctx::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    /// A possibly empty, comma-separated list of possibly empty identifiers,
    /// stopping before the closing parenthesis.
    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut set = BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Ctx::Values);
            match tok {
                Tok::Identifier => {
                    set.insert(lit);
                    let (tok2, lit2) = self.lookahead(Ctx::Values);
                    match tok2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(set),
                        _ => return Err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        set.insert(String::new()); // "(,"
                    }
                    let (tok2, _) = self.lookahead(Ctx::Values);
                    if tok2 == Tok::ClosedPar {
                        set.insert(String::new()); // ",)"
                        return Ok(set);
                    }
                    if tok2 == Tok::Comma {
                        self.consume(Ctx::Values);
                        set.insert(String::new()); // ",,"
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    /// The single value after `=`, `==`, `!=`, `>` or `<` (may be empty).
    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(Ctx::Values);
        if tok == Tok::End || tok == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Ctx::Values);
        if tok == Tok::Identifier {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

/// apimachinery's `NewRequirement` checks that the parser cannot already
/// guarantee: integer values for `>`/`<` and label-value syntax.
fn new_requirement(key: String, op: LabelOp, values: Vec<String>) -> Result<Requirement, String> {
    let mut errs = Vec::new();
    match op {
        LabelOp::In | LabelOp::NotIn if values.is_empty() => errs.push(
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
                .to_string(),
        ),
        LabelOp::GreaterThan | LabelOp::LessThan => {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(invalid(
                        &format!("values[{i}]"),
                        v,
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    ));
                }
            }
        }
        _ => {}
    }
    for (i, v) in values.iter().enumerate() {
        let msgs = label_value_errors(v);
        if !msgs.is_empty() {
            errs.push(invalid(&format!("values[{i}][{key}]"), v, &msgs.join("; ")));
        }
    }
    if errs.is_empty() {
        Ok(Requirement { key, op, values })
    } else {
        Err(aggregate(errs))
    }
}

/// `utilerrors.Aggregate` formatting: one error as-is, several as `[a, b]`.
fn aggregate(errs: Vec<String>) -> String {
    let mut unique: Vec<String> = Vec::new();
    for e in errs {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    if unique.len() == 1 {
        unique.pop().unwrap_or_default()
    } else {
        format!("[{}]", unique.join(", "))
    }
}

/// `field.Invalid(path, value, detail).Error()`.
fn invalid(path: &str, value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {}: {detail}", go_quote(value))
}

/// Approximation of Go's `%q` for strings.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let n = c as u32;
                if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const LABEL_MAX_LEN: usize = 63;
const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;

/// `validation.RegexError`.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = msg.to_string();
    if examples.is_empty() {
        out.push_str(&format!(" (regex used for validation is '{fmt}')"));
        return out;
    }
    out.push_str(" (e.g. ");
    for (i, ex) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{ex}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
fn is_dns1123_subdomain(s: &str) -> bool {
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        match (b.first(), b.last()) {
            (Some(f), Some(e)) => edge(f) && edge(e) && b.iter().all(|c| edge(c) || *c == b'-'),
            _ => false,
        }
    };
    s.split('.').all(label_ok)
}

/// `validation.IsQualifiedName`: the label key rules.
fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > DNS1123_SUBDOMAIN_MAX_LEN {
                    errs.push(format!(
                        "prefix part {}",
                        max_len_error(DNS1123_SUBDOMAIN_MAX_LEN)
                    ));
                }
                if !is_dns1123_subdomain(prefix) {
                    errs.push(format!(
                        "prefix part {}",
                        regex_error(
                            DNS1123_SUBDOMAIN_ERR_MSG,
                            DNS1123_SUBDOMAIN_FMT,
                            &["example.com"]
                        )
                    ));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > LABEL_MAX_LEN {
        errs.push(format!("name part {}", max_len_error(LABEL_MAX_LEN)));
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// `validation.IsValidLabelValue`.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_MAX_LEN {
        errs.push(max_len_error(LABEL_MAX_LEN));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

fn validate_label_key(key: &str, path: &str) -> Option<String> {
    let errs = qualified_name_errors(key);
    if errs.is_empty() {
        None
    } else {
        Some(invalid(path, key, &errs.join("; ")))
    }
}

// ---------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------

/// One `field=value` / `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    /// `true` for `!=`, `false` for `=` / `==`.
    negated: bool,
    /// Unescaped value.
    value: String,
}

/// A parsed field selector (`?fieldSelector=`), checked against the field
/// labels the resource supports. All terms must hold; empty matches all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    /// In the order apimachinery evaluates them (raw terms sorted).
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parse `field=value`, `field==value` and `field!=value` terms separated
    /// by commas. Values may escape `\,`, `\=` and `\\`. As in apimachinery,
    /// nothing is trimmed: `metadata.name = x` names the field
    /// `"metadata.name "`.
    ///
    /// `supported` lists the field labels the resource supports (e.g.
    /// `["metadata.name", "metadata.namespace"]`); any other field is an error
    /// `field label not supported: <field>`. Syntax errors read
    /// `invalid selector: '<selector>'; can't understand '<term>'`.
    pub fn parse(s: &str, supported: &[&str]) -> Result<FieldSelector, String> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ));
            };
            terms.push(FieldTerm {
                field: lhs.to_string(),
                negated: op == "!=",
                value: unescape_value(rhs)?,
            });
        }
        // Field label conversion runs after the whole selector has parsed.
        if let Some(t) = terms
            .iter()
            .find(|t| !supported.contains(&t.field.as_str()))
        {
            return Err(format!("field label not supported: {}", t.field));
        }
        Ok(FieldSelector { terms })
    }

    /// Whether the object satisfies every term. `get` returns the object's
    /// value for a field label; an absent field compares equal to `""`.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.terms.iter().all(|t| {
            let have = get(&t.field).unwrap_or_default();
            (have == t.value) != t.negated
        })
    }

    /// True when the selector has no terms (matches everything).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The value `field` must equal (`=`/`==`), if the selector requires one.
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| !t.negated && t.field == field)
            .map(|t| t.value.as_str())
    }
}

/// Split on commas that are not escaped by a backslash (`fields.splitTerms`).
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(s.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    terms.push(s.get(start..).unwrap_or_default());
    terms
}

/// Split at the first `!=`, `==` or `=` (`fields.splitTerm`).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = term.get(i..).unwrap_or_default();
        for op in ["!=", "==", "="] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((term.get(..i).unwrap_or_default(), op, rhs));
            }
        }
    }
    None
}

/// `fields.UnescapeValue`: `\\`, `\,` and `\=` are the only escapes, and
/// unescaped `,` / `=` are rejected. Go prints the rune as a number.
fn unescape_value(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if matches!(c, '\\' | ',' | '=') {
                out.push(c);
            } else {
                return Err(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                ));
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ));
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// JSON field lookup
// ---------------------------------------------------------------------------

/// Look up a dotted path (e.g. `involvedObject.name`) in a JSON object and
/// render it as a string: strings as-is, numbers and bools via `to_string`;
/// missing, null, objects and arrays give `None`.
pub fn json_field(obj: &Value, path: &str) -> Option<String> {
    let mut cur = obj;
    for seg in path.split('.') {
        cur = cur.as_object()?.get(seg)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn ls(sel: &str) -> LabelSelector {
        match LabelSelector::parse(sel) {
            Ok(s) => s,
            Err(e) => panic!("parse {sel:?} failed: {e}"),
        }
    }

    fn m(sel: &str, l: &Value) -> bool {
        let map = labels(l.clone());
        ls(sel).matches(Some(&map))
    }

    fn lerr(sel: &str) -> String {
        match LabelSelector::parse(sel) {
            Ok(s) => panic!("parse {sel:?} unexpectedly succeeded: {s:?}"),
            Err(e) => e,
        }
    }

    const NS: &[&str] = &["metadata.name", "metadata.namespace"];

    fn fs(sel: &str) -> FieldSelector {
        match FieldSelector::parse(sel, NS) {
            Ok(s) => s,
            Err(e) => panic!("parse {sel:?} failed: {e}"),
        }
    }

    fn ferr(sel: &str) -> String {
        match FieldSelector::parse(sel, NS) {
            Ok(s) => panic!("parse {sel:?} unexpectedly succeeded: {s:?}"),
            Err(e) => e,
        }
    }

    fn getter(v: &Value) -> impl Fn(&str) -> Option<String> + '_ {
        move |f| json_field(v, f)
    }

    #[test]
    fn empty_and_whitespace_match_everything() {
        for s in ["", "   ", "\t\n "] {
            let sel = ls(s);
            assert!(sel.is_empty());
            assert!(sel.matches(None));
            assert!(sel.matches(Some(&labels(json!({"a": "b"})))));
        }
        assert!(!ls("a").is_empty());
        assert_eq!(LabelSelector::default(), ls(""));
    }

    #[test]
    fn equality_operators() {
        let l = json!({"app": "web", "tier": "db"});
        for sel in ["app=web", "app==web", " app = web ", "app== web"] {
            assert!(m(sel, &l), "{sel}");
        }
        assert!(!m("app=api", &l));
        assert!(!m("missing=web", &l));
        assert!(!ls("app=web").matches(None));
    }

    #[test]
    fn not_equals_matches_absent() {
        let l = json!({"app": "web"});
        assert!(!m("app!=web", &l));
        assert!(m("app!=api", &l));
        assert!(m("other!=x", &l));
        assert!(ls("app!=web").matches(None));
    }

    #[test]
    fn empty_exact_value() {
        let l = json!({"a": "", "b": "x"});
        assert!(m("a=", &l));
        assert!(!m("b=", &l));
        assert!(!m("c=", &l));
        assert!(m("a=,b=x", &l));
        assert!(m("b!=", &l));
    }

    #[test]
    fn in_and_notin() {
        let l = json!({"env": "prod"});
        assert!(m("env in (prod,qa)", &l));
        assert!(m("env in ( qa , prod )", &l));
        assert!(!m("env in (qa)", &l));
        assert!(!m("missing in (prod)", &l));
        assert!(!m("env notin (prod,qa)", &l));
        assert!(m("env notin (qa)", &l));
        assert!(m("missing notin (prod)", &l));
        assert!(ls("x notin (a)").matches(None));
        assert!(!ls("x in (a)").matches(None));
    }

    #[test]
    fn in_and_notin_keywords_as_identifiers() {
        let l = json!({"in": "notin"});
        assert!(m("in in (notin)", &l));
        assert!(m("in=notin", &l));
        assert!(!m("notin in (in)", &l));
        assert!(m("in", &l));
    }

    #[test]
    fn empty_value_sets_follow_apimachinery() {
        // "()" is the set {""}.
        let empty = json!({"k": ""});
        let full = json!({"k": "v"});
        assert!(m("k in ()", &empty));
        assert!(!m("k in ()", &full));
        assert!(!m("k in ()", &json!({})));
        assert!(!m("k notin ()", &empty));
        assert!(m("k notin ()", &full));
        assert!(m("k notin ()", &json!({})));
        assert_eq!(ls("k in (,a)"), ls("k in (a,)"));
        assert_eq!(ls("k in (,,a)"), ls("k in (,a)"));
        // Quirk kept from apimachinery: ",," directly before ")" is rejected.
        assert_eq!(
            lerr("k in (a,,)"),
            "unable to parse requirement: found ')', expected: ',', or identifier"
        );
        assert!(m("k in (a,)", &empty));
        assert!(m("k in (a,,b)", &json!({"k": "b"})));
    }

    #[test]
    fn exists_and_does_not_exist() {
        let l = json!({"a": "1"});
        assert!(m("a", &l));
        assert!(!m("b", &l));
        assert!(!m("!a", &l));
        assert!(m("!b", &l));
        assert!(m(" ! b ", &l));
        assert!(!ls("a").matches(None));
        assert!(ls("!a").matches(None));
    }

    #[test]
    fn non_string_label_values_count_as_absent() {
        let l = json!({"n": 5, "b": true, "z": null});
        assert!(!m("n", &l));
        assert!(m("!n", &l));
        assert!(!m("n=5", &l));
        assert!(m("n!=5", &l));
        assert!(!m("n>1", &l));
        assert!(m("!z,!b", &l));
    }

    #[test]
    fn gt_and_lt() {
        let l = json!({"replicas": "5", "word": "abc"});
        assert!(m("replicas>4", &l));
        assert!(!m("replicas>5", &l));
        assert!(m("replicas<6", &l));
        assert!(!m("replicas<5", &l));
        assert!(m("replicas > 0, replicas < 10", &l));
        assert!(!m("word>1", &l));
        assert!(!m("missing<100", &l));
        assert!(m("replicas<10", &json!({"replicas": "-3"})));
        assert!(!m(
            "replicas<10",
            &json!({"replicas": "99999999999999999999"})
        ));
    }

    #[test]
    fn gt_lt_value_errors() {
        assert_eq!(
            lerr("a>b"),
            "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert!(lerr("a<").contains("the value must be an integer"));
        // "-1" parses as an integer but is not a valid label value.
        let e = lerr("a>-1");
        assert!(
            e.starts_with("unable to parse requirement: values[0][a]: Invalid value: \"-1\""),
            "{e}"
        );
        // Both errors at once come out as an aggregate.
        let e = lerr("a<-x");
        assert!(
            e.starts_with("unable to parse requirement: [values[0]: "),
            "{e}"
        );
        assert!(e.contains(", values[0][a]: "), "{e}");
    }

    #[test]
    fn multiple_requirements_all_must_hold() {
        let l = json!({"app": "web", "env": "prod", "ver": "3"});
        assert!(m("app=web,env in (prod),!legacy,ver>2", &l));
        assert!(!m("app=web,env in (qa)", &l));
        assert!(!m("app=web,legacy", &l));
        assert!(!m("app=web,app=api", &l));
        assert_eq!(ls("b=1,a=2"), ls(" a = 2 , b = 1 "));
    }

    #[test]
    fn keys_with_prefix() {
        let l = json!({"app.kubernetes.io/name": "x"});
        assert!(m("app.kubernetes.io/name=x", &l));
        assert!(m("app.kubernetes.io/name in (x,y)", &l));
        assert!(m("!example.com/other", &l));
    }

    #[test]
    fn invalid_value_message_matches_apimachinery() {
        assert_eq!(
            lerr("app in (x,bad_)"),
            "unable to parse requirement: values[0][app]: Invalid value: \"bad_\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        let long = "v".repeat(64);
        let e = lerr(&format!("a={long}"));
        assert!(e.contains("must be no more than 63 characters"), "{e}");
        assert!(!e.contains("a valid label must"), "{e}");
        let e = lerr("a=x\"y");
        assert!(e.contains("Invalid value: \"x\\\"y\""), "{e}");
    }

    #[test]
    fn invalid_key_messages() {
        assert_eq!(
            lerr("-bad=x"),
            "unable to parse requirement: <nil>: Invalid value: \"-bad\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        let e = lerr(&"k".repeat(64));
        assert!(
            e.contains("name part must be no more than 63 characters"),
            "{e}"
        );
        let e = lerr("Example.com/a=b");
        assert!(
            e.contains("prefix part a lowercase RFC 1123 subdomain"),
            "{e}"
        );
        assert!(lerr("/a").contains("prefix part must be non-empty"));
        assert!(lerr("a/").contains("name part must be non-empty"));
        assert!(lerr("a/b/c").contains("a qualified name must consist of"));
        assert!(lerr("!-x").contains("Invalid value: \"-x\""));
        assert!(
            lerr("ünïcode")
                .starts_with("unable to parse requirement: <nil>: Invalid value: \"ünïcode\"")
        );
    }

    #[test]
    fn syntax_errors() {
        let cases: &[(&str, &str)] = &[
            (
                "a in b",
                "unable to parse requirement: found 'b' expected: '('",
            ),
            (
                "a=(",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            ("a=b,", "found '', expected: identifier after ','"),
            (
                "=x",
                "found '=', expected: !, identifier, or 'end of string'",
            ),
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("a=b c", "found 'c', expected: ',' or 'end of string'"),
            (
                "a in (b c)",
                "unable to parse requirement: found 'c', expected: ',' or ')'",
            ),
            (
                "a in (b",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "a in (b,",
                "unable to parse requirement: found '', expected: ',', or identifier",
            ),
            (
                "a in (=)",
                "unable to parse requirement: found '=', expected: ',', ')' or identifier",
            ),
            (
                "a in",
                "unable to parse requirement: found '' expected: '('",
            ),
            (
                "!",
                "unable to parse requirement: found '', expected: identifier",
            ),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            (
                ",",
                "found ',', expected: !, identifier, or 'end of string'",
            ),
            ("a,,b", "found ',', expected: identifier after ','"),
            (
                "a===b",
                "unable to parse requirement: found '=', expected: identifier",
            ),
            (
                "a=!b",
                "unable to parse requirement: found '!', expected: identifier",
            ),
            (
                "a>=1",
                "unable to parse requirement: found '=', expected: identifier",
            ),
        ];
        for (sel, want) in cases {
            assert_eq!(&lerr(sel), want, "selector {sel:?}");
        }
    }

    #[test]
    fn no_panic_exhaustive_small_inputs() {
        let alphabet = ["a", "=", "!", ",", "(", ")", " ", "in", "notin", ">", "<"];
        let mut inputs = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for p in &frontier {
                for t in alphabet {
                    next.push(format!("{p}{t}"));
                }
            }
            inputs.extend(next.iter().cloned());
            frontier = next;
        }
        assert_eq!(inputs.len(), 1 + 11 + 121 + 1331 + 14641);
        let probe = [
            labels(json!({})),
            labels(json!({"a": ""})),
            labels(json!({"a": "a", "in": "1"})),
        ];
        let (mut oks, mut errs) = (0, 0);
        for s in &inputs {
            let r = LabelSelector::parse(s);
            assert_eq!(r, LabelSelector::parse(s), "deterministic for {s:?}");
            match r {
                Ok(sel) => {
                    oks += 1;
                    assert_eq!(sel.is_empty(), s.trim().is_empty(), "{s:?}");
                    for p in &probe {
                        let _ = sel.matches(Some(p));
                    }
                    let _ = sel.matches(None);
                }
                Err(e) => {
                    errs += 1;
                    assert!(!e.is_empty(), "{s:?}");
                }
            }
            let _ = FieldSelector::parse(s, NS);
        }
        assert!(oks > 100 && errs > 1000, "oks={oks} errs={errs}");
    }

    #[test]
    fn no_panic_odd_bytes() {
        for s in [
            "a\0b",
            "\0",
            "a=\0",
            "é=ü",
            "a in (é)",
            "\u{7f}",
            "a\u{1}=b",
            "\\",
        ] {
            let _ = LabelSelector::parse(s);
            let _ = FieldSelector::parse(s, NS);
        }
        // A NUL byte ends lexing, as in Go.
        assert!(ls("\0garbage ((").is_empty());
        assert!(lerr("a=\u{1}").contains("\\x01"));
    }

    #[test]
    fn field_selector_basic() {
        let obj = json!({"metadata": {"name": "cm1", "namespace": "ns"}});
        assert!(fs("metadata.name=cm1").matches(getter(&obj)));
        assert!(fs("metadata.name==cm1").matches(getter(&obj)));
        assert!(!fs("metadata.name=cm2").matches(getter(&obj)));
        assert!(fs("metadata.name!=cm2").matches(getter(&obj)));
        assert!(!fs("metadata.name!=cm1").matches(getter(&obj)));
        assert!(fs("metadata.name=cm1,metadata.namespace=ns").matches(getter(&obj)));
        assert!(!fs("metadata.name=cm1,metadata.namespace!=ns").matches(getter(&obj)));
    }

    #[test]
    fn field_selector_empty() {
        for s in ["", ",", ",,"] {
            let sel = fs(s);
            assert!(sel.is_empty(), "{s:?}");
            assert!(sel.matches(|_| None));
        }
        assert!(!fs("metadata.name=").is_empty());
        assert_eq!(FieldSelector::default(), fs(""));
    }

    #[test]
    fn field_selector_absent_field_is_empty_string() {
        let obj = json!({"metadata": {"name": "x"}});
        assert!(fs("metadata.namespace!=default").matches(getter(&obj)));
        assert!(fs("metadata.namespace=").matches(getter(&obj)));
        assert!(!fs("metadata.namespace!=").matches(getter(&obj)));
        assert!(!fs("metadata.namespace=default").matches(getter(&obj)));
    }

    #[test]
    fn field_selector_escaping() {
        let sel = fs(r"metadata.name=a\,b\=c\\d");
        assert_eq!(sel.exact("metadata.name"), Some(r"a,b=c\d"));
        assert!(sel.matches(|_| Some(r"a,b=c\d".to_string())));
        let sel = fs(r"metadata.name=a\,b,metadata.namespace=n");
        assert_eq!(sel.exact("metadata.name"), Some("a,b"));
        assert_eq!(sel.exact("metadata.namespace"), Some("n"));
        assert_eq!(
            ferr(r"metadata.name=a\b"),
            r"invalid field selector: invalid escape sequence: \b"
        );
        assert_eq!(
            ferr(r"metadata.name=a\"),
            r"invalid field selector: invalid escape sequence: \"
        );
        assert_eq!(
            ferr("metadata.name=a=b"),
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn field_selector_errors() {
        assert_eq!(
            ferr("metadata.name"),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            ferr("metadata.name=a,bogus"),
            "invalid selector: 'metadata.name=a,bogus'; can't understand 'bogus'"
        );
        for s in ["metadata.name<3", "metadata.name in (a)", "!metadata.name"] {
            assert!(ferr(s).starts_with("invalid selector: "), "{s}");
        }
        assert_eq!(ferr("spec.foo=x"), "field label not supported: spec.foo");
        assert_eq!(ferr("=x"), "field label not supported: ");
        // No trimming, as in apimachinery.
        assert_eq!(
            ferr("metadata.name =x"),
            "field label not supported: metadata.name "
        );
        // Syntax errors win over unsupported fields.
        assert!(ferr("zzz=1,metadata.name").starts_with("invalid selector"));
        let events = ["involvedObject.name", "reason"];
        assert!(FieldSelector::parse("involvedObject.name=p,reason!=x", &events).is_ok());
    }

    #[test]
    fn field_selector_exact() {
        let sel = fs("metadata.namespace=ns,metadata.name!=skip");
        assert_eq!(sel.exact("metadata.namespace"), Some("ns"));
        assert_eq!(sel.exact("metadata.name"), None);
        assert_eq!(fs("metadata.name==x").exact("metadata.name"), Some("x"));
        assert_eq!(fs("metadata.name=").exact("metadata.name"), Some(""));
        assert_eq!(fs("").exact("metadata.name"), None);
        let both = fs("metadata.name!=a,metadata.name=b");
        assert_eq!(both.exact("metadata.name"), Some("b"));
    }

    #[test]
    fn json_field_lookup() {
        let obj = json!({
            "metadata": {"name": "e1", "namespace": "ns", "labels": {"a": "b"}},
            "involvedObject": {"name": "pod-1", "kind": "Pod"},
            "count": 3,
            "ratio": 1.5,
            "ok": true,
            "nothing": null,
            "list": [1, 2],
        });
        assert_eq!(
            json_field(&obj, "involvedObject.name").as_deref(),
            Some("pod-1")
        );
        assert_eq!(
            json_field(&obj, "metadata.namespace").as_deref(),
            Some("ns")
        );
        assert_eq!(json_field(&obj, "count").as_deref(), Some("3"));
        assert_eq!(json_field(&obj, "ratio").as_deref(), Some("1.5"));
        assert_eq!(json_field(&obj, "ok").as_deref(), Some("true"));
        assert_eq!(json_field(&obj, "nothing"), None);
        assert_eq!(json_field(&obj, "list"), None);
        assert_eq!(json_field(&obj, "metadata"), None);
        assert_eq!(json_field(&obj, "metadata.labels"), None);
        assert_eq!(json_field(&obj, "missing.name"), None);
        assert_eq!(json_field(&obj, "count.deeper"), None);
        assert_eq!(json_field(&obj, ""), None);
        assert_eq!(json_field(&json!("str"), "a"), None);
    }

    #[test]
    fn field_selector_with_json_field_on_event() {
        let ev = json!({"involvedObject": {"name": "p", "kind": "Pod"}, "type": "Normal"});
        let supported = ["involvedObject.name", "involvedObject.kind", "type"];
        let sel = match FieldSelector::parse("involvedObject.kind=Pod,type!=Warning", &supported) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert!(sel.matches(getter(&ev)));
        let sel = match FieldSelector::parse("involvedObject.name=q", &supported) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert!(!sel.matches(getter(&ev)));
    }

    #[test]
    fn go_quote_escapes() {
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(go_quote("\u{0}"), "\"\\x00\"");
        assert_eq!(go_quote("é"), "\"é\"");
    }
}
