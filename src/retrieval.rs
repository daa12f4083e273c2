//! Leader retrieval: any process can follow a component's leader (`address`, `sessionId`)
//! through a watch on its ConfigMap, and be told of real leader changes only.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::watcher;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::election::{LeaderInfo, LockObservation, WatchPacer};

/// What a retriever knows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Retrieved {
    /// The leader, while the lock is held, its observed lease is live and the data names one.
    pub leader: Option<LeaderInfo>,
    /// The holder named by the lock record.
    pub holder_identity: Option<String>,
    /// When the observed lease runs out (local monotonic time).
    pub lease_expires_at: Option<Instant>,
    /// The initial list has been seen.
    pub synced: bool,
}

/// A running retriever for one ConfigMap. Survives relists (410) and dropped watches: the
/// watch is retried with backoff, never given up. Dropping it stops it.
pub struct Retriever {
    state: watch::Receiver<Retrieved>,
    observation: Arc<Mutex<LockObservation>>,
    task: JoinHandle<()>,
}

impl Retriever {
    pub fn spawn(client: kube::Client, namespace: &str, configmap: &str) -> Retriever {
        Self::spawn_from(client, namespace, configmap, LockObservation::default())
    }

    /// Like [`Retriever::spawn`], starting from what this process already observed of the lock
    /// (the elector that contended for it until now): the state is that observation's from the
    /// start, and the watch's first list changes it only where the lock changed since.
    pub fn spawn_from(
        client: kube::Client,
        namespace: &str,
        configmap: &str,
        observed: LockObservation,
    ) -> Retriever {
        let api: Api<ConfigMap> = Api::namespaced(client, namespace);
        let synced = observed.is_known();
        let (tx, state) = watch::channel(retrieved(&observed, synced, Instant::now()));
        let observation = Arc::new(Mutex::new(observed.clone()));
        let task = tokio::spawn(follow(
            api,
            configmap.to_string(),
            tx,
            observation.clone(),
            observed,
        ));
        Retriever {
            state,
            observation,
            task,
        }
    }

    pub fn state(&self) -> watch::Receiver<Retrieved> {
        self.state.clone()
    }

