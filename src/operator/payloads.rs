//! Payloads under a cluster's HA directory: where that directory is, which objects are
//! orphans (pure), and the I/O that checks handles, collects orphans (`--gc`, `hakeeper gc`)
//! and removes a cluster for good (`hakeeper cleanup`).
//!
//! What may be deleted is narrow on purpose: only objects directly in the HA directory named
//! the way Flink and hakeeper name payloads (`submittedJobGraph…`, `completedCheckpoint…`),
//! and blobs of jobs no ConfigMap mentions (`blob/job_<id>/…`), unreferenced by any handle and
//! older than the grace period. Anything else found there is left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Preconditions};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::inspect::{self, LockStatus, Report};
use crate::layout::{ClusterId, JobId};
use crate::storage::{Location, ObjectMeta, ObjectStore, S3Options, StorageError};
use crate::stores::plan::{BLOB_DIR, CHECKPOINT_PAYLOAD_PREFIX, JOB_GRAPH_PAYLOAD_PREFIX};

/// Every decoded handle path of the report (marked for deletion or not: Flink still owns
/// those until it removes the entry).
pub fn referenced_paths(report: &Report) -> BTreeSet<String> {
    report
        .jobs
        .iter()
        .flat_map(|j| j.graph.iter().chain(j.checkpoints.iter().map(|c| &c.entry)))
        .filter_map(|h| h.handle.as_ref().map(|d| d.path.clone()))
        .collect()
}

/// Handle entries (`<configmap>/<key>`) whose value is not a state handle. The payload such
/// an entry was written for cannot be told from an orphan, so none is deleted while one exists.
pub fn undecodable_handles(report: &Report) -> Vec<String> {
    report
        .jobs
        .iter()
        .flat_map(|j| j.graph.iter().chain(j.checkpoints.iter().map(|c| &c.entry)))
        .filter(|h| h.handle.is_none())
        .map(|h| format!("{}/{}", h.configmap, h.key))
        .collect()
}

/// The cluster's HA directory (`<high-availability.storageDir>/<cluster-id>`) as its handles
/// show it: the prefix up to the last `/<cluster-id>/` segment, the one most handles agree on.
/// Paths not under it are returned second (reported, never touched). `None` when no handle
/// names the cluster's directory.
pub fn ha_dir(cluster: &ClusterId, paths: &BTreeSet<String>) -> (Option<Location>, Vec<String>) {
    let votes = candidate_dirs(cluster, paths);
    let dir = votes
        .iter()
        .max_by_key(|(d, n)| (**n, std::cmp::Reverse((*d).clone())))
        .and_then(|(d, _)| Location::parse(d).ok());
    let outside = outside_of(dir.as_ref(), paths);
    (dir, outside)
}

/// Every directory ending in `/<cluster-id>` that a handle points into, with how many do.
pub fn candidate_dirs(cluster: &ClusterId, paths: &BTreeSet<String>) -> BTreeMap<String, usize> {
    let segment = format!("/{cluster}/");
    let mut votes: BTreeMap<String, usize> = BTreeMap::new();
    for p in paths {
        if let Some(i) = p.rfind(&segment) {
            *votes
                .entry(p[..i + segment.len() - 1].to_string())
                .or_default() += 1;
        }
    }
    votes
}

/// The paths not under `dir` (all of them when there is no directory).
pub fn outside_of(dir: Option<&Location>, paths: &BTreeSet<String>) -> Vec<String> {
    paths
        .iter()
        .filter(|p| match (dir, Location::parse(p)) {
            (Some(d), Ok(l)) => !l.is_under(d),
            _ => true,
        })
        .cloned()
        .collect()
}

/// Why an object under the HA directory is or is not collectable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// Unreferenced, named like a payload, older than the grace period.
    Orphan,
    /// Unreferenced but younger than the grace period (it may be about to be referenced).
    TooYoung,
    Referenced,
    /// Not a name hakeeper or Flink gives payloads: never touched.
    Unknown,
}

