//! Crash points of the state-handle store. Every step of add, replace and remove (the
//! payload write, the ConfigMap write, the payload delete) is made to fail, to lose its
//! answer, or to be the last thing the process does. After each case, a fresh reader
//! checks the invariants:
//! - no handle points at a missing or truncated payload;
//! - an acknowledged write is there (an acknowledged removal is gone);
//! - the orphans (payloads no handle references) are exactly the ones the case predicts.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::TestCluster;
use common::faults::{Fault, FaultPlan, FaultyStore, faulty_client};
use hakeeper::election::{ElectionConfig, Elector, Fence};
use hakeeper::handle;
use hakeeper::layout::{ClusterId, Component, JobId};
use hakeeper::lease::Timings;
use hakeeper::storage::ObjectStore;
use hakeeper::stores::plan::{self, CHECKPOINT_KEY_PREFIX};
use hakeeper::stores::{Checkpoints, ConfigMapReader, HandleStore, Payloads, StoreError};
use k8s_openapi::api::core::v1::ConfigMap;

/// Long enough that no renewal (also a ConfigMap PUT) happens during a case.
const TIMINGS: Timings = Timings {
    lease_duration: Duration::from_secs(60),
    renew_deadline: Duration::from_secs(40),
    retry_period: Duration::from_secs(20),
};

const KEY: &str = "checkpointID-0000000000000000007";
const BYSTANDER: &str = "checkpointID-0000000000000000003";

struct Rig {
    api: kube::Api<ConfigMap>,
    api_faults: FaultPlan,
    storage: Arc<FaultyStore>,
    fence: Fence,
    session: uuid::Uuid,
    store: HandleStore,
    payloads: Payloads,
    _dir: tempfile::TempDir,
}

fn job() -> JobId {
    "a0000000000000000000000000000007".parse().unwrap()
}

/// The leader's side of a case; the elector and the cluster stay with the test so that the
/// rig can be shared with the operation's task.
async fn rig() -> Option<(Rig, Elector, TestCluster)> {
    common::init_logs();
    let cluster = TestCluster::start().await;
    let server = cluster.embedded("injecting faults into ConfigMap writes")?;
    let api_faults = FaultPlan::default();
    let client = faulty_client(server, api_faults.clone()).await;
    let cluster_id: ClusterId = "crash".parse().unwrap();
    let component = Component::JobManager(job());
    let elector = Elector::spawn(
        client,
        &cluster.namespace,
        ElectionConfig {
            cluster_id: cluster_id.clone(),
            component: component.clone(),
            identity: "jm-0".into(),
            address: "jm-0:6123".into(),
            timings: TIMINGS,
            owner: None,
        },
    );
    let session = common::wait_leader(&elector).await;
    let files = common::file_storage().await;
    let (dir, root, inner) = (files.dir, files.root, files.store);
    let storage = FaultyStore::wrap(inner);
    let payloads = Payloads::new(storage.clone() as Arc<dyn ObjectStore>, &root, &cluster_id);
    let reader = ConfigMapReader::new(
        cluster.api::<ConfigMap>(),
        component.configmap_name(&cluster_id),
    );
    let store = HandleStore::new(reader, payloads.clone(), plan::CHECKPOINT_PAYLOAD_PREFIX);
    let fence = elector.fence().clone();
    let rig = Rig {
        api: cluster.api::<ConfigMap>(),
        api_faults,
        storage,
        fence,
        session,
        store,
        payloads,
        _dir: dir,
    };
    rig.store
        .add(
            &rig.fence,
            Some(session),
            BYSTANDER,
            Bytes::from_static(b"bystander"),
        )
        .await
        .expect("bystander");
    Some((rig, elector, cluster))
}

