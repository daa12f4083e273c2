//! Request-body validation for ConfigMaps and core/v1 Events, worded like
//! kube-apiserver.
//!
//! Wording follows Kubernetes v1.33 (k8s.io/apimachinery v0.33):
//! - `pkg/util/validation`: `IsDNS1123Subdomain`, `IsQualifiedName`,
//!   `IsValidLabelValue`, `IsConfigMapKey`, `MaxLenError` ("must be no more
//!   than N characters"), `RegexError`, `EmptyError`.
//! - `pkg/util/validation/field/errors.go`: `Error.Error()` renders
//!   `<field>: <body>`; `TooLong` says "may not be more than N bytes" (since
//!   kubernetes/kubernetes#128553, v1.32); `NewPath("")` renders as `[]`.
//! - `pkg/apis/core/validation`: `ValidateConfigMap` (the size check sums the
//!   *values* of `data` and `binaryData` only, and a key in both bags is a
//!   `FieldValueInvalid` "duplicate of key present in binaryData"),
//!   `legacyValidateEvent` (the only Event validation for core/v1 requests).
//! - `pkg/api/validation`: `ValidateObjectMeta`, `ValidateAnnotations`,
//!   `path.ValidatePathSegmentName`; `pkg/api/errors.NewInvalid` for the
//!   422 message.
//!
//! Inputs that kube would reject while decoding (wrong JSON types, bad
//! base64) are reported here as `FieldValueInvalid` errors instead.

use serde_json::{Map, Value};

/// One validation failure, rendered like apimachinery's field.Error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path, e.g. "metadata.name", "data[bad key]", "" for the root.
    pub field: String,
    /// The Status cause reason: "FieldValueInvalid", "FieldValueRequired", "FieldValueTooLong", "FieldValueDuplicate", "FieldValueForbidden".
    pub reason: &'static str,
    /// The message without the field prefix, e.g. `Invalid value: "Bad": a lowercase RFC 1123 subdomain must consist of ...`.
    pub detail: String,
}

impl FieldError {
    /// `<field>: <detail>`; the root path renders as `[]` (what
    /// `field.NewPath("").String()` prints).
    pub fn render(&self) -> String {
        let field = if self.field.is_empty() {
            "[]"
        } else {
            &self.field
        };
        format!("{field}: {}", self.detail)
    }

    /// `field.Invalid` with a string bad value (printed with Go's `%q`).
    fn invalid(field: impl Into<String>, value: &str, detail: &str) -> Self {
        Self::invalid_rendered(field, go_quote(value), detail)
    }

    /// `field.Invalid` with an arbitrary JSON bad value.
    fn invalid_json(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Self::invalid_rendered(field, render_json(value), detail)
    }

    fn invalid_rendered(field: impl Into<String>, rendered: String, detail: &str) -> Self {
        let mut body = format!("Invalid value: {rendered}");
        if !detail.is_empty() {
            body.push_str(": ");
            body.push_str(detail);
        }
        FieldError {
            field: field.into(),
            reason: "FieldValueInvalid",
            detail: body,
        }
    }

    /// `field.Required`.
    fn required(field: impl Into<String>, detail: &str) -> Self {
        let mut body = String::from("Required value");
        if !detail.is_empty() {
            body.push_str(": ");
            body.push_str(detail);
        }
        FieldError {
            field: field.into(),
            reason: "FieldValueRequired",
            detail: body,
        }
    }

    /// `field.TooLong` (v1.32+ wording).
    fn too_long(field: impl Into<String>, max: usize) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        FieldError {
            field: field.into(),
            reason: "FieldValueTooLong",
            detail: format!("Too long: may not be more than {max} {unit}"),
        }
    }
}

/// Maximum total size of a ConfigMap's data + binaryData, as kube-apiserver
/// enforces (`core.MaxSecretSize`). Only the values count, not the keys.
pub const MAX_CONFIGMAP_BYTES: usize = 1_048_576;

/// `TotalAnnotationSizeLimitB`: keys + values of all annotations.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;
const EVENT_FIELD_LIMIT: usize = 128;
const EVENT_NOTE_LIMIT: usize = 1024;

const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_KEY_MSG: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const NAME_REQUIRED: &str = "name or generateName is required";

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    // Same concatenation as Go, including its double space before "or".
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

/// DNS-1123 subdomain check for object names (at most 253 chars). Returns the error details (without field path), empty if valid.
pub fn dns1123_subdomain(name: &str) -> Vec<String> {
    dns1123_subdomain_bytes(name.as_bytes())
}

/// Byte-level form, so the generateName mask can cut anywhere without
/// splitting a char (all the rules are ASCII-only anyway).
fn dns1123_subdomain_bytes(b: &[u8]) -> Vec<String> {
    let mut errs = Vec::new();
    if b.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX));
    }
    if !matches_dns1123_subdomain(b) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
fn matches_dns1123_subdomain(b: &[u8]) -> bool {
    b.split(|&c| c == b'.').all(|label| {
        matches!((label.first(), label.last()), (Some(&f), Some(&l)) if is_lower_alnum(f) && is_lower_alnum(l))
            && label.iter().all(|&c| is_lower_alnum(c) || c == b'-')
    })
}

