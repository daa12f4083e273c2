//! The real `kubectl` against the API server: create (protobuf), get -o yaml, annotate,
//! label, selectors with server-side tables, describe with events, replace conflicts,
//! delete by selector, watch, strict field validation and `get events`.
//!
//! kubectl is required: these tests fail (not skip) when it is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{TestCluster, configmap};
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use tokio::io::{AsyncBufReadExt, BufReader};

/// How long any single kubectl invocation may take.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(30);

/// The kubectl binary on PATH; panics when there is none.
fn kubectl_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["kubectl", "kubectl.exe"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("kubectl not found on PATH: install it (the CI script does)");
}

/// kubectl bound to a test cluster: its kubeconfig, a cache dir of the test and its
/// namespace.
struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
    namespace: String,
}

impl Kubectl {
    fn new(cluster: &TestCluster) -> Kubectl {
        let cache_dir = cluster.path("kube-cache");
        std::fs::create_dir_all(&cache_dir).expect("kubectl cache directory");
        Kubectl {
            bin: kubectl_binary(),
            kubeconfig: cluster.kubeconfig().to_path_buf(),
            cache_dir,
            namespace: cluster.namespace.clone(),
        }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache_dir)
            .arg("-n")
            .arg(&self.namespace)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs kubectl to completion (bounded by [`KUBECTL_TIMEOUT`]).
    async fn run(&self, args: &[&str]) -> Output {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning kubectl {args:?}: {e}"));
        tokio::time::timeout(KUBECTL_TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish in {KUBECTL_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("waiting for kubectl {args:?}: {e}"))
    }

    /// Runs kubectl, asserts success and returns its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        String::from_utf8(out.stdout).expect("kubectl output is UTF-8")
    }

    /// Runs kubectl, asserts failure and returns its stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded:\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// The whitespace-separated cells of a table row whose first cell is `name`.
fn table_row<'a>(table: &'a str, name: &str) -> Option<Vec<&'a str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name))
}

fn header_cells(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect()
}

async fn create_cm(cluster: &TestCluster, name: &str, labels: serde_json::Value) -> ConfigMap {
    let cm = configmap(serde_json::json!({
        "metadata": {"name": name, "labels": labels},
        "data": {"one": "1"},
    }));
    cluster
        .api::<ConfigMap>()
        .create(&PostParams::default(), &cm)
        .await
        .unwrap_or_else(|e| panic!("creating ConfigMap {name}: {e}"))
}

