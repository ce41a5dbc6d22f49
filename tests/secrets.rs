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
        "--show", "requests", "--report", "r.json", "--junit", "r.xml",
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
