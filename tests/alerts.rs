//! Alerts: a run's results reach the team's channel (a local receiver standing in for Slack),
//! once, with the journey, the counts and the first error; never a secret or a customer's data
//! beyond ids; never changing the run's exit code.

use crate::support::server::{Reply, TestServer};
use crate::support::{Test, json};

const JOURNEY: &str = r#"journey: onboarding
trigger: { segment: "true" }
defaults: { retry: { attempts: 1 } }
steps:
  - id: send
    webhook:
      url: "{{ env.HOOK_URL }}/send"
      headers: { Authorization: "Bearer {{ secret.API_KEY }}" }
      body: { id: "{{ customer.id }}", email: "{{ customer.email }}" }
alerts:
  - name: failures
    when: "failed > 0"
    slack: "{{ env.SLACK_WEBHOOK_URL }}"
"#;

const CUSTOMERS: &str =
    "customers:\n  - { id: c1, email: ann@example.com }\n  - { id: c2, email: bo@example.com }\n";

fn folder(server: &TestServer, slack: &str) -> Test {
    let t = Test::new()
        .env("HOOK_URL", &server.url)
        .env("SLACK_WEBHOOK_URL", slack)
        .env("API_KEY", "sk_live_never_in_an_alert");
    t.file("j.yaml", JOURNEY);
    t.file("f.yaml", CUSTOMERS);
    t
}

/// `support::send` (a real run without a store), one entry at a time.
fn run(t: &Test, extra: &[&str]) -> crate::support::Output {
    crate::support::send(t, &[&["--concurrency", "1"], extra].concat())
}

#[test]
fn a_run_with_failures_sends_one_alert_with_the_journey_the_counts_and_the_first_error() {
    let server = TestServer::start();
    server.script("/send", vec![Reply::status(200), Reply::status(500)]);
    let t = folder(&server, &format!("{}/slack", server.url));
    let out = run(&t, &["--report", "r.json"]);
    assert_eq!(
        out.code,
        1,
        "the failure decides, as without alerts: {}",
        out.all()
    );
    let alerts = server.requests_to("/slack");
    assert_eq!(alerts.len(), 1, "{}", out.all());
    let body = alerts[0].json();
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("journey onboarding"), "{text}");
    assert!(text.contains("1 failed, 0 invalid of 2 entries"), "{text}");
    assert!(text.contains("1 of 2 deliveries failed (50.0%)"), "{text}");
    let first_error = body["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(
        first_error.contains("step `send`: HTTP 500") && first_error.contains("e.g. c2"),
        "{first_error}"
    );
    let raw = String::from_utf8_lossy(&alerts[0].body).into_owned();
    for kept_out in [
        "sk_live_never_in_an_alert",
        "bo@example.com",
        "ann@example.com",
    ] {
        assert!(!raw.contains(kept_out), "{kept_out} is in the alert: {raw}");
    }
    assert!(
        out.stdout
            .contains("alerts: failures (journey onboarding) to slack: sent"),
        "{}",
        out.stdout
    );
    let report: serde_json::Value = serde_json::from_str(&t.read("r.json")).unwrap();
    assert_eq!(report["alerts"][0]["state"], "sent");
    assert_eq!(report["alerts"][0]["attempts"], 1);
}

