//! Named exit codes (SPEC §4), computed from the report; the highest applicable wins.

use crate::report::RunReport;

/// An exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Everything held.
    Ok = 0,
    /// An entry failed or was invalid, a threshold was crossed, or an expectation failed.
    Failures = 1,
    /// The input is unusable before anything was sent.
    Usage = 2,
    /// The state store cannot be read or written.
    State = 3,
    /// An internal error.
    Internal = 70,
    /// The state store is locked by another run.
    Locked = 75,
    /// `--max-duration` stopped the run with entries left (as `timeout(1)`).
    Deadline = 124,
    /// SIGINT.
    Interrupted = 130,
    /// SIGTERM.
    Terminated = 143,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The exit code of a run or dry-run: failures, invalid entries or crossed thresholds give 1.
pub fn for_run(report: &RunReport) -> Exit {
    if report.has_failures() {
        Exit::Failures
    } else {
        Exit::Ok
    }
}

/// The exit code of `test`: only expectations decide; none at all is unusable input.
pub fn for_test(report: &RunReport) -> Exit {
    if report.expectations.is_empty() {
        Exit::Usage
    } else if report.expectations.iter().any(|e| e.failure.is_some()) {
        Exit::Failures
    } else {
        Exit::Ok
    }
}
