//! `--metrics FILE.prom`: the run's counters and latency histograms in the Prometheus text
//! exposition format, for node_exporter's textfile collector (the usual way a cron job reaches
//! Prometheus). Written whole, then renamed over the file, so the collector never reads half.

use std::fmt::Write as _;

use super::{BUCKETS, RunReport, StepStats};

/// The file's text. `finished` is the run's end (Unix seconds) and `exit_code` its code, for the
/// last run's gauges; a write during a long run passes `None` for both.
pub fn render(report: &RunReport, finished: Option<(f64, i32)>) -> String {
    let mut out = String::new();
    deliveries(&mut out, &report.steps);
    attempts(&mut out, &report.steps);
    histogram(&mut out, &report.steps);
    entries(&mut out, report);
    let mode = match report.mode {
        super::Mode::DryRun => "dry_run",
        super::Mode::Run => "run",
        super::Mode::Test => "test",
    };
    if let Some((at, code)) = finished {
        gauge(
            &mut out,
            "journey_last_run_timestamp_seconds",
            "When the last run ended (Unix time).",
            &format!("{{mode=\"{mode}\"}} {at:.3}"),
        );
        gauge(
            &mut out,
            "journey_last_run_exit_code",
            "The last run's exit code (0 ok, 1 failures, 2 unusable input, 3 state store, ...).",
            &format!("{{mode=\"{mode}\"}} {code}"),
        );
    }
    gauge(
        &mut out,
        "journey_last_run_duration_seconds",
        "How long the run has taken.",
        &format!(
            "{{mode=\"{mode}\"}} {:.3}",
            report.duration_ms as f64 / 1000.0
        ),
    );
    out
}

fn head(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, sample: &str) {
    head(out, name, help, "gauge");
    let _ = writeln!(out, "{name}{sample}");
}

/// A label value, escaped as the format asks (backslash, double quote, line feed).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn step_labels(s: &StepStats) -> String {
    format!(
        "journey=\"{}\",step=\"{}\"",
        label(&s.journey),
        label(&s.step)
    )
}

/// `journey_deliveries_total{journey,step,outcome}` for each webhook step.
fn deliveries(out: &mut String, steps: &[StepStats]) {
    let name = "journey_deliveries_total";
    head(
        out,
        name,
        "Deliveries by journey, step and outcome (ok, failed, assumed, capped, suppressed).",
        "counter",
    );
    for s in steps.iter().filter(|s| s.kind == "webhook") {
        let l = step_labels(s);
        for (outcome, n) in [
            ("ok", s.ok),
            ("failed", s.failed),
            ("assumed", s.assumed),
            ("capped", s.capped),
            ("suppressed", s.suppressed),
        ] {
            let _ = writeln!(out, "{name}{{{l},outcome=\"{outcome}\"}} {n}");
        }
    }
}

/// `journey_attempts_total{journey,step,result}`: each attempt's HTTP status or why none came.
fn attempts(out: &mut String, steps: &[StepStats]) {
    let name = "journey_attempts_total";
    head(
        out,
        name,
        "Attempts by journey, step and result (an HTTP status, timeout, connect or reset).",
        "counter",
    );
    for s in steps.iter().filter(|s| s.kind == "webhook") {
        let l = step_labels(s);
        for (code, n) in &s.status_codes {
            let _ = writeln!(out, "{name}{{{l},result=\"{code}\"}} {n}");
        }
        for (why, n) in [
            ("timeout", s.timeouts),
            ("connect", s.connect_errors),
            ("reset", s.resets),
        ] {
            let _ = writeln!(out, "{name}{{{l},result=\"{why}\"}} {n}");
        }
    }
}

/// `journey_delivery_duration_seconds`: the latency of attempts that got a response.
fn histogram(out: &mut String, steps: &[StepStats]) {
    let name = "journey_delivery_duration_seconds";
    head(
        out,
        name,
        "Latency of the attempts that got a response, by journey and step.",
        "histogram",
    );
    for s in steps.iter().filter(|s| s.kind == "webhook") {
        let l = step_labels(s);
        let h = &s.histogram;
        for (k, bound) in BUCKETS.iter().enumerate() {
            let n = h.buckets.get(k).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{l},le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{l},le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum{{{l}}} {}", h.sum_seconds);
        let _ = writeln!(out, "{name}_count{{{l}}} {}", h.count);
    }
}

/// `journey_entries_total{journey,outcome}`.
fn entries(out: &mut String, report: &RunReport) {
    let name = "journey_entries_total";
    head(
        out,
        name,
        "Entries by journey and how they ended (completed, failed, invalid, an end label, ...).",
        "counter",
    );
    for ((journey, outcome), n) in &report.entries_by_journey {
        let _ = writeln!(
            out,
            "{name}{{journey=\"{}\",outcome=\"{}\"}} {n}",
            label(journey),
            label(outcome)
        );
    }
}
