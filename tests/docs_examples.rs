//! The shell examples of the client docs, run as written against a live sidecar.
//!
//! Every ```sh block of docs/API.md and docs/CLIENTS.md is preceded by a marker that says in
//! what state the sidecar is when the block starts:
//!
//! ```text
//! <!-- example: fresh -->            nothing registered, nothing contended
//! <!-- example: client -->           $CLIENT registered (its lifeline held, kept alive) and
//!                                    leading `dispatcher` at the address the docs use
//! <!-- example: leader -->           as `client`, and leading `jobmanager/$JOB` too; $SESSION and
//!                                    $JM_SESSION set; the job has a graph, status RUNNING,
//!                                    checkpoints 1 and 2 and the counter at 3
//! <!-- example: client; runs 2s -->  the block does not end by itself (an event stream): it is
//!                                    stopped after 2 s and judged on what it printed
//! ```
//!
//! The block then runs in bash, in a directory with `jobgraph.bin`, `checkpoint.bin` and
//! `job.jar`, with `localhost:7070` pointed at the sidecar, `hakeeper` on the PATH and a
//! kubeconfig for `kubectl`. What the docs show as output is checked:
//!
//! - a comment right after a command (or at the end of its line) is its expected output: a
//!   JSON document (the same keys, at every level; the same booleans; the same strings where
//!   they hold no digit; numbers and ids are examples), an `HTTP/1.1 <status>` line (exact), or
//!   a line the output must hold (runs of digits stand for any number);
//! - for `VAR=$(...)` the expectation is about `$VAR`;
//! - a ```json block right after a block is the expected output of its last command; a
//!   ```text block, the `event:` lines an event stream must send, in order;
//! - every HTTP answer a block gets is a success (curl is wrapped to report each status).
//!
//! A block without a marker fails the test: every example is run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use common::TestCluster;
use common::client::JobManagerClient;
use common::process::{SidecarProcess, eventually, http_client, send};

const DOCS: [&str; 2] = ["docs/API.md", "docs/CLIENTS.md"];
/// The job id the docs use.
const JOB: &str = "5c1a9f0e2b7d4c3a8e6f1d0b9a8c7e6f";
/// The dispatcher address the docs publish.
const DISPATCHER_ADDRESS: &str = "akka.tcp://flink@jm-0:6123/user/rpc/dispatcher_1";
const JOBMANAGER_ADDRESS: &str = "akka.tcp://flink@jm-0:6123/user/rpc/jobmanager_2";
/// How long a block that ends by itself may take.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(30);
const STEP: &str = "@@docs-example-step";
const HTTP: &str = "@@docs-example-http";

#[derive(Debug, Clone, PartialEq)]
enum Setup {
    Fresh,
    Client,
    Leader,
}

#[derive(Debug)]
struct Example {
    file: &'static str,
    /// The line of the opening fence.
    line: usize,
    setup: Setup,
    /// Stop the block after this long (it does not end by itself).
    runs: Option<Duration>,
    steps: Vec<Step>,
    /// `event:` names a following ```text block shows.
    events: Vec<String>,
}

#[derive(Debug)]
struct Step {
    line: usize,
    command: String,
    /// `VAR` of a `VAR=$(...)` command.
    assigns: Option<String>,
    expect: Vec<Expect>,
}

#[derive(Debug, PartialEq)]
enum Expect {
    Json(Value),
    Status(String),
    Line(String),
}

