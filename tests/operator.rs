//! `hakeeper operator` end to end: real operator child processes watching HA ConfigMaps written
//! the way stock Flink writes them (1.12-1.14's per-component locks, 1.15+'s cluster
//! ConfigMap) and by real `hakeeper sidecar` processes, alerting a loopback webhook, a loopback
//! "Alertmanager" and Kubernetes Events; failovers of the operator itself (SIGTERM, SIGKILL),
//! failing and hanging receivers, bad input, readiness and metrics.
//!
//! "Nothing was alerted" is never judged by waiting: every channel delivers in order, one
//! alert at a time, so once a later alert (a barrier) has arrived, anything the operator had
//! decided before it has arrived too.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::TestCluster;
use common::operator::{self, Answer, OperatorProcess, Receiver};
use common::process::{SidecarProcess, eventually, exit_within, http_client, signal};
use hakeeper::lease::{LEADER_ANNOTATION, LeaderRecord};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use serde_json::{Value, json};

const CLUSTER: &str = "flink-op";
const JOB: &str = "3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c";
const OTHER_JOB: &str = "00112233445566778899aabbccddeeff";
/// The lease stock Flink writes by default.
const FLINK_LEASE: Duration = Duration::from_secs(15);
const STATE_CONFIGMAP: &str = "hakeeper-operator-state";
/// How long an alert may take to arrive (generous: the CI machines are small).
const ALERT_WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Fixtures: ConfigMaps as stock Flink writes them.
// ---------------------------------------------------------------------------------------

/// A JobManager process as Flink identifies it: a lock identity (a UUID, as Flink's is),
/// an RPC address and the leader session of its grant (a new UUID for every grant).
#[derive(Debug, Clone)]
struct Jm {
    holder: String,
    address: String,
    session: String,
}

impl Jm {
    fn new(n: usize) -> Jm {
        Jm {
            holder: uuid::Uuid::new_v4().to_string(),
            address: format!(
                "akka.tcp://flink@10.244.{}.{}:6123/user/rpc/dispatcher_1",
                n / 200,
                n % 200 + 10
            ),
            session: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// The webhook's JSON of this leader.
    fn json(&self) -> Value {
        json!({"address": self.address, "sessionId": self.session})
    }
}

fn ha_labels(cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_string(), cluster.to_string()),
        (
            "configmap-type".to_string(),
            "high-availability".to_string(),
        ),
        ("type".to_string(), "flink-native-kubernetes".to_string()),
    ])
}

fn leader_cm(cluster: &str, component: &str) -> String {
    format!("{cluster}-{component}-leader")
}

fn cluster_cm(cluster: &str) -> String {
    format!("{cluster}-cluster-config-map")
}

/// Read-modify-write of one ConfigMap (created with the cluster's HA labels when absent).
async fn update(c: &TestCluster, cluster: &str, name: &str, f: impl Fn(&mut ConfigMap)) {
    let api = c.api::<ConfigMap>();
    for _ in 0..20 {
        let existing = api.get_opt(name).await.expect("get ConfigMap");
        let mut cm = existing.clone().unwrap_or_else(|| ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                labels: Some(ha_labels(cluster)),
                ..Default::default()
            },
            ..Default::default()
        });
        f(&mut cm);
        let result = match existing {
            Some(_) => api.replace(name, &PostParams::default(), &cm).await,
            None => api.create(&PostParams::default(), &cm).await,
        };
        match result {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => panic!("writing {name}: {e}"),
        }
    }
    panic!("writing {name}: conflicts without end");
}

fn record_of(cm: &ConfigMap) -> Option<LeaderRecord> {
    cm.metadata
        .annotations
        .as_ref()?
        .get(LEADER_ANNOTATION)
        .and_then(|v| LeaderRecord::parse(v).ok())
}

/// The lock held by `holder`, renewed now, with Flink's 15 s lease (Flink's exact bytes);
/// the acquire time and transitions carried on from the record when the holder is the same.
fn hold(cm: &mut ConfigMap, holder: &str) {
    let now = Timestamp::now();
    let old = record_of(cm);
    let record = match old {
        Some(r) if r.holder_identity == holder => LeaderRecord {
            renew_time: now,
            ..r
        },
        other => LeaderRecord {
            holder_identity: holder.to_string(),
            lease_duration: FLINK_LEASE,
            acquire_time: now,
            renew_time: now,
            leader_transitions: other.map_or(0, |r| r.leader_transitions + 1),
        },
    };
    set_annotation(cm, record.to_annotation());
}

fn set_annotation(cm: &mut ConfigMap, value: String) {
    cm.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(LEADER_ANNOTATION.to_string(), value);
}

/// Flink 1.12-1.14's leader information in a per-component ConfigMap.
fn publish(cm: &mut ConfigMap, jm: &Jm) {
    let data = cm.data.get_or_insert_with(Default::default);
    data.insert("address".into(), jm.address.clone());
    data.insert("sessionId".into(), jm.session.clone());
}

/// The lock released (holder "", as client-go and fabric8 release it) and the leader
/// information gone: no leader.
fn release(cm: &mut ConfigMap) {
    let now = Timestamp::now();
    let transitions = record_of(cm).map_or(0, |r| r.leader_transitions);
    set_annotation(
        cm,
        LeaderRecord {
            holder_identity: String::new(),
            lease_duration: Duration::from_secs(1),
            acquire_time: now,
            renew_time: now,
            leader_transitions: transitions,
        }
        .to_annotation(),
    );
    if let Some(data) = cm.data.as_mut() {
        data.remove("address");
        data.remove("sessionId");
    }
}

/// `jm` leads `component` of a Flink 1.14 cluster: the lock and the leader information in one
/// write (what an observer sees once Flink's two writes have both landed).
async fn lead(c: &TestCluster, cluster: &str, component: &str, jm: &Jm) {
    update(c, cluster, &leader_cm(cluster, component), |cm| {
        hold(cm, &jm.holder);
        publish(cm, jm);
    })
    .await;
}

/// `jm` takes `component` over exactly as Flink 1.14 does: first the lock (the old leader's
/// information still in the data), then, once its leadership is confirmed, its information.
async fn take_over_like_flink(c: &TestCluster, cluster: &str, component: &str, jm: &Jm) {
    let name = leader_cm(cluster, component);
    update(c, cluster, &name, |cm| hold(cm, &jm.holder)).await;
    update(c, cluster, &name, |cm| publish(cm, jm)).await;
}

/// The holder renews its lease (only `renewTime` changes).
async fn renew(c: &TestCluster, cluster: &str, component: &str, jm: &Jm) {
    update(c, cluster, &leader_cm(cluster, component), |cm| {
        hold(cm, &jm.holder)
    })
    .await;
}

/// Flink 1.15+'s `<sessionId>,<address>` entry for `name` in the cluster ConfigMap.
fn leader_entry(cm: &mut ConfigMap, name: &str, session: &str, address: &str) {
    cm.data.get_or_insert_with(Default::default).insert(
        format!("org.apache.flink.k8s.leader.{name}"),
        format!("{session},{address}"),
    );
}

