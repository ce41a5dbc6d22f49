//! `--html FILE`: one self-contained page of the run (inline CSS, SVG and a little JS; nothing
//! fetched when it is viewed). The canvas draws each journey with the number of entries on each
//! step and edge; per step, latencies, answers and grouped errors; per customer, a bounded list
//! of entries (failed and invalid ones first) with their paths, requests and responses, found
//! with a search box.
//!
//! [`Collector`] sees each entry as it ends and keeps only counts and at most `--html-entries`
//! rendered details (and at most [`BUDGET`] bytes of them), so a run of a million entries writes
//! a page of a few megabytes without holding its entries.

mod canvas;
mod entry;

use std::fmt::Write as _;

use crate::execute::result::EntryResult;
use crate::graph::svg::esc;
use crate::journey::Journey;
use crate::redact::Redactor;
use crate::report::{Mode, RunReport, StepStats};

pub use canvas::Canvas;

/// The most bytes of entry details a page holds, whatever `--html-entries` says.
pub const BUDGET: usize = 6 * 1024 * 1024;

/// What the page keeps of the entries as they end.
pub struct Collector {
    canvases: Vec<Canvas>,
    details: Vec<Detail>,
    bytes: usize,
    limit: usize,
    left_out: u64,
    mocked: bool,
    redactor: Redactor,
    now_unix: i64,
}

/// One entry's rendered detail.
struct Detail {
    bad: bool,
    html: String,
}

impl Collector {
    /// Keeps at most `limit` details; `mocked` for dry-runs and `test`.
    pub fn new(
        journeys: &[Journey],
        limit: usize,
        mocked: bool,
        redactor: Redactor,
        now_unix: i64,
    ) -> Collector {
        Collector {
            canvases: journeys.iter().map(Canvas::new).collect(),
            details: Vec::new(),
            bytes: 0,
            limit,
            left_out: 0,
            mocked,
            redactor,
            now_unix,
        }
    }

    /// Counts one entry, and keeps its detail while there is room (a failed or invalid entry
    /// takes the place of the last other one kept).
    pub fn add(&mut self, journeys: &[Journey], r: &EntryResult) {
        let Some(j) = journeys.get(r.journey) else {
            return;
        };
        self.canvases[r.journey].add(j, r);
        let bad = r.is_failure();
        let full = self.details.len() >= self.limit || self.bytes >= BUDGET;
        if full && !(bad && self.evict()) {
            self.left_out += 1;
            return;
        }
        let scope = entry::Scope {
            journey: j,
            mocked: self.mocked,
            redactor: &self.redactor,
            now_unix: self.now_unix,
        };
        let html = entry::detail(&scope, r);
        self.bytes += html.len();
        self.details.push(Detail { bad, html });
    }

    /// Drops the last detail kept of an entry that did not fail; false when there is none.
    fn evict(&mut self) -> bool {
        match self.details.iter().rposition(|d| !d.bad) {
            Some(k) => {
                let d = self.details.remove(k);
                self.bytes -= d.html.len();
                self.left_out += 1;
                true
            }
            None => false,
        }
    }

    /// The page, from the finished report.
    pub fn render(&self, report: &RunReport, journeys: &[Journey]) -> Vec<u8> {
        let mut out = String::with_capacity(self.bytes + 64 * 1024);
        head(&mut out, report);
        nav(&mut out, journeys);
        run_section(&mut out, report);
        for (ji, j) in journeys.iter().enumerate() {
            journey_section(&mut out, report, j, &self.canvases[ji]);
        }
        problems(&mut out, report);
        self.customers(&mut out);
        let _ = write!(
            out,
            "</main>\n<script>{}</script>\n</body>\n</html>\n",
            include_str!("page.js")
        );
        out.into_bytes()
    }

    fn customers(&self, out: &mut String) {
        let shown = self.details.len();
        let _ = write!(
            out,
            r#"<h2 id="customers">Customers</h2>
<div class="search"><label for="search">Customer id</label><input id="search" type="search" placeholder="search by customer id" autocomplete="off"><button id="clear-step" type="button" hidden>show every step</button><span id="shown" aria-live="polite">{shown} entries shown</span></div>
"#
        );
        if self.left_out > 0 {
            let _ = writeln!(
                out,
                r#"<p class="left-out">{} more entries are left out of this page (it keeps {shown}: failed and invalid ones first; raise <code>--html-entries</code> to keep more). Every count above includes them.</p>"#,
                self.left_out
            );
        }
        for d in self.details.iter().filter(|d| d.bad) {
            out.push_str(&d.html);
        }
        for d in self.details.iter().filter(|d| !d.bad) {
            out.push_str(&d.html);
        }
    }
}

