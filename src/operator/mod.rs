//! `hakeeper operator`: watches every HA ConfigMap (hakeeper's and stock Flink's, both
//! layouts), alerts on leader changes, lost leaders, stalled checkpoints and dangling handles,
//! and collects orphaned payloads.
//!
//! How an alert flows: a watch event ([`watch`]) marks its cluster dirty → the engine reads
//! the cluster's ConfigMaps from the cache, builds the same model `hakeeper inspect` prints
//! ([`crate::inspect::build`]) and hands it to the pure [`track::Tracker`], which decides the
//! alerts → the engine persists the tracker's memory and the alerts (the outbox) in
//! `hakeeper-operator-state` ([`state`]) → then hands each alert to every channel
//! ([`deliver`]) → each channel's confirmation takes the alert out of the outbox.
//!
//! Replicas elect a leader through the election module (`hakeeper-operator-leader`). Every
//! replica watches (warm caches); only the leader alerts, verifies and deletes, and its leader
//! work stops the moment it loses the lock.

pub mod admin;
pub mod alert;
pub mod cmd;
pub mod deliver;
pub mod metrics;
pub mod payloads;
pub mod state;
pub mod track;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use tokio::sync::{mpsc, watch as tokio_watch};
use tokio::task::JoinSet;

use crate::election::{ElectionConfig, Elector, LeadershipState, ReleaseReason};
use crate::inspect::{self, Report};
use crate::layout::{ClusterId, Component};
use crate::lease::Timings;
use crate::storage::{Location, S3Options};
use crate::stores::plan::CONFIGMAP_DATA_LIMIT;
use alert::{Alert, Subject};
use deliver::{ChannelSettings, Channels};
use payloads::{GcReport, Pace, Stores};
use track::{ClusterKey, PayloadResult, Settings, Tracker};
use watch::{Cache, Namespaces};

/// The operator's lock: `hakeeper-operator-leader`.
pub const LOCK_CLUSTER_ID: &str = "hakeeper";

/// Everything `hakeeper operator` is told.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    pub namespaces: Namespaces,
    pub cluster_selector: Option<String>,
    /// Where the lock and the state ConfigMap live.
    pub own_namespace: String,
    pub identity: String,
    pub timings: Timings,
    pub settings: Settings,
    pub channels: ChannelSettings,
    pub verify_interval: Duration,
    pub storage_ops_per_second: f64,
    pub orphan_grace: Duration,
    pub gc: bool,
    /// Check handles against payloads at all (needs storage access).
    pub verify: bool,
    pub s3: S3Options,
    /// How long a stopping leader lets queued alerts out.
    pub drain: Duration,
}

/// How a leadership term ended.
enum TermEnd {
    Lost,
    Shutdown,
}

/// Run until `shutdown` turns true: watch, elect, and while leading, alert.
pub async fn run(
    client: kube::Client,
    config: OperatorConfig,
    admin: tokio::net::TcpListener,
    mut shutdown: tokio_watch::Receiver<bool>,
) -> crate::Result<()> {
    let selector = watch::selector(config.cluster_selector.as_deref());
    let (cache, watches) = watch::start(client.clone(), &config.namespaces, &selector);
    let mut tasks = JoinSet::new();
    for w in watches {
        tasks.spawn(w);
    }
    let (admin_stop, admin_stop_rx) = tokio_watch::channel(false);
    let admin_task = tokio::spawn(admin::serve(admin, cache.clone(), admin_stop_rx));

    let elector = Elector::spawn(
        client.clone(),
        &config.own_namespace,
        ElectionConfig {
            cluster_id: LOCK_CLUSTER_ID.parse().expect("a valid cluster id"),
            component: Component::Operator,
            identity: config.identity.clone(),
            address: config.identity.clone(),
            timings: config.timings,
            owner: None,
        },
    );
    let mut leadership = elector.state();
    tracing::info!(identity = %config.identity, namespace = %config.own_namespace, selector = %selector, "operator started; watching HA ConfigMaps");
    loop {
        if *shutdown.borrow() {
            break;
        }
        if leadership.borrow().is_leader {
            tracing::info!("leading: alerting, verifying and collecting");
            metrics::get().is_leader.set(1);
            let end = lead(&client, &config, &cache, &mut leadership, &mut shutdown).await;
            metrics::get().is_leader.set(0);
            match end {
                TermEnd::Shutdown => break,
                TermEnd::Lost => tracing::warn!("lost the operator lock; leader work stopped"),
            }
            continue;
        }
        tokio::select! {
            r = shutdown.changed() => if r.is_err() { break },
            r = leadership.changed() => if r.is_err() { break },
        }
    }
    elector.release(ReleaseReason::Shutdown).await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let _ = admin_stop.send(true);
    let _ = admin_task.await;
    Ok(())
}

