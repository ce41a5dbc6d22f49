//! Folds entry results into the report as they arrive, in constant memory per step.

use std::collections::BTreeMap;

use super::{ErrorGroup, Mode, RunReport, StepStats, Totals};
use crate::execute::result::{EntryResult, Outcome, StepStatus};
use crate::journey::Journey;

const MAX_ERRORS: usize = 100;
const EXAMPLES: usize = 3;

/// The report being built.
#[derive(Debug, Clone)]
pub struct Tally {
    report: RunReport,
    /// Each journey's rows in `report.steps`: the first, and how many (one per step).
    rows: Vec<std::ops::Range<usize>>,
    /// Each journey's name, by index.
    names: Vec<String>,
    latencies: Vec<Vec<u32>>,
    /// Entries by outcome, journey by journey.
    by_journey: Vec<BTreeMap<String, u64>>,
    started: std::time::Instant,
}

impl Tally {
    /// An empty report with a row per step of every journey.
    pub fn new(journeys: &[Journey], mode: Mode, run_id: String, started_at: String) -> Tally {
        let mut rows = Vec::new();
        let mut steps = Vec::new();
        for j in journeys {
            rows.push(steps.len()..steps.len() + j.steps.len());
            for s in &j.steps {
                steps.push(StepStats {
                    journey: j.name.clone(),
                    step: s.id.clone(),
                    kind: s.kind.name().into(),
                    ..Default::default()
                });
            }
        }
        let n = steps.len();
        Tally {
            report: RunReport {
                schema_version: 2,
                run_id,
                mode,
                started_at,
                duration_ms: 0,
                steps,
                totals: Totals::default(),
                errors: vec![],
                warnings: vec![],
                notices: vec![],
                thresholds: vec![],
                state: None,
                rate_shares: Vec::new(),
                failed_outside_steps: Default::default(),
                left: None,
                alerts: Vec::new(),
                expectations: vec![],
                stopped_by: None,
                store_failed: false,
                entries_by_journey: BTreeMap::new(),
            },
            rows,
            names: journeys.iter().map(|j| j.name.clone()).collect(),
            latencies: vec![Vec::new(); n],
            by_journey: vec![BTreeMap::new(); journeys.len()],
            started: std::time::Instant::now(),
        }
    }

    /// Adds a notice said once.
    pub fn notice(&mut self, text: String) {
        self.report.notices.push(text);
    }

    /// Counts one entry.
    pub fn add(&mut self, r: &EntryResult) {
        self.count_outcome(r);
        self.count_where_it_ended(r);
        for s in &r.steps {
            self.count_step(r.journey, s);
        }
        self.count_passes(r);
        if let Some(e) = &r.error {
            group(&mut self.report.errors, &e.message, &r.customer);
        }
        for w in &r.warnings {
            group(&mut self.report.warnings, w, &r.customer);
        }
    }

    fn count_outcome(&mut self, r: &EntryResult) {
        let t = &mut self.report.totals;
        t.entries += 1;
        t.in_doubt += u64::from(r.in_doubt);
        match r.outcome {
            Outcome::Failed => t.failed += 1,
            Outcome::Invalid => t.invalid += 1,
            Outcome::Suppressed => t.suppressed += 1,
            Outcome::Exited => t.exited += 1,
            Outcome::Holdout => t.holdout += 1,
            Outcome::Waiting => t.waiting += 1,
            Outcome::AlreadyDone => t.already_done += 1,
            Outcome::Stopped => t.stopped += 1,
            Outcome::Interrupted => t.interrupted += 1,
            Outcome::Completed | Outcome::Label(_) => t.completed += 1,
        }
        // Per journey too (for `--metrics`); a word is allocated only the first time it is seen.
        if let Some(by) = self.by_journey.get_mut(r.journey) {
            match by.get_mut(r.outcome.as_str()) {
                Some(n) => *n += 1,
                None => {
                    by.insert(r.outcome.as_str().to_string(), 1);
                }
            }
        }
        let t = &mut self.report.totals;
        match t.labels.get_mut(r.outcome.as_str()) {
            Some(n) => *n += 1,
            None => {
                t.labels.insert(r.outcome.as_str().to_string(), 1);
            }
        }
    }

    /// A failed or invalid entry counts against the step it ended at, or its journey when it
    /// ended before any step.
    fn count_where_it_ended(&mut self, r: &EntryResult) {
        if !r.outcome.is_failure() {
            return;
        }
        match r.walked.last().and_then(|&si| self.row(r.journey, si)) {
            Some(row) => self.report.steps[row].ended_failed += 1,
            None => {
                let name = self.names.get(r.journey).cloned().unwrap_or_default();
                *self.report.failed_outside_steps.entry(name).or_default() += 1;
            }
        }
    }

