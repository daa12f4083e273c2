//! Benchmarks that need a running system (`hakeeper bench ...`). Figures come from here,
//! never from timed assertions in tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::election::{ElectionConfig, Elector, ReleaseReason};
use crate::layout::{ClusterId, Component};
use crate::lease::Timings;
use crate::{Error, Result};

pub mod checkpoints;
pub mod clients;
pub mod operator;

/// Counts the requests a client sends (a watch counts once, when it is opened).
#[derive(Clone, Default)]
pub struct RequestCounter(Arc<AtomicU64>);

impl RequestCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct Counting<S> {
    inner: S,
    counter: RequestCounter,
}

impl<S, R> tower::Service<R> for Counting<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        self.counter.0.fetch_add(1, Ordering::Relaxed);
        self.inner.call(req)
    }
}

/// A client of its own for one contender, with a request counter.
pub fn counted_client(config: kube::Config) -> Result<(kube::Client, RequestCounter)> {
    let counter = RequestCounter::default();
    let c = counter.clone();
    let layer = tower::layer::layer_fn(move |inner| Counting {
        inner,
        counter: c.clone(),
    });
    let client = kube::client::ClientBuilder::try_from(config)?
        .with_layer(&layer)
        .build();
    Ok((client, counter))
}

/// Parameters of `hakeeper bench failover`.
#[derive(Debug, Clone)]
pub struct FailoverParams {
    pub rounds: usize,
    pub contenders: usize,
    pub timings: Timings,
    /// How long to count requests with a stable leader.
    pub rest: Duration,
}

/// Results of `hakeeper bench failover`.
#[derive(Debug, Clone)]
pub struct FailoverReport {
    /// From the leader's crash (no release) to a new confirmed leader.
    pub crash: Vec<Duration>,
    /// From the start of a graceful release to a new confirmed leader.
    pub graceful: Vec<Duration>,
    /// Requests per minute sent by the leader at rest.
    pub leader_per_minute: f64,
    /// Requests per minute sent by each standby at rest.
    pub standby_per_minute: Vec<f64>,
}

struct Contender {
    elector: Elector,
    counter: RequestCounter,
}

/// Rounds of crash and graceful failover among `contenders` in-process contenders, each
/// with its own client, then a quiet period counting each one's requests.
pub async fn failover(
    config: kube::Config,
    namespace: &str,
    params: &FailoverParams,
) -> Result<FailoverReport> {
    params.timings.validate().map_err(Error::Config)?;
    if params.contenders < 2 {
        return Err(Error::Config("failover needs at least 2 contenders".into()));
    }
    let cluster_id: ClusterId =
        format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
            .parse()
            .map_err(Error::Config)?;
    let mut spawned = 0usize;
    let mut spawn = || -> Result<Contender> {
        spawned += 1;
        let (client, counter) = counted_client(config.clone())?;
        let elector = Elector::spawn(
            client,
            namespace,
            ElectionConfig {
                cluster_id: cluster_id.clone(),
                component: Component::Dispatcher,
                identity: format!("bench-{spawned}"),
                address: format!("jm-{spawned}"),
                timings: params.timings,
                owner: None,
            },
        );
        Ok(Contender { elector, counter })
    };
    let mut pool: Vec<Contender> = Vec::new();
    let wait_limit = params.timings.lease_duration * 3 + Duration::from_secs(5);
    let mut report = FailoverReport {
        crash: Vec::new(),
        graceful: Vec::new(),
        leader_per_minute: 0.0,
        standby_per_minute: Vec::new(),
    };
    for round in 0..params.rounds {
        for crash in [true, false] {
            while pool.len() < params.contenders {
                pool.push(spawn()?);
            }
            let leader = wait_leader(&pool, None, wait_limit).await?;
            // Fail at a random point of the renew cycle, not just after a renewal.
            let cycle = params.timings.retry_period.as_micros() as u64;
            tokio::time::sleep(Duration::from_micros(fastrand::u64(0..cycle.max(1)))).await;
            let old = pool.remove(leader);
            let started = Instant::now();
            if crash {
                old.elector.abort();
            } else {
                // Release runs concurrently with the takeover being measured.
                tokio::spawn(old.elector.release(ReleaseReason::ApiDelete));
            }
            wait_leader(&pool, None, wait_limit).await?;
            let took = started.elapsed();
            tracing::info!(round, crash, ?took, "takeover");
            if crash {
                report.crash.push(took);
            } else {
                report.graceful.push(took);
            }
        }
    }
    while pool.len() < params.contenders {
        pool.push(spawn()?);
    }
    let leader = wait_leader(&pool, None, wait_limit).await?;
    // Let the new contenders' initial list and watch happen before counting.
    tokio::time::sleep(params.timings.retry_period * 2).await;
    let before: Vec<u64> = pool.iter().map(|c| c.counter.get()).collect();
    let started = Instant::now();
    tokio::time::sleep(params.rest).await;
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    if wait_leader(&pool, Some(leader), Duration::ZERO)
        .await
        .is_err()
    {
        return Err(Error::Config(
            "leadership changed during the quiet period; the measurement is void".into(),
        ));
    }
    for (i, c) in pool.iter().enumerate() {
        let rate = (c.counter.get() - before[i]) as f64 / minutes;
        if i == leader {
            report.leader_per_minute = rate;
        } else {
            report.standby_per_minute.push(rate);
        }
    }
    for c in pool {
        c.elector.release(ReleaseReason::Shutdown).await;
    }
    Ok(report)
}

