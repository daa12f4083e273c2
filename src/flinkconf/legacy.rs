//! `flink-conf.yaml` read line by line, as Flink's `GlobalConfiguration.loadYAMLResource` reads
//! it (all Flink versions up to 1.18, and later ones when there is no `config.yaml`). It is not
//! YAML: everything from the first `#` is a comment, the rest is split at its first `": "`, key
//! and value are trimmed (Java's `String.trim`) and taken verbatim, and a line that does not fit
//! is skipped with a warning.

use super::Value;
use super::yaml::Flat;

/// Java's `String.trim()`: strips every character up to U+0020.
pub(super) fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// Read `text` (lines split at `\n`): the settings in file order.
pub(super) fn read(text: &str) -> Vec<Flat> {
    let mut out = Vec::new();
    for (no, raw) in (1..).zip(text.split('\n')) {
        let conf = java_trim(raw.split('#').next().unwrap_or_default());
        if conf.is_empty() {
            continue;
        }
        let Some((key, value)) = conf.split_once(": ") else {
            // (Only line numbers are logged: the line may hold a secret.)
            tracing::warn!(
                line = no,
                "Flink configuration: line is not a `key: value` line (missing space after `:`?); ignored, as Flink ignores it in flink-conf.yaml (nested YAML is read only from a file named config.yaml)"
            );
            continue;
        };
        let (key, value) = (java_trim(key), java_trim(value));
        if key.is_empty() || value.is_empty() {
            tracing::warn!(
                line = no,
                "Flink configuration: line has an empty key or value; ignored, as Flink ignores it"
            );
            continue;
        }
        out.push(Flat {
            key: key.to_string(),
            line: no,
            value: Value::Scalar(value.to_string()),
        });
    }
    out
}
