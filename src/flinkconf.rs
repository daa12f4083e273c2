//! Reading Flink's own configuration file (`--flink-conf PATH`), so that the settings hakeeper
//! shares with Flink come from the file Flink itself reads instead of being repeated by hand.
//!
//! # Two formats, one reader
//!
//! Flink up to 1.18 reads `flink-conf.yaml` line by line: everything from the first `#` is a
//! comment, the rest is split at its first `": "`, key and value are trimmed and taken verbatim,
//! and a line that does not fit is skipped with a warning. Flink 1.19 added `config.yaml`, which
//! is standard YAML flattened into keys: nested mapping keys are joined with `.`, and a key may
//! itself contain dots, so `kubernetes.leader-election.lease-duration` under `high-availability`
//! is `high-availability.kubernetes.leader-election.lease-duration`.
//!
//! A flat `key: value` line is also YAML (a mapping whose keys contain dots), so one reader serves
//! both. It understands a small, bounded subset of YAML: block mappings by indentation, plain,
//! single- and double-quoted scalars (folded over several lines as YAML does), and comments. Block
//! and flow sequences, flow mappings, block scalars (`|`, `>`), anchors, aliases and tags are
//! recognised well enough to step over them under keys hakeeper does not use; under a key it
//! uses they are an error. Tabs may separate tokens within a line but never indent one.
//!
//! A line at the top level that this subset cannot read, but that Flink's legacy reader accepts,
//! is read the legacy way, with a warning: `key: a: b` gives `a: b`, and
//! `web.access-control-allow-origin: *` gives `*`. Where a line means different things to the two
//! readers, YAML wins: quotes around a value are removed (the legacy reader keeps them), and a
//! `#` that does not follow whitespace belongs to the value (the legacy reader cuts the value
//! there; a warning names the key when that happens to a value hakeeper uses).
//!
//! # Values
//!
//! Values are converted the way Flink converts them: durations as Flink's
//! `TimeUtils.parseDuration` reads them, where a bare number is **milliseconds** (unlike
//! [`crate::duration::parse_duration`], which reads it as seconds) and the units are `d`, `h`,
//! `min`, `s`, `ms`, `µs` and `ns` with their long forms; booleans are `true` or `false` in any
//! letter case; counts are decimal integers. An empty value (`key:` with nothing after it, `~` or
//! `null`) leaves the setting unset. A key given twice: the later one wins, as in Flink's legacy
//! reader. A current key wins over its deprecated and alias forms whatever their order.
//!
//! # Keys
//!
//! | field | keys, in order of precedence |
//! | --- | --- |
//! | `cluster_id` | `kubernetes.cluster-id`, else derived from `ha_cluster_id` (see below) |
//! | `ha_cluster_id` | `high-availability.cluster-id`, `high-availability.zookeeper.path.namespace`, `recovery.zookeeper.path.namespace` |
//! | `namespace` | `kubernetes.namespace` |
//! | `storage_dir` | `high-availability.storageDir`, `high-availability.zookeeper.storageDir`, `recovery.zookeeper.storageDir` |
//! | `lease_duration`, `renew_deadline`, `retry_period` | `high-availability.kubernetes.leader-election.{lease-duration,renew-deadline,retry-period}` |
//! | `checkpoints_retained` | `execution.checkpointing.num-retained` (Flink 1.20+), `state.checkpoints.num-retained` |
//! | `s3_*` | `s3.`, `s3a.`, `fs.s3a.` and `presto.s3.` forms of `endpoint`, `path.style.access`/`path-style-access`, `access-key`/`access.key`, `secret-key`/`secret.key` |
//!
//! The fallbacks are Flink's own: `withDeprecatedKeys` of `HighAvailabilityOptions` and
//! `CheckpointingOptions`, and the prefixes and mirrored keys of the Hadoop (`s3.`, `s3a.`,
//! `fs.s3a.`) and Presto (`s3.`, `presto.s3.`) S3 file system plugins. Flink's Kubernetes HA
//! services name their ConfigMaps after `kubernetes.cluster-id`, while the HA storage sub-path is
//! `high-availability.cluster-id` (the Flink Kubernetes operator sets both to the same id). hakeeper
//! uses one id for both, so `cluster_id` prefers `kubernetes.cluster-id` and falls back to the HA
//! id (without a leading `/`, which Flink drops when it appends the id to the storage path); both
//! raw values stay available, and a warning is logged when they disagree.
//!
//! The S3 secret key is never shown: `Debug` prints `<redacted>` and error messages leave it out.
//! Log lines name line numbers and keys from the table above (never a key merely found in the
//! file, which a malformed line can splice with part of a value), and carry no value except the
//! two cluster ids when they disagree.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The most [`FlinkConf::load`] reads; a larger file is refused.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// How deep mappings may nest (Flink's own keys need fewer than ten levels).
const MAX_NESTING: usize = 64;

/// The settings hakeeper takes from Flink's configuration file; `None` where the file is silent.
#[derive(Clone, Default, PartialEq)]
pub struct FlinkConf {
    /// The id for ConfigMap names and the storage sub-path: `kubernetes.cluster-id`, else the
    /// HA cluster id without a leading `/`.
    pub cluster_id: Option<String>,
    /// `high-availability.cluster-id` (or a deprecated form) as written.
    pub ha_cluster_id: Option<String>,
    /// `kubernetes.namespace`.
    pub namespace: Option<String>,
    /// `high-availability.storageDir` (or a deprecated form).
    pub storage_dir: Option<String>,
    /// `high-availability.kubernetes.leader-election.lease-duration`.
    pub lease_duration: Option<Duration>,
    /// `high-availability.kubernetes.leader-election.renew-deadline`.
    pub renew_deadline: Option<Duration>,
    /// `high-availability.kubernetes.leader-election.retry-period`.
    pub retry_period: Option<Duration>,
    /// `execution.checkpointing.num-retained` / `state.checkpoints.num-retained`, at least 1.
    pub checkpoints_retained: Option<u32>,
    /// `s3.endpoint` and its aliases.
    pub s3_endpoint: Option<String>,
    /// `s3.path.style.access` and its aliases.
    pub s3_path_style: Option<bool>,
    /// `s3.access-key` and its aliases.
    pub s3_access_key: Option<String>,
    /// `s3.secret-key` and its aliases; never printed.
    pub s3_secret_key: Option<String>,
}