/// The examples of one Markdown file; a block without a marker is an error.
fn parse_examples(file: &'static str, text: &str) -> Result<Vec<Example>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut examples = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() != "```sh" {
            i += 1;
            continue;
        }
        let fence = i + 1;
        let marker = lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| l.trim().strip_prefix("<!-- example:"))
            .and_then(|l| l.strip_suffix("-->"))
            .ok_or_else(|| {
                format!("{file}:{fence}: a ```sh block without an `<!-- example: ... -->` marker")
            })?;
        let (setup, runs) =
            parse_marker(marker.trim()).map_err(|e| format!("{file}:{fence}: {e}"))?;
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim_end() == "```")
            .ok_or_else(|| format!("{file}:{fence}: the block is not closed"))?;
        let mut steps = parse_steps(&lines[i + 1..end], i + 2);
        // A ```json or ```text block right after: output of the last command.
        let mut events = Vec::new();
        let next = (end + 1..lines.len()).find(|&j| !lines[j].trim().is_empty());
        if let Some(j) = next {
            let close = (j + 1..lines.len()).find(|&k| lines[k].trim_end() == "```");
            match (lines[j].trim_end(), close) {
                ("```json", Some(close)) => {
                    let body = lines[j + 1..close].join("\n");
                    let value: Value = serde_json::from_str(&body)
                        .map_err(|e| format!("{file}:{}: the JSON output: {e}", j + 1))?;
                    steps
                        .last_mut()
                        .ok_or_else(|| format!("{file}:{fence}: an empty block"))?
                        .expect
                        .push(Expect::Json(value));
                }
                ("```text", Some(close)) => {
                    events = lines[j + 1..close]
                        .iter()
                        .filter_map(|l| l.strip_prefix("event: "))
                        .map(|e| e.trim().to_string())
                        .collect();
                }
                _ => {}
            }
        }
        examples.push(Example {
            file,
            line: fence,
            setup,
            runs,
            steps,
            events,
        });
        i = end + 1;
    }
    Ok(examples)
}

fn parse_marker(marker: &str) -> Result<(Setup, Option<Duration>), String> {
    let mut parts = marker.split(';').map(str::trim);
    let setup = match parts.next() {
        Some("fresh") => Setup::Fresh,
        Some("client") => Setup::Client,
        Some("leader") => Setup::Leader,
        other => return Err(format!("unknown example setup {other:?}")),
    };
    let mut runs = None;
    for part in parts {
        let secs = part
            .strip_prefix("runs ")
            .and_then(|s| s.strip_suffix('s'))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| format!("unknown example option {part:?}"))?;
        runs = Some(Duration::from_secs(secs));
    }
    Ok((setup, runs))
}

/// Commands (with their `\` continuation lines) and the comments that show their output.
fn parse_steps(lines: &[&str], first_line: usize) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    // Whether a comment line now would still follow a command directly.
    let mut after_command = false;
    let mut k = 0;
    while k < lines.len() {
        let line = lines[k];
        let trimmed = line.trim();
        if trimmed.is_empty() {
            after_command = false;
            k += 1;
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            if after_command
                && let Some(step) = steps.last_mut()
                && let Some(expect) = expectation(comment.trim())
            {
                step.expect.push(expect);
            }
            k += 1;
            continue;
        }
        let line_no = first_line + k;
        let mut command = line.to_string();
        while command.ends_with('\\') && k + 1 < lines.len() {
            k += 1;
            command.push('\n');
            command.push_str(lines[k]);
        }
        let mut expect = Vec::new();
        // An output shown at the end of the line: `cmd     # {"value": 4}`.
        if let Some(at) = command.rfind("  # ") {
            expect.extend(expectation(command[at + 4..].trim()));
            command.truncate(at);
        }
        let command = command.trim_end().to_string();
        let assigns = command
            .split_once("=$(")
            .map(|(name, _)| name)
            .filter(|name| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
            .map(str::to_string);
        steps.push(Step {
            line: line_no,
            command,
            assigns,
            expect,
        });
        after_command = true;
        k += 1;
    }
    steps
}

