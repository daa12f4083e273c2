//! What the operator tells people about, and the documents each channel receives (pure).
//!
//! One [`Alert`] goes to every channel: a Kubernetes Event on the ConfigMap concerned, each
//! `--alert-webhook` (the JSON of [`Alert`] itself) and Alertmanager ([`alertmanager_alert`]).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A component's leader as its ConfigMap publishes it (`address`, `sessionId`): the same
/// type the sidecar's followers report.
pub use crate::election::LeaderInfo as Leader;

impl std::fmt::Display for Leader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (session {})", self.address, self.session_id)
    }
}

/// The kinds of alert; each is also the Event's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlertKind {
    /// A component's leader went A → B or none → B.
    LeaderChanged,
    /// A component has had no live leader for longer than `--leaderless-after`.
    LeaderLost,
    /// A component that was [`AlertKind::LeaderLost`] has a live leader again.
    LeaderRestored,
    /// A handle whose payload is missing or shorter/longer than recorded.
    DanglingHandle,
    /// Orphaned payloads were deleted (`--gc`) or found (reported only).
    OrphansCollected,
    /// A running job has had no new checkpoint for longer than `--checkpoint-stall-after`.
    CheckpointsStalled,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::LeaderChanged => "LeaderChanged",
            AlertKind::LeaderLost => "LeaderLost",
            AlertKind::LeaderRestored => "LeaderRestored",
            AlertKind::DanglingHandle => "DanglingHandle",
            AlertKind::OrphansCollected => "OrphansCollected",
            AlertKind::CheckpointsStalled => "CheckpointsStalled",
        }
    }

    /// Warnings are conditions that hold until they resolve; the others are notices.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            AlertKind::LeaderLost | AlertKind::DanglingHandle | AlertKind::CheckpointsStalled
        )
    }

    /// `warning` or `info` (the Alertmanager `severity` label and the webhook's field).
    pub fn severity(self) -> &'static str {
        if self.is_warning() { "warning" } else { "info" }
    }
}