impl Rig {
    /// The payloads in the cluster's directory that no handle in `referenced` points at.
    async fn orphans(&self, referenced: &HashSet<String>) -> Vec<hakeeper::storage::ObjectMeta> {
        let listed = self
            .storage
            .inner
            .list_dir(&self.payloads.cluster_dir)
            .await
            .unwrap();
        plan::orphans(&listed, referenced, SystemTime::now(), Duration::ZERO)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// Where the key ends up: with the old payload, the new one, or gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Old,
    New,
    Absent,
}

#[derive(Debug)]
enum Outcome {
    Acked,
    Failed(&'static str),
    Crashed,
}

struct Case {
    op: Op,
    api: &'static [Fault],
    api_down: bool,
    put: Option<Fault>,
    delete: Option<Fault>,
    /// `Acked`, a failure of this kind, or `Crashed`.
    expect: &'static str,
    after: Slot,
    orphans: &'static [Slot],
}

const fn case(op: Op, expect: &'static str, after: Slot, orphans: &'static [Slot]) -> Case {
    Case {
        op,
        api: &[],
        api_down: false,
        put: None,
        delete: None,
        expect,
        after,
        orphans,
    }
}

impl Case {
    const fn api(mut self, faults: &'static [Fault]) -> Case {
        self.api = faults;
        self
    }
    const fn down(mut self) -> Case {
        self.api_down = true;
        self
    }
    const fn put(mut self, f: Fault) -> Case {
        self.put = Some(f);
        self
    }
    const fn delete(mut self, f: Fault) -> Case {
        self.delete = Some(f);
        self
    }
}

use Fault::*;
use Op::*;
use Slot::*;

const CASES: &[Case] = &[
    // add: payload first, then the handle.
    case(Add, "StorageUnavailable", Absent, &[]).put(Unavailable),
    case(Add, "StorageUnavailable", Absent, &[New]).put(LoseAnswer),
    case(Add, "Crashed", Absent, &[]).put(CrashBefore),
    case(Add, "Crashed", Absent, &[New]).put(CrashAfter),
    case(Add, "Acked", New, &[]).api(&[Drop]),
    case(Add, "Acked", New, &[]).api(&[LoseAnswer]),
    case(Add, "Acked", New, &[]).api(&[Drop, Drop]),
    case(Add, "Crashed", Absent, &[New]).api(&[CrashBefore]),
    case(Add, "Crashed", New, &[]).api(&[CrashAfter]),
    case(Add, "OutcomeUnknown", Absent, &[New]).down(),
    // replace: new payload, swap the handle, delete the old payload.
    case(Replace, "StorageUnavailable", Old, &[]).put(Unavailable),
    case(Replace, "Crashed", Old, &[New]).put(CrashAfter),
    case(Replace, "Acked", New, &[]).api(&[Drop]),
    case(Replace, "Acked", New, &[]).api(&[LoseAnswer]),
    case(Replace, "Crashed", Old, &[New]).api(&[CrashBefore]),
    case(Replace, "Crashed", New, &[Old]).api(&[CrashAfter]),
    case(Replace, "Acked", New, &[Old]).delete(Unavailable),
    case(Replace, "Crashed", New, &[Old]).delete(CrashBefore),
    case(Replace, "Crashed", New, &[]).delete(CrashAfter),
    case(Replace, "OutcomeUnknown", Old, &[New]).down(),
    // remove: the handle first, then the payload.
    case(Remove, "Acked", Absent, &[]).api(&[Drop]),
    case(Remove, "Acked", Absent, &[]).api(&[LoseAnswer]),
    case(Remove, "Crashed", Old, &[]).api(&[CrashBefore]),
    case(Remove, "Crashed", Absent, &[Old]).api(&[CrashAfter]),
    case(Remove, "Acked", Absent, &[Old]).delete(Unavailable),
    case(Remove, "Crashed", Absent, &[Old]).delete(CrashBefore),
    case(Remove, "OutcomeUnknown", Old, &[]).down(),
];

async fn run(rig: &Rig, op: Op) -> Result<(), StoreError> {
    let payload = Bytes::from_static(b"the new payload");
    match op {
        Add => rig
            .store
            .add(&rig.fence, Some(rig.session), KEY, payload)
            .await
            .map(|_| ()),
        Replace => rig
            .store
            .replace(&rig.fence, Some(rig.session), KEY, payload)
            .await
            .map(|_| ()),
        Remove => rig
            .store
            .remove(&rig.fence, Some(rig.session), KEY)
            .await
            .map(|_| ()),
    }
}

/// Run one operation with its faults armed; a crash drops the operation's task.
async fn execute(rig: &Arc<Rig>, c: &Case) -> Outcome {
    for f in c.api {
        rig.api_faults.push(*f);
    }
    if let Some(f) = c.put {
        rig.storage.puts.push(f);
    }
    if let Some(f) = c.delete {
        rig.storage.deletes.push(f);
    }
    rig.api_faults.set_down(c.api_down);
    let worker = {
        let rig = rig.clone();
        let op = c.op;
        tokio::spawn(async move { run(&rig, op).await })
    };
    let abort = worker.abort_handle();
    let outcome = tokio::select! {
        joined = worker => match joined.expect("the operation does not panic") {
            Ok(()) => Outcome::Acked,
            Err(e) => Outcome::Failed(e.kind()),
        },
        _ = rig.api_faults.crashed.notified() => Outcome::Crashed,
        _ = rig.storage.puts.crashed.notified() => Outcome::Crashed,
        _ = rig.storage.deletes.crashed.notified() => Outcome::Crashed,
    };
    abort.abort();
    rig.api_faults.set_down(false);
    outcome
}

/// The invariants, from a fresh read of the ConfigMap and a listing of the storage.
async fn check(rig: &Rig, c: &Case, old: &str, outcome: &Outcome) {
    let name = format!(
        "{:?} api={:?} down={} put={:?} delete={:?}",
        c.op, c.api, c.api_down, c.put, c.delete
    );
    let data = rig
        .api
        .get(rig.store.configmap())
        .await
        .unwrap()
        .data
        .unwrap_or_default();
    // No handle points at a missing or truncated payload.
    let mut referenced = HashSet::new();
    for (key, value) in data
        .range(CHECKPOINT_KEY_PREFIX.to_string()..)
        .take_while(|(k, _)| k.starts_with(CHECKPOINT_KEY_PREFIX))
    {
        let h = handle::decode_base64(value).unwrap_or_else(|e| panic!("{name}: {key}: {e}"));
        rig.payloads
            .read(key, &h)
            .await
            .unwrap_or_else(|e| panic!("{name}: dangling handle {key}: {e}"));
        referenced.insert(h.path);
    }
    assert!(
        data.contains_key(BYSTANDER),
        "{name}: the bystander entry survives"
    );
    let after = match data.get(KEY) {
        None => Absent,
        Some(v) if handle::decode_base64(v).unwrap().path == old => Old,
        Some(_) => New,
    };
    let got = match outcome {
        Outcome::Acked => "Acked",
        Outcome::Failed(kind) => kind,
        Outcome::Crashed => "Crashed",
    };
    assert_eq!(got, c.expect, "{name}: outcome");
    assert_eq!(after, c.after, "{name}: where the key ends up");
    // The orphans: what the storage holds that no handle references.
    let orphans = rig.orphans(&referenced).await;
    let found: BTreeSet<Slot> = orphans
        .iter()
        .map(|o| {
            if o.location.to_string() == old {
                Old
            } else {
                New
            }
        })
        .collect();
    assert_eq!(
        orphans.len(),
        found.len(),
        "{name}: at most one orphan of each kind: {orphans:?}"
    );
    let expected: BTreeSet<Slot> = c.orphans.iter().copied().collect();
    assert_eq!(found, expected, "{name}: orphans {orphans:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crash_point_of_add_replace_and_remove_keeps_the_invariants() {
    for c in CASES {
        let Some((rig, elector, cluster)) = rig().await else {
            return;
        };
        let old = if c.op == Add {
            String::new()
        } else {
            rig.store
                .add(
                    &rig.fence,
                    Some(rig.session),
                    KEY,
                    Bytes::from_static(b"the old payload"),
                )
                .await
                .expect("old entry")
                .path
        };
        let rig = Arc::new(rig);
        let outcome = tokio::time::timeout(Duration::from_secs(20), execute(&rig, c))
            .await
            .expect("each case ends within 20 s");
        assert_eq!(
            rig.api_faults.pending() + rig.storage.puts.pending() + rig.storage.deletes.pending(),
            0,
            "every armed fault was reached"
        );
        check(&rig, c, &old, &outcome).await;
        elector.abort();
        cluster.cleanup().await;
    }
}

/// API faults, delete fault, ids retained after, orphans after.
type SubsumeCase = (&'static [Fault], Option<Fault>, &'static [u64], usize);

/// Subsuming happens only after the new checkpoint is committed: a crash anywhere in
/// between leaves every acknowledged, not yet subsumed checkpoint recoverable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_subsuming_keeps_the_acknowledged_checkpoints() {
    let cases: &[SubsumeCase] = &[
        (&[Pass, CrashBefore], None, &[1, 2], 0),
        (&[Pass, CrashAfter], None, &[2], 1),
        (&[], Some(CrashBefore), &[2], 1),
        (&[], Some(Unavailable), &[2], 1),
        (&[], None, &[2], 0),
    ];
    for (api, delete, retained, orphan_count) in cases {
        let Some((rig, elector, cluster)) = rig().await else {
            return;
        };
        let checkpoints = Checkpoints::new(
            ConfigMapReader::new(rig.api.clone(), rig.store.configmap()),
            rig.payloads.clone(),
            1,
        );
        // The bystander is checkpoint 3 in this ConfigMap; remove it to start clean.
        rig.store
            .remove(&rig.fence, Some(rig.session), BYSTANDER)
            .await
            .unwrap();
        checkpoints
            .add(&rig.fence, Some(rig.session), 1, Bytes::from_static(b"one"))
            .await
            .unwrap();
        for f in *api {
            rig.api_faults.push(*f);
        }
        if let Some(f) = delete {
            rig.storage.deletes.push(*f);
        }
        let rig = Arc::new(rig);
        let worker = {
            let rig = rig.clone();
            let checkpoints = checkpoints.clone();
            tokio::spawn(async move {
                checkpoints
                    .add(&rig.fence, Some(rig.session), 2, Bytes::from_static(b"two"))
                    .await
            })
        };
        let abort = worker.abort_handle();
        tokio::select! {
            joined = worker => { joined.unwrap().expect("checkpoint 2 acknowledged"); }
            _ = rig.api_faults.crashed.notified() => {}
            _ = rig.storage.deletes.crashed.notified() => {}
        }
        abort.abort();
        let (metas, skipped) = checkpoints.list().await.unwrap();
        assert!(skipped.is_empty());
        let ids: Vec<u64> = metas.iter().map(|m| m.id).collect();
        assert_eq!(&ids, retained, "api={api:?} delete={delete:?}");
        let recovered = checkpoints.recover(true).await.unwrap();
        let (meta, body) = recovered.checkpoint.expect("a checkpoint to recover");
        assert_eq!((meta.id, &body[..]), (2, &b"two"[..]));
        let referenced: HashSet<String> = metas.into_iter().map(|m| m.path).collect();
        let orphans = rig.orphans(&referenced).await;
        assert_eq!(
            orphans.len(),
            *orphan_count,
            "api={api:?} delete={delete:?}: {orphans:?}"
        );
        elector.abort();
        cluster.cleanup().await;
    }
}

/// A leader whose requests stall (a frozen process) is deposed while its checkpoint add and
/// counter increment are in flight. Both fail, and when its held requests finally reach
/// the API server they change nothing: what is left behind is an orphan payload at most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_leaves_an_orphan_payload_at_most() {
    common::init_logs();
    let cluster = TestCluster::start().await;
    let Some(server) = cluster.embedded("holding a leader's requests") else {
        return;
    };
    let timings = Timings {
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(400),
    };
    let cluster_id: ClusterId = "deposed".parse().unwrap();
    let component = Component::JobManager(job());
    let config = |name: &str| ElectionConfig {
        cluster_id: cluster_id.clone(),
        component: component.clone(),
        identity: name.into(),
        address: format!("{name}:6123"),
        timings,
        owner: None,
    };
    let (gate, closed) = tokio::sync::watch::channel(false);
    let a = Elector::spawn(
        common::gated_client(server, closed).await,
        &cluster.namespace,
        config("jm-a"),
    );
    let a_session = common::wait_leader(&a).await;
    let b = Elector::spawn(
        cluster.fresh_client().await,
        &cluster.namespace,
        config("jm-b"),
    );

