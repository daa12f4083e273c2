//! `hakeeper inspect`: what a Flink cluster's HA ConfigMaps hold, for people (a
//! `kubectl describe` for HA state) and for scripts (JSON).
//!
//! Three steps, with the I/O at the edges:
//!
//! 1. [`collect`] reads the cluster's ConfigMaps: by label, and by name for those that may not
//!    carry the labels yet (see below).
//! 2. [`build`] turns them into a [`Report`]: a pure function of the ConfigMaps and the time.
//!    Nothing in a ConfigMap makes it fail: whatever cannot be read is reported as malformed.
//! 3. Optionally [`verify`] checks every handle's payload in the object store (exists, and has
//!    the size the handle records) and lists the dangling handles.
//!
//! [`render_table`] and [`render_json`] print the report.
//!
//! # Layouts
//!
//! Two layouts exist; [`build`] detects them from the ConfigMaps' names and shows both when both
//! are there (a cluster upgraded across Flink 1.15 keeps the old ConfigMaps).
//!
//! * [`Layout::PerComponent`]: Flink 1.12–1.14 (and 1.15–1.16 with
//!   `high-availability.use-old-ha-services`), and hakeeper's own stores. One ConfigMap per
//!   component (`<cluster-id>-dispatcher-leader`, `-resourcemanager-leader`, `-restserver-leader`,
//!   `<cluster-id>-<job-id>-jobmanager-leader`), each its own lock (the leader annotation) with
//!   the leader's `address` and `sessionId` in its data. The dispatcher's also holds the job graphs
//!   (`jobGraph-<job-id>`) and the running-jobs registry (`runningJobsRegistry-<job-id>`: `RUNNING`
//!   or `DONE`); a job manager's holds the job's retained checkpoints (`checkpointID-<19 digits>`)
//!   and its checkpoint counter (`counter`; absent means 1).
//! * [`Layout::ClusterConfigMap`]: Flink 1.15 and later. One lock for all components of a
//!   JobManager process, on `<cluster-id>-cluster-config-map`, whose data holds one entry per
//!   component, `org.apache.flink.k8s.leader.<name>` = `<sessionId>,<address>`, where the name is
//!   `dispatcher`, `resourcemanager`, `restserver`, or for a job's JobMaster the job id (1.15) or
//!   `job-<job-id>` (later versions). The same ConfigMap holds the job graphs (`jobGraph-<job-id>`;
//!   `executionPlan-<job-id>` from Flink 2.0). Each job's checkpoints and counter are in
//!   `<cluster-id>-<job-id>-config-map`, which has no lock (Flink writes it without leadership
//!   validation). There is no running-jobs registry (Flink 1.15 replaced it with the
//!   JobResultStore, files in the HA storage directory), and the handles are wrapped in
//!   `StateHandleWithDeleteMarker`, whose marker is shown.
//!
//! Both layouts use the same labels (`app=<cluster-id>`, `type=flink-native-kubernetes`,
//! `configmap-type=high-availability`), but a lock ConfigMap is created by the elector without
//! labels and only gets them with the first leader information written into it, and some tools
//! drop `type`. So [`collect`] selects on `app` and `configmap-type` only, and also gets the
//! ConfigMaps of both layouts by name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use crate::handle::{self, HandleKind, StateHandle};
use crate::layout::{
    CONFIGMAP_TYPE_HA, ClusterId, Component, JobId, KEY_ADDRESS, KEY_SESSION_ID, LABEL_APP,
    LABEL_CONFIGMAP_TYPE, LABEL_TYPE, TYPE_NATIVE,
};
use crate::lease::{LEADER_ANNOTATION, LeaderRecord};
use crate::storage::{Location, ObjectStore};
use crate::stores::plan::{
    self, CHECKPOINT_KEY_PREFIX, CONFIGMAP_DATA_LIMIT, COUNTER_KEY, JOB_GRAPH_KEY_PREFIX,
    JobStatus, RUNNING_JOBS_KEY_PREFIX,
};

/// Flink 1.15+: prefix of the per-component leader entries in the cluster ConfigMap.
pub const LEADER_KEY_PREFIX: &str = "org.apache.flink.k8s.leader.";
/// Flink 2.0+: job graphs are stored as execution plans under this prefix.
pub const EXECUTION_PLAN_KEY_PREFIX: &str = "executionPlan-";
/// How many payloads [`verify`] asks the store about at once.
const VERIFY_CONCURRENCY: usize = 8;
/// Longest untrusted text the table shows before clipping it.
const MAX_SHOWN: usize = 200;
/// Width of the label column of the table's fields (`Transitions:`), so that blocks align.
const LABEL_WIDTH: usize = 12;

/// Flink 1.15+: the ConfigMap holding the lock, the leaders and the job graphs.
pub fn cluster_configmap_name(cluster: &ClusterId) -> String {
    format!("{cluster}-cluster-config-map")
}

/// Flink 1.15+: the ConfigMap holding a job's checkpoints and counter.
pub fn job_configmap_name(cluster: &ClusterId, job: &JobId) -> String {
    format!("{cluster}-{job}-config-map")
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/// Which way the HA state is laid out in ConfigMaps (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Layout {
    /// Flink 1.12–1.14 and hakeeper: one ConfigMap per component, each its own lock.
    PerComponent,
    /// Flink 1.15+: `<cluster-id>-cluster-config-map` and `<cluster-id>-<job-id>-config-map`.
    ClusterConfigMap,
}

impl Layout {
    pub fn describe(self) -> &'static str {
        match self {
            Layout::PerComponent => "one ConfigMap per component (Flink 1.12-1.14, hakeeper)",
            Layout::ClusterConfigMap => "one cluster ConfigMap (Flink 1.15+)",
        }
    }

    /// `Flink 1.12-1.14 layout`, `Flink 1.15+ layout`.
    pub fn short(self) -> &'static str {
        match self {
            Layout::PerComponent => "Flink 1.12-1.14 layout",
            Layout::ClusterConfigMap => "Flink 1.15+ layout",
        }
    }
}

/// Everything `hakeeper inspect` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub cluster_id: String,
    /// The ConfigMaps' namespace (from the first one; the caller may set it).
    pub namespace: Option<String>,
    /// The `now` the leases were judged against (RFC 3339).
    pub inspected_at: String,
    /// The layouts found, in [`Layout`] order; empty when there is no HA ConfigMap at all.
    pub layouts: Vec<Layout>,
    /// Leaders: per-component layout first, then the cluster ConfigMap's; within each, the
    /// dispatcher, resource manager, REST server, then job managers by job id.
    pub components: Vec<ComponentReport>,
    /// Jobs by layout, then job id.
    pub jobs: Vec<JobReport>,
    /// Every ConfigMap given to [`build`], by name.
    pub configmaps: Vec<ConfigMapReport>,
    /// Set by [`verify`]; `None` when the payloads were not checked.
    pub verification: Option<VerificationSummary>,
    /// Handles whose payload is missing or has another size than recorded (filled by
    /// [`verify`]). Handles marked for deletion are never listed: Flink no longer reads them.
    pub dangling: Vec<DanglingHandle>,
}

/// The lock as its record says, judged against the report's `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LockStatus {
    /// Someone holds it and the lease runs past `now`.
    Held,
    /// The holder's lease ended before `now` (by the record's timestamps).
    Expired,
    /// Released: no holder.
    Released,
    /// No leader annotation on the ConfigMap.
    Absent,
    /// The annotation is not a leader record.
    Malformed,
}

/// A lock record (the leader annotation), judged from its own timestamps: lease end =
/// `renewTime` + `leaseDuration`, compared with the report's `now`. The elector does not do
/// this: it times a lease from when it saw the record change, on its own monotonic clock, so
/// that clock skew between machines does not matter to it. This view does depend on the skew.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockReport {
    pub status: LockStatus,
    /// Empty when released.
    pub holder_identity: Option<String>,
    pub lease_duration_seconds: Option<f64>,
    pub acquire_time: Option<String>,
    pub renew_time: Option<String>,
    pub leader_transitions: Option<u32>,
    /// `renewTime` + `leaseDuration`.
    pub expires_at: Option<String>,
    /// `expiresAt` − now, to the millisecond; negative once expired.
    pub remaining_seconds: Option<f64>,
    /// Why the annotation is malformed.
    pub error: Option<String>,
}

impl LockReport {
    fn empty(status: LockStatus) -> LockReport {
        LockReport {
            status,
            holder_identity: None,
            lease_duration_seconds: None,
            acquire_time: None,
            renew_time: None,
            leader_transitions: None,
            expires_at: None,
            remaining_seconds: None,
            error: None,
        }
    }
}

/// One component's leader.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentReport {
    /// `dispatcher`, `resourcemanager`, `restserver`, `jobmanager/<job-id>`, or for a leader
    /// entry of an unknown name, that name as written.
    pub component: String,
    pub layout: Layout,
    /// The ConfigMap holding this component's lock and leader information.
    pub configmap: String,
    /// The lock (shared by all components in the cluster ConfigMap layout).
    pub lock: LockReport,
    pub address: Option<String>,
    pub session_id: Option<String>,
    /// What is malformed about this component's entries.
    pub problems: Vec<String>,
}

/// A job's entry in the running-jobs registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum JobState {
    #[serde(rename = "RUNNING")]
    Running,
    #[serde(rename = "DONE")]
    Done,
    /// No entry (always so in the cluster ConfigMap layout, which has no registry).
    #[serde(rename = "none")]
    None,
    /// An entry that is neither `RUNNING` nor `DONE`.
    #[serde(rename = "malformed")]
    Malformed,
}

/// One job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobReport {
    pub job_id: String,
    pub layout: Layout,
    pub status: JobState,
    /// The job graph's handle; `None` when there is no graph entry.
    pub graph: Option<HandleReport>,
    /// The ConfigMap holding the job's checkpoints and counter.
    pub checkpoints_configmap: String,
    /// Whether that ConfigMap exists.
    pub checkpoints_configmap_found: bool,
    /// The retained checkpoints by id (entries without a usable id last).
    pub checkpoints: Vec<CheckpointReport>,
    pub counter: CounterReport,
    /// What is malformed or inconsistent about this job's entries.
    pub problems: Vec<String>,
}

/// One state handle entry of a ConfigMap.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HandleReport {
    pub configmap: String,
    pub key: String,
    /// The decoded handle (`type`, `path`, `stateSize`, `markedForDeletion`).
    pub handle: Option<StateHandle>,
    /// Why the value is not a state handle.
    pub malformed: Option<String>,
    /// Set by [`verify`] for decoded handles.
    pub payload: Option<PayloadCheck>,
}

/// One retained checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointReport {
    /// The id in the key; `None` when the key holds no number.
    pub id: Option<u64>,
    /// What is wrong with the key itself.
    pub key_problem: Option<String>,
    #[serde(flatten)]
    pub entry: HandleReport,
}

/// The checkpoint counter: the id the next checkpoint gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CounterReport {
    /// `None` when malformed.
    pub value: Option<u64>,
    /// The key is absent, so the value is Flink's initial 1.
    pub default: bool,
    /// Why the value is malformed.
    pub malformed: Option<String>,
}

/// One HA ConfigMap's size and contents at a glance.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapReport {
    pub name: String,
    /// What it holds, in words.
    pub role: String,
    /// The layout it belongs to; `None` for a name neither layout uses.
    pub layout: Option<Layout>,
    pub keys: usize,
    /// Keys plus values of `data` and `binaryData` (decoded), as the stores budget them.
    pub data_bytes: usize,
    pub limit_bytes: usize,
    /// `dataBytes` as a percentage of `limitBytes`, to two decimals.
    pub percent: f64,
    /// The lock on it, for the ConfigMaps that are locks (or carry the annotation anyway).
    pub lock: Option<LockReport>,
    /// Keys its layout does not use there.
    pub unknown_keys: Vec<String>,
    /// HA labels it lacks (`key=value`): it is found by name only.
    pub missing_labels: Vec<String>,
    /// What is malformed about its keys.
    pub problems: Vec<String>,
}

/// What [`verify`] found for one handle's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum PayloadCheck {
    /// There, with the recorded size.
    Ok { size: u64 },
    /// No such object.
    Missing,
    /// There, with another size than the handle records.
    WrongSize { size: u64, recorded: i64 },
    /// Could not be checked: a path the store cannot read, or the store failed.
    Unchecked { reason: String },
}

/// Counts of [`verify`]'s results over all decoded handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationSummary {
    pub handles: usize,
    pub ok: usize,
    pub dangling: usize,
    /// Missing or of the wrong size, but marked for deletion: expected, not dangling.
    pub being_deleted: usize,
    pub unchecked: usize,
}

