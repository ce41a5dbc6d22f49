//! Journey logic marketers expect: holdouts, A/B splits, suppression lists, send windows, caps.

use crate::support::Test;
use crate::support::server::TestServer;

const AB: &str = r#"journey: ab
trigger: { segment: "true" }
holdout: 10%
steps:
  - id: pick
    split: [{ percent: 50, goto: a }, { percent: 50, goto: b }]
  - id: a
    webhook: { url: "{{ env.HOOK_URL }}/a", body: { c: "{{ customer.id }}" } }
    next: done
  - id: b
    webhook: { url: "{{ env.HOOK_URL }}/b", body: { c: "{{ customer.id }}" } }
  - id: done
    end: completed
"#;

fn customers(n: usize) -> String {
    let list: String = (0..n)
        .map(|i| format!("  - {{ id: cust_{i}, email: u{i}@example.com }}\n"))
        .collect();
    format!("customers:\n{list}")
}

use crate::support::json as report;

fn entered(r: &serde_json::Value, step: &str) -> f64 {
    r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .unwrap()["entered"]
        .as_f64()
        .unwrap()
}

#[test]
fn holdout_and_split_shares_are_right_and_stable() {
    let t = Test::new();
    t.file("j.yaml", AB);
    t.file("f.yaml", &customers(2000));
    let first = t.dry_run(&["--output", "json", "--show", "requests"]);
    assert_eq!(first.code, 0, "{}", first.all());
    let r = report(&first);
    let holdout = r["totals"]["holdout"].as_f64().unwrap();
    assert!(
        (170.0..=230.0).contains(&holdout),
        "10% ± 3 points of 2000: {holdout}"
    );
    let (a, b) = (entered(&r, "a"), entered(&r, "b"));
    assert_eq!(a + b, 2000.0 - holdout, "holdouts are never contacted");
    let share = a / (a + b);
    assert!((0.47..=0.53).contains(&share), "50/50 ± 3 points: {share}");
    let second = t.dry_run(&["--output", "json", "--show", "requests"]);
    let who = |o: &crate::support::Output| -> Vec<String> {
        o.stderr
            .lines()
            .filter(|l| l.starts_with("### "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        who(&first),
        who(&second),
        "the same customers in the same groups on every run"
    );
    let counts = |v: &serde_json::Value| {
        (
            v["totals"]["holdout"].clone(),
            entered(v, "a"),
            entered(v, "b"),
        )
    };
    assert_eq!(counts(&report(&second)), counts(&r));
}

#[test]
fn graphs_show_split_percentages() {
    let t = Test::new();
    t.file("j.yaml", AB);
    let out = t.run(&["graph", "j.yaml"]);
    assert!(
        out.stdout.contains("s0 -->|\"50%\"| s1") && out.stdout.contains("s0 -->|\"50%\"| s2"),
        "{}",
        out.stdout
    );
}

#[test]
fn suppressed_customers_are_never_rendered_or_sent() {
    let server = TestServer::start();
    let t = Test::new().env("HOOK_URL", &server.url);
    t.file("j.yaml", "journey: j\ntrigger: { segment: \"true\" }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/send\", body: { to: \"{{ customer.email }}\" } }\n");
    t.file("f.yaml", "customers:\n  - { id: c1, email: Keep@Example.com }\n  - { id: c2, email: Gone@Example.com }\n  - { id: c3, email: id@example.com }\n  - { id: c4, email: hashed@example.com }\n");
    let hash = {
        use sha2::Digest;
        sha2::Sha256::digest(b"hashed@example.com")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    t.file(
        "suppress.txt",
        &format!("# unsubscribed\ngone@example.com\nc3\n{hash}\n"),
    );
    let dry = t.dry_run(&["--suppress", "suppress.txt", "--show", "requests"]);
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert_eq!(
        dry.stdout.matches("### j / send").count(),
        1,
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("Keep@Example.com")
            && !dry.stdout.contains("Gone@")
            && !dry.stdout.contains("hashed@")
    );
    assert!(dry.stdout.contains("3 suppressed"), "{}", dry.stdout);
    let real = t.run(&[
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--suppress",
        "suppress.txt",
    ]);
    assert_eq!(real.code, 0, "{}", real.all());
    let sent: Vec<serde_json::Value> = server
        .requests_to("/send")
        .iter()
        .map(|r| r.json())
        .collect();
    assert_eq!(sent, vec![serde_json::json!({ "to": "Keep@Example.com" })]);
    let missing = t.dry_run(&["--suppress", "nope.txt"]);
    assert_eq!(missing.code, 2, "{}", missing.all());
}

const WINDOWED: &str = r#"journey: sms
trigger: { segment: "true" }
send_window: { hours: "09:00-20:00", tz: "{{ customer.attributes.tz | default('UTC', true) }}" }
steps:
  - id: text
    webhook: { url: "{{ env.HOOK_URL }}/sms", body: { c: "{{ customer.id }}", at: "{{ now }}" } }
"#;

const ZONES: &str = "customers:\n  - { id: ny, attributes: { tz: America/New_York } }\n  - { id: tokyo, attributes: { tz: Asia/Tokyo } }\n  - { id: plain, attributes: {} }\n";

#[test]
fn a_send_window_shifts_the_simulated_clock_in_the_customers_zone() {
    let t = Test::new();
    t.file("j.yaml", WINDOWED);
    t.file("f.yaml", ZONES);
    let out = t.dry_run(&["--show", "requests", "--now", "2026-11-20T03:00:00Z"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let at = |who: &str| {
        let block = out
            .stdout
            .split("### ")
            .find(|b| b.contains(&format!("customer {who}")))
            .unwrap();
        block
            .lines()
            .find(|l| l.contains("\"at\""))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(
        at("ny"),
        r#""at": "2026-11-20T14:00:00Z""#,
        "22:00 in New York waits for 09:00 there"
    );
    assert_eq!(
        at("tokyo"),
        r#""at": "2026-11-20T03:00:00Z""#,
        "12:00 in Tokyo is inside the window"
    );
    assert_eq!(
        at("plain"),
        r#""at": "2026-11-20T09:00:00Z""#,
        "no zone: UTC"
    );
}

#[test]
fn a_real_run_parks_until_the_window_opens() {
    let server = TestServer::start();
    let t = Test::new().env("HOOK_URL", &server.url);
    t.file("j.yaml", WINDOWED);
    t.file("f.yaml", ZONES);
    let night = t.run(&[
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--now",
        "2026-11-20T03:00:00Z",
    ]);
    assert_eq!(night.code, 0, "{}", night.all());
    assert!(night.stdout.contains("2 waiting"), "{}", night.stdout);
    let sent = |s: &TestServer| {
        s.requests_to("/sms")
            .iter()
            .map(|r| r.json()["c"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(sent(&server), ["tokyo"]);
    let morning = t.run(&[
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--now",
        "2026-11-20T14:30:00Z",
    ]);
    assert_eq!(morning.code, 0, "{}", morning.all());
    let mut all = sent(&server);
    all.sort();
    assert_eq!(
        all,
        ["ny", "plain", "tokyo"],
        "each once, inside its window"
    );
    let no_state = t.run(&["run", "j.yaml", "--fixtures", "f.yaml", "--no-state"]);
    assert_eq!(no_state.code, 2, "{}", no_state.all());
}

const WELCOME: &str = r#"journey: welcome
trigger: { segment: "true" }
steps:
  - id: hello
    channel: email
    webhook: { url: "{{ env.HOOK_URL }}/email", body: { j: welcome, n: 1 } }
  - id: tips
    channel: email
    webhook: { url: "{{ env.HOOK_URL }}/email", body: { j: welcome, n: 2 } }
"#;

const PROMO: &str = r#"journey: promo
trigger: { event: sale }
steps:
  - id: offer
    channel: email
    frequency_cap: { channel: email, max: 2, per: 7d }
    webhook: { url: "{{ env.HOOK_URL }}/email", body: { j: promo, e: "{{ event.id }}" } }
"#;

#[test]
fn a_frequency_cap_across_journeys_skips_the_third_email() {
    let fixtures = CAP_FIXTURES;
    let dry = Test::new();
    dry.file("flows/a_welcome.yaml", WELCOME);
    dry.file("flows/b_promo.yaml", PROMO);
    dry.file("f.yaml", fixtures);
    let out = dry.run(&[
        "run",
        "--dry-run",
        "flows",
        "--fixtures",
        "f.yaml",
        "--show",
        "requests",
        "--now",
        "2026-11-20T12:00:00Z",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        !out.stdout.contains("### promo / offer"),
        "the third email is not even rendered: {}",
        out.stdout
    );
    let row = out.stdout.lines().find(|l| l.contains(" offer ")).unwrap();
    assert!(row.contains(" 1 "), "counted capped: {row}");
    assert!(out.stdout.contains("1 capped"), "{}", out.stdout);
}

crate::on_both_stores!(a_frequency_cap_across_journeys_counts_the_stores_deliveries);

const CAP_FIXTURES: &str = "customers: [{ id: c1 }]\nevents:\n  - { id: sale1, name: sale, customer: c1, at: 2026-11-20T12:00:00Z }\n";

/// Two runs against one store: the second run's cap counts what the first delivered.
fn a_frequency_cap_across_journeys_counts_the_stores_deliveries(
    b: &crate::support::store::Backend,
) {
    let fixtures = CAP_FIXTURES;
    let server = TestServer::start();
    let t = b.test().env("HOOK_URL", &server.url);
    t.file("flows/a_welcome.yaml", WELCOME);
    t.file("flows/b_promo.yaml", PROMO);
    t.file("f.yaml", fixtures);
    let run = |now: &str, fixtures: &str| {
        t.file("f.yaml", fixtures);
        t.run(&["run", "flows", "--fixtures", "f.yaml", "--now", now])
    };
    assert_eq!(run("2026-11-20T12:00:00Z", fixtures).code, 0);
    let bodies = |s: &TestServer| {
        s.requests_to("/email")
            .iter()
            .map(|r| r.json())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        bodies(&server).len(),
        2,
        "welcome sent twice, the promo capped: {:?}",
        bodies(&server)
    );
    let soon = format!(
        "{fixtures}  - {{ id: sale1b, name: sale, customer: c1, at: 2026-11-22T12:00:00Z }}\n"
    );
    let next_run = run("2026-11-22T12:00:00Z", &soon);
    assert!(next_run.stdout.contains("1 capped"), "{}", next_run.all());
    assert_eq!(
        bodies(&server).len(),
        2,
        "two days later, another run's cap counts the two emails the store holds"
    );
    let later = format!(
        "{fixtures}  - {{ id: sale2, name: sale, customer: c1, at: 2026-11-28T12:00:00Z }}\n"
    );
    assert_eq!(run("2026-11-28T12:00:00Z", &later).code, 0);
    let all = bodies(&server);
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(
        all[2],
        serde_json::json!({ "j": "promo", "e": "sale2" }),
        "outside the 7 days, the promo goes out"
    );
}

#[test]
fn show_paths_says_until_when_a_wait_or_a_send_window_held_the_entry() {
    let t = Test::new();
    t.file("j.yaml", WINDOWED);
    t.file("f.yaml", ZONES);
    let out = t.dry_run(&["--show", "paths", "--now", "2026-11-20T03:00:00Z"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let block = |who: &str| {
        out.stdout
            .split("\n\n")
            .find(|b| b.starts_with(&format!("customer {who} ")))
            .unwrap()
            .to_string()
    };
    assert!(
        block("ny").contains("outside its send window: waited until 2026-11-20T14:00:00Z"),
        "{}",
        out.stdout
    );
    assert!(!block("tokyo").contains("waited"), "{}", out.stdout);
}
