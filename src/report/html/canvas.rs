//! The canvas's numbers: how many entries took each edge of a journey's graph, and what ended
//! before any step, counted as results arrive (constant memory per journey).

use std::collections::BTreeMap;

use crate::execute::result::{EntryResult, Outcome, StepStatus};
use crate::graph::svg::Counts;
use crate::graph::{Edge, To};
use crate::journey::Journey;
use crate::journey::plan::StepKind;
use crate::report::StepStats;

/// One journey's counts.
#[derive(Debug, Clone)]
pub struct Canvas {
    edges: Vec<Edge>,
    taken: Vec<u64>,
    /// Entries in all.
    entries: u64,
    /// Entries that went on to the first step.
    started: u64,
    /// Entries that ended before any step, by outcome.
    before: BTreeMap<String, u64>,
    /// Entries that ended invalid at each step.
    invalid: Vec<u64>,
}

impl Canvas {
    /// No entry yet.
    pub fn new(j: &Journey) -> Canvas {
        let edges = crate::graph::edges(j);
        Canvas {
            taken: vec![0; edges.len()],
            edges,
            entries: 0,
            started: 0,
            before: BTreeMap::new(),
            invalid: vec![0; j.steps.len()],
        }
    }

    /// Counts the edges one entry took.
    pub fn add(&mut self, j: &Journey, r: &EntryResult) {
        self.entries += 1;
        let Some(&first) = r.walked.first() else {
            *self.before.entry(r.outcome.to_string()).or_default() += 1;
            return;
        };
        self.started += u64::from(first == 0);
        for pair in r.walked.windows(2) {
            let failed = failed_at(r, pair[0]);
            self.take(pair[0], To::Step(pair[1]), failed);
        }
        let last = *r.walked.last().unwrap_or(&first);
        if r.outcome == Outcome::Invalid {
            self.invalid[last] += 1;
        }
        if matches!(j.steps[last].kind, StepKind::End(_)) {
            return;
        }
        let ending = match r.outcome {
            Outcome::Failed => To::Failed,
            Outcome::Stopped => To::Stopped,
            Outcome::Completed => To::Completed,
            _ => return,
        };
        self.take(last, ending, failed_at(r, last));
    }

    /// Counts the edge from `from` to `to`: a failure edge when the delivery there failed, the
    /// first edge that fits otherwise (a branch's arms in order, then its default).
    fn take(&mut self, from: usize, to: To, failed: bool) {
        let fits = |e: &&Edge| e.from == from && e.to == to;
        let k = self
            .edges
            .iter()
            .position(|e| fits(&e) && e.on_failure == failed)
            .or_else(|| self.edges.iter().position(|e| fits(&e)));
        if let Some(k) = k {
            self.taken[k] += 1;
        }
    }

    /// The numbers the drawing shows, with the step rows of the report.
    pub fn counts(&self, steps: &[&StepStats]) -> Counts {
        let mut start = vec![match self.entries {
            1 => "1 entry".to_string(),
            n => format!("{n} entries"),
        }];
        start.extend(self.before.iter().map(|(o, n)| format!("{n} {o}")));
        Counts {
            start: start.join(" · "),
            start_edge: self.started,
            steps: steps
                .iter()
                .enumerate()
                .map(|(i, s)| step_line(s, self.invalid.get(i).copied().unwrap_or(0)))
                .collect(),
            edges: self.taken.clone(),
        }
    }
}

/// True when step `i`'s delivery failed for this entry.
fn failed_at(r: &EntryResult, i: usize) -> bool {
    r.steps
        .iter()
        .any(|s| s.index == i && s.status == StepStatus::Failed)
}

/// `entered 5 · ok 4 · ✗ failed 1 · skipped 0`: failures are marked in words as well as red.
fn step_line(s: &StepStats, invalid: u64) -> (String, bool) {
    let failed = s.failed + invalid;
    let mark = if failed > 0 { "✗ " } else { "" };
    let mut line = format!(
        "entered {} · ok {} · {mark}failed {failed} · skipped {}",
        s.entered,
        s.ok,
        s.suppressed + s.capped
    );
    if s.assumed > 0 {
        line.push_str(&format!(" · assumed {}", s.assumed));
    }
    (line, failed > 0)
}
