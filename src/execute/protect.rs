//! Protecting partners: rate limits (per step, and `--rate` overall) and a circuit breaker per host.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Spaces attempts evenly: at most `n` per second (a rate that can change while the run goes:
/// a host's share of a limit it shares with others).
#[derive(Debug)]
pub struct Pacer {
    /// Nanoseconds between two attempts.
    interval: std::sync::atomic::AtomicU64,
    next: Mutex<Instant>,
    /// Wakes the attempts waiting for a slot when the rate changes: they take new slots.
    changed: tokio::sync::Notify,
}

impl Pacer {
    /// A pacer for `per_second` attempts a second.
    pub fn new(per_second: f64) -> Pacer {
        Pacer {
            interval: std::sync::atomic::AtomicU64::new(Self::nanos(per_second)),
            next: Mutex::new(Instant::now()),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn nanos(per_second: f64) -> u64 {
        (1e9 / per_second.max(1e-9)).min(u64::MAX as f64) as u64
    }

    /// From now on, `per_second` attempts a second: the attempts waiting take new slots.
    pub fn set_rate(&self, per_second: f64) {
        let nanos = Self::nanos(per_second);
        let old = self
            .interval
            .swap(nanos, std::sync::atomic::Ordering::Relaxed);
        if old == nanos {
            return;
        }
        if let Ok(mut next) = self.next.lock() {
            // The slots handed out so far were spaced at the old rate.
            let now = Instant::now();
            *next = (*next).min(now + Duration::from_nanos(nanos)).max(now);
        }
        self.changed.notify_waiters();
    }

    /// Waits for this attempt's slot.
    pub async fn wait(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let interval =
                Duration::from_nanos(self.interval.load(std::sync::atomic::Ordering::Relaxed));
            let slot = {
                let mut next = self.next.lock().expect("not poisoned");
                let slot = (*next).max(Instant::now());
                *next = slot + interval;
                slot
            };
            tokio::select! {
                _ = tokio::time::sleep_until(slot.into()) => return,
                _ = changed => {}
            }
        }
    }
}

/// How a limit is divided among the hosts that run shards of one export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShareMode {
    /// Each host takes 1/N (`--shard K/N`).
    Static,
    /// The hosts running now divide it among themselves, through the shared store.
    Dynamic,
}

/// One limit this host shares: a step's `rate_limit` or `--rate`.
#[derive(Debug)]
pub struct Share {
    /// `journey/step`, or `--rate`.
    pub key: String,
    /// The whole run's limit, attempts a second.
    pub limit: f64,
    /// How it is divided.
    pub mode: ShareMode,
    /// This host's pacer.
    pub pacer: std::sync::Arc<Pacer>,
    /// The lowest and highest share this host used, attempts a second (as f64 bits).
    used: Mutex<(f64, f64)>,
}

impl Share {
    fn new(key: String, limit: f64, mode: ShareMode, hosts: u64) -> Share {
        let share = limit / hosts.max(1) as f64;
        Share {
            key,
            limit,
            mode,
            pacer: std::sync::Arc::new(Pacer::new(share)),
            used: Mutex::new((share, share)),
        }
    }

    /// This host's share is now `share` attempts a second.
    pub fn set(&self, share: f64) {
        self.pacer.set_rate(share);
        if let Ok(mut used) = self.used.lock() {
            *used = (used.0.min(share), used.1.max(share));
        }
    }

    /// The lowest and highest share used.
    pub fn used(&self) -> (f64, f64) {
        self.used
            .lock()
            .map(|u| *u)
            .unwrap_or((self.limit, self.limit))
    }
}

/// Everything that protects partners during a real run.
#[derive(Debug, Default)]
pub struct Protection {
    /// `--rate`: attempts a second over the whole run.
    pub global: Option<std::sync::Arc<Pacer>>,
    /// `rate_limit` by (journey, step).
    pub steps: HashMap<(String, String), std::sync::Arc<Pacer>>,
    /// Every limit with this host's share of it.
    pub shares: Vec<Share>,
    /// One breaker per host.
    pub breakers: Breakers,
    /// Pauses a `429` with `Retry-After` asked for, to tell the other hosts (a shared store).
    pub told: Mutex<Vec<(String, Duration)>>,
    /// Whether a `429` with `Retry-After` pauses the whole host (the store is shared).
    pub shared_pauses: bool,
}

