//! The stores through the sidecar's local API: a sidecar in process, served on loopback,
//! against the embedded API server and an in-process S3 server (or `file://`). A second
//! sidecar plays the standby.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestCluster;
use common::client::JobManagerClient;
use common::faults::FaultyStore;
use common::s3::S3Server;
use hakeeper::handle;
use hakeeper::layout::ClusterId;
use hakeeper::lease::Timings;
use hakeeper::sidecar::{Sidecar, SidecarConfig, StoreSettings};
use hakeeper::storage::{Location, ObjectStore};
use hakeeper::stores::Payloads;
use k8s_openapi::api::core::v1::ConfigMap;
use reqwest::StatusCode;
use serde_json::{Value, json};

const CLUSTER: &str = "flink-stores";
const JOB: &str = "5c1a9f0e2b7d4c3a8e6f1d0b9a8c7e6f";
const TIMINGS: Timings = Timings {
    lease_duration: Duration::from_secs(3),
    renew_deadline: Duration::from_secs(2),
    retry_period: Duration::from_millis(500),
};

struct Local {
    sidecar: Sidecar,
    base: String,
    server: tokio::task::JoinHandle<()>,
}

impl Local {
    async fn start(
        c: &TestCluster,
        storage: Arc<dyn ObjectStore>,
        dir: &Location,
        retained: usize,
    ) -> Local {
        Self::start_with(c, storage, dir, retained, TIMINGS).await
    }

