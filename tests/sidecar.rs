//! The `hakeeper sidecar` process end to end: real child processes of the binary, each with
//! its own local API, contending through the embedded API server (or a real cluster with
//! HAKEEPER_TEST_KUBECONFIG). Every wait is bounded; polling is every 20 ms.

mod common;

use std::ops::Deref;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::TestCluster;
use common::client::{JobManagerClient, next_event, sse_events};
use common::process::{STARTUP, SidecarProcess, TIMINGS, eventually, hakeeper, http_client, send};
use futures::StreamExt;
use hakeeper::lease::{LEADER_ANNOTATION, LeaderRecord};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;

const CLUSTER_ID: &str = "flink-sidecar";
const DISPATCHER_CM: &str = "flink-sidecar-dispatcher-leader";
const RESOURCEMANAGER_CM: &str = "flink-sidecar-resourcemanager-leader";
const ELECTION: Duration = Duration::from_secs(10);

/// A [`SidecarProcess`] of [`CLUSTER_ID`] (killed when dropped, its stderr printed if the
/// test is failing), with the address it publishes when it leads.
struct Sidecar {
    process: SidecarProcess,
    /// The address this sidecar publishes when it leads.
    address: String,
}

/// Its name, identity, base URL, `url()` and `stderr_log()`.
impl Deref for Sidecar {
    type Target = SidecarProcess;

    fn deref(&self) -> &SidecarProcess {
        &self.process
    }
}

impl Sidecar {
    async fn start(c: &TestCluster, name: &str, extra: &[&str]) -> Sidecar {
        let process = SidecarProcess::start(c, CLUSTER_ID, name, extra).await;
        assert!(
            process.base.starts_with("http://127.0.0.1:"),
            "{}",
            process.base
        );
        Sidecar {
            process,
            address: format!("akka.tcp://flink@jm-{name}.flink.svc:6123/user/rpc/dispatcher"),
        }
    }

    fn leadership(&self, component: &str) -> String {
        self.url(&format!("/v1/leadership/{component}"))
    }

    /// `GET /v1/leadership/{component}`, which must answer 200.
    async fn get(&self, http: &reqwest::Client, component: &str) -> Value {
        let body = self.state(http, component).await;
        assert_eq!(body["component"], component, "{body}");
        body
    }

    /// A JobManager client of this sidecar (registered, its event stream open, kept alive).
    async fn client(&self) -> JobManagerClient {
        JobManagerClient::start(&self.base, &format!("jm-{}", self.name)).await
    }

    /// `PUT /v1/leadership/{component}` with this sidecar's address, for `client`.
    async fn contend(
        &self,
        http: &reqwest::Client,
        client: &JobManagerClient,
        component: &str,
    ) -> Value {
        let (status, body) = send(
            client.on(http
                .put(self.leadership(component))
                .json(&json!({"address": self.address}))),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "PUT {component} on {}: {body}",
            self.name
        );
        assert_eq!(body["component"], component, "{body}");
        assert_eq!(body["contending"], true, "{body}");
        body
    }

    async fn delete(&self, http: &reqwest::Client, component: &str) -> (StatusCode, Value) {
        send(http.delete(self.leadership(component))).await
    }

    /// Wait until `/readyz` answers 200.
    async fn ready(&self, http: &reqwest::Client) {
        eventually(&format!("{} ready", self.name), STARTUP, || async {
            let r = http.get(self.url("/readyz")).send().await;
            match r {
                Ok(r) if r.status() == StatusCode::OK => Ok(()),
                Ok(r) => Err(format!("{} {:?}", r.status(), r.text().await)),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    }

    /// Send `signal` (`TERM`, `INT`), then wait (at most 5 s) for the process to exit.
    async fn signal(&mut self, signal: &str) -> ExitStatus {
        let child = &mut self.process.child;
        common::process::signal(child, &format!("-{signal}"));
        match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
            Ok(status) => status.expect("waiting for the sidecar"),
            Err(_) => panic!(
                "sidecar {} did not exit within 5 s of SIG{signal}",
                self.process.name
            ),
        }
    }

    /// Kill (SIGKILL) and reap.
    async fn kill(mut self) {
        let _ = self.process.child.kill().await;
    }
}

/// Wait until exactly one of `sidecars` leads `component` and all of them report the same
/// leader and holder. Returns the leader's index and every view.
async fn converged(
    http: &reqwest::Client,
    sidecars: &[&Sidecar],
    component: &str,
) -> (usize, Vec<Value>) {
    eventually(
        &format!("one agreed leader of {component}"),
        ELECTION,
        || async {
            let mut views = Vec::new();
            for s in sidecars {
                views.push(s.get(http, component).await);
            }
            let leaders: Vec<usize> = (0..views.len())
                .filter(|&i| views[i]["isLeader"] == true)
                .collect();
            let agreed = leaders.len() == 1
                && !views[0]["leader"].is_null()
                && views.iter().all(|v| v["leader"] == views[0]["leader"])
                && views
                    .iter()
                    .all(|v| v["holderIdentity"] == views[0]["holderIdentity"]);
            if agreed {
                Ok((leaders[0], views))
            } else {
                Err(format!("{views:?}"))
            }
        },
    )
    .await
}

/// The lock record and data of a ConfigMap.
async fn lock_of(c: &TestCluster, name: &str) -> (String, LeaderRecord, ConfigMap) {
    let cm = c
        .api::<ConfigMap>()
        .get(name)
        .await
        .expect("the lock ConfigMap");
    let raw = cm
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LEADER_ANNOTATION))
        .cloned()
        .unwrap_or_else(|| panic!("{name} has no lock annotation: {cm:?}"));
    let record = LeaderRecord::parse(&raw).expect("a valid leader record");
    (raw, record, cm)
}

fn data<'a>(cm: &'a ConfigMap, key: &str) -> Option<&'a str> {
    cm.data.as_ref()?.get(key).map(String::as_str)
}

