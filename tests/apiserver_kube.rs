//! The embedded API server as kube-rs sees it: the calls hakeeper itself makes.
//! Runs against the embedded server, or a real cluster with HAKEEPER_TEST_KUBECONFIG
//! (fault injection, compaction and server restarts are skipped there).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TestCluster, configmap};
use futures::{StreamExt, TryStreamExt};
use hakeeper::apiserver::{DevServer, DevServerConfig};
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, WatchEvent,
    WatchParams,
};
use kube::runtime::watcher;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn api_status(err: &kube::Error) -> &kube::core::Status {
    match err {
        kube::Error::Api(status) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn rv(cm: &ConfigMap) -> u64 {
    cm.metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn create_get_list_replace_patch_delete() {
    let c = TestCluster::start().await;
    let api = c.api::<ConfigMap>();
    let pp = PostParams::default();

    let created = api
        .create(
            &pp,
            &configmap(
                json!({"metadata": {"name": "a", "labels": {"app": "x"}}, "data": {"k": "v"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        created.metadata.namespace.as_deref(),
        Some(c.namespace.as_str())
    );
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    api.create(
        &pp,
        &configmap(json!({"metadata": {"name": "b", "labels": {"app": "y"}}})),
    )
    .await
    .unwrap();

    let err = api
        .create(&pp, &configmap(json!({"metadata": {"name": "a"}})))
        .await
        .unwrap_err();
    assert_eq!(api_status(&err).reason, "AlreadyExists");
    assert_eq!(api_status(&err).code, 409);

    let got = api.get("a").await.unwrap();
    assert_eq!(got.data.unwrap()["k"], "v");

    let selected = api
        .list(&ListParams::default().labels("app=x"))
        .await
        .unwrap();
    assert_eq!(selected.items.len(), 1);
    assert_eq!(selected.items[0].metadata.name.as_deref(), Some("a"));
    for (selector, expected) in [
        ("app in (x,y)", 2),
        ("app notin (x)", 1),
        ("app!=x", 1),
        ("app", 2),
        ("!app", 0),
    ] {
        let n = api
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap()
            .items
            .len();
        assert_eq!(n, expected, "labelSelector {selector}");
    }
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);

    // Replace with the current version succeeds and moves the version on.
    let mut current = api.get("a").await.unwrap();
    current.data = Some(BTreeMap::from([("k".to_string(), "w".to_string())]));
    let replaced = api.replace("a", &pp, &current).await.unwrap();
    assert!(rv(&replaced) > rv(&created));
    assert_eq!(replaced.metadata.uid, created.metadata.uid);

    // Replace with a stale version is a conflict.
    let mut stale = created.clone();
    stale.data = Some(BTreeMap::from([("k".to_string(), "stale".to_string())]));
    let err = api.replace("a", &pp, &stale).await.unwrap_err();
    let status = api_status(&err);
    assert!(status.is_conflict());
    assert_eq!(
        status.message,
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // Merge and strategic merge patches.
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"m": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.as_ref().unwrap().len(), 2);
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"data": {"m": null}, "metadata": {"annotations": {"x": "y"}}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.as_ref().unwrap().len(), 1);
    assert_eq!(patched.metadata.annotations.unwrap()["x"], "y");
    // A resourceVersion in the patch is a precondition.
    let err = api
        .patch("a", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"resourceVersion": created.metadata.resource_version}, "data": {"z": "1"}})))
        .await
        .unwrap_err();
    assert!(api_status(&err).is_conflict());

    // Delete with preconditions.
    let wrong = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: created.metadata.resource_version.clone(),
            uid: None,
        }),
        ..Default::default()
    };
    let err = api.delete("a", &wrong).await.unwrap_err();
    assert_eq!(api_status(&err).code, 409);
    let right = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: None,
            uid: created.metadata.uid.clone(),
        }),
        ..Default::default()
    };
    api.delete("a", &right).await.unwrap();
    let err = api.get("a").await.unwrap_err();
    assert!(api_status(&err).is_not_found());
    assert_eq!(api_status(&err).message, "configmaps \"a\" not found");
    c.cleanup().await;
}

