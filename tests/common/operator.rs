//! Test harness for the operator: `hakeeper operator` as a child process, and a loopback
//! HTTP receiver standing in for a webhook or Alertmanager.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::io::BufReader;
use tokio::process::{Child, ChildStdout};

use super::TestCluster;
use super::process::{eventually, show_stderr_if_failing, start_child};

/// How long the operator may take to show something in its metrics.
const WAIT: Duration = Duration::from_secs(10);

/// The series `hakeeper_operator_<name>{<label>="<value>",…}`.
pub fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("hakeeper_operator_{name}{{{}}}", labels.join(","))
}

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
        let mut args = vec![
            "--namespace",
            &c.namespace,
            "--operator-namespace",
            &c.namespace,
            "--admin-listen",
            "127.0.0.1:0",
        ];
        args.extend(extra);
        let stderr = c.path(&format!(
            "operator-{name}-{}.stderr",
            uuid::Uuid::new_v4().simple()
        ));
        let started = start_child(c, "operator", "admin on", name, &args, stderr).await;
        OperatorProcess {
            name: name.to_string(),
            identity: started.identity,
            admin: started.address,
            child: started.child,
            _stdout: started.stdout,
            stderr: started.stderr,
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

    /// Wait (at most 10 s) until `series` is exported; its value.
    pub async fn metric_present(&self, http: &reqwest::Client, series: &str) -> f64 {
        eventually(&format!("{series} exported"), WAIT, || async {
            self.metric(http, series)
                .await
                .ok_or_else(|| "absent".to_string())
        })
        .await
    }

    /// Wait (at most 10 s) until `series` reads `value`.
    pub async fn metric_becomes(&self, http: &reqwest::Client, series: &str, value: f64) {
        eventually(&format!("{series} = {value}"), WAIT, || async {
            match self.metric(http, series).await {
                Some(v) if v == value => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await
    }

    pub fn assert_no_panic(&self) {
        let log = self.stderr_log();
        assert!(
            !log.contains("panicked"),
            "operator {} panicked:\n{log}",
            self.name
        );
    }

    pub fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().expect("try_wait").is_none(),
            "operator {} is no longer running:\n{}",
            self.name,
            self.stderr_log()
        );
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        show_stderr_if_failing("operator", &self.name, &self.identity, &self.stderr);
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
