//! Delivering alerts: Kubernetes Events, webhooks and Alertmanager, each its own task with a
//! bounded queue, so a slow or dead receiver never holds up watching or the other channels.
//! A full queue drops the alert for that channel (counted in
//! `hakeeper_operator_alert_drops_total` and logged); delivery is at least once, with the
//! alert's `id` as the idempotency key.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::alert::{Alert, alertmanager_alert, alertmanager_labels};
use super::metrics;

/// Where alerts go besides Events.
#[derive(Debug, Clone, Default)]
pub struct ChannelSettings {
    pub webhooks: Vec<String>,
    /// A file holding a bearer token for the webhooks (read at each delivery, so a rotated
    /// Secret is picked up).
    pub webhook_token_file: Option<PathBuf>,
    pub alertmanager: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Attempts per alert and receiver, the first included.
    pub attempts: u32,
    /// Queue length per channel.
    pub queue: usize,
    /// How often firing conditions are sent to Alertmanager again (it resolves alerts it
    /// stops hearing about).
    pub alertmanager_resend: Duration,
    /// `generatorURL` for Alertmanager.
    pub generator_url: Option<String>,
    /// Record Kubernetes Events.
    pub events: bool,
}

/// One alert on its way, with the count of channels still busy with it.
struct Delivery {
    alert: Arc<Alert>,
    reference: Option<ObjectReference>,
    remaining: Arc<AtomicUsize>,
    done: mpsc::UnboundedSender<String>,
}

impl Delivery {
    fn finish(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self.done.send(self.alert.id.clone());
        }
    }
}

/// The channel tasks of one leadership term. Dropping it (or [`Channels::stop`]) ends them.
pub struct Channels {
    queues: Vec<(String, mpsc::Sender<Arc<Delivery>>)>,
    tasks: JoinSet<()>,
    done: mpsc::UnboundedSender<String>,
}

impl Channels {
    /// Start the channel tasks; `done` receives each alert's id once every channel has
    /// delivered it or given up.
    pub fn start(
        client: kube::Client,
        identity: &str,
        settings: &ChannelSettings,
        done: mpsc::UnboundedSender<String>,
    ) -> Channels {
        let mut tasks = JoinSet::new();
        let mut queues = Vec::new();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()
            .expect("an HTTP client with rustls builds");
        if settings.events {
            let (tx, rx) = mpsc::channel(settings.queue);
            tasks.spawn(events_task(client, identity.to_string(), rx));
            queues.push(("events".to_string(), tx));
        }
        for (i, url) in settings.webhooks.iter().enumerate() {
            let (tx, rx) = mpsc::channel(settings.queue);
            let name = format!("webhook-{i}");
            tasks.spawn(webhook_task(
                http.clone(),
                name.clone(),
                url.clone(),
                settings.webhook_token_file.clone(),
                settings.attempts,
                rx,
            ));
            queues.push((name, tx));
        }
        if let Some(url) = &settings.alertmanager {
            let (tx, rx) = mpsc::channel(settings.queue);
            tasks.spawn(alertmanager_task(
                http,
                format!("{}/api/v2/alerts", url.trim_end_matches('/')),
                settings.attempts,
                settings.alertmanager_resend,
                settings.generator_url.clone(),
                rx,
            ));
            queues.push(("alertmanager".to_string(), tx));
        }
        Channels {
            queues,
            tasks,
            done,
        }
    }

    /// Hand `alert` to every channel without waiting.
    pub fn send(&self, alert: Alert, reference: Option<ObjectReference>) {
        metrics::get().alert(&alert);
        if self.queues.is_empty() {
            let _ = self.done.send(alert.id.clone());
            return;
        }
        let delivery = Arc::new(Delivery {
            alert: Arc::new(alert),
            reference,
            remaining: Arc::new(AtomicUsize::new(self.queues.len())),
            done: self.done.clone(),
        });
        for (name, queue) in &self.queues {
            if queue.try_send(delivery.clone()).is_err() {
                metrics::get().dropped(name);
                tracing::warn!(channel = %name, alert = %delivery.alert.id, "alert queue full; dropping the alert for this channel");
                delivery.finish();
            }
        }
    }