#[tokio::test]
async fn delete_collection_by_label() {
    let c = TestCluster::start().await;
    let api = c.api::<ConfigMap>();
    for (name, app) in [("a", "x"), ("b", "x"), ("c", "y")] {
        api.create(
            &PostParams::default(),
            &configmap(json!({"metadata": {"name": name, "labels": {"app": app}}})),
        )
        .await
        .unwrap();
    }
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=x"),
    )
    .await
    .unwrap();
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["c"]);
    c.cleanup().await;
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let c = TestCluster::start().await;
    let api = c.api::<ConfigMap>();
    for i in 0..7 {
        api.create(
            &PostParams::default(),
            &configmap(json!({"metadata": {"name": format!("p{i}")}})),
        )
        .await
        .unwrap();
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().limit(3);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        names.extend(page.items.into_iter().map(|c| c.metadata.name.unwrap()));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["p0", "p1", "p2", "p3", "p4", "p5", "p6"]);
    c.cleanup().await;
}

#[tokio::test]
async fn validation_is_worded_like_kube_apiserver() {
    let c = TestCluster::start().await;
    let api = c.api::<ConfigMap>();
    let pp = PostParams::default();

    let err = api
        .create(&pp, &configmap(json!({"metadata": {"name": "Bad_Name"}})))
        .await
        .unwrap_err();
    let status = api_status(&err);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(status.message.starts_with("ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{}", status.message);

    let err = api
        .create(
            &pp,
            &configmap(json!({"metadata": {"name": "k"}, "data": {"bad key": "v"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_status(&err).code, 422);
    assert!(api_status(&err).message.contains("data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters"), "{}", api_status(&err).message);

    // Exactly at the limit is accepted; one byte more is refused.
    let at_limit = "x".repeat(1_048_576);
    api.create(
        &pp,
        &configmap(json!({"metadata": {"name": "full"}, "data": {"v": at_limit}})),
    )
    .await
    .unwrap();
    let over = "x".repeat(1_048_577);
    let err = api
        .create(
            &pp,
            &configmap(json!({"metadata": {"name": "big"}, "data": {"v": over}})),
        )
        .await
        .unwrap_err();
    let status = api_status(&err);
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(
        status
            .message
            .starts_with("ConfigMap \"big\" is invalid: []: Too long: "),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("1048576 bytes"),
        "{}",
        status.message
    );
    c.cleanup().await;
}

#[tokio::test]
async fn unknown_resources_and_patch_types() {
    let c = TestCluster::start().await;
    let api = c.api::<ConfigMap>();
    api.create(
        &PostParams::default(),
        &configmap(json!({"metadata": {"name": "a"}})),
    )
    .await
    .unwrap();
    let apply = api
        .patch(
            "a",
            &PatchParams::apply("hakeeper-test"),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
            ),
        )
        .await;
    if c.server.is_some() {
        // The embedded server implements merge patches only.
        assert_eq!(api_status(&apply.unwrap_err()).code, 415);
        let req = http::Request::get(format!("/api/v1/namespaces/{}/widgets", c.namespace))
            .body(Vec::new())
            .unwrap();
        let err = c.client.request_text(req).await.unwrap_err();
        let status = api_status(&err);
        assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    }
    c.cleanup().await;
}

async fn next_event(
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin),
) -> WatchEvent<ConfigMap> {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a watch event in time")
        .expect("the watch stream ended")
        .expect("a watch event")
}

#[tokio::test]
async fn watch_sees_added_modified_deleted_from_a_version() {
    let c = TestCluster::start().await;
    let api = c.api::<ConfigMap>();
    let list = api.list(&ListParams::default()).await.unwrap();
    let from = list.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();

    api.create(
        &PostParams::default(),
        &configmap(json!({"metadata": {"name": "w"}, "data": {"a": "1"}})),
    )
    .await
    .unwrap();
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"a": "2"}})),
    )
    .await
    .unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();

    match next_event(&mut stream).await {
        WatchEvent::Added(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("w")),
        other => panic!("expected ADDED, got {other:?}"),
    }
    match next_event(&mut stream).await {
        WatchEvent::Modified(cm) => assert_eq!(cm.data.unwrap()["a"], "2"),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    match next_event(&mut stream).await {
        WatchEvent::Deleted(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("w")),
        other => panic!("expected DELETED, got {other:?}"),
    }
    c.cleanup().await;
}

