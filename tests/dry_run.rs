//! Dry-runs: mocks drive the branches, retries are counted and never slept, nothing leaves the machine.

use crate::support::{Sentinel, Test};

const JOURNEY: &str = r#"journey: promo
trigger: { event: cart_abandoned }
defaults:
  retry: { attempts: 3, backoff: 10s, max_backoff: 60s }
steps:
  - id: ask
    webhook:
      url: "{{ env.HOOK_URL }}/ask"
      body: { id: "{{ customer.id }}" }
      timeout: 2s
      success: "response.body.code is defined"
    save: { code: "response.body.code" }
    on_failure: fallback
  - id: route
    branch:
      - when: "saved.code == 'VIP'"
        goto: vip
  - id: regular
    webhook: { url: "{{ env.HOOK_URL }}/send", body: { code: "{{ saved.code }}", at: "{{ now }}" } }
    next: done
  - id: vip
    wait: 2d
  - id: vip_send
    webhook: { url: "{{ env.HOOK_URL }}/vip", body: { at: "{{ now }}" } }
    next: done
  - id: fallback
    webhook: { url: "{{ env.HOOK_URL }}/fallback", body: {} }
    on_failure: continue
  - id: done
    end: completed
"#;

fn fixtures(mocks: &str) -> String {
    let customers: String = (1..=5).map(|i| format!("  - {{ id: c{i} }}\n")).collect();
    let events: String = (1..=5)
        .map(|i| format!("  - {{ id: e{i}, name: cart_abandoned, customer: c{i}, at: 2026-11-20T10:00:00Z }}\n"))
        .collect();
    format!("customers:\n{customers}events:\n{events}mocks:\n{mocks}")
}

const MOCKS: &str = r#"  ask:
    - when: "customer.id == 'c1'"
      body: { code: VIP }
    - when: "customer.id == 'c2'"
      sequence: [503, { status: 429, headers: { Retry-After: "5" } }, { body: { code: LATE } }]
    - when: "customer.id == 'c3'"
      latency: 3s
    - when: "customer.id == 'c4' and delivery.attempt == 1"
      error: reset
    - when: "customer.id == 'c4'"
      body: { code: SECOND }
    - body: { nope: true }
  fallback:
    - status: 500
"#;

fn run(t: &Test, extra: &[&str]) -> crate::support::Output {
    let mut args = vec!["--output", "json", "--now", "2026-11-20T11:00:00Z"];
    args.extend_from_slice(extra);
    t.dry_run(&args)
}

use crate::support::json as report;

fn step<'a>(r: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == id)
        .unwrap()
}

#[test]
fn mocks_drive_retries_branches_and_fallbacks_without_sending() {
    let hook = Sentinel::start();
    let t = Test::new().env("HOOK_URL", &hook.url);
    t.file("j.yaml", JOURNEY);
    t.file("f.yaml", &fixtures(MOCKS));
    let started = std::time::Instant::now();
    let out = run(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        started.elapsed().as_secs() < 10,
        "retries and waits must not sleep"
    );
    let r = report(&out);
    let ask = step(&r, "ask");
    assert_eq!(ask["entered"], 5);
    assert_eq!(ask["ok"], 3, "c1, c2 after retries, c4 after a reset");
    assert_eq!(
        ask["failed"], 2,
        "c3 times out every attempt, c5's answer fails `success`"
    );
    assert_eq!(ask["retries"], 2 + 2 + 1);
    assert_eq!(step(&r, "fallback")["failed"], 2);
    assert_eq!(step(&r, "vip_send")["entered"], 1);
    assert_eq!(step(&r, "regular")["entered"], 2);
    assert_eq!(r["totals"]["completed"], 5);
    assert_eq!(hook.hits(), 0, "a dry-run must not open a connection");
}

