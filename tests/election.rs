//! Leader election and retrieval against the embedded API server (or a real cluster with
//! HAKEEPER_TEST_KUBECONFIG): in-process contenders, each with its own client.

mod common;

use std::time::{Duration, Instant};

use common::TestCluster;
use hakeeper::election::{
    ElectionConfig, Elector, FenceError, LeaderInfo, LeadershipState, ReleaseReason,
};
use hakeeper::layout::{ClusterId, Component};
use hakeeper::lease::{LEADER_ANNOTATION, LeaderRecord, Timings};
use hakeeper::retrieval::{LeaderChange, Retriever, follow_changes};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use tokio::sync::watch;

/// Short timings so that the tests run in seconds: lease 2 s, renew deadline 1.5 s, retry 0.4 s.
const TIMINGS: Timings = Timings {
    lease_duration: Duration::from_millis(2000),
    renew_deadline: Duration::from_millis(1500),
    retry_period: Duration::from_millis(400),
};

fn cluster_id() -> ClusterId {
    "flink-test".parse().unwrap()
}

async fn contender(c: &TestCluster, component: &Component, n: usize) -> Elector {
    let client = c.fresh_client().await;
    Elector::spawn(
        client,
        &c.namespace,
        ElectionConfig {
            cluster_id: cluster_id(),
            component: component.clone(),
            identity: format!("contender-{n}-{}", uuid::Uuid::new_v4()),
            address: format!("akka.tcp://flink@jm-{n}:6123/user/rpc/dispatcher"),
            timings: TIMINGS,
            owner: None,
        },
    )
}

async fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn leaders(electors: &[Option<Elector>]) -> Vec<(usize, LeadershipState)> {
    electors
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.as_ref().map(|e| (i, e.state().borrow().clone())))
        .filter(|(_, s)| s.is_leader)
        .collect()
}

