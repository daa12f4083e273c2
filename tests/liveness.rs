//! Leadership lives and dies with the JobManager: real `hakeeper sidecar` processes, and the
//! demo's simulated JobManager as real processes where a process dies or hangs, through the
//! embedded API server (or a real cluster with HAKEEPER_TEST_KUBECONFIG). Every wait is
//! bounded.

mod common;

use std::time::{Duration, Instant};

use common::TestCluster;
use common::client::JobManagerClient;
use common::process::{
    CLIENT_TIMEOUT, JobManagerProcess, LEASE, SidecarProcess, eventually, http_client, send, signal,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const JOB: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";

/// `PUT /v1/leadership/{component}` on `s` for `client`; the answer.
async fn contend(
    s: &SidecarProcess,
    client: &JobManagerClient,
    component: &str,
) -> (reqwest::StatusCode, Value) {
    send(
        client.on(http_client()
            .put(s.url(&format!("/v1/leadership/{component}")))
            .json(&json!({"address": format!("{}-{component}", s.name)}))),
    )
    .await
}

/// The JobManager events of `examples/jobmanager.rs` as they arrive, with what they tell.
struct Timeline {
    rx: mpsc::UnboundedReceiver<(Instant, String, Value)>,
    seen: Vec<(Instant, String, Value)>,
}

impl Timeline {
    fn new() -> (Timeline, mpsc::UnboundedSender<(Instant, String, Value)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Timeline {
                rx,
                seen: Vec::new(),
            },
            tx,
        )
    }

    /// Read events until `done` holds, at most `within`.
    async fn until(&mut self, what: &str, within: Duration, done: impl Fn(&Timeline) -> bool) {
        let deadline = Instant::now() + within;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(e)) => self.seen.push(e),
                _ => panic!(
                    "timed out after {within:?} waiting for {what}; events: {:#?}",
                    self.seen
                ),
            }
        }
    }

    fn of<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a Instant, &'a str, &'a Value)> + 'a {
        self.seen
            .iter()
            .filter_map(move |(at, who, v)| v.get(kind).map(|d| (at, who.as_str(), d)))
    }

    /// Acknowledged checkpoint ids: (when, who, id).
    fn acked(&self) -> Vec<(Instant, String, u64)> {
        self.of("Checkpoint")
            .map(|(at, who, d)| (*at, who.to_string(), d["id"].as_u64().unwrap_or(0)))
            .collect()
    }

    /// Recoveries by the job's new leaders: (when, who, checkpoint id).
    fn recovered(&self) -> Vec<(Instant, String, Option<u64>)> {
        self.of("Recovered")
            .map(|(at, who, d)| (*at, who.to_string(), d["checkpoint"].as_u64()))
            .collect()
    }

    /// Who leads the job's component last, by the events.
    fn job_leader(&self) -> Option<String> {
        let component = format!("jobmanager/{JOB}");
        self.of("Leading")
            .filter(|(_, _, d)| d["component"] == component.as_str())
            .last()
            .map(|(_, who, _)| who.to_string())
    }

    /// The session `who` last led `component` with.
    fn session_of(&self, who: &str, component: &str) -> Option<String> {
        self.of("Leading")
            .filter(|(_, w, d)| *w == who && d["component"] == component)
            .last()
            .and_then(|(_, _, d)| d["session"].as_str().map(str::to_string))
    }
}

/// Two pods (a sidecar with file storage and a JobManager process each) and a job that
/// checkpoints every 100 ms; returns once one of them leads the job and has acknowledged three
/// checkpoints.
struct Pods {
    c: TestCluster,
    _storage: tempfile::TempDir,
    sidecars: Vec<SidecarProcess>,
    jobmanagers: Vec<Option<JobManagerProcess>>,
    timeline: Timeline,
    tx: mpsc::UnboundedSender<(Instant, String, Value)>,
}

impl Pods {
    async fn start(cluster_id: &str) -> Pods {
        let c = TestCluster::start().await;
        let storage = tempfile::tempdir().expect("storage dir");
        let url = format!("file://{}", storage.path().display());
        let mut sidecars = Vec::new();
        for name in ["jm-0", "jm-1"] {
            sidecars
                .push(SidecarProcess::start(&c, cluster_id, name, &["--storage-dir", &url]).await);
        }
        let (timeline, tx) = Timeline::new();
        let jobmanagers = sidecars
            .iter()
            .map(|s| Some(JobManagerProcess::start(s, JOB, tx.clone())))
            .collect();
        let mut pods = Pods {
            c,
            _storage: storage,
            sidecars,
            jobmanagers,
            timeline,
            tx,
        };
        pods.timeline
            .until(
                "a job leader and three checkpoints",
                Duration::from_secs(20),
                |t| t.job_leader().is_some() && t.acked().len() >= 3,
            )
            .await;
        pods
    }

