//! A simulated Flink JobManager that talks to its hakeeper sidecar only through the local
//! HTTP API, the way a JobManager in any language would. `hakeeper demo` runs three of
//! these; on its own it runs one against a sidecar you started:
//!
//! ```sh
//! cargo run --example jobmanager -- http://127.0.0.1:7070 jm-0 5c1a9f0e2b7d4c3a8e6f1d0b9a8c7e6f
//! ```
//!
//! It follows the sidecar's client contract: register (`POST /v1/clients`), hold the event
//! stream (`GET /v1/clients/{id}/events`) for as long as the process lives, send a keepalive
//! four times per client timeout from its work loop, and name itself (`Hakeeper-Client`) on
//! every call. If the
//! process dies, its stream closes and the sidecar releases its leaderships at once; if it
//! hangs, the keepalives stop and they are released after the timeout. When it learns that it
//! was released (a `released` event, the stream's end, or a 410 answer), it stops all leader
//! work and registers again, as a standby.
//!
//! What it does, as Flink's JobManager processes do: contend for the dispatcher, resource
//! manager and REST server with its own address. While it leads the dispatcher, make sure the
//! job graph is stored and the job marked RUNNING, then run the job: contend for the job's
//! `jobmanager/<job-id>` component. While it leads that, recover the newest checkpoint, then
//! take one every 200 ms (counter increment, then checkpoint add). Losing the dispatcher
//! releases the job. Leadership comes from the event stream (checked every 20 ms), and any
//! `NotLeader`/`StaleSession` answer stops leader work at once.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// What the JobManager reports as it goes (the demo prints these as its timeline).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Event {
    /// Registered with the sidecar as a new client.
    Registered {
        client: String,
    },
    /// The sidecar released this client (`reason`), or the client found out it had been.
    Released {
        reason: String,
    },
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

    /// Who makes a call: the client id (`Hakeeper-Client`) and, for a leader-only call,
    /// the session (`Hakeeper-Session`).
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Caller<'a> {
        pub client: Option<&'a str>,
        pub session: Option<&'a str>,
    }

    /// Send one request on a new connection; the response comes with the connection's driver
    /// (abort it when done).
    pub async fn send(
        base: &str,
        method: &str,
        path: &str,
        caller: Caller<'_>,
        body: Bytes,
    ) -> Result<
        (
            hyper::Response<hyper::body::Incoming>,
            tokio::task::JoinHandle<()>,
        ),
        String,
    > {
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
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", authority);
        if let Some(c) = caller.client {
            request = request.header("hakeeper-client", c);
        }
        if let Some(s) = caller.session {
            request = request.header("hakeeper-session", s);
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        match sender.send_request(request).await {
            Ok(response) => Ok((response, driver)),
            Err(e) => {
                driver.abort();
                Err(e.to_string())
            }
        }
    }

    pub async fn call(
        base: &str,
        method: &str,
        path: &str,
        caller: Caller<'_>,
        body: Bytes,
    ) -> Result<Answer, String> {
        let result = async {
            let (response, driver) = send(base, method, path, caller, body).await?;
            let _driver = Abort(driver);
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
        tokio::time::timeout(Duration::from_secs(10), result)
            .await
            .map_err(|_| format!("{method} {path}: no answer within 10 s"))?
    }

    /// Aborts a task when dropped.
    pub struct Abort(pub tokio::task::JoinHandle<()>);

    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }

    /// One Server-Sent Event: its name and data.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SseEvent {
        pub event: String,
        pub data: String,
    }

    /// Splits a Server-Sent Events body into events as bytes arrive.
    #[derive(Default)]
    pub struct SseParser {
        buffer: String,
    }

    impl SseParser {
        pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
            self.buffer.push_str(&String::from_utf8_lossy(chunk));
            let mut out = Vec::new();
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: "message".into(),
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_string();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !event.data.is_empty() {
                            event.data.push('\n');
                        }
                        event.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        any = true;
                    }
                }
                // A block of comments only (the keepalive) is no event.
                if any {
                    out.push(event);
                }
            }
            out
        }
    }
}

use client::{Caller, call};

/// Leader state of one component, as this JobManager sees it.
#[derive(Default)]
struct Held {
    session: Option<String>,
}

/// What the client's event stream and keepalives have told: the session of each component
/// this client leads, and whether the sidecar released the client.
#[derive(Default)]
struct Lifeline {
    leading: HashMap<String, String>,
    released: Option<String>,
}