async fn one_leader(electors: &[Option<Elector>], timeout: Duration) -> (usize, LeadershipState) {
    wait_for("exactly one leader", timeout, || {
        let l = leaders(electors);
        (l.len() == 1).then(|| l[0].clone())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_contenders_one_leader_with_flink_layout() {
    let c = TestCluster::start().await;
    let component = Component::Dispatcher;
    let mut electors = Vec::new();
    for n in 0..3 {
        electors.push(Some(contender(&c, &component, n).await));
    }
    let (i, state) = one_leader(&electors, Duration::from_secs(10)).await;
    // Stays exactly one for a few renew periods.
    for _ in 0..10 {
        tokio::time::sleep(TIMINGS.retry_period / 2).await;
        let l = leaders(&electors);
        assert_eq!(l.len(), 1, "exactly one leader at all times");
        assert_eq!(l[0].0, i);
    }
    let cm: ConfigMap = c
        .api::<ConfigMap>()
        .get("flink-test-dispatcher-leader")
        .await
        .unwrap();
    let labels = cm.metadata.labels.clone().unwrap();
    assert_eq!(labels["app"], "flink-test");
    assert_eq!(labels["configmap-type"], "high-availability");
    assert_eq!(labels["type"], "flink-native-kubernetes");
    assert!(
        cm.metadata.owner_references.is_none(),
        "no owner reference by default"
    );
    let raw = &cm.metadata.annotations.as_ref().unwrap()[LEADER_ANNOTATION];
    let record = LeaderRecord::parse(raw).unwrap();
    assert_eq!(
        record.to_annotation(),
        *raw,
        "the lock is in Flink's exact format"
    );
    assert_eq!(
        Some(record.holder_identity.as_str()),
        state.holder_identity.as_deref()
    );
    let data = cm.data.unwrap();
    assert_eq!(data["sessionId"], state.session_id.unwrap().to_string());
    assert!(data["address"].contains(&format!("jm-{i}")));
    for e in electors.into_iter().flatten() {
        e.release(ReleaseReason::Shutdown).await;
    }
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_release_hand_over() {
    let c = TestCluster::start().await;
    let component: Component = "jobmanager/00000000000000000000000000000001"
        .parse()
        .unwrap();
    let mut electors = Vec::new();
    for n in 0..3 {
        electors.push(Some(contender(&c, &component, n).await));
    }
    let (first, first_state) = one_leader(&electors, Duration::from_secs(10)).await;

    // Crash: no release; another leads within lease + 1 s.
    electors[first].take().unwrap().abort();
    let crashed_at = Instant::now();
    let (second, second_state) =
        one_leader(&electors, TIMINGS.lease_duration + Duration::from_secs(1)).await;
    eprintln!("takeover after crash: {:?}", crashed_at.elapsed());
    assert_ne!(second, first);
    assert_ne!(second_state.session_id, first_state.session_id);

    // Graceful release: the last one leads within 1 s.
    let released_at = Instant::now();
    electors[second]
        .take()
        .unwrap()
        .release(ReleaseReason::Shutdown)
        .await;
    let (third, _) = one_leader(&electors, Duration::from_secs(1)).await;
    eprintln!("takeover after release: {:?}", released_at.elapsed());
    assert!(third != first && third != second);

    let cm: ConfigMap = c
        .api::<ConfigMap>()
        .get(&component.configmap_name(&cluster_id()))
        .await
        .unwrap();
    let record = LeaderRecord::parse(&cm.metadata.annotations.unwrap()[LEADER_ANNOTATION]).unwrap();
    assert_eq!(
        record.leader_transitions, 2,
        "two changes of holder after the first grant"
    );
    for e in electors.into_iter().flatten() {
        e.release(ReleaseReason::Shutdown).await;
    }
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_deleted_under_the_leader() {
    let c = TestCluster::start().await;
    let component = Component::ResourceManager;
    let electors = vec![Some(contender(&c, &component, 0).await)];
    let (_, before) = one_leader(&electors, Duration::from_secs(10)).await;
    let mut state = electors[0].as_ref().unwrap().state();
    let name = component.configmap_name(&cluster_id());
    c.api::<ConfigMap>()
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    // Revoked at once: the old session ends (the watch channel may coalesce "not leader"
    // with the new grant that follows, so look at the session, not the flag).
    let fence = electors[0].as_ref().unwrap().fence().clone();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if state.borrow_and_update().session_id != before.session_id {
                break;
            }
            state.changed().await.unwrap();
        }
    })
    .await
    .expect("leadership revoked");
    let err = fence
        .update(before.session_id, |_| Ok(()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            FenceError::NotLeader { .. } | FenceError::StaleSession { .. }
        ),
        "the old session can no longer write: {err}"
    );
    // Then recreated and led again, with a new session.
    let (_, after) = one_leader(&electors, Duration::from_secs(5)).await;
    assert_ne!(after.session_id, before.session_id);
    let cm = c.api::<ConfigMap>().get(&name).await.unwrap();
    assert_eq!(
        cm.data.unwrap()["sessionId"],
        after.session_id.unwrap().to_string()
    );
    for e in electors.into_iter().flatten() {
        e.release(ReleaseReason::Shutdown).await;
    }
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_writes_fail_for_a_deposed_leader() {
    let c = TestCluster::start().await;
    let component = Component::RestServer;
    let electors = vec![Some(contender(&c, &component, 0).await)];
    let (_, state) = one_leader(&electors, Duration::from_secs(10)).await;
    let elector = electors[0].as_ref().unwrap();
    let fence = elector.fence().clone();
    let session = state.session_id.unwrap();

    fence
        .update(Some(session), |data| {
            data.insert("fenced".into(), "1".into());
            Ok(())
        })
        .await
        .unwrap();
    let err = fence
        .update(Some(uuid::Uuid::new_v4()), |_| Ok(()))
        .await
        .unwrap_err();
    assert!(matches!(err, FenceError::StaleSession { .. }), "{err}");

    // Someone else takes the lock behind our back (a compare-and-swap of their own).
    let name = component.configmap_name(&cluster_id());
    let api = c.api::<ConfigMap>();
    let cm = api.get(&name).await.unwrap();
    let mut stolen =
        LeaderRecord::parse(&cm.metadata.annotations.as_ref().unwrap()[LEADER_ANNOTATION]).unwrap();
    stolen.holder_identity = "intruder".into();
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"resourceVersion": cm.metadata.resource_version, "annotations": {LEADER_ANNOTATION: stolen.to_annotation()}}})),
    )
    .await
    .unwrap();
    let err = fence
        .update(Some(session), |data| {
            data.insert("fenced".into(), "2".into());
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, FenceError::NotLeader { .. }), "{err}");
    let data = api.get(&name).await.unwrap().data.unwrap();
    assert_eq!(data["fenced"], "1", "the deposed leader wrote nothing");
    wait_for("step-down", Duration::from_secs(3), || {
        (!elector.state().borrow().is_leader).then_some(())
    })
    .await;
    for e in electors.into_iter().flatten() {
        e.abort();
    }
    c.cleanup().await;
}