/// Judge one object of the HA directory `dir` (pure).
pub fn judge(
    dir: &Location,
    object: &ObjectMeta,
    referenced: &BTreeSet<String>,
    jobs: &BTreeSet<JobId>,
    now: SystemTime,
    grace: Duration,
) -> Verdict {
    let path = object.location.to_string();
    let Some(relative) = path
        .strip_prefix(&dir.to_string())
        .and_then(|r| r.strip_prefix('/'))
    else {
        return Verdict::Unknown;
    };
    let segments: Vec<&str> = relative.split('/').collect();
    let payload_like = match segments.as_slice() {
        [name] => {
            name.starts_with(JOB_GRAPH_PAYLOAD_PREFIX)
                || name.starts_with(CHECKPOINT_PAYLOAD_PREFIX)
        }
        [blob, job, _, ..] if *blob == BLOB_DIR => match job
            .strip_prefix("job_")
            .and_then(|id| id.parse::<JobId>().ok())
        {
            Some(job) => {
                if jobs.contains(&job) {
                    return Verdict::Referenced;
                }
                true
            }
            None => false,
        },
        _ => false,
    };
    if !payload_like {
        return Verdict::Unknown;
    }
    if referenced.contains(&path) {
        return Verdict::Referenced;
    }
    let old_enough = object
        .last_modified
        .and_then(|m| now.duration_since(m).ok())
        .is_some_and(|age| age >= grace);
    if old_enough {
        Verdict::Orphan
    } else {
        Verdict::TooYoung
    }
}

/// Opens the store for any handle's location: one file store, one S3 client (made on first
/// use, for any bucket the credentials reach).
pub struct Stores {
    s3: S3Options,
    file: Arc<dyn ObjectStore>,
    s3_store: Mutex<Option<Arc<dyn ObjectStore>>>,
}

impl Stores {
    pub fn new(s3: S3Options) -> Self {
        Stores {
            s3,
            file: Arc::new(crate::storage::FileStore::new()),
            s3_store: Mutex::new(None),
        }
    }

    pub async fn for_location(
        &self,
        location: &Location,
    ) -> Result<Arc<dyn ObjectStore>, StorageError> {
        match location {
            Location::File { .. } => Ok(self.file.clone()),
            Location::S3 { .. } => {
                let mut s3 = self.s3_store.lock().await;
                if let Some(store) = &*s3 {
                    return Ok(store.clone());
                }
                let store = crate::storage::open(location, &self.s3).await?;
                *s3 = Some(store.clone());
                Ok(store)
            }
        }
    }
}

/// What a garbage collection found and did in one cluster's HA directory.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    pub cluster: String,
    pub namespace: String,
    /// The HA directory, if it could be told.
    pub dir: Option<String>,
    /// Handle paths outside the HA directory (reported, never touched).
    pub outside: Vec<String>,
    pub objects: usize,
    pub referenced: usize,
    pub too_young: usize,
    pub unknown: usize,
    /// Orphans (older than the grace period, unreferenced).
    pub orphans: Vec<Orphan>,
    pub orphan_bytes: u64,
    /// Deleted (with `delete`): orphans that were still unreferenced on a fresh read.
    pub deleted: Vec<String>,
    pub deleted_bytes: u64,
    /// Orphans not deleted because a fresh read found them referenced, a handle entry could
    /// not be decoded, or deleting failed.
    pub kept: Vec<String>,
    /// Handle entries (`<configmap>/<key>`) that could not be decoded: while there is one,
    /// no orphan is deleted (it may be the payload that entry references).
    pub undecodable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Orphan {
    pub path: String,
    pub size: u64,
}

fn jobs_of(cluster: &ClusterId, configmaps: &[ConfigMap]) -> BTreeSet<JobId> {
    inspect::referenced_jobs(cluster, configmaps)
}