// ---------------------------------------------------------------------------------------
// Observing the operator.
// ---------------------------------------------------------------------------------------

/// A test's cluster, an HTTP client and a webhook.
async fn start() -> (TestCluster, reqwest::Client, Receiver) {
    common::init_logs();
    let c = TestCluster::start().await;
    (c, http_client(), Receiver::start().await)
}

/// How an alert's message (an Event's note) ends for a change to `jm`.
fn became(jm: &Jm) -> String {
    format!("to {} (session {})", jm.address, jm.session)
}

/// Wait until the leading operator has persisted `session` as the cluster's known leader
/// (its first pass is done: what is in place now is its baseline).
async fn wait_state(c: &TestCluster, cluster: &str, session: &str) {
    let key = format!("{}.{cluster}", c.namespace);
    let api = c.api::<ConfigMap>();
    eventually(
        &format!("{STATE_CONFIGMAP} to record {session} for {cluster}"),
        ALERT_WAIT,
        || async {
            let cm = api
                .get_opt(STATE_CONFIGMAP)
                .await
                .map_err(|e| e.to_string())?;
            let entry = cm
                .as_ref()
                .and_then(|cm| cm.data.as_ref())
                .and_then(|d| d.get(&key))
                .cloned();
            match entry {
                Some(e) if e.contains(session) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

fn kind_of(a: &Value) -> &str {
    a["kind"].as_str().unwrap_or_default()
}

fn to_session(a: &Value) -> &str {
    a["to"]["sessionId"].as_str().unwrap_or_default()
}

/// The alerts of `kind` delivered (answered 2xx), in order, repeats included.
fn delivered(hook: &Receiver, kind: &str) -> Vec<Value> {
    hook.delivered()
        .into_iter()
        .filter(|a| kind_of(a) == kind)
        .collect()
}

/// Wait for a delivered alert that `pred` accepts.
async fn wait_alert(hook: &Receiver, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_alert_within(hook, what, ALERT_WAIT, pred).await
}

/// [`wait_alert`], at most `within`.
async fn wait_alert_within(
    hook: &Receiver,
    what: &str,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, within, || async {
        let all = hook.delivered();
        all.iter()
            .find(|a| pred(a))
            .cloned()
            .ok_or_else(|| format!("{} delivered: {all:?}", all.len()))
    })
    .await
}

/// Wait for the `LeaderChanged` to `jm` of `component`.
async fn wait_change(hook: &Receiver, component: &str, jm: &Jm) -> Value {
    wait_alert(
        hook,
        &format!("LeaderChanged of {component} to {}", jm.session),
        |a| {
            kind_of(a) == "LeaderChanged"
                && a["component"] == component
                && to_session(a) == jm.session
        },
    )
    .await
}

/// Every delivery per alert id.
fn by_id(alerts: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut map: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for a in alerts {
        map.entry(a["id"].as_str().unwrap_or_default().to_string())
            .or_default()
            .push(a.clone());
    }
    map
}

/// Wait (at most 10 s) until exactly one of `ops` leads; its index.
async fn one_leader(http: &reqwest::Client, ops: &[&OperatorProcess]) -> usize {
    eventually("exactly one leading operator", ALERT_WAIT, || async {
        let mut leading = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if op.leads(http).await {
                leading.push(i);
            }
        }
        match leading.as_slice() {
            [one] => Ok(*one),
            other => Err(format!("leading: {other:?}")),
        }
    })
    .await
}

/// Wait (at most 15 s) for `op`, sent `stop`, to exit; after a SIGTERM it exits cleanly,
/// without a panic.
async fn wait_stopped(op: &mut OperatorProcess, stop: &str) {
    let what = format!("operator {}", op.name);
    let status = exit_within(&mut op.child, Duration::from_secs(15), &what).await;
    if stop == "-TERM" {
        assert!(status.success(), "{status}\n{}", op.stderr_log());
        op.assert_no_panic();
    }
}

/// `jm` leads the dispatcher; then operator `name` starts with `flags` and has taken it as
/// its baseline.
async fn operator_after(c: &TestCluster, jm: &Jm, name: &str, flags: &[&str]) -> OperatorProcess {
    lead(c, CLUSTER, "dispatcher", jm).await;
    let op = OperatorProcess::start(c, name, flags).await;
    wait_state(c, CLUSTER, &jm.session).await;
    op
}

/// [`operator_after`] for two operators, `one` and `two`; which of them leads.
async fn two_operators_after(
    c: &TestCluster,
    http: &reqwest::Client,
    jm: &Jm,
    flags: &[&str],
) -> ([OperatorProcess; 2], usize) {
    lead(c, CLUSTER, "dispatcher", jm).await;
    let ops = [
        OperatorProcess::start(c, "one", flags).await,
        OperatorProcess::start(c, "two", flags).await,
    ];
    wait_state(c, CLUSTER, &jm.session).await;
    let leader = one_leader(http, &[&ops[0], &ops[1]]).await;
    (ops, leader)
}

/// The flags of an operator that alerts `hook` and verifies no payloads.
fn alerting(hook: &Receiver) -> [&str; 3] {
    ["--no-verify", "--alert-webhook", &hook.url]
}

/// `hakeeper_operator_<name>{namespace="…",cluster="<cluster>",<label>="<value>"}`.
fn series(c: &TestCluster, name: &str, cluster: &str, label: &str, value: &str) -> String {
    operator::series(
        name,
        &[
            ("namespace", &c.namespace),
            ("cluster", cluster),
            (label, value),
        ],
    )
}

/// The `events.k8s.io` Events of `reason` recorded on ConfigMap `name`.
async fn events_on(c: &TestCluster, name: &str, reason: &str) -> Vec<Event> {
    let api = c.api::<Event>();
    api.list(&Default::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some(reason)
        })
        .collect()
}

/// Wait (at most `within`) until the `LeaderChanged` Events on ConfigMap `name` satisfy
/// `pred`; those Events.
async fn wait_events(
    c: &TestCluster,
    name: &str,
    what: &str,
    within: Duration,
    pred: impl Fn(&[Event]) -> bool,
) -> Vec<Event> {
    eventually(what, within, || async {
        let events = events_on(c, name, "LeaderChanged").await;
        if pred(&events) {
            Ok(events)
        } else {
            Err(format!("{events:#?}"))
        }
    })
    .await
}

/// Whether an Event's note ends with the change to `jm`.
fn tells_of(e: &Event, jm: &Jm) -> bool {
    e.note.as_deref().is_some_and(|n| n.ends_with(&became(jm)))
}

async fn get_status(http: &reqwest::Client, url: &str) -> u16 {
    http.get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Leader changes.
// ---------------------------------------------------------------------------------------

/// Flink 1.14's per-component layout: the leaders in place at the first start, renewals and
/// A → none → A say nothing; A → B (written as Flink writes it: lock, then information) alerts
/// once with both leaders; a component appearing later alerts none → B (`from: null`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flink_114_changes_alert_once_and_renewals_returns_and_the_baseline_do_not() {
    let (c, http, hook) = start().await;
    let hook_url = format!("{}/hooks/flink", hook.url);
    let (a, b) = (Jm::new(1), Jm::new(2));
    let (rm, rest) = (Jm::new(3), Jm::new(4));
    lead(&c, CLUSTER, "resourcemanager", &rm).await;
    let flags = ["--no-verify", "--alert-webhook", &hook_url];
    let op = operator_after(&c, &a, "op", &flags).await;

    // Renewals: only renewTime changes.
    for _ in 0..3 {
        renew(&c, CLUSTER, "dispatcher", &a).await;
        renew(&c, CLUSTER, "resourcemanager", &rm).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A → B.
    take_over_like_flink(&c, CLUSTER, "dispatcher", &b).await;
    let ab = wait_change(&hook, "dispatcher", &b).await;
    assert_eq!(ab["from"], a.json(), "{ab}");
    assert_eq!(ab["to"], b.json(), "{ab}");
    assert_eq!(ab["severity"], "info", "{ab}");
    assert_eq!(ab["namespace"], c.namespace.as_str(), "{ab}");
    assert_eq!(ab["cluster"], CLUSTER, "{ab}");
    assert_eq!(ab["configmap"], leader_cm(CLUSTER, "dispatcher"), "{ab}");
    assert_eq!(ab["job"], Value::Null, "{ab}");
    assert_eq!(ab["late"], false, "{ab}");
    assert_eq!(ab["resolved"], false, "{ab}");
    let message = ab["message"].as_str().unwrap();
    assert!(
        message.contains(&a.address) && message.contains(&b.session),
        "{message}"
    );
    assert!(
        ab["observedAt"]
            .as_str()
            .unwrap()
            .parse::<Timestamp>()
            .is_ok(),
        "{ab}"
    );
    let received = hook.received();
    let first = &received[0];
    assert_eq!(first.path, "/hooks/flink");
    assert_eq!(
        first
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok()),
        ab["id"].as_str(),
        "the Idempotency-Key header is the alert's id"
    );
    assert!(
        first
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json")),
        "{:?}",
        first.headers
    );

    // B → none → B: the operator sees the dispatcher leaderless (its metric says so), then B
    // is back with the same session.
    update(&c, CLUSTER, &leader_cm(CLUSTER, "dispatcher"), release).await;
    let present = series(&c, "leader_present", CLUSTER, "component", "dispatcher");
    op.metric_becomes(&http, &present, 0.0).await;
    lead(&c, CLUSTER, "dispatcher", &b).await;
    op.metric_becomes(&http, &present, 1.0).await;

    // none → B: the REST server's ConfigMap appears after the operator started.
    lead(&c, CLUSTER, "restserver", &rest).await;
    let appeared = wait_change(&hook, "restserver", &rest).await;
    assert_eq!(appeared["from"], Value::Null, "{appeared}");
    assert_eq!(appeared["to"], rest.json(), "{appeared}");
    assert_eq!(appeared["configmap"], leader_cm(CLUSTER, "restserver"));
    assert!(
        appeared["message"]
            .as_str()
            .unwrap()
            .contains("has a leader"),
        "{appeared}"
    );

    // The barrier has arrived: everything decided before it has too. Exactly the two changes.
    let all = hook.delivered();
    assert_eq!(all.len(), 2, "only A → B and none → B: {all:#?}");
    assert_ne!(all[0]["id"], all[1]["id"]);
    assert_eq!(
        hook.received().len(),
        2,
        "each delivered at the first attempt"
    );
    op.assert_no_panic();
    c.cleanup().await;
}

/// Flink 1.15+'s cluster ConfigMap: one lock for the process, one `<sessionId>,<address>` entry
/// per component (and per job). A takeover by another JobManager alerts each component once,
/// on the cluster ConfigMap; a job leader appearing later is none → B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flink_115_cluster_configmap_takeover_alerts_each_component_once() {
    let (c, _, hook) = start().await;
    let name = cluster_cm(CLUSTER);
    // One leader session per process in 1.15's multiple-component election; an address per
    // component.
    let entries = |jm: &Jm| -> Vec<(String, String)> {
        let host = jm
            .address
            .split('@')
            .nth(1)
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .to_string();
        vec![
            (
                "dispatcher".into(),
                format!("akka.tcp://flink@{host}:6123/user/rpc/dispatcher_1"),
            ),
            (
                "resourcemanager".into(),
                format!("akka.tcp://flink@{host}:6123/user/rpc/resourcemanager_0"),
            ),
            ("restserver".into(), format!("http://{host}:8081")),
            (
                JOB.into(),
                format!("akka.tcp://flink@{host}:6123/user/rpc/jobmanager_2"),
            ),
        ]
    };
    let (p1, p2) = (Jm::new(1), Jm::new(2));
    update(&c, CLUSTER, &name, |cm| {
        hold(cm, &p1.holder);
        for (n, addr) in entries(&p1) {
            leader_entry(cm, &n, &p1.session, &addr);
        }
    })
    .await;
    // The job's checkpoint store: no lock in 1.15.
    update(&c, CLUSTER, &format!("{CLUSTER}-{JOB}-config-map"), |cm| {
        cm.data
            .get_or_insert_with(Default::default)
            .insert("counter".into(), "3".into());
    })
    .await;
    let op = OperatorProcess::start(&c, "op", &alerting(&hook)).await;
    wait_state(&c, CLUSTER, &p1.session).await;

    // P2 takes over: the lock, then each component confirms its leadership (one write each).
    update(&c, CLUSTER, &name, |cm| hold(cm, &p2.holder)).await;
    for (n, addr) in entries(&p2) {
        update(&c, CLUSTER, &name, |cm| {
            leader_entry(cm, &n, &p2.session, &addr)
        })
        .await;
    }
    let components = [
        "dispatcher",
        "resourcemanager",
        "restserver",
        &format!("jobmanager/{JOB}"),
    ]
    .map(str::to_string);
    let old: HashMap<String, String> = entries(&p1).into_iter().collect();
    let new: HashMap<String, String> = entries(&p2).into_iter().collect();
    for component in &components {
        let entry_name = component.strip_prefix("jobmanager/").unwrap_or(component);
        let a = wait_alert(&hook, &format!("{component} to P2"), |a| {
            a["component"] == component.as_str() && to_session(a) == p2.session
        })
        .await;
        assert_eq!(a["configmap"], name, "{a}");
        assert_eq!(
            a["from"],
            json!({"address": old[entry_name], "sessionId": p1.session}),
            "{a}"
        );
        assert_eq!(
            a["to"],
            json!({"address": new[entry_name], "sessionId": p2.session}),
            "{a}"
        );
        assert_eq!(a["late"], false, "{a}");
    }
    // Barrier: a second job's leader appears (1.16+ names it job-<id>): none → B.
    let p3 = Jm::new(3);
    update(&c, CLUSTER, &name, |cm| {
        hold(cm, &p2.holder);
        leader_entry(cm, &format!("job-{OTHER_JOB}"), &p3.session, &p3.address);
    })
    .await;
    let job = wait_alert(&hook, "the second job's leader", |a| {
        to_session(a) == p3.session
    })
    .await;
    assert_eq!(job["component"], format!("jobmanager/{OTHER_JOB}"));
    assert_eq!(job["from"], Value::Null);
    let all = hook.delivered();
    assert_eq!(
        all.len(),
        5,
        "one alert per component and the new job: {all:#?}"
    );
    assert!(
        all.iter().all(|a| kind_of(a) == "LeaderChanged"),
        "{all:#?}"
    );
    assert_eq!(by_id(&all).len(), 5, "distinct ids");
    op.assert_no_panic();
    c.cleanup().await;
}

