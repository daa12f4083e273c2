//! `hakeeper bench operator`: a real `hakeeper operator` process against the embedded API
//! server holding N clusters × (3 component locks + 2 job locks), written as stock Flink
//! 1.12–1.14 writes them. Leader changes are injected at a steady rate; each is matched to
//! its webhook delivery (by the new session id) and to its `LeaderChanged` Event. Reports the
//! change-to-alert latencies, missed and duplicate alerts, and the operator's memory and CPU.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::apiserver::{DevServer, DevServerConfig};
use crate::layout::{ClusterId, Component, JobId};
use crate::lease::{LEADER_ANNOTATION, LeaderRecord};
use crate::{Error, Result};

#[derive(Debug, Clone)]
pub struct OperatorBenchParams {
    /// The `hakeeper` binary to run the operator from.
    pub exe: std::path::PathBuf,
    pub clusters: usize,
    /// Leader changes per second.
    pub rate: f64,
    pub changes: usize,
    /// How long to measure CPU at rest.
    pub rest: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct OperatorBenchReport {
    pub configmaps: usize,
    pub changes: usize,
    pub to_webhook: Vec<Duration>,
    pub to_event: Vec<Duration>,
    pub missed_webhook: usize,
    pub missed_event: usize,
    pub duplicate_webhook: usize,
    pub spurious_webhook: usize,
    pub startup: Duration,
    pub rss_bytes: Option<u64>,
    pub rss_peak_bytes: Option<u64>,
    pub cpu_at_rest: Option<f64>,
}

fn job(n: usize, j: usize) -> JobId {
    format!("{:016x}{:016x}", n as u64, j as u64)
        .parse()
        .expect("32 hex digits")
}

fn components(n: usize) -> Vec<Component> {
    vec![
        Component::Dispatcher,
        Component::ResourceManager,
        Component::RestServer,
        Component::JobManager(job(n, 1)),
        Component::JobManager(job(n, 2)),
    ]
}

fn cluster(n: usize) -> ClusterId {
    format!("bench-{n:05}").parse().expect("a valid cluster id")
}

/// A held lock with leader `session`, as Flink writes it (a lease long enough to stay held
/// through the run).
fn lock(cluster: &ClusterId, component: &Component, holder: &str, session: &str) -> ConfigMap {
    let now = jiff::Timestamp::now();
    let record = LeaderRecord {
        holder_identity: holder.to_string(),
        lease_duration: Duration::from_secs(3600),
        acquire_time: now,
        renew_time: now,
        leader_transitions: 0,
    };
    serde_json::from_value(json!({
        "metadata": {
            "name": component.configmap_name(cluster),
            "labels": cluster.labels(),
            "annotations": { LEADER_ANNOTATION: record.to_annotation() },
        },
        "data": {
            "address": format!("akka.tcp://flink@{holder}:6123/user/rpc/{component}"),
            "sessionId": session,
        }
    }))
    .expect("a ConfigMap")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// utime + stime of `pid`, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks.max(1.0))
}

type Seen = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// A webhook receiver recording, per new session id, when each delivery arrived.
async fn receiver() -> Result<(String, Seen, tokio::task::JoinHandle<()>)> {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let s = s.clone();
        async move {
            let at = Instant::now();
            if let Ok(v) = serde_json::from_slice::<Value>(&body)
                && let Some(session) = v["to"]["sessionId"].as_str()
                && v["kind"] == "LeaderChanged"
            {
                s.lock()
                    .expect("lock")
                    .entry(session.to_string())
                    .or_default()
                    .push(at);
            }
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::io("binding the bench webhook receiver", e))?;
    let url = format!(
        "http://{}/alerts",
        listener
            .local_addr()
            .map_err(|e| Error::io("reading the receiver address", e))?
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, seen, task))
}

/// Follow `LeaderChanged` Events; record when each session id first appears in one.
fn follow_events(client: kube::Client, namespace: &str) -> (Seen, tokio::task::JoinHandle<()>) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let api: Api<Event> = Api::namespaced(client, namespace);
    let task = tokio::spawn(async move {
        let stream = watcher(api, watcher::Config::default());
        let mut stream = std::pin::pin!(stream);
        while let Some(e) = stream.next().await {
            let at = Instant::now();
            let ev = match e {
                Ok(watcher::Event::Apply(ev)) | Ok(watcher::Event::InitApply(ev)) => ev,
                _ => continue,
            };
            if ev.reason.as_deref() != Some("LeaderChanged") {
                continue;
            }
            let note = ev.note.unwrap_or_default();
            // "... to <address> (session <uuid>)" or "has a leader: <address> (session <uuid>)"
            if let Some(session) = note
                .rsplit("(session ")
                .next()
                .and_then(|r| r.split(')').next())
            {
                s.lock()
                    .expect("lock")
                    .entry(session.to_string())
                    .or_insert_with(|| vec![at]);
            }
        }
    });
    (seen, task)
}

