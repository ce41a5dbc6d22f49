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
    for name in names {
        let mut suite = TestSuite::new(name);
        let cases = match report.mode {
            Mode::Test => expectation_cases(report, name),
            _ => step_cases(report, name),
        };
        suite.add_test_cases(cases);
        doc.add_test_suite(suite);
    }
    doc.to_string().map(String::into_bytes).unwrap_or_default()
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
    report
        .steps
        .iter()
        .filter(|s| s.journey == journey)
        .map(|s| {
            let failure = (s.failed > 0).then(|| {
                format!(
                    "{} of {} entries failed at step `{}`",
                    s.failed, s.entered, s.step
                )
            });
            let why = failure
                .as_ref()
                .map(|f| with_reasons(f, report, journey, &s.step));
            failed_case(&s.step, failure.as_deref(), why.as_deref())
        })
        .collect()
}

/// `failure`, then the run's errors about this step, one per line with their counts.
fn with_reasons(failure: &str, report: &RunReport, journey: &str, step: &str) -> String {
    let about = format!("journey `{journey}`, step `{step}`");
    let mut text = failure.to_string();
    for e in report.errors.iter().filter(|e| e.message.contains(&about)) {
        let noun = if e.count == 1 { "entry" } else { "entries" };
        text.push_str(&format!("\n{} ({} {noun})", e.message, e.count));
    }
    text
}
