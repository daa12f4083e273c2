//! Who leads, since when, and what to alert about (pure: no I/O, time is an argument).
//!
//! The rule for leader changes is the one Flink operators use by hand: alert when a component's
//! leader (`address`, `sessionId`) goes **A → B** or **none → B**, never for A → none → A (an
//! API-server outage or a slow renew), never twice for the same leader, and never for the
//! leaders already in place the first time an operator starts. The last leader alerted for
//! each component is [`ClusterState`], which the operator persists (`hakeeper-operator-state`),
//! so a change made while no operator ran is alerted once, marked late, by the next one.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::alert::{Alert, Leader, Subject};
use crate::inspect::{JobState, LockStatus, Report};

/// A Flink cluster: (namespace, cluster id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterKey {
    pub namespace: String,
    pub cluster: String,
}

impl std::fmt::Display for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.cluster)
    }
}

/// What is persisted per cluster: the last leader alerted per component, and the components
/// whose `LeaderLost` has been alerted and not yet resolved (with the episode's start, ms).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub leaders: BTreeMap<String, Leader>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lost: BTreeMap<String, u64>,
    /// Dangling handles already alerted: `<configmap>/<key>` → the payload path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dangling: BTreeMap<String, String>,
}

impl ClusterState {
    pub fn is_empty(&self) -> bool {
        self.leaders.is_empty() && self.lost.is_empty() && self.dangling.is_empty()
    }
}

/// One handle's payload check, as the payload checker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadResult {
    pub configmap: String,
    pub key: String,
    pub path: String,
    /// `Some(problem)` when dangling; `None` when the payload is whole.
    pub problem: Option<String>,
}

/// One component as its ConfigMap shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSeen {
    pub component: String,
    pub configmap: String,
    /// Both `address` and `sessionId` present and non-empty.
    pub leader: Option<Leader>,
    /// The lock names a holder (not released, not malformed).
    pub held: bool,
    /// When the holder's lease ends by the record (`renewTime` + `leaseDuration`).
    pub expires_at: Option<Timestamp>,
    pub lease: Option<Duration>,
}

/// One job as the HA ConfigMaps show it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSeen {
    pub job: String,
    pub configmap: String,
    pub running: bool,
    pub newest_checkpoint: Option<u64>,
}

/// What the tracker needs from one cluster's ConfigMaps.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSeen {
    pub key: ClusterKey,
    pub components: Vec<ComponentSeen>,
    pub jobs: Vec<JobSeen>,
    /// Every handle entry, as `<configmap>/<key>` → its payload path (decoded ones only).
    pub handles: BTreeMap<String, String>,
}

/// Reduce an inspect [`Report`] (the model `hakeeper inspect` prints) to what alerts need.
pub fn seen(namespace: &str, report: &Report) -> ClusterSeen {
    let components = report
        .components
        .iter()
        .map(|c| {
            let leader = match (&c.address, &c.session_id) {
                (Some(a), Some(s)) if !a.is_empty() && !s.is_empty() => Some(Leader {
                    address: a.clone(),
                    session_id: s.clone(),
                }),
                _ => None,
            };
            let held = matches!(c.lock.status, LockStatus::Held | LockStatus::Expired)
                && c.lock
                    .holder_identity
                    .as_deref()
                    .is_some_and(|h| !h.is_empty());
            ComponentSeen {
                component: c.component.clone(),
                configmap: c.configmap.clone(),
                leader,
                held,
                expires_at: c.lock.expires_at.as_deref().and_then(|e| e.parse().ok()),
                lease: c
                    .lock
                    .lease_duration_seconds
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(Duration::from_secs_f64),
            }
        })
        .collect();
    let jobs = report
        .jobs
        .iter()
        .map(|j| JobSeen {
            job: j.job_id.clone(),
            configmap: j.checkpoints_configmap.clone(),
            running: j.status == JobState::Running,
            newest_checkpoint: j.checkpoints.iter().filter_map(|c| c.id).max(),
        })
        .collect();
    let handles = report
        .jobs
        .iter()
        .flat_map(|j| j.graph.iter().chain(j.checkpoints.iter().map(|c| &c.entry)))
        .filter_map(|h| {
            h.handle
                .as_ref()
                .map(|d| (format!("{}/{}", h.configmap, h.key), d.path.clone()))
        })
        .collect();
    ClusterSeen {
        key: ClusterKey {
            namespace: namespace.to_string(),
            cluster: report.cluster_id.clone(),
        },
        components,
        jobs,
        handles,
    }
}

/// Thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// `--leaderless-after`; `None`: twice the lease duration the lock records.
    pub leaderless_after: Option<Duration>,
    /// The lease assumed when the lock records none (malformed or absent).
    pub fallback_lease: Duration,
    /// `--checkpoint-stall-after`; `None`: off.
    pub checkpoint_stall_after: Option<Duration>,
}

#[derive(Debug, Clone)]
struct Follow {
    seen: ComponentSeen,
    /// Since when it has had no live leader.
    leaderless_since: Option<Timestamp>,
    /// The leader alerted before an open `LeaderLost` episode, once a new one is recorded
    /// (the `from` of the `LeaderRestored` that ends it).
    before_outage: Option<Leader>,
}

#[derive(Debug, Clone)]
struct JobFollow {
    seen: JobSeen,
    /// When the newest checkpoint (or the job) was first seen as it is.
    changed_at: Timestamp,
    /// The open stall episode (its start in ms), if alerted.
    stalled: Option<u64>,
}

#[derive(Debug, Default)]
struct ClusterFollow {
    components: BTreeMap<String, Follow>,
    jobs: BTreeMap<String, JobFollow>,
    handles: BTreeMap<String, String>,
}

/// A component's figures for the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentFigures {
    pub key: ClusterKey,
    pub component: String,
    pub live: bool,
    pub leaderless_seconds: f64,
}

/// A job's figures for the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFigures {
    pub key: ClusterKey,
    pub job: String,
    pub running: bool,
    pub seconds_since_checkpoint: f64,
}

/// Follows every cluster the leader operator sees and decides what to alert.
#[derive(Debug)]
pub struct Tracker {
    settings: Settings,
    persisted: BTreeMap<ClusterKey, ClusterState>,
    /// No operator ever ran here: the leaders in place are the baseline, not news.
    first_start: bool,
    /// Observations are of the first pass after gaining leadership: news is late.
    initial: bool,
    clusters: BTreeMap<ClusterKey, ClusterFollow>,
    dirty: BTreeSet<ClusterKey>,
}

fn ms(t: Timestamp) -> u64 {
    u64::try_from(t.as_millisecond()).unwrap_or(0)
}

fn secs_between(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64().max(0.0)
}

fn at_least(elapsed: SignedDuration, threshold: Duration) -> bool {
    SignedDuration::try_from(threshold).is_ok_and(|t| elapsed >= t)
}

impl Tracker {
    /// `persisted`: what the state ConfigMap holds, `None` when it does not exist (the first
    /// operator ever in this namespace).
    pub fn new(settings: Settings, persisted: Option<BTreeMap<ClusterKey, ClusterState>>) -> Self {
        Tracker {
            settings,
            first_start: persisted.is_none(),
            persisted: persisted.unwrap_or_default(),
            initial: true,
            clusters: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// The first pass (every cluster known when leadership was gained) is done.
    pub fn end_initial_pass(&mut self) {
        self.initial = false;
    }

    /// Clusters whose persisted entry changed since the last call, with the entry (`None`:
    /// delete it).
    pub fn take_dirty(&mut self) -> Vec<(ClusterKey, Option<ClusterState>)> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|k| {
                let state = self.persisted.get(&k).filter(|s| !s.is_empty()).cloned();
                (k, state)
            })
            .collect()
    }