/// A handle whose payload is not what it records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DanglingHandle {
    pub configmap: String,
    pub key: String,
    pub path: String,
    pub problem: String,
}

// ---------------------------------------------------------------------------------------------
// Collecting (I/O)
// ---------------------------------------------------------------------------------------------

/// The label selector [`collect`] lists with: `app=<cluster-id>,configmap-type=high-availability`.
pub fn label_selector(cluster: &ClusterId) -> String {
    format!("{LABEL_APP}={cluster},{LABEL_CONFIGMAP_TYPE}={CONFIGMAP_TYPE_HA}")
}

/// Read the cluster's HA ConfigMaps in `namespace`: those with the HA labels, plus by name the
/// component and cluster ConfigMaps of both layouts and, for every job id found in those, the
/// job's ConfigMap of both layouts (a lock ConfigMap has no labels until its first leader write).
/// Sorted by name, each once.
pub async fn collect(
    client: kube::Client,
    namespace: &str,
    cluster: &ClusterId,
) -> Result<Vec<ConfigMap>, crate::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let mut found: BTreeMap<String, ConfigMap> = BTreeMap::new();
    let mut params = ListParams::default()
        .labels(&label_selector(cluster))
        .limit(250);
    loop {
        let page = api.list(&params).await?;
        for cm in page.items {
            if let Some(name) = cm.metadata.name.clone() {
                found.insert(name, cm);
            }
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    let fixed = [
        Component::Dispatcher.configmap_name(cluster),
        Component::ResourceManager.configmap_name(cluster),
        Component::RestServer.configmap_name(cluster),
        cluster_configmap_name(cluster),
    ];
    get_missing(&api, &mut found, fixed).await?;
    let configmaps: Vec<ConfigMap> = found.values().cloned().collect();
    let jobs = referenced_jobs(cluster, &configmaps);
    // Collected before the await: a lazy iterator with a closure held across it would make
    // the future not provably `Send`.
    let per_job: Vec<String> = jobs
        .iter()
        .flat_map(|job| {
            [
                Component::JobManager(job.clone()).configmap_name(cluster),
                job_configmap_name(cluster, job),
            ]
        })
        .collect();
    get_missing(&api, &mut found, per_job).await?;
    Ok(found.into_values().collect())
}

async fn get_missing(
    api: &Api<ConfigMap>,
    found: &mut BTreeMap<String, ConfigMap>,
    names: impl IntoIterator<Item = String>,
) -> Result<(), crate::Error> {
    for name in names {
        if found.contains_key(&name) {
            continue;
        }
        if let Some(cm) = api.get_opt(&name).await? {
            found.insert(name, cm);
        }
    }
    Ok(())
}

/// Every job id the ConfigMaps mention: in their names and in the keys of job graphs, the
/// running-jobs registry and the cluster ConfigMap's leader entries.
pub fn referenced_jobs(cluster: &ClusterId, configmaps: &[ConfigMap]) -> BTreeSet<JobId> {
    let mut jobs = BTreeSet::new();
    for cm in configmaps {
        let name = cm.metadata.name.as_deref().unwrap_or_default();
        match classify(cluster, name) {
            Role::Leader(Component::JobManager(job)) | Role::JobConfig(job) => {
                jobs.insert(job);
            }
            Role::Leader(Component::Dispatcher) => {
                for key in data_keys(cm) {
                    if let Some(job) =
                        job_in_key(key, &[JOB_GRAPH_KEY_PREFIX, RUNNING_JOBS_KEY_PREFIX])
                    {
                        jobs.insert(job);
                    }
                }
            }
            Role::ClusterConfig => {
                for key in data_keys(cm) {
                    if let Some(job) =
                        job_in_key(key, &[JOB_GRAPH_KEY_PREFIX, EXECUTION_PLAN_KEY_PREFIX])
                    {
                        jobs.insert(job);
                    }
                    if let Some(LeaderName::Job(job)) =
                        key.strip_prefix(LEADER_KEY_PREFIX).map(leader_name)
                    {
                        jobs.insert(job);
                    }
                }
            }
            Role::Leader(_) | Role::Other => {}
        }
    }
    jobs
}

// ---------------------------------------------------------------------------------------------
// Building (pure)
// ---------------------------------------------------------------------------------------------

/// What a ConfigMap is, by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    /// Per-component layout: a component's lock and store.
    Leader(Component),
    /// Flink 1.15+: `<cluster-id>-cluster-config-map`.
    ClusterConfig,
    /// Flink 1.15+: `<cluster-id>-<job-id>-config-map`.
    JobConfig(JobId),
    /// Neither layout uses this name.
    Other,
}

impl Role {
    fn layout(&self) -> Option<Layout> {
        match self {
            Role::Leader(_) => Some(Layout::PerComponent),
            Role::ClusterConfig | Role::JobConfig(_) => Some(Layout::ClusterConfigMap),
            Role::Other => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Role::Leader(Component::Dispatcher) => {
                "dispatcher leader, job graphs, running jobs".to_string()
            }
            Role::Leader(Component::JobManager(job)) => {
                format!("jobmanager leader, checkpoints of job {job}")
            }
            Role::Leader(c) => format!("{c} leader"),
            Role::ClusterConfig => "leaders, job graphs".to_string(),
            Role::JobConfig(job) => format!("checkpoints of job {job}"),
            Role::Other => "not an HA ConfigMap name of this cluster".to_string(),
        }
    }
}

fn classify(cluster: &ClusterId, name: &str) -> Role {
    let Some(rest) = name
        .strip_prefix(cluster.as_str())
        .and_then(|r| r.strip_prefix('-'))
    else {
        return Role::Other;
    };
    match rest {
        "dispatcher-leader" => Role::Leader(Component::Dispatcher),
        "resourcemanager-leader" => Role::Leader(Component::ResourceManager),
        "restserver-leader" => Role::Leader(Component::RestServer),
        "cluster-config-map" => Role::ClusterConfig,
        _ => {
            if let Some(Ok(job)) = rest
                .strip_suffix("-jobmanager-leader")
                .map(str::parse::<JobId>)
            {
                Role::Leader(Component::JobManager(job))
            } else if let Some(Ok(job)) = rest.strip_suffix("-config-map").map(str::parse::<JobId>)
            {
                Role::JobConfig(job)
            } else {
                Role::Other
            }
        }
    }
}

/// The name in a Flink 1.15+ leader entry's key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LeaderName {
    Component(Component),
    Job(JobId),
    Unknown(String),
}

fn leader_name(name: &str) -> LeaderName {
    match name {
        "dispatcher" => LeaderName::Component(Component::Dispatcher),
        "resourcemanager" => LeaderName::Component(Component::ResourceManager),
        "restserver" => LeaderName::Component(Component::RestServer),
        _ => match name.strip_prefix("job-").unwrap_or(name).parse::<JobId>() {
            Ok(job) => LeaderName::Job(job),
            Err(_) => LeaderName::Unknown(name.to_string()),
        },
    }
}

fn job_in_key(key: &str, prefixes: &[&str]) -> Option<JobId> {
    prefixes
        .iter()
        .find_map(|p| key.strip_prefix(p))
        .and_then(|id| id.parse().ok())
}

fn data_keys(cm: &ConfigMap) -> impl Iterator<Item = &String> {
    cm.data.iter().flat_map(|d| d.keys())
}

fn data_of(cm: &ConfigMap) -> BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}

/// Build the report from the ConfigMaps (as [`collect`] returns them; any order) at `now`.
/// ConfigMaps of other clusters are listed as not belonging to an HA layout.
pub fn build(cluster: &ClusterId, configmaps: &[ConfigMap], now: Timestamp) -> Report {
    let mut by_name: BTreeMap<String, &ConfigMap> = BTreeMap::new();
    for cm in configmaps {
        by_name.insert(cm.metadata.name.clone().unwrap_or_default(), cm);
    }
    let roles: BTreeMap<&str, Role> = by_name
        .keys()
        .map(|name| (name.as_str(), classify(cluster, name)))
        .collect();
    let layouts: BTreeSet<Layout> = roles.values().filter_map(Role::layout).collect();

    let mut components = Vec::new();
    let mut jobs = Vec::new();
    if layouts.contains(&Layout::PerComponent) {
        per_component(cluster, &by_name, &roles, now, &mut components, &mut jobs);
    }
    if layouts.contains(&Layout::ClusterConfigMap) {
        cluster_config(cluster, &by_name, &roles, now, &mut components, &mut jobs);
    }
    let configmaps = by_name
        .iter()
        .map(|(name, cm)| configmap_report(cluster, name, cm, &roles[name.as_str()], now))
        .collect();
    Report {
        cluster_id: cluster.to_string(),
        namespace: configmaps_namespace(by_name.values().copied()),
        inspected_at: now.to_string(),
        layouts: layouts.into_iter().collect(),
        components,
        jobs,
        configmaps,
        verification: None,
        dangling: Vec::new(),
    }
}

fn configmaps_namespace<'a>(mut cms: impl Iterator<Item = &'a ConfigMap>) -> Option<String> {
    cms.find_map(|cm| cm.metadata.namespace.clone())
}

fn per_component(
    cluster: &ClusterId,
    by_name: &BTreeMap<String, &ConfigMap>,
    roles: &BTreeMap<&str, Role>,
    now: Timestamp,
    components: &mut Vec<ComponentReport>,
    jobs: &mut Vec<JobReport>,
) {
    let mut leaders: Vec<(&Component, &str, &ConfigMap)> = roles
        .iter()
        .filter_map(|(name, role)| match role {
            Role::Leader(c) => Some((c, *name, by_name[*name])),
            _ => None,
        })
        .collect();
    leaders.sort_by(|a, b| a.0.cmp(b.0));
    for (component, name, cm) in leaders {
        let data = data_of(cm);
        let lock = lock_report(cm, now);
        let mut problems = Vec::new();
        let session_id = data.get(KEY_SESSION_ID).cloned();
        if let Some(s) = &session_id
            && uuid::Uuid::parse_str(s).is_err()
        {
            problems.push(format!(
                "{KEY_SESSION_ID} {:?} is not a UUID",
                clip(s, MAX_SHOWN)
            ));
        }
        components.push(ComponentReport {
            component: component.to_string(),
            layout: Layout::PerComponent,
            configmap: name.to_string(),
            lock,
            address: data.get(KEY_ADDRESS).cloned(),
            session_id,
            problems,
        });
    }

    let dispatcher_name = Component::Dispatcher.configmap_name(cluster);
    let dispatcher = by_name
        .get(&dispatcher_name)
        .map(|cm| data_of(cm))
        .unwrap_or_default();
    let mut ids: BTreeSet<JobId> = dispatcher
        .keys()
        .filter_map(|k| job_in_key(k, &[JOB_GRAPH_KEY_PREFIX, RUNNING_JOBS_KEY_PREFIX]))
        .collect();
    ids.extend(roles.values().filter_map(|r| match r {
        Role::Leader(Component::JobManager(job)) => Some(job.clone()),
        _ => None,
    }));
    for job in ids {
        let mut problems = Vec::new();
        let status = match dispatcher.get(&plan::running_jobs_key(&job)) {
            None => JobState::None,
            Some(v) => match v.parse::<JobStatus>() {
                Ok(JobStatus::Running) => JobState::Running,
                Ok(JobStatus::Done) => JobState::Done,
                Err(e) => {
                    problems.push(format!(
                        "{}: {}",
                        plan::running_jobs_key(&job),
                        clip(&e, MAX_SHOWN)
                    ));
                    JobState::Malformed
                }
            },
        };
        let graph_key = plan::job_graph_key(&job);
        let graph = dispatcher
            .get(&graph_key)
            .map(|v| handle_report(&dispatcher_name, &graph_key, v));
        let store = Component::JobManager(job.clone()).configmap_name(cluster);
        jobs.push(job_report(
            job,
            Layout::PerComponent,
            status,
            graph,
            store,
            by_name,
            problems,
        ));
    }
}