impl std::fmt::Display for AlertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert, exactly as a webhook receives it (camelCase JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Stable for the same happening, whichever operator replica reports it and however
    /// often it is retried: the idempotency key (also sent as the `Idempotency-Key` header).
    pub id: String,
    pub kind: AlertKind,
    /// `warning` or `info`.
    pub severity: String,
    pub namespace: String,
    /// The Flink cluster id (the ConfigMaps' `app` label).
    pub cluster: String,
    /// `dispatcher`, `resourcemanager`, `restserver`, `jobmanager/<job-id>`; `null` for
    /// alerts about a job's checkpoints, a handle or orphans.
    pub component: Option<String>,
    /// The job, for `CheckpointsStalled` (and `DanglingHandle` where the key names one).
    pub job: Option<String>,
    /// The ConfigMap the Kubernetes Event is recorded on.
    pub configmap: String,
    /// The previous leader (`LeaderChanged`: `null` for none → B; `LeaderLost`: the last one).
    pub from: Option<Leader>,
    /// The new leader (`LeaderChanged`, `LeaderRestored`).
    pub to: Option<Leader>,
    /// When this operator saw it (RFC 3339).
    pub observed_at: String,
    /// It happened while no operator was leading; seen when one started.
    pub late: bool,
    /// A `LeaderLost`, `DanglingHandle` or `CheckpointsStalled` condition ended.
    pub resolved: bool,
    /// One line for people (the Event's note).
    pub message: String,
    /// Kind-specific facts: the handle's key and path, orphan counts and bytes, seconds
    /// since the last checkpoint.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

/// The parts every alert has; the constructors below fill in the rest.
#[derive(Debug, Clone)]
pub struct Subject {
    pub namespace: String,
    pub cluster: String,
    pub configmap: String,
}

impl Alert {
    fn base(kind: AlertKind, subject: &Subject, id: String, observed_at: &str) -> Alert {
        Alert {
            id,
            kind,
            severity: kind.severity().to_string(),
            namespace: subject.namespace.clone(),
            cluster: subject.cluster.clone(),
            component: None,
            job: None,
            configmap: subject.configmap.clone(),
            from: None,
            to: None,
            observed_at: observed_at.to_string(),
            late: false,
            resolved: false,
            message: String::new(),
            details: Value::Null,
        }
    }

    pub fn leader_changed(
        subject: &Subject,
        component: &str,
        from: Option<Leader>,
        to: Leader,
        observed_at: &str,
        late: bool,
    ) -> Alert {
        let id = format!(
            "{}/{}/{}/{component}/{}",
            AlertKind::LeaderChanged,
            subject.namespace,
            subject.cluster,
            to.session_id
        );
        let mut a = Alert::base(AlertKind::LeaderChanged, subject, id, observed_at);
        a.message = match &from {
            Some(f) => format!("{component} leader changed from {f} to {to}"),
            None => format!("{component} has a leader: {to}"),
        };
        if late {
            a.message
                .push_str(" (while no operator was running; observed late)");
        }
        a.component = Some(component.to_string());
        a.from = from;
        a.to = Some(to);
        a.late = late;
        a
    }

    /// `LeaderLost` when `restored` is `None`, else its end (`LeaderRestored`).
    pub fn leader_lost(
        subject: &Subject,
        component: &str,
        last: Option<Leader>,
        restored: Option<Leader>,
        since_secs: f64,
        episode: u64,
        observed_at: &str,
    ) -> Alert {
        // The episode (when it began, in ms since the epoch of the operator's wall clock)
        // keeps a second outage of the same leader a separate alert.
        let id = format!(
            "{}/{}/{}/{component}/{episode}",
            AlertKind::LeaderLost,
            subject.namespace,
            subject.cluster
        );
        let kind = if restored.is_some() {
            AlertKind::LeaderRestored
        } else {
            AlertKind::LeaderLost
        };
        let mut a = Alert::base(kind, subject, id.clone(), observed_at);
        a.component = Some(component.to_string());
        a.message = match &restored {
            None => format!("{component} has had no live leader for {since_secs:.0} s"),
            Some(to) => {
                format!("{component} has a live leader again after {since_secs:.0} s: {to}")
            }
        };
        if restored.is_some() {
            a.id = format!("{id}/restored");
            a.resolved = true;
        }
        a.from = last;
        a.to = restored;
        a.details = json!({ "leaderlessSeconds": since_secs });
        a
    }

    pub fn dangling(
        subject: &Subject,
        key: &str,
        path: &str,
        problem: &str,
        resolved: bool,
        observed_at: &str,
    ) -> Alert {
        let id = format!(
            "{}/{}/{}/{}/{key}/{path}{}",
            AlertKind::DanglingHandle,
            subject.namespace,
            subject.cluster,
            subject.configmap,
            if resolved { "/resolved" } else { "" }
        );
        let mut a = Alert::base(AlertKind::DanglingHandle, subject, id, observed_at);
        a.job = job_of_key(key);
        a.resolved = resolved;
        a.message = if resolved {
            format!("{key}: the handle is no longer dangling")
        } else {
            format!("{key}: the payload {path} {problem}")
        };
        a.details = json!({ "key": key, "path": path, "problem": problem });
        a
    }

    #[allow(clippy::too_many_arguments)]
    pub fn checkpoints_stalled(
        subject: &Subject,
        job: &str,
        newest: Option<u64>,
        since_secs: f64,
        resolved: bool,
        episode: u64,
        observed_at: &str,
    ) -> Alert {
        let id = format!(
            "{}/{}/{}/{job}/{episode}{}",
            AlertKind::CheckpointsStalled,
            subject.namespace,
            subject.cluster,
            if resolved { "/resolved" } else { "" }
        );
        let mut a = Alert::base(AlertKind::CheckpointsStalled, subject, id, observed_at);
        a.job = Some(job.to_string());
        a.resolved = resolved;
        a.message = match (resolved, newest) {
            (true, Some(n)) => format!("job {job} checkpoints again (checkpoint {n})"),
            (true, None) => format!("job {job} is no longer running"),
            (false, Some(n)) => format!(
                "job {job} is RUNNING but has had no new checkpoint for {since_secs:.0} s (newest: {n})"
            ),
            (false, None) => {
                format!("job {job} is RUNNING but has had no checkpoint for {since_secs:.0} s")
            }
        };
        a.details = json!({ "newestCheckpoint": newest, "secondsSinceCheckpoint": since_secs });
        a
    }

    #[allow(clippy::too_many_arguments)]
    pub fn orphans(
        subject: &Subject,
        found: usize,
        bytes: u64,
        deleted: usize,
        gc: bool,
        id_suffix: &str,
        observed_at: &str,
    ) -> Alert {
        let id = format!(
            "{}/{}/{}/{id_suffix}",
            AlertKind::OrphansCollected,
            subject.namespace,
            subject.cluster
        );
        let mut a = Alert::base(AlertKind::OrphansCollected, subject, id, observed_at);
        a.message = match (deleted, gc) {
            (0, false) => {
                format!("{found} orphaned payload(s), {bytes} bytes (not deleted: --gc is off)")
            }
            (0, true) => format!(
                "{found} orphaned payload(s), {bytes} bytes, none deleted (referenced again on a fresh read, a handle could not be decoded, or the deletes failed)"
            ),
            (d, _) if d < found => format!(
                "deleted {d} of {found} orphaned payload(s), {bytes} bytes; kept the rest (referenced again, or the deletes failed)"
            ),
            (d, _) => format!("deleted {d} orphaned payload(s), {bytes} bytes"),
        };
        a.details = json!({ "found": found, "deleted": deleted, "bytes": bytes });
        a
    }

    /// The Event type for this alert.
    pub fn is_warning(&self) -> bool {
        self.kind.is_warning() && !self.resolved
    }
}

fn job_of_key(key: &str) -> Option<String> {
    ["jobGraph-", "runningJobsRegistry-", "executionPlan-"]
        .iter()
        .find_map(|p| key.strip_prefix(p))
        .map(str::to_string)
}

/// The condition an Alertmanager alert stands for: the same labels while it fires and when
/// it resolves, so Alertmanager pairs them.
pub fn alertmanager_labels(alert: &Alert) -> Value {
    let alertname = match alert.kind {
        AlertKind::LeaderRestored => AlertKind::LeaderLost.as_str(),
        k => k.as_str(),
    };
    let mut labels = serde_json::Map::new();
    labels.insert("alertname".into(), json!(format!("Flink{alertname}")));
    labels.insert("namespace".into(), json!(alert.namespace));
    labels.insert("cluster".into(), json!(alert.cluster));
    labels.insert(
        "component".into(),
        json!(alert.component.clone().unwrap_or_default()),
    );
    let severity = match alert.kind {
        AlertKind::LeaderRestored => "warning",
        k => k.severity(),
    };
    labels.insert("severity".into(), json!(severity));
    if let Some(job) = &alert.job {
        labels.insert("job_id".into(), json!(job));
    }
    if alert.kind == AlertKind::DanglingHandle
        && let Some(key) = alert.details.get("key").and_then(Value::as_str)
    {
        labels.insert("configmap".into(), json!(alert.configmap));
        labels.insert("key".into(), json!(key));
    }
    Value::Object(labels)
}

/// The element of a `POST /api/v2/alerts` body for `alert`. Notices (leader changed, orphans
/// collected) end `notice_ttl` after they start; a firing condition has no `endsAt` (the
/// channel re-sends it until it resolves); a resolved one ends at `now`.
pub fn alertmanager_alert(
    alert: &Alert,
    starts_at: &str,
    now: &str,
    notice_ends_at: &str,
    generator_url: Option<&str>,
) -> Value {
    let mut doc = json!({
        "labels": alertmanager_labels(alert),
        "annotations": {
            "summary": alert.message,
            "description": format!("{} in namespace {} (Flink cluster {}): {}", alert.kind, alert.namespace, alert.cluster, alert.message),
            "configmap": alert.configmap,
            "id": alert.id,
        },
        "startsAt": starts_at,
    });
    let ends = if alert.resolved {
        Some(now)
    } else if alert.kind.is_warning() {
        None
    } else {
        Some(notice_ends_at)
    };
    if let Some(ends) = ends {
        doc["endsAt"] = json!(ends);
    }
    if let Some(url) = generator_url {
        doc["generatorURL"] = json!(url);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Subject {
        Subject {
            namespace: "flink".into(),
            cluster: "rta".into(),
            configmap: "rta-dispatcher-leader".into(),
        }
    }

    fn leader(n: u8) -> Leader {
        Leader {
            address: format!("akka.tcp://flink@jm-{n}:6123/user/rpc/dispatcher_1"),
            session_id: format!("00000000-0000-0000-0000-00000000000{n}"),
        }
    }

    #[test]
    fn a_leader_change_serializes_with_every_documented_field() {
        let a = Alert::leader_changed(
            &subject(),
            "dispatcher",
            Some(leader(1)),
            leader(2),
            "2026-11-30T10:00:00Z",
            true,
        );
        let v = serde_json::to_value(&a).unwrap();
        for field in [
            "id",
            "kind",
            "severity",
            "namespace",
            "cluster",
            "component",
            "job",
            "configmap",
            "from",
            "to",
            "observedAt",
            "late",
            "resolved",
            "message",
        ] {
            assert!(v.get(field).is_some(), "{field} missing from {v}");
        }
        assert_eq!(v["kind"], "LeaderChanged");
        assert_eq!(v["from"]["sessionId"], leader(1).session_id);
        assert_eq!(v["to"]["address"], leader(2).address);
        assert_eq!(v["late"], true);
        assert!(a.message.contains("observed late"), "{}", a.message);
        let back: Alert = serde_json::from_value(v).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn the_idempotency_key_names_the_new_session_not_the_observer_or_time() {
        let a = Alert::leader_changed(&subject(), "dispatcher", None, leader(2), "t1", false);
        let b = Alert::leader_changed(
            &subject(),
            "dispatcher",
            Some(leader(1)),
            leader(2),
            "t2",
            true,
        );
        assert_eq!(a.id, b.id);
        let c = Alert::leader_changed(&subject(), "dispatcher", None, leader(3), "t1", false);
        assert_ne!(a.id, c.id);
        let d = Alert::leader_changed(&subject(), "restserver", None, leader(2), "t1", false);
        assert_ne!(a.id, d.id);
    }

    #[test]
    fn alertmanager_pairs_a_lost_leader_with_its_restoration() {
        let lost = Alert::leader_lost(
            &subject(),
            "dispatcher",
            Some(leader(1)),
            None,
            31.0,
            7,
            "t",
        );
        let back = Alert::leader_lost(
            &subject(),
            "dispatcher",
            Some(leader(1)),
            Some(leader(2)),
            40.0,
            7,
            "t",
        );
        assert_eq!(lost.kind, AlertKind::LeaderLost);
        assert!(lost.is_warning());
        assert_eq!(back.kind, AlertKind::LeaderRestored);
        assert!(back.resolved && !back.is_warning());
        assert_ne!(lost.id, back.id);
        assert_eq!(alertmanager_labels(&lost), alertmanager_labels(&back));
        let firing = alertmanager_alert(&lost, "s", "n", "e", None);
        assert!(firing.get("endsAt").is_none(), "{firing}");
        assert_eq!(firing["labels"]["alertname"], "FlinkLeaderLost");
        assert_eq!(firing["labels"]["severity"], "warning");
        assert_eq!(firing["labels"]["component"], "dispatcher");
        let resolved = alertmanager_alert(&back, "s", "n", "e", Some("http://op"));
        assert_eq!(resolved["endsAt"], "n");
        assert_eq!(resolved["generatorURL"], "http://op");
    }

    #[test]
    fn notices_end_on_their_own_in_alertmanager() {
        let a = Alert::leader_changed(&subject(), "dispatcher", None, leader(2), "t", false);
        let doc = alertmanager_alert(&a, "s", "n", "e", None);
        assert_eq!(doc["endsAt"], "e");
        assert_eq!(doc["startsAt"], "s");
        assert_eq!(doc["labels"]["severity"], "info");
        assert_eq!(doc["annotations"]["summary"], a.message);
    }

    #[test]
    fn dangling_alerts_carry_the_job_key_and_path() {
        let a = Alert::dangling(
            &subject(),
            "jobGraph-00000000000000000000000000000001",
            "s3://b/ha/rta/submittedJobGraph1",
            "is missing",
            false,
            "t",
        );
        assert_eq!(a.job.as_deref(), Some("00000000000000000000000000000001"));
        assert!(a.is_warning());
        let labels = alertmanager_labels(&a);
        assert_eq!(labels["key"], "jobGraph-00000000000000000000000000000001");
        let r = Alert::dangling(
            &subject(),
            "jobGraph-00000000000000000000000000000001",
            "s3://b/ha/rta/submittedJobGraph1",
            "is missing",
            true,
            "t",
        );
        assert_eq!(alertmanager_labels(&r), labels);
        assert_ne!(r.id, a.id);
    }
}
