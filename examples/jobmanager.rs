//! A simulated Flink JobManager that talks to its hakeeper sidecar only through the local
//! HTTP API, the way a JobManager in any language would. `hakeeper demo` runs three of
//! these; on its own it runs one against a sidecar you started:
//!
//! ```sh
//! cargo run --example jobmanager -- http://127.0.0.1:7070 jm-0 5c1a9f0e2b7d4c3a8e6f1d0b9a8c7e6f
//! ```
//!
//! What it does, as Flink's JobManager processes do: contend for the dispatcher, resource
//! manager and REST server with its own address. While it leads the dispatcher, make sure the
//! job graph is stored and the job marked RUNNING, then run the job: contend for the job's
//! `jobmanager/<job-id>` component. While it leads that, recover the newest checkpoint, then
//! take one every 200 ms (counter increment, then checkpoint add). Losing the dispatcher
//! releases the job. Leadership is checked every 20 ms, and any `NotLeader`/`StaleSession`
//! answer stops leader work at once.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::sync::{mpsc, watch};

/// What the JobManager reports as it goes (the demo prints these as its timeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// This JobManager now leads `component` with `session`.
    Leading {
        component: String,
        session: String,
    },
    /// It stopped leading `component` (lost, released, or its sidecar went away).
    Lost {
        component: String,
        why: String,
    },
    /// As dispatcher leader: the job graph was already stored (`recovered`) or submitted now.
    JobGraph {
        recovered: bool,
        bytes: usize,
    },
    JobRunning,
    /// As the job's leader: the newest checkpoint found in the HA store (None: none yet).
    Recovered {
        checkpoint: Option<u64>,
        skipped: Option<String>,
    },
    /// An acknowledged checkpoint (the sidecar answered 201).
    Checkpoint {
        id: u64,
    },
    Error {
        what: String,
    },
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The sidecar's local API, e.g. `http://127.0.0.1:7070`.
    pub sidecar: String,
    pub name: String,
    pub job_id: String,
    pub checkpoint_interval: Duration,
    pub payload_bytes: usize,
}

/// The components every JobManager process contends for from the start; the job's own
/// `jobmanager/<job-id>` is contended only by the dispatcher leader.
pub const COMPONENTS: [&str; 3] = ["dispatcher", "resourcemanager", "restserver"];

/// A minimal HTTP/1.1 client for the sidecar on loopback: one connection per request.
pub mod client {
    use super::*;

    #[derive(Debug)]
    pub struct Answer {
        pub status: u16,
        pub headers: hyper::HeaderMap,
        pub body: Bytes,
    }

    impl Answer {
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
        }

        /// The error kind of a JSON error answer (`NotLeader`, `StaleSession`, ...).
        pub fn kind(&self) -> String {
            self.json()["error"].as_str().unwrap_or("").to_string()
        }

        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }
    }

    pub async fn call(
        base: &str,
        method: &str,
        path: &str,
        session: Option<&str>,
        body: Bytes,
    ) -> Result<Answer, String> {
        let authority = base
            .strip_prefix("http://")
            .ok_or("the sidecar URL must be http://")?;
        let stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| format!("connect {authority}: {e}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", authority);
        if let Some(s) = session {
            request = request.header("hakeeper-session", s);
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok(Answer {
                status,
                headers,
                body,
            })
        };
        let answer = tokio::time::timeout(Duration::from_secs(10), result)
            .await
            .map_err(|_| format!("{method} {path}: no answer within 10 s"))?;
        driver.abort();
        answer
    }
}

use client::call;

/// Leader state of one component, as this JobManager sees it.
#[derive(Default)]
struct Held {
    session: Option<String>,
}

struct JobManager {
    config: Config,
    events: mpsc::UnboundedSender<(Instant, String, Event)>,
    dispatcher: Held,
    job: Held,
    next_checkpoint: Instant,
}

impl JobManager {
    fn emit(&self, event: Event) {
        let _ = self
            .events
            .send((Instant::now(), self.config.name.clone(), event));
    }

    fn address(&self) -> String {
        format!(
            "akka.tcp://flink@{}:6123/user/rpc/dispatcher",
            self.config.name
        )
    }

    fn graph(&self) -> Bytes {
        Bytes::from(format!("job graph of {} (simulated)", self.config.job_id).into_bytes())
    }

    async fn contend(&self, component: &str) -> Result<(), String> {
        let body = Bytes::from(serde_json::json!({"address": self.address()}).to_string());
        let path = format!("/v1/leadership/{component}");
        let a = call(&self.config.sidecar, "PUT", &path, None, body).await?;
        if a.status != 202 {
            let why = String::from_utf8_lossy(&a.body);
            return Err(format!("contend {component}: {} {why}", a.status));
        }
        Ok(())
    }

