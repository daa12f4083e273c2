//! Reading Flink's own configuration file (`--flink-conf PATH`), so that the settings hakeeper
//! shares with Flink come from the file Flink itself reads instead of being repeated by hand.
//!
//! # Two formats, chosen by the file's name
//!
//! Flink picks the format by the file's name, and so does [`FlinkConf::load`]:
//!
//! - `config.yaml` (Flink 1.19 and later) is YAML 1.2, which Flink reads with snakeyaml-engine
//!   (core schema) and flattens into keys: nested mapping keys are joined with `.`, and a key may
//!   itself contain dots, so `kubernetes.leader-election.lease-duration` under
//!   `high-availability` is `high-availability.kubernetes.leader-election.lease-duration`.
//!   hakeeper reads it with `saphyr-parser` (`yaml.rs`): anchors and aliases, block scalars
//!   (`|`, `>`), flow collections, quoting, comments and tags are YAML's. Flow mappings are
//!   flattened like block ones; a list under a key hakeeper uses is an error. A plain scalar is
//!   read as Flink reads it: by the core schema, written back as text (`True` is `true`, `0x10`
//!   is `16`, `1e3` is `1000.0`; see `yaml::core_text`). A file that is not YAML is an error
//!   naming its line, as are a tab that indents a line, a key given twice in one mapping, a
//!   second document (`---`), nesting deeper than 64 levels and aliases that expand past a
//!   million settings.
//! - Any other name, `flink-conf.yaml` above all (what Flink up to 1.18 reads, and later
//!   versions when there is no `config.yaml`), is read line by line by Flink's legacy rules
//!   (`legacy.rs`), which are not YAML: everything from the first `#` is a comment, the rest is
//!   split at its first `": "`, key and value are trimmed and taken verbatim, and a line that does
//!   not fit is skipped with a warning. So quotes stay part of a value, `a#b` is `a`, `~` is the
//!   text `~`, and the lines of a nested block are read as top-level keys (`kubernetes:` alone is
//!   skipped, and an indented `cluster-id: x` below it sets `cluster-id`, not
//!   `kubernetes.cluster-id`).
//!
//! In both, a byte order mark is dropped, and `\r\n`, `\n` and a lone `\r` end lines.
//!
//! # Values
//!
//! Values are converted the way Flink converts them: durations as Flink's
//! `TimeUtils.parseDuration` reads them, where a bare number is **milliseconds** (unlike
//! [`crate::duration::parse_duration`], which reads it as seconds) and the units are `d`, `h`,
//! `min`, `s`, `ms`, `µs` and `ns` with their long forms; booleans are `true` or `false` in any
//! letter case; counts are decimal integers. An empty value (`key:` with nothing after it; in YAML also `~`
//! or `null`, unquoted, or `!!null`) leaves the setting unset, as if the key were not there. A key given
//! twice (in `flink-conf.yaml`, or in `config.yaml` once nested and once dotted) is taken from
//! the later one, as Flink takes it. A current key wins over its deprecated and alias forms
//! whatever their order.
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

use legacy::java_trim;

mod legacy;
mod yaml;

/// The most [`FlinkConf::load`] reads; a larger file is refused.
pub const MAX_FILE_BYTES: usize = 1 << 20;

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

/// How a configuration file is read (see the [module documentation](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `config.yaml`, Flink 1.19 and later: YAML 1.2, nested keys joined with `.`.
    Yaml,
    /// `flink-conf.yaml`, Flink up to 1.18: `key: value` lines, read line by line.
    Legacy,
}

impl Format {
    /// The format Flink reads a file of this name in: YAML for `config.yaml`, else legacy.
    pub fn of(path: &Path) -> Format {
        if path.file_name().is_some_and(|name| name == "config.yaml") {
            Format::Yaml
        } else {
            Format::Legacy
        }
    }
}

impl FlinkConf {
    /// Read the settings from the text of a configuration file in `format`.
    pub fn parse(text: &str, format: Format) -> Result<FlinkConf, FlinkConfError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // YAML and Java's line reader both take `\r\n`, `\n` and a lone `\r` as line ends.
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let flat = match format {
            Format::Yaml => yaml::read(&text)?,
            Format::Legacy => legacy::read(&text),
        };
        let entries = flat
            .into_iter()
            .filter_map(|yaml::Flat { key, line, value }| {
                lookup(&key).map(|(field, rank)| Entry {
                    field,
                    rank,
                    key,
                    line,
                    value,
                })
            })
            .collect();
        resolve(entries)
    }

    /// Read and parse the file at `path` (at most [`MAX_FILE_BYTES`]) in the format its name
    /// calls for ([`Format::of`]): YAML if it is named `config.yaml`, Flink's legacy line rules
    /// otherwise. Errors name the path.
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
        FlinkConf::parse(&text, Format::of(path)).map_err(|error| FlinkConfError::InFile {
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

// ------------------------------------------------------------------------------------------------
// Values as read, before conversion

/// What a value turned out to be.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Scalar(String),
    /// Nothing, `~` or `null`: the key is left unset.
    Null,
    /// A YAML list, described: Flink keeps it whole as a string in YAML's flow form, which is
    /// never a value of one of hakeeper's settings.
    Other(&'static str),
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
// From entries to settings

const DURATION_EXPECTED: &str = "a duration such as `15 s`, `15000 ms` or `1 min` (a bare number is milliseconds; units d, h, min, s, ms, µs, ns)";
const COUNT_EXPECTED: &str = "a whole number of at least 1";
const BOOL_EXPECTED: &str = "`true` or `false`";
const STRING_EXPECTED: &str = "a non-empty string";

fn resolve(entries: Vec<Entry>) -> Result<FlinkConf, FlinkConfError> {
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
        Value::Other(what) => what.to_string(),
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
mod tests;
