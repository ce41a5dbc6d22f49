//! `--html`: one self-contained page of the run, read in a real headless Chromium (Debian's
//! `chromium`): the canvas's counts and edge labels agree with the JSON report, the search box
//! finds a customer and shows their path, and screenshots at desktop and phone width are kept
//! under `target/html-report/`. The browser checks run when Chromium is installed, and must
//! run when `JOURNEY_TEST_BROWSER=1` (`.ci/run` sets it).

use std::path::Path;
use std::process::Command;

use regex::Regex;

use crate::support::{Test, repo};

const NOW: &str = "2026-11-20T11:00:00Z";

/// Chromium's path, or `None` (said once) when it is not installed and not required.
fn chromium() -> Option<&'static str> {
    let found = Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found && std::env::var("JOURNEY_TEST_BROWSER").as_deref() == Ok("1") {
        panic!("JOURNEY_TEST_BROWSER=1 but chromium is not installed (apt-get install chromium)");
    }
    if !found {
        eprintln!(
            "chromium is not installed: the HTML report's browser checks did not run (apt-get install chromium)"
        );
    }
    found.then_some("chromium")
}

/// Chromium, headless, with nothing that reaches the network, on a profile of its own.
fn browser(profile: &Path) -> Command {
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// The DOM after the page's script ran, for `url`.
fn dom(url: &str, profile: &Path) -> String {
    let out = browser(profile)
        .args(["--dump-dom", url])
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 DOM")
}

/// A screenshot of `url` at `size` (`1280,800`), kept under `target/html-report/`.
fn screenshot(url: &str, profile: &Path, name: &str, size: &str) -> std::path::PathBuf {
    let dir = repo().join("target/html-report");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    let _ = std::fs::remove_file(&file);
    let out = browser(profile)
        .arg(format!("--window-size={size}"))
        .arg(format!("--screenshot={}", file.display()))
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    file
}

/// The examples dry-run with `--html`, and its JSON report.
fn examples_page(t: &Test, extra: &[&str]) -> serde_json::Value {
    let r = repo();
    let (journeys, fixtures) = (r.join("journeys"), r.join("fixtures"));
    let mut args = vec![
        "run",
        "--dry-run",
        journeys.to_str().unwrap(),
        "--fixtures",
        fixtures.to_str().unwrap(),
        "--now",
        NOW,
        "--html",
        "page.html",
        "--report",
        "r.json",
    ];
    args.extend_from_slice(extra);
    let out = t.run(&args);
    assert_eq!(out.code, 1, "{}", out.all());
    serde_json::from_str(&t.read("r.json")).unwrap()
}

/// Each `<svg data-journey=...>` of the DOM, by journey.
fn canvases(dom: &str) -> Vec<(String, String)> {
    let start = Regex::new(r#"<svg[^>]*data-journey="([a-z0-9_]+)""#).unwrap();
    start
        .captures_iter(dom)
        .map(|c| {
            let at = c.get(0).unwrap().start();
            let end = dom[at..].find("</svg>").unwrap() + at;
            (c[1].to_string(), dom[at..end].to_string())
        })
        .collect()
}

#[test]
fn the_page_is_self_contained_private_and_tells_each_step_and_customer() {
    let t = Test::new();
    let report = examples_page(&t, &[]);
    let page = t.read("page.html");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(t.path("page.html"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the page holds customer data");
    // Nothing is fetched when it is viewed.
    let fetch = Regex::new(r#"(?i)(src|href)\s*=\s*["']?\s*(https?:)?//"#).unwrap();
    assert!(
        !fetch.is_match(&page),
        "the page fetches: {:?}",
        fetch.find(&page)
    );
    assert!(!page.contains("<link"), "no stylesheet is linked");
    // Totals exactly as in the JSON report.
    for (name, value) in report["totals"].as_object().unwrap() {
        if let Some(n) = value.as_u64() {
            let cell = format!(r#"<div data-total="{name}"><dt>{name}</dt><dd>{n}</dd></div>"#);
            assert!(page.contains(&cell), "{cell} in the page");
        }
    }
    // Every attempt is counted once among the answers (a 429 put off past max_backoff was
    // counted twice before).
    for s in report["steps"].as_array().unwrap() {
        let codes: u64 = s["status_codes"]
            .as_object()
            .map_or(0, |m| m.values().map(|v| v.as_u64().unwrap()).sum());
        let none = ["timeouts", "connect_errors", "resets"].map(|k| s[k].as_u64().unwrap());
        assert_eq!(
            codes + none.iter().sum::<u64>(),
            s["attempts"].as_u64().unwrap(),
            "{s}"
        );
    }
    // Every entry is in detail (14 < --html-entries), the invalid ones first.
    let entries = page.matches(r#"<details class="entry"#).count();
    assert_eq!(
        entries as u64,
        report["totals"]["entries"].as_u64().unwrap()
    );
    let first = page.find(r#"<details class="entry"#).unwrap();
    assert!(page[first..].starts_with(r#"<details class="entry bad" data-customer="c_005""#));
    assert!(
        page.contains("customer c_005 in cart_abandonment"),
        "its path is shown"
    );
}

#[test]
fn in_chromium_the_canvas_counts_agree_with_the_report_and_the_search_finds_a_customer() {
    if chromium().is_none() {
        return;
    }
    let t = Test::new();
    let report = examples_page(&t, &[]);
    let url = format!("file://{}", t.path("page.html").display());
    let profile = t.path("profile");
    let dom = dom(&format!("{url}#q=c_002"), &profile);
    let canvases = canvases(&dom);
    assert_eq!(
        canvases.iter().map(|(j, _)| j.as_str()).collect::<Vec<_>>(),
        ["cart_abandonment", "churn_risk", "trial_onboarding"]
    );
    // Each step's box shows what the report counted there.
    for s in report["steps"].as_array().unwrap() {
        let (journey, step) = (s["journey"].as_str().unwrap(), s["step"].as_str().unwrap());
        let svg = &canvases.iter().find(|(j, _)| j == journey).unwrap().1;
        let node = Regex::new(&format!(
            r#"(?s)data-step="{step}">.*?class="counts"[^>]*>([^<]*)<"#
        ))
        .unwrap();
        let counts = &node
            .captures(svg)
            .unwrap_or_else(|| panic!("{step} in {svg}"))[1];
        let entered = format!("entered {} · ok {}", s["entered"], s["ok"]);
        assert!(counts.starts_with(&entered), "{journey}/{step}: {counts}");
    }
    // Edges carry how many entries took them.
    let cart = &canvases[0].1;
    for label in ["5 entries", "success · 3", "failure · 2"] {
        assert!(cart.contains(&format!(">{label}<")), "{label} in {cart}");
    }
    assert!(
        cart.contains("✗ failed 2"),
        "failures are marked in words too"
    );
    // The search (filled from #q=) shows c_002's entry, opened, and hides the others.
    let entry = Regex::new(r#"<details ([^>]*)data-customer="([^"]+)"([^>]*)>"#).unwrap();
    let mut shown = Vec::new();
    for c in entry.captures_iter(&dom) {
        let attrs = format!("{} {}", &c[1], &c[3]);
        if !attrs.contains("hidden") {
            shown.push((c[2].to_string(), attrs.contains("open")));
        }
    }
    assert!(
        !shown.is_empty() && shown.iter().all(|(c, open)| c == "c_002" && *open),
        "{shown:?}"
    );
    assert!(dom.contains(&format!("{} of 14 entries shown", shown.len())));
    assert!(dom.contains("customer c_002 in cart_abandonment"));
    // Looked at by a person: desktop and phone width.
    for (name, size) in [("desktop.png", "1280,800"), ("phone.png", "390,844")] {
        let file = screenshot(&url, &profile, name, size);
        let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(bytes > 10_000, "{} is {bytes} bytes", file.display());
    }
}

#[test]
fn a_large_batch_keeps_the_page_bounded_with_failures_first() {
    let t = Test::new();
    t.file(
        "j.yaml",
        "journey: j\ntrigger: { segment: \"true\" }\nsteps:\n  - id: send\n    webhook:\n      url: \"{{ env.HOOK_URL }}/hook\"\n      body: { n: \"{{ customer.n | int }}\", name: \"{{ customer.name }}\" }\n",
    );
    let mut lines = String::new();
    for i in 0..3000 {
        match i {
            2500 => lines.push_str("{\"id\":\"c_bad\",\"n\":1}\n"),
            i => lines.push_str(&format!("{{\"id\":\"c_{i}\",\"n\":{i},\"name\":\"x\"}}\n")),
        }
    }
    t.file("customers.ndjson", &lines);
    let out = t.run(&[
        "run",
        "--dry-run",
        "j.yaml",
        "--fixtures",
        "customers.ndjson",
        "--html",
        "page.html",
        "--html-entries",
        "50",
    ]);
    assert_eq!(out.code, 1, "{}", out.all());
    let page = t.read("page.html");
    assert_eq!(page.matches(r#"<details class="entry"#).count(), 50);
    let first = page.find(r#"<details class="entry"#).unwrap();
    assert!(
        page[first..].starts_with(r#"<details class="entry bad" data-customer="c_bad""#),
        "the invalid entry comes first"
    );
    assert!(page.contains("2950 more entries are left out of this page"));
    assert!(
        page.contains(">entered 3000 · ok 0 · ✗ failed 1 · skipped 0 · assumed 2999<"),
        "every count includes them"
    );
}

#[test]
fn a_test_run_page_lists_the_expectations_and_their_results() {
    let r = repo();
    let t = Test::new();
    let out = t.run(&[
        "test",
        r.join("journeys").to_str().unwrap(),
        "--fixtures",
        r.join("fixtures").to_str().unwrap(),
        "--now",
        NOW,
        "--html",
        "page.html",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    let page = t.read("page.html");
    let passed = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("expectations: "))
        .unwrap();
    let n: usize = passed.split(' ').next().unwrap().parse().unwrap();
    assert!(page.contains("mode: <b>test: nothing was sent</b>"));
    assert!(page.contains(&format!("<h3>Expectations: {n} passed, 0 failed</h3>")));
    assert_eq!(page.matches(r#"<li class="exp ok">"#).count(), n);
}