/// Collect one cluster's orphans: list its HA directory (`dir`, or the one its handles show),
/// judge every object, and with `delete` re-read the ConfigMaps and delete what is still an
/// unreferenced orphan. A crash at any point leaves only fewer orphans: nothing referenced is
/// ever deleted, and a deleted orphan was referenced by nothing.
pub async fn collect_garbage(
    client: kube::Client,
    namespace: &str,
    cluster: &ClusterId,
    storage_dir: Option<&Location>,
    stores: &Stores,
    grace: Duration,
    delete: bool,
) -> crate::Result<GcReport> {
    let configmaps = inspect::collect(client.clone(), namespace, cluster).await?;
    let report = inspect::build(cluster, &configmaps, jiff::Timestamp::now());
    let referenced = referenced_paths(&report);
    let (derived, _) = ha_dir(cluster, &referenced);
    let dir = resolve_dir(storage_dir, cluster, derived);
    // Outside the directory collected here, which `--storage-dir` may have chosen.
    let outside = outside_of(dir.as_ref(), &referenced);
    let mut out = GcReport {
        cluster: cluster.to_string(),
        namespace: namespace.to_string(),
        dir: dir.as_ref().map(ToString::to_string),
        outside,
        undecodable: undecodable_handles(&report),
        ..Default::default()
    };
    let Some(dir) = dir else {
        return Ok(out);
    };
    let store = stores.for_location(&dir).await.map_err(storage_error)?;
    let objects = store.list_dir(&dir).await.map_err(storage_error)?;
    let jobs = jobs_of(cluster, &configmaps);
    let now = SystemTime::now();
    out.objects = objects.len();
    for o in &objects {
        match judge(&dir, o, &referenced, &jobs, now, grace) {
            Verdict::Orphan => {
                out.orphan_bytes += o.size;
                out.orphans.push(Orphan {
                    path: o.location.to_string(),
                    size: o.size,
                });
            }
            Verdict::TooYoung => out.too_young += 1,
            Verdict::Referenced => out.referenced += 1,
            Verdict::Unknown => out.unknown += 1,
        }
    }
    if !delete || out.orphans.is_empty() {
        return Ok(out);
    }
    // Right before deleting: read the ConfigMaps again. A handle added since the listing (a
    // checkpoint completing now) protects its payload.
    let fresh = inspect::collect(client, namespace, cluster).await?;
    let fresh_report = inspect::build(cluster, &fresh, jiff::Timestamp::now());
    let still_referenced = referenced_paths(&fresh_report);
    let fresh_jobs = jobs_of(cluster, &fresh);
    for entry in undecodable_handles(&fresh_report) {
        if !out.undecodable.contains(&entry) {
            out.undecodable.push(entry);
        }
    }
    if !out.undecodable.is_empty() {
        tracing::warn!(cluster = %cluster, entries = ?out.undecodable, "not deleting orphans: handle entries that cannot be decoded may reference them");
        out.kept = out.orphans.iter().map(|o| o.path.clone()).collect();
        return Ok(out);
    }
    let orphan_paths: BTreeSet<String> = out.orphans.iter().map(|o| o.path.clone()).collect();
    for object in objects {
        let path = object.location.to_string();
        if !orphan_paths.contains(&path) {
            continue;
        }
        if judge(&dir, &object, &still_referenced, &fresh_jobs, now, grace) != Verdict::Orphan {
            out.kept.push(path);
            continue;
        }
        match store.delete(&object.location).await {
            Ok(()) => {
                out.deleted.push(path);
                out.deleted_bytes += object.size;
            }
            Err(e) => {
                tracing::warn!(payload = %path, error = %e, "could not delete an orphan; left for the next collection");
                out.kept.push(path);
            }
        }
    }
    Ok(out)
}

/// `--storage-dir`/<cluster-id> when given, else the directory the handles show.
fn resolve_dir(
    storage_dir: Option<&Location>,
    cluster: &ClusterId,
    derived: Option<Location>,
) -> Option<Location> {
    match storage_dir {
        Some(d) => Some(d.join(cluster.as_str())),
        None => derived,
    }
}