fn cluster_config(
    cluster: &ClusterId,
    by_name: &BTreeMap<String, &ConfigMap>,
    roles: &BTreeMap<&str, Role>,
    now: Timestamp,
    components: &mut Vec<ComponentReport>,
    jobs: &mut Vec<JobReport>,
) {
    let name = cluster_configmap_name(cluster);
    let config = by_name.get(&name).copied();
    let data = config.map(data_of).unwrap_or_default();
    if let Some(cm) = config {
        let lock = lock_report(cm, now);
        let mut leaders: Vec<(LeaderName, ComponentReport)> = Vec::new();
        for (key, value) in data.range(LEADER_KEY_PREFIX.to_string()..) {
            let Some(raw) = key.strip_prefix(LEADER_KEY_PREFIX) else {
                break;
            };
            let parsed = leader_name(raw);
            let mut problems = Vec::new();
            let component = match &parsed {
                LeaderName::Component(c) => c.to_string(),
                LeaderName::Job(job) => Component::JobManager(job.clone()).to_string(),
                LeaderName::Unknown(n) => {
                    problems.push(format!(
                        "{key}: {:?} is no component name or job id",
                        clip(n, MAX_SHOWN)
                    ));
                    n.clone()
                }
            };
            let (session_id, address) = match leader_information(value) {
                Ok((session, address)) => (Some(session), Some(address)),
                Err(reason) => {
                    problems.push(format!("{key}: {reason}"));
                    (None, None)
                }
            };
            leaders.push((
                parsed,
                ComponentReport {
                    component,
                    layout: Layout::ClusterConfigMap,
                    configmap: name.clone(),
                    lock: lock.clone(),
                    address,
                    session_id,
                    problems,
                },
            ));
        }
        leaders.sort_by_key(|a| leader_order(&a.0));
        components.extend(leaders.into_iter().map(|(_, c)| c));
    }

    let mut ids: BTreeSet<JobId> = data
        .keys()
        .filter_map(|k| job_in_key(k, &[JOB_GRAPH_KEY_PREFIX, EXECUTION_PLAN_KEY_PREFIX]))
        .collect();
    ids.extend(data.keys().filter_map(
        |k| match k.strip_prefix(LEADER_KEY_PREFIX).map(leader_name) {
            Some(LeaderName::Job(job)) => Some(job),
            _ => None,
        },
    ));
    ids.extend(roles.values().filter_map(|r| match r {
        Role::JobConfig(job) => Some(job.clone()),
        _ => None,
    }));
    for job in ids {
        let mut problems = Vec::new();
        let graph_key = plan::job_graph_key(&job);
        let plan_key = format!("{EXECUTION_PLAN_KEY_PREFIX}{job}");
        let graph = match (data.get(&graph_key), data.get(&plan_key)) {
            (Some(v), other) => {
                if other.is_some() {
                    problems.push(format!(
                        "both {graph_key} and {plan_key} are present; showing {graph_key}"
                    ));
                }
                Some(handle_report(&name, &graph_key, v))
            }
            (None, Some(v)) => Some(handle_report(&name, &plan_key, v)),
            (None, None) => None,
        };
        let store = job_configmap_name(cluster, &job);
        jobs.push(job_report(
            job,
            Layout::ClusterConfigMap,
            JobState::None,
            graph,
            store,
            by_name,
            problems,
        ));
    }
}

fn leader_order(name: &LeaderName) -> (u8, String) {
    match name {
        LeaderName::Component(Component::Dispatcher) => (0, String::new()),
        LeaderName::Component(Component::ResourceManager) => (1, String::new()),
        LeaderName::Component(Component::RestServer) => (2, String::new()),
        LeaderName::Component(Component::JobManager(job)) | LeaderName::Job(job) => {
            (3, job.to_string())
        }
        LeaderName::Component(Component::Operator) => (4, String::new()),
        LeaderName::Unknown(n) => (4, n.clone()),
    }
}

/// Flink's `<sessionId>,<address>` (split at the first comma; the session id a UUID).
fn leader_information(value: &str) -> Result<(String, String), String> {
    let Some((session, address)) = value.split_once(',') else {
        return Err(format!(
            "{:?} is not '<sessionId>,<address>'",
            clip(value, MAX_SHOWN)
        ));
    };
    if uuid::Uuid::parse_str(session).is_err() {
        return Err(format!(
            "session id {:?} is not a UUID",
            clip(session, MAX_SHOWN)
        ));
    }
    Ok((session.to_string(), address.to_string()))
}

fn job_report(
    job: JobId,
    layout: Layout,
    status: JobState,
    graph: Option<HandleReport>,
    store: String,
    by_name: &BTreeMap<String, &ConfigMap>,
    mut problems: Vec<String>,
) -> JobReport {
    let found = by_name.get(&store).copied();
    let data = found.map(data_of).unwrap_or_default();
    let mut checkpoints: Vec<CheckpointReport> = data
        .range(CHECKPOINT_KEY_PREFIX.to_string()..)
        .take_while(|(k, _)| k.starts_with(CHECKPOINT_KEY_PREFIX))
        .map(|(key, value)| {
            let (id, key_problem) = checkpoint_id(key);
            CheckpointReport {
                id,
                key_problem,
                entry: handle_report(&store, key, value),
            }
        })
        .collect();
    checkpoints.sort_by(|a, b| {
        (a.id.is_none(), a.id, &a.entry.key).cmp(&(b.id.is_none(), b.id, &b.entry.key))
    });
    let counter = match data.get(COUNTER_KEY) {
        None => CounterReport {
            value: Some(1),
            default: true,
            malformed: None,
        },
        Some(v) => match plan::parse_counter(Some(v)) {
            Ok(n) => CounterReport {
                value: Some(n),
                default: false,
                malformed: None,
            },
            Err(e) => CounterReport {
                value: None,
                default: false,
                malformed: Some(clip(&e, MAX_SHOWN)),
            },
        },
    };
    if let (Some(next), Some(newest)) =
        (counter.value, checkpoints.iter().filter_map(|c| c.id).max())
        && next <= newest
    {
        problems.push(format!(
            "the counter ({next}{}) is not above the newest checkpoint id ({newest}): \
             the next checkpoint would reuse an id",
            if counter.default { ", by default" } else { "" }
        ));
    }
    JobReport {
        job_id: job.to_string(),
        layout,
        status,
        graph,
        checkpoints_configmap: store,
        checkpoints_configmap_found: found.is_some(),
        checkpoints,
        counter,
        problems,
    }
}

/// The id in a checkpoint key. Flink writes 19 zero-padded digits and reads any number;
/// hakeeper's stores skip keys that are not padded.
fn checkpoint_id(key: &str) -> (Option<u64>, Option<String>) {
    if let Some(id) = plan::parse_checkpoint_key(key) {
        return (Some(id), None);
    }
    let digits = key.strip_prefix(CHECKPOINT_KEY_PREFIX).unwrap_or_default();
    match digits.parse::<u64>() {
        Ok(id) if digits.bytes().all(|b| b.is_ascii_digit()) => (
            Some(id),
            Some(
                "the id is not written as 19 digits (Flink reads it; hakeeper's stores skip it)"
                    .into(),
            ),
        ),
        _ => (None, Some("no checkpoint id in the key".into())),
    }
}

fn handle_report(configmap: &str, key: &str, value: &str) -> HandleReport {
    let (handle, malformed) = match handle::decode_base64(value) {
        Ok(h) => (Some(h), None),
        Err(e) => (None, Some(e.to_string())),
    };
    HandleReport {
        configmap: configmap.to_string(),
        key: key.to_string(),
        handle,
        malformed,
        payload: None,
    }
}

fn lock_report(cm: &ConfigMap, now: Timestamp) -> LockReport {
    let Some(value) = cm
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEADER_ANNOTATION))
    else {
        return LockReport::empty(LockStatus::Absent);
    };
    let record = match LeaderRecord::parse(value) {
        Ok(r) => r,
        Err(e) => {
            return LockReport {
                error: Some(clip(&e.to_string(), MAX_SHOWN)),
                ..LockReport::empty(LockStatus::Malformed)
            };
        }
    };
    let expires = SignedDuration::try_from(record.lease_duration)
        .ok()
        .and_then(|lease| record.renew_time.checked_add(lease).ok());
    let remaining = expires.map(|e| e.duration_since(now));
    let status = if record.is_released() {
        LockStatus::Released
    } else if remaining.is_some_and(|d| d.is_positive()) {
        LockStatus::Held
    } else {
        LockStatus::Expired
    };
    LockReport {
        status,
        holder_identity: Some(record.holder_identity.clone()),
        lease_duration_seconds: Some(record.lease_duration.as_secs_f64()),
        acquire_time: Some(record.acquire_time.to_string()),
        renew_time: Some(record.renew_time.to_string()),
        leader_transitions: Some(record.leader_transitions),
        expires_at: expires.map(|e| e.to_string()),
        remaining_seconds: remaining.map(|d| d.as_millis() as f64 / 1000.0),
        error: None,
    }
}