/// Logs an error once per change.
#[derive(Default)]
struct Repeated(Option<String>);

impl Repeated {
    fn failed(&mut self, what: &str, error: String) {
        if self.0.as_deref() != Some(&error) {
            tracing::warn!(error = %error, "{what} (logged again when the error changes)");
            self.0 = Some(error);
        }
    }
    fn ok(&mut self, what: &str) {
        if self.0.take().is_some() {
            tracing::info!("{what} works again");
        }
    }
}

/// The leader's work in one term.
struct Term<'a> {
    config: &'a OperatorConfig,
    cache: &'a Cache,
    state_api: Api<ConfigMap>,
    tracker: Tracker,
    outbox: Vec<Alert>,
    outbox_dirty: bool,
    pending: BTreeMap<ClusterKey, Option<track::ClusterState>>,
    channels: Channels,
    payload_jobs: Option<mpsc::Sender<PayloadJob>>,
    state_errors: Repeated,
    bad_ids: BTreeSet<String>,
}

async fn lead(
    client: &kube::Client,
    config: &OperatorConfig,
    cache: &Arc<Cache>,
    leadership: &mut tokio_watch::Receiver<LeadershipState>,
    shutdown: &mut tokio_watch::Receiver<bool>,
) -> TermEnd {
    let lost = |s: &LeadershipState| !s.is_leader;
    let state_api: Api<ConfigMap> = Api::namespaced(client.clone(), &config.own_namespace);
    // The memory of the last leader: retried with backoff while we lead.
    let mut errors = Repeated::default();
    let mut delay = Duration::from_millis(200);
    let persisted = loop {
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return TermEnd::Shutdown,
            _ = leadership.wait_for(lost) => return TermEnd::Lost,
            r = state::load(&state_api) => match r {
                Ok(p) => break p,
                Err(e) => {
                    errors.failed("reading hakeeper-operator-state failed; retrying", e.to_string());
                    tokio::time::sleep(delay.mul_f64(0.5 + fastrand::f64())).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    };
    errors.ok("reading hakeeper-operator-state");
    tokio::select! {
        _ = shutdown.wait_for(|s| *s) => return TermEnd::Shutdown,
        _ = leadership.wait_for(lost) => return TermEnd::Lost,
        _ = cache.wait_synced() => {}
    }
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let channels = Channels::start(client.clone(), &config.identity, &config.channels, done_tx);
    let (outbox, clusters) = match persisted {
        Some(p) => (p.outbox, Some(p.clusters)),
        None => (Vec::new(), None),
    };
    let mut workers = JoinSet::new();
    let (results_tx, mut results_rx) = mpsc::channel::<PayloadOutcome>(256);
    let payload_jobs = if config.verify {
        let (jobs_tx, jobs_rx) = mpsc::channel(1024);
        workers.spawn(payload_worker(
            client.clone(),
            config.clone(),
            jobs_rx,
            results_tx,
        ));
        Some(jobs_tx)
    } else {
        drop(results_tx);
        None
    };
    let mut term = Term {
        config,
        cache,
        state_api,
        tracker: Tracker::new(config.settings, clusters),
        outbox,
        outbox_dirty: false,
        pending: BTreeMap::new(),
        channels,
        payload_jobs,
        state_errors: Repeated::default(),
        bad_ids: BTreeSet::new(),
    };
    // Alerts a previous leader decided but may not have delivered: again, same ids.
    for a in term.outbox.clone() {
        let reference = term.reference(&a);
        term.channels.resend(a, reference);
    }
    // The first pass: every cluster in the cache. News now is late news.
    cache.take_dirty();
    let mut alerts = Vec::new();
    for key in cache.clusters() {
        alerts.extend(term.process(&key));
    }
    for gone in term.tracker.unseen_persisted() {
        term.tracker.forget(&gone);
    }
    term.tracker.end_initial_pass();
    term.commit(alerts).await;
    for a in term.tracker.open_conditions(jiff::Timestamp::now()) {
        term.channels.refire(a);
    }

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|s| *s) => break TermEnd::Shutdown,
            _ = leadership.wait_for(lost) => break TermEnd::Lost,
            _ = cache.changed.notified() => {
                let mut alerts = Vec::new();
                for key in cache.take_dirty() {
                    alerts.extend(term.process(&key));
                }
                term.commit(alerts).await;
            }
            Some(outcome) = results_rx.recv() => {
                let alerts = term.payload_outcome(outcome);
                term.commit(alerts).await;
            }
            Some(id) = done_rx.recv() => {
                let before = term.outbox.len();
                term.outbox.retain(|a| a.id != id);
                term.outbox_dirty |= term.outbox.len() != before;
            }
            _ = tick.tick() => {
                let now = jiff::Timestamp::now();
                let alerts = term.tracker.tick(now);
                let (components, jobs) = term.tracker.figures(now);
                metrics::get().figures(&components, &jobs);
                term.commit(alerts).await;
            }
        }
    };
    // Leader work stops here: the payload worker at once; queued alerts get a short drain
    // only when stopping gracefully (a deposed leader must not speak for the new one).
    workers.abort_all();
    while workers.join_next().await.is_some() {}
    let Term {
        channels,
        mut outbox,
        mut pending,
        state_api,
        ..
    } = term;
    match end {
        TermEnd::Lost => channels.stop().await,
        TermEnd::Shutdown => {
            channels.drain(config.drain).await;
            while let Ok(id) = done_rx.try_recv() {
                outbox.retain(|a| a.id != id);
            }
            let changes: Vec<_> = std::mem::take(&mut pending).into_iter().collect();
            if let Err(e) = tokio::time::timeout(
                Duration::from_secs(5),
                state::save(&state_api, &changes, Some(&outbox)),
            )
            .await
            .map_err(|_| "timed out".to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            {
                tracing::warn!(error = %e, "could not save the operator state at shutdown; the next leader re-sends undelivered alerts");
            }
        }
    }
    end
}