/// A storage failure (unreachable, refused) is no configuration error: say what it is.
fn storage_error(e: StorageError) -> crate::Error {
    crate::Error::io("storage", std::io::Error::other(e))
}

/// What `hakeeper cleanup` removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupReport {
    pub dir: Option<String>,
    pub payloads_deleted: Vec<String>,
    pub payload_bytes: u64,
    pub configmaps_deleted: Vec<String>,
    /// Handle paths outside the HA directory: not deleted.
    pub outside: Vec<String>,
}

/// Components with a live leader (lease held by its record), as `component (holder)`.
pub fn live_leaders(report: &Report) -> Vec<String> {
    report
        .components
        .iter()
        .filter(|c| c.lock.status == LockStatus::Held)
        .map(|c| {
            format!(
                "{} ({})",
                c.component,
                c.lock.holder_identity.as_deref().unwrap_or("?")
            )
        })
        .collect()
}

/// The ConfigMaps `cleanup` removes: those with the cluster's HA labels and those named by its
/// layout (a lock ConfigMap has no labels until its first leader write).
fn cleanup_targets(report: &Report, configmaps: &[ConfigMap], cluster: &ClusterId) -> Vec<String> {
    let labels = cluster.labels();
    let app = labels.get(crate::layout::LABEL_APP);
    let kind = labels.get(crate::layout::LABEL_CONFIGMAP_TYPE);
    let mut names: BTreeSet<String> = report
        .configmaps
        .iter()
        .filter(|c| c.layout.is_some())
        .map(|c| c.name.clone())
        .collect();
    for cm in configmaps {
        let l = cm.metadata.labels.clone().unwrap_or_default();
        if l.get(crate::layout::LABEL_APP) == app
            && l.get(crate::layout::LABEL_CONFIGMAP_TYPE) == kind
            && let Some(n) = &cm.metadata.name
        {
            names.insert(n.clone());
        }
    }
    names.into_iter().collect()
}

