//! `--show paths`: what happened to each entry, step by step, for a marketer to read: a
//! webhook's answer (or that it was mocked or assumed), attempts and latency, the branch arm or
//! split group that chose the next step, a wait, a step skipped for consent or a cap, then the
//! outcome and why.

use std::fmt::Write as _;

use crate::execute::result::{EntryResult, Outcome, StepRecord, StepStatus};
use crate::journey::Journey;
use crate::journey::plan::StepKind;
use crate::redact::Redactor;

/// One entry's block: a title line, a line per step walked, the outcome.
pub fn entry(j: &Journey, r: &EntryResult, mocked: bool, redactor: &Redactor) -> String {
    let event = r
        .event
        .as_ref()
        .map(|e| format!(", event {e}"))
        .unwrap_or_default();
    let mut out = format!("customer {} in {}{event}\n", r.customer, j.name);
    let width = r
        .walked
        .iter()
        .map(|&i| j.steps[i].id.len())
        .max()
        .unwrap_or(0);
    // The step an invalid entry stopped at: its request (or its `when`) could not be rendered.
    let invalid_at = r
        .walked
        .last()
        .copied()
        .filter(|_| r.outcome == Outcome::Invalid);
    for (n, &i) in r.walked.iter().enumerate() {
        let next = r.walked.get(n + 1).copied();
        let record = r.steps.iter().find(|s| s.index == i);
        let what = step_line(j, i, next, record, mocked);
        let _ = writeln!(out, "  {:<width$}  {what}", j.steps[i].id);
        for (_, until) in r.waited.iter().filter(|(at, _)| *at == i) {
            let _ = writeln!(out, "  {:<width$}    {until}", "");
        }
        for (name, value) in record.map(|r| r.saved.as_slice()).unwrap_or_default() {
            let value = redactor.redact(value);
            let _ = writeln!(out, "  {:<width$}    saved {name} = {value}", "");
        }
        // An invalid entry's error stands at the step it happened at.
        if let Some(e) = r.error.as_ref().filter(|_| invalid_at == Some(i)) {
            let _ = writeln!(
                out,
                "  {:<width$}    error: {}",
                "",
                redactor.redact(&e.message)
            );
        }
    }
    let why = match (&r.error, &r.why) {
        _ if invalid_at.is_some() => " (the error is at its step above)".to_string(),
        (Some(e), _) => format!(": {}", redactor.redact(&e.message)),
        (None, Some(why)) => format!(" ({why})"),
        (None, None) => reason(&r.outcome)
            .map(|w| format!(" ({w})"))
            .unwrap_or_default(),
    };
    let _ = writeln!(out, "  → {}{why}\n", r.outcome);
    out
}

/// Why an entry ended as it did, when the outcome alone does not say.
fn reason(outcome: &Outcome) -> Option<&'static str> {
    Some(match outcome {
        Outcome::Suppressed => "no consent for the journey's channel, or on the --suppress list",
        Outcome::Holdout => "in the holdout group: counted, never contacted",
        Outcome::Exited => "the `exit_when` event came first",
        Outcome::AlreadyDone => "an earlier run ended this entry: nothing is sent again",
        Outcome::Waiting => "parked until its wait is due; a later run resumes it",
        Outcome::Stopped => "a failure with `on_failure: stop`, or its host stopped",
        Outcome::Interrupted => "the run stopped first; a later run takes it up",
        _ => return None,
    })
}

fn step_line(
    j: &Journey,
    i: usize,
    next: Option<usize>,
    record: Option<&StepRecord>,
    mocked: bool,
) -> String {
    let step = &j.steps[i];
    let id = |t: Option<usize>| t.map_or("the end".to_string(), |t| format!("`{}`", j.steps[t].id));
    match &step.kind {
        StepKind::Webhook(_) => match record {
            Some(rec) => delivery(rec, mocked),
            None => "not sent: its request could not be rendered".into(),
        },
        StepKind::Branch { arms, .. } => match arms.iter().find(|(_, t)| Some(*t) == next) {
            Some((when, _)) => format!("branch → {} (when `{}`)", id(next), when.source),
            None => format!("branch → {} (no `when` held: the default)", id(next)),
        },
        StepKind::Split(arms) => {
            let mut prev = 0;
            let group = arms.iter().find_map(|(upto, t)| {
                let share = upto - prev;
                prev = *upto;
                (Some(*t) == next).then_some(share)
            });
            match group {
                Some(p) => format!("split → {} (the {p}% group)", id(next)),
                None => format!("split → {}", id(next)),
            }
        }
        StepKind::Wait(d) => format!("wait {}", crate::journey::duration::short(*d)),
        StepKind::End(label) => format!("end: {label}"),
    }
}

/// `HTTP 200 (mocked), 2 attempts, 12.3ms`, `assumed (no mock matched)`, `skipped: no consent`.
fn delivery(rec: &StepRecord, mocked: bool) -> String {
    let attempts = match rec.attempts {
        1 => "1 attempt".to_string(),
        n => format!("{n} attempts"),
    };
    let answers: Vec<String> = rec
        .answers()
        .map(|a| match a {
            crate::execute::deliver::Answer::Status(s) => s.to_string(),
            crate::execute::deliver::Answer::Transport(kind) => kind.to_string(),
        })
        .collect();
    let answer = rec.http_status.map(|_| {
        format!(
            "HTTP {}{}",
            answers.join(", "),
            if mocked { " (mocked)" } else { "" }
        )
    });
    let latency = rec
        .latencies
        .iter()
        .max()
        .filter(|l| !l.is_zero())
        .map(|l| format!(", {:.1}ms", l.as_secs_f64() * 1000.0))
        .unwrap_or_default();
    match rec.status {
        StepStatus::Ok => format!(
            "{}, {attempts}{latency}",
            answer.unwrap_or_else(|| "ok".into())
        ),
        StepStatus::Failed => {
            let why = rec
                .error
                .clone()
                .or(answer)
                .unwrap_or_else(|| "failed".into());
            format!("failed: {why}, {attempts}{latency}")
        }
        StepStatus::Assumed => "assumed (no mock matched)".into(),
        StepStatus::Suppressed => "skipped: no consent for its channel".into(),
        StepStatus::Capped => "skipped: the frequency cap was reached".into(),
        StepStatus::Delivered => "delivered by an earlier run: not sent again".into(),
    }
}
