//! Watching the HA ConfigMaps with `kube::runtime`: one watcher and reflector store per
//! watched namespace (or one cluster-wide), selecting `configmap-type=high-availability` plus
//! `--cluster-selector`. Each event marks its cluster (namespace, `app` label) dirty; the
//! engine reads a dirty cluster's ConfigMaps back from the store by name.
//!
//! Memory grows with the HA ConfigMaps only: the store keeps them (without `managedFields`),
//! the index their names.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher::watcher};
use kube::{Resource, ResourceExt};
use tokio::sync::{Notify, watch};

use super::track::ClusterKey;
use crate::layout::{CONFIGMAP_TYPE_HA, LABEL_APP, LABEL_CONFIGMAP_TYPE};

/// Which namespaces to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    All,
    Only(Vec<String>),
}

/// The label selector of the watches.
pub fn selector(extra: Option<&str>) -> String {
    let base = format!("{LABEL_CONFIGMAP_TYPE}={CONFIGMAP_TYPE_HA}");
    match extra.map(str::trim).filter(|e| !e.is_empty()) {
        Some(extra) => format!("{base},{extra}"),
        None => base,
    }
}

#[derive(Default)]
struct Index {
    /// Names of each cluster's ConfigMaps.
    clusters: BTreeMap<ClusterKey, BTreeSet<String>>,
    /// Per watcher: the names seen since its last `Init` (replaced at `InitDone`).
    relisting: BTreeMap<usize, BTreeMap<ClusterKey, BTreeSet<String>>>,
    dirty: BTreeSet<ClusterKey>,
}

/// The shared view of every watched HA ConfigMap.
pub struct Cache {
    stores: Vec<(Option<String>, Store<ConfigMap>)>,
    index: Mutex<Index>,
    /// Wakes the engine when a cluster turns dirty.
    pub changed: Notify,
    /// How many watchers have listed at least once.
    synced: watch::Sender<usize>,
    watchers: usize,
}

fn cluster_of(cm: &ConfigMap) -> Option<ClusterKey> {
    let app = cm.labels().get(LABEL_APP)?;
    Some(ClusterKey {
        namespace: cm.namespace()?,
        cluster: app.clone(),
    })
}

impl Cache {
    /// Whether every watcher has listed once (the operator's readiness).
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow() >= self.watchers
    }

    /// Wait until every watcher has listed once.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|n| *n >= self.watchers).await;
    }

    /// The clusters whose ConfigMaps changed since the last call.
    pub fn take_dirty(&self) -> BTreeSet<ClusterKey> {
        std::mem::take(&mut self.index.lock().expect("index lock").dirty)
    }

    /// Every cluster with at least one ConfigMap.
    pub fn clusters(&self) -> Vec<ClusterKey> {
        self.index
            .lock()
            .expect("index lock")
            .clusters
            .keys()
            .cloned()
            .collect()
    }

    pub fn configmap_count(&self) -> usize {
        self.stores.iter().map(|(_, s)| s.state().len()).sum()
    }

    /// The cluster's ConfigMaps as the cache has them (empty: the cluster is gone).
    pub fn configmaps(&self, key: &ClusterKey) -> Vec<Arc<ConfigMap>> {
        let names = self
            .index
            .lock()
            .expect("index lock")
            .clusters
            .get(key)
            .cloned()
            .unwrap_or_default();
        let Some(store) = self
            .stores
            .iter()
            .find(|(ns, _)| ns.as_deref().is_none_or(|ns| ns == key.namespace))
            .map(|(_, s)| s)
        else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|n| store.get(&ObjectRef::new(n).within(&key.namespace)))
            .collect()
    }

    /// The object reference an Event about `configmap` is recorded on.
    pub fn reference(
        &self,
        key: &ClusterKey,
        configmap: &str,
    ) -> Option<k8s_openapi::api::core::v1::ObjectReference> {
        self.configmaps(key)
            .into_iter()
            .find(|cm| cm.metadata.name.as_deref() == Some(configmap))
            .map(|cm| cm.object_ref(&()))
    }

    fn apply(&self, watcher: usize, event: &Event<ConfigMap>) {
        let mut index = self.index.lock().expect("index lock");
        let index = &mut *index;
        match event {
            Event::Apply(cm) => {
                if let (Some(key), Some(name)) = (cluster_of(cm), cm.metadata.name.clone()) {
                    // A ConfigMap whose `app` label changed is found under its new cluster;
                    // the old cluster's entry is dropped when the store no longer has it.
                    for (other, names) in index.clusters.iter_mut() {
                        if *other != key && other.namespace == key.namespace && names.remove(&name)
                        {
                            index.dirty.insert(other.clone());
                        }
                    }
                    index.clusters.retain(|_, names| !names.is_empty());
                    index.clusters.entry(key.clone()).or_default().insert(name);
                    index.dirty.insert(key);
                }
            }
            Event::Delete(cm) => {
                if let (Some(key), Some(name)) = (cluster_of(cm), cm.metadata.name.as_deref()) {
                    if let Some(names) = index.clusters.get_mut(&key) {
                        names.remove(name);
                        if names.is_empty() {
                            index.clusters.remove(&key);
                        }
                    }
                    index.dirty.insert(key);
                }
            }
            Event::Init => {
                index.relisting.insert(watcher, BTreeMap::new());
            }
            Event::InitApply(cm) => {
                if let (Some(key), Some(name)) = (cluster_of(cm), cm.metadata.name.clone()) {
                    index
                        .relisting
                        .entry(watcher)
                        .or_default()
                        .entry(key)
                        .or_default()
                        .insert(name);
                }
            }
            Event::InitDone => {
                let listed = index.relisting.remove(&watcher).unwrap_or_default();
                let scope = self.stores[watcher].0.clone();
                let mine = |k: &ClusterKey| scope.as_deref().is_none_or(|ns| ns == k.namespace);
                let old: Vec<ClusterKey> =
                    index.clusters.keys().filter(|k| mine(k)).cloned().collect();
                for k in old {
                    index.clusters.remove(&k);
                    index.dirty.insert(k);
                }
                for (k, names) in listed {
                    index.dirty.insert(k.clone());
                    index.clusters.insert(k, names);
                }
            }
        }
    }
}

