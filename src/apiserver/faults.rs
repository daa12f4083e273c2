//! Request counters and fault injection for the embedded API server.
//!
//! Faults apply to resource requests (not to discovery or health checks): added latency,
//! a rate of error answers (500, 503 or 429), closing every open watch, and a partition
//! during which every connection is cut and new ones are dropped on accept.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::status::ApiError;

/// Requests counted by `(verb, resource)`, e.g. `("update", "configmaps")`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts(pub BTreeMap<(String, String), u64>);

impl RequestCounts {
    pub fn get(&self, verb: &str, resource: &str) -> u64 {
        self.0
            .get(&(verb.to_string(), resource.to_string()))
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Requests that are not watches.
    pub fn total_without_watches(&self) -> u64 {
        self.0
            .iter()
            .filter(|((verb, _), _)| verb != "watch")
            .map(|(_, n)| n)
            .sum()
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        RequestCounts(
            self.0
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.saturating_sub(earlier.0.get(k).copied().unwrap_or(0)),
                    )
                })
                .filter(|(_, v)| *v > 0)
                .collect(),
        )
    }
}

/// Requests counted by `(verb, API group, resource)`, as an RBAC rule names what a request
/// needs (`""` is the core group), e.g. `("create", "events.k8s.io", "events")`.
pub type PermissionCounts = BTreeMap<(String, String, String), u64>;

/// The control handle. All methods take effect immediately for new requests.
pub struct Faults {
    counts: Mutex<RequestCounts>,
    permissions: Mutex<PermissionCounts>,
    latency_us: AtomicU64,
    errors: Mutex<ErrorInjection>,
    partition_until: Mutex<Option<Instant>>,
    /// Bumped to close every open watch.
    watch_epoch: watch::Sender<u64>,
    /// Bumped to cut every open connection.
    sever_epoch: watch::Sender<u64>,
}

struct ErrorInjection {
    rate: f64,
    codes: Vec<u16>,
    rng: fastrand::Rng,
}

impl Faults {
    pub(crate) fn new() -> Faults {
        Faults {
            counts: Mutex::new(RequestCounts::default()),
            permissions: Mutex::new(PermissionCounts::new()),
            latency_us: AtomicU64::new(0),
            errors: Mutex::new(ErrorInjection {
                rate: 0.0,
                codes: Vec::new(),
                rng: fastrand::Rng::new(),
            }),
            partition_until: Mutex::new(None),
            watch_epoch: watch::channel(0).0,
            sever_epoch: watch::channel(0).0,
        }
    }