/// Open `GET {component}?watch=1` and deliver each event's name and JSON data.
async fn sse(sidecar: &Sidecar, component: &str) -> mpsc::UnboundedReceiver<(String, Value)> {
    // No overall timeout for the stream.
    let http = reqwest::Client::new();
    let response = http
        .get(format!("{}?watch=1", sidecar.leadership(component)))
        .send()
        .await
        .expect("the local API answers");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    // The reading task runs detached: it ends with the stream, or at the first event after
    // the receiver is dropped.
    let (events, _detached) = sse_events(response);
    events
}

/// Every lock annotation value of a ConfigMap from now on (after the watch has synced).
/// Abort the returned task before stopping the API server.
async fn annotation_history(
    c: &TestCluster,
    name: &str,
) -> (mpsc::UnboundedReceiver<String>, tokio::task::JoinHandle<()>) {
    let api = kube::Api::<ConfigMap>::namespaced(c.fresh_client().await, &c.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let (tx, rx) = mpsc::unbounded_channel();
    let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut events = watcher(api, config).default_backoff().boxed();
        let mut synced = Some(synced_tx);
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::InitApply(cm) | watcher::Event::Apply(cm)) => {
                    let raw = cm
                        .metadata
                        .annotations
                        .and_then(|mut a| a.remove(LEADER_ANNOTATION));
                    if let Some(raw) = raw
                        && tx.send(raw).is_err()
                    {
                        return;
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(s) = synced.take() {
                        let _ = s.send(());
                    }
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(STARTUP, synced_rx)
        .await
        .expect("the test's watch synced in time")
        .expect("the test's watch task runs");
    (rx, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sidecars_agree_on_one_leader() {
    let c = TestCluster::start().await;
    let http = http_client();
    let a = Sidecar::start(&c, "a", &[]).await;
    let b = Sidecar::start(&c, "b", &[]).await;
    let (a_jm, b_jm) = (a.client().await, b.client().await);
    for (s, jm) in [(&a, &a_jm), (&b, &b_jm)] {
        let (status, body) = send(http.get(s.url("/livez"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        s.contend(&http, jm, "dispatcher").await;
    }
    // Idempotent for the same address and client.
    a.contend(&http, &a_jm, "dispatcher").await;

    let sidecars = [&a, &b];
    let (i, views) = converged(&http, &sidecars, "dispatcher").await;
    let leader = sidecars[i];
    let (lv, sv) = (&views[i], &views[1 - i]);
    assert_eq!(lv["contending"], true);
    assert_eq!(sv["contending"], true);
    assert_eq!(sv["isLeader"], false);
    assert!(sv["sessionId"].is_null(), "a standby has no session: {sv}");
    let session = lv["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("the leader has a session: {lv}"));
    uuid::Uuid::parse_str(session).expect("the session is a UUID");
    assert_eq!(
        lv["leader"],
        json!({"address": leader.address, "sessionId": session})
    );
    assert_eq!(lv["holderIdentity"], leader.identity.as_str());
    for v in &views {
        let remaining = v["leaseRemainingMs"]
            .as_u64()
            .unwrap_or_else(|| panic!("a held lease has a remaining time: {v}"));
        assert!(remaining <= 2000, "{v}");
    }

    let (raw, record, cm) = lock_of(&c, DISPATCHER_CM).await;
    assert_eq!(record.holder_identity, leader.identity, "{raw}");
    assert_eq!(data(&cm, "address"), Some(leader.address.as_str()));
    assert_eq!(data(&cm, "sessionId"), Some(session));

    for s in sidecars {
        s.ready(&http).await;
    }
    a.kill().await;
    b.kill().await;
    drop((a_jm, b_jm));
    c.cleanup().await;
}

/// A sidecar and the JobManager client that contends through it (which must live as long as
/// the contention is needed).
type Contending = (Sidecar, JobManagerClient);

/// Two sidecars contending for the dispatcher, once they agree:
/// (leader, standby, the leader as both report it).
async fn leader_and_standby(
    c: &TestCluster,
    http: &reqwest::Client,
) -> (Contending, Contending, Value) {
    let a = Sidecar::start(c, "a", &[]).await;
    let b = Sidecar::start(c, "b", &[]).await;
    let (a_jm, b_jm) = (a.client().await, b.client().await);
    a.contend(http, &a_jm, "dispatcher").await;
    b.contend(http, &b_jm, "dispatcher").await;
    let (i, views) = converged(http, &[&a, &b], "dispatcher").await;
    let old_leader = views[i]["leader"].clone();
    let (leader, standby) = if i == 0 {
        ((a, a_jm), (b, b_jm))
    } else {
        ((b, b_jm), (a, a_jm))
    };
    (leader, standby, old_leader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_and_the_standby_streams_its_takeover() {
    let c = TestCluster::start().await;
    let http = http_client();
    let ((mut leader, _leader_jm), (standby, standby_jm), old_leader) =
        leader_and_standby(&c, &http).await;

    let mut events = sse(&standby, "dispatcher").await;
    let (name, first) = tokio::time::timeout(Duration::from_secs(2), events.recv())
        .await
        .expect("the current state first")
        .expect("the stream is open");
    assert_eq!(name, "leadership");
    assert_eq!(first["component"], "dispatcher", "{first}");
    assert_eq!(first["contending"], true, "{first}");
    assert_eq!(first["isLeader"], false, "{first}");
    assert_eq!(first["leader"], old_leader, "{first}");
    assert_eq!(first["holderIdentity"], leader.identity.as_str(), "{first}");

    let (mut history, history_task) = annotation_history(&c, DISPATCHER_CM).await;
    let status = leader.signal("TERM").await;
    let exited = Instant::now();
    assert!(status.success(), "the leader exits 0 on SIGTERM: {status}");

    // The stream reports the takeover within 2 s of the exit.
    let took_over = loop {
        let left = (exited + Duration::from_secs(2)).saturating_duration_since(Instant::now());
        let (name, event) = tokio::time::timeout(left, events.recv())
            .await
            .expect("the standby's takeover streamed within 2 s of the leader's exit")
            .expect("the stream stays open");
        assert_eq!(name, "leadership");
        assert_eq!(event["contending"], true, "{event}");
        if event["isLeader"] == true {
            break event;
        }
    };
    let session = took_over["sessionId"].as_str().expect("a session");
    assert_eq!(
        took_over["leader"],
        json!({"address": standby.address, "sessionId": session})
    );
    assert_eq!(took_over["holderIdentity"], standby.identity.as_str());
    assert_ne!(took_over["leader"], old_leader);

    // The lock: released by the old leader, or already taken by the standby.
    let (raw, record, _) = lock_of(&c, DISPATCHER_CM).await;
    assert_ne!(record.holder_identity, leader.identity, "{raw}");
    if record.holder_identity.is_empty() {
        assert!(raw.contains("\"leaseDuration\":1.000000000"), "{raw}");
    } else {
        assert_eq!(record.holder_identity, standby.identity, "{raw}");
    }
    // And the watch saw the release itself (no waiting for the lease to run out).
    let mut seen = Vec::new();
    while let Ok(raw) = history.try_recv() {
        seen.push(raw);
    }
    let released = seen.iter().position(|raw| {
        LeaderRecord::parse(raw).is_ok_and(|r| r.holder_identity.is_empty())
            && raw.contains("\"holderIdentity\":\"\"")
            && raw.contains("\"leaseDuration\":1.000000000")
    });
    let taken = seen.iter().position(|raw| {
        LeaderRecord::parse(raw).is_ok_and(|r| r.holder_identity == standby.identity)
    });
    assert!(
        matches!((released, taken), (Some(r), Some(t)) if r < t),
        "a release record, then the standby's: {seen:#?}"
    );
    assert!(
        leader.stderr_log().contains("leadership released"),
        "the old leader logs its release"
    );

    // SIGINT the new leader while the stream is open on it: it exits 0 promptly, the stream
    // ends, and with nobody to take over the lock stays released.
    let mut standby = standby;
    let interrupted = Instant::now();
    let status = standby.signal("INT").await;
    assert!(status.success(), "exits 0 on SIGINT: {status}");
    assert!(
        interrupted.elapsed() < Duration::from_millis(1500),
        "an open event stream does not hold up the exit ({:?})",
        interrupted.elapsed()
    );
    let ended = tokio::time::timeout(Duration::from_secs(2), async {
        while events.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the event stream ends with the process");
    let (raw, record, _) = lock_of(&c, DISPATCHER_CM).await;
    assert!(record.is_released(), "{raw}");
    assert!(raw.contains("\"leaseDuration\":1.000000000"), "{raw}");
    assert!(
        standby.stderr_log().contains("leadership released"),
        "the new leader logs its release"
    );

    history_task.abort();
    standby.kill().await;
    leader.kill().await;
    drop(standby_jm);
    c.cleanup().await;
}

/// A `DELETE` of a component this sidecar leads reads as one release on a `?watch=1` stream:
/// no state twice in a row, no re-listing of the lock as still held after the release, no
/// unsynced state in between (the stream goes on from the record the release wrote).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_is_seen_once_on_the_watch_stream() {
    let c = TestCluster::start().await;
    let http = http_client();
    let a = Sidecar::start(&c, "a", &[]).await;
    let jm = a.client().await;
    let mut events = sse(&a, "dispatcher").await;
    a.contend(&http, &jm, "dispatcher").await;
    // Until it leads.
    loop {
        let (_, v) = next_event(&mut events, ELECTION)
            .await
            .expect("a leadership event before leading");
        if v["isLeader"] == true && v["leader"]["sessionId"] == v["sessionId"] {
            break;
        }
    }
    let (status, body) = a.delete(&http, "dispatcher").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut after = Vec::new();
    while let Some((name, v)) = next_event(&mut events, Duration::from_millis(1500)).await {
        assert_eq!(name, "leadership", "{v}");
        after.push(v);
    }
    let strip = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("leaseRemainingMs");
        if let Some(l) = v["lastRelease"].as_object_mut() {
            l.remove("agoMs");
        }
        v
    };
    for pair in after.windows(2) {
        assert_ne!(
            strip(&pair[0]),
            strip(&pair[1]),
            "the same state twice: {after:#?}"
        );
    }
    let last = after.last().expect("an event after the DELETE");
    assert_eq!(last["contending"], false, "{after:#?}");
    assert_eq!(last["isLeader"], false, "{after:#?}");
    assert!(last["holderIdentity"].is_null(), "{after:#?}");
    assert!(last["leader"].is_null(), "{after:#?}");
    assert_eq!(last["synced"], true, "{after:#?}");
    assert_eq!(last["lastRelease"]["reason"], "api_delete", "{after:#?}");
    // Once not contending, nothing else: not unsynced, not the lock as held again.
    let released = after.iter().position(|v| v["contending"] == false).unwrap();
    assert_eq!(released, after.len() - 1, "after the release: {after:#?}");
    assert!(after.iter().all(|v| v["synced"] == true), "{after:#?}");
    drop(jm);
    a.kill().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_releases_to_the_other_sidecar() {
    let c = TestCluster::start().await;
    let http = http_client();
    let ((leader, leader_jm), (standby, standby_jm), old_leader) =
        leader_and_standby(&c, &http).await;

    let (status, body) = leader.delete(&http, "dispatcher").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"component": "dispatcher", "contending": false, "released": true})
    );
    let deleted = Instant::now();
    let new = eventually("the standby takes over", Duration::from_secs(1), || async {
        let v = standby.get(&http, "dispatcher").await;
        if v["isLeader"] == true {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    })
    .await;
    eprintln!("took over {:?} after the DELETE", deleted.elapsed());
    assert_eq!(new["leader"]["address"], standby.address.as_str(), "{new}");
    assert_eq!(new["leader"]["sessionId"], new["sessionId"], "{new}");

    let (status, body) = leader.delete(&http, "dispatcher").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "NotFound", "{body}");
    assert!(body["message"].is_string(), "{body}");

    // The former leader now only follows, and sees the new leader.
    let follower = eventually("the former leader follows", ELECTION, || async {
        let v = leader.get(&http, "dispatcher").await;
        if v["leader"] == new["leader"] {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    })
    .await;
    assert_eq!(follower["contending"], false, "{follower}");
    assert_eq!(follower["isLeader"], false, "{follower}");
    assert!(follower["sessionId"].is_null(), "{follower}");
    assert_eq!(follower["holderIdentity"], standby.identity.as_str());
    assert_ne!(new["leader"], old_leader);

    // Contending again (the same client, still live) makes it a standby; the leader stays.
    leader.contend(&http, &leader_jm, "dispatcher").await;
    let (j, _) = converged(&http, &[&leader, &standby], "dispatcher").await;
    assert_eq!(j, 1, "the new leader keeps its lease");
    let (_, record, _) = lock_of(&c, DISPATCHER_CM).await;
    assert_eq!(record.holder_identity, standby.identity);

    leader.kill().await;
    standby.kill().await;
    drop((leader_jm, standby_jm));
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_and_following_without_contending() {
    let c = TestCluster::start().await;
    let http = http_client();
    let a = Sidecar::start(&c, "a", &[]).await;
    let b = Sidecar::start(&c, "b", &[]).await;
    let a_jm = a.client().await;

    let (status, body) = send(
        a_jm.on(http
            .put(a.leadership("bogus"))
            .json(&json!({"address": a.address}))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "BadRequest", "{body}");
    assert!(body["message"].is_string(), "{body}");
    let (status, body) = send(http.get(a.leadership("jobmanager/NOTAJOBID"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "BadRequest", "{body}");

    let (status, body) = send(
        a_jm.on(http
            .put(a.leadership("dispatcher"))
            .header("content-type", "application/json")
            .body("this is not JSON")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "BadRequest", "{body}");
    let (status, body) = send(
        a_jm.on(http
            .put(a.leadership("dispatcher"))
            .json(&json!({"address": "  "}))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "BadRequest", "{body}");

    // Contending is only ever on behalf of a client.
    let (status, body) = send(
        http.put(a.leadership("dispatcher"))
            .json(&json!({"address": a.address})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "ClientRequired", "{body}");
    assert!(body["message"].is_string(), "{body}");

    a.contend(&http, &a_jm, "dispatcher").await;
    let (status, body) = send(
        a_jm.on(http
            .put(a.leadership("dispatcher"))
            .json(&json!({"address": "somewhere-else:6123"}))),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "Conflict", "{body}");

    let (status, body) = send(http.get(a.url("/v2/nothing"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "NotFound", "{body}");

    let (status, body) = send(http.post(a.leadership("dispatcher"))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(body["error"], "MethodNotAllowed", "{body}");

    // A path segment that does not decode (not percent-encoding, or not UTF-8) is a JSON
    // 400 BadRequest on every kind of route, as the docs promise of every error.
    for path in [
        "/v1/leadership/%ff",
        "/v1/leadership/jobmanager%2F%C3%28",
        "/v1/clients/%ff/events",
        "/v1/jobs/%ff/graph",
        "/v1/jobs/5c1a9f0e2b7d4c3a8e6f1d0b9a8c7e6f/checkpoints/%C3%28",
        "/v1/blobs/%ff",
    ] {
        let response = http.get(a.url(path)).send().await.expect(path);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{path}: not JSON ({content_type}): {e}"));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"], "BadRequest", "{path}: {body}");
        assert!(
            content_type.starts_with("application/json"),
            "{path}: {content_type}"
        );
    }

    // b contends for nothing: it follows a's leadership of the dispatcher.
    let a_view = eventually("a leads", ELECTION, || async {
        let v = a.get(&http, "dispatcher").await;
        if v["isLeader"] == true {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    })
    .await;
    assert_eq!(a_view["leader"]["address"], a.address.as_str());
    let followed = eventually("b sees a's leadership", ELECTION, || async {
        let v = b.get(&http, "dispatcher").await;
        if v["leader"] == a_view["leader"] {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    })
    .await;
    assert_eq!(followed["contending"], false, "{followed}");
    assert_eq!(followed["isLeader"], false, "{followed}");
    assert!(followed["sessionId"].is_null(), "{followed}");
    assert_eq!(
        followed["holderIdentity"],
        a.identity.as_str(),
        "{followed}"
    );

    // Nobody contends for the REST server: no leader, not contending, on either sidecar.
    for s in [&a, &b] {
        let v = s.get(&http, "restserver").await;
        assert_eq!(v["contending"], false, "{v}");
        assert_eq!(v["isLeader"], false, "{v}");
        assert!(v["leader"].is_null(), "{v}");
        assert!(v["holderIdentity"].is_null(), "{v}");
    }
    let (status, body) = b.delete(&http, "restserver").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "NotFound", "{body}");

    a.kill().await;
    b.kill().await;
    drop(a_jm);
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contend_at_startup_without_any_put() {
    let c = TestCluster::start().await;
    let http = http_client();
    let address = "akka.tcp://flink@jm-solo.flink.svc:6123/user/rpc/dispatcher";
    let s = Sidecar::start(
        &c,
        "solo",
        &[
            "--contend",
            "dispatcher,resourcemanager",
            "--address",
            address,
            "--liveness",
            "none",
        ],
    )
    .await;
    for (component, configmap) in [
        ("dispatcher", DISPATCHER_CM),
        ("resourcemanager", RESOURCEMANAGER_CM),
    ] {
        let v = eventually(&format!("solo leads {component}"), ELECTION, || async {
            let v = s.get(&http, component).await;
            if v["isLeader"] == true {
                Ok(v)
            } else {
                Err(v.to_string())
            }
        })
        .await;
        assert_eq!(v["contending"], true, "{v}");
        assert_eq!(v["leader"]["address"], address, "{v}");
        assert_eq!(v["holderIdentity"], s.identity.as_str(), "{v}");
        let (raw, record, cm) = lock_of(&c, configmap).await;
        assert_eq!(record.holder_identity, s.identity, "{raw}");
        assert_eq!(data(&cm, "address"), Some(address));
        assert_eq!(data(&cm, "sessionId"), v["sessionId"].as_str());
    }
    s.ready(&http).await;
    let v = s.get(&http, "restserver").await;
    assert_eq!(v["contending"], false, "{v}");
    // The startup contention uses the --address: a different one conflicts.
    let jm = s.client().await;
    let (status, body) = send(
        jm.on(http
            .put(s.leadership("resourcemanager"))
            .json(&json!({"address": "other:6123"}))),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    s.kill().await;
    drop(jm);
    c.cleanup().await;
}

/// Run `hakeeper sidecar` with `args`, expecting a refusal within 5 s; returns stderr.
async fn refused(args: &[&str]) -> String {
    let listen: &[&str] = if args.contains(&"--listen") {
        &[]
    } else {
        &["--listen", "127.0.0.1:0"]
    };
    let output = hakeeper()
        .arg("sidecar")
        .args(listen)
        .args(["--kubeconfig", "/nonexistent/kubeconfig"])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(5), output)
        .await
        .unwrap_or_else(|_| panic!("hakeeper sidecar {args:?} did not exit within 5 s"))
        .expect("running hakeeper");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "hakeeper sidecar {args:?} must refuse to start; stderr: {stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("local API on"),
        "refused before serving"
    );
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_timings_and_ids_are_refused() {
    let stderr = refused(&[
        "--cluster-id",
        "c",
        "--lease-duration",
        "10s",
        "--renew-deadline",
        "10s",
        "--retry-period",
        "2s",
    ])
    .await;
    assert!(
        stderr.contains("--lease-duration (10s) must be greater than --renew-deadline (10s)"),
        "{stderr}"
    );
    let stderr = refused(&[
        "--cluster-id",
        "c",
        "--lease-duration",
        "3s",
        "--renew-deadline",
        "1200ms",
        "--retry-period",
        "1s",
    ])
    .await;
    assert!(
        stderr.contains("--renew-deadline (1.2s) must be greater than 1.2 × --retry-period"),
        "{stderr}"
    );
    let stderr = refused(&["--cluster-id", "BAD_ID"]).await;
    assert!(stderr.contains("invalid cluster id"), "{stderr}");
    let stderr = refused(&[
        "--cluster-id",
        "c",
        "--contend",
        "dispatcher",
        "--liveness",
        "none",
    ])
    .await;
    assert!(stderr.contains("--address"), "{stderr}");
    let stderr = refused(&[
        "--cluster-id",
        "c",
        "--contend",
        "leader",
        "--address",
        "x:1",
        "--liveness",
        "none",
    ])
    .await;
    assert!(stderr.contains("unknown component"), "{stderr}");
}

/// A stream opened before the PUT (a natural order for a client) follows the component from
/// follower to contender and reports this sidecar's leadership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_opened_before_contending_reports_the_leadership() {
    let c = TestCluster::start().await;
    let http = http_client();
    let s = Sidecar::start(&c, "early", &[]).await;
    let jm = s.client().await;
    let mut events = sse(&s, "dispatcher").await;
    let (_, first) = tokio::time::timeout(ELECTION, events.recv())
        .await
        .expect("first event")
        .expect("stream open");
    assert_eq!(first["contending"], false, "{first}");
    s.contend(&http, &jm, "dispatcher").await;
    let led = tokio::time::timeout(ELECTION, async {
        while let Some((_, v)) = events.recv().await {
            if v["isLeader"] == true {
                return Some(v);
            }
        }
        None
    })
    .await
    .expect("the stream reports the leadership in time")
    .expect("the stream stays open across the PUT");
    assert_eq!(led["contending"], true, "{led}");
    assert_eq!(led["leader"]["address"], s.address.as_str(), "{led}");
    s.kill().await;
    drop(jm);
    c.cleanup().await;
}

/// SIGTERM right after the start-up line is handled (exit 0 after releasing), not fatal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_start_is_handled() {
    let c = TestCluster::start().await;
    for round in 0..5 {
        let mut s = Sidecar::start(
            &c,
            &format!("quick{round}"),
            &[
                "--contend",
                "dispatcher",
                "--address",
                "jm:1",
                "--liveness",
                "none",
            ],
        )
        .await;
        let status = s.signal("TERM").await;
        assert!(
            status.success(),
            "round {round}: exit {status}\n{}",
            s.stderr_log()
        );
    }
    c.cleanup().await;
}

/// Start `hakeeper sidecar ARGS` (stderr to `stderr`) and read its first line of output.
async fn spawn_sidecar(args: &[&std::ffi::OsStr], stderr: &std::path::Path) -> (Child, String) {
    let mut child = hakeeper()
        .arg("sidecar")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("spawning hakeeper sidecar");
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    tokio::time::timeout(STARTUP, stdout.read_line(&mut line))
        .await
        .expect("announced within the startup time")
        .unwrap();
    (child, line.trim().to_string())
}

/// A request over a Unix socket (reqwest does not speak them): status and body.
async fn unix_get(socket: &std::path::Path, path: &str, token: Option<&str>) -> (u16, String) {
    use http_body_util::BodyExt;
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect to the socket");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let mut request = hyper::Request::get(path).header("host", "localhost");
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let response = sender
        .send_request(
            request
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await
        .expect("response");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_and_token() {
    use std::os::unix::fs::PermissionsExt;
    let c = TestCluster::start().await;
    let socket = c.path("api.sock");
    let token_file = c.path("token");
    std::fs::write(&token_file, "t0ps3cret\n").unwrap();
    let listen = format!("unix:{}", socket.display());
    let stderr = c.path("sidecar-unix.stderr");
    let flags = [
        "--cluster-id",
        CLUSTER_ID,
        "--namespace",
        &c.namespace,
        "--listen",
        &listen,
    ];
    let args: Vec<&std::ffi::OsStr> = flags
        .iter()
        .map(std::ffi::OsStr::new)
        .chain([
            "--token-file".as_ref(),
            token_file.as_os_str(),
            "--kubeconfig".as_ref(),
            c.kubeconfig().as_os_str(),
        ])
        .chain(TIMINGS.iter().map(std::ffi::OsStr::new))
        .collect();
    let (mut child, line) = spawn_sidecar(&args, &stderr).await;
    assert_eq!(line, format!("hakeeper sidecar: local API on {listen}"));
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket is private to its user");
    // Probes and the API description need no token; /v1 calls do.
    assert_eq!(unix_get(&socket, "/livez", None).await.0, 200);
    let (status, body) = unix_get(&socket, "/openapi.json", None).await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/jobs/{jobId}/checkpoints/{checkpointId}"]["post"].is_object());
    let (status, body) = unix_get(&socket, "/v1/leadership/dispatcher", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"Unauthorized\""), "{body}");
    let (status, _) = unix_get(&socket, "/v1/leadership/dispatcher", Some("wrong")).await;
    assert_eq!(status, 401);
    let (status, body) = unix_get(&socket, "/v1/leadership/dispatcher", Some("t0ps3cret")).await;
    assert_eq!(status, 200, "{body}");
    let _ = child.start_kill();
    let _ = child.wait().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_loopback_without_a_token_is_refused() {
    let stderr = refused(&["--cluster-id", "c", "--listen", "0.0.0.0:0"]).await;
    assert!(
        stderr.contains("without a token") && stderr.contains("--token-file"),
        "{stderr}"
    );
    let stderr = refused(&["--cluster-id", "c", "--listen", "unix:relative.sock"]).await;
    assert!(stderr.contains("must be absolute"), "{stderr}");
}

/// `/metrics` of each process: the leader reports 1 for the component, the standby 0, and
/// `/readyz?leader=` routes to the leader only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_leader_readiness_per_process() {
    let c = TestCluster::start().await;
    let http = http_client();
    let ((leader, leader_jm), (standby, standby_jm), _) = leader_and_standby(&c, &http).await;
    let text = |s: &Sidecar| {
        let url = s.url("/metrics");
        let http = http.clone();
        async move {
            let response = http.get(url).send().await.expect("GET /metrics");
            assert_eq!(response.status(), StatusCode::OK);
            let kind = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
            response.text().await.unwrap()
        }
    };
    // One renewal at least (every 400 ms) before looking.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (l, s) = (text(&leader).await, text(&standby).await);
    assert!(
        l.contains("hakeeper_leader{component=\"dispatcher\"} 1"),
        "{l}"
    );
    assert!(
        s.contains("hakeeper_leader{component=\"dispatcher\"} 0"),
        "{s}"
    );
    assert!(
        l.contains("hakeeper_renew_duration_seconds_count{component=\"dispatcher\"}"),
        "{l}"
    );
    assert!(
        l.contains(&format!(
            "hakeeper_configmap_data_bytes{{configmap=\"{DISPATCHER_CM}\"}}"
        )),
        "{l}"
    );
    let ready = |s: &Sidecar| http.get(s.url("/readyz?leader=dispatcher")).send();
    assert_eq!(ready(&leader).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        ready(&standby).await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    drop((leader, standby));
    drop((leader_jm, standby_jm));
    c.cleanup().await;
}

/// `--flink-conf`: the cluster id, namespace, storage dir and timings come from Flink's file
/// when no flag or environment variable gives them; a flag wins over the file; secrets in
/// the file never reach the log, even at debug level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flink_conf_fills_in_and_secrets_stay_out_of_the_log() {
    let c = TestCluster::start().await;
    let conf = c.path("config.yaml");
    let storage = c.path("ha");
    std::fs::write(
        &conf,
        format!(
            "kubernetes:\n  cluster-id: from-file\n  namespace: {ns}\nhigh-availability:\n  type: kubernetes\n  storageDir: file://{dir}\n  kubernetes.leader-election.lease-duration: 5 s\n  kubernetes.leader-election.renew-deadline: 1500 ms\n  kubernetes.leader-election.retry-period: 400 ms\ns3.access-key: AKIAFILEACCESSKEY\ns3.secret-key: file-secret-value-42\ntaskmanager.numberOfTaskSlots: 4\n",
            ns = c.namespace,
            dir = storage.display()
        ),
    )
    .unwrap();
    let stderr_path = c.path("sidecar-flinkconf.stderr");
    let flags = [
        "--listen",
        "127.0.0.1:0",
        "--log",
        "debug",
        "--lease-duration",
        "2s",
        "--contend",
        "dispatcher",
        "--address",
        "jm-file:6123",
        "--liveness",
        "none",
    ];
    let args: Vec<&std::ffi::OsStr> = flags
        .iter()
        .map(std::ffi::OsStr::new)
        .chain([
            "--flink-conf".as_ref(),
            conf.as_os_str(),
            "--kubeconfig".as_ref(),
            c.kubeconfig().as_os_str(),
        ])
        .collect();
    let (mut child, line) = spawn_sidecar(&args, &stderr_path).await;
    assert!(
        line.starts_with("hakeeper sidecar: local API on http://127.0.0.1:"),
        "{line}"
    );
    // The lock is in the file's namespace, under the file's cluster id, with the flag's lease.
    let api = c.api::<ConfigMap>();
    let record = eventually("the lock from the file's settings", ELECTION, || {
        let api = api.clone();
        async move {
            let cm = api
                .get_opt("from-file-dispatcher-leader")
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no ConfigMap yet")?;
            let raw = cm
                .metadata
                .annotations
                .and_then(|a| a.get(LEADER_ANNOTATION).cloned())
                .ok_or("no lock yet")?;
            LeaderRecord::parse(&raw).map_err(|e| e.to_string())
        }
    })
    .await;
    assert_eq!(
        record.lease_duration,
        Duration::from_secs(2),
        "the flag wins over the file"
    );
    let _ = child.start_kill();
    let _ = child.wait().await;
    let log = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(log.contains("effective configuration"), "{log}");
    assert!(
        log.contains("renew-deadline=1.5s") && log.contains("retry-period=400ms"),
        "{log}"
    );
    assert!(
        log.contains(&format!("storage-dir=file://{}", storage.display())),
        "{log}"
    );
    assert!(
        !log.contains("file-secret-value-42"),
        "the secret key was logged:\n{log}"
    );
    assert!(
        !log.contains("AKIAFILEACCESSKEY"),
        "the access key was logged:\n{log}"
    );
    c.cleanup().await;
}

/// An error that repeats (here the API server cut off after the sidecar started) is
/// retried with a growing backoff and logged once, not once per attempt; `/readyz` says what
/// is wrong, and is ready again once the API server answers.
#[tokio::test]
async fn a_persistent_api_error_is_logged_once_and_shown_by_readyz() {
    let c = TestCluster::start().await;
    let Some(server) = c.embedded("cutting the API server off") else {
        c.cleanup().await;
        return;
    };
    let (s, http) = leading_with_contend(&c, "errors").await;
    // The API server cut off: open connections dropped, new ones refused.
    server.faults().partition(Duration::from_secs(30));
    // Long enough for dozens of attempts at the first backoff (100 ms).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, body) = send(http.get(s.url("/readyz"))).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{body}\n{}",
        s.stderr_log()
    );
    assert_eq!(body["error"], "NotReady", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("dispatcher: "), "{body}");
    assert!(message.contains("error"), "{body}");
    let log = s.stderr_log();
    // Once per change of error: the cut may first cancel the open watch, then refuse new
    // ones, so there can be a few lines, but never the same error twice in a row; and a
    // few, not one per attempt (dozens in 4 s at the first backoff).
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("lock watch failed"))
        .map(|l| l.split(" error=").nth(1).unwrap_or(""))
        .collect();
    assert!(
        (1..=3).contains(&errors.len()),
        "{} lines:\n{log}",
        errors.len()
    );
    assert!(
        errors.windows(2).all(|w| w[0] != w[1]),
        "the same error logged twice in a row:\n{log}"
    );
    // Renewals fail, then acquisitions: each kind of error once, not once per attempt.
    let writes = log.matches("lock write failed").count();
    assert!((1..=3).contains(&writes), "{writes} lines:\n{log}");
    server.faults().heal();
    eventually("ready again", Duration::from_secs(10), || async {
        let (status, body) = send(http.get(s.url("/readyz"))).await;
        if status == StatusCode::OK {
            Ok(())
        } else {
            Err(body.to_string())
        }
    })
    .await;
    // The recovery is logged with the first event the new watch brings.
    eventually("the recovery logged", Duration::from_secs(10), || async {
        if s.stderr_log().contains("lock watch works again") {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    })
    .await;
    drop(s);
    c.cleanup().await;
}

/// An owner reference to an owner that does not exist would have the garbage collector delete
/// every HA ConfigMap as soon as it is created: the sidecar refuses to start, and creates
/// nothing.
#[tokio::test]
async fn an_owner_that_does_not_exist_is_refused_at_start() {
    let c = TestCluster::start().await;
    let stderr = refused_against(
        &c,
        c.kubeconfig(),
        &[
            "--contend",
            "dispatcher",
            "--address",
            "jm:1",
            "--liveness",
            "none",
            "--owner-reference",
            "ConfigMap/no-such-owner",
        ],
    )
    .await;
    assert!(
        stderr.contains("no ConfigMap \"no-such-owner\" exists"),
        "{stderr}"
    );
    assert!(stderr.contains("garbage collector"), "{stderr}");
    let lock = c
        .api::<ConfigMap>()
        .get_opt(DISPATCHER_CM)
        .await
        .expect("get");
    assert!(lock.is_none(), "nothing was created");
    c.cleanup().await;
}

/// A lock ConfigMap deleted again and again (as the garbage collector does while an owner is
/// missing) is recreated after a growing backoff, not at once in a loop; the HA state it held
/// is reported lost, in the log and the metrics, not silently recreated empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_deleted_again_and_again_is_recreated_with_backoff_and_lost_state_is_reported() {
    let c = TestCluster::start().await;
    let (s, http) = leading_with_contend(&c, "deleted").await;
    // HA state in the lock's ConfigMap, as the dispatcher keeps its job graphs there.
    let api = c.api::<ConfigMap>();
    api.patch(
        DISPATCHER_CM,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(
            json!({"data": {"jobGraph-0123456789abcdef0123456789abcdef": "x"}}),
        ),
    )
    .await
    .expect("patch");
    // Delete it whenever it exists, for six seconds.
    let mut deletions = 0;
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        if api.delete(DISPATCHER_CM, &Default::default()).await.is_ok() {
            deletions += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Retry period 0.4 s, doubling: recreated after about 0.4, 0.8, 1.6 and 3.2 s, so five
    // deletions at the most; recreating at once would give hundreds.
    assert!((2..=6).contains(&deletions), "{deletions} deletions in 6 s");
    let lost = s.metric(&http, "hakeeper_ha_state_lost_total").await;
    assert_eq!(lost, 1.0, "one deletion took HA state with it");
    let counted = s
        .metric(
            &http,
            "hakeeper_lock_deletions_total{component=\"dispatcher\"}",
        )
        .await;
    assert!(
        counted >= deletions as f64 - 1.0,
        "{counted} counted, {deletions} deleted"
    );
    let log = s.stderr_log();
    assert!(log.contains("HA state lost"), "{log}");
    assert!(log.contains("1 job graph"), "{log}");
    assert!(log.contains("deleted by a client"), "{log}");
    // The loss is an Event too, although the lock it is about was gone by then.
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = c.api();
    eventually("the Lost event", Duration::from_secs(5), || async {
        let notes: Vec<String> = events
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .filter_map(|e| e.note)
            .collect();
        if notes
            .iter()
            .any(|n| n.ends_with("stopped leading: lost (lock deleted)"))
        {
            Ok(())
        } else {
            Err(format!("{notes:?}"))
        }
    })
    .await;
    drop(s);
    c.cleanup().await;
}

/// The sidecar asks the API server (SelfSubjectAccessReview) for every permission it will use
/// and refuses to start without one, naming each missing one and a Role that grants them;
/// with exactly the sidecar's permissions it starts and leads (so it uses no other).
#[tokio::test]
async fn missing_permissions_are_refused_at_start_and_the_sidecars_own_suffice() {
    let c = TestCluster::start_with(hakeeper::apiserver::DevServerConfig {
        token: Some("admin-token".into()),
        restricted: common::restricted_users(),
        ..Default::default()
    })
    .await;
    let (Some(reader), Some(sidecar)) = (
        c.restricted_kubeconfig("reader"),
        c.restricted_kubeconfig("sidecar"),
    ) else {
        c.cleanup().await;
        return;
    };
    let stderr = refused_against(
        &c,
        &reader,
        &[
            "--contend",
            "dispatcher",
            "--address",
            "jm:1",
            "--liveness",
            "none",
        ],
    )
    .await;
    for says in [
        "missing permissions in namespace",
        "watch configmaps (core)",
        "create configmaps (core)",
        "update configmaps (core)",
        // Events are optional (a warning), but the Role shown grants them too.
        "no permission to record Events",
        "- {apiGroups: [\"events.k8s.io\"], resources: [events], verbs: [create, patch]}",
        "kind: Role",
    ] {
        assert!(stderr.contains(says), "{says:?} not in {stderr}");
    }
    assert!(!stderr.contains("get configmaps (core)"), "{stderr}");
    // Credentials the API server does not take: a start-up error too.
    let text = std::fs::read_to_string(c.kubeconfig()).expect("kubeconfig");
    let wrong = c.path("wrong.kubeconfig");
    std::fs::write(&wrong, common::with_token(&text, "not-a-valid-token")).unwrap();
    let stderr = refused_against(&c, &wrong, &[]).await;
    assert!(stderr.contains("SelfSubjectAccessReview"), "{stderr}");
    assert!(stderr.contains("Unauthorized"), "{stderr}");
    // Exactly the sidecar's permissions: it starts, leads and records its Event.
    let stderr_path = c.path("sidecar-rbac.stderr");
    let flags = [
        "--cluster-id",
        CLUSTER_ID,
        "--namespace",
        &c.namespace,
        "--listen",
        "127.0.0.1:0",
        "--contend",
        "dispatcher",
        "--address",
        "jm:1",
        "--liveness",
        "none",
    ];
    let args: Vec<&std::ffi::OsStr> = flags
        .iter()
        .map(std::ffi::OsStr::new)
        .chain(["--kubeconfig".as_ref(), sidecar.as_os_str()])
        .chain(TIMINGS.iter().map(std::ffi::OsStr::new))
        .collect();
    let (mut child, line) = spawn_sidecar(&args, &stderr_path).await;
    let base = line
        .strip_prefix("hakeeper sidecar: local API on ")
        .unwrap_or_else(|| panic!("not started: {line:?}"))
        .to_string();
    let http = http_client();
    eventually(
        "leading with the sidecar's permissions",
        ELECTION,
        || async {
            let (_, v) = send(http.get(format!("{base}/v1/leadership/dispatcher"))).await;
            if v["isLeader"] == true {
                Ok(())
            } else {
                Err(v.to_string())
            }
        },
    )
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(!log.contains("forbidden"), "{log}");
    assert!(!log.contains("could not record"), "{log}");
    c.cleanup().await;
}

/// A sidecar that contends for the dispatcher from the start (`--contend`, no liveness
/// dependency), once it leads; and an HTTP client for it.
async fn leading_with_contend(c: &TestCluster, name: &str) -> (SidecarProcess, reqwest::Client) {
    let s = SidecarProcess::start(
        c,
        CLUSTER_ID,
        name,
        &[
            "--contend",
            "dispatcher",
            "--address",
            "jm:1",
            "--liveness",
            "none",
        ],
    )
    .await;
    let http = http_client();
    s.leading(&http, "dispatcher").await;
    (s, http)
}

/// Start a sidecar of the test namespace with `kubeconfig` and `extra` flags, expecting it to
/// refuse to start (within 10 s); its standard error.
async fn refused_against(c: &TestCluster, kubeconfig: &std::path::Path, extra: &[&str]) -> String {
    let output = hakeeper()
        .arg("sidecar")
        .args(["--cluster-id", CLUSTER_ID, "--namespace", &c.namespace])
        .args(["--listen", "127.0.0.1:0"])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(extra)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(10), output)
        .await
        .expect("exits")
        .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{stderr}");
    stderr
}
