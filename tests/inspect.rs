//! `hakeeper inspect` end to end: HA state written through the library (electors, and the
//! stores over a `file://` directory) into the API server, then `collect`, `build`, `verify`
//! and both renderings; a payload deleted behind the stores' back shows up as dangling.

mod common;

use common::TestCluster;
use common::ha::{STEADY, lead};
use hakeeper::election::ReleaseReason;
use hakeeper::inspect::{self, JobState, Layout, LockStatus, VerificationSummary};
use hakeeper::layout::{ClusterId, Component, JobId};
use hakeeper::lease::LEADER_ANNOTATION;
use hakeeper::storage::Location;
use hakeeper::stores::Payloads;
use hakeeper::stores::plan;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use serde_json::{Value, json};

const CLUSTER: &str = "flink-inspect";
const JOB: &str = "5c1a9f0e2b7d4c3a8e6f1d0b9a8c7e6f";
/// A job of the Flink 1.15+ layout, known only from the cluster ConfigMap's leader entry.
const UPGRADED_JOB: &str = "0123456789abcdef0123456789abcdef";
const SESSION_115: &str = "8f0a2a6c-3b53-4f7e-9a55-2e1a0c6b7d10";
fn cluster() -> ClusterId {
    CLUSTER.parse().unwrap()
}

async fn create(c: &TestCluster, value: Value) {
    c.api::<ConfigMap>()
        .create(&PostParams::default(), &common::configmap(value))
        .await
        .expect("create ConfigMap");
}