/// What a comment shows as output, or `None` for prose.
fn expectation(shown: &str) -> Option<Expect> {
    if shown.starts_with('{') || shown.starts_with('[') {
        // Prose may follow the document: `{"value": 4}, and the counter now holds 5`.
        if let Some(Ok(value)) = serde_json::Deserializer::from_str(shown)
            .into_iter::<Value>()
            .next()
        {
            return Some(Expect::Json(value));
        }
    }
    if shown.starts_with("HTTP/") {
        return Some(Expect::Status(shown.to_string()));
    }
    // A header or SSE line (`name: value`), a status code alone, or a metric sample.
    let header = shown.split_once(": ").is_some_and(|(name, value)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !value.trim().is_empty()
    });
    let code = !shown.is_empty() && shown.chars().all(|c| c.is_ascii_digit());
    (header || code || shown.starts_with("hakeeper_")).then(|| Expect::Line(shown.to_string()))
}

/// Where `actual` departs from the documented `shown`, at `path`.
fn json_differences(path: &str, shown: &Value, actual: &Value, out: &mut Vec<String>) {
    match (shown, actual) {
        // Fields that are `null` in one state and set in another (`lastRelease`, `leader`).
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(s), Value::Object(a)) => {
            for key in s.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{key}: documented, not in the answer"));
            }
            for key in a.keys().filter(|k| !s.contains_key(*k)) {
                out.push(format!("{path}.{key}: in the answer, not documented"));
            }
            for (key, s) in s {
                if let Some(a) = a.get(key) {
                    json_differences(&format!("{path}.{key}"), s, a, out);
                }
            }
        }
        (Value::Array(s), Value::Array(a)) => {
            if s.is_empty() != a.is_empty() {
                out.push(format!("{path}: documented {shown}, answered {actual}"));
            }
            if let Some(first) = s.first() {
                for (n, a) in a.iter().enumerate() {
                    json_differences(&format!("{path}[{n}]"), first, a, out);
                }
            }
        }
        (Value::Bool(s), Value::Bool(a)) if s != a => {
            out.push(format!("{path}: documented {s}, answered {a}"));
        }
        (Value::String(s), Value::String(a))
            if !s.chars().any(|c| c.is_ascii_digit()) && s != a =>
        {
            out.push(format!("{path}: documented {s:?}, answered {a:?}"));
        }
        (s, a) if std::mem::discriminant(s) != std::mem::discriminant(a) => {
            out.push(format!("{path}: documented {shown}, answered {actual}"));
        }
        _ => {}
    }
}

/// `shown` with every run of digits standing for any run of digits (a status code alone is
/// compared as it is).
fn line_matches(shown: &str, actual: &str) -> bool {
    if shown.chars().all(|c| c.is_ascii_digit()) {
        return shown == actual;
    }
    let (mut s, mut a) = (shown.chars().peekable(), actual.chars().peekable());
    loop {
        match (s.peek().copied(), a.peek().copied()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                while s.peek().is_some_and(char::is_ascii_digit) {
                    s.next();
                }
                while a.peek().is_some_and(char::is_ascii_digit) {
                    a.next();
                }
            }
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(&y) => {
                s.next();
                a.next();
            }
            _ => return false,
        }
    }
}

/// The block as a script: curl reports each answer's status on stderr, and each step's
/// output is marked, on stdout and stderr both.
fn script(example: &Example, base: &str) -> String {
    let host = base.trim_start_matches("http://");
    let mut out = format!(
        "curl() {{ command curl -w '%{{stderr}}{HTTP} %{{http_code}} %{{method}} %{{url_effective}}\\n' \"$@\"; }}\n"
    );
    for (n, step) in example.steps.iter().enumerate() {
        out.push_str(&format!(
            "printf '\\n{STEP} {n}\\n'; printf '{STEP} {n}\\n' >&2\n"
        ));
        out.push_str(&step.command.replace("localhost:7070", host));
        out.push('\n');
        if let Some(var) = &step.assigns {
            out.push_str(&format!("printf '%s\\n' \"${var}\"\n"));
        }
    }
    out.push_str(&format!(
        "printf '\\n{STEP} end\\n'; printf '{STEP} end\\n' >&2\n"
    ));
    // The block's background jobs (streams, keepalive loops) end with it: the script runs in
    // a process group of its own (see `run_example`), and this ends the whole group.
    out.push_str("kill -KILL 0\n");
    out
}