/// Two retrievers (not contenders) see the same leader changes in the same order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrievers_agree_on_changes() {
    let c = TestCluster::start().await;
    let component = Component::Dispatcher;
    let name = component.configmap_name(&cluster_id());
    let mut logs = Vec::new();
    let mut followers = Vec::new();
    for _ in 0..2 {
        let retriever = Retriever::spawn(c.fresh_client().await, &c.namespace, &name);
        let (tx, rx) = watch::channel(Vec::<LeaderChange>::new());
        let state = retriever.state();
        let task = tokio::spawn(async move {
            follow_changes(
                "dispatcher",
                state,
                |s| s.leader.clone(),
                |change| {
                    tx.send_modify(|v| v.push(change.clone()));
                },
            )
            .await
        });
        logs.push(rx);
        followers.push((retriever, task));
    }
    let mut electors = Vec::new();
    for n in 0..3 {
        electors.push(Some(contender(&c, &component, n).await));
    }
    let mut expected: Vec<LeaderInfo> = Vec::new();
    for round in 0..2 {
        let (i, s) = one_leader(&electors, Duration::from_secs(10)).await;
        expected.push(s.leader.clone().unwrap());
        let e = electors[i].take().unwrap();
        if round == 0 {
            e.abort()
        } else {
            e.release(ReleaseReason::Shutdown).await
        }
    }
    let (_, s) = one_leader(&electors, Duration::from_secs(10)).await;
    expected.push(s.leader.unwrap());
    for log in &logs {
        wait_for("three changes seen", Duration::from_secs(5), || {
            (log.borrow().len() >= 3).then_some(())
        })
        .await;
    }
    for log in &logs {
        let seen: Vec<LeaderInfo> = log.borrow().iter().map(|c| c.new.clone()).collect();
        assert_eq!(
            seen, expected,
            "every retriever sees each leader once, in order"
        );
        assert_eq!(log.borrow()[1].old.as_ref(), Some(&expected[0]));
    }
    for e in electors.into_iter().flatten() {
        e.release(ReleaseReason::Shutdown).await;
    }
    for (r, t) in followers {
        drop(r);
        let _ = t.await;
    }
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_reference_only_when_asked() {
    let c = TestCluster::start().await;
    let component = Component::Dispatcher;
    // A real owner (a ConfigMap, which every server serves): on a real cluster the garbage
    // collector deletes dependents of owners that do not exist.
    let owner_cm = c
        .api::<ConfigMap>()
        .create(
            &Default::default(),
            &common::configmap(json!({"metadata": {"name": "the-owner"}})),
        )
        .await
        .unwrap();
    let spec: hakeeper::owner::OwnerSpec = "ConfigMap/the-owner".parse().unwrap();
    let owner = hakeeper::owner::resolve(&c.client, &c.namespace, &spec)
        .await
        .expect("the owner resolves");
    assert_eq!(Some(&owner.uid), owner_cm.metadata.uid.as_ref());
    assert_eq!(owner.api_version, "v1");
    let elector = Elector::spawn(
        c.fresh_client().await,
        &c.namespace,
        ElectionConfig {
            cluster_id: "owned".parse().unwrap(),
            component: component.clone(),
            identity: "owner-test".into(),
            address: "jm:1".into(),
            timings: TIMINGS,
            owner: Some(owner.clone()),
        },
    );
    let electors = vec![Some(elector)];
    one_leader(&electors, Duration::from_secs(10)).await;
    let cm = c
        .api::<ConfigMap>()
        .get("owned-dispatcher-leader")
        .await
        .unwrap();
    let owners = cm.metadata.owner_references.unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (
            owners[0].api_version.as_str(),
            owners[0].kind.as_str(),
            owners[0].name.as_str(),
            owners[0].uid.as_str()
        ),
        ("v1", "ConfigMap", "the-owner", owner.uid.as_str())
    );
    // The leader keeps its lock: the garbage collector (on a real cluster) leaves the
    // dependents of a live owner alone.
    tokio::time::sleep(TIMINGS.lease_duration).await;
    assert!(electors[0].as_ref().unwrap().state().borrow().is_leader);
    // A missing owner, or a recreated one (another uid), is refused before anything exists.
    for (bad, says) in [
        (
            "ConfigMap/no-such-owner",
            "no ConfigMap \"no-such-owner\" exists",
        ),
        (
            "v1/ConfigMap/the-owner/0d6c7a52-2f5e-4f7e-9b8e-1b5f4f3c2a10",
            "has uid",
        ),
        ("NoSuchKind/x", "serves no kind NoSuchKind"),
    ] {
        let spec: hakeeper::owner::OwnerSpec = bad.parse().unwrap();
        let e = hakeeper::owner::resolve(&c.client, &c.namespace, &spec)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
    for e in electors.into_iter().flatten() {
        e.release(ReleaseReason::Shutdown).await;
    }
    c.cleanup().await;
}

