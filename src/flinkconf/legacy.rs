//! A file that is not one YAML document: each top-level entry read on its own, as YAML where it
//! is YAML and by Flink's legacy `flink-conf.yaml` line rules where it is not.
//!
//! An entry is a line at column 0 with the lines below it that are blank, comments, indented,
//! or (under a bare `key:`) list items. An entry whose first line carries a value (or is not a
//! `key: value` line at all) and that YAML cannot read, or in which YAML would see an anchor,
//! alias or tag, is read line by line the way Flink up to 1.18 reads `flink-conf.yaml`:
//! everything from the first `#` is a comment, the rest is split at its first `": "`, key and
//! value are trimmed (Java's `String.trim`) and taken verbatim, and a line that does not fit is
//! skipped with a warning. An entry that opens a nested block (`key:` alone) has no meaning to
//! that reader, so it must be YAML: an error in it is reported.

use super::yaml::{self, Flat, Root};
use super::{FlinkConfError, Value, lookup};

/// Java's `String.trim()`: strips every character up to U+0020.
pub(super) fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

fn is_blank(line: &str) -> bool {
    line.trim_matches([' ', '\t']).is_empty()
}

fn is_comment(line: &str) -> bool {
    line.trim_start_matches([' ', '\t']).starts_with('#')
}

/// `---` or `...` alone on a line (a comment may follow).
fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker).is_some_and(|rest| {
        let after = rest.trim_start_matches([' ', '\t']);
        rest.is_empty()
            || (rest.starts_with([' ', '\t']) && (after.is_empty() || after.starts_with('#')))
    })
}

/// A line that is only a key and its `:` (a comment may follow): a nested block opens below it.
fn is_bare_key(line: &str) -> bool {
    let mut content = line;
    let mut previous = ' ';
    for (at, c) in line.char_indices() {
        if c == '#' && (previous == ' ' || previous == '\t') {
            content = &line[..at];
            break;
        }
        previous = c;
    }
    content.trim_end_matches([' ', '\t']).ends_with(':')
}

fn is_list_item(line: &str) -> bool {
    line == "-" || line.starts_with("- ") || line.starts_with("-\t")
}

/// A content line whose indentation holds a tab.
fn tab_indented(line: &str) -> bool {
    !is_blank(line)
        && !is_comment(line)
        && line
            .chars()
            .take_while(|c| *c == ' ' || *c == '\t')
            .any(|c| c == '\t')
}

/// Read `text` (lines split at `\n`), which is not one YAML document as a whole: `whole` is why.
/// Returns the settings in file order and whether any entry was a nested mapping.
pub(super) fn read(text: &str, whole: yaml::Error) -> Result<(Vec<Flat>, bool), FlinkConfError> {
    let lines: Vec<&str> = text.split('\n').collect();
    let syntax = |line: usize, message: String| FlinkConfError::Syntax { line, message };

    // A document whose first entry is indented has no column-0 entries to read one by one; the
    // old reader, like YAML, takes the later lines to be misindented.
    let first = lines.iter().find(|l| !is_blank(l) && !is_comment(l));
    if first.is_some_and(|l| l.starts_with([' ', '\t'])) {
        return Err(syntax(whole.line, whole.message));
    }

    let mut out = Vec::new();
    let mut nested = false;
    let mut content_seen = false;
    let mut i = 0;
    while i < lines.len() {
        let head = lines[i];
        if is_blank(head) || is_comment(head) {
            i += 1;
            continue;
        }
        if is_marker(head, "---") {
            if content_seen {
                return Err(syntax(
                    i + 1,
                    "a second YAML document (`---`); Flink reads a single document".to_string(),
                ));
            }
            i += 1;
            continue;
        }
        if is_marker(head, "...") || (!content_seen && head.starts_with('%')) {
            i += 1;
            continue;
        }
        content_seen = true;
        let bare = is_bare_key(head);
        let end = i
            + 1
            + lines[i + 1..]
                .iter()
                .take_while(|l| {
                    is_blank(l) || l.starts_with([' ', '\t', '#']) || (bare && is_list_item(l))
                })
                .count();
        let chunk = lines[i..end].join("\n");
        let legacy_reason = match yaml::read(&chunk, i) {
            Ok(doc) if bare || !doc.properties => match doc.root {
                Root::Mapping { flat, nested: n } => {
                    nested |= n;
                    out.extend(flat);
                    None
                }
                Root::Empty => None,
                Root::Other => Some("not a `key: value` entry in YAML"),
            },
            Ok(_) => Some("YAML would read an anchor, alias or tag here"),
            Err(e) if e.fatal || bare => return Err(syntax(e.line, e.message)),
            Err(_) => {
                if let Some(at) = (i..end).find(|&j| tab_indented(lines[j])) {
                    return Err(syntax(
                        at + 1,
                        "a tab indents this line; YAML indents with spaces only".to_string(),
                    ));
                }
                Some("not valid YAML")
            }
        };
        if let Some(reason) = legacy_reason {
            for (j, line) in lines.iter().enumerate().take(end).skip(i) {
                if let Some(flat) = legacy_line(j + 1, line, reason) {
                    out.push(flat);
                }
            }
        }
        i = end;
    }
    Ok((out, nested))
}

/// One line read by Flink's legacy rules, or `None` where they skip it.
fn legacy_line(no: usize, raw: &str, reason: &str) -> Option<Flat> {
    let conf = java_trim(raw.split('#').next().unwrap_or_default());
    if conf.is_empty() {
        return None;
    }
    let Some((key, value)) = conf.split_once(": ") else {
        tracing::warn!(
            line = no,
            reason,
            "Flink configuration: line is neither YAML nor a `key: value` line; ignored, as Flink's legacy reader ignores it"
        );
        return None;
    };
    let (key, value) = (java_trim(key), java_trim(value));
    if key.is_empty() || value.is_empty() {
        tracing::warn!(
            line = no,
            "Flink configuration: line has an empty key or value; ignored, as Flink's legacy reader ignores it"
        );
        return None;
    }
    // Only keys from the table are logged: a malformed line can carry part of a value in what
    // the legacy reader takes for its key.
    match lookup(key) {
        Some(_) => tracing::warn!(
            line = no,
            key,
            reason,
            "Flink configuration: line read the way Flink's legacy flink-conf.yaml reader reads it"
        ),
        None => tracing::debug!(
            line = no,
            reason,
            "Flink configuration: line read the way Flink's legacy flink-conf.yaml reader reads it (a key hakeeper does not use)"
        ),
    }
    Some(Flat {
        key: key.to_string(),
        line: no,
        value: Value::Scalar(value.to_string()),
    })
}