    /// Stop every channel at once (leadership lost or shutting down).
    pub async fn stop(mut self) {
        self.queues.clear();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Let the queued alerts out, for at most `grace`, then stop.
    pub async fn drain(mut self, grace: Duration) {
        self.queues.clear();
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_err() {
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
    }
}

/// Logs an error once per change, and its recovery once.
#[derive(Default)]
struct Failing(Option<String>);

impl Failing {
    fn failed(&mut self, channel: &str, error: String) {
        if self.0.as_deref() != Some(&error) {
            tracing::warn!(channel = %channel, error = %error, "alert delivery failing (logged again when the error changes)");
            self.0 = Some(error);
        }
    }

    fn ok(&mut self, channel: &str) {
        if self.0.take().is_some() {
            tracing::info!(channel = %channel, "alert delivery works again");
        }
    }
}

/// Jittered exponential backoff: 200 ms, 400 ms, ... capped at 10 s, each ±50 %.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(200).saturating_mul(1 << attempt.min(6));
    let capped = base.min(Duration::from_secs(10));
    capped.mul_f64(0.5 + fastrand::f64())
}

async fn events_task(
    client: kube::Client,
    identity: String,
    mut rx: mpsc::Receiver<Arc<Delivery>>,
) {
    let mut failing = Failing::default();
    while let Some(d) = rx.recv().await {
        if let Some(reference) = &d.reference {
            let event = alert_event(&d.alert, reference, &identity, jiff::Timestamp::now());
            let api: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::namespaced(
                client.clone(),
                reference.namespace.as_deref().unwrap_or("default"),
            );
            let started = std::time::Instant::now();
            match tokio::time::timeout(
                Duration::from_secs(10),
                api.create(&kube::api::PostParams::default(), &event),
            )
            .await
            {
                Ok(Ok(_)) => {
                    failing.ok("events");
                    metrics::get().delivered("events", started, true);
                }
                // This alert's Event exists already (a re-send after a failover, or of the
                // outbox at the start of a term): recorded, once.
                Ok(Err(kube::Error::Api(s))) if s.code == 409 => {
                    failing.ok("events");
                    metrics::get().delivered("events", started, true);
                }
                Ok(Err(e)) => {
                    failing.failed("events", e.to_string());
                    metrics::get().delivered("events", started, false);
                }
                Err(_) => {
                    failing.failed("events", "no answer within 10 s".into());
                    metrics::get().delivered("events", started, false);
                }
            }
        }
        d.finish();
    }
}

/// The `events.k8s.io` Event of `alert` on `reference`. Its name comes from the alert's id
/// (`<configmap>.<hash of the id>`), the same on every replica, so that an alert sent again
/// (delivery is at least once) is one Event, not one per replica that sent it; a different
/// happening on the same ConfigMap is an Event of its own.
fn alert_event(
    alert: &Alert,
    reference: &ObjectReference,
    identity: &str,
    now: jiff::Timestamp,
) -> k8s_openapi::api::events::v1::Event {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    let suffix = format!(".{:016x}", super::stable_hash(&[&alert.id]));
    // A DNS subdomain of at most 253 characters; the ConfigMap's name is one already.
    let base = reference.name.as_deref().unwrap_or("hakeeper-operator");
    let base = base[..base.len().min(253 - suffix.len())].trim_end_matches(['-', '.']);
    k8s_openapi::api::events::v1::Event {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{base}{suffix}")),
            namespace: reference.namespace.clone(),
            ..Default::default()
        },
        action: Some("Alert".into()),
        reason: Some(alert.kind.as_str().into()),
        note: Some(truncate(&alert.message, 1000)),
        event_time: Some(MicroTime(now)),
        regarding: Some(reference.clone()),
        reporting_controller: Some("hakeeper-operator".into()),
        // At most 128 bytes (the API server's limit), cut at a character boundary.
        reporting_instance: Some({
            let mut end = identity.len().min(128);
            while !identity.is_char_boundary(end) {
                end -= 1;
            }
            identity[..end].to_string()
        }),
        type_: Some(
            if alert.is_warning() {
                "Warning"
            } else {
                "Normal"
            }
            .into(),
        ),
        ..Default::default()
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// POST `body` until a 2xx, at most `attempts` times; 4xx other than 408/429 is final.
async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    idempotency_key: Option<&str>,
    token: Option<&str>,
    attempts: u32,
) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(backoff(attempt - 1)).await;
        }
        let mut request = http.post(url).json(body);
        if let Some(k) = idempotency_key {
            request = request.header("Idempotency-Key", k);
        }
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let status = r.status();
                last = format!("{url} answered {status}");
                if status.is_client_error() && status != 408 && status != 429 {
                    return Err(last);
                }
            }
            Err(e) => last = format!("{url}: {}", error_chain(&e)),
        }
    }
    Err(last)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

async fn webhook_task(
    http: reqwest::Client,
    name: String,
    url: String,
    token_file: Option<PathBuf>,
    attempts: u32,
    mut rx: mpsc::Receiver<Arc<Delivery>>,
) {
    let mut failing = Failing::default();
    while let Some(d) = rx.recv().await {
        let token = match &token_file {
            Some(path) => match tokio::fs::read_to_string(path).await {
                Ok(t) => Some(t.trim().to_string()),
                Err(e) => {
                    failing.failed(&name, format!("reading {}: {e}", path.display()));
                    d.finish();
                    continue;
                }
            },
            None => None,
        };
        let body = serde_json::to_value(&*d.alert).expect("an alert serializes");
        let started = std::time::Instant::now();
        match post(
            &http,
            &url,
            &body,
            Some(&d.alert.id),
            token.as_deref(),
            attempts,
        )
        .await
        {
            Ok(()) => {
                failing.ok(&name);
                metrics::get().delivered("webhook", started, true);
            }
            Err(e) => {
                failing.failed(&name, e);
                metrics::get().delivered("webhook", started, false);
            }
        }
        d.finish();
    }
}

