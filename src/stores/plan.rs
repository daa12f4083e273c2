//! The stores' pure decisions: key names, the ConfigMap size budget, which checkpoints a
//! new one subsumes, the counter's encoding, how to settle a write whose outcome was
//! unknown, and which payloads are orphans. No I/O here.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use crate::layout::JobId;
use crate::storage::ObjectMeta;

pub const JOB_GRAPH_KEY_PREFIX: &str = "jobGraph-";
pub const RUNNING_JOBS_KEY_PREFIX: &str = "runningJobsRegistry-";
pub const CHECKPOINT_KEY_PREFIX: &str = "checkpointID-";
pub const COUNTER_KEY: &str = "counter";

/// Payload name prefixes under `<storage-dir>/<cluster-id>/`, as Flink names them.
pub const JOB_GRAPH_PAYLOAD_PREFIX: &str = "submittedJobGraph";
pub const CHECKPOINT_PAYLOAD_PREFIX: &str = "completedCheckpoint";
/// Blobs live under `<storage-dir>/<cluster-id>/blob/`.
pub const BLOB_DIR: &str = "blob";

/// Kubernetes refuses a ConfigMap whose data (keys plus values) exceeds 1 MiB.
pub const CONFIGMAP_DATA_LIMIT: usize = 1 << 20;
/// Kept free below that limit for what is written besides the entries: the leader keys
/// and whatever grows in later writes.
pub const CONFIGMAP_HEADROOM: usize = 16 << 10;

/// Flink's checkpoint ids are Java `long`s, and `checkpointID-` keys hold 19 digits: no id
/// (and no counter value) above this is accepted.
pub const MAX_CHECKPOINT_ID: u64 = i64::MAX as u64;

pub fn job_graph_key(job: &JobId) -> String {
    format!("{JOB_GRAPH_KEY_PREFIX}{job}")
}

pub fn running_jobs_key(job: &JobId) -> String {
    format!("{RUNNING_JOBS_KEY_PREFIX}{job}")
}

/// `checkpointID-` and the id as 19 zero-padded digits, like Flink, so that key order is
/// id order.
pub fn checkpoint_key(id: u64) -> String {
    format!("{CHECKPOINT_KEY_PREFIX}{id:019}")
}

/// The id in a checkpoint key; `None` for anything that is not one.
pub fn parse_checkpoint_key(key: &str) -> Option<u64> {
    let digits = key.strip_prefix(CHECKPOINT_KEY_PREFIX)?;
    if digits.len() != 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The job id in a job graph key; `None` for anything that is not one.
pub fn parse_job_graph_key(key: &str) -> Option<JobId> {
    key.strip_prefix(JOB_GRAPH_KEY_PREFIX)?.parse().ok()
}

/// A payload name: the prefix and 12 random lowercase hex digits.
pub fn payload_name(prefix: &str) -> String {
    format!("{prefix}{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff)
}

/// Bytes a ConfigMap's data counts against the limit, as the API server counts them.
pub fn data_size(data: &BTreeMap<String, String>) -> usize {
    data.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// The ConfigMap would be too full after a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "ConfigMap {configmap} holds {used} bytes of data ({percent}% of the {limit}-byte limit); \
     writing {key} ({adding} bytes) would leave less than the {headroom} bytes kept free"
)]
pub struct ConfigMapFull {
    pub configmap: String,
    pub key: String,
    pub used: usize,
    pub adding: usize,
    pub limit: usize,
    pub headroom: usize,
    pub percent: usize,
}

/// Refuse a change that takes `after` past the limit less headroom. `before` is the data
/// as it was, for the message.
pub fn check_budget(
    configmap: &str,
    key: &str,
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Result<(), ConfigMapFull> {
    let used = data_size(before);
    let next = data_size(after);
    if next <= used || next + CONFIGMAP_HEADROOM <= CONFIGMAP_DATA_LIMIT {
        return Ok(());
    }
    Err(ConfigMapFull {
        configmap: configmap.to_string(),
        key: key.to_string(),
        used,
        adding: next - used,
        limit: CONFIGMAP_DATA_LIMIT,
        headroom: CONFIGMAP_HEADROOM,
        percent: used * 100 / CONFIGMAP_DATA_LIMIT,
    })
}

/// The checkpoint ids held in a ConfigMap's data, ascending.
pub fn checkpoint_ids(data: &BTreeMap<String, String>) -> Vec<u64> {
    let mut ids: Vec<u64> = data
        .keys()
        .filter_map(|k| parse_checkpoint_key(k))
        .collect();
    ids.sort_unstable();
    ids
}

/// The ids a store retaining `retained` checkpoints drops: all but the newest `retained`.
pub fn subsumed(ids: &[u64], retained: usize) -> Vec<u64> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let keep_from = sorted.len().saturating_sub(retained.max(1));
    sorted.truncate(keep_from);
    sorted
}

/// The checkpoint counter's value: absent means 1 (nothing taken yet).
pub fn parse_counter(value: Option<&str>) -> Result<u64, String> {
    match value {
        None => Ok(1),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("checkpoint counter value {v:?} is not a non-negative integer")),
    }
}

