//! Collecting (I/O): the cluster's HA ConfigMaps, by label and by name.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;

use super::model::{
    EXECUTION_PLAN_KEY_PREFIX, LEADER_KEY_PREFIX, LeaderName, Role, classify,
    cluster_configmap_name, data_keys, job_configmap_name, job_in_key, leader_name,
};
use crate::layout::{
    CONFIGMAP_TYPE_HA, ClusterId, Component, JobId, LABEL_APP, LABEL_CONFIGMAP_TYPE,
};
use crate::stores::plan::{JOB_GRAPH_KEY_PREFIX, RUNNING_JOBS_KEY_PREFIX};

/// The label selector [`collect`] lists with: `app=<cluster-id>,configmap-type=high-availability`.
pub fn label_selector(cluster: &ClusterId) -> String {
    format!("{LABEL_APP}={cluster},{LABEL_CONFIGMAP_TYPE}={CONFIGMAP_TYPE_HA}")
}

/// Read the cluster's HA ConfigMaps in `namespace`: those with the HA labels, plus by name the
/// component and cluster ConfigMaps of both layouts and, for every job id found in those, the
/// job's ConfigMap of both layouts (a lock ConfigMap has no labels until its first leader write).
/// Sorted by name, each once.
pub async fn collect(
    client: kube::Client,
    namespace: &str,
    cluster: &ClusterId,
) -> Result<Vec<ConfigMap>, crate::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let mut found: BTreeMap<String, ConfigMap> = BTreeMap::new();
    let mut params = ListParams::default()
        .labels(&label_selector(cluster))
        .limit(250);
    loop {
        let page = api.list(&params).await?;
        for cm in page.items {
            if let Some(name) = cm.metadata.name.clone() {
                found.insert(name, cm);
            }
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    let fixed = [
        Component::Dispatcher.configmap_name(cluster),
        Component::ResourceManager.configmap_name(cluster),
        Component::RestServer.configmap_name(cluster),
        cluster_configmap_name(cluster),
    ];
    get_missing(&api, &mut found, fixed).await?;
    let configmaps: Vec<ConfigMap> = found.values().cloned().collect();
    let jobs = referenced_jobs(cluster, &configmaps);
    // Collected before the await: a lazy iterator with a closure held across it would make
    // the future not provably `Send`.
    let per_job: Vec<String> = jobs
        .iter()
        .flat_map(|job| {
            [
                Component::JobManager(job.clone()).configmap_name(cluster),
                job_configmap_name(cluster, job),
            ]
        })
        .collect();
    get_missing(&api, &mut found, per_job).await?;
    Ok(found.into_values().collect())
}

async fn get_missing(
    api: &Api<ConfigMap>,
    found: &mut BTreeMap<String, ConfigMap>,
    names: impl IntoIterator<Item = String>,
) -> Result<(), crate::Error> {
    for name in names {
        if found.contains_key(&name) {
            continue;
        }
        if let Some(cm) = api.get_opt(&name).await? {
            found.insert(name, cm);
        }
    }
    Ok(())
}

/// Every job id the ConfigMaps mention: in their names and in the keys of job graphs, the
/// running-jobs registry and the cluster ConfigMap's leader entries.
pub fn referenced_jobs(cluster: &ClusterId, configmaps: &[ConfigMap]) -> BTreeSet<JobId> {
    let mut jobs = BTreeSet::new();
    for cm in configmaps {
        let name = cm.metadata.name.as_deref().unwrap_or_default();
        match classify(cluster, name) {
            Role::Leader(Component::JobManager(job)) | Role::JobConfig(job) => {
                jobs.insert(job);
            }
            Role::Leader(Component::Dispatcher) => {
                for key in data_keys(cm) {
                    if let Some(job) =
                        job_in_key(key, &[JOB_GRAPH_KEY_PREFIX, RUNNING_JOBS_KEY_PREFIX])
                    {
                        jobs.insert(job);
                    }
                }
            }
            Role::ClusterConfig => {
                for key in data_keys(cm) {
                    if let Some(job) =
                        job_in_key(key, &[JOB_GRAPH_KEY_PREFIX, EXECUTION_PLAN_KEY_PREFIX])
                    {
                        jobs.insert(job);
                    }
                    if let Some(LeaderName::Job(job)) =
                        key.strip_prefix(LEADER_KEY_PREFIX).map(leader_name)
                    {
                        jobs.insert(job);
                    }
                }
            }
            Role::Leader(_) | Role::Other => {}
        }
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::fixtures::*;
    use serde_json::json;

    #[test]
    fn referenced_jobs_come_from_names_and_keys_of_both_layouts() {
        let mut cms = flink_112();
        cms.remove(3); // The job manager's ConfigMap: the dispatcher still names the job.
        cms.push(configmap(json!({
            "metadata": {"name": "my-flink-cluster-config-map"},
            "data": {format!("org.apache.flink.k8s.leader.job-{OTHER_JOB}"): "x"},
        })));
        let jobs: Vec<String> = referenced_jobs(&cluster(), &cms)
            .iter()
            .map(|j| j.to_string())
            .collect();
        assert_eq!(jobs, [JOB, OTHER_JOB]);
        assert_eq!(
            label_selector(&cluster()),
            "app=my-flink,configmap-type=high-availability"
        );
    }
}