    /// The job's leader, by name and index.
    fn job_leader(&self) -> (String, usize) {
        let name = self.timeline.job_leader().expect("a job leader");
        let i = self
            .sidecars
            .iter()
            .position(|s| s.name == name)
            .expect("a pod of that name");
        (name, i)
    }

    /// Kill every process, then remove what the test made in the cluster.
    async fn stop(self) {
        drop(self.jobmanagers);
        drop(self.sidecars);
        self.c.cleanup().await;
    }

    fn jobmanager(&self, i: usize) -> &JobManagerProcess {
        self.jobmanagers[i].as_ref().expect("a JobManager process")
    }

    /// Wait until a JobManager other than `victim` leads the job and recovered after `since`;
    /// the recovery.
    async fn takeover(
        &mut self,
        victim: &str,
        since: Instant,
        within: Duration,
    ) -> (Instant, String, Option<u64>) {
        let victim = victim.to_string();
        self.timeline
            .until("a takeover by the other pod", within, |t| {
                t.job_leader().is_some_and(|l| l != victim)
                    && t.recovered().last().is_some_and(|(at, _, _)| *at > since)
            })
            .await;
        self.timeline
            .recovered()
            .last()
            .cloned()
            .expect("a recovery")
    }
}

/// The JobManager process dies while its sidecar lives: the stream closes, the sidecar
/// releases at once, and the other pod's JobManager leads and recovers the newest
/// acknowledged checkpoint, well before the old lease could have run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobmanager_crash_with_its_sidecar_alive_hands_over_at_once() {
    let mut pods = Pods::start("live-crash").await;
    let http = http_client();
    let (victim, v) = pods.job_leader();
    let last_acked = pods.timeline.acked().last().map(|(_, _, id)| *id);
    let killed = Instant::now();
    signal(&pods.jobmanager(v).child, "-KILL");
    // Lease expiry could not hand over before LEASE; a release does.
    let (at, by, recovered) = pods.takeover(&victim, killed, LEASE).await;
    assert_ne!(by, victim);
    assert_eq!(recovered, last_acked, "the newest acknowledged checkpoint");
    assert!(at.duration_since(killed) < LEASE);
    let lost: Vec<u64> = pods
        .timeline
        .acked()
        .iter()
        .filter(|(a, _, id)| *a < killed && Some(*id) > recovered)
        .map(|(_, _, id)| *id)
        .collect();
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    // The victim's sidecar says why, and counts it.
    let state = pods.sidecars[v].state(&http, "dispatcher").await;
    assert_eq!(state["contending"], false, "{state}");
    assert_eq!(state["lastRelease"]["reason"], "client_gone", "{state}");
    // It led the dispatcher and the job (only the dispatcher leader runs the job), so at
    // least those two were released.
    let released = pods.sidecars[v]
        .metric(
            &http,
            "hakeeper_leadership_releases_total{reason=\"client_gone\"}",
        )
        .await;
    assert!(released >= 2.0, "{released} releases counted");
    // The new leader keeps checkpointing from the next id.
    pods.timeline
        .until(
            "a checkpoint after the takeover",
            Duration::from_secs(5),
            |t| {
                t.acked()
                    .iter()
                    .any(|(a, _, id)| *a > at && Some(*id) > recovered)
            },
        )
        .await;
    pods.stop().await;
}

