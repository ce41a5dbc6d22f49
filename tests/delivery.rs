//! Real runs against a recording HTTP server on 127.0.0.1: what arrives, what is retried, what is kept.

use std::time::Duration;

use base64::Engine as _;
use hmac::{KeyInit, Mac};

use crate::support::server::{Reply, TestServer};
use crate::support::{Output, Test, close_early};

const TOKEN: &str = "tok_live_0a9b8c7d6e5f";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A real run with the server's URL and the secrets in the environment.
fn setup(server: &TestServer, journey: &str, fixtures: &str) -> Test {
    let t = Test::new()
        .env("HOOK_URL", &server.url)
        .env("TOKEN", TOKEN)
        .env("WHSEC", WHSEC);
    t.file("j.yaml", journey);
    t.file("f.yaml", fixtures);
    t
}

fn send(t: &Test, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--no-state",
        "--yes",
    ];
    args.extend_from_slice(extra);
    t.run(&args)
}

fn one(step: &str) -> String {
    format!("journey: j\ntrigger: {{ segment: \"true\" }}\nsteps:\n{step}")
}

const CUSTOMER: &str = "customers:\n  - { id: c1, email: a@b.c, consent: { email: true }, attributes: { ltv: 420.5, vip: true, tags: [x, y] } }\n";

