//! The operator's own memory, `hakeeper-operator-state` in its namespace: the last leader
//! alerted per component, open `LeaderLost` episodes, dangling handles already reported, and
//! the outbox (alerts decided but not yet through every channel). Only the leader writes it;
//! Flink's ConfigMaps are never written.
//!
//! Layout: one data key per cluster, `<namespace>.<cluster-id>` (both are DNS labels, so the
//! dot cannot be ambiguous), holding [`ClusterState`] as JSON, and the key `outbox` holding a
//! JSON array of alerts.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::alert::Alert;
use super::track::{ClusterKey, ClusterState};

pub const STATE_CONFIGMAP: &str = "hakeeper-operator-state";
const OUTBOX_KEY: &str = "outbox";
/// Alerts kept in the outbox at most; older ones are dropped (and counted) first.
pub const OUTBOX_LIMIT: usize = 500;

/// What the state ConfigMap holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Persisted {
    pub clusters: BTreeMap<ClusterKey, ClusterState>,
    pub outbox: Vec<Alert>,
}

pub fn data_key(key: &ClusterKey) -> String {
    format!("{}.{}", key.namespace, key.cluster)
}

fn parse_key(data_key: &str) -> Option<ClusterKey> {
    let (namespace, cluster) = data_key.split_once('.')?;
    (!namespace.is_empty() && !cluster.is_empty()).then(|| ClusterKey {
        namespace: namespace.to_string(),
        cluster: cluster.to_string(),
    })
}

/// Read the state; entries that do not parse are skipped and named in the second value (a
/// hand-edited or corrupt entry costs at most a repeated alert, never the operator).
pub fn decode(cm: &ConfigMap) -> (Persisted, Vec<String>) {
    let mut persisted = Persisted::default();
    let mut problems = Vec::new();
    for (k, v) in cm.data.iter().flatten() {
        if k == OUTBOX_KEY {
            match serde_json::from_str::<Vec<Alert>>(v) {
                Ok(outbox) => persisted.outbox = outbox,
                Err(e) => problems.push(format!("{OUTBOX_KEY}: {e}")),
            }
            continue;
        }
        let Some(key) = parse_key(k) else {
            problems.push(format!("{k}: not <namespace>.<cluster-id>"));
            continue;
        };
        match serde_json::from_str::<ClusterState>(v) {
            Ok(state) => {
                persisted.clusters.insert(key, state);
            }
            Err(e) => problems.push(format!("{k}: {e}")),
        }
    }
    (persisted, problems)
}

/// The merge patch that writes `changes` (`None` deletes the cluster's key) and, if given, the
/// whole outbox.
pub fn patch(changes: &[(ClusterKey, Option<ClusterState>)], outbox: Option<&[Alert]>) -> Value {
    let mut data = serde_json::Map::new();
    for (key, state) in changes {
        let value = match state {
            Some(s) => json!(serde_json::to_string(s).expect("state serializes")),
            None => Value::Null,
        };
        data.insert(data_key(key), value);
    }
    if let Some(outbox) = outbox {
        data.insert(
            OUTBOX_KEY.into(),
            json!(serde_json::to_string(outbox).expect("alerts serialize")),
        );
    }
    json!({ "data": data })
}

/// Load the state: `Ok(None)` when the ConfigMap does not exist (no operator ever ran here).
pub async fn load(api: &Api<ConfigMap>) -> Result<Option<Persisted>, kube::Error> {
    let Some(cm) = api.get_opt(STATE_CONFIGMAP).await? else {
        return Ok(None);
    };
    let (persisted, problems) = decode(&cm);
    for p in problems {
        tracing::warn!(configmap = STATE_CONFIGMAP, problem = %p, "skipping an unreadable operator state entry");
    }
    Ok(Some(persisted))
}

/// Write `changes` and the outbox; creates the ConfigMap the first time.
pub async fn save(
    api: &Api<ConfigMap>,
    changes: &[(ClusterKey, Option<ClusterState>)],
    outbox: Option<&[Alert]>,
) -> Result<(), kube::Error> {
    let body = patch(changes, outbox);
    match api
        .patch(
            STATE_CONFIGMAP,
            &PatchParams::default(),
            &Patch::Merge(&body),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let mut data = BTreeMap::new();
            for (k, v) in body["data"].as_object().into_iter().flatten() {
                if let Some(v) = v.as_str() {
                    data.insert(k.clone(), v.to_string());
                }
            }
            let cm = ConfigMap {
                metadata: kube::api::ObjectMeta {
                    name: Some(STATE_CONFIGMAP.into()),
                    labels: Some(BTreeMap::from([
                        ("app.kubernetes.io/name".into(), "hakeeper".into()),
                        ("app.kubernetes.io/component".into(), "operator".into()),
                    ])),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => Ok(()),
                // Created meanwhile (by ourselves, a moment ago): patch it.
                Err(kube::Error::Api(s)) if s.code == 409 => api
                    .patch(
                        STATE_CONFIGMAP,
                        &PatchParams::default(),
                        &Patch::Merge(&body),
                    )
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::alert::{Leader, Subject};

    fn key(ns: &str, c: &str) -> ClusterKey {
        ClusterKey {
            namespace: ns.into(),
            cluster: c.into(),
        }
    }

    #[test]
    fn what_is_written_reads_back_and_deletions_are_nulls() {
        let state = ClusterState {
            leaders: BTreeMap::from([(
                "dispatcher".to_string(),
                Leader {
                    address: "a".into(),
                    session_id: "s".into(),
                },
            )]),
            ..Default::default()
        };
        let alert = Alert::leader_changed(
            &Subject {
                namespace: "ns".into(),
                cluster: "rta".into(),
                configmap: "rta-dispatcher-leader".into(),
            },
            "dispatcher",
            None,
            Leader {
                address: "a".into(),
                session_id: "s".into(),
            },
            "t",
            false,
        );
        let body = patch(
            &[
                (key("ns", "rta"), Some(state.clone())),
                (key("ns", "old"), None),
            ],
            Some(std::slice::from_ref(&alert)),
        );
        assert!(body["data"]["ns.old"].is_null());
        let mut data = BTreeMap::new();
        for (k, v) in body["data"].as_object().unwrap() {
            if let Some(v) = v.as_str() {
                data.insert(k.clone(), v.to_string());
            }
        }
        data.insert("garbage".into(), "x".into());
        data.insert("ns.bad".into(), "{not json".into());
        let cm = ConfigMap {
            data: Some(data),
            ..Default::default()
        };
        let (read, problems) = decode(&cm);
        assert_eq!(read.clusters, BTreeMap::from([(key("ns", "rta"), state)]));
        assert_eq!(read.outbox, vec![alert]);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
