//! Real processes for tests where a process dies or hangs: `hakeeper sidecar` children and
//! the demo's simulated JobManager (`hakeeper demo-jobmanager`), whose events arrive as JSON
//! lines. Children are killed when dropped; a sidecar's stderr is printed if the test fails.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;

use super::TestCluster;

/// Lease 2 s, renew deadline 1.5 s (so the client timeout is 1.5 s), retry period 0.4 s.
pub const TIMINGS: [&str; 6] = [
    "--lease-duration",
    "2s",
    "--renew-deadline",
    "1500ms",
    "--retry-period",
    "400ms",
];
pub const LEASE: Duration = Duration::from_secs(2);
pub const CLIENT_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long a child process may take to announce its local API.
pub const STARTUP: Duration = Duration::from_secs(10);

/// The binary, with no `HAKEEPER_*` or `KUBECONFIG` inherited from the test environment.
pub fn hakeeper() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hakeeper"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("HAKEEPER_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("KUBECONFIG");
    cmd.env("NO_COLOR", "1");
    cmd
}

/// Send `signal` (`-KILL`, `-STOP`, `-CONT`, ...) to `child`.
pub fn signal(child: &Child, signal: &str) {
    let pid = child.id().expect("the process is still running");
    let status = std::process::Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .expect("running kill");
    assert!(status.success(), "kill {signal} {pid}: {status}");
}

/// A `hakeeper` child process started by [`start_child`].
pub struct Started {
    /// Its `--identity`: `{name}-{random}`.
    pub identity: String,
    /// What its first line announced.
    pub address: String,
    pub child: Child,
    /// The rest of its stdout (kept open: the child must not get a broken pipe).
    pub stdout: BufReader<ChildStdout>,
    /// The file its stderr goes to.
    pub stderr: PathBuf,
}

