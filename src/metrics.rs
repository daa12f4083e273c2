//! Prometheus metrics of this process (`GET /metrics` on the sidecar), in the text format
//! `prometheus-client` writes. One registry per process: the sidecar is one process per pod.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ComponentLabel {
    pub component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationErrorLabel {
    pub operation: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigMapLabel {
    pub configmap: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    pub leader: Family<ComponentLabel, Gauge>,
    pub leader_transitions: Family<ComponentLabel, Gauge>,
    pub renew_seconds: Family<ComponentLabel, Histogram, fn() -> Histogram>,
    pub api_errors: Family<KindLabel, Counter>,
    pub store_seconds: Family<OperationLabel, Histogram, fn() -> Histogram>,
    pub store_errors: Family<OperationErrorLabel, Counter>,
    pub configmap_bytes: Family<ConfigMapLabel, Gauge>,
    pub payload_bytes_written: Counter,
    pub storage_errors: Family<KindLabel, Counter>,
    pub releases: Family<ReasonLabel, Counter>,
    pub lock_deletions: Family<ComponentLabel, Counter>,
    pub ha_state_lost: Counter,
    pub clients: Gauge,
    registry: Registry,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hakeeper");
        let m = Metrics {
            leader: Family::default(),
            leader_transitions: Family::default(),
            renew_seconds: Family::new_with_constructor(latency_histogram),
            api_errors: Family::default(),
            store_seconds: Family::new_with_constructor(latency_histogram),
            store_errors: Family::default(),
            configmap_bytes: Family::default(),
            payload_bytes_written: Counter::default(),
            storage_errors: Family::default(),
            releases: Family::default(),
            lock_deletions: Family::default(),
            ha_state_lost: Counter::default(),
            clients: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "leader",
            "1 while this process leads the component, else 0",
            m.leader.clone(),
        );
        registry.register(
            "leader_transitions",
            "leaderTransitions of the component's lock record, as last observed",
            m.leader_transitions.clone(),
        );
        registry.register(
            "renew_duration_seconds",
            "Time of each lease renewal (compare-and-swap)",
            m.renew_seconds.clone(),
        );
        registry.register(
            "kube_api_errors",
            "Failed Kubernetes API calls by kind",
            m.api_errors.clone(),
        );
        registry.register(
            "store_operation_duration_seconds",
            "Time of each store operation of the local API",
            m.store_seconds.clone(),
        );
        registry.register(
            "store_operation_errors",
            "Failed store operations by operation and error kind",
            m.store_errors.clone(),
        );
        registry.register("configmap_data_bytes", "Data bytes (keys and values) of an HA ConfigMap after this process's last write; the limit is 1048576", m.configmap_bytes.clone());
        registry.register(
            "payload_bytes_written",
            "Payload bytes written to object storage",
            m.payload_bytes_written.clone(),
        );
        registry.register(
            "storage_errors",
            "Failed object storage calls by kind",
            m.storage_errors.clone(),
        );
        registry.register(
            "leadership_releases",
            "Leaderships this process gave up or lost, by reason: client_gone, client_timeout, liveness_failed, api_delete, shutdown, lost",
            m.releases.clone(),
        );
        registry.register(
            "lock_deletions",
            "Lock ConfigMaps seen deleted, by component (each is recreated after a growing backoff)",
            m.lock_deletions.clone(),
        );
        registry.register(
            "ha_state_lost",
            "Deleted lock ConfigMaps that held HA state (job graphs, checkpoints, job status, the counter)",
            m.ha_state_lost.clone(),
        );
        registry.register(
            "clients",
            "Clients (JobManagers) registered with this sidecar and not released",
            m.clients.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The metrics without the closing `# EOF`, to be followed by another registry's.
    pub fn encode_body(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        out
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// This process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

pub fn set_leader(component: &str, leading: bool) {
    get()
        .leader
        .get_or_create(&ComponentLabel {
            component: component.to_string(),
        })
        .set(i64::from(leading));
}

pub fn set_transitions(component: &str, transitions: u32) {
    get()
        .leader_transitions
        .get_or_create(&ComponentLabel {
            component: component.to_string(),
        })
        .set(i64::from(transitions));
}

/// Drop a component's series (when this process stops contending for it).
pub fn forget_component(component: &str) {
    let label = ComponentLabel {
        component: component.to_string(),
    };
    let m = get();
    m.leader.remove(&label);
    m.leader_transitions.remove(&label);
    m.renew_seconds.remove(&label);
}

pub fn observe_renew(component: &str, started: Instant) {
    get()
        .renew_seconds
        .get_or_create(&ComponentLabel {
            component: component.to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
}

/// Count a failed Kubernetes API call, by a coarse kind.
pub fn api_error(e: &kube::Error) {
    let kind = match e {
        kube::Error::Api(s) if s.code == 409 => "conflict",
        kube::Error::Api(s) if s.code == 404 => "not_found",
        kube::Error::Api(s) if s.code == 429 => "throttled",
        kube::Error::Api(s) if s.code >= 500 => "server_error",
        kube::Error::Api(_) => "client_error",
        _ => "transport",
    };
    api_error_kind(kind);
}

pub fn api_error_kind(kind: &str) {
    get()
        .api_errors
        .get_or_create(&KindLabel {
            kind: kind.to_string(),
        })
        .inc();
}

pub fn observe_store(operation: &str, started: Instant, error_kind: Option<&str>) {
    let m = get();
    m.store_seconds
        .get_or_create(&OperationLabel {
            operation: operation.to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    if let Some(kind) = error_kind {
        m.store_errors
            .get_or_create(&OperationErrorLabel {
                operation: operation.to_string(),
                kind: kind.to_string(),
            })
            .inc();
    }
}

pub fn set_configmap_bytes(configmap: &str, bytes: usize) {
    get()
        .configmap_bytes
        .get_or_create(&ConfigMapLabel {
            configmap: configmap.to_string(),
        })
        .set(bytes as i64);
}

pub fn payload_written(bytes: usize) {
    get().payload_bytes_written.inc_by(bytes as u64);
}

pub fn storage_error(kind: &str) {
    get()
        .storage_errors
        .get_or_create(&KindLabel {
            kind: kind.to_string(),
        })
        .inc();
}

/// Count a leadership this process held and gave up or lost.
pub fn count_release(reason: crate::election::ReleaseReason) {
    get()
        .releases
        .get_or_create(&ReasonLabel {
            reason: reason.as_str().to_string(),
        })
        .inc();
}

/// A lock ConfigMap was seen deleted; `held_state`: with HA state in it.
pub fn count_lock_deletion(component: &str, held_state: bool) {
    let m = get();
    m.lock_deletions
        .get_or_create(&ComponentLabel {
            component: component.to_string(),
        })
        .inc();
    if held_state {
        m.ha_state_lost.inc();
    }
}

pub fn set_clients(n: usize) {
    get().clients.set(n as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_appear_in_the_exposition() {
        set_leader("dispatcher", true);
        set_transitions("dispatcher", 3);
        payload_written(10);
        storage_error("unavailable");
        api_error_kind("conflict");
        set_configmap_bytes("c-dispatcher-leader", 1234);
        observe_store("checkpoint_add", Instant::now(), Some("NotLeader"));
        observe_renew("dispatcher", Instant::now());
        count_release(crate::election::ReleaseReason::ClientTimeout);
        set_clients(2);
        let text = get().encode();
        for line in [
            "hakeeper_leader{component=\"dispatcher\"} 1",
            "hakeeper_leader_transitions{component=\"dispatcher\"} 3",
            "hakeeper_storage_errors_total{kind=\"unavailable\"} 1",
            "hakeeper_kube_api_errors_total{kind=\"conflict\"}",
            "hakeeper_configmap_data_bytes{configmap=\"c-dispatcher-leader\"} 1234",
            "hakeeper_store_operation_errors_total{operation=\"checkpoint_add\",kind=\"NotLeader\"} 1",
            "hakeeper_store_operation_duration_seconds_count{operation=\"checkpoint_add\"} 1",
            "hakeeper_renew_duration_seconds_bucket{le=",
            "hakeeper_leadership_releases_total{reason=\"client_timeout\"}",
            "# TYPE hakeeper_clients gauge",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(
            text.contains("hakeeper_payload_bytes_written_total"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        forget_component("dispatcher");
        let text = get().encode();
        assert!(!text.contains("component=\"dispatcher\""), "{text}");
    }
}