/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`
fn matches_qualified_name(s: &str) -> bool {
    let b = s.as_bytes();
    matches!((b.first(), b.last()), (Some(f), Some(l)) if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric())
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `IsQualifiedName` (label keys, annotation keys).
fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX {
        errs.push(format!("name part {}", max_len_error(QUALIFIED_NAME_MAX)));
    }
    if !matches_qualified_name(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// `IsValidLabelValue`.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX {
        errs.push(max_len_error(LABEL_VALUE_MAX));
    }
    if !value.is_empty() && !matches_qualified_name(value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// `IsConfigMapKey`.
fn config_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX));
    }
    let b = key.as_bytes();
    if b.is_empty()
        || !b
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        errs.push(regex_error(
            CONFIG_KEY_MSG,
            CONFIG_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if key == "." {
        errs.push("must not be '.'".to_string());
    } else if key == ".." {
        errs.push("must not be '..'".to_string());
    } else if key.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// `path.ValidatePathSegmentName`; `prefix` (generateName) only checks the
/// forbidden characters.
fn path_segment_errors(name: &str, prefix: bool) -> Vec<String> {
    if !prefix {
        for bad in [".", ".."] {
            if name == bad {
                return vec![format!("may not be '{bad}'")];
            }
        }
    }
    ["/", "%"]
        .iter()
        .filter(|bad| name.contains(**bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

/// `NameIsDNSSubdomain(name, prefix=true)`: `maskTrailingDash` then the
/// subdomain check.
fn generate_name_dns_errors(generate_name: &str) -> Vec<String> {
    let b = generate_name.as_bytes();
    if b.len() > 1 && b.ends_with(b"-") {
        // Upstream quirk reproduced: `name[:len(name)-2] + "a"`.
        let mut masked = b.get(..b.len() - 2).unwrap_or_default().to_vec();
        masked.push(b'a');
        return dns1123_subdomain_bytes(&masked);
    }
    dns1123_subdomain_bytes(b)
}

/// Validate `metadata.name` / `metadata.generateName` of an object about to be created or updated.
/// `name` is the final name (after generateName expansion). Also: name must not be "." or "..", and must not contain "/" or "%" (path segment rules).
///
/// As in kube-apiserver, the path-segment rules are only reported when the
/// DNS-1123 check passes (they run in a second pass in `rest.BeforeCreate`).
pub fn validate_object_name(name: &str) -> Vec<FieldError> {
    if name.is_empty() {
        return vec![FieldError::required("metadata.name", NAME_REQUIRED)];
    }
    let mut msgs = dns1123_subdomain(name);
    if msgs.is_empty() {
        msgs = path_segment_errors(name, false);
    }
    msgs.iter()
        .map(|m| FieldError::invalid("metadata.name", name, m))
        .collect()
}

/// Name checks shared by ConfigMaps (DNS-1123) and Events (path segment
/// only). Reads `metadata.generateName` and `metadata.name` from `obj`.
fn validate_names(obj: &Value, dns: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = obj.get("metadata");
    if let Some(gn) = meta.and_then(|m| m.get("generateName")) {
        match gn {
            Value::String(gn) if !gn.is_empty() => {
                let mut msgs = if dns {
                    generate_name_dns_errors(gn)
                } else {
                    Vec::new()
                };
                if msgs.is_empty() {
                    msgs = path_segment_errors(gn, true);
                }
                errs.extend(
                    msgs.iter()
                        .map(|m| FieldError::invalid("metadata.generateName", gn, m)),
                );
            }
            Value::String(_) | Value::Null => {}
            other => errs.push(FieldError::invalid_json(
                "metadata.generateName",
                other,
                "must be a string",
            )),
        }
    }
    match meta.and_then(|m| m.get("name")) {
        Some(Value::String(name)) if dns => errs.extend(validate_object_name(name)),
        Some(Value::String(name)) if !name.is_empty() => errs.extend(
            path_segment_errors(name, false)
                .iter()
                .map(|m| FieldError::invalid("metadata.name", name, m)),
        ),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            errs.push(FieldError::required("metadata.name", NAME_REQUIRED));
        }
        Some(other) => errs.push(FieldError::invalid_json(
            "metadata.name",
            other,
            "must be a string",
        )),
    }
    errs
}

/// Reads an optional JSON object field; a non-object is reported under `path`.
fn object_field<'a>(
    parent: Option<&'a Value>,
    key: &str,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<&'a Map<String, Value>> {
    match parent.and_then(|p| p.get(key)) {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(other) => {
            errs.push(FieldError::invalid_json(path, other, "must be an object"));
            None
        }
    }
}

/// A map value that must be a string; JSON `null` decodes to "" as in Go.
fn string_entry<'a>(
    value: &'a Value,
    path: impl FnOnce() -> String,
    errs: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match value {
        Value::String(s) => Some(s),
        Value::Null => Some(""),
        other => {
            errs.push(FieldError::invalid_json(path(), other, "must be a string"));
            None
        }
    }
}

/// Validate metadata.labels and metadata.annotations of `obj` (a full object JSON): label keys (qualified names: optional DNS-1123 subdomain prefix ≤253 + '/' + name ≤63 chars `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`), label values (≤63, same pattern or empty), annotation keys (qualified names), total annotations size ≤ 262144 bytes (TotalAnnotationSizeLimitB). Non-string label/annotation values → FieldValueInvalid errors (never panic).
///
/// Like upstream, label/annotation errors use the field path
/// `metadata.labels` / `metadata.annotations` (no key subscript); only the
/// non-string-value errors (not reachable in kube) name the key.
pub fn validate_metadata(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = match obj.get("metadata") {
        Some(m @ Value::Object(_)) => Some(m),
        _ => None,
    };
    if let Some(labels) = object_field(meta, "labels", "metadata.labels", &mut errs) {
        for (k, v) in labels {
            errs.extend(
                qualified_name_errors(k)
                    .iter()
                    .map(|m| FieldError::invalid("metadata.labels", k, m)),
            );
            let path = || format!("metadata.labels[{k}]");
            if let Some(v) = string_entry(v, path, &mut errs) {
                errs.extend(
                    label_value_errors(v)
                        .iter()
                        .map(|m| FieldError::invalid("metadata.labels", v, m)),
                );
            }
        }
    }
    if let Some(annotations) = object_field(meta, "annotations", "metadata.annotations", &mut errs)
    {
        let mut total: usize = 0;
        for (k, v) in annotations {
            // Upstream: "case doesn't matter", so the key is lowercased first.
            errs.extend(
                qualified_name_errors(&k.to_lowercase())
                    .iter()
                    .map(|m| FieldError::invalid("metadata.annotations", k, m)),
            );
            let path = || format!("metadata.annotations[{k}]");
            let v_len = string_entry(v, path, &mut errs).map_or(0, str::len);
            total = total.saturating_add(k.len()).saturating_add(v_len);
        }
        if total > TOTAL_ANNOTATION_SIZE_LIMIT {
            errs.push(FieldError::too_long(
                "metadata.annotations",
                TOTAL_ANNOTATION_SIZE_LIMIT,
            ));
        }
    }
    errs
}

/// Reports a non-object `metadata`; returns whether `obj` itself is an object.
fn check_shape(obj: &Value, errs: &mut Vec<FieldError>) -> bool {
    if !obj.is_object() {
        errs.push(FieldError::invalid_json("", obj, "must be an object"));
        return false;
    }
    match obj.get("metadata") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(other) => errs.push(FieldError::invalid_json(
            "metadata",
            other,
            "must be an object",
        )),
    }
    true
}

/// Validate a ConfigMap body: every key of `data` and `binaryData` is a valid config key ([-._a-zA-Z0-9]+, at most 253 chars, not "." / "..", not starting with ".."), with kube's wording, field paths `data[<key>]` / `binaryData[<key>]`; `data` values must be strings and `binaryData` values base64 strings (error if not); a key present in both → duplicate error; total size (sum over data of key.len()+value.len() and over binaryData of key.len()+decoded_bytes.len()) > MAX_CONFIGMAP_BYTES → FieldValueTooLong error worded like kube-apiserver (e.g. `Too long: must have at most 1048576 bytes` — use the wording of the version you follow). Also includes validate_object_name and validate_metadata results.
///
/// Deviations from the brief above, to match kube-apiserver v1.33: the size
/// counts values only (see [`configmap_data_size`]), the duplicate is a
/// `FieldValueInvalid` `data[k]: Invalid value: "k": duplicate of key present
/// in binaryData`, and the size error is `[]: Too long: may not be more than
/// 1048576 bytes`.
pub fn validate_configmap(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !check_shape(obj, &mut errs) {
        return errs;
    }
    errs.extend(validate_names(obj, true));
    errs.extend(validate_metadata(obj));

    let data = object_field(Some(obj), "data", "data", &mut errs);
    let binary = object_field(Some(obj), "binaryData", "binaryData", &mut errs);
    for (k, v) in data.into_iter().flatten() {
        let path = format!("data[{k}]");
        errs.extend(
            config_key_errors(k)
                .iter()
                .map(|m| FieldError::invalid(path.as_str(), k, m)),
        );
        if binary.is_some_and(|b| b.contains_key(k)) {
            errs.push(FieldError::invalid(
                path.as_str(),
                k,
                "duplicate of key present in binaryData",
            ));
        }
        string_entry(v, || path.clone(), &mut errs);
    }
    for (k, v) in binary.into_iter().flatten() {
        let path = format!("binaryData[{k}]");
        errs.extend(
            config_key_errors(k)
                .iter()
                .map(|m| FieldError::invalid(path.as_str(), k, m)),
        );
        if let Some(s) = string_entry(v, || path.clone(), &mut errs)
            && let Err(at) = go_base64_decoded_len(s.as_bytes())
        {
            errs.push(FieldError::invalid(
                path.as_str(),
                s,
                &format!("illegal base64 data at input byte {at}"),
            ));
        }
    }
    if configmap_data_size(obj) > MAX_CONFIGMAP_BYTES {
        // Upstream: field.TooLong(field.NewPath(""), ...) - the whole object.
        errs.push(FieldError::too_long("", MAX_CONFIGMAP_BYTES));
    }
    errs
}

