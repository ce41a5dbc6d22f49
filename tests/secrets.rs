//! Secrets never leak: not in `--show`, not in the JSON report, not in JUnit, not in expectations,
//! not in the errors of a failed real run, its log, dead letters or state store.

use crate::support::Test;

const TOKEN: &str = "tok_LIVE_s3cr3t_9f8e7d";
const SIGNING: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn journey() -> String {
    "journey: j\ntrigger: { segment: \"true\" }\nsteps:\n  - id: send\n    webhook:\n      url: \"{{ env.HOOK_URL }}/hook?key={{ secret.TOKEN }}\"\n      auth: { bearer: \"{{ secret.TOKEN }}\" }\n      sign: { standard_webhooks: \"{{ secret.SIGNING }}\" }\n      headers: { X-Echo: \"{{ secret.TOKEN }}\" }\n      body: { token: \"{{ secret.TOKEN }}\", who: \"{{ customer.id }}\" }\n".into()
}

#[test]
fn secrets_are_redacted_everywhere_they_could_show() {
    let t = Test::new()
        .env("TOKEN", TOKEN)
        .env("SIGNING", SIGNING)
        .env("HOOK_URL", "http://127.0.0.1:9");
    t.file("j.yaml", &journey());
    t.file("f.yaml", "customers: [{ id: c1 }]\nexpect:\n  - { journey: j, customer: c1, requests: { send: { body: { token: nope } } } }\n");
    let run = t.dry_run(&[
        "--show", "requests", "--report", "r.json", "--junit", "r.xml", "--html", "r.html",
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    let test = t.run(&[
        "test",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--report",
        "t.json",
        "--junit",
        "t.xml",
        "--html",
        "t.html",
    ]);
    assert_eq!(test.code, 1, "{}", test.all());
    let encoded = base64_of(TOKEN);
    for (what, text) in [
        ("run output", run.all()),
        ("test output", test.all()),
        ("r.json", t.read("r.json")),
        ("r.xml", t.read("r.xml")),
        ("t.json", t.read("t.json")),
        ("t.xml", t.read("t.xml")),
        ("r.html", unescape_html(&t.read("r.html"))),
        ("t.html", unescape_html(&t.read("t.html"))),
    ] {
        assert!(!text.contains(TOKEN), "{what} leaks the token:\n{text}");
        assert!(
            !text.contains(&encoded),
            "{what} leaks the token base64-encoded"
        );
        assert!(
            !text.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "{what} leaks the signing key"
        );
    }
    assert!(
        run.stdout.contains("Authorization: [redacted]"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("X-Echo: [redacted]"), "{}", run.stdout);
    assert!(run.stdout.contains("key=[redacted]"), "{}", run.stdout);
    assert!(
        run.stdout.contains("\"token\": \"[redacted]\""),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("webhook-signature: [redacted]"),
        "{}",
        run.stdout
    );
    assert!(
        test.all().contains("expected `nope`, got `[redacted]`"),
        "{}",
        test.all()
    );
}

#[test]
fn no_secrets_needed_for_dry_runs() {
    let t = Test::new();
    t.file("j.yaml", &journey());
    t.file("f.yaml", "customers: [{ id: c1 }]\n");
    let out = t.dry_run(&["--show", "requests"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("\"token\": \"<secret.TOKEN>\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("webhook-signature: [redacted]"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("signatures use a dummy key"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("secret.SIGNING, secret.TOKEN"),
        "{}",
        out.stderr
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn a_failed_real_run_says_why_without_the_secret_in_any_output() {
    for scheme in ["http", "https"] {
        let t = Test::new().env("TOKEN", TOKEN).env("SIGNING", SIGNING).env(
            "HOOK_URL",
            &format!("{scheme}://127.0.0.1:{}", closed_port()),
        );
        t.file(
            "j.yaml",
            &journey().replace("steps:", "defaults: { retry: { attempts: 1 } }\nsteps:"),
        );
        t.file("f.yaml", "customers: [{ id: c1 }, { id: c2 }]\n");
        let run = t.run(&[
            "run",
            "j.yaml",
            "--fixtures",
            "f.yaml",
            "--yes",
            "--report",
            "r.json",
            "--junit",
            "r.xml",
            "--log",
            "log.ndjson",
        ]);
        assert_eq!(run.code, 1, "{}", run.all());
        assert!(
            run.stderr.contains("step `send`") && run.stderr.contains("Connection refused"),
            "{scheme}: says why: {}",
            run.stderr
        );
        let store =
            String::from_utf8_lossy(&std::fs::read(t.path(".journey/state.sqlite")).unwrap())
                .into_owned();
        for (what, text) in [
            ("output", run.all()),
            ("r.json", t.read("r.json")),
            ("r.xml", t.read("r.xml")),
            ("log.ndjson", t.read("log.ndjson")),
            ("dead letters", t.read(".journey/dead-letter.ndjson")),
            ("state store", store),
        ] {
            assert!(
                !text.contains(TOKEN),
                "{scheme}: {what} leaks the token:\n{text}"
            );
            assert!(
                !text.contains(&base64_of(TOKEN)),
                "{scheme}: {what} leaks the token base64-encoded"
            );
            assert!(
                !text.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                "{scheme}: {what} leaks the signing key"
            );
        }
        assert!(
            t.read("log.ndjson").contains("c2"),
            "the log has the attempts"
        );
    }
}

/// Every form a secret could be written in: raw, JSON-escaped, JSON-escaped twice (a body inside
/// a log line), base64.
fn forms(secret: &str) -> Vec<String> {
    let once = serde_json::to_string(secret).unwrap();
    let once = once[1..once.len() - 1].to_string();
    let twice = serde_json::to_string(&once).unwrap();
    let twice = twice[1..twice.len() - 1].to_string();
    vec![secret.to_string(), once, twice, base64_of(secret)]
}

/// An HTML page's text as a browser shows it: a secret escaped for HTML is still that secret.
fn unescape_html(page: &str) -> String {
    page.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn assert_no_form(secret: &str, what: &str, text: &str) {
    for form in forms(secret) {
        assert!(!text.contains(&form), "{what} leaks `{form}`:\n{text}");
    }
}

fn store_text(t: &Test) -> String {
    String::from_utf8_lossy(&std::fs::read(t.path(".journey/state.sqlite")).unwrap()).into_owned()
}

#[test]
fn secrets_with_characters_json_escapes_are_redacted_in_every_output_even_when_echoed() {
    use crate::support::server::{Reply, TestServer};
    let secret = "Ab\"cd\\e\tf1234";
    let server = TestServer::start();
    server.script(
        "/first",
        vec![Reply::json(200, serde_json::json!({ "echo": secret }))],
    );
    server.script(
        "/second",
        vec![Reply::json(500, serde_json::json!({ "echo": secret }))],
    );
    let t = Test::new()
        .env("TOKEN", secret)
        .env("HOOK_URL", &server.url);
    t.file(
        "j.yaml",
        "journey: j\ntrigger: { segment: \"true\" }\ndefaults: { retry: { attempts: 1 } }\nsteps:\n  - id: first\n    webhook: { url: \"{{ env.HOOK_URL }}/first\", headers: { X-Key: \"{{ secret.TOKEN }}\" }, body: { token: \"{{ secret.TOKEN }}\" } }\n    save: { echo: \"response.body.echo\" }\n  - id: second\n    webhook: { url: \"{{ env.HOOK_URL }}/second\", body: { echoed: \"{{ saved.echo }}\" } }\n",
    );
    t.file("f.yaml", "customers: [{ id: c1 }, { id: c2 }]\n");
    let run = t.run(&[
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--yes",
        "--show",
        "curl",
        "--log",
        "log.ndjson",
        "--log-bodies",
        "--record-mocks",
        "mocks.yaml",
        "--report",
        "r.json",
        "--html",
        "r.html",
    ]);
    assert_eq!(run.code, 1, "{}", run.all());
    let shown = t.run(&[
        "run",
        "--dry-run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--fixtures",
        "mocks.yaml",
        "--show",
        "requests",
    ]);
    for (what, text) in [
        ("run output", run.all()),
        ("dry-run --show requests", shown.all()),
        ("log", t.read("log.ndjson")),
        ("mocks", t.read("mocks.yaml")),
        ("report", t.read("r.json")),
        ("html page", unescape_html(&t.read("r.html"))),
        ("dead letters", t.read(".journey/dead-letter.ndjson")),
        ("state store", store_text(&t)),
    ] {
        assert_no_form(secret, what, &text);
    }
    // What was saved from the echo goes out as the real secret again: walked on from the
    // store by --retry-failed (c2), and replayed from the dead letter (c1; c2's letter is not
    // sent again, a later run delivered it).
    server.script("/second", vec![Reply::status(200)]);
    let retried = t.run(&[
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--yes",
        "--retry-failed",
        "--customer",
        "c2",
    ]);
    assert_eq!(retried.code, 0, "{}", retried.all());
    let replay = t.run(&["replay", ".journey/dead-letter.ndjson"]);
    assert_eq!(replay.code, 0, "{}", replay.all());
    assert!(
        replay.stderr.contains("a later run delivered it"),
        "{}",
        replay.stderr
    );
    let echoed: Vec<serde_json::Value> = server
        .requests_to("/second")
        .iter()
        .map(|r| r.json()["echoed"].clone())
        .collect();
    assert_eq!(
        echoed,
        vec![serde_json::json!(secret); 4],
        "c1 and c2, c2 retried, c1 replayed"
    );
    assert_no_form(
        secret,
        "state store after retry and replay",
        &store_text(&t),
    );
}

#[test]
fn short_secrets_are_redacted_whole_in_the_fields_that_read_them() {
    use crate::support::server::TestServer;
    let server = TestServer::start();
    let t = Test::new().env("PIN", "k9").env("HOOK_URL", &server.url);
    t.file(
        "j.yaml",
        "journey: j\ntrigger: { segment: \"true\" }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/hook?key={{ secret.PIN }}\", query: { pin: \"{{ secret.PIN }}\" }, headers: { X-Pin: \"x{{ secret.PIN }}\" }, body: { pin: \"{{ secret.PIN }}\", nested: [\"{{ secret.PIN }}\"] } }\n  - id: form\n    webhook: { url: \"{{ env.HOOK_URL }}/form\", form: { pin: \"{{ secret.PIN }}\", who: \"{{ customer.id }}\" } }\n",
    );
    t.file("f.yaml", "customers: [{ id: c1 }]\n");
    for show in ["requests", "curl"] {
        let out = t.dry_run(&["--show", show]);
        assert_eq!(out.code, 0, "{}", out.all());
        assert!(
            !out.stdout.contains("k9"),
            "--show {show} leaks the short secret:\n{}",
            out.stdout
        );
    }
    let run = t.run(&[
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--yes",
        "--log",
        "log.ndjson",
        "--log-bodies",
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        !t.read("log.ndjson").contains("k9"),
        "{}",
        t.read("log.ndjson")
    );
    assert!(!run.all().contains("k9"), "{}", run.all());
    // What arrived is the real secret.
    assert!(
        server.requests_to("/form")[0]
            .body
            .windows(6)
            .any(|w| w == b"pin=k9")
    );
}