/// The JobManager hangs (SIGSTOP): its stream stays open, its keepalives stop; the sidecar
/// releases after the client timeout, not before. Resumed (SIGCONT), it learns it was
/// released, and what it still sends with its old session is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobmanager_hang_is_released_after_the_client_timeout_and_writes_nothing_after() {
    let mut pods = Pods::start("live-hang").await;
    let http = http_client();
    let (victim, v) = pods.job_leader();
    let component = format!("jobmanager/{JOB}");
    let old_session = pods
        .timeline
        .session_of(&victim, &component)
        .expect("the victim's session");
    let stopped = Instant::now();
    signal(&pods.jobmanager(v).child, "-STOP");
    let (at, _, recovered) = pods
        .takeover(&victim, stopped, CLIENT_TIMEOUT + LEASE)
        .await;
    // Its last keepalive was at most a quarter of the timeout before the stop.
    let waited = at.duration_since(stopped);
    assert!(
        waited >= CLIENT_TIMEOUT * 3 / 4 - Duration::from_millis(50),
        "released after {waited:?}, before the client timeout could have passed"
    );
    let state = pods.sidecars[v].state(&http, "dispatcher").await;
    assert_eq!(state["lastRelease"]["reason"], "client_timeout", "{state}");
    // A write with the old session, from anyone, is refused: the sidecar no longer contends.
    let (status, body) = send(
        http.post(pods.sidecars[v].url(&format!("/v1/jobs/{JOB}/checkpoints/999999")))
            .header("Hakeeper-Session", &old_session)
            .body("late"),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "NotLeader", "{body}");
    let resumed = Instant::now();
    signal(&pods.jobmanager(v).child, "-CONT");
    pods.timeline
        .until(
            "the resumed JobManager to learn it was released",
            Duration::from_secs(10),
            |t| {
                t.of("Released")
                    .any(|(a, who, _)| *a >= resumed && who == victim)
            },
        )
        .await;
    // Let it run a little as a standby, then check that nothing it wrote after the takeover
    // was acknowledged.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(e) = pods.timeline.rx.try_recv() {
        pods.timeline.seen.push(e);
    }
    let late: Vec<u64> = pods
        .timeline
        .acked()
        .iter()
        .filter(|(a, who, id)| *a >= resumed && *who == victim && Some(*id) > recovered)
        .map(|(_, _, id)| *id)
        .collect();
    assert!(late.is_empty(), "the deposed JobManager wrote {late:?}");
    pods.stop().await;
}

/// The JobManager restarts in the same pod after the other pod took over: a new client, a
/// standby; the old client's release never touches the new one's contention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_jobmanager_is_a_new_client_and_a_standby() {
    let mut pods = Pods::start("live-restart").await;
    let http = http_client();
    let (victim, v) = pods.job_leader();
    let killed = Instant::now();
    signal(&pods.jobmanager(v).child, "-KILL");
    pods.takeover(&victim, killed, LEASE).await;
    // Restarted (a JVM takes longer to start than the takeover takes).
    pods.jobmanagers[v] = Some(JobManagerProcess::start(
        &pods.sidecars[v],
        JOB,
        pods.tx.clone(),
    ));
    pods.timeline
        .until(
            "the restarted JobManager to register",
            Duration::from_secs(10),
            |t| {
                t.of("Registered")
                    .any(|(a, who, _)| *a >= killed && who == victim)
            },
        )
        .await;
    let new_client = pods
        .timeline
        .of("Registered")
        .filter(|(a, who, _)| **a >= killed && *who == victim)
        .last()
        .and_then(|(_, _, d)| d["client"].as_str().map(str::to_string))
        .expect("the new client id");
    let sidecar = &pods.sidecars[v];
    let view = eventually(
        "the new client to contend",
        Duration::from_secs(5),
        || async {
            let s = sidecar.state(&http, "dispatcher").await;
            if s["clientId"] == new_client.as_str() {
                Ok(s)
            } else {
                Err(s.to_string())
            }
        },
    )
    .await;
    assert_eq!(view["contending"], true, "{view}");
    assert_eq!(view["isLeader"], false, "a standby: {view}");
    // Some time later (past the client timeout), it still contends: nothing of the old
    // client's end reached it.
    tokio::time::sleep(CLIENT_TIMEOUT + Duration::from_millis(300)).await;
    let later = sidecar.state(&http, "dispatcher").await;
    assert_eq!(later["clientId"], new_client.as_str(), "{later}");
    assert_eq!(later["contending"], true, "{later}");
    let (status, client) = send(http.get(sidecar.url(&format!("/v1/clients/{new_client}")))).await;
    assert_eq!(status, 200, "{client}");
    assert!(
        client["components"]
            .as_array()
            .is_some_and(|c| c.iter().any(|x| x == "dispatcher")),
        "{client}"
    );
    pods.stop().await;
}

