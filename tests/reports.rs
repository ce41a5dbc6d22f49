//! Output contracts: one JSON document on stdout, report files (0600), the table, a closed pipe.

use crate::support::{Test, close_early, one_step};

fn setup() -> Test {
    let t = Test::new();
    t.file("j.yaml", &one_step("j", "{ id: \"{{ customer.id }}\" }"));
    t.file("f.yaml", "customers: [{ id: c1 }, { id: c2 }]\n");
    t
}

#[test]
fn output_json_is_exactly_one_document() {
    let t = setup();
    let out = t.dry_run(&["--output", "json", "--show", "requests"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let doc: serde_json::Value =
        serde_json::from_str(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["schema_version"], 2);
    assert!(doc["run_id"].as_str().unwrap().starts_with("run_"));
    assert_eq!(doc["mode"], "dry_run");
    assert_eq!(doc["totals"]["entries"], 2);
    assert_eq!(doc["steps"][0]["assumed"], 2);
    assert!(
        out.stderr.contains("### j / send / customer c1"),
        "--show goes to stderr: {}",
        out.stderr
    );
}

#[test]
fn report_files_are_private_and_match_stdout() {
    let t = setup();
    let out = t.dry_run(&[
        "--report",
        "out/report.json",
        "--junit",
        "out/junit.xml",
        "--quiet",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(out.stdout, "", "--quiet prints nothing on success");
    let report: serde_json::Value = serde_json::from_str(&t.read("out/report.json")).unwrap();
    assert_eq!(report["totals"]["completed"], 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["out/report.json", "out/junit.xml"] {
            let mode = std::fs::metadata(t.path(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
    }
    let xml = t.read("out/junit.xml");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .count(),
        2,
        "one testcase per step for run, and one for entering the journey"
    );
}

#[test]
fn the_table_has_a_row_per_step_and_totals_without_colour() {
    let t = setup();
    let out = t.dry_run(&[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let header = out
        .stdout
        .lines()
        .find(|l| l.contains("journey") && l.contains("entered"))
        .expect("a header row");
    for col in ["step", "kind", "assumed"] {
        assert!(header.contains(col), "{col} missing from {header}");
    }
    // Columns that are 0 in every row are left out, and named below the table.
    assert!(
        out.stdout.contains(
            "(0 or none in every row: ok, failed, suppressed, capped, attempts, retries, timeouts, connect, resets, statuses, p50, p95, p99, max)"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains(" j ") && l.contains(" send ") && l.contains(" webhook ")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("entries: 2 completed / 0 failed / 0 invalid"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains('\u{1b}'),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let t = setup();
    let customers: String = (0..3000).map(|i| format!("  - {{ id: c{i} }}\n")).collect();
    t.file("f.yaml", &format!("customers:\n{customers}"));
    let child = t.spawn(&[
        "run",
        "--dry-run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--show",
        "requests",
    ]);
    let out = close_early(child);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(!out.stderr.contains("Broken pipe"), "{}", out.stderr);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn quiet_still_prints_errors_but_nothing_else() {
    let t = Test::new();
    t.file(
        "j.yaml",
        &one_step("j", "{ email: \"{{ customer.email }}\" }"),
    );
    t.file(
        "f.yaml",
        "customers: [{ id: c1 }, { id: c2, email: a@b.c }]\n",
    );
    let out = t.dry_run(&["--quiet"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("error: j.yaml:"), "{}", out.stderr);
    assert!(out.stderr.contains("(1 entry, e.g. c1)"), "{}", out.stderr);
}

#[test]
fn quiet_prints_no_requests_either() {
    let t = setup();
    for show in ["requests", "curl"] {
        let out = t.dry_run(&["--quiet", "--show", show]);
        assert_eq!(out.code, 0, "{}", out.all());
        assert_eq!(out.stdout, "", "--quiet --show {show}");
        assert!(!out.stderr.contains("###"), "{}", out.stderr);
    }
}

#[test]
fn replay_takes_yes_as_run_does() {
    let t = setup();
    t.file("dead.ndjson", "");
    let out = t.run(&["replay", "dead.ndjson", "--yes"]);
    assert_eq!(out.code, 0, "{}", out.all());
}

/// The number of `<failure>` elements in a JUnit file.
fn junit_failures(xml: &str) -> usize {
    let doc = roxmltree::Document::parse(xml).expect("JUnit parses as XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count()
}

#[test]
fn run_junit_fails_exactly_when_the_run_exits_1_for_its_entries() {
    let repo = crate::support::repo();
    let t = Test::new();
    let out = t.run(&[
        "run",
        "--dry-run",
        &repo.join("journeys").display().to_string(),
        "--fixtures",
        &repo.join("fixtures").display().to_string(),
        "--now",
        "2026-11-20T11:00:00Z",
        "--junit",
        "j.xml",
    ]);
    assert_eq!(
        out.code,
        1,
        "the examples hold two invalid entries: {}",
        out.all()
    );
    let xml = t.read("j.xml");
    assert_eq!(junit_failures(&xml), 2, "{xml}");
    assert!(
        xml.contains("c_005") && xml.contains("c_009"),
        "the example customers: {xml}"
    );
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let root = doc.root_element();
    assert_eq!(
        root.attribute("skipped"),
        None,
        "Jenkins' schema has no skipped on testsuites"
    );
    assert!(root.attribute("time").is_some() && root.attribute("timestamp").is_some());
    for case in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
        assert!(case.attribute("classname").is_some() && case.attribute("time").is_some());
    }
    // A failure `on_failure` handles is not a failure: the journey works as written.
    let t = Test::new();
    t.file("j.yaml", "journey: j\ntrigger: { segment: \"true\" }\nsteps:\n  - id: ask\n    webhook: { url: \"{{ env.HOOK_URL }}/ask\" }\n    on_failure: fallback\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/send\" }\n    next: done\n  - id: fallback\n    webhook: { url: \"{{ env.HOOK_URL }}/fallback\" }\n  - id: done\n    end: completed\n");
    t.file(
        "f.yaml",
        "customers: [{ id: c1 }]\nmocks:\n  ask: [{ status: 503 }]\n",
    );
    let out = t.dry_run(&["--junit", "j.xml"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(junit_failures(&t.read("j.xml")), 0, "{}", t.read("j.xml"));
}

#[test]
fn junit_of_run_and_test_is_valid_against_the_jenkins_layout() {
    if !crate::support::have("xmllint", "libxml2-utils", "the JUnit schema check") {
        return;
    }
    let repo = crate::support::repo();
    let (journeys, fixtures) = (repo.join("journeys"), repo.join("fixtures"));
    let t = Test::new();
    for (cmd, file) in [("run", "run.xml"), ("test", "test.xml")] {
        let mut args = vec![cmd];
        if cmd == "run" {
            args.push("--dry-run");
        }
        let (j, f) = (
            journeys.display().to_string(),
            fixtures.display().to_string(),
        );
        args.extend([
            j.as_str(),
            "--fixtures",
            f.as_str(),
            "--now",
            "2026-11-20T11:00:00Z",
            "--junit",
            file,
        ]);
        t.run(&args);
        let check = std::process::Command::new("xmllint")
            .args(["--noout", "--schema"])
            .arg(repo.join("tests/data/junit.xsd"))
            .arg(t.path(file))
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}

#[test]
fn the_progress_bar_on_a_terminal_is_a_spinner_for_streams_and_a_bar_for_known_totals() {
    if !crate::support::have("script", "bsdutils", "the progress bar check") {
        return;
    }
    let t = setup();
    let lines: String = (0..50_000)
        .map(|i| format!("{{\"id\": \"c{i}\"}}\n"))
        .collect();
    t.file("big.ndjson", &lines);
    let bin = env!("CARGO_BIN_EXE_journey");
    let on_a_terminal = |fixtures: &str| {
        let command = format!("{bin} run --dry-run j.yaml --fixtures {fixtures} > /dev/null");
        let out = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(t.dir.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let streamed = on_a_terminal("big.ndjson");
    assert!(streamed.contains(" entries  "), "a count: {streamed:?}");
    assert!(
        !streamed.contains("[="),
        "no bar without a total: {streamed:?}"
    );
    let decimals = regex::Regex::new(r"\d\.\d+/s").unwrap();
    assert!(!decimals.is_match(&streamed), "whole rates: {streamed:?}");
    let known = on_a_terminal("f.yaml");
    assert!(known.contains("[="), "a bar with a total: {known:?}");
    assert!(known.contains("2/2 entries"), "{known:?}");
}
