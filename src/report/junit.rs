//! JUnit XML: one testsuite per journey; for `test` one testcase per expectation, for `run` one per step.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{Mode, RunReport};

/// The JUnit document as bytes.
pub fn render(report: &RunReport, journeys: &[String]) -> Vec<u8> {
    let mut doc = Report::new("journey");
    // An expectation about a journey that is not loaded (a typo) is a failure of its own suite.
    let mut names: Vec<&str> = journeys.iter().map(String::as_str).collect();
    for e in &report.expectations {
        if !names.contains(&e.journey.as_str()) {
            names.push(&e.journey);
        }
    }
    let time = std::time::Duration::from_millis(report.duration_ms);
    let started = chrono::DateTime::parse_from_rfc3339(&report.started_at).ok();
    doc.set_time(time);
    if let Some(at) = started {
        doc.set_timestamp(at);
    }
    for name in names {
        let mut suite = TestSuite::new(name);
        suite.set_time(time);
        if let Some(at) = started {
            suite.set_timestamp(at);
        }
        let cases = match report.mode {
            Mode::Test => expectation_cases(report, name),
            _ => step_cases(report, name),
        };
        suite.add_test_cases(cases.into_iter().map(|mut c| {
            c.set_classname(name);
            c.set_time(std::time::Duration::ZERO);
            c
        }));
        doc.add_test_suite(suite);
    }
    let xml = doc.to_string().unwrap_or_default();
    without_root_skipped(&xml).into_bytes()
}

/// The document without `skipped` on `<testsuites>`: quick-junit writes it, and Jenkins' JUnit
/// schema allows it only on `<testsuite>` (no testcase is ever skipped here).
fn without_root_skipped(xml: &str) -> String {
    let Some(start) = xml.find("<testsuites") else {
        return xml.to_string();
    };
    let end = xml[start..].find('>').map_or(xml.len(), |e| start + e);
    let tag = &xml[start..end];
    let Some(at) = tag.find(" skipped=\"") else {
        return xml.to_string();
    };
    let close = tag[at + 10..]
        .find('"')
        .map_or(tag.len(), |c| at + 10 + c + 1);
    format!("{}{}{}", &xml[..start + at], &tag[close..], &xml[end..])
}

fn case(name: &str, failure: Option<&str>) -> TestCase {
    failed_case(name, failure, failure)
}

/// A testcase: failed with `message` (and the longer `description`), or passed.
fn failed_case(name: &str, message: Option<&str>, description: Option<&str>) -> TestCase {
    let status = match message {
        None => TestCaseStatus::success(),
        Some(msg) => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(msg);
            s.set_description(description.unwrap_or(msg));
            s
        }
    };
    TestCase::new(name, status)
}

fn expectation_cases(report: &RunReport, journey: &str) -> Vec<TestCase> {
    report
        .expectations
        .iter()
        .filter(|e| e.journey == journey)
        .map(|e| case(&e.name, e.failure.as_deref()))
        .collect()
}

fn step_cases(report: &RunReport, journey: &str) -> Vec<TestCase> {
    let mut cases: Vec<TestCase> = report
        .steps
        .iter()
        .filter(|s| s.journey == journey)
        .map(|s| {
            // Only entries that ended here fail the step: a failure `on_failure` handled is the
            // journey working as written.
            let failure = (s.ended_failed > 0).then(|| {
                format!(
                    "{} of {} {} ended failed or invalid at step `{}`",
                    s.ended_failed,
                    s.entered,
                    entries(s.entered),
                    s.step
                )
            });
            let why = failure.as_ref().map(|f| {
                with_reasons(
                    f,
                    report,
                    &format!("journey `{journey}`, step `{}`", s.step),
                )
            });
            failed_case(&s.step, failure.as_deref(), why.as_deref())
        })
        .collect();
    let outside = report
        .failed_outside_steps
        .get(journey)
        .copied()
        .unwrap_or(0);
    let failure = (outside > 0).then(|| {
        format!(
            "{outside} {} ended failed or invalid before any step",
            entries(outside)
        )
    });
    let why = failure
        .as_ref()
        .map(|f| outside_reasons(f, report, journey));
    cases.push(failed_case(ENTERING, failure.as_deref(), why.as_deref()));
    cases
}

fn entries(n: u64) -> &'static str {
    if n == 1 { "entry" } else { "entries" }
}

/// The testcase of a journey's entries that fail before any step (no step id has a space).
const ENTERING: &str = "entering the journey";

/// `failure`, then the run's errors about the journey that name no step.
fn outside_reasons(failure: &str, report: &RunReport, journey: &str) -> String {
    let about = format!("journey `{journey}`");
    let mut text = failure.to_string();
    for e in report
        .errors
        .iter()
        .filter(|e| e.message.contains(&about) && !e.message.contains(&format!("{about}, step `")))
    {
        text.push_str(&reason_line(e));
    }
    text
}

fn reason_line(e: &super::ErrorGroup) -> String {
    let noun = if e.count == 1 { "entry" } else { "entries" };
    let examples = if e.examples.is_empty() {
        String::new()
    } else {
        format!(", e.g. {}", e.examples.join(", "))
    };
    format!("\n{} ({} {noun}{examples})", e.message, e.count)
}

/// `failure`, then the run's errors about this step, one per line with their counts and
/// example customers.
fn with_reasons(failure: &str, report: &RunReport, about: &str) -> String {
    let mut text = failure.to_string();
    for e in report.errors.iter().filter(|e| e.message.contains(about)) {
        text.push_str(&reason_line(e));
    }
    text
}