    let files = common::file_storage().await;
    let (root, storage) = (files.root.clone(), files.store.clone());
    let payloads = Payloads::new(storage.clone(), &root, &cluster_id);
    let name = component.configmap_name(&cluster_id);
    let checkpoints = Checkpoints::new(
        ConfigMapReader::new(cluster.api::<ConfigMap>(), &name),
        payloads.clone(),
        1,
    );

    // A freezes with an add and an increment in flight.
    gate.send_replace(true);
    let fence_a = a.fence().clone();
    let add = {
        let (store, fence) = (checkpoints.clone(), fence_a.clone());
        tokio::spawn(async move {
            store
                .add(&fence, Some(a_session), 1, Bytes::from_static(b"from a"))
                .await
        })
    };
    let increment = {
        let (store, fence) = (checkpoints.clone(), fence_a.clone());
        tokio::spawn(async move { store.increment(&fence, Some(a_session)).await })
    };
    let b_session = common::wait_leader(&b).await;
    let add = tokio::time::timeout(Duration::from_secs(30), add)
        .await
        .expect("add ends")
        .unwrap();
    let increment = tokio::time::timeout(Duration::from_secs(30), increment)
        .await
        .expect("increment ends")
        .unwrap();
    for (what, kind) in [
        ("add", add.map(|_| ()).map_err(|e| e.kind())),
        ("increment", increment.map(|_| ()).map_err(|e| e.kind())),
    ] {
        assert!(
            matches!(kind, Err("NotLeader" | "OutcomeUnknown")),
            "{what}: {kind:?}"
        );
    }
    // A thaws: its held requests arrive now, after B took over.
    gate.send_replace(false);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let data = cluster
        .api::<ConfigMap>()
        .get(&name)
        .await
        .unwrap()
        .data
        .unwrap_or_default();
    assert!(
        data.keys().all(|k| !k.starts_with(CHECKPOINT_KEY_PREFIX)),
        "no handle from the deposed leader: {data:?}"
    );
    assert!(
        !data.contains_key(plan::COUNTER_KEY),
        "the counter was not moved: {data:?}"
    );
    assert_eq!(
        data.get("sessionId").map(String::as_str),
        Some(b_session.to_string().as_str())
    );
    let listed = storage.list_dir(&payloads.cluster_dir).await.unwrap();
    assert!(listed.len() <= 1, "an orphan payload at most: {listed:?}");
    // The new leader carries on.
    let fence_b = b.fence().clone();
    assert_eq!(
        checkpoints
            .increment(&fence_b, Some(b_session))
            .await
            .unwrap(),
        1
    );
    checkpoints
        .add(&fence_b, Some(b_session), 1, Bytes::from_static(b"from b"))
        .await
        .unwrap();
    let recovered = checkpoints.recover(true).await.unwrap().checkpoint.unwrap();
    assert_eq!(&recovered.1[..], b"from b");
    a.abort();
    b.abort();
    cluster.cleanup().await;
}

/// A write that landed although its answer was lost, while reads fail: the fence's cached
/// ConfigMap does not have it. A removal must not take that stale copy's word that the key
/// is already gone (and then delete the payload of a handle that is still there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cache_never_makes_a_removal_delete_a_referenced_payload() {
    let Some((rig, elector, cluster)) = rig().await else {
        return;
    };
    // Reads fail from now on, and the watch that would bring the landed write is cut.
    rig.api_faults.set_reads_down(true);
    cluster
        .server
        .as_ref()
        .expect("embedded")
        .faults()
        .close_watches();
    tokio::time::sleep(Duration::from_millis(100)).await;
    rig.api_faults.push(Fault::LoseAnswer);
    let added = rig
        .store
        .add(
            &rig.fence,
            Some(rig.session),
            KEY,
            Bytes::from_static(b"landed"),
        )
        .await;
    assert_eq!(
        added.map(|_| ()).map_err(|e| e.kind()),
        Err("OutcomeUnknown")
    );
    // The add did land; the reader (another client) sees it.
    let removed = rig.store.remove(&rig.fence, Some(rig.session), KEY).await;
    rig.api_faults.set_reads_down(false);
    let data = rig
        .api
        .get(rig.store.configmap())
        .await
        .unwrap()
        .data
        .unwrap_or_default();
    match (removed, data.get(KEY)) {
        // Refused for want of a fresh read: the entry and its payload are both still there.
        (Err(_), Some(value)) => {
            let h = handle::decode_base64(value).unwrap();
            rig.payloads
                .read(KEY, &h)
                .await
                .expect("the payload of a present handle exists");
        }
        (Ok(_), None) => {}
        (result, value) => panic!("remove gave {result:?} and left {value:?}"),
    }
    elector.abort();
    cluster.cleanup().await;
}