/// What divides the limits: the shard (`--shard K/N`) and whether the store is shared.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sharing {
    /// `N` of `--shard K/N` (1 without).
    pub hosts: u64,
    /// The store is shared by the hosts (PostgreSQL): dynamic shares and pauses reach them.
    pub shared_store: bool,
}

impl Protection {
    /// Pacers for `--rate` and every step with a `rate_limit`, at this host's share.
    pub fn new(
        journeys: &[crate::journey::Journey],
        global: Option<f64>,
        sharing: Sharing,
    ) -> Protection {
        let mut shares = Vec::new();
        let mut steps = HashMap::new();
        let mode_of = |dynamic: bool| match dynamic && sharing.shared_store {
            true => ShareMode::Dynamic,
            false => ShareMode::Static,
        };
        for j in journeys {
            for s in &j.steps {
                let crate::journey::plan::StepKind::Webhook(w) = &s.kind else {
                    continue;
                };
                let Some(limit) = w.rate else { continue };
                let share = Share::new(
                    format!("{}/{}", j.name, s.id),
                    limit,
                    mode_of(w.rate_share_dynamic),
                    sharing.hosts,
                );
                steps.insert((j.name.clone(), s.id.clone()), share.pacer.clone());
                shares.push(share);
            }
        }
        let global = global.map(|limit| {
            let dynamic = journeys.iter().any(|j| j.rate_share_dynamic);
            let share = Share::new("--rate".into(), limit, mode_of(dynamic), sharing.hosts);
            let pacer = share.pacer.clone();
            shares.push(share);
            pacer
        });
        Protection {
            global,
            steps,
            shares,
            breakers: Breakers::default(),
            told: Mutex::new(Vec::new()),
            shared_pauses: sharing.shared_store,
        }
    }

    /// Waits for the breaker and the pacers before an attempt; `Err` when the host is stopped,
    /// or when its partner asked for quiet for longer than `max_wait` (the step's
    /// `max_backoff`): as with a `Retry-After` past it, the delivery waits for a later run.
    pub async fn before(
        &self,
        journey: &str,
        step: &str,
        host: &str,
        max_wait: Duration,
    ) -> Result<(), Held> {
        match self.breakers.gate(host) {
            Gate::Stopped(why) => return Err(Held::Stopped(why)),
            Gate::Asked(left) if left > max_wait => {
                return Err(Held::Beyond(format!(
                    "{host} asked for quiet for {}s more (HTTP 429 Retry-After), past max_backoff {}s",
                    left.as_secs_f64().ceil() as u64,
                    max_wait.as_secs()
                )));
            }
            Gate::Paused(left) | Gate::Asked(left) => tokio::time::sleep(left).await,
            Gate::Open => {}
        }
        if let Some(g) = &self.global {
            g.wait().await;
        }
        if !self.steps.is_empty()
            && let Some(p) = self.steps.get(&(journey.to_string(), step.to_string()))
        {
            p.wait().await;
        }
        Ok(())
    }

    /// True when a journey asks for `rate_share: dynamic` on a limit it has.
    pub fn wants_dynamic(&self, journeys: &[crate::journey::Journey]) -> bool {
        journeys.iter().any(|j| {
            (j.rate_share_dynamic && self.global.is_some())
                || j.steps.iter().any(|s| match &s.kind {
                    crate::journey::plan::StepKind::Webhook(w) => {
                        w.rate.is_some() && w.rate_share_dynamic
                    }
                    _ => false,
                })
        })
    }

    /// A `429` asked `host` for a pause: with a shared store, every attempt to it here waits,
    /// and the other hosts are told.
    pub fn asked_pause(&self, host: &str, pause: Duration) {
        if !self.shared_pauses {
            return;
        }
        self.breakers.pause(host, pause);
        if let Ok(mut told) = self.told.lock() {
            told.push((host.to_string(), pause));
        }
    }

    /// What this host used of each limit it shares, as the summary and the report say it.
    pub fn shares_used(&self, sharing: Sharing) -> Vec<ShareUsed> {
        self.shares
            .iter()
            .filter(|s| sharing.hosts > 1 || s.mode == ShareMode::Dynamic)
            .map(|s| {
                let (low, high) = s.used();
                ShareUsed {
                    limit: s.key.clone(),
                    limit_per_second: s.limit,
                    mode: s.mode,
                    hosts: sharing.hosts,
                    share_per_second_min: low,
                    share_per_second_max: high,
                }
            })
            .collect()
    }
}

