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

/// The HTTP client of the webhook and Alertmanager channels (rustls), with `timeout` per
/// request. Built once at start, where a failure is a start-up error.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| format!("building the HTTP client for alerts: {e}"))
}

/// Where alerts go besides Events.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// From [`http_client`].
    pub http: reqwest::Client,
    pub webhooks: Vec<String>,
    /// A file holding a bearer token for the webhooks (read at each delivery, so a rotated
    /// Secret is picked up).
    pub webhook_token_file: Option<PathBuf>,
    pub alertmanager: Option<String>,
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
    /// Sent again from the outbox by a new leader: another replica may have recorded it.
    resent: bool,
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
        let http = settings.http.clone();
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
        self.hand_out(alert, reference, false);
    }

    /// Hand an alert from a previous leader's outbox to every channel again (same id).
    pub fn resend(&self, alert: Alert, reference: Option<ObjectReference>) {
        self.hand_out(alert, reference, true);
    }

    /// Tell Alertmanager again about a condition that still fires (at the start of a term:
    /// the previous leader's channel re-sent it every minute). Other channels already have it.
    pub fn refire(&self, alert: Alert) {
        let Some((_, queue)) = self.queues.iter().find(|(n, _)| n == "alertmanager") else {
            return;
        };
        let delivery = Arc::new(Delivery {
            alert: Arc::new(alert),
            reference: None,
            resent: true,
            remaining: Arc::new(AtomicUsize::new(1)),
            done: self.done.clone(),
        });
        if queue.try_send(delivery).is_err() {
            metrics::get().dropped("alertmanager");
        }
    }

    fn hand_out(&self, alert: Alert, reference: Option<ObjectReference>, resent: bool) {
        if self.queues.is_empty() {
            let _ = self.done.send(alert.id.clone());
            return;
        }
        let delivery = Arc::new(Delivery {
            alert: Arc::new(alert),
            reference,
            resent,
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
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "hakeeper-operator".into(),
            instance: Some(cut(&identity, 128)),
        },
    );
    let mut failing = Failing::default();
    while let Some(d) = rx.recv().await {
        if let Some(reference) = &d.reference {
            let alert = &d.alert;
            let action = event_action(alert);
            let started = std::time::Instant::now();
            // A re-sent alert that the previous leader recorded already stays one Event.
            if d.resent && recorded(&client, reference, &action).await {
                metrics::get().delivered("events", started, true);
                d.finish();
                continue;
            }
            let event = Event {
                type_: if alert.is_warning() {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: alert.kind.as_str().into(),
                note: Some(truncate(&alert.message, 1000)),
                action,
                secondary: None,
            };
            match tokio::time::timeout(Duration::from_secs(10), recorder.publish(&event, reference))
                .await
            {
                Ok(Ok(())) => {
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

/// The Event's `action`. kube's `Recorder` folds Events with the same type, reason and
/// action on an object into one series, whatever their notes; so the action names the
/// happening (a hash of the alert id): a repeat of one alert counts up in its series, a
/// different change on the same ConfigMap is an Event of its own.
fn event_action(alert: &Alert) -> String {
    format!("Alert{:016x}", super::stable_hash(&[&alert.id]))
}

/// Whether an Event with `action` about `reference` exists (a failed lookup says no: at worst
/// the alert is recorded twice).
async fn recorded(client: &kube::Client, reference: &ObjectReference, action: &str) -> bool {
    let api: kube::Api<k8s_openapi::api::events::v1::Event> = kube::Api::namespaced(
        client.clone(),
        reference.namespace.as_deref().unwrap_or("default"),
    );
    let params = kube::api::ListParams::default().fields(&format!(
        "regarding.name={}",
        reference.name.as_deref().unwrap_or_default()
    ));
    match tokio::time::timeout(Duration::from_secs(10), api.list(&params)).await {
        Ok(Ok(list)) => list
            .items
            .iter()
            .any(|e| e.action.as_deref() == Some(action)),
        _ => false,
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
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
    fn one_alert_is_one_event_series_and_another_change_its_own() {
        use super::super::alert::{Leader, Subject};
        let change = |session: &str, observed: &str| {
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
                observed,
                false,
            )
        };
        assert_eq!(
            event_action(&change("s1", "t1")),
            event_action(&change("s1", "t2"))
        );
        assert_ne!(
            event_action(&change("s1", "t1")),
            event_action(&change("s2", "t1"))
        );
        assert!(event_action(&change("s1", "t1")).len() <= 128);
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("abc", 128), "abc");
    }

    #[test]
    fn long_notes_are_cut_at_a_character_boundary() {
        let s = "é".repeat(600);
        let t = truncate(&s, 1000);
        assert!(t.len() <= 1003 && t.ends_with('…'));
        assert_eq!(truncate("short", 1000), "short");
    }
}