impl Term<'_> {
    fn reference(&self, a: &Alert) -> Option<k8s_openapi::api::core::v1::ObjectReference> {
        self.cache.reference(
            &ClusterKey {
                namespace: a.namespace.clone(),
                cluster: a.cluster.clone(),
            },
            &a.configmap,
        )
    }

    /// Re-judge one cluster from the cache.
    fn process(&mut self, key: &ClusterKey) -> Vec<Alert> {
        let configmaps: Vec<ConfigMap> = self
            .cache
            .configmaps(key)
            .iter()
            .map(|cm| (**cm).clone())
            .collect();
        if configmaps.is_empty() {
            self.tracker.forget(key);
            metrics::get().forget_cluster(key);
            if let Some(jobs) = &self.payload_jobs {
                let _ = jobs.try_send(PayloadJob::Forget(key.clone()));
            }
            return Vec::new();
        }
        let cluster: ClusterId = match key.cluster.parse() {
            Ok(c) => c,
            Err(e) => {
                if self.bad_ids.insert(key.to_string()) {
                    tracing::warn!(cluster = %key, error = %e, "ignoring HA ConfigMaps whose app label is not a cluster id");
                }
                return Vec::new();
            }
        };
        let now = jiff::Timestamp::now();
        let report = inspect::build(&cluster, &configmaps, now);
        let sizes: Vec<(String, usize)> = report
            .configmaps
            .iter()
            .map(|c| (c.name.clone(), c.data_bytes))
            .collect();
        metrics::get().configmap_sizes(key, &sizes, CONFIGMAP_DATA_LIMIT);
        let alerts = self
            .tracker
            .observe(track::seen(&key.namespace, &report), now);
        if let Some(jobs) = &self.payload_jobs {
            let _ = jobs.try_send(PayloadJob::Changed(key.clone(), cluster, Arc::new(report)));
        }
        alerts
    }

    fn payload_outcome(&mut self, outcome: PayloadOutcome) -> Vec<Alert> {
        let now = jiff::Timestamp::now();
        let mut alerts = self.tracker.payloads(&outcome.key, &outcome.results, now);
        if let Some(gc) = outcome.gc {
            let reported = !gc.deleted.is_empty() || outcome.orphans_changed;
            if reported && let Some(configmap) = outcome.configmap {
                let subject = Subject {
                    namespace: outcome.key.namespace.clone(),
                    cluster: outcome.key.cluster.clone(),
                    configmap,
                };
                let mut names: Vec<&str> = gc.deleted.iter().map(String::as_str).collect();
                if names.is_empty() {
                    names = gc.orphans.iter().map(|o| o.path.as_str()).collect();
                }
                let suffix = format!(
                    "{}-{:016x}",
                    if gc.deleted.is_empty() {
                        "found"
                    } else {
                        "deleted"
                    },
                    stable_hash(&names)
                );
                let bytes = if gc.deleted.is_empty() {
                    gc.orphan_bytes
                } else {
                    gc.deleted_bytes
                };
                alerts.push(Alert::orphans(
                    &subject,
                    gc.orphans.len(),
                    bytes,
                    gc.deleted.len(),
                    self.config.gc,
                    &suffix,
                    &now.to_string(),
                ));
            }
        }
        alerts
    }

    /// Persist what changed (tracker memory and outbox), then hand the alerts out.
    async fn commit(&mut self, alerts: Vec<Alert>) {
        for (k, s) in self.tracker.take_dirty() {
            self.pending.insert(k, s);
        }
        if !alerts.is_empty() {
            self.outbox.extend(alerts.iter().cloned());
            if self.outbox.len() > state::OUTBOX_LIMIT {
                let excess = self.outbox.len() - state::OUTBOX_LIMIT;
                self.outbox.drain(..excess);
                metrics::get().outbox_drops.inc_by(excess as u64);
                tracing::warn!(
                    dropped = excess,
                    "operator outbox full; the oldest undelivered alerts will not be re-sent after a failover"
                );
            }
            self.outbox_dirty = true;
        }
        if !self.pending.is_empty() || self.outbox_dirty {
            let changes: Vec<_> = self
                .pending
                .iter()
                .map(|(k, s)| (k.clone(), s.clone()))
                .collect();
            let result = tokio::time::timeout(
                self.config.timings.renew_deadline,
                state::save(&self.state_api, &changes, Some(&self.outbox)),
            )
            .await;
            match result {
                Ok(Ok(())) => {
                    self.pending.clear();
                    self.outbox_dirty = false;
                    self.state_errors.ok("writing hakeeper-operator-state");
                }
                Ok(Err(e)) => {
                    metrics::get().state_write_errors.inc();
                    self.state_errors.failed(
                        "writing hakeeper-operator-state failed; alerting anyway, retrying each second",
                        e.to_string(),
                    );
                }
                Err(_) => {
                    metrics::get().state_write_errors.inc();
                    self.state_errors.failed(
                        "writing hakeeper-operator-state failed; alerting anyway, retrying each second",
                        "timed out".into(),
                    );
                }
            }
        }
        for a in alerts {
            tracing::info!(kind = %a.kind, namespace = %a.namespace, cluster = %a.cluster, component = a.component.as_deref().unwrap_or("-"), late = a.late, resolved = a.resolved, "{}", a.message);
            let reference = self.reference(&a);
            self.channels.send(a, reference);
        }
    }
}

