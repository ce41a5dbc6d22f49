//! Rendering as a user sees it in `--show requests`: native types, injection, placeholders, aggregated errors.

use crate::support::{Test, one_step};

fn show(t: &Test) -> crate::support::Output {
    t.dry_run(&["--show", "requests", "--output", "json"])
}

fn body_of(stderr: &str) -> serde_json::Value {
    let start = stderr
        .find("\n{")
        .expect("a JSON body in the shown request");
    let mut de =
        serde_json::Deserializer::from_str(&stderr[start..]).into_iter::<serde_json::Value>();
    de.next().unwrap().unwrap()
}

#[test]
fn a_lone_expression_keeps_its_type() {
    let t = Test::new();
    t.file(
        "j.yaml",
        &one_step("j", "{ n: \"{{ customer.ltv }}\", flag: \"{{ customer.vip }}\", tags: \"{{ customer.tags }}\", obj: \"{{ customer.attributes }}\", text: \"ltv {{ customer.ltv }}\", kept: 7 }"),
    );
    t.file("f.yaml", "customers:\n  - { id: c1, ltv: 120.5, vip: true, tags: [a, b], attributes: { plan: trial } }\n");
    let out = show(&t);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        body_of(&out.stderr),
        serde_json::json!({ "n": 120.5, "flag": true, "tags": ["a", "b"], "obj": { "plan": "trial" }, "text": "ltv 120.5", "kept": 7 })
    );
}

#[test]
fn customer_data_is_never_evaluated() {
    let t = Test::new();
    t.file(
        "j.yaml",
        &one_step(
            "j",
            "{ greeting: \"Hi {{ customer.name }}\", raw: \"{{ customer.name }}\" }",
        ),
    );
    t.file(
        "f.yaml",
        "customers:\n  - { id: c1, name: \"{{ 7*7 }}{% raw %}\" }\n",
    );
    let out = show(&t);
    assert_eq!(out.code, 0, "{}", out.all());
    let body = body_of(&out.stderr);
    assert_eq!(body["greeting"], "Hi {{ 7*7 }}{% raw %}");
    assert_eq!(body["raw"], "{{ 7*7 }}{% raw %}");
}

#[test]
fn missing_env_renders_a_placeholder_and_says_so_once() {
    let t = Test::new();
    t.file("j.yaml", &one_step("j", "{ a: 1 }"));
    t.file("f.yaml", "customers: [{ id: c1 }, { id: c2 }]\n");
    let out = t.dry_run(&["--show", "requests"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        out.stdout.matches("POST <env.HOOK_URL>/hook").count(),
        2,
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stderr.matches("rendered as placeholders").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("env.HOOK_URL"));
}

#[test]
fn errors_in_a_batch_are_aggregated_with_examples() {
    let t = Test::new();
    t.file(
        "j.yaml",
        &one_step("j", "{ email: \"{{ customer.email }}\" }"),
    );
    let customers: String = (1..=50).map(|i| format!("  - {{ id: c{i} }}\n")).collect();
    t.file(
        "f.yaml",
        &format!("customers:\n{customers}  - {{ id: ok, email: a@b.c }}\n"),
    );
    let out = t.dry_run(&[]);
    assert_eq!(out.code, 1, "{}", out.all());
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    let line = lines[0];
    assert!(line.contains("j.yaml:7:"), "{line}");
    assert!(line.contains("journey `j`, step `send`"), "{line}");
    assert!(line.contains("`steps[0].webhook.body.email`"), "{line}");
    assert!(line.contains("undefined value"), "{line}");
    assert!(line.contains("(50 entries, e.g. c1, c2, c3)"), "{line}");
    assert!(out.stdout.contains("1 completed"), "{}", out.stdout);
    assert!(out.stdout.contains("50 invalid"), "{}", out.stdout);
}

#[test]
fn filters_normalize_and_hash() {
    let t = Test::new();
    t.file(
        "j.yaml",
        &one_step("j", "{ to: \"{{ customer.email | normalize_email }}\", phone: \"{{ customer.phone | normalize_phone }}\", hash: \"{{ customer.email | normalize_email | sha256 }}\", day: \"{{ now | datetimeformat('%Y-%m-%d %H:%M', tz='America/New_York') }}\" }"),
    );
    t.file(
        "f.yaml",
        "customers:\n  - { id: c1, email: \" Ana@Example.com \", phone: \"+1 (415) 555-0100\" }\n",
    );
    let out = t.dry_run(&[
        "--show",
        "requests",
        "--output",
        "json",
        "--now",
        "2026-11-20T11:00:00Z",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    let body = body_of(&out.stderr);
    assert_eq!(body["to"], "ana@example.com");
    assert_eq!(body["phone"], "+14155550100");
    assert_eq!(body["hash"].as_str().unwrap().len(), 64);
    assert_eq!(body["day"], "2026-11-20 06:00");
}

#[test]
fn identities_are_stable_across_runs() {
    let t = Test::new();
    t.file("j.yaml", &one_step("j", "{ a: 1 }"));
    t.file("f.yaml", "customers: [{ id: c1 }]\n");
    let first = t.dry_run(&["--show", "requests"]);
    let second = t.dry_run(&["--show", "requests"]);
    let key = |o: &crate::support::Output| {
        o.stdout
            .lines()
            .find(|l| l.starts_with("Idempotency-Key: dlv_"))
            .map(str::to_string)
    };
    let trace = |o: &crate::support::Output| {
        o.stdout
            .lines()
            .find(|l| l.starts_with("traceparent: 00-"))
            .map(|l| l[16..48].to_string())
    };
    assert!(key(&first).is_some(), "{}", first.stdout);
    assert!(trace(&first).is_some(), "{}", first.stdout);
    assert_eq!(key(&first), key(&second));
    assert_eq!(trace(&first), trace(&second));
}

#[test]
fn a_step_that_cannot_render_is_not_counted_ok() {
    let t = Test::new();
    t.file(
        "j.yaml",
        &one_step("j", "{ email: \"{{ customer.email }}\" }"),
    );
    t.file(
        "f.yaml",
        "customers: [{ id: c1 }, { id: c2, email: a@b.c }]\n",
    );
    let out = t.dry_run(&["--output", "json"]);
    let r: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(r["steps"][0]["entered"], 2);
    assert_eq!(r["steps"][0]["assumed"], 1);
    assert_eq!(
        r["steps"][0]["ok"], 0,
        "the invalid entry did not pass the step"
    );
}
