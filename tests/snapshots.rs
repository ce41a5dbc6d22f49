//! What people and tools read, pinned: the results table and summary, the JSON report, JUnit
//! for `run` and `test`, `--show requests` and `--show curl`, both graph formats, the error
//! lines of a file with several mistakes, `state show`, and the completions of each shell. The
//! inputs are fixed and the clock frozen; what still varies (run ids, durations, rates, ports,
//! temp folders) is replaced by a named placeholder. A changed snapshot is a reviewed change:
//! `cargo insta review`, or `INSTA_UPDATE=always cargo test` and read the diff.

use regex::Regex;

use crate::support::server::TestServer;
use crate::support::{Test, repo};

/// The text with what varies between runs replaced by placeholders.
fn stable(text: &str, t: &Test) -> String {
    let dir = t.dir.path().display().to_string();
    let mut out = text
        .replace(&dir, "[dir]")
        .replace(&repo().display().to_string(), "[repo]");
    for (pattern, with) in [
        (r"run_\d{8}T\d{6}Z_[0-9a-f]{8}", "run_[id]"),
        (
            r"duration \d+\.\d+s, \d+ entries/s",
            "duration [t], [n] entries/s",
        ),
        (r#""duration_ms": \d+"#, r#""duration_ms": 0"#),
        (
            r#""entries_per_second": [0-9.e+-]+"#,
            r#""entries_per_second": 0"#,
        ),
        (r#"time="\d+\.\d+""#, r#"time="[t]""#),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
        (r"\d+(\.\d+)?ms\b", "[ms]"),
        (r"since \d{4}-\d\d-\d\dT[0-9:.]+Z", "since [t]"),
        (r"journey/\d+\.\d+\.\d+", "journey/[version]"),
    ] {
        out = Regex::new(pattern)
            .unwrap()
            .replace_all(&out, with)
            .into_owned();
    }
    out
}

/// The example journeys and fixtures, by absolute path.
fn examples() -> (String, String) {
    let r = repo();
    (
        r.join("journeys").display().to_string(),
        r.join("fixtures").display().to_string(),
    )
}

const NOW: &str = "2026-11-20T11:00:00Z";

#[test]
fn the_examples_dry_run_table_summary_report_and_junit() {
    let (journeys, fixtures) = examples();
    let t = Test::new();
    let out = t.run(&[
        "run",
        "--dry-run",
        &journeys,
        "--fixtures",
        &fixtures,
        "--now",
        NOW,
        "--report",
        "r.json",
        "--junit",
        "j.xml",
    ]);
    assert_eq!(out.code, 1, "{}", out.all());
    insta::assert_snapshot!("dry_run_stdout", stable(&out.stdout, &t));
    insta::assert_snapshot!("dry_run_stderr", stable(&out.stderr, &t));
    insta::assert_snapshot!("dry_run_report_json", stable(&t.read("r.json"), &t));
    insta::assert_snapshot!("dry_run_junit", stable(&t.read("j.xml"), &t));
}

#[test]
fn the_examples_test_summary_and_junit() {
    let (journeys, fixtures) = examples();
    let t = Test::new();
    let out = t.run(&[
        "test",
        &journeys,
        "--fixtures",
        &fixtures,
        "--now",
        NOW,
        "--junit",
        "j.xml",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    insta::assert_snapshot!("test_stdout", stable(&out.stdout, &t));
    insta::assert_snapshot!("test_junit", stable(&t.read("j.xml"), &t));
}

#[test]
fn show_requests_and_curl() {
    let (journeys, fixtures) = examples();
    let cart = format!("{journeys}/cart_abandonment.yaml");
    for show in ["requests", "curl"] {
        let t = Test::new()
            .env("PROMO_URL", "https://promo.example")
            .env("ESP_URL", "https://esp.example")
            .env("PROMO_TOKEN", "tok_live_0123456789")
            .env(
                "PROMO_SIGNING_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            );
        let out = t.run(&[
            "run",
            "--dry-run",
            &cart,
            "--fixtures",
            &fixtures,
            "--now",
            NOW,
            "--show",
            show,
            "--customer",
            "c_001",
            "--customer",
            "c_002",
        ]);
        assert_eq!(out.code, 0, "{}", out.all());
        insta::assert_snapshot!(format!("show_{show}"), stable(&out.stdout, &t));
    }
}

#[test]
fn graphs_in_both_formats() {
    let (journeys, _) = examples();
    for name in ["cart_abandonment", "churn_risk", "trial_onboarding"] {
        for format in ["mermaid", "dot", "svg"] {
            let t = Test::new();
            let out = t.run(&[
                "graph",
                &format!("{journeys}/{name}.yaml"),
                "--format",
                format,
            ]);
            assert_eq!(out.code, 0, "{}", out.all());
            if format == "svg" {
                roxmltree::Document::parse(&out.stdout).expect("the SVG is well-formed XML");
            }
            insta::assert_snapshot!(format!("graph_{name}_{format}"), out.stdout);
        }
    }
}

#[test]
fn the_error_lines_of_a_file_with_several_mistakes() {
    let t = Test::new();
    t.file(
        "j.yaml",
        "journey: j\ntrigger: { segment: \"customer.attributes.plan == 'trial'\" }\ndefaults: { timeout: 0s }\nsteps:\n  - id: send\n    webhook: { url: \"{{ customer.host }}/x\", headers: { Host: evil } }\n    on_falure: stop\n",
    );
    let out = t.run(&["validate", "j.yaml"]);
    assert_eq!(out.code, 2, "{}", out.all());
    insta::assert_snapshot!("validate_errors", stable(&out.stderr, &t));
}

#[test]
fn state_show() {
    let server = TestServer::start();
    let t = Test::new().env("HOOK_URL", &server.url);
    t.file(
        "j.yaml",
        "journey: j\ntrigger: { segment: \"true\" }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x\" }\n  - id: later\n    wait: 2d\n  - id: again\n    webhook: { url: \"{{ env.HOOK_URL }}/y\" }\n",
    );
    t.file("f.yaml", "customers: [{ id: c1 }, { id: c2 }]\n");
    let out = t.run(&[
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--yes",
        "--now",
        NOW,
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    let shown = t.run(&["state", "show", "j.yaml"]);
    assert_eq!(shown.code, 0, "{}", shown.all());
    insta::assert_snapshot!("state_show", stable(&shown.stdout, &t));
    let json = t.run(&["state", "show", "j.yaml", "--output", "json"]);
    assert_eq!(json.code, 0, "{}", json.all());
    insta::assert_snapshot!("state_show_json", stable(&json.stdout, &t));
    let doc = crate::support::json(&json);
    assert_eq!(doc["entries"]["waiting"], 2);
    assert_eq!(doc["waiting"][1]["customer"], "c2");
}

#[test]
fn completions_of_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Test::new().run(&["completions", shell]);
        assert_eq!(out.code, 0, "{}", out.all());
        insta::assert_snapshot!(format!("completions_{shell}"), out.stdout);
    }
}

#[test]
fn the_table_fits_80_and_160_columns() {
    let (journeys, fixtures) = examples();
    for width in ["80", "160"] {
        let t = Test::new().env("COLUMNS", width);
        let out = t.run(&[
            "run",
            "--dry-run",
            &journeys,
            "--fixtures",
            &fixtures,
            "--now",
            NOW,
        ]);
        assert_eq!(out.code, 1, "{}", out.all());
        let widest = out
            .stdout
            .lines()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0);
        let table = out
            .stdout
            .lines()
            .take_while(|l| !l.starts_with("entries:"));
        let table_width = table.map(|l| l.chars().count()).max().unwrap_or(0);
        assert!(
            table_width <= width.parse().unwrap(),
            "{width}: {table_width} wide (lines up to {widest})"
        );
        insta::assert_snapshot!(format!("table_{width}"), stable(&out.stdout, &t));
    }
}

#[test]
fn failures_are_red_on_a_terminal_and_never_with_no_color() {
    if !crate::support::have("script", "bsdutils", "the terminal colour check") {
        return;
    }
    let (journeys, fixtures) = examples();
    let bin = env!("CARGO_BIN_EXE_journey");
    let command = format!("{bin} run --dry-run {journeys} --fixtures {fixtures} --now {NOW}");
    let on_a_terminal = |no_color: bool| {
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &command, "/dev/null"])
            .env("COLUMNS", "160");
        if no_color {
            cmd.env("NO_COLOR", "1");
        } else {
            cmd.env_remove("NO_COLOR");
        }
        String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned()
    };
    let colored = on_a_terminal(false);
    assert!(colored.contains("\u{1b}[31m2 invalid"), "{colored}");
    let plain = on_a_terminal(true);
    assert!(
        plain.contains("2 invalid") && !plain.contains("\u{1b}[31m"),
        "{plain}"
    );
}

#[test]
fn show_paths_on_the_examples() {
    let (journeys, fixtures) = examples();
    let t = Test::new();
    let out = t.run(&[
        "run",
        "--dry-run",
        &journeys,
        "--fixtures",
        &fixtures,
        "--now",
        NOW,
        "--show",
        "paths",
    ]);
    assert_eq!(out.code, 1, "{}", out.all());
    let paths: String = out.stdout.split("┌").next().unwrap_or("").to_string();
    insta::assert_snapshot!("show_paths", stable(&paths, &t));
}

#[test]
fn show_paths_says_why_a_customer_asked_for_did_not_enter() {
    let (journeys, fixtures) = examples();
    let t = Test::new();
    let mut args = vec![
        "run",
        "--dry-run",
        &journeys,
        "--fixtures",
        &fixtures,
        "--now",
        NOW,
        "--show",
        "paths",
    ];
    for id in ["c_001", "c_004", "c_999"] {
        args.extend(["--customer", id]);
    }
    let out = t.run(&args);
    assert_eq!(out.code, 0, "{}", out.all());
    let paths: String = out.stdout.split("┌").next().unwrap_or("").to_string();
    insta::assert_snapshot!("show_paths_not_entered", stable(&paths, &t));
    assert!(out.stderr.contains(
        "warning: --customer c_999: no entry is about this customer (customer `c_999` is in no fixture file)"
    ));
}
