//! The pure model: what [`build`] makes of a cluster's HA ConfigMaps, the [`Report`] and its
//! parts, and the helpers that read names, keys and values (shared with collecting and
//! rendering).

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use serde::Serialize;

use crate::handle::{self, StateHandle};
use crate::layout::{
    CONFIGMAP_TYPE_HA, ClusterId, Component, JobId, KEY_ADDRESS, KEY_SESSION_ID, LABEL_APP,
    LABEL_CONFIGMAP_TYPE, LABEL_TYPE, TYPE_NATIVE,
};
use crate::lease::{LEADER_ANNOTATION, LeaderRecord};
use crate::stores::plan::{
    self, CHECKPOINT_KEY_PREFIX, CONFIGMAP_DATA_LIMIT, COUNTER_KEY, JOB_GRAPH_KEY_PREFIX,
    JobStatus, RUNNING_JOBS_KEY_PREFIX,
};

/// Flink 1.15+: prefix of the per-component leader entries in the cluster ConfigMap.
pub const LEADER_KEY_PREFIX: &str = "org.apache.flink.k8s.leader.";
/// Flink 2.0+: job graphs are stored as execution plans under this prefix.
pub const EXECUTION_PLAN_KEY_PREFIX: &str = "executionPlan-";
/// Longest untrusted text the table shows before clipping it.
pub(super) const MAX_SHOWN: usize = 200;

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
    /// Set by [`verify`](fn@super::verify); `None` when the payloads were not checked.
    pub verification: Option<VerificationSummary>,
    /// Handles whose payload is missing or has another size than recorded (filled by
    /// [`verify`](fn@super::verify)). Handles marked for deletion are never listed: Flink no
    /// longer reads them.
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
    /// Set by [`verify`](fn@super::verify) for decoded handles.
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

/// What [`verify`](fn@super::verify) found for one handle's payload.
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

/// Counts of [`verify`](fn@super::verify)'s results over all decoded handles.
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
// Building (pure)
// ---------------------------------------------------------------------------------------------

/// What a ConfigMap is, by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Role {
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

pub(super) fn classify(cluster: &ClusterId, name: &str) -> Role {
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
pub(super) enum LeaderName {
    Component(Component),
    Job(JobId),
    Unknown(String),
}

pub(super) fn leader_name(name: &str) -> LeaderName {
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

pub(super) fn job_in_key(key: &str, prefixes: &[&str]) -> Option<JobId> {
    prefixes
        .iter()
        .find_map(|p| key.strip_prefix(p))
        .and_then(|id| id.parse().ok())
}

pub(super) fn data_keys(cm: &ConfigMap) -> impl Iterator<Item = &String> {
    cm.data.iter().flat_map(|d| d.keys())
}

fn data_of(cm: &ConfigMap) -> BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}

/// Build the report from the ConfigMaps (as [`collect`](fn@super::collect) returns them; any
/// order) at `now`. ConfigMaps of other clusters are listed as not belonging to an HA layout.
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
pub(super) fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::fixtures::configmap_report;
    use crate::inspect::fixtures::*;
    use crate::inspect::{render_json, render_table};
    use serde_json::{Value, json};

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
}