    /// Persisted entries of clusters this operator has not seen (yet): a cluster deleted while
    /// no operator ran. [`Tracker::forget`] them after the first pass.
    pub fn unseen_persisted(&self) -> Vec<ClusterKey> {
        self.persisted
            .keys()
            .filter(|k| !self.clusters.contains_key(*k))
            .cloned()
            .collect()
    }

    /// The cluster has no HA ConfigMap any more: stop following it and drop its state.
    pub fn forget(&mut self, key: &ClusterKey) {
        self.clusters.remove(key);
        if self.persisted.remove(key).is_some() {
            self.dirty.insert(key.clone());
        }
    }

    pub fn clusters(&self) -> impl Iterator<Item = &ClusterKey> {
        self.clusters.keys()
    }

    /// Take in one cluster's current ConfigMaps at `now`.
    pub fn observe(&mut self, seen: ClusterSeen, now: Timestamp) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let key = seen.key.clone();
        let now_text = now.to_string();
        let follow = self.clusters.entry(key.clone()).or_default();
        let state = self.persisted.entry(key.clone()).or_default();
        let mut changed = false;

        let present: BTreeSet<&str> = seen
            .components
            .iter()
            .map(|c| c.component.as_str())
            .collect();
        follow
            .components
            .retain(|name, _| present.contains(name.as_str()));
        let before = state.clone();
        state
            .leaders
            .retain(|name, _| present.contains(name.as_str()));
        state.lost.retain(|name, _| present.contains(name.as_str()));
        // A dangling handle that was removed or now points elsewhere is no longer reported.
        state
            .dangling
            .retain(|id, path| seen.handles.get(id) == Some(path));
        changed |= *state != before;
        follow.handles = seen.handles;

        for c in seen.components {
            let subject = Subject {
                namespace: key.namespace.clone(),
                cluster: key.cluster.clone(),
                configmap: c.configmap.clone(),
            };
            let mut prior = None;
            if let Some(to) = &c.leader {
                let last = state.leaders.get(&c.component);
                if last != Some(to) {
                    if state.lost.contains_key(&c.component) {
                        prior = last.cloned();
                    }
                    if !(self.first_start && self.initial) {
                        alerts.push(Alert::leader_changed(
                            &subject,
                            &c.component,
                            last.cloned(),
                            to.clone(),
                            &now_text,
                            self.initial,
                        ));
                    }
                    state.leaders.insert(c.component.clone(), to.clone());
                    changed = true;
                }
            }
            let name = c.component.clone();
            let entry = follow.components.entry(name).or_insert_with(|| Follow {
                seen: c.clone(),
                leaderless_since: None,
                before_outage: None,
            });
            entry.seen = c;
            if entry.before_outage.is_none() {
                entry.before_outage = prior;
            }
        }

