//! `hakeeper bench checkpoints`: the latency and throughput of adding a completed
//! checkpoint, three ways over the same storage: a raw storage put of the payload (the
//! floor), the library's `Checkpoints::add` (payload, then the fenced ConfigMap write, then
//! subsuming the previous one), and `POST /v1/jobs/{job}/checkpoints/{id}` through a
//! sidecar's local API on loopback. Against the embedded API server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use super::percentile;
use crate::apiserver::{DevServer, DevServerConfig};
use crate::election::{ElectionConfig, Elector, ReleaseReason};
use crate::layout::{ClusterId, Component, JobId};
use crate::lease::Timings;
use crate::sidecar::{Sidecar, SidecarConfig, StoreSettings};
use crate::storage::{Location, ObjectStore};
use crate::stores::{Checkpoints, ConfigMapReader, Payloads, plan};
use crate::{Error, Result};

/// Parameters of one run.
#[derive(Clone)]
pub struct CheckpointParams {
    pub storage: Arc<dyn ObjectStore>,
    pub storage_dir: Location,
    /// Checkpoints added per way.
    pub count: usize,
    pub payload_bytes: usize,
}

/// Latencies of one way of adding.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: &'static str,
    pub samples: Vec<Duration>,
    pub elapsed: Duration,
}

impl Series {
    pub fn per_second(&self) -> f64 {
        self.samples.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct CheckpointReport {
    pub storage: String,
    pub payload_bytes: usize,
    pub series: Vec<Series>,
}

impl CheckpointReport {
    pub fn render(&self) -> String {
        let ms = |d: Option<Duration>| {
            d.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64() * 1000.0))
        };
        let mut out = format!(
            "storage: {}, payload {} bytes, {} adds per way (sequential)\n{:<34} {:>9} {:>9} {:>9} {:>10}\n",
            self.storage,
            self.payload_bytes,
            self.series.first().map_or(0, |s| s.samples.len()),
            "way",
            "p50 ms",
            "p99 ms",
            "max ms",
            "adds/s"
        );
        for s in &self.series {
            out.push_str(&format!(
                "{:<34} {:>9} {:>9} {:>9} {:>10.1}\n",
                s.name,
                ms(percentile(&s.samples, 50)),
                ms(percentile(&s.samples, 99)),
                ms(percentile(&s.samples, 100)),
                s.per_second()
            ));
        }
        out
    }
}

fn bench_error(e: impl std::fmt::Display) -> Error {
    Error::Config(format!("bench checkpoints: {e}"))
}

async fn wait_leader(elector: &Elector) -> Result<uuid::Uuid> {
    let mut state = elector.state();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let s = state.borrow_and_update().clone();
            if let (true, Some(session)) = (s.is_leader, s.session_id) {
                return Ok(session);
            }
            if state.changed().await.is_err() {
                return Err(bench_error("the elector stopped"));
            }
        }
    })
    .await
    .map_err(|_| bench_error("no leadership within 10 s"))?
}

fn job(n: u8) -> JobId {
    format!("{n:02x}{}", "0".repeat(30))
        .parse()
        .expect("a valid job id")
}

