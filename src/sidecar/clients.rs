//! The clients a sidecar leads for: every contention from the API belongs to one client (a
//! JobManager process), and lives only as long as that client shows life.
//!
//! A client is alive while (1) it has not closed its last event stream, once it opened one,
//! and (2) it has sent a request carrying its `Hakeeper-Client` id within the client timeout.
//! A process that dies loses (1) at once (the kernel closes its sockets); a process that hangs
//! loses (2) after the timeout. Either way the sidecar releases every component the client
//! contended for, and only those.
//!
//! [`Registry`] is the pure bookkeeping (no I/O, time passed in); the sidecar owns one behind
//! a mutex and acts on what it decides.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use uuid::Uuid;

use crate::election::ReleaseReason;
use crate::layout::Component;

/// Clients registered at once, at most (each costs a few hundred bytes and a timer check).
pub const MAX_CLIENTS: usize = 1024;
/// Released clients remembered, so a late keepalive learns why rather than "unknown".
const RELEASED_KEPT: usize = 1024;
/// A client's name (for logs) is cut to this many characters.
const MAX_NAME: usize = 128;

/// A client just ended: what it held, and its streams still to be told.
#[derive(Debug)]
pub struct Ended {
    pub name: Option<String>,
    pub components: BTreeSet<Component>,
    pub released: Released,
    tell: watch::Sender<Option<Released>>,
}

impl Ended {
    /// Tell the client's streams (also done when dropped).
    pub fn announce(self) {}
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.tell.send_replace(Some(self.released));
    }
}

/// How a client ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    pub reason: ReleaseReason,
    pub at: Instant,
}

/// A lookup of a client that is not live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotLive {
    /// Never registered here (or released so long ago that it was forgotten).
    Unknown,
    Released(Released),
}

/// What the registry knows of one live client.
#[derive(Debug)]
pub struct Client {
    pub name: Option<String>,
    pub registered: Instant,
    pub last_seen: Instant,
    /// Event streams open now.
    pub streams: u32,
    /// Components contended on this client's behalf.
    pub components: BTreeSet<Component>,
    /// Told once, when the client is released.
    released: watch::Sender<Option<Released>>,
}

/// The clients of one sidecar.
#[derive(Debug)]
pub struct Registry {
    timeout: Duration,
    live: HashMap<Uuid, Client>,
    released: VecDeque<(Uuid, Released)>,
}