        let present_jobs: BTreeSet<&str> = seen.jobs.iter().map(|j| j.job.as_str()).collect();
        follow
            .jobs
            .retain(|name, _| present_jobs.contains(name.as_str()));
        for j in seen.jobs {
            match follow.jobs.get_mut(&j.job) {
                Some(f) => {
                    if f.seen.newest_checkpoint != j.newest_checkpoint
                        || f.seen.running != j.running
                    {
                        f.changed_at = now;
                    }
                    f.seen = j;
                }
                None => {
                    follow.jobs.insert(
                        j.job.clone(),
                        JobFollow {
                            seen: j,
                            changed_at: now,
                            stalled: None,
                        },
                    );
                }
            }
        }
        if changed {
            self.dirty.insert(key.clone());
        }
        alerts.extend(self.timers(&key, now));
        alerts
    }

    /// Take in payload checks of one cluster: alert each newly dangling handle once, and
    /// each reported one that is whole again.
    pub fn payloads(
        &mut self,
        key: &ClusterKey,
        results: &[PayloadResult],
        now: Timestamp,
    ) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let Some(follow) = self.clusters.get(key) else {
            return alerts;
        };
        let now_text = now.to_string();
        let state = self.persisted.entry(key.clone()).or_default();
        let mut changed = false;
        for r in results {
            let id = format!("{}/{}", r.configmap, r.key);
            // A check of a handle that has changed or gone since is stale.
            if follow.handles.get(&id) != Some(&r.path) {
                continue;
            }
            let subject = Subject {
                namespace: key.namespace.clone(),
                cluster: key.cluster.clone(),
                configmap: r.configmap.clone(),
            };
            let reported = state.dangling.get(&id) == Some(&r.path);
            match &r.problem {
                Some(problem) if !reported => {
                    alerts.push(Alert::dangling(
                        &subject, &r.key, &r.path, problem, false, &now_text,
                    ));
                    state.dangling.insert(id, r.path.clone());
                    changed = true;
                }
                None if reported => {
                    alerts.push(Alert::dangling(
                        &subject, &r.key, &r.path, "", true, &now_text,
                    ));
                    state.dangling.remove(&id);
                    changed = true;
                }
                _ => {}
            }
        }
        if self.initial {
            for a in &mut alerts {
                a.late = true;
            }
        }
        if changed {
            self.dirty.insert(key.clone());
        }
        alerts
    }

    /// The conditions an earlier leader alerted that have not resolved (lost leaders,
    /// dangling handles), as firing alerts with their original ids: a new leader tells
    /// Alertmanager again, which otherwise resolves what it stops hearing about.
    pub fn open_conditions(&self, now: Timestamp) -> Vec<Alert> {
        let now_text = now.to_string();
        let mut alerts = Vec::new();
        for (key, follow) in &self.clusters {
            let Some(state) = self.persisted.get(key) else {
                continue;
            };
            for (name, episode) in &state.lost {
                let Some(f) = follow.components.get(name) else {
                    continue;
                };
                let since = Timestamp::from_millisecond(*episode as i64).unwrap_or(now);
                alerts.push(Alert::leader_lost(
                    &Subject {
                        namespace: key.namespace.clone(),
                        cluster: key.cluster.clone(),
                        configmap: f.seen.configmap.clone(),
                    },
                    name,
                    state.leaders.get(name).cloned(),
                    None,
                    secs_between(since, now),
                    *episode,
                    &now_text,
                ));
            }
            for (id, path) in &state.dangling {
                let Some((configmap, key_name)) = id.split_once('/') else {
                    continue;
                };
                alerts.push(Alert::dangling(
                    &Subject {
                        namespace: key.namespace.clone(),
                        cluster: key.cluster.clone(),
                        configmap: configmap.to_string(),
                    },
                    key_name,
                    path,
                    "is missing or of another size than recorded",
                    false,
                    &now_text,
                ));
            }
        }
        alerts
    }

    /// Re-judge every cluster's timers (lost leaders, stalled checkpoints) at `now`.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Alert> {
        let keys: Vec<ClusterKey> = self.clusters.keys().cloned().collect();
        keys.iter().flat_map(|k| self.timers(k, now)).collect()
    }

    fn live(&self, seen: &ComponentSeen, now: Timestamp) -> bool {
        seen.leader.is_some() && seen.held && seen.expires_at.is_some_and(|e| now < e)
    }

    fn leaderless_threshold(&self, seen: &ComponentSeen) -> Duration {
        self.settings
            .leaderless_after
            .unwrap_or_else(|| 2 * seen.lease.unwrap_or(self.settings.fallback_lease))
    }

    fn timers(&mut self, key: &ClusterKey, now: Timestamp) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let now_text = now.to_string();
        let Some(mut follow) = self.clusters.remove(key) else {
            return alerts;
        };
        let mut state = self.persisted.remove(key).unwrap_or_default();
        let mut changed = false;
        for (name, f) in follow.components.iter_mut() {
            let subject = Subject {
                namespace: key.namespace.clone(),
                cluster: key.cluster.clone(),
                configmap: f.seen.configmap.clone(),
            };
            if self.live(&f.seen, now) {
                f.leaderless_since = None;
                if let Some(episode) = state.lost.remove(name) {
                    let since = Timestamp::from_millisecond(episode as i64).unwrap_or(now);
                    let from = f
                        .before_outage
                        .take()
                        .or_else(|| state.leaders.get(name).cloned());
                    alerts.push(Alert::leader_lost(
                        &subject,
                        name,
                        from,
                        f.seen.leader.clone(),
                        secs_between(since, now),
                        episode,
                        &now_text,
                    ));
                    changed = true;
                }
                continue;
            }
            // Leaderless since the lease ran out if the record says when, else since now.
            let since = *f
                .leaderless_since
                .get_or_insert_with(|| match f.seen.expires_at {
                    Some(e) if e < now && f.seen.held => e,
                    _ => now,
                });
            let threshold = self.leaderless_threshold(&f.seen);
            if !state.lost.contains_key(name) && at_least(now.duration_since(since), threshold) {
                let episode = ms(since);
                alerts.push(Alert::leader_lost(
                    &subject,
                    name,
                    state.leaders.get(name).cloned(),
                    None,
                    secs_between(since, now),
                    episode,
                    &now_text,
                ));
                state.lost.insert(name.clone(), episode);
                changed = true;
            }
        }
        if let Some(stall_after) = self.settings.checkpoint_stall_after {
            for (job, f) in follow.jobs.iter_mut() {
                let subject = Subject {
                    namespace: key.namespace.clone(),
                    cluster: key.cluster.clone(),
                    configmap: f.seen.configmap.clone(),
                };
                let elapsed = now.duration_since(f.changed_at);
                match f.stalled {
                    Some(episode) if !f.seen.running || ms(f.changed_at) > episode => {
                        alerts.push(Alert::checkpoints_stalled(
                            &subject,
                            job,
                            f.seen.running.then_some(f.seen.newest_checkpoint).flatten(),
                            secs_between(f.changed_at, now),
                            true,
                            episode,
                            &now_text,
                        ));
                        f.stalled = None;
                    }
                    None if f.seen.running && at_least(elapsed, stall_after) => {
                        let episode = ms(f.changed_at);
                        alerts.push(Alert::checkpoints_stalled(
                            &subject,
                            job,
                            f.seen.newest_checkpoint,
                            secs_between(f.changed_at, now),
                            false,
                            episode,
                            &now_text,
                        ));
                        f.stalled = Some(episode);
                    }
                    _ => {}
                }
            }
        }
        if self.initial {
            for a in &mut alerts {
                a.late = true;
            }
        }
        self.clusters.insert(key.clone(), follow);
        self.persisted.insert(key.clone(), state);
        if changed {
            self.dirty.insert(key.clone());
        }
        alerts
    }

    /// Per-component and per-job figures at `now`, for the metrics.
    pub fn figures(&self, now: Timestamp) -> (Vec<ComponentFigures>, Vec<JobFigures>) {
        let mut components = Vec::new();
        let mut jobs = Vec::new();
        for (key, follow) in &self.clusters {
            for (name, f) in &follow.components {
                let live = self.live(&f.seen, now);
                components.push(ComponentFigures {
                    key: key.clone(),
                    component: name.clone(),
                    live,
                    leaderless_seconds: match (live, f.leaderless_since) {
                        (false, Some(since)) => secs_between(since, now),
                        _ => 0.0,
                    },
                });
            }
            for (job, f) in &follow.jobs {
                jobs.push(JobFigures {
                    key: key.clone(),
                    job: job.clone(),
                    running: f.seen.running,
                    seconds_since_checkpoint: secs_between(f.changed_at, now),
                });
            }
        }
        (components, jobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::alert::AlertKind;

    const T0: i64 = 1_800_000_000;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(T0 + secs).unwrap()
    }

    fn key() -> ClusterKey {
        ClusterKey {
            namespace: "flink".into(),
            cluster: "rta".into(),
        }
    }

    fn leader(n: u8) -> Leader {
        Leader {
            address: format!("akka.tcp://flink@jm-{n}:6123/user/rpc/dispatcher_1"),
            session_id: format!("00000000-0000-0000-0000-00000000000{n}"),
        }
    }

    /// The dispatcher led by `who` (or by no one), its lease renewed at `renewed`.
    fn cluster(who: Option<u8>, renewed: i64) -> ClusterSeen {
        ClusterSeen {
            key: key(),
            components: vec![ComponentSeen {
                component: "dispatcher".into(),
                configmap: "rta-dispatcher-leader".into(),
                leader: who.map(leader),
                held: who.is_some(),
                expires_at: Some(at(renewed + 15)),
                lease: Some(Duration::from_secs(15)),
            }],
            jobs: Vec::new(),
            handles: BTreeMap::new(),
        }
    }

    fn settings() -> Settings {
        Settings {
            leaderless_after: None,
            fallback_lease: Duration::from_secs(15),
            checkpoint_stall_after: None,
        }
    }

    fn kinds(alerts: &[Alert]) -> Vec<(AlertKind, bool)> {
        alerts.iter().map(|a| (a.kind, a.late)).collect()
    }

    /// A tracker past its first pass, with the dispatcher led by 1.
    fn running() -> Tracker {
        let mut t = Tracker::new(settings(), None);
        assert!(t.observe(cluster(Some(1), 0), at(0)).is_empty());
        t.end_initial_pass();
        t
    }

    #[test]
    fn leaders_in_place_at_the_first_start_are_not_news() {
        let mut t = Tracker::new(settings(), None);
        assert!(t.observe(cluster(Some(1), 0), at(0)).is_empty());
        t.end_initial_pass();
        let dirty = t.take_dirty();
        assert_eq!(dirty.len(), 1, "the baseline is persisted");
        assert_eq!(
            dirty[0].1.as_ref().unwrap().leaders["dispatcher"],
            leader(1)
        );
    }

    #[test]
    fn a_to_b_alerts_once_with_both_leaders() {
        let mut t = running();
        let alerts = t.observe(cluster(Some(2), 1), at(1));
        assert_eq!(kinds(&alerts), vec![(AlertKind::LeaderChanged, false)]);
        assert_eq!(alerts[0].from, Some(leader(1)));
        assert_eq!(alerts[0].to, Some(leader(2)));
        assert!(
            t.observe(cluster(Some(2), 2), at(2)).is_empty(),
            "repeated B"
        );
    }

    #[test]
    fn a_to_none_to_a_is_silent_and_none_to_b_is_news() {
        let mut t = running();
        assert!(t.observe(cluster(None, 1), at(1)).is_empty());
        assert!(
            t.observe(cluster(Some(1), 2), at(2)).is_empty(),
            "A → none → A"
        );
        assert!(t.observe(cluster(None, 3), at(3)).is_empty());
        let alerts = t.observe(cluster(Some(2), 4), at(4));
        assert_eq!(kinds(&alerts), vec![(AlertKind::LeaderChanged, false)]);
        assert_eq!(alerts[0].from, Some(leader(1)), "the last leader alerted");
    }

    #[test]
    fn a_new_component_after_the_first_pass_is_none_to_b() {
        let mut t = Tracker::new(settings(), None);
        t.end_initial_pass();
        let alerts = t.observe(cluster(Some(3), 0), at(0));
        assert_eq!(kinds(&alerts), vec![(AlertKind::LeaderChanged, false)]);
        assert_eq!(alerts[0].from, None);
    }

    #[test]
    fn a_change_made_while_no_operator_ran_is_alerted_late_once() {
        let mut first = running();
        let persisted: BTreeMap<_, _> = first
            .take_dirty()
            .into_iter()
            .filter_map(|(k, s)| s.map(|s| (k, s)))
            .collect();
        let mut next = Tracker::new(settings(), Some(persisted.clone()));
        let alerts = next.observe(cluster(Some(2), 10), at(10));
        assert_eq!(kinds(&alerts), vec![(AlertKind::LeaderChanged, true)]);
        next.end_initial_pass();
        assert!(next.observe(cluster(Some(2), 11), at(11)).is_empty());
        // An operator that restarts with nothing changed says nothing.
        let mut again = Tracker::new(settings(), Some(persisted));
        assert!(again.observe(cluster(Some(1), 10), at(10)).is_empty());
    }

    #[test]
    fn a_lost_leader_warns_once_per_episode_and_resolves() {
        let mut t = running();
        // Released at 1: leaderless from 1; the threshold is twice the 15 s lease.
        assert!(t.observe(cluster(None, 1), at(1)).is_empty());
        assert!(t.tick(at(30)).is_empty());
        let lost = t.tick(at(31));
        assert_eq!(kinds(&lost), vec![(AlertKind::LeaderLost, false)]);
        assert_eq!(lost[0].from, Some(leader(1)));
        assert!(t.tick(at(60)).is_empty(), "one alert per episode");
        let back = t.observe(cluster(Some(1), 61), at(61));
        assert_eq!(kinds(&back), vec![(AlertKind::LeaderRestored, false)]);
        assert!(back[0].resolved);
        assert_eq!(back[0].from, Some(leader(1)));
        // A second outage is a new episode with its own id.
        t.observe(cluster(None, 70), at(70));
        let again = t.tick(at(100));
        assert_eq!(kinds(&again), vec![(AlertKind::LeaderLost, false)]);
        assert_ne!(again[0].id, lost[0].id);
        // Restored by another leader: from the one before the outage to the new one.
        let other = t.observe(cluster(Some(2), 101), at(101));
        assert_eq!(
            kinds(&other),
            vec![
                (AlertKind::LeaderChanged, false),
                (AlertKind::LeaderRestored, false)
            ]
        );
        assert_eq!(other[1].from, Some(leader(1)));
        assert_eq!(other[1].to, Some(leader(2)));
    }

    #[test]
    fn an_expired_lease_counts_from_its_end_not_from_when_it_was_seen() {
        let mut t = running();
        // Renewed at 0, never again: the lease ended at 15, so lost at 45.
        assert!(t.tick(at(44)).is_empty());
        assert_eq!(kinds(&t.tick(at(45))), vec![(AlertKind::LeaderLost, false)]);
    }

    #[test]
    fn a_slow_renew_shorter_than_the_threshold_is_not_a_lost_leader() {
        let mut t = running();
        assert!(t.tick(at(20)).is_empty());
        assert!(t.observe(cluster(Some(1), 21), at(21)).is_empty());
        assert!(t.tick(at(40)).is_empty());
    }

    #[test]
    fn a_lost_leader_survives_an_operator_failover() {
        let mut t = running();
        t.observe(cluster(None, 1), at(1));
        t.tick(at(40));
        let persisted: BTreeMap<_, _> = t
            .take_dirty()
            .into_iter()
            .filter_map(|(k, s)| s.map(|s| (k, s)))
            .collect();
        let mut next = Tracker::new(settings(), Some(persisted));
        assert!(next.observe(cluster(None, 1), at(50)).is_empty());
        let open = next.open_conditions(at(50));
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].kind, AlertKind::LeaderLost);
        assert_eq!(open[0].from, Some(leader(1)));
        assert!(next.tick(at(200)).is_empty(), "already alerted");
        let back = next.observe(cluster(Some(2), 201), at(201));
        assert_eq!(
            kinds(&back),
            vec![
                (AlertKind::LeaderChanged, true),
                (AlertKind::LeaderRestored, true)
            ]
        );
    }

    #[test]
    fn stalled_checkpoints_warn_and_resolve_with_the_next_checkpoint() {
        let mut s = settings();
        s.checkpoint_stall_after = Some(Duration::from_secs(60));
        let mut t = Tracker::new(s, None);
        let with_job = |newest: Option<u64>, running: bool| {
            let mut c = cluster(Some(1), 0);
            c.jobs.push(JobSeen {
                job: "00000000000000000000000000000001".into(),
                configmap: "rta-00000000000000000000000000000001-jobmanager-leader".into(),
                running,
                newest_checkpoint: newest,
            });
            c
        };
        t.observe(with_job(Some(5), true), at(0));
        t.end_initial_pass();
        assert!(t.observe(with_job(Some(6), true), at(30)).is_empty());
        assert!(
            t.tick(at(89))
                .iter()
                .all(|a| a.kind != AlertKind::CheckpointsStalled),
            "60 s after checkpoint 6, not 5"
        );
        let stalled: Vec<_> = t
            .tick(at(90))
            .into_iter()
            .filter(|a| a.kind == AlertKind::CheckpointsStalled)
            .collect();
        assert_eq!(stalled.len(), 1);
        assert!(!stalled[0].resolved);
        let resolved: Vec<_> = t
            .observe(with_job(Some(7), true), at(100))
            .into_iter()
            .filter(|a| a.kind == AlertKind::CheckpointsStalled)
            .collect();
        assert_eq!(resolved.len(), 1);
        assert!(resolved[0].resolved);
        // A finished job does not stall.
        t.observe(with_job(Some(7), false), at(110));
        assert!(
            t.tick(at(1000))
                .iter()
                .all(|a| a.kind != AlertKind::CheckpointsStalled)
        );
    }

    #[test]
    fn a_dangling_handle_is_alerted_once_and_resolved_when_whole_or_gone() {
        let path = "s3://b/ha/rta/submittedJobGraphab12".to_string();
        let id = "rta-dispatcher-leader/jobGraph-00000000000000000000000000000001".to_string();
        let mut t = Tracker::new(settings(), None);
        let mut c = cluster(Some(1), 0);
        c.handles.insert(id.clone(), path.clone());
        t.observe(c.clone(), at(0));
        t.end_initial_pass();
        let result = |problem: Option<&str>| PayloadResult {
            configmap: "rta-dispatcher-leader".into(),
            key: "jobGraph-00000000000000000000000000000001".into(),
            path: path.clone(),
            problem: problem.map(str::to_string),
        };
        let first = t.payloads(&key(), &[result(Some("is missing"))], at(1));
        assert_eq!(kinds(&first), vec![(AlertKind::DanglingHandle, false)]);
        assert!(first[0].is_warning());
        assert!(
            t.payloads(&key(), &[result(Some("is missing"))], at(2))
                .is_empty()
        );
        let back = t.payloads(&key(), &[result(None)], at(3));
        assert_eq!(back.len(), 1);
        assert!(back[0].resolved);
        assert!(t.payloads(&key(), &[result(None)], at(4)).is_empty());
        // Reported again, then the entry goes away: forgotten without a word.
        t.payloads(&key(), &[result(Some("is missing"))], at(5));
        let mut gone = c.clone();
        gone.handles.clear();
        t.observe(gone, at(6));
        assert!(
            t.payloads(&key(), &[result(Some("is missing"))], at(7))
                .is_empty(),
            "a check of a handle that is gone is stale"
        );
        t.observe(c, at(8));
        let again = t.payloads(&key(), &[result(Some("is missing"))], at(9));
        assert_eq!(
            again.len(),
            1,
            "a new entry with the same key is news again"
        );
    }

    #[test]
    fn a_vanished_cluster_is_forgotten_with_its_state() {
        let mut t = running();
        t.take_dirty();
        t.forget(&key());
        assert_eq!(t.take_dirty(), vec![(key(), None)]);
        assert_eq!(t.clusters().count(), 0);
        assert!(t.figures(at(0)).0.is_empty());
    }
}