/// Links to each part of the page.
fn nav(out: &mut String, journeys: &[Journey]) {
    let links: Vec<String> = journeys
        .iter()
        .map(|j| format!(r##"<a href="#journey-{0}">{0}</a>"##, esc(&j.name)))
        .collect();
    let _ = writeln!(
        out,
        r##"<nav class="meta"><a href="#run">the run</a>{}<a href="#customers">customers</a></nav>"##,
        links.join("")
    );
}

fn mode(m: Mode) -> &'static str {
    match m {
        Mode::DryRun => "dry-run: nothing was sent",
        Mode::Run => "real run",
        Mode::Test => "test: nothing was sent",
    }
}

fn head(out: &mut String, report: &RunReport) {
    let (class, verdict) = match report.has_failures() || failed_expectations(report) > 0 {
        true => ("bad", "✗ failures"),
        false => ("good", "✓ no failures"),
    };
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>journey report {run_id}</title>
<style>{css}</style>
</head>
<body>
<header><div class="inner"><h1>journey report <span class="verdict {class}">{verdict}</span></h1>
<div class="meta"><span>mode: <b>{mode}</b></span><span>run id: <b>{run_id}</b></span><span>clock: <b>{started}</b></span><span>duration: <b>{secs:.2} s</b></span></div></div></header>
<main>
"#,
        run_id = esc(&report.run_id),
        css = include_str!("page.css"),
        mode = mode(report.mode),
        started = esc(&report.started_at),
        secs = report.duration_ms as f64 / 1000.0,
    );
}

fn failed_expectations(report: &RunReport) -> usize {
    report
        .expectations
        .iter()
        .filter(|e| e.failure.is_some())
        .count()
}

/// The totals, field by field as the JSON report has them, then what the run said and checked.
fn run_section(out: &mut String, report: &RunReport) {
    out.push_str("<h2 id=\"run\">The run</h2>\n<dl class=\"totals\">\n");
    if let Ok(serde_json::Value::Object(totals)) = serde_json::to_value(&report.totals) {
        for (name, value) in totals {
            let text = match &value {
                serde_json::Value::Object(map) => map
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => {
                    format!("{:.2}", n.as_f64().unwrap_or_default())
                }
                v => v.to_string(),
            };
            let _ = writeln!(
                out,
                r#"<div data-total="{0}"><dt>{0}</dt><dd>{1}</dd></div>"#,
                esc(&name),
                esc(&text)
            );
        }
    }
    out.push_str("</dl>\n");
    let lines = report
        .thresholds
        .iter()
        .map(|t| format!("✗ threshold crossed: {t}"))
        .chain(report.left.iter().map(|l| {
            let n = l.entries.map_or("some".into(), |n| n.to_string());
            format!("stopped ({}): {n} entries left for a later run", l.reason)
        }))
        .chain(report.notices.iter().cloned())
        .chain(report.alerts.iter().map(|a| {
            let state = match a.state.as_str() {
                "shown" => "would be sent (a dry-run sends nothing)".to_string(),
                "failed" => format!(
                    "✗ could not be delivered: {}",
                    a.error.as_deref().unwrap_or("")
                ),
                s => s.to_string(),
            };
            format!(
                "alert {} (journey {}) to {}: {state}",
                a.name, a.journey, a.to
            )
        }));
    list(out, "", lines);
    if !report.expectations.is_empty() {
        let failed = failed_expectations(report);
        let _ = writeln!(
            out,
            "<h3>Expectations: {} passed, {failed} failed</h3>\n<ul class=\"expectations\">",
            report.expectations.len() - failed
        );
        for e in &report.expectations {
            let _ = match &e.failure {
                None => writeln!(
                    out,
                    r#"<li class="exp ok">ok {} {}</li>"#,
                    esc(&e.journey),
                    esc(&e.name)
                ),
                Some(f) => writeln!(
                    out,
                    r#"<li class="exp fail">✗ FAIL {} {}: {}<br><small>at {}</small></li>"#,
                    esc(&e.journey),
                    esc(&e.name),
                    esc(f),
                    esc(&e.at)
                ),
            };
        }
        out.push_str("</ul>\n");
    }
}