fn configmap_report(
    cluster: &ClusterId,
    name: &str,
    cm: &ConfigMap,
    role: &Role,
    now: Timestamp,
) -> ConfigMapReport {
    let data = data_of(cm);
    let binary = cm.binary_data.clone().unwrap_or_default();
    let data_bytes = plan::data_size(&data)
        + binary
            .iter()
            .map(|(k, v)| k.len() + v.0.len())
            .sum::<usize>();
    let percent = (data_bytes as f64 * 10_000.0 / CONFIGMAP_DATA_LIMIT as f64).round() / 100.0;
    let mut unknown_keys = Vec::new();
    let mut problems = Vec::new();
    if !matches!(role, Role::Other) {
        for key in data.keys() {
            match key_use(role, key) {
                KeyUse::Known => {}
                KeyUse::Unknown => unknown_keys.push(key.clone()),
                KeyUse::Malformed(reason) => problems.push(format!("{key}: {reason}")),
            }
        }
        unknown_keys.extend(binary.keys().cloned());
    }
    let is_lock = matches!(role, Role::Leader(_) | Role::ClusterConfig);
    let annotated = cm
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(LEADER_ANNOTATION));
    let lock = (is_lock || annotated).then(|| lock_report(cm, now));
    let labels = cm.metadata.labels.clone().unwrap_or_default();
    let missing_labels = if matches!(role, Role::Other) {
        Vec::new()
    } else {
        [
            (LABEL_APP, cluster.as_str()),
            (LABEL_CONFIGMAP_TYPE, CONFIGMAP_TYPE_HA),
            (LABEL_TYPE, TYPE_NATIVE),
        ]
        .iter()
        .filter(|(k, v)| labels.get(*k).map(String::as_str) != Some(*v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
    };
    ConfigMapReport {
        name: name.to_string(),
        role: role.describe(),
        layout: role.layout(),
        keys: data.len() + binary.len(),
        data_bytes,
        limit_bytes: CONFIGMAP_DATA_LIMIT,
        percent,
        lock,
        unknown_keys,
        missing_labels,
        problems,
    }
}

enum KeyUse {
    Known,
    Unknown,
    Malformed(String),
}

/// Whether the ConfigMap's layout uses `key` there. Malformed handles, ids and values of known
/// keys are reported with their component or job; this only flags keys that cannot be placed.
fn key_use(role: &Role, key: &str) -> KeyUse {
    let job_key = |prefixes: &[&str]| {
        prefixes.iter().find_map(|p| {
            key.strip_prefix(p).map(|id| match id.parse::<JobId>() {
                Ok(_) => KeyUse::Known,
                Err(e) => KeyUse::Malformed(clip(&e, MAX_SHOWN)),
            })
        })
    };
    let leader_keys = key == KEY_ADDRESS || key == KEY_SESSION_ID;
    let checkpoint_keys = key == COUNTER_KEY || key.starts_with(CHECKPOINT_KEY_PREFIX);
    match role {
        Role::Leader(Component::Dispatcher) if leader_keys => KeyUse::Known,
        Role::Leader(Component::Dispatcher) => {
            job_key(&[JOB_GRAPH_KEY_PREFIX, RUNNING_JOBS_KEY_PREFIX]).unwrap_or(KeyUse::Unknown)
        }
        Role::Leader(Component::JobManager(_)) if leader_keys || checkpoint_keys => KeyUse::Known,
        Role::Leader(_) if leader_keys => KeyUse::Known,
        Role::ClusterConfig if key.starts_with(LEADER_KEY_PREFIX) => KeyUse::Known,
        Role::ClusterConfig => {
            job_key(&[JOB_GRAPH_KEY_PREFIX, EXECUTION_PLAN_KEY_PREFIX]).unwrap_or(KeyUse::Unknown)
        }
        Role::JobConfig(_) if checkpoint_keys => KeyUse::Known,
        Role::Other => KeyUse::Known,
        _ => KeyUse::Unknown,
    }
}

// ---------------------------------------------------------------------------------------------
// Verifying (I/O)
// ---------------------------------------------------------------------------------------------

fn handles_mut(report: &mut Report) -> impl Iterator<Item = &mut HandleReport> {
    report.jobs.iter_mut().flat_map(|job| {
        job.graph
            .iter_mut()
            .chain(job.checkpoints.iter_mut().map(|c| &mut c.entry))
    })
}

/// Check every decoded handle's payload in `storage`: that it exists and has the size the
/// handle records (`ObjectStore::size`, a few at a time). Fills each handle's `payload`, the
/// summary, and `report.dangling` (missing or wrong size, unless marked for deletion). A path
/// the store cannot serve or a store failure leaves that handle `Unchecked`; nothing fails.
pub async fn verify(report: &mut Report, storage: &dyn ObjectStore) {
    let paths: BTreeSet<String> = handles_mut(report)
        .filter_map(|h| h.handle.as_ref().map(|h| h.path.clone()))
        .collect();
    let sizes: HashMap<String, Result<Option<u64>, String>> = futures::stream::iter(paths)
        .map(|path| async move {
            let size = match Location::parse(&path) {
                Ok(location) => storage.size(&location).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            (path, size)
        })
        .buffered(VERIFY_CONCURRENCY)
        .collect()
        .await;

    let mut summary = VerificationSummary {
        handles: 0,
        ok: 0,
        dangling: 0,
        being_deleted: 0,
        unchecked: 0,
    };
    let mut dangling = Vec::new();
    for entry in handles_mut(report) {
        let Some(handle) = &entry.handle else {
            continue;
        };
        let check = match &sizes[&handle.path] {
            Err(reason) => PayloadCheck::Unchecked {
                reason: reason.clone(),
            },
            Ok(None) => PayloadCheck::Missing,
            Ok(Some(size)) if i64::try_from(*size).ok() == Some(handle.state_size) => {
                PayloadCheck::Ok { size: *size }
            }
            Ok(Some(size)) => PayloadCheck::WrongSize {
                size: *size,
                recorded: handle.state_size,
            },
        };
        summary.handles += 1;
        let problem = match &check {
            PayloadCheck::Ok { .. } => {
                summary.ok += 1;
                None
            }
            PayloadCheck::Unchecked { .. } => {
                summary.unchecked += 1;
                None
            }
            PayloadCheck::Missing => Some("is missing".to_string()),
            PayloadCheck::WrongSize { size, recorded } => Some(format!(
                "has {size} bytes where the handle records {recorded}"
            )),
        };
        if let Some(problem) = problem {
            if handle.marked_for_deletion == Some(true) {
                summary.being_deleted += 1;
            } else {
                summary.dangling += 1;
                dangling.push(DanglingHandle {
                    configmap: entry.configmap.clone(),
                    key: entry.key.clone(),
                    path: handle.path.clone(),
                    problem,
                });
            }
        }
        entry.payload = Some(check);
    }
    report.verification = Some(summary);
    report.dangling = dangling;
}

// ---------------------------------------------------------------------------------------------
// Rendering (pure)
// ---------------------------------------------------------------------------------------------

/// The report as pretty-printed JSON (camelCase keys), without a trailing newline.
pub fn render_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report always serializes")
}

/// The report as aligned text in `kubectl describe`'s manner: a header, then sections for the
/// leaders, the jobs, the ConfigMaps and (when verified) the dangling handles. No colours;
/// control characters from the ConfigMaps are escaped and long values clipped.
pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    let layouts = if report.layouts.is_empty() {
        "none: no HA ConfigMaps found".to_string()
    } else {
        report
            .layouts
            .iter()
            .map(|l| l.describe())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let payloads = match &report.verification {
        None => "not verified".to_string(),
        Some(s) => verification_line(s),
    };
    fields(
        &mut out,
        0,
        &[
            ("Cluster", shown(&report.cluster_id)),
            (
                "Namespace",
                report.namespace.as_deref().map(shown).unwrap_or("-".into()),
            ),
            ("Inspected", report.inspected_at.clone()),
            ("Layout", layouts),
            ("Payloads", payloads),
        ],
    );

    let per_component: Vec<&ComponentReport> = report
        .components
        .iter()
        .filter(|c| c.layout == Layout::PerComponent)
        .collect();
    if !per_component.is_empty() {
        let _ = writeln!(
            out,
            "\nLeaders, one ConfigMap each ({}):",
            Layout::PerComponent.short()
        );
        for c in per_component {
            let _ = writeln!(out, "  {}:", shown(&c.component));
            let mut rows = vec![("ConfigMap", shown(&c.configmap))];
            rows.extend(lock_rows(&c.lock));
            rows.extend(leader_rows(c));
            fields(&mut out, 4, &rows);
            problems(&mut out, 4, &c.problems);
        }
    }
    let cluster_configmap = format!("{}-cluster-config-map", report.cluster_id);
    for cm in report
        .configmaps
        .iter()
        .filter(|cm| cm.name == cluster_configmap)
    {
        let _ = writeln!(
            out,
            "\nLeaders in {} ({}):",
            shown(&cm.name),
            Layout::ClusterConfigMap.short()
        );
        let _ = writeln!(out, "  Shared lock:");
        if let Some(lock) = &cm.lock {
            fields(&mut out, 4, &lock_rows(lock));
        }
        let leaders: Vec<&ComponentReport> = report
            .components
            .iter()
            .filter(|c| c.layout == Layout::ClusterConfigMap && c.configmap == cm.name)
            .collect();
        if leaders.is_empty() {
            let _ = writeln!(out, "  No leader entries.");
        }
        for c in leaders {
            let _ = writeln!(out, "  {}:", shown(&c.component));
            fields(&mut out, 4, &leader_rows(c));
            problems(&mut out, 4, &c.problems);
        }
    }

    if !report.jobs.is_empty() {
        let _ = writeln!(out, "\nJobs:");
        let both = report.layouts.len() > 1;
        for job in &report.jobs {
            job_section(&mut out, job, both, report.verification.is_some());
        }
    }

    if report.configmaps.is_empty() {
        let _ = writeln!(
            out,
            "\nNo HA ConfigMaps found for cluster {}.",
            shown(&report.cluster_id)
        );
    } else {
        let _ = writeln!(
            out,
            "\nConfigMaps (data counted as keys plus values, against the {} byte limit):",
            CONFIGMAP_DATA_LIMIT
        );
        let rows = report
            .configmaps
            .iter()
            .map(|cm| {
                vec![
                    shown(&cm.name),
                    cm.keys.to_string(),
                    cm.data_bytes.to_string(),
                    format!("{:.1}%", cm.percent),
                    cm.role.clone(),
                ]
            })
            .collect();
        table(
            &mut out,
            2,
            &["NAME", "KEYS", "BYTES", "USED", "HOLDS"],
            rows,
        );
        for cm in &report.configmaps {
            let mut notes = Vec::new();
            if !cm.missing_labels.is_empty() {
                notes.push(format!("lacks the labels {}", cm.missing_labels.join(", ")));
            }
            if !cm.unknown_keys.is_empty() {
                let keys: Vec<String> = cm.unknown_keys.iter().map(|k| shown(k)).collect();
                notes.push(format!("unknown keys: {}", keys.join(", ")));
            }
            notes.extend(cm.problems.iter().map(|p| shown(p)));
            if !notes.is_empty() {
                let _ = writeln!(out, "  {}:", shown(&cm.name));
                for note in notes {
                    let _ = writeln!(out, "    - {note}");
                }
            }
        }
    }

    if report.verification.is_some() {
        if report.dangling.is_empty() {
            let _ = writeln!(out, "\nDangling handles: none");
        } else {
            let _ = writeln!(out, "\nDangling handles:");
            let rows = report
                .dangling
                .iter()
                .map(|d| {
                    vec![
                        shown(&d.configmap),
                        shown(&d.key),
                        shown(&d.path),
                        d.problem.clone(),
                    ]
                })
                .collect();
            table(&mut out, 2, &["CONFIGMAP", "KEY", "PATH", "PROBLEM"], rows);
        }
    }

    if report
        .components
        .iter()
        .any(|c| c.lock.expires_at.is_some())
    {
        out.push_str(
            "\nLeases are judged from each record's renewTime + leaseDuration against this\n\
             machine's clock, so clock skew shifts them. The elector does not judge so: it times\n\
             a lease from when it sees the record change.\n",
        );
    }
    out
}

fn verification_line(s: &VerificationSummary) -> String {
    let mut line = format!(
        "{} handle{} checked: {} ok, {} dangling",
        s.handles,
        if s.handles == 1 { "" } else { "s" },
        s.ok,
        s.dangling
    );
    if s.being_deleted > 0 {
        let _ = write!(line, ", {} gone while marked for deletion", s.being_deleted);
    }
    if s.unchecked > 0 {
        let _ = write!(line, ", {} could not be checked", s.unchecked);
    }
    line
}

fn lock_rows(lock: &LockReport) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    match lock.status {
        LockStatus::Absent => rows.push(("Lock", "no leader annotation".to_string())),
        LockStatus::Malformed => rows.push((
            "Lock",
            format!(
                "malformed: {}",
                shown(lock.error.as_deref().unwrap_or_default())
            ),
        )),
        LockStatus::Held | LockStatus::Expired | LockStatus::Released => {
            let holder = lock.holder_identity.as_deref().unwrap_or_default();
            rows.push((
                "Holder",
                if holder.is_empty() {
                    "none (released)".to_string()
                } else {
                    shown(holder)
                },
            ));
            let lease = match (lock.remaining_seconds, &lock.expires_at) {
                (Some(r), Some(at)) if r > 0.0 => format!("{} left (until {at})", human(r)),
                (Some(r), Some(at)) => format!("expired {} ago (at {at})", human(-r)),
                _ => "never ends (renewTime + leaseDuration is out of range)".to_string(),
            };
            rows.push(("Lease", lease));
            rows.push((
                "Renewed",
                format!(
                    "{} (lease {})",
                    lock.renew_time.as_deref().unwrap_or_default(),
                    human(lock.lease_duration_seconds.unwrap_or_default())
                ),
            ));
            rows.push(("Acquired", lock.acquire_time.clone().unwrap_or_default()));
            rows.push((
                "Transitions",
                lock.leader_transitions.unwrap_or_default().to_string(),
            ));
        }
    }
    rows
}

fn leader_rows(c: &ComponentReport) -> Vec<(&'static str, String)> {
    vec![
        (
            "Address",
            c.address.as_deref().map(shown).unwrap_or("-".into()),
        ),
        (
            "Session ID",
            c.session_id.as_deref().map(shown).unwrap_or("-".into()),
        ),
    ]
}

fn job_section(out: &mut String, job: &JobReport, both_layouts: bool, verified: bool) {
    if both_layouts {
        let _ = writeln!(out, "  {} ({}):", job.job_id, job.layout.short());
    } else {
        let _ = writeln!(out, "  {}:", job.job_id);
    }
    let status = match (job.status, job.layout) {
        (JobState::Running, _) => "RUNNING".to_string(),
        (JobState::Done, _) => "DONE".to_string(),
        (JobState::Malformed, _) => "malformed".to_string(),
        (JobState::None, Layout::PerComponent) => "none (not in the running-jobs registry)".into(),
        (JobState::None, Layout::ClusterConfigMap) => {
            "none (Flink 1.15+ keeps job results in the JobResultStore, not in ConfigMaps)".into()
        }
    };
    let graph = match &job.graph {
        None => "none".to_string(),
        Some(g) => handle_line(g, verified),
    };
    let counter = match &job.counter {
        CounterReport {
            value: Some(v),
            default: true,
            ..
        } => format!("{v} (default)"),
        CounterReport { value: Some(v), .. } => v.to_string(),
        CounterReport { malformed, .. } => {
            format!(
                "malformed: {}",
                shown(malformed.as_deref().unwrap_or_default())
            )
        }
    };
    let checkpoints = if !job.checkpoints_configmap_found {
        format!("none (no ConfigMap {})", shown(&job.checkpoints_configmap))
    } else if job.checkpoints.is_empty() {
        format!("none in {}", shown(&job.checkpoints_configmap))
    } else {
        format!(
            "{} in {}",
            job.checkpoints.len(),
            shown(&job.checkpoints_configmap)
        )
    };
    fields(
        out,
        4,
        &[
            ("Status", status),
            ("Job graph", graph),
            ("Counter", counter),
            ("Checkpoints", checkpoints),
        ],
    );
    if !job.checkpoints.is_empty() {
        let mut header = vec!["ID", "PATH", "SIZE", "DELETE MARKER"];
        if verified {
            header.push("PAYLOAD");
        }
        let rows = job
            .checkpoints
            .iter()
            .map(|c| {
                let id = c.id.map(|i| i.to_string()).unwrap_or("?".into());
                let mut row = match &c.entry.handle {
                    Some(h) => vec![
                        id,
                        shown(&h.path),
                        h.state_size.to_string(),
                        marker(h).to_string(),
                    ],
                    None => vec![
                        id,
                        "<malformed>".to_string(),
                        "-".to_string(),
                        "-".to_string(),
                    ],
                };
                if verified {
                    row.push(payload_text(
                        c.entry.payload.as_ref(),
                        c.entry.handle.as_ref(),
                    ));
                }
                row
            })
            .collect();
        table(out, 6, &header, rows);
    }
    let mut notes: Vec<String> = Vec::new();
    if let Some(g) = &job.graph
        && let Some(m) = &g.malformed
    {
        notes.push(format!("{}: malformed handle: {}", shown(&g.key), shown(m)));
    }
    for c in &job.checkpoints {
        if let Some(p) = &c.key_problem {
            notes.push(format!("{}: {p}", shown(&c.entry.key)));
        }
        if let Some(m) = &c.entry.malformed {
            notes.push(format!(
                "{}: malformed handle: {}",
                shown(&c.entry.key),
                shown(m)
            ));
        }
    }
    notes.extend(job.problems.iter().cloned());
    problems(out, 4, &notes);
}

