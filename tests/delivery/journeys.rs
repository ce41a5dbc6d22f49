//! Journeys for real: branches on responses, consent, missing variables, thresholds, the examples, ordering per customer, async steps.

use super::*;

#[test]
fn branches_follow_the_response_and_fallbacks_leave_no_dead_letter() {
    let server = TestServer::start();
    server.script(
        "/score",
        vec![Reply::json(200, serde_json::json!({ "risk": 0.91 }))],
    );
    server.script("/offer", vec![Reply::status(500)]);
    let steps = r#"  - id: score
    webhook: { url: "{{ env.HOOK_URL }}/score", body: {} }
    save: { risk: "response.body.risk" }
  - id: route
    branch:
      - when: "saved.risk >= 0.8"
        goto: offer
    default: done
  - id: offer
    webhook: { url: "{{ env.HOOK_URL }}/offer", retry: { attempts: 2, backoff: 10ms }, body: { risk: "{{ saved.risk }}" } }
    on_failure: fallback
    next: done
  - id: fallback
    webhook: { url: "{{ env.HOOK_URL }}/fallback", body: { status: "{{ steps.offer.status }}" } }
  - id: done
    end: completed
"#;
    let t = setup(&server, &one(steps), CUSTOMER);
    let out = send(&t, &["--dead-letter", "dead.ndjson"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        server.requests_to("/offer")[0].json(),
        serde_json::json!({ "risk": 0.91 })
    );
    assert_eq!(
        server.requests_to("/fallback")[0].json(),
        serde_json::json!({ "status": 500 })
    );
    assert!(
        !t.path("dead.ndjson").exists(),
        "a handled failure is not dead-lettered"
    );
}

#[test]
fn consent_is_required_before_sending() {
    let server = TestServer::start();
    let steps = r#"  - id: email
    consent: email
    webhook: { url: "{{ env.HOOK_URL }}/email", body: {} }
  - id: sms
    consent: sms
    webhook: { url: "{{ env.HOOK_URL }}/sms", body: {} }
"#;
    let t = setup(&server, &one(steps), CUSTOMER);
    let out = send(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(server.requests_to("/email").len(), 1);
    assert!(server.requests_to("/sms").is_empty());
    let row = out.stdout.lines().find(|l| l.contains(" sms ")).unwrap();
    assert!(row.contains(" 1 "), "counted suppressed: {row}");
}

#[test]
fn missing_variables_stop_the_run_before_anything_is_sent() {
    let server = TestServer::start();
    let step = "  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x\", auth: { bearer: \"{{ secret.NOPE }}\" }, headers: { X-A: \"{{ env.ALSO_MISSING }}\" }, body: {} }\n";
    let t = setup(&server, &one(step), CUSTOMER);
    let out = send(&t, &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr
            .contains("not set: env.ALSO_MISSING, secret.NOPE"),
        "{}",
        out.stderr
    );
    assert!(server.requests().is_empty());
}

#[test]
fn thresholds_and_empty_runs() {
    let server = TestServer::start();
    server.script("/x", vec![Reply::status(500)]);
    let step = "  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x\", retry: { attempts: 1 }, body: {} }\n    on_failure: continue\n";
    let t = setup(&server, &one(step), CUSTOMER);
    let ok = send(&t, &[]);
    assert_eq!(
        ok.code,
        0,
        "a handled failure alone does not fail the run: {}",
        ok.all()
    );
    let crossed = send(&t, &["--max-failure-rate", "50"]);
    assert_eq!(crossed.code, 1, "{}", crossed.all());
    assert!(
        crossed
            .stderr
            .contains("failure rate 100.0% is above --max-failure-rate 50%"),
        "{}",
        crossed.stderr
    );
    t.file("f.yaml", "customers: []\n");
    let empty = send(&t, &["--fail-if-empty"]);
    assert_eq!(empty.code, 1, "{}", empty.all());
}

#[test]
fn the_examples_run_for_real() {
    let server = TestServer::start();
    server.script(
        "/v1/incentives",
        vec![Reply::json(
            200,
            serde_json::json!({ "code": "REAL10", "expires_at": "2026-12-01" }),
        )],
    );
    server.script(
        "/v2/churn-score",
        vec![Reply::json(200, serde_json::json!({ "risk": 0.7 }))],
    );
    let mut t = Test::new();
    for var in ["PROMO_URL", "ESP_URL", "CRM_URL", "SMS_URL", "SCORING_URL"] {
        t = t.env(var, &server.url);
    }
    for var in [
        "PROMO_TOKEN",
        "ESP_KEY",
        "CRM_TOKEN",
        "SMS_PASSWORD",
        "SCORING_HMAC_KEY",
        "SMS_ACCOUNT",
    ] {
        t = t.env(var, "test-value-123");
    }
    t = t.env("PROMO_SIGNING_SECRET", WHSEC);
    let repo = crate::support::repo();
    let out = t.run(&[
        "run",
        &repo.join("journeys").display().to_string(),
        "--fixtures",
        &repo.join("fixtures").display().to_string(),
        "--no-state",
        "--fast-forward",
        "--yes",
        "--dead-letter",
        "dead.ndjson",
    ]);
    assert_eq!(
        out.code,
        1,
        "two example customers are invalid on purpose: {}",
        out.all()
    );
    let incentives = server.requests_to("/v1/incentives");
    assert_eq!(
        incentives.len(),
        5,
        "five carts of 50 or more from customers who consented, c_004 suppressed"
    );
    assert!(incentives.iter().all(verify_standard_webhooks));
    let sends = server.requests_to("/send");
    assert!(
        sends.iter().any(|r| r.json()["data"]["code"] == "REAL10"),
        "the saved code reaches the email"
    );
    assert_eq!(
        server.requests_to("/tasks").len(),
        0,
        "risk 0.7 is an offer, not a call"
    );
    assert!(
        !server.requests_to("/messages").is_empty(),
        "the trial nudge SMS went out"
    );
}

#[test]
fn one_customer_at_a_time_many_customers_at_once() {
    let server = TestServer::start();
    for c in ["c1", "c2"] {
        server.script(
            &format!("/{c}"),
            vec![Reply::status(200).delay(Duration::from_millis(150))],
        );
    }
    let journey = "journey: j\ntrigger: { event: visit }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/{{ customer.id }}\", body: { e: \"{{ event.id }}\" } }\n";
    let events: String = (1..=3)
        .flat_map(|i| ["c1", "c2"].map(|c| format!("  - {{ id: {c}_{i}, name: visit, customer: {c}, at: 2026-11-20T10:0{i}:00Z }}\n")))
        .collect();
    let t = setup(
        &server,
        journey,
        &format!("customers: [{{ id: c1 }}, {{ id: c2 }}]\nevents:\n{events}"),
    );
    let out = send(&t, &["--concurrency", "8", "--output", "json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(server.requests().len(), 6);
    assert_eq!(
        server.max_in_flight("/c1"),
        1,
        "one customer's entries never overlap"
    );
    assert_eq!(server.max_in_flight("/c2"), 1);
    assert!(
        server.requests().iter().any(|r| r.concurrent > 0),
        "different customers run at once"
    );
    let order: Vec<String> = server
        .requests_to("/c1")
        .iter()
        .map(|r| r.json()["e"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        order,
        ["c1_1", "c1_2", "c1_3"],
        "entries start in input order"
    );
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        report["steps"][0]["p50_ms"].as_f64().unwrap() >= 100.0,
        "latencies are measured: {report}"
    );
    assert!(report["steps"][0]["p95_ms"].as_f64().is_some());
}

#[test]
fn async_steps_do_not_hold_the_entry_but_are_settled_and_counted() {
    let server = TestServer::start();
    server.script(
        "/track",
        vec![Reply::status(503).delay(Duration::from_millis(300))],
    );
    // Both slow: if the entry waited for the async step, the two could never overlap.
    server.script(
        "/send",
        vec![Reply::status(200).delay(Duration::from_secs(1))],
    );
    let steps = r#"  - id: track
    webhook: { url: "{{ env.HOOK_URL }}/track", async: true, retry: { attempts: 2, backoff: 10ms }, body: { e: signup } }
  - id: send
    webhook: { url: "{{ env.HOOK_URL }}/send", body: {} }
"#;
    let t = setup(&server, &one(steps), CUSTOMER);
    let out = send(
        &t,
        &["--dead-letter", "dead.ndjson", "--max-failure-rate", "40"],
    );
    assert_eq!(
        server.requests_to("/track").len(),
        2,
        "retried like any delivery"
    );
    assert!(
        server.requests().iter().any(|r| r.concurrent >= 1),
        "the entry moved on while the async request was in flight"
    );
    assert_eq!(
        out.code,
        1,
        "its failure counts toward --max-failure-rate: {}",
        out.all()
    );
    assert!(
        out.stdout.contains("2 sent / 1 ok / 1 failed"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("1 completed"),
        "the entry itself completed: {}",
        out.stdout
    );
    assert_eq!(
        t.read("dead.ndjson").lines().count(),
        1,
        "an unhandled async failure is dead-lettered"
    );
}