impl fmt::Debug for FlinkConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlinkConf")
            .field("cluster_id", &self.cluster_id)
            .field("ha_cluster_id", &self.ha_cluster_id)
            .field("namespace", &self.namespace)
            .field("storage_dir", &self.storage_dir)
            .field("lease_duration", &self.lease_duration)
            .field("renew_deadline", &self.renew_deadline)
            .field("retry_period", &self.retry_period)
            .field("checkpoints_retained", &self.checkpoints_retained)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_path_style", &self.s3_path_style)
            .field("s3_access_key", &self.s3_access_key)
            .field(
                "s3_secret_key",
                &self.s3_secret_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Why Flink's configuration could not be read. Messages never contain a secret value.
#[derive(Debug, thiserror::Error)]
pub enum FlinkConfError {
    /// The file could not be opened or read.
    #[error("cannot read Flink configuration {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("Flink configuration {} is larger than {limit} bytes; refusing to read it", path.display())]
    TooLarge { path: PathBuf, limit: usize },
    /// The file is not UTF-8 text.
    #[error("Flink configuration {} is not UTF-8 text (line {line})", path.display())]
    NotUtf8 { path: PathBuf, line: usize },
    /// The document's structure cannot be understood.
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    /// A key hakeeper uses has a value it cannot accept.
    #[error("line {line}: invalid value for {key}: found {found}, expected {expected}")]
    InvalidValue {
        line: usize,
        /// The key as written in the file (nested keys joined with `.`).
        key: String,
        /// The value as found, quoted; a description instead for secrets and non-scalars.
        found: String,
        expected: &'static str,
    },
    /// A problem in a file read by [`FlinkConf::load`].
    #[error("{}: {error}", path.display())]
    InFile {
        path: PathBuf,
        error: Box<FlinkConfError>,
    },
}

impl FlinkConf {
    /// Read the settings from the text of `flink-conf.yaml` or `config.yaml`, whichever it is.
    pub fn parse(text: &str) -> Result<FlinkConf, FlinkConfError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // YAML and Java's line reader both take `\r\n`, `\n` and a lone `\r` as line ends.
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let mut reader = Reader::new(&text);
        reader.read()?;
        resolve(reader.entries, reader.nested)
    }

    /// Read and parse the file at `path` (at most [`MAX_FILE_BYTES`]); errors name the path.
    pub fn load(path: &Path) -> Result<FlinkConf, FlinkConfError> {
        let read_error = |source| FlinkConfError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() > MAX_FILE_BYTES {
            return Err(FlinkConfError::TooLarge {
                path: path.to_path_buf(),
                limit: MAX_FILE_BYTES,
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            FlinkConfError::NotUtf8 {
                path: path.to_path_buf(),
                line: 1 + valid.iter().filter(|&&b| b == b'\n').count(),
            }
        })?;
        FlinkConf::parse(&text).map_err(|error| FlinkConfError::InFile {
            path: path.to_path_buf(),
            error: Box::new(error),
        })
    }
}

// ------------------------------------------------------------------------------------------------
// The keys hakeeper takes

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Field {
    ClusterId,
    HaClusterId,
    Namespace,
    StorageDir,
    LeaseDuration,
    RenewDeadline,
    RetryPeriod,
    CheckpointsRetained,
    S3Endpoint,
    S3PathStyle,
    S3AccessKey,
    S3SecretKey,
}

/// Each field's keys, the preferred one first.
const KEYS: &[(Field, &[&str])] = &[
    (Field::ClusterId, &["kubernetes.cluster-id"]),
    (
        Field::HaClusterId,
        &[
            "high-availability.cluster-id",
            "high-availability.zookeeper.path.namespace",
            "recovery.zookeeper.path.namespace",
        ],
    ),
    (Field::Namespace, &["kubernetes.namespace"]),
    (
        Field::StorageDir,
        &[
            "high-availability.storageDir",
            "high-availability.zookeeper.storageDir",
            "recovery.zookeeper.storageDir",
        ],
    ),
    (
        Field::LeaseDuration,
        &["high-availability.kubernetes.leader-election.lease-duration"],
    ),
    (
        Field::RenewDeadline,
        &["high-availability.kubernetes.leader-election.renew-deadline"],
    ),
    (
        Field::RetryPeriod,
        &["high-availability.kubernetes.leader-election.retry-period"],
    ),
    (
        Field::CheckpointsRetained,
        &[
            "execution.checkpointing.num-retained",
            "state.checkpoints.num-retained",
        ],
    ),
    (
        Field::S3Endpoint,
        &[
            "s3.endpoint",
            "s3a.endpoint",
            "fs.s3a.endpoint",
            "presto.s3.endpoint",
        ],
    ),
    (
        Field::S3PathStyle,
        &[
            "s3.path.style.access",
            "s3.path-style-access",
            "s3a.path.style.access",
            "s3a.path-style-access",
            "fs.s3a.path.style.access",
            "fs.s3a.path-style-access",
            "presto.s3.path-style-access",
            "presto.s3.path.style.access",
        ],
    ),
    (
        Field::S3AccessKey,
        &[
            "s3.access-key",
            "s3.access.key",
            "s3a.access-key",
            "s3a.access.key",
            "fs.s3a.access-key",
            "fs.s3a.access.key",
            "presto.s3.access-key",
            "presto.s3.access.key",
        ],
    ),
    (
        Field::S3SecretKey,
        &[
            "s3.secret-key",
            "s3.secret.key",
            "s3a.secret-key",
            "s3a.secret.key",
            "fs.s3a.secret-key",
            "fs.s3a.secret.key",
            "presto.s3.secret-key",
            "presto.s3.secret.key",
        ],
    ),
];

/// The field a key sets and its rank among that field's keys (0 = preferred).
fn lookup(key: &str) -> Option<(Field, usize)> {
    KEYS.iter().find_map(|(field, keys)| {
        keys.iter()
            .position(|k| *k == key)
            .map(|rank| (*field, rank))
    })
}

/// Whether some key hakeeper uses lies below `key` (`kubernetes` for `kubernetes.cluster-id`).
fn is_known_prefix(key: &str) -> bool {
    KEYS.iter().flat_map(|(_, keys)| keys.iter()).any(|k| {
        k.strip_prefix(key)
            .is_some_and(|rest| rest.starts_with('.'))
    })
}

// ------------------------------------------------------------------------------------------------
// Values as read, before conversion

/// What a YAML value turned out to be.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Scalar(String),
    /// Nothing, `~` or `null`: the key is left unset.
    Null,
    /// A YAML construct hakeeper does not take as a setting.
    Other(Construct),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Construct {
    List,
    FlowList,
    FlowMap,
    BlockScalar,
    /// An anchor, alias or tag.
    Property,
}

impl Construct {
    fn describe(self) -> &'static str {
        match self {
            Construct::List => "a YAML list",
            Construct::FlowList => "a YAML flow list (`[...]`)",
            Construct::FlowMap => "a YAML flow mapping (`{...}`)",
            Construct::BlockScalar => "a YAML block scalar (`|` or `>`)",
            Construct::Property => "a YAML anchor, alias or tag (not supported)",
        }
    }

    /// Whether Flink could find keys inside it (it flattens flow mappings too).
    fn may_hold_keys(self) -> bool {
        matches!(self, Construct::FlowMap | Construct::Property)
    }
}

/// One occurrence of a key hakeeper uses.
#[derive(Debug)]
struct Entry {
    field: Field,
    rank: usize,
    key: String,
    line: usize,
    value: Value,
}

// ------------------------------------------------------------------------------------------------
// The reader

fn is_blank_char(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Java's `String.trim()`: strips every character up to U+0020.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

struct Line<'a> {
    no: usize,
    raw: &'a str,
    /// Leading spaces.
    indent: usize,
    /// The line after its leading spaces.
    body: &'a str,
}

impl<'a> Line<'a> {
    fn new(no: usize, raw: &'a str) -> Self {
        let body = raw.trim_start_matches(' ');
        Line {
            no,
            raw,
            indent: raw.len() - body.len(),
            body,
        }
    }

    fn is_blank(&self) -> bool {
        self.body.trim_matches(is_blank_char).is_empty()
    }

    fn is_comment(&self) -> bool {
        self.body.trim_start_matches(is_blank_char).starts_with('#')
    }

    /// Blank or comment only.
    fn is_skippable(&self) -> bool {
        self.is_blank() || self.is_comment()
    }

    fn is_list_item(&self) -> bool {
        self.body == "-" || self.body.starts_with("- ") || self.body.starts_with("-\t")
    }

    fn is_marker(&self, marker: &str) -> bool {
        self.indent == 0
            && self.body.strip_prefix(marker).is_some_and(|rest| {
                let after = rest.trim_start_matches(is_blank_char);
                rest.is_empty()
                    || (rest.starts_with(is_blank_char)
                        && (after.is_empty() || after.starts_with('#')))
            })
    }
}

/// An open block mapping: its indentation and the joined keys above it (with a trailing `.`).
struct Frame {
    indent: usize,
    prefix: String,
}