/// The running-jobs registry's value for a job.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    Running,
    Done,
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobStatus::Running => "RUNNING",
            JobStatus::Done => "DONE",
        })
    }
}

impl FromStr for JobStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "RUNNING" => Ok(JobStatus::Running),
            "DONE" => Ok(JobStatus::Done),
            other => Err(format!("job status {other:?} is neither RUNNING nor DONE")),
        }
    }
}

/// What became of a write whose outcome was unknown, judged from a fresh read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The key holds what the write meant to put there (`None`: the key is gone).
    Landed,
    /// The ConfigMap moved past the version the write was conditioned on without the
    /// change: the write failed and can never land.
    Failed,
    /// Nothing has changed since: the write may still arrive.
    Unknown,
}

/// Settle a write that meant to leave `target` under a key, given the key's value now and
/// whether the ConfigMap's resourceVersion has moved past the one the write was sent on
/// (a ConfigMap that is gone has moved).
pub fn settle(now: Option<&str>, target: Option<&str>, moved: bool) -> Settled {
    if now == target {
        Settled::Landed
    } else if moved {
        Settled::Failed
    } else {
        Settled::Unknown
    }
}

/// Payloads nobody references: every listed object under the payload prefixes that no
/// handle points at and that is older than `min_age` (younger ones may belong to an add
/// whose ConfigMap write is still on its way). Blobs are not payloads of handles and are
/// never listed as orphans here.
pub fn orphans(
    listed: &[ObjectMeta],
    referenced: &HashSet<String>,
    now: SystemTime,
    min_age: Duration,
) -> Vec<ObjectMeta> {
    listed
        .iter()
        .filter(|o| {
            let name = o.location.file_name();
            name.starts_with(JOB_GRAPH_PAYLOAD_PREFIX)
                || name.starts_with(CHECKPOINT_PAYLOAD_PREFIX)
        })
        .filter(|o| !referenced.contains(&o.location.to_string()))
        .filter(|o| match o.last_modified {
            Some(t) => now.duration_since(t).unwrap_or_default() >= min_age,
            None => min_age.is_zero(),
        })
        .cloned()
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::storage::Location;

    /// ConfigMap data from pairs (shared with the stores' tests).
    pub(crate) fn data(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn checkpoint_keys_are_flinks_and_sort_by_id() {
        assert_eq!(checkpoint_key(42), "checkpointID-0000000000000000042");
        assert_eq!(checkpoint_key(u64::MAX).len(), "checkpointID-".len() + 20);
        assert_eq!(
            parse_checkpoint_key("checkpointID-0000000000000000042"),
            Some(42)
        );
        for bad in [
            "checkpointID-42",
            "checkpointID-000000000000000004x",
            "counter",
            "checkpointID-",
        ] {
            assert_eq!(parse_checkpoint_key(bad), None, "{bad}");
        }
        let d = data(&[
            (&checkpoint_key(10), "a"),
            (&checkpoint_key(9), "b"),
            ("counter", "11"),
            ("address", "x"),
        ]);
        assert_eq!(checkpoint_ids(&d), vec![9, 10]);
    }

    #[test]
    fn job_graph_keys_round_trip() {
        let job: JobId = "307e2d6a5be8307e2d6a5be8307e2d6a".parse().unwrap();
        assert_eq!(
            job_graph_key(&job),
            "jobGraph-307e2d6a5be8307e2d6a5be8307e2d6a"
        );
        assert_eq!(
            running_jobs_key(&job),
            "runningJobsRegistry-307e2d6a5be8307e2d6a5be8307e2d6a"
        );
        assert_eq!(parse_job_graph_key(&job_graph_key(&job)), Some(job));
        assert_eq!(parse_job_graph_key("jobGraph-nothex"), None);
    }

    #[test]
    fn payload_names_have_twelve_hex_digits() {
        let name = payload_name(CHECKPOINT_PAYLOAD_PREFIX);
        let suffix = name.strip_prefix(CHECKPOINT_PAYLOAD_PREFIX).unwrap();
        assert_eq!(suffix.len(), 12);
        assert!(
            suffix
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        );
    }

    #[test]
    fn budget_counts_keys_and_values_and_keeps_headroom() {
        let before = data(&[("a", "12345")]);
        assert_eq!(data_size(&before), 6);
        let mut after = before.clone();
        after.insert(
            "big".into(),
            "x".repeat(CONFIGMAP_DATA_LIMIT - CONFIGMAP_HEADROOM - 9),
        );
        assert_eq!(data_size(&after), CONFIGMAP_DATA_LIMIT - CONFIGMAP_HEADROOM);
        assert!(check_budget("cm", "big", &before, &after).is_ok());
        after.insert(
            "big".into(),
            "x".repeat(CONFIGMAP_DATA_LIMIT - CONFIGMAP_HEADROOM - 8),
        );
        let full = check_budget("cm", "big", &before, &after).unwrap_err();
        assert_eq!(full.used, 6);
        assert_eq!(
            full.adding,
            CONFIGMAP_DATA_LIMIT - CONFIGMAP_HEADROOM - 8 + 3
        );
        let msg = full.to_string();
        assert!(msg.contains("ConfigMap cm holds 6 bytes"), "{msg}");
        assert!(msg.contains("writing big"), "{msg}");
        // A change that shrinks an over-full ConfigMap is always allowed.
        let shrunk = data(&[]);
        assert!(check_budget("cm", "big", &after, &shrunk).is_ok());
    }

    #[test]
    fn subsumes_all_but_the_newest() {
        assert_eq!(subsumed(&[3, 1, 2], 1), vec![1, 2]);
        assert_eq!(subsumed(&[3, 1, 2], 2), vec![1]);
        assert_eq!(subsumed(&[3, 1, 2], 5), Vec::<u64>::new());
        assert_eq!(subsumed(&[], 1), Vec::<u64>::new());
        // Retaining zero would drop the checkpoint just written: treated as one.
        assert_eq!(subsumed(&[4, 5], 0), vec![4]);
    }

    #[test]
    fn counter_absent_is_one() {
        assert_eq!(parse_counter(None), Ok(1));
        assert_eq!(parse_counter(Some("17")), Ok(17));
        assert!(parse_counter(Some("-1")).unwrap_err().contains("-1"));
        assert!(parse_counter(Some("x")).is_err());
    }

    #[test]
    fn job_status_text() {
        assert_eq!("RUNNING".parse(), Ok(JobStatus::Running));
        assert_eq!(" DONE\n".parse(), Ok(JobStatus::Done));
        assert!("running".parse::<JobStatus>().is_err());
        assert_eq!(JobStatus::Done.to_string(), "DONE");
    }

    #[test]
    fn settling_an_unknown_write() {
        assert_eq!(settle(Some("h"), Some("h"), false), Settled::Landed);
        assert_eq!(settle(Some("h"), Some("h"), true), Settled::Landed);
        assert_eq!(settle(None, Some("h"), true), Settled::Failed);
        assert_eq!(settle(None, Some("h"), false), Settled::Unknown);
        assert_eq!(settle(Some("old"), Some("new"), true), Settled::Failed);
        // A removal landed when the key is gone.
        assert_eq!(settle(None, None, false), Settled::Landed);
        assert_eq!(settle(Some("h"), None, false), Settled::Unknown);
    }

    #[test]
    fn orphans_are_unreferenced_old_payloads() {
        let now = SystemTime::now();
        let old = now - Duration::from_secs(600);
        let meta = |name: &str, t: Option<SystemTime>| ObjectMeta {
            location: Location::parse(&format!("s3://b/ha/c1/{name}")).unwrap(),
            size: 1,
            last_modified: t,
        };
        let listed = vec![
            meta("completedCheckpoint000000000001", Some(old)),
            meta("completedCheckpoint000000000002", Some(old)),
            meta("submittedJobGraph000000000003", Some(now)),
            meta("submittedJobGraph000000000004", None),
            meta("blob/abc", Some(old)),
        ];
        let referenced: HashSet<String> =
            ["s3://b/ha/c1/completedCheckpoint000000000002".to_string()].into();
        let found = orphans(&listed, &referenced, now, Duration::from_secs(60));
        let names: Vec<_> = found
            .iter()
            .map(|o| o.location.file_name().to_string())
            .collect();
        assert_eq!(names, vec!["completedCheckpoint000000000001"]);
        let all = orphans(&listed, &referenced, now, Duration::ZERO);
        assert_eq!(all.len(), 3);
    }
}
