//! A partner's rate limit holds across hosts: processes running shards of one export divide
//! it, statically (1/N each) or, through a shared PostgreSQL store, among those running now;
//! a `429` with `Retry-After` heard by one pauses them all.

use std::time::{Duration, Instant};

use crate::support::server::{Recorded, Reply, TestServer};
use crate::support::store::Backend;
use crate::support::{Output, Test, in_shard_fast};

/// 40 requests a second, for the whole run.
fn journey(share: &str) -> String {
    format!(
        "journey: j\ntrigger: {{ segment: \"true\" }}\ndefaults: {{ rate_limit: 40/s{share} }}\nsteps:\n  - id: send\n    webhook: {{ url: \"{{{{ env.HOOK_URL }}}}/send\", body: {{ id: \"{{{{ customer.id }}}}\" }} }}\n"
    )
}

/// `n` customers of shard `k` of `shards`, as NDJSON.
fn shard_export(k: u64, shards: u64, n: usize) -> String {
    (0..)
        .map(|i| format!("c{i:05}"))
        .filter(|id| in_shard_fast(id, k, shards))
        .take(n)
        .map(|id| format!("{{\"customer\": {{\"id\": \"{id}\"}}}}\n"))
        .collect()
}

/// The most requests that arrived within any one second.
fn busiest_second(requests: &[Recorded]) -> usize {
    let mut at: Vec<Instant> = requests.iter().map(|r| r.at).collect();
    at.sort();
    let mut most = 0;
    let mut first = 0;
    for (i, t) in at.iter().enumerate() {
        while *t - at[first] >= Duration::from_secs(1) {
            first += 1;
        }
        most = most.max(i + 1 - first);
    }
    most
}

