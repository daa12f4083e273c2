//! What `--contend` leadership depends on, as there is no API client to watch: an HTTP probe
//! of the JobManager (`--liveness-url`), or nothing (`--liveness none`, for demos and tests).
//!
//! The probe runs every retry period. The `--contend` components are contended once the
//! JobManager first answers, and again after any success that finds one not contended. After
//! `--liveness-failures` failures in a row they are released (reason `liveness_failed`),
//! until the JobManager answers again, so a restarted JobManager is led for once it answers.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::Uri;
use http_body_util::Empty;
use tokio::sync::watch;

use super::Sidecar;
use crate::election::ReleaseReason;
use crate::layout::Component;

/// What `--contend` leadership is tied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// Lead for as long as the sidecar lives.
    None,
    Http(Probe),
}

/// An HTTP liveness probe: `GET url`, alive on a 2xx or 3xx answer within `timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub url: Uri,
    pub timeout: Duration,
    pub failures: u32,
    pub period: Duration,
}

/// Parse `--liveness-url`: `http://host:port/path` (the JobManager is in the same pod; a
/// plain HTTP probe is what kubelet does too).
pub fn parse_url(raw: &str) -> Result<Uri, String> {
    let uri: Uri = raw
        .parse()
        .map_err(|e| format!("--liveness-url {raw:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "--liveness-url {raw:?}: only http:// is supported (the JobManager's REST port, e.g. http://127.0.0.1:8081/config)"
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("--liveness-url {raw:?} has no host"));
    }
    Ok(uri)
}

/// What to do after a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// The threshold of failures in a row was reached: release the leaderships.
    Release,
    /// Alive again after a release: contend again.
    Contend,
}

/// Consecutive failures, and whether the leaderships are given up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tracker {
    pub failures: u32,
    pub released: bool,
}

impl Tracker {
    pub fn observe(&mut self, alive: bool, threshold: u32) -> Action {
        if alive {
            self.failures = 0;
            if self.released {
                self.released = false;
                return Action::Contend;
            }
            return Action::Nothing;
        }
        self.failures = self.failures.saturating_add(1);
        if !self.released && self.failures >= threshold.max(1) {
            self.released = true;
            return Action::Release;
        }
        Action::Nothing
    }
}

