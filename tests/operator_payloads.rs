//! The payload side of the operator end to end: HA state written through the library stores
//! (electors and `JobGraphs`/`Checkpoints` over a `file://` directory or the in-process S3
//! server) into the API server, then `hakeeper operator` (dangling handles, orphans),
//! `hakeeper gc` and `hakeeper cleanup` as child processes, and the library's
//! `collect_garbage` with a client whose requests the test interleaves with.

mod common;

use std::collections::BTreeSet;
use std::fmt::Display;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::TestCluster;
use common::ha::{STEADY, lead};
use common::operator::{self, OperatorProcess, Receiver};
use common::process::{eventually, exit_within, hakeeper, http_client, signal};
use common::s3::S3Server;
use futures::future::BoxFuture;
use hakeeper::election::{Elector, ReleaseReason};
use hakeeper::handle::{self, StateHandle};
use hakeeper::inspect;
use hakeeper::layout::{ClusterId, Component, JobId};
use hakeeper::lease::Timings;
use hakeeper::operator::payloads::{self, Stores};
use hakeeper::storage::{Location, ObjectMeta, ObjectStore, S3Options};
use hakeeper::stores::Payloads;
use hakeeper::stores::plan::{self, CHECKPOINT_PAYLOAD_PREFIX, JOB_GRAPH_PAYLOAD_PREFIX};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

const CLUSTER: &str = "flink-payloads";
/// The job the HA state holds.
const JOB: &str = "5c1a9f0e2b7d4c3a8e6f1d0b9a8c7e6f";
/// A job no ConfigMap mentions (its blobs are orphans).
const GONE_JOB: &str = "0123456789abcdef0123456789abcdef";
/// How long the operator may take to notice something: a few of its 2 s verify intervals.
const NOTICE: Duration = Duration::from_secs(10);
const HOUR: Duration = Duration::from_secs(3600);
/// How old leftovers and referenced payloads are made: past any grace period of the tests.
const OLD: Duration = Duration::from_secs(2 * 3600);

fn cluster() -> ClusterId {
    CLUSTER.parse().unwrap()
}

fn dispatcher_configmap() -> String {
    Component::Dispatcher.configmap_name(&cluster())
}

fn jobmanager_configmap() -> String {
    Component::JobManager(JOB.parse().unwrap()).configmap_name(&cluster())
}

// ---------------------------------------------------------------------------------------------
// Storage: file:// or S3, and what a test does behind the stores' back
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    S3,
}

/// Flink's `high-availability.storageDir` on one backend.
struct Storage {
    /// The storage dir; the cluster's HA directory is `dir/<cluster-id>`.
    dir: Location,
    store: Arc<dyn ObjectStore>,
    /// The S3 server (S3 only).
    s3: Option<S3Server>,
    /// The directory of a `file://` storage (file only).
    _files: Option<common::FileStorage>,
}

impl Storage {
    async fn new(kind: Kind) -> Storage {
        match kind {
            Kind::File => {
                let files = common::file_storage().await;
                Storage {
                    dir: files.root.clone(),
                    store: files.store.clone(),
                    s3: None,
                    _files: Some(files),
                }
            }
            Kind::S3 => {
                let server = S3Server::start().await;
                let dir = server.storage_dir("flink/ha");
                let store = hakeeper::storage::open(&dir, &server.options())
                    .await
                    .unwrap();
                Storage {
                    dir,
                    store,
                    s3: Some(server),
                    _files: None,
                }
            }
        }
    }

    /// The server of an S3 storage.
    fn server(&self) -> &S3Server {
        self.s3.as_ref().expect("an S3 storage")
    }

    /// The flags that reach this storage, for the binary (none for `file://`).
    fn flags(&self) -> Vec<String> {
        let Some(o) = self.s3.as_ref().map(S3Server::options) else {
            return Vec::new();
        };
        vec![
            "--s3-endpoint".into(),
            o.endpoint.unwrap(),
            "--s3-path-style".into(),
            "--s3-region".into(),
            o.region.unwrap(),
            "--s3-access-key".into(),
            o.access_key.unwrap(),
            "--s3-secret-key".into(),
            o.secret_key.unwrap(),
        ]
    }

    fn ha_dir(&self) -> Location {
        self.dir.join(CLUSTER)
    }

    /// The local file behind a location (the S3 server keeps `root/bucket/key`).
    fn local(&self, location: &Location) -> PathBuf {
        match (location, &self.s3) {
            (Location::File { path }, _) => PathBuf::from(path),
            (Location::S3 { bucket, key, .. }, Some(server)) => {
                server.root().join(bucket).join(key)
            }
            (l, None) => panic!("{l} is not on this storage"),
        }
    }