/// What a host used of a limit it shared.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ShareUsed {
    /// `journey/step`, or `--rate`.
    pub limit: String,
    /// The whole run's limit.
    pub limit_per_second: f64,
    /// How it was divided.
    pub mode: ShareMode,
    /// `N` of `--shard K/N`.
    pub hosts: u64,
    /// The lowest share this host used.
    pub share_per_second_min: f64,
    /// The highest share this host used.
    pub share_per_second_max: f64,
}

/// `host:port` of a URL (what the breaker counts by).
pub fn host_of(url: &str) -> String {
    super::urls::parse(url)
        .ok()
        .and_then(|u| {
            let mut port = itoa::Buffer::new();
            let port = port.format(u.port_or_known_default().unwrap_or(0));
            u.host_str().map(|h| [h, ":", port].concat())
        })
        .unwrap_or_default()
}

/// Consecutive failures that pause a host, and for how long.
const FAILURES_TO_PAUSE: u32 = 10;
const PAUSE: Duration = Duration::from_secs(5);
/// Consecutive 401/403/410 answers that stop a host for the rest of the run.
const DENIALS_TO_STOP: u32 = 5;

#[derive(Debug, Default)]
struct Host {
    failures: u32,
    denials: u32,
    /// Times its breaker paused it.
    pauses: u32,
    paused_until: Option<Instant>,
    /// Until when the partner asked for quiet (`429` with `Retry-After`): an answer that shows
    /// the host is up does not end it.
    asked_until: Option<Instant>,
    stopped: Option<String>,
}

/// Why an attempt is not made.
#[derive(Debug, PartialEq, Eq)]
pub enum Held {
    /// The host is stopped for the rest of the run (why).
    Stopped(String),
    /// The partner asked for quiet for longer than the step waits (why): a later run sends it.
    Beyond(String),
}

/// What the breaker says before an attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Send.
    Open,
    /// Wait this long (the breaker's own pause), then send.
    Paused(Duration),
    /// Wait this long, which the partner asked for (`429` with `Retry-After`), then send.
    Asked(Duration),
    /// Do not send (why).
    Stopped(String),
}

/// One breaker per host.
#[derive(Debug, Default)]
pub struct Breakers {
    hosts: Mutex<foldhash::HashMap<String, Host>>,
}

impl Breakers {
    /// Whether an attempt to `host` may go.
    pub fn gate(&self, host: &str) -> Gate {
        let hosts = self.hosts.lock().expect("not poisoned");
        let Some(h) = hosts.get(host) else {
            return Gate::Open;
        };
        if let Some(why) = &h.stopped {
            return Gate::Stopped(why.clone());
        }
        let now = Instant::now();
        let left = |until: Option<Instant>| {
            until.map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
        };
        let (paused, asked) = (left(h.paused_until), left(h.asked_until));
        if !asked.is_zero() && asked >= paused {
            Gate::Asked(asked)
        } else if !paused.is_zero() {
            Gate::Paused(paused)
        } else {
            Gate::Open
        }
    }

    /// Pauses every attempt to `host` for `pause` (a partner's `429` with `Retry-After`,
    /// here or on another host sharing the store); a longer pause already set stands.
    pub fn pause(&self, host: &str, pause: Duration) {
        let mut hosts = self.hosts.lock().expect("not poisoned");
        let h = hosts.entry(host.to_string()).or_default();
        let until = Instant::now() + pause;
        h.asked_until = Some(h.asked_until.map_or(until, |t| t.max(until)));
    }

