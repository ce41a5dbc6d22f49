//! Inputs an attacker or a careless export would give: each is a clear error or a safe result,
//! never a panic, a hang, a wrong customer or a leak.

use std::time::Duration;

use crate::support::server::{Reply, TestServer};
use crate::support::{Output, Test};

fn step(webhook: &str) -> String {
    format!(
        "journey: j\ntrigger: {{ segment: \"true\" }}\ndefaults: {{ retry: {{ attempts: 3, backoff: 1ms, max_backoff: 1s }} }}\nsteps:\n  - id: send\n    webhook: {webhook}\n"
    )
}

use crate::support::against as with;

use crate::support::send;

#[test]
fn a_bom_does_not_void_the_first_line_of_a_suppress_file() {
    let t = Test::new();
    t.file("j.yaml", &step("{ url: \"{{ env.HOOK_URL }}/hook\" }"));
    t.file(
        "f.yaml",
        "customers: [{ id: c1 }, { id: c2 }, { id: c3 }]\n",
    );
    std::fs::write(t.path("sup.txt"), "\u{feff}c1\nc2\n").unwrap();
    let out = t.dry_run(&["--suppress", "sup.txt"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("2 suppressed"), "{}", out.stdout);
}

#[test]
fn host_and_hop_by_hop_headers_are_refused_by_validate() {
    for name in ["Host", "connection", "Transfer-Encoding", "Content-Length"] {
        let t = Test::new();
        t.file(
            "j.yaml",
            &step(&format!(
                "{{ url: \"{{{{ env.HOOK_URL }}}}/hook\", headers: {{ {name}: \"{{{{ customer.vhost }}}}\" }} }}"
            )),
        );
        let out = t.run(&["validate", "j.yaml"]);
        assert_eq!(out.code, 2, "{name}: {}", out.all());
        assert!(out.stderr.contains("j.yaml:6:"), "{}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("header `{name}` cannot be set")),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn a_control_character_in_a_header_from_data_is_an_invalid_entry_and_nothing_is_sent() {
    let server = TestServer::start();
    let t = with(
        &server,
        &step("{ url: \"{{ env.HOOK_URL }}/hook\", headers: { X-Tag: \"{{ customer.tag }}\" } }"),
        r#"{"customers": [{"id": "c1", "tag": "a\u0001b"}, {"id": "c2", "tag": "x\r\nEvil: 1"}, {"id": "c3", "tag": "fine"}]}"#,
    );
    let out = send(&t, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("2 invalid"), "{}", out.stdout);
    assert!(
        out.stderr.contains("control character") && out.stderr.contains("X-Tag"),
        "{}",
        out.stderr
    );
    assert_eq!(server.requests().len(), 1, "only c3 was sent");
    assert!(
        !out.all().contains("paused"),
        "the host's breaker was not touched"
    );
}

#[test]
fn validate_with_fixtures_redacts_secrets_in_render_errors() {
    let secret = "tok_LIVE_s3cr3t_77";
    let t = Test::new().env("TOKEN", secret);
    t.file(
        "j.yaml",
        &step("{ url: \"{{ env.HOOK_URL }}/hook\", body: { phone: \"{{ secret.TOKEN | normalize_phone }}\" } }"),
    );
    t.file("f.yaml", "customers: [{ id: c1 }]\n");
    let out = t.run(&["validate", "j.yaml", "--fixtures", "f.yaml"]);
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("has no country code"), "{}", out.stderr);
    assert!(!out.all().contains(secret), "{}", out.all());
    assert!(out.stderr.contains("[redacted]"), "{}", out.stderr);
}

#[test]
fn a_bad_datetime_format_is_an_error_not_a_panic() {
    for fmt in ["%Q", "%", "50%", "%E", "%#z"] {
        let t = Test::new();
        t.file(
            "j.yaml",
            &step(&format!(
                "{{ url: \"{{{{ env.HOOK_URL }}}}/hook\", body: {{ m: \"{{{{ now | datetimeformat('{fmt}') }}}}\" }} }}"
            )),
        );
        t.file("f.yaml", "customers: [{ id: c1 }]\n");
        let out = t.run(&["validate", "j.yaml"]);
        assert_eq!(out.code, 2, "{fmt}: {}", out.all());
        assert!(
            out.stderr.contains("j.yaml:6:") && out.stderr.contains("date format"),
            "{fmt}: {}",
            out.stderr
        );
        let out = t.dry_run(&[]);
        assert_eq!(out.code, 2, "{fmt}: {}", out.all());
    }
    // A computed format is a render error for the entry that gave it.
    let t = Test::new();
    t.file(
        "j.yaml",
        &step("{ url: \"{{ env.HOOK_URL }}/hook\", body: { m: \"{{ now | datetimeformat(customer.fmt) }}\" } }"),
    );
    t.file(
        "f.yaml",
        "customers: [{ id: c1, fmt: \"%Q\" }, { id: c2, fmt: \"%Y\" }]\n",
    );
    let out = t.dry_run(&["--now", "2026-11-20T11:00:00Z"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("1 invalid"), "{}", out.stdout);
    assert!(out.stderr.contains("date format"), "{}", out.stderr);
}

#[test]
fn an_absurd_concurrency_is_exit_2_with_the_range() {
    let t = Test::new();
    t.file("j.yaml", &step("{ url: \"{{ env.HOOK_URL }}/hook\" }"));
    t.file("f.yaml", "customers: [{ id: c1 }]\n");
    let out = t.dry_run(&["--concurrency", "18446744073709551615"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("--concurrency"), "{}", out.stderr);
    assert!(out.stderr.contains("1 to "), "{}", out.stderr);
}

#[test]
fn deeply_nested_expressions_are_refused_not_a_stack_overflow() {
    for expr in [
        "not ".repeat(40_000) + "true",
        "(".repeat(40_000) + "true" + &")".repeat(40_000),
        "-".repeat(40_000) + "1 > 0",
    ] {
        let t = Test::new();
        t.file(
            "j.yaml",
            &format!("journey: j\ntrigger: {{ segment: \"{expr}\" }}\nsteps:\n  - id: e\n    end: completed\n"),
        );
        let out = t.run(&["validate", "j.yaml"]);
        assert_eq!(out.code, 2, "{}", &out.all()[..out.all().len().min(2000)]);
        assert!(
            out.stderr.contains("nested too deeply"),
            "{}",
            &out.stderr[..out.stderr.len().min(2000)]
        );
    }
}

#[test]
fn a_retry_after_beyond_any_number_is_longer_than_max_backoff() {
    let server = TestServer::start();
    server.script(
        "/hook",
        vec![Reply::status(503).header("Retry-After", "99999999999999999999")],
    );
    let t = with(
        &server,
        &step("{ url: \"{{ env.HOOK_URL }}/hook\" }"),
        "customers: [{ id: c1 }]\n",
    );
    let out = send(&t, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(server.requests().len(), 1, "not retried within this run");
    assert!(out.stderr.contains("Retry-After"), "{}", out.stderr);
}

#[test]
fn max_duration_that_stops_a_run_with_entries_left_exits_124() {
    let server = TestServer::start();
    server.script(
        "/hook",
        vec![Reply::status(200).delay(Duration::from_millis(400))],
    );
    let list: String = (0..40).map(|i| format!("  - {{ id: c{i} }}\n")).collect();
    let t = with(
        &server,
        &step("{ url: \"{{ env.HOOK_URL }}/hook\" }"),
        &format!("customers:\n{list}"),
    );
    let out = send(&t, &["--max-duration", "1s", "--concurrency", "1"]);
    assert_eq!(out.code, 124, "{}", out.all());
    assert!(out.stdout.contains("left"), "{}", out.stdout);
    // A run that finishes in time exits 0.
    let t = with(
        &server,
        &step("{ url: \"{{ env.HOOK_URL }}/hook\" }"),
        "customers: [{ id: c1 }]\n",
    );
    let out = send(&t, &["--max-duration", "30s"]);
    assert_eq!(out.code, 0, "{}", out.all());
}

#[test]
fn text_never_orders_against_a_number() {
    let t = Test::new();
    t.file(
        "j.yaml",
        "journey: j\ntrigger: { segment: \"customer.attributes.days_inactive > 30\" }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/hook\", body: { late: \"{{ customer.attributes.code == 5 }}\" } }\n",
    );
    t.file(
        "f.yaml",
        "customers:\n  - { id: c1, attributes: { days_inactive: \"5\", code: \"5\" } }\n  - { id: c2, attributes: { days_inactive: 45, code: \"5\" } }\n  - { id: c3, attributes: { days_inactive: 10, code: 5 } }\n",
    );
    let out = t.dry_run(&["--report", "r.json"]);
    assert_eq!(out.code, 1, "{}", out.all());
    let report: serde_json::Value = serde_json::from_str(&t.read("r.json")).unwrap();
    assert_eq!(report["totals"]["invalid"], 1, "c1 is invalid, not entered");
    assert_eq!(report["steps"][0]["entered"], 1, "only c2 entered");
    assert!(
        out.stderr.contains("customer.attributes.days_inactive")
            && out.stderr.contains("text \"5\"")
            && out.stderr.contains("number 30")
            && out.stderr.contains("| int"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("warning: `customer.attributes.code` compares text with a number"),
        "{}",
        out.stderr
    );
}

#[test]
fn customer_data_in_a_url_path_is_one_encoded_segment() {
    let server = TestServer::start();
    let t = with(
        &server,
        &step(
            "{ url: \"{{ env.HOOK_URL }}/contacts/{{ customer.id }}/notes/{{ customer.folder | as_path }}?tag={{ customer.tag }}\" }",
        ),
        r#"{"customers": [
            {"id": "../../admin", "folder": "2026/11", "tag": "a&b=c"},
            {"id": "a/b?c=d#e", "folder": "x y", "tag": "t"},
            {"id": "50%", "folder": "ok", "tag": "t"},
            {"id": "..", "folder": "ok", "tag": "t"},
            {"id": "fine", "folder": "../up", "tag": "t"}
        ]}"#,
    );
    let out = send(&t, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    let mut targets: Vec<String> = server.requests().iter().map(|r| r.target.clone()).collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            "/contacts/..%2F..%2Fadmin/notes/2026/11?tag=a%26b%3Dc",
            "/contacts/50%25/notes/ok?tag=t",
            "/contacts/a%2Fb%3Fc%3Dd%23e/notes/x%20y?tag=t",
        ]
    );
    assert!(out.stdout.contains("2 invalid"), "{}", out.stdout);
    assert!(
        out.stderr.contains("cannot be a path segment"),
        "{}",
        out.stderr
    );
}

/// Waits for a spawned run to end by itself, for at most `limit`; kills it otherwise.
fn ends_within(mut child: std::process::Child, limit: Duration) -> Option<Output> {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap().into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    None
}

#[test]
fn a_stop_ends_a_wait_on_a_rate_limit_at_once_and_nothing_is_left_in_doubt() {
    let server = TestServer::start();
    let journey = "journey: j\ntrigger: { segment: \"true\" }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/hook\", rate_limit: 1/m }\n";
    let t = with(
        &server,
        journey,
        "customers: [{ id: c1 }, { id: c2 }, { id: c3 }]\n",
    );
    let child = t.spawn(&["run", "j.yaml", "--fixtures", "f.yaml", "--yes"]);
    server.wait_for(1);
    std::thread::sleep(Duration::from_millis(200));
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = ends_within(child, Duration::from_secs(20)).expect("SIGTERM ends the wait");
    assert_eq!(out.code, 143, "{}", out.all());
    assert_eq!(server.requests().len(), 1);
    let shown = t.run(&["state", "show", "--state", ".journey/state.sqlite"]);
    assert!(
        shown.stdout.contains("deliveries: 2 deferred, 1 ok"),
        "never sent, so not pending (in doubt): {}",
        shown.stdout
    );
    // --max-duration ends such a wait the same way.
    let child = t.spawn(&[
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--yes",
        "--max-duration",
        "1s",
    ]);
    let out = ends_within(child, Duration::from_secs(20)).expect("--max-duration ends the wait");
    assert_eq!(out.code, 124, "{}", out.all());
    assert!(out.stdout.contains("0 in doubt"), "{}", out.stdout);
}

#[test]
fn deeply_nested_documents_are_refused_by_place_and_wide_csv_headers_are_read() {
    let t = Test::new();
    t.file("j.yaml", &step("{ url: \"{{ env.HOOK_URL }}/hook\" }"));
    let n = 5_000;
    t.file(
        "deep.json",
        &format!("{{\"customers\": {}{}}}", "[".repeat(n), "]".repeat(n)),
    );
    t.file("deep.yaml", &format!("customers:\n{}1\n", "- ".repeat(n)));
    for f in ["deep.json", "deep.yaml"] {
        let out = t.run(&["run", "--dry-run", "j.yaml", "--fixtures", f]);
        assert_eq!(out.code, 2, "{f}: {}", out.all());
        assert!(
            out.stderr.contains(&format!("{f}:"))
                && out.stderr.contains("nested more than 100 levels deep"),
            "{f}: {}",
            out.stderr
        );
    }
    t.file(
        "deep_journey.yaml",
        &format!("journey: x\nsteps: {}{}\n", "[".repeat(n), "]".repeat(n)),
    );
    let out = t.run(&["validate", "deep_journey.yaml"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains("deep_journey.yaml:2:"),
        "{}",
        out.stderr
    );
    let cols = 20_000;
    let header: Vec<String> = (0..cols).map(|i| format!("attributes.c{i}")).collect();
    let cells = vec!["1"; cols].join(",");
    t.file(
        "wide.csv",
        &format!("id,{}\nc1,{cells}\nc2,{cells}\n", header.join(",")),
    );
    let out = t.run(&["run", "--dry-run", "j.yaml", "--fixtures", "wide.csv"]);
    assert_eq!(out.code, 0, "{}", &out.all()[..out.all().len().min(500)]);
    assert!(out.stdout.contains("2 completed"), "{}", out.stdout);
    // A clash is still found, however far apart the columns are.
    t.file(
        "clash.csv",
        &format!("id,{},attributes.c7.x\nc1,{cells},1\n", header.join(",")),
    );
    let out = t.run(&["run", "--dry-run", "j.yaml", "--fixtures", "clash.csv"]);
    assert_eq!(
        out.code,
        1,
        "a stream's bad header is an invalid entry: {}",
        out.all()
    );
    assert!(
        out.stderr
            .contains("columns 9 `attributes.c7` and 20002 `attributes.c7.x` cannot both be set"),
        "{}",
        out.stderr
    );
}