/// The dangerous interleaving, made deterministic: the leader checks its grant and sends a
/// write, then stalls for longer than the lease (its requests are held); another contender
/// takes over and writes; then the stalled write reaches the API server. It must not land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_held_past_the_lease_does_not_land() {
    let c = TestCluster::start().await;
    let Some(server) = c.embedded("holding a client's requests") else {
        return c.cleanup().await;
    };
    let component = Component::Dispatcher;
    let config = |n: usize| ElectionConfig {
        cluster_id: cluster_id(),
        component: component.clone(),
        identity: format!("held-{n}"),
        address: format!("jm-{n}"),
        timings: TIMINGS,
        owner: None,
    };
    let (gate, closed) = watch::channel(false);
    let a = Elector::spawn(
        common::gated_client(server, closed).await,
        &c.namespace,
        config(0),
    );
    let electors = vec![Some(a)];
    let (_, a_state) = one_leader(&electors, Duration::from_secs(10)).await;
    let b = Elector::spawn(c.fresh_client().await, &c.namespace, config(1));

    // A sends a write and stalls before it reaches the server.
    gate.send(true).unwrap();
    let a_fence = electors[0].as_ref().unwrap().fence().clone();
    let session = a_state.session_id;
    let held = tokio::spawn(async move {
        a_fence
            .update(session, |data| {
                data.insert("owner".into(), "a".into());
                Ok(())
            })
            .await
    });
    // B takes over once A's lease has run out, and writes.
    let b_state = wait_for("b leads", TIMINGS.lease_duration * 3, || {
        let s = b.state().borrow().clone();
        s.is_leader.then_some(s)
    })
    .await;
    b.fence()
        .update(b_state.session_id, |data| {
            data.insert("owner".into(), "b".into());
            Ok(())
        })
        .await
        .unwrap();
    // A wakes up; its held write now reaches the server.
    gate.send(false).unwrap();
    let result = held.await.unwrap();
    assert!(result.is_err(), "A's write was refused: {result:?}");
    // Give the held request time to arrive even if A's caller gave up on it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cm = c
        .api::<ConfigMap>()
        .get(&component.configmap_name(&cluster_id()))
        .await
        .unwrap();
    assert_eq!(
        cm.data.unwrap()["owner"],
        "b",
        "the stalled leader's write did not land"
    );
    let record = LeaderRecord::parse(&cm.metadata.annotations.unwrap()[LEADER_ANNOTATION]).unwrap();
    assert_eq!(record.holder_identity, "held-1");
    b.release(ReleaseReason::Shutdown).await;
    for e in electors.into_iter().flatten() {
        e.abort();
    }
    c.cleanup().await;
}