/// Output per step (index by step number), from a stream marked by [`script`].
fn split_steps(output: &str, steps: usize) -> Vec<String> {
    let mut parts = vec![String::new(); steps];
    let mut current: Option<usize> = None;
    for line in output.lines() {
        if let Some(mark) = line.strip_prefix(STEP) {
            current = mark.trim().parse().ok();
            continue;
        }
        if let Some(n) = current.filter(|&n| n < steps) {
            parts[n].push_str(line);
            parts[n].push('\n');
        }
    }
    parts
}

/// What the sidecar holds before a `client` or `leader` block, and the variables it exports.
struct Fixture {
    vars: Vec<(String, String)>,
    /// The registered client (its lifeline open, kept alive) until the example ends.
    _client: Option<JobManagerClient>,
}

async fn prepare(setup: &Setup, sidecar: &SidecarProcess) -> Fixture {
    let mut vars = vec![("JOB".to_string(), JOB.to_string())];
    if *setup == Setup::Fresh {
        return Fixture {
            vars,
            _client: None,
        };
    }
    let http = http_client();
    let client = JobManagerClient::start(&sidecar.base, "jm-0").await;
    let mut components = vec![("dispatcher".to_string(), DISPATCHER_ADDRESS)];
    if *setup == Setup::Leader {
        components.push((format!("jobmanager/{JOB}"), JOBMANAGER_ADDRESS));
    }
    let mut sessions = Vec::new();
    for (component, address) in &components {
        let (status, body) = send(
            client.on(http
                .put(sidecar.url(&format!("/v1/leadership/{component}")))
                .json(&json!({"address": address}))),
        )
        .await;
        assert_eq!(status, 202, "contending for {component}: {body}");
        let state = sidecar.leading(&http, component).await;
        sessions.push(state["sessionId"].as_str().expect("sessionId").to_string());
    }
    vars.push(("CLIENT".into(), client.id.clone()));
    vars.push(("SESSION".into(), sessions[0].clone()));
    if *setup == Setup::Leader {
        let jm = sessions[1].clone();
        let write = |request: reqwest::RequestBuilder, session: &str| {
            client.on(request).header("Hakeeper-Session", session)
        };
        let job = |path: &str| sidecar.url(&format!("/v1/jobs/{JOB}{path}"));
        let calls = [
            write(http.put(job("/graph")).body("graph"), &sessions[0]),
            write(http.put(job("/status")).body("RUNNING"), &sessions[0]),
            write(http.post(job("/checkpoint-counter/increment")), &jm),
            write(http.post(job("/checkpoints/1")).body("one"), &jm),
            write(http.post(job("/checkpoint-counter/increment")), &jm),
            write(http.post(job("/checkpoints/2")).body("two"), &jm),
        ];
        for call in calls {
            let (status, body) = send(call).await;
            assert!(status.is_success(), "the leader fixture: {status} {body}");
        }
        vars.push(("JM_SESSION".into(), jm));
    }
    Fixture {
        vars,
        _client: Some(client),
    }
}

/// A kubeconfig whose context names the sidecar's namespace, for the `kubectl` examples.
fn namespaced_kubeconfig(c: &TestCluster, dir: &Path) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::copy(c.kubeconfig(), &path).expect("copying the kubeconfig");
    let status = std::process::Command::new("kubectl")
        .args([
            "config",
            "set-context",
            "--current",
            "--namespace",
            &c.namespace,
        ])
        .arg("--kubeconfig")
        .arg(&path)
        .stdout(Stdio::null())
        .status()
        .expect("kubectl config set-context");
    assert!(status.success(), "kubectl config set-context: {status}");
    path
}