#[tokio::test]
async fn watch_with_label_selector_sees_objects_enter_and_leave() {
    let c = TestCluster::start().await;
    let api = c.api::<ConfigMap>();
    api.create(
        &PostParams::default(),
        &configmap(json!({"metadata": {"name": "s", "labels": {"app": "no"}}})),
    )
    .await
    .unwrap();
    let from = c.current_version().await;
    let mut stream = api
        .watch(&WatchParams::default().labels("app=yes"), &from)
        .await
        .unwrap()
        .boxed();
    api.patch(
        "s",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "yes"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "s",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "no"}}})),
    )
    .await
    .unwrap();
    assert!(matches!(
        next_event(&mut stream).await,
        WatchEvent::Added(_)
    ));
    assert!(matches!(
        next_event(&mut stream).await,
        WatchEvent::Deleted(_)
    ));
    c.cleanup().await;
}

#[tokio::test]
async fn watch_bookmarks_when_asked() {
    let config = DevServerConfig {
        bookmark_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let c = TestCluster::start_with(config).await;
    if c.embedded("a short bookmark interval").is_none() {
        return c.cleanup().await;
    }
    let api = c.api::<ConfigMap>();
    let from = c.current_version().await;
    let mut stream = api
        .watch(&WatchParams::default(), &from)
        .await
        .unwrap()
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Bookmark(b) => assert!(!b.metadata.resource_version.is_empty()),
        other => panic!("expected BOOKMARK, got {other:?}"),
    }
    c.cleanup().await;
}