async fn alertmanager_task(
    http: reqwest::Client,
    url: String,
    attempts: u32,
    resend: Duration,
    generator_url: Option<String>,
    mut rx: mpsc::Receiver<Arc<Delivery>>,
) {
    let mut failing = Failing::default();
    // Firing conditions by their labels: (startsAt, the alert).
    let mut firing: HashMap<String, (String, Arc<Alert>)> = HashMap::new();
    let mut resend_tick = tokio::time::interval(resend);
    resend_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resend_tick.tick().await;
    loop {
        let batch: Vec<Value> = tokio::select! {
            d = rx.recv() => {
                let Some(d) = d else { return };
                let now = jiff::Timestamp::now();
                let labels = alertmanager_labels(&d.alert).to_string();
                let starts_at = if d.alert.resolved {
                    firing.remove(&labels).map(|(s, _)| s).unwrap_or_else(|| d.alert.observed_at.clone())
                } else if d.alert.kind.is_warning() {
                    let s = d.alert.observed_at.clone();
                    firing.insert(labels, (s.clone(), d.alert.clone()));
                    s
                } else {
                    d.alert.observed_at.clone()
                };
                let ends = now
                    .checked_add(jiff::SignedDuration::from_mins(15))
                    .unwrap_or(now)
                    .to_string();
                let doc = alertmanager_alert(&d.alert, &starts_at, &now.to_string(), &ends, generator_url.as_deref());
                let started = std::time::Instant::now();
                let result = post(&http, &url, &Value::Array(vec![doc]), None, None, attempts).await;
                metrics::get().delivered("alertmanager", started, result.is_ok());
                match result {
                    Ok(()) => failing.ok("alertmanager"),
                    Err(e) => failing.failed("alertmanager", e),
                }
                d.finish();
                continue;
            }
            _ = resend_tick.tick() => {
                let now = jiff::Timestamp::now().to_string();
                firing
                    .values()
                    .map(|(starts, a)| alertmanager_alert(a, starts, &now, &now, generator_url.as_deref()))
                    .collect()
            }
        };
        if batch.is_empty() {
            continue;
        }
        match post(&http, &url, &Value::Array(batch), None, None, 1).await {
            Ok(()) => failing.ok("alertmanager"),
            Err(e) => failing.failed("alertmanager", e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for attempt in 0..20 {
            let d = backoff(attempt);
            let base = Duration::from_millis(200)
                .saturating_mul(1 << attempt.min(6))
                .min(Duration::from_secs(10));
            assert!(d >= base / 2 && d <= base.mul_f64(1.5), "{attempt}: {d:?}");
        }
        assert!(backoff(30) <= Duration::from_secs(15));
    }

    #[test]
    fn an_alert_is_one_event_whoever_sends_it() {
        use super::super::alert::{Leader, Subject};
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            name: Some("rta-dispatcher-leader".into()),
            namespace: Some("flink".into()),
            ..Default::default()
        };
        let change = |session: &str| {
            Alert::leader_changed(
                &Subject {
                    namespace: "flink".into(),
                    cluster: "rta".into(),
                    configmap: "rta-dispatcher-leader".into(),
                },
                "dispatcher",
                None,
                Leader {
                    address: "a".into(),
                    session_id: session.into(),
                },
                "t",
                false,
            )
        };
        let now = jiff::Timestamp::now();
        let one = alert_event(&change("s1"), &reference, "replica-a", now);
        let again = alert_event(&change("s1"), &reference, "replica-b", now);
        let other = alert_event(&change("s2"), &reference, "replica-a", now);
        assert_eq!(one.metadata.name, again.metadata.name);
        assert_ne!(one.metadata.name, other.metadata.name);
        assert!(
            one.metadata
                .name
                .as_deref()
                .unwrap()
                .starts_with("rta-dispatcher-leader.")
        );
        assert_eq!(one.type_.as_deref(), Some("Normal"));
        assert_eq!(one.reason.as_deref(), Some("LeaderChanged"));
        let long = ObjectReference {
            name: Some(format!("{}-x", "a".repeat(250))),
            ..reference
        };
        let name = alert_event(&change("s1"), &long, "r", now)
            .metadata
            .name
            .unwrap();
        assert!(name.len() <= 253, "{}", name.len());
    }

    #[test]
    fn long_notes_are_cut_at_a_character_boundary() {
        let s = "é".repeat(600);
        let t = truncate(&s, 1000);
        assert!(t.len() <= 1003 && t.ends_with('…'));
        assert_eq!(truncate("short", 1000), "short");
    }
}
