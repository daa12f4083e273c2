//! Randomized fault test of election and fencing, seeded and reproducible
//! (`HAKEEPER_CHAOS_SEED=<n>` replays a run; the seed is printed).
//!
//! Several contenders lead and write through the fence while the test crashes them, stalls
//! them for longer than the lease (their requests are held and sent afterwards, as a frozen
//! process's would be), injects API latency and 5xx answers, and drops every watch. Then:
//! - per ConfigMap, the successful fenced writes, in resourceVersion order, never return to
//!   an earlier session, and each landed while the lock named the writer;
//! - after the faults stop, a leader exists again within lease + retry period.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestCluster, gated_client};
use futures::StreamExt;
use hakeeper::apiserver::DevServerConfig;
use hakeeper::election::{ElectionConfig, Elector};
use hakeeper::layout::{ClusterId, Component};
use hakeeper::lease::{LEADER_ANNOTATION, LeaderRecord, Timings};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{WatchEvent, WatchParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const TIMINGS: Timings = Timings {
    lease_duration: Duration::from_millis(1500),
    renew_deadline: Duration::from_millis(1000),
    retry_period: Duration::from_millis(300),
};
const CONTENDERS: usize = 4;
const CHAOS: Duration = Duration::from_secs(12);
/// Allowance for the round trips of an acquisition and its confirmation.
const ROUND_TRIPS: Duration = Duration::from_millis(250);
const KEY: &str = "fence-test";

struct Slot {
    elector: Elector,
    writer: JoinHandle<()>,
    gate: watch::Sender<bool>,
}

/// Who owns each session (session → identity).
type Owners = Arc<Mutex<HashMap<String, String>>>;

async fn spawn_slot(c: &TestCluster, n: usize, generation: usize, owners: &Owners) -> Slot {
    let (gate, closed) = watch::channel(false);
    let client = gated_client(c.server.as_ref().unwrap(), closed).await;
    let identity = format!("c{n}-g{generation}");
    let elector = Elector::spawn(
        client,
        &c.namespace,
        ElectionConfig {
            cluster_id: "chaos".parse::<ClusterId>().unwrap(),
            component: Component::Dispatcher,
            identity: identity.clone(),
            address: format!("jm-{n}"),
            timings: TIMINGS,
            owner: None,
        },
    );
    let state = elector.state();
    let fence = elector.fence().clone();
    let owners = owners.clone();
    let writer = tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            tokio::time::sleep(Duration::from_millis(20 + fastrand::u64(0..40))).await;
            let s = state.borrow().clone();
            let (true, Some(session)) = (s.is_leader, s.session_id) else {
                continue;
            };
            owners
                .lock()
                .unwrap()
                .insert(session.to_string(), identity.clone());
            n += 1;
            let value = format!("{session}/{n}");
            // Failures (NotLeader, timeouts, 5xx) are expected under chaos; what lands is
            // checked from the server's history afterwards.
            let _ = fence
                .update(Some(session), |data| {
                    data.insert(KEY.to_string(), value.clone());
                    Ok(())
                })
                .await;
        }
    });
    Slot {
        elector,
        writer,
        gate,
    }
}

