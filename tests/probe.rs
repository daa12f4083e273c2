//! `hakeeper sidecar --probe-listen`: a second listener that serves only `/livez`, `/readyz`
//! (and `/readyz?leader=<component>`) and `/metrics`, without the token, so that kubelet
//! probes and Prometheus can reach a sidecar whose local API is on loopback or a Unix socket.
//! Real child processes through the embedded API server (or a real cluster with
//! HAKEEPER_TEST_KUBECONFIG). Every wait is bounded.

mod common;

use std::time::Duration;

use common::TestCluster;
use common::process::{SidecarProcess, eventually, exit_within, http_client, signal};
use reqwest::StatusCode;
use serde_json::Value;

const CLUSTER_ID: &str = "flink-probe";
const TOKEN: &str = "pr0bes-need-n0ne";

/// A sidecar with a probe listener on a free loopback port.
struct Probed {
    process: SidecarProcess,
    /// `http://127.0.0.1:PORT` of the probe listener, as its log says.
    probes: String,
}

impl Probed {
    async fn start(c: &TestCluster, name: &str, extra: &[&str]) -> Probed {
        let mut args = vec!["--probe-listen", "127.0.0.1:0"];
        args.extend(extra);
        let process = SidecarProcess::start(c, CLUSTER_ID, name, &args).await;
        // Logged before the local API is announced on stdout, so it is there by now.
        let log = process.stderr_log();
        let bound = log
            .lines()
            .filter(|l| l.contains("serving /livez, /readyz and /metrics"))
            .find_map(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("probe_listen="))
            })
            .unwrap_or_else(|| panic!("the probe listener's address is logged:\n{log}"));
        assert!(bound.starts_with("127.0.0.1:"), "{bound}");
        assert_ne!(
            bound, "127.0.0.1:0",
            "the bound port is logged, not the asked one"
        );
        let probes = format!("http://{bound}");
        assert_ne!(probes, process.base, "two listeners");
        Probed { process, probes }
    }

    fn probe(&self, path: &str) -> String {
        format!("{}{path}", self.probes)
    }

    fn api(&self, path: &str) -> String {
        self.process.url(path)
    }
}

/// `GET url`: status and body text.
async fn get(http: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let response = http
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    (status, response.text().await.expect("a response body"))
}

/// `GET url` with the bearer token: status and body text.
async fn get_with_token(http: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let response = http
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    (status, response.text().await.expect("a response body"))
}

fn error_kind(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("a JSON error body: {body}"))
}

