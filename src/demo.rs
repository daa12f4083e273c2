//! `hakeeper demo`: the whole system on one machine, with nothing installed. An embedded API
//! server, a temporary `file://` storage dir (or the one given), three pods, each a
//! `hakeeper sidecar` child process and a simulated JobManager process
//! (`examples/jobmanager.rs`, run as the hidden `hakeeper demo-jobmanager`) that uses only
//! its sidecar's HTTP API. The demo fails the leader four ways, one after the other: its
//! JobManager process crashes while the sidecar lives (SIGKILL), its JobManager hangs past
//! the client timeout (SIGSTOP, then SIGCONT), its whole pod crashes (SIGKILL), and its pod
//! stops gracefully (SIGTERM). After each it checks that the new leader recovered the job
//! graph and the newest acknowledged checkpoint, and after the hang that the resumed
//! JobManager wrote nothing.

#[path = "../examples/jobmanager.rs"]
pub(crate) mod jobmanager;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::apiserver::{DevServer, DevServerConfig};
use crate::lease::Timings;
use crate::storage::{Location, S3Options};
use crate::{Error, Result};
use jobmanager::Event;

pub const CLUSTER_ID: &str = "demo";
pub const JOB_ID: &str = "d3e0c0de0000000000000000000000a1";
const JOBMANAGERS: usize = 3;

/// Short timings so that the demo runs in seconds; production uses 15 s / 10 s / 2 s.
pub const DEMO_TIMINGS: Timings = Timings {
    lease_duration: Duration::from_secs(3),
    renew_deadline: Duration::from_secs(2),
    retry_period: Duration::from_millis(500),
};

pub struct DemoParams {
    /// The hakeeper binary, started as `hakeeper sidecar`.
    pub exe: PathBuf,
    pub timings: Timings,
    /// `None`: a temporary `file://` directory.
    pub storage_dir: Option<Location>,
    pub s3: S3Options,
    pub checkpoint_interval: Duration,
    /// Checkpoints to take between the phases.
    pub checkpoints_per_phase: usize,
    pub keep_running: bool,
    /// A real cluster instead of the embedded API server: the demo runs in a fresh namespace
    /// of it (or the one given), removed afterwards unless `keep_running`.
    pub cluster: Option<RealCluster>,
}

/// Where a real cluster is, for `hakeeper demo --kubeconfig`.
#[derive(Debug, Clone)]
pub struct RealCluster {
    pub kubeconfig: PathBuf,
    pub context: Option<String>,
    /// `None`: a fresh `hakeeper-demo-<random>` namespace, deleted at the end.
    pub namespace: Option<String>,
}

/// The API server the demo runs against.
enum Api {
    Embedded(DevServer),
    Real {
        client: kube::Client,
        /// The namespace the demo created (to delete at the end), if it made one.
        created: Option<String>,
    },
}

impl Api {
    async fn client(&self) -> Result<kube::Client> {
        match self {
            Api::Embedded(server) => server.client().await,
            Api::Real { client, .. } => Ok(client.clone()),
        }
    }
}

/// One check and whether it held.
#[derive(Debug, Clone)]
pub struct Check {
    pub what: String,
    pub held: bool,
}

#[derive(Debug, Default)]
pub struct DemoReport {
    pub checks: Vec<Check>,
    pub takeovers: Vec<(String, Duration)>,
    pub acknowledged: Vec<u64>,
    pub lost: usize,
}

impl DemoReport {
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.held)
    }

    fn check(&mut self, what: impl Into<String>, held: bool) {
        let what = what.into();
        println!("  {} {what}", if held { "ok  " } else { "FAIL" });
        self.checks.push(Check { what, held });
    }
}

struct SidecarProcess {
    name: String,
    url: String,
    child: Child,
}

/// A simulated JobManager process next to a sidecar; its events come in on the timeline.
struct JobManagerProcess {
    child: Child,
    reader: JoinHandle<()>,
}

impl Drop for JobManagerProcess {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

type Events = mpsc::UnboundedSender<(Instant, String, Event)>;

/// The failures the demo puts the leader through, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    JobManagerCrash,
    JobManagerHang,
    PodCrash,
    PodStop,
}

impl Failure {
    const ALL: [Failure; 4] = [
        Failure::JobManagerCrash,
        Failure::JobManagerHang,
        Failure::PodCrash,
        Failure::PodStop,
    ];

