//! Test fixtures shared by the unit tests of `inspect`: stock Flink 1.12–1.14 and 1.15+
//! ConfigMaps and handles, and helpers to find things in a report.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};

use super::{ComponentReport, ConfigMapReport, Layout, LockStatus, Report};
use crate::handle::{self, StateHandle};
use crate::layout::ClusterId;
use crate::stores::plan;

pub(super) const CLUSTER: &str = "my-flink";
pub(super) const JOB: &str = "307e2d6a5be8307e2d6a5be8307e2d6a";
pub(super) const OTHER_JOB: &str = "a0000000000000000000000000000007";

// Handle values from src/handle.rs's tests. This one was written by a real Flink 1.12
// JobManager into its job graph store.
pub(super) const FLINK_112_JOB_GRAPH: &str = "rO0ABXNyADtvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuUmV0cmlldmFibGVTdHJlYW1TdGF0ZUhhbmRsZQABHhjxVZcrAgABTAAYd3JhcHBlZFN0cmVhbVN0YXRlSGFuZGxldAAyTG9yZy9hcGFjaGUvZmxpbmsvcnVudGltZS9zdGF0ZS9TdHJlYW1TdGF0ZUhhbmRsZTt4cHNyADlvcmcuYXBhY2hlLmZsaW5rLnJ1bnRpbWUuc3RhdGUuZmlsZXN5c3RlbS5GaWxlU3RhdGVIYW5kbGUE3HXYYr0bswIAAkoACXN0YXRlU2l6ZUwACGZpbGVQYXRodAAfTG9yZy9hcGFjaGUvZmxpbmsvY29yZS9mcy9QYXRoO3hwAAAAAAADcrNzcgAdb3JnLmFwYWNoZS5mbGluay5jb3JlLmZzLlBhdGgAAAAAAAAAAQIAAUwAA3VyaXQADkxqYXZhL25ldC9VUkk7eHBzcgAMamF2YS5uZXQuVVJJrAF4LkOeSasDAAFMAAZzdHJpbmd0ABJMamF2YS9sYW5nL1N0cmluZzt4cHQAN3MzOi8vcnRhL2ZsaW5rL2hhL2RlZmF1bHQvc3VibWl0dGVkSm9iR3JhcGgzMDdlMmQ2YTViZTh4";
pub(super) const FLINK_112_PATH: &str = "s3://rta/flink/ha/default/submittedJobGraph307e2d6a5be8";
pub(super) const FLINK_112_SIZE: i64 = 225971;
/// `StateHandleWithDeleteMarker(RetrievableStreamStateHandle(new Path(PATH_115), 48213),
/// false)`, written by Java's ObjectOutputStream from flink-dist 1.15.4's classes.
pub(super) const FLINK_115_UNMARKED: &str = "rO0ABXNyAGNvcmcuYXBhY2hlLmZsaW5rLmt1YmVybmV0ZXMuaGlnaGF2YWlsYWJpbGl0eS5LdWJlcm5ldGVzU3RhdGVIYW5kbGVTdG9yZSRTdGF0ZUhhbmRsZVdpdGhEZWxldGVNYXJrZXKfgTvzmWVDfwIAAloAEW1hcmtlZEZvckRlbGV0aW9uTAAFaW5uZXJ0ADdMb3JnL2FwYWNoZS9mbGluay9ydW50aW1lL3N0YXRlL1JldHJpZXZhYmxlU3RhdGVIYW5kbGU7eHAAc3IAO29yZy5hcGFjaGUuZmxpbmsucnVudGltZS5zdGF0ZS5SZXRyaWV2YWJsZVN0cmVhbVN0YXRlSGFuZGxlAAEeGPFVlysCAAFMABh3cmFwcGVkU3RyZWFtU3RhdGVIYW5kbGV0ADJMb3JnL2FwYWNoZS9mbGluay9ydW50aW1lL3N0YXRlL1N0cmVhbVN0YXRlSGFuZGxlO3hwc3IAOW9yZy5hcGFjaGUuZmxpbmsucnVudGltZS5zdGF0ZS5maWxlc3lzdGVtLkZpbGVTdGF0ZUhhbmRsZQTcddhivRuzAgACSgAJc3RhdGVTaXplTAAIZmlsZVBhdGh0AB9Mb3JnL2FwYWNoZS9mbGluay9jb3JlL2ZzL1BhdGg7eHAAAAAAAAC8VXNyAB1vcmcuYXBhY2hlLmZsaW5rLmNvcmUuZnMuUGF0aAAAAAAAAAABAgABTAADdXJpdAAOTGphdmEvbmV0L1VSSTt4cHNyAAxqYXZhLm5ldC5VUkmsAXguQ55JqwMAAUwABnN0cmluZ3QAEkxqYXZhL2xhbmcvU3RyaW5nO3hwdAA5czM6Ly9ydGEvZmxpbmsvaGEvZGVmYXVsdC9jb21wbGV0ZWRDaGVja3BvaW50NWMzZTFkMmE5ZjBieA==";
/// The same marked for deletion, from flink-dist 1.20.3's classes.
pub(super) const FLINK_120_MARKED: &str = "rO0ABXNyAGNvcmcuYXBhY2hlLmZsaW5rLmt1YmVybmV0ZXMuaGlnaGF2YWlsYWJpbGl0eS5LdWJlcm5ldGVzU3RhdGVIYW5kbGVTdG9yZSRTdGF0ZUhhbmRsZVdpdGhEZWxldGVNYXJrZXIbrUSA74YNfAIAAloAEW1hcmtlZEZvckRlbGV0aW9uTAAFaW5uZXJ0ADdMb3JnL2FwYWNoZS9mbGluay9ydW50aW1lL3N0YXRlL1JldHJpZXZhYmxlU3RhdGVIYW5kbGU7eHABc3IAO29yZy5hcGFjaGUuZmxpbmsucnVudGltZS5zdGF0ZS5SZXRyaWV2YWJsZVN0cmVhbVN0YXRlSGFuZGxlAAEeGPFVlysCAAFMABh3cmFwcGVkU3RyZWFtU3RhdGVIYW5kbGV0ADJMb3JnL2FwYWNoZS9mbGluay9ydW50aW1lL3N0YXRlL1N0cmVhbVN0YXRlSGFuZGxlO3hwc3IAOW9yZy5hcGFjaGUuZmxpbmsucnVudGltZS5zdGF0ZS5maWxlc3lzdGVtLkZpbGVTdGF0ZUhhbmRsZQTcddhivRuzAgACSgAJc3RhdGVTaXplTAAIZmlsZVBhdGh0AB9Mb3JnL2FwYWNoZS9mbGluay9jb3JlL2ZzL1BhdGg7eHAAAAAAAAC8VXNyAB1vcmcuYXBhY2hlLmZsaW5rLmNvcmUuZnMuUGF0aAAAAAAAAAABAgABTAADdXJpdAAOTGphdmEvbmV0L1VSSTt4cHNyAAxqYXZhLm5ldC5VUkmsAXguQ55JqwMAAUwABnN0cmluZ3QAEkxqYXZhL2xhbmcvU3RyaW5nO3hwdAA5czM6Ly9ydGEvZmxpbmsvaGEvZGVmYXVsdC9jb21wbGV0ZWRDaGVja3BvaW50NWMzZTFkMmE5ZjBieA==";
pub(super) const PATH_115: &str = "s3://rta/flink/ha/default/completedCheckpoint5c3e1d2a9f0b";
pub(super) const SIZE_115: i64 = 48213;