#[test]
fn a_clean_run_sends_no_alert() {
    let server = TestServer::start();
    let t = folder(&server, &format!("{}/slack", server.url));
    let out = run(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(server.requests_to("/slack").is_empty());
    assert!(!out.stdout.contains("alerts:"), "{}", out.stdout);
}

#[test]
fn an_alert_that_cannot_be_delivered_changes_nothing_of_the_run_and_is_kept_for_a_person() {
    let server = TestServer::start();
    // Nothing listens there: every attempt is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/slack", closed.local_addr().unwrap());
    drop(closed);
    let t = folder(&server, &dead);
    t.file("j.yaml", &JOURNEY.replace("\"failed > 0\"", "\"true\""));
    let out = run(&t, &["--output", "json"]);
    assert_eq!(out.code, 0, "a clean run stays 0: {}", out.all());
    assert!(
        out.stderr.contains(
            "error: alert `failures` of journey `onboarding` could not be delivered (slack)"
        ),
        "{}",
        out.stderr
    );
    let report = json(&out);
    assert_eq!(report["alerts"][0]["state"], "failed");
    assert_eq!(report["alerts"][0]["attempts"], 3, "retried");
    let letters = t.read(".journey/dead-letter.ndjson");
    let line: serde_json::Value = serde_json::from_str(letters.lines().next().unwrap()).unwrap();
    assert_eq!(
        (line["kind"].as_str(), line["alert"].as_str()),
        (Some("alert"), Some("failures"))
    );
    // `replay` sends deliveries again, not alerts: it leaves the line for a person.
    let replay = t.run(&["replay", ".journey/dead-letter.ndjson"]);
    assert_eq!(replay.code, 0, "{}", replay.all());
    assert_eq!(t.read(".journey/dead-letter.ndjson"), letters);
}

#[test]
fn a_dry_run_shows_the_alert_and_sends_nothing() {
    let server = TestServer::start();
    let t = folder(&server, &format!("{}/slack", server.url));
    t.file(
        "f.yaml",
        &format!(
            "{CUSTOMERS}mocks:\n  send:\n    - when: \"customer.id == 'c2'\"\n      status: 500\n"
        ),
    );
    let out = t.dry_run(&["--show", "requests", "--html", "r.html"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(server.requests().is_empty(), "a dry-run sends nothing");
    assert!(
        t.read("r.html")
            .contains("alert failures (journey onboarding) to slack: would be sent"),
        "the HTML report lists it"
    );
    assert!(
        out.stdout
            .contains("### alert failures (journey onboarding) → slack"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("alerts: failures (journey onboarding) to slack: would be sent"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_revoked_key_alerts_with_the_stopped_host() {
    let server = TestServer::start();
    server.script("/send", vec![Reply::status(401)]);
    let t = folder(&server, &format!("{}/slack", server.url));
    t.file(
        "j.yaml",
        &JOURNEY.replace("\"failed > 0\"", "\"stopped_hosts | length > 0\""),
    );
    let six: String = (1..=6)
        .map(|i| format!("  - {{ id: c{i}, email: x{i}@example.com }}\n"))
        .collect();
    t.file("f.yaml", &format!("customers:\n{six}"));
    let out = run(&t, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    let alerts = server.requests_to("/slack");
    assert_eq!(alerts.len(), 1, "{}", out.all());
    let text = alerts[0].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("stopped:") && text.contains("looks revoked"),
        "{text}"
    );
}

#[test]
fn an_alert_file_reaches_every_journey_and_validate_checks_alerts() {
    let server = TestServer::start();
    let t = folder(&server, &format!("{}/hook", server.url));
    let plain = JOURNEY.split("alerts:").next().unwrap().to_string();
    t.file("journeys/a.yaml", &plain);
    t.file(
        "journeys/b.yaml",
        &plain.replace("journey: onboarding", "journey: winback"),
    );
    t.file(
        "alerts.yaml",
        "alerts:\n  - name: every run\n    when: \"entries > 0\"\n    link: \"https://dash.example/runs/{{ run.run_id }}\"\n    retry: { attempts: 1 }\n    webhook:\n      url: \"{{ env.SLACK_WEBHOOK_URL }}\"\n      auth: { bearer: \"{{ secret.API_KEY }}\" }\n      body: { journey: \"{{ run.journey }}\", entries: \"{{ run.entries }}\", link: \"{{ run.link }}\" }\n",
    );
    let out = t.run(&[
        "run",
        "journeys",
        "--fixtures",
        "f.yaml",
        "--yes",
        "--no-state",
        "--alert",
        "alerts.yaml",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    let hooks = server.requests_to("/hook");
    for r in &hooks {
        assert_eq!(
            r.header("authorization"),
            Some("Bearer sk_live_never_in_an_alert"),
            "auth, as a journey's webhook takes it"
        );
    }
    let mut sent: Vec<serde_json::Value> = hooks.iter().map(|r| r.json()).collect();
    sent.sort_by_key(|v| v["journey"].to_string());
    for v in sent.iter_mut() {
        let link = v.as_object_mut().unwrap().remove("link").unwrap();
        assert!(
            link.as_str()
                .unwrap()
                .starts_with("https://dash.example/runs/run_"),
            "the team's link: {link}"
        );
    }
    assert_eq!(
        sent,
        [
            serde_json::json!({ "journey": "onboarding", "entries": 2 }),
            serde_json::json!({ "journey": "winback", "entries": 2 }),
        ]
    );
    t.file("bad.yaml", "alerts:\n  - when: \"failed >\"\n    slack: \"{{ env.SLACK_WEBHOOK_URL }}\"\n  - when: \"true\"\n");
    let bad = t.run(&["validate", "journeys", "--alert", "bad.yaml"]);
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(
        bad.stderr.contains("bad.yaml:2:"),
        "file:line of the bad `when`: {}",
        bad.stderr
    );
    assert!(
        bad.stderr.contains("bad.yaml:4:") && bad.stderr.contains("exactly one"),
        "an alert without a channel: {}",
        bad.stderr
    );
}

#[test]
fn an_alert_keeps_the_runs_safety_rules() {
    let server = TestServer::start();
    let t = folder(&server, "http://alerts.example.invalid/hook");
    t.file(
        "alerts.yaml",
        "alerts:\n  - name: pager\n    when: \"true\"\n    webhook:\n      url: \"{{ env.SLACK_WEBHOOK_URL }}\"\n      headers: { Authorization: \"Bearer {{ secret.API_KEY }}\" }\n",
    );
    t.file("j.yaml", JOURNEY.split("alerts:").next().unwrap());
    // A key over plain http to a host that is not this machine: refused before any connection.
    let out = run(&t, &["--alert", "alerts.yaml"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr
            .contains("it carries a secret and its URL is plain http"),
        "{}",
        out.stderr
    );
    assert!(!out.all().contains("sk_live_never_in_an_alert"));
    // The host of an alert comes from literals and `env`, never from the run's results.
    t.file(
        "alerts.yaml",
        "alerts:\n  - when: \"true\"\n    slack: \"https://{{ run.journey }}.example/hook\"\n",
    );
    let refused = t.run(&["validate", "j.yaml", "--alert", "alerts.yaml"]);
    assert_eq!(refused.code, 2, "{}", refused.all());
    assert!(
        refused.stderr.contains("alerts.yaml:3:"),
        "{}",
        refused.stderr
    );
}

crate::on_both_stores!(a_resolved_alert_says_once_that_the_journey_is_clean_again);

fn a_resolved_alert_says_once_that_the_journey_is_clean_again(b: &crate::support::store::Backend) {
    let server = TestServer::start();
    server.script(
        "/send",
        vec![Reply::status(200), Reply::status(500), Reply::status(200)],
    );
    let t = b
        .test()
        .env("HOOK_URL", &server.url)
        .env("SLACK_WEBHOOK_URL", &format!("{}/slack", server.url))
        .env("API_KEY", "sk_live_never_in_an_alert");
    t.file(
        "j.yaml",
        &JOURNEY.replace(
            "    when: \"failed > 0\"\n",
            "    when: \"failed > 0\"\n    resolved: true\n",
        ),
    );
    t.file("f.yaml", CUSTOMERS);
    let args = [
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--yes",
        "--concurrency",
        "1",
    ];
    assert_eq!(t.run(&args).code, 1);
    assert_eq!(server.requests_to("/slack").len(), 1, "the failure");
    // Tonight's new customer goes through: the journey is clean again.
    t.file(
        "f.yaml",
        &format!("{CUSTOMERS}  - {{ id: c3, email: cy@example.com }}\n"),
    );
    let clean = t.run(&args);
    assert_eq!(clean.code, 0, "{}", clean.all());
    let slack = server.requests_to("/slack");
    assert_eq!(slack.len(), 2, "{}", clean.all());
    let text = slack[1].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.starts_with("resolved: journey onboarding is clean again on "),
        "{text}"
    );
    let again = t.run(&args);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(
        server.requests_to("/slack").len(),
        2,
        "resolved once, not every clean run"
    );
}

#[test]
fn every_sends_a_long_runs_alert_while_it_goes_at_most_that_often() {
    let server = TestServer::start();
    server.script(
        "/send",
        vec![Reply::status(500).delay(std::time::Duration::from_millis(250))],
    );
    let t = folder(&server, &format!("{}/slack", server.url));
    t.file(
        "j.yaml",
        &JOURNEY.replace(
            "    when: \"failed > 0\"\n",
            "    when: \"failed > 0\"\n    every: 1s\n",
        ),
    );
    let twelve: String = (1..=12)
        .map(|i| format!("  - {{ id: c{i}, email: x{i}@example.com }}\n"))
        .collect();
    t.file("f.yaml", &format!("customers:\n{twelve}"));
    let started = std::time::Instant::now();
    let out = run(&t, &["--output", "json"]);
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{}", out.all());
    let slack = server.requests_to("/slack");
    let sends = server.requests_to("/send");
    let most = took.as_secs_f64().ceil() as usize + 1;
    assert!(
        slack.len() >= 2 && slack.len() <= most,
        "{} alerts in {took:?} with every: 1s",
        slack.len()
    );
    assert!(
        slack[0].at < sends.last().unwrap().at,
        "the first alert went while the run was still sending"
    );
    let report = json(&out);
    let sent = report["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "sent")
        .count();
    assert_eq!(
        sent,
        slack.len(),
        "the report counts every alert the run sent"
    );
}