pub(crate) fn stable_hash(names: &[&str]) -> u64 {
    // FNV-1a: the same on every replica and release, unlike the std hasher's promise.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for n in names {
        for b in n.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

enum PayloadJob {
    Changed(ClusterKey, ClusterId, Arc<Report>),
    Forget(ClusterKey),
}

struct PayloadOutcome {
    key: ClusterKey,
    results: Vec<PayloadResult>,
    gc: Option<GcReport>,
    /// The orphans found differ from the last report (worth an alert without --gc).
    orphans_changed: bool,
    /// The ConfigMap orphan Events go on (the dispatcher's or the cluster ConfigMap).
    configmap: Option<String>,
}

struct Checked {
    cluster: ClusterId,
    report: Arc<Report>,
    /// (path, recorded size) → the problem, if dangling.
    results: HashMap<(String, i64), Option<String>>,
    last_full: Option<Instant>,
    last_orphans: Vec<String>,
}

/// Checks handles against payloads (new ones at once, all every `--verify-interval`) and
/// collects orphans, paced to `--max-storage-ops-per-second`. Leader-only.
async fn payload_worker(
    client: kube::Client,
    config: OperatorConfig,
    mut jobs: mpsc::Receiver<PayloadJob>,
    results: mpsc::Sender<PayloadOutcome>,
) {
    let stores = Stores::new(config.s3.clone());
    let mut pace = Pace::new(config.storage_ops_per_second);
    let mut clusters: BTreeMap<ClusterKey, Checked> = BTreeMap::new();
    let mut errors = Repeated::default();
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // What to check next: (cluster, everything or only new handles).
    let mut queue: std::collections::VecDeque<(ClusterKey, bool)> = Default::default();
    loop {
        let job = if queue.is_empty() {
            tokio::select! {
                job = jobs.recv() => match job {
                    None => return,
                    Some(job) => Some(job),
                },
                _ = sweep.tick() => None,
            }
        } else {
            jobs.try_recv().ok()
        };
        match job {
            Some(PayloadJob::Forget(key)) => {
                clusters.remove(&key);
                queue.retain(|(k, _)| *k != key);
            }
            Some(PayloadJob::Changed(key, cluster, report)) => {
                let entry = clusters.entry(key.clone()).or_insert_with(|| Checked {
                    cluster: cluster.clone(),
                    report: report.clone(),
                    results: HashMap::new(),
                    last_full: None,
                    last_orphans: Vec::new(),
                });
                entry.report = report;
                if !queue.iter().any(|(k, _)| *k == key) {
                    queue.push_back((key, false));
                }
            }
            None => {}
        }
        // Every cluster due for a full check (and orphan collection) joins the queue once.
        for (k, c) in clusters.iter_mut() {
            if c.last_full
                .is_none_or(|t| t.elapsed() >= config.verify_interval)
            {
                c.last_full = Some(Instant::now());
                queue.retain(|(q, _)| q != k);
                queue.push_back((k.clone(), true));
            }
        }
        let Some((key, full)) = queue.pop_front() else {
            continue;
        };
        let Some(entry) = clusters.get_mut(&key) else {
            continue;
        };
        let referenced = payloads::referenced_paths(&entry.report);
        let (dir, outside) = payloads::ha_dir(&entry.cluster, &referenced);
        let all = payloads::handles_to_check(&entry.report, dir.as_ref());
        let wanted = if full {
            all.clone()
        } else {
            unchecked(&all, &entry.results)
        };
        let (checked, error) = payloads::check_handles(&wanted, &stores, &mut pace).await;
        match error {
            Some(e) => errors.failed("checking payloads failed", e),
            None => errors.ok("checking payloads"),
        }
        remember(&mut entry.results, &all, &checked);
        let dangling = entry.results.values().filter(|p| p.is_some()).count();
        let mut outcome = PayloadOutcome {
            key: key.clone(),
            results: checked,
            gc: None,
            orphans_changed: false,
            configmap: entry
                .report
                .configmaps
                .iter()
                .find(|c| {
                    c.name.ends_with("-dispatcher-leader")
                        || c.name.ends_with("-cluster-config-map")
                })
                .map(|c| c.name.clone()),
        };
        let mut orphan_figures = None;
        if full && dir.is_some() {
            pace.wait().await;
            match payloads::collect_garbage(
                client.clone(),
                &key.namespace,
                &entry.cluster,
                None,
                &stores,
                config.orphan_grace,
                config.gc,
            )
            .await
            {
                Ok(gc) => {
                    let names: Vec<String> = gc.orphans.iter().map(|o| o.path.clone()).collect();
                    outcome.orphans_changed = !names.is_empty() && names != entry.last_orphans;
                    entry.last_orphans = if gc.deleted.is_empty() {
                        names
                    } else {
                        Vec::new()
                    };
                    let left = gc.orphans.len() - gc.deleted.len();
                    orphan_figures = Some((left, gc.orphan_bytes - gc.deleted_bytes));
                    if !gc.deleted.is_empty() {
                        tracing::info!(cluster = %key, deleted = gc.deleted.len(), bytes = gc.deleted_bytes, "collected orphaned payloads");
                    }
                    outcome.gc = Some(gc);
                }
                Err(e) => errors.failed("collecting orphans failed", e.to_string()),
            }
        }
        metrics::get().payload_figures(&key, Some(dangling), orphan_figures, outside.len());
        if results.send(outcome).await.is_err() {
            return;
        }
    }
}

/// The handles not checked yet.
fn unchecked(
    all: &[payloads::HandleToCheck],
    results: &HashMap<(String, i64), Option<String>>,
) -> Vec<payloads::HandleToCheck> {
    all.iter()
        .filter(|h| !results.contains_key(&(h.2.clone(), h.3)))
        .cloned()
        .collect()
}

/// Keep the results of the handles that still exist, plus the new ones.
fn remember(
    results: &mut HashMap<(String, i64), Option<String>>,
    all: &[payloads::HandleToCheck],
    checked: &[PayloadResult],
) {
    let current: BTreeSet<(String, i64)> = all.iter().map(|h| (h.2.clone(), h.3)).collect();
    results.retain(|k, _| current.contains(k));
    for r in checked {
        let size = all.iter().find(|h| h.2 == r.path).map_or(0, |h| h.3);
        results.insert((r.path.clone(), size), r.problem.clone());
    }
}

/// `--storage-dir` given to `gc`/`cleanup`: parse it.
pub fn parse_storage_dir(dir: Option<&str>) -> crate::Result<Option<Location>> {
    dir.map(|d| Location::parse(d).map_err(|e| crate::Error::Config(e.to_string())))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_orphan_hash_is_fixed() {
        assert_eq!(stable_hash(&[]), 0xcbf2_9ce4_8422_2325);
        assert_ne!(stable_hash(&["a", "b"]), stable_hash(&["ab"]));
        assert_eq!(stable_hash(&["x"]), stable_hash(&["x"]));
    }
}