/// With `--token-file`, the local API refuses `/v1` calls without the token, while the
/// probe listener answers probes and metrics without it and serves nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_need_no_token_and_nothing_else_is_served() {
    let c = TestCluster::start().await;
    let token_file = c.path("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let token_file = token_file.to_str().expect("a UTF-8 path").to_string();
    let s = Probed::start(&c, "token", &["--token-file", &token_file]).await;
    let http = http_client();

    // The local API: /v1 needs the token.
    let (status, body) = get(&http, &s.api("/v1/leadership/dispatcher")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_kind(&body), "Unauthorized");
    let (status, body) = get_with_token(&http, &s.api("/v1/leadership/dispatcher")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The probe listener: probes and metrics without a token.
    let (status, body) = get(&http, &s.probe("/livez")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let (status, body) = get(&http, &s.probe("/readyz")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let response = http.get(s.probe("/metrics")).send().await.expect("metrics");
    assert_eq!(response.status(), StatusCode::OK);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = response.text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("hakeeper_")),
        "hakeeper metrics on the probe listener:\n{text}"
    );
    // Not contending: never the leader, on either listener, with the same answer.
    let (status, body) = get(&http, &s.probe("/readyz?leader=dispatcher")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(error_kind(&body), "NotLeader");
    assert_eq!(
        get(&http, &s.api("/readyz?leader=dispatcher")).await,
        (status, body)
    );
    let (status, body) = get(&http, &s.probe("/readyz?leader=nonsense")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        get(&http, &s.api("/readyz?leader=nonsense")).await,
        (status, body)
    );

    // Nothing else, with the token or without.
    for path in [
        "/v1/leadership/dispatcher",
        "/v1/clients",
        "/v1/jobs",
        "/openapi.json",
        "/",
    ] {
        for (status, body) in [
            get(&http, &s.probe(path)).await,
            get_with_token(&http, &s.probe(path)).await,
        ] {
            assert_eq!(status, StatusCode::NOT_FOUND, "GET {path}: {body}");
            assert_eq!(error_kind(&body), "NotFound", "GET {path}");
        }
    }
    let response = http
        .post(s.probe("/v1/clients"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"name": "jm"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = http
        .put(s.probe("/v1/leadership/dispatcher"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"address": "jm:1"}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = http.post(s.probe("/readyz")).send().await.expect("POST");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Nothing was contended or followed through the probe listener.
    let (_, body) = get_with_token(&http, &s.api("/v1/leadership/dispatcher")).await;
    let view: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["contending"], false, "{view}");
    drop(s);
    c.cleanup().await;
}

/// `/readyz?leader=dispatcher` on the probe listener: 200 `leader` on the leader, 503
/// `NotLeader` on the standby, as on the local API; `/readyz` and `/livez` 200 on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_readiness_on_the_probe_listener() {
    let c = TestCluster::start().await;
    let http = http_client();
    let contend = |address: &'static str| {
        [
            "--contend",
            "dispatcher",
            "--address",
            address,
            "--liveness",
            "none",
        ]
    };
    let a = Probed::start(&c, "a", &contend("jm-a:6123")).await;
    let b = Probed::start(&c, "b", &contend("jm-b:6123")).await;
    // One of them leads, and both know who.
    let (leader, standby) = eventually(
        "one leader that both sidecars agree on",
        Duration::from_secs(10),
        || async {
            let va = a.process.state(&http, "dispatcher").await;
            let vb = b.process.state(&http, "dispatcher").await;
            let agreed = va["leader"] == vb["leader"] && !va["leader"].is_null();
            match (va["isLeader"] == true, vb["isLeader"] == true, agreed) {
                (true, false, true) => Ok((&a, &b)),
                (false, true, true) => Ok((&b, &a)),
                _ => Err(format!("a: {va}; b: {vb}")),
            }
        },
    )
    .await;
    for s in [leader, standby] {
        let (status, body) = get(&http, &s.probe("/livez")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
        eventually(
            "/readyz on the probe listener",
            Duration::from_secs(10),
            || async {
                match get(&http, &s.probe("/readyz")).await {
                    (StatusCode::OK, body) if body == "ok" => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
    }
    let (status, body) = get(&http, &leader.probe("/readyz?leader=dispatcher")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "leader"));
    assert_eq!(
        get(&http, &leader.api("/readyz?leader=dispatcher")).await,
        (status, body)
    );
    let (status, body) = get(&http, &standby.probe("/readyz?leader=dispatcher")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(error_kind(&body), "NotLeader");
    assert_eq!(
        get(&http, &standby.api("/readyz?leader=dispatcher")).await,
        (status, body)
    );
    // The leader's metrics on its probe listener say so.
    let (status, text) = get(&http, &leader.probe("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("hakeeper_leader{component=\"dispatcher\"} 1"),
        "{text}"
    );
    drop((a, b));
    c.cleanup().await;
}

/// The probe listener stops with the sidecar: SIGTERM ends the process promptly and the port
/// no longer answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_listener_stops_with_the_sidecar() {
    let c = TestCluster::start().await;
    let http = http_client();
    let mut s = Probed::start(&c, "stop", &[]).await;
    let (status, _) = get(&http, &s.probe("/livez")).await;
    assert_eq!(status, StatusCode::OK);
    signal(&s.process.child, "-TERM");
    let status = exit_within(&mut s.process.child, Duration::from_secs(5), "the sidecar").await;
    assert!(status.success(), "{status}");
    assert!(
        http.get(s.probe("/livez")).send().await.is_err(),
        "nothing listens on the probe port after exit"
    );
    drop(s);
    c.cleanup().await;
}

/// A probe address that cannot be bound (in use) or parsed refuses the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_probe_address_is_refused() {
    let c = TestCluster::start().await;
    let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = listening.local_addr().unwrap().to_string();
    for (flag, expected) in [
        (taken.as_str(), "binding the probe listener"),
        ("localhost:9091", "--probe-listen"),
    ] {
        let output = common::process::hakeeper()
            .arg("sidecar")
            .args(["--cluster-id", CLUSTER_ID, "--namespace", &c.namespace])
            .args(["--listen", "127.0.0.1:0", "--probe-listen", flag])
            .arg("--kubeconfig")
            .arg(c.kubeconfig())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(10), output)
            .await
            .expect("exits")
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{flag}: {stderr}");
        assert!(stderr.contains(expected), "{flag}: {stderr}");
        assert!(output.stdout.is_empty(), "{flag}: nothing announced");
    }
    drop(listening);
    c.cleanup().await;
}
