//! The PostgreSQL store with several hosts at once: shards side by side, a run killed and
//! finished by another process, the server restarted under a run, a store moved between
//! backends, TLS, and a password that is never shown. (The promises it shares with the SQLite
//! file are tested on both in `state.rs`.)

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::support::server::{Reply, TestServer};
use crate::support::store::{Backend, sql};
use crate::support::{Output, Test};

const ONE_STEP: &str = r#"journey: j
trigger: { segment: "true" }
steps:
  - id: send
    webhook: { url: "{{ env.HOOK_URL }}/send", body: { id: "{{ customer.id }}" } }
"#;

/// `n` customers as an NDJSON export.
fn export(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"customer\": {{\"id\": \"c{i:05}\"}}}}\n"))
        .collect()
}

/// A test folder with the one-step journey and `n` customers, on a fresh store.
fn folder(b: &Backend, server: &TestServer, n: usize) -> (Test, String) {
    let url = b.fresh().expect("a PostgreSQL store");
    let t = Test::new().env("HOOK_URL", &server.url);
    t.file("j.yaml", ONE_STEP);
    t.file("export.ndjson", &export(n));
    (t, url)
}

fn run_args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "j.yaml",
        "--fixtures",
        "export.ndjson",
        "--yes",
        "--state",
        url,
    ];
    args.extend_from_slice(extra);
    args
}