    /// What this retriever has observed of the lock, including when its record last changed
    /// (local monotonic time). An elector started in this process can begin from it instead
    /// of from nothing, and so judge the current lease by when it was really last renewed.
    pub fn observation(&self) -> LockObservation {
        self.observation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Retriever {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn follow(
    api: Api<ConfigMap>,
    name: String,
    tx: watch::Sender<Retrieved>,
    shared: Arc<Mutex<LockObservation>>,
    mut observation: LockObservation,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut pacer = WatchPacer::new(Duration::from_secs(2));
    let mut events = watcher(api, config).boxed();
    let mut synced = observation.is_known();
    let mut seen = false;
    loop {
        // Wake when the observed lease runs out: the leader is then unknown.
        let expiry = observation.lease_expires_at();
        let sleep = async {
            match expiry {
                Some(at) if at > Instant::now() => {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await
                }
                _ => std::future::pending().await,
            }
        };
        let paused = pacer.paused_until();
        let resume = async {
            match paused {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.next(), if paused.is_none() => match event {
                Some(Ok(event)) => {
                    if pacer.progressed(&event) {
                        tracing::info!(configmap = %name, "leader watch works again");
                    }
                    let now = Instant::now();
                    match event {
                        watcher::Event::Init => seen = false,
                        watcher::Event::InitApply(cm) | watcher::Event::Apply(cm) => {
                            seen = true;
                            observation.observe(cm, now);
                        }
                        watcher::Event::Delete(cm) => {
                            observation.observe_deleted(cm.metadata.uid.as_deref(), now);
                        }
                        watcher::Event::InitDone => {
                            if !seen {
                                observation.observe_deleted(None, now);
                            }
                            synced = true;
                        }
                    }
                }
                Some(Err(e)) => {
                    if let Some(e) = pacer.failed(&e) {
                        tracing::warn!(configmap = %name, error = %e, "leader watch failed; retrying with backoff (logged again when the error changes)");
                    }
                }
                None => return,
            },
            _ = sleep => {}
            _ = resume => pacer.resume(),
        }
        *shared.lock().unwrap_or_else(|p| p.into_inner()) = observation.clone();
        let next = retrieved(&observation, synced, Instant::now());
        tx.send_if_modified(|current| {
            let changed = current.leader != next.leader
                || current.holder_identity != next.holder_identity
                || current.synced != next.synced;
            *current = next;
            changed
        });
    }
}

/// What `observation` says, as a retriever publishes it.
fn retrieved(observation: &LockObservation, synced: bool, now: Instant) -> Retrieved {
    Retrieved {
        leader: observation.leader(now),
        holder_identity: observation.holder().map(str::to_string),
        lease_expires_at: observation.lease_expires_at(),
        synced,
    }
}

/// A change of leader: from `old` (None: no leader known before) to `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderChange {
    pub old: Option<LeaderInfo>,
    pub new: LeaderInfo,
}

/// Reports a change only when the leader goes from A to B or from none to B. A flicker to
/// none and back to A (an API-server outage, a lease judged expired during a slow renew)
/// is not a change; A to none to B (a JobManager crash) is one change, A to B.
#[derive(Debug, Clone, Default)]
pub struct ChangeDetector {
    last: Option<LeaderInfo>,
}

impl ChangeDetector {
    pub fn observe(&mut self, current: Option<&LeaderInfo>) -> Option<LeaderChange> {
        let current = current?;
        if self.last.as_ref() == Some(current) {
            return None;
        }
        let old = self.last.replace(current.clone());
        Some(LeaderChange {
            old,
            new: current.clone(),
        })
    }
}

/// Follow a state (a retriever's or an elector's), call `on_change` for every leader change
/// and log each as a structured line. Ends when the state's sender is gone.
pub async fn follow_changes<T>(
    component: &str,
    mut state: watch::Receiver<T>,
    leader_of: impl Fn(&T) -> Option<LeaderInfo>,
    mut on_change: impl FnMut(&LeaderChange),
) {
    let mut detector = ChangeDetector::default();
    loop {
        let current = leader_of(&state.borrow_and_update());
        if let Some(change) = detector.observe(current.as_ref()) {
            tracing::info!(
                component,
                old_address = change.old.as_ref().map(|l| l.address.as_str()),
                old_session = change.old.as_ref().map(|l| l.session_id.as_str()),
                new_address = %change.new.address,
                new_session = %change.new.session_id,
                "leader changed"
            );
            on_change(&change);
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(a: &str, s: &str) -> LeaderInfo {
        LeaderInfo {
            address: a.into(),
            session_id: s.into(),
        }
    }

    #[test]
    fn flicker_to_none_and_back_is_no_change() {
        let mut d = ChangeDetector::default();
        let a = leader("a", "1");
        assert_eq!(
            d.observe(Some(&a)),
            Some(LeaderChange {
                old: None,
                new: a.clone()
            })
        );
        assert_eq!(d.observe(None), None);
        assert_eq!(
            d.observe(Some(&a)),
            None,
            "API outage: back to the same leader"
        );
        assert_eq!(d.observe(Some(&a)), None);
    }

    #[test]
    fn crash_then_new_leader_is_one_change() {
        let mut d = ChangeDetector::default();
        let a = leader("a", "1");
        let b = leader("b", "2");
        d.observe(Some(&a));
        assert_eq!(d.observe(None), None);
        assert_eq!(
            d.observe(Some(&b)),
            Some(LeaderChange {
                old: Some(a),
                new: b.clone()
            })
        );
    }

    #[test]
    fn same_address_new_session_is_a_change() {
        let mut d = ChangeDetector::default();
        d.observe(Some(&leader("a", "1")));
        assert!(d.observe(Some(&leader("a", "2"))).is_some());
    }
}