/// Run one example; its failures, each naming the doc's line.
async fn run_example(example: &Example) -> Vec<String> {
    let c = TestCluster::start().await;
    let work = tempfile::tempdir().expect("work dir");
    let storage = tempfile::tempdir().expect("storage dir");
    for (name, bytes) in [
        ("jobgraph.bin", &b"a job graph"[..]),
        ("checkpoint.bin", b"a completed checkpoint"),
        ("job.jar", b"PK a jar"),
    ] {
        std::fs::write(work.path().join(name), bytes).expect("writing a fixture file");
    }
    let storage_url = format!("file://{}", storage.path().display());
    let sidecar = SidecarProcess::start(
        &c,
        "analytics",
        "docs",
        &[
            "--storage-dir",
            &storage_url,
            "--checkpoints-retained",
            "2",
            // The docs' clients keep alive every `timeoutMs / 3`, in whole seconds.
            "--client-timeout",
            "10s",
        ],
    )
    .await;
    eventually("the sidecar ready", Duration::from_secs(10), || async {
        let (status, body) = send(http_client().get(sidecar.url("/readyz"))).await;
        if status == 200 {
            Ok(())
        } else {
            Err(body.to_string())
        }
    })
    .await;
    let fixture = prepare(&example.setup, &sidecar).await;
    let kubeconfig = namespaced_kubeconfig(&c, work.path());
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_hakeeper"))
        .parent()
        .expect("the binary's directory")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // GNU timeout runs the script in a process group of its own (made so here as well) and
    // kills that whole group when time is up; the script ends its group when it is done.
    let limit = example.runs.unwrap_or(BLOCK_TIMEOUT);
    let mut bash = tokio::process::Command::new("timeout");
    bash.args(["-s", "KILL", &format!("{}s", limit.as_secs())])
        .args(["bash", "-c"])
        .arg(script(example, &sidecar.base))
        .current_dir(work.path())
        .env("PATH", path)
        .env("KUBECONFIG", &kubeconfig)
        .envs(fixture.vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = bash.spawn().expect("timeout bash");
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let stdout = tokio::spawn(async move {
        let mut bytes = Vec::new();
        let _ = out_pipe.read_to_end(&mut bytes).await;
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let stderr = tokio::spawn(async move {
        let mut bytes = Vec::new();
        let _ = err_pipe.read_to_end(&mut bytes).await;
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let _ = tokio::time::timeout(limit + Duration::from_secs(5), child.wait()).await;
    let mut failures = Vec::new();
    let where_ = |line: usize| format!("{}:{line}", example.file);
    let stdout = stdout.await.expect("reading the block's stdout");
    let stderr = stderr.await.expect("reading the block's stderr");
    if example.runs.is_none() && !stdout.contains(&format!("{STEP} end")) {
        failures.push(format!(
            "{}: the block did not end within {BLOCK_TIMEOUT:?}",
            where_(example.line)
        ));
    }
    let outputs = split_steps(&stdout, example.steps.len());
    let errors = split_steps(&stderr, example.steps.len());
    for (n, step) in example.steps.iter().enumerate() {
        for status in errors[n].lines().filter_map(|l| l.strip_prefix(HTTP)) {
            let code = status.split_whitespace().next().unwrap_or("");
            if !code.starts_with('2') {
                failures.push(format!(
                    "{}: `{}` got HTTP{status}",
                    where_(step.line),
                    step.command
                ));
            }
        }
        for expect in &step.expect {
            if let Some(problem) = check(expect, &outputs[n]) {
                failures.push(format!(
                    "{}: `{}`: {problem}\noutput:\n{}",
                    where_(step.line),
                    step.command,
                    outputs[n]
                ));
            }
        }
    }
    if !example.events.is_empty() {
        let sent: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        let mut rest = sent.iter();
        for event in &example.events {
            if !rest.any(|s| s == event) {
                failures.push(format!(
                    "{}: the stream did not send `event: {event}` where the docs show it; it sent {sent:?}",
                    where_(example.line)
                ));
                break;
            }
        }
    }
    drop(fixture);
    drop(sidecar);
    c.cleanup().await;
    failures
}

fn check(expect: &Expect, output: &str) -> Option<String> {
    match expect {
        Expect::Json(shown) => {
            // The first JSON document printed (one line, or pretty over several).
            let actual = output
                .find(['{', '['])
                .and_then(|at| {
                    serde_json::Deserializer::from_str(&output[at..])
                        .into_iter::<Value>()
                        .next()
                })
                .and_then(Result::ok);
            let Some(actual) = actual else {
                return Some(format!("documented {shown}, but no JSON was printed"));
            };
            let mut out = Vec::new();
            json_differences("$", shown, &actual, &mut out);
            (!out.is_empty()).then(|| out.join("; "))
        }
        Expect::Status(line) => (!output.lines().any(|l| l.trim() == line))
            .then(|| format!("documented `{line}`, not answered")),
        Expect::Line(shown) => (!output.lines().any(|l| line_matches(shown, l.trim())))
            .then(|| format!("documented the line `{shown}`, not printed")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shell_example_in_the_docs_does_what_the_docs_show() {
    common::init_logs();
    for tool in ["curl", "jq", "kubectl"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "the docs' examples need {tool} on the PATH (.ci/run installs it)"
        );
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut examples = Vec::new();
    for file in DOCS {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue;
        };
        examples.extend(parse_examples(file, &text).unwrap_or_else(|e| panic!("{e}")));
    }
    assert!(
        examples.len() >= 15,
        "only {} examples found in {DOCS:?}",
        examples.len()
    );
    let mut failures = Vec::new();
    for example in &examples {
        failures.extend(run_example(example).await);
    }
    assert!(
        failures.is_empty(),
        "{} of the docs' shell examples do not do what the docs show:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn a_block_without_a_marker_is_refused() {
    let text = "Intro.\n\n```sh\ncurl -s localhost:7070/livez\n```\n";
    let e = parse_examples("x.md", text).unwrap_err();
    assert!(e.contains("x.md:3"), "{e}");
}

#[test]
fn steps_expectations_and_assignments_are_read_from_the_block() {
    let text = r#"<!-- example: leader; runs 2s -->
```sh
R=$(curl -s -X POST localhost:7070/v1/clients -d '{"name": "jm-0"}')
# {"clientId": "7d0f", "timeoutMs": 10000}
curl -s localhost:7070/v1/x \
    -d 1      # {"value": 4}, and then 5

# Prose, not output.
curl -s -D - localhost:7070/y
# HTTP/1.1 200 OK
# hakeeper-checkpoint-id: 2
```

```json
{"a": 1}
```
"#;
    let examples = parse_examples("x.md", text).unwrap();
    let [example] = &examples[..] else {
        panic!("{examples:?}")
    };
    assert_eq!(example.setup, Setup::Leader);
    assert_eq!(example.runs, Some(Duration::from_secs(2)));
    let steps = &example.steps;
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0].assigns.as_deref(), Some("R"));
    assert_eq!(
        steps[0].expect,
        vec![Expect::Json(
            json!({"clientId": "7d0f", "timeoutMs": 10000})
        )]
    );
    assert_eq!(steps[1].line, 5);
    assert!(steps[1].command.ends_with("-d 1"), "{:?}", steps[1].command);
    assert_eq!(steps[1].expect, vec![Expect::Json(json!({"value": 4}))]);
    assert_eq!(
        steps[2].expect,
        vec![
            Expect::Status("HTTP/1.1 200 OK".into()),
            Expect::Line("hakeeper-checkpoint-id: 2".into()),
            Expect::Json(json!({"a": 1})),
        ]
    );
}

#[test]
fn answers_are_compared_by_shape_with_examples_standing_for_values() {
    let diff = |shown: Value, actual: Value| {
        let mut out = Vec::new();
        json_differences("$", &shown, &actual, &mut out);
        out
    };
    let shown =
        json!({"clientId": "7d0f6c1e", "released": true, "components": ["dispatcher"], "n": 4});
    assert!(
        diff(
            shown.clone(),
            json!({"clientId": "1234", "released": true, "components": ["dispatcher"], "n": 9})
        )
        .is_empty()
    );
    let out = diff(
        shown.clone(),
        json!({"clientId": "1", "released": false, "components": [], "extra": 1}),
    );
    assert_eq!(out.len(), 4, "{out:?}");
    assert!(
        out.iter()
            .any(|d| d.contains("$.n: documented, not in the answer"))
    );
    assert!(
        out.iter()
            .any(|d| d.contains("$.extra: in the answer, not documented"))
    );
    assert!(
        out.iter()
            .any(|d| d.contains("$.released: documented true"))
    );
    assert!(!diff(json!({"status": "RUNNING"}), json!({"status": "DONE"})).is_empty());
    assert!(!diff(json!({"n": 1}), json!({"n": "1"})).is_empty());
    assert!(line_matches(
        "hakeeper-checkpoint-id: 3",
        "Hakeeper-Checkpoint-Id: 12"
    ));
    assert!(!line_matches(
        "hakeeper-checkpoint-id: 3",
        "hakeeper-checkpoint-id:"
    ));
    assert!(!line_matches("content-type: a", "content-type: b"));
}

#[test]
fn the_script_points_at_the_sidecar_and_marks_each_step() {
    let examples = parse_examples(
        "x.md",
        "<!-- example: fresh -->\n```sh\nX=$(curl -s localhost:7070/a)\ncurl -s localhost:7070/b\n```\n",
    )
    .unwrap();
    let script = script(&examples[0], "http://127.0.0.1:4321");
    assert!(script.contains("curl -s 127.0.0.1:4321/a"), "{script}");
    assert!(!script.contains("7070"), "{script}");
    assert!(script.contains("printf '%s\\n' \"$X\""), "{script}");
    let out = format!("{STEP} 0\nA\n{STEP} 1\nB\nC\n{STEP} end\nD\n");
    assert_eq!(
        split_steps(&out, 2),
        vec!["A\n".to_string(), "B\nC\n".to_string()]
    );
}

/// `value` with every `{"$ref": "#/..."}` replaced by what it points at in `doc` (one level
/// at a time, as far as the refs go; a cycle stops at depth 32).
fn resolve(doc: &Value, value: &Value, depth: usize) -> Value {
    if depth > 32 {
        return value.clone();
    }
    match value {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref")
                && let Some(target) = r.strip_prefix('#').and_then(|p| doc.pointer(p))
            {
                return resolve(doc, target, depth + 1);
            }
            Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), resolve(doc, v, depth + 1)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| resolve(doc, v, depth + 1)).collect()),
        other => other.clone(),
    }
}

/// Every string of every `enum` under `value` whose strings are all error kinds.
fn kinds_in(value: &Value, all: &std::collections::BTreeSet<String>, out: &mut Vec<String>) {
    match value {
        Value::Object(o) => {
            if let Some(Value::Array(e)) = o.get("enum") {
                let strings: Vec<String> = e
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                if !strings.is_empty()
                    && strings.len() < all.len()
                    && strings.iter().all(|s| all.contains(s))
                {
                    out.extend(strings);
                }
            }
            for v in o.values() {
                kinds_in(v, all, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| kinds_in(v, all, out)),
        _ => {}
    }
}

/// The rows of the Markdown table whose first line starts with `header`: each row's cells,
/// trimmed, backquotes removed.
fn table_rows(text: &str, header: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| l.starts_with(header)) else {
        return Vec::new();
    };
    lines[start + 2..]
        .iter()
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect()
}

/// `/v1/jobs/{jobId}/graph` → `/v1/jobs/{}/graph`.
fn normalize_path(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_md_clients_md_and_openapi_json_say_the_same() {
    common::init_logs();
    let c = TestCluster::start().await;
    let storage = tempfile::tempdir().expect("storage dir");
    let storage_url = format!("file://{}", storage.path().display());
    let sidecar = SidecarProcess::start(
        &c,
        "analytics",
        "contract",
        &["--storage-dir", &storage_url],
    )
    .await;
    let (status, doc) = send(http_client().get(sidecar.url("/openapi.json"))).await;
    assert_eq!(status, 200, "{doc}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let api = std::fs::read_to_string(root.join("docs/API.md")).expect("docs/API.md");
    let clients = std::fs::read_to_string(root.join("docs/CLIENTS.md")).expect("docs/CLIENTS.md");
    let mut failures = Vec::new();

    // The error kinds: the Error schema's, API.md's table's, CLIENTS.md's decisions'.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let all: std::collections::BTreeSet<String> = schemas
        .values()
        .find_map(|s| s.pointer("/properties/error/enum"))
        .and_then(Value::as_array)
        .expect("an Error schema with an enum of kinds")
        .iter()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    let api_rows = table_rows(&api, "| status | `error` | when |");
    let api_pairs: std::collections::BTreeSet<(String, String)> = api_rows
        .iter()
        .filter(|r| r.len() >= 2)
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let api_kinds: std::collections::BTreeSet<String> =
        api_pairs.iter().map(|(_, k)| k.clone()).collect();
    let client_kinds: std::collections::BTreeSet<String> =
        table_rows(&clients, "| `error` | status | next step |")
            .into_iter()
            .filter_map(|r| r.first().cloned())
            .collect();
    for (name, kinds) in [
        ("API.md's error table", &api_kinds),
        ("CLIENTS.md's decision table", &client_kinds),
    ] {
        let missing: Vec<_> = all.difference(kinds).collect();
        let extra: Vec<_> = kinds.difference(&all).collect();
        if !missing.is_empty() || !extra.is_empty() {
            failures.push(format!(
                "{name}: missing the kinds {missing:?} of /openapi.json; has {extra:?}, which it does not name"
            ));
        }
    }

    // Each status and kind a route answers in /openapi.json is a row of API.md's table.
    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        let item = resolve(&doc, item, 0);
        for (method, op) in item.as_object().into_iter().flatten() {
            let Some(responses) = op.get("responses").and_then(Value::as_object) else {
                continue;
            };
            for (status, response) in responses {
                let mut kinds = Vec::new();
                kinds_in(response, &all, &mut kinds);
                for kind in kinds {
                    if !api_pairs.contains(&(status.clone(), kind.clone())) {
                        failures.push(format!(
                            "/openapi.json: {} {path} answers {status} {kind}; API.md's error table has no row {status} `{kind}`",
                            method.to_uppercase()
                        ));
                    }
                }
            }
        }
    }

    // Every route in both, and no other.
    let api_text = normalize_path(&api);
    for path in paths.keys() {
        if !api_text.contains(&format!("{}`", normalize_path(path)))
            && !api_text.contains(&format!("{} ", normalize_path(path)))
            && !api_text.contains(&format!("{}?", normalize_path(path)))
        {
            failures.push(format!("/openapi.json has {path}; API.md never names it"));
        }
    }
    let known: Vec<String> = paths.keys().map(|p| normalize_path(p)).collect();
    for word in api_text.split(['`', ' ', '(', ')', '\n', ',', '\'']) {
        let route = word.split('?').next().unwrap_or_default();
        let route = route.trim_end_matches(['.', ':', ';']);
        if route.starts_with("/v1/") && !route.contains('…') && !known.iter().any(|k| k == route)
        {
            failures.push(format!(
                "API.md names {route}, which /openapi.json does not have"
            ));
        }
    }
    failures.sort();
    failures.dedup();
    drop(sidecar);
    c.cleanup().await;
    assert!(
        failures.is_empty(),
        "docs/API.md, docs/CLIENTS.md and /openapi.json disagree:\n{}",
        failures.join("\n")
    );
}
