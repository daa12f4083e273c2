//! RBAC fits the code exactly: the permissions the programs declare (and ask the API server
//! about at start, and the Helm chart's Roles grant, see tests/chart/check.py) are the ones
//! they use. Real `hakeeper sidecar` and `hakeeper operator` processes are driven through
//! everything they do against the embedded API server, which counts every resource request
//! by `(verb, API group, resource)`; the set of what was asked must equal what is declared:
//! nothing used that is not declared, nothing declared that is never used.
//!
//! Only the programs' own requests may be counted: everything the test itself asks of the
//! API server (writing HA state, reading it back) happens before the counters are reset, and
//! afterwards the test observes only through the programs' local APIs, their metrics, a
//! webhook, the storage directory and the counters. `SelfSubjectAccessReview`s (which any
//! authenticated user may create) are no resource requests of the embedded server: they are
//! never counted, and are left out here should they ever be.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::TestCluster;
use common::client::JobManagerClient;
use common::ha::{STEADY, lead};
use common::operator::{Answer, OperatorProcess, Receiver};
use common::process::{SidecarProcess, eventually, exit_within, http_client, send, signal};
use hakeeper::access::Permission;
use hakeeper::apiserver::DevServer;
use hakeeper::election::ReleaseReason;
use hakeeper::layout::{ClusterId, Component, JobId};
use hakeeper::stores::Payloads;
use hakeeper::stores::plan::{self, CHECKPOINT_PAYLOAD_PREFIX};
use k8s_openapi::api::core::v1::ConfigMap;
use reqwest::StatusCode;
use serde_json::{Value, json};

const JOB: &str = "7e57ab1e7e57ab1e7e57ab1e7e57ab1e";
/// How long anything the processes do may take to show.
const WAIT: Duration = Duration::from_secs(10);

type Triple = (String, String, String);

fn triple(verb: &str, group: &str, resource: &str) -> Triple {
    (verb.to_string(), group.to_string(), resource.to_string())
}

fn declared<'a>(permissions: impl IntoIterator<Item = &'a Permission>) -> BTreeSet<Triple> {
    permissions
        .into_iter()
        .map(|p| triple(p.verb, p.group, p.resource))
        .collect()
}

/// What the processes asked of `server` since the counters were reset, without
/// `SelfSubjectAccessReview`s.
fn used(server: &DevServer) -> BTreeSet<Triple> {
    server
        .permission_counts()
        .into_keys()
        .filter(|(_, group, _)| group != "authorization.k8s.io")
        .collect()
}

fn has(server: &DevServer, verb: &str, group: &str, resource: &str) -> bool {
    used(server).contains(&triple(verb, group, resource))
}

/// Wait until `server` has counted `verb` on `resource` of `group`.
async fn wait_used(server: &DevServer, verb: &str, group: &str, resource: &str, why: &str) {
    eventually(
        &format!("{verb} {resource} ({group:?}): {why}"),
        WAIT,
        || async {
            if has(server, verb, group, resource) {
                Ok(())
            } else {
                Err(format!("{:?}", server.permission_counts()))
            }
        },
    )
    .await
}

/// The permissions used are exactly the `declared` ones; otherwise say which differ.
fn assert_fits(what: &str, server: &DevServer, declared: &BTreeSet<Triple>) {
    let counts = server.permission_counts();
    let table: Vec<String> = counts
        .iter()
        .map(|((verb, group, resource), n)| format!("  {verb} {resource} ({group:?}): {n}"))
        .collect();
    let table = table.join("\n");
    eprintln!("{what}: requests by verb, resource and API group:\n{table}");
    // The same requests as the server's (verb, resource) counters, only told apart by group.
    let mut by_resource = std::collections::BTreeMap::new();
    for ((verb, _, resource), n) in &counts {
        *by_resource
            .entry((verb.clone(), resource.clone()))
            .or_insert(0) += n;
    }
    assert_eq!(by_resource, server.request_counts().0, "{table}");
    let used = used(server);
    let undeclared: Vec<&Triple> = used.difference(declared).collect();
    let unused: Vec<&Triple> = declared.difference(&used).collect();
    assert!(
        undeclared.is_empty() && unused.is_empty(),
        "{what}: the permissions used are not the declared ones\n\
         used but not declared: {undeclared:?}\n\
         declared but never used: {unused:?}\n\
         every request counted:\n{table}"
    );
}