/// Start the watches; the returned futures run them (the caller owns and joins them).
pub fn start(
    client: kube::Client,
    namespaces: &Namespaces,
    selector: &str,
) -> (Arc<Cache>, Vec<futures::future::BoxFuture<'static, ()>>) {
    let scopes: Vec<Option<String>> = match namespaces {
        Namespaces::All => vec![None],
        Namespaces::Only(list) => list.iter().cloned().map(Some).collect(),
    };
    let mut stores = Vec::new();
    let mut writers = Vec::new();
    for scope in &scopes {
        let (store, writer) = reflector::store::<ConfigMap>();
        stores.push((scope.clone(), store));
        writers.push(writer);
    }
    let (synced, _) = watch::channel(0usize);
    let cache = Arc::new(Cache {
        stores,
        index: Mutex::new(Index::default()),
        changed: Notify::new(),
        synced,
        watchers: scopes.len(),
    });
    let mut tasks = Vec::new();
    for (i, (scope, writer)) in scopes.into_iter().zip(writers).enumerate() {
        let api: Api<ConfigMap> = match &scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let config = watcher::Config::default().labels(selector);
        let cache = cache.clone();
        let what = scope.clone().unwrap_or_else(|| "all namespaces".into());
        tasks.push(Box::pin(async move {
            let stream = watcher(api, config)
                .default_backoff()
                .modify(|cm| {
                    cm.managed_fields_mut().clear();
                });
            let mut stream = std::pin::pin!(reflector::reflector(writer, stream));
            let mut failing: Option<String> = None;
            let mut listed = false;
            while let Some(item) = stream.next().await {
                match item {
                    Ok(event) => {
                        if let Some(e) = failing.take() {
                            tracing::info!(namespace = %what, previous = %e, "HA ConfigMap watch works again");
                        }
                        let done = matches!(event, Event::InitDone);
                        cache.apply(i, &event);
                        if done && !listed {
                            listed = true;
                            cache.synced.send_modify(|n| *n += 1);
                        }
                        cache.changed.notify_one();
                    }
                    Err(e) => {
                        let e = e.to_string();
                        if failing.as_deref() != Some(&e) {
                            tracing::warn!(namespace = %what, error = %e, "HA ConfigMap watch failed; retrying with backoff (logged again when the error changes)");
                            failing = Some(e);
                        }
                    }
                }
            }
        }) as futures::future::BoxFuture<'static, ()>);
    }
    (cache, tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selector_adds_the_cluster_selector() {
        assert_eq!(selector(None), "configmap-type=high-availability");
        assert_eq!(selector(Some("  ")), "configmap-type=high-availability");
        assert_eq!(
            selector(Some("team=rta")),
            "configmap-type=high-availability,team=rta"
        );
    }

    fn cm(ns: &str, name: &str, app: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "labels": {"app": app, "configmap-type": "high-availability"}}
        }))
        .unwrap()
    }

    #[test]
    fn the_index_follows_applies_deletes_and_relists() {
        let (store, _writer) = reflector::store::<ConfigMap>();
        let (synced, _) = watch::channel(0usize);
        let cache = Cache {
            stores: vec![(Some("a".into()), store)],
            index: Mutex::new(Index::default()),
            changed: Notify::new(),
            synced,
            watchers: 1,
        };
        let key = |c: &str| ClusterKey {
            namespace: "a".into(),
            cluster: c.into(),
        };
        cache.apply(0, &Event::Init);
        cache.apply(0, &Event::InitApply(cm("a", "x-dispatcher-leader", "x")));
        cache.apply(0, &Event::InitApply(cm("a", "y-dispatcher-leader", "y")));
        assert!(
            cache.clusters().is_empty(),
            "nothing until the listing is done"
        );
        cache.apply(0, &Event::InitDone);
        assert_eq!(cache.clusters(), vec![key("x"), key("y")]);
        assert_eq!(cache.take_dirty().len(), 2);
        cache.apply(0, &Event::Delete(cm("a", "x-dispatcher-leader", "x")));
        assert_eq!(cache.clusters(), vec![key("y")]);
        assert_eq!(cache.take_dirty(), BTreeSet::from([key("x")]));
        // A relist that no longer has y drops it and marks it dirty.
        cache.apply(0, &Event::Init);
        cache.apply(0, &Event::InitApply(cm("a", "z-restserver-leader", "z")));
        cache.apply(0, &Event::InitDone);
        assert_eq!(cache.clusters(), vec![key("z")]);
        assert_eq!(cache.take_dirty(), BTreeSet::from([key("y"), key("z")]));
        // Relabelled to another cluster: moves.
        cache.apply(0, &Event::Apply(cm("a", "z-restserver-leader", "w")));
        assert_eq!(cache.clusters(), vec![key("w")]);
        assert_eq!(cache.take_dirty(), BTreeSet::from([key("w"), key("z")]));
    }
}