pub(super) const HOLDER: &str = "f7978fe5-962d-4037-aa23-19ff522afbff";
pub(super) const SESSION: &str = "8f0a2a6c-3b53-4f7e-9a55-2e1a0c6b7d10";
/// Five seconds after the fixtures' renewTime: 10 s of the 15 s lease left.
pub(super) const NOW: &str = "2022-05-19T15:10:07.104Z";

pub(super) fn now() -> Timestamp {
    NOW.parse().unwrap()
}

pub(super) fn cluster() -> ClusterId {
    CLUSTER.parse().unwrap()
}

pub(super) fn configmap(value: Value) -> ConfigMap {
    serde_json::from_value(value).expect("a ConfigMap")
}

pub(super) fn ha_labels() -> Value {
    json!({"app": CLUSTER, "configmap-type": "high-availability", "type": "flink-native-kubernetes"})
}

/// The lock annotation byte for byte as Flink's fabric8 elector writes it.
pub(super) fn flink_lock(holder: &str, transitions: u32) -> Value {
    json!({
        "control-plane.alpha.kubernetes.io/leader": format!(
            r#"{{"holderIdentity":"{holder}","leaseDuration":15.000000000,"acquireTime":"2022-05-19T15:09:39.272000Z","renewTime":"2022-05-19T15:10:02.104000Z","leaderTransitions":{transitions}}}"#
        )
    })
}

pub(super) fn handle_value(path: &str, size: i64) -> String {
    handle::encode_base64(&StateHandle::new(path, size))
}

pub(super) fn marked_value(path: &str, size: i64, marked: bool) -> String {
    handle::encode_base64(&StateHandle::with_delete_marker(path, size, marked))
}

pub(super) fn checkpoint(id: u64) -> String {
    plan::checkpoint_key(id)
}

/// A Flink 1.12–1.14 cluster with one running job, as Flink leaves its ConfigMaps: four
/// locks, each with the leader's address and session, the job graph and the running-jobs
/// registry in the dispatcher's, two retained checkpoints and the counter in the job
/// manager's.
pub(super) fn flink_112() -> Vec<ConfigMap> {
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
pub(super) fn flink_115() -> Vec<ConfigMap> {
    let akka =
        |endpoint: &str| format!("{SESSION},akka.tcp://flink@10.244.0.12:6123/user/rpc/{endpoint}");
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

pub(super) fn component<'a>(report: &'a Report, layout: Layout, name: &str) -> &'a ComponentReport {
    report
        .components
        .iter()
        .find(|c| c.layout == layout && c.component == name)
        .unwrap_or_else(|| panic!("no {name} in {layout:?}"))
}

pub(super) fn configmap_report<'a>(report: &'a Report, name: &str) -> &'a ConfigMapReport {
    report
        .configmaps
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no ConfigMap {name}"))
}

pub(super) fn no_problems(report: &Report) {
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