#[test]
fn typed_bodies_auth_and_identity_arrive() {
    let server = TestServer::start();
    let step = r#"  - id: send
    webhook:
      url: "{{ env.HOOK_URL }}/send?c={{ customer.id }}"
      auth: { bearer: "{{ secret.TOKEN }}" }
      headers: { X-Campaign: "{{ journey.name }}" }
      body: { ltv: "{{ customer.attributes.ltv }}", vip: "{{ customer.attributes.vip }}", tags: "{{ customer.attributes.tags }}", text: "id {{ customer.id }}" }
"#;
    let t = setup(&server, &one(step), CUSTOMER);
    let out = send(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let reqs = server.requests_to("/send");
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/send?c=c1");
    assert_eq!(
        r.json(),
        serde_json::json!({ "ltv": 420.5, "vip": true, "tags": ["x", "y"], "text": "id c1" })
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-campaign"), Some("j"));
    assert!(r.header("user-agent").unwrap().starts_with("journey/"));
    assert!(r.header("idempotency-key").unwrap().starts_with("dlv_"));
    assert!(r.header("traceparent").unwrap().starts_with("00-"));
    assert!(
        out.stdout.contains("1 sent / 1 ok / 0 failed"),
        "{}",
        out.stdout
    );
}

#[test]
fn basic_and_header_auth() {
    let server = TestServer::start();
    let steps = r#"  - id: basic
    webhook: { url: "{{ env.HOOK_URL }}/basic", auth: { basic: { user: acct, password: "{{ secret.TOKEN }}" } }, body: {} }
  - id: keyed
    webhook: { url: "{{ env.HOOK_URL }}/keyed", auth: { header: { name: X-Api-Key, value: "{{ secret.TOKEN }}" } }, form: { to: "{{ customer.email }}", n: 2 } }
"#;
    let t = setup(&server, &one(steps), CUSTOMER);
    let out = send(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let basic = &server.requests_to("/basic")[0];
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("acct:{TOKEN}"));
    assert_eq!(
        basic.header("authorization"),
        Some(format!("Basic {expected}").as_str())
    );
    let keyed = &server.requests_to("/keyed")[0];
    assert_eq!(keyed.header("x-api-key"), Some(TOKEN));
    assert_eq!(
        keyed.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(String::from_utf8_lossy(&keyed.body), "to=a%40b.c&n=2");
}

fn verify_standard_webhooks(r: &crate::support::server::Recorded) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(WHSEC.trim_start_matches("whsec_"))
        .unwrap();
    let id = r.header("webhook-id").unwrap();
    let ts = r.header("webhook-timestamp").unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    r.header("webhook-signature")
        .unwrap()
        .split(' ')
        .any(|s| s == expected)
}

#[test]
fn signatures_verify_and_retries_keep_one_key() {
    let server = TestServer::start();
    server.script(
        "/signed",
        vec![
            Reply::status(503),
            Reply::status(503),
            Reply::json(200, serde_json::json!({})),
        ],
    );
    let steps = r#"  - id: signed
    webhook:
      url: "{{ env.HOOK_URL }}/signed"
      sign: { standard_webhooks: "{{ secret.WHSEC }}" }
      retry: { attempts: 3, backoff: 10ms }
      body: { id: "{{ customer.id }}" }
  - id: hmac
    webhook:
      url: "{{ env.HOOK_URL }}/hmac"
      sign: { hmac_sha256: { secret: "{{ secret.TOKEN }}", header: X-Signature } }
      body: { id: "{{ customer.id }}" }
"#;
    let t = setup(&server, &one(steps), CUSTOMER);
    let out = send(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let signed = server.requests_to("/signed");
    assert_eq!(signed.len(), 3, "503, 503, then 200");
    for r in &signed {
        assert!(
            verify_standard_webhooks(r),
            "signature does not verify: {r:?}"
        );
    }
    let keys: std::collections::HashSet<_> = signed
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 1, "one idempotency key across retries");
    assert_eq!(
        signed[0].header("webhook-id"),
        signed[2].header("webhook-id")
    );
    assert_eq!(
        signed[0].header("webhook-id"),
        signed[0].header("idempotency-key")
    );
    let traces: std::collections::HashSet<_> = signed
        .iter()
        .map(|r| r.header("traceparent").unwrap()[3..35].to_string())
        .collect();
    assert_eq!(traces.len(), 1, "one trace per entry");
    let h = &server.requests_to("/hmac")[0];
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(&h.body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        h.header("x-signature"),
        Some(format!("sha256={hex}").as_str())
    );
    assert!(
        out.stdout.contains("2"),
        "retries are in the table: {}",
        out.stdout
    );
    let row = out.stdout.lines().find(|l| l.contains(" signed ")).unwrap();
    assert!(row.contains(" 2 "), "2 retries in the row: {row}");
}

#[test]
fn retry_after_is_honoured() {
    let server = TestServer::start();
    server.script(
        "/busy",
        vec![
            Reply::status(429).header("Retry-After", "1"),
            Reply::status(200),
        ],
    );
    server.script(
        "/later",
        vec![Reply::status(429).header("Retry-After", "120")],
    );
    let steps = r#"  - id: busy
    webhook: { url: "{{ env.HOOK_URL }}/busy", retry: { attempts: 2, backoff: 1h, max_backoff: 2h }, body: {} }
  - id: later
    webhook: { url: "{{ env.HOOK_URL }}/later", retry: { attempts: 5, max_backoff: 30s }, body: {} }
    on_failure: continue
"#;
    let t = setup(&server, &one(steps), CUSTOMER);
    let started = std::time::Instant::now();
    let out = send(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(server.requests_to("/busy").len(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the retry waited for Retry-After"
    );
    assert_eq!(
        server.requests_to("/later").len(),
        1,
        "Retry-After beyond max_backoff is not retried in this run"
    );
}

#[test]
fn client_errors_and_redirects_are_not_retried() {
    let server = TestServer::start();
    server.script("/bad", vec![Reply::status(400)]);
    server.script("/gone", vec![Reply::status(410)]);
    server.script(
        "/moved",
        vec![Reply::status(302).header("Location", "/elsewhere")],
    );
    let step = |id: &str| {
        format!(
            "  - id: {id}\n    webhook: {{ url: \"{{{{ env.HOOK_URL }}}}/{id}\", retry: {{ attempts: 3, backoff: 10ms }}, body: {{}} }}\n    on_failure: continue\n"
        )
    };
    let t = setup(
        &server,
        &one(&[step("bad"), step("gone"), step("moved")].concat()),
        CUSTOMER,
    );
    let out = send(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    for path in ["/bad", "/gone", "/moved"] {
        assert_eq!(server.requests_to(path).len(), 1, "{path} tried once");
    }
    assert!(
        server.requests_to("/elsewhere").is_empty(),
        "a redirect is not followed"
    );
    assert!(
        out.stdout.contains("3 sent / 0 ok / 3 failed"),
        "{}",
        out.stdout
    );
}

#[test]
fn timeouts_and_refused_connections_fail_after_retries() {
    let server = TestServer::start();
    server.script(
        "/slow",
        vec![Reply::status(200).delay(Duration::from_secs(3))],
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let steps = format!(
        "  - id: slow\n    webhook: {{ url: \"{{{{ env.HOOK_URL }}}}/slow\", timeout: 200ms, retry: {{ attempts: 2, backoff: 10ms }}, body: {{}} }}\n    on_failure: continue\n  - id: refused\n    webhook: {{ url: \"{closed_url}/x\", retry: {{ attempts: 2, backoff: 10ms }}, body: {{}} }}\n"
    );
    let t = setup(&server, &one(&steps), CUSTOMER);
    let out = send(&t, &["--log", "attempts.ndjson"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(server.requests_to("/slow").len(), 2);
    let log = t.read("attempts.ndjson");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "one line per attempt: {log}");
    assert!(
        lines
            .iter()
            .all(|l| l["run_id"].as_str().unwrap().starts_with("run_"))
    );
    assert_eq!(lines[0]["error"], "timeout");
    assert_eq!(lines[1]["attempt"], 2);
    assert!(
        lines[2]["error"].as_str().unwrap().contains("connect"),
        "{log}"
    );
    assert!(
        lines[0].get("request_body").is_none(),
        "no bodies unless --log-bodies"
    );
}

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

/// Runs a real run under a pseudo-terminal (`script`), answering the question with `answer`.
fn on_a_terminal(t: &Test, server: &TestServer, answer: &str) -> String {
    use std::io::Write as _;
    let bin = env!("CARGO_BIN_EXE_journey");
    let mut child = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{bin} run j.yaml --fixtures f.yaml --no-state"),
            "/dev/null",
        ])
        .current_dir(t.dir.path())
        .env("HOOK_URL", &server.url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) runs the binary on a pseudo-terminal");
    std::thread::sleep(Duration::from_millis(500));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_terminal_is_asked_first_and_no_sends_nothing() {
    let server = TestServer::start();
    let t = setup(
        &server,
        &one("  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x\", body: {} }\n"),
        "customers: [{ id: c1 }, { id: c2 }]\n",
    );
    let declined = on_a_terminal(&t, &server, "n\n");
    assert!(
        declined.contains(&format!(
            "about to send requests for 2 entries to {}. Continue? [y/N]",
            server.url
        )),
        "{declined}"
    );
    assert!(declined.contains("nothing was sent"), "{declined}");
    assert!(server.requests().is_empty());
    let accepted = on_a_terminal(&t, &server, "y\n");
    assert!(accepted.contains("2 sent / 2 ok"), "{accepted}");
    assert_eq!(server.requests_to("/x").len(), 2);
    let piped = t.run(&["run", "j.yaml", "--fixtures", "f.yaml", "--no-state"]);
    assert_eq!(piped.code, 0, "{}", piped.all());
    assert!(
        !piped.all().contains("Continue?"),
        "no terminal, no question"
    );
    assert_eq!(
        server.requests_to("/x").len(),
        4,
        "cron has no terminal and is never asked"
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

#[test]
fn show_prints_exactly_what_is_sent() {
    let server = TestServer::start();
    let step = "  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x?c={{ customer.id }}\", body: { n: \"{{ customer.attributes.ltv }}\", name: \"a \\\"quoted\\\" name\" } }\n";
    let t = setup(&server, &one(step), CUSTOMER);
    let out = send(&t, &["--show", "requests"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let r = &server.requests_to("/x")[0];
    assert!(
        out.stdout.contains(&format!("POST {}/x?c=c1", server.url)),
        "{}",
        out.stdout
    );
    for (name, value) in r
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("idempotency") || n == "traceparent" || n == "x-source")
    {
        assert!(
            out.stdout
                .to_ascii_lowercase()
                .contains(&format!("{name}: {value}")),
            "{name} differs:\n{}",
            out.stdout
        );
    }
    let start = out.stdout.find("\n{").unwrap();
    let shown: serde_json::Value = serde_json::Deserializer::from_str(&out.stdout[start..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(shown, r.json());
}

#[test]
fn the_idempotency_header_can_be_renamed_or_left_out() {
    let server = TestServer::start();
    let steps = r#"  - id: renamed
    webhook: { url: "{{ env.HOOK_URL }}/renamed", idempotency_header: X-Request-Key, body: {} }
  - id: omitted
    webhook: { url: "{{ env.HOOK_URL }}/omitted", idempotency_header: false, body: {} }
"#;
    let t = setup(&server, &one(steps), CUSTOMER);
    assert_eq!(send(&t, &[]).code, 0);
    let renamed = &server.requests_to("/renamed")[0];
    assert!(renamed.header("x-request-key").unwrap().starts_with("dlv_"));
    assert!(renamed.header("idempotency-key").is_none());
    assert!(
        server.requests_to("/omitted")[0]
            .header("idempotency-key")
            .is_none()
    );
}

#[test]
fn a_line_break_in_a_header_is_a_render_error_not_a_request() {
    let server = TestServer::start();
    let step = "  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x\", headers: { X-Name: \"{{ customer.name }}\" }, body: {} }\n";
    let t = setup(
        &server,
        &one(step),
        "customers:\n  - { id: c1, name: \"Ann\\r\\nX-Admin: yes\" }\n  - { id: c2, name: Bob }\n",
    );
    let out = send(&t, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("a header value may not contain a line break"),
        "{}",
        out.stderr
    );
    let reqs = server.requests_to("/x");
    assert_eq!(reqs.len(), 1, "only Bob's request is sent");
    assert!(reqs[0].header("x-admin").is_none());
}

#[test]
fn response_bodies_are_capped_at_one_mebibyte() {
    let server = TestServer::start();
    let big = "x".repeat(3 * 1024 * 1024);
    server.script(
        "/big",
        vec![crate::support::server::Reply {
            status: 200,
            headers: vec![],
            body: big,
            delay: Duration::ZERO,
        }],
    );
    let steps = r#"  - id: big
    webhook: { url: "{{ env.HOOK_URL }}/big", body: {} }
    save: { size: "response.body | length" }
  - id: report
    webhook: { url: "{{ env.HOOK_URL }}/report", body: { size: "{{ saved.size }}" } }
"#;
    let t = setup(&server, &one(steps), CUSTOMER);
    assert_eq!(send(&t, &[]).code, 0);
    assert_eq!(server.requests_to("/report")[0].json()["size"], 1024 * 1024);
}

#[test]
fn show_curl_runs_with_the_real_curl_and_sends_the_same_request() {
    let server = TestServer::start();
    let step = r#"  - id: send
    webhook:
      url: "{{ env.HOOK_URL }}/curl?c={{ customer.id }}"
      auth: { bearer: "{{ secret.TOKEN }}" }
      headers: { X-Note: "it's {{ customer.id }}" }
      body: { id: "{{ customer.id }}", quote: "a 'quoted' \"text\" $HOME", token: "{{ secret.TOKEN }}" }
  - id: basic
    webhook: { url: "{{ env.HOOK_URL }}/basic", auth: { basic: { user: acct, password: "{{ secret.TOKEN }}" } }, body: {} }
"#;
    let t = setup(&server, &one(step), CUSTOMER);
    let out = t.dry_run(&["--show", "curl"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        !out.stdout.contains(TOKEN),
        "no secret value in the commands:\n{}",
        out.stdout
    );
    assert!(out.stdout.contains(r#""$TOKEN""#), "{}", out.stdout);
    assert!(server.requests().is_empty(), "a dry-run sends nothing");
    let script: String = out
        .stdout
        .split("\n\n")
        .filter(|b| b.contains("curl "))
        .map(|b| format!("{b}\n"))
        .collect();
    let status = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("TOKEN", TOKEN)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("sh and curl");
    assert!(status.success());
    let got = &server.requests_to("/curl")[0];
    assert_eq!(got.target, "/curl?c=c1");
    assert_eq!(
        got.json(),
        serde_json::json!({ "id": "c1", "quote": "a 'quoted' \"text\" $HOME", "token": TOKEN })
    );
    assert_eq!(
        got.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(got.header("x-note"), Some("it's c1"));
    let basic = &server.requests_to("/basic")[0];
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("acct:{TOKEN}"));
    assert_eq!(
        basic.header("authorization"),
        Some(format!("Basic {expected}").as_str())
    );
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

#[test]
fn a_revoked_key_stops_sending_to_that_host() {
    let server = TestServer::start();
    server.script("/x", vec![Reply::status(401)]);
    let step = "  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x\", retry: { attempts: 1 }, body: {} }\n";
    let customers: String = (0..8).map(|i| format!("  - {{ id: c{i} }}\n")).collect();
    let t = setup(&server, &one(step), &format!("customers:\n{customers}"));
    let out = send(&t, &["--concurrency", "1"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(
        server.requests_to("/x").len(),
        5,
        "five 401s, then no more requests to that host"
    );
    assert!(
        out.stderr
            .contains("5 consecutive 401/403/410 answers from 127.0.0.1:"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("looks revoked; the run stopped sending to it"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("8 failed"), "{}", out.stdout);
    assert!(
        out.stdout.contains("deliveries: 5 sent / 0 ok / 8 failed"),
        "the three refused deliveries were never sent: {}",
        out.stdout
    );
    let letters = std::fs::read_to_string(t.path(".journey/dead-letter.ndjson")).unwrap();
    let attempts: Vec<u64> = letters
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["attempts"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(attempts, [1, 1, 1, 1, 1, 0, 0, 0], "{letters}");
    for why in [
        "error: journey `j`, step `send`: HTTP 401 after 1 attempt (5 entries, e.g. c0, c1, c2)\n",
        "error: journey `j`, step `send`: 5 consecutive 401/403/410 answers from 127.0.0.1:",
        "looks revoked; the run stopped sending to it (3 entries, e.g. c5, c6, c7)\n",
    ] {
        assert!(
            out.stderr.contains(why),
            "why each delivery failed, once: {why}\n{}",
            out.stderr
        );
    }
}

#[test]
fn a_run_of_failures_pauses_the_host_and_the_summary_says_so() {
    let server = TestServer::start();
    server.script("/x", vec![Reply::status(503)]);
    let step = "  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x\", retry: { attempts: 1 }, body: {} }\n";
    let customers: String = (0..10).map(|i| format!("  - {{ id: c{i} }}\n")).collect();
    let t = setup(&server, &one(step), &format!("customers:\n{customers}"));
    let out = send(&t, &["--concurrency", "1", "--junit", "r.xml"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(server.requests_to("/x").len(), 10);
    let xml = t.read("r.xml");
    assert!(
        xml.contains("10 of 10 entries ended failed or invalid at step `send`\njourney `j`, step `send`: HTTP 503 after 1 attempt (10 entries, e.g. c0, c1, c2)</failure>"),
        "the JUnit failure says why: {xml}"
    );
    let port = server.url.rsplit(':').next().unwrap();
    let warning = format!(
        "warning: 10 consecutive failed attempts to 127.0.0.1:{port} paused sending to it for 5s, once\n"
    );
    assert!(out.stderr.contains(&warning), "{warning}\n{}", out.stderr);
}

#[test]
fn a_closed_output_starts_nothing_more_and_loses_nothing() {
    let server = TestServer::start();
    server.script(
        "/x",
        vec![Reply::status(200).delay(Duration::from_millis(5))],
    );
    let step = "  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x\", body: {} }\n";
    let customers: String = (0..300).map(|i| format!("  - {{ id: c{i} }}\n")).collect();
    let t = setup(&server, &one(step), &format!("customers:\n{customers}"));
    let run = [
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--state",
        "s.sqlite",
        "--yes",
    ];
    let extra = [
        "--concurrency",
        "1",
        "--show",
        "requests",
        "--report",
        "r.json",
    ];
    let out = close_early(t.spawn(&[&run[..], &extra[..]].concat()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let sent = server.requests_to("/x").len();
    assert!(sent < 100, "{sent} of 300 sent after the output was closed");
    let report: serde_json::Value = serde_json::from_str(&t.read("r.json")).unwrap();
    assert_eq!(
        report["totals"]["deliveries_ok"], sent,
        "the report is written: {report}"
    );
    // Every outcome reached the store: the next run sends the rest, none again.
    let rest = t.run(&run);
    assert_eq!(rest.code, 0, "{}", rest.all());
    assert!(rest.stdout.contains("0 in doubt"), "{}", rest.stdout);
    let keys: Vec<String> = server
        .requests_to("/x")
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect();
    let unique: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!((keys.len(), unique.len()), (300, 300));
}

#[test]
fn rate_limits_space_the_attempts() {
    let server = TestServer::start();
    let steps = "  - id: paced\n    webhook: { url: \"{{ env.HOOK_URL }}/paced\", rate_limit: 20/s, body: {} }\n";
    let customers: String = (0..10).map(|i| format!("  - {{ id: c{i} }}\n")).collect();
    let t = setup(&server, &one(steps), &format!("customers:\n{customers}"));
    assert_eq!(send(&t, &["--concurrency", "8"]).code, 0);
    let reqs = server.requests_to("/paced");
    assert_eq!(reqs.len(), 10);
    let spread = reqs.last().unwrap().at.duration_since(reqs[0].at);
    assert!(
        spread >= Duration::from_millis(400),
        "20/s: nine gaps of 50 ms, got {spread:?}"
    );

    let overall = Test::new().env("HOOK_URL", &server.url);
    overall.file(
        "j.yaml",
        &one("  - id: free\n    webhook: { url: \"{{ env.HOOK_URL }}/free\", body: {} }\n"),
    );
    overall.file(
        "f.yaml",
        "customers: [{ id: a }, { id: b }, { id: c }, { id: d }, { id: e }, { id: f }]\n",
    );
    assert_eq!(send(&overall, &["--rate", "10/s"]).code, 0);
    let free = server.requests_to("/free");
    let spread = free.last().unwrap().at.duration_since(free[0].at);
    assert!(
        spread >= Duration::from_millis(450),
        "--rate 10/s: five gaps of 100 ms, got {spread:?}"
    );
}

/// A receiver that answers each request on a connection that stays open (no
/// `connection: close`) and then closes it, as a server whose keep-alive timeout passed does:
/// the first request gets a 503, the next ones 200. Counts the requests it received.
fn closing_receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let status = match seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => "503 Service Unavailable",
                _ => "200 OK",
            };
            let mut stream = reader.into_inner();
            let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\n{{}}");
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (url, count)
}

#[test]
fn a_kept_alive_connection_the_server_closed_is_not_a_failed_attempt() {
    let (url, count) = closing_receiver();
    let t = Test::new().env("HOOK_URL", &url);
    t.file(
        "j.yaml",
        &one("  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x\", body: { c: \"{{ customer.id }}\" }, retry: { attempts: 2, backoff: 50ms } }\n"),
    );
    t.file("f.yaml", "customers: [{ id: c1 }]\n");
    let out = send(&t, &["--concurrency", "1", "--output", "json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the retry went out once, on a new connection"
    );
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["totals"]["completed"], 1, "{report}");
    assert_eq!(report["steps"][0]["retries"], 1, "{report}");
}

#[test]
fn credentials_in_the_url_are_sent_as_basic_auth() {
    let server = TestServer::start();
    let with_user = server.url.replacen("http://", "http://ops:pw@", 1);
    let t = Test::new().env("HOOK_URL", &with_user);
    t.file(
        "j.yaml",
        &one("  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x\", body: {} }\n"),
    );
    t.file("f.yaml", "customers: [{ id: c1 }]\n");
    let out = send(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let got = server.requests_to("/x");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("authorization"), Some("Basic b3BzOnB3"));
}
