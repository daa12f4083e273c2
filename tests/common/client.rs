//! A well-behaved JobManager client of a sidecar's local API, in the test process: it
//! registers (`POST /v1/clients`), holds its event stream (`GET /v1/clients/{id}/events`)
//! open and sends a keepalive every client timeout / 4. Leadership is contended on its behalf
//! with [`JobManagerClient::on`]; dropping it closes the stream, as a JobManager that crashes
//! does, and so releases every component it contended for.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The header naming the client a call is made for.
pub const CLIENT_HEADER: &str = "Hakeeper-Client";

pub struct JobManagerClient {
    /// The id `POST /v1/clients` gave.
    pub id: String,
    /// The sidecar's client timeout.
    pub timeout: Duration,
    /// The events of its stream after the first (`client`) one: (event name, data).
    pub events: mpsc::UnboundedReceiver<(String, Value)>,
    stream: Option<JoinHandle<()>>,
    keepalive: Option<JoinHandle<()>>,
}

impl JobManagerClient {
    /// Register with the sidecar whose local API is at `base` (`http://HOST:PORT`), open the
    /// event stream and start the keepalives.
    pub async fn start(base: &str, name: &str) -> JobManagerClient {
        let mut c = JobManagerClient::register(base, name).await;
        // The lifeline: no overall timeout. The stream is open (the client bound to it) once
        // the answer's head has arrived.
        let response = reqwest::Client::new()
            .get(format!("{base}/v1/clients/{}/events", c.id))
            .send()
            .await
            .expect("the local API answers");
        assert_eq!(
            response.status(),
            reqwest::StatusCode::OK,
            "GET /v1/clients/{}/events",
            c.id
        );
        let (events, stream) = sse_events(response);
        c.events = events;
        c.stream = Some(stream);
        let (event, first) = c
            .next_event(Duration::from_secs(5))
            .await
            .expect("a first event");
        assert_eq!(event, "client", "{first}");
        assert_eq!(first["clientId"], c.id.as_str(), "{first}");
        let url = format!("{base}/v1/clients/{}/keepalive", c.id);
        let every = c.timeout / 4;
        c.keepalive = Some(tokio::spawn(async move {
            let http = http();
            loop {
                tokio::time::sleep(every).await;
                // A failure is the sidecar's to report (the client's release), not this task's.
                let _ = http.post(&url).send().await;
            }
        }));
        c
    }

    /// Registered only: no stream, no keepalives.
    pub async fn register(base: &str, name: &str) -> JobManagerClient {
        let response = http()
            .post(format!("{base}/v1/clients"))
            .json(&serde_json::json!({"name": name}))
            .send()
            .await
            .expect("the local API answers");
        let status = response.status();
        let text = response.text().await.expect("a response body");
        assert_eq!(
            status,
            reqwest::StatusCode::CREATED,
            "POST /v1/clients: {text}"
        );
        let body: Value = serde_json::from_str(&text).expect("JSON");
        let id = body["clientId"]
            .as_str()
            .unwrap_or_else(|| panic!("a clientId: {body}"))
            .to_string();
        let timeout = Duration::from_millis(
            body["timeoutMs"]
                .as_u64()
                .unwrap_or_else(|| panic!("a timeoutMs: {body}")),
        );
        JobManagerClient {
            id,
            timeout,
            events: mpsc::unbounded_channel().1,
            stream: None,
            keepalive: None,
        }
    }

    /// `request`, made on behalf of this client.
    pub fn on(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.header(CLIENT_HEADER, &self.id)
    }

    /// Stop the keepalives (the stream stays open): a hung process.
    pub fn hang(&mut self) {
        if let Some(k) = self.keepalive.take() {
            k.abort();
        }
    }

    /// The next event of the stream, if one comes within `within`.
    pub async fn next_event(&mut self, within: Duration) -> Option<(String, Value)> {
        next_event(&mut self.events, within).await
    }
}

/// The next event of `events` (from [`sse_events`]), if one comes within `within`.
pub async fn next_event(
    events: &mut mpsc::UnboundedReceiver<(String, Value)>,
    within: Duration,
) -> Option<(String, Value)> {
    tokio::time::timeout(within, events.recv())
        .await
        .ok()
        .flatten()
}

impl Drop for JobManagerClient {
    fn drop(&mut self) {
        self.hang();
        // Drops the response: the connection closes, and with it the client's lifeline.
        if let Some(s) = self.stream.take() {
            s.abort();
        }
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("HTTP client")
}

/// Read a Server-Sent Events body into (event name, JSON data) pairs, until it ends (the
/// channel then closes) or the task is aborted (which closes the connection). Keepalive
/// comments are skipped.
pub fn sse_events(
    response: reqwest::Response,
) -> (
    mpsc::UnboundedReceiver<(String, Value)>,
    tokio::task::JoinHandle<()>,
) {
    use futures::StreamExt;
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut stream = response.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = buf.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&block);
                let mut event = "message".to_string();
                let mut data = Vec::new();
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                let value = serde_json::from_str(&data.join("\n"))
                    .unwrap_or_else(|e| Value::String(format!("unparsable {data:?}: {e}")));
                if tx.send((event, value)).is_err() {
                    return;
                }
            }
        }
    });
    (rx, task)
}