// ---------------------------------------------------------------------------------------------
// The sidecar
// ---------------------------------------------------------------------------------------------

const SIDECAR_CLUSTER: &str = "flink-rbac";

/// `PUT /v1/leadership/{component}` on `s` for `client`, which must be accepted.
async fn contend(http: &reqwest::Client, s: &SidecarProcess, jm: &JobManagerClient, c: &str) {
    let (status, body) = send(
        jm.on(http
            .put(s.url(&format!("/v1/leadership/{c}")))
            .json(&json!({"address": format!("{}:6123", s.name)}))),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "PUT {c} on {}: {body}",
        s.name
    );
}

/// Wait until `s` reports `component` as `pred` accepts it; its state then.
async fn wait_state(
    http: &reqwest::Client,
    s: &SidecarProcess,
    component: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, WAIT, || async {
        let v = s.state(http, component).await;
        if pred(&v) { Ok(v) } else { Err(v.to_string()) }
    })
    .await
}

/// A leader-only store call on `s`: `request` with the session, which must answer `expect`.
async fn write(
    request: reqwest::RequestBuilder,
    session: &str,
    expect: StatusCode,
    what: &str,
) -> Value {
    let (status, body) = send(request.header("Hakeeper-Session", session)).await;
    assert_eq!(status, expect, "{what}: {body}");
    body
}

/// A read (no leadership needed), which must answer 200; its body.
async fn read(http: &reqwest::Client, url: String) -> Bytes {
    let response = http.get(&url).send().await.expect("the local API answers");
    let status = response.status();
    let body = response.bytes().await.expect("a body");
    assert_eq!(
        status,
        StatusCode::OK,
        "GET {url}: {}",
        String::from_utf8_lossy(&body)
    );
    body
}