pub async fn run(params: OperatorBenchParams) -> Result<OperatorBenchReport> {
    let namespace = "bench";
    let server = DevServer::start(DevServerConfig {
        history_limit: 100_000,
        namespace: namespace.into(),
        ..Default::default()
    })
    .await?;
    let dir = std::env::temp_dir().join(format!("hakeeper-bench-operator-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating the bench directory", e))?;
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig)?;
    let client = server.client().await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);

    // The clusters, led from the start (the operator must not alert about them).
    let mut report = OperatorBenchReport::default();
    let creates = futures::stream::iter(0..params.clusters)
        .flat_map(|n| futures::stream::iter(components(n).into_iter().map(move |c| (n, c))))
        .map(|(n, c)| {
            let api = api.clone();
            async move {
                let cm = lock(&cluster(n), &c, "jm-0", &uuid::Uuid::new_v4().to_string());
                api.create(&PostParams::default(), &cm).await
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    for r in creates {
        r?;
    }
    report.configmaps = params.clusters * 5;

    let (url, webhook_seen, receiver_task) = receiver().await?;
    let (event_seen, events_task) = follow_events(client.clone(), namespace);
    let started = Instant::now();
    let mut operator = spawn_operator(&params.exe, &kubeconfig, namespace, &url, &dir)?;
    let pid = operator.id().unwrap_or(0);
    let admin = read_admin(&mut operator).await?;
    let http = reqwest::Client::new();
    wait_leading(&http, &admin).await?;
    report.startup = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline_alerts = webhook_seen.lock().expect("lock").len();

    // Changes at a steady rate.
    let mut injected: BTreeMap<String, Instant> = BTreeMap::new();
    let interval = Duration::from_secs_f64(1.0 / params.rate.max(0.1));
    let mut next = tokio::time::Instant::now();
    for i in 0..params.changes {
        tokio::time::sleep_until(next).await;
        next += interval;
        let n = fastrand::usize(0..params.clusters);
        let comps = components(n);
        let c = &comps[fastrand::usize(0..comps.len())];
        let session = uuid::Uuid::new_v4().to_string();
        let holder = format!("jm-{}", i + 1);
        let cm = lock(&cluster(n), c, &holder, &session);
        let patch = json!({
            "metadata": { "annotations": cm.metadata.annotations },
            "data": cm.data,
        });
        let name = c.configmap_name(&cluster(n));
        let t0 = Instant::now();
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        injected.insert(session, t0);
        report.rss_peak_bytes = report.rss_peak_bytes.max(proc_status(pid, "VmRSS:"));
    }
    report.changes = injected.len();
    // Let the last ones arrive.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let w = webhook_seen.lock().expect("lock").len();
        let e = event_seen.lock().expect("lock").len();
        if w >= injected.len() + baseline_alerts && e >= injected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    {
        let w = webhook_seen.lock().expect("lock");
        let e = event_seen.lock().expect("lock");
        for (session, t0) in &injected {
            match w.get(session) {
                Some(times) => {
                    report
                        .to_webhook
                        .push(times[0].saturating_duration_since(*t0));
                    report.duplicate_webhook += times.len() - 1;
                }
                None => report.missed_webhook += 1,
            }
            match e.get(session) {
                Some(times) => report
                    .to_event
                    .push(times[0].saturating_duration_since(*t0)),
                None => report.missed_event += 1,
            }
        }
        report.spurious_webhook = w.keys().filter(|s| !injected.contains_key(*s)).count();
    }
    report.to_webhook.sort();
    report.to_event.sort();

    // At rest: memory, and CPU over `rest`.
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.rss_bytes = proc_status(pid, "VmRSS:");
    report.rss_peak_bytes = report.rss_peak_bytes.max(proc_status(pid, "VmHWM:"));
    let cpu0 = cpu_seconds(pid);
    tokio::time::sleep(params.rest).await;
    let cpu1 = cpu_seconds(pid);
    report.cpu_at_rest = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some((b - a) / params.rest.as_secs_f64()),
        _ => None,
    };

    let _ = operator.start_kill();
    let _ = operator.wait().await;
    receiver_task.abort();
    events_task.abort();
    server.shutdown().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

fn spawn_operator(
    exe: &Path,
    kubeconfig: &Path,
    namespace: &str,
    webhook: &str,
    dir: &Path,
) -> Result<tokio::process::Child> {
    let log = std::fs::File::create(dir.join("operator.log"))
        .map_err(|e| Error::io("creating the operator log", e))?;
    tokio::process::Command::new(exe)
        .arg("operator")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--namespace", namespace, "--operator-namespace", namespace])
        .args([
            "--admin-listen",
            "127.0.0.1:0",
            "--identity",
            "bench-operator",
        ])
        .args(["--alert-webhook", webhook, "--no-verify", "--log", "warn"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::io(format!("starting {}", exe.display()), e))
}

async fn read_admin(child: &mut tokio::process::Child) -> Result<String> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::Config("the operator's stdout is not piped".into()))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| Error::Config("the operator did not start within 30 s".into()))?
        .map_err(|e| Error::io("reading the operator's output", e))?
        .unwrap_or_default();
    // Keep reading (and discarding) so the pipe never fills.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    line.strip_prefix("hakeeper operator: admin on ")
        .map(str::to_string)
        .ok_or_else(|| Error::Config(format!("unexpected operator output: {line:?}")))
}

