//! `journey listen` as a receiver for real runs: signatures, duplicates, scripted answers.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use crate::support::Test;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A running `journey listen`; killed when dropped.
struct Listen {
    child: Child,
    url: String,
}

impl Listen {
    fn start(t: &Test, args: &[&str]) -> Listen {
        Self::start_with(t, args, &[("SIGNING", WHSEC), ("HMAC_KEY", "hmac-k3y")])
    }

    /// Starts `journey listen ARGS` with these environment variables.
    fn start_with(t: &Test, args: &[&str], env: &[(&str, &str)]) -> Listen {
        let mut child = Command::new(env!("CARGO_BIN_EXE_journey"))
            .args(["listen", "--port", "0"])
            .args(args)
            .current_dir(t.dir.path())
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{first}"))
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Listen { child, url }
    }

    /// Stops the receiver and returns what it printed after the first line.
    fn stop(mut self) -> String {
        self.child.kill().unwrap();
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out
    }
}

const JOURNEY: &str = r#"journey: j
trigger: { segment: "true" }
steps:
  - id: promo
    webhook:
      url: "{{ env.HOOK_URL }}/promo"
      auth: { bearer: "{{ secret.TOKEN }}" }
      sign: { standard_webhooks: "{{ secret.SIGNING }}" }
      retry: { attempts: 3, backoff: 10ms }
      body: { id: "{{ customer.id }}" }
  - id: score
    webhook:
      url: "{{ env.HOOK_URL }}/score"
      sign: { hmac_sha256: { secret: "{{ secret.HMAC_KEY }}", header: X-Signature } }
      body: { id: "{{ customer.id }}" }
"#;

fn run_against(t: &Test) -> crate::support::Output {
    t.run(&["run", "j.yaml", "--fixtures", "f.yaml", "--no-state"])
}

fn setup(l_url: Option<&str>) -> Test {
    let t = Test::new()
        .env("TOKEN", "tok_abcdef123")
        .env("SIGNING", WHSEC)
        .env("HMAC_KEY", "hmac-k3y");
    let t = match l_url {
        Some(u) => t.env("HOOK_URL", u),
        None => t,
    };
    t.file("j.yaml", JOURNEY);
    t.file("f.yaml", "customers: [{ id: c1 }, { id: c2 }]\n");
    t
}

#[test]
fn signatures_verify_and_a_second_run_is_flagged_duplicate() {
    let base = setup(None);
    let l = Listen::start(
        &base,
        &[
            "--secret-env",
            "SIGNING",
            "--secret-env",
            "HMAC_KEY",
            "--record",
            "rec.ndjson",
        ],
    );
    let t = setup(Some(&l.url));
    let first = run_against(&t);
    assert_eq!(first.code, 0, "{}", first.all());
    let second = run_against(&t);
    assert_eq!(second.code, 0, "{}", second.all());
    let printed = l.stop();
    let rec: Vec<serde_json::Value> = base
        .read("rec.ndjson")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rec.len(), 8, "2 customers x 2 steps x 2 runs");
    assert!(
        rec.iter()
            .filter(|r| r["target"] == "/promo")
            .all(|r| r["signature"] == "valid (Standard Webhooks)"),
        "{rec:?}"
    );
    assert!(
        rec.iter()
            .filter(|r| r["target"] == "/score")
            .all(|r| r["signature"] == "valid (hmac_sha256)"),
        "{rec:?}"
    );
    assert!(rec[..4].iter().all(|r| r["duplicate_of"].is_null()));
    assert!(
        rec[4..].iter().all(|r| r["duplicate_of"].is_number()),
        "the second run repeats every key"
    );
    assert_eq!(
        printed
            .matches(
                "DUPLICATE: this idempotency key was already delivered (answered 2xx) in request #"
            )
            .count(),
        4,
        "{printed}"
    );
    assert!(printed.contains("authorization: [redacted]"), "{printed}");
    assert!(
        !printed.contains("tok_abcdef123") && !base.read("rec.ndjson").contains("tok_abcdef123")
    );
}