/// Compute the size that counts against MAX_CONFIGMAP_BYTES (same rule as above; invalid base64 counts its string length).
///
/// As in kube-apiserver's `ValidateConfigMap`, this is the sum of the value
/// lengths only: `data` values in bytes plus decoded `binaryData` bytes. Keys
/// are not counted. Non-string values count 0.
pub fn configmap_data_size(obj: &Value) -> usize {
    let mut total: usize = 0;
    if let Some(Value::Object(data)) = obj.get("data") {
        for v in data.values() {
            if let Value::String(s) = v {
                total = total.saturating_add(s.len());
            }
        }
    }
    if let Some(Value::Object(bin)) = obj.get("binaryData") {
        for v in bin.values() {
            if let Value::String(s) = v {
                let n = go_base64_decoded_len(s.as_bytes()).unwrap_or(s.len());
                total = total.saturating_add(n);
            }
        }
    }
    total
}

fn is_base64_symbol(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
}

/// Decoded length under Go's `base64.StdEncoding` (what `encoding/json` uses
/// for `[]byte`): padding required, CR/LF ignored, trailing bits tolerated.
/// `Err(offset)` mirrors Go's `CorruptInputError`.
fn go_base64_decoded_len(src: &[u8]) -> Result<usize, usize> {
    let len = src.len();
    let is_nl = |c: u8| c == b'\n' || c == b'\r';
    let mut si = 0usize;
    let mut total = 0usize;
    loop {
        let mut j = 0usize;
        let mut dlen = 4usize;
        while j < 4 {
            let Some(&c) = src.get(si) else {
                if j == 0 {
                    return Ok(total);
                }
                return Err(si.saturating_sub(j));
            };
            si += 1;
            if is_base64_symbol(c) {
                j += 1;
                continue;
            }
            if is_nl(c) {
                continue;
            }
            if c != b'=' || j < 2 {
                return Err(si - 1);
            }
            if j == 2 {
                // "==" expected; the first '=' is consumed.
                while src.get(si).is_some_and(|&c| is_nl(c)) {
                    si += 1;
                }
                match src.get(si) {
                    None => return Err(len),
                    Some(&b'=') => si += 1,
                    Some(_) => return Err(si - 1),
                }
            }
            while src.get(si).is_some_and(|&c| is_nl(c)) {
                si += 1;
            }
            if si < len {
                return Err(si); // trailing garbage after padding
            }
            dlen = j;
            break;
        }
        total = total.saturating_add(dlen - 1);
        if dlen < 4 {
            return Ok(total);
        }
    }
}