    /// Stop contending for (and release) `component`.
    async fn withdraw(&self, component: &str) {
        let path = format!("/v1/leadership/{component}");
        let _ = call(&self.config.sidecar, "DELETE", &path, None, Bytes::new()).await;
    }

    /// The session if this sidecar leads `component` now.
    async fn leading(&self, component: &str) -> Option<String> {
        let a = call(
            &self.config.sidecar,
            "GET",
            &format!("/v1/leadership/{component}"),
            None,
            Bytes::new(),
        )
        .await
        .ok()?;
        let v = a.json();
        if v["isLeader"] == true {
            v["sessionId"].as_str().map(str::to_string)
        } else {
            None
        }
    }

    fn lose(
        held: &mut Held,
        component: &str,
        why: &str,
        events: &mpsc::UnboundedSender<(Instant, String, Event)>,
        name: &str,
    ) {
        if held.session.take().is_some() {
            let _ = events.send((
                Instant::now(),
                name.to_string(),
                Event::Lost {
                    component: component.to_string(),
                    why: why.to_string(),
                },
            ));
        }
    }

    async fn tick(&mut self) {
        let job = self.config.job_id.clone();
        let jm_component = format!("jobmanager/{job}");
        // Dispatcher work: the job graph and the job's status.
        match self.leading("dispatcher").await {
            Some(session) if self.dispatcher.session.as_deref() != Some(&session) => {
                self.emit(Event::Leading {
                    component: "dispatcher".into(),
                    session: session.clone(),
                });
                match self.become_dispatcher(&session).await {
                    Ok(()) => self.dispatcher.session = Some(session),
                    Err(e) => self.emit(Event::Error { what: e }),
                }
            }
            Some(_) => {}
            None if self.dispatcher.session.is_some() => {
                let name = self.config.name.clone();
                Self::lose(
                    &mut self.dispatcher,
                    "dispatcher",
                    "no longer leader",
                    &self.events,
                    &name,
                );
                // The job runs only under the dispatcher leader.
                Self::lose(
                    &mut self.job,
                    &jm_component,
                    "the dispatcher was lost",
                    &self.events,
                    &name,
                );
                self.withdraw(&jm_component).await;
            }
            None => {}
        }
        // Job leader work: recover, then checkpoint.
        match self.leading(&jm_component).await {
            Some(session) if self.job.session.as_deref() != Some(&session) => {
                self.emit(Event::Leading {
                    component: jm_component.clone(),
                    session: session.clone(),
                });
                match call(
                    &self.config.sidecar,
                    "GET",
                    &format!("/v1/jobs/{job}/checkpoints/latest"),
                    None,
                    Bytes::new(),
                )
                .await
                {
                    Ok(a) if a.status == 200 => {
                        let id = a
                            .header("hakeeper-checkpoint-id")
                            .and_then(|v| v.parse().ok());
                        let skipped = a.header("hakeeper-skipped-checkpoints").map(str::to_string);
                        self.emit(Event::Recovered {
                            checkpoint: id,
                            skipped,
                        });
                        self.job.session = Some(session);
                    }
                    Ok(a) if a.status == 404 => {
                        self.emit(Event::Recovered {
                            checkpoint: None,
                            skipped: None,
                        });
                        self.job.session = Some(session);
                    }
                    Ok(a) => self.emit(Event::Error {
                        what: format!(
                            "recovery: {} {}",
                            a.status,
                            String::from_utf8_lossy(&a.body)
                        ),
                    }),
                    Err(e) => self.emit(Event::Error {
                        what: format!("recovery: {e}"),
                    }),
                }
                self.next_checkpoint = Instant::now();
            }
            Some(_) => {}
            None => Self::lose(
                &mut self.job,
                &jm_component,
                "no longer leader",
                &self.events,
                &self.config.name,
            ),
        }
        if self.job.session.is_some() && Instant::now() >= self.next_checkpoint {
            self.next_checkpoint = Instant::now() + self.config.checkpoint_interval;
            self.checkpoint(&jm_component).await;
        }
    }

