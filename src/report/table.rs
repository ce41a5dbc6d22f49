//! The results table on stdout: one row per journey step, then the totals.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Table};

use super::RunReport;

/// The table as text; `color` is false for NO_COLOR or a non-terminal stdout.
pub fn render(report: &RunReport, color: bool) -> String {
    let mut out = steps_table(report, color).to_string();
    out.push('\n');
    out.push_str(&totals(report));
    out
}

fn steps_table(report: &RunReport, color: bool) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    if !color {
        t.force_no_tty();
    }
    t.set_header([
        "journey",
        "step",
        "kind",
        "entered",
        "ok",
        "failed",
        "suppressed",
        "capped",
        "assumed",
        "retries",
        "p50",
        "p95",
    ]);
    for s in &report.steps {
        let nums = [
            s.entered,
            s.ok,
            s.failed,
            s.suppressed,
            s.capped,
            s.assumed,
            s.retries,
        ];
        let mut row = vec![
            Cell::new(&s.journey),
            Cell::new(&s.step),
            Cell::new(&s.kind),
        ];
        row.extend(
            nums.iter()
                .map(|n| Cell::new(n).set_alignment(CellAlignment::Right)),
        );
        row.push(Cell::new(ms(s.p50_ms)).set_alignment(CellAlignment::Right));
        row.push(Cell::new(ms(s.p95_ms)).set_alignment(CellAlignment::Right));
        t.add_row(row);
    }
    t
}

fn ms(v: Option<f64>) -> String {
    v.map(|m| format!("{m:.1}ms")).unwrap_or_else(|| "-".into())
}

fn totals(report: &RunReport) -> String {
    let t = &report.totals;
    let labels: Vec<String> = t
        .labels
        .iter()
        .filter(|(l, _)| !is_standard(l))
        .map(|(l, n)| format!("{l} {n}"))
        .collect();
    let custom = if labels.is_empty() {
        String::new()
    } else {
        format!(" (of which {})", labels.join(", "))
    };
    // Nothing leaves the machine in a dry-run or `test`: its deliveries are mocked, not sent.
    let made = if report.mode == super::Mode::Run {
        "sent"
    } else {
        "mocked"
    };
    let rate = t
        .success_rate
        .map(|r| format!("{r:.1}%"))
        .unwrap_or_else(|| "-".into());
    format!(
        "entries: {} completed{custom} / {} failed / {} invalid / {} suppressed / {} exited / {} holdout / {} waiting / {} already done / {} stopped / {} interrupted ({} in all)\n\
         deliveries: {} {made} / {} ok / {} failed / {} assumed / {} capped / {} in doubt (sent again with their keys); success rate {rate}\n\
         duration {:.2}s, {:.0} entries/s, run {}\n",
        t.completed,
        t.failed,
        t.invalid,
        t.suppressed,
        t.exited,
        t.holdout,
        t.waiting,
        t.already_done,
        t.stopped,
        t.interrupted,
        t.entries,
        t.deliveries_sent + t.deliveries_mocked,
        t.deliveries_ok,
        t.deliveries_failed,
        t.deliveries_assumed,
        t.capped,
        t.in_doubt,
        report.duration_ms as f64 / 1000.0,
        t.entries_per_second,
        report.run_id,
    ) + &report
        .state
        .as_ref()
        .map(|s| format!("state: {s}\n"))
        .unwrap_or_default()
        + &report.left.as_ref().map(left_line).unwrap_or_default()
}

/// `left: 38 entries (--max-duration ran out); a later run takes them up`.
fn left_line(left: &super::Left) -> String {
    let why = match left.reason.as_str() {
        "max_duration" => "--max-duration ran out",
        "sigint" => "stopped by SIGINT",
        _ => "stopped by SIGTERM",
    };
    match left.entries {
        Some(n) => format!("left: {n} entries ({why}); a later run takes them up\n"),
        None => format!(
            "left: entries not finished and the rest of the input not read ({why}); a later run takes them up\n"
        ),
    }
}

fn is_standard(label: &str) -> bool {
    matches!(
        label,
        "completed"
            | "failed"
            | "invalid"
            | "suppressed"
            | "exited"
            | "holdout"
            | "waiting"
            | "already_done"
            | "stopped"
            | "interrupted"
    )
}