    /// The row of step `step` of journey `journey`.
    fn row(&self, journey: usize, step: usize) -> Option<usize> {
        let rows = self.rows.get(journey)?;
        Some(rows.start + step).filter(|r| rows.contains(r))
    }

    /// Non-webhook steps walked count as entered and ok.
    /// Steps walked without a delivery record: branches, splits, waits and ends pass; a webhook
    /// step without a record never sent (its render failed, or the run stopped), and the step an
    /// invalid entry stopped at did not pass either.
    fn count_passes(&mut self, r: &EntryResult) {
        let j = r.journey;
        let last = r.walked.last().copied();
        for &si in &r.walked {
            if r.steps.iter().any(|s| s.index == si) {
                continue;
            }
            if let Some(row) = self.row(j, si) {
                let st = &mut self.report.steps[row];
                st.entered += 1;
                let stopped_here = Some(si) == last
                    && matches!(r.outcome, Outcome::Invalid | Outcome::Interrupted);
                if st.kind != "webhook" && !stopped_here {
                    st.ok += 1;
                }
            }
        }
    }

    fn count_step(&mut self, journey: usize, s: &crate::execute::result::StepRecord) {
        let Some(row) = self.row(journey, s.index) else {
            return;
        };
        let real = self.report.mode == Mode::Run;
        let st = &mut self.report.steps[row];
        let t = &mut self.report.totals;
        // A dry-run's deliveries are answered by mocks: counted `mocked`, never `sent`.
        let sent = if real {
            &mut t.deliveries_sent
        } else {
            &mut t.deliveries_mocked
        };
        st.entered += 1;
        st.retries += u64::from(s.attempts.saturating_sub(1));
        // An assumed delivery (no mock matched) got no answer: no attempt was made.
        if s.status != StepStatus::Assumed {
            st.attempts += u64::from(s.attempts);
        }
        count_answers(st, s);
        match s.status {
            StepStatus::Ok => {
                st.ok += 1;
                *sent += 1;
                t.deliveries_ok += 1;
            }
            StepStatus::Failed => {
                st.failed += 1;
                // Refused before its first attempt (its host stopped): failed, never sent.
                *sent += u64::from(s.attempts > 0);
                t.deliveries_failed += 1;
            }
            StepStatus::Assumed => {
                st.assumed += 1;
                t.deliveries_assumed += 1;
            }
            StepStatus::Suppressed => st.suppressed += 1,
            StepStatus::Delivered => st.ok += 1,
            StepStatus::Capped => {
                st.capped += 1;
                t.capped += 1;
            }
        }
        self.latencies[row].extend(
            s.latencies
                .iter()
                .map(|d| d.as_micros().min(u32::MAX as u128) as u32),
        );
    }

    /// The report so far, for a file written during a long run.
    pub fn snapshot(&self) -> RunReport {
        self.clone().finish()
    }

    /// The finished report.
    pub fn finish(mut self) -> RunReport {
        for (row, lat) in self.latencies.iter_mut().enumerate() {
            lat.sort_unstable();
            self.report.steps[row].p50_ms = percentile(lat, 0.50);
            self.report.steps[row].p95_ms = percentile(lat, 0.95);
            self.report.steps[row].p99_ms = percentile(lat, 0.99);
            self.report.steps[row].max_ms = percentile(lat, 1.0);
            self.report.steps[row].histogram = super::Histogram::of_sorted_micros(lat);
        }
        for (name, by) in self.names.iter().zip(&self.by_journey) {
            for (outcome, n) in by {
                let key = (name.clone(), outcome.clone());
                self.report.entries_by_journey.insert(key, *n);
            }
        }
        let elapsed = self.started.elapsed();
        let steps = &self.report.steps;
        let sum = |f: fn(&StepStats) -> u64| steps.iter().map(f).sum::<u64>();
        let (retries, timeouts) = (sum(|s| s.retries), sum(|s| s.timeouts));
        let t = &mut self.report.totals;
        t.attempts = sum(|s| s.attempts);
        let made = t.deliveries_sent + t.deliveries_mocked;
        let percent = |n: u64, of: u64| (of > 0).then(|| 100.0 * n as f64 / of as f64);
        t.success_rate = percent(t.deliveries_ok, made);
        t.retry_rate = percent(retries, t.attempts);
        t.timeout_rate = percent(timeouts, t.attempts);
        t.duplicate_rate = percent(t.in_doubt, made);
        t.entries_per_second = t.entries as f64 / elapsed.as_secs_f64().max(1e-9);
        self.report.duration_ms = elapsed.as_millis() as u64;
        for (message, count) in crate::render::compare::warnings() {
            self.report.warnings.push(ErrorGroup {
                message,
                count,
                examples: vec![],
            });
        }
        self.report
    }
}