    /// Records an answer: `Some(status)` or `None` for a transport failure.
    pub fn record(&self, host: &str, status: Option<u16>) {
        let mut hosts = self.hosts.lock().expect("not poisoned");
        let h = hosts.entry(host.to_string()).or_default();
        match status {
            Some(401 | 403 | 410) => {
                h.denials += 1;
                if h.denials >= DENIALS_TO_STOP && h.stopped.is_none() {
                    h.stopped = Some(format!(
                        "{} consecutive 401/403/410 answers from {host}: its key looks revoked; the run stopped sending to it",
                        h.denials
                    ));
                }
            }
            // An answer that is not a server's trouble (a success, or a 4xx about the request
            // itself) shows the host is up.
            Some(s) if s < 400 || (s < 500 && s != 408 && s != 429) => {
                *h = Host {
                    stopped: h.stopped.take(),
                    pauses: h.pauses,
                    asked_until: h.asked_until,
                    ..Host::default()
                }
            }
            _ => {
                h.denials = 0;
                h.failures += 1;
                if h.failures >= FAILURES_TO_PAUSE {
                    h.failures = 0;
                    h.pauses += 1;
                    h.paused_until = Some(Instant::now() + PAUSE);
                }
            }
        }
    }

    /// Each host the breaker paused, and how often.
    pub fn paused(&self) -> Vec<String> {
        let hosts = self.hosts.lock().expect("not poisoned");
        let mut out: Vec<String> = hosts
            .iter()
            .filter(|(_, h)| h.pauses > 0)
            .map(|(host, h)| {
                let times = if h.pauses == 1 { "once" } else { "times" };
                let n = if h.pauses == 1 { String::new() } else { format!("{} ", h.pauses) };
                format!(
                    "{FAILURES_TO_PAUSE} consecutive failed attempts to {host} paused sending to it for {}s, {n}{times}",
                    PAUSE.as_secs()
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Why each stopped host was stopped.
    pub fn stopped(&self) -> Vec<String> {
        let hosts = self.hosts.lock().expect("not poisoned");
        let mut out: Vec<String> = hosts.values().filter_map(|h| h.stopped.clone()).collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_keys_stop_a_host_and_failures_pause_it() {
        let b = Breakers::default();
        for _ in 0..4 {
            b.record("a", Some(401));
        }
        assert_eq!(b.gate("a"), Gate::Open);
        b.record("a", Some(403));
        assert!(matches!(b.gate("a"), Gate::Stopped(why) if why.contains("looks revoked")));
        for _ in 0..9 {
            b.record("b", Some(503));
        }
        assert_eq!(b.gate("b"), Gate::Open);
        b.record("b", None);
        assert!(matches!(b.gate("b"), Gate::Paused(_)));
        b.record("b", Some(200));
        assert_eq!(
            b.paused(),
            ["10 consecutive failed attempts to b paused sending to it for 5s, once"],
            "a success does not forget the pause"
        );
        b.record("c", Some(401));
        b.record("c", Some(200));
        for _ in 0..4 {
            b.record("c", Some(401));
        }
        assert_eq!(b.gate("c"), Gate::Open, "a success resets the count");
        for _ in 0..12 {
            b.record("d", Some(422));
        }
        assert_eq!(
            b.gate("d"),
            Gate::Open,
            "rejected payloads say the host is up"
        );
        for status in [503; 9].into_iter().chain([404, 503]) {
            b.record("e", Some(status));
        }
        assert_eq!(b.gate("e"), Gate::Open, "a 404 breaks the run of failures");
        for _ in 0..10 {
            b.record("f", Some(429));
        }
        assert!(
            matches!(b.gate("f"), Gate::Paused(_)),
            "429s are the host's trouble"
        );
    }

    #[test]
    fn a_pause_a_partner_asked_for_outlasts_a_success() {
        let b = Breakers::default();
        b.pause("a", Duration::from_secs(60));
        b.record("a", Some(200));
        assert!(matches!(b.gate("a"), Gate::Asked(_)));
        assert!(b.paused().is_empty(), "not the breaker's pause");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_rate_that_rises_is_used_by_the_attempts_already_waiting() {
        let p = std::sync::Arc::new(Pacer::new(0.1));
        p.wait().await;
        let waiting = {
            let p = std::sync::Arc::clone(&p);
            tokio::spawn(async move { p.wait().await })
        };
        tokio::task::yield_now().await;
        let started = Instant::now();
        p.set_rate(1000.0);
        tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("woken by the new rate, not 10 s later")
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn hosts_are_named_with_their_port() {
        assert_eq!(host_of("http://127.0.0.1:8080/x?y=1"), "127.0.0.1:8080");
        assert_eq!(host_of("https://example.com/x"), "example.com:443");
    }
}
