//! `journey test`: expectations decide the exit code; JUnit has one testcase per expectation.

use crate::support::Test;

const JOURNEY: &str = r#"journey: j
trigger: { segment: "true" }
steps:
  - id: ask
    webhook: { url: "{{ env.HOOK_URL }}/ask", body: { id: "{{ customer.id }}" } }
    on_failure: fallback
  - id: send
    webhook: { url: "{{ env.HOOK_URL }}/send", body: { to: "{{ customer.email | normalize_email }}" } }
    next: done
  - id: fallback
    webhook: { url: "{{ env.HOOK_URL }}/fallback", body: {} }
  - id: done
    end: completed
"#;

const FIXTURES: &str = r#"customers:
  - { id: c1, email: " A@B.C " }
  - { id: c2, email: d@e.f }
mocks:
  ask:
    - when: "customer.id == 'c2'"
      status: 503
"#;

/// Writes the journey and fixtures with these `expect` items, then runs `journey test --junit junit.xml`.
fn test_with(expect: &str) -> (Test, crate::support::Output) {
    let t = Test::new();
    t.file("j.yaml", JOURNEY);
    t.file("f.yaml", &format!("{FIXTURES}expect:\n{expect}"));
    let out = t.run(&[
        "test",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--junit",
        "junit.xml",
    ]);
    (t, out)
}

#[test]
fn passing_expectations_exit_0() {
    let (t, out) = test_with(
        "  - { journey: j, customer: c1, path: [ask, send, done], outcome: completed, not_called: [fallback], requests: { send: { body: { to: a@b.c } } } }\n  - { journey: j, customer: c2, path: [ask, fallback, done], attempts: { ask: 3 } }\n  - { journey: j, customer: nobody, outcome: not_entered }\n",
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("expectations: 3 passed, 0 failed"),
        "{}",
        out.stdout
    );
    let xml = t.read("junit.xml");
    let doc = roxmltree::Document::parse(&xml).expect("JUnit parses as XML");
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 1);
    assert_eq!(suites[0].attribute("name"), Some("j"));
    assert_eq!(suites[0].attribute("tests"), Some("3"));
    assert_eq!(suites[0].attribute("failures"), Some("0"));
}

#[test]
fn a_mismatch_names_the_first_difference_and_exits_1() {
    let (t, out) = test_with(
        "  - { journey: j, customer: c2, path: [ask, send, done] }\n  - { journey: j, customer: c1, requests: { send: { body: { to: x@y.z } } } }\n  - { journey: j, customer: c1, outcome: completed }\n",
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("FAIL j customer c2 (line 9): expected path [ask, send, done], got [ask, fallback, done]"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("requests.send.body.to: expected `x@y.z`, got `a@b.c`"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("expectations: 1 passed, 2 failed"),
        "{}",
        out.stdout
    );
    let xml = t.read("junit.xml");
    let doc = roxmltree::Document::parse(&xml).expect("JUnit parses as XML");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), 3);
    let names: std::collections::HashSet<_> =
        cases.iter().map(|c| c.attribute("name").unwrap()).collect();
    assert_eq!(names.len(), 3, "testcase names are unique: {names:?}");
    let failures: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .collect();
    assert_eq!(failures.len(), 2);
    assert!(failures.iter().any(|f| {
        f.attribute("message")
            .unwrap_or("")
            .contains("got [ask, fallback, done]")
    }));
}

#[test]
fn no_expectations_is_exit_2() {
    let t = Test::new();
    t.file("j.yaml", JOURNEY);
    t.file("f.yaml", FIXTURES);
    let out = t.run(&["test", "j.yaml", "--fixtures", "f.yaml"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("has nothing to check"),
        "{}",
        out.stderr
    );
}

#[test]
fn unknown_expect_keys_are_errors() {
    let t = Test::new();
    t.file("j.yaml", JOURNEY);
    t.file(
        "f.yaml",
        &format!("{FIXTURES}expect:\n  - {{ journey: j, customer: c1, outcom: completed }}\n"),
    );
    let out = t.run(&["test", "j.yaml", "--fixtures", "f.yaml"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("did you mean `outcome`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn junit_counts_every_failing_expectation_even_for_an_unknown_journey() {
    let (t, out) = test_with(
        "  - { journey: j, customer: c1, outcome: completed }\n  - { journey: jj, customer: c1, outcome: completed }\n",
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout.contains("expectations: 1 passed, 1 failed"),
        "{}",
        out.stdout
    );
    let xml = t.read("junit.xml");
    let doc = roxmltree::Document::parse(&xml).expect("JUnit parses as XML");
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    assert_eq!(failures, 1, "JUnit has the failure the console has:\n{xml}");
    let cases = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .count();
    assert_eq!(cases, 2, "{xml}");
}

#[test]
fn expectations_and_mocks_naming_steps_that_do_not_exist_are_errors() {
    for (expect, said) in [
        (
            "  - { journey: j, customer: c1, not_called: [fallbak] }\n",
            "expect `not_called`: journey `j` has no step `fallbak`; did you mean `fallback`?",
        ),
        (
            "  - { journey: j, customer: c1, path: [ask, sned, done] }\n",
            "expect `path`: journey `j` has no step `sned`; did you mean `send`?",
        ),
        (
            "  - { journey: j, customer: c1, requests: { sendd: { body: {} } } }\n",
            "expect `requests`: journey `j` has no step `sendd`; did you mean `send`?",
        ),
    ] {
        let (_, out) = test_with(expect);
        assert_eq!(out.code, 2, "{}", out.all());
        assert!(
            out.stderr.contains("f.yaml:") && out.stderr.contains(said),
            "{}",
            out.stderr
        );
    }
    let t = Test::new();
    t.file("j.yaml", JOURNEY);
    t.file(
        "f.yaml",
        "customers: [{ id: c1 }]\nmocks:\n  aks: [{ status: 500 }]\n  jj.ask: [{ status: 500 }]\n",
    );
    let out = t.run(&["run", "--dry-run", "j.yaml", "--fixtures", "f.yaml"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr
            .contains("mocks `aks`: no loaded journey has a step `aks`; did you mean `ask`?"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("mocks `jj.ask`: no journey `jj` is loaded; did you mean `j`?"),
        "{}",
        out.stderr
    );
    // A mock for a journey this run did not load, and nothing like it, is only unused.
    t.file(
        "g.yaml",
        "customers: [{ id: c1, email: a@b.c }]\nmocks:\n  churn_risk.score: [{ status: 500 }]\n",
    );
    let out = t.run(&["run", "--dry-run", "j.yaml", "--fixtures", "g.yaml"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains("warning: ") && out.stderr.contains("it is not used"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_form_body_is_checked_as_a_mapping() {
    let t = Test::new();
    t.file("j.yaml", "journey: j\ntrigger: { segment: \"true\" }\nsteps:\n  - id: sms\n    webhook: { url: \"{{ env.HOOK_URL }}/sms\", form: { To: \"{{ customer.phone }}\", Body: \"Hi there\" } }\n");
    t.file("f.yaml", "customers: [{ id: c1, phone: \"+14155550100\" }]\nexpect:\n  - { journey: j, customer: c1, requests: { sms: { body: { To: \"+14155550100\", Body: Hi there } } } }\n");
    let out = t.run(&["test", "j.yaml", "--fixtures", "f.yaml"]);
    assert_eq!(out.code, 0, "{}", out.all());
}