/// Counts each attempt's answer.
fn count_answers(st: &mut StepStats, s: &crate::execute::result::StepRecord) {
    use crate::execute::deliver::Answer;
    for a in s.answers() {
        match a {
            Answer::Status(code) => *st.status_codes.entry(code).or_default() += 1,
            Answer::Transport("timeout") => st.timeouts += 1,
            Answer::Transport("connect") => st.connect_errors += 1,
            Answer::Transport("reset") => st.resets += 1,
            Answer::Transport(_) => {}
        }
    }
}

fn percentile(sorted: &[u32], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    Some(sorted[i] as f64 / 1000.0)
}

fn group(groups: &mut Vec<ErrorGroup>, message: &str, customer: &str) {
    if let Some(g) = groups.iter_mut().find(|g| g.message == message) {
        g.count += 1;
        if g.examples.len() < EXAMPLES {
            g.examples.push(customer.to_string());
        }
    } else if groups.len() < MAX_ERRORS {
        groups.push(ErrorGroup {
            message: message.to_string(),
            count: 1,
            examples: vec![customer.to_string()],
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execute::deliver::Answer;
    use crate::execute::result::StepRecord;

    /// A journey of a webhook `send` (failures go to `fallback`), then `fallback`, then `done`.
    fn journey() -> Journey {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.yaml");
        std::fs::write(
            &path,
            "journey: j\ntrigger: { segment: \"true\" }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.U }}/a\", body: {} }\n    on_failure: fallback\n    next: done\n  - id: fallback\n    webhook: { url: \"{{ env.U }}/b\", body: {} }\n  - id: done\n    end: completed\n",
        )
        .unwrap();
        let mut loaded = crate::journey::load(&[path], false);
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        loaded.journeys.remove(0)
    }

    fn record(index: usize, status: StepStatus, attempts: u32, http: Option<u16>) -> StepRecord {
        StepRecord {
            index,
            status,
            attempts,
            http_status: http,
            latencies: vec![std::time::Duration::from_millis(10); attempts as usize],
            request: None,
            error: None,
            earlier: vec![],
            saved: vec![],
            transport: None,
            response: None,
        }
    }

    fn entry(customer: &str, outcome: Outcome, walked: Vec<usize>) -> EntryResult {
        let mut r = EntryResult::new(0, customer, None, format!("j:{customer}"));
        r.outcome = outcome;
        r.walked = walked;
        r
    }

    #[test]
    fn totals_step_rows_answers_and_where_failures_ended_add_up() {
        let j = journey();
        let mut tally = Tally::new(
            std::slice::from_ref(&j),
            Mode::Run,
            "run".into(),
            "t".into(),
        );
        // c1: sent once, ok, then done.
        let mut ok = entry("c1", Outcome::Completed, vec![0, 2]);
        ok.steps.push(record(0, StepStatus::Ok, 1, Some(200)));
        tally.add(&ok);
        // c2: 503, timeout, 503 at `send`, handled by `fallback`, which fails for good.
        let mut bad = entry("c2", Outcome::Failed, vec![0, 1]);
        let mut first = record(0, StepStatus::Failed, 3, Some(503));
        first.earlier = vec![Answer::Status(503), Answer::Transport("timeout")];
        bad.steps.push(first);
        let mut second = record(1, StepStatus::Failed, 1, None);
        second.transport = Some("connect");
        bad.steps.push(second);
        bad.error = Some(crate::execute::result::EntryError {
            message: "journey `j`, step `fallback`: connect".into(),
        });
        tally.add(&bad);
        // c3: invalid before any step.
        tally.add(&entry("c3", Outcome::Invalid, vec![]));
        let r = tally.finish();
        let t = &r.totals;
        assert_eq!((t.entries, t.completed, t.failed, t.invalid), (3, 1, 1, 1));
        assert_eq!(
            (t.deliveries_sent, t.deliveries_ok, t.deliveries_failed),
            (3, 1, 2)
        );
        let send = &r.steps[0];
        assert_eq!(
            (
                send.entered,
                send.ok,
                send.failed,
                send.attempts,
                send.retries
            ),
            (2, 1, 1, 4, 2)
        );
        assert_eq!(
            send.status_codes,
            [(200, 1), (503, 2)].into_iter().collect()
        );
        assert_eq!(send.timeouts, 1);
        assert_eq!(
            send.ended_failed, 0,
            "handled by on_failure: not where it ended"
        );
        let fallback = &r.steps[1];
        assert_eq!((fallback.connect_errors, fallback.ended_failed), (1, 1));
        assert_eq!(
            (r.steps[2].entered, r.steps[2].ok),
            (1, 1),
            "the end step passes"
        );
        assert_eq!(r.failed_outside_steps.get("j"), Some(&1));
        assert_eq!(r.errors[0].examples, ["c2"]);
        assert_eq!(send.p50_ms, Some(10.0));
        assert_eq!(t.labels.get("completed"), Some(&1));
    }
}