/// ConfigMaps written by real `hakeeper sidecar` processes: a SIGTERM'd leader releases, the
/// standby takes over, and the alert names both sidecars' addresses and sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_takeover_is_alerted_with_both_sessions() {
    let (c, http, hook) = start().await;
    let address = |n: u8| format!("akka.tcp://flink@jm-{n}:6123/user/rpc/dispatcher_1");
    let mut s1 = contending_sidecar(&c, "jm-1", &address(1)).await;
    let v1 = s1.leading(&http, "dispatcher").await;
    let session1 = v1["sessionId"].as_str().expect("a session").to_string();
    let op = OperatorProcess::start(&c, "op", &alerting(&hook)).await;
    wait_state(&c, CLUSTER, &session1).await;

    let s2 = contending_sidecar(&c, "jm-2", &address(2)).await;
    signal(&s1.child, "-TERM");
    let status = exit_within(&mut s1.child, Duration::from_secs(10), "the sidecar").await;
    assert!(status.success(), "{status}");
    let v2 = s2.leading(&http, "dispatcher").await;
    let session2 = v2["sessionId"].as_str().expect("a session").to_string();
    let alert = wait_alert(&hook, "the takeover", |a| to_session(a) == session2).await;
    assert_eq!(alert["kind"], "LeaderChanged");
    assert_eq!(alert["component"], "dispatcher");
    assert_eq!(alert["configmap"], leader_cm(CLUSTER, "dispatcher"));
    assert_eq!(
        alert["from"],
        json!({"address": address(1), "sessionId": session1}),
        "{alert}"
    );
    assert_eq!(
        alert["to"],
        json!({"address": address(2), "sessionId": session2}),
        "{alert}"
    );
    assert_eq!(alert["late"], false);
    // Nothing else: the baseline (s1 in place at the first start) was not news.
    assert_eq!(hook.delivered().len(), 1, "{:#?}", hook.delivered());
    op.assert_no_panic();
    c.cleanup().await;
}

