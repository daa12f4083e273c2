//! `hakeeper bench failover`, the client paths: two in-process sidecars served on loopback,
//! each with a JobManager client that follows the contract (event stream, keepalives). The
//! leader's client then fails as a process would:
//! - crash: its connections close (what the kernel does when a process dies);
//! - hang: its keepalives stop while its stream stays open (SIGSTOP, a long GC pause).
//!
//! Each is timed to the other sidecar's confirmed leadership. At rest, with both clients
//! keeping alive, the Kubernetes API requests are counted: liveness is local traffic only.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::{RequestCounter, counted_client};
use crate::demo::jobmanager::client::{self, Abort, Caller};
use crate::election::{LeadershipState, ReleaseReason};
use crate::layout::{ClusterId, Component};
use crate::lease::Timings;
use crate::sidecar::{Sidecar, SidecarConfig, serve};
use crate::{Error, Result};

/// Parameters of the client paths.
#[derive(Debug, Clone)]
pub struct ClientFailoverParams {
    pub crash_rounds: usize,
    pub hang_rounds: usize,
    pub timings: Timings,
    pub client_timeout: Duration,
    /// How long to count API requests with a stable leader and live clients.
    pub rest: Duration,
}

/// Results of the client paths.
#[derive(Debug, Clone)]
pub struct ClientFailoverReport {
    pub client_timeout: Duration,
    /// From the leader's client connections closing to the other sidecar's confirmed
    /// leadership.
    pub crash: Vec<Duration>,
    /// From the leader's client's last sign of life to the other sidecar's confirmed
    /// leadership (at least the client timeout).
    pub hang: Vec<Duration>,
    /// API requests per minute at rest, by the leading sidecar and by the standby, with a
    /// live client each.
    pub leader_per_minute: f64,
    pub standby_per_minute: f64,
}

fn bench_error(what: impl std::fmt::Display) -> Error {
    Error::Config(format!("bench failover (clients): {what}"))
}

/// One served sidecar.
struct Pod {
    sidecar: Sidecar,
    url: String,
    counter: RequestCounter,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

/// A JobManager client: its event stream and keepalives, and when it last showed life.
struct BenchClient {
    _stream: Abort,
    keepalive: Option<Abort>,
    last_sign: Arc<Mutex<Instant>>,
}

async fn start_pod(
    config: &kube::Config,
    namespace: &str,
    cluster_id: &ClusterId,
    n: usize,
    params: &ClientFailoverParams,
) -> Result<Pod> {
    let (kube, counter) = counted_client(config.clone())?;
    let sidecar = Sidecar::new(SidecarConfig {
        client: kube,
        namespace: namespace.to_string(),
        cluster_id: cluster_id.clone(),
        identity: format!("bench-pod-{n}"),
        timings: params.timings,
        owner: None,
        stores: None,
        client_timeout: params.client_timeout,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::io("binding a loopback port", e))?;
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?
    );
    let (stop, stop_rx) = watch::channel(false);
    let server = tokio::spawn(serve::serve(
        serve::Listener::Tcp(listener),
        crate::sidecar::router(sidecar.clone()),
        serve::Limits::default(),
        stop_rx,
    ));
    Ok(Pod {
        sidecar,
        url,
        counter,
        stop,
        server,
    })
}

/// Register, open the event stream, keep alive every timeout / 4, contend for `component`.
async fn start_client(pod: &Pod, component: &Component, timeout: Duration) -> Result<BenchClient> {
    let a = client::call(
        &pod.url,
        "POST",
        "/v1/clients",
        Caller::default(),
        Bytes::new(),
    )
    .await
    .map_err(bench_error)?;
    let id = a.json()["clientId"]
        .as_str()
        .ok_or_else(|| bench_error(format!("register: {}", a.status)))?
        .to_string();
    let caller = Caller {
        client: Some(&id),
        session: None,
    };
    let (response, driver) = client::send(
        &pod.url,
        "GET",
        &format!("/v1/clients/{id}/events"),
        caller,
        Bytes::new(),
    )
    .await
    .map_err(bench_error)?;
    let stream = tokio::spawn(async move {
        use http_body_util::BodyExt;
        let _driver = Abort(driver);
        let mut body = response.into_body();
        while let Some(Ok(_)) = body.frame().await {}
    });
    let last_sign = Arc::new(Mutex::new(Instant::now()));
    let keepalive = {
        let (url, id, last_sign) = (pod.url.clone(), id.clone(), last_sign.clone());
        tokio::spawn(async move {
            let path = format!("/v1/clients/{id}/keepalive");
            loop {
                tokio::time::sleep(timeout / 4).await;
                let sent = Instant::now();
                let caller = Caller {
                    client: Some(&id),
                    session: None,
                };
                if client::call(&url, "POST", &path, caller, Bytes::new())
                    .await
                    .is_ok_and(|a| a.status == 200)
                {
                    *last_sign.lock().unwrap_or_else(|p| p.into_inner()) = sent;
                }
            }
        })
    };
    let body = Bytes::from(serde_json::json!({"address": pod.url}).to_string());
    let path = format!("/v1/leadership/{component}");
    let a = client::call(&pod.url, "PUT", &path, caller, body)
        .await
        .map_err(bench_error)?;
    if a.status != 202 {
        return Err(bench_error(format!("contend: {} {:?}", a.status, a.body)));
    }
    Ok(BenchClient {
        _stream: Abort(stream),
        keepalive: Some(Abort(keepalive)),
        last_sign,
    })
}

/// Wait until `pod` leads `component` (confirmed), at most `limit`.
async fn led_by(pod: &Pod, component: &Component, limit: Duration) -> Result<()> {
    let mut rx = pod
        .sidecar
        .leadership(component)
        .ok_or_else(|| bench_error("not contending"))?;
    let wait = rx.wait_for(|s: &LeadershipState| s.is_leader);
    match tokio::time::timeout(limit, wait).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(bench_error(format!("no leadership within {limit:?}"))),
    }
}

