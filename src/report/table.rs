//! The results table on stdout: one row per journey step, then the totals.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{Cell, CellAlignment, Color, ContentArrangement, Table};

use super::{RunReport, StepStats};

/// How the table is laid out: colour (a terminal, no NO_COLOR), and the width to fit (`COLUMNS`,
/// else the terminal's; `None` when stdout is not a terminal: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    /// Colour failures and invalid entries.
    pub color: bool,
    /// The width to fit, in columns.
    pub width: Option<u16>,
}

/// The table as text, then the line naming the columns left out, then the totals.
pub fn render(report: &RunReport, layout: Layout) -> String {
    let columns = columns(&report.steps);
    let wide = steps_table(report, &columns, layout, Fit::Full).to_string();
    let fits = |text: &str| {
        let width = text.lines().next().map_or(0, |l| l.chars().count());
        layout.width.is_none_or(|w| width <= usize::from(w))
    };
    // Too wide for the terminal: short headers and no `kind` column, then wrapped to fit.
    let mut out = if fits(&wide) {
        wide
    } else {
        steps_table(report, &columns, layout, Fit::Narrow).to_string()
    };
    out.push('\n');
    let left_out: Vec<&str> = COLUMNS
        .iter()
        .filter(|c| !columns.iter().any(|k| k.name == c.name))
        .map(|c| c.name)
        .collect();
    if !left_out.is_empty() {
        out.push_str(&format!(
            "(0 or none in every row: {})\n",
            left_out.join(", ")
        ));
    }
    out.push_str(&totals(report, layout.color));
    out
}

/// How hard the table works to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// Every column, full headers.
    Full,
    /// No `kind`, short headers, wrapped to the width.
    Narrow,
}

/// One numeric column of the table.
struct Column {
    name: &'static str,
    /// Its header in a narrow table.
    short: &'static str,
    value: fn(&StepStats) -> String,
    /// Shown in red when not zero (on a terminal).
    alarm: bool,
}

const COLUMNS: &[Column] = &[
    Column {
        name: "entered",
        short: "in",
        value: |s| s.entered.to_string(),
        alarm: false,
    },
    Column {
        name: "ok",
        short: "ok",
        value: |s| s.ok.to_string(),
        alarm: false,
    },
    Column {
        name: "failed",
        short: "fail",
        value: |s| s.failed.to_string(),
        alarm: true,
    },
    Column {
        name: "suppressed",
        short: "supp",
        value: |s| s.suppressed.to_string(),
        alarm: false,
    },
    Column {
        name: "capped",
        short: "cap",
        value: |s| s.capped.to_string(),
        alarm: false,
    },
    Column {
        name: "assumed",
        short: "asm",
        value: |s| s.assumed.to_string(),
        alarm: false,
    },
    Column {
        name: "retries",
        short: "retry",
        value: |s| s.retries.to_string(),
        alarm: false,
    },
    Column {
        name: "p50",
        short: "p50",
        value: |s| ms(s.p50_ms),
        alarm: false,
    },
    Column {
        name: "p95",
        short: "p95",
        value: |s| ms(s.p95_ms),
        alarm: false,
    },
];

/// The columns with something to say: `entered` always, the others when some row is not 0
/// (or, for latencies, not `-`).
fn columns(steps: &[StepStats]) -> Vec<&'static Column> {
    COLUMNS
        .iter()
        .filter(|c| {
            c.name == "entered"
                || steps
                    .iter()
                    .any(|s| !matches!((c.value)(s).as_str(), "0" | "-"))
        })
        .collect()
}

fn steps_table(report: &RunReport, columns: &[&Column], layout: Layout, fit: Fit) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.force_no_tty();
    if let (Fit::Narrow, Some(w)) = (fit, layout.width) {
        t.set_content_arrangement(ContentArrangement::Dynamic);
        t.set_width(w);
    }
    if layout.color {
        t.enforce_styling();
    }
    let narrow = fit == Fit::Narrow;
    let mut header = vec!["journey", "step"];
    if !narrow {
        header.push("kind");
    }
    header.extend(
        columns
            .iter()
            .map(|c| if narrow { c.short } else { c.name }),
    );
    t.set_header(header);
    for s in &report.steps {
        let mut row = vec![Cell::new(&s.journey), Cell::new(&s.step)];
        if !narrow {
            row.push(Cell::new(&s.kind));
        }
        row.extend(columns.iter().map(|c| {
            let text = (c.value)(s);
            let cell = Cell::new(&text).set_alignment(CellAlignment::Right);
            if layout.color && c.alarm && text != "0" {
                cell.fg(Color::Red)
            } else {
                cell
            }
        }));
        t.add_row(row);
    }
    t
}

fn ms(v: Option<f64>) -> String {
    v.map(|m| format!("{m:.1}ms")).unwrap_or_else(|| "-".into())
}

/// `3 failed`, in red on a terminal when not 0 (the words carry it without colour).
fn alarm(n: u64, what: &str, color: bool) -> String {
    if color && n > 0 {
        format!("\x1b[31m{n} {what}\x1b[0m")
    } else {
        format!("{n} {what}")
    }
}

fn totals(report: &RunReport, color: bool) -> String {
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
        "entries: {} completed{custom} / {} / {} / {} suppressed / {} exited / {} holdout / {} waiting / {} already done / {} stopped / {} interrupted ({} in all)\n\
         deliveries: {} {made} / {} ok / {} failed / {} assumed / {} capped / {} in doubt (sent again with their keys); success rate {rate}\n\
         duration {:.2}s, {:.0} entries/s, run {}\n",
        t.completed,
        alarm(t.failed, "failed", color),
        alarm(t.invalid, "invalid", color),
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
    !matches!(
        crate::execute::result::Outcome::from_label(label),
        crate::execute::result::Outcome::Label(_)
    )
}