/// Two clients on one sidecar: one going releases only what it held.
#[tokio::test]
async fn two_clients_on_one_sidecar_are_independent() {
    let c = TestCluster::start().await;
    let s = SidecarProcess::start(&c, "live-two", "jm-0", &[]).await;
    let http = http_client();
    let dispatcher_side = JobManagerClient::start(&s.base, "dispatcher side").await;
    let mut job_side = JobManagerClient::start(&s.base, "job side").await;
    let job = format!("jobmanager/{JOB}");
    assert_eq!(contend(&s, &dispatcher_side, "dispatcher").await.0, 202);
    assert_eq!(contend(&s, &job_side, &job).await.0, 202);
    // The other client cannot take a component held for the first.
    let (status, body) = contend(&s, &job_side, "dispatcher").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "Conflict", "{body}");
    for component in ["dispatcher", job.as_str()] {
        s.leading(&http, component).await;
    }
    let dispatcher_client = dispatcher_side.id.clone();
    drop(dispatcher_side);
    eventually(
        "the dispatcher released",
        Duration::from_secs(5),
        || async {
            let v = s.state(&http, "dispatcher").await;
            if v["contending"] == false && v["lastRelease"]["reason"] == "client_gone" {
                Ok(())
            } else {
                Err(v.to_string())
            }
        },
    )
    .await;
    let v = s.state(&http, &job).await;
    assert_eq!(v["isLeader"], true, "{v}");
    assert_eq!(v["clientId"], job_side.id.as_str(), "{v}");
    // The job side's stream did not say anything about the dispatcher.
    while let Some((event, data)) = job_side.next_event(Duration::from_millis(100)).await {
        assert_ne!(data["component"], "dispatcher", "{event}: {data}");
        assert_ne!(event, "released", "{data}");
    }
    let (status, body) =
        send(http.post(s.url(&format!("/v1/clients/{dispatcher_client}/keepalive")))).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"], "ClientReleased", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("client_gone"),
        "{body}"
    );
    drop(job_side);
    drop(s);
    c.cleanup().await;
}

/// A client that never opens a stream is held by its calls alone: it leads while it calls,
/// and is released a timeout after its last call. Its stream-less release is announced to
/// nobody but the state.
#[tokio::test]
async fn a_client_without_a_stream_is_released_by_the_timeout() {
    let c = TestCluster::start().await;
    let s = SidecarProcess::start(&c, "live-nostream", "jm-0", &[]).await;
    let http = http_client();
    let client = JobManagerClient::register(&s.base, "no stream").await;
    assert_eq!(contend(&s, &client, "dispatcher").await.0, 202);
    // Calls with the header count as life: for three timeouts, a GET every timeout / 3.
    let until = Instant::now() + CLIENT_TIMEOUT * 3;
    let mut led = false;
    while Instant::now() < until {
        let (status, v) = send(
            http.get(s.url("/v1/leadership/dispatcher"))
                .header("Hakeeper-Client", &client.id),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["contending"], true, "released while calling: {v}");
        led |= v["isLeader"] == true;
        tokio::time::sleep(CLIENT_TIMEOUT / 3).await;
    }
    assert!(led, "it led while it called");
    let silent = Instant::now();
    let v = eventually("the release", CLIENT_TIMEOUT * 3, || async {
        let v = s.state(&http, "dispatcher").await;
        if v["contending"] == false {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    })
    .await;
    assert!(
        silent.elapsed() >= CLIENT_TIMEOUT * 2 / 3,
        "released after {:?}",
        silent.elapsed()
    );
    assert_eq!(v["lastRelease"]["reason"], "client_timeout", "{v}");
    drop(s);
    c.cleanup().await;
}

/// A client that half-closes its stream's connection (shuts its writing side) is gone, like
/// one whose process died: the sidecar does not wait for the timeout.
#[tokio::test]
async fn a_half_closed_stream_ends_the_client() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = TestCluster::start().await;
    let s = SidecarProcess::start(&c, "live-halfclose", "jm-0", &[]).await;
    let http = http_client();
    let client = JobManagerClient::register(&s.base, "half-closer").await;
    let addr = s.base.strip_prefix("http://").expect("http base");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /v1/clients/{}/events HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n\r\n",
        client.id
    );
    conn.write_all(request.as_bytes()).await.expect("request");
    let mut head = [0u8; 512];
    let n = conn.read(&mut head).await.expect("response");
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
    assert_eq!(contend(&s, &client, "dispatcher").await.0, 202);
    // Each poll carries the client's id: it shows life while it waits.
    eventually("leading", Duration::from_secs(10), || async {
        let (_, v) = send(client.on(http.get(s.url("/v1/leadership/dispatcher")))).await;
        if v["isLeader"] == true {
            Ok(())
        } else {
            Err(v.to_string())
        }
    })
    .await;
    conn.shutdown().await.expect("half-close");
    let v = eventually("the release", CLIENT_TIMEOUT / 2, || async {
        let v = s.state(&http, "dispatcher").await;
        if v["contending"] == false {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    })
    .await;
    assert_eq!(v["lastRelease"]["reason"], "client_gone", "{v}");
    drop(s);
    c.cleanup().await;
}

