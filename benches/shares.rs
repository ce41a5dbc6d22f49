//! A partner's limit held across hosts: a 1-step journey with `rate_limit: 2000/s` over 20,000
//! customers, run as 1, 2 and 3 processes (`--shard K/N`), with static shares and, when
//! `JOURNEY_TEST_POSTGRES` names a database, dynamic shares through a PostgreSQL store. Prints
//! each run's wall time against the ideal (20,000 / 2000 = 10 s) and the most requests the
//! receiver saw in any one second (the limit is 2000). `BENCH_SCALE=0.1` shrinks the export.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A receiver that answers `{}` and keeps each request's arrival time.
fn counting_receiver() -> (String, Arc<Mutex<Vec<Instant>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    let app = axum::Router::new().fallback(move || {
        let kept = Arc::clone(&kept);
        async move {
            kept.lock().unwrap().push(Instant::now());
            "{}"
        }
    });
    (common::serve(app), seen)
}

/// The most arrivals within any one second.
fn busiest_second(mut at: Vec<Instant>) -> usize {
    at.sort();
    let (mut most, mut first) = (0, 0);
    for (i, t) in at.iter().enumerate() {
        while *t - at[first] >= Duration::from_secs(1) {
            first += 1;
        }
        most = most.max(i + 1 - first);
    }
    most
}

/// Runs `n` processes, shards 1/n..n/n, at once; the wall time of the slowest.
fn run(dir: &std::path::Path, url: &str, n: u64, state: &[String]) -> Duration {
    let started = Instant::now();
    let children: Vec<_> = (1..=n)
        .map(|k| {
            std::process::Command::new(env!("CARGO_BIN_EXE_journey"))
                .args([
                    "run",
                    "j.yaml",
                    "--fixtures",
                    "export.ndjson",
                    "--yes",
                    "--quiet",
                ])
                .args(["--shard", &format!("{k}/{n}")])
                .args(state)
                .current_dir(dir)
                .env("HOOK_URL", url)
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("journey")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    started.elapsed()
}

fn main() {
    let scale: f64 = common::setting("BENCH_SCALE", 1.0);
    let customers = (20_000.0 * scale) as usize;
    let dir = tempfile::tempdir().unwrap();
    let export: String = (0..customers)
        .map(|i| format!("{{\"customer\": {{\"id\": \"c{i}\"}}}}\n"))
        .collect();
    std::fs::write(dir.path().join("export.ndjson"), export).unwrap();
    let pg = std::env::var("JOURNEY_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty());
    let ideal = customers as f64 / 2000.0;
    println!(
        "rate_limit 2000/s over {customers} customers, N processes with --shard K/N (ideal {ideal:.1} s; the most in any second should stay near 2000)"
    );
    for mode in ["static", "dynamic"] {
        if mode == "dynamic" && pg.is_none() {
            println!("  dynamic: JOURNEY_TEST_POSTGRES is not set, not measured");
            continue;
        }
        let share = if mode == "dynamic" {
            ", rate_share: dynamic"
        } else {
            ""
        };
        std::fs::write(
            dir.path().join("j.yaml"),
            format!(
                "journey: j\ntrigger: {{ segment: \"true\" }}\ndefaults: {{ rate_limit: 2000/s{share} }}\nsteps:\n  - id: send\n    webhook: {{ url: \"{{{{ env.HOOK_URL }}}}/send\", body: {{ id: \"{{{{ customer.id }}}}\" }} }}\n"
            ),
        )
        .unwrap();
        for n in 1..=3u64 {
            let (url, seen) = counting_receiver();
            let state = match (&pg, mode) {
                (Some(base), "dynamic") => vec![
                    "--state".to_string(),
                    format!("{base}?schema=bench_shares_{}_{n}", std::process::id()),
                ],
                _ => vec!["--no-state".to_string()],
            };
            let wall = run(dir.path(), &url, n, &state);
            if let (Some(base), "dynamic") = (&pg, mode) {
                let schema = format!("bench_shares_{}_{n}", std::process::id());
                common::sql(base, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
            let at = seen.lock().unwrap().clone();
            assert_eq!(at.len(), customers, "every customer once");
            println!(
                "  {mode:<7} {n} process{}  {:>6.2} s  ({:.2}x the ideal)  most in one second: {}",
                if n == 1 { "  " } else { "es" },
                wall.as_secs_f64(),
                wall.as_secs_f64() / ideal,
                busiest_second(at)
            );
        }
    }
}