/// Run the three ways, one after the other, each on a job of its own.
pub async fn checkpoints(params: &CheckpointParams) -> Result<CheckpointReport> {
    let server = DevServer::start(DevServerConfig::default()).await?;
    let namespace = "default".to_string();
    let cluster: ClusterId = "bench".parse().expect("a valid cluster id");
    let timings = Timings::default();
    let payload = Bytes::from(vec![0x5a; params.payload_bytes]);
    let mut payloads = Payloads::new(params.storage.clone(), &params.storage_dir, &cluster);
    payloads.max_payload_bytes = (params.payload_bytes as u64).max(1 << 20);
    let mut series = Vec::new();

    // 1. Raw puts of the payload under fresh names (removed afterwards).
    let mut samples = Vec::with_capacity(params.count);
    let mut written = Vec::with_capacity(params.count);
    let started = Instant::now();
    for _ in 0..params.count {
        let location = payloads
            .cluster_dir
            .join(&plan::payload_name("benchRawPut"));
        let t = Instant::now();
        params
            .storage
            .put_new(&location, payload.clone())
            .await
            .map_err(bench_error)?;
        samples.push(t.elapsed());
        written.push(location);
    }
    series.push(Series {
        name: "raw storage put",
        samples,
        elapsed: started.elapsed(),
    });
    for location in &written {
        let _ = params.storage.delete(location).await;
    }

    // 2. The library.
    let component = Component::JobManager(job(1));
    let elector = Elector::spawn(
        server.client().await?,
        &namespace,
        ElectionConfig {
            cluster_id: cluster.clone(),
            component: component.clone(),
            identity: "bench-library".into(),
            address: "bench:6123".into(),
            timings,
            owner: None,
        },
    );
    let session = wait_leader(&elector).await?;
    let api: Api<ConfigMap> = Api::namespaced(server.client().await?, &namespace);
    let store = Checkpoints::new(
        ConfigMapReader::new(api, component.configmap_name(&cluster)),
        payloads.clone(),
        1,
    );
    let mut samples = Vec::with_capacity(params.count);
    let started = Instant::now();
    for id in 1..=params.count as u64 {
        let t = Instant::now();
        store
            .add(elector.fence(), Some(session), id, payload.clone())
            .await
            .map_err(bench_error)?;
        samples.push(t.elapsed());
    }
    series.push(Series {
        name: "library Checkpoints::add",
        samples,
        elapsed: started.elapsed(),
    });
    elector.release(ReleaseReason::Shutdown).await;

    // 3. The sidecar's local API, over one keep-alive HTTP/1.1 connection.
    let sidecar = Sidecar::new(SidecarConfig {
        client: server.client().await?,
        namespace: namespace.clone(),
        cluster_id: cluster.clone(),
        identity: "bench-sidecar".into(),
        timings,
        client_timeout: timings.renew_deadline,
        owner: None,
        stores: Some(StoreSettings {
            payloads,
            checkpoints_retained: 1,
            strict_recovery: false,
        }),
    });
    let job = job(2);
    let component = Component::JobManager(job.clone());
    sidecar
        .contend_unowned(component.clone(), "bench:6123".into())
        .map_err(|e| bench_error(e.message))?;
    let fence = sidecar
        .fence(&component)
        .ok_or_else(|| bench_error("no fence"))?;
    let session = loop {
        if let Some(s) = fence.current_session() {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::io("binding the bench listener", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("bench listener", e))?;
    let app = crate::sidecar::router(sidecar.clone());
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| Error::io("connecting to the sidecar", e))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(bench_error)?;
    let mut driving = tokio::spawn(connection);
    let mut samples = Vec::with_capacity(params.count);
    let started = Instant::now();
    for id in 1..=params.count as u64 {
        let request = hyper::Request::post(format!("/v1/jobs/{job}/checkpoints/{id}"))
            .header("host", addr.to_string())
            .header("hakeeper-session", session.to_string())
            .body(Full::new(payload.clone()))
            .map_err(bench_error)?;
        let t = Instant::now();
        // The connection takes the next request only once it is idle again.
        sender.ready().await.map_err(bench_error)?;
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                let why = match tokio::time::timeout(Duration::from_secs(1), &mut driving).await {
                    Ok(Ok(Err(conn))) => format!("{e}: the connection failed: {conn}"),
                    _ => e.to_string(),
                };
                return Err(bench_error(format!("checkpoint {id}: {why}")));
            }
        };
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(bench_error)?
            .to_bytes();
        samples.push(t.elapsed());
        if status != hyper::StatusCode::CREATED {
            return Err(bench_error(format!(
                "checkpoint {id}: {status} {}",
                String::from_utf8_lossy(&body)
            )));
        }
    }
    series.push(Series {
        name: "sidecar API POST .../checkpoints",
        samples,
        elapsed: started.elapsed(),
    });
    drop(sender);
    driving.abort();
    serving.abort();
    sidecar.shutdown().await;
    server.shutdown().await?;
    Ok(CheckpointReport {
        storage: params.storage.describe(),
        payload_bytes: params.payload_bytes,
        series,
    })
}