/// One probe: `Ok` on 2xx/3xx within the timeout, else why not.
pub async fn probe_once(url: &Uri, timeout: Duration) -> Result<u16, String> {
    let host = url.host().unwrap_or_default().trim_matches(['[', ']']);
    let port = url.port_u16().unwrap_or(80);
    let path = url.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let authority = url
        .authority()
        .map_or_else(|| host.to_string(), |a| a.to_string());
    let attempt = async {
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
        let driver = tokio::spawn(connection);
        let request = hyper::Request::get(path)
            .header("host", authority)
            .header("user-agent", "hakeeper-liveness")
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let answer = sender.send_request(request).await;
        driver.abort();
        let status = answer.map_err(|e| format!("request: {e}"))?.status();
        if status.is_success() || status.is_redirection() {
            Ok(status.as_u16())
        } else {
            Err(format!("answered {status}"))
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

/// Probe until `stop`; release and contend again as [`Tracker`] decides. Logs once per
/// change (failing, released, recovered), never once per probe.
pub async fn run(
    sidecar: Sidecar,
    probe: Probe,
    contend: Vec<Component>,
    address: String,
    mut stop: watch::Receiver<bool>,
) {
    let mut tracker = Tracker::default();
    let mut ticks = tokio::time::interval(probe.period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    // Why a component could not be contended again, as last logged.
    let mut refused: HashMap<Component, String> = HashMap::new();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        let result = probe_once(&probe.url, probe.timeout).await;
        match &result {
            Ok(_) => {
                if last_error.take().is_some() {
                    tracing::info!(url = %probe.url, "the JobManager answers its liveness probe again");
                }
            }
            Err(e) => {
                if last_error.as_deref() != Some(e) {
                    tracing::warn!(url = %probe.url, error = %e, failures = tracker.failures + 1, threshold = probe.failures, "liveness probe failed");
                    last_error = Some(e.clone());
                }
            }
        }
        if tracker.observe(result.is_ok(), probe.failures) == Action::Release {
            tracing::warn!(url = %probe.url, failures = tracker.failures, "the JobManager failed its liveness probe {} times in a row; releasing its leaderships", tracker.failures);
            sidecar.release_unowned(ReleaseReason::LivenessFailed).await;
            continue;
        }
        if tracker.released {
            continue;
        }
        // Alive: every --contend component is contended (again, after a release or a DELETE;
        // idempotent otherwise). A refusal (a client holds it now) is retried at every probe
        // and logged when it changes.
        for component in &contend {
            match sidecar.contend_unowned(component.clone(), address.clone()) {
                Ok(()) => {
                    refused.remove(component);
                }
                Err(e) => {
                    if refused.get(component) != Some(&e.message) {
                        tracing::warn!(component = %component, error = %e.message, "cannot contend again; retrying at every probe");
                        refused.insert(component.clone(), e.message);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_after_the_threshold_of_failures_in_a_row() {
        let mut t = Tracker::default();
        assert_eq!(t.observe(false, 3), Action::Nothing);
        assert_eq!(t.observe(false, 3), Action::Nothing);
        assert_eq!(t.observe(false, 3), Action::Release);
        // Released once, however long it keeps failing.
        assert_eq!(t.observe(false, 3), Action::Nothing);
        assert_eq!(t.observe(true, 3), Action::Contend);
        assert_eq!(t.observe(true, 3), Action::Nothing);
    }

    #[test]
    fn a_success_between_failures_starts_the_count_again() {
        let mut t = Tracker::default();
        for _ in 0..10 {
            assert_eq!(t.observe(false, 3), Action::Nothing);
            assert_eq!(t.observe(false, 3), Action::Nothing);
            assert_eq!(t.observe(true, 3), Action::Nothing);
        }
        assert!(!t.released);
    }

    #[test]
    fn a_threshold_of_zero_acts_as_one() {
        let mut t = Tracker::default();
        assert_eq!(t.observe(false, 0), Action::Release);
    }

    #[test]
    fn only_plain_http_urls_with_a_host() {
        assert!(parse_url("http://127.0.0.1:8081/config").is_ok());
        assert!(parse_url("http://[::1]:8081/").is_ok());
        for bad in [
            "https://jm:8081/",
            "ftp://x/",
            "127.0.0.1:8081",
            "http:///x",
            "not a url",
        ] {
            assert!(parse_url(bad).is_err(), "{bad} was accepted");
        }
    }

    #[tokio::test]
    async fn probe_outcomes() {
        // Refused: nothing listens on a port just freed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = parse_url(&format!("http://127.0.0.1:{port}/")).unwrap();
        let e = probe_once(&url, Duration::from_secs(1)).await.unwrap_err();
        assert!(e.starts_with("connect:"), "{e}");
        // Hangs: accepts and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = parse_url(&format!("http://{}/", silent.local_addr().unwrap())).unwrap();
        let held = tokio::spawn(async move {
            let (s, _) = silent.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        let e = probe_once(&url, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(e.starts_with("no answer within"), "{e}");
        held.abort();
        // Answers 500, then 204.
        let app = axum::Router::new()
            .route(
                "/bad",
                axum::routing::get(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }),
            )
            .route(
                "/ok",
                axum::routing::get(|| async { axum::http::StatusCode::NO_CONTENT }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(l, app).await });
        let bad = parse_url(&format!("http://{addr}/bad")).unwrap();
        let e = probe_once(&bad, Duration::from_secs(2)).await.unwrap_err();
        assert!(e.contains("500"), "{e}");
        let ok = parse_url(&format!("http://{addr}/ok")).unwrap();
        assert_eq!(probe_once(&ok, Duration::from_secs(2)).await, Ok(204));
        server.abort();
    }
}