fn leading(pod: &Pod, component: &Component) -> bool {
    pod.sidecar
        .leadership(component)
        .is_some_and(|rx| rx.borrow().is_leader)
}

/// Crash and hang rounds, then a quiet period counting each sidecar's API requests.
pub async fn client_failover(
    config: kube::Config,
    namespace: &str,
    params: &ClientFailoverParams,
) -> Result<ClientFailoverReport> {
    params.timings.validate().map_err(Error::Config)?;
    let cluster_id: ClusterId =
        format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
            .parse()
            .map_err(Error::Config)?;
    let component = Component::Dispatcher;
    let t = params.timings;
    let limit = t.lease_duration * 3 + params.client_timeout + Duration::from_secs(5);
    let pods = [
        start_pod(&config, namespace, &cluster_id, 0, params).await?,
        start_pod(&config, namespace, &cluster_id, 1, params).await?,
    ];
    let mut clients: [Option<BenchClient>; 2] = [None, None];
    let mut report = ClientFailoverReport {
        client_timeout: params.client_timeout,
        crash: Vec::new(),
        hang: Vec::new(),
        leader_per_minute: 0.0,
        standby_per_minute: 0.0,
    };
    let rounds = std::iter::repeat_n(true, params.crash_rounds)
        .chain(std::iter::repeat_n(false, params.hang_rounds));
    for crash in rounds {
        for (i, pod) in pods.iter().enumerate() {
            if clients[i].is_none() {
                clients[i] = Some(start_client(pod, &component, params.client_timeout).await?);
            }
        }
        // Wait for one of the two to lead.
        let deadline = Instant::now() + limit;
        let leader = loop {
            if let Some(i) = (0..2).find(|&i| leading(&pods[i], &component)) {
                break i;
            }
            if Instant::now() >= deadline {
                return Err(bench_error("no leader"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let standby = 1 - leader;
        // Fail at a random point of the keepalive and renew cycles.
        let cycle = (params.client_timeout / 4).min(t.retry_period).as_micros() as u64;
        tokio::time::sleep(Duration::from_micros(fastrand::u64(0..cycle.max(1)))).await;
        let started = if crash {
            let started = Instant::now();
            drop(clients[leader].take());
            started
        } else {
            let c = clients[leader]
                .as_mut()
                .ok_or_else(|| bench_error("no client"))?;
            // Stop showing life; the stream stays open, as a hung process's does.
            drop(c.keepalive.take());
            // A keepalive already sent may still land: time from the last one that did.
            tokio::time::sleep(Duration::from_millis(20)).await;
            *c.last_sign.lock().unwrap_or_else(|p| p.into_inner())
        };
        led_by(&pods[standby], &component, limit).await?;
        let took = started.elapsed();
        tracing::info!(crash, ?took, "client takeover");
        if crash {
            report.crash.push(took);
        } else {
            report.hang.push(took);
            clients[leader] = None;
        }
    }
    for (i, pod) in pods.iter().enumerate() {
        if clients[i].is_none() {
            clients[i] = Some(start_client(pod, &component, params.client_timeout).await?);
        }
    }
    // The new standby's initial list and watch happen before counting.
    tokio::time::sleep(t.retry_period * 2).await;
    let leader = (0..2)
        .find(|&i| leading(&pods[i], &component))
        .ok_or_else(|| bench_error("no leader at rest"))?;
    let before = [pods[0].counter.get(), pods[1].counter.get()];
    let started = Instant::now();
    tokio::time::sleep(params.rest).await;
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    if !leading(&pods[leader], &component) {
        return Err(bench_error(
            "leadership changed during the quiet period; the measurement is void",
        ));
    }
    let rate = |i: usize| (pods[i].counter.get() - before[i]) as f64 / minutes;
    report.leader_per_minute = rate(leader);
    report.standby_per_minute = rate(1 - leader);
    drop(clients);
    for pod in pods {
        pod.sidecar.stop(&component, ReleaseReason::Shutdown).await;
        pod.sidecar.shutdown().await;
        let _ = pod.stop.send(true);
        let _ = pod.server.await;
    }
    Ok(report)
}

impl ClientFailoverReport {
    pub fn render(&self) -> String {
        let ms = |d: Option<Duration>| {
            d.map_or("-".into(), |d| {
                format!("{:.1} ms", d.as_secs_f64() * 1000.0)
            })
        };
        let p = |v: &[Duration], q| ms(super::percentile(v, q));
        format!(
            "takeover after a JobManager crash ({} rounds): p50 {}, p99 {}, max {}\n\
             takeover after a JobManager hang  ({} rounds, client timeout {:?}): p50 {}, max {}\n\
             API requests per minute at rest with live clients: leader {:.1}; standby {:.1}\n",
            self.crash.len(),
            p(&self.crash, 50),
            p(&self.crash, 99),
            ms(self.crash.iter().max().copied()),
            self.hang.len(),
            self.client_timeout,
            p(&self.hang, 50),
            ms(self.hang.iter().max().copied()),
            self.leader_per_minute,
            self.standby_per_minute,
        )
    }
}