/// Remove a cluster that is gone for good: every payload under its HA directory first, then
/// its HA ConfigMaps (so a crash in between leaves the handles that lead a re-run to the
/// directory). Refuses while a component has a live leader, unless `force`.
pub async fn cleanup(
    client: kube::Client,
    namespace: &str,
    cluster: &ClusterId,
    storage_dir: Option<&Location>,
    stores: &Stores,
    force: bool,
) -> crate::Result<CleanupReport> {
    let configmaps = inspect::collect(client.clone(), namespace, cluster).await?;
    let report = inspect::build(cluster, &configmaps, jiff::Timestamp::now());
    let live = live_leaders(&report);
    if !live.is_empty() && !force {
        return Err(crate::Error::Refused(format!(
            "cluster {cluster} in namespace {namespace} still has live leaders: {}; stop its JobManagers first, or pass --force",
            live.join(", ")
        )));
    }
    let referenced = referenced_paths(&report);
    // Everything under the directory is deleted: never on a majority vote of handles that
    // anyone who can write the ConfigMaps can cast.
    let candidates = candidate_dirs(cluster, &referenced);
    if storage_dir.is_none() && candidates.len() > 1 {
        return Err(crate::Error::Refused(format!(
            "the handles of cluster {cluster} point into more than one directory ({}); pass --storage-dir to say which HA directory to empty",
            candidates.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let (derived, _) = ha_dir(cluster, &referenced);
    let dir = resolve_dir(storage_dir, cluster, derived);
    // Outside the directory collected here, which `--storage-dir` may have chosen.
    let outside = outside_of(dir.as_ref(), &referenced);
    let mut out = CleanupReport {
        dir: dir.as_ref().map(ToString::to_string),
        outside,
        ..Default::default()
    };
    if let Some(dir) = &dir {
        let store = stores.for_location(dir).await.map_err(storage_error)?;
        for object in store.list_dir(dir).await.map_err(storage_error)? {
            store
                .delete(&object.location)
                .await
                .map_err(storage_error)?;
            // Said as it happens: a cleanup that fails later has still done this.
            tracing::info!(payload = %object.location, bytes = object.size, "deleted");
            out.payload_bytes += object.size;
            out.payloads_deleted.push(object.location.to_string());
        }
    }
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    for name in cleanup_targets(&report, &configmaps, cluster) {
        let uid = configmaps
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(&name))
            .and_then(|c| c.metadata.uid.clone());
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid,
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => out.configmaps_deleted.push(name),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// At most `ops_per_second` storage operations: each waits for its slot.
pub struct Pace {
    interval: Duration,
    next: tokio::time::Instant,
}

impl Pace {
    pub fn new(ops_per_second: f64) -> Self {
        Pace {
            interval: Duration::from_secs_f64(1.0 / ops_per_second.max(0.001)),
            next: tokio::time::Instant::now(),
        }
    }

    pub async fn wait(&mut self) {
        let now = tokio::time::Instant::now();
        if self.next > now {
            tokio::time::sleep_until(self.next).await;
        } else {
            self.next = now;
        }
        self.next += self.interval;
    }
}

/// A handle to check: `(configmap, key, path, recorded size)`.
pub type HandleToCheck = (String, String, String, i64);

/// The handles of a report worth checking: decoded, not marked for deletion, under the HA
/// directory (a path outside it is never read).
pub fn handles_to_check(report: &Report, dir: Option<&Location>) -> Vec<HandleToCheck> {
    report
        .jobs
        .iter()
        .flat_map(|j| j.graph.iter().chain(j.checkpoints.iter().map(|c| &c.entry)))
        .filter_map(|h| {
            let d = h.handle.as_ref()?;
            if d.marked_for_deletion == Some(true) {
                return None;
            }
            let location = Location::parse(&d.path).ok()?;
            if !dir.is_some_and(|dir| location.is_under(dir)) {
                return None;
            }
            Some((
                h.configmap.clone(),
                h.key.clone(),
                d.path.clone(),
                d.state_size,
            ))
        })
        .collect()
}

/// Check each handle's payload by its size (a HEAD, never a download), paced. A handle that
/// cannot be checked (the store failed) is left out of the results.
pub async fn check_handles(
    handles: &[HandleToCheck],
    stores: &Stores,
    pace: &mut Pace,
) -> (Vec<crate::operator::track::PayloadResult>, Option<String>) {
    let mut results = Vec::new();
    let mut error = None;
    for h in handles {
        let (configmap, key, path, recorded) = (h.0.clone(), h.1.clone(), h.2.clone(), h.3);
        let Ok(location) = Location::parse(&path) else {
            continue;
        };
        pace.wait().await;
        let store = match stores.for_location(&location).await {
            Ok(s) => s,
            Err(e) => {
                error = Some(e.to_string());
                continue;
            }
        };
        let problem = match store.size(&location).await {
            Ok(None) => Some("is missing".to_string()),
            Ok(Some(size)) if i64::try_from(size).ok() == Some(recorded) => None,
            Ok(Some(size)) => Some(format!(
                "has {size} bytes where the handle records {recorded}"
            )),
            Err(e) => {
                error = Some(e.to_string());
                continue;
            }
        };
        results.push(crate::operator::track::PayloadResult {
            configmap,
            key,
            path,
            problem,
        });
    }
    (results, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> ClusterId {
        "rta".parse().unwrap()
    }

    fn paths(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn object(path: &str, age: Duration, now: SystemTime) -> ObjectMeta {
        ObjectMeta {
            location: Location::parse(path).unwrap(),
            size: 10,
            last_modified: Some(now - age),
        }
    }

    #[test]
    fn the_ha_directory_is_where_most_handles_point() {
        let (dir, outside) = ha_dir(
            &cluster(),
            &paths(&[
                "s3://b/flink/ha/rta/submittedJobGraph1",
                "s3://b/flink/ha/rta/completedCheckpoint2",
                "s3://other/x/rta/completedCheckpoint3",
                "s3://b/elsewhere/completedCheckpoint4",
            ]),
        );
        assert_eq!(dir.unwrap().to_string(), "s3://b/flink/ha/rta");
        assert_eq!(
            outside,
            vec![
                "s3://b/elsewhere/completedCheckpoint4".to_string(),
                "s3://other/x/rta/completedCheckpoint3".to_string()
            ]
        );
        assert_eq!(ha_dir(&cluster(), &BTreeSet::new()).0, None);
        assert_eq!(
            ha_dir(&cluster(), &paths(&["s3://b/rta-2/completedCheckpoint1"])).0,
            None,
            "rta-2 is another cluster"
        );
    }

    #[test]
    fn every_directory_a_handle_points_into_is_a_candidate() {
        let votes = candidate_dirs(
            &cluster(),
            &paths(&[
                "s3://b/flink/ha/rta/submittedJobGraph1",
                "s3://b/flink/ha/rta/completedCheckpoint2",
                "s3://b/team-b/rta/completedCheckpoint3",
                "s3://b/elsewhere/completedCheckpoint4",
            ]),
        );
        assert_eq!(
            votes,
            BTreeMap::from([
                ("s3://b/flink/ha/rta".to_string(), 2),
                ("s3://b/team-b/rta".to_string(), 1)
            ])
        );
    }

    #[test]
    fn only_old_unreferenced_payload_names_are_orphans() {
        let now = SystemTime::now();
        let dir = Location::parse("s3://b/ha/rta").unwrap();
        let hour = Duration::from_secs(3600);
        let referenced = paths(&["s3://b/ha/rta/completedCheckpoint1"]);
        let job: JobId = "00000000000000000000000000000001".parse().unwrap();
        let jobs = BTreeSet::from([job]);
        let judge_of = |path: &str, age: Duration| {
            judge(&dir, &object(path, age, now), &referenced, &jobs, now, hour)
        };
        assert_eq!(
            judge_of("s3://b/ha/rta/completedCheckpoint1", 2 * hour),
            Verdict::Referenced
        );
        assert_eq!(
            judge_of("s3://b/ha/rta/completedCheckpoint2", 2 * hour),
            Verdict::Orphan
        );
        assert_eq!(
            judge_of("s3://b/ha/rta/submittedJobGraph9", 2 * hour),
            Verdict::Orphan
        );
        assert_eq!(
            judge_of("s3://b/ha/rta/completedCheckpoint3", hour / 2),
            Verdict::TooYoung
        );
        assert_eq!(
            judge_of("s3://b/ha/rta/notes.txt", 2 * hour),
            Verdict::Unknown
        );
        assert_eq!(
            judge_of("s3://b/ha/rta/sub/completedCheckpoint4", 2 * hour),
            Verdict::Unknown,
            "payloads live directly in the directory"
        );
        assert_eq!(
            judge_of(
                "s3://b/ha/rta/blob/job_00000000000000000000000000000001/blob_p-1",
                2 * hour
            ),
            Verdict::Referenced,
            "the blobs of a job the ConfigMaps mention"
        );
        assert_eq!(
            judge_of(
                "s3://b/ha/rta/blob/job_00000000000000000000000000000002/blob_p-1",
                2 * hour
            ),
            Verdict::Orphan
        );
        assert_eq!(
            judge_of("s3://b/ha/rta/blob/incoming/x", 2 * hour),
            Verdict::Unknown
        );
        let undated = ObjectMeta {
            last_modified: None,
            ..object("s3://b/ha/rta/completedCheckpoint5", 2 * hour, now)
        };
        assert_eq!(
            judge(&dir, &undated, &referenced, &jobs, now, hour),
            Verdict::TooYoung,
            "an object of unknown age is never old enough"
        );
    }
}