    /// Make the object look `age` old (its last-modified time).
    fn backdate(&self, location: &Location, age: Duration) {
        let path = self.local(location);
        let file = std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    /// Write `size` bytes at `location` behind the stores' back.
    async fn put(&self, location: &Location, size: usize) {
        self.store
            .put_new(location, Bytes::from(vec![0x5a; size]))
            .await
            .unwrap_or_else(|e| panic!("writing {location}: {e}"));
    }

    /// [`Storage::put`], [`OLD`].
    async fn put_old(&self, location: &Location, size: usize) {
        self.put(location, size).await;
        self.backdate(location, OLD);
    }

    /// Put `size` bytes at `location` in place of what is there, at once (a rename, as a
    /// file system or S3 replaces an object): never missing in between.
    fn replace(&self, location: &Location, size: usize) {
        let scratch = match (&self.dir, &self.s3) {
            (Location::File { path }, _) => PathBuf::from(path),
            (_, Some(server)) => server.root().to_path_buf(),
            (l, None) => panic!("{l} has no local directory"),
        }
        .join(format!(".replacement-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&scratch, vec![0xa5; size]).unwrap();
        std::fs::rename(&scratch, self.local(location)).unwrap();
    }

    /// A directory outside the cluster's HA directory: another directory of the file
    /// system, or another bucket of the S3 server. `keep` holds it while it is used.
    fn elsewhere(&self) -> (Location, Box<dyn std::any::Any>) {
        match &self.s3 {
            None => {
                let dir = tempfile::tempdir().unwrap();
                (Location::file(dir.path()).unwrap(), Box::new(dir))
            }
            Some(server) => {
                std::fs::create_dir(server.root().join("hakeeper-other")).unwrap();
                (
                    Location::parse("s3://hakeeper-other/flink/ha").unwrap(),
                    Box::new(()),
                )
            }
        }
    }

    async fn exists(&self, location: &Location) -> bool {
        self.store.size(location).await.unwrap().is_some()
    }

    async fn list(&self, dir: &Location) -> Vec<ObjectMeta> {
        self.store.list_dir(dir).await.unwrap()
    }

    /// Every object under the HA directory.
    async fn names(&self) -> BTreeSet<String> {
        self.store
            .list_dir(&self.ha_dir())
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.location.to_string())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// HA state through the library stores
// ---------------------------------------------------------------------------------------------

/// One handle as the ConfigMaps hold it.
#[derive(Debug, Clone)]
struct Handle {
    configmap: String,
    key: String,
    path: String,
    size: i64,
}

impl Handle {
    fn location(&self) -> Location {
        Location::parse(&self.path).unwrap()
    }
}

/// A running job's HA state: the dispatcher and the job's JobManager lead (held leases),
/// the job graph (4096 bytes) and two retained checkpoints (200 and 300 bytes; the first
/// checkpoint, 100 bytes, was subsumed and its payload deleted).
struct Ha {
    dispatcher: Elector,
    jobmanager: Elector,
    graph: Handle,
    checkpoints: Vec<Handle>,
}

impl Ha {
    fn handles(&self) -> Vec<Handle> {
        let mut all = vec![self.graph.clone()];
        all.extend(self.checkpoints.iter().cloned());
        all
    }

    /// Make the payloads of the handles [`OLD`].
    fn backdate(&self, storage: &Storage) {
        for h in self.handles() {
            storage.backdate(&h.location(), OLD);
        }
    }

    /// The JobManagers stop: both leases released.
    async fn release(self) {
        self.dispatcher.release(ReleaseReason::Shutdown).await;
        self.jobmanager.release(ReleaseReason::Shutdown).await;
    }
}

/// A test cluster and `kind` storage that hold a running job's HA state.
async fn running_job(kind: Kind) -> (TestCluster, Storage, Ha) {
    running_job_with(kind, STEADY).await
}

/// [`running_job`], its leases taken with `timings`.
async fn running_job_with(kind: Kind, timings: Timings) -> (TestCluster, Storage, Ha) {
    common::init_logs();
    let c = TestCluster::start().await;
    let storage = Storage::new(kind).await;
    let ha = write_ha(&c, &storage, timings).await;
    (c, storage, ha)
}

async fn write_ha(c: &TestCluster, storage: &Storage, timings: Timings) -> Ha {
    let job: JobId = JOB.parse().unwrap();
    let payloads = Payloads::new(storage.store.clone(), &storage.dir, &cluster());
    let (dispatcher, dispatcher_session) =
        lead(c, &cluster(), Component::Dispatcher, "jm-0", timings).await;
    let (jobmanager, jobmanager_session) = lead(
        c,
        &cluster(),
        Component::JobManager(job.clone()),
        "jm-0",
        timings,
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
    let (graph, checkpoints) = read_handles(c).await;
    let graph = graph.expect("the job graph's handle");
    assert_eq!(graph.size, 4096);
    assert_eq!(
        checkpoints.iter().map(|h| h.size).collect::<Vec<_>>(),
        [200, 300]
    );
    for h in checkpoints.iter().chain([&graph]) {
        assert!(
            h.location().is_under(&storage.ha_dir()),
            "{} under {}",
            h.path,
            storage.ha_dir()
        );
        assert!(storage.exists(&h.location()).await, "{}", h.path);
    }
    Ha {
        dispatcher,
        jobmanager,
        graph,
        checkpoints,
    }
}

/// The cluster as `hakeeper inspect` sees it now.
async fn inspect_report(c: &TestCluster) -> inspect::Report {
    let configmaps = inspect::collect(c.client.clone(), &c.namespace, &cluster())
        .await
        .unwrap();
    inspect::build(&cluster(), &configmaps, jiff::Timestamp::now())
}

/// The decoded handles of the job, as `hakeeper inspect` reads them.
async fn read_handles(c: &TestCluster) -> (Option<Handle>, Vec<Handle>) {
    let report = inspect_report(c).await;
    let job = report
        .jobs
        .iter()
        .find(|j| j.job_id == JOB)
        .expect("the job");
    let handle = |h: &inspect::HandleReport| {
        h.handle.as_ref().map(|d| Handle {
            configmap: h.configmap.clone(),
            key: h.key.clone(),
            path: d.path.clone(),
            size: d.state_size,
        })
    };
    let graph = job.graph.as_ref().and_then(handle);
    let checkpoints = job
        .checkpoints
        .iter()
        .filter_map(|c| handle(&c.entry))
        .collect();
    (graph, checkpoints)
}

/// Add `data` entries to a ConfigMap, as any writer of it could.
async fn add_entries(c: &TestCluster, configmap: &str, data: Value) {
    c.api::<ConfigMap>()
        .patch(
            configmap,
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": data })),
        )
        .await
        .unwrap();
}

/// The payloads a crash or a lost write leaves behind, and what must stay, in the HA
/// directory; all but `young` are two hours old (as are the referenced payloads).
struct Leftovers {
    /// Unreferenced, payload-named, old: 111 + 222 + 33 bytes.
    orphans: Vec<(Location, u64)>,
    /// A blob of the job the ConfigMaps hold.
    job_blob: Location,
    /// An unreferenced checkpoint payload younger than the grace period.
    young: Location,
    /// Not named like a payload: never touched.
    unknown: Vec<Location>,
}

const ORPHAN_BYTES: u64 = 111 + 222 + 33;

impl Leftovers {
    async fn write(storage: &Storage, ha: &Ha) -> Leftovers {
        let dir = storage.ha_dir();
        let orphans = vec![
            (
                dir.join(&plan::payload_name(CHECKPOINT_PAYLOAD_PREFIX)),
                111,
            ),
            (dir.join(&plan::payload_name(JOB_GRAPH_PAYLOAD_PREFIX)), 222),
            (
                dir.join(&format!("blob/job_{GONE_JOB}/blob_p-0a1b2c3d-1")),
                33,
            ),
        ];
        let job_blob = dir.join(&format!("blob/job_{JOB}/blob_p-4e5f6a7b-2"));
        let young = dir.join(&plan::payload_name(CHECKPOINT_PAYLOAD_PREFIX));
        let unknown = vec![
            dir.join("notes.txt"),
            dir.join(&format!(
                "archive/{}",
                plan::payload_name(CHECKPOINT_PAYLOAD_PREFIX)
            )),
            dir.join("blob/incoming/blob_p-0000"),
        ];
        for (l, size) in &orphans {
            storage.put_old(l, *size as usize).await;
        }
        storage.put_old(&job_blob, 44).await;
        storage.put(&young, 55).await;
        for l in &unknown {
            storage.put_old(l, 66).await;
        }
        ha.backdate(storage);
        Leftovers {
            orphans,
            job_blob,
            young,
            unknown,
        }
    }

    fn orphan_names(&self) -> BTreeSet<String> {
        self.orphans.iter().map(|(l, _)| l.to_string()).collect()
    }

    /// Of what there was `before`, the orphans are gone and all else (referenced payloads,
    /// the job's blob, the young payload among it) is left; what is left.
    async fn assert_only_orphans_gone(
        &self,
        storage: &Storage,
        ha: &Ha,
        before: &BTreeSet<String>,
    ) -> BTreeSet<String> {
        let after = storage.names().await;
        let expected: BTreeSet<String> = before.difference(&self.orphan_names()).cloned().collect();
        assert_eq!(after, expected);
        for h in ha.handles() {
            assert!(after.contains(&h.path), "referenced {} deleted", h.path);
        }
        assert!(after.contains(&self.job_blob.to_string()));
        assert!(after.contains(&self.young.to_string()));
        after
    }
}

// ---------------------------------------------------------------------------------------------
// Running things
// ---------------------------------------------------------------------------------------------

/// `hakeeper <command> --cluster-id … -n … --kubeconfig … <storage flags> <args>`.
async fn run(
    c: &TestCluster,
    storage: &Storage,
    command: &str,
    args: &[&str],
) -> (bool, String, String) {
    let out = hakeeper()
        .arg(command)
        .args(["--cluster-id", CLUSTER, "-n", &c.namespace])
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args(storage.flags())
        .args(args)
        .output()
        .await
        .expect("running hakeeper");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`run`], which must succeed; its stdout.
async fn run_ok(c: &TestCluster, storage: &Storage, command: &str, args: &[&str]) -> String {
    let (ok, out, err) = run(c, storage, command, args).await;
    assert!(ok, "{out}{err}");
    out
}

/// `hakeeper gc --json <args>`, which must succeed; its report.
async fn gc_json(c: &TestCluster, storage: &Storage, args: &[&str]) -> Value {
    let args: Vec<&str> = ["--json"].iter().chain(args).copied().collect();
    let out = run_ok(c, storage, "gc", &args).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `hakeeper cleanup <args>`, which must succeed and remove nothing; its stdout.
async fn cleanup_removes_nothing(c: &TestCluster, storage: &Storage, args: &[&str]) -> String {
    let out = run_ok(c, storage, "cleanup", args).await;
    assert!(
        out.contains("removed 0 payload(s) (0 bytes) and 0 ConfigMap(s)"),
        "{out}"
    );
    out
}

/// `out` says `deleted <p>` of each of `paths`.
fn assert_says_deleted<P: Display>(out: &str, paths: impl IntoIterator<Item = P>) {
    for p in paths {
        assert!(out.contains(&format!("deleted {p}\n")), "{p} in\n{out}");
    }
}

/// The strings of a JSON array.
fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("an array: {v}"))
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

/// The flags of an operator that collects orphans an hour old and records no Events.
const COLLECTING: [&str; 4] = ["--gc", "--orphan-grace", "1h", "--no-events"];

async fn start_operator(
    c: &TestCluster,
    storage: &Storage,
    name: &str,
    receiver: &Receiver,
    extra: &[&str],
) -> OperatorProcess {
    let mut args: Vec<String> = [
        "--verify-interval",
        "2s",
        "--max-storage-ops-per-second",
        "1000",
        "--alert-webhook",
        &receiver.url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(storage.flags());
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    OperatorProcess::start(c, name, &args).await
}

/// `<name>{namespace="…",cluster="…"}`.
fn series(c: &TestCluster, name: &str) -> String {
    operator::series(name, &[("namespace", &c.namespace), ("cluster", CLUSTER)])
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// The alerts of `kind` the receiver got.
fn alerts(receiver: &Receiver, kind: &str) -> Vec<Value> {
    receiver
        .delivered()
        .into_iter()
        .filter(|a| a["kind"] == kind)
        .collect()
}

/// Wait for the `n`-th alert of `kind` that satisfies `pick`.
async fn nth_alert(
    receiver: &Receiver,
    op: &OperatorProcess,
    kind: &str,
    n: usize,
    pick: impl Fn(&Value) -> bool,
) -> Value {
    eventually(&format!("alert #{n} {kind}"), NOTICE, || async {
        let found: Vec<Value> = alerts(receiver, kind).into_iter().filter(&pick).collect();
        found
            .get(n - 1)
            .cloned()
            .ok_or_else(|| format!("{:?}\n{}", receiver.delivered(), tail(&op.stderr_log())))
    })
    .await
}

/// Each scenario (an `async fn(Kind)`) as two tests: on `file://` storage and on S3.
macro_rules! on_file_and_s3 {
    ($scenario:ident: $on_file:ident, $on_s3:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $on_file() {
            $scenario(Kind::File).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $on_s3() {
            $scenario(Kind::S3).await;
        }
    };
}

// ---------------------------------------------------------------------------------------------
// 1. Dangling handles
// ---------------------------------------------------------------------------------------------

async fn dangling_handles_are_alerted_and_resolved(kind: Kind) {
    let (c, storage, ha) = running_job(kind).await;
    let receiver = Receiver::start().await;
    let op = start_operator(&c, &storage, "dangling", &receiver, &[]).await;
    let http = http_client();
    let dangling = series(&c, "dangling_handles");

    // Every payload whole: checked (the series exists), none dangling, no alert.
    op.metric_becomes(&http, &dangling, 0.0).await;
    op.metric_becomes(&http, &series(&c, "handles_outside_ha_dir"), 0.0)
        .await;
    assert!(alerts(&receiver, "DanglingHandle").is_empty());

    // The newest checkpoint's payload goes missing behind the stores' back.
    let lost = ha.checkpoints[1].clone();
    storage.store.delete(&lost.location()).await.unwrap();
    let alert = nth_alert(&receiver, &op, "DanglingHandle", 1, |_| true).await;
    assert_eq!(alert["resolved"], false, "{alert}");
    assert_eq!(alert["severity"], "warning", "{alert}");
    assert_eq!(alert["namespace"], c.namespace.as_str(), "{alert}");
    assert_eq!(alert["cluster"], CLUSTER, "{alert}");
    assert_eq!(alert["configmap"], lost.configmap.as_str(), "{alert}");
    assert_eq!(
        alert["details"],
        json!({"key": lost.key, "path": lost.path, "problem": "is missing"}),
        "{alert}"
    );
    let message = alert["message"].as_str().unwrap();
    assert!(
        message.contains(&lost.key) && message.contains(&lost.path),
        "{message}"
    );
    op.metric_becomes(&http, &dangling, 1.0).await;
    // A Warning Event on the ConfigMap that holds the handle.
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = c.api();
    eventually("a DanglingHandle Warning Event", NOTICE, || async {
        let list = events
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        list.items
            .iter()
            .find(|e| {
                e.reason.as_deref() == Some("DanglingHandle")
                    && e.type_.as_deref() == Some("Warning")
                    && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("ConfigMap")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                        == Some(lost.configmap.as_str())
                    && e.note.as_deref().is_some_and(|n| n.contains(&lost.path))
            })
            .map(|_| ())
            .ok_or_else(|| {
                let seen: Vec<_> = list
                    .items
                    .iter()
                    .map(|e| (e.reason.clone(), e.type_.clone(), e.note.clone()))
                    .collect();
                format!("{seen:?}")
            })
    })
    .await;

    // The payload comes back with the recorded size: resolved.
    storage.put(&lost.location(), lost.size as usize).await;
    let resolved = nth_alert(&receiver, &op, "DanglingHandle", 1, |a| {
        a["resolved"] == true
    })
    .await;
    assert_eq!(resolved["details"]["key"], lost.key.as_str(), "{resolved}");
    assert_eq!(
        resolved["details"]["path"],
        lost.path.as_str(),
        "{resolved}"
    );
    assert_eq!(resolved["severity"], "warning", "{resolved}");
    op.metric_becomes(&http, &dangling, 0.0).await;

    // A payload of another size than recorded is dangling too.
    storage.replace(&lost.location(), lost.size as usize + 7);
    let wrong = nth_alert(&receiver, &op, "DanglingHandle", 2, |a| {
        a["resolved"] == false
    })
    .await;
    assert_eq!(
        wrong["details"],
        json!({
            "key": lost.key,
            "path": lost.path,
            "problem": format!("has {} bytes where the handle records {}", lost.size + 7, lost.size),
        }),
        "{wrong}"
    );
    op.metric_becomes(&http, &dangling, 1.0).await;
    // Only the handle whose payload is broken was ever reported.
    for a in alerts(&receiver, "DanglingHandle") {
        assert_eq!(a["details"]["key"], lost.key.as_str(), "{a}");
    }
    assert!(
        !op.stderr_log().contains("checking payloads failed"),
        "{}",
        op.stderr_log()
    );

    drop(op);
    ha.release().await;
    c.cleanup().await;
}

on_file_and_s3!(dangling_handles_are_alerted_and_resolved:
    dangling_handles_are_alerted_and_resolved_on_file_storage,
    dangling_handles_are_alerted_and_resolved_on_s3);

// ---------------------------------------------------------------------------------------------
// 2. Orphans: `hakeeper gc` and the operator
// ---------------------------------------------------------------------------------------------

async fn gc_lists_then_deletes_only_old_unreferenced_payloads(kind: Kind) {
    let (c, storage, ha) = running_job(kind).await;
    let left = Leftovers::write(&storage, &ha).await;
    let before = storage.names().await;
    assert_eq!(before.len(), 3 + 3 + 1 + 1 + 3, "{before:#?}");
    let dir = storage.ha_dir().to_string();

    // A dry run says what it would delete, and deletes nothing.
    let out = run_ok(&c, &storage, "gc", &[]).await;
    assert!(
        out.contains(&format!(
            "HA directory {dir}: 11 objects, 4 referenced, 1 younger than the grace period, 3 not payloads (left alone)\n"
        )),
        "{out}"
    );
    for (l, size) in &left.orphans {
        assert!(
            out.contains(&format!("would delete {l} ({size} bytes)\n")),
            "{l} in\n{out}"
        );
    }
    assert_eq!(out.matches("would delete").count(), 3, "{out}");
    assert!(
        out.contains(&format!(
            "3 orphan(s), {ORPHAN_BYTES} bytes; run again with --delete to delete them\n"
        )),
        "{out}"
    );
    assert_eq!(storage.names().await, before);

    // The same as JSON, with the storage dir given rather than told from the handles.
    let storage_dir = storage.dir.to_string();
    let report = gc_json(&c, &storage, &["--storage-dir", &storage_dir]).await;
    assert_eq!(report["dir"], dir.as_str(), "{report}");
    assert_eq!(
        (
            &report["objects"],
            &report["referenced"],
            &report["tooYoung"],
            &report["unknown"],
            &report["orphanBytes"]
        ),
        (
            &json!(11),
            &json!(4),
            &json!(1),
            &json!(3),
            &json!(ORPHAN_BYTES)
        ),
        "{report}"
    );
    let listed: BTreeSet<String> = report["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, left.orphan_names());
    assert_eq!(report["deleted"], json!([]), "{report}");
    assert_eq!(storage.names().await, before);

    // Told another storage dir than the handles name, it collects there, and says that
    // every handle is outside the directory it collects.
    let (elsewhere, _keep) = storage.elsewhere();
    let stray = elsewhere.join(&format!(
        "{CLUSTER}/{}",
        plan::payload_name(CHECKPOINT_PAYLOAD_PREFIX)
    ));
    storage.put_old(&stray, 12).await;
    let other = elsewhere.to_string();
    let report = gc_json(&c, &storage, &["--storage-dir", &other]).await;
    assert_eq!(
        report["dir"],
        elsewhere.join(CLUSTER).to_string(),
        "{report}"
    );
    let handle_paths: BTreeSet<String> = ha.handles().into_iter().map(|h| h.path).collect();
    assert_eq!(strings(&report["outside"]), handle_paths, "{report}");
    assert_eq!(report["orphans"][0]["path"], stray.to_string(), "{report}");
    assert_eq!(storage.names().await, before);

    // --delete: the three orphans go, nothing else.
    let out = run_ok(&c, &storage, "gc", &["--delete"]).await;
    assert_says_deleted(&out, left.orphans.iter().map(|(l, _)| l));
    assert!(
        out.contains(&format!("deleted 3 orphan(s), {ORPHAN_BYTES} bytes\n")),
        "{out}"
    );
    let mut after = left.assert_only_orphans_gone(&storage, &ha, &before).await;
    for u in &left.unknown {
        assert!(after.contains(&u.to_string()), "{u}");
    }

    // Again: nothing left to collect.
    let out = run_ok(&c, &storage, "gc", &["--delete"]).await;
    assert!(out.contains("no orphans\n"), "{out}");

    // With a grace period shorter than its age, the young payload is an orphan too.
    storage.backdate(&left.young, Duration::from_secs(5));
    let out = run_ok(&c, &storage, "gc", &["--delete", "--orphan-grace", "1s"]).await;
    assert!(out.contains(&format!("deleted {}\n", left.young)), "{out}");
    assert!(out.contains("deleted 1 orphan(s), 55 bytes\n"), "{out}");
    after.remove(&left.young.to_string());
    assert_eq!(storage.names().await, after);

    ha.release().await;
    c.cleanup().await;
}

on_file_and_s3!(gc_lists_then_deletes_only_old_unreferenced_payloads:
    gc_lists_then_deletes_only_old_unreferenced_payloads_on_file_storage,
    gc_lists_then_deletes_only_old_unreferenced_payloads_on_s3);

async fn the_operator_reports_orphans_and_collects_them_with_gc(kind: Kind) {
    let (c, storage, ha) = running_job(kind).await;
    let left = Leftovers::write(&storage, &ha).await;
    let before = storage.names().await;
    let receiver = Receiver::start().await;
    let http = http_client();

    // Without --gc: reported (alert, metrics), not deleted.
    let mut op = start_operator(
        &c,
        &storage,
        "report",
        &receiver,
        &["--orphan-grace", "1h", "--no-events"],
    )
    .await;
    let found = nth_alert(&receiver, &op, "OrphansCollected", 1, |_| true).await;
    assert_eq!(
        found["details"],
        json!({"found": 3, "deleted": 0, "bytes": ORPHAN_BYTES}),
        "{found}"
    );
    assert_eq!(found["severity"], "info", "{found}");
    assert_eq!(found["cluster"], CLUSTER, "{found}");
    assert!(
        found["message"].as_str().unwrap().contains("not deleted"),
        "{found}"
    );
    op.metric_becomes(&http, &series(&c, "orphan_payloads"), 3.0)
        .await;
    op.metric_becomes(&http, &series(&c, "orphan_bytes"), ORPHAN_BYTES as f64)
        .await;
    // Another collection (every 2 s, due on a 1 s sweep) finds the same orphans: no new
    // alert, nothing deleted.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(alerts(&receiver, "OrphansCollected").len(), 1);
    assert_eq!(storage.names().await, before);
    signal(&op.child, "-TERM");
    let status = exit_within(&mut op.child, Duration::from_secs(10), "the operator").await;
    assert!(status.success(), "{status}\n{}", op.stderr_log());
    drop(op);

    // With --gc: deleted, and said so.
    let op = start_operator(&c, &storage, "collect", &receiver, &COLLECTING).await;
    let deleted = nth_alert(&receiver, &op, "OrphansCollected", 1, |a| {
        a["details"]["deleted"] != 0
    })
    .await;
    assert_eq!(
        deleted["details"],
        json!({"found": 3, "deleted": 3, "bytes": ORPHAN_BYTES}),
        "{deleted}"
    );
    assert_eq!(
        deleted["message"],
        format!("deleted 3 orphaned payload(s), {ORPHAN_BYTES} bytes"),
        "{deleted}"
    );
    op.metric_becomes(&http, &series(&c, "orphan_payloads"), 0.0)
        .await;
    left.assert_only_orphans_gone(&storage, &ha, &before).await;
    assert_eq!(alerts(&receiver, "DanglingHandle"), Vec::<Value>::new());

    drop(op);
    ha.release().await;
    c.cleanup().await;
}

on_file_and_s3!(the_operator_reports_orphans_and_collects_them_with_gc:
    the_operator_reports_orphans_and_collects_them_with_gc_on_file_storage,
    the_operator_reports_orphans_and_collects_them_with_gc_on_s3);

// ---------------------------------------------------------------------------------------------
// 3. A handle that appears while a collection runs
// ---------------------------------------------------------------------------------------------

/// Holds the `n`-th labelled list of ConfigMaps (the first request of an
/// `inspect::collect`) until `release` turns true; says so on `held`.
struct HoldNthList {
    lists: Arc<AtomicUsize>,
    n: usize,
    held: Arc<tokio::sync::Notify>,
    release: tokio::sync::watch::Receiver<bool>,
}

impl common::Hold for HoldNthList {
    fn before(
        &self,
        req: &http::Request<kube::client::Body>,
    ) -> BoxFuture<'static, Result<(), tower::BoxError>> {
        let labelled_list = req.method() == http::Method::GET
            && req.uri().path().ends_with("/configmaps")
            && req
                .uri()
                .query()
                .is_some_and(|q| q.contains("labelSelector"));
        let hold = labelled_list && self.lists.fetch_add(1, Ordering::SeqCst) + 1 == self.n;
        let held = self.held.clone();
        let mut release = self.release.clone();
        Box::pin(async move {
            if hold {
                held.notify_one();
                release
                    .wait_for(|r| *r)
                    .await
                    .map_err(|_| tower::BoxError::from("released never"))?;
            }
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_added_during_a_collection_keeps_its_payload() {
    let (c, storage, ha) = running_job(Kind::File).await;
    let dir = storage.ha_dir();
    // Two old orphans: one about to be referenced (a checkpoint completing now), one not.
    let adopted = dir.join(&plan::payload_name(CHECKPOINT_PAYLOAD_PREFIX));
    let abandoned = dir.join(&plan::payload_name(CHECKPOINT_PAYLOAD_PREFIX));
    storage.put_old(&adopted, 400).await;
    storage.put_old(&abandoned, 500).await;

    // A client whose second labelled list (the fresh read before deleting) waits for us.
    let config = match &c.server {
        Some(server) => server.kube_config().await.unwrap(),
        None => hakeeper::kubeconn::KubeArgs {
            kubeconfig: Some(c.kubeconfig().to_path_buf()),
            ..Default::default()
        }
        .config()
        .await
        .unwrap(),
    };
    let held = Arc::new(tokio::sync::Notify::new());
    let (release_tx, release) = tokio::sync::watch::channel(false);
    let lists = Arc::new(AtomicUsize::new(0));
    let client = common::held_client(
        config,
        HoldNthList {
            lists: lists.clone(),
            n: 2,
            held: held.clone(),
            release,
        },
    );

    let namespace = c.namespace.clone();
    let collection = tokio::spawn(async move {
        let stores = Stores::new(S3Options::default());
        payloads::collect_garbage(client, &namespace, &cluster(), None, &stores, HOUR, true).await
    });
    tokio::time::timeout(Duration::from_secs(10), held.notified())
        .await
        .expect("the collection reads the ConfigMaps again before deleting");
    assert_eq!(lists.load(Ordering::SeqCst), 2);
    // Between the listing and the fresh read: a JobManager adds a handle to `adopted`.
    let key = plan::checkpoint_key(4);
    add_entries(
        &c,
        &jobmanager_configmap(),
        json!({ key.clone(): handle::encode_base64(&StateHandle::new(adopted.to_string(), 400)) }),
    )
    .await;
    assert!(
        !collection.is_finished(),
        "the collection waits for its fresh read"
    );
    release_tx.send(true).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), collection)
        .await
        .expect("the collection ends")
        .unwrap()
        .unwrap();

    let orphans: BTreeSet<&str> = report.orphans.iter().map(|o| o.path.as_str()).collect();
    assert_eq!(
        orphans,
        BTreeSet::from([adopted.to_string().as_str(), abandoned.to_string().as_str()]),
        "both were orphans at the listing: {report:?}"
    );
    assert_eq!(report.kept, vec![adopted.to_string()], "{report:?}");
    assert_eq!(report.deleted, vec![abandoned.to_string()], "{report:?}");
    assert_eq!(report.deleted_bytes, 500);
    assert!(
        storage.exists(&adopted).await,
        "a referenced payload was deleted"
    );
    assert!(!storage.exists(&abandoned).await);
    for h in ha.handles() {
        assert!(storage.exists(&h.location()).await, "{}", h.path);
    }
    // The new handle is the cluster's now, and whole.
    let (_, checkpoints) = read_handles(&c).await;
    assert!(
        checkpoints
            .iter()
            .any(|h| h.key == key && h.path == adopted.to_string()),
        "{checkpoints:?}"
    );

    ha.release().await;
    c.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// 4. cleanup
// ---------------------------------------------------------------------------------------------

/// Each of `names` exists if `exist`, else none does.
async fn assert_configmaps(c: &TestCluster, names: &[String], exist: bool) {
    for name in names {
        let found = c.api::<ConfigMap>().get_opt(name).await.unwrap().is_some();
        assert_eq!(found, exist, "{name}");
    }
}

async fn cleanup_refuses_a_live_cluster_then_removes_it(kind: Kind) {
    let (c, storage, ha) = running_job(kind).await;
    Leftovers::write(&storage, &ha).await;
    let before = storage.names().await;
    let configmaps = [dispatcher_configmap(), jobmanager_configmap()];

    // Leases held: refused, nothing touched.
    let (ok, out, err) = run(&c, &storage, "cleanup", &[]).await;
    assert!(!ok, "cleanup of a live cluster succeeded:\n{out}{err}");
    for expected in [
        "still has live leaders",
        "dispatcher (jm-0)",
        &format!("jobmanager/{JOB} (jm-0)"),
        "--force",
    ] {
        assert!(err.contains(expected), "{expected:?} in\n{err}");
    }
    assert_eq!(storage.names().await, before);
    assert_configmaps(&c, &configmaps, true).await;

    // The JobManagers stop (leases released): everything goes, payloads first.
    ha.release().await;
    let out = run_ok(&c, &storage, "cleanup", &[]).await;
    assert!(
        out.starts_with(&format!("HA directory {}\n", storage.ha_dir())),
        "{out}"
    );
    assert_says_deleted(&out, &before);
    assert_says_deleted(
        &out,
        configmaps.iter().map(|name| format!("configmap/{name}")),
    );
    let bytes = 4096 + 200 + 300 + ORPHAN_BYTES + 44 + 55 + 3 * 66;
    assert!(
        out.contains(&format!(
            "removed {} payload(s) ({bytes} bytes) and 2 ConfigMap(s) of cluster {CLUSTER} in namespace {}\n",
            before.len(),
            c.namespace
        )),
        "{out}"
    );
    assert_eq!(storage.names().await, BTreeSet::new());
    assert_configmaps(&c, &configmaps, false).await;

    // A second run on a clean cluster succeeds and removes nothing.
    let out = cleanup_removes_nothing(&c, &storage, &[]).await;
    assert!(out.contains("no handle names the HA directory"), "{out}");
    let storage_dir = storage.dir.to_string();
    cleanup_removes_nothing(&c, &storage, &["--storage-dir", &storage_dir]).await;

    c.cleanup().await;
}

on_file_and_s3!(cleanup_refuses_a_live_cluster_then_removes_it:
    cleanup_refuses_a_live_cluster_then_removes_it_on_file_storage,
    cleanup_refuses_a_live_cluster_then_removes_it_on_s3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_interrupted_after_some_payloads_finishes_when_run_again() {
    let (c, storage, ha) = running_job(Kind::S3).await;
    Leftovers::write(&storage, &ha).await;
    let before = storage.names().await;
    ha.release().await;
    let configmaps = [dispatcher_configmap(), jobmanager_configmap()];

    // The storage fails after two deletes: cleanup stops there, the ConfigMaps (and with
    // them the way to the directory) stay.
    storage.server().allow_deletes(2);
    let (ok, out, err) = run(&c, &storage, "cleanup", &[]).await;
    assert!(!ok, "cleanup succeeded on a failing storage:\n{out}{err}");
    let first = before.iter().next().unwrap();
    let refused = before.iter().nth(2).unwrap();
    assert!(
        err.contains(&format!("storage: {refused}: ")) && err.contains("AccessDenied"),
        "the error names the object the storage refused to delete:\n{err}"
    );
    assert!(!err.contains("invalid configuration"), "{err}");
    assert!(!out.contains(&format!("deleted {refused}")), "{out}");
    assert!(!storage.exists(&Location::parse(first).unwrap()).await);
    let remaining = storage.names().await;
    assert_eq!(remaining.len(), before.len() - 2, "{remaining:#?}");
    assert_configmaps(&c, &configmaps, true).await;

    // Run again once the storage works: it finishes.
    storage.server().allow_deletes(i64::MAX);
    let out = run_ok(&c, &storage, "cleanup", &[]).await;
    assert_says_deleted(&out, &remaining);
    assert!(
        out.contains(&format!("removed {} payload(s)", remaining.len())),
        "{out}"
    );
    assert!(out.contains("and 2 ConfigMap(s)"), "{out}");
    assert_eq!(storage.names().await, BTreeSet::new());
    assert_configmaps(&c, &configmaps, false).await;

    // And once more: nothing to do, no error.
    cleanup_removes_nothing(&c, &storage, &[]).await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_of_crashed_jobmanagers_after_a_crash_between_payloads_and_configmaps_finishes() {
    // The JobManagers crash: their leases stay held until they run out (3 s).
    let short = Timings {
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(500),
    };
    let (c, storage, ha) = running_job_with(Kind::File, short).await;
    ha.dispatcher.abort();
    ha.jobmanager.abort();
    let (ok, out, err) = run(&c, &storage, "cleanup", &[]).await;
    assert!(!ok, "cleanup while the leases run:\n{out}{err}");
    assert!(err.contains("still has live leaders"), "{err}");
    let remaining = inspect_report(&c)
        .await
        .components
        .iter()
        .filter_map(|c| c.lock.remaining_seconds)
        .fold(0.0, f64::max);
    tokio::time::sleep(Duration::from_secs_f64(remaining.max(0.0) + 0.3)).await;
    // A cleanup deleted every payload and died before the ConfigMaps.
    for p in storage.names().await {
        storage
            .store
            .delete(&Location::parse(&p).unwrap())
            .await
            .unwrap();
    }
    let out = run_ok(&c, &storage, "cleanup", &[]).await;
    assert!(
        out.contains(&format!("HA directory {}\n", storage.ha_dir())),
        "the handles still lead to the directory: {out}"
    );
    assert!(
        out.contains("removed 0 payload(s) (0 bytes) and 2 ConfigMap(s)"),
        "{out}"
    );
    assert_configmaps(&c, &[dispatcher_configmap(), jobmanager_configmap()], false).await;
    cleanup_removes_nothing(&c, &storage, &[]).await;
    c.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Bad input: handles outside the HA directory, garbage handle values
// ---------------------------------------------------------------------------------------------

async fn handles_outside_the_ha_dir_and_garbage_values_are_never_read_or_deleted(kind: Kind) {
    let (c, storage, ha) = running_job(kind).await;
    // Another directory the cluster's handles must not lead anything into.
    let (elsewhere, _keep) = storage.elsewhere();
    // A handle to an old payload-named object elsewhere, whole; one to another cluster
    // directory of the same id, whose object is missing (dangling, were it read); and an
    // old payload-named object beside it that no handle names.
    let outside_whole = elsewhere.join(&plan::payload_name(CHECKPOINT_PAYLOAD_PREFIX));
    let outside_missing = elsewhere.join(&format!(
        "{CLUSTER}/{}",
        plan::payload_name(CHECKPOINT_PAYLOAD_PREFIX)
    ));
    let outside_orphan = elsewhere.join(&format!(
        "{CLUSTER}/{}",
        plan::payload_name(CHECKPOINT_PAYLOAD_PREFIX)
    ));
    storage.put_old(&outside_whole, 70).await;
    storage.put_old(&outside_orphan, 80).await;
    // An old payload in the HA directory whose handle is corrupt (cut short): nothing tells
    // it from an orphan but the handle it cannot be matched with.
    let corrupt_target = storage
        .ha_dir()
        .join(&plan::payload_name(CHECKPOINT_PAYLOAD_PREFIX));
    storage.put_old(&corrupt_target, 90).await;
    let whole = handle::encode(&StateHandle::new(corrupt_target.to_string(), 90));
    let cut = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&whole[..whole.len() / 2])
    };
    ha.backdate(&storage);
    add_entries(
        &c,
        &jobmanager_configmap(),
        json!({
            plan::checkpoint_key(10): handle::encode_base64(&StateHandle::new(outside_whole.to_string(), 70)),
            plan::checkpoint_key(11): handle::encode_base64(&StateHandle::new(outside_missing.to_string(), 60)),
            plan::checkpoint_key(12): cut,
            plan::checkpoint_key(13): "definitely not a state handle",
            plan::checkpoint_key(14): handle::encode_base64(&StateHandle::new("relative/completedCheckpoint0123456789ab", 5)),
            plan::checkpoint_key(15): handle::encode_base64(&StateHandle::new(storage.ha_dir().to_string(), -1)),
        }),
    )
    .await;
    add_entries(
        &c,
        &dispatcher_configmap(),
        json!({ format!("jobGraph-{GONE_JOB}"): "AAAA////" }),
    )
    .await;
    let outside: BTreeSet<String> = [
        outside_whole.to_string(),
        outside_missing.to_string(),
        "relative/completedCheckpoint0123456789ab".to_string(),
        storage.ha_dir().to_string(),
    ]
    .into();
    let before = storage.names().await;
    let elsewhere_before = storage.list(&elsewhere).await;
    assert_eq!(elsewhere_before.len(), 2);

    // gc: the outside handles are reported, the directory is the cluster's, and nothing the
    // corrupt handle may mean is deleted.
    let report = gc_json(&c, &storage, &[]).await;
    assert_eq!(report["dir"], storage.ha_dir().to_string(), "{report}");
    assert_eq!(strings(&report["outside"]), outside, "{report}");
    let jm = jobmanager_configmap();
    let dispatcher = dispatcher_configmap();
    assert_eq!(
        strings(&report["undecodable"]),
        BTreeSet::from([
            format!("{jm}/{}", plan::checkpoint_key(12)),
            format!("{jm}/{}", plan::checkpoint_key(13)),
            format!("{dispatcher}/jobGraph-{GONE_JOB}"),
        ]),
        "{report}"
    );
    let out = run_ok(&c, &storage, "gc", &["--delete"]).await;
    for p in &outside {
        assert!(
            out.contains(&format!(
                "handle outside the HA directory (left alone): {p}\n"
            )),
            "{p} in\n{out}"
        );
    }
    assert!(
        !out.contains(&format!("deleted {corrupt_target}")),
        "deleted what a corrupt handle may reference:\n{out}"
    );
    assert!(
        out.contains(&format!(
            "kept {corrupt_target} (a handle entry cannot be decoded)\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "handle entry that cannot be decoded: {jm}/{}",
            plan::checkpoint_key(13)
        )),
        "{out}"
    );
    assert_eq!(storage.names().await, before);
    assert_eq!(storage.list(&elsewhere).await, elsewhere_before);

    // The operator, collecting: outside handles counted, never read (the missing one is not
    // reported dangling), nothing deleted, no panic.
    let receiver = Receiver::start().await;
    let mut op = start_operator(&c, &storage, "outside", &receiver, &COLLECTING).await;
    let http = http_client();
    op.metric_becomes(&http, &series(&c, "handles_outside_ha_dir"), 4.0)
        .await;
    op.metric_becomes(&http, &series(&c, "dangling_handles"), 0.0)
        .await;
    // A collection.
    op.metric_present(&http, &series(&c, "orphan_payloads"))
        .await;
    // Two more verify intervals.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    op.assert_running();
    op.assert_no_panic();
    assert_eq!(alerts(&receiver, "DanglingHandle"), Vec::<Value>::new());
    // The payload the corrupt handle may reference is found, and kept although --gc is on.
    let orphan_alerts = alerts(&receiver, "OrphansCollected");
    assert!(!orphan_alerts.is_empty(), "{:?}", receiver.delivered());
    for a in &orphan_alerts {
        assert_eq!(a["details"]["found"], 1, "{a}");
        assert_eq!(a["details"]["deleted"], 0, "{a}");
    }
    assert_eq!(storage.names().await, before);
    assert_eq!(storage.list(&elsewhere).await, elsewhere_before);
    drop(op);

    // cleanup empties a directory only when it is sure which: the outside handles here point
    // into a second `<cluster-id>` directory, so it refuses until --storage-dir says.
    ha.release().await;
    let (ok, out, err) = run(&c, &storage, "cleanup", &[]).await;
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("more than one directory") && err.contains("--storage-dir"),
        "{err}"
    );
    assert_eq!(storage.names().await, before);
    let storage_dir = storage.dir.to_string();
    let out = run_ok(&c, &storage, "cleanup", &["--storage-dir", &storage_dir]).await;
    for p in &outside {
        assert!(
            out.contains(&format!("left alone (outside the HA directory): {p}\n")),
            "{p} in\n{out}"
        );
    }
    assert_eq!(storage.names().await, BTreeSet::new());
    assert_eq!(storage.list(&elsewhere).await, elsewhere_before);
    c.cleanup().await;
}

on_file_and_s3!(handles_outside_the_ha_dir_and_garbage_values_are_never_read_or_deleted:
    handles_outside_the_ha_dir_and_garbage_values_are_never_read_or_deleted_on_file_storage,
    handles_outside_the_ha_dir_and_garbage_values_are_never_read_or_deleted_on_s3);