/// A contender started from what a follower in the same process observed takes over when the
/// crashed holder's lease really runs out: not earlier (safety), and not a whole lease after
/// it started contending (as a contender starting from nothing must wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contender_started_from_a_followers_observation_does_not_wait_a_fresh_lease() {
    let c = TestCluster::start().await;
    let component = Component::Dispatcher;
    let a = contender(&c, &component, 0).await;
    let mut a_state = a.state();
    wait_for("the first leader", Duration::from_secs(10), || {
        a_state.borrow_and_update().is_leader.then_some(())
    })
    .await;
    let follower = Retriever::spawn(
        c.fresh_client().await,
        &c.namespace,
        &component.configmap_name(&cluster_id()),
    );
    let follower_state = follower.state();
    wait_for(
        "the follower to see the leader",
        Duration::from_secs(10),
        || follower_state.borrow().leader.is_some().then_some(()),
    )
    .await;
    // The leader crashes; the follower's process starts contending 1.5 s later.
    a.abort();
    let crashed = Instant::now();
    tokio::time::sleep(TIMINGS.lease_duration * 3 / 4).await;
    let b = Elector::spawn_from(
        c.fresh_client().await,
        &c.namespace,
        ElectionConfig {
            cluster_id: cluster_id(),
            component: component.clone(),
            identity: "contender-b".into(),
            address: "akka.tcp://flink@jm-b:6123/user/rpc/dispatcher".into(),
            timings: TIMINGS,
            owner: None,
        },
        follower.observation(),
    );
    let mut b_state = b.state();
    wait_for("the takeover", Duration::from_secs(10), || {
        b_state.borrow_and_update().is_leader.then_some(())
    })
    .await;
    let after = crashed.elapsed();
    // The last renewal was at most one retry period before the crash.
    let earliest = TIMINGS.lease_duration - TIMINGS.retry_period - Duration::from_millis(100);
    // From nothing, b would wait a full lease from when it started: 1.5 s + 2 s after the crash.
    let latest = TIMINGS.lease_duration + Duration::from_millis(500);
    assert!(
        after >= earliest && after <= latest,
        "took over {after:?} after the crash; expected between {earliest:?} and {latest:?}"
    );
    b.abort();
    c.cleanup().await;
}

/// Every transition is a `LeaderElection` Event on the lock ConfigMap, as client-go's elector
/// records them, so `kubectl describe cm` tells the story of a failover: who became leader,
/// who stopped, and why.
#[tokio::test]
async fn leader_elections_are_events_on_the_lock() {
    let c = TestCluster::start().await;
    let component = Component::Dispatcher;
    let configmap = component.configmap_name(&cluster_id());
    let first = contender(&c, &component, 0).await;
    common::wait_leader(&first).await;
    let first_id = first
        .state()
        .borrow()
        .holder_identity
        .clone()
        .expect("holder");
    let second = contender(&c, &component, 1).await;
    first.release(ReleaseReason::ApiDelete).await;
    common::wait_leader(&second).await;
    let second_id = second
        .state()
        .borrow()
        .holder_identity
        .clone()
        .expect("holder");
    let expected = [
        format!("{first_id} became leader"),
        format!("{first_id} stopped leading: released (api_delete)"),
        format!("{second_id} became leader"),
    ];
    let events: kube::Api<k8s_openapi::api::events::v1::Event> = c.api();
    let notes = wait_for_async("the three Events", Duration::from_secs(10), || async {
        let list = events.list(&Default::default()).await.ok()?;
        let notes: Vec<String> = list
            .items
            .iter()
            .filter(|e| {
                e.reason.as_deref() == Some("LeaderElection")
                    && e.type_.as_deref() == Some("Normal")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                        == Some(configmap.as_str())
                    && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("ConfigMap")
            })
            .filter_map(|e| e.note.clone())
            .collect();
        expected.iter().all(|x| notes.contains(x)).then_some(notes)
    })
    .await;
    // One per transition, not one per renewal.
    assert_eq!(notes.len(), 3, "{notes:?}");
    // What a person sees.
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args(["-n", &c.namespace, "describe", "configmap", &configmap])
        .output()
        .await
        .expect("kubectl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("LeaderElection"), "{text}");
    assert!(
        text.contains(&format!("{second_id} became leader")),
        "{text}"
    );
    second.release(ReleaseReason::Shutdown).await;
    c.cleanup().await;
}

async fn wait_for_async<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