    /// Add `latency` before every resource request is served.
    pub fn set_latency(&self, latency: Duration) {
        self.latency_us.store(
            latency.as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    /// Answer a fraction `rate` (0.0..=1.0) of resource requests with one of `codes`
    /// (each of 500, 503, 429), chosen at random. `seed` makes the choice reproducible.
    pub fn set_error_rate(&self, rate: f64, codes: &[u16], seed: Option<u64>) {
        let mut e = lock(&self.errors);
        e.rate = rate.clamp(0.0, 1.0);
        e.codes = codes
            .iter()
            .copied()
            .filter(|c| matches!(c, 500 | 503 | 429))
            .collect();
        if let Some(seed) = seed {
            e.rng = fastrand::Rng::with_seed(seed);
        }
    }

    /// Close every open watch now (clients must re-watch, as after an API server restart).
    pub fn close_watches(&self) {
        self.watch_epoch.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Cut every connection and drop every new one for `duration`.
    pub fn partition(&self, duration: Duration) {
        *lock(&self.partition_until) = Some(Instant::now() + duration);
        self.sever_epoch.send_modify(|n| *n = n.wrapping_add(1));
        self.close_watches();
    }

    /// End a partition early.
    pub fn heal(&self) {
        *lock(&self.partition_until) = None;
    }

    /// Remove every fault.
    pub fn clear(&self) {
        self.set_latency(Duration::ZERO);
        self.set_error_rate(0.0, &[], None);
        self.heal();
    }

    pub fn is_partitioned(&self) -> bool {
        lock(&self.partition_until).is_some_and(|until| Instant::now() < until)
    }

    pub fn counts(&self) -> RequestCounts {
        lock(&self.counts).clone()
    }

    /// Resource requests by `(verb, API group, resource)`.
    pub fn permission_counts(&self) -> PermissionCounts {
        lock(&self.permissions).clone()
    }

    /// Reset both [`Self::counts`] and [`Self::permission_counts`].
    pub fn reset_counts(&self) {
        *lock(&self.counts) = RequestCounts::default();
        lock(&self.permissions).clear();
    }

    pub(crate) fn count(&self, verb: &str, resource: &str) {
        *lock(&self.counts)
            .0
            .entry((verb.to_string(), resource.to_string()))
            .or_insert(0) += 1;
    }

    pub(crate) fn count_permission(&self, verb: &str, group: &str, resource: &str) {
        *lock(&self.permissions)
            .entry((verb.to_string(), group.to_string(), resource.to_string()))
            .or_insert(0) += 1;
    }

    pub(crate) fn watch_epoch(&self) -> watch::Receiver<u64> {
        self.watch_epoch.subscribe()
    }

    pub(crate) fn sever_epoch(&self) -> watch::Receiver<u64> {
        self.sever_epoch.subscribe()
    }

    /// Apply latency and maybe pick an injected error for one request.
    pub(crate) async fn before_request(&self) -> Result<(), ApiError> {
        let latency = self.latency_us.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_micros(latency)).await;
        }
        let code = {
            let mut e = lock(&self.errors);
            if e.rate > 0.0 && !e.codes.is_empty() && e.rng.f64() < e.rate {
                let n = e.codes.len();
                let i = e.rng.usize(..n);
                e.codes.get(i).copied()
            } else {
                None
            }
        };
        match code {
            None => Ok(()),
            Some(429) => Err(ApiError::new(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
            )),
            Some(503) => Err(ApiError::new(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request (injected fault)",
            )),
            Some(_) => Err(ApiError::internal(
                "an error on the server (\"injected fault\") has prevented the request from succeeding",
            )),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn error_rate_is_reproducible_and_bounded() {
        let f = Faults::new();
        f.set_error_rate(0.5, &[500, 503, 404], Some(7));
        let mut first = Vec::new();
        for _ in 0..200 {
            first.push(f.before_request().await.err().map(|e| e.code));
        }
        f.set_error_rate(0.5, &[500, 503, 404], Some(7));
        let mut second = Vec::new();
        for _ in 0..200 {
            second.push(f.before_request().await.err().map(|e| e.code));
        }
        assert_eq!(first, second);
        let failed = first.iter().filter(|c| c.is_some()).count();
        assert!(
            (60..140).contains(&failed),
            "{failed} of 200 failed at rate 0.5"
        );
        // 404 is not an injectable code.
        assert!(first.iter().flatten().all(|c| *c == 500 || *c == 503));
        f.clear();
        assert!(f.before_request().await.is_ok());
    }

    #[test]
    fn partition_expires() {
        let f = Faults::new();
        let sever = f.sever_epoch();
        f.partition(Duration::from_millis(30));
        assert!(f.is_partitioned());
        assert!(sever.has_changed().unwrap());
        std::thread::sleep(Duration::from_millis(40));
        assert!(!f.is_partitioned());
    }

    #[test]
    fn counts_diff() {
        let f = Faults::new();
        f.count("get", "configmaps");
        let before = f.counts();
        f.count("get", "configmaps");
        f.count("watch", "configmaps");
        let d = f.counts().since(&before);
        assert_eq!(d.get("get", "configmaps"), 1);
        assert_eq!(d.total(), 2);
        assert_eq!(d.total_without_watches(), 1);
    }
}