async fn wait_leading(http: &reqwest::Client, admin: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{admin}/metrics")).send().await
            && let Ok(text) = r.text().await
            && text.lines().any(|l| l == "hakeeper_operator_is_leader 1")
            && http
                .get(format!("{admin}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Error::Config(
        "the operator did not lead and sync within 120 s".into(),
    ))
}

/// The report as the lines `hakeeper bench operator` prints.
pub fn render(params: &OperatorBenchParams, r: &OperatorBenchReport) -> String {
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let line = |name: &str, v: &[Duration]| {
        format!(
            "  {name:<18} p50 {:>9}  p99 {:>9}  max {:>9}  ({} matched)\n",
            ms(percentile(v, 0.50)),
            ms(percentile(v, 0.99)),
            ms(v.last().copied().unwrap_or_default()),
            v.len()
        )
    };
    let mib = |b: Option<u64>| {
        b.map_or("-".to_string(), |b| {
            format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
        })
    };
    let mut out = format!(
        "operator: {} clusters, {} HA ConfigMaps, {} leader changes at {}/s (embedded API server, loopback webhook)\n",
        params.clusters, r.configmaps, r.changes, params.rate
    );
    out.push_str(&format!(
        "  start to leading and synced: {}\n",
        ms(r.startup)
    ));
    out.push_str("  change to alert:\n");
    out.push_str(&line("webhook delivery", &r.to_webhook));
    out.push_str(&line("Event recorded", &r.to_event));
    out.push_str(&format!(
        "  missed: {} webhook, {} Event; duplicate webhook deliveries: {}; alerts for no change: {}\n",
        r.missed_webhook, r.missed_event, r.duplicate_webhook, r.spurious_webhook
    ));
    out.push_str(&format!(
        "  operator memory: {} resident at rest, {} peak\n",
        mib(r.rss_bytes),
        mib(r.rss_peak_bytes)
    ));
    out.push_str(&format!(
        "  operator CPU at rest: {}\n",
        r.cpu_at_rest
            .map_or("-".into(), |c| format!("{:.2} % of one core", c * 100.0))
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.99), Duration::ZERO);
        assert_eq!(percentile(&v[..1], 0.99), Duration::from_millis(1));
    }

    #[test]
    fn bench_locks_are_valid_flink_locks() {
        let c = cluster(7);
        let cm = lock(&c, &Component::Dispatcher, "jm-1", "s-1");
        assert_eq!(
            cm.metadata.name.as_deref(),
            Some("bench-00007-dispatcher-leader")
        );
        let record = cm.metadata.annotations.unwrap()[LEADER_ANNOTATION].clone();
        assert!(LeaderRecord::parse(&record).is_ok());
        assert_eq!(components(7).len(), 5);
    }
}