fn run_shards(t: &Test, shards: u64, extra: &[&str]) -> Vec<Output> {
    let children: Vec<_> = (1..=shards)
        .map(|k| {
            let shard = format!("{k}/{shards}");
            let file = format!("shard{k}.ndjson");
            let mut args = vec![
                "run",
                "j.yaml",
                "--fixtures",
                &file,
                "--yes",
                "--shard",
                &shard,
                "--report",
            ];
            let report = format!("r{k}.json");
            args.push(&report);
            args.extend_from_slice(extra);
            t.spawn(&args)
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().into())
        .collect()
}

#[test]
fn static_shares_keep_two_and_three_hosts_under_the_partners_limit() {
    for shards in [2u64, 3] {
        let server = TestServer::start();
        let t = Test::new().env("HOOK_URL", &server.url);
        t.file("j.yaml", &journey(""));
        for k in 1..=shards {
            t.file(&format!("shard{k}.ndjson"), &shard_export(k, shards, 40));
        }
        let started = Instant::now();
        let outs = run_shards(&t, shards, &["--no-state"]);
        for out in &outs {
            assert_eq!(out.code, 0, "{}", out.all());
        }
        let requests = server.requests_to("/send");
        assert_eq!(requests.len(), 40 * shards as usize);
        let busiest = busiest_second(&requests);
        assert!(
            busiest <= 44,
            "{shards} hosts at 1/{shards} each stay within 40/s (a 10% tolerance): {busiest} in one second"
        );
        assert!(
            started.elapsed() >= Duration::from_secs_f64(40.0 * shards as f64 / 40.0 - 1.2),
            "the limit is the whole run's, not each host's"
        );
        let share = 40.0 / shards as f64;
        let share = format!("{}", (share * 10.0).round() / 10.0);
        let line = format!(
            "rate: this host's share: j/send {share}/s of 40/s (1 of {shards} shards, static)"
        );
        assert!(outs[0].stdout.contains(&line), "{}", outs[0].stdout);
        let report: serde_json::Value = serde_json::from_str(&t.read("r1.json")).unwrap();
        assert_eq!(report["rate_shares"][0]["mode"], "static");
        assert_eq!(report["rate_shares"][0]["hosts"], shards);
    }
}

#[test]
fn dynamic_shares_give_a_finished_hosts_share_to_the_one_still_running() {
    let Some(b) = Backend::postgres() else { return };
    let server = TestServer::start();
    let t = b.test().env("HOOK_URL", &server.url);
    t.file("j.yaml", &journey(", rate_share: dynamic"));
    // Host 1 has little to do and ends early; host 2 goes on alone.
    t.file("shard1.ndjson", &shard_export(1, 2, 20));
    t.file("shard2.ndjson", &shard_export(2, 2, 160));
    let outs = run_shards(&t, 2, &[]);
    for out in &outs {
        assert_eq!(out.code, 0, "{}", out.all());
    }
    let requests = server.requests_to("/send");
    assert_eq!(requests.len(), 180);
    assert!(
        busiest_second(&requests) <= 46,
        "never over the limit (15% tolerance while shares change): {}",
        busiest_second(&requests)
    );
    // Once host 1 is done, host 2 sends at the whole limit: its last 80 requests took about 2 s.
    let mut last: Vec<Instant> = requests.iter().map(|r| r.at).collect();
    last.sort();
    let tail = last[last.len() - 1] - last[last.len() - 81];
    assert!(
        tail < Duration::from_secs_f64(3.5),
        "host 2 rose to the whole limit: its last 80 requests took {tail:?} (4 s at its half)"
    );
    let report: serde_json::Value = serde_json::from_str(&t.read("r2.json")).unwrap();
    let share = &report["rate_shares"][0];
    assert_eq!(share["mode"], "dynamic", "{share}");
    assert_eq!(share["share_per_second_max"], 40.0, "{share}");
    assert!(
        share["share_per_second_min"].as_f64().unwrap() <= 20.0,
        "{share}"
    );
    assert!(
        outs[1]
            .stdout
            .contains("/s of 40/s (divided among the hosts running, dynamic)"),
        "{}",
        outs[1].stdout
    );
}

#[test]
fn a_429_with_retry_after_heard_by_one_host_pauses_both() {
    let Some(b) = Backend::postgres() else { return };
    let server = TestServer::start();
    // The 30th request is told to wait 4 s; every other is answered at once.
    let mut replies = vec![Reply::status(200); 29];
    replies.push(Reply::status(429).header("Retry-After", "4"));
    replies.push(Reply::status(200));
    server.script("/send", replies);
    let t = b.test().env("HOOK_URL", &server.url);
    t.file("j.yaml", &journey(""));
    t.file("shard1.ndjson", &shard_export(1, 2, 100));
    t.file("shard2.ndjson", &shard_export(2, 2, 100));
    let outs = run_shards(&t, 2, &["--concurrency", "2"]);
    for out in &outs {
        assert_eq!(out.code, 0, "{}", out.all());
    }
    let requests = server.requests_to("/send");
    let mut at: Vec<Instant> = requests.iter().map(|r| r.at).collect();
    at.sort();
    let told = at[29];
    // The other host hears of it within a second (two half-second renewals); then neither
    // sends until the pause ends.
    let quiet: Vec<_> = at
        .iter()
        .filter(|a| {
            **a > told + Duration::from_millis(1500) && **a < told + Duration::from_millis(3500)
        })
        .collect();
    // On failure, when each host sent (shard 1 `true`, shard 2 `false`).
    let mut sorted = requests.clone();
    sorted.sort_by_key(|r| r.at);
    let timeline: Vec<String> = sorted
        .iter()
        .map(|r| {
            let id = r.json()["id"].as_str().unwrap().to_string();
            let shard1 = in_shard_fast(&id, 1, 2);
            format!("{:?} {id} {shard1}", r.at - at[0])
        })
        .collect();
    assert!(
        quiet.is_empty(),
        "both hosts paused: {} requests from 1.5 s to 3.5 s after the 429\n{timeline:#?}",
        quiet.len()
    );
    assert_eq!(
        requests.len(),
        201,
        "the paused delivery was sent again once"
    );
}

#[test]
fn a_pause_longer_than_max_backoff_defers_the_rest_instead_of_holding_up_the_run() {
    let Some(b) = Backend::postgres() else { return };
    let server = TestServer::start();
    // The first request is told to wait 10 minutes (past the default max_backoff of 30 s):
    // that delivery is deferred to the next run, and so is every other to the same partner
    // while the pause lasts, without a request; the run does not wait out the pause.
    server.script(
        "/send",
        vec![Reply::status(429).header("Retry-After", "600")],
    );
    let t = b.test().env("HOOK_URL", &server.url);
    t.file("j.yaml", &journey_without_limit());
    t.file("all.ndjson", &shard_export(1, 1, 5));
    let args = [
        "run",
        "j.yaml",
        "--fixtures",
        "all.ndjson",
        "--yes",
        "--concurrency",
        "1",
        "--max-duration",
        "20s",
    ];
    let out = t.run(&args);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("5 waiting"), "{}", out.all());
    assert_eq!(server.requests_to("/send").len(), 1, "{}", out.all());
    // The next run, still within the pause the partner asked every host for, sends nothing.
    let again = t.run(&args);
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(server.requests_to("/send").len(), 1, "{}", again.all());
}

fn journey_without_limit() -> String {
    "journey: j\ntrigger: { segment: \"true\" }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/send\", body: { id: \"{{ customer.id }}\" } }\n".into()
}
