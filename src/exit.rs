//! Named exit codes (SPEC §4), computed from the report in one place ([`of`]); the highest
//! applicable wins.

use crate::execute::stop::StopReason;
use crate::report::{Mode, RunReport};

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

/// The exit code of a finished run, dry-run or test: what its entries or expectations say,
/// raised by a signal that stopped it (130, 143), `--max-duration` with entries left (124) and
/// a state store that could not write (3).
pub fn of(report: &RunReport) -> Exit {
    let code = match report.mode {
        Mode::Test => for_test(report),
        Mode::Run | Mode::DryRun => for_run(report),
    };
    let code = match report.stopped_by {
        Some(StopReason::Interrupt) => code.max(Exit::Interrupted),
        Some(StopReason::Terminate) => code.max(Exit::Terminated),
        Some(StopReason::Deadline) if report.left.is_some() => code.max(Exit::Deadline),
        Some(StopReason::Deadline | StopReason::ClosedOutput | StopReason::StateStore) | None => {
            code
        }
    };
    match report.store_failed {
        true => code.max(Exit::State),
        false => code,
    }
}

/// The exit code of a run or dry-run: failures, invalid entries or crossed thresholds give 1.
fn for_run(report: &RunReport) -> Exit {
    if report.has_failures() {
        Exit::Failures
    } else {
        Exit::Ok
    }
}

/// The exit code of `test`: only expectations decide; none at all is unusable input.
fn for_test(report: &RunReport) -> Exit {
    if report.expectations.is_empty() {
        Exit::Usage
    } else if report.expectations.iter().any(|e| e.failure.is_some()) {
        Exit::Failures
    } else {
        Exit::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(mode: Mode) -> RunReport {
        let mut r = crate::report::Tally::new(&[], mode, "run".into(), "t".into()).finish();
        r.mode = mode;
        r
    }

    #[test]
    fn one_place_turns_a_report_into_its_exit_code() {
        let mut r = report(Mode::Run);
        assert_eq!(of(&r), Exit::Ok);
        r.totals.failed = 1;
        assert_eq!(of(&r), Exit::Failures);
        r.stopped_by = Some(StopReason::Deadline);
        assert_eq!(
            of(&r),
            Exit::Failures,
            "a deadline with nothing left is no stop"
        );
        r.left = Some(crate::report::Left {
            reason: "max_duration".into(),
            entries: Some(3),
        });
        assert_eq!(of(&r), Exit::Deadline);
        r.stopped_by = Some(StopReason::Terminate);
        assert_eq!(of(&r), Exit::Terminated);
        r.store_failed = true;
        assert_eq!(of(&r), Exit::Terminated, "the highest wins");
        let mut t = report(Mode::Test);
        assert_eq!(of(&t), Exit::Usage, "a test with no expectation");
        t.expectations.push(crate::report::ExpectationResult {
            journey: "j".into(),
            name: "c1".into(),
            at: "f.yaml:1".into(),
            failure: None,
        });
        t.store_failed = true;
        assert_eq!(of(&t), Exit::State);
    }
}