/// Recovery skips a checkpoint only for what is wrong with it (missing, truncated); a storage
/// that refuses or cannot be reached says nothing about the checkpoint, so recovery fails
/// instead of silently going back to an older one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_does_not_fall_back_when_the_storage_refuses() {
    let Some((rig, elector, cluster)) = rig().await else {
        return;
    };
    let checkpoints = Checkpoints::new(
        ConfigMapReader::new(rig.api.clone(), rig.store.configmap()),
        rig.payloads.clone(),
        3,
    );
    rig.store
        .remove(&rig.fence, Some(rig.session), BYSTANDER)
        .await
        .unwrap();
    for id in [1, 2] {
        checkpoints
            .add(
                &rig.fence,
                Some(rig.session),
                id,
                Bytes::from(format!("cp {id}")),
            )
            .await
            .unwrap();
    }
    for (fault, kind) in [
        (Fault::Refuse, "StorageError"),
        (Fault::Unavailable, "StorageUnavailable"),
    ] {
        rig.storage.gets.push(fault);
        let err = checkpoints
            .recover(false)
            .await
            .expect_err("no fallback past a storage failure");
        assert_eq!(err.kind(), kind, "{err}");
    }
    let (meta, _) = checkpoints
        .recover(false)
        .await
        .unwrap()
        .checkpoint
        .unwrap();
    assert_eq!(meta.id, 2);
    elector.abort();
    cluster.cleanup().await;
}

/// A handle (which anyone allowed to write the ConfigMap can forge) never makes the store
/// read or delete anything outside the cluster's storage directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_pointing_outside_the_cluster_directory_are_neither_read_nor_deleted() {
    let Some((rig, elector, cluster)) = rig().await else {
        return;
    };
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), b"not yours").unwrap();
    let forged = handle::encode_base64(&handle::StateHandle::new(
        format!("file:{}", outside.path().display()),
        9,
    ));
    rig.fence
        .update(Some(rig.session), |data| {
            data.insert(KEY.to_string(), forged.clone());
            Ok(())
        })
        .await
        .unwrap();
    let err = rig.store.get(KEY).await.unwrap_err();
    assert_eq!(err.kind(), "BadPayload", "{err}");
    assert!(err.to_string().contains("is outside"), "{err}");
    let removed = rig
        .store
        .remove(&rig.fence, Some(rig.session), KEY)
        .await
        .unwrap();
    assert!(removed.existed);
    assert_eq!(
        removed.orphaned,
        Some(format!("file:{}", outside.path().display()))
    );
    assert_eq!(
        std::fs::read(outside.path()).unwrap(),
        b"not yours",
        "left alone"
    );
    elector.abort();
    cluster.cleanup().await;
}