    fn label(self) -> &'static str {
        match self {
            Failure::JobManagerCrash => "JobManager crash (SIGKILL, sidecar lives)",
            Failure::JobManagerHang => "JobManager hang (SIGSTOP)",
            Failure::PodCrash => "pod crash (SIGKILL)",
            Failure::PodStop => "graceful pod stop (SIGTERM)",
        }
    }

    /// How long the takeover may take: a dead JobManager is noticed at once, a hung one after
    /// the client timeout (the renew deadline here), a dead pod when its lease runs out.
    fn bound(self, t: Timings) -> Duration {
        match self {
            Failure::JobManagerCrash => Duration::from_secs(1),
            Failure::JobManagerHang => t.renew_deadline + Duration::from_secs(1),
            Failure::PodCrash | Failure::PodStop => {
                t.lease_duration + t.retry_period + Duration::from_secs(1)
            }
        }
    }
}

fn demo_error(what: impl std::fmt::Display) -> Error {
    Error::Config(format!("demo: {what}"))
}

async fn start_sidecar(
    params: &DemoParams,
    dir: &Path,
    kubeconfig: &Path,
    namespace: &str,
    storage: &Location,
    n: usize,
) -> Result<SidecarProcess> {
    let name = format!("jm-{n}");
    let log = std::fs::File::create(dir.join(format!("{name}.log")))
        .map_err(|e| Error::io("creating a sidecar log", e))?;
    let t = params.timings;
    let mut cmd = Command::new(&params.exe);
    cmd.arg("sidecar")
        .args([
            "--cluster-id",
            CLUSTER_ID,
            "--listen",
            "127.0.0.1:0",
            "--identity",
            &name,
            "--namespace",
            namespace,
        ])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(
            params
                .cluster
                .as_ref()
                .and_then(|c| c.context.as_deref())
                .map(|c| ["--context", c])
                .into_iter()
                .flatten(),
        )
        .args(["--storage-dir", &storage.to_string()])
        .args([
            "--lease-duration",
            &format!("{}ms", t.lease_duration.as_millis()),
        ])
        .args([
            "--renew-deadline",
            &format!("{}ms", t.renew_deadline.as_millis()),
        ])
        .args([
            "--retry-period",
            &format!("{}ms", t.retry_period.as_millis()),
        ])
        .args(["--log", "info"])
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG");
    if let Some(endpoint) = &params.s3.endpoint {
        cmd.args(["--s3-endpoint", endpoint]);
    }
    if params.s3.path_style {
        cmd.arg("--s3-path-style");
    }
    if let Some(region) = &params.s3.region {
        cmd.args(["--s3-region", region]);
    }
    // Secrets go through the environment, never the command line.
    if let (Some(a), Some(s)) = (&params.s3.access_key, &params.s3.secret_key) {
        cmd.env("HAKEEPER_S3_ACCESS_KEY", a)
            .env("HAKEEPER_S3_SECRET_KEY", s);
    }
    let (child, stdout) = spawn_piped(&mut cmd, log)?;
    let mut line = String::new();
    let read = tokio::time::timeout(
        Duration::from_secs(15),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await;
    let url = match read {
        Ok(Ok(n)) if n > 0 => line
            .trim()
            .strip_prefix("hakeeper sidecar: local API on ")
            .map(str::to_string),
        _ => None,
    }
    .ok_or_else(|| {
        demo_error(format!(
            "sidecar {name} did not start (see {})",
            dir.join(format!("{name}.log")).display()
        ))
    })?;
    Ok(SidecarProcess { name, url, child })
}

/// Start `cmd` with its standard output piped to us and its standard error to `log`; killed
/// when dropped.
fn spawn_piped(cmd: &mut Command, log: std::fs::File) -> Result<(Child, ChildStdout)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::io(format!("starting {:?}", cmd.as_std().get_program()), e))?;
    let stdout = child.stdout.take().ok_or_else(|| demo_error("no stdout"))?;
    Ok((child, stdout))
}

fn signal(child: &Child, sig: libc::c_int) -> Result<()> {
    let pid = child
        .id()
        .ok_or_else(|| demo_error("the process has already exited"))?;
    // SAFETY: kill(2) with a pid we own and a valid signal number has no memory effects.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::io(
            "sending a signal",
            std::io::Error::last_os_error(),
        ))
    }
}