#[tokio::test]
async fn watch_from_a_compacted_version_gets_410_expired() {
    let c = TestCluster::start().await;
    let Some(server) = c.embedded("compaction") else {
        return c.cleanup().await;
    };
    let api = c.api::<ConfigMap>();
    let old = api
        .create(
            &PostParams::default(),
            &configmap(json!({"metadata": {"name": "x"}})),
        )
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &configmap(json!({"metadata": {"name": "y"}})),
    )
    .await
    .unwrap();
    server.compact();
    let mut stream = api
        .watch(
            &WatchParams::default(),
            old.metadata.resource_version.as_deref().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(
                status.message.starts_with("too old resource version"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    c.cleanup().await;
}

/// The kube-rs watcher, after its watch is cut and its version compacted away, gets 410
/// and recovers by relisting; it then sees what changed while it was away.
#[tokio::test]
async fn kube_watcher_recovers_from_410_by_relisting() {
    let c = TestCluster::start().await;
    let Some(server) = c.embedded("compaction and closing watches") else {
        return c.cleanup().await;
    };
    let api = c.api::<ConfigMap>();
    api.create(
        &PostParams::default(),
        &configmap(json!({"metadata": {"name": "before"}})),
    )
    .await
    .unwrap();
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut inits = 0;
    let mut seen = Vec::new();
    // First listing.
    loop {
        match next(&mut events).await {
            watcher::Event::Init => inits += 1,
            watcher::Event::InitApply(cm) => seen.push(cm.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        (inits, seen.as_slice()),
        (1, ["before".to_string()].as_slice())
    );

    // Changes elsewhere move the cluster's version on; then the history goes and the
    // watch is cut, so the watcher's next watch starts from a compacted version.
    let other_ns =
        kube::Api::<ConfigMap>::namespaced(c.client.clone(), &format!("{}-other", c.namespace));
    other_ns
        .create(
            &PostParams::default(),
            &configmap(json!({"metadata": {"name": "elsewhere"}})),
        )
        .await
        .unwrap();
    api.create(
        &PostParams::default(),
        &configmap(json!({"metadata": {"name": "during"}})),
    )
    .await
    .unwrap();
    // Wait until the live watch has delivered "during", so its last version is known.
    loop {
        if let watcher::Event::Apply(cm) = next(&mut events).await
            && cm.metadata.name.as_deref() == Some("during")
        {
            break;
        }
    }
    other_ns
        .create(
            &PostParams::default(),
            &configmap(json!({"metadata": {"name": "elsewhere2"}})),
        )
        .await
        .unwrap();
    server.compact();
    let before = server.request_counts();
    server.faults().close_watches();

    // The watcher reports the 410 as an error item, then relists.
    let err = tokio::time::timeout(WAIT, events.try_next())
        .await
        .expect("an item in time")
        .unwrap_err();
    match &err {
        watcher::Error::WatchError(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected the 410 watch error, got {other:?}"),
    }
    let mut relisted = Vec::new();
    loop {
        match next(&mut events).await {
            watcher::Event::Init => inits += 1,
            watcher::Event::InitApply(cm) => relisted.push(cm.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(inits, 2, "the watcher relisted once");
    relisted.sort();
    assert_eq!(relisted, ["before", "during"]);
    let after = server.request_counts().since(&before);
    assert!(after.get("list", "configmaps") >= 1, "relisted: {after:?}");
    assert!(
        after.get("watch", "configmaps") >= 1,
        "re-watched: {after:?}"
    );
    c.cleanup().await;
}

async fn next(
    events: &mut futures::stream::BoxStream<
        'static,
        Result<watcher::Event<ConfigMap>, watcher::Error>,
    >,
) -> watcher::Event<ConfigMap> {
    tokio::time::timeout(WAIT, events.try_next())
        .await
        .expect("watcher event in time")
        .expect("watcher error")
        .expect("stream ended")
}

#[tokio::test]
async fn events_in_both_api_groups() {
    let c = TestCluster::start().await;
    let api = c.api::<ConfigMap>();
    let cm = api
        .create(
            &PostParams::default(),
            &configmap(json!({"metadata": {"name": "subject"}})),
        )
        .await
        .unwrap();
    let events = c.api::<Event>();
    let ev: Event = serde_json::from_value(json!({
        "metadata": {"name": "subject.1"},
        "involvedObject": {"kind": "ConfigMap", "name": "subject", "namespace": c.namespace, "uid": cm.metadata.uid, "apiVersion": "v1"},
        "reason": "LeaderElected", "message": "a leads", "type": "Normal",
        "source": {"component": "hakeeper"}, "count": 1,
    }))
    .unwrap();
    events.create(&PostParams::default(), &ev).await.unwrap();
    let selector = format!(
        "involvedObject.kind=ConfigMap,involvedObject.name=subject,involvedObject.uid={}",
        cm.metadata.uid.unwrap()
    );
    let found = events
        .list(&ListParams::default().fields(&selector))
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].reason.as_deref(), Some("LeaderElected"));
    let none = events
        .list(&ListParams::default().fields("involvedObject.name=other"))
        .await
        .unwrap();
    assert!(none.items.is_empty());

    let v1 = kube::Api::<k8s_openapi::api::events::v1::Event>::namespaced(
        c.client.clone(),
        &c.namespace,
    );
    let listed = v1
        .list(&ListParams::default().fields("regarding.name=subject"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].note.as_deref(), Some("a leads"));
    assert_eq!(
        listed.items[0].regarding.as_ref().unwrap().name.as_deref(),
        Some("subject")
    );
    c.cleanup().await;
}

#[tokio::test]
async fn request_counters_count_by_verb_and_resource() {
    let c = TestCluster::start().await;
    let Some(server) = c.embedded("request counters") else {
        return c.cleanup().await;
    };
    let api = c.api::<ConfigMap>();
    let before = server.request_counts();
    api.create(
        &PostParams::default(),
        &configmap(json!({"metadata": {"name": "n"}})),
    )
    .await
    .unwrap();
    for _ in 0..3 {
        api.get("n").await.unwrap();
    }
    api.list(&ListParams::default()).await.unwrap();
    let d = server.request_counts().since(&before);
    assert_eq!(d.get("create", "configmaps"), 1);
    assert_eq!(d.get("get", "configmaps"), 3);
    assert_eq!(d.get("list", "configmaps"), 1);
    assert_eq!(d.total(), 5);
    c.cleanup().await;
}

#[tokio::test]
async fn injected_errors_latency_and_partition() {
    let c = TestCluster::start().await;
    let Some(server) = c.embedded("fault injection") else {
        return c.cleanup().await;
    };
    let api = c.api::<ConfigMap>();
    api.create(
        &PostParams::default(),
        &configmap(json!({"metadata": {"name": "f"}})),
    )
    .await
    .unwrap();

    server.faults().set_error_rate(1.0, &[500], Some(1));
    let err = api.get("f").await.unwrap_err();
    assert_eq!(api_status(&err).code, 500);
    server.faults().clear();
    api.get("f").await.unwrap();

    server.faults().set_latency(Duration::from_millis(150));
    let started = std::time::Instant::now();
    api.get("f").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "latency was injected"
    );
    server.faults().clear();

    server.faults().partition(Duration::from_millis(600));
    let err = api.get("f").await.unwrap_err();
    assert!(
        !matches!(err, kube::Error::Api(_)),
        "a partition is a transport failure, not an answer: {err:?}"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    api.get("f").await.unwrap();
    c.cleanup().await;
}

#[tokio::test]
async fn bearer_token_is_required_when_set() {
    let server = DevServer::start(DevServerConfig {
        token: Some("s3cret".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let with_token = kube::Api::<ConfigMap>::namespaced(server.client().await.unwrap(), "default");
    with_token.list(&ListParams::default()).await.unwrap();
    let anonymous =
        kube::Client::try_from(kube::Config::new(server.url().parse().unwrap())).unwrap();
    let err = kube::Api::<ConfigMap>::namespaced(anonymous, "default")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(api_status(&err).code, 401);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn data_dir_keeps_objects_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = DevServerConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let server = DevServer::start(config.clone()).await.unwrap();
    let api = kube::Api::<ConfigMap>::namespaced(server.client().await.unwrap(), "ns");
    let first = api
        .create(
            &PostParams::default(),
            &configmap(json!({"metadata": {"name": "kept"}, "data": {"a": "b"}})),
        )
        .await
        .unwrap();
    server.shutdown().await.unwrap();

    let server = DevServer::start(config).await.unwrap();
    let api = kube::Api::<ConfigMap>::namespaced(server.client().await.unwrap(), "ns");
    let kept = api.get("kept").await.unwrap();
    assert_eq!(kept.metadata.uid, first.metadata.uid);
    assert_eq!(kept.data.unwrap()["a"], "b");
    let second = api
        .create(
            &PostParams::default(),
            &configmap(json!({"metadata": {"name": "new"}})),
        )
        .await
        .unwrap();
    assert!(
        rv(&second) > rv(&first),
        "resourceVersions keep increasing across restarts"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn refuses_non_loopback_without_token() {
    let err = DevServer::start(DevServerConfig {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..Default::default()
    })
    .await
    .err()
    .expect("refused");
    assert!(err.to_string().contains("without --token"), "{err}");
}

/// A test that panics on a real cluster leaves no namespace behind: the harness deletes it
/// when the test's cluster handle is dropped during the unwinding.
#[test]
fn a_failing_test_leaves_no_namespace_behind() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (tx, rx) = std::sync::mpsc::channel();
    let failing = std::thread::spawn(move || {
        runtime.block_on(async move {
            let c = TestCluster::start().await;
            let _ = tx.send((
                c.namespace.clone(),
                c.server.is_none(),
                c.kubeconfig.clone(),
            ));
            panic!("a test failing halfway (deliberately)");
        })
    });
    assert!(failing.join().is_err(), "the test thread panicked");
    let (namespace, real, kubeconfig) = rx.recv().expect("the namespace");
    if !real {
        common::note_skip("a real cluster's namespace to leave behind");
        return;
    }
    // Deleted (kubectl, without waiting): gone, or on its way out.
    common::namespace_is_going(&kubeconfig, &namespace).unwrap();
}
