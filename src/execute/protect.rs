//! Protecting partners: rate limits (per step, and `--rate` overall) and a circuit breaker per host.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Spaces attempts evenly: at most `n` per second.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    /// A pacer for `per_second` attempts a second.
    pub fn new(per_second: f64) -> Pacer {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / per_second.max(1e-9)),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this attempt's slot.
    pub async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().expect("not poisoned");
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// Everything that protects partners during a real run.
#[derive(Debug, Default)]
pub struct Protection {
    /// `--rate`: attempts a second over the whole run.
    pub global: Option<Pacer>,
    /// `rate_limit` by (journey, step).
    pub steps: HashMap<(String, String), Pacer>,
    /// One breaker per host.
    pub breakers: Breakers,
}

impl Protection {
    /// Pacers for `--rate` and every step with a `rate_limit`.
    pub fn new(journeys: &[crate::journey::Journey], global: Option<f64>) -> Protection {
        let steps = journeys
            .iter()
            .flat_map(|j| j.steps.iter().map(move |s| (j, s)))
            .filter_map(|(j, s)| match &s.kind {
                crate::journey::plan::StepKind::Webhook(w) => w
                    .rate
                    .map(|r| ((j.name.clone(), s.id.clone()), Pacer::new(r))),
                _ => None,
            })
            .collect();
        Protection {
            global: global.map(Pacer::new),
            steps,
            breakers: Breakers::default(),
        }
    }

    /// Waits for the breaker and the pacers before an attempt; `Err` when the host is stopped.
    pub async fn before(&self, journey: &str, step: &str, host: &str) -> Result<(), String> {
        match self.breakers.gate(host) {
            Gate::Stopped(why) => return Err(why),
            Gate::Paused(left) => tokio::time::sleep(left).await,
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
    stopped: Option<String>,
}

/// What the breaker says before an attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Send.
    Open,
    /// Wait this long, then send.
    Paused(Duration),
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
        match h
            .paused_until
            .map(|t| t.saturating_duration_since(Instant::now()))
        {
            Some(left) if !left.is_zero() => Gate::Paused(left),
            _ => Gate::Open,
        }
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
    fn hosts_are_named_with_their_port() {
        assert_eq!(host_of("http://127.0.0.1:8080/x?y=1"), "127.0.0.1:8080");
        assert_eq!(host_of("https://example.com/x"), "example.com:443");
    }
}