/// Start `hakeeper <command>` as `name` against the test cluster: a fresh `--identity`, debug
/// logs to the file `stderr`, the cluster's kubeconfig, [`TIMINGS`], then `args`; and wait (at
/// most [`STARTUP`]) for its first line, `hakeeper <command>: <announce> ADDRESS`.
pub async fn start_child(
    c: &TestCluster,
    command: &str,
    announce: &str,
    name: &str,
    args: &[&str],
    stderr: PathBuf,
) -> Started {
    let identity = format!("{name}-{}", uuid::Uuid::new_v4().simple());
    let file = std::fs::File::create(&stderr).expect("stderr file");
    let mut child = hakeeper()
        .arg(command)
        .args(["--identity", &identity])
        .args(["--log", "hakeeper=debug"])
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args(TIMINGS)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning hakeeper {command}: {e}"));
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    let read = tokio::time::timeout(STARTUP, stdout.read_line(&mut line)).await;
    assert!(
        matches!(read, Ok(Ok(n)) if n > 0),
        "{command} {name} did not start: {read:?}\n{}",
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    let address = line
        .trim()
        .strip_prefix(&format!("hakeeper {command}: {announce} "))
        .unwrap_or_else(|| panic!("unexpected first line of {command} {name}: {line:?}"))
        .to_string();
    Started {
        identity,
        address,
        child,
        stdout,
        stderr,
    }
}

/// While a test fails (a panic unwinds), print the stderr of its `command` child `name`.
pub fn show_stderr_if_failing(command: &str, name: &str, identity: &str, stderr: &Path) {
    if std::thread::panicking() {
        eprintln!(
            "----- stderr of {command} {name} ({identity}) -----\n{}----- end -----",
            std::fs::read_to_string(stderr).unwrap_or_default()
        );
    }
}

/// Wait (at most `within`) for `child` to exit; its status.
pub async fn exit_within(
    child: &mut Child,
    within: Duration,
    what: &str,
) -> std::process::ExitStatus {
    tokio::time::timeout(within, child.wait())
        .await
        .unwrap_or_else(|_| panic!("{what} did not exit within {within:?}"))
        .expect("waiting for a child process")
}

/// One `hakeeper sidecar` child process.
pub struct SidecarProcess {
    pub name: String,
    /// Its `--identity`: `{name}-{random}`.
    pub identity: String,
    pub base: String,
    pub child: Child,
    _stdout: BufReader<ChildStdout>,
    stderr: PathBuf,
}

impl SidecarProcess {
    pub async fn start(c: &TestCluster, cluster_id: &str, name: &str, extra: &[&str]) -> Self {
        let mut args = vec![
            "--cluster-id",
            cluster_id,
            "--listen",
            "127.0.0.1:0",
            "--namespace",
            &c.namespace,
        ];
        args.extend(extra);
        let stderr = c.path(&format!("sidecar-{name}.stderr"));
        let started = start_child(c, "sidecar", "local API on", name, &args, stderr).await;
        SidecarProcess {
            name: name.to_string(),
            identity: started.identity,
            base: started.address,
            child: started.child,
            _stdout: started.stdout,
            stderr: started.stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn stderr_log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// `GET /v1/leadership/{component}`.
    pub async fn state(&self, http: &reqwest::Client, component: &str) -> Value {
        let (status, body) = send(http.get(self.url(&format!("/v1/leadership/{component}")))).await;
        assert_eq!(status, 200, "GET {component} on {}: {body}", self.name);
        body
    }

    /// Wait (at most 10 s) until this sidecar leads `component`; its state then.
    pub async fn leading(&self, http: &reqwest::Client, component: &str) -> Value {
        eventually(
            &format!("{} leading {component}", self.name),
            Duration::from_secs(10),
            || async {
                let v = self.state(http, component).await;
                if v["isLeader"] == true {
                    Ok(v)
                } else {
                    Err(v.to_string())
                }
            },
        )
        .await
    }

    /// The value of a metric line that starts with `series` (0 if absent).
    pub async fn metric(&self, http: &reqwest::Client, series: &str) -> f64 {
        let text = http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for SidecarProcess {
    fn drop(&mut self) {
        show_stderr_if_failing("sidecar", &self.name, &self.identity, &self.stderr);
        let _ = self.child.start_kill();
    }
}

/// A simulated JobManager process next to a sidecar; its events (the JSON form of
/// `examples/jobmanager.rs`'s `Event`) arrive on `events` with the time they were read.
pub struct JobManagerProcess {
    pub name: String,
    pub child: Child,
    reader: tokio::task::JoinHandle<()>,
}

pub type JobEvents = mpsc::UnboundedSender<(Instant, String, Value)>;

impl JobManagerProcess {
    pub fn start(sidecar: &SidecarProcess, job_id: &str, events: JobEvents) -> Self {
        let mut child = hakeeper()
            .arg("demo-jobmanager")
            .args([
                "--sidecar",
                &sidecar.base,
                "--name",
                &sidecar.name,
                "--job-id",
                job_id,
            ])
            .args(["--checkpoint-interval", "100ms"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawning hakeeper demo-jobmanager");
        let stdout = child.stdout.take().expect("piped stdout");
        let name = sidecar.name.clone();
        let who = name.clone();
        let reader = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = events.send((Instant::now(), who.clone(), v));
                }
            }
        });
        JobManagerProcess {
            name,
            child,
            reader,
        }
    }
}

impl Drop for JobManagerProcess {
    fn drop(&mut self) {
        self.reader.abort();
        let _ = self.child.start_kill();
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("HTTP client")
}

/// Send a request and read its JSON body (`Value::Null` if the body is not JSON).
pub async fn send(request: reqwest::RequestBuilder) -> (reqwest::StatusCode, Value) {
    let response = request.send().await.expect("the local API answers");
    let status = response.status();
    let text = response.text().await.expect("a response body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Poll `f` every 20 ms until it gives `Ok`, at most `timeout`; the last `Err` says why not.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(last) => assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; last seen: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