impl Registry {
    pub fn new(timeout: Duration) -> Registry {
        Registry {
            timeout,
            live: HashMap::new(),
            released: VecDeque::new(),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// A new client, alive from `now`. `None` when [`MAX_CLIENTS`] are registered already.
    /// (Whether the sidecar still takes clients is the caller's to check under the same
    /// lock as [`Registry::release_all`].)
    pub fn register(&mut self, name: Option<String>, now: Instant) -> Option<Uuid> {
        if self.live.len() >= MAX_CLIENTS {
            return None;
        }
        let id = Uuid::new_v4();
        let name = name.map(|n| n.chars().take(MAX_NAME).collect());
        self.live.insert(
            id,
            Client {
                name,
                registered: now,
                last_seen: now,
                streams: 0,
                components: BTreeSet::new(),
                released: watch::channel(None).0,
            },
        );
        Some(id)
    }

    fn not_live(&self, id: &Uuid) -> NotLive {
        self.released
            .iter()
            .rev()
            .find(|(r, _)| r == id)
            .map_or(NotLive::Unknown, |(_, r)| NotLive::Released(*r))
    }

    pub fn get(&self, id: &Uuid) -> Result<&Client, NotLive> {
        self.live.get(id).ok_or_else(|| self.not_live(id))
    }

    /// The client showed life at `now`.
    pub fn touch(&mut self, id: &Uuid, now: Instant) -> Result<&Client, NotLive> {
        if let Some(c) = self.live.get_mut(id) {
            c.last_seen = c.last_seen.max(now);
        }
        self.get(id)
    }

    /// An event stream of the client opened: it shows life, and from now on closing its last
    /// stream ends it. The receiver is told when the client is released.
    pub fn open_stream(
        &mut self,
        id: &Uuid,
        now: Instant,
    ) -> Result<watch::Receiver<Option<Released>>, NotLive> {
        match self.live.get_mut(id) {
            Some(c) => {
                c.streams += 1;
                c.last_seen = c.last_seen.max(now);
                Ok(c.released.subscribe())
            }
            None => Err(self.not_live(id)),
        }
    }

    /// An event stream of the client closed. True when it was the client's last one: the
    /// client is gone.
    pub fn close_stream(&mut self, id: &Uuid) -> bool {
        match self.live.get_mut(id) {
            Some(c) => {
                c.streams = c.streams.saturating_sub(1);
                c.streams == 0
            }
            None => false,
        }
    }

    /// `component` is now contended on the client's behalf.
    pub fn bind(&mut self, id: &Uuid, component: Component) -> Result<(), NotLive> {
        match self.live.get_mut(id) {
            Some(c) => {
                c.components.insert(component);
                Ok(())
            }
            None => Err(self.not_live(id)),
        }
    }

    /// `component` is no longer contended for `client` (a `DELETE`).
    pub fn unbind(&mut self, client: &Uuid, component: &Component) {
        if let Some(c) = self.live.get_mut(client) {
            c.components.remove(component);
        }
    }

    /// When `client` runs out of time, if it shows no life before; `None` for a timeout
    /// too long to be reached.
    fn deadline(&self, client: &Client) -> Option<Instant> {
        client.last_seen.checked_add(self.timeout)
    }

    /// When the next client runs out of time, if none shows life before.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.live.values().filter_map(|c| self.deadline(c)).min()
    }

    /// The clients that showed no life within the timeout before `now`, oldest first.
    pub fn expired(&self, now: Instant) -> Vec<Uuid> {
        let mut ids: Vec<(Instant, Uuid)> = self
            .live
            .iter()
            .filter(|(_, c)| self.deadline(c).is_some_and(|d| now >= d))
            .map(|(id, c)| (c.last_seen, *id))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// End the clients that showed no life within the timeout before `now`, deciding and
    /// ending under one lock (a keepalive cannot land in between).
    pub fn release_expired(&mut self, now: Instant) -> Vec<(Uuid, Ended)> {
        self.expired(now)
            .into_iter()
            .filter_map(|id| {
                self.release(&id, ReleaseReason::ClientTimeout, now)
                    .map(|e| (id, e))
            })
            .collect()
    }

    /// End a client. `None` if it was not live. Its streams are told why only when the
    /// returned [`Ended`] is dropped or [`Ended::announce`]d, so that the caller can first
    /// take away what the client held.
    pub fn release(&mut self, id: &Uuid, reason: ReleaseReason, now: Instant) -> Option<Ended> {
        let client = self.live.remove(id)?;
        let released = Released { reason, at: now };
        if self.released.len() >= RELEASED_KEPT {
            self.released.pop_front();
        }
        self.released.push_back((*id, released));
        Some(Ended {
            name: client.name,
            components: client.components,
            released,
            tell: client.released,
        })
    }

    /// Every live client, released (at shutdown).
    pub fn release_all(&mut self, reason: ReleaseReason, now: Instant) -> Vec<Ended> {
        let ids: Vec<Uuid> = self.live.keys().copied().collect();
        ids.iter()
            .filter_map(|id| self.release(id, reason, now))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(2);

    fn job(n: u8) -> Component {
        format!("jobmanager/{:032x}", n).parse().unwrap()
    }

    #[test]
    fn a_client_expires_a_timeout_after_its_last_sign_of_life() {
        let t0 = Instant::now();
        let mut r = Registry::new(T);
        let a = r.register(Some("jm-0".into()), t0).unwrap();
        assert_eq!(r.next_deadline(), Some(t0 + T));
        assert!(r.expired(t0 + T - Duration::from_millis(1)).is_empty());
        r.touch(&a, t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(r.next_deadline(), Some(t0 + Duration::from_secs(3)));
        assert!(r.expired(t0 + T).is_empty(), "the touch moved the deadline");
        assert_eq!(r.expired(t0 + Duration::from_secs(3)), vec![a]);
        // A touch from the past (a request that took long to reach the registry) never
        // moves the deadline back.
        r.touch(&a, t0).unwrap();
        assert_eq!(r.next_deadline(), Some(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn an_open_stream_is_no_sign_of_life_by_itself() {
        // A hung process keeps its sockets open: only requests count.
        let t0 = Instant::now();
        let mut r = Registry::new(T);
        let a = r.register(None, t0).unwrap();
        let _rx = r.open_stream(&a, t0).unwrap();
        assert_eq!(r.expired(t0 + T), vec![a]);
    }

    #[test]
    fn the_last_stream_closing_ends_the_client() {
        let t0 = Instant::now();
        let mut r = Registry::new(T);
        let a = r.register(None, t0).unwrap();
        let _s1 = r.open_stream(&a, t0).unwrap();
        let _s2 = r.open_stream(&a, t0).unwrap();
        assert!(!r.close_stream(&a), "one stream is still open");
        assert!(r.close_stream(&a), "that was the last one");
        // After the release, a late close is nothing.
        r.release(&a, ReleaseReason::ClientGone, t0);
        assert!(!r.close_stream(&a));
    }

    #[test]
    fn release_returns_only_the_clients_components_and_tells_its_streams() {
        let t0 = Instant::now();
        let mut r = Registry::new(T);
        let a = r.register(Some("dispatcher side".into()), t0).unwrap();
        let b = r.register(Some("job side".into()), t0).unwrap();
        r.bind(&a, Component::Dispatcher).unwrap();
        r.bind(&a, Component::RestServer).unwrap();
        r.bind(&b, job(1)).unwrap();
        let rx = r.open_stream(&a, t0).unwrap();
        let ended = r.release(&a, ReleaseReason::ClientTimeout, t0 + T).unwrap();
        assert_eq!(ended.name.as_deref(), Some("dispatcher side"));
        assert_eq!(
            ended.components.iter().cloned().collect::<Vec<_>>(),
            vec![Component::Dispatcher, Component::RestServer]
        );
        assert_eq!(*rx.borrow(), None, "told only once announced");
        ended.announce();
        assert_eq!(
            *rx.borrow(),
            Some(Released {
                reason: ReleaseReason::ClientTimeout,
                at: t0 + T
            })
        );
        // b is untouched.
        assert_eq!(
            r.get(&b).unwrap().components.iter().collect::<Vec<_>>(),
            vec![&job(1)]
        );
        // Releasing twice gives nothing the second time.
        assert!(r.release(&a, ReleaseReason::ClientGone, t0 + T).is_none());
    }

    #[test]
    fn a_released_client_is_told_apart_from_an_unknown_one() {
        let t0 = Instant::now();
        let mut r = Registry::new(T);
        let a = r.register(None, t0).unwrap();
        r.release(&a, ReleaseReason::ClientGone, t0);
        assert!(matches!(
            r.touch(&a, t0),
            Err(NotLive::Released(Released {
                reason: ReleaseReason::ClientGone,
                ..
            }))
        ));
        assert!(matches!(
            r.bind(&a, Component::Dispatcher),
            Err(NotLive::Released(_))
        ));
        assert!(matches!(r.open_stream(&a, t0), Err(NotLive::Released(_))));
        assert_eq!(r.get(&Uuid::new_v4()).err(), Some(NotLive::Unknown));
    }

    #[test]
    fn registrations_and_memory_are_bounded() {
        let t0 = Instant::now();
        let mut r = Registry::new(T);
        let ids: Vec<Uuid> = (0..MAX_CLIENTS)
            .map(|_| r.register(None, t0).unwrap())
            .collect();
        assert!(r.register(None, t0).is_none(), "one too many");
        for id in &ids {
            r.release(id, ReleaseReason::Shutdown, t0);
        }
        let again: Vec<Uuid> = (0..10).map(|_| r.register(None, t0).unwrap()).collect();
        for id in &again {
            r.release(id, ReleaseReason::Shutdown, t0);
        }
        assert_eq!(r.released.len(), RELEASED_KEPT);
        // The oldest were forgotten, the newest are remembered.
        assert_eq!(r.get(&ids[0]).err(), Some(NotLive::Unknown));
        assert!(matches!(r.get(&again[9]), Err(NotLive::Released(_))));
        let long = "x".repeat(1000);
        let c = r.register(Some(long), t0).unwrap();
        assert_eq!(r.get(&c).unwrap().name.as_ref().unwrap().len(), MAX_NAME);
    }

    #[test]
    fn unbind_forgets_a_component_of_that_client_only() {
        let t0 = Instant::now();
        let mut r = Registry::new(T);
        let a = r.register(None, t0).unwrap();
        let b = r.register(None, t0).unwrap();
        r.bind(&a, Component::Dispatcher).unwrap();
        // A DELETE of a's contention racing b's PUT of the same component: b keeps it.
        r.bind(&b, Component::Dispatcher).unwrap();
        r.unbind(&a, &Component::Dispatcher);
        let ended = r.release(&a, ReleaseReason::ClientGone, t0).unwrap();
        assert!(ended.components.is_empty());
        let ended = r.release(&b, ReleaseReason::ClientGone, t0).unwrap();
        assert_eq!(ended.components.len(), 1);
    }

    #[test]
    fn a_timeout_too_long_to_reach_never_expires_and_never_panics() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(u64::MAX / 2));
        r.register(None, t0).unwrap();
        assert_eq!(r.next_deadline(), None);
        assert!(r.release_expired(t0 + T).is_empty());
    }

    #[test]
    fn release_expired_ends_exactly_the_silent_clients() {
        let t0 = Instant::now();
        let mut r = Registry::new(T);
        let silent = r.register(None, t0).unwrap();
        let alive = r.register(None, t0).unwrap();
        r.touch(&alive, t0 + T / 2).unwrap();
        let ended = r.release_expired(t0 + T);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].0, silent);
        assert_eq!(ended[0].1.released.reason, ReleaseReason::ClientTimeout);
        assert!(r.get(&alive).is_ok());
    }

    #[test]
    fn expired_clients_come_oldest_first() {
        let t0 = Instant::now();
        let mut r = Registry::new(T);
        let late = r.register(None, t0 + Duration::from_millis(10)).unwrap();
        let early = r.register(None, t0).unwrap();
        assert_eq!(r.expired(t0 + T * 2), vec![early, late]);
    }
}