/// Start the simulated JobManager of pod `sidecar` as a process of its own.
fn start_jobmanager(
    params: &DemoParams,
    dir: &Path,
    sidecar: &SidecarProcess,
    events: Events,
) -> Result<JobManagerProcess> {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(dir.join(format!("{}-jobmanager.log", sidecar.name)))
        .map_err(|e| Error::io("creating a JobManager log", e))?;
    let mut cmd = Command::new(&params.exe);
    cmd.arg("demo-jobmanager")
        .args([
            "--sidecar",
            &sidecar.url,
            "--name",
            &sidecar.name,
            "--job-id",
            JOB_ID,
        ])
        .args([
            "--checkpoint-interval",
            &format!("{}ms", params.checkpoint_interval.as_millis()),
        ]);
    let (child, stdout) = spawn_piped(&mut cmd, log)?;
    let name = sidecar.name.clone();
    let reader = tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(event) = serde_json::from_str::<Event>(&line) {
                let _ = events.send((Instant::now(), name.clone(), event));
            }
        }
    });
    Ok(JobManagerProcess { child, reader })
}

/// `hakeeper demo-jobmanager`: the simulated JobManager as a process, its events as JSON
/// lines on standard output, until it is killed.
pub async fn jobmanager_process(
    sidecar: String,
    name: String,
    job_id: String,
    checkpoint_interval: Duration,
) -> Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_stop_tx, stop) = watch::channel(false);
    let config = jobmanager::Config {
        sidecar,
        name,
        job_id,
        checkpoint_interval,
        payload_bytes: 4096,
    };
    let task = tokio::spawn(jobmanager::run(config, tx, stop));
    while let Some((_, _, event)) = rx.recv().await {
        let line = serde_json::to_string(&event).map_err(|e| demo_error(e.to_string()))?;
        println!("{line}");
    }
    let _ = task.await;
    Ok(())
}

/// The timeline as it happens, and who leads what.
struct Timeline {
    started: Instant,
    events: mpsc::UnboundedReceiver<(Instant, String, Event)>,
    leaders: BTreeMap<String, String>,
    acknowledged: Vec<(Instant, String, u64)>,
    recovered: Vec<(Instant, String, Option<u64>)>,
    graphs: Vec<(String, bool)>,
    released: Vec<(Instant, String)>,
    registrations: Vec<(Instant, String)>,
}

impl Timeline {
    fn print(&self, at: Instant, who: &str, what: &str) {
        println!(
            "  {:>7.3}s  {who:<5} {what}",
            at.duration_since(self.started).as_secs_f64()
        );
    }

    fn record(&mut self, at: Instant, who: String, event: Event) {
        match &event {
            Event::Leading { component, session } => {
                self.leaders.insert(component.clone(), who.clone());
                self.print(
                    at,
                    &who,
                    &format!(
                        "leads {component} (session {})",
                        &session[..8.min(session.len())]
                    ),
                );
            }
            Event::Lost { component, why } => {
                if self.leaders.get(component) == Some(&who) {
                    self.leaders.remove(component);
                }
                self.print(at, &who, &format!("stopped leading {component}: {why}"));
            }
            Event::JobGraph { recovered, bytes } => {
                self.graphs.push((who.clone(), *recovered));
                let how = if *recovered {
                    "recovered the job graph"
                } else {
                    "submitted the job graph"
                };
                self.print(at, &who, &format!("{how} ({bytes} bytes)"));
            }
            Event::JobRunning => self.print(at, &who, "marked the job RUNNING"),
            Event::Recovered {
                checkpoint,
                skipped,
            } => {
                self.recovered.push((at, who.clone(), *checkpoint));
                let what = match checkpoint {
                    Some(id) => format!("recovered checkpoint {id}"),
                    None => "found no checkpoint to recover: starting fresh".into(),
                };
                let skipped = skipped
                    .as_ref()
                    .map(|s| format!(" (skipped {s})"))
                    .unwrap_or_default();
                self.print(at, &who, &format!("{what}{skipped}"));
            }
            Event::Checkpoint { id } => {
                self.acknowledged.push((at, who.clone(), *id));
                self.print(at, &who, &format!("checkpoint {id} acknowledged"));
            }
            Event::Error { what } => self.print(at, &who, &format!("error: {what}")),
            Event::Registered { client } => {
                self.registrations.push((at, who.clone()));
                self.print(
                    at,
                    &who,
                    &format!(
                        "registered with its sidecar (client {})",
                        &client[..8.min(client.len())]
                    ),
                )
            }
            Event::Released { reason } => {
                self.released.push((at, who.clone()));
                self.print(at, &who, &format!("learned it was released: {reason}"));
            }
        }
    }