/// Wait until exactly one contender leads (and, if given, that it is `expected`).
async fn wait_leader(
    pool: &[Contender],
    expected: Option<usize>,
    limit: Duration,
) -> Result<usize> {
    let deadline = Instant::now() + limit;
    loop {
        let leading: Vec<usize> = pool
            .iter()
            .enumerate()
            .filter(|(_, c)| c.elector.state().borrow().is_leader)
            .map(|(i, _)| i)
            .collect();
        if let [one] = leading.as_slice()
            && expected.is_none_or(|e| e == *one)
        {
            return Ok(*one);
        }
        if Instant::now() >= deadline {
            return Err(Error::Config(format!(
                "no single leader within {limit:?} (leading: {leading:?})"
            )));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The p-th percentile (0..=100) by nearest rank.
pub fn percentile(samples: &[Duration], p: u32) -> Option<Duration> {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (p as usize * n).div_ceil(100).clamp(1, n);
    sorted.get(rank - 1).copied()
}

impl FailoverReport {
    /// A plain-text table of the figures.
    pub fn render(&self) -> String {
        let ms = |d: Option<Duration>| {
            d.map_or("-".into(), |d| {
                format!("{:.1} ms", d.as_secs_f64() * 1000.0)
            })
        };
        let standby = self
            .standby_per_minute
            .iter()
            .map(|r| format!("{r:.1}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "takeover after a crash    ({} rounds): p50 {}, max {}\n\
             takeover after a release  ({} rounds): p50 {}, max {}\n\
             API requests per minute at rest: leader {:.1}; standbys {}\n",
            self.crash.len(),
            ms(percentile(&self.crash, 50)),
            ms(self.crash.iter().max().copied()),
            self.graceful.len(),
            ms(percentile(&self.graceful, 50)),
            ms(self.graceful.iter().max().copied()),
            self.leader_per_minute,
            standby,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<Duration> = [5, 1, 4, 2, 3]
            .iter()
            .map(|&m| Duration::from_millis(m))
            .collect();
        assert_eq!(percentile(&s, 50), Some(Duration::from_millis(3)));
        assert_eq!(percentile(&s, 100), Some(Duration::from_millis(5)));
        assert_eq!(percentile(&s, 0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 50), None);
    }
}