#[test]
fn show_prints_paths_saved_values_and_the_simulated_clock() {
    let t = Test::new();
    t.file("j.yaml", JOURNEY);
    t.file("f.yaml", &fixtures(MOCKS));
    let out = t.dry_run(&[
        "--show",
        "requests",
        "--now",
        "2026-11-20T11:00:00Z",
        "--customer",
        "c1",
        "--customer",
        "c2",
        "--customer",
        "c9",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr
            .contains("warning: --customer c9: no entry is about this customer"),
        "an id that matches nothing is said: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("--customer c1"), "{}", out.stderr);
    assert!(
        out.stdout.contains("### promo / vip_send / customer c1"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\"at\": \"2026-11-22T11:00:00Z\""),
        "the wait advances now by 2d:\n{}",
        out.stdout
    );
    assert!(out.stdout.contains("\"code\": \"LATE\""), "{}", out.stdout);
    assert!(!out.stdout.contains("customer c3"), "--customer selects");
}

#[test]
fn unmocked_steps_are_assumed_with_placeholders() {
    let t = Test::new();
    t.file("j.yaml", JOURNEY);
    t.file("f.yaml", &fixtures(""));
    let out = t.dry_run(&["--show", "requests", "--limit", "1"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("\"code\": \"<ask.code>\""),
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stdout.matches("### ").count(),
        2,
        "--limit 1 takes one entry: {}",
        out.stdout
    );
    assert!(out.stdout.contains("2 assumed"), "{}", out.stdout);
}

#[test]
fn failures_without_a_handler_fail_the_entry_and_exit_1() {
    let t = Test::new();
    t.file("j.yaml", &JOURNEY.replace("    on_failure: fallback\n", ""));
    t.file("f.yaml", &fixtures(MOCKS));
    let out = run(&t, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(report(&out)["totals"]["failed"], 2);
}

#[test]
fn an_unknown_customer_makes_an_invalid_entry_not_a_crash() {
    let t = Test::new();
    t.file("j.yaml", JOURNEY);
    t.file(
        "f.yaml",
        &format!(
            "{}  - {{ name: cart_abandoned, customer: ghost, at: 2026-11-20T10:00:00Z }}\n",
            fixtures("").replace("mocks:\n", "")
        ),
    );
    let out = t.dry_run(&[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("names customer `ghost`, who is in no fixture file"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("5 completed / 0 failed / 1 invalid"),
        "{}",
        out.stdout
    );
}

#[test]
fn bad_flags_are_usage_errors() {
    let t = Test::new();
    t.file("j.yaml", JOURNEY);
    t.file("f.yaml", &fixtures(""));
    let out = t.dry_run(&["--now", "yesterday"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("--now: `yesterday` is not an RFC 3339 date-time"),
        "{}",
        out.stderr
    );
    let missing = t.run(&["run", "--dry-run", "j.yaml", "--fixtures", "nope.yaml"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("nope.yaml: no such file or folder"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_broken_mock_condition_points_at_the_fixture() {
    let t = Test::new();
    t.file("j.yaml", JOURNEY);
    t.file(
        "f.yaml",
        &fixtures("  ask:\n    - when: \"customer.tier == 'gold'\"\n      status: 500\n"),
    );
    let out = run(&t, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains(
            "f.yaml:15:13: journey `promo`, step `ask`, `mocks.ask[0].when`: undefined value"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("(5 entries, e.g. c1, c2, c3)"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_entry_key_is_taken_once_and_the_duplicate_sends_nothing() {
    let t = Test::new();
    t.file(
        "j.yaml",
        "journey: monthly\ntrigger:\n  event: visit\n  entry_key: \"{{ customer.id }}-{{ event.at[:7] }}\"\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x\", body: { e: \"{{ event.id }}\" } }\n",
    );
    t.file(
        "f.yaml",
        "customers: [{ id: c1 }]\nevents:\n  - { id: v1, name: visit, customer: c1, at: 2026-11-02T10:00:00Z }\n  - { id: v2, name: visit, customer: c1, at: 2026-11-20T10:00:00Z }\n  - { id: v3, name: visit, customer: c1, at: 2026-12-01T10:00:00Z }\n",
    );
    let out = t.dry_run(&["--show", "requests"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        out.stdout.matches("### monthly / send").count(),
        2,
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("\"e\": \"v1\"") && out.stdout.contains("\"e\": \"v3\""),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("\"e\": \"v2\""), "{}", out.stdout);
    assert!(out.stdout.contains("1 already done"), "{}", out.stdout);
}

#[test]
fn an_order_after_the_cart_exits_the_entry_an_order_before_does_not() {
    let t = Test::new();
    t.file(
        "j.yaml",
        "journey: cart\ntrigger: { event: cart_abandoned }\nexit_when: { event: order_completed }\nsteps:\n  - id: wait\n    wait: 4h\n  - id: reminder\n    webhook: { url: \"{{ env.HOOK_URL }}/r\", body: { c: \"{{ customer.id }}\" } }\n",
    );
    t.file(
        "f.yaml",
        "customers: [{ id: after }, { id: before }, { id: later }]\nevents:\n  - { name: cart_abandoned, customer: after, at: 2026-11-20T10:00:00Z }\n  - { name: order_completed, customer: after, at: 2026-11-20T12:00:00Z }\n  - { name: order_completed, customer: before, at: 2026-11-20T09:00:00Z }\n  - { name: cart_abandoned, customer: before, at: 2026-11-20T10:00:00Z }\n  - { name: cart_abandoned, customer: later, at: 2026-11-20T10:00:00Z }\n  - { name: order_completed, customer: later, at: 2026-11-21T12:00:00Z }\nexpect:\n  - { journey: cart, customer: after, outcome: exited, path: [wait], not_called: [reminder] }\n  - { journey: cart, customer: before, outcome: completed, path: [wait, reminder] }\n  - { journey: cart, customer: later, outcome: completed }\n",
    );
    let out = t.run(&[
        "test",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--now",
        "2026-11-20T10:30:00Z",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("1 exited"), "{}", out.stdout);
    let shown = t.dry_run(&["--show", "requests", "--now", "2026-11-20T10:30:00Z"]);
    assert!(
        !shown.stdout.contains("\"c\": \"after\""),
        "no reminder is rendered for a buyer: {}",
        shown.stdout
    );
}

#[test]
fn a_dry_run_says_mocked_never_sent() {
    let t = crate::support::Test::new();
    t.file(
        "j.yaml",
        &crate::support::one_step("j", "{ id: \"{{ customer.id }}\" }"),
    );
    t.file(
        "f.yaml",
        "customers: [{ id: c1 }, { id: c2 }]\nmocks:\n  send:\n    - when: \"customer.id == 'c1'\"\n      status: 200\n",
    );
    let out = t.dry_run(&["--report", "r.json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout
            .contains("deliveries: 1 mocked / 1 ok / 0 failed / 1 assumed"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(" sent "), "{}", out.stdout);
    let report: serde_json::Value = serde_json::from_str(&t.read("r.json")).unwrap();
    assert_eq!(report["totals"]["deliveries_sent"], 0);
    assert_eq!(report["totals"]["deliveries_mocked"], 1);
}

#[test]
fn log_works_in_dry_runs_and_test_with_mocked_attempts_marked() {
    let t = crate::support::Test::new();
    t.file(
        "j.yaml",
        &crate::support::one_step("j", "{ id: \"{{ customer.id }}\" }"),
    );
    t.file(
        "f.yaml",
        "customers: [{ id: c1 }]\nmocks:\n  send:\n    - sequence: [503, 200]\nexpect:\n  - { journey: j, customer: c1, outcome: completed, attempts: { send: 2 } }\n",
    );
    for cmd in [&["run", "--dry-run"][..], &["test"]] {
        let mut args = cmd.to_vec();
        args.extend(["j.yaml", "--fixtures", "f.yaml", "--log", "log.ndjson"]);
        let _ = std::fs::remove_file(t.path("log.ndjson"));
        let out = t.run(&args);
        assert_eq!(out.code, 0, "{}", out.all());
        let lines: Vec<serde_json::Value> = t
            .read("log.ndjson")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let statuses: Vec<_> = lines.iter().map(|l| l["status"].clone()).collect();
        assert_eq!(
            statuses,
            [serde_json::json!(503), serde_json::json!(200)],
            "{cmd:?}"
        );
        assert!(
            lines
                .iter()
                .all(|l| l["mocked"] == true && l["run_id"].is_string())
        );
        assert!(
            !t.path(".journey").exists(),
            "no dead letters, no store in a dry-run"
        );
    }
}

#[test]
fn show_paths_says_a_streamed_customer_was_kept_out_by_the_trigger_or_the_shard() {
    let t = Test::new();
    t.file(
        "j.yaml",
        "journey: vip\ntrigger: { segment: \"customer.tier == 'gold' and customer.spend > 100\" }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/hook\", body: { who: \"{{ customer.id }}\" } }\n",
    );
    t.file(
        "c.ndjson",
        "{\"id\":\"a1\",\"tier\":\"gold\",\"spend\":500}\n{\"id\":\"b2\",\"tier\":\"silver\",\"spend\":40}\n",
    );
    let out = t.run(&[
        "run",
        "--dry-run",
        "j.yaml",
        "--fixtures",
        "c.ndjson",
        "--show",
        "paths",
        "--customer",
        "b2",
        "--customer",
        "a1",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("customer b2 in vip\n  → did not enter: the trigger's `where` was false: `customer.tier == 'gold' and customer.spend > 100`, read customer.tier = 'silver', customer.spend = 40\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("customer a1 in vip\n  send"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("customer a1 in vip\n  → did not enter"));
    // Whichever shard a1 is not in says so.
    let (inside, outside) = match crate::support::in_shard("a1", 1, 2) {
        true => ("1/2", "2/2"),
        false => ("2/2", "1/2"),
    };
    let in_shard = |shard: &str| {
        t.run(&[
            "run",
            "--dry-run",
            "j.yaml",
            "--fixtures",
            "c.ndjson",
            "--show",
            "paths",
            "--customer",
            "a1",
            "--shard",
            shard,
        ])
    };
    let out = in_shard(outside);
    assert!(
        out.stdout.contains(&format!(
            "customer a1 in vip\n  → did not enter: not in shard {outside} (sha256 of the id)"
        )),
        "{}",
        out.all()
    );
    let out = in_shard(inside);
    assert!(
        out.stdout.contains("customer a1 in vip\n  send"),
        "{}",
        out.all()
    );
}
