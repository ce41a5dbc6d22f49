//! What an operator meets: the question on a terminal, a closed stdout, revoked keys, paused hosts and rate limits.

use super::*;

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