fn stop(slot: Slot) {
    slot.writer.abort();
    slot.elector.abort();
    let _ = slot.gate.send(false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_writes_never_go_back_to_an_earlier_session() {
    common::init_logs();
    let config = DevServerConfig {
        history_limit: 1_000_000,
        ..Default::default()
    };
    let c = TestCluster::start_with(config).await;
    let Some(server) = c.embedded("fault injection") else {
        return c.cleanup().await;
    };
    let seed: u64 = std::env::var("HAKEEPER_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    eprintln!("chaos seed: {seed} (set HAKEEPER_CHAOS_SEED to replay)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let faults = server.faults();
    let api = c.api::<ConfigMap>();
    let start_rv = c.current_version().await;

    let owners: Owners = Arc::default();
    let mut generation = 0;
    let mut slots: Vec<Option<Slot>> = Vec::new();
    for n in 0..CONTENDERS {
        slots.push(Some(spawn_slot(&c, n, generation, &owners).await));
    }
    let mut log = Vec::new();
    let chaos_end = Instant::now() + CHAOS;
    while Instant::now() < chaos_end {
        tokio::time::sleep(Duration::from_millis(rng.u64(200..700))).await;
        let n = rng.usize(..CONTENDERS);
        match rng.u8(0..8) {
            0 => {
                if let Some(slot) = slots[n].take() {
                    stop(slot);
                    log.push(format!("crash c{n}"));
                }
            }
            1 => {
                if slots[n].is_none() {
                    generation += 1;
                    slots[n] = Some(spawn_slot(&c, n, generation, &owners).await);
                    log.push(format!("restart c{n}"));
                }
            }
            2 | 7 => {
                // Mostly stall the leader: its held writes are the dangerous ones.
                let leader = slots.iter().position(|s| {
                    s.as_ref()
                        .is_some_and(|s| s.elector.state().borrow().is_leader)
                });
                let n = match leader {
                    Some(l) if rng.u8(0..3) > 0 => l,
                    _ => n,
                };
                if let Some(slot) = &slots[n] {
                    let stall = TIMINGS.lease_duration + Duration::from_millis(rng.u64(100..1000));
                    let _ = slot.gate.send(true);
                    let gate = slot.gate.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(stall).await;
                        let _ = gate.send(false);
                    });
                    log.push(format!("stall c{n} {stall:?}"));
                }
            }
            3 => {
                let latency = Duration::from_millis(rng.u64(20..300));
                faults.set_latency(latency);
                log.push(format!("latency {latency:?}"));
            }
            4 => {
                faults.set_error_rate(0.3, &[500, 503], Some(rng.u64(..)));
                log.push("errors 30%".into());
            }
            5 => {
                faults.close_watches();
                log.push("close watches".into());
            }
            _ => {
                faults.clear();
                log.push("clear".into());
            }
        }
    }
    eprintln!("chaos schedule: {}", log.join(", "));

    // Faults stop: every contender runs freely again, at least two are alive.
    faults.clear();
    for (n, slot) in slots.iter_mut().enumerate() {
        match slot {
            Some(s) => {
                let _ = s.gate.send(false);
            }
            None if n < 2 => {
                generation += 1;
                *slot = Some(spawn_slot(&c, n, generation, &owners).await);
            }
            None => {}
        }
    }
    let stopped = Instant::now();
    let bound = TIMINGS.lease_duration + TIMINGS.retry_period + ROUND_TRIPS;
    loop {
        let leading = slots
            .iter()
            .flatten()
            .filter(|s| s.elector.state().borrow().is_leader)
            .count();
        if leading >= 1 {
            eprintln!(
                "leader again {:?} after the faults stopped",
                stopped.elapsed()
            );
            break;
        }
        assert!(
            stopped.elapsed() <= bound,
            "no leader within lease + retry period ({bound:?}) after the faults stopped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Let writes and renewals run for a while in calm conditions.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for slot in slots.into_iter().flatten() {
        stop(slot);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Read the whole history of the lock ConfigMap from the server, in order.
    let end_rv: u64 = c.current_version().await.parse().unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &start_rv)
        .await
        .unwrap()
        .boxed();
    let mut versions: Vec<ConfigMap> = Vec::new();
    let mut last_rv = 0u64;
    while last_rv < end_rv {
        let event = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("history in time")
            .expect("stream open")
            .expect("event");
        let cm = match event {
            WatchEvent::Added(cm) | WatchEvent::Modified(cm) | WatchEvent::Deleted(cm) => cm,
            WatchEvent::Bookmark(b) => {
                last_rv = b.metadata.resource_version.parse().unwrap();
                continue;
            }
            WatchEvent::Error(e) => panic!("history unavailable: {e:?}"),
        };
        last_rv = cm
            .metadata
            .resource_version
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        if cm.metadata.name.as_deref() == Some("chaos-dispatcher-leader") {
            versions.push(cm);
        }
        if last_rv >= end_rv {
            break;
        }
    }

    let owners = owners.lock().unwrap().clone();
    let mut sessions: Vec<String> = Vec::new();
    let mut writes = 0;
    let mut previous: Option<String> = None;
    for cm in &versions {
        let data = cm.data.clone().unwrap_or_default();
        let Some(value) = data.get(KEY) else { continue };
        if previous.as_ref() == Some(value) {
            continue;
        }
        previous = Some(value.clone());
        writes += 1;
        let session = value.split('/').next().unwrap().to_string();
        let holder = cm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LEADER_ANNOTATION))
            .and_then(|r| LeaderRecord::parse(r).ok())
            .map(|r| r.holder_identity)
            .unwrap_or_default();
        let owner = owners.get(&session).cloned().unwrap_or_default();
        assert_eq!(
            holder, owner,
            "write {value} at resourceVersion {:?} landed while the lock named {holder:?}",
            cm.metadata.resource_version
        );
        if sessions.last() != Some(&session) {
            assert!(
                !sessions.contains(&session),
                "writes went back to session {session} after {:?}",
                sessions.last()
            );
            sessions.push(session);
        }
    }
    eprintln!(
        "{writes} fenced writes landed, from {} sessions in turn, over {} versions",
        sessions.len(),
        versions.len()
    );
    assert!(
        writes >= 20,
        "the test made enough writes to mean something ({writes})"
    );
    assert!(
        sessions.len() >= 2,
        "leadership changed hands during the test ({} sessions)",
        sessions.len()
    );
    c.cleanup().await;
}