/// Validate a core/v1 Event body: involvedObject required (FieldValueRequired "involvedObject"... follow kube's ValidateEvent loosely: involvedObject.namespace must match metadata.namespace when both set, reason/message optional). Keep this small.
///
/// Mirrors kube v1.33 for core/v1 requests: `legacyValidateEvent` (which does
/// not require `involvedObject`; an absent one has an empty namespace), then,
/// only if that passed, the generic metadata pass (name required, path-segment
/// rules instead of DNS-1123, labels, annotations). The namespace rules are
/// skipped when `metadata.namespace` is absent or empty. With `eventTime` set,
/// `reportingComponent`, `reportingInstance`, `action` and `reason` are
/// required, as upstream.
pub fn validate_event(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !check_shape(obj, &mut errs) {
        return errs;
    }
    let ns = match obj.get("metadata").and_then(|m| m.get("namespace")) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    };
    let involved = object_field(Some(obj), "involvedObject", "involvedObject", &mut errs);
    let io_ns = match involved.and_then(|io| io.get("namespace")) {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            errs.push(FieldError::invalid_json(
                "involvedObject.namespace",
                other,
                "must be a string",
            ));
            ""
        }
    };
    let mismatch = || {
        FieldError::invalid(
            "involvedObject.namespace",
            io_ns,
            "does not match event.namespace",
        )
    };
    let new_style = !matches!(obj.get("eventTime"), None | Some(Value::Null))
        && obj.get("eventTime") != Some(&Value::String(String::new()));
    if !new_style {
        if let Some(ns) = ns {
            let ok = if io_ns.is_empty() {
                ns == "default"
            } else {
                ns == io_ns
            };
            if !ok {
                errs.push(mismatch());
            }
        }
    } else {
        if let Some(ns) = ns
            && io_ns.is_empty()
            && ns != "default"
            && ns != "kube-system"
        {
            errs.push(mismatch());
        }
        let mut text = |key: &str, required: bool, limit: usize| {
            let path = || key.to_string();
            let v = match obj.get(key) {
                // A non-string was already reported; don't also call it missing.
                Some(v) => string_entry(v, path, &mut errs).unwrap_or("x"),
                None => "",
            };
            if required && v.is_empty() {
                errs.push(FieldError::required(key, ""));
            }
            if v.len() > limit {
                let msg = format!("can have at most {limit} characters");
                errs.push(FieldError::invalid(key, "", &msg));
            }
            v.to_string()
        };
        let component = text("reportingComponent", true, usize::MAX);
        text("reportingInstance", true, EVENT_FIELD_LIMIT);
        text("action", true, EVENT_FIELD_LIMIT);
        text("reason", true, EVENT_FIELD_LIMIT);
        text("message", false, EVENT_NOTE_LIMIT);
        errs.extend(
            qualified_name_errors(&component)
                .iter()
                .map(|m| FieldError::invalid("reportingComponent", &component, m)),
        );
    }
    if let Some(ns) = ns {
        errs.extend(
            dns1123_subdomain(ns)
                .iter()
                .map(|m| FieldError::invalid("namespace", ns, m)),
        );
    }
    if errs.is_empty() {
        errs.extend(validate_names(obj, false));
        errs.extend(validate_metadata(obj));
    }
    errs
}