fn marker(h: &StateHandle) -> &'static str {
    match (h.kind, h.marked_for_deletion) {
        (HandleKind::RetrievableStreamStateHandle, _) => "-",
        (HandleKind::StateHandleWithDeleteMarker, Some(true)) => "marked",
        (HandleKind::StateHandleWithDeleteMarker, _) => "unmarked",
    }
}

fn handle_line(h: &HandleReport, verified: bool) -> String {
    let Some(handle) = &h.handle else {
        return format!("{}: malformed", shown(&h.key));
    };
    let mut line = format!("{} ({} B", shown(&handle.path), handle.state_size);
    if handle.kind == HandleKind::StateHandleWithDeleteMarker {
        let _ = write!(line, ", delete marker {}", marker(handle));
    }
    line.push(')');
    if verified {
        let _ = write!(
            line,
            ", payload {}",
            payload_text(h.payload.as_ref(), h.handle.as_ref())
        );
    }
    line
}

fn payload_text(check: Option<&PayloadCheck>, handle: Option<&StateHandle>) -> String {
    let deleting = handle.is_some_and(|h| h.marked_for_deletion == Some(true));
    let text = match check {
        None => return "-".to_string(),
        Some(PayloadCheck::Ok { .. }) => return "ok".to_string(),
        Some(PayloadCheck::Missing) => "missing".to_string(),
        Some(PayloadCheck::WrongSize { size, recorded }) => format!("{size} B, not {recorded}"),
        Some(PayloadCheck::Unchecked { reason }) => {
            return format!("unchecked: {}", shown(reason));
        }
    };
    if deleting {
        format!("{text} (being deleted)")
    } else {
        format!("{text} (DANGLING)")
    }
}

/// `label:` then the value, labels padded to the widest of the block.
fn fields(out: &mut String, indent: usize, rows: &[(&str, String)]) {
    let width = rows
        .iter()
        .map(|(l, _)| l.len() + 1)
        .max()
        .unwrap_or(0)
        .max(LABEL_WIDTH);
    for (label, value) in rows {
        let label = format!("{label}:");
        let _ = writeln!(out, "{:indent$}{label:<width$}  {value}", "");
    }
}

fn problems(out: &mut String, indent: usize, list: &[String]) {
    if list.is_empty() {
        return;
    }
    let _ = writeln!(out, "{:indent$}Problems:", "");
    for p in list {
        let _ = writeln!(out, "{:indent$}  - {}", "", shown(p));
    }
}