    async fn become_dispatcher(&self, session: &str) -> Result<(), String> {
        let job = &self.config.job_id;
        let existing = call(
            &self.config.sidecar,
            "GET",
            &format!("/v1/jobs/{job}/graph"),
            None,
            Bytes::new(),
        )
        .await?;
        match existing.status {
            200 => self.emit(Event::JobGraph {
                recovered: true,
                bytes: existing.body.len(),
            }),
            404 => {
                let a = call(
                    &self.config.sidecar,
                    "PUT",
                    &format!("/v1/jobs/{job}/graph"),
                    Some(session),
                    self.graph(),
                )
                .await?;
                if a.status != 200 {
                    return Err(format!(
                        "submit job graph: {} {}",
                        a.status,
                        String::from_utf8_lossy(&a.body)
                    ));
                }
                self.emit(Event::JobGraph {
                    recovered: false,
                    bytes: self.graph().len(),
                });
            }
            other => {
                return Err(format!(
                    "read job graph: {other} {}",
                    String::from_utf8_lossy(&existing.body)
                ));
            }
        }
        let a = call(
            &self.config.sidecar,
            "PUT",
            &format!("/v1/jobs/{job}/status"),
            Some(session),
            Bytes::from_static(b"RUNNING"),
        )
        .await?;
        if a.status != 200 {
            return Err(format!(
                "mark RUNNING: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            ));
        }
        self.emit(Event::JobRunning);
        // Run the job: contend for its leadership.
        self.contend(&format!("jobmanager/{job}")).await
    }

    async fn checkpoint(&mut self, component: &str) {
        let job = self.config.job_id.clone();
        let session = self.job.session.clone();
        let step = async {
            let a = call(
                &self.config.sidecar,
                "POST",
                &format!("/v1/jobs/{job}/checkpoint-counter/increment"),
                session.as_deref(),
                Bytes::new(),
            )
            .await
            .map_err(|e| (String::new(), e))?;
            if a.status != 200 {
                return Err((
                    a.kind(),
                    format!(
                        "increment: {} {}",
                        a.status,
                        String::from_utf8_lossy(&a.body)
                    ),
                ));
            }
            let id = a.json()["value"]
                .as_u64()
                .ok_or((String::new(), "increment: no value".to_string()))?;
            let mut payload = format!("state of job {job} at checkpoint {id}\n").into_bytes();
            payload.resize(self.config.payload_bytes.max(payload.len()), b'.');
            let a = call(
                &self.config.sidecar,
                "POST",
                &format!("/v1/jobs/{job}/checkpoints/{id}"),
                session.as_deref(),
                Bytes::from(payload),
            )
            .await
            .map_err(|e| (String::new(), e))?;
            if a.status != 201 {
                return Err((
                    a.kind(),
                    format!(
                        "checkpoint {id}: {} {}",
                        a.status,
                        String::from_utf8_lossy(&a.body)
                    ),
                ));
            }
            Ok(id)
        };
        match step.await {
            Ok(id) => self.emit(Event::Checkpoint { id }),
            Err((kind, what)) if kind == "NotLeader" || kind == "StaleSession" => {
                Self::lose(
                    &mut self.job,
                    component,
                    &what,
                    &self.events,
                    &self.config.name,
                );
            }
            Err((_, what)) => {
                // The sidecar is unreachable or failing: stop leader work, as a JobManager must
                // when it cannot confirm its leadership.
                Self::lose(
                    &mut self.job,
                    component,
                    &what,
                    &self.events,
                    &self.config.name,
                );
            }
        }
    }
}

/// Run until `stop` turns true. Events go to `events`, stamped with the time and the name.
pub async fn run(
    config: Config,
    events: mpsc::UnboundedSender<(Instant, String, Event)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut jm = JobManager {
        config,
        events,
        dispatcher: Held::default(),
        job: Held::default(),
        next_checkpoint: Instant::now(),
    };
    for component in COMPONENTS {
        if let Err(e) = jm.contend(component).await {
            jm.emit(Event::Error { what: e });
            return;
        }
    }
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => jm.tick().await,
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [sidecar, name, job_id] = args.as_slice() else {
        eprintln!("usage: jobmanager <sidecar URL> <name> <job id (32 hex)>");
        std::process::exit(2);
    };
    let config = Config {
        sidecar: sidecar.clone(),
        name: name.clone(),
        job_id: job_id.clone(),
        checkpoint_interval: Duration::from_millis(200),
        payload_bytes: 4096,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    let started = Instant::now();
    tokio::spawn(run(config, tx, stop));
    loop {
        tokio::select! {
            Some((at, who, event)) = rx.recv() => println!("{:>8.3}s {who}: {event:?}", at.duration_since(started).as_secs_f64()),
            _ = tokio::signal::ctrl_c() => { let _ = stop_tx.send(true); break; }
        }
    }
}
