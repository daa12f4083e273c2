//! Test harness for the operator: `hakeeper operator` as a child process, and a loopback
//! HTTP receiver standing in for a webhook or Alertmanager.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout};

use super::TestCluster;
use super::process::{STARTUP, hakeeper};

/// Short lock timings for the operator's own election.
pub const OPERATOR_TIMINGS: [&str; 6] = [
    "--lease-duration",
    "2s",
    "--renew-deadline",
    "1500ms",
    "--retry-period",
    "400ms",
];

/// One `hakeeper operator` child process, watching the test cluster's namespace.
pub struct OperatorProcess {
    pub name: String,
    pub identity: String,
    /// `http://127.0.0.1:<port>` of its admin server.
    pub admin: String,
    pub child: Child,
    _stdout: BufReader<ChildStdout>,
    pub stderr: PathBuf,
}

impl OperatorProcess {
    /// Start it with `extra` flags (its namespace, admin address, identity, timings and
    /// kubeconfig are set here; `--no-verify` is not, pass it when no storage is involved).
    pub async fn start(c: &TestCluster, name: &str, extra: &[&str]) -> Self {
        let identity = format!("{name}-{}", uuid::Uuid::new_v4().simple());
        let stderr = c.path(&format!(
            "operator-{name}-{}.stderr",
            uuid::Uuid::new_v4().simple()
        ));
        let file = std::fs::File::create(&stderr).expect("stderr file");
        let mut child = hakeeper()
            .arg("operator")
            .args(["--namespace", &c.namespace])
            .args(["--operator-namespace", &c.namespace])
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(["--identity", &identity])
            .args(["--log", "hakeeper=debug"])
            .arg("--kubeconfig")
            .arg(c.kubeconfig())
            .args(OPERATOR_TIMINGS)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("spawning hakeeper operator");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        let read = tokio::time::timeout(STARTUP, stdout.read_line(&mut line)).await;
        assert!(
            matches!(read, Ok(Ok(n)) if n > 0),
            "operator {name} did not start: {read:?}\n{}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        let admin = line
            .trim()
            .strip_prefix("hakeeper operator: admin on ")
            .unwrap_or_else(|| panic!("unexpected first line of operator {name}: {line:?}"))
            .to_string();
        OperatorProcess {
            name: name.to_string(),
            identity,
            admin,
            child,
            _stdout: stdout,
            stderr,
        }
    }

    pub fn stderr_log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The value of one series of its `/metrics` (exact series text, labels included), or
    /// `None` when absent.
    pub async fn metric(&self, http: &reqwest::Client, series: &str) -> Option<f64> {
        let text = http
            .get(format!("{}/metrics", self.admin))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines().find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    /// Whether it answers `/readyz` with 200.
    pub async fn ready(&self, http: &reqwest::Client) -> bool {
        http.get(format!("{}/readyz", self.admin))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    }

    /// Whether it leads (`hakeeper_operator_is_leader 1`).
    pub async fn leads(&self, http: &reqwest::Client) -> bool {
        self.metric(http, "hakeeper_operator_is_leader").await == Some(1.0)
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// What a receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    /// Never answer (the sender must time out).
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    /// What it was answered.
    pub answer: Answer,
}

#[derive(Default)]
struct ReceiverState {
    /// Answers to give, in order; once used up, `otherwise`.
    script: VecDeque<Answer>,
    otherwise: Option<Answer>,
    received: Vec<Received>,
}

/// A loopback HTTP server that records every POST and answers as scripted (200 by default).
pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<ReceiverState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState::default()));
        let app = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, state, task }
    }

    /// Answer the next requests with `answers`, in order, then `otherwise` (200 if `None`).
    pub fn script(&self, answers: &[Answer], otherwise: Option<Answer>) {
        let mut s = self.state.lock().unwrap();
        s.script = answers.iter().copied().collect();
        s.otherwise = otherwise;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// The bodies answered with a 2xx.
    pub fn delivered(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| matches!(r.answer, Answer::Status(s) if (200..300).contains(&s)))
            .map(|r| r.body)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(state): State<Arc<Mutex<ReceiverState>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let answer = {
        let mut s = state.lock().unwrap();
        let answer = s
            .script
            .pop_front()
            .or(s.otherwise)
            .unwrap_or(Answer::Status(200));
        s.received.push(Received {
            path: uri.path().to_string(),
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            answer,
        });
        answer
    };
    match answer {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK
        }
    }
}