/// An Event about `cm`, as a controller would record it (core/v1).
async fn create_event(cluster: &TestCluster, cm: &ConfigMap, reason: &str, message: &str) -> Event {
    let name = cm.metadata.name.clone().unwrap();
    let uid = cm.metadata.uid.clone().expect("ConfigMap has a uid");
    let now = jiff::Timestamp::now().to_string();
    let event: Event = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{name}.{}", &uuid::Uuid::new_v4().simple().to_string()[..8])},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": name,
            "namespace": cluster.namespace,
            "uid": uid,
        },
        "reason": reason,
        "message": message,
        "type": "Normal",
        "source": {"component": "hakeeper-test"},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }))
    .expect("an Event");
    cluster
        .api::<Event>()
        .create(&PostParams::default(), &event)
        .await
        .expect("creating the Event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_from_literal_then_get_yaml() {
    let cluster = TestCluster::start().await;
    let kubectl = Kubectl::new(&cluster);

    // -v=8 logs the request headers: the typed client posts protobuf.
    let out = kubectl
        .run(&[
            "create",
            "configmap",
            "literal",
            "--from-literal=a=b",
            "-v=8",
        ])
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "create failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("configmap/literal created"),
        "create output: {stdout}"
    );
    assert!(
        stderr.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "kubectl did not send protobuf:\n{stderr}"
    );

    let yaml = kubectl.ok(&["get", "cm", "literal", "-o", "yaml"]).await;
    let lines: Vec<&str> = yaml.lines().collect();
    assert!(lines.contains(&"kind: ConfigMap"), "yaml:\n{yaml}");
    assert!(lines.contains(&"apiVersion: v1"), "yaml:\n{yaml}");
    assert!(lines.contains(&"data:"), "yaml:\n{yaml}");
    assert!(lines.contains(&"  a: b"), "yaml:\n{yaml}");
    assert!(lines.contains(&"  name: literal"), "yaml:\n{yaml}");
    let ns_line = format!("  namespace: {}", cluster.namespace);
    assert!(lines.contains(&ns_line.as_str()), "yaml:\n{yaml}");
    let field = |key: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("  {key}: ")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("no {key} in yaml:\n{yaml}"))
    };
    let uid = field("uid");
    let rv = field("resourceVersion");
    assert!(!uid.is_empty() && !rv.is_empty(), "yaml:\n{yaml}");
    assert!(
        lines.iter().any(|l| l.starts_with("  creationTimestamp: ")),
        "yaml:\n{yaml}"
    );

    // The same object through kube-rs.
    let cm = cluster.api::<ConfigMap>().get("literal").await.unwrap();
    assert_eq!(cm.metadata.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(cm.metadata.resource_version.as_deref(), Some(rv.as_str()));
    let data = cm.data.expect("data");
    assert_eq!(data.len(), 1);
    assert_eq!(data.get("a").map(String::as_str), Some("b"));

    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotate_and_label() {
    let cluster = TestCluster::start().await;
    let kubectl = Kubectl::new(&cluster);
    create_cm(&cluster, "marked", serde_json::json!({})).await;

    let out = kubectl.ok(&["annotate", "cm", "marked", "k=v"]).await;
    assert!(
        out.contains("configmap/marked annotated"),
        "annotate output: {out}"
    );
    let out = kubectl.ok(&["label", "cm", "marked", "app=x"]).await;
    assert!(
        out.contains("configmap/marked labeled"),
        "label output: {out}"
    );

    let cm = cluster.api::<ConfigMap>().get("marked").await.unwrap();
    let annotations = cm.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations.get("k").map(String::as_str),
        Some("v"),
        "{annotations:?}"
    );
    let labels = cm.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get("app").map(String::as_str),
        Some("x"),
        "{labels:?}"
    );
    assert_eq!(cm.data.unwrap_or_default().len(), 1, "data untouched");

    // Overwriting needs --overwrite, as with kube-apiserver (a client-side check).
    let err = kubectl.fails(&["label", "cm", "marked", "app=y"]).await;
    assert!(err.contains("already has a value (x)"), "stderr: {err}");
    kubectl
        .ok(&["label", "cm", "marked", "app=y", "--overwrite"])
        .await;
    let cm = cluster.api::<ConfigMap>().get("marked").await.unwrap();
    assert_eq!(
        cm.metadata
            .labels
            .unwrap_or_default()
            .get("app")
            .map(String::as_str),
        Some("y")
    );

    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_with_label_selector_prints_table() {
    let cluster = TestCluster::start().await;
    let kubectl = Kubectl::new(&cluster);
    let labelled = configmap(serde_json::json!({
        "metadata": {"name": "chosen", "labels": {"app": "x"}},
        "data": {"one": "1", "two": "2", "three": "3"},
    }));
    cluster
        .api::<ConfigMap>()
        .create(&PostParams::default(), &labelled)
        .await
        .unwrap();
    create_cm(&cluster, "other", serde_json::json!({"app": "y"})).await;
    create_cm(&cluster, "plain", serde_json::json!({})).await;

    let table = kubectl.ok(&["get", "cm", "--selector", "app=x"]).await;
    assert_eq!(
        header_cells(&table),
        ["NAME", "DATA", "AGE"],
        "table:\n{table}"
    );
    let rows: Vec<&str> = table
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(rows.len(), 1, "exactly one row expected:\n{table}");
    let row = table_row(&table, "chosen").unwrap_or_else(|| panic!("no row:\n{table}"));
    assert_eq!(row.len(), 3, "row: {row:?}");
    assert_eq!(row[1], "3", "DATA column: {row:?}");
    assert!(table_row(&table, "plain").is_none(), "table:\n{table}");
    assert!(table_row(&table, "other").is_none(), "table:\n{table}");

    // Set-based and negative selectors go to the server too.
    let table = kubectl
        .ok(&["get", "cm", "-l", "app in (x,y)", "-o", "name"])
        .await;
    let mut names: Vec<&str> = table.lines().collect();
    names.sort();
    assert_eq!(names, ["configmap/chosen", "configmap/other"]);
    let table = kubectl
        .ok(&["get", "cm", "-l", "app!=x", "-o", "name"])
        .await;
    assert!(table.lines().any(|l| l == "configmap/plain"), "{table}");
    assert!(table.lines().any(|l| l == "configmap/other"), "{table}");
    assert!(!table.lines().any(|l| l == "configmap/chosen"), "{table}");

    // An empty result goes to stderr.
    let out = kubectl.run(&["get", "cm", "-l", "app=nothing"]).await;
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No resources found"), "stderr: {err}");

    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_events() {
    let cluster = TestCluster::start().await;
    let kubectl = Kubectl::new(&cluster);
    let cm = create_cm(&cluster, "described", serde_json::json!({"app": "x"})).await;
    create_event(&cluster, &cm, "TestedReason", "the test created this event").await;

    // An event about another object must not show up.
    let other = create_cm(&cluster, "unrelated", serde_json::json!({})).await;
    create_event(&cluster, &other, "OtherReason", "not about described").await;
    // Nor one about an earlier ConfigMap of the same name (kubectl selects on the uid).
    let mut earlier = cm.clone();
    earlier.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
    create_event(
        &cluster,
        &earlier,
        "EarlierReason",
        "about a previous incarnation",
    )
    .await;

    let out = kubectl.ok(&["describe", "cm", "described"]).await;
    assert!(
        out.lines()
            .any(|l| l.starts_with("Name:") && l.ends_with("described")),
        "describe:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("Namespace:") && l.ends_with(cluster.namespace.as_str())),
        "describe:\n{out}"
    );
    assert!(out.contains("app=x"), "labels in describe:\n{out}");
    let events_at = out
        .find("Events:")
        .unwrap_or_else(|| panic!("no Events section:\n{out}"));
    let events = &out[events_at..];
    assert!(!events.starts_with("Events:  <none>"), "describe:\n{out}");
    for column in ["Type", "Reason", "Age", "From", "Message"] {
        assert!(events.contains(column), "no {column} column:\n{out}");
    }
    let row = events
        .lines()
        .find(|l| l.contains("TestedReason"))
        .unwrap_or_else(|| panic!("event missing from describe:\n{out}"));
    assert!(row.contains("Normal"), "row: {row}");
    assert!(row.contains("hakeeper-test"), "row: {row}");
    assert!(row.contains("the test created this event"), "row: {row}");
    assert!(
        !out.contains("OtherReason"),
        "foreign event in describe:\n{out}"
    );
    assert!(
        !out.contains("EarlierReason"),
        "event of another uid in describe:\n{out}"
    );

    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_with_stale_resource_version_conflicts() {
    let cluster = TestCluster::start().await;
    let kubectl = Kubectl::new(&cluster);
    create_cm(&cluster, "raced", serde_json::json!({})).await;

    let yaml = kubectl.ok(&["get", "cm", "raced", "-o", "yaml"]).await;
    let file = cluster.path("raced.yaml");
    std::fs::write(
        &file,
        yaml.replace("  one: \"1\"", "  one: \"from-kubectl\""),
    )
    .unwrap();

    // Someone else changes it in between.
    let patch = serde_json::json!({"data": {"one": "from-kube-rs"}});
    cluster
        .api::<ConfigMap>()
        .patch("raced", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();

    let err = kubectl.fails(&["replace", "-f", path_str(&file)]).await;
    assert!(err.contains("Conflict"), "stderr: {err}");
    assert!(
        err.contains(
            "the object has been modified; please apply your changes to the latest version and try again"
        ),
        "stderr: {err}"
    );
    assert!(err.contains("\"raced\""), "stderr: {err}");

    let cm = cluster.api::<ConfigMap>().get("raced").await.unwrap();
    assert_eq!(
        cm.data.unwrap_or_default().get("one").map(String::as_str),
        Some("from-kube-rs"),
        "the losing replace must not have been applied"
    );

    // With the current object it goes through.
    let yaml = kubectl.ok(&["get", "cm", "raced", "-o", "yaml"]).await;
    std::fs::write(&file, yaml.replace("from-kube-rs", "from-kubectl")).unwrap();
    let out = kubectl.ok(&["replace", "-f", path_str(&file)]).await;
    assert!(
        out.contains("configmap/raced replaced"),
        "replace output: {out}"
    );
    let cm = cluster.api::<ConfigMap>().get("raced").await.unwrap();
    assert_eq!(
        cm.data.unwrap_or_default().get("one").map(String::as_str),
        Some("from-kubectl")
    );

    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_with_label_selector() {
    let cluster = TestCluster::start().await;
    let kubectl = Kubectl::new(&cluster);
    create_cm(&cluster, "doomed-1", serde_json::json!({"app": "x"})).await;
    create_cm(
        &cluster,
        "doomed-2",
        serde_json::json!({"app": "x", "tier": "a"}),
    )
    .await;
    create_cm(&cluster, "kept-label", serde_json::json!({"app": "y"})).await;
    create_cm(&cluster, "kept-plain", serde_json::json!({})).await;

    let out = kubectl.ok(&["delete", "cm", "--selector", "app=x"]).await;
    assert!(
        out.contains("configmap \"doomed-1\" deleted"),
        "delete output: {out}"
    );
    assert!(
        out.contains("configmap \"doomed-2\" deleted"),
        "delete output: {out}"
    );
    assert!(!out.contains("kept"), "delete output: {out}");

    let list = cluster
        .api::<ConfigMap>()
        .list(&ListParams::default())
        .await
        .unwrap();
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        // A real cluster puts kube-root-ca.crt into every namespace.
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    names.sort();
    assert_eq!(names, ["kept-label", "kept-plain"]);

    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_prints_changes() {
    let cluster = TestCluster::start().await;
    let kubectl = Kubectl::new(&cluster);
    create_cm(&cluster, "watched", serde_json::json!({})).await;
    create_cm(&cluster, "bystander", serde_json::json!({})).await;

    let mut child = kubectl
        .command(&["get", "cm", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning kubectl get -w");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen: Vec<String> = Vec::new();

    let result = tokio::time::timeout(Duration::from_secs(20), async {
        // The initial listing: a header, then a row per ConfigMap.
        loop {
            let line = lines
                .next_line()
                .await
                .expect("reading kubectl")
                .expect("kubectl exited");
            seen.push(line.clone());
            let cells: Vec<&str> = line.split_whitespace().collect();
            if cells.first() == Some(&"watched") {
                assert_eq!(cells.get(1), Some(&"1"), "initial row: {line}");
                break;
            }
        }
        assert_eq!(
            header_cells(&seen[0]),
            ["NAME", "DATA", "AGE"],
            "first line: {}",
            seen[0]
        );

        let patch = serde_json::json!({"data": {"two": "2"}});
        cluster
            .api::<ConfigMap>()
            .patch("watched", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patching the watched ConfigMap");

        loop {
            let line = lines
                .next_line()
                .await
                .expect("reading kubectl")
                .expect("kubectl exited");
            seen.push(line.clone());
            let cells: Vec<&str> = line.split_whitespace().collect();
            if cells.first() == Some(&"watched") && cells.get(1) == Some(&"2") {
                assert_eq!(cells.len(), 3, "row: {line}");
                break;
            }
        }
    })
    .await;

    let _ = child.start_kill();
    let stderr = match child.wait_with_output().await {
        Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
        Err(e) => format!("<{e}>"),
    };
    assert!(
        result.is_ok(),
        "no watch row with DATA 2 within 20s; stdout so far:\n{}\nstderr:\n{stderr}",
        seen.join("\n")
    );
    assert!(
        seen.iter()
            .any(|l| l.split_whitespace().next() == Some("bystander")),
        "initial listing lacks bystander:\n{}",
        seen.join("\n")
    );

    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_unknown_field_is_rejected_strictly() {
    let cluster = TestCluster::start().await;
    let kubectl = Kubectl::new(&cluster);
    let file = cluster.path("strict.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\ndata:\n  a: b\nspec: {}\n",
    )
    .unwrap();

    let err = kubectl.fails(&["create", "-f", path_str(&file)]).await;
    // The embedded server words it as kube-apiserver 1.25+ does (server-side validation); an
    // older real server has none, and kubectl validates on the client in its own words.
    if cluster.server.is_some() {
        assert!(err.contains("strict decoding error"), "stderr: {err}");
    }
    assert!(err.contains("unknown field \"spec\""), "stderr: {err}");
    let missing = cluster.api::<ConfigMap>().get_opt("strict").await.unwrap();
    assert!(missing.is_none(), "the rejected ConfigMap was stored");

    // Without the unknown field the same file is fine.
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\ndata:\n  a: b\n",
    )
    .unwrap();
    let out = kubectl.ok(&["create", "-f", path_str(&file)]).await;
    assert!(
        out.contains("configmap/strict created"),
        "create output: {out}"
    );
    let cm = cluster.api::<ConfigMap>().get("strict").await.unwrap();
    assert_eq!(
        cm.data.unwrap_or_default().get("a").map(String::as_str),
        Some("b")
    );

    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_events_lists_created_event() {
    let cluster = TestCluster::start().await;
    let kubectl = Kubectl::new(&cluster);
    let cm = create_cm(&cluster, "eventful", serde_json::json!({})).await;
    let event = create_event(&cluster, &cm, "KubectlListed", "seen by kubectl get events").await;

    let table = kubectl.ok(&["get", "events"]).await;
    assert_eq!(
        header_cells(&table),
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "table:\n{table}"
    );
    let row = table
        .lines()
        .find(|l| l.contains("KubectlListed"))
        .unwrap_or_else(|| panic!("event missing:\n{table}"));
    assert!(row.contains("Normal"), "row: {row}");
    assert!(row.contains("configmap/eventful"), "row: {row}");
    assert!(row.contains("seen by kubectl get events"), "row: {row}");

    // By name, as JSON, the same object.
    let name = event.metadata.name.clone().unwrap();
    let json = kubectl.ok(&["get", "event", &name, "-o", "json"]).await;
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON from kubectl");
    assert_eq!(value["reason"], "KubectlListed");
    assert_eq!(
        value["involvedObject"]["uid"],
        cm.metadata.uid.clone().unwrap()
    );

    cluster.cleanup().await;
}
