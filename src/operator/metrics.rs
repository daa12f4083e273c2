//! The operator's metrics (`GET /metrics` on its admin port, after the process-wide ones).
//! Series of clusters, components and jobs that disappear are removed.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::alert::{Alert, AlertKind};
use super::track::{ClusterKey, ComponentFigures, JobFigures};

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ComponentLabels {
    pub namespace: String,
    pub cluster: String,
    pub component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct JobLabels {
    pub namespace: String,
    pub cluster: String,
    pub job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ClusterLabels {
    pub namespace: String,
    pub cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ConfigMapLabels {
    pub namespace: String,
    pub cluster: String,
    pub configmap: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    pub channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub channel: String,
    pub result: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn delivery_histogram() -> Histogram {
    // 1 ms .. about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

pub struct OperatorMetrics {
    leader_changes: Family<ComponentLabels, Counter>,
    leader_present: Family<ComponentLabels, Gauge>,
    leaderless_seconds: Family<ComponentLabels, FloatGauge>,
    seconds_since_checkpoint: Family<JobLabels, FloatGauge>,
    dangling: Family<ClusterLabels, Gauge>,
    orphans: Family<ClusterLabels, Gauge>,
    orphan_bytes: Family<ClusterLabels, Gauge>,
    outside: Family<ClusterLabels, Gauge>,
    configmap_bytes: Family<ConfigMapLabels, Gauge>,
    configmap_fill: Family<ConfigMapLabels, FloatGauge>,
    alerts: Family<KindLabels, Counter>,
    drops: Family<ChannelLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    delivery_seconds: Family<ChannelLabels, Histogram, fn() -> Histogram>,
    pub is_leader: Gauge,
    pub configmaps: Gauge,
    pub state_write_errors: Counter,
    pub outbox_drops: Counter,
    written: Mutex<Written>,
    registry: Registry,
}

/// The label sets last written per family, to remove the ones that vanish.
#[derive(Default)]
struct Written {
    components: BTreeSet<ComponentLabels>,
    jobs: BTreeSet<JobLabels>,
    configmaps: BTreeSet<ConfigMapLabels>,
}

impl OperatorMetrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("hakeeper_operator");
        let m = OperatorMetrics {
            leader_changes: Family::default(),
            leader_present: Family::default(),
            leaderless_seconds: Family::default(),
            seconds_since_checkpoint: Family::default(),
            dangling: Family::default(),
            orphans: Family::default(),
            orphan_bytes: Family::default(),
            outside: Family::default(),
            configmap_bytes: Family::default(),
            configmap_fill: Family::default(),
            alerts: Family::default(),
            drops: Family::default(),
            deliveries: Family::default(),
            delivery_seconds: Family::new_with_constructor(delivery_histogram),
            is_leader: Gauge::default(),
            configmaps: Gauge::default(),
            state_write_errors: Counter::default(),
            outbox_drops: Counter::default(),
            written: Mutex::new(Written::default()),
            registry: Registry::default(),
        };
        registry.register(
            "leader_changes",
            "Leader changes alerted (A to B, none to B), per component",
            m.leader_changes.clone(),
        );
        registry.register(
            "leader_present",
            "1 when the component has a live leader (lease held by its record)",
            m.leader_present.clone(),
        );
        registry.register(
            "leaderless_seconds",
            "Seconds the component has had no live leader (0 while it has one)",
            m.leaderless_seconds.clone(),
        );
        registry.register(
            "seconds_since_checkpoint",
            "Seconds since the job's newest checkpoint changed, as this operator saw it",
            m.seconds_since_checkpoint.clone(),
        );
        registry.register(
            "dangling_handles",
            "Handles whose payload is missing or of another size than recorded",
            m.dangling.clone(),
        );
        registry.register(
            "orphan_payloads",
            "Payloads in the HA directory no handle references (older than the grace period)",
            m.orphans.clone(),
        );
        registry.register(
            "orphan_bytes",
            "Bytes of those orphaned payloads",
            m.orphan_bytes.clone(),
        );
        registry.register(
            "handles_outside_ha_dir",
            "Handles whose path is outside the cluster's HA directory (never touched)",
            m.outside.clone(),
        );
        registry.register(
            "configmap_bytes",
            "Bytes of data in an HA ConfigMap (keys and values)",
            m.configmap_bytes.clone(),
        );
        registry.register(
            "configmap_fill_ratio",
            "An HA ConfigMap's data bytes over the 1 MiB limit",
            m.configmap_fill.clone(),
        );
        registry.register("alerts", "Alerts raised, per kind", m.alerts.clone());
        registry.register(
            "alert_drops",
            "Alerts dropped because a channel's queue was full",
            m.drops.clone(),
        );
        registry.register(
            "deliveries",
            "Alert deliveries per channel and result (ok, failed after retries)",
            m.deliveries.clone(),
        );
        registry.register(
            "delivery_seconds",
            "Time to deliver one alert, retries included",
            m.delivery_seconds.clone(),
        );
        registry.register(
            "is_leader",
            "1 while this replica leads (alerts, verifies, collects)",
            m.is_leader.clone(),
        );
        registry.register(
            "watched_configmaps",
            "HA ConfigMaps in this replica's cache",
            m.configmaps.clone(),
        );
        registry.register(
            "state_write_errors",
            "Failed writes of hakeeper-operator-state",
            m.state_write_errors.clone(),
        );
        registry.register(
            "outbox_drops",
            "Undelivered alerts dropped from the persisted outbox because it was full",
            m.outbox_drops.clone(),
        );
        OperatorMetrics { registry, ..m }
    }

    /// The metrics without the closing `# EOF` (the admin server writes the process-wide
    /// metrics, these, then `# EOF`).
    pub fn encode_body(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        out
    }

    #[cfg(test)]
    fn encode(&self) -> String {
        self.encode_body()
    }

    pub fn alert(&self, alert: &Alert) {
        self.alerts
            .get_or_create(&KindLabels {
                kind: alert.kind.as_str().into(),
            })
            .inc();
        if alert.kind == AlertKind::LeaderChanged
            && let Some(component) = &alert.component
        {
            self.leader_changes
                .get_or_create(&ComponentLabels {
                    namespace: alert.namespace.clone(),
                    cluster: alert.cluster.clone(),
                    component: component.clone(),
                })
                .inc();
        }
    }

    pub fn dropped(&self, channel: &str) {
        self.drops
            .get_or_create(&ChannelLabels {
                channel: channel.into(),
            })
            .inc();
    }

    pub fn delivered(&self, channel: &str, started: Instant, ok: bool) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                channel: channel.into(),
                result: if ok { "ok" } else { "failed" }.into(),
            })
            .inc();
        self.delivery_seconds
            .get_or_create(&ChannelLabels {
                channel: channel.into(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Replace the per-component and per-job series with `figures`; vanished ones go.
    pub fn figures(&self, components: &[ComponentFigures], jobs: &[JobFigures]) {
        let mut written = self.written.lock().expect("metrics lock");
        let mut now_components = BTreeSet::new();
        for c in components {
            let labels = ComponentLabels {
                namespace: c.key.namespace.clone(),
                cluster: c.key.cluster.clone(),
                component: c.component.clone(),
            };
            self.leader_present
                .get_or_create(&labels)
                .set(i64::from(c.live));
            self.leaderless_seconds
                .get_or_create(&labels)
                .set(c.leaderless_seconds);
            now_components.insert(labels);
        }
        for gone in written.components.difference(&now_components) {
            self.leader_present.remove(gone);
            self.leaderless_seconds.remove(gone);
            self.leader_changes.remove(gone);
        }
        written.components = now_components;
        let mut now_jobs = BTreeSet::new();
        for j in jobs {
            let labels = JobLabels {
                namespace: j.key.namespace.clone(),
                cluster: j.key.cluster.clone(),
                job: j.job.clone(),
            };
            if j.running {
                self.seconds_since_checkpoint
                    .get_or_create(&labels)
                    .set(j.seconds_since_checkpoint);
                now_jobs.insert(labels);
            }
        }
        for gone in written.jobs.difference(&now_jobs) {
            self.seconds_since_checkpoint.remove(gone);
        }
        written.jobs = now_jobs;
    }

    /// One cluster's ConfigMap sizes (`(name, bytes)`); its other ConfigMaps' series go.
    pub fn configmap_sizes(&self, key: &ClusterKey, sizes: &[(String, usize)], limit: usize) {
        let mut written = self.written.lock().expect("metrics lock");
        let mine: Vec<ConfigMapLabels> = written
            .configmaps
            .iter()
            .filter(|l| l.namespace == key.namespace && l.cluster == key.cluster)
            .cloned()
            .collect();
        for l in mine {
            if !sizes.iter().any(|(n, _)| *n == l.configmap) {
                self.configmap_bytes.remove(&l);
                self.configmap_fill.remove(&l);
                written.configmaps.remove(&l);
            }
        }
        for (name, bytes) in sizes {
            let labels = ConfigMapLabels {
                namespace: key.namespace.clone(),
                cluster: key.cluster.clone(),
                configmap: name.clone(),
            };
            self.configmap_bytes
                .get_or_create(&labels)
                .set(*bytes as i64);
            self.configmap_fill
                .get_or_create(&labels)
                .set(*bytes as f64 / limit as f64);
            written.configmaps.insert(labels);
        }
    }

    pub fn payload_figures(
        &self,
        key: &ClusterKey,
        dangling: Option<usize>,
        orphans: Option<(usize, u64)>,
        outside: usize,
    ) {
        let labels = ClusterLabels {
            namespace: key.namespace.clone(),
            cluster: key.cluster.clone(),
        };
        if let Some(d) = dangling {
            self.dangling.get_or_create(&labels).set(d as i64);
        }
        if let Some((n, bytes)) = orphans {
            self.orphans.get_or_create(&labels).set(n as i64);
            self.orphan_bytes.get_or_create(&labels).set(bytes as i64);
        }
        self.outside.get_or_create(&labels).set(outside as i64);
    }

    /// The cluster is gone: remove every series that names it.
    pub fn forget_cluster(&self, key: &ClusterKey) {
        let labels = ClusterLabels {
            namespace: key.namespace.clone(),
            cluster: key.cluster.clone(),
        };
        self.dangling.remove(&labels);
        self.orphans.remove(&labels);
        self.orphan_bytes.remove(&labels);
        self.outside.remove(&labels);
        self.configmap_sizes(key, &[], 1);
    }
}

static METRICS: LazyLock<OperatorMetrics> = LazyLock::new(OperatorMetrics::new);

pub fn get() -> &'static OperatorMetrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: &str) -> ClusterKey {
        ClusterKey {
            namespace: "ns".into(),
            cluster: c.into(),
        }
    }

    #[test]
    fn series_of_vanished_components_and_configmaps_are_removed() {
        let m = OperatorMetrics::new();
        let fig = |c: &str| ComponentFigures {
            key: key(c),
            component: "dispatcher".into(),
            live: true,
            leaderless_seconds: 0.0,
        };
        m.figures(&[fig("metrics-a"), fig("metrics-b")], &[]);
        m.configmap_sizes(
            &key("metrics-a"),
            &[("metrics-a-dispatcher-leader".into(), 512)],
            1024,
        );
        let text = m.encode();
        assert!(text.contains("cluster=\"metrics-b\""), "{text}");
        assert!(
            text.contains("hakeeper_operator_configmap_fill_ratio{namespace=\"ns\",cluster=\"metrics-a\",configmap=\"metrics-a-dispatcher-leader\"} 0.5"),
            "{text}"
        );
        m.figures(&[fig("metrics-a")], &[]);
        m.forget_cluster(&key("metrics-a"));
        let text = m.encode();
        assert!(!text.contains("metrics-b"), "{text}");
        assert!(
            !text.contains("configmap=\"metrics-a-dispatcher-leader\""),
            "{text}"
        );
        assert!(text.contains("hakeeper_operator_leader_present{namespace=\"ns\",cluster=\"metrics-a\",component=\"dispatcher\"} 1"), "{text}");
    }
}