    async fn start_with(
        c: &TestCluster,
        storage: Arc<dyn ObjectStore>,
        dir: &Location,
        retained: usize,
        timings: Timings,
    ) -> Local {
        let cluster_id: ClusterId = CLUSTER.parse().unwrap();
        let mut payloads = Payloads::new(storage, dir, &cluster_id);
        payloads.max_payload_bytes = 1 << 20;
        let sidecar = Sidecar::new(SidecarConfig {
            client: c.fresh_client().await,
            namespace: c.namespace.clone(),
            cluster_id,
            identity: uuid::Uuid::new_v4().to_string(),
            timings,
            owner: None,
            stores: Some(StoreSettings {
                payloads,
                checkpoints_retained: retained,
                strict_recovery: false,
            }),
            // As `hakeeper sidecar` without --client-timeout.
            client_timeout: timings.renew_deadline,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = hakeeper::sidecar::router(sidecar.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Local {
            sidecar,
            base,
            server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A JobManager client of this sidecar (registered, its event stream open, kept alive).
    async fn client(&self) -> JobManagerClient {
        JobManagerClient::start(&self.base, "jm").await
    }

    /// Contend for `component` on behalf of `client` and wait until this sidecar leads it;
    /// its session.
    async fn lead(
        &self,
        http: &reqwest::Client,
        client: &JobManagerClient,
        component: &str,
    ) -> String {
        let (status, body) = send(
            client.on(http
                .put(self.url(&format!("/v1/leadership/{component}")))
                .json(&json!({"address": "jm:6123"}))),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        for _ in 0..500 {
            let (_, body) = send(http.get(self.url(&format!("/v1/leadership/{component}")))).await;
            if body["isLeader"] == true {
                return body["sessionId"].as_str().unwrap().to_string();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("did not become leader of {component}");
    }

    async fn stop(self) {
        self.sidecar.shutdown().await;
        self.server.abort();
    }
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("request");
    let status = response.status();
    let bytes = response.bytes().await.expect("body");
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

async fn send_raw(
    request: reqwest::RequestBuilder,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.bytes().await.expect("body").to_vec(),
    )
}

async fn data(c: &TestCluster, name: &str) -> std::collections::BTreeMap<String, String> {
    c.api::<ConfigMap>()
        .get(name)
        .await
        .unwrap()
        .data
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_graphs_status_and_blobs_over_s3_in_flinks_layout() {
    common::init_logs();
    let c = TestCluster::start().await;
    let s3 = S3Server::start().await;
    let dir = s3.storage_dir("flink/ha");
    let storage = hakeeper::storage::open(&dir, &s3.options()).await.unwrap();
    let leader = Local::start(&c, storage.clone(), &dir, 1).await;
    let standby = Local::start(&c, storage.clone(), &dir, 1).await;
    let http = reqwest::Client::new();
    let (leader_jm, standby_jm) = (leader.client().await, standby.client().await);
    let session = leader.lead(&http, &leader_jm, "dispatcher").await;
    // The standby contends too, and waits.
    let (status, body) = send(
        standby_jm.on(http
            .put(standby.url("/v1/leadership/dispatcher"))
            .json(&json!({"address": "jm-b:6123"}))),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // readinessProbe for "route to the leader only".
    let (status, _) = send(http.get(leader.url("/readyz?leader=dispatcher"))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(http.get(standby.url("/readyz?leader=dispatcher"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("NotLeader")),
        "{body}"
    );
    let (status, _) = send(http.get(leader.url("/readyz?leader=restserver"))).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "not contended here"
    );
    let (status, _) = send(http.get(leader.url("/readyz?leader=nonsense"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let graph = vec![7u8; 225_971];
    let put = |base: &Local, session: Option<&str>, body: Vec<u8>| {
        let mut r = http
            .put(base.url(&format!("/v1/jobs/{JOB}/graph")))
            .body(body);
        if let Some(s) = session {
            r = r.header("Hakeeper-Session", s);
        }
        r
    };
    // Without a session, with a wrong one, and from the standby: refused.
    let (status, body) = send(put(&leader, None, graph.clone())).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("StaleSession")),
        "{body}"
    );
    let (status, body) = send(put(
        &leader,
        Some(&uuid::Uuid::new_v4().to_string()),
        graph.clone(),
    ))
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("StaleSession")),
        "{body}"
    );
    let (status, body) = send(put(&standby, Some(&session), graph.clone())).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("NotLeader")),
        "{body}"
    );

    let (status, body) = send(put(&leader, Some(&session), graph.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Flink's layout: the key, the handle's bytes, the payload's name and size.
    let cm = data(&c, "flink-stores-dispatcher-leader").await;
    let value = &cm[&format!("jobGraph-{JOB}")];
    let h = handle::decode_base64(value).unwrap();
    assert_eq!(h.state_size, 225_971);
    let prefix = format!("s3://{}/flink/ha/{CLUSTER}/submittedJobGraph", s3.bucket);
    let suffix = h
        .path
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{} under {prefix}", h.path));
    assert!(
        suffix.len() == 12
            && suffix
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{suffix}"
    );
    assert_eq!(
        handle::encode_base64(&h),
        *value,
        "the value is Flink's encoding of its handle"
    );
    assert_eq!(body["handle"]["path"], h.path.as_str());

    // Read back from either sidecar (reads need no leadership).
    let (status, _, bytes) =
        send_raw(http.get(standby.url(&format!("/v1/jobs/{JOB}/graph")))).await;
    assert_eq!((status, bytes.len()), (StatusCode::OK, graph.len()));
    assert_eq!(bytes, graph);
    let (_, body) = send(http.get(leader.url("/v1/jobs"))).await;
    assert_eq!(body["jobs"], json!([JOB]));

    // Replacing the graph deletes the old payload.
    let (status, _) = send(put(&leader, Some(&session), b"v2".to_vec())).await;
    assert_eq!(status, StatusCode::OK);
    let old = Location::parse(&h.path).unwrap();
    assert_eq!(
        storage.size(&old).await.unwrap(),
        None,
        "old payload deleted"
    );
    let (_, _, bytes) = send_raw(http.get(leader.url(&format!("/v1/jobs/{JOB}/graph")))).await;
    assert_eq!(bytes, b"v2");

    // The running-jobs registry: plain RUNNING / DONE.
    let status_url = leader.url(&format!("/v1/jobs/{JOB}/status"));
    let (status, _) = send(http.get(&status_url)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = send(
        http.put(&status_url)
            .header("Hakeeper-Session", &session)
            .body("RUNNING"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        data(&c, "flink-stores-dispatcher-leader").await[&format!("runningJobsRegistry-{JOB}")],
        "RUNNING"
    );
    send(
        http.put(&status_url)
            .header("Hakeeper-Session", &session)
            .json(&json!({"status": "DONE"})),
    )
    .await;
    let (_, body) = send(http.get(&status_url)).await;
    assert_eq!(body["status"], "DONE");
    let (status, body) = send(
        http.put(&status_url)
            .header("Hakeeper-Session", &session)
            .body("FINISHED"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Blobs: payload only, immutable, under blob/.
    let blob_url = leader.url("/v1/blobs/job-1/blob_p-0a1b2c");
    let (status, body) = send(
        http.put(&blob_url)
            .header("Hakeeper-Session", &session)
            .body("jar bytes"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let blob = dir.join(CLUSTER).join("blob/job-1/blob_p-0a1b2c");
    assert_eq!(storage.size(&blob).await.unwrap(), Some(9));
    let (status, _) = send(
        http.put(&blob_url)
            .header("Hakeeper-Session", &session)
            .body("jar bytes"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the same bytes again are fine");
    let (status, body) = send(
        http.put(&blob_url)
            .header("Hakeeper-Session", &session)
            .body("other"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("AlreadyExists")),
        "{body}"
    );
    let (status, body) = send(
        http.put(standby.url("/v1/blobs/x"))
            .header("Hakeeper-Session", &session)
            .body("x"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("NotLeader")),
        "{body}"
    );
    let (status, body) = send(
        http.put(leader.url("/v1/blobs/../etc"))
            .header("Hakeeper-Session", &session)
            .body("x"),
    )
    .await;
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
        "{status} {body}"
    );
    let (_, _, bytes) = send_raw(http.get(standby.url("/v1/blobs/job-1/blob_p-0a1b2c"))).await;
    assert_eq!(bytes, b"jar bytes");
    let (status, _) = send(http.delete(&blob_url).header("Hakeeper-Session", &session)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(http.get(&blob_url)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Removing the graph: the key goes, then the payload.
    let current = handle::decode_base64(
        &data(&c, "flink-stores-dispatcher-leader").await[&format!("jobGraph-{JOB}")],
    )
    .unwrap();
    let (status, body) = send(
        http.delete(leader.url(&format!("/v1/jobs/{JOB}/graph")))
            .header("Hakeeper-Session", &session),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !data(&c, "flink-stores-dispatcher-leader")
            .await
            .contains_key(&format!("jobGraph-{JOB}"))
    );
    assert_eq!(
        storage
            .size(&Location::parse(&current.path).unwrap())
            .await
            .unwrap(),
        None
    );
    let (_, body) = send(http.get(leader.url("/v1/jobs"))).await;
    assert_eq!(body["jobs"], json!([]));

    leader.stop().await;
    standby.stop().await;
    drop((leader_jm, standby_jm));
    s3.shutdown().await;
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_counter_and_recovery_over_file() {
    common::init_logs();
    let c = TestCluster::start().await;
    let files = common::file_storage().await;
    let (dir, storage) = (files.root.clone(), files.store.clone());
    let leader = Local::start(&c, storage.clone(), &dir, 2).await;
    let http = reqwest::Client::new();
    let component = format!("jobmanager/{JOB}");
    let jm = leader.client().await;
    let session = leader.lead(&http, &jm, &component).await;
    let cm_name = format!("{CLUSTER}-{JOB}-jobmanager-leader");
    let url = |p: &str| leader.url(&format!("/v1/jobs/{JOB}{p}"));

    // The counter: absent means 1; increment answers the previous value.
    let (_, body) = send(http.get(url("/checkpoint-counter"))).await;
    assert_eq!(body["value"], 1);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, body) = send(
            http.post(url("/checkpoint-counter/increment"))
                .header("Hakeeper-Session", &session),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        ids.push(body["value"].as_u64().unwrap());
    }
    assert_eq!(ids, vec![1, 2, 3]);
    assert_eq!(data(&c, &cm_name).await["counter"], "4");

    // Three checkpoints, two retained: the first is subsumed once the third is committed.
    let mut paths = Vec::new();
    for id in &ids {
        let (status, body) = send(
            http.post(url(&format!("/checkpoints/{id}")))
                .header("Hakeeper-Session", &session)
                .body(format!("checkpoint {id}")),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        paths.push(body["handle"]["path"].as_str().unwrap().to_string());
        if *id == 3 {
            assert_eq!(body["subsumed"], json!([1]), "{body}");
        }
    }
    let cm = data(&c, &cm_name).await;
    let keys: Vec<&String> = cm
        .keys()
        .filter(|k| k.starts_with("checkpointID-"))
        .collect();
    assert_eq!(
        keys,
        vec![
            "checkpointID-0000000000000000002",
            "checkpointID-0000000000000000003"
        ]
    );
    assert!(
        paths[0].starts_with(&format!(
            "file:{}/{CLUSTER}/completedCheckpoint",
            files.dir.path().display()
        )),
        "{}",
        paths[0]
    );
    assert_eq!(
        storage
            .size(&Location::parse(&paths[0]).unwrap())
            .await
            .unwrap(),
        None,
        "subsumed payload deleted"
    );
    let (_, body) = send(http.get(url("/checkpoints"))).await;
    let listed: Vec<u64> = body["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, vec![2, 3]);

    // Out of order, and the latest.
    let (status, body) = send(
        http.post(url("/checkpoints/2"))
            .header("Hakeeper-Session", &session)
            .body("again"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("OutOfOrder")),
        "{body}"
    );
    let (status, headers, bytes) = send_raw(http.get(url("/checkpoints/latest"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["hakeeper-checkpoint-id"], "3");
    assert_eq!(bytes, b"checkpoint 3");
    let (_, headers, bytes) = send_raw(http.get(url("/checkpoints/2"))).await;
    assert_eq!(
        (
            headers["hakeeper-checkpoint-id"].to_str().unwrap(),
            &bytes[..]
        ),
        ("2", &b"checkpoint 2"[..])
    );

    // A truncated newest payload: recovery falls back to the newest good one and says so.
    let newest = paths[2].strip_prefix("file:").unwrap();
    std::fs::write(newest, b"checkpo").unwrap();
    let (status, headers, bytes) = send_raw(http.get(url("/checkpoints/latest"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["hakeeper-checkpoint-id"], "2");
    assert_eq!(
        headers["hakeeper-skipped-checkpoints"],
        "checkpointID-0000000000000000003"
    );
    assert_eq!(bytes, b"checkpoint 2");
    let (status, body) = send(http.get(url("/checkpoints/3"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("BadPayload")),
        "{body}"
    );
    // Strict recovery (Flink's behaviour) refuses instead of falling back.
    let reader = hakeeper::stores::ConfigMapReader::new(c.api::<ConfigMap>(), cm_name.clone());
    let mut payloads = Payloads::new(storage.clone(), &dir, &CLUSTER.parse().unwrap());
    payloads.max_payload_bytes = 1 << 20;
    let strict = hakeeper::stores::Checkpoints::new(reader, payloads, 2)
        .recover(true)
        .await
        .unwrap_err();
    assert_eq!(strict.kind(), "NoRecoverableCheckpoint", "{strict}");
    assert!(
        strict
            .to_string()
            .contains("has 7 bytes where the handle records 12"),
        "{strict}"
    );
    // Missing too: nothing recoverable, and that is an error, not a 404.
    std::fs::remove_file(paths[1].strip_prefix("file:").unwrap()).unwrap();
    let (status, body) = send(http.get(url("/checkpoints/latest"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("NoRecoverableCheckpoint")
        ),
        "{body}"
    );

    // Delete one, set the counter.
    let (status, body) = send(
        http.delete(url("/checkpoints/3"))
            .header("Hakeeper-Session", &session),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = send(
        http.delete(url("/checkpoints/3"))
            .header("Hakeeper-Session", &session),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        http.put(url("/checkpoint-counter"))
            .header("Hakeeper-Session", &session)
            .json(&json!({"value": 100})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = send(http.get(url("/checkpoint-counter"))).await;
    assert_eq!(body["value"], 100);

    // Bad input: clear errors.
    let (status, _) = send(
        http.post(leader.url("/v1/jobs/nothex/checkpoints/1"))
            .header("Hakeeper-Session", &session)
            .body("x"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = send(
        http.post(url("/checkpoints/-1"))
            .header("Hakeeper-Session", &session)
            .body("x"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Ids are Java longs: one past the largest does not fit the 19-digit keys.
    let (status, body) = send(
        http.post(url("/checkpoints/9223372036854775808"))
            .header("Hakeeper-Session", &session)
            .body("x"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = send(
        http.put(url("/checkpoint-counter"))
            .header("Hakeeper-Session", &session)
            .json(&json!({"value": 9223372036854775808u64})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = send(
        http.post(url("/checkpoints/200"))
            .header("Hakeeper-Session", &session)
            .body(vec![0u8; (1 << 20) + 1]),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("PayloadTooLarge")),
        "{body}"
    );

    leader.stop().await;
    drop(jm);
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_outage_answers_503_and_writes_nothing_to_the_configmap() {
    common::init_logs();
    let c = TestCluster::start().await;
    let files = common::file_storage().await;
    let (dir, inner) = (files.root.clone(), files.store.clone());
    let faulty = FaultyStore::wrap(inner);
    let leader = Local::start(&c, faulty.clone() as Arc<dyn ObjectStore>, &dir, 1).await;
    let http = reqwest::Client::new();
    let component = format!("jobmanager/{JOB}");
    let jm = leader.client().await;
    let session = leader.lead(&http, &jm, &component).await;
    let cm_name = format!("{CLUSTER}-{JOB}-jobmanager-leader");
    let before = c.api::<ConfigMap>().get(&cm_name).await.unwrap();
    faulty.puts.set_down(true);
    let (status, body) = send(
        http.post(leader.url(&format!("/v1/jobs/{JOB}/checkpoints/1")))
            .header("Hakeeper-Session", &session)
            .body("payload"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("StorageUnavailable")),
        "{body}"
    );
    let after = c.api::<ConfigMap>().get(&cm_name).await.unwrap();
    assert_eq!(before.data, after.data, "nothing written to the ConfigMap");
    // Leadership is unaffected, and the next add works once storage is back.
    let (_, body) = send(http.get(leader.url(&format!("/v1/leadership/{component}")))).await;
    assert_eq!(
        (body["isLeader"].as_bool(), body["sessionId"].as_str()),
        (Some(true), Some(session.as_str()))
    );
    faulty.puts.set_down(false);
    let (status, body) = send(
        http.post(leader.url(&format!("/v1/jobs/{JOB}/checkpoints/1")))
            .header("Hakeeper-Session", &session)
            .body("payload"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    leader.stop().await;
    drop(jm);
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_configmap_is_refused_before_calling_the_api() {
    common::init_logs();
    let c = TestCluster::start().await;
    let Some(server) = c.embedded("counting API requests") else {
        return;
    };
    let files = common::file_storage().await;
    let (dir, storage) = (files.root.clone(), files.store.clone());
    // Renewals are ConfigMap updates too: none may fall into the counted window.
    let quiet = Timings {
        lease_duration: Duration::from_secs(60),
        renew_deadline: Duration::from_secs(40),
        retry_period: Duration::from_secs(20),
    };
    let leader = Local::start_with(&c, storage.clone(), &dir, 1000, quiet).await;
    let http = reqwest::Client::new();
    let component = format!("jobmanager/{JOB}");
    let jm = leader.client().await;
    let session = leader.lead(&http, &jm, &component).await;
    // Something else has filled the ConfigMap to within 2000 bytes of the guard's line.
    let cm_name = format!("{CLUSTER}-{JOB}-jobmanager-leader");
    let filler = "x".repeat((1 << 20) - (16 << 10) - 2000);
    c.api::<ConfigMap>()
        .patch(
            &cm_name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"data": {"filler": filler}})),
        )
        .await
        .unwrap();
    // Add checkpoints until the guard refuses.
    let mut refused = None;
    for id in 1..=100u64 {
        let counts = server.request_counts();
        let (status, body) = send(
            http.post(leader.url(&format!("/v1/jobs/{JOB}/checkpoints/{id}")))
                .header("Hakeeper-Session", &session)
                .body("x"),
        )
        .await;
        if status != StatusCode::CREATED {
            let updates = server
                .request_counts()
                .since(&counts)
                .get("update", "configmaps");
            refused = Some((status, body, updates));
            break;
        }
    }
    let (status, body, updates) = refused.expect("the guard refuses within 100 checkpoints");
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::INSUFFICIENT_STORAGE, Some("ConfigMapFull")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("bytes of data"),
        "{body}"
    );
    assert_eq!(updates, 0, "no write was sent");
    // The payload of the refused add was deleted: every payload on disk has a handle.
    let cm = data(&c, &format!("{CLUSTER}-{JOB}-jobmanager-leader")).await;
    let handles = cm.keys().filter(|k| k.starts_with("checkpointID-")).count();
    let listed = storage.list_dir(&dir.join(CLUSTER)).await.unwrap();
    assert_eq!(listed.len(), handles);
    let size: usize = cm.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(size <= 1 << 20, "{size}");
    leader.stop().await;
    drop(jm);
    c.cleanup().await;
}

/// The API server becomes unreachable: the leader steps down by its renew deadline and its
/// store writes fail with NotLeader, nobody leads while the server is away, and a leader is
/// elected within lease + retry period once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_outage_stops_leader_work_and_a_leader_returns_after_it() {
    common::init_logs();
    let c = TestCluster::start().await;
    let Some(server) = c.embedded("partitioning the API server") else {
        return;
    };
    let files = common::file_storage().await;
    let (dir, storage) = (files.root.clone(), files.store.clone());
    let a = Local::start(&c, storage.clone(), &dir, 1).await;
    let b = Local::start(&c, storage.clone(), &dir, 1).await;
    let http = reqwest::Client::new();
    let component = format!("jobmanager/{JOB}");
    let (a_jm, b_jm) = (a.client().await, b.client().await);
    let session = a.lead(&http, &a_jm, &component).await;
    let (status, body) = send(
        b_jm.on(http
            .put(b.url(&format!("/v1/leadership/{component}")))
            .json(&json!({"address": "jm-b:6123"}))),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let is_leader = |s: &Local| {
        let url = s.url(&format!("/v1/leadership/{component}"));
        let http = http.clone();
        async move { send(http.get(url)).await.1["isLeader"] == true }
    };

    let outage = Duration::from_secs(5);
    server.faults().partition(outage);
    let cut = std::time::Instant::now();
    // By the renew deadline the leader has stepped down, and its writes are refused.
    tokio::time::sleep(TIMINGS.renew_deadline + Duration::from_millis(200)).await;
    let (status, body) = send(
        http.post(a.url(&format!("/v1/jobs/{JOB}/checkpoint-counter/increment")))
            .header("Hakeeper-Session", &session),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("NotLeader")),
        "{body}"
    );
    // Nobody leads while the server is unreachable.
    while cut.elapsed() < outage - Duration::from_millis(300) {
        assert!(
            !is_leader(&a).await && !is_leader(&b).await,
            "a leader during the outage at {:?}",
            cut.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Back: a leader within lease + retry period (and a little for the round trips).
    while cut.elapsed() < outage {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let back = std::time::Instant::now();
    let bound = TIMINGS.lease_duration + TIMINGS.retry_period + Duration::from_millis(500);
    loop {
        if is_leader(&a).await || is_leader(&b).await {
            break;
        }
        assert!(
            back.elapsed() < bound,
            "no leader within {bound:?} after the API server came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.stop().await;
    b.stop().await;
    drop((a_jm, b_jm));
    c.cleanup().await;
}