fn names(configmaps: &[ConfigMap]) -> Vec<String> {
    configmaps
        .iter()
        .map(|cm| cm.metadata.name.clone().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_shows_what_the_stores_wrote_and_finds_a_lost_payload() {
    common::init_logs();
    let c = TestCluster::start().await;
    let job: JobId = JOB.parse().unwrap();
    let files = common::file_storage().await;
    let (root, storage) = (files.root.clone(), files.store.clone());
    let payloads = Payloads::new(storage.clone(), &root, &cluster());

    // Flink 1.12-1.14's layout, written by hakeeper: a job graph, the job running, and three
    // checkpoints of which two are retained.
    let (dispatcher, dispatcher_session) =
        lead(&c, &cluster(), Component::Dispatcher, "jm-0", STEADY).await;
    let (resourcemanager, _) =
        lead(&c, &cluster(), Component::ResourceManager, "jm-0", STEADY).await;
    let (jobmanager, jobmanager_session) = lead(
        &c,
        &cluster(),
        Component::JobManager(job.clone()),
        "jm-0",
        STEADY,
    )
    .await;
    common::ha::write_running_job(
        c.api(),
        &payloads,
        &cluster(),
        &job,
        (&dispatcher, dispatcher_session),
        (&jobmanager, jobmanager_session),
    )
    .await;

    // Flink 1.15+'s layout left behind by an upgrade: the cluster ConfigMap as Flink's elector
    // creates it (no labels yet) and the job's ConfigMap, found through the leader entry.
    let record = format!(
        r#"{{"holderIdentity":"flink-115","leaseDuration":15.000000000,"acquireTime":"{now}","renewTime":"{now}","leaderTransitions":4}}"#,
        now = jiff::Timestamp::now()
    );
    create(
        &c,
        json!({
            "metadata": {
                "name": format!("{CLUSTER}-cluster-config-map"),
                "annotations": {LEADER_ANNOTATION: record},
            },
            "data": {
                format!("org.apache.flink.k8s.leader.{UPGRADED_JOB}"):
                    format!("{SESSION_115},pekko.tcp://flink@jm-1:6123/user/rpc/jobmanager_1"),
            },
        }),
    )
    .await;
    create(
        &c,
        json!({
            "metadata": {"name": format!("{CLUSTER}-{UPGRADED_JOB}-config-map")},
            "data": {"counter": "1"},
        }),
    )
    .await;
    // Another cluster's HA ConfigMap is none of this cluster's business.
    create(
        &c,
        json!({
            "metadata": {
                "name": "other-dispatcher-leader",
                "labels": {"app": "other", "configmap-type": "high-availability"},
            },
        }),
    )
    .await;

    let configmaps = inspect::collect(c.client.clone(), &c.namespace, &cluster())
        .await
        .unwrap();
    assert_eq!(
        names(&configmaps),
        [
            format!("{CLUSTER}-{UPGRADED_JOB}-config-map"),
            format!("{CLUSTER}-{JOB}-jobmanager-leader"),
            format!("{CLUSTER}-cluster-config-map"),
            format!("{CLUSTER}-dispatcher-leader"),
            format!("{CLUSTER}-resourcemanager-leader"),
        ]
    );
    let mut report = inspect::build(&cluster(), &configmaps, jiff::Timestamp::now());
    assert_eq!(
        report.layouts,
        [Layout::PerComponent, Layout::ClusterConfigMap]
    );
    assert_eq!(report.namespace.as_deref(), Some(c.namespace.as_str()));
    let leaders: Vec<_> = report
        .components
        .iter()
        .map(|c| {
            (
                c.component.as_str(),
                c.layout,
                c.lock.status,
                c.lock.holder_identity.as_deref(),
                c.address.as_deref(),
            )
        })
        .collect();
    let jm = format!("jobmanager/{JOB}");
    let upgraded = format!("jobmanager/{UPGRADED_JOB}");
    assert_eq!(
        leaders,
        [
            (
                "dispatcher",
                Layout::PerComponent,
                LockStatus::Held,
                Some("jm-0"),
                Some("jm-0:6123")
            ),
            (
                "resourcemanager",
                Layout::PerComponent,
                LockStatus::Held,
                Some("jm-0"),
                Some("jm-0:6123")
            ),
            (
                jm.as_str(),
                Layout::PerComponent,
                LockStatus::Held,
                Some("jm-0"),
                Some("jm-0:6123")
            ),
            (
                upgraded.as_str(),
                Layout::ClusterConfigMap,
                LockStatus::Held,
                Some("flink-115"),
                Some("pekko.tcp://flink@jm-1:6123/user/rpc/jobmanager_1")
            ),
        ]
    );
    for leader in &report.components {
        assert!(leader.problems.is_empty(), "{leader:?}");
        let remaining = leader.lock.remaining_seconds.unwrap();
        assert!(remaining > 0.0 && remaining <= 60.0, "{remaining}");
    }

    assert_eq!(report.jobs.len(), 2);
    let ours = &report.jobs[0];
    assert_eq!(
        (ours.job_id.as_str(), ours.layout, ours.status),
        (JOB, Layout::PerComponent, JobState::Running)
    );
    assert_eq!(
        ours.graph
            .as_ref()
            .unwrap()
            .handle
            .as_ref()
            .unwrap()
            .state_size,
        4096
    );
    let retained: Vec<_> = ours
        .checkpoints
        .iter()
        .map(|c| (c.id, c.entry.handle.as_ref().unwrap().state_size))
        .collect();
    assert_eq!(retained, [(Some(2), 200), (Some(3), 300)]);
    assert_eq!((ours.counter.value, ours.counter.default), (Some(4), false));
    assert!(ours.problems.is_empty(), "{:?}", ours.problems);
    let theirs = &report.jobs[1];
    assert_eq!(
        (theirs.job_id.as_str(), theirs.layout, theirs.status),
        (UPGRADED_JOB, Layout::ClusterConfigMap, JobState::None)
    );
    assert!(theirs.graph.is_none() && theirs.checkpoints.is_empty());
    assert!(theirs.checkpoints_configmap_found);
    assert_eq!(theirs.counter.value, Some(1));
    for cm in &report.configmaps {
        let labelled = cm.name.ends_with("-leader");
        assert_eq!(cm.missing_labels.is_empty(), labelled, "{cm:?}");
        assert!(
            cm.unknown_keys.is_empty() && cm.problems.is_empty(),
            "{cm:?}"
        );
    }

    inspect::verify(&mut report, storage.as_ref()).await;
    assert_eq!(
        report.verification,
        Some(VerificationSummary {
            handles: 3,
            ok: 3,
            dangling: 0,
            being_deleted: 0,
            unchecked: 0
        })
    );
    assert!(report.dangling.is_empty());
    let table = inspect::render_table(&report);
    assert!(table.contains("\nDangling handles: none\n"), "{table}");

    // The newest checkpoint's payload goes missing behind the stores' back.
    let lost = report.jobs[0].checkpoints[1]
        .entry
        .handle
        .as_ref()
        .unwrap()
        .path
        .clone();
    storage
        .delete(&Location::parse(&lost).unwrap())
        .await
        .unwrap();
    let configmaps = inspect::collect(c.client.clone(), &c.namespace, &cluster())
        .await
        .unwrap();
    let mut report = inspect::build(&cluster(), &configmaps, jiff::Timestamp::now());
    inspect::verify(&mut report, storage.as_ref()).await;
    let summary = report.verification.unwrap();
    assert_eq!((summary.ok, summary.dangling), (2, 1));
    let dangling: Vec<_> = report
        .dangling
        .iter()
        .map(|d| {
            (
                d.configmap.as_str(),
                d.key.as_str(),
                d.path.as_str(),
                d.problem.as_str(),
            )
        })
        .collect();
    let key = plan::checkpoint_key(3);
    let jm_configmap = format!("{CLUSTER}-{JOB}-jobmanager-leader");
    assert_eq!(
        dangling,
        [(
            jm_configmap.as_str(),
            key.as_str(),
            lost.as_str(),
            "is missing"
        )]
    );

    let table = inspect::render_table(&report);
    for expected in [
        "Payloads:     3 handles checked: 2 ok, 1 dangling\n",
        "    Holder:       jm-0\n",
        "    Status:       RUNNING\n",
        "    Counter:      4\n",
        "\nDangling handles:\n",
        &format!("  3   {lost}  300   -              missing (DANGLING)\n"),
        &format!("  {jm_configmap}  {key}  {lost}  is missing\n"),
        &format!("  {CLUSTER}-cluster-config-map:\n    - lacks the labels app={CLUSTER}"),
    ] {
        assert!(table.contains(expected), "missing {expected:?} in\n{table}");
    }
    assert!(!table.contains('\u{1b}'));

    let json: Value = serde_json::from_str(&inspect::render_json(&report)).unwrap();
    assert_eq!(json["clusterId"], CLUSTER);
    assert_eq!(json["verification"]["dangling"], 1);
    assert_eq!(json["dangling"][0]["key"], key);
    assert_eq!(json["dangling"][0]["path"], lost);
    assert_eq!(json["jobs"][0]["status"], "RUNNING");
    assert_eq!(
        json["jobs"][0]["checkpoints"][1]["payload"],
        json!({"result": "missing"})
    );
    assert_eq!(json["components"][0]["lock"]["holderIdentity"], "jm-0");

    dispatcher.release(ReleaseReason::Shutdown).await;
    resourcemanager.release(ReleaseReason::Shutdown).await;
    jobmanager.release(ReleaseReason::Shutdown).await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_pages_through_long_listings() {
    common::init_logs();
    let c = TestCluster::start().await;
    for n in 0..260 {
        create(
            &c,
            json!({
                "metadata": {
                    "name": format!("{CLUSTER}-extra-{n:03}"),
                    "labels": {"app": CLUSTER, "configmap-type": "high-availability"},
                },
            }),
        )
        .await;
    }
    let configmaps = inspect::collect(c.client.clone(), &c.namespace, &cluster())
        .await
        .unwrap();
    assert_eq!(configmaps.len(), 260);
    let report = inspect::build(&cluster(), &configmaps, jiff::Timestamp::now());
    assert!(report.layouts.is_empty());
    assert!(
        report
            .configmaps
            .iter()
            .all(|cm| cm.layout.is_none() && cm.role == "not an HA ConfigMap name of this cluster")
    );
    c.cleanup().await;
}
