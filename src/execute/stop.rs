//! Stopping a run: the first SIGINT/SIGTERM (or `--max-duration`) stops new attempts; what is in
//! flight finishes; a second signal ends the process at once.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// Why a run stops early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT (exit 130).
    Interrupt = 1,
    /// SIGTERM (exit 143).
    Terminate = 2,
    /// `--max-duration` ran out.
    Deadline = 3,
    /// stdout was closed (`| head`): nothing more can be shown.
    ClosedOutput = 4,
    /// The state store failed (a PostgreSQL server away past `--state-timeout`): exit 3.
    StateStore = 5,
}

/// Set once; read before every entry and every attempt, and awaited by every wait (a rate
/// limit's slot, a paused host, a retry's backoff) so that a stop ends them at once. It also
/// counts the entries left out because of the stop, so the run can say it did not finish.
#[derive(Debug, Default)]
pub struct Stop {
    reason: AtomicU8,
    skipped: AtomicU64,
    deferred: AtomicU64,
    /// Wakes the waits; works across the lanes' runtimes.
    wake: tokio::sync::Notify,
}

impl Stop {
    /// Asks the run to stop; false when it was already stopping.
    pub fn request(&self, reason: StopReason) -> bool {
        let first = self
            .reason
            .compare_exchange(0, reason as u8, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        self.wake.notify_waiters();
        first
    }

    /// Resolves once a stop is asked for (at once if it was).
    pub async fn stopped(&self) {
        let woken = self.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if self.is_set() {
            return;
        }
        woken.await;
    }

    /// Runs `wait` unless a stop comes first; false when it did.
    pub async fn unless_stopped(&self, wait: impl std::future::Future<Output = ()>) -> bool {
        tokio::select! {
            biased;
            _ = self.stopped() => false,
            _ = wait => true,
        }
    }

    /// Counts an entry left out because the run is stopping.
    pub fn skip(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Entries left out because the run was stopping (the input after them was not read).
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Counts a started entry whose delivery the stop put off (it waits for a later run).
    pub fn defer(&self) {
        self.deferred.fetch_add(1, Ordering::Relaxed);
    }

    /// Started entries whose delivery the stop put off.
    pub fn deferred(&self) -> u64 {
        self.deferred.load(Ordering::Relaxed)
    }

    /// Why the run is stopping, if it is.
    pub fn reason(&self) -> Option<StopReason> {
        match self.reason.load(Ordering::SeqCst) {
            1 => Some(StopReason::Interrupt),
            2 => Some(StopReason::Terminate),
            3 => Some(StopReason::Deadline),
            4 => Some(StopReason::ClosedOutput),
            5 => Some(StopReason::StateStore),
            _ => None,
        }
    }

    /// True once a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.reason().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_stop_ends_a_wait() {
        let s = std::sync::Arc::new(Stop::default());
        let stopper = std::sync::Arc::clone(&s);
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            stopper.request(StopReason::Terminate);
        });
        let waited = s
            .unless_stopped(tokio::time::sleep(std::time::Duration::from_secs(3600)))
            .await;
        assert!(!waited);
        assert!(!s.unless_stopped(async {}).await, "already stopped");
    }

    #[test]
    fn the_first_reason_wins() {
        let s = Stop::default();
        assert!(!s.is_set());
        assert!(s.request(StopReason::Terminate));
        assert!(!s.request(StopReason::Interrupt));
        assert_eq!(s.reason(), Some(StopReason::Terminate));
    }
}
