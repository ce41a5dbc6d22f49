//! What is kept when deliveries fail: dead letters that replay with the same key and hold no secret, recorded mocks.

use super::*;

#[test]
fn dead_letters_replay_with_the_same_key_and_never_hold_secrets() {
    let server = TestServer::start();
    server.script("/x", vec![Reply::status(503)]);
    let step = r#"  - id: send
    webhook:
      url: "{{ env.HOOK_URL }}/x?k={{ secret.TOKEN }}"
      auth: { bearer: "{{ secret.TOKEN }}" }
      sign: { standard_webhooks: "{{ secret.WHSEC }}" }
      retry: { attempts: 2, backoff: 10ms }
      body: { id: "{{ customer.id }}", token: "{{ secret.TOKEN }}" }
"#;
    let t = setup(&server, &one(step), CUSTOMER);
    let out = send(
        &t,
        &[
            "--dead-letter",
            "dl/dead.ndjson",
            "--log",
            "log.ndjson",
            "--log-bodies",
            "--report",
            "r.json",
            "--show",
            "requests",
        ],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("journey replay dl/dead.ndjson"),
        "{}",
        out.stderr
    );
    let dead = t.read("dl/dead.ndjson");
    assert_eq!(dead.lines().count(), 1, "{dead}");
    let first_key = server.requests_to("/x")[0]
        .header("idempotency-key")
        .unwrap()
        .to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["dl/dead.ndjson", "log.ndjson", "r.json"] {
            assert_eq!(
                std::fs::metadata(t.path(f)).unwrap().permissions().mode() & 0o777,
                0o600,
                "{f}"
            );
        }
    }
    for (what, text) in [
        ("output", out.all()),
        ("dead letter", dead.clone()),
        ("log", t.read("log.ndjson")),
        ("report", t.read("r.json")),
    ] {
        assert!(!text.contains(TOKEN), "{what} leaks the token:\n{text}");
        assert!(
            !text.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "{what} leaks the signing secret"
        );
    }
    server.script("/x", vec![Reply::status(200)]);
    let replay = t.run(&["replay", "dl/dead.ndjson"]);
    assert_eq!(replay.code, 0, "{}", replay.all());
    let reqs = server.requests_to("/x");
    assert_eq!(reqs.len(), 3, "2 attempts, then the replay");
    let again = &reqs[2];
    assert_eq!(again.header("idempotency-key"), Some(first_key.as_str()));
    assert_eq!(
        again.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str()),
        "secrets are read again from the environment"
    );
    assert_eq!(again.json()["token"], TOKEN);
    assert!(verify_standard_webhooks(again));
    assert_eq!(
        t.read("dl/dead.ndjson"),
        "",
        "a delivered letter leaves the file"
    );
    assert!(!replay.all().contains(TOKEN));
}

#[test]
fn replay_keeps_what_still_fails_and_needs_the_secrets() {
    let server = TestServer::start();
    server.script("/x", vec![Reply::status(500)]);
    let step = "  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x\", auth: { bearer: \"{{ secret.TOKEN }}\" }, retry: { attempts: 1 }, body: {} }\n";
    let t = setup(&server, &one(step), CUSTOMER);
    assert_eq!(send(&t, &["--dead-letter", "dead.ndjson"]).code, 1);
    let before = t.read("dead.ndjson");
    let still = t.run(&["replay", "dead.ndjson"]);
    assert_eq!(still.code, 1, "{}", still.all());
    assert!(
        still.stderr.contains("FAIL j / send / customer c1"),
        "{}",
        still.stderr
    );
    assert_eq!(t.read("dead.ndjson"), before, "still failing: kept");
    let bare = Test::new();
    std::fs::copy(t.path("dead.ndjson"), bare.path("dead.ndjson")).unwrap();
    let no_env = bare.run(&["replay", "dead.ndjson"]);
    assert_eq!(no_env.code, 2, "{}", no_env.all());
    assert!(no_env.stderr.contains("secret.TOKEN"), "{}", no_env.stderr);
}

#[test]
fn recorded_mocks_replay_the_real_run_offline() {
    let server = TestServer::start();
    server.script(
        "/score",
        vec![
            Reply::status(503),
            Reply::json(200, serde_json::json!({ "risk": 0.9, "reason": "quiet" })),
        ],
    );
    server.script(
        "/call",
        vec![
            Reply::status(429).header("Retry-After", "0"),
            Reply::json(201, serde_json::json!({ "task": 7 })),
        ],
    );
    server.script("/offer", vec![Reply::status(500)]);
    let steps = r#"  - id: score
    webhook: { url: "{{ env.HOOK_URL }}/score", retry: { attempts: 3, backoff: 10ms }, body: { id: "{{ customer.id }}" } }
    save: { risk: "response.body.risk" }
  - id: route
    branch:
      - when: "saved.risk >= 0.8 and customer.id == 'c1'"
        goto: call
    default: offer
  - id: call
    webhook: { url: "{{ env.HOOK_URL }}/call", retry: { attempts: 3, backoff: 10ms }, body: {} }
    next: done
  - id: offer
    webhook: { url: "{{ env.HOOK_URL }}/offer", retry: { attempts: 2, backoff: 10ms }, body: {} }
    on_failure: stop
  - id: done
    end: completed
"#;
    let t = setup(
        &server,
        &one(steps),
        "customers: [{ id: c1 }, { id: c2 }, { id: c3 }]\n",
    );
    let real = send(&t, &["--record-mocks", "recorded.yaml", "--output", "json"]);
    assert_eq!(real.code, 0, "{}", real.all());
    let recorded = t.read("recorded.yaml");
    assert!(recorded.contains("entry.key"), "{recorded}");
    assert!(!recorded.contains(TOKEN));
    let before = server.requests().len();
    let offline = t.run(&[
        "run",
        "--dry-run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--fixtures",
        "recorded.yaml",
        "--output",
        "json",
    ]);
    assert_eq!(offline.code, 0, "{}", offline.all());
    assert_eq!(server.requests().len(), before, "the replay is offline");
    let counters = |out: &Output| -> Vec<serde_json::Value> {
        let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                serde_json::json!([
                    s["step"],
                    s["entered"],
                    s["ok"],
                    s["failed"],
                    s["retries"],
                    s["assumed"]
                ])
            })
            .collect()
    };
    assert_eq!(
        counters(&offline),
        counters(&real),
        "the same paths, attempts and outcomes"
    );
    let report: serde_json::Value = serde_json::from_str(&real.stdout).unwrap();
    assert_eq!(
        report["totals"]["stopped"], 2,
        "c2 and c3 stop after the failed offer"
    );
    assert_eq!(
        t.dry_run(&["--record-mocks", "x.yaml"]).code,
        2,
        "recording needs a real run"
    );
}