/// Render the full 422 message kube-apiserver uses: `<Kind> "<name>" is invalid: <e1>, <e2>` — check how apimachinery's NewInvalid joins multiple errors (it uses "[e1, e2]" for several; a single error is not bracketed) and match it.
///
/// Like `ErrorList.ToAggregate`, identical renderings are listed once; an
/// empty list renders Go's `<nil>`.
pub fn invalid_message(kind: &str, name: &str, errors: &[FieldError]) -> String {
    let mut msgs: Vec<String> = Vec::new();
    for e in errors {
        let m = e.render();
        if !msgs.contains(&m) {
            msgs.push(m);
        }
    }
    let agg = match msgs.as_slice() {
        [] => "<nil>".to_string(),
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    format!("{kind} {} is invalid: {agg}", go_quote(name))
}

/// Bad-value rendering of `field.Error.ErrorBody`: strings with `%q`,
/// scalars with `%v`, everything else as compact JSON.
fn render_json(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => serde_json::to_string(other).unwrap_or_else(|_| "<unrenderable>".to_string()),
    }
}

/// Go's `strconv.Quote` (`%q`). Printability approximates `unicode.IsPrint`:
/// controls, non-ASCII spaces, common format characters and private-use
/// characters are escaped.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if go_is_print(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn go_is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    let format_or_private = matches!(
        u,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0xE000..=0xF8FF
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0xFFFE
            | 0xFFFF
            | 0xE0001
            | 0xE0020..=0xE007F
            | 0xF0000..
    );
    !format_or_private
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DNS_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    const KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
    const QNAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

    fn key_msg() -> String {
        KEY_MSG.to_string()
    }

    fn rendered(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(FieldError::render).collect()
    }

    fn cm(data: Value) -> Value {
        json!({"metadata": {"name": "cm"}, "data": data})
    }

    #[test]
    fn regex_error_matches_go_concatenation() {
        // Go appends " or " after the previous "'x', ", hence two spaces.
        assert_eq!(
            regex_error("m", "f", &["a", "b"]),
            "m (e.g. 'a',  or 'b', regex used for validation is 'f')"
        );
        assert_eq!(
            regex_error("m", "f", &[]),
            "m (regex used for validation is 'f')"
        );
    }

    #[test]
    fn valid_names() {
        for n in [
            "a",
            "my-config",
            "a.b.c",
            "0abc",
            "x1-2.y3",
            &"a".repeat(253),
        ] {
            assert!(validate_object_name(n).is_empty(), "{n}");
            assert!(dns1123_subdomain(n).is_empty(), "{n}");
        }
    }

    #[test]
    fn invalid_names() {
        for n in [
            "Bad",
            "under_score",
            "-lead",
            "trail-",
            ".",
            "..",
            ".a",
            "a.",
            "a..b",
            "a/b",
            "a%b",
            "café",
            "a b",
        ] {
            let errs = validate_object_name(n);
            assert_eq!(errs.len(), 1, "{n}: {errs:?}");
            assert_eq!(errs[0].field, "metadata.name");
            assert_eq!(errs[0].reason, "FieldValueInvalid");
            assert!(errs[0].detail.ends_with(DNS_MSG), "{n}");
        }
        let long = "a".repeat(254);
        assert_eq!(
            dns1123_subdomain(&long),
            vec!["must be no more than 253 characters".to_string()]
        );
        let long_bad = "A".repeat(254);
        assert_eq!(dns1123_subdomain(&long_bad).len(), 2);
    }

    #[test]
    fn empty_name_is_required() {
        let errs = validate_object_name("");
        assert_eq!(
            rendered(&errs),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
        assert_eq!(errs[0].reason, "FieldValueRequired");
        let errs = validate_configmap(&json!({"data": {}}));
        assert_eq!(
            rendered(&errs),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
    }

    #[test]
    fn name_error_rendering() {
        let errs = validate_object_name("Bad_Name");
        assert_eq!(
            errs[0].render(),
            format!("metadata.name: Invalid value: \"Bad_Name\": {DNS_MSG}")
        );
        assert_eq!(
            invalid_message("ConfigMap", "Bad_Name", &errs),
            format!(
                "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": {DNS_MSG}"
            )
        );
    }

    #[test]
    fn path_segment_rules() {
        assert_eq!(
            path_segment_errors("a/b%c", false),
            vec!["may not contain '/'", "may not contain '%'"]
        );
        assert_eq!(path_segment_errors("..", false), vec!["may not be '..'"]);
        assert!(path_segment_errors("..", true).is_empty());
    }

    #[test]
    fn generate_name() {
        let ok = json!({"metadata": {"name": "foo-abcde", "generateName": "foo-"}});
        assert!(validate_configmap(&ok).is_empty());
        let bad = json!({"metadata": {"name": "foo-abcde", "generateName": "Foo-"}});
        let errs = validate_configmap(&bad);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].render(),
            format!("metadata.generateName: Invalid value: \"Foo-\": {DNS_MSG}")
        );
        // Multi-byte char before the dash: must not panic.
        let odd = json!({"metadata": {"name": "x", "generateName": "é-"}});
        assert_eq!(validate_configmap(&odd).len(), 1);
    }

    #[test]
    fn config_keys() {
        for k in [
            "key.name",
            "KEY_NAME",
            "key-name",
            ".x",
            "a..b",
            "x..",
            &"k".repeat(253),
        ] {
            assert!(config_key_errors(k).is_empty(), "{k}");
        }
        assert_eq!(config_key_errors("a b"), vec![key_msg()]);
        assert_eq!(config_key_errors("a/b"), vec![key_msg()]);
        assert_eq!(config_key_errors(""), vec![key_msg()]);
        assert_eq!(config_key_errors("é"), vec![key_msg()]);
        assert_eq!(config_key_errors("."), vec!["must not be '.'"]);
        assert_eq!(config_key_errors(".."), vec!["must not be '..'"]);
        assert_eq!(config_key_errors("..x"), vec!["must not start with '..'"]);
        assert_eq!(
            config_key_errors(&"k".repeat(254)),
            vec!["must be no more than 253 characters"]
        );
    }

    #[test]
    fn key_error_rendering() {
        let errs = validate_configmap(&cm(json!({"bad key": "v"})));
        assert_eq!(
            rendered(&errs),
            vec![format!(
                "data[bad key]: Invalid value: \"bad key\": {}",
                key_msg()
            )]
        );
        let errs =
            validate_configmap(&json!({"metadata": {"name": "cm"}, "binaryData": {"..x": ""}}));
        assert_eq!(
            rendered(&errs),
            vec!["binaryData[..x]: Invalid value: \"..x\": must not start with '..'"]
        );
    }

    #[test]
    fn duplicate_key() {
        let obj =
            json!({"metadata": {"name": "cm"}, "data": {"k": "v"}, "binaryData": {"k": "AAAA"}});
        let errs = validate_configmap(&obj);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].reason, "FieldValueInvalid");
        assert_eq!(
            errs[0].render(),
            "data[k]: Invalid value: \"k\": duplicate of key present in binaryData"
        );
    }

    #[test]
    fn size_limit_counts_values() {
        let at = cm(json!({"k": "a".repeat(MAX_CONFIGMAP_BYTES)}));
        assert_eq!(configmap_data_size(&at), MAX_CONFIGMAP_BYTES);
        assert!(validate_configmap(&at).is_empty());

        let split = cm(
            json!({"a": "x".repeat(MAX_CONFIGMAP_BYTES / 2), "b": "y".repeat(MAX_CONFIGMAP_BYTES / 2 + 1)}),
        );
        let errs = validate_configmap(&split);
        assert_eq!(errs.len(), 1);
        let e = &errs[0];
        assert_eq!(e.field, "");
        assert_eq!(e.reason, "FieldValueTooLong");
        assert_eq!(e.detail, "Too long: may not be more than 1048576 bytes");
        assert_eq!(
            e.render(),
            "[]: Too long: may not be more than 1048576 bytes"
        );
        assert_eq!(
            invalid_message("ConfigMap", "big", &errs),
            "ConfigMap \"big\" is invalid: []: Too long: may not be more than 1048576 bytes"
        );
    }

    #[test]
    fn binary_size_counted_decoded() {
        // "AAAA" decodes to 3 bytes; 349525 * 3 + 1 == 1048576.
        let quads = "AAAA".repeat(349_525);
        let at = json!({"metadata": {"name": "b"}, "binaryData": {"b": format!("{quads}AA==")}});
        assert_eq!(configmap_data_size(&at), MAX_CONFIGMAP_BYTES);
        assert!(validate_configmap(&at).is_empty());
        let over = json!({"metadata": {"name": "b"}, "binaryData": {"b": format!("{quads}AAA=")}});
        assert_eq!(configmap_data_size(&over), MAX_CONFIGMAP_BYTES + 1);
        let errs = validate_configmap(&over);
        assert_eq!(
            rendered(&errs),
            vec!["[]: Too long: may not be more than 1048576 bytes"]
        );
    }

    #[test]
    fn base64_like_go() {
        assert_eq!(go_base64_decoded_len(b""), Ok(0));
        assert_eq!(go_base64_decoded_len(b"aGVsbG8="), Ok(5));
        assert_eq!(go_base64_decoded_len(b"aGVs\r\nbG8="), Ok(5));
        assert_eq!(go_base64_decoded_len(b"aGk="), Ok(2));
        assert_eq!(go_base64_decoded_len(b"aQ=="), Ok(1));
        assert_eq!(go_base64_decoded_len(b"aR=="), Ok(1)); // trailing bits ok
        assert_eq!(go_base64_decoded_len(b"aGk"), Err(0)); // missing padding
        assert_eq!(go_base64_decoded_len(b"not base64!"), Err(3));
        assert_eq!(go_base64_decoded_len(b"aQ=="), Ok(1));
        assert_eq!(go_base64_decoded_len(b"aQ=x"), Err(2));
        assert_eq!(go_base64_decoded_len(b"aQ="), Err(3));
        assert_eq!(go_base64_decoded_len(b"aGk=aGk="), Err(4));
        assert_eq!(go_base64_decoded_len(b"=AAA"), Err(0));
    }

    #[test]
    fn invalid_base64_reported_and_sized_by_length() {
        let obj = json!({"metadata": {"name": "b"}, "binaryData": {"b": "not base64!"}});
        assert_eq!(configmap_data_size(&obj), 11);
        assert_eq!(
            rendered(&validate_configmap(&obj)),
            vec![
                "binaryData[b]: Invalid value: \"not base64!\": illegal base64 data at input byte 3"
            ]
        );
    }

    #[test]
    fn non_string_values() {
        let obj = json!({
            "metadata": {"name": "cm", "labels": {"app": 1}, "annotations": {"note": {"x": 1}}},
            "data": {"a": 5, "n": null},
            "binaryData": {"b": true},
        });
        let r = rendered(&validate_configmap(&obj));
        assert_eq!(r.len(), 4, "{r:?}");
        for want in [
            "metadata.labels[app]: Invalid value: 1: must be a string",
            "metadata.annotations[note]: Invalid value: {\"x\":1}: must be a string",
            "data[a]: Invalid value: 5: must be a string",
            "binaryData[b]: Invalid value: true: must be a string",
        ] {
            assert!(r.iter().any(|x| x == want), "missing {want}: {r:?}");
        }
        let obj = json!({"metadata": {"name": "cm"}, "data": [1, 2], "binaryData": "x"});
        assert_eq!(
            rendered(&validate_configmap(&obj)),
            vec![
                "data: Invalid value: [1,2]: must be an object",
                "binaryData: Invalid value: \"x\": must be an object"
            ]
        );
    }

    #[test]
    fn label_rules() {
        let check = |labels: Value| validate_metadata(&json!({"metadata": {"labels": labels}}));
        assert!(
            check(json!({"app": "web", "example.com/app": "", "a.b_c-d": "My_Value.1"})).is_empty()
        );
        assert!(check(json!({"k": "v".repeat(63), &"n".repeat(63): "x"})).is_empty());

        let errs = check(json!({"-app": "x"}));
        assert_eq!(
            rendered(&errs),
            vec![format!(
                "metadata.labels: Invalid value: \"-app\": name part {QNAME_MSG}"
            )]
        );
        assert_eq!(check(json!({"Example.com/app": "x"})).len(), 1);
        assert!(
            check(json!({"Example.com/app": "x"}))[0]
                .detail
                .contains("prefix part a lowercase RFC 1123 subdomain")
        );
        assert!(
            check(json!({"/app": "x"}))[0]
                .detail
                .ends_with("prefix part must be non-empty")
        );
        assert_eq!(check(json!({"a/": "x"})).len(), 2); // empty name + regex
        assert!(
            check(json!({"a/b/c": "x"}))[0]
                .detail
                .contains("a qualified name must consist of")
        );
        assert!(
            check(json!({&"n".repeat(64): "x"}))[0]
                .detail
                .ends_with("name part must be no more than 63 characters")
        );

        let errs = check(json!({"k": "v".repeat(64)}));
        assert_eq!(
            rendered(&errs),
            vec![format!(
                "metadata.labels: Invalid value: \"{}\": must be no more than 63 characters",
                "v".repeat(64)
            )]
        );
        let errs = check(json!({"k": "bad value"}));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].detail.starts_with(
            "Invalid value: \"bad value\": a valid label must be an empty string or consist of"
        ));
        assert_eq!(check(json!({"k": "-x"})).len(), 1);
        assert_eq!(check(json!(5)).len(), 1);
        assert!(validate_metadata(&json!({"metadata": 5})).is_empty());
        assert_eq!(
            rendered(&check(json!(["a"]))),
            vec!["metadata.labels: Invalid value: [\"a\"]: must be an object"]
        );
    }

    #[test]
    fn annotation_rules() {
        let ann = |a: Value| validate_metadata(&json!({"metadata": {"annotations": a}}));
        assert!(ann(json!({"Foo.Example.com/Bar": "anything goes \u{1F600}"})).is_empty());
        assert_eq!(ann(json!({"bad key": "x"})).len(), 1);
        assert_eq!(
            ann(json!({"bad key": "x"}))[0].field,
            "metadata.annotations"
        );

        let limit = TOTAL_ANNOTATION_SIZE_LIMIT;
        assert!(ann(json!({"a": "x".repeat(limit - 1)})).is_empty());
        let errs = ann(json!({"a": "x".repeat(limit)}));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].reason, "FieldValueTooLong");
        assert_eq!(
            errs[0].render(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
    }

    #[test]
    fn invalid_message_joining() {
        let a = FieldError::required("metadata.name", NAME_REQUIRED);
        let b = FieldError::too_long("", MAX_CONFIGMAP_BYTES);
        assert_eq!(
            invalid_message("ConfigMap", "x", std::slice::from_ref(&a)),
            "ConfigMap \"x\" is invalid: metadata.name: Required value: name or generateName is required"
        );
        assert_eq!(
            invalid_message("ConfigMap", "x", &[a.clone(), b.clone()]),
            "ConfigMap \"x\" is invalid: [metadata.name: Required value: name or generateName is required, []: Too long: may not be more than 1048576 bytes]"
        );
        // Duplicates collapse; one distinct message is not bracketed.
        assert_eq!(
            invalid_message("ConfigMap", "x", &[b.clone(), b.clone()]),
            "ConfigMap \"x\" is invalid: []: Too long: may not be more than 1048576 bytes"
        );
        assert_eq!(
            invalid_message("Event", "q\"\n", &[]),
            "Event \"q\\\"\\n\" is invalid: <nil>"
        );
    }

    #[test]
    fn go_quote_escapes() {
        assert_eq!(go_quote("plain"), "\"plain\"");
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(go_quote("\t\n\u{1}\u{7f}"), "\"\\t\\n\\x01\\x7f\"");
        assert_eq!(go_quote("é😀"), "\"é😀\"");
        assert_eq!(
            go_quote("\u{a0}\u{200b}\u{85}"),
            "\"\\u00a0\\u200b\\u0085\""
        );
        assert_eq!(go_quote("\u{F0001}"), "\"\\U000f0001\"");
    }

    #[test]
    fn event_rules() {
        let ev = |v: Value| rendered(&validate_event(&v));
        let ok = json!({"metadata": {"name": "pod.17a", "namespace": "ns"}, "involvedObject": {"kind": "Pod", "namespace": "ns"}});
        assert!(ev(ok).is_empty());
        // Non-DNS names are fine for events (path-segment rules only).
        assert!(ev(json!({"metadata": {"name": "My_Event", "namespace": "default"}})).is_empty());
        assert_eq!(
            ev(json!({"metadata": {"name": "a/b", "namespace": "default"}})),
            vec!["metadata.name: Invalid value: \"a/b\": may not contain '/'"]
        );
        assert_eq!(
            ev(
                json!({"metadata": {"name": "e", "namespace": "ns"}, "involvedObject": {"namespace": "other"}})
            ),
            vec![
                "involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"
            ]
        );
        // Empty involvedObject namespace only allowed in "default".
        assert_eq!(
            ev(json!({"metadata": {"name": "e", "namespace": "ns"}})),
            vec!["involvedObject.namespace: Invalid value: \"\": does not match event.namespace"]
        );
        // Event errors short-circuit the metadata pass (as in BeforeCreate).
        assert_eq!(
            ev(json!({"metadata": {"namespace": "ns"}, "involvedObject": {"namespace": "x"}}))
                .len(),
            1
        );
        assert_eq!(
            ev(json!({"metadata": {"namespace": "default"}})),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
        assert_eq!(
            ev(json!({"metadata": {"name": "e"}, "involvedObject": 3})),
            vec!["involvedObject: Invalid value: 3: must be an object"]
        );
    }

    #[test]
    fn new_style_event_requires_reporting_fields() {
        let r = rendered(&validate_event(&json!({
            "metadata": {"name": "e", "namespace": "ns"},
            "involvedObject": {"namespace": "ns"},
            "eventTime": "2024-01-01T00:00:00.000000Z",
        })));
        assert_eq!(
            r,
            vec![
                "reportingComponent: Required value",
                "reportingInstance: Required value",
                "action: Required value",
                "reason: Required value",
                "reportingComponent: Invalid value: \"\": name part must be non-empty",
                format!("reportingComponent: Invalid value: \"\": name part {QNAME_MSG}").as_str(),
            ]
        );
        let ok = json!({
            "metadata": {"name": "e", "namespace": "ns"},
            "involvedObject": {"namespace": "ns"},
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "reportingComponent": "kubelet", "reportingInstance": "node-1",
            "action": "Pulled", "reason": "Pulled", "message": "m".repeat(1024),
        });
        assert!(validate_event(&ok).is_empty());
    }

    #[test]
    fn no_panic_on_odd_json() {
        let long = "é".repeat(300_000);
        let inputs = vec![
            json!(null),
            json!(5),
            json!("str"),
            json!([1, {"a": 2}]),
            json!({"metadata": 7}),
            json!({"metadata": {"name": 1, "generateName": [], "labels": 2, "annotations": "x", "namespace": 9}}),
            json!({"metadata": {"name": "😀", "generateName": "😀-", "labels": {"😀": "😀", "é/é": null}, "annotations": {"😀/😀": 1.5, &long: &long}}}),
            json!({"metadata": {"name": &long}, "data": {"😀": "😀", "": "", &long: null}, "binaryData": {"😀": "😀", "x": "=", "y": "A", "z": "AA=\n="}}),
            json!({"metadata": {"name": "-"}, "data": {"-": {"deep": [1, 2, 3]}}, "binaryData": [null]}),
            json!({"metadata": {"name": "e", "namespace": "😀"}, "involvedObject": {"namespace": 1}, "eventTime": 5, "reportingComponent": [], "action": long.clone(), "reason": 1, "message": {}}),
            json!({"eventTime": "", "involvedObject": null}),
        ];
        for v in &inputs {
            let _ = validate_metadata(v);
            let _ = configmap_data_size(v);
            let cm = validate_configmap(v);
            let ev = validate_event(v);
            let _ = invalid_message("ConfigMap", "😀", &cm);
            let _ = invalid_message("Event", "", &ev);
            if !v.is_object() {
                assert_eq!(cm.len(), 1);
                assert_eq!(ev.len(), 1);
                assert_eq!(cm[0].field, "");
            }
        }
        let odd = validate_configmap(&inputs[7]);
        assert!(odd.iter().any(|e| e.field == "data[😀]"));
        assert!(odd.iter().any(|e| e.field == "binaryData[x]"
            && e.detail.ends_with("illegal base64 data at input byte 0")));
        assert!(validate_object_name(&long).len() == 2);
    }
}