/// A released client's stream ends with the state of what it contended for, as no longer
/// its (never the state of whoever contends now), then why, then nothing.
#[tokio::test]
async fn a_released_clients_stream_ends_with_its_states_and_why() {
    let c = TestCluster::start().await;
    let s = SidecarProcess::start(&c, "live-closing", "jm-0", &[]).await;
    let mut hung = JobManagerClient::start(&s.base, "hung").await;
    assert_eq!(contend(&s, &hung, "dispatcher").await.0, 202);
    let led = loop {
        let (event, data) = hung
            .next_event(Duration::from_secs(10))
            .await
            .expect("leadership events");
        if event == "leadership" && data["isLeader"] == true {
            break data;
        }
    };
    assert_eq!(led["clientId"], hung.id.as_str(), "{led}");
    hung.hang();
    // Another client of the same sidecar takes the component once the hung one is gone.
    let next = JobManagerClient::start(&s.base, "next").await;
    eventually(
        "the other client to contend",
        CLIENT_TIMEOUT * 3,
        || async {
            match contend(&s, &next, "dispatcher").await {
                (status, _) if status == 202 => Ok(()),
                (status, body) => Err(format!("{status} {body}")),
            }
        },
    )
    .await;
    let mut closing = Vec::new();
    while let Some(e) = hung.next_event(Duration::from_secs(5)).await {
        closing.push(e);
    }
    let (last, why) = closing.last().cloned().expect("closing events");
    assert_eq!(last, "released", "{closing:?}");
    assert_eq!(why["reason"], "client_timeout", "{why}");
    let (_, final_state) = closing
        .iter()
        .rev()
        .find(|(e, _)| e == "leadership")
        .cloned()
        .expect("a last leadership event");
    assert_eq!(final_state["contending"], false, "{final_state}");
    assert_eq!(final_state["isLeader"], false, "{final_state}");
    assert_eq!(final_state["sessionId"], Value::Null, "{final_state}");
    assert_eq!(final_state["clientId"], Value::Null, "{final_state}");
    assert_eq!(
        final_state["lastRelease"]["reason"], "client_timeout",
        "{final_state}"
    );
    assert!(
        closing
            .iter()
            .all(|(_, d)| d["clientId"] != next.id.as_str()),
        "another client's state on this stream: {closing:?}"
    );
    drop(next);
    drop(s);
    c.cleanup().await;
}

/// A client that ends itself with DELETE and hangs up at once (a JobManager's shutdown hook)
/// still has its lock released by compare-and-swap, not left to run out.
#[tokio::test]
async fn a_delete_whose_caller_hangs_up_still_releases_the_lock() {
    use tokio::io::AsyncWriteExt;
    let c = TestCluster::start().await;
    let s = SidecarProcess::start(&c, "live-delete", "jm-0", &[]).await;
    let http = http_client();
    let client = JobManagerClient::start(&s.base, "leaving").await;
    assert_eq!(contend(&s, &client, "dispatcher").await.0, 202);
    s.leading(&http, "dispatcher").await;
    // On the embedded server, slow every API call down, so that the release's
    // compare-and-swap is still on its way when the caller has long hung up. (A real server
    // is not slowed; the release is then merely checked.)
    if let Some(server) = c.server.as_ref() {
        server.faults().set_latency(Duration::from_millis(200));
    }
    let addr = s.base.strip_prefix("http://").expect("http base");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "DELETE /v1/clients/{} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\n\r\n",
        client.id
    );
    conn.write_all(request.as_bytes()).await.expect("request");
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(conn);
    let configmaps = c.api::<k8s_openapi::api::core::v1::ConfigMap>();
    eventually("the lock released", Duration::from_secs(5), || async {
        let cm = configmaps
            .get("live-delete-dispatcher-leader")
            .await
            .map_err(|e| e.to_string())?;
        let record: Value = cm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(hakeeper::lease::LEADER_ANNOTATION))
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default();
        if record["holderIdentity"] == "" {
            Ok(())
        } else {
            Err(record.to_string())
        }
    })
    .await;
    drop(client);
    drop(s);
    c.cleanup().await;
}

