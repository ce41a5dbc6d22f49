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
    // Too wide for the terminal: the detail columns go, short headers and no `kind` column,
    // then wrapped to fit.
    let mut dropped: Vec<&str> = Vec::new();
    // A table's top border is as wide as the table, and holds no colour.
    let all_fit = |text: &str| {
        let widest = text
            .lines()
            .filter(|l| l.starts_with('┌'))
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0);
        layout.width.is_none_or(|w| widest <= usize::from(w))
    };
    let mut out = if fits(&wide) {
        wide + "\n"
    } else {
        // Every column still fits once each journey has its own table: measured unwrapped.
        let unwrapped = Layout {
            width: None,
            ..layout
        };
        if all_fit(&per_journey(report, &columns, unwrapped)) {
            per_journey(report, &columns, layout)
        } else {
            let (detail, core): (Vec<&Column>, Vec<&Column>) =
                columns.iter().copied().partition(|c| c.detail);
            dropped = detail.iter().map(|c| c.name).collect();
            per_journey(report, &core, layout)
        }
    };
    if !dropped.is_empty() {
        out.push_str(&format!(
            "(in a wider terminal and the JSON report: {})\n",
            dropped.join(", ")
        ));
    }
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
    /// A table per journey: no `journey` and `kind` columns, short headers, wrapped to the width.
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
    /// Left out of a table too wide for the terminal (the JSON report has it).
    detail: bool,
}

const COLUMNS: &[Column] = &[
    Column {
        name: "entered",
        short: "in",
        value: |s| s.entered.to_string(),
        alarm: false,
        detail: false,
    },
    Column {
        name: "ok",
        short: "ok",
        value: |s| s.ok.to_string(),
        alarm: false,
        detail: false,
    },
    Column {
        name: "failed",
        short: "fail",
        value: |s| s.failed.to_string(),
        alarm: true,
        detail: false,
    },
    Column {
        name: "suppressed",
        short: "supp",
        value: |s| s.suppressed.to_string(),
        alarm: false,
        detail: false,
    },
    Column {
        name: "capped",
        short: "cap",
        value: |s| s.capped.to_string(),
        alarm: false,
        detail: false,
    },
    Column {
        name: "assumed",
        short: "asm",
        value: |s| s.assumed.to_string(),
        alarm: false,
        detail: false,
    },
    Column {
        name: "attempts",
        short: "att",
        value: |s| s.attempts.to_string(),
        alarm: false,
        detail: true,
    },
    Column {
        name: "retries",
        short: "retry",
        value: |s| s.retries.to_string(),
        alarm: false,
        detail: false,
    },
    Column {
        name: "timeouts",
        short: "tmo",
        value: |s| s.timeouts.to_string(),
        alarm: true,
        detail: false,
    },
    Column {
        name: "connect",
        short: "conn",
        value: |s| s.connect_errors.to_string(),
        alarm: true,
        detail: false,
    },
    Column {
        name: "resets",
        short: "rst",
        value: |s| s.resets.to_string(),
        alarm: true,
        detail: false,
    },
    Column {
        name: "statuses",
        short: "http",
        value: statuses,
        alarm: false,
        detail: true,
    },
    Column {
        name: "p50",
        short: "p50",
        value: |s| ms(s.p50_ms),
        alarm: false,
        detail: false,
    },
    Column {
        name: "p95",
        short: "p95",
        value: |s| ms(s.p95_ms),
        alarm: false,
        detail: false,
    },
    Column {
        name: "p99",
        short: "p99",
        value: |s| ms(s.p99_ms),
        alarm: false,
        detail: true,
    },
    Column {
        name: "max",
        short: "max",
        value: |s| ms(s.max_ms),
        alarm: false,
        detail: true,
    },
];

/// How many attempts got each status: `200×3 503×1`, or `-`.
fn statuses(s: &StepStats) -> String {
    if s.status_codes.is_empty() {
        return "-".into();
    }
    let each: Vec<String> = s
        .status_codes
        .iter()
        .map(|(code, n)| format!("{code}×{n}"))
        .collect();
    each.join(" ")
}

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