/// This process as the sidecar's client: its id, what its event stream says (the task that
/// reads it is aborted, closing the stream, when it registers again or stops), and when the
/// next keepalive is due.
struct Registration {
    id: String,
    view: Arc<Mutex<Lifeline>>,
    _stream: client::Abort,
    keepalive_every: Duration,
    keepalive_at: Instant,
}

struct JobManager {
    config: Config,
    events: mpsc::UnboundedSender<(Instant, String, Event)>,
    dispatcher: Held,
    job: Held,
    next_checkpoint: Instant,
    registration: Option<Registration>,
    /// When to register (again) while not registered.
    register_at: Instant,
}

/// After a failed registration (say, another client of this sidecar still holds a component
/// until its timeout), try again this much later.
const REGISTER_RETRY: Duration = Duration::from_millis(250);

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

    fn caller(&self) -> Caller<'_> {
        Caller {
            client: self.registration.as_ref().map(|r| r.id.as_str()),
            session: None,
        }
    }

    fn with_session<'a>(&'a self, session: Option<&'a str>) -> Caller<'a> {
        Caller {
            session,
            ..self.caller()
        }
    }

    /// Register as a new client, open its event stream and start its keepalives.
    async fn register(&mut self) -> Result<(), String> {
        self.registration = None;
        let body = Bytes::from(serde_json::json!({"name": self.config.name}).to_string());
        let a = call(
            &self.config.sidecar,
            "POST",
            "/v1/clients",
            Caller::default(),
            body,
        )
        .await?;
        if a.status != 201 {
            return Err(format!(
                "register: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            ));
        }
        let v = a.json();
        let id = v["clientId"]
            .as_str()
            .ok_or("register: no clientId")?
            .to_string();
        let timeout = Duration::from_millis(v["timeoutMs"].as_u64().unwrap_or(2000));
        let view = Arc::new(Mutex::new(Lifeline::default()));
        // The stream is opened before anything is contended, so no state is missed.
        let (response, driver) = client::send(
            &self.config.sidecar,
            "GET",
            &format!("/v1/clients/{id}/events"),
            Caller {
                client: Some(&id),
                session: None,
            },
            Bytes::new(),
        )
        .await?;
        if response.status() != 200 {
            driver.abort();
            return Err(format!("open the event stream: {}", response.status()));
        }
        let stream = tokio::spawn(follow(
            response.into_body(),
            driver,
            id.clone(),
            view.clone(),
        ));
        self.emit(Event::Registered { client: id.clone() });
        self.registration = Some(Registration {
            id,
            view,
            _stream: client::Abort(stream),
            keepalive_every: timeout / 4,
            keepalive_at: Instant::now() + timeout / 4,
        });
        for component in COMPONENTS {
            self.contend(component).await?;
        }
        // Follow the job's leadership from now on (the sidecar watches its lock from the
        // first GET), so that when this process becomes dispatcher leader and contends for
        // the job, the sidecar already knows when the old job leader's lease really ends.
        let job = format!("/v1/leadership/jobmanager/{}", self.config.job_id);
        call(
            &self.config.sidecar,
            "GET",
            &job,
            self.caller(),
            Bytes::new(),
        )
        .await?;
        Ok(())
    }

    fn graph(&self) -> Bytes {
        Bytes::from(format!("job graph of {} (simulated)", self.config.job_id).into_bytes())
    }

    async fn contend(&self, component: &str) -> Result<(), String> {
        let body = Bytes::from(serde_json::json!({"address": self.address()}).to_string());
        let path = format!("/v1/leadership/{component}");
        let a = call(&self.config.sidecar, "PUT", &path, self.caller(), body).await?;
        if a.status != 202 {
            let why = String::from_utf8_lossy(&a.body);
            return Err(format!("contend {component}: {} {why}", a.status));
        }
        Ok(())
    }

    /// Stop contending for (and release) `component`.
    async fn withdraw(&self, component: &str) {
        let path = format!("/v1/leadership/{component}");
        let _ = call(
            &self.config.sidecar,
            "DELETE",
            &path,
            self.caller(),
            Bytes::new(),
        )
        .await;
    }

    /// The session if this process leads `component` now, as its event stream says.
    fn leading(&self, component: &str) -> Option<String> {
        let r = self.registration.as_ref()?;
        let view = r.view.lock().unwrap_or_else(|p| p.into_inner());
        view.leading.get(component).cloned()
    }

    /// A keepalive when one is due; why the client is gone if the sidecar no longer knows it
    /// (404, 410).
    async fn keep_alive(&mut self) -> Option<String> {
        let r = self.registration.as_mut()?;
        if Instant::now() < r.keepalive_at {
            return None;
        }
        r.keepalive_at = Instant::now() + r.keepalive_every;
        let path = format!("/v1/clients/{}/keepalive", r.id);
        match call(
            &self.config.sidecar,
            "POST",
            &path,
            self.caller(),
            Bytes::new(),
        )
        .await
        {
            Ok(a) if a.status == 404 || a.status == 410 => {
                Some(format!("keepalive answered {}", a.kind()))
            }
            _ => None,
        }
    }

    /// Released by the sidecar (or the stream is gone): stop all leader work and register
    /// again, as a standby.
    async fn start_over(&mut self, reason: String) {
        let name = self.config.name.clone();
        let job = format!("jobmanager/{}", self.config.job_id);
        self.emit(Event::Released {
            reason: reason.clone(),
        });
        Self::lose(
            &mut self.dispatcher,
            "dispatcher",
            &reason,
            &self.events,
            &name,
        );
        Self::lose(&mut self.job, &job, &reason, &self.events, &name);
        // Closes the old stream; a new registration follows on the next tick.
        self.registration = None;
        self.register_at = Instant::now();
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
        let released = match &self.registration {
            Some(r) => r
                .view
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .released
                .clone(),
            None => {
                // Not registered (at start, after a release, or after a failed attempt).
                if Instant::now() >= self.register_at
                    && let Err(e) = self.register().await
                {
                    self.registration = None;
                    self.register_at = Instant::now() + REGISTER_RETRY;
                    self.emit(Event::Error { what: e });
                }
                return;
            }
        };
        if let Some(reason) = released {
            self.start_over(reason).await;
            return;
        }
        // Show life from the work loop itself, so that whatever stops the loop (a hang, a
        // deadlock) stops the keepalives too.
        if let Some(reason) = self.keep_alive().await {
            self.start_over(reason).await;
            return;
        }
        let job = self.config.job_id.clone();
        let jm_component = format!("jobmanager/{job}");
        // Dispatcher work: the job graph and the job's status.
        match self.leading("dispatcher") {
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
        match self.leading(&jm_component) {
            Some(session) if self.job.session.as_deref() != Some(&session) => {
                self.emit(Event::Leading {
                    component: jm_component.clone(),
                    session: session.clone(),
                });
                match call(
                    &self.config.sidecar,
                    "GET",
                    &format!("/v1/jobs/{job}/checkpoints/latest"),
                    self.caller(),
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
            self.caller(),
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
                    self.with_session(Some(session)),
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
            self.with_session(Some(session)),
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
                self.with_session(session.as_deref()),
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
                self.with_session(session.as_deref()),
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

/// Read the client's event stream into `view` until it ends; its end means the client is
/// gone as far as the sidecar is concerned (released, or the sidecar went away).
async fn follow(
    mut body: hyper::body::Incoming,
    driver: JoinHandle<()>,
    me: String,
    view: Arc<Mutex<Lifeline>>,
) {
    let _driver = client::Abort(driver);
    let mut parser = client::SseParser::default();
    let mut reason = "the event stream ended".to_string();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            reason = "the event stream failed".into();
            break;
        };
        let Some(chunk) = frame.data_ref() else {
            continue;
        };
        for event in parser.push(chunk) {
            let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
            let mut v = view.lock().unwrap_or_else(|p| p.into_inner());
            match event.event.as_str() {
                "leadership" => {
                    let component = data["component"].as_str().unwrap_or_default().to_string();
                    // Only a leadership held for this client counts.
                    let ours = data["clientId"] == me.as_str();
                    match (ours && data["isLeader"] == true, data["sessionId"].as_str()) {
                        (true, Some(session)) => {
                            v.leading.insert(component, session.to_string());
                        }
                        _ => {
                            v.leading.remove(&component);
                        }
                    }
                }
                "released" => {
                    reason = format!(
                        "released by the sidecar ({})",
                        data["reason"].as_str().unwrap_or("?")
                    );
                }
                _ => {}
            }
        }
    }
    let mut v = view.lock().unwrap_or_else(|p| p.into_inner());
    v.leading.clear();
    v.released.get_or_insert(reason);
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
        registration: None,
        register_at: Instant::now(),
    };
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