/// Two sidecars through leadership (contended from the start and through clients, a takeover,
/// a release, a client that crashes, the same elector leading again), follower reads and every
/// store (job graphs, the running-jobs registry, checkpoints, the checkpoint counter, blobs),
/// then graceful exits: what they asked of the API server is exactly `SIDECAR`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_uses_exactly_the_permissions_it_declares() {
    common::init_logs();
    let c = TestCluster::start().await;
    let Some(server) = c.embedded("counting the sidecar's requests by verb and resource") else {
        return;
    };
    let files = common::file_storage().await;
    let storage_dir = format!("file://{}", files.dir.path().display());
    let http = http_client();
    let jobmanager = format!("jobmanager/{JOB}");
    server.faults().reset_counts();

    // `a` contends for the dispatcher from the start, for no client; `b` only follows it.
    let mut a = SidecarProcess::start(
        &c,
        SIDECAR_CLUSTER,
        "a",
        &[
            "--storage-dir",
            &storage_dir,
            "--contend",
            "dispatcher",
            "--address",
            "a:6123",
            "--liveness",
            "none",
        ],
    )
    .await;
    let mut b =
        SidecarProcess::start(&c, SIDECAR_CLUSTER, "b", &["--storage-dir", &storage_dir]).await;
    let leading = a.leading(&http, "dispatcher").await;
    let session = leading["sessionId"]
        .as_str()
        .expect("a session")
        .to_string();
    wait_state(&http, &b, "dispatcher", "b follows a's leadership", |v| {
        v["contending"] == false && v["holderIdentity"] == a.identity.as_str()
    })
    .await;

    // The dispatcher's stores on the leader, read back through the follower.
    let job_url = |s: &SidecarProcess, p: &str| s.url(&format!("/v1/jobs/{JOB}{p}"));
    write(
        http.put(job_url(&a, "/graph")).body(vec![7u8; 4096]),
        &session,
        StatusCode::OK,
        "PUT graph",
    )
    .await;
    assert_eq!(read(&http, job_url(&b, "/graph")).await.len(), 4096);
    let jobs: Value = serde_json::from_slice(&read(&http, b.url("/v1/jobs")).await).unwrap();
    assert_eq!(jobs["jobs"], json!([JOB]), "{jobs}");
    write(
        http.put(job_url(&a, "/status")).body("RUNNING"),
        &session,
        StatusCode::OK,
        "PUT status",
    )
    .await;
    read(&http, job_url(&b, "/status")).await;
    let blob = "/v1/blobs/job-1/blob_p-0a1b2c";
    write(
        http.put(a.url(blob)).body("jar bytes"),
        &session,
        StatusCode::OK,
        "PUT blob",
    )
    .await;
    assert_eq!(&read(&http, b.url(blob)).await[..], b"jar bytes");
    write(
        http.delete(a.url(blob)),
        &session,
        StatusCode::OK,
        "DELETE blob",
    )
    .await;

    // A job's JobManager leadership through a client: the counter and checkpoints.
    let ja = JobManagerClient::start(&a.base, "jm-a").await;
    contend(&http, &a, &ja, &jobmanager).await;
    let jm_session = a.leading(&http, &jobmanager).await["sessionId"]
        .as_str()
        .expect("a session")
        .to_string();
    for id in 1..=3 {
        let body = write(
            http.post(job_url(&a, "/checkpoint-counter/increment")),
            &jm_session,
            StatusCode::OK,
            "increment",
        )
        .await;
        assert_eq!(body["value"], id, "{body}");
        write(
            http.post(job_url(&a, &format!("/checkpoints/{id}")))
                .body(format!("checkpoint {id}")),
            &jm_session,
            StatusCode::CREATED,
            "POST checkpoint",
        )
        .await;
    }
    write(
        http.put(job_url(&a, "/checkpoint-counter"))
            .json(&json!({"value": 10})),
        &jm_session,
        StatusCode::OK,
        "PUT counter",
    )
    .await;
    assert_eq!(
        &read(&http, job_url(&b, "/checkpoints/latest")).await[..],
        b"checkpoint 3"
    );
    read(&http, job_url(&b, "/checkpoints")).await;
    read(&http, job_url(&b, "/checkpoint-counter")).await;
    write(
        http.delete(job_url(&a, "/checkpoints/3")),
        &jm_session,
        StatusCode::OK,
        "DELETE checkpoint",
    )
    .await;

    // Released through the API, contended again by the same client, and released when the
    // client crashes (its event stream closes).
    let (status, body) = send(http.delete(a.url(&format!("/v1/leadership/{jobmanager}")))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    contend(&http, &a, &ja, &jobmanager).await;
    a.leading(&http, &jobmanager).await;
    drop(ja);
    wait_state(
        &http,
        &a,
        &jobmanager,
        "the crashed client's release",
        |v| v["contending"] == false && v["isLeader"] == false,
    )
    .await;

    // A takeover: `b` contends for the dispatcher through a client, `a` is frozen past its
    // lease, `b` takes over; thawed, `a` finds it lost the lock and keeps contending.
    let jb = JobManagerClient::start(&b.base, "jm-b").await;
    contend(&http, &b, &jb, "dispatcher").await;
    signal(&a.child, "-STOP");
    b.leading(&http, "dispatcher").await;
    signal(&a.child, "-CONT");
    wait_state(&http, &a, "dispatcher", "a sees b's takeover", |v| {
        v["contending"] == true
            && v["isLeader"] == false
            && v["holderIdentity"] == b.identity.as_str()
    })
    .await;
    // `b`'s client crashes: `b` releases, and `a`'s elector (the same one, the same identity)
    // leads again; its Event recorder counts the repeated "Acquired" in the first one's series.
    drop(jb);
    a.leading(&http, "dispatcher").await;
    wait_used(
        server,
        "patch",
        "events.k8s.io",
        "events",
        "the repeated Acquired Event of a's dispatcher elector",
    )
    .await;

    // Graceful exits release what they hold.
    for s in [&mut a, &mut b] {
        signal(&s.child, "-TERM");
        let status = exit_within(&mut s.child, WAIT, &format!("sidecar {}", s.name)).await;
        assert!(status.success(), "sidecar {}: {status}", s.name);
    }
    assert!(
        !a.stderr_log()
            .contains("could not record a leader election Event"),
        "{}",
        a.stderr_log()
    );

    assert_fits(
        "hakeeper sidecar",
        server,
        &declared(&hakeeper::access::SIDECAR),
    );
    drop((a, b));
    c.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// The operator
// ---------------------------------------------------------------------------------------------

const OPERATOR_CLUSTER: &str = "flink-rbac-op";
fn op_cluster() -> ClusterId {
    OPERATOR_CLUSTER.parse().unwrap()
}

/// `identity` leads `component` of the operator test's Flink cluster, in the test process.
/// The file behind a `file:` handle path.
fn local(path: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(path.strip_prefix("file:").expect("a file: path"))
}

/// The alerts the webhook got (whatever it answered) of `kind` that `pred` accepts.
fn received(hook: &Receiver, kind: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    hook.received()
        .into_iter()
        .map(|r| r.body)
        .filter(|a| a["kind"] == kind && pred(a))
        .collect()
}

/// Wait until the webhook got `n` alerts of `kind` that `pred` accepts.
async fn wait_received(
    hook: &Receiver,
    op: &OperatorProcess,
    kind: &str,
    n: usize,
    pred: impl Fn(&Value) -> bool,
) {
    eventually(&format!("{n} {kind} alert(s)"), WAIT, || async {
        let got = received(hook, kind, &pred);
        if got.len() >= n {
            Ok(())
        } else {
            let log = op.stderr_log();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            Err(format!("{:#?}\n{}", hook.received(), tail.join("\n")))
        }
    })
    .await
}

/// Operators watching their own namespace, with payload checks and orphan collection over
/// `file://` storage: a Flink leader change (told late, from an earlier operator's state), a
/// dangling handle that resolves and dangles again (the same alert id: its Event is patched),
/// an orphan collected, a standby, and the leader SIGKILLed with an alert the webhook never
/// answered in its outbox, which the next leader sends again after listing the Events to see
/// whether it was recorded: what they asked of the API server is exactly `OWN` ∪ `WATCHED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_uses_exactly_the_permissions_it_declares() {
    use hakeeper::operator::cmd::{OWN, WATCHED};
    common::init_logs();
    let c = TestCluster::start().await;
    let Some(server) = c.embedded("counting the operator's requests by verb and resource") else {
        return;
    };
    let http = http_client();
    let job: JobId = JOB.parse().unwrap();

    // ----- Set up by the test (not counted) -----
    // A running job's HA state: the job graph and two retained checkpoints.
    let files = common::file_storage().await;
    let payloads = Payloads::new(files.store.clone(), &files.root, &op_cluster());
    let (dispatcher, dispatcher_session) =
        lead(&c, &op_cluster(), Component::Dispatcher, "jm-0", STEADY).await;
    let (jm_elector, jm_session) = lead(
        &c,
        &op_cluster(),
        Component::JobManager(job.clone()),
        "jm-0",
        STEADY,
    )
    .await;
    let newest = common::ha::write_running_job(
        c.api(),
        &payloads,
        &op_cluster(),
        &job,
        (&dispatcher, dispatcher_session),
        (&jm_elector, jm_session),
    )
    .await;
    let dangling = local(&newest.path);
    let size = newest.state_size as usize;
    // An orphan: an old payload no handle references.
    let orphan = files
        .dir
        .path()
        .join(OPERATOR_CLUSTER)
        .join(plan::payload_name(CHECKPOINT_PAYLOAD_PREFIX));
    std::fs::write(&orphan, vec![0x5a; 111]).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(2 * 3600))
        .unwrap();

    // An earlier operator remembers jm-0 as the dispatcher's leader, and stops.
    let mut op0 = OperatorProcess::start(&c, "op0", &["--no-verify", "--no-events"]).await;
    let state_key = format!("{}.{OPERATOR_CLUSTER}", c.namespace);
    let configmaps = c.api::<ConfigMap>();
    eventually("op0 to remember jm-0", WAIT, || async {
        let cm = configmaps
            .get_opt("hakeeper-operator-state")
            .await
            .map_err(|e| e.to_string())?;
        let entry = cm
            .and_then(|cm| cm.data)
            .and_then(|d| d.get(&state_key).cloned());
        match entry {
            Some(e) if e.contains(&dispatcher_session.to_string()) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    signal(&op0.child, "-TERM");
    let status = exit_within(&mut op0.child, WAIT, "op0").await;
    assert!(status.success(), "{status}\n{}", op0.stderr_log());
    drop(op0);
    // While no operator runs: the dispatcher's leader changes to jm-1, the JobManagers stop
    // without releasing (their leases stay held), the newest checkpoint's payload goes
    // missing, and the operator lock goes (so that the next operator creates it).
    dispatcher.release(ReleaseReason::Shutdown).await;
    let (dispatcher, new_session) =
        lead(&c, &op_cluster(), Component::Dispatcher, "jm-1", STEADY).await;
    dispatcher.abort();
    jm_elector.abort();
    std::fs::remove_file(&dangling).unwrap();
    configmaps
        .delete(
            &Component::Operator.configmap_name(&"hakeeper".parse().unwrap()),
            &Default::default(),
        )
        .await
        .unwrap();
    drop(configmaps);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // ----- Only the operators from here on -----
    server.faults().reset_counts();
    let hook = Receiver::start().await;
    let flags = [
        "--verify-interval",
        "1s",
        "--gc",
        "--orphan-grace",
        "1s",
        "--max-storage-ops-per-second",
        "1000",
        "--alert-webhook",
        &hook.url,
    ];
    let mut op1 = OperatorProcess::start(&c, "op1", &flags).await;
    eventually("op1 leads", WAIT, || async {
        if op1.leads(&http).await {
            Ok(())
        } else {
            Err("not leading".to_string())
        }
    })
    .await;
    let new_session = new_session.to_string();
    wait_received(&hook, &op1, "LeaderChanged", 1, |a| {
        a["component"] == "dispatcher" && a["to"]["sessionId"] == new_session.as_str()
    })
    .await;
    let firing = |a: &Value| a["resolved"] == false;
    let resolved = |a: &Value| a["resolved"] == true;
    wait_received(&hook, &op1, "DanglingHandle", 1, firing).await;
    wait_received(&hook, &op1, "OrphansCollected", 1, |a| {
        a["details"]["deleted"] == 1
    })
    .await;
    assert!(!orphan.exists(), "the orphan was collected");
    // Whole again, then missing again: the same alert (id) twice, in one process.
    std::fs::write(&dangling, vec![1u8; size]).unwrap();
    wait_received(&hook, &op1, "DanglingHandle", 1, resolved).await;
    std::fs::remove_file(&dangling).unwrap();
    wait_received(&hook, &op1, "DanglingHandle", 2, firing).await;
    let ids: BTreeSet<String> = received(&hook, "DanglingHandle", firing)
        .iter()
        .map(|a| a["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "one alert id: {ids:?}");
    wait_used(
        server,
        "patch",
        "events.k8s.io",
        "events",
        "the repeated DanglingHandle Event",
    )
    .await;

    // A standby; then an alert the webhook takes and never answers, still in the outbox when
    // the leader is killed.
    let op2 = OperatorProcess::start(&c, "op2", &flags).await;
    assert!(!op2.leads(&http).await);
    hook.script(&[Answer::Hang], None);
    std::fs::write(&dangling, vec![1u8; size]).unwrap();
    eventually("the webhook to hold an alert", WAIT, || async {
        if hook.received().iter().any(|r| r.answer == Answer::Hang) {
            Ok(())
        } else {
            Err(format!("{:#?}", hook.received()))
        }
    })
    .await;
    let held = hook
        .received()
        .into_iter()
        .find(|r| r.answer == Answer::Hang)
        .expect("a held alert")
        .body;
    signal(&op1.child, "-KILL");
    exit_within(&mut op1.child, WAIT, "op1").await;
    eventually("op2 leads", WAIT, || async {
        if op2.leads(&http).await {
            Ok(())
        } else {
            Err("not leading".to_string())
        }
    })
    .await;
    eventually("op2 sends the held alert again", WAIT, || async {
        if hook.delivered().iter().any(|a| a["id"] == held["id"]) {
            Ok(())
        } else {
            Err(format!("{:#?}", hook.received()))
        }
    })
    .await;
    wait_used(
        server,
        "list",
        "events.k8s.io",
        "events",
        "op2 looks up the Event of the alert it sends again",
    )
    .await;
    let mut op2 = op2;
    signal(&op2.child, "-TERM");
    let status = exit_within(&mut op2.child, WAIT, "op2").await;
    assert!(status.success(), "{status}\n{}", op2.stderr_log());
    op2.assert_no_panic();

    // Its own namespace is the watched one here: the counters cannot tell which of the two
    // a request was for, so the union. (The Events include the LeaderElection Events its
    // elector records on its own lock, which OWN alone does not declare.)
    let mut expected = declared(&OWN);
    expected.extend(declared(&WATCHED));
    assert_fits("hakeeper operator", server, &expected);
    drop((op1, op2, files));
    c.cleanup().await;
}
