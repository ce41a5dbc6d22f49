//! The state store: re-runs never send twice, crashes lose nothing, waits park and resume.

use std::time::Duration;

use crate::support::server::{Reply, TestServer};
use crate::support::{Output, Test, terminate};

use crate::support::against as setup;
use crate::support::store::Backend;

crate::on_both_stores!(
    the_same_run_twice_sends_each_delivery_once,
    a_killed_run_resumes_and_repeats_only_what_was_in_flight,
    a_second_concurrent_run_is_refused_with_75,
    a_parked_wait_resumes_once_due_even_without_fixtures,
    retry_after_beyond_max_backoff_defers_to_the_next_run,
    retry_failed_walks_on_from_the_failed_step,
    tonights_streamed_export_ends_a_parked_entry_and_updates_its_customer,
    limit_still_reads_tonights_stream_to_its_end_for_the_exits_of_parked_entries,
    resume_only_still_reads_tonights_stream_for_exits_but_enters_no_one,
    tonights_order_ends_a_parked_entry_as_exited,
    sigterm_stops_cleanly_and_the_rerun_repeats_nothing,
    max_duration_stops_the_same_way,
    a_customer_without_the_journeys_consent_is_not_entered_until_they_consent,
    a_parked_entry_whose_customer_withdrew_consent_ends_suppressed,
    state_show_and_prune,
    a_replayed_delivery_is_recorded_in_the_store_and_the_next_run_walks_on,
    an_invalid_entry_ends_failed_not_active_forever,
    a_store_from_a_newer_journey_is_refused,
    requests_in_flight_stay_within_concurrency,
);

fn send(t: &Test, extra: &[&str]) -> Output {
    let mut args = vec!["run", "j.yaml", "--fixtures", "f.yaml"];
    args.extend_from_slice(extra);
    t.run(&args)
}

const TWO_STEPS: &str = r#"journey: j
trigger: { segment: "true" }
steps:
  - id: first
    webhook: { url: "{{ env.HOOK_URL }}/first", body: { id: "{{ customer.id }}" } }
    save: { code: "response.body.code" }
  - id: second
    webhook: { url: "{{ env.HOOK_URL }}/second", body: { code: "{{ saved.code | default('none') }}" } }
"#;

fn customers(n: usize) -> String {
    let list: String = (0..n).map(|i| format!("  - {{ id: c{i:03} }}\n")).collect();
    format!("customers:\n{list}")
}

fn keys(server: &TestServer, path: &str) -> Vec<String> {
    server
        .requests_to(path)
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect()
}

