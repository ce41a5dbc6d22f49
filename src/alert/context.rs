//! `run` in an alert: one journey's results, by name, with what the team needs to act: counts,
//! rates, stopped hosts, the first errors with example customer ids (never other customer
//! data), and where the report and dead letters are.

use serde_json::{Value, json};

use crate::report::RunReport;

/// What the run knows beside its report.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// This host's name.
    pub host: String,
    /// Why the circuit breaker stopped sending to a host, per host.
    pub stopped_hosts: Vec<String>,
    /// `--report`, when given.
    pub report: Option<String>,
    /// The dead-letter file of a real run.
    pub dead_letter: Option<String>,
}

/// The outcomes an entry can end with, each a name in `run` (0 when none ended so).
const OUTCOMES: &[&str] = &[
    "completed",
    "failed",
    "invalid",
    "suppressed",
    "exited",
    "holdout",
    "waiting",
    "already_done",
    "stopped",
    "interrupted",
];

/// How many errors an alert carries.
const ERRORS: usize = 5;

/// One journey's results.
pub fn run(report: &RunReport, journey: &str, facts: &Facts) -> Value {
    let mut run = serde_json::Map::new();
    run.insert("journey".into(), json!(journey));
    run.insert("run_id".into(), json!(report.run_id));
    run.insert("mode".into(), json!(report.mode));
    run.insert("host".into(), json!(facts.host));
    let mut entries = 0;
    for o in OUTCOMES {
        let n = report
            .entries_by_journey
            .get(&(journey.to_string(), o.to_string()))
            .copied()
            .unwrap_or(0);
        entries += n;
        run.insert((*o).into(), json!(n));
    }
    run.insert("entries".into(), json!(entries));
    let steps = report.steps.iter().filter(|s| s.journey == journey);
    let (sent, ok, failed) = steps.fold((0, 0, 0), |(a, b, c), s| {
        (a + s.ok + s.failed, b + s.ok, c + s.failed)
    });
    run.insert("deliveries".into(), json!(sent));
    run.insert("delivered".into(), json!(ok));
    run.insert("deliveries_failed".into(), json!(failed));
    let rate = |n: u64| match sent {
        0 => 0.0,
        _ => (n as f64 * 1000.0 / sent as f64).round() / 10.0,
    };
    run.insert("failure_rate".into(), json!(rate(failed)));
    run.insert("success_rate".into(), json!(rate(ok)));
    run.insert("stopped_hosts".into(), json!(facts.stopped_hosts));
    run.insert("state_failed".into(), json!(report.store_failed));
    let mine = format!("journey `{journey}`");
    let errors: Vec<Value> = report
        .errors
        .iter()
        .filter(|e| e.message.contains(&mine))
        .take(ERRORS)
        .map(|e| json!({ "message": e.message, "count": e.count, "customers": e.examples }))
        .collect();
    run.insert("errors".into(), json!(errors));
    run.insert("report".into(), json!(facts.report));
    run.insert("dead_letter".into(), json!(facts.dead_letter));
    run.insert(
        "duration_s".into(),
        json!(report.duration_ms as f64 / 1000.0),
    );
    Value::Object(run)
}
