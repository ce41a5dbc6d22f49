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
}

/// Set once; read before every entry and every attempt. It also counts the entries left out
/// because of the stop, so the run can say it did not finish.
#[derive(Debug, Default)]
pub struct Stop {
    reason: AtomicU8,
    skipped: AtomicU64,
}

impl Stop {
    /// Asks the run to stop; false when it was already stopping.
    pub fn request(&self, reason: StopReason) -> bool {
        self.reason
            .compare_exchange(0, reason as u8, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// Counts an entry left out because the run is stopping.
    pub fn skip(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Entries left out because the run was stopping (the input after them was not read).
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Why the run is stopping, if it is.
    pub fn reason(&self) -> Option<StopReason> {
        match self.reason.load(Ordering::SeqCst) {
            1 => Some(StopReason::Interrupt),
            2 => Some(StopReason::Terminate),
            3 => Some(StopReason::Deadline),
            4 => Some(StopReason::ClosedOutput),
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

    #[test]
    fn the_first_reason_wins() {
        let s = Stop::default();
        assert!(!s.is_set());
        assert!(s.request(StopReason::Terminate));
        assert!(!s.request(StopReason::Interrupt));
        assert_eq!(s.reason(), Some(StopReason::Terminate));
    }
}