fn list(out: &mut String, class: &str, lines: impl Iterator<Item = String>) {
    let items: Vec<String> = lines.map(|l| format!("<li>{}</li>", esc(&l))).collect();
    if !items.is_empty() {
        let _ = writeln!(out, "<ul class=\"{class}\">{}</ul>", items.join(""));
    }
}

/// A journey: its canvas, then a row per step.
fn journey_section(out: &mut String, report: &RunReport, j: &Journey, canvas: &Canvas) {
    let rows: Vec<&StepStats> = report
        .steps
        .iter()
        .filter(|s| s.journey == j.name)
        .collect();
    let svg = crate::graph::svg::draw(j, Some(&canvas.counts(&rows)));
    let _ = write!(
        out,
        r#"<h2 id="journey-{0}">Journey {0}</h2>
<div class="scroll canvas">{svg}</div>
<h3>Steps</h3>
<div class="scroll"><table class="steps"><thead><tr><th>step</th><th>kind</th><th>entered</th><th>ok</th><th>failed</th><th>skipped</th><th>assumed</th><th>attempts</th><th>retries</th><th>p50</th><th>p95</th><th>p99</th><th>max</th><th>answers</th><th>timeouts</th><th>connect</th><th>resets</th></tr></thead><tbody>
"#,
        esc(&j.name)
    );
    for s in &rows {
        step_row(out, s);
    }
    out.push_str("</tbody></table></div>\n");
    let errors = report
        .errors
        .iter()
        .filter(|g| g.message.contains(&format!("journey `{}`", j.name)));
    error_list(out, errors);
}

fn step_row(out: &mut String, s: &StepStats) {
    let ms = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1} ms"));
    let answers = s
        .status_codes
        .iter()
        .map(|(code, n)| format!("{code}×{n}"))
        .collect::<Vec<_>>()
        .join(" ");
    let failed = if s.failed > 0 {
        format!(r#"<td class="bad">✗ {}</td>"#, s.failed)
    } else {
        "<td>0</td>".into()
    };
    let _ = writeln!(
        out,
        r#"<tr data-step="{}"><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{failed}<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="text">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
        esc(&s.step),
        esc(&s.step),
        esc(&s.kind),
        s.entered,
        s.ok,
        s.suppressed + s.capped,
        s.assumed,
        s.attempts,
        s.retries,
        ms(s.p50_ms),
        ms(s.p95_ms),
        ms(s.p99_ms),
        ms(s.max_ms),
        esc(&answers),
        s.timeouts,
        s.connect_errors,
        s.resets
    );
}

/// Grouped errors, each with its count and example customers (links that search for them).
fn error_list<'a>(out: &mut String, groups: impl Iterator<Item = &'a crate::report::ErrorGroup>) {
    let mut items = String::new();
    for g in groups {
        let examples: Vec<String> = g
            .examples
            .iter()
            .filter(|c| !c.is_empty())
            .map(|c| format!(r##"<a href="#q={0}">{1}</a>"##, esc(&percent(c)), esc(c)))
            .collect();
        let eg = match examples.is_empty() {
            true => String::new(),
            false => format!(", e.g. {}", examples.join(", ")),
        };
        let _ = writeln!(
            items,
            "<li>✗ {} ({} {}{eg})</li>",
            esc(&g.message),
            g.count,
            if g.count == 1 { "entry" } else { "entries" }
        );
    }
    if !items.is_empty() {
        let _ = write!(
            out,
            "<h3>Errors</h3>\n<ul class=\"errors\">\n{items}</ul>\n"
        );
    }
}

/// Errors of no journey's steps, and warnings.
fn problems(out: &mut String, report: &RunReport) {
    if !report.warnings.is_empty() {
        out.push_str("<h2 id=\"warnings\">Warnings</h2>\n");
        list(
            out,
            "warnings",
            report
                .warnings
                .iter()
                .map(|g| format!("{} ({}×)", g.message, g.count)),
        );
    }
    let named = |m: &str| m.contains("journey `");
    if report.errors.iter().any(|g| !named(&g.message)) {
        out.push_str("<h2 id=\"other-errors\">Other errors</h2>\n");
        error_list(out, report.errors.iter().filter(|g| !named(&g.message)));
    }
}

/// A customer id as it stands in `#q=` (what `decodeURIComponent` reads back).
fn percent(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}