/// A narrow table for each journey, under its name: the journey column would take a third of
/// a narrow terminal.
fn per_journey(report: &RunReport, columns: &[&Column], layout: Layout) -> String {
    let mut out = String::new();
    let mut names: Vec<&str> = report.steps.iter().map(|s| s.journey.as_str()).collect();
    names.dedup();
    for name in names {
        let rows: Vec<&StepStats> = report.steps.iter().filter(|s| s.journey == name).collect();
        out.push_str(&format!("journey {name}\n"));
        out.push_str(&table(&rows, columns, layout, Fit::Narrow).to_string());
        out.push('\n');
    }
    out
}

fn steps_table(report: &RunReport, columns: &[&Column], layout: Layout, fit: Fit) -> Table {
    let rows: Vec<&StepStats> = report.steps.iter().collect();
    table(&rows, columns, layout, fit)
}

/// The rows as a table; a narrow one has no `journey` and `kind` columns and short headers.
fn table(rows: &[&StepStats], columns: &[&Column], layout: Layout, fit: Fit) -> Table {
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
    let mut header = match narrow {
        true => vec!["step"],
        false => vec!["journey", "step", "kind"],
    };
    header.extend(
        columns
            .iter()
            .map(|c| if narrow { c.short } else { c.name }),
    );
    t.set_header(header);
    for s in rows {
        let mut row = match narrow {
            true => vec![Cell::new(&s.step)],
            false => vec![
                Cell::new(&s.journey),
                Cell::new(&s.step),
                Cell::new(&s.kind),
            ],
        };
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
    // Retries and timeouts per attempt, when any attempt was made.
    let rates = match (t.retry_rate, t.timeout_rate) {
        (Some(r), Some(tm)) => format!(", retry rate {r:.1}%, timeout rate {tm:.1}%"),
        _ => String::new(),
    };
    format!(
        "entries: {} completed{custom} / {} / {} / {} suppressed / {} exited / {} holdout / {} waiting / {} already done / {} stopped / {} interrupted ({} in all)\n\
         deliveries: {} {made} / {} ok / {} failed / {} assumed / {} capped / {} in doubt (sent again with their keys); success rate {rate}{rates}\n\
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
        + &shares_line(&report.rate_shares)
        + &alerts_line(&report.alerts)
        + &report.left.as_ref().map(left_line).unwrap_or_default()
}

/// `alerts: failures (journey j) to slack: sent`.
fn alerts_line(alerts: &[crate::report::AlertOutcome]) -> String {
    if alerts.is_empty() {
        return String::new();
    }
    let each: Vec<String> = alerts
        .iter()
        .map(|a| {
            let state = match a.state.as_str() {
                "shown" => "would be sent (nothing is sent in a dry-run)",
                s => s,
            };
            format!("{} (journey {}) to {}: {state}", a.name, a.journey, a.to)
        })
        .collect();
    format!("alerts: {}\n", each.join("; "))
}

/// `rate: one/send 1000/s of 2000/s (1 of 2 shards, static)`: this host's share of each limit.
fn shares_line(shares: &[crate::execute::protect::ShareUsed]) -> String {
    if shares.is_empty() {
        return String::new();
    }
    let rate = |r: f64| {
        let r = (r * 10.0).round() / 10.0;
        format!("{r}")
    };
    let each: Vec<String> = shares
        .iter()
        .map(|s| {
            let used = match s.share_per_second_min == s.share_per_second_max {
                true => rate(s.share_per_second_min),
                false => format!(
                    "{}-{}",
                    rate(s.share_per_second_min),
                    rate(s.share_per_second_max)
                ),
            };
            let how = match s.mode {
                crate::execute::protect::ShareMode::Static => {
                    format!("1 of {} shards, static", s.hosts)
                }
                crate::execute::protect::ShareMode::Dynamic => {
                    "divided among the hosts running, dynamic".to_string()
                }
            };
            format!(
                "{} {used}/s of {}/s ({how})",
                s.limit,
                rate(s.limit_per_second)
            )
        })
        .collect();
    format!("rate: this host's share: {}\n", each.join("; "))
}

/// `left: 38 entries (--max-duration ran out); a later run takes them up`.
fn left_line(left: &super::Left) -> String {
    let why = match left.reason.as_str() {
        "max_duration" => "--max-duration ran out",
        "sigint" => "stopped by SIGINT",
        "state_store" => "stopped: the state store failed",
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