/// A sidecar that contends for the dispatcher from its start, with no liveness dependency.
async fn contending_sidecar(c: &TestCluster, name: &str, address: &str) -> SidecarProcess {
    SidecarProcess::start(
        c,
        CLUSTER,
        name,
        &[
            "--contend",
            "dispatcher",
            "--address",
            address,
            "--liveness",
            "none",
        ],
    )
    .await
}

/// A change made while no operator runs is alerted once, marked late, by the next operator;
/// the next change is news again (not late), and nothing is alerted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_while_no_operator_runs_is_alerted_once_and_late() {
    let (c, _, hook) = start().await;
    let (a, b, d) = (Jm::new(1), Jm::new(2), Jm::new(3));
    let flags = alerting(&hook);
    let mut first = operator_after(&c, &a, "first", &flags).await;
    signal(&first.child, "-TERM");
    wait_stopped(&mut first, "-TERM").await;

    lead(&c, CLUSTER, "dispatcher", &b).await;
    let second = OperatorProcess::start(&c, "second", &flags).await;
    let late = wait_change(&hook, "dispatcher", &b).await;
    assert_eq!(late["late"], true, "{late}");
    assert_eq!(late["from"], a.json(), "{late}");
    assert_eq!(late["to"], b.json(), "{late}");
    assert!(
        late["message"].as_str().unwrap().contains("observed late"),
        "{late}"
    );

    lead(&c, CLUSTER, "dispatcher", &d).await;
    let next = wait_change(&hook, "dispatcher", &d).await;
    assert_eq!(next["late"], false, "{next}");
    assert_eq!(next["from"], b.json(), "{next}");
    let all = hook.delivered();
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(by_id(&all).len(), 2);
    second.assert_no_panic();
    c.cleanup().await;
}

/// Two operators watch the same namespace; only the leader alerts: each change is delivered
/// exactly once to the webhook and recorded as exactly one Event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operators_deliver_each_change_exactly_once() {
    let (c, http, hook) = start().await;
    let ([op1, op2], _) = two_operators_after(&c, &http, &Jm::new(1), &alerting(&hook)).await;
    let next: Vec<Jm> = (2..=4).map(Jm::new).collect();
    for jm in &next {
        lead(&c, CLUSTER, "dispatcher", jm).await;
        wait_change(&hook, "dispatcher", jm).await;
    }
    let all = hook.delivered();
    let ids = by_id(&all);
    assert_eq!(ids.len(), 3, "{all:#?}");
    assert!(
        ids.values().all(|d| d.len() == 1),
        "one delivery per change: {ids:#?}"
    );
    assert_eq!(hook.received().len(), 3, "no request beyond the three");
    let cm = leader_cm(CLUSTER, "dispatcher");
    let events = wait_events(
        &c,
        &cm,
        "three LeaderChanged Events",
        ALERT_WAIT,
        |events| events.len() >= 3,
    )
    .await;
    assert_eq!(events.len(), 3, "{events:#?}");
    for e in &events {
        assert_eq!(
            e.reporting_controller.as_deref(),
            Some("hakeeper-operator"),
            "{e:?}"
        );
        assert!(e.series.is_none(), "a single occurrence: {e:?}");
    }
    for jm in &next {
        assert_eq!(
            events.iter().filter(|e| tells_of(e, jm)).count(),
            1,
            "{events:#?}"
        );
    }
    op1.assert_no_panic();
    op2.assert_no_panic();
    c.cleanup().await;
}