    /// Consume events until `done` says so, or fail after `timeout`.
    async fn until(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&Timeline) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some((at, who, event))) => self.record(at, who, event),
                Ok(None) => return Err(demo_error("every JobManager stopped")),
                Err(_) => {
                    return Err(demo_error(format!(
                        "timed out after {timeout:?} waiting for {what}"
                    )));
                }
            }
        }
        Ok(())
    }

    fn job_leader(&self) -> Option<String> {
        self.leaders.get(&format!("jobmanager/{JOB_ID}")).cloned()
    }

    fn registered_since(&self, who: &str, since: Instant) -> bool {
        // Registration is the first thing a JobManager reports; no timestamps of its own.
        self.registrations
            .iter()
            .any(|(at, w)| *at >= since && w == who)
    }

    fn acked_by_since(&self, since: Instant) -> usize {
        self.acknowledged
            .iter()
            .filter(|(at, _, _)| *at >= since)
            .count()
    }
}

/// Run the demo; prints as it goes. Returns the report (check `passed()`).
pub async fn run(params: DemoParams) -> Result<DemoReport> {
    let dir = std::env::temp_dir().join(format!("hakeeper-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating the demo directory", e))?;
    let result = run_in(&params, &dir).await;
    if !params.keep_running {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn run_in(params: &DemoParams, dir: &Path) -> Result<DemoReport> {
    let (api, kubeconfig, namespace, where_) = match &params.cluster {
        None => {
            let server = DevServer::start(DevServerConfig::default()).await?;
            let kubeconfig = dir.join("kubeconfig");
            server.write_kubeconfig(&kubeconfig)?;
            let url = format!("{} (embedded)", server.url());
            (
                Api::Embedded(server),
                kubeconfig,
                "default".to_string(),
                url,
            )
        }
        Some(real) => {
            let args = crate::kubeconn::KubeArgs {
                kubeconfig: Some(real.kubeconfig.clone()),
                context: real.context.clone(),
                ..Default::default()
            };
            let (client, _) = args.client().await?;
            let (namespace, created) = match &real.namespace {
                Some(ns) => (ns.clone(), None),
                None => {
                    let ns = format!(
                        "hakeeper-demo-{}",
                        &uuid::Uuid::new_v4().simple().to_string()[..8]
                    );
                    let object: k8s_openapi::api::core::v1::Namespace =
                        serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))
                            .map_err(|e| demo_error(e.to_string()))?;
                    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
                        .create(&Default::default(), &object)
                        .await?;
                    (ns.clone(), Some(ns))
                }
            };
            let url = format!("of {} (namespace {namespace})", real.kubeconfig.display());
            (
                Api::Real { client, created },
                real.kubeconfig.clone(),
                namespace,
                url,
            )
        }
    };
    let result = run_on(params, dir, &api, &kubeconfig, &namespace, &where_).await;
    match api {
        Api::Embedded(server) => server.shutdown().await?,
        Api::Real { client, created } => {
            if let Some(ns) = created.filter(|_| !params.keep_running) {
                let _ = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client)
                    .delete(&ns, &Default::default())
                    .await;
                println!("  deleted the demo namespace {ns}");
            }
        }
    }
    result
}