struct Reader<'a> {
    lines: Vec<Line<'a>>,
    entries: Vec<Entry>,
    /// Whether any nested mapping was seen (the document is `config.yaml`-style).
    nested: bool,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader {
            lines: text
                .split('\n')
                .enumerate()
                .map(|(i, raw)| Line::new(i + 1, raw))
                .collect(),
            entries: Vec::new(),
            nested: false,
        }
    }

    fn read(&mut self) -> Result<(), FlinkConfError> {
        // The top-level mapping's indentation, once its first line is seen, and the nested
        // mappings open below it.
        let mut root: Option<usize> = None;
        let mut stack: Vec<Frame> = Vec::new();
        let mut i = 0;
        while i < self.lines.len() {
            let line = &self.lines[i];
            let no = line.no;
            if line.is_skippable() {
                i += 1;
                continue;
            }
            if line.body.starts_with('\t') {
                return Err(syntax(
                    no,
                    "a tab indents this line; YAML indents with spaces only",
                ));
            }
            if line.is_marker("---") {
                if root.is_some() {
                    return Err(syntax(
                        no,
                        "a second YAML document (`---`); Flink reads a single document",
                    ));
                }
                i += 1;
                continue;
            }
            if line.is_marker("...")
                || (root.is_none() && line.indent == 0 && line.body.starts_with('%'))
            {
                i += 1;
                continue;
            }
            if root.is_none() && line.body.starts_with(['{', '[']) {
                return Err(syntax(
                    no,
                    "a flow-style (JSON-like) document is not supported; write the configuration as `key: value` lines or block mappings",
                ));
            }
            let root_indent = *root.get_or_insert(line.indent);
            while stack.last().is_some_and(|f| f.indent > line.indent) {
                stack.pop();
            }
            let (indent, prefix) = stack
                .last()
                .map_or((root_indent, ""), |f| (f.indent, f.prefix.as_str()));
            if indent != line.indent {
                return Err(syntax(
                    no,
                    "the indentation of this line matches no enclosing mapping",
                ));
            }
            let top_level = stack.is_empty() && line.indent == 0;
            let (key, after) = match split_key(line.body) {
                Ok(split) => split,
                Err(reason) if top_level => {
                    i = self.legacy(i, &reason);
                    continue;
                }
                Err(reason) => return Err(syntax(no, reason)),
            };
            let key = format!("{prefix}{key}");
            let inline = after.trim_start_matches(is_blank_char);
            let inline = if inline.starts_with('#') { "" } else { inline };

            // Where the value starts: on the key's line, or on a line below it.
            let mut value_line = no;
            let (value, next) = if !inline.is_empty() {
                let end = self.run_end(i, line.indent, false);
                (interpret(inline, &self.lines[i + 1..end]), end)
            } else {
                let following = (i + 1..self.lines.len()).find(|&j| !self.lines[j].is_skippable());
                match following.map(|j| &self.lines[j]) {
                    Some(child) if child.indent > line.indent => {
                        if child.body.starts_with('\t') {
                            return Err(syntax(
                                child.no,
                                "a tab indents this line; YAML indents with spaces only",
                            ));
                        }
                        if !child.is_list_item() && split_key(child.body).is_ok() {
                            if stack.len() >= MAX_NESTING {
                                return Err(syntax(
                                    child.no,
                                    format!("mappings nested deeper than {MAX_NESTING} levels"),
                                ));
                            }
                            let indent = child.indent;
                            stack.push(Frame {
                                indent,
                                prefix: format!("{key}."),
                            });
                            self.nested = true;
                            i += 1;
                            continue;
                        }
                        let end = self.run_end(i, line.indent, false);
                        value_line = child.no;
                        if child.is_list_item() {
                            (Ok(Value::Other(Construct::List)), end)
                        } else {
                            let first = child.body.trim_start_matches(is_blank_char);
                            let from = following.map_or(end, |j| j + 1).min(end);
                            (interpret(first, &self.lines[from..end]), end)
                        }
                    }
                    Some(sibling) if sibling.indent == line.indent && sibling.is_list_item() => {
                        let end = self.run_end(i, line.indent, true);
                        (Ok(Value::Other(Construct::List)), end)
                    }
                    _ => (Ok(Value::Null), i + 1),
                }
            };

            // A top-level `key: value` line whose value is not YAML this reader takes, or is YAML
            // whose meaning (an anchor, alias or tag) it cannot follow, is read as Flink's legacy
            // reader reads it. (A bare `key:` line means nothing to that reader, so the block
            // below one must be YAML.)
            let legacy_line = top_level && !inline.is_empty();
            match value {
                Ok(Value::Other(construct))
                    if construct.may_hold_keys() && is_known_prefix(&key) =>
                {
                    return Err(syntax(
                        value_line,
                        format!(
                            "`{key}` is {}, which may hold settings hakeeper reads; write it as a block mapping (one `key: value` per line)",
                            construct.describe()
                        ),
                    ));
                }
                Err(reason) if legacy_line => i = self.legacy(i, &reason),
                Ok(Value::Other(Construct::Property)) if legacy_line => {
                    i = self.legacy(i, "YAML would read an anchor, alias or tag here");
                }
                Err(reason) => return Err(syntax(value_line, reason)),
                Ok(value) => {
                    self.record(key, no, value);
                    i = next;
                }
            }
        }
        Ok(())
    }

    /// The end (exclusive) of the lines that belong to the value starting on line `i`, whose
    /// key is indented by `indent`: blank and comment lines, more indented lines, and with
    /// `list_items` also list items at the key's own indentation.
    fn run_end(&self, i: usize, indent: usize, list_items: bool) -> usize {
        let mut end = i + 1;
        for (j, line) in self.lines.iter().enumerate().skip(i + 1) {
            if line.is_skippable() {
                continue;
            }
            if line.indent > indent || (list_items && line.indent == indent && line.is_list_item())
            {
                end = j + 1;
            } else {
                break;
            }
        }
        end
    }

    /// Read line `i` and the lines that hang below it as Flink's legacy reader would; returns the
    /// index of the next line to read.
    fn legacy(&mut self, i: usize, reason: &str) -> usize {
        let end = self.run_end(i, 0, false);
        for j in i..end {
            let (no, raw) = (self.lines[j].no, self.lines[j].raw);
            let conf = java_trim(raw.split('#').next().unwrap_or_default());
            if conf.is_empty() {
                continue;
            }
            let Some((key, value)) = conf.split_once(": ") else {
                tracing::warn!(
                    line = no,
                    reason,
                    "Flink configuration: line is neither YAML this reader understands nor a `key: value` line; ignored, as Flink's legacy reader ignores it"
                );
                continue;
            };
            let (key, value) = (java_trim(key), java_trim(value));
            if key.is_empty() || value.is_empty() {
                tracing::warn!(
                    line = no,
                    "Flink configuration: line has an empty key or value; ignored, as Flink's legacy reader ignores it"
                );
                continue;
            }
            // Only keys from the table are logged: a malformed line can carry part of a value
            // in what the legacy reader takes for its key.
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
            self.record(key.to_string(), no, Value::Scalar(value.to_string()));
        }
        end
    }

    fn record(&mut self, key: String, line: usize, value: Value) {
        match lookup(&key) {
            Some((field, rank)) => self.entries.push(Entry {
                field,
                rank,
                key,
                line,
                value,
            }),
            None => {
                if let Value::Other(construct) = value {
                    tracing::trace!(
                        line,
                        found = construct.describe(),
                        "Flink configuration: skipping the value of a key hakeeper does not use"
                    );
                }
            }
        }
    }
}

fn syntax(line: usize, message: impl Into<String>) -> FlinkConfError {
    FlinkConfError::Syntax {
        line,
        message: message.into(),
    }
}

/// Split a block mapping entry into its key and what follows the `:`.
fn split_key(body: &str) -> Result<(String, &str), String> {
    let Some(first) = body.chars().next() else {
        return Err("an empty line".to_string());
    };
    let second = body[first.len_utf8()..].chars().next();
    let indicator_alone = second.is_none_or(is_blank_char);
    match first {
        '-' if indicator_alone => {
            Err("a list item where a `key: value` entry was expected".to_string())
        }
        '?' if indicator_alone => Err("complex mapping keys (`? `) are not supported".to_string()),
        '"' | '\'' => {
            let (key, _, after) = quoted(body, &[])?;
            let after = after.trim_start_matches(is_blank_char);
            match after.strip_prefix(':') {
                Some(rest) if rest.is_empty() || rest.starts_with(is_blank_char) => Ok((key, rest)),
                _ => Err("expected `:` after the quoted key".to_string()),
            }
        }
        '[' | ']' | '{' | '}' | ',' | '&' | '*' | '!' | '|' | '>' | '%' | '@' | '`' | '#' => Err(
            "a line starting with a YAML indicator (one of `[]{},&*!|>%@#` or a backquote) is not a `key: value` entry"
                .to_string(),
        ),
        _ => {
            let mut previous = first;
            for (at, c) in body.char_indices() {
                if c == '#' && at > 0 && is_blank_char(previous) {
                    break;
                }
                if c == ':' && body[at + 1..].chars().next().is_none_or(is_blank_char) {
                    let key = body[..at].trim_end_matches(is_blank_char);
                    if key.is_empty() {
                        return Err("an empty key".to_string());
                    }
                    return Ok((key.to_string(), &body[at + 1..]));
                }
                previous = c;
            }
            Err("no `key: value` separator (`: `) on this line".to_string())
        }
    }
}

