//! The examples a new user runs first: they validate, dry-run without sending, pass their tests, draw.

use crate::support::{Sentinel, Test, repo};

fn in_repo(t: &Test, args: &[&str]) -> crate::support::Output {
    let journeys = repo().join("journeys");
    let fixtures = repo().join("fixtures");
    let mut full: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    full.insert(1, journeys.display().to_string());
    if args[0] != "graph" {
        full.extend(["--fixtures".into(), fixtures.display().to_string()]);
    }
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    t.run(&refs)
}

#[test]
fn the_examples_pass_their_tests() {
    let t = Test::new();
    let out = in_repo(
        &t,
        &[
            "test",
            "--now",
            "2026-11-20T11:00:00Z",
            "--junit",
            "junit.xml",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("expectations: 15 passed, 0 failed"),
        "{}",
        out.stdout
    );
    let xml = t.read("junit.xml");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("testsuite"))
            .count(),
        3
    );
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .count(),
        15
    );
}

#[test]
fn the_examples_dry_run_sends_nothing_and_reports_the_edge_cases() {
    let hook = Sentinel::start();
    let mut t = Test::new();
    for var in ["PROMO_URL", "ESP_URL", "CRM_URL", "SMS_URL", "SCORING_URL"] {
        t = t.env(var, &hook.url);
    }
    let out = in_repo(
        &t,
        &[
            "run",
            "--dry-run",
            "--show",
            "requests",
            "--now",
            "2026-11-20T11:00:00Z",
        ],
    );
    assert_eq!(
        out.code,
        1,
        "two fixtures are invalid on purpose: {}",
        out.all()
    );
    assert!(
        out.stdout
            .contains(&format!("POST {}/v1/incentives", hook.url)),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("trial_onboarding.yaml:45:13: journey `trial_onboarding`, step `nudge_sms`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("has no country code"), "{}", out.stderr);
    assert_eq!(hook.hits(), 0);
}

#[test]
fn the_examples_validate_and_render() {
    let t = Test::new();
    let plain = t.run(&[
        "validate",
        &repo().join("journeys").display().to_string(),
        "--strict",
    ]);
    assert_eq!(plain.code, 0, "{}", plain.all());
    assert!(plain.stdout.contains("ok: 3 journey(s) valid"));
    let rendered = in_repo(&t, &["validate"]);
    assert_eq!(rendered.code, 1, "{}", rendered.all());
    assert!(
        rendered
            .stderr
            .contains("2 of 14 entries cannot be rendered"),
        "{}",
        rendered.stderr
    );
}

#[test]
fn graphs_draw_every_edge() {
    let t = Test::new();
    let file = repo()
        .join("journeys/churn_risk.yaml")
        .display()
        .to_string();
    let mermaid = t.run(&["graph", &file]);
    assert_eq!(mermaid.code, 0, "{}", mermaid.all());
    assert!(mermaid.stdout.starts_with("flowchart TD"));
    assert!(
        mermaid.stdout.contains("s1 -->|\"saved.risk >= 0.8\"| s2"),
        "{}",
        mermaid.stdout
    );
    assert!(
        mermaid.stdout.contains("s1 -->|\"default\"| s4"),
        "{}",
        mermaid.stdout
    );
    let dot = t.run(&["graph", &file, "--format", "dot"]);
    assert!(
        dot.stdout.starts_with("digraph \"churn_risk\""),
        "{}",
        dot.stdout
    );
    assert!(
        dot.stdout.contains("s0 -> s1 [label=\"success\"]"),
        "{}",
        dot.stdout
    );
}