/// Bad input about clients gets a clear JSON error, never a panic or a leadership.
#[tokio::test]
async fn bad_client_input_gets_clear_json_errors() {
    let c = TestCluster::start().await;
    let s = SidecarProcess::start(&c, "live-bad", "jm-0", &[]).await;
    let http = http_client();
    let unknown = uuid::Uuid::new_v4();
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            http.post(s.url(&format!("/v1/clients/{unknown}/keepalive"))),
            404,
            "UnknownClient",
        ),
        (
            http.post(s.url("/v1/clients/not-a-uuid/keepalive")),
            400,
            "BadRequest",
        ),
        (
            http.get(s.url(&format!("/v1/clients/{unknown}"))),
            404,
            "UnknownClient",
        ),
        (
            http.get(s.url(&format!("/v1/clients/{unknown}/events"))),
            404,
            "UnknownClient",
        ),
        (
            http.delete(s.url(&format!("/v1/clients/{unknown}"))),
            404,
            "UnknownClient",
        ),
        (
            http.post(s.url("/v1/clients")).body("{\"nmae\": 1}"),
            400,
            "BadRequest",
        ),
        (
            http.post(s.url("/v1/clients")).body("\u{0}garbage"),
            400,
            "BadRequest",
        ),
        (
            http.put(s.url("/v1/leadership/dispatcher"))
                .json(&json!({"address": "a"})),
            400,
            "ClientRequired",
        ),
        (
            http.put(s.url("/v1/leadership/dispatcher"))
                .header("Hakeeper-Client", "nope")
                .json(&json!({"address": "a"})),
            400,
            "BadRequest",
        ),
        (
            http.put(s.url("/v1/leadership/dispatcher"))
                .header("Hakeeper-Client", unknown.to_string())
                .json(&json!({"address": "a"})),
            404,
            "UnknownClient",
        ),
    ];
    for (request, status, kind) in cases {
        let (got, body) = send(request).await;
        assert_eq!(
            (got.as_u16(), body["error"].as_str()),
            (status, Some(kind)),
            "{body}"
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    // A client that ended itself: everything it held is released before the answer, and it
    // is told apart from an unknown one afterwards.
    let client = JobManagerClient::register(&s.base, "leaver").await;
    assert_eq!(contend(&s, &client, "dispatcher").await.0, 202);
    let (status, body) = send(http.delete(s.url(&format!("/v1/clients/{}", client.id)))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["components"], json!(["dispatcher"]), "{body}");
    let v = s.state(&http, "dispatcher").await;
    assert_eq!(v["contending"], false, "{v}");
    assert_eq!(v["lastRelease"]["reason"], "api_delete", "{v}");
    for request in [
        http.post(s.url(&format!("/v1/clients/{}/keepalive", client.id))),
        http.put(s.url("/v1/leadership/dispatcher"))
            .header("Hakeeper-Client", &client.id)
            .json(&json!({"address": "a"})),
    ] {
        let (status, body) = send(request).await;
        assert_eq!(status, 410, "{body}");
        assert_eq!(body["error"], "ClientReleased", "{body}");
    }
    assert!(
        s.state(&http, "dispatcher").await["contending"] == false,
        "a released client's PUT contends for nothing"
    );
    drop(s);
    c.cleanup().await;
}

/// A JobManager's HTTP endpoint whose answer the test sets: 200, 500, a hang, or closed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Health {
    Ok,
    Fail,
    Hang,
}