/// Read a value that starts with `first` (trimmed, not empty) and may continue on `more`.
fn interpret(first: &str, more: &[Line<'_>]) -> Result<Value, String> {
    let Some(c) = first.chars().next() else {
        return Ok(Value::Null);
    };
    let alone = first[c.len_utf8()..]
        .chars()
        .next()
        .is_none_or(is_blank_char);
    match c {
        '"' | '\'' => {
            let (text, closed_on, after) = quoted(first, more)?;
            let after = after.trim_start_matches(is_blank_char);
            if !after.is_empty() && !after.starts_with('#') {
                return Err("unexpected text after the closing quote".to_string());
            }
            if more.iter().skip(closed_on).any(|l| !l.is_skippable()) {
                return Err("unexpected text after the closing quote".to_string());
            }
            Ok(Value::Scalar(text))
        }
        '[' | '{' => {
            flow(first, more)?;
            Ok(Value::Other(if c == '[' {
                Construct::FlowList
            } else {
                Construct::FlowMap
            }))
        }
        '|' | '>' => {
            block_scalar_header(first)?;
            Ok(Value::Other(Construct::BlockScalar))
        }
        '&' | '*' | '!' => Ok(Value::Other(Construct::Property)),
        // (Messages name no character of the value: it may be a secret.)
        '@' | '`' | '%' | ',' | ']' | '}' => Err(
            "a YAML value cannot start with `@`, `` ` ``, `%`, `,`, `]` or `}` unless it is quoted"
                .to_string(),
        ),
        '-' | '?' | ':' if alone => {
            Err("a YAML value cannot start with `- `, `? ` or `: ` unless it is quoted".to_string())
        }
        _ => plain(first, more),
    }
}

/// A plain (unquoted) scalar, folded over its continuation lines.
fn plain(first: &str, more: &[Line<'_>]) -> Result<Value, String> {
    let mut out = String::new();
    let mut breaks = 0;
    let mut after_comment = false;
    let pieces = std::iter::once(first).chain(more.iter().map(|l| l.body));
    for (n, piece) in pieces.enumerate() {
        let piece = piece.trim_matches(is_blank_char);
        if piece.is_empty() {
            breaks += 1;
            continue;
        }
        if piece.starts_with('#') {
            after_comment = true;
            continue;
        }
        if after_comment {
            return Err("a value continues after a comment".to_string());
        }
        let (content, comment) = cut_comment(piece);
        if content.contains(": ") || content.contains(":\t") || content.ends_with(':') {
            return Err(
                "`: ` inside an unquoted value; quote the value or check the indentation"
                    .to_string(),
            );
        }
        if n > 0 {
            match breaks {
                0 | 1 => out.push(' '),
                _ => (1..breaks).for_each(|_| out.push('\n')),
            }
        }
        breaks = 1;
        out.push_str(content);
        after_comment = comment;
    }
    if more.is_empty() && matches!(out.as_str(), "~" | "null" | "Null" | "NULL") {
        return Ok(Value::Null);
    }
    Ok(Value::Scalar(out))
}

/// Split `text` at a comment (a `#` after whitespace): the content, and whether a comment followed.
fn cut_comment(text: &str) -> (&str, bool) {
    let mut previous = ' ';
    for (at, c) in text.char_indices() {
        if c == '#' && is_blank_char(previous) {
            return (text[..at].trim_end_matches(is_blank_char), true);
        }
        previous = c;
    }
    (text, false)
}

/// A single- or double-quoted scalar that opens at the start of `first` and may continue over
/// `more`. Returns the text, how many of `more` it took (0 if it closed on `first`) and what
/// follows the closing quote on that line.
fn quoted<'t>(first: &'t str, more: &[Line<'t>]) -> Result<(String, usize, &'t str), String> {
    let double = first.starts_with('"');
    let quote = if double { '"' } else { '\'' };
    let mut out = String::new();
    let mut breaks = 0;
    let mut escaped_break = false;
    let pieces = std::iter::once(&first[1..]).chain(more.iter().map(|l| l.body));
    for (n, piece) in pieces.enumerate() {
        let piece = if n == 0 {
            piece
        } else {
            let piece = piece.trim_start_matches(is_blank_char);
            if piece.trim_end_matches(is_blank_char).is_empty() {
                breaks += 1;
                continue;
            }
            let newlines = if escaped_break || breaks > 1 {
                breaks - 1
            } else {
                0
            };
            if newlines == 0 && !escaped_break {
                out.push(' ');
            }
            (0..newlines).for_each(|_| out.push('\n'));
            escaped_break = false;
            piece
        };
        // Line-end whitespace is folded away unless it was escaped.
        let mut kept = out.len();
        let mut chars = piece.char_indices();
        while let Some((at, c)) = chars.next() {
            if c == quote {
                if !double && piece[at + 1..].starts_with('\'') {
                    chars.next();
                    out.push('\'');
                    kept = out.len();
                    continue;
                }
                return Ok((out, n, &piece[at + 1..]));
            }
            if double && c == '\\' {
                let Some((_, e)) = chars.next() else {
                    escaped_break = true;
                    break;
                };
                let simple = match e {
                    '0' => Some('\0'),
                    'a' => Some('\u{7}'),
                    'b' => Some('\u{8}'),
                    't' | '\t' => Some('\t'),
                    'n' => Some('\n'),
                    'v' => Some('\u{b}'),
                    'f' => Some('\u{c}'),
                    'r' => Some('\r'),
                    'e' => Some('\u{1b}'),
                    ' ' => Some(' '),
                    '"' => Some('"'),
                    '/' => Some('/'),
                    '\\' => Some('\\'),
                    'N' => Some('\u{85}'),
                    '_' => Some('\u{a0}'),
                    'L' => Some('\u{2028}'),
                    'P' => Some('\u{2029}'),
                    _ => None,
                };
                let decoded = match (simple, e) {
                    (Some(c), _) => c,
                    (None, 'x' | 'u' | 'U') => {
                        let digits = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut code = 0u32;
                        for _ in 0..digits {
                            let d = chars.next().and_then(|(_, h)| h.to_digit(16)).ok_or_else(
                                || format!("bad `\\{e}` escape in a double-quoted value"),
                            )?;
                            code = code * 16 + d;
                        }
                        char::from_u32(code)
                            .ok_or_else(|| format!("`\\{e}` escape names no Unicode character"))?
                    }
                    (None, _) => {
                        return Err(
                            "an unknown escape sequence in a double-quoted value".to_string()
                        );
                    }
                };
                out.push(decoded);
                kept = out.len();
                continue;
            }
            out.push(c);
            if !is_blank_char(c) {
                kept = out.len();
            }
        }
        if !escaped_break {
            out.truncate(kept);
        }
        breaks = 1;
    }
    Err(format!(
        "a {} value is not closed",
        if double {
            "double-quoted"
        } else {
            "single-quoted"
        }
    ))
}

/// Check that a flow collection (`[...]` or `{...}`) starting at `first` closes, possibly on a
/// later line, with nothing but a comment after it.
fn flow(first: &str, more: &[Line<'_>]) -> Result<(), String> {
    let mut depth: Vec<char> = Vec::new();
    let mut in_quote: Option<char> = None;
    let mut closed = false;
    for piece in std::iter::once(first).chain(more.iter().map(|l| l.body)) {
        let mut previous = ' ';
        let mut chars = piece.chars();
        while let Some(c) = chars.next() {
            if let Some(q) = in_quote {
                if c == q {
                    in_quote = None;
                } else if q == '"' && c == '\\' {
                    chars.next();
                }
                previous = c;
                continue;
            }
            if c == '#' && is_blank_char(previous) {
                break;
            }
            if closed {
                if !is_blank_char(c) {
                    return Err("unexpected text after a flow collection".to_string());
                }
                previous = c;
                continue;
            }
            match c {
                '"' | '\'' => in_quote = Some(c),
                '[' | '{' => depth.push(c),
                ']' | '}' => {
                    let open = if c == ']' { '[' } else { '{' };
                    if depth.pop() != Some(open) {
                        return Err(format!("unbalanced `{c}` in a flow collection"));
                    }
                    closed = depth.is_empty();
                }
                _ => {}
            }
            previous = c;
        }
    }
    if closed {
        Ok(())
    } else {
        Err("a flow collection (`[...]` or `{...}`) is not closed".to_string())
    }
}

/// Check a block scalar header: `|` or `>`, at most two indicators, then nothing or a comment.
fn block_scalar_header(first: &str) -> Result<(), String> {
    let rest = &first[1..];
    let indicators = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '+' || c == '-'))
        .unwrap_or(rest.len());
    let after = &rest[indicators..];
    let comment_ok = after.is_empty()
        || (after.starts_with(is_blank_char)
            && matches!(
                after.trim_start_matches(is_blank_char).chars().next(),
                None | Some('#')
            ));
    if indicators <= 2 && comment_ok {
        Ok(())
    } else {
        Err("a block scalar header (`|` or `>`) with unexpected text after it".to_string())
    }
}

// ------------------------------------------------------------------------------------------------
// From entries to settings

const DURATION_EXPECTED: &str = "a duration such as `15 s`, `15000 ms` or `1 min` (a bare number is milliseconds; units d, h, min, s, ms, µs, ns)";
const COUNT_EXPECTED: &str = "a whole number of at least 1";
const BOOL_EXPECTED: &str = "`true` or `false`";
const STRING_EXPECTED: &str = "a non-empty string";

fn resolve(entries: Vec<Entry>, nested: bool) -> Result<FlinkConf, FlinkConfError> {
    // For each field: the best-ranked key; the last occurrence of that key.
    let mut chosen: HashMap<Field, Entry> = HashMap::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for entry in entries {
        if let Some(earlier) = seen.insert(entry.key.clone(), entry.line) {
            tracing::warn!(
                key = entry.key,
                line = entry.line,
                earlier,
                "Flink configuration: key given twice; the later one wins"
            );
        }
        if entry.value == Value::Null {
            tracing::debug!(
                key = entry.key,
                line = entry.line,
                "Flink configuration: empty value; the key is left unset"
            );
            continue;
        }
        match chosen.get(&entry.field) {
            Some(current) if current.rank < entry.rank => {
                tracing::debug!(
                    key = entry.key,
                    line = entry.line,
                    preferred = current.key,
                    "Flink configuration: key overridden by a preferred key"
                );
            }
            _ => {
                if let Some(replaced) = chosen.get(&entry.field).filter(|c| c.rank > entry.rank) {
                    tracing::debug!(
                        key = replaced.key,
                        line = replaced.line,
                        preferred = entry.key,
                        "Flink configuration: key overridden by a preferred key"
                    );
                }
                chosen.insert(entry.field, entry);
            }
        }
    }

    // Convert in file order, so that the first bad value in the file is the one reported.
    let mut chosen: Vec<(Field, Entry)> = chosen.into_iter().collect();
    chosen.sort_by_key(|(_, entry)| entry.line);
    let mut conf = FlinkConf::default();
    for (field, entry) in chosen {
        if !nested
            && let Value::Scalar(text) = &entry.value
            && text.contains('#')
        {
            tracing::warn!(
                key = entry.key,
                line = entry.line,
                "Flink configuration: the value contains `#`; Flink's legacy flink-conf.yaml reader (Flink 1.18 and older) ends the value there, YAML and hakeeper keep it"
            );
        }
        match field {
            Field::ClusterId => conf.cluster_id = Some(string(&entry)?),
            Field::HaClusterId => conf.ha_cluster_id = Some(string(&entry)?),
            Field::Namespace => conf.namespace = Some(string(&entry)?),
            Field::StorageDir => conf.storage_dir = Some(string(&entry)?),
            Field::LeaseDuration => conf.lease_duration = Some(duration(&entry)?),
            Field::RenewDeadline => conf.renew_deadline = Some(duration(&entry)?),
            Field::RetryPeriod => conf.retry_period = Some(duration(&entry)?),
            Field::CheckpointsRetained => conf.checkpoints_retained = Some(count(&entry)?),
            Field::S3Endpoint => conf.s3_endpoint = Some(string(&entry)?),
            Field::S3PathStyle => conf.s3_path_style = Some(boolean(&entry)?),
            Field::S3AccessKey => conf.s3_access_key = Some(string(&entry)?),
            Field::S3SecretKey => conf.s3_secret_key = Some(string(&entry)?),
        }
    }

    conf.cluster_id = match (&conf.cluster_id, &conf.ha_cluster_id) {
        (Some(k8s), Some(ha)) => {
            if ha.strip_prefix('/').unwrap_or(ha) != k8s {
                tracing::warn!(
                    kubernetes_cluster_id = %k8s,
                    ha_cluster_id = %ha,
                    "Flink configuration: kubernetes.cluster-id and high-availability.cluster-id differ; hakeeper uses kubernetes.cluster-id for both the ConfigMap names and the storage sub-path, while Flink stores HA data under high-availability.cluster-id"
                );
            }
            Some(k8s.clone())
        }
        (Some(k8s), None) => Some(k8s.clone()),
        (None, Some(ha)) => {
            let id = ha.strip_prefix('/').unwrap_or(ha);
            (!id.is_empty()).then(|| id.to_string())
        }
        (None, None) => None,
    };
    Ok(conf)
}

fn invalid(entry: &Entry, expected: &'static str) -> FlinkConfError {
    let found = match &entry.value {
        Value::Scalar(_) if entry.field == Field::S3SecretKey => {
            "a value that is not shown (secret)".to_string()
        }
        Value::Scalar(text) => format!("{text:?}"),
        Value::Null => "nothing".to_string(),
        Value::Other(construct) => construct.describe().to_string(),
    };
    FlinkConfError::InvalidValue {
        line: entry.line,
        key: entry.key.clone(),
        found,
        expected,
    }
}

fn scalar<'e>(entry: &'e Entry, expected: &'static str) -> Result<&'e str, FlinkConfError> {
    match &entry.value {
        Value::Scalar(text) => Ok(text),
        _ => Err(invalid(entry, expected)),
    }
}

fn string(entry: &Entry) -> Result<String, FlinkConfError> {
    let text = scalar(entry, STRING_EXPECTED)?;
    if text.is_empty() {
        return Err(invalid(entry, STRING_EXPECTED));
    }
    Ok(text.to_string())
}

fn duration(entry: &Entry) -> Result<Duration, FlinkConfError> {
    parse_flink_duration(scalar(entry, DURATION_EXPECTED)?)
        .ok_or_else(|| invalid(entry, DURATION_EXPECTED))
}

fn count(entry: &Entry) -> Result<u32, FlinkConfError> {
    // Flink's int options go through Integer.parseInt: an optional sign and decimal digits.
    match java_trim(scalar(entry, COUNT_EXPECTED)?).parse::<i32>() {
        Ok(n) if n >= 1 => Ok(n.unsigned_abs()),
        _ => Err(invalid(entry, COUNT_EXPECTED)),
    }
}

fn boolean(entry: &Entry) -> Result<bool, FlinkConfError> {
    let text = java_trim(scalar(entry, BOOL_EXPECTED)?);
    if text.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if text.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(invalid(entry, BOOL_EXPECTED))
    }
}