#[test]
fn a_tampered_signature_is_invalid() {
    let base = setup(None);
    let l = Listen::start(&base, &["--secret-env", "HMAC_KEY"]);
    let t = setup(Some(&l.url)).env("SIGNING", "whsec_c29tZSBvdGhlciBzZWNyZXQ=");
    assert_eq!(run_against(&t).code, 0);
    let printed = l.stop();
    assert!(printed.contains("signature: INVALID"), "{printed}");
}

#[test]
fn answers_follow_the_respond_file() {
    let base = setup(None);
    base.file("answers.yaml", "paths:\n  /promo:\n    sequence: [503, { status: 200, body: { code: X } }]\n  /score:\n    status: 400\n");
    let l = Listen::start(
        &base,
        &["--respond", "answers.yaml", "--record", "rec.ndjson"],
    );
    let t = setup(Some(&l.url));
    let out = t.run(&[
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--no-state",
        "--output",
        "json",
    ]);
    l.stop();
    assert_eq!(out.code, 1, "/score answers 400: {}", out.all());
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        report["steps"][0]["ok"], 2,
        "503 then 200 for each customer's key"
    );
    assert_eq!(report["steps"][0]["retries"], 2);
    assert_eq!(report["steps"][1]["failed"], 2);
    let statuses: Vec<u64> = base
        .read("rec.ndjson")
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["status"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 503).count(), 2);
    // A retry after a 503 is a retry, not a duplicate: the key was never answered 2xx.
    let rec: Vec<serde_json::Value> = base
        .read("rec.ndjson")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rec.iter().all(|r| r["duplicate_of"].is_null()), "{rec:?}");
    let retries = rec.iter().filter(|r| r["retry_of"].is_number()).count();
    assert_eq!(retries, 2, "the 200 after each 503: {rec:?}");
}

#[test]
fn the_example_answers_file_loads() {
    let t = Test::new();
    let file = crate::support::repo().join("examples/listen-responses.yaml");
    let l = Listen::start(&t, &["--respond", &file.display().to_string()]);
    l.stop();
    let bad = Test::new();
    bad.file("r.yaml", "paths:\n  /x: { stauts: 200 }\n");
    let out = bad.run(&["listen", "--port", "0", "--respond", "r.yaml"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("did you mean `status`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn listen_redacts_its_secrets_in_custom_headers_the_query_and_the_body_at_any_length() {
    let t = Test::new();
    t.file("j.yaml", "journey: j\ntrigger: { segment: \"true\" }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/hook?key={{ secret.TOKEN }}\", headers: { X-Key: \"{{ secret.TOKEN }}\" }, body: { token: \"{{ secret.TOKEN }}\", long: \"{{ secret.LONG }}\" } }\n");
    t.file("f.yaml", "customers: [{ id: c1 }]\n");
    let l = Listen::start_with(
        &t,
        &[
            "--secret-env",
            "TOKEN",
            "--secret-env",
            "LONG",
            "--record",
            "rec.ndjson",
        ],
        &[("TOKEN", "t7x"), ("LONG", "a-much-longer-key")],
    );
    let t = t
        .env("HOOK_URL", &l.url)
        .env("TOKEN", "t7x")
        .env("LONG", "a-much-longer-key");
    let run = t.run(&[
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--yes",
        "--no-state",
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    std::thread::sleep(std::time::Duration::from_millis(200));
    let printed = l.stop();
    let recorded = t.read("rec.ndjson");
    for (what, text) in [("printed", &printed), ("recorded", &recorded)] {
        assert!(text.contains("/hook"), "{what}: {text}");
        assert!(
            !text.contains("t7x"),
            "{what} shows the short secret:\n{text}"
        );
        assert!(
            !text.contains("a-much-longer-key"),
            "{what} shows the secret:\n{text}"
        );
    }
}