/// The leader decides an alert, the webhook takes it and never answers, and the leader is
/// stopped (`stop`): the alert was in the persisted outbox, so the next leader sends it again,
/// with the same id and Idempotency-Key, and the webhook (answering now) has it exactly once;
/// the change has one Event, whoever sent it.
async fn an_undelivered_alert_survives(stop: &str) {
    let (c, http, hook) = start().await;
    hook.script(&[Answer::Hang], None);
    let (a, b) = (Jm::new(1), Jm::new(2));
    let flags = [
        "--no-verify",
        "--alert-webhook",
        &hook.url,
        "--alert-timeout",
        "30s",
    ];
    let (mut ops, leader) = two_operators_after(&c, &http, &a, &flags).await;
    lead(&c, CLUSTER, "dispatcher", &b).await;
    let cm = leader_cm(CLUSTER, "dispatcher");
    eventually(
        "the webhook to hold the alert and its Event to be recorded",
        ALERT_WAIT,
        || async {
            let got = hook.received();
            let events = events_on(&c, &cm, "LeaderChanged").await;
            if got.len() == 1 && events.len() == 1 {
                Ok(())
            } else {
                Err(format!("{got:#?} {events:#?}"))
            }
        },
    )
    .await;
    signal(&ops[leader].child, stop);
    wait_stopped(&mut ops[leader], stop).await;
    let other = &ops[1 - leader];
    let alert = wait_change(&hook, "dispatcher", &b).await;
    assert_eq!(alert["from"], a.json());
    assert_eq!(
        alert["late"], false,
        "the alert the first leader decided: {alert}"
    );
    let got = hook.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0].answer, Answer::Hang);
    assert_eq!(got[0].body, got[1].body, "the same alert again");
    let key = |i: usize| got[i].headers.get("idempotency-key").cloned();
    assert_eq!(key(0), key(1));
    // The barrier: the next change; nothing else was sent.
    let d = Jm::new(3);
    lead(&c, CLUSTER, "dispatcher", &d).await;
    wait_change(&hook, "dispatcher", &d).await;
    assert_eq!(hook.received().len(), 3, "{:#?}", hook.received());
    assert!(other.leads(&http).await);
    other.assert_no_panic();
    let events = wait_events(&c, &cm, "the Event of the barrier", ALERT_WAIT, |events| {
        events.iter().any(|e| tells_of(e, &d))
    })
    .await;
    c.cleanup().await;
    let events: Vec<&Event> = events.iter().filter(|e| tells_of(e, &b)).collect();
    assert_eq!(
        events.len(),
        1,
        "one Event for the change, whoever sent it: {events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_undelivered_at_a_sigkill_is_sent_again_by_the_next_leader() {
    an_undelivered_alert_survives("-KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_undelivered_at_a_sigterm_is_handed_to_the_next_leader() {
    an_undelivered_alert_survives("-TERM").await;
}

/// Two operators; the dispatcher's leader changes every 300 ms; the leading operator is
/// stopped (SIGTERM, or SIGKILL) after the eighth change. At the end, the delivered alerts
/// (one per id) form one unbroken chain from the first leader to the last: each alert's `from`
/// is the previous alert's `to` (no gap, no fork), each `to` a leader that was written, in
/// the order written (no change alerted twice under different ids), and deliveries of the
/// same id are the same alert; at least the changes before the stop and the catch-up after
/// it are alerted, and at most one late. After a SIGTERM, nothing is delivered twice.
async fn failover_mid_stream(stop: &str) {
    let (c, http, hook) = start().await;
    let first = Jm::new(0);
    let (mut ops, leader) = two_operators_after(&c, &http, &first, &alerting(&hook)).await;
    let mut written = vec![first];
    for i in 1..=24 {
        let jm = Jm::new(i);
        lead(&c, CLUSTER, "dispatcher", &jm).await;
        written.push(jm);
        if i == 8 {
            signal(&ops[leader].child, stop);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_stopped(&mut ops[leader], stop).await;
    let other = &ops[1 - leader];
    let last = written.last().unwrap().clone();
    wait_alert_within(
        &hook,
        "the last change alerted",
        Duration::from_secs(15),
        |a| to_session(a) == last.session,
    )
    .await;
    assert!(other.leads(&http).await, "{} took over", other.name);

    let all = delivered(&hook, "LeaderChanged");
    let ids = by_id(&all);
    for (id, copies) in &ids {
        for copy in copies {
            assert_eq!(
                (&copy["from"], &copy["to"], &copy["component"]),
                (
                    &copies[0]["from"],
                    &copies[0]["to"],
                    &copies[0]["component"]
                ),
                "deliveries of {id} describe different changes"
            );
        }
    }
    let position: HashMap<&str, usize> = written
        .iter()
        .enumerate()
        .map(|(i, jm)| (jm.session.as_str(), i))
        .collect();
    let mut chain: Vec<(usize, usize, &Value)> = ids
        .values()
        .map(|copies| {
            let a = &copies[0];
            let from = a["from"]["sessionId"]
                .as_str()
                .and_then(|s| position.get(s).copied())
                .unwrap_or_else(|| panic!("from is no leader written: {a}"));
            let to = position
                .get(to_session(a))
                .copied()
                .unwrap_or_else(|| panic!("to is no leader written: {a}"));
            assert_eq!(a["from"], written[from].json(), "{a}");
            assert_eq!(a["to"], written[to].json(), "{a}");
            (from, to, a)
        })
        .collect();
    chain.sort_by_key(|(_, to, _)| *to);
    let summary: Vec<(usize, usize, bool)> = chain
        .iter()
        .map(|(f, t, a)| (*f, *t, a["late"] == true))
        .collect();
    for pair in chain.windows(2) {
        assert!(
            pair[0].1 < pair[1].1,
            "two alerts with different ids for one change: {summary:?}"
        );
        assert_eq!(
            pair[1].0, pair[0].1,
            "a gap or a fork in the chain: {summary:?}"
        );
    }
    assert_eq!(
        chain[0].0, 0,
        "the chain starts at the first leader: {summary:?}"
    );
    assert_eq!(chain.last().unwrap().1, written.len() - 1, "{summary:?}");
    let raw_repeats = all.len() - ids.len();
    if stop == "-TERM" {
        assert_eq!(
            raw_repeats,
            0,
            "a graceful handover re-sends nothing: {:#?}",
            ids.iter().filter(|(_, d)| d.len() > 1).collect::<Vec<_>>()
        );
    }
    other.assert_no_panic();
    let (changes, distinct) = (written.len() - 1, ids.len());
    eprintln!(
        "{stop}: {changes} changes written, {distinct} alerts (chain {summary:?}), {raw_repeats} raw re-deliveries"
    );
    c.cleanup().await;
    assert!(
        distinct >= 2 && distinct <= changes,
        "{distinct} of {changes}"
    );
    assert!(
        summary.iter().filter(|s| s.2).count() <= 1,
        "one late alert at most, from the takeover's first pass"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_leader_mid_stream_leaves_no_gap_and_no_duplicate_change() {
    failover_mid_stream("-KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigtermed_leader_mid_stream_hands_over_without_gap_or_repeat() {
    failover_mid_stream("-TERM").await;
}

// ---------------------------------------------------------------------------------------
// Channels.
// ---------------------------------------------------------------------------------------

/// A webhook that answers 500 gets the alert again (same body, same Idempotency-Key); one
/// that answers 400 is not retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_is_retried_with_the_same_idempotency_key() {
    let (c, _, hook) = start().await;
    let (a, b, d, e) = (Jm::new(1), Jm::new(2), Jm::new(3), Jm::new(4));
    let op = operator_after(&c, &a, "op", &alerting(&hook)).await;

    hook.script(&[Answer::Status(500)], None);
    lead(&c, CLUSTER, "dispatcher", &b).await;
    let alert = wait_change(&hook, "dispatcher", &b).await;
    let got = hook.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0].answer, Answer::Status(500));
    assert_eq!(got[1].answer, Answer::Status(200));
    let key = |i: usize| {
        got[i]
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(key(0).as_deref(), alert["id"].as_str());
    assert_eq!(key(0), key(1), "the same Idempotency-Key on the retry");
    assert_eq!(got[0].body, got[1].body, "the same alert");

    // 400: final, not retried; the next alert (barrier) goes through.
    hook.script(&[Answer::Status(400)], None);
    lead(&c, CLUSTER, "dispatcher", &d).await;
    eventually("the alert of D to be refused", ALERT_WAIT, || async {
        let got = hook.received();
        if got.iter().any(|r| to_session(&r.body) == d.session) {
            Ok(())
        } else {
            Err(format!("{got:#?}"))
        }
    })
    .await;
    lead(&c, CLUSTER, "dispatcher", &e).await;
    wait_change(&hook, "dispatcher", &e).await;
    let refused: Vec<_> = hook
        .received()
        .into_iter()
        .filter(|r| to_session(&r.body) == d.session)
        .collect();
    assert_eq!(refused.len(), 1, "a 400 is not retried: {refused:#?}");
    assert_eq!(refused[0].answer, Answer::Status(400));
    op.assert_no_panic();
    c.cleanup().await;
}

/// A webhook that never answers holds up neither the other webhook nor the Events: with
/// `--alert-timeout 300ms --alert-attempts 2` it costs its own queue at least 0.7 s per alert.
/// Six changes, each written once the good webhook has the previous one: each reaches the
/// good webhook within 3 s of its write, the last one's Event within 3 s too, while the
/// hanging webhook is still behind (it needs more than 4 s for the six); in the end it got
/// two attempts per alert, and its failures are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_webhook_does_not_delay_the_other_channels() {
    let (c, http, hang) = start().await;
    hang.script(&[], Some(Answer::Hang));
    let good = Receiver::start().await;
    let flags = [
        "--no-verify",
        "--alert-webhook",
        &hang.url,
        "--alert-webhook",
        &good.url,
        "--alert-timeout",
        "300ms",
        "--alert-attempts",
        "2",
    ];
    let op = operator_after(&c, &Jm::new(1), "op", &flags).await;

    // One change after the other, each once the good webhook has the previous one: the
    // hanging webhook's queue grows while the good one keeps up.
    let next: Vec<Jm> = (2..=7).map(Jm::new).collect();
    let bound = Duration::from_secs(3);
    let cm = leader_cm(CLUSTER, "dispatcher");
    let mut slowest = Duration::ZERO;
    for jm in &next {
        lead(&c, CLUSTER, "dispatcher", jm).await;
        let written = Instant::now();
        wait_alert_within(
            &good,
            &format!("the good webhook to get {}", jm.session),
            bound,
            |a| kind_of(a) == "LeaderChanged" && to_session(a) == jm.session,
        )
        .await;
        slowest = slowest.max(written.elapsed());
    }
    let last = next.last().unwrap();
    let last_written = Instant::now();
    wait_events(&c, &cm, "the Event of the last change", bound, |events| {
        events
            .iter()
            .any(|e| e.note.as_deref().is_some_and(|n| n.contains(&last.session)))
    })
    .await;
    let hanging_then = hang.received().len();
    eprintln!(
        "slowest delivery to the good webhook {slowest:?}; the last Event {:?} after its delivery; the hanging webhook had {hanging_then} requests then",
        last_written.elapsed()
    );
    assert!(
        hanging_then < 2 * next.len(),
        "the hanging webhook was still behind when the others were done ({hanging_then} requests)"
    );

    // The hanging webhook gets each alert twice (the attempts), then gives up on it.
    eventually(
        "two attempts per alert at the hanging webhook",
        Duration::from_secs(12),
        || async {
            let got = hang.received();
            let per_id = by_id(&got.iter().map(|r| r.body.clone()).collect::<Vec<_>>());
            if per_id.len() == next.len() && per_id.values().all(|d| d.len() == 2) {
                Ok(())
            } else {
                Err(format!(
                    "{:?}",
                    per_id.values().map(Vec::len).collect::<Vec<_>>()
                ))
            }
        },
    )
    .await;
    let failed = eventually("the failures counted", ALERT_WAIT, || async {
        match op
            .metric(
                &http,
                "hakeeper_operator_deliveries_total{channel=\"webhook\",result=\"failed\"}",
            )
            .await
        {
            Some(v) if v >= next.len() as f64 => Ok(v),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(failed, next.len() as f64);
    assert_eq!(
        good.received().len(),
        next.len(),
        "the good webhook: one request each"
    );
    op.assert_no_panic();
    c.cleanup().await;
}

/// The Alertmanager document, field by field: a LeaderChanged notice with `endsAt` 15 minutes
/// on; a LeaderLost (`--leaderless-after 1s`) firing without `endsAt`; its end (LeaderRestored)
/// with the same labels, the same `startsAt` and an `endsAt`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_gets_notices_firing_and_resolved_alerts() {
    let (c, _, hook) = start().await;
    let am = Receiver::start().await;
    let (a, b, d) = (Jm::new(1), Jm::new(2), Jm::new(3));
    let am_url = format!("{}/", am.url);
    let flags = [
        "--no-verify",
        "--alert-webhook",
        &hook.url,
        "--alertmanager-url",
        &am_url,
        "--leaderless-after",
        "1s",
    ];
    let op = operator_after(&c, &a, "op", &flags).await;
    let ns = c.namespace.clone();
    let cm = leader_cm(CLUSTER, "dispatcher");
    let labels = |alertname: &str, severity: &str| {
        json!({"alertname": alertname, "namespace": ns, "cluster": CLUSTER,
               "component": "dispatcher", "severity": severity})
    };
    let ts = |v: &Value| -> Timestamp {
        v.as_str()
            .unwrap_or_else(|| panic!("a time: {v}"))
            .parse()
            .unwrap_or_else(|e| panic!("{v}: {e}"))
    };

    // A notice.
    lead(&c, CLUSTER, "dispatcher", &b).await;
    let changed = wait_change(&hook, "dispatcher", &b).await;
    let r = am_doc(&am, changed["id"].as_str().unwrap()).await;
    assert_eq!(r.path, "/api/v2/alerts");
    let docs = r.body.as_array().expect("an array");
    assert_eq!(docs.len(), 1, "{}", r.body);
    let doc = &docs[0];
    assert_eq!(doc["labels"], labels("FlinkLeaderChanged", "info"), "{doc}");
    let message = changed["message"].as_str().unwrap();
    assert_eq!(
        doc["annotations"],
        json!({
            "summary": message,
            "description": format!("LeaderChanged in namespace {ns} (Flink cluster {CLUSTER}): {message}"),
            "configmap": cm,
            "id": changed["id"],
        }),
        "{doc}"
    );
    assert_eq!(doc["startsAt"], changed["observedAt"], "{doc}");
    let (starts, ends) = (ts(&doc["startsAt"]), ts(&doc["endsAt"]));
    let lasts = ends.duration_since(starts);
    assert!(
        lasts >= jiff::SignedDuration::from_mins(14)
            && lasts <= jiff::SignedDuration::from_mins(16),
        "a notice ends about 15 minutes on: {doc}"
    );
    assert!(doc.get("generatorURL").is_none(), "{doc}");
    let keys: BTreeSet<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["labels", "annotations", "startsAt", "endsAt"])
    );

    // Leaderless for longer than 1 s: firing.
    update(&c, CLUSTER, &cm, release).await;
    let lost = wait_alert(&hook, "LeaderLost", |a| kind_of(a) == "LeaderLost").await;
    assert_eq!(lost["severity"], "warning");
    assert_eq!(lost["resolved"], false);
    assert_eq!(lost["from"], b.json(), "the last leader: {lost}");
    assert_eq!(lost["to"], Value::Null);
    assert!(
        lost["details"]["leaderlessSeconds"].as_f64().unwrap() >= 1.0,
        "{lost}"
    );
    let r = am_doc(&am, lost["id"].as_str().unwrap()).await;
    let firing = &r.body[0];
    assert_eq!(
        firing["labels"],
        labels("FlinkLeaderLost", "warning"),
        "{firing}"
    );
    assert!(
        firing.get("endsAt").is_none(),
        "firing: no endsAt: {firing}"
    );
    assert_eq!(firing["startsAt"], lost["observedAt"]);
    assert_eq!(firing["annotations"]["summary"], lost["message"]);
    assert_eq!(
        firing["annotations"]["description"],
        format!(
            "LeaderLost in namespace {ns} (Flink cluster {CLUSTER}): {}",
            lost["message"].as_str().unwrap()
        )
    );

    // A leader returns: a change (B → D) and the LeaderLost's end.
    lead(&c, CLUSTER, "dispatcher", &d).await;
    let back = wait_alert(&hook, "LeaderRestored", |a| kind_of(a) == "LeaderRestored").await;
    assert_eq!(back["resolved"], true);
    assert_eq!(back["to"], d.json(), "{back}");
    assert_eq!(
        back["id"],
        format!("{}/restored", lost["id"].as_str().unwrap())
    );
    let change = wait_change(&hook, "dispatcher", &d).await;
    assert_eq!(change["from"], b.json(), "{change}");
    let r = am_doc(&am, back["id"].as_str().unwrap()).await;
    let resolved = &r.body[0];
    assert_eq!(
        resolved["labels"], firing["labels"],
        "the same labels pair them: {resolved}"
    );
    assert_eq!(resolved["startsAt"], firing["startsAt"], "{resolved}");
    let ends = ts(&resolved["endsAt"]);
    assert!(ends >= ts(&firing["startsAt"]), "{resolved}");
    assert!(
        ends.duration_since(Timestamp::now()).abs() < jiff::SignedDuration::from_secs(60),
        "resolved now: {resolved}"
    );
    // Every alert went to Alertmanager once (no resend within the minute).
    let ids: Vec<String> = am
        .received()
        .iter()
        .map(|r| {
            r.body[0]["annotations"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let hook_ids: BTreeSet<String> = hook
        .delivered()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), hook_ids.len(), "{ids:?}");
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), hook_ids);
    op.assert_no_panic();
    c.cleanup().await;
}

/// Wait for the Alertmanager request that carries alert `id`.
async fn am_doc(am: &Receiver, id: &str) -> common::operator::Received {
    eventually(&format!("Alertmanager to get {id}"), ALERT_WAIT, || async {
        am.received()
            .into_iter()
            .find(|r| r.body[0]["annotations"]["id"] == id)
            .ok_or_else(|| format!("{:#?}", am.received()))
    })
    .await
}

/// `kubectl describe cm` shows the operator's Events: two changes, two `LeaderChanged` lines
/// from `hakeeper-operator` (not one series counted up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_describe_shows_one_event_per_leader_change() {
    let (c, _, hook) = start().await;
    let (a, b, d) = (Jm::new(1), Jm::new(2), Jm::new(3));
    let op = operator_after(&c, &a, "op", &alerting(&hook)).await;
    for jm in [&b, &d] {
        lead(&c, CLUSTER, "dispatcher", jm).await;
        wait_change(&hook, "dispatcher", jm).await;
    }
    let cm = leader_cm(CLUSTER, "dispatcher");
    let lines = eventually(
        "two LeaderChanged lines in kubectl describe",
        ALERT_WAIT,
        || async {
            let out = tokio::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(c.kubeconfig())
                .args(["-n", &c.namespace, "describe", "configmap", &cm])
                .output()
                .await
                .map_err(|e| format!("kubectl: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if !out.status.success() {
                return Err(format!(
                    "{}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let lines: Vec<String> = text
                .lines()
                .filter(|l| l.contains("LeaderChanged"))
                .map(str::to_string)
                .collect();
            if lines.len() >= 2 {
                Ok(lines)
            } else {
                Err(text)
            }
        },
    )
    .await;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for l in &lines {
        assert!(l.trim_start().starts_with("Normal"), "{l}");
        assert!(l.contains("hakeeper-operator"), "{l}");
        assert!(!l.contains("(x2 over"), "not a series: {l}");
    }
    assert!(
        lines[0].ends_with(&became(&b)) || lines[1].ends_with(&became(&b)),
        "{lines:#?}"
    );
    assert!(
        lines[0].ends_with(&became(&d)) || lines[1].ends_with(&became(&d)),
        "{lines:#?}"
    );
    op.assert_no_panic();
    c.cleanup().await;
}

// ---------------------------------------------------------------------------------------
// Bad input, readiness, metrics.
// ---------------------------------------------------------------------------------------

/// Corrupt lock annotations, garbage under `jobGraph-<id>`, a ConfigMap near 1 MiB, HA
/// ConfigMaps without an `app` label or with one that is no cluster id: the operator keeps
/// running and serving, reports sizes and the leaderless component, alerts on later changes,
/// and never panics. (Payload verification is on: no handle decodes, so no storage is read.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_reported_and_never_stops_the_operator() {
    let (c, http, hook) = start().await;
    let broken = "flink-broken";
    let (x, a, b) = (Jm::new(1), Jm::new(2), Jm::new(3));
    // Before the start: a corrupt lock (not JSON) with leader information.
    update(&c, broken, &leader_cm(broken, "dispatcher"), |cm| {
        set_annotation(
            cm,
            "{\"holderIdentity\": \"jm-1\", \"leaseDuration\": 15.0, ".into(),
        );
        publish(cm, &x);
    })
    .await;
    let flags = ["--alert-webhook", &hook.url, "--leaderless-after", "1s"];
    let mut op = operator_after(&c, &a, "op", &flags).await;

    // While it runs: another corrupt lock (JSON of the wrong shape); garbage job graphs; a
    // job's store near the 1 MiB limit; HA ConfigMaps it cannot attribute to a cluster.
    update(&c, broken, &leader_cm(broken, "dispatcher"), |cm| {
        set_annotation(
            cm,
            "{\"holderIdentity\": 42, \"leaseDuration\": \"forever\"}".into(),
        )
    })
    .await;
    update(&c, CLUSTER, &leader_cm(CLUSTER, "dispatcher"), |cm| {
        hold(cm, &a.holder);
        let data = cm.data.get_or_insert_with(Default::default);
        data.insert(
            format!("jobGraph-{JOB}"),
            "%%% not base64 at all %%%".into(),
        );
        // Valid base64, but not a Java-serialized state handle.
        data.insert(
            format!("jobGraph-{OTHER_JOB}"),
            "aGVsbG8sIHdvcmxkIQ==".into(),
        );
        data.insert(format!("runningJobsRegistry-{JOB}"), "MAYBE".into());
    })
    .await;
    let big = format!("{CLUSTER}-{JOB}-jobmanager-leader");
    update(&c, CLUSTER, &big, |cm| {
        hold(cm, &a.holder);
        publish(cm, &a);
        let data = cm.data.get_or_insert_with(Default::default);
        data.insert("counter".into(), "not a number".into());
        data.insert(
            "checkpointID-0000000000000000007".into(),
            "A".repeat(1_040_000),
        );
    })
    .await;
    let api = c.api::<ConfigMap>();
    for (name, labels) in [
        (
            "no-app-label",
            json!({"configmap-type": "high-availability"}),
        ),
        (
            "bad-app-label",
            json!({"app": "Not_A_Cluster.Id", "configmap-type": "high-availability"}),
        ),
    ] {
        api.create(
            &PostParams::default(),
            &common::configmap(json!({
                "metadata": {"name": name, "labels": labels},
                "data": {"address": "x", "sessionId": "y"}
            })),
        )
        .await
        .expect("create");
    }

    // The corrupt lock: no live leader for more than 1 s, a warning.
    let lost = wait_alert(&hook, "LeaderLost of the corrupt lock", |a| {
        kind_of(a) == "LeaderLost" && a["cluster"] == broken
    })
    .await;
    assert_eq!(lost["severity"], "warning");
    assert_eq!(lost["component"], "dispatcher");
    assert_eq!(lost["from"], x.json(), "{lost}");
    // The healthy cluster still alerts its changes (the barrier), and was never leaderless.
    lead(&c, CLUSTER, "dispatcher", &b).await;
    let change = wait_change(&hook, "dispatcher", &b).await;
    assert_eq!(change["from"], a.json());
    let all = hook.delivered();
    assert!(
        !all.iter().any(|a| kind_of(a) == "LeaderLost"
            && a["cluster"] == CLUSTER
            && a["component"] == "dispatcher"),
        "{all:#?}"
    );

    let fill = series(&c, "configmap_fill_ratio", CLUSTER, "configmap", &big);
    let ratio = op.metric_present(&http, &fill).await;
    assert!((0.98..1.0).contains(&ratio), "{ratio}");
    let broken_cm = leader_cm(broken, "dispatcher");
    let bytes = series(&c, "configmap_bytes", broken, "configmap", &broken_cm);
    assert!(
        op.metric(&http, &bytes).await.is_some(),
        "the corrupt cluster is measured too"
    );
    op.assert_running();
    assert_eq!(get_status(&http, &format!("{}/livez", op.admin)).await, 200);
    assert!(op.ready(&http).await);
    op.assert_no_panic();
    let log = op.stderr_log();
    assert!(
        log.contains("Not_A_Cluster.Id"),
        "the label that is no cluster id is named:\n{log}"
    );
    c.cleanup().await;
}

/// `/readyz` is 200 once the cache holds every HA ConfigMap (and only those); the leader
/// change counter carries namespace, cluster and component; a cluster's series go with its
/// ConfigMaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_metrics_follow_the_clusters() {
    let (c, http, hook) = start().await;
    let other = "flink-other";
    let (a, b, o) = (Jm::new(1), Jm::new(2), Jm::new(3));
    lead(&c, CLUSTER, "dispatcher", &a).await;
    lead(&c, CLUSTER, "restserver", &a).await;
    lead(&c, other, "dispatcher", &o).await;
    c.api::<ConfigMap>()
        .create(
            &PostParams::default(),
            &common::configmap(json!({"metadata": {"name": "not-ha"}, "data": {"k": "v"}})),
        )
        .await
        .expect("create");
    let op = OperatorProcess::start(&c, "op", &alerting(&hook)).await;
    eventually("/readyz 200", ALERT_WAIT, || async {
        match get_status(&http, &format!("{}/readyz", op.admin)).await {
            200 => Ok(()),
            s => Err(s.to_string()),
        }
    })
    .await;
    assert_eq!(
        op.metric(&http, "hakeeper_operator_watched_configmaps")
            .await,
        Some(3.0),
        "ready: the cache holds the three HA ConfigMaps, not the other one"
    );
    assert_eq!(get_status(&http, &format!("{}/livez", op.admin)).await, 200);
    wait_state(&c, CLUSTER, &a.session).await;

    lead(&c, CLUSTER, "dispatcher", &b).await;
    wait_change(&hook, "dispatcher", &b).await;
    let changes = series(
        &c,
        "leader_changes_total",
        CLUSTER,
        "component",
        "dispatcher",
    );
    assert_eq!(op.metric(&http, &changes).await, Some(1.0));
    let present = series(&c, "leader_present", CLUSTER, "component", "restserver");
    let dispatcher_cm = leader_cm(CLUSTER, "dispatcher");
    let fill = series(
        &c,
        "configmap_fill_ratio",
        CLUSTER,
        "configmap",
        &dispatcher_cm,
    );
    op.metric_present(&http, &present).await;
    assert!(
        op.metric(&http, &fill)
            .await
            .is_some_and(|v| v > 0.0 && v < 0.01)
    );

    // Delete the cluster's ConfigMaps: its series go; the other cluster's stay.
    let api = c.api::<ConfigMap>();
    for name in [
        leader_cm(CLUSTER, "dispatcher"),
        leader_cm(CLUSTER, "restserver"),
    ] {
        api.delete(&name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    eventually("the deleted cluster's series to go", ALERT_WAIT, || async {
        let text = http
            .get(format!("{}/metrics", op.admin))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        let left: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(&format!("cluster=\"{CLUSTER}\"")))
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(left.join("\n"))
        }
    })
    .await;
    let other_present = series(&c, "leader_present", other, "component", "dispatcher");
    assert_eq!(op.metric(&http, &other_present).await, Some(1.0));
    assert_eq!(
        op.metric(&http, "hakeeper_operator_watched_configmaps")
            .await,
        Some(1.0)
    );
    // And its memory in the state ConfigMap.
    let state = api.get(STATE_CONFIGMAP).await.expect("state");
    let keys: Vec<&String> = state
        .data
        .as_ref()
        .map(|d| d.keys().collect())
        .unwrap_or_default();
    assert!(
        !keys.iter().any(|k| k.ends_with(&format!(".{CLUSTER}"))),
        "the deleted cluster is forgotten: {keys:?}"
    );
    op.assert_no_panic();
    c.cleanup().await;
}