/// A duration as Flink's `TimeUtils.parseDuration` reads it: decimal digits, optional
/// whitespace, and an optional unit label in any letter case; no label means milliseconds.
fn parse_flink_duration(text: &str) -> Option<Duration> {
    const NANOS_PER_SECOND: u128 = 1_000_000_000;
    let text = java_trim(text);
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, label) = text.split_at(digits);
    // Java's Long.parseLong bounds the number.
    let value = u128::from(number.parse::<i64>().ok()?.unsigned_abs());
    let nanos_per_unit: u128 = match java_trim(label).to_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1_000_000,
        "d" | "day" | "days" => 86_400 * NANOS_PER_SECOND,
        "h" | "hour" | "hours" => 3_600 * NANOS_PER_SECOND,
        "min" | "minute" | "minutes" => 60 * NANOS_PER_SECOND,
        "s" | "sec" | "secs" | "second" | "seconds" => NANOS_PER_SECOND,
        "µs" | "micro" | "micros" | "microsecond" | "microseconds" => 1_000,
        "ns" | "nano" | "nanos" | "nanosecond" | "nanoseconds" => 1,
        _ => return None,
    };
    let nanos = value * nanos_per_unit;
    // java.time.Duration holds its seconds in a long.
    let secs = i64::try_from(nanos / NANOS_PER_SECOND).ok()?;
    Some(Duration::new(
        secs.unsigned_abs(),
        u32::try_from(nanos % NANOS_PER_SECOND).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::{Arc, Mutex};

    const FLAT: &str = include_str!("../tests/fixtures/flink/flink-conf.yaml");
    const NESTED: &str = include_str!("../tests/fixtures/flink/config.yaml");
    const SECRET: &str = "8c6e2f0d-orders-s3cr3t";

    fn parse(text: &str) -> FlinkConf {
        FlinkConf::parse(text).unwrap_or_else(|e| panic!("{e}\n--- input ---\n{text}"))
    }

    fn error(text: &str) -> String {
        match FlinkConf::parse(text) {
            Ok(conf) => panic!("expected an error, got {conf:?}\n--- input ---\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    fn secs(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    /// What both fixtures say.
    fn orders() -> FlinkConf {
        FlinkConf {
            cluster_id: some("orders-pipeline"),
            ha_cluster_id: None,
            namespace: some("streaming"),
            storage_dir: some("s3://flink-ha/orders"),
            lease_duration: secs(20),
            renew_deadline: secs(15),
            retry_period: secs(3),
            checkpoints_retained: Some(5),
            s3_endpoint: some("http://minio.storage.svc:9000"),
            s3_path_style: Some(true),
            s3_access_key: some("orders-flink"),
            s3_secret_key: some(SECRET),
        }
    }

    /// Everything this module logs, at every level, while `f` runs.
    fn logs_of(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = sink.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    // -------------------------------------------------------------------------------------------
    // The two formats

    #[test]
    fn flat_flink_1_14_file() {
        assert_eq!(parse(FLAT), orders());
    }

    #[test]
    fn nested_flink_1_20_file() {
        assert_eq!(parse(NESTED), orders());
    }

    #[test]
    fn load_reads_both_fixtures() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flink");
        for name in ["flink-conf.yaml", "config.yaml"] {
            let conf = FlinkConf::load(&dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(conf, orders(), "{name}");
        }
    }

    #[test]
    fn empty_and_comment_only_documents() {
        for text in [
            "",
            "\n\n",
            "# nothing here\n   # nor here\n",
            "---\n",
            "\u{feff}",
        ] {
            assert_eq!(parse(text), FlinkConf::default(), "{text:?}");
        }
    }

    #[test]
    fn nested_keys_may_contain_dots_at_any_level() {
        let conf = parse(
            "high-availability:\n  kubernetes.leader-election:\n    lease-duration: 9 s\n  kubernetes:\n    leader-election.renew-deadline: 8 s\nhigh-availability.kubernetes.leader-election.retry-period: 7 s\n",
        );
        assert_eq!(conf.lease_duration, secs(9));
        assert_eq!(conf.renew_deadline, secs(8));
        assert_eq!(conf.retry_period, secs(7));
    }

    #[test]
    fn flink_legacy_reader_cases() {
        // Flink's own GlobalConfigurationTest#testConfigurationWithLegacyYAML, with keys hakeeper reads.
        let conf = parse(concat!(
            "###########################\n",
            "# Some : comments : to skip\n",
            "###########################\n",
            "kubernetes.cluster-id: first\n",
            "kubernetes.namespace       : spaced\n",
            "s3.endpoint:http://no-space\n",
            " some nonsense without colon and whitespace separator\n",
            " :  \n",
            "   \n",
            "s3.access-key: key4# some comments\n",
            "   s3.secret-key    :    secret5    \n",
            "high-availability.storageDir: s3://a: b\n",
            "high-availability.cluster-id: \n",
            ": value8\n",
            "kubernetes.cluster-id: second\n",
        ));
        assert_eq!(conf.cluster_id, some("second"), "the later key wins");
        assert_eq!(conf.namespace, some("spaced"));
        assert_eq!(conf.s3_endpoint, None, "no space after the colon");
        // `key4# some comments` is one YAML scalar, but the indented line below it makes the pair
        // invalid YAML, so both lines are read the legacy way, which cuts at `#`.
        assert_eq!(conf.s3_access_key, some("key4"));
        assert_eq!(conf.s3_secret_key, some("secret5"));
        assert_eq!(
            conf.storage_dir,
            some("s3://a: b"),
            "split at the first `: `"
        );
        assert_eq!(
            conf.ha_cluster_id, None,
            "an empty value leaves the key unset"
        );
    }

    #[test]
    fn top_level_lines_that_are_not_yaml_are_read_the_legacy_way() {
        let text = "kubernetes.namespace: team: a\ns3.secret-key: *not-an-alias\ns3.access-key: &not-an-anchor\ns3.endpoint: 'unclosed\nkubernetes.cluster-id: @at\nhigh-availability.storageDir: \"closed\" then text\n";
        let conf = parse(text);
        assert_eq!(conf.namespace, some("team: a"));
        assert_eq!(conf.s3_secret_key, some("*not-an-alias"));
        assert_eq!(conf.s3_access_key, some("&not-an-anchor"));
        assert_eq!(conf.s3_endpoint, some("'unclosed"));
        assert_eq!(conf.cluster_id, some("@at"));
        assert_eq!(conf.storage_dir, some("\"closed\" then text"));
        let logs = logs_of(|| {
            parse(text);
        });
        assert!(logs.contains("legacy"), "{logs}");
        assert!(logs.contains("kubernetes.namespace"), "{logs}");
        assert!(
            !logs.contains("not-an-alias"),
            "a secret was logged: {logs}"
        );
    }

    #[test]
    fn lines_neither_format_accepts_are_skipped() {
        let conf = parse("just words\n- a list item\n--- not a marker\nkubernetes.namespace: ns\n");
        assert_eq!(conf.namespace, some("ns"));
    }

    // -------------------------------------------------------------------------------------------
    // Durations

    #[test]
    fn flink_duration_forms() {
        let ms = Duration::from_millis;
        let cases = [
            ("15 s", secs(15)),
            ("15s", secs(15)),
            ("15000 ms", secs(15)),
            ("15000", secs(15)),
            ("500 ms", Some(ms(500))),
            ("500", Some(ms(500))),
            ("0", Some(Duration::ZERO)),
            ("1 min", secs(60)),
            ("2 min", secs(120)),
            ("1 minute", secs(60)),
            ("5 minutes", secs(300)),
            ("1d", secs(86_400)),
            ("1 day", secs(86_400)),
            ("2 days", secs(172_800)),
            ("1 h", secs(3_600)),
            ("1 hour", secs(3_600)),
            ("3 hours", secs(10_800)),
            ("2 sec", secs(2)),
            ("2 secs", secs(2)),
            ("1 second", secs(1)),
            ("10 seconds", secs(10)),
            ("250 milli", Some(ms(250))),
            ("250 millis", Some(ms(250))),
            ("1 millisecond", Some(ms(1))),
            ("3 milliseconds", Some(ms(3))),
            ("7 µs", Some(Duration::from_micros(7))),
            ("7µs", Some(Duration::from_micros(7))),
            ("7 micro", Some(Duration::from_micros(7))),
            ("7 micros", Some(Duration::from_micros(7))),
            ("7 microsecond", Some(Duration::from_micros(7))),
            ("7 microseconds", Some(Duration::from_micros(7))),
            ("9 ns", Some(Duration::from_nanos(9))),
            ("9 nano", Some(Duration::from_nanos(9))),
            ("9 nanos", Some(Duration::from_nanos(9))),
            ("9 nanosecond", Some(Duration::from_nanos(9))),
            ("9 nanoseconds", Some(Duration::from_nanos(9))),
            ("15 S", secs(15)),
            ("1 MIN", secs(60)),
            ("  15 \t s  ", secs(15)),
            ("0015 s", secs(15)),
            (
                "9223372036854775807 ns",
                Some(Duration::from_nanos(9_223_372_036_854_775_807)),
            ),
            ("106751991167300 d", secs(106_751_991_167_300 * 86_400)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_flink_duration(text), expected, "{text:?}");
        }
    }

    #[test]
    fn flink_duration_rejects() {
        for text in [
            "",
            "   ",
            "s",
            "ms",
            "1.5 s",
            "-1 s",
            "+1 s",
            "1e3",
            "1 s s",
            "15 fortnights",
            // Flink has no `m` or `mins` (hakeeper's command line has), and no ASCII `us`.
            "2m",
            "1 m",
            "2 mins",
            "15 us",
            "15 μs", // Greek mu, not the micro sign
            "9223372036854775808",
            "9223372036854775807 d",
            "106751991167301 d",
        ] {
            assert_eq!(parse_flink_duration(text), None, "{text:?}");
        }
    }

    #[test]
    fn bare_number_is_milliseconds_in_the_file() {
        let conf = parse("high-availability.kubernetes.leader-election.lease-duration: 15\n");
        assert_eq!(conf.lease_duration, Some(Duration::from_millis(15)));
        let conf =
            parse("high-availability:\n  kubernetes.leader-election.retry-period: \"2000\"\n");
        assert_eq!(conf.retry_period, secs(2));
    }

    // -------------------------------------------------------------------------------------------
    // Bad values

    #[test]
    fn bad_duration_names_key_line_value_and_expectation() {
        let message = error(
            "kubernetes.cluster-id: a\nhigh-availability.kubernetes.leader-election.renew-deadline: 15 fortnights\n",
        );
        assert!(message.starts_with("line 2: "), "{message}");
        assert!(
            message.contains("high-availability.kubernetes.leader-election.renew-deadline"),
            "{message}"
        );
        assert!(message.contains("\"15 fortnights\""), "{message}");
        assert!(message.contains("a duration"), "{message}");
    }

    #[test]
    fn bad_values_in_nested_documents_report_their_own_line() {
        let message = error(
            "high-availability:\n  type: kubernetes\n  kubernetes:\n    leader-election:\n      lease-duration: 2m\n",
        );
        assert!(message.starts_with("line 5: "), "{message}");
        assert!(
            message.contains("high-availability.kubernetes.leader-election.lease-duration"),
            "{message}"
        );
        assert!(message.contains("\"2m\""), "{message}");
    }

    #[test]
    fn bad_bool() {
        let message = error("# S3\ns3.path.style.access: yes\n");
        assert!(message.starts_with("line 2: "), "{message}");
        assert!(message.contains("s3.path.style.access"), "{message}");
        assert!(message.contains("\"yes\""), "{message}");
        assert!(message.contains("`true` or `false`"), "{message}");
        for (text, expected) in [
            ("TRUE", true),
            ("False", false),
            ("tRuE", true),
            ("'false'", false),
        ] {
            let conf = parse(&format!("fs.s3a.path.style.access: {text}\n"));
            assert_eq!(conf.s3_path_style, Some(expected), "{text}");
        }
    }

    #[test]
    fn bad_integer_and_zero_retained() {
        for (value, shown) in [
            ("three", "\"three\""),
            ("0", "\"0\""),
            ("-1", "\"-1\""),
            ("2.5", "\"2.5\""),
            ("2147483648", "\"2147483648\""),
        ] {
            let message = error(&format!("\n\nstate.checkpoints.num-retained: {value}\n"));
            assert!(message.starts_with("line 3: "), "{message}");
            assert!(
                message.contains("state.checkpoints.num-retained"),
                "{message}"
            );
            assert!(message.contains(shown), "{message}");
            assert!(
                message.contains("a whole number of at least 1"),
                "{message}"
            );
        }
        assert_eq!(
            parse("state.checkpoints.num-retained: +7\n").checkpoints_retained,
            Some(7)
        );
        assert_eq!(
            parse("execution.checkpointing.num-retained: 2147483647\n").checkpoints_retained,
            Some(2_147_483_647)
        );
    }

    #[test]
    fn empty_quoted_string_is_an_error() {
        let message = error("kubernetes.namespace: \"\"\n");
        assert!(message.contains("kubernetes.namespace"), "{message}");
        assert!(message.contains("a non-empty string"), "{message}");
    }

    #[test]
    fn the_first_bad_value_in_the_file_is_reported() {
        let message = error("s3.path.style.access: maybe\nstate.checkpoints.num-retained: 0\n");
        assert!(message.starts_with("line 1: "), "{message}");
    }

    #[test]
    fn a_bad_value_overridden_later_is_no_error() {
        let conf =
            parse("state.checkpoints.num-retained: lots\nstate.checkpoints.num-retained: 4\n");
        assert_eq!(conf.checkpoints_retained, Some(4));
        let conf = parse(
            "execution.checkpointing.num-retained: 2\nstate.checkpoints.num-retained: lots\n",
        );
        assert_eq!(
            conf.checkpoints_retained,
            Some(2),
            "a deprecated key Flink ignores is not checked"
        );
    }

    // -------------------------------------------------------------------------------------------
    // Secrets

    #[test]
    fn secrets_are_redacted_in_debug() {
        let conf = orders();
        let shown = format!("{conf:?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(
            shown.contains("s3_secret_key: Some(\"<redacted>\")"),
            "{shown}"
        );
        assert!(shown.contains("orders-flink"), "{shown}");
        let shown = format!("{:?}", FlinkConf::default());
        assert!(shown.contains("s3_secret_key: None"), "{shown}");
    }

    #[test]
    fn secrets_never_reach_errors() {
        for text in [
            "s3.secret-key: \"\"\n",
            "s3:\n  secret-key: [hunter2-in-a-list]\n",
            "s3:\n  secret-key: |\n    hunter2-in-a-block\n",
        ] {
            let e = FlinkConf::parse(text).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(shown.contains("s3.secret-key"), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }

    #[test]
    fn secrets_are_never_logged() {
        let text = concat!(
            "s3.secret-key: hunter2-first\n",
            "s3.secret-key: hunter2-second#x\n",
            "fs.s3a.secret.key: hunter2-alias\n",
            "s3.access.key: hunter2-access: x\n",
            "s3a.secret-key: *hunter2-star\n",
            "s3.secret-key: hunter2-third: yes\n",
        );
        let logs = logs_of(|| {
            let conf = parse(text);
            assert_eq!(conf.s3_secret_key, some("hunter2-third: yes"));
        });
        assert!(logs.contains("s3.secret-key"), "nothing was logged: {logs}");
        assert!(!logs.contains("hunter2"), "a secret was logged: {logs}");
        let logs = logs_of(|| {
            parse(
                "s3.secret-key:hunter2: x
hunter2
s3:
  secret-key:hunter2: [x]
",
            );
        });
        assert!(!logs.contains("hunter2"), "a secret was logged: {logs}");
        for text in [
            "s3:\n  secret-key: \"\\qhunter2\"\n",
            "s3:\n  secret-key: %hunter2\n",
        ] {
            let message = error(text);
            assert!(message.starts_with("line 2: "), "{message}");
            assert!(
                !message.contains("hunter2") && !message.contains("\\q"),
                "{message}"
            );
        }
        let logs = logs_of(|| {
            parse(FLAT);
            parse(NESTED);
        });
        assert!(!logs.contains(SECRET), "a secret was logged: {logs}");
        assert!(!logs.contains("s3cr3t"), "a secret was logged: {logs}");
    }

    // -------------------------------------------------------------------------------------------
    // Scalars, comments, repeats

    #[test]
    fn quoted_values() {
        let conf = parse(concat!(
            "kubernetes.namespace: 'it''s # not a comment'\n",
            "s3.endpoint: \"http://h:9000/a\\\"b\\\\c\\td\\u00e9\\x41\\n\" # comment\n",
            "\"kubernetes.cluster-id\": \"quoted-key\"\n",
            "'high-availability': \n",
            "  'storageDir': 's3://b/p'\n",
        ));
        assert_eq!(conf.namespace, some("it's # not a comment"));
        assert_eq!(conf.s3_endpoint, some("http://h:9000/a\"b\\c\td\u{e9}A\n"));
        assert_eq!(conf.cluster_id, some("quoted-key"));
        assert_eq!(conf.storage_dir, some("s3://b/p"));
    }

    #[test]
    fn multi_line_scalars_fold_as_yaml_does() {
        let conf = parse(concat!(
            "s3:\n",
            "  endpoint: \"http://a\n",
            "    b\"\n",
            "  access-key: 'x\n",
            "\n",
            "    y'\n",
            "  secret-key: plain\n",
            "    continued   # comment\n",
            "high-availability:\n",
            "  storageDir:\n",
            "    s3://on-the-next-line\n",
            "kubernetes.namespace: \"joined\\\n",
            "   -without-space\"\n",
        ));
        assert_eq!(conf.s3_endpoint, some("http://a b"));
        assert_eq!(conf.s3_access_key, some("x\ny"));
        assert_eq!(conf.s3_secret_key, some("plain continued"));
        assert_eq!(conf.storage_dir, some("s3://on-the-next-line"));
        assert_eq!(conf.namespace, some("joined-without-space"));
    }

    #[test]
    fn comments() {
        let conf = parse(concat!(
            "# leading comment\n",
            "kubernetes:   # a comment after a mapping key\n",
            "# a comment at column 0 inside the mapping\n",
            "    # an indented comment\n",
            "  cluster-id: c1 # trailing\n",
            "  namespace: a#b\n",
            "s3.endpoint: http://e/#fragment\n",
            "s3.access-key: \"a # b\"\n",
        ));
        assert_eq!(conf.cluster_id, some("c1"));
        assert_eq!(conf.namespace, some("a#b"));
        assert_eq!(conf.s3_endpoint, some("http://e/#fragment"));
        assert_eq!(conf.s3_access_key, some("a # b"));
    }

    #[test]
    fn hash_in_a_flat_value_is_kept_with_a_warning() {
        let logs = logs_of(|| {
            let conf = parse("s3.endpoint: http://e/#fragment\n");
            assert_eq!(conf.s3_endpoint, some("http://e/#fragment"));
        });
        assert!(
            logs.contains("s3.endpoint") && logs.contains("legacy"),
            "{logs}"
        );
        let logs = logs_of(|| {
            parse("s3:\n  endpoint: http://e/#fragment\n");
        });
        assert!(
            !logs.contains("WARN"),
            "a nested document is standard YAML: {logs}"
        );
    }

    #[test]
    fn repeated_keys_last_wins() {
        let conf = parse("kubernetes.namespace: a\nkubernetes.namespace: b\n");
        assert_eq!(conf.namespace, some("b"));
        let conf = parse(
            "kubernetes:\n  namespace: a\n  namespace: b\nkubernetes.namespace: c\nkubernetes:\n  namespace: d\n",
        );
        assert_eq!(conf.namespace, some("d"));
        let logs = logs_of(|| {
            parse("kubernetes.namespace: a\nkubernetes.namespace: b\n");
        });
        assert!(logs.contains("twice"), "{logs}");
    }

    #[test]
    fn empty_values_leave_keys_unset() {
        for text in [
            "kubernetes.cluster-id:\n",
            "kubernetes.cluster-id: ~\n",
            "kubernetes.cluster-id: null # nothing\n",
            "kubernetes.cluster-id: NULL\n",
            "kubernetes:\n  cluster-id:\n",
        ] {
            assert_eq!(parse(text).cluster_id, None, "{text:?}");
        }
        let conf = parse("kubernetes.cluster-id: a\nkubernetes.cluster-id:\n");
        assert_eq!(
            conf.cluster_id,
            some("a"),
            "an empty value does not undo an earlier one"
        );
        assert_eq!(
            parse("kubernetes.cluster-id: 'null'\n").cluster_id,
            some("null")
        );
    }

    #[test]
    fn line_endings_and_byte_order_mark() {
        let conf = parse(
            "\u{feff}kubernetes:\r\n  cluster-id: crlf\r\n  namespace: ns\rs3.endpoint: http://cr\n",
        );
        assert_eq!(conf.cluster_id, some("crlf"));
        assert_eq!(conf.namespace, some("ns"));
        assert_eq!(conf.s3_endpoint, some("http://cr"));
    }

    #[test]
    fn document_markers() {
        assert_eq!(
            parse("%YAML 1.2\n---\nkubernetes.namespace: ns\n...\n").namespace,
            some("ns")
        );
        let message = error("kubernetes.namespace: a\n---\nkubernetes.namespace: b\n");
        assert!(message.starts_with("line 2: "), "{message}");
    }

    // -------------------------------------------------------------------------------------------
    // Structure

    #[test]
    fn tabs() {
        let message = error("kubernetes:\n\tcluster-id: x\n");
        assert!(message.starts_with("line 2: "), "{message}");
        assert!(message.contains("tab"), "{message}");
        let message = error("kubernetes:\n  \tcluster-id: x\n");
        assert!(message.starts_with("line 2: "), "{message}");
        let message = error("kubernetes.namespace: a\n\tkubernetes.cluster-id: x\n");
        assert!(message.contains("tab"), "{message}");
        // Tabs may separate tokens within a line, and blank or comment lines may hold them.
        let conf = parse(
            "kubernetes.cluster-id:\tx\t# c\n\t\n\t# tabbed comment\nkubernetes.namespace: a\tb\n",
        );
        assert_eq!(conf.cluster_id, some("x"));
        assert_eq!(conf.namespace, some("a\tb"));
    }

    #[test]
    fn bad_indentation() {
        let message = error("kubernetes:\n    cluster-id: a\n  namespace: b\n");
        assert!(message.starts_with("line 3: "), "{message}");
        assert!(message.contains("indentation"), "{message}");
        let message = error("kubernetes:\n  namespace: a\n    cluster-id: b\n");
        assert!(message.starts_with("line 2: "), "{message}");
        let message = error("  kubernetes.namespace: a\nkubernetes.cluster-id: b\n");
        assert!(message.starts_with("line 2: "), "{message}");
    }

    #[test]
    fn unknown_keys_with_lists_flows_and_block_scalars_are_skipped() {
        let conf = parse(concat!(
            "pipeline:\n",
            "  jars: [a.jar, 'b.jar',\n",
            "    \"c.jar\"]   # continued\n",
            "  classpaths:\n",
            "  - file:///x.jar\n",
            "  - file:///y.jar\n",
            "  global-job-parameters: {a: b, c: [d, e]}\n",
            "  cached-files:\n",
            "    - name: f\n",
            "      path: s3://f\n",
            "  description: |+\n",
            "    kubernetes.cluster-id: not-a-key\n",
            "\n",
            "    # not a comment either\n",
            "  notes: >-\n",
            "      s3.endpoint: not-a-key\n",
            "  anchored: &anchor value\n",
            "  aliased: *anchor\n",
            "  tagged: !!str value\n",
            "kubernetes.cluster-id: real\n",
            "  # an indented comment after the last entry\n",
        ));
        assert_eq!(
            conf,
            FlinkConf {
                cluster_id: some("real"),
                ..FlinkConf::default()
            }
        );
    }

    #[test]
    fn lists_and_block_scalars_under_known_keys_are_errors() {
        for (text, line, found) in [
            ("kubernetes:\n  cluster-id:\n    - a\n", 2, "a YAML list"),
            ("kubernetes.cluster-id:\n- a\n- b\n", 1, "a YAML list"),
            ("kubernetes:\n  cluster-id: [a]\n", 2, "flow list"),
            (
                "high-availability:\n  storageDir: |\n    s3://x\n",
                2,
                "block scalar",
            ),
            ("s3:\n  endpoint: *alias\n", 2, "alias"),
        ] {
            let message = error(text);
            assert!(message.starts_with(&format!("line {line}: ")), "{message}");
            assert!(message.contains(found), "{message}");
        }
    }

    #[test]
    fn flow_mappings_that_may_hold_known_keys_are_errors() {
        let message = error("kubernetes: {cluster-id: x}\n");
        assert!(message.starts_with("line 1: "), "{message}");
        assert!(message.contains("`kubernetes`"), "{message}");
        let message = error("kubernetes: &k {cluster-id: x}\n");
        assert!(message.starts_with("line 1: "), "{message}");
        let message =
            error("high-availability:\n  kubernetes: &k {leader-election.lease-duration: 1 s}\n");
        assert!(message.starts_with("line 2: "), "{message}");
        assert!(
            message.contains("`high-availability.kubernetes`"),
            "{message}"
        );
    }

    #[test]
    fn malformed_yaml_below_the_top_level_is_an_error() {
        for (text, line) in [
            ("s3:\n  endpoint: a: b\n", 2),
            ("s3:\n  foo: [unclosed\n", 2),
            ("s3:\n  foo: \"unclosed\n", 2),
            ("s3:\n  foo: \"bad \\q escape\"\n", 2),
            ("s3:\n  foo: @reserved\n", 2),
            ("s3:\n  foo: |x\n", 2),
            ("s3:\n  a: 1\n  - item\n", 3),
            ("s3:\n  ? complex\n  : key\n", 2),
            ("s3:\n  \"unclosed\n", 2),
            ("s3:\n\n  [a] b\n", 3),
            ("s3:\n  foo: 'a' b\n", 2),
            ("{\"kubernetes.cluster-id\": \"x\"}\n", 1),
        ] {
            let message = error(text);
            assert!(
                message.starts_with(&format!("line {line}: ")),
                "{text:?}: {message}"
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let mut text = String::new();
        for depth in 0..100 {
            text.push_str(&" ".repeat(depth));
            text.push_str("k:\n");
        }
        let message = error(&text);
        assert!(message.contains("nested deeper"), "{message}");
    }

    // -------------------------------------------------------------------------------------------
    // Precedence and aliases

    #[test]
    fn cluster_id_precedence() {
        let conf = parse("high-availability.cluster-id: ha-id\nkubernetes.cluster-id: k8s-id\n");
        assert_eq!(conf.cluster_id, some("k8s-id"));
        assert_eq!(conf.ha_cluster_id, some("ha-id"));
        let logs = logs_of(|| {
            parse("high-availability.cluster-id: ha-id\nkubernetes.cluster-id: k8s-id\n");
        });
        assert!(logs.contains("differ"), "{logs}");
        let logs = logs_of(|| {
            parse("high-availability.cluster-id: /same\nkubernetes.cluster-id: same\n");
        });
        assert!(!logs.contains("differ"), "{logs}");

        let conf = parse("high-availability:\n  cluster-id: ha-only\n");
        assert_eq!(conf.cluster_id, some("ha-only"));
        assert_eq!(conf.ha_cluster_id, some("ha-only"));
        let conf = parse("high-availability.zookeeper.path.namespace: /legacy-ns\n");
        assert_eq!(
            conf.cluster_id,
            some("legacy-ns"),
            "Flink drops the leading `/`"
        );
        assert_eq!(conf.ha_cluster_id, some("/legacy-ns"));
        let conf = parse(
            "high-availability.cluster-id: current\nrecovery.zookeeper.path.namespace: old\n",
        );
        assert_eq!(conf.ha_cluster_id, some("current"));
    }

    #[test]
    fn storage_dir_deprecated_keys() {
        let conf = parse("high-availability.zookeeper.storageDir: s3://zk\n");
        assert_eq!(conf.storage_dir, some("s3://zk"));
        let conf = parse("recovery.zookeeper.storageDir: s3://oldest\n");
        assert_eq!(conf.storage_dir, some("s3://oldest"));
        let conf = parse(
            "high-availability.storageDir: s3://new\nhigh-availability.zookeeper.storageDir: s3://zk\n",
        );
        assert_eq!(
            conf.storage_dir,
            some("s3://new"),
            "the current key wins whatever the order"
        );
        let conf =
            parse("high-availability:\n  zookeeper.storageDir: s3://zk\n  storageDir: s3://new\n");
        assert_eq!(conf.storage_dir, some("s3://new"));
    }

    #[test]
    fn s3_aliases() {
        let conf = parse(concat!(
            "fs.s3a.endpoint: http://hadoop\n",
            "fs.s3a.path.style.access: false\n",
            "fs.s3a.access.key: ak\n",
            "fs.s3a.secret.key: sk\n",
        ));
        assert_eq!(conf.s3_endpoint, some("http://hadoop"));
        assert_eq!(conf.s3_path_style, Some(false));
        assert_eq!(conf.s3_access_key, some("ak"));
        assert_eq!(conf.s3_secret_key, some("sk"));

        let conf = parse(concat!(
            "s3.access.key: dotted\n",
            "s3.access-key: dashed\n",
            "presto.s3.endpoint: http://presto\n",
            "s3.path-style-access: true\n",
            "s3.secret.key: dotted-secret\n",
            "s3.access_key: not-a-flink-key\n",
        ));
        assert_eq!(
            conf.s3_access_key,
            some("dashed"),
            "the documented key wins"
        );
        assert_eq!(conf.s3_endpoint, some("http://presto"));
        assert_eq!(conf.s3_path_style, Some(true));
        assert_eq!(conf.s3_secret_key, some("dotted-secret"));
    }

    #[test]
    fn current_checkpoint_key_wins_over_deprecated() {
        let conf =
            parse("execution.checkpointing.num-retained: 3\nstate.checkpoints.num-retained: 9\n");
        assert_eq!(conf.checkpoints_retained, Some(3));
        let conf = parse("state:\n  checkpoints.num-retained: 9\n");
        assert_eq!(conf.checkpoints_retained, Some(9));
    }

    // -------------------------------------------------------------------------------------------
    // Files

    #[test]
    fn a_file_over_one_mebibyte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flink-conf.yaml");
        let mut text = "kubernetes.cluster-id: big\n".to_string();
        while text.len() < 2 * MAX_FILE_BYTES {
            text.push_str("# padding padding padding padding padding padding padding padding\n");
        }
        std::fs::write(&path, &text).unwrap();
        let e = FlinkConf::load(&path).unwrap_err();
        assert!(matches!(e, FlinkConfError::TooLarge { .. }), "{e:?}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");

        // Exactly the limit is fine.
        text.truncate(MAX_FILE_BYTES - 1);
        text.push('\n');
        std::fs::write(&path, &text).unwrap();
        assert_eq!(FlinkConf::load(&path).unwrap().cluster_id, some("big"));
    }

    #[test]
    fn load_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.yaml");
        let e = FlinkConf::load(&missing).unwrap_err();
        assert!(matches!(e, FlinkConfError::Read { .. }), "{e:?}");
        assert!(e.to_string().contains("missing.yaml"), "{e}");

        let bad = dir.path().join("config.yaml");
        std::fs::write(
            &bad,
            "kubernetes:\n  namespace: a\nstate.checkpoints.num-retained: 0\n",
        )
        .unwrap();
        let message = FlinkConf::load(&bad).unwrap_err().to_string();
        assert!(message.starts_with(&bad.display().to_string()), "{message}");
        assert!(message.contains("line 3: "), "{message}");

        let binary = dir.path().join("binary.yaml");
        std::fs::write(&binary, b"a: b\nc: \xff\n").unwrap();
        let message = FlinkConf::load(&binary).unwrap_err().to_string();
        assert!(
            message.contains("binary.yaml") && message.contains("line 2"),
            "{message}"
        );
    }

    // -------------------------------------------------------------------------------------------
    // Properties

    fn yamlish() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            Just("kubernetes".to_string()),
            Just("cluster-id".to_string()),
            Just("s3.secret-key".to_string()),
            Just("high-availability.kubernetes.leader-election.lease-duration".to_string()),
            Just("state.checkpoints.num-retained".to_string()),
            Just(": ".to_string()),
            Just(":".to_string()),
            Just("\n".to_string()),
            Just("\n  ".to_string()),
            Just("\n    ".to_string()),
            Just("\t".to_string()),
            Just(" ".to_string()),
            Just("- ".to_string()),
            Just("#".to_string()),
            Just(" #".to_string()),
            Just("\"".to_string()),
            Just("'".to_string()),
            Just("\\".to_string()),
            Just("\\u12".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just("{".to_string()),
            Just("}".to_string()),
            Just("|".to_string()),
            Just(">-".to_string()),
            Just("&a".to_string()),
            Just("*a".to_string()),
            Just("---".to_string()),
            Just("\r".to_string()),
            Just("15 s".to_string()),
            Just("µ".to_string()),
            "[a-z0-9]{1,6}",
        ];
        prop::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(text in any::<String>()) {
            let _ = FlinkConf::parse(&text);
        }

        #[test]
        fn never_panics_on_yaml_like_text(text in yamlish()) {
            let _ = FlinkConf::parse(&text);
        }

        #[test]
        fn flat_and_nested_forms_agree(
            id in "[a-z][a-z0-9-]{0,20}[a-z0-9]",
            ns in "[a-z][a-z0-9-]{0,10}",
            millis in 0u64..10_000_000,
            retained in 1u32..1000,
            path_style in any::<bool>(),
        ) {
            let flat = format!(
                "kubernetes.cluster-id: {id}\nkubernetes.namespace: {ns}\nhigh-availability.kubernetes.leader-election.lease-duration: {millis}\nstate.checkpoints.num-retained: {retained}\ns3.path.style.access: {path_style}\n"
            );
            let nested = format!(
                "kubernetes:\n  cluster-id: {id}\n  namespace: '{ns}'\nhigh-availability:\n  kubernetes:\n    leader-election.lease-duration: {millis} ms\nstate:\n  checkpoints:\n    num-retained: {retained}\ns3:\n  path.style.access: {path_style}\n"
            );
            let a = FlinkConf::parse(&flat).unwrap();
            let b = FlinkConf::parse(&nested).unwrap();
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(a.cluster_id, Some(id));
            prop_assert_eq!(a.lease_duration, Some(Duration::from_millis(millis)));
        }

        #[test]
        fn durations_in_every_unit(n in 0u64..1_000_000, unit in 0usize..7) {
            let (labels, nanos): (&[&str], u64) = [
                (&["d", "day", "days"][..], 86_400_000_000_000),
                (&["h", "hour", "hours"][..], 3_600_000_000_000),
                (&["min", "minute", "minutes"][..], 60_000_000_000),
                (&["s", "sec", "secs", "second", "seconds"][..], 1_000_000_000),
                (&["ms", "milli", "millis", "millisecond", "milliseconds", ""][..], 1_000_000),
                (&["µs", "micro", "micros", "microsecond", "microseconds"][..], 1_000),
                (&["ns", "nano", "nanos", "nanosecond", "nanoseconds"][..], 1),
            ][unit];
            for label in labels {
                let expected = Duration::from_nanos(0) + Duration::from_nanos(nanos) * u32::try_from(n).unwrap();
                prop_assert_eq!(parse_flink_duration(&format!("{n} {label}")), Some(expected));
                prop_assert_eq!(parse_flink_duration(&format!("{n}{}", label.to_ascii_uppercase())), Some(expected));
            }
        }
    }
}