struct FakeJobManager {
    url: String,
    health: tokio::sync::watch::Sender<Health>,
    probes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeJobManager {
    async fn start() -> FakeJobManager {
        use axum::extract::State;
        let (health, rx) = tokio::sync::watch::channel(Health::Ok);
        let probes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = probes.clone();
        let app = axum::Router::new()
            .route(
                "/config",
                axum::routing::get(
                    |State((rx, n)): State<(
                        tokio::sync::watch::Receiver<Health>,
                        std::sync::Arc<std::sync::atomic::AtomicUsize>,
                    )>| async move {
                        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let h = *rx.borrow();
                        match h {
                            Health::Ok => axum::http::StatusCode::OK,
                            Health::Fail => axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            Health::Hang => {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                                axum::http::StatusCode::OK
                            }
                        }
                    },
                ),
            )
            .with_state((rx, counted));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/config", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeJobManager {
            url,
            health,
            probes,
            server,
        }
    }

    fn probes(&self) -> usize {
        self.probes.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn released_by_liveness(
    s: &SidecarProcess,
    http: &reqwest::Client,
    within: Duration,
) -> Value {
    eventually("the liveness release", within, || async {
        let v = s.state(http, "dispatcher").await;
        if v["contending"] == false && v["lastRelease"]["reason"] == "liveness_failed" {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    })
    .await
}

/// `--contend` with `--liveness-url`: fewer failures in a row than the threshold release
/// nothing; the threshold releases; an answer again contends again; a hang (past the probe
/// timeout) and a refused connection count as failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_probe_releases_and_contends_again() {
    let c = TestCluster::start().await;
    let mut jm = FakeJobManager::start().await;
    let s = SidecarProcess::start(
        &c,
        "live-probe",
        "jm-0",
        &[
            "--contend",
            "dispatcher",
            "--address",
            "jm-0:6123",
            "--liveness-url",
            &jm.url,
            "--liveness-failures",
            "3",
            "--liveness-timeout",
            "200ms",
        ],
    )
    .await;
    let http = http_client();
    s.leading(&http, "dispatcher").await;
    let series = "hakeeper_leadership_releases_total{reason=\"liveness_failed\"}";
    // Two failures in a row, then an answer: nothing released.
    let before = jm.probes();
    jm.health.send_replace(Health::Fail);
    eventually("two failed probes", Duration::from_secs(5), || async {
        if jm.probes() >= before + 2 {
            Ok(())
        } else {
            Err(format!("{} probes", jm.probes() - before))
        }
    })
    .await;
    jm.health.send_replace(Health::Ok);
    let after = jm.probes();
    eventually("a good probe", Duration::from_secs(5), || async {
        if jm.probes() > after {
            Ok(())
        } else {
            Err("no probe".into())
        }
    })
    .await;
    let v = s.state(&http, "dispatcher").await;
    assert_eq!(v["isLeader"], true, "{v}");
    assert_eq!(s.metric(&http, series).await, 0.0);
    // Failing for good: released.
    jm.health.send_replace(Health::Fail);
    released_by_liveness(&s, &http, Duration::from_secs(5)).await;
    assert_eq!(s.metric(&http, series).await, 1.0);
    // Answers again: contends again, and leads (nobody else does).
    jm.health.send_replace(Health::Ok);
    s.leading(&http, "dispatcher").await;
    // Hangs past the probe timeout: released again.
    jm.health.send_replace(Health::Hang);
    released_by_liveness(&s, &http, Duration::from_secs(5)).await;
    jm.health.send_replace(Health::Ok);
    s.leading(&http, "dispatcher").await;
    // Gone: connections refused.
    jm.server.abort();
    let _ = (&mut jm.server).await;
    released_by_liveness(&s, &http, Duration::from_secs(5)).await;
    assert!(s.stderr_log().contains("liveness probe failed"));
    drop(s);
    c.cleanup().await;
}

/// `--contend` must name what its leadership depends on.
#[tokio::test]
async fn contend_without_liveness_is_refused_at_start() {
    let out = common::process::hakeeper()
        .args([
            "sidecar",
            "--cluster-id",
            "c",
            "--contend",
            "dispatcher",
            "--address",
            "a:1",
        ])
        .args(["--kubeconfig", "/nonexistent"])
        .output()
        .await
        .expect("running hakeeper");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--liveness-url"), "{stderr}");
    assert!(stderr.contains("--liveness none"), "{stderr}");
    let out = common::process::hakeeper()
        .args([
            "sidecar",
            "--cluster-id",
            "c",
            "--contend",
            "dispatcher",
            "--address",
            "a:1",
        ])
        .args([
            "--liveness-url",
            "https://jm:8081/",
            "--kubeconfig",
            "/nonexistent",
        ])
        .output()
        .await
        .expect("running hakeeper");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("only http://"), "{stderr}");
}