fn the_same_run_twice_sends_each_delivery_once(b: &Backend) {
    let server = TestServer::start();
    server.script(
        "/first",
        vec![Reply::json(200, serde_json::json!({ "code": "A1" }))],
    );
    let t = b.against(&server, TWO_STEPS, &customers(3));
    let first = send(&t, &[]);
    assert_eq!(first.code, 0, "{}", first.all());
    let state = match t.state_schema() {
        Some(schema) => format!("?schema={schema}"),
        None => "state: .journey/state.sqlite".into(),
    };
    assert!(
        first.stdout.contains(&state) || first.stdout.contains("state: ./.journey/state.sqlite"),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains("3 completed"), "{}", first.stdout);
    // Closed cleanly: everything is in the database file, which can be copied alone.
    for left in ["state.sqlite-wal", "state.sqlite-shm", "state.sqlite-redo"] {
        assert!(
            !t.path(&format!(".journey/{left}")).exists(),
            "{left} was left"
        );
    }
    assert_eq!(
        t.path(".journey/state.sqlite").exists(),
        b.is_file(),
        "a PostgreSQL run keeps no file"
    );
    let second = send(&t, &[]);
    assert_eq!(second.code, 0, "{}", second.all());
    assert!(
        second.stdout.contains("3 already done"),
        "{}",
        second.stdout
    );
    assert_eq!(server.requests_to("/first").len(), 3);
    assert_eq!(server.requests_to("/second").len(), 3);
    #[cfg(unix)]
    if b.is_file() {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(t.path(".journey/state.sqlite"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
}

fn a_killed_run_resumes_and_repeats_only_what_was_in_flight(b: &Backend) {
    let server = TestServer::start();
    server.script(
        "/first",
        vec![Reply::json(200, serde_json::json!({ "code": "A1" }))],
    );
    server.script(
        "/second",
        vec![Reply::status(200).delay(Duration::from_secs(30))],
    );
    let t = b.against(&server, TWO_STEPS, &customers(6));
    let mut child = spawn(&t, &[]);
    let started = std::time::Instant::now();
    while server.requests_to("/second").len() < 2 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let in_flight = keys(&server, "/second");
    assert_eq!(
        in_flight.len(),
        2,
        "two entries were mid-delivery when killed"
    );
    let sent_first = keys(&server, "/first");
    let shown = b.show(&t);
    assert!(
        shown.stdout.contains("(schema version 3)"),
        "{}",
        shown.stdout
    );
    // The two entries mid-delivery had not ended: they have deliveries and no row yet.
    let active = shown.stdout.lines().find(|l| l.starts_with("entries: "));
    assert!(
        active.is_some_and(|l| l.contains("2 active")),
        "{}",
        shown.stdout
    );
    server.script("/second", vec![Reply::status(200)]);
    let rerun = send(&t, &["--concurrency", "2"]);
    assert_eq!(rerun.code, 0, "{}", rerun.all());
    assert!(rerun.stdout.contains("2 in doubt"), "{}", rerun.stdout);
    let first = keys(&server, "/first");
    let second = keys(&server, "/second");
    let unique = |v: &[String]| v.iter().collect::<std::collections::HashSet<_>>().len();
    assert_eq!(unique(&first), 6, "every customer got the first step");
    assert_eq!(
        first.len(),
        6,
        "nothing delivered was sent again: first run sent {}",
        sent_first.len()
    );
    assert_eq!(unique(&second), 6, "every customer got the second step");
    assert_eq!(second.len(), 8, "only the two in flight were repeated");
    for k in &in_flight {
        assert_eq!(
            second.iter().filter(|s| *s == k).count(),
            2,
            "{k} was re-sent with the same key"
        );
    }
    for r in server.requests_to("/second") {
        assert_eq!(
            r.json()["code"],
            "A1",
            "the re-run walks on with the saved value"
        );
    }
}

fn a_second_concurrent_run_is_refused_with_75(b: &Backend) {
    let server = TestServer::start();
    server.script(
        "/first",
        vec![Reply::status(200).delay(Duration::from_secs(3))],
    );
    let t = b.against(&server, TWO_STEPS, &customers(1));
    let mut holder = t.spawn(&["run", "j.yaml", "--fixtures", "f.yaml"]);
    let started = std::time::Instant::now();
    while server.requests().is_empty() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = send(&t, &[]);
    assert_eq!(second.code, 75, "{}", second.all());
    let holder_is = match b.is_file() {
        true => "is in use by another run (pid ",
        false => "is in use by another run (journey on ",
    };
    assert!(second.stderr.contains(holder_is), "{}", second.stderr);
    assert!(
        second.stderr.contains(&holder.id().to_string()),
        "names the holder: {}",
        second.stderr
    );
    assert_eq!(holder.wait().unwrap().code(), Some(0));
}

#[test]
fn a_corrupt_or_read_only_store_is_exit_3() {
    let server = TestServer::start();
    let t = setup(&server, TWO_STEPS, &customers(1));
    t.file(
        "bad.sqlite",
        "this is not a database, it is a text file pretending\n",
    );
    let corrupt = send(&t, &["--state", "bad.sqlite"]);
    assert_eq!(corrupt.code, 3, "{}", corrupt.all());
    assert!(
        corrupt
            .stderr
            .contains("the state store bad.sqlite cannot be used"),
        "{}",
        corrupt.stderr
    );
    assert!(
        server.requests().is_empty(),
        "nothing is sent without a usable store"
    );
    // Only the default .journey/ folder is ever created: a given store's folder must exist.
    t.file("good/keep", "");
    assert_eq!(send(&t, &["--state", "good/state.sqlite"]).code, 0);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = t.path("good");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
        std::fs::set_permissions(
            dir.join("state.sqlite"),
            std::fs::Permissions::from_mode(0o400),
        )
        .unwrap();
        let am_root = std::fs::write(dir.join("probe"), b"").is_ok();
        if !am_root {
            let ro = send(&t, &["--state", "good/state.sqlite"]);
            assert_eq!(ro.code, 3, "{}", ro.all());
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
}

const WAITING: &str = r#"journey: w
trigger: { segment: "true" }
steps:
  - id: hello
    webhook: { url: "{{ env.HOOK_URL }}/hello", body: { at: "{{ now }}" } }
    save: { ticket: "response.body.ticket" }
  - id: pause
    wait: 2d
  - id: reminder
    webhook: { url: "{{ env.HOOK_URL }}/reminder", body: { at: "{{ now }}", ticket: "{{ saved.ticket }}", name: "{{ customer.name }}" } }
"#;

fn a_parked_wait_resumes_once_due_even_without_fixtures(b: &Backend) {
    let server = TestServer::start();
    server.script(
        "/hello",
        vec![Reply::json(200, serde_json::json!({ "ticket": 42 }))],
    );
    let t = b.against(&server, WAITING, "customers: [{ id: c1, name: Ann }]\n");
    let first = send(&t, &["--now", "2026-11-20T10:00:00Z"]);
    assert_eq!(first.code, 0, "{}", first.all());
    assert!(first.stdout.contains("1 waiting"), "{}", first.stdout);
    assert!(server.requests_to("/reminder").is_empty());
    let early = send(&t, &["--now", "2026-11-21T10:00:00Z"]);
    assert!(early.stdout.contains("1 waiting"), "{}", early.stdout);
    assert!(server.requests_to("/reminder").is_empty(), "not due yet");
    t.file("f.yaml", "customers: [{ id: c1, name: Ann Updated }]\n");
    let due = send(&t, &["--now", "2026-11-22T11:00:00Z"]);
    assert_eq!(due.code, 0, "{}", due.all());
    let reminders = server.requests_to("/reminder");
    assert_eq!(reminders.len(), 1, "{}", due.all());
    assert_eq!(
        reminders[0].json(),
        serde_json::json!({ "at": "2026-11-22T11:00:00Z", "ticket": 42, "name": "Ann Updated" }),
        "a real run's `now` is its clock; the saved value and tonight's customer carry on"
    );
    assert_eq!(
        server.requests_to("/hello").len(),
        1,
        "the first step is not sent again"
    );
    let after = send(&t, &["--now", "2026-11-23T11:00:00Z"]);
    assert!(after.stdout.contains("1 already done"), "{}", after.stdout);

    let server2 = TestServer::start();
    server2.script(
        "/hello",
        vec![Reply::json(200, serde_json::json!({ "ticket": 7 }))],
    );
    let t2 = b.against(&server2, WAITING, "customers: [{ id: c9, name: Bo }]\n");
    assert_eq!(send(&t2, &["--now", "2026-11-20T10:00:00Z"]).code, 0);
    let resume = t2.run(&[
        "run",
        "j.yaml",
        "--resume-only",
        "--now",
        "2026-11-25T00:00:00Z",
    ]);
    assert_eq!(resume.code, 0, "{}", resume.all());
    assert_eq!(
        server2.requests_to("/reminder")[0].json()["name"],
        "Bo",
        "the snapshot stands in for missing fixtures"
    );
}

fn retry_after_beyond_max_backoff_defers_to_the_next_run(b: &Backend) {
    let server = TestServer::start();
    // 2 s, past a max_backoff of 1 s. The next run starts once the 2 s are over: within them,
    // a shared store's other runs keep the quiet the partner asked for (tests/shares.rs).
    server.script(
        "/first",
        vec![Reply::status(429).header("Retry-After", "2")],
    );
    let journey = TWO_STEPS.replace("steps:", "defaults: { retry: { max_backoff: 1s } }\nsteps:");
    let t = b.against(&server, &journey, &customers(1));
    let asked = std::time::Instant::now();
    let first = send(&t, &[]);
    assert!(first.stdout.contains("1 waiting"), "{}", first.all());
    assert!(
        !t.path(".journey/dead-letter.ndjson").exists(),
        "deferred, not dead"
    );
    server.script(
        "/first",
        vec![Reply::json(200, serde_json::json!({ "code": "Z" }))],
    );
    std::thread::sleep(std::time::Duration::from_millis(2100).saturating_sub(asked.elapsed()));
    let second = send(&t, &[]);
    assert_eq!(second.code, 0, "{}", second.all());
    let k = keys(&server, "/first");
    assert_eq!(k.len(), 2);
    assert_eq!(k[0], k[1], "the same idempotency key");
    assert_eq!(server.requests_to("/second").len(), 1);
}

fn retry_failed_walks_on_from_the_failed_step(b: &Backend) {
    let server = TestServer::start();
    server.script("/second", vec![Reply::status(500)]);
    let t = b.against(&server, TWO_STEPS, &customers(1));
    let step = |extra: &[&str]| send(&t, extra);
    assert_eq!(step(&[]).code, 1);
    assert_eq!(server.requests_to("/second").len(), 3, "three attempts");
    let again = step(&[]);
    assert!(again.stdout.contains("1 already done"), "{}", again.stdout);
    assert_eq!(
        server.requests_to("/second").len(),
        3,
        "a failed entry is not re-entered"
    );
    server.script("/second", vec![Reply::status(200)]);
    let retried = step(&["--retry-failed"]);
    assert_eq!(retried.code, 0, "{}", retried.all());
    assert_eq!(
        server.requests_to("/first").len(),
        1,
        "the delivered step is not sent again"
    );
    let k = keys(&server, "/second");
    assert_eq!(k.len(), 4);
    assert_eq!(k[0], k[3]);
}

const CART: &str = r#"journey: cart
trigger: { event: cart_abandoned }
exit_when: { event: order_completed, where: "event.properties.total > 0" }
steps:
  - id: wait
    wait: 1d
  - id: reminder
    webhook: { url: "{{ env.HOOK_URL }}/reminder", body: { cart: "{{ event.id }}" } }
"#;

/// Sightings's run ended c1's entry (its order) and reminded c2 only, about cart k2.
fn only_k2_is_reminded(
    server: &TestServer,
    tonight: &Output,
) -> Vec<crate::support::server::Recorded> {
    assert_eq!(tonight.code, 0, "{}", tonight.all());
    assert!(tonight.stdout.contains("1 exited"), "{}", tonight.stdout);
    let reminders = server.requests_to("/reminder");
    assert_eq!(
        reminders.len(),
        1,
        "only the customer who did not buy is reminded"
    );
    assert_eq!(reminders[0].json()["cart"], "k2");
    reminders
}

fn tonights_streamed_export_ends_a_parked_entry_and_updates_its_customer(b: &Backend) {
    let server = TestServer::start();
    let t = b.test().env("HOOK_URL", &server.url);
    let journey = CART.replace(
        "body: { cart: \"{{ event.id }}\" }",
        "body: { cart: \"{{ event.id }}\", tier: \"{{ customer.attributes.tier }}\" }",
    );
    t.file("j.yaml", &journey);
    let line = |customer: &str, tier: &str, event: &str| {
        format!(
            "{{\"customer\": {{\"id\": \"{customer}\", \"attributes\": {{\"tier\": \"{tier}\"}}}}, \"event\": {event}}}\n"
        )
    };
    let cart = |id: &str| {
        format!(
            "{{\"id\": \"{id}\", \"name\": \"cart_abandoned\", \"at\": \"2026-11-20T10:00:00Z\"}}"
        )
    };
    let order = |total: u32| {
        format!(
            "{{\"name\": \"order_completed\", \"at\": \"2026-11-20T18:00:00Z\", \"properties\": {{\"total\": {total}}}}}"
        )
    };
    t.file(
        "monday.ndjson",
        &[
            line("c1", "bronze", &cart("k1")),
            line("c2", "bronze", &cart("k2")),
        ]
        .concat(),
    );
    let args =
        |file: &'static str, now: &'static str| ["run", "j.yaml", "--fixtures", file, "--now", now];
    let first = t.run(&args("monday.ndjson", "2026-11-20T11:00:00Z"));
    assert!(first.stdout.contains("2 waiting"), "{}", first.all());
    // Tuesday's export holds the orders, and c2's new tier.
    t.file(
        "tuesday.ndjson",
        &[
            line("c1", "bronze", &order(80)),
            line("c2", "gold", &order(0)),
        ]
        .concat(),
    );
    let tonight = t.run(&args("tuesday.ndjson", "2026-11-21T11:00:00Z"));
    let reminders = only_k2_is_reminded(&server, &tonight);
    assert_eq!(
        reminders[0].json()["tier"],
        "gold",
        "the resumed entry uses tonight's record of its customer"
    );
}

fn limit_still_reads_tonights_stream_to_its_end_for_the_exits_of_parked_entries(b: &Backend) {
    let server = TestServer::start();
    let t = b.test().env("HOOK_URL", &server.url);
    t.file("j.yaml", CART);
    let line = |customer: &str, event: &str| {
        format!("{{\"customer\": {{\"id\": \"{customer}\"}}, \"event\": {event}}}\n")
    };
    let cart = |id: &str, at: &str| {
        format!("{{\"id\": \"{id}\", \"name\": \"cart_abandoned\", \"at\": \"{at}\"}}")
    };
    let order =
        r#"{"name": "order_completed", "at": "2026-11-20T18:00:00Z", "properties": {"total": 5}}"#;
    t.file(
        "monday.ndjson",
        &line("c1", &cart("k1", "2026-11-20T10:00:00Z")),
    );
    let run = |file: &str, now: &str, extra: &[&str]| {
        let mut args = vec!["run", "j.yaml", "--fixtures", file, "--now", now];
        args.extend_from_slice(extra);
        t.run(&args)
    };
    let first = run("monday.ndjson", "2026-11-20T11:00:00Z", &[]);
    assert!(first.stdout.contains("1 waiting"), "{}", first.all());
    // Sightings's run takes one new entry; c1's order is the last line, past the limit.
    t.file(
        "tuesday.ndjson",
        &[
            line("c3", &cart("k3", "2026-11-21T10:00:00Z")),
            line("c4", &cart("k4", "2026-11-21T10:00:00Z")),
            line("c1", order),
        ]
        .concat(),
    );
    let tonight = run("tuesday.ndjson", "2026-11-21T11:00:00Z", &["--limit", "1"]);
    assert_eq!(tonight.code, 0, "{}", tonight.all());
    assert!(tonight.stdout.contains("1 exited"), "{}", tonight.stdout);
    assert!(
        tonight.stdout.contains("1 waiting"),
        "c3 entered, c4 did not: {}",
        tonight.stdout
    );
    assert!(
        server.requests_to("/reminder").is_empty(),
        "c1 bought: no reminder"
    );
}

fn resume_only_still_reads_tonights_stream_for_exits_but_enters_no_one(b: &Backend) {
    let server = TestServer::start();
    let t = b.test().env("HOOK_URL", &server.url);
    t.file("j.yaml", CART);
    let line = |customer: &str, event: &str| {
        format!("{{\"customer\": {{\"id\": \"{customer}\"}}, \"event\": {event}}}\n")
    };
    let cart = r#"{"id": "k1", "name": "cart_abandoned", "at": "2026-11-20T10:00:00Z"}"#;
    let order =
        r#"{"name": "order_completed", "at": "2026-11-20T18:00:00Z", "properties": {"total": 5}}"#;
    let late_cart = r#"{"id": "k3", "name": "cart_abandoned", "at": "2026-11-21T10:00:00Z"}"#;
    t.file("monday.ndjson", &line("c1", cart));
    let first = t.run(&[
        "run",
        "j.yaml",
        "--fixtures",
        "monday.ndjson",
        "--now",
        "2026-11-20T11:00:00Z",
    ]);
    assert!(first.stdout.contains("1 waiting"), "{}", first.all());
    t.file(
        "tuesday.ndjson",
        &[line("c1", order), line("c3", late_cart)].concat(),
    );
    let tonight = t.run(&[
        "run",
        "j.yaml",
        "--fixtures",
        "tuesday.ndjson",
        "--now",
        "2026-11-21T11:00:00Z",
        "--resume-only",
    ]);
    assert_eq!(tonight.code, 0, "{}", tonight.all());
    assert!(
        tonight.stdout.contains("entries: 0 completed"),
        "{}",
        tonight.stdout
    );
    assert!(tonight.stdout.contains("1 exited"), "{}", tonight.stdout);
    assert!(
        tonight.stdout.contains("0 waiting"),
        "c3 is not entered: {}",
        tonight.stdout
    );
    assert!(server.requests_to("/reminder").is_empty());
}

fn tonights_order_ends_a_parked_entry_as_exited(b: &Backend) {
    let server = TestServer::start();
    let cart = "customers: [{ id: c1 }, { id: c2 }]\nevents:\n  - { id: k1, name: cart_abandoned, customer: c1, at: 2026-11-20T10:00:00Z }\n  - { id: k2, name: cart_abandoned, customer: c2, at: 2026-11-20T10:00:00Z }\n";
    let t = b.against(&server, CART, cart);
    let first = send(&t, &["--now", "2026-11-20T11:00:00Z"]);
    assert!(first.stdout.contains("2 waiting"), "{}", first.all());
    let orders = format!(
        "{cart}  - {{ id: o1, name: order_completed, customer: c1, at: 2026-11-20T18:00:00Z, properties: {{ total: 80 }} }}\n  - {{ id: o2, name: order_completed, customer: c2, at: 2026-11-20T18:00:00Z, properties: {{ total: 0 }} }}\n"
    );
    t.file("f.yaml", &orders);
    let tonight = send(&t, &["--now", "2026-11-21T11:00:00Z"]);
    // c2's order has a zero total: `where` excluded it, so c2 is reminded.
    only_k2_is_reminded(&server, &tonight);
}

fn spawn(t: &Test, extra: &[&str]) -> std::process::Child {
    let run = [
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--concurrency",
        "2",
    ];
    t.spawn(&[&run[..], extra].concat())
}

fn sigterm_stops_cleanly_and_the_rerun_repeats_nothing(b: &Backend) {
    let server = TestServer::start();
    server.script(
        "/first",
        vec![
            Reply::json(200, serde_json::json!({ "code": "A" })).delay(Duration::from_millis(600)),
        ],
    );
    let t = b.against(&server, TWO_STEPS, &customers(10));
    let child = spawn(&t, &["--report", "r.json"]);
    server.wait_for(2);
    let out = terminate(child);
    assert_eq!(out.code, 143, "{}", out.all());
    adds_up(&out.stdout, &t.read("r.json"));
    assert!(
        out.stderr.contains("stopping: no new attempts"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("entries:") && out.stdout.contains("interrupted"),
        "the table so far: {}",
        out.stdout
    );
    let before = server.requests().len();
    assert!(before < 20, "stopped early: {before} requests");
    server.script(
        "/first",
        vec![Reply::json(200, serde_json::json!({ "code": "A" }))],
    );
    let rerun = send(&t, &["--report", "r.json"]);
    assert_eq!(rerun.code, 0, "{}", rerun.all());
    assert!(rerun.stdout.contains("0 in doubt"), "{}", rerun.stdout);
    adds_up(&rerun.stdout, &t.read("r.json"));
    for path in ["/first", "/second"] {
        let k = keys(&server, path);
        let unique: std::collections::HashSet<_> = k.iter().collect();
        assert_eq!(
            (k.len(), unique.len()),
            (10, 10),
            "{path}: everything once, nothing twice"
        );
    }
}

fn max_duration_stops_the_same_way(b: &Backend) {
    let server = TestServer::start();
    server.script(
        "/first",
        vec![
            Reply::json(200, serde_json::json!({ "code": "A" })).delay(Duration::from_millis(300)),
        ],
    );
    let t = b.against(&server, TWO_STEPS, &customers(8));
    let out = send(&t, &["--concurrency", "1", "--max-duration", "700ms"]);
    // Stopped with entries left: 124, as timeout(1), so cron can tell an unfinished night.
    assert_eq!(out.code, 124, "{}", out.all());
    assert!(out.stdout.contains("left: "), "{}", out.stdout);
    assert!(
        out.stderr.contains("--max-duration ran out"),
        "{}",
        out.stderr
    );
    let first_run = keys(&server, "/first").len();
    assert!(first_run < 8, "{first_run}");
    server.script(
        "/first",
        vec![Reply::json(200, serde_json::json!({ "code": "A" }))],
    );
    assert_eq!(send(&t, &[]).code, 0);
    assert_eq!(keys(&server, "/first").len(), 8);
    assert_eq!(keys(&server, "/second").len(), 8);
}

fn a_customer_without_the_journeys_consent_is_not_entered_until_they_consent(b: &Backend) {
    let server = TestServer::start();
    let journey = "journey: j\ntrigger: { segment: \"true\" }\nconsent: email\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/send\", body: { id: \"{{ customer.id }}\" } }\n";
    let t = b.against(
        &server,
        journey,
        "customers:\n  - { id: c1, consent: { email: true } }\n  - { id: c2 }\n",
    );
    let out = send(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(server.requests_to("/send").len(), 1);
    let shown = b.show(&t);
    assert!(shown.stdout.contains("entries: 1 done"), "{}", shown.stdout);
    assert!(!shown.stdout.contains("active"), "{}", shown.stdout);
    t.file(
        "f.yaml",
        "customers:\n  - { id: c1, consent: { email: true } }\n  - { id: c2, consent: { email: true } }\n",
    );
    let out = send(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let bodies: Vec<String> = server
        .requests_to("/send")
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        bodies,
        ["c1", "c2"],
        "c2 enters once they consent; c1 is not sent again"
    );
}

fn a_parked_entry_whose_customer_withdrew_consent_ends_suppressed(b: &Backend) {
    let server = TestServer::start();
    let journey = WAITING.replace("steps:", "consent: email\nsteps:");
    let t = b.against(
        &server,
        &journey,
        "customers: [{ id: c1, name: Ann, consent: { email: true } }]\n",
    );
    assert_eq!(send(&t, &["--now", "2026-11-20T10:00:00Z"]).code, 0);
    t.file(
        "f.yaml",
        "customers: [{ id: c1, name: Ann, consent: { email: false } }]\n",
    );
    let due = send(&t, &["--now", "2026-11-22T11:00:00Z"]);
    assert_eq!(due.code, 0, "{}", due.all());
    assert!(server.requests_to("/reminder").is_empty(), "{}", due.all());
    let shown = b.show(&t);
    assert!(shown.stdout.contains("entries: 1 done"), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("ended by outcome: 1 suppressed"),
        "{}",
        shown.stdout
    );
}

fn state_show_and_prune(b: &Backend) {
    let server = TestServer::start();
    server.script(
        "/hello",
        vec![Reply::json(200, serde_json::json!({ "ticket": 1 }))],
    );
    let t = b.against(
        &server,
        WAITING,
        "customers: [{ id: c1, name: A }, { id: c2, name: B }]\n",
    );
    assert_eq!(send(&t, &["--now", "2026-11-20T10:00:00Z"]).code, 0);
    let shown = b.show(&t);
    assert_eq!(shown.code, 0, "{}", shown.all());
    assert!(
        shown.stdout.contains("entries: 2 waiting"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("deliveries: 2 ok"),
        "{}",
        shown.stdout
    );
    assert!(
        shown
            .stdout
            .contains("w:c1 (journey w, customer c1) due 2026-11-22T10:00:00Z"),
        "{}",
        shown.stdout
    );
    assert_eq!(send(&t, &["--now", "2026-11-23T10:00:00Z"]).code, 0);
    let store = t
        .env_value("JOURNEY_STATE")
        .unwrap_or_else(|| t.path(".journey/state.sqlite").display().to_string());
    let via_env = Test::new().env("JOURNEY_STATE", &store);
    let done = via_env.run(&["state", "show"]);
    assert!(done.stdout.contains("entries: 2 done"), "{}", done.stdout);
    assert!(
        done.stdout.contains("ended by outcome: 2 completed"),
        "{}",
        done.stdout
    );
    let kept = via_env.run(&["state", "prune"]);
    assert_eq!(
        kept.stdout,
        "pruned 0 ended entries and 0 deliveries\n",
        "{}",
        kept.all()
    );
    let pruned = via_env.run(&["state", "prune", "--older-than", "0s"]);
    let reuse = match b.is_file() {
        true => " (the file keeps its size: later runs reuse the space)",
        false => "",
    };
    assert_eq!(
        pruned.stdout,
        format!("pruned 2 ended entries and 4 deliveries{reuse}\n"),
        "{}",
        pruned.all()
    );
    let (nowhere, says) = match b.fresh() {
        Some(url) => (url, "there is no state store in schema"),
        None => ("nope.sqlite".into(), "there is no state store here"),
    };
    let missing = Test::new().run(&["state", "show", "--state", &nowhere]);
    assert_eq!(missing.code, 3, "{}", missing.all());
    assert!(missing.stderr.contains(says), "{}", missing.stderr);
}

#[test]
fn journey_state_and_state_move_the_store() {
    let server = TestServer::start();
    let t = setup(&server, TWO_STEPS, &customers(1));
    let moved = Test::new()
        .env("HOOK_URL", &server.url)
        .env("JOURNEY_STATE", "elsewhere/s.sqlite");
    moved.file("j.yaml", TWO_STEPS);
    moved.file("f.yaml", &customers(1));
    moved.file("elsewhere/keep", "");
    let out = moved.run(&["run", "j.yaml", "--fixtures", "f.yaml"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("state: elsewhere/s.sqlite"),
        "{}",
        out.stdout
    );
    assert!(
        moved.path("elsewhere/s.sqlite").exists() && !moved.path(".journey/state.sqlite").exists()
    );
    let flag = send(&t, &["--state", "mine.sqlite"]);
    assert!(
        flag.stdout.contains("state: mine.sqlite"),
        "{}",
        flag.stdout
    );
}

fn a_replayed_delivery_is_recorded_in_the_store_and_the_next_run_walks_on(b: &Backend) {
    let server = TestServer::start();
    server.script("/first", vec![Reply::status(500)]);
    let journey = TWO_STEPS.replace(
        "trigger: { segment: \"true\" }",
        "trigger: { segment: \"true\" }\ndefaults: { retry: { attempts: 1 } }",
    );
    let t = b.against(&server, &journey, &customers(3));
    let first = send(&t, &[]);
    assert_eq!(first.code, 1, "{}", first.all());
    assert_eq!(keys(&server, "/first").len(), 3);
    server.script(
        "/first",
        vec![Reply::json(200, serde_json::json!({ "code": "R1" }))],
    );
    let replay = t.run(&["replay", ".journey/dead-letter.ndjson"]);
    assert_eq!(replay.code, 0, "{}", replay.all());
    assert_eq!(keys(&server, "/first").len(), 6, "each sent again once");
    let shown = b.show(&t);
    assert!(
        shown.stdout.contains("deliveries: 3 ok"),
        "{}",
        shown.stdout
    );
    for extra in [&[][..], &["--retry-failed"]] {
        let next = send(&t, extra);
        assert_eq!(next.code, 0, "{}", next.all());
    }
    assert_eq!(
        keys(&server, "/first").len(),
        6,
        "nothing replayed is sent again"
    );
    let second = server.requests_to("/second");
    assert_eq!(second.len(), 3, "each entry walked on once");
    assert!(
        second.iter().all(|r| r.json()["code"] == "R1"),
        "with what the replay saved"
    );
}

fn an_invalid_entry_ends_failed_not_active_forever(b: &Backend) {
    let server = TestServer::start();
    let journey = TWO_STEPS.replace(
        "{ code: \"{{ saved.code | default('none') }}\" }",
        "{ x: \"{{ customer.attributes.x }}\" }",
    );
    let t = b.against(
        &server,
        &journey,
        "customers:\n  - { id: c1, attributes: { x: 1 } }\n  - { id: c2 }\n",
    );
    let out = send(&t, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("1 invalid"), "{}", out.stdout);
    let shown = b.show(&t);
    assert!(!shown.stdout.contains("active"), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("entries: 1 done, 1 failed"),
        "{}",
        shown.stdout
    );
}

#[test]
fn state_show_and_prune_find_the_store_run_used_from_the_same_arguments() {
    let server = TestServer::start();
    let t = Test::new().env("HOOK_URL", &server.url);
    t.file("journeys/j.yaml", TWO_STEPS);
    t.file("f.yaml", &customers(2));
    let out = t.run(&["run", "journeys/", "--fixtures", "f.yaml", "--yes"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(t.path("journeys/.journey/state.sqlite").exists());
    let shown = t.run(&["state", "show", "journeys/"]);
    assert_eq!(shown.code, 0, "{}", shown.all());
    assert!(shown.stdout.contains("entries: 2 done"), "{}", shown.stdout);
    let shown = t.run(&["state", "show", "journeys/j.yaml"]);
    assert_eq!(shown.code, 0, "{}", shown.all());
    let pruned = t.run(&["state", "prune", "journeys/", "--older-than", "0s"]);
    assert_eq!(pruned.code, 0, "{}", pruned.all());
    assert!(
        pruned.stdout.contains("pruned 2 ended entries"),
        "{}",
        pruned.stdout
    );
}

/// The summary's entries line adds up to the report's entries, number by number: each entry is
/// counted once, by its outcome.
fn adds_up(stdout: &str, report: &str) {
    let report: serde_json::Value = serde_json::from_str(report).unwrap();
    let line = stdout
        .lines()
        .find(|l| l.starts_with("entries:"))
        .unwrap_or_else(|| panic!("no entries line: {stdout}"));
    let counts = line
        .trim_start_matches("entries:")
        .split(" (")
        .next()
        .unwrap();
    let sum: u64 = counts
        .split(" / ")
        .map(|part| {
            part.trim()
                .split(' ')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(sum, report["totals"]["entries"].as_u64().unwrap(), "{line}");
    assert!(!line.contains("of which interrupted"), "{line}");
    let all = format!("({} in all)", report["totals"]["entries"]);
    assert!(line.ends_with(&all), "{line}");
}

#[test]
fn a_run_killed_through_a_link_is_resumed_through_the_real_path_without_repeats() {
    let server = TestServer::start();
    server.script(
        "/first",
        vec![Reply::json(200, serde_json::json!({ "code": "A1" }))],
    );
    server.script(
        "/second",
        vec![Reply::status(200).delay(Duration::from_secs(30))],
    );
    let t = setup(&server, TWO_STEPS, &customers(6));
    t.file("real/keep", "");
    t.file("links/keep", "");
    std::os::unix::fs::symlink(t.path("real/state.sqlite"), t.path("links/state.sqlite")).unwrap();
    // The link names a store that does not exist yet: it is refused, as a link to nothing.
    let dangling = send(&t, &["--state", "links/state.sqlite"]);
    assert_eq!(dangling.code, 2, "{}", dangling.all());
    assert!(server.requests().is_empty());
    std::fs::remove_file(t.path("links/state.sqlite")).unwrap();
    assert_eq!(
        send(&t, &["--state", "real/state.sqlite", "--limit", "0"]).code,
        0
    );
    std::os::unix::fs::symlink(t.path("real/state.sqlite"), t.path("links/state.sqlite")).unwrap();
    let mut child = t.spawn(&[
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--yes",
        "--state",
        "links/state.sqlite",
        "--concurrency",
        "2",
    ]);
    let started = std::time::Instant::now();
    while server.requests_to("/second").len() < 2 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        crate::support::names(&t.path("links")),
        ["keep", "state.sqlite"],
        "nothing of the store beside the link"
    );
    server.script("/second", vec![Reply::status(200)]);
    let rerun = send(&t, &["--state", "real/state.sqlite"]);
    assert_eq!(rerun.code, 0, "{}", rerun.all());
    let first = keys(&server, "/first");
    let unique: std::collections::HashSet<_> = first.iter().collect();
    assert_eq!(
        (first.len(), unique.len()),
        (6, 6),
        "nothing delivered was sent again"
    );
    let second = keys(&server, "/second");
    assert_eq!(
        second.len(),
        6 + 2,
        "only the two in flight are sent again, with their keys"
    );
}

fn a_store_from_a_newer_journey_is_refused(b: &Backend) {
    let server = TestServer::start();
    let t = b.against(&server, TWO_STEPS, &customers(1));
    assert_eq!(send(&t, &["--limit", "0"]).code, 0);
    b.set_schema_version(&t, 99);
    let out = send(&t, &[]);
    assert_eq!(out.code, 3, "{}", out.all());
    assert!(
        out.stderr
            .contains("has schema version 99, newer than this journey knows (3): upgrade journey"),
        "{}",
        out.stderr
    );
    assert!(server.requests().is_empty(), "nothing is sent");
}

/// `--concurrency` bounds what the partner sees at once, and, with a store, what a crash can
/// leave in doubt: an entry's turn ends only once its outcome is recorded.
fn requests_in_flight_stay_within_concurrency(b: &Backend) {
    let server = TestServer::start();
    server.script(
        "/first",
        vec![Reply::status(200).delay(Duration::from_millis(40))],
    );
    let one =
        crate::support::one_step("j", r#"{ id: "{{ customer.id }}" }"#).replace("/hook", "/first");
    let t = b.against(&server, &one, &customers(30));
    let out = send(&t, &["--concurrency", "3"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("30 completed"), "{}", out.stdout);
    assert_eq!(server.requests_to("/first").len(), 30);
    assert_eq!(
        server.max_in_flight("/first"),
        3,
        "at most --concurrency requests at once, and that many"
    );
}