/// Customer id → idempotency keys of the requests that reached `/send`.
fn sent(server: &TestServer) -> HashMap<String, Vec<String>> {
    let mut by_customer: HashMap<String, Vec<String>> = HashMap::new();
    for r in server.requests_to("/send") {
        let id = r.json()["id"].as_str().unwrap().to_string();
        let key = r.header("idempotency-key").unwrap().to_string();
        by_customer.entry(id).or_default().push(key);
    }
    by_customer
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "waited for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_hosts_on_two_shards_send_each_customer_exactly_once_and_hold_their_own_shard() {
    let Some(b) = Backend::postgres() else { return };
    let server = TestServer::start();
    server.script(
        "/send",
        vec![Reply::status(200).delay(Duration::from_millis(20))],
    );
    let (t, url) = folder(&b, &server, 400);
    let one = t.spawn(&run_args(&url, &["--shard", "1/2", "--concurrency", "4"]));
    let two = t.spawn(&run_args(&url, &["--shard", "2/2", "--concurrency", "4"]));
    wait_until("both shards to send", || server.count() >= 20);
    // The same shard again, from another process: refused, naming the holder's host and pid.
    let again = t.run(&run_args(&url, &["--shard", "1/2"]));
    assert_eq!(again.code, 75, "{}", again.all());
    let holder = format!("pid {}, shard 1/2", one.id());
    assert!(
        again
            .stderr
            .contains("is in use by another run (journey on ")
            && again.stderr.contains(&holder),
        "{}",
        again.stderr
    );
    // Another split while these run would overlap them: refused.
    let thirds = t.run(&run_args(&url, &["--shard", "1/3"]));
    assert_eq!(thirds.code, 2, "{}", thirds.all());
    assert!(
        thirds.stderr.contains("split into 2 shards"),
        "{}",
        thirds.stderr
    );
    // A run of everyone waits for no one: it is refused while shards run.
    let everyone = t.run(&run_args(&url, &[]));
    assert_eq!(everyone.code, 75, "{}", everyone.all());
    let one: Output = one.wait_with_output().unwrap().into();
    let two: Output = two.wait_with_output().unwrap().into();
    assert_eq!((one.code, two.code), (0, 0), "{}\n{}", one.all(), two.all());
    let by_customer = sent(&server);
    assert_eq!(by_customer.len(), 400, "every customer");
    assert!(
        by_customer.values().all(|keys| keys.len() == 1),
        "nobody twice"
    );
    // Both shards again, one after the other: everything is done.
    for shard in ["1/2", "2/2"] {
        let rerun = t.run(&run_args(&url, &["--shard", shard]));
        assert_eq!(rerun.code, 0, "{}", rerun.all());
        assert!(rerun.stdout.contains("already done"), "{}", rerun.stdout);
    }
    assert_eq!(server.count(), 400);
    let shown = t.run(&["state", "show", "--state", &url]);
    assert!(
        shown.stdout.contains("entries: 400 done"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("runs holding it now: none"),
        "{}",
        shown.stdout
    );
}

#[test]
fn a_host_killed_mid_run_is_finished_by_another_with_only_the_requests_in_flight_repeated() {
    let Some(b) = Backend::postgres() else { return };
    let server = TestServer::start();
    let (t, url) = folder(&b, &server, 30_000);
    let args = run_args(&url, &["--shard", "1/2", "--concurrency", "16"]);
    let mut first = t.spawn(&args);
    wait_until("the first host to be well under way", || {
        server.count() >= 3000
    });
    // kill -9: nothing is flushed, the lock goes with the connection.
    first.kill().unwrap();
    first.wait().unwrap();
    let at_kill = server.count();
    let second = t.run(&args);
    assert_eq!(second.code, 0, "{}", second.all());
    let by_customer = sent(&server);
    let shard: Vec<String> = (0..30_000)
        .map(|i| format!("c{i:05}"))
        .filter(|id| crate::support::in_shard_fast(id, 1, 2))
        .collect();
    assert!(at_kill < shard.len(), "killed before the end: {at_kill}");
    for id in &shard {
        assert!(by_customer.contains_key(id), "{id} was never sent");
    }
    assert_eq!(by_customer.len(), shard.len(), "no one outside the shard");
    let repeated: Vec<&Vec<String>> = by_customer.values().filter(|k| k.len() > 1).collect();
    assert!(
        repeated.len() <= 16,
        "repeats are bounded by the requests in flight: {}",
        repeated.len()
    );
    for keys in repeated {
        assert!(
            keys.iter().all(|k| *k == keys[0]),
            "sent again with the same idempotency key: {keys:?}"
        );
    }
}

/// Stops and starts the machine's PostgreSQL; starts it again if the test fails midway.
struct Cluster {
    version: String,
}

impl Cluster {
    /// The local cluster, when this machine has `pg_ctlcluster` and the tests use it.
    fn local(base: &str) -> Option<Cluster> {
        let local = base.contains("@127.0.0.1:") || base.contains("@localhost:");
        let version = std::fs::read_dir("/etc/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .next()?;
        let tool = std::process::Command::new("pg_ctlcluster")
            .arg("--help")
            .output()
            .is_ok();
        if !(local && tool) {
            eprintln!("the PostgreSQL server is not this machine's: the restart test did not run");
            return None;
        }
        Some(Cluster { version })
    }

    fn ctl(&self, action: &str) {
        let mut cmd = std::process::Command::new("pg_ctlcluster");
        cmd.args(["--skip-systemctl-redirect", &self.version, "main", action]);
        if action == "stop" {
            cmd.args(["-m", "fast"]);
        }
        let out = cmd.output().expect("pg_ctlcluster");
        assert!(
            out.status.success(),
            "pg_ctlcluster {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn up(&self) -> bool {
        std::process::Command::new("pg_isready")
            .args(["-h", "127.0.0.1", "-q"])
            .status()
            .is_ok_and(|s| s.success())
    }

    fn start(&self) {
        if !self.up() {
            self.ctl("start");
        }
        wait_until("PostgreSQL to accept connections", || self.up());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.up() {
            self.start();
        }
    }
}

#[test]
fn the_server_restarted_under_a_run_holds_it_up_then_a_longer_outage_stops_it_and_nothing_is_sent_twice()
 {
    let Some(b) = Backend::postgres_alone() else {
        return;
    };
    let base = crate::support::store::database().unwrap();
    let Some(cluster) = Cluster::local(&base) else {
        return;
    };
    let server = TestServer::start();
    server.script(
        "/send",
        vec![Reply::status(200).delay(Duration::from_millis(20))],
    );
    let (t, url) = folder(&b, &server, 1500);
    // A restart shorter than --state-timeout: the run waits for the store, then goes on.
    let args = run_args(&url, &["--concurrency", "8", "--state-timeout", "60s"]);
    let run = t.spawn(&args);
    wait_until("the run to be under way", || server.count() >= 200);
    cluster.ctl("stop");
    let during = server.count();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        server.count() <= during + 8,
        "no new attempts while the store is away: {} then {}",
        during,
        server.count()
    );
    cluster.start();
    let out: Output = run.wait_with_output().unwrap().into();
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("is not answering"), "{}", out.stderr);
    let by_customer = sent(&server);
    assert_eq!(by_customer.len(), 1500);
    assert!(
        by_customer.values().all(|k| k.len() == 1),
        "nothing twice across the restart"
    );
    let rerun = t.run(&args);
    assert!(
        rerun.stdout.contains("1500 already done"),
        "{}",
        rerun.all()
    );

    // An outage longer than --state-timeout: the run stops as SIGTERM would, exit 3.
    let server2 = TestServer::start();
    server2.script(
        "/send",
        vec![Reply::status(200).delay(Duration::from_millis(20))],
    );
    let (t2, url2) = folder(&b, &server2, 1500);
    let args2 = run_args(&url2, &["--concurrency", "8", "--state-timeout", "2s"]);
    let run = t2.spawn(&args2);
    wait_until("the second run to be under way", || server2.count() >= 200);
    cluster.ctl("stop");
    std::thread::sleep(Duration::from_secs(3));
    let stopped_at = server2.count();
    cluster.start();
    let out: Output = run.wait_with_output().unwrap().into();
    assert_eq!(out.code, 3, "{}", out.all());
    assert!(
        out.stderr.contains("did not answer for 2s"),
        "{}",
        out.stderr
    );
    assert!(stopped_at < 1500, "it stopped: {stopped_at}");
    assert!(
        out.stdout.contains("stopped: the state store failed"),
        "{}",
        out.stdout
    );
    let resumed = t2.run(&args2);
    assert_eq!(resumed.code, 0, "{}", resumed.all());
    let by_customer = sent(&server2);
    assert_eq!(by_customer.len(), 1500, "everyone in the end");
    let repeated: Vec<_> = by_customer.values().filter(|k| k.len() > 1).collect();
    assert!(
        repeated.len() <= 8,
        "repeats bounded by the requests in flight: {repeated:?}"
    );
    assert!(repeated.iter().all(|k| k.iter().all(|x| *x == k[0])));
}

#[test]
fn state_copy_moves_a_store_between_sqlite_and_postgresql_and_refuses_a_full_target() {
    let Some(b) = Backend::postgres() else { return };
    let server = TestServer::start();
    server.script("/send", vec![Reply::status(200)]);
    let t = Test::new().env("HOOK_URL", &server.url);
    t.file("j.yaml", ONE_STEP);
    // More than one chunk of rows each way (a store of any size is copied in bounded memory).
    t.file("export.ndjson", &export(2500));
    let file_run = t.run(&[
        "run",
        "j.yaml",
        "--fixtures",
        "export.ndjson",
        "--shard",
        "1/1",
    ]);
    assert_eq!(file_run.code, 0, "{}", file_run.all());
    let url = b.fresh().unwrap();
    let copied = t.run(&["state", "copy", ".journey/state.sqlite", &url]);
    assert_eq!(copied.code, 0, "{}", copied.all());
    assert!(
        copied.stdout.starts_with(
            "copied 2500 entries and 2500 deliveries from .journey/state.sqlite to postgres://"
        ),
        "{}",
        copied.stdout
    );
    // The run goes on from PostgreSQL: nothing is sent again.
    let on_pg = t.run(&run_args(&url, &["--shard", "1/1"]));
    assert!(
        on_pg.stdout.contains("2500 already done"),
        "{}",
        on_pg.all()
    );
    assert_eq!(server.count(), 2500);
    let again = t.run(&["state", "copy", ".journey/state.sqlite", &url]);
    assert_eq!(again.code, 2, "{}", again.all());
    assert!(
        again.stderr.contains("already holds entries"),
        "{}",
        again.stderr
    );
    let back = t.run(&["state", "copy", &url, "back.sqlite"]);
    assert_eq!(back.code, 0, "{}", back.all());
    let shown = |store: &str| {
        let out = t.run(&["state", "show", "--state", store, "--output", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        (v["entries"].clone(), v["deliveries"].clone())
    };
    assert_eq!(shown("back.sqlite"), shown(".journey/state.sqlite"));
    assert_eq!(shown(&url), shown("back.sqlite"));
    // And from the copy back: every entry is there, and nothing is sent again.
    let on_back = t.run(&run_args("back.sqlite", &["--shard", "1/1"]));
    assert!(
        on_back.stdout.contains("2500 already done"),
        "{}",
        on_back.all()
    );
    assert_eq!(server.count(), 2500);
    let into_full = t.run(&["state", "copy", &url, "back.sqlite"]);
    assert_eq!(into_full.code, 2, "{}", into_full.all());
}

#[test]
fn tls_when_the_url_asks_and_an_untrusted_server_is_refused() {
    let Some(b) = Backend::postgres() else { return };
    let base = crate::support::store::database().unwrap();
    let ssl = sql(&base, "SHOW ssl");
    if ssl[0][0].as_deref() != Some("on") {
        eprintln!("the PostgreSQL server has ssl off: the TLS test did not run");
        return;
    }
    let server = TestServer::start();
    server.script(
        "/send",
        vec![Reply::status(200).delay(Duration::from_millis(400))],
    );
    let (t, url) = folder(&b, &server, 5);
    let required = format!("{url}&sslmode=require");
    let run = t.spawn(&run_args(&required, &["--concurrency", "1"]));
    wait_until("the run to send", || server.count() >= 1);
    // The server's own view of the run's two connections.
    let sessions = sql(
        &base,
        &format!(
            "SELECT s.ssl::text FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name LIKE 'journey on % pid {}'",
            run.id()
        ),
    );
    let out: Output = run.wait_with_output().unwrap().into();
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("sslmode=require"), "{}", out.stdout);
    assert_eq!(sessions.len(), 2, "a writer and a reader: {sessions:?}");
    assert!(
        sessions.iter().all(|r| r[0].as_deref() == Some("true")),
        "both encrypted: {sessions:?}"
    );
    // A CA that did not sign the server's certificate.
    let ca = rcgen::generate_simple_self_signed(vec!["elsewhere.example".into()]).unwrap();
    t.file("other-ca.pem", &ca.cert.pem());
    let verify = format!(
        "{url}&sslmode=verify-full&sslrootcert={}",
        t.path("other-ca.pem").display()
    );
    let refused = t.run(&run_args(&verify, &[]));
    assert_eq!(refused.code, 3, "{}", refused.all());
    assert!(
        refused.stderr.contains("certificate"),
        "says why: {}",
        refused.stderr
    );
    assert_eq!(server.count(), 5, "nothing sent without the store");
}

#[test]
fn the_password_in_a_store_url_is_never_shown_written_or_stored() {
    let Some(b) = Backend::postgres() else { return };
    let server = TestServer::start();
    server.script("/send", vec![Reply::status(500)]);
    let (t, url) = folder(&b, &server, 3);
    let secret = "hunter2-in-the-url";
    let with_password = url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{secret}@"),
        1,
    );
    assert_ne!(with_password, url, "the test URL names user postgres");
    let out = t.run(&run_args(
        &with_password,
        &[
            "--report",
            "r.json",
            "--log",
            "log.ndjson",
            "--output",
            "json",
        ],
    ));
    assert_eq!(out.code, 1, "{}", out.all());
    let held = t.run(&[
        "state",
        "show",
        "--state",
        &with_password,
        "--output",
        "json",
    ]);
    let bad = t.run(&[
        "state",
        "show",
        "--state",
        &format!("{with_password}&sslmode=bogus"),
    ]);
    assert_eq!(bad.code, 2);
    let mut seen = vec![out.all(), held.all(), bad.all()];
    for f in ["r.json", "log.ndjson", ".journey/dead-letter.ndjson"] {
        seen.push(t.read(f));
    }
    let schema = t.state_schema_of(&url);
    let base = crate::support::store::database().unwrap();
    for row in sql(
        &base,
        &format!(
            "SELECT coalesce(string_agg(e::text, ''), '') FROM \"{schema}\".entries e UNION ALL SELECT coalesce(string_agg(d::text, ''), '') FROM \"{schema}\".deliveries d"
        ),
    ) {
        seen.push(row.into_iter().flatten().collect());
    }
    for text in &seen {
        assert!(!text.contains(secret), "the password leaked: {text}");
        assert!(!text.contains("aHVudGVyMi"), "base64 of it leaked: {text}");
    }
    assert!(
        seen[0].contains("postgres://postgres@"),
        "the store is named without it: {}",
        seen[0]
    );
}

impl Test {
    /// The schema a store URL names.
    fn state_schema_of(&self, url: &str) -> String {
        url.split("schema=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_string()
    }
}

/// The collation of the store's key columns, as `table.column=collation` (none: the database's).
fn key_collations(base: &str, schema: &str) -> Vec<String> {
    sql(
        base,
        &format!(
            "SELECT table_name || '.' || column_name || '=' || COALESCE(collation_name, 'default')
             FROM information_schema.columns
             WHERE table_schema = '{schema}' AND table_name IN ('entries', 'deliveries')
               AND column_name IN ('key', 'entry_key', 'step')
             ORDER BY 1"
        ),
    )
    .into_iter()
    .filter_map(|r| r.into_iter().next().flatten())
    .collect()
}

#[test]
fn a_store_of_schema_version_2_is_upgraded_and_its_keys_compare_byte_by_byte() {
    let Some(b) = Backend::postgres() else { return };
    let Backend::Postgres { base, .. } = &b else {
        unreachable!()
    };
    let server = TestServer::start();
    server.script("/send", vec![Reply::status(200)]);
    let (t, url) = folder(&b, &server, 300);
    let schema = url.split("schema=").nth(1).unwrap().to_string();
    let first = t.run(&run_args(&url, &["--limit", "200"]));
    assert_eq!(first.code, 0, "{}", first.all());
    // As a journey of schema version 2 left it: keys in the database's own collation.
    sql(
        base,
        &format!(
            "ALTER TABLE \"{schema}\".entries ALTER COLUMN key TYPE TEXT COLLATE \"default\";
             ALTER TABLE \"{schema}\".deliveries ALTER COLUMN entry_key TYPE TEXT COLLATE \"default\",
               ALTER COLUMN step TYPE TEXT COLLATE \"default\";
             UPDATE \"{schema}\".meta SET value = '2' WHERE key = 'schema_version'"
        ),
    );
    assert_eq!(
        key_collations(base, &schema),
        [
            "deliveries.entry_key=default",
            "deliveries.step=default",
            "entries.key=default"
        ]
    );
    let rest = t.run(&run_args(&url, &[]));
    assert_eq!(rest.code, 0, "{}", rest.all());
    assert!(rest.stdout.contains("100 completed"), "{}", rest.stdout);
    assert!(rest.stdout.contains("200 already done"), "{}", rest.stdout);
    assert_eq!(
        key_collations(base, &schema),
        [
            "deliveries.entry_key=C",
            "deliveries.step=C",
            "entries.key=C"
        ]
    );
    let shown = t.run(&["state", "show", "--state", &url]);
    assert!(
        shown.stdout.contains("(schema version 3)"),
        "{}",
        shown.stdout
    );
    let sent = sent(&server);
    assert_eq!(sent.len(), 300, "every customer once");
    assert!(sent.values().all(|keys| keys.len() == 1), "none twice");
}

/// A TCP relay to the PostgreSQL server. [`Relay::cut`] stops passing the server's replies on
/// the connections open then and, a moment later, closes them: the server has done what it was
/// sent, and its client never hears so. Connections made after go through as before.
struct Relay {
    port: u16,
    open: std::sync::Arc<std::sync::Mutex<Vec<Carried>>>,
}

/// A connection the relay carries: both ends, and whether the server's replies still pass.
struct Carried {
    client: std::net::TcpStream,
    server: std::net::TcpStream,
    passing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    /// Relays 127.0.0.1:(a free port) to `upstream` (`host:port`).
    fn start(upstream: &str) -> Relay {
        use std::sync::atomic::AtomicBool;
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open: Arc<Mutex<Vec<Carried>>> = Arc::default();
        let carried = Arc::clone(&open);
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                let passing = Arc::new(AtomicBool::new(true));
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    None,
                );
                pipe(
                    server.try_clone().unwrap(),
                    client.try_clone().unwrap(),
                    Some(Arc::clone(&passing)),
                );
                carried.lock().unwrap().push(Carried {
                    client,
                    server,
                    passing,
                });
            }
        });
        Relay { port, open }
    }

    /// Swallows the replies on every open connection, then closes them.
    fn cut(&self) {
        let cut: Vec<Carried> = std::mem::take(&mut *self.open.lock().unwrap());
        for c in &cut {
            c.passing.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        std::thread::sleep(Duration::from_millis(300));
        for c in cut {
            let _ = c.client.shutdown(std::net::Shutdown::Both);
            let _ = c.server.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` until either ends; drops what it reads while `passing` is false.
fn pipe(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    passing: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
) {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let pass = passing
                .as_ref()
                .is_none_or(|p| p.load(std::sync::atomic::Ordering::SeqCst));
            if pass && to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

/// `url` with its `host:port` replaced by `authority`, and that `host:port`.
fn through(url: &str, authority: &str) -> (String, String) {
    let at = url.find('@').expect("a user in the URL") + 1;
    let end = at + url[at..].find('/').expect("a database in the URL");
    let upstream = url[at..end].to_string();
    (
        format!("{}{authority}{}", &url[..at], &url[end..]),
        upstream,
    )
}

#[test]
fn outcomes_committed_when_the_answer_was_lost_are_not_counted_again() {
    let Some(b) = Backend::postgres() else { return };
    let server = TestServer::start();
    server.script(
        "/send",
        vec![Reply::status(200).delay(Duration::from_millis(5))],
    );
    let (t, direct) = folder(&b, &server, 2000);
    let (_, upstream) = through(&direct, "");
    let relay = Relay::start(&upstream);
    let (url, _) = through(&direct, &format!("127.0.0.1:{}", relay.port));
    let args = run_args(&url, &["--concurrency", "8", "--state-timeout", "30s"]);
    let run = t.spawn(&args);
    wait_until("the run to be under way", || server.count() >= 300);
    // Batches go on reaching the server and are committed; their answers never come back.
    relay.cut();
    let out: Output = run.wait_with_output().unwrap().into();
    assert_eq!(out.code, 0, "{}", out.all());
    let by_customer = sent(&server);
    assert_eq!(by_customer.len(), 2000);
    assert!(by_customer.values().all(|k| k.len() == 1), "nothing twice");
    let schema = direct.split("schema=").nth(1).unwrap();
    let base = crate::support::store::database().unwrap();
    let counts = sql(
        &base,
        &format!(
            "SELECT attempts, count(*) FROM \"{schema}\".deliveries GROUP BY attempts ORDER BY attempts"
        ),
    );
    let counts: Vec<(String, String)> = counts
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    assert_eq!(
        counts,
        [("1".to_string(), "2000".to_string())],
        "each delivery took one attempt, counted once"
    );
}
