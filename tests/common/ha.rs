//! HA state written through the library, as a JobManager leading through hakeeper writes it.

use std::time::Duration;

use bytes::Bytes;
use hakeeper::election::{ElectionConfig, Elector};
use hakeeper::handle::StateHandle;
use hakeeper::layout::{ClusterId, Component, JobId};
use hakeeper::lease::Timings;
use hakeeper::stores::plan::JobStatus;
use hakeeper::stores::{Checkpoints, ConfigMapReader, JobGraphs, Payloads};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use super::TestCluster;

/// Long enough that no renewal happens during a test: a lease stays held until released.
pub const STEADY: Timings = Timings {
    lease_duration: Duration::from_secs(60),
    renew_deadline: Duration::from_secs(40),
    retry_period: Duration::from_secs(20),
};

/// Lead `component` of `cluster` through the library, as `identity` (publishing the address
/// `<identity>:6123`) with `timings`: the elector, and its session once it leads.
pub async fn lead(
    c: &TestCluster,
    cluster: &ClusterId,
    component: Component,
    identity: &str,
    timings: Timings,
) -> (Elector, uuid::Uuid) {
    let elector = Elector::spawn(
        c.fresh_client().await,
        &c.namespace,
        ElectionConfig {
            cluster_id: cluster.clone(),
            component,
            identity: identity.into(),
            address: format!("{identity}:6123"),
            timings,
            owner: None,
        },
    );
    let session = super::wait_leader(&elector).await;
    (elector, session)
}

/// A running job: a 4,096-byte job graph, the job marked RUNNING, and three checkpoints of
/// 100, 200 and 300 bytes of which the newest two are retained. `dispatcher` and `jobmanager`
/// are the leaders (elector and session) of the dispatcher and of the job. Returns the newest
/// checkpoint's handle.
pub async fn write_running_job(
    api: Api<ConfigMap>,
    payloads: &Payloads,
    cluster: &ClusterId,
    job: &JobId,
    dispatcher: (&Elector, uuid::Uuid),
    jobmanager: (&Elector, uuid::Uuid),
) -> StateHandle {
    let graphs = JobGraphs::new(
        ConfigMapReader::new(api.clone(), Component::Dispatcher.configmap_name(cluster)),
        payloads.clone(),
    );
    let (leader, session) = dispatcher;
    graphs
        .put(
            leader.fence(),
            Some(session),
            job,
            Bytes::from(vec![7u8; 4096]),
        )
        .await
        .unwrap();
    graphs
        .set_status(leader.fence(), Some(session), job, JobStatus::Running)
        .await
        .unwrap();
    let checkpoints = Checkpoints::new(
        ConfigMapReader::new(
            api,
            Component::JobManager(job.clone()).configmap_name(cluster),
        ),
        payloads.clone(),
        2,
    );
    let (leader, session) = jobmanager;
    let mut newest = None;
    for size in [100, 200, 300] {
        let id = checkpoints
            .increment(leader.fence(), Some(session))
            .await
            .unwrap();
        let added = checkpoints
            .add(
                leader.fence(),
                Some(session),
                id,
                Bytes::from(vec![1u8; size]),
            )
            .await
            .unwrap();
        newest = Some(added.handle);
    }
    newest.expect("three checkpoints were added")
}