async fn run_on(
    params: &DemoParams,
    dir: &Path,
    api: &Api,
    kubeconfig: &Path,
    namespace: &str,
    where_: &str,
) -> Result<DemoReport> {
    let t = params.timings;
    let storage = match &params.storage_dir {
        Some(l) => l.clone(),
        None => Location::file(&dir.join("ha")).map_err(demo_error)?,
    };
    println!("hakeeper demo: cluster {CLUSTER_ID:?}, job {JOB_ID}");
    println!("  API server {where_}, storage {storage}");
    println!(
        "  timings: lease {:?}, renew deadline {:?}, retry period {:?} (short, for the demo; production: 15s/10s/2s)",
        t.lease_duration, t.renew_deadline, t.retry_period
    );
    let mut sidecars = Vec::new();
    for n in 0..JOBMANAGERS {
        sidecars.push(start_sidecar(params, dir, kubeconfig, namespace, &storage, n).await?);
    }
    for s in &sidecars {
        println!("  {}: sidecar on {}", s.name, s.url);
    }
    let (events_tx, events) = mpsc::unbounded_channel();
    let mut jobmanagers = BTreeMap::new();
    for s in &sidecars {
        jobmanagers.insert(
            s.name.clone(),
            start_jobmanager(params, dir, s, events_tx.clone())?,
        );
    }
    let mut timeline = Timeline {
        started: Instant::now(),
        events,
        leaders: BTreeMap::new(),
        acknowledged: Vec::new(),
        recovered: Vec::new(),
        graphs: Vec::new(),
        released: Vec::new(),
        registrations: Vec::new(),
    };
    let mut report = DemoReport::default();
    println!("\ntimeline:");
    let per_phase = params.checkpoints_per_phase;
    let phase_timeout =
        params.checkpoint_interval * (per_phase as u32 * 4) + Duration::from_secs(10);
    let start = Instant::now();
    timeline
        .until(phase_timeout, "a first leader and its checkpoints", |tl| {
            tl.job_leader().is_some() && tl.acked_by_since(start) >= per_phase
        })
        .await?;

    for failure in Failure::ALL {
        let label = failure.label();
        let bound = failure.bound(t);
        // The dispatcher leader, which also runs (and usually leads) the job.
        let victim = timeline
            .leaders
            .get("dispatcher")
            .cloned()
            .ok_or_else(|| demo_error("no dispatcher leader"))?;
        let last_acked = timeline.acknowledged.last().map(|(_, _, id)| *id);
        let pod = sidecars
            .iter()
            .position(|s| s.name == victim)
            .ok_or_else(|| demo_error("unknown leader"))?;
        let jm = jobmanagers
            .get(&victim)
            .ok_or_else(|| demo_error("no JobManager process"))?;
        let at = Instant::now();
        match failure {
            Failure::JobManagerCrash => {
                timeline.print(
                    at,
                    &victim,
                    "<- SIGKILL of its JobManager process (the sidecar lives on)",
                );
                signal(&jm.child, libc::SIGKILL)?;
            }
            Failure::JobManagerHang => {
                timeline.print(
                    at,
                    &victim,
                    "<- SIGSTOP of its JobManager process (hangs; the sidecar lives on)",
                );
                signal(&jm.child, libc::SIGSTOP)?;
            }
            Failure::PodCrash | Failure::PodStop => {
                let sig = if failure == Failure::PodCrash {
                    libc::SIGKILL
                } else {
                    libc::SIGTERM
                };
                timeline.print(
                    at,
                    &victim,
                    &format!("<- {label}: its sidecar and JobManager"),
                );
                signal(&sidecars[pod].child, sig)?;
                signal(&jm.child, sig)?;
            }
        }
        timeline
            .until(bound + Duration::from_secs(5), "a takeover", |tl| {
                tl.job_leader().is_some_and(|l| l != victim)
                    && tl.recovered.last().is_some_and(|(r, _, _)| *r > at)
            })
            .await?;
        let new_leader = timeline.job_leader().unwrap_or_default();
        let (led_at, recovered) = timeline
            .recovered
            .last()
            .map(|(r, _, id)| (*r, *id))
            .ok_or_else(|| demo_error("no recovery"))?;
        let takeover = led_at.duration_since(at);
        report.takeovers.push((label.to_string(), takeover));
        timeline.print(
            led_at,
            &new_leader,
            &format!("took over after {:.0} ms", takeover.as_secs_f64() * 1000.0),
        );
        timeline
            .until(phase_timeout, "checkpoints after the takeover", |tl| {
                tl.acked_by_since(led_at) >= per_phase
            })
            .await?;
        report.check(
            format!("{label}: {new_leader} took over the job within {bound:?}"),
            takeover <= bound,
        );
        report.check(
            format!("{label}: {new_leader} recovered the newest acknowledged checkpoint ({last_acked:?})"),
            recovered == last_acked,
        );
        let lost = timeline
            .acknowledged
            .iter()
            .filter(|(a, _, id)| *a < at && Some(*id) > recovered)
            .count();
        report.lost += lost;
        report.check(
            format!("{label}: acknowledged checkpoints lost: {lost}"),
            lost == 0,
        );
        let next = timeline
            .acknowledged
            .iter()
            .find(|(a, _, _)| *a > led_at)
            .map(|(_, _, id)| *id);
        report.check(
            format!("{label}: checkpointing carried on from the next id ({next:?})"),
            next > recovered,
        );
        let (graph_by, recovered_graph) = timeline.graphs.last().cloned().unwrap_or_default();
        report.check(
            format!("{label}: the new dispatcher leader ({graph_by}) recovered the job graph"),
            graph_by != victim && recovered_graph,
        );
        match failure {
            Failure::JobManagerCrash => {
                // The kubelet restarts the container: a new client of the same sidecar, a
                // standby now.
                let restarted_at = Instant::now();
                timeline.print(
                    restarted_at,
                    &victim,
                    "<- its JobManager restarts (same pod, new client)",
                );
                jobmanagers.insert(
                    victim.clone(),
                    start_jobmanager(params, dir, &sidecars[pod], events_tx.clone())?,
                );
                timeline
                    .until(Duration::from_secs(10), "the restarted JobManager", |tl| {
                        tl.registered_since(&victim, restarted_at)
                    })
                    .await?;
            }
            Failure::JobManagerHang => {
                let resumed_at = Instant::now();
                timeline.print(resumed_at, &victim, "<- SIGCONT: its JobManager resumes");
                signal(&jm.child, libc::SIGCONT)?;
                let learned = timeline
                    .until(
                        Duration::from_secs(10),
                        "the resumed JobManager to learn it was released",
                        |tl| {
                            tl.released
                                .iter()
                                .any(|(r, who)| *r >= resumed_at && *who == victim)
                        },
                    )
                    .await;
                report.check(
                    format!("{label}: the resumed {victim} learned it had been released"),
                    learned.is_ok(),
                );
                // Anything acknowledged to it after it resumed was written before the
                // takeover (an answer held in its socket), never after.
                let late: Vec<u64> = timeline
                    .acknowledged
                    .iter()
                    .filter(|(a, who, id)| {
                        *a >= resumed_at && *who == victim && Some(*id) > recovered
                    })
                    .map(|(_, _, id)| *id)
                    .collect();
                report.check(
                    format!("{label}: the resumed {victim} wrote no checkpoint after it was deposed ({late:?})"),
                    late.is_empty(),
                );
            }
            Failure::PodCrash | Failure::PodStop => {
                jobmanagers.remove(&victim);
            }
        }
    }
    drop(events_tx);
    // Drain what is left of the timeline.
    while let Ok((at, who, event)) = timeline.events.try_recv() {
        timeline.record(at, who, event);
    }
    let ids: Vec<u64> = timeline.acknowledged.iter().map(|(_, _, id)| *id).collect();
    report.check(
        "checkpoint ids only ever increased",
        ids.windows(2).all(|w| w[0] < w[1]),
    );
    report.acknowledged = ids;

    println!("\nHA state (hakeeper inspect --cluster-id {CLUSTER_ID}):");
    match inspect_view(api, namespace, &storage, &params.s3).await {
        Ok(view) => print!("{view}"),
        Err(e) => report.check(format!("inspect view: {e}"), false),
    }

    println!("\nsummary:");
    for (label, d) in &report.takeovers {
        println!(
            "  takeover after {label}: {:.0} ms",
            d.as_secs_f64() * 1000.0
        );
    }
    println!(
        "  checkpoints acknowledged: {} (ids {}..={}), acknowledged checkpoints lost: {}",
        report.acknowledged.len(),
        report.acknowledged.first().copied().unwrap_or(0),
        report.acknowledged.last().copied().unwrap_or(0),
        report.lost
    );
    let failed = report.checks.iter().filter(|c| !c.held).count();
    println!(
        "  checks: {} held, {failed} failed",
        report.checks.len() - failed
    );

    if params.keep_running {
        println!("\nstill running (Ctrl-C to stop):");
        println!(
            "  kubectl --kubeconfig {} -n {namespace} describe cm {CLUSTER_ID}-{JOB_ID}-jobmanager-leader",
            kubeconfig.display()
        );
        for s in sidecars.iter().filter(|s| s.child.id().is_some()) {
            println!("  curl -s {}/v1/leadership/dispatcher", s.url);
        }
        let _ = tokio::signal::ctrl_c().await;
    }
    for (_, mut jm) in std::mem::take(&mut jobmanagers) {
        let _ = jm.child.kill().await;
    }
    for s in &mut sidecars {
        if signal(&s.child, libc::SIGTERM).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), s.child.wait()).await;
        }
    }
    Ok(report)
}

/// The inspect view of the demo cluster.
async fn inspect_view(
    api: &Api,
    namespace: &str,
    storage: &Location,
    s3: &S3Options,
) -> Result<String> {
    let cluster = CLUSTER_ID.parse().map_err(demo_error)?;
    let configmaps = crate::inspect::collect(api.client().await?, namespace, &cluster).await?;
    let mut report = crate::inspect::build(&cluster, &configmaps, jiff::Timestamp::now());
    let store = crate::storage::open(storage, s3)
        .await
        .map_err(demo_error)?;
    crate::inspect::verify(&mut report, store.as_ref()).await;
    Ok(crate::inspect::render_table(&report))
}