/// Columns padded to their widest cell, two spaces apart; the last column is not padded.
fn table(out: &mut String, indent: usize, header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: &[String]| {
        let mut text = " ".repeat(indent);
        for (i, cell) in cells.iter().enumerate() {
            text.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i] - cell.chars().count() + 2;
                text.push_str(&" ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    line(out, &header);
    for row in &rows {
        line(out, row);
    }
}

/// A duration in seconds for people: `4.2 s`, `42 s`, `3 min 12 s`, `5 h 3 min`, `12 d 4 h`.
fn human(secs: f64) -> String {
    let s = secs.abs();
    if s < 10.0 {
        let text = format!("{s:.1}");
        let text = text.strip_suffix(".0").unwrap_or(&text);
        return format!("{text} s");
    }
    let whole = s as u64;
    match whole {
        0..120 => format!("{whole} s"),
        120..7_200 => format!("{} min {} s", whole / 60, whole % 60),
        7_200..172_800 => format!("{} h {} min", whole / 3_600, whole % 3_600 / 60),
        _ => format!("{} d {} h", whole / 86_400, whole % 86_400 / 3_600),
    }
}

/// Untrusted text for the terminal: control characters escaped, clipped.
fn shown(s: &str) -> String {
    let escaped: String = s
        .chars()
        .flat_map(|c| {
            let escape = c.is_control();
            let mut buf = Vec::new();
            if escape {
                buf.extend(c.escape_default());
            } else {
                buf.push(c);
            }
            buf
        })
        .collect();
    clip(&escaped, MAX_SHOWN)
}

fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{ObjectMeta, StorageError};
    use bytes::Bytes;
    use futures::future::BoxFuture;
    use serde_json::{Value, json};

    const CLUSTER: &str = "my-flink";
    const JOB: &str = "307e2d6a5be8307e2d6a5be8307e2d6a";
    const OTHER_JOB: &str = "a0000000000000000000000000000007";

    // Handle values from src/handle.rs's tests. This one was written by a real Flink 1.12
    // JobManager into its job graph store.
    const FLINK_112_JOB_GRAPH: &str = "rO0ABXNyADtvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuUmV0cmlldmFibGVTdHJlYW1TdGF0ZUhhbmRsZQABHhjxVZcrAgABTAAYd3JhcHBlZFN0cmVhbVN0YXRlSGFuZGxldAAyTG9yZy9hcGFjaGUvZmxpbmsvcnVudGltZS9zdGF0ZS9TdHJlYW1TdGF0ZUhhbmRsZTt4cHNyADlvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuZmlsZXN5c3RlbS5GaWxlU3RhdGVIYW5kbGUE3HXYYr0bswIAAkoACXN0YXRlU2l6ZUwACGZpbGVQYXRodAAfTG9yZy9hcGFjaGUvZmxpbmsvY29yZS9mcy9QYXRoO3hwAAAAAAADcrNzcgAdb3JnLmFwYWNoZS5mbGluay5jb3JlLmZzLlBhdGgAAAAAAAAAAQIAAUwAA3VyaXQADkxqYXZhL25ldC9VUkk7eHBzcgAMamF2YS5uZXQuVVJJrAF4LkOeSasDAAFMAAZzdHJpbmd0ABJMamF2YS9sYW5nL1N0cmluZzt4cHQAN3MzOi8vcnRhL2ZsaW5rL2hhL2RlZmF1bHQvc3VibWl0dGVkSm9iR3JhcGgzMDdlMmQ2YTViZTh4";
    const FLINK_112_PATH: &str = "s3://rta/flink/ha/default/submittedJobGraph307e2d6a5be8";
    const FLINK_112_SIZE: i64 = 225971;
    /// `StateHandleWithDeleteMarker(RetrievableStreamStateHandle(new Path(PATH_115), 48213),
    /// false)`, written by Java's ObjectOutputStream from flink-dist 1.15.4's classes.
    const FLINK_115_UNMARKED: &str = "rO0ABXNyAGNvcmcuYXBhY2hlLmZsaW5rLmt1YmVybmV0ZXMuaGlnaGF2YWlsYWJpbGl0eS5LdWJlcm5ldGVzU3RhdGVIYW5kbGVTdG9yZSRTdGF0ZUhhbmRsZVdpdGhEZWxldGVNYXJrZXKfgTvzmWVDfwIAAloAEW1hcmtlZEZvckRlbGV0aW9uTAAFaW5uZXJ0ADdMb3JnL2FwYWNoZS9mbGluay9ydW50aW1lL3N0YXRlL1JldHJpZXZhYmxlU3RhdGVIYW5kbGU7eHAAc3IAO29yZy5hcGFjaGUuZmxpbmsucnVudGltZS5zdGF0ZS5SZXRyaWV2YWJsZVN0cmVhbVN0YXRlSGFuZGxlAAEeGPFVlysCAAFMABh3cmFwcGVkU3RyZWFtU3RhdGVIYW5kbGV0ADJMb3JnL2FwYWNoZS9mbGluay9ydW50aW1lL3N0YXRlL1N0cmVhbVN0YXRlSGFuZGxlO3hwc3IAOW9yZy5hcGFjaGUuZmxpbmsucnVudGltZS5zdGF0ZS5maWxlc3lzdGVtLkZpbGVTdGF0ZUhhbmRsZQTcddhivRuzAgACSgAJc3RhdGVTaXplTAAIZmlsZVBhdGh0AB9Mb3JnL2FwYWNoZS9mbGluay9jb3JlL2ZzL1BhdGg7eHAAAAAAAAC8VXNyAB1vcmcuYXBhY2hlLmZsaW5rLmNvcmUuZnMuUGF0aAAAAAAAAAABAgABTAADdXJpdAAOTGphdmEvbmV0L1VSSTt4cHNyAAxqYXZhLm5ldC5VUkmsAXguQ55JqwMAAUwABnN0cmluZ3QAEkxqYXZhL2xhbmcvU3RyaW5nO3hwdAA5czM6Ly9ydGEvZmxpbmsvaGEvZGVmYXVsdC9jb21wbGV0ZWRDaGVja3BvaW50NWMzZTFkMmE5ZjBieA==";
    /// The same marked for deletion, from flink-dist 1.20.3's classes.
    const FLINK_120_MARKED: &str = "rO0ABXNyAGNvcmcuYXBhY2hlLmZsaW5rLmt1YmVybmV0ZXMuaGlnaGF2YWlsYWJpbGl0eS5LdWJlcm5ldGVzU3RhdGVIYW5kbGVTdG9yZSRTdGF0ZUhhbmRsZVdpdGhEZWxldGVNYXJrZXIbrUSA74YNfAIAAloAEW1hcmtlZEZvckRlbGV0aW9uTAAFaW5uZXJ0ADdMb3JnL2FwYWNoZS9mbGluay9ydW50aW1lL3N0YXRlL1JldHJpZXZhYmxlU3RhdGVIYW5kbGU7eHABc3IAO29yZy5hcGFjaGUuZmxpbmsucnVudGltZS5zdGF0ZS5SZXRyaWV2YWJsZVN0cmVhbVN0YXRlSGFuZGxlAAEeGPFVlysCAAFMABh3cmFwcGVkU3RyZWFtU3RhdGVIYW5kbGV0ADJMb3JnL2FwYWNoZS9mbGluay9ydW50aW1lL3N0YXRlL1N0cmVhbVN0YXRlSGFuZGxlO3hwc3IAOW9yZy5hcGFjaGUuZmxpbmsucnVudGltZS5zdGF0ZS5maWxlc3lzdGVtLkZpbGVTdGF0ZUhhbmRsZQTcddhivRuzAgACSgAJc3RhdGVTaXplTAAIZmlsZVBhdGh0AB9Mb3JnL2FwYWNoZS9mbGluay9jb3JlL2ZzL1BhdGg7eHAAAAAAAAC8VXNyAB1vcmcuYXBhY2hlLmZsaW5rLmNvcmUuZnMuUGF0aAAAAAAAAAABAgABTAADdXJpdAAOTGphdmEvbmV0L1VSSTt4cHNyAAxqYXZhLm5ldC5VUkmsAXguQ55JqwMAAUwABnN0cmluZ3QAEkxqYXZhL2xhbmcvU3RyaW5nO3hwdAA5czM6Ly9ydGEvZmxpbmsvaGEvZGVmYXVsdC9jb21wbGV0ZWRDaGVja3BvaW50NWMzZTFkMmE5ZjBieA==";
    const PATH_115: &str = "s3://rta/flink/ha/default/completedCheckpoint5c3e1d2a9f0b";
    const SIZE_115: i64 = 48213;

    const HOLDER: &str = "f7978fe5-962d-4037-aa23-19ff522afbff";
    const SESSION: &str = "8f0a2a6c-3b53-4f7e-9a55-2e1a0c6b7d10";
    /// Five seconds after the fixtures' renewTime: 10 s of the 15 s lease left.
    const NOW: &str = "2022-05-19T15:10:07.104Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    fn cluster() -> ClusterId {
        CLUSTER.parse().unwrap()
    }

    fn configmap(value: Value) -> ConfigMap {
        serde_json::from_value(value).expect("a ConfigMap")
    }

    fn ha_labels() -> Value {
        json!({"app": CLUSTER, "configmap-type": "high-availability", "type": "flink-native-kubernetes"})
    }

    /// The lock annotation byte for byte as Flink's fabric8 elector writes it.
    fn flink_lock(holder: &str, transitions: u32) -> Value {
        json!({
            "control-plane.alpha.kubernetes.io/leader": format!(
                r#"{{"holderIdentity":"{holder}","leaseDuration":15.000000000,"acquireTime":"2022-05-19T15:09:39.272000Z","renewTime":"2022-05-19T15:10:02.104000Z","leaderTransitions":{transitions}}}"#
            )
        })
    }

    fn handle_value(path: &str, size: i64) -> String {
        handle::encode_base64(&StateHandle::new(path, size))
    }

    fn marked_value(path: &str, size: i64, marked: bool) -> String {
        handle::encode_base64(&StateHandle::with_delete_marker(path, size, marked))
    }

    fn checkpoint(id: u64) -> String {
        plan::checkpoint_key(id)
    }

    /// A Flink 1.12–1.14 cluster with one running job, as Flink leaves its ConfigMaps: four
    /// locks, each with the leader's address and session, the job graph and the running-jobs
    /// registry in the dispatcher's, two retained checkpoints and the counter in the job
    /// manager's.
    fn flink_112() -> Vec<ConfigMap> {
        let leader = |component: &str, address: &str, data: Value| {
            let mut data = data;
            data["address"] = json!(address);
            data["sessionId"] = json!(SESSION);
            configmap(json!({
                "metadata": {
                    "name": format!("{CLUSTER}-{component}-leader"),
                    "namespace": "flink",
                    "labels": ha_labels(),
                    "annotations": flink_lock(HOLDER, 0),
                },
                "data": data,
            }))
        };
        vec![
            leader(
                "dispatcher",
                "akka.tcp://flink@10.244.0.12:6123/user/rpc/dispatcher_1",
                json!({
                    format!("jobGraph-{JOB}"): FLINK_112_JOB_GRAPH,
                    format!("runningJobsRegistry-{JOB}"): "RUNNING",
                }),
            ),
            leader(
                "resourcemanager",
                "akka.tcp://flink@10.244.0.12:6123/user/rpc/resourcemanager_0",
                json!({}),
            ),
            leader("restserver", "http://10.244.0.12:8081", json!({})),
            leader(
                &format!("{JOB}-jobmanager"),
                "akka.tcp://flink@10.244.0.12:6123/user/rpc/jobmanager_2",
                json!({
                    checkpoint(41): handle_value("s3://rta/flink/ha/default/completedCheckpoint9d8c7b6a5f4e", 48100),
                    checkpoint(42): handle_value(PATH_115, SIZE_115),
                    "counter": "43",
                }),
            ),
        ]
    }

    /// A Flink 1.15+ cluster with one running job: the cluster ConfigMap (one lock, a leader
    /// entry per component, the job graph) and the job's ConfigMap (checkpoints, counter; no
    /// lock), with handles wrapped in `StateHandleWithDeleteMarker`.
    fn flink_115() -> Vec<ConfigMap> {
        let akka = |endpoint: &str| {
            format!("{SESSION},akka.tcp://flink@10.244.0.12:6123/user/rpc/{endpoint}")
        };
        vec![
            configmap(json!({
                "metadata": {
                    "name": format!("{CLUSTER}-cluster-config-map"),
                    "namespace": "flink",
                    "labels": ha_labels(),
                    "annotations": flink_lock(HOLDER, 2),
                },
                "data": {
                    "org.apache.flink.k8s.leader.dispatcher": akka("dispatcher_1"),
                    "org.apache.flink.k8s.leader.resourcemanager": akka("resourcemanager_0"),
                    "org.apache.flink.k8s.leader.restserver": format!("{SESSION},http://10.244.0.12:8081"),
                    format!("org.apache.flink.k8s.leader.{JOB}"): akka("jobmanager_2"),
                    format!("jobGraph-{JOB}"): marked_value(FLINK_112_PATH, FLINK_112_SIZE, false),
                },
            })),
            configmap(json!({
                "metadata": {
                    "name": format!("{CLUSTER}-{JOB}-config-map"),
                    "namespace": "flink",
                    "labels": ha_labels(),
                },
                "data": {
                    checkpoint(41): FLINK_120_MARKED,
                    checkpoint(42): FLINK_115_UNMARKED,
                    "counter": "43",
                },
            })),
        ]
    }

    fn component<'a>(report: &'a Report, layout: Layout, name: &str) -> &'a ComponentReport {
        report
            .components
            .iter()
            .find(|c| c.layout == layout && c.component == name)
            .unwrap_or_else(|| panic!("no {name} in {layout:?}"))
    }

    fn configmap_report<'a>(report: &'a Report, name: &str) -> &'a ConfigMapReport {
        report
            .configmaps
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no ConfigMap {name}"))
    }

    fn no_problems(report: &Report) {
        for c in &report.components {
            assert!(c.problems.is_empty(), "{}: {:?}", c.component, c.problems);
            assert_ne!(c.lock.status, LockStatus::Malformed, "{}", c.component);
        }
        for j in &report.jobs {
            assert!(j.problems.is_empty(), "{}: {:?}", j.job_id, j.problems);
            for c in &j.checkpoints {
                assert_eq!((&c.key_problem, &c.entry.malformed), (&None, &None));
            }
        }
        for cm in &report.configmaps {
            assert!(cm.problems.is_empty(), "{}: {:?}", cm.name, cm.problems);
            assert!(
                cm.unknown_keys.is_empty(),
                "{}: {:?}",
                cm.name,
                cm.unknown_keys
            );
            assert!(
                cm.missing_labels.is_empty(),
                "{}: {:?}",
                cm.name,
                cm.missing_labels
            );
        }
    }

    #[test]
    fn a_flink_112_cluster_shows_every_component_and_job() {
        let report = build(&cluster(), &flink_112(), now());
        no_problems(&report);
        assert_eq!(report.layouts, vec![Layout::PerComponent]);
        assert_eq!(report.namespace.as_deref(), Some("flink"));
        assert_eq!(report.inspected_at, NOW);
        let names: Vec<&str> = report
            .components
            .iter()
            .map(|c| c.component.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "dispatcher",
                "resourcemanager",
                "restserver",
                &format!("jobmanager/{JOB}")
            ]
        );

        let dispatcher = component(&report, Layout::PerComponent, "dispatcher");
        assert_eq!(dispatcher.configmap, "my-flink-dispatcher-leader");
        assert_eq!(
            dispatcher.address.as_deref(),
            Some("akka.tcp://flink@10.244.0.12:6123/user/rpc/dispatcher_1")
        );
        assert_eq!(dispatcher.session_id.as_deref(), Some(SESSION));
        let lock = &dispatcher.lock;
        assert_eq!(lock.status, LockStatus::Held);
        assert_eq!(lock.holder_identity.as_deref(), Some(HOLDER));
        assert_eq!(lock.lease_duration_seconds, Some(15.0));
        assert_eq!(lock.renew_time.as_deref(), Some("2022-05-19T15:10:02.104Z"));
        assert_eq!(lock.expires_at.as_deref(), Some("2022-05-19T15:10:17.104Z"));
        assert_eq!(lock.remaining_seconds, Some(10.0));
        assert_eq!(lock.leader_transitions, Some(0));

        assert_eq!(report.jobs.len(), 1);
        let job = &report.jobs[0];
        assert_eq!(
            (job.job_id.as_str(), job.layout),
            (JOB, Layout::PerComponent)
        );
        assert_eq!(job.status, JobState::Running);
        let graph = job.graph.as_ref().unwrap();
        assert_eq!(graph.key, format!("jobGraph-{JOB}"));
        assert_eq!(graph.configmap, "my-flink-dispatcher-leader");
        assert_eq!(
            graph.handle,
            Some(StateHandle::new(FLINK_112_PATH, FLINK_112_SIZE))
        );
        assert_eq!(
            job.checkpoints_configmap,
            format!("my-flink-{JOB}-jobmanager-leader")
        );
        assert!(job.checkpoints_configmap_found);
        let ids: Vec<Option<u64>> = job.checkpoints.iter().map(|c| c.id).collect();
        assert_eq!(ids, [Some(41), Some(42)]);
        assert_eq!(
            job.checkpoints[1].entry.handle,
            Some(StateHandle::new(PATH_115, SIZE_115))
        );
        assert_eq!(
            job.counter,
            CounterReport {
                value: Some(43),
                default: false,
                malformed: None
            }
        );

        assert_eq!(report.configmaps.len(), 4);
        let dispatcher_cm = configmap_report(&report, "my-flink-dispatcher-leader");
        let data = flink_112()[0].data.clone().unwrap();
        assert_eq!(dispatcher_cm.keys, 4);
        assert_eq!(dispatcher_cm.data_bytes, plan::data_size(&data));
        assert_eq!(dispatcher_cm.limit_bytes, 1 << 20);
        assert_eq!(dispatcher_cm.layout, Some(Layout::PerComponent));
        assert_eq!(
            dispatcher_cm.lock.as_ref().unwrap().status,
            LockStatus::Held
        );
        assert!(report.verification.is_none() && report.dangling.is_empty());
    }

    #[test]
    fn a_flink_115_cluster_shows_the_cluster_configmap_and_the_delete_markers() {
        let report = build(&cluster(), &flink_115(), now());
        no_problems(&report);
        assert_eq!(report.layouts, vec![Layout::ClusterConfigMap]);
        let names: Vec<&str> = report
            .components
            .iter()
            .map(|c| c.component.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "dispatcher",
                "resourcemanager",
                "restserver",
                &format!("jobmanager/{JOB}")
            ]
        );
        for c in &report.components {
            assert_eq!(c.configmap, "my-flink-cluster-config-map");
            // One lock for all.
            assert_eq!(c.lock.holder_identity.as_deref(), Some(HOLDER));
            assert_eq!(c.lock.leader_transitions, Some(2));
            assert_eq!(c.session_id.as_deref(), Some(SESSION));
        }
        assert_eq!(
            component(&report, Layout::ClusterConfigMap, "restserver")
                .address
                .as_deref(),
            Some("http://10.244.0.12:8081")
        );

        let job = &report.jobs[0];
        assert_eq!(report.jobs.len(), 1);
        assert_eq!(
            (job.job_id.as_str(), job.layout),
            (JOB, Layout::ClusterConfigMap)
        );
        // Flink 1.15+ has no running-jobs registry.
        assert_eq!(job.status, JobState::None);
        assert_eq!(
            job.graph.as_ref().unwrap().handle,
            Some(StateHandle::with_delete_marker(
                FLINK_112_PATH,
                FLINK_112_SIZE,
                false
            ))
        );
        assert_eq!(
            job.checkpoints_configmap,
            format!("my-flink-{JOB}-config-map")
        );
        let handles: Vec<_> = job
            .checkpoints
            .iter()
            .map(|c| (c.id, c.entry.handle.clone()))
            .collect();
        assert_eq!(
            handles,
            [
                (
                    Some(41),
                    Some(StateHandle::with_delete_marker(PATH_115, SIZE_115, true))
                ),
                (
                    Some(42),
                    Some(StateHandle::with_delete_marker(PATH_115, SIZE_115, false))
                ),
            ]
        );
        assert_eq!(job.counter.value, Some(43));

        let job_cm = configmap_report(&report, &format!("my-flink-{JOB}-config-map"));
        assert_eq!(job_cm.lock, None, "the job's ConfigMap is no lock");
        let cluster_cm = configmap_report(&report, "my-flink-cluster-config-map");
        assert_eq!(cluster_cm.lock.as_ref().unwrap().status, LockStatus::Held);
        assert_eq!(cluster_cm.keys, 5);
    }

    #[test]
    fn later_flink_versions_name_job_leaders_job_dash_id() {
        let cm = configmap(json!({
            "metadata": {"name": "my-flink-cluster-config-map", "annotations": flink_lock(HOLDER, 0)},
            "data": {
                format!("org.apache.flink.k8s.leader.job-{OTHER_JOB}"): format!("{SESSION},pekko.tcp://flink@jm:6123/user/rpc/jobmanager_3"),
                format!("executionPlan-{OTHER_JOB}"): marked_value("s3://b/ha/submittedExecutionPlan1", 10, false),
            },
        }));
        let report = build(&cluster(), &[cm], now());
        let jm = component(
            &report,
            Layout::ClusterConfigMap,
            &format!("jobmanager/{OTHER_JOB}"),
        );
        assert_eq!(
            jm.address.as_deref(),
            Some("pekko.tcp://flink@jm:6123/user/rpc/jobmanager_3")
        );
        assert_eq!(report.jobs.len(), 1);
        let job = &report.jobs[0];
        assert_eq!(job.job_id, OTHER_JOB);
        assert_eq!(
            job.graph.as_ref().unwrap().key,
            format!("executionPlan-{OTHER_JOB}")
        );
        assert!(!job.checkpoints_configmap_found);
        assert_eq!(
            job.counter,
            CounterReport {
                value: Some(1),
                default: true,
                malformed: None
            }
        );
        // Found by name, without Flink's labels (the elector creates the lock without them).
        assert_eq!(
            report.configmaps[0].missing_labels,
            [
                "app=my-flink",
                "configmap-type=high-availability",
                "type=flink-native-kubernetes"
            ]
        );
    }

    #[test]
    fn both_layouts_are_shown_side_by_side() {
        let mut all = flink_112();
        all.extend(flink_115());
        let report = build(&cluster(), &all, now());
        no_problems(&report);
        assert_eq!(
            report.layouts,
            [Layout::PerComponent, Layout::ClusterConfigMap]
        );
        assert_eq!(report.components.len(), 8);
        let jobs: Vec<_> = report
            .jobs
            .iter()
            .map(|j| (j.job_id.as_str(), j.layout))
            .collect();
        assert_eq!(
            jobs,
            [(JOB, Layout::PerComponent), (JOB, Layout::ClusterConfigMap)]
        );
        let table = render_table(&report);
        for expected in [
            "\nLeaders, one ConfigMap each (Flink 1.12-1.14 layout):\n  dispatcher:\n",
            "\nLeaders in my-flink-cluster-config-map (Flink 1.15+ layout):\n  Shared lock:\n",
            &format!("\nJobs:\n  {JOB} (Flink 1.12-1.14 layout):\n"),
            &format!("  {JOB} (Flink 1.15+ layout):\n"),
        ] {
            assert!(table.contains(expected), "missing {expected:?} in\n{table}");
        }
    }

    /// Everything that can be wrong at once: nothing panics, nothing is dropped silently.
    fn garbage() -> Vec<ConfigMap> {
        vec![
            configmap(json!({
                "metadata": {
                    "name": "my-flink-dispatcher-leader",
                    "labels": ha_labels(),
                    "annotations": {"control-plane.alpha.kubernetes.io/leader": "{not json"},
                },
                "data": {
                    "sessionId": "not-a-uuid",
                    "jobGraph-nothex": "x",
                    format!("jobGraph-{JOB}"): "not base64!",
                    format!("runningJobsRegistry-{JOB}"): "FINISHED",
                    "surprise": "1",
                },
                "binaryData": {"blob": "AAAA"},
            })),
            configmap(json!({
                "metadata": {
                    "name": format!("my-flink-{JOB}-jobmanager-leader"),
                    "labels": ha_labels(),
                    "annotations": {"control-plane.alpha.kubernetes.io/leader": r#"{"holderIdentity":7,"leaseDuration":15}"#},
                },
                "data": {
                    // A Java string, not a handle.
                    checkpoint(7): "rO0ABXQABWhlbGxv",
                    "checkpointID-8": handle_value("s3://b/ha/completedCheckpoint000000000008", 8),
                    "checkpointID-abc": "",
                    "counter": "many",
                },
            })),
            configmap(json!({
                "metadata": {"name": "my-flink-cluster-config-map", "labels": ha_labels()},
                "data": {
                    "org.apache.flink.k8s.leader.dispatcher": "no-comma",
                    "org.apache.flink.k8s.leader.bogus": format!("{SESSION},x"),
                    "org.apache.flink.k8s.leader.restserver": "nope,http://x",
                    "jobGraph-123": "x",
                },
            })),
            configmap(json!({
                "metadata": {"name": "my-flink-something-else", "labels": ha_labels()},
                "data": {"anything": "goes"},
            })),
        ]
    }

    #[test]
    fn malformed_entries_are_reported_never_fatal() {
        let report = build(&cluster(), &garbage(), now());
        assert_eq!(
            report.layouts,
            [Layout::PerComponent, Layout::ClusterConfigMap]
        );

        let dispatcher = component(&report, Layout::PerComponent, "dispatcher");
        assert_eq!(dispatcher.lock.status, LockStatus::Malformed);
        assert!(
            dispatcher
                .lock
                .error
                .as_ref()
                .unwrap()
                .contains("not valid JSON")
        );
        assert_eq!(
            dispatcher.problems,
            [r#"sessionId "not-a-uuid" is not a UUID"#]
        );
        let jm = component(&report, Layout::PerComponent, &format!("jobmanager/{JOB}"));
        assert_eq!(jm.lock.status, LockStatus::Malformed);
        assert!(jm.lock.error.as_ref().unwrap().contains("holderIdentity"));

        let job = report
            .jobs
            .iter()
            .find(|j| j.layout == Layout::PerComponent)
            .unwrap();
        assert_eq!(job.status, JobState::Malformed);
        assert!(
            job.problems.iter().any(|p| p.contains("FINISHED")),
            "{:?}",
            job.problems
        );
        let graph = job.graph.as_ref().unwrap();
        assert!(graph.handle.is_none());
        assert!(
            graph.malformed.as_ref().unwrap().contains("base64"),
            "{graph:?}"
        );
        let checkpoints: Vec<_> = job
            .checkpoints
            .iter()
            .map(|c| {
                (
                    c.entry.key.as_str(),
                    c.id,
                    c.key_problem.is_some(),
                    c.entry.handle.is_some(),
                )
            })
            .collect();
        assert_eq!(
            checkpoints,
            [
                (checkpoint(7).as_str(), Some(7), false, false),
                ("checkpointID-8", Some(8), true, true),
                ("checkpointID-abc", None, true, false),
            ]
        );
        assert!(
            job.checkpoints[0]
                .entry
                .malformed
                .as_ref()
                .unwrap()
                .contains("expected")
        );
        assert_eq!(job.counter.value, None);
        assert!(job.counter.malformed.as_ref().unwrap().contains("many"));

        let leaders: Vec<_> = report
            .components
            .iter()
            .filter(|c| c.layout == Layout::ClusterConfigMap)
            .map(|c| (c.component.as_str(), c.address.is_some(), c.problems.len()))
            .collect();
        assert_eq!(
            leaders,
            [
                ("dispatcher", false, 1),
                ("restserver", false, 1),
                ("bogus", true, 1)
            ]
        );
        assert_eq!(
            component(&report, Layout::ClusterConfigMap, "dispatcher").problems,
            [
                r#"org.apache.flink.k8s.leader.dispatcher: "no-comma" is not '<sessionId>,<address>'"#
            ]
        );

        let dispatcher_cm = configmap_report(&report, "my-flink-dispatcher-leader");
        assert_eq!(dispatcher_cm.unknown_keys, ["surprise", "blob"]);
        assert_eq!(dispatcher_cm.keys, 6);
        // Keys plus values; binaryData decoded (3 bytes).
        let data = garbage()[0].data.clone().unwrap();
        assert_eq!(
            dispatcher_cm.data_bytes,
            plan::data_size(&data) + "blob".len() + 3
        );
        assert_eq!(dispatcher_cm.problems.len(), 1);
        assert!(dispatcher_cm.problems[0].starts_with("jobGraph-nothex: invalid job id"));
        let cluster_cm = configmap_report(&report, "my-flink-cluster-config-map");
        assert_eq!(cluster_cm.lock.as_ref().unwrap().status, LockStatus::Absent);
        assert!(cluster_cm.problems[0].starts_with("jobGraph-123: invalid job id"));
        let other = configmap_report(&report, "my-flink-something-else");
        assert_eq!(
            (other.layout, other.role.as_str()),
            (None, "not an HA ConfigMap name of this cluster")
        );

        let table = render_table(&report);
        for expected in [
            "    Lock:         malformed: leader record is not valid JSON",
            "    Status:       malformed\n",
            &format!("    Job graph:    jobGraph-{JOB}: malformed\n"),
            "    Counter:      malformed: checkpoint counter value \"many\"",
            "      ?   <malformed>",
            "      - checkpointID-abc: no checkpoint id in the key\n",
            "    - unknown keys: surprise, blob\n",
            "  Shared lock:\n    Lock:         no leader annotation\n",
        ] {
            assert!(table.contains(expected), "missing {expected:?} in\n{table}");
        }
        // And JSON as well.
        let json: Value = serde_json::from_str(&render_json(&report)).unwrap();
        assert_eq!(json["jobs"][0]["status"], "malformed");
    }

    #[test]
    fn untrusted_text_is_escaped_in_the_table() {
        let cm = configmap(json!({
            "metadata": {"name": "my-flink-restserver-leader", "annotations": flink_lock(r"evil\u001b[2Jholder", 0)},
            "data": {"address": format!("http://x\n{}", "y".repeat(500))},
        }));
        let table = render_table(&build(&cluster(), &[cm], now()));
        assert!(!table.contains('\u{1b}'), "{table}");
        assert!(table.contains(r"evil\u{1b}[2Jholder"), "{table}");
        assert!(table.contains(r"http://x\ny"), "{table}");
        assert!(table.lines().all(|l| l.chars().count() < 260), "{table}");
    }

    #[test]
    fn leases_are_judged_from_the_record() {
        let later: Timestamp = "2022-05-19T15:11:02.104Z".parse().unwrap();
        let mut cms = flink_112();
        cms.truncate(1);
        let report = build(&cluster(), &cms, later);
        let lock = &report.components[0].lock;
        assert_eq!(lock.status, LockStatus::Expired);
        assert_eq!(lock.remaining_seconds, Some(-45.0));
        let table = render_table(&report);
        assert!(
            table.contains("    Lease:        expired 45 s ago (at 2022-05-19T15:10:17.104Z)\n"),
            "{table}"
        );
        assert!(table.contains("The elector does not judge so"), "{table}");

        let released = configmap(json!({
            "metadata": {"name": "my-flink-resourcemanager-leader", "annotations": {
                "control-plane.alpha.kubernetes.io/leader": r#"{"holderIdentity":"","leaseDuration":1.000000000,"acquireTime":"2022-05-19T15:10:05.000000Z","renewTime":"2022-05-19T15:10:05.000000Z","leaderTransitions":3}"#
            }},
        }));
        let report = build(&cluster(), &[released], now());
        let lock = &report.components[0].lock;
        assert_eq!(lock.status, LockStatus::Released);
        assert_eq!(lock.holder_identity.as_deref(), Some(""));
        let table = render_table(&report);
        assert!(
            table.contains("    Holder:       none (released)\n"),
            "{table}"
        );
        assert!(!table.contains("    Lock:         no leader annotation"));
    }

    #[test]
    fn names_are_classified_for_the_cluster_only() {
        let c: ClusterId = "a-b".parse().unwrap();
        let role = |name: &str| classify(&c, name);
        let job: JobId = JOB.parse().unwrap();
        assert_eq!(
            role("a-b-dispatcher-leader"),
            Role::Leader(Component::Dispatcher)
        );
        assert_eq!(
            role("a-b-resourcemanager-leader"),
            Role::Leader(Component::ResourceManager)
        );
        assert_eq!(
            role("a-b-restserver-leader"),
            Role::Leader(Component::RestServer)
        );
        assert_eq!(
            role(&format!("a-b-{JOB}-jobmanager-leader")),
            Role::Leader(Component::JobManager(job.clone()))
        );
        assert_eq!(role("a-b-cluster-config-map"), Role::ClusterConfig);
        assert_eq!(role(&format!("a-b-{JOB}-config-map")), Role::JobConfig(job));
        for other in [
            "a-dispatcher-leader",
            "a-b-c-dispatcher-leader",
            "a-bdispatcher-leader",
            "a-b-nothex-jobmanager-leader",
            "a-b-config-map",
            "flink-config-a-b",
        ] {
            assert_eq!(role(other), Role::Other, "{other}");
        }
    }

    #[test]
    fn referenced_jobs_come_from_names_and_keys_of_both_layouts() {
        let mut cms = flink_112();
        cms.remove(3); // The job manager's ConfigMap: the dispatcher still names the job.
        cms.push(configmap(json!({
            "metadata": {"name": "my-flink-cluster-config-map"},
            "data": {format!("org.apache.flink.k8s.leader.job-{OTHER_JOB}"): "x"},
        })));
        let jobs: Vec<String> = referenced_jobs(&cluster(), &cms)
            .iter()
            .map(|j| j.to_string())
            .collect();
        assert_eq!(jobs, [JOB, OTHER_JOB]);
        assert_eq!(
            label_selector(&cluster()),
            "app=my-flink,configmap-type=high-availability"
        );
    }

    #[test]
    fn the_counter_must_be_above_the_newest_checkpoint() {
        let cm = configmap(json!({
            "metadata": {"name": format!("my-flink-{JOB}-jobmanager-leader")},
            "data": {checkpoint(3): handle_value("s3://b/x", 1)},
        }));
        let report = build(&cluster(), &[cm], now());
        assert_eq!(
            report.jobs[0].problems,
            [
                "the counter (1, by default) is not above the newest checkpoint id (3): the next checkpoint would reuse an id"
            ]
        );
    }

    #[test]
    fn sizes_are_measured_against_the_limit() {
        let cm = configmap(json!({
            "metadata": {"name": format!("my-flink-{JOB}-config-map")},
            "data": {"counter": "x".repeat((1 << 19) - 7)},
        }));
        let report = build(&cluster(), &[cm], now());
        let size = &report.configmaps[0];
        assert_eq!((size.data_bytes, size.percent), (1 << 19, 50.0));
        assert!(render_table(&report).contains(&format!(
            "  my-flink-{JOB}-config-map  1     524288  50.0%  checkpoints of job {JOB}\n"
        )));
    }

    #[test]
    fn no_configmaps_is_a_report_too() {
        let report = build(&cluster(), &[], now());
        assert!(report.layouts.is_empty() && report.components.is_empty());
        assert_eq!(
            render_table(&report),
            "Cluster:      my-flink\n\
             Namespace:    -\n\
             Inspected:    2022-05-19T15:10:07.104Z\n\
             Layout:       none: no HA ConfigMaps found\n\
             Payloads:     not verified\n\
             \n\
             No HA ConfigMaps found for cluster my-flink.\n"
        );
    }

    #[test]
    fn the_table_of_a_flink_112_cluster() {
        let report = build(&cluster(), &flink_112(), now());
        let expected = "\
Cluster:      my-flink
Namespace:    flink
Inspected:    2022-05-19T15:10:07.104Z
Layout:       one ConfigMap per component (Flink 1.12-1.14, hakeeper)
Payloads:     not verified

Leaders, one ConfigMap each (Flink 1.12-1.14 layout):
  dispatcher:
    ConfigMap:    my-flink-dispatcher-leader
    Holder:       f7978fe5-962d-4037-aa23-19ff522afbff
    Lease:        10 s left (until 2022-05-19T15:10:17.104Z)
    Renewed:      2022-05-19T15:10:02.104Z (lease 15 s)
    Acquired:     2022-05-19T15:09:39.272Z
    Transitions:  0
    Address:      akka.tcp://flink@10.244.0.12:6123/user/rpc/dispatcher_1
    Session ID:   8f0a2a6c-3b53-4f7e-9a55-2e1a0c6b7d10
  resourcemanager:
    ConfigMap:    my-flink-resourcemanager-leader
    Holder:       f7978fe5-962d-4037-aa23-19ff522afbff
    Lease:        10 s left (until 2022-05-19T15:10:17.104Z)
    Renewed:      2022-05-19T15:10:02.104Z (lease 15 s)
    Acquired:     2022-05-19T15:09:39.272Z
    Transitions:  0
    Address:      akka.tcp://flink@10.244.0.12:6123/user/rpc/resourcemanager_0
    Session ID:   8f0a2a6c-3b53-4f7e-9a55-2e1a0c6b7d10
  restserver:
    ConfigMap:    my-flink-restserver-leader
    Holder:       f7978fe5-962d-4037-aa23-19ff522afbff
    Lease:        10 s left (until 2022-05-19T15:10:17.104Z)
    Renewed:      2022-05-19T15:10:02.104Z (lease 15 s)
    Acquired:     2022-05-19T15:09:39.272Z
    Transitions:  0
    Address:      http://10.244.0.12:8081
    Session ID:   8f0a2a6c-3b53-4f7e-9a55-2e1a0c6b7d10
  jobmanager/307e2d6a5be8307e2d6a5be8307e2d6a:
    ConfigMap:    my-flink-307e2d6a5be8307e2d6a5be8307e2d6a-jobmanager-leader
    Holder:       f7978fe5-962d-4037-aa23-19ff522afbff
    Lease:        10 s left (until 2022-05-19T15:10:17.104Z)
    Renewed:      2022-05-19T15:10:02.104Z (lease 15 s)
    Acquired:     2022-05-19T15:09:39.272Z
    Transitions:  0
    Address:      akka.tcp://flink@10.244.0.12:6123/user/rpc/jobmanager_2
    Session ID:   8f0a2a6c-3b53-4f7e-9a55-2e1a0c6b7d10

Jobs:
  307e2d6a5be8307e2d6a5be8307e2d6a:
    Status:       RUNNING
    Job graph:    s3://rta/flink/ha/default/submittedJobGraph307e2d6a5be8 (225971 B)
    Counter:      43
    Checkpoints:  2 in my-flink-307e2d6a5be8307e2d6a5be8307e2d6a-jobmanager-leader
      ID  PATH                                                       SIZE   DELETE MARKER
      41  s3://rta/flink/ha/default/completedCheckpoint9d8c7b6a5f4e  48100  -
      42  s3://rta/flink/ha/default/completedCheckpoint5c3e1d2a9f0b  48213  -

ConfigMaps (data counted as keys plus values, against the 1048576 byte limit):
  NAME                                                         KEYS  BYTES  USED  HOLDS
  my-flink-307e2d6a5be8307e2d6a5be8307e2d6a-jobmanager-leader  5     1484   0.1%  jobmanager leader, checkpoints of job 307e2d6a5be8307e2d6a5be8307e2d6a
  my-flink-dispatcher-leader                                   4     855    0.1%  dispatcher leader, job graphs, running jobs
  my-flink-resourcemanager-leader                              2     112    0.0%  resourcemanager leader
  my-flink-restserver-leader                                   2     75     0.0%  restserver leader

Leases are judged from each record's renewTime + leaseDuration against this
machine's clock, so clock skew shifts them. The elector does not judge so: it times
a lease from when it sees the record change.
";
        assert_eq!(
            render_table(&report),
            expected,
            "\n{}",
            render_table(&report)
        );
    }

    #[test]
    fn json_is_camel_case() {
        let report = build(&cluster(), &flink_115(), now());
        let json: Value = serde_json::from_str(&render_json(&report)).unwrap();
        assert_eq!(json["clusterId"], CLUSTER);
        assert_eq!(json["layouts"], json!(["clusterConfigMap"]));
        assert_eq!(json["components"][0]["lock"]["holderIdentity"], HOLDER);
        assert_eq!(json["components"][0]["lock"]["remainingSeconds"], 10.0);
        assert_eq!(json["components"][0]["lock"]["status"], "held");
        assert_eq!(json["components"][0]["sessionId"], SESSION);
        assert_eq!(json["jobs"][0]["status"], "none");
        assert_eq!(
            json["jobs"][0]["graph"]["handle"]["stateSize"],
            FLINK_112_SIZE
        );
        let first = &json["jobs"][0]["checkpoints"][0];
        assert_eq!(first["id"], 41);
        assert_eq!(first["key"], checkpoint(41));
        assert_eq!(first["handle"]["type"], "StateHandleWithDeleteMarker");
        assert_eq!(first["handle"]["markedForDeletion"], true);
        assert_eq!(
            json["jobs"][0]["counter"],
            json!({"value": 43, "default": false, "malformed": null})
        );
        assert_eq!(json["configmaps"][0]["limitBytes"], 1 << 20);
        assert_eq!(json["verification"], Value::Null);
        assert_eq!(json["dangling"], json!([]));
    }

    /// Sizes by path; `fail` paths make the store fail.
    struct Sizes {
        sizes: HashMap<String, u64>,
        fail: Vec<String>,
    }

    impl ObjectStore for Sizes {
        fn put_new<'a>(
            &'a self,
            _: &'a Location,
            _: Bytes,
        ) -> BoxFuture<'a, Result<(), StorageError>> {
            unimplemented!("not used by verify")
        }
        fn get<'a>(
            &'a self,
            _: &'a Location,
            _: u64,
        ) -> BoxFuture<'a, Result<Bytes, StorageError>> {
            unimplemented!("not used by verify")
        }
        fn size<'a>(
            &'a self,
            location: &'a Location,
        ) -> BoxFuture<'a, Result<Option<u64>, StorageError>> {
            Box::pin(async move {
                let key = location.to_string();
                if self.fail.contains(&key) {
                    return Err(StorageError::Unavailable {
                        location: key,
                        message: "down".into(),
                    });
                }
                Ok(self.sizes.get(&key).copied())
            })
        }
        fn delete<'a>(&'a self, _: &'a Location) -> BoxFuture<'a, Result<(), StorageError>> {
            unimplemented!("not used by verify")
        }
        fn list<'a>(
            &'a self,
            _: &'a Location,
        ) -> BoxFuture<'a, Result<Vec<ObjectMeta>, StorageError>> {
            unimplemented!("not used by verify")
        }
        fn describe(&self) -> String {
            "sizes".into()
        }
    }

    #[tokio::test]
    async fn verify_lists_dangling_handles_but_not_those_being_deleted() {
        let cm = configmap(json!({
            "metadata": {"name": format!("my-flink-{JOB}-config-map")},
            "data": {
                checkpoint(1): marked_value("s3://b/ha/gone-while-marked", 5, true),
                checkpoint(2): marked_value("s3://b/ha/missing", 5, false),
                checkpoint(3): marked_value("s3://b/ha/truncated", 5, false),
                checkpoint(4): marked_value("s3://b/ha/down", 5, false),
                checkpoint(5): marked_value("hdfs://nn/ha/elsewhere", 5, false),
                checkpoint(6): "garbage",
                checkpoint(7): marked_value("s3://b/ha/whole", 5, false),
                "counter": "8",
            },
        }));
        let store = Sizes {
            sizes: HashMap::from([
                ("s3://b/ha/truncated".to_string(), 4),
                ("s3://b/ha/whole".to_string(), 5),
            ]),
            fail: vec!["s3://b/ha/down".to_string()],
        };
        let mut report = build(&cluster(), &[cm], now());
        verify(&mut report, &store).await;
        assert_eq!(
            report.verification,
            Some(VerificationSummary {
                handles: 6,
                ok: 1,
                dangling: 2,
                being_deleted: 1,
                unchecked: 2
            })
        );
        let dangling: Vec<_> = report
            .dangling
            .iter()
            .map(|d| (d.key.as_str(), d.path.as_str(), d.problem.as_str()))
            .collect();
        assert_eq!(
            dangling,
            [
                (checkpoint(2).as_str(), "s3://b/ha/missing", "is missing"),
                (
                    checkpoint(3).as_str(),
                    "s3://b/ha/truncated",
                    "has 4 bytes where the handle records 5"
                ),
            ]
        );
        let checks: Vec<_> = report.jobs[0]
            .checkpoints
            .iter()
            .map(|c| c.entry.payload.clone())
            .collect();
        assert_eq!(checks[0], Some(PayloadCheck::Missing));
        assert_eq!(
            checks[2],
            Some(PayloadCheck::WrongSize {
                size: 4,
                recorded: 5
            })
        );
        assert!(
            matches!(&checks[3], Some(PayloadCheck::Unchecked { reason }) if reason.contains("down"))
        );
        assert!(
            matches!(&checks[4], Some(PayloadCheck::Unchecked { reason }) if reason.contains("hdfs"))
        );
        assert_eq!(checks[5], None);
        assert_eq!(checks[6], Some(PayloadCheck::Ok { size: 5 }));

        let table = render_table(&report);
        for expected in [
            "Payloads:     6 handles checked: 1 ok, 2 dangling, 1 gone while marked for deletion, 2 could not be checked\n",
            "  1   s3://b/ha/gone-while-marked  5     marked         missing (being deleted)\n",
            "  2   s3://b/ha/missing            5     unmarked       missing (DANGLING)\n",
            "\nDangling handles:\n  CONFIGMAP",
        ] {
            assert!(table.contains(expected), "missing {expected:?} in\n{table}");
        }
        let json: Value = serde_json::from_str(&render_json(&report)).unwrap();
        assert_eq!(
            json["jobs"][0]["checkpoints"][2]["payload"],
            json!({"result": "wrongSize", "size": 4, "recorded": 5})
        );
        assert_eq!(json["dangling"][0]["path"], "s3://b/ha/missing");
    }
}
