//! Large batches, in one run on this machine, against one fast local receiver on 127.0.0.1
//! (nginx `return 200` when it is installed, the receiver that leaves the client the most CPU;
//! else the bench's own axum receiver, with a warning):
//! (1) `wrk` (a standard load generator, before and after each round; skipped when it is not
//! installed), (2) a 1-step journey over 200,000 streamed NDJSON customers without and with the
//! SQLite state store and, when `JOURNEY_TEST_POSTGRES` names a database, with the PostgreSQL
//! store (a schema of its own each round, dropped after), (3) a dry-run of 1,000,000 customers through a 3-step journey with 10-field
//! bodies. Prints entries/s and the ratio to the load generator (medians of `BENCH_ROUNDS`
//! rounds, 3 by default) and peak memory (GNU time). `BENCH_SCALE=0.1` shrinks every size.
//! `BENCH_BASELINE=/path/to/journey` also runs another build in each round, mode by mode (each
//! mode runs for both builds back to back, alternating which goes first), and prints this build's
//! throughput as a ratio to it: the A/B of a change, in one run on the same machine.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Requests per second by `wrk -t1 -c32 -d5s`, or `None` without wrk.
fn wrk(url: &str) -> Option<f64> {
    let out = Command::new("wrk")
        .args(["-t1", "-c32", "-d5s", &format!("{url}/hook")])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("Requests/sec:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs `BIN ARGS` (a `journey` build) under GNU time: entries per second and peak memory in MB.
fn journey(bin: &str, dir: &Path, url: &str, n: usize, args: &[&str]) -> (f64, Option<f64>) {
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o", "peak.txt", bin])
        .args(args)
        .args(["--yes", "--quiet", "--concurrency", "32"])
        .current_dir(dir)
        .env("HOOK_URL", url)
        .output()
        .expect("GNU time at /usr/bin/time");
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peak = std::fs::read_to_string(dir.join("peak.txt"))
        .ok()
        .and_then(|t| t.trim().lines().last()?.parse::<f64>().ok());
    (n as f64 / elapsed, peak.map(|kb| kb / 1024.0))
}

fn write_lines(path: &Path, n: usize, line: impl Fn(usize) -> String) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        writeln!(f, "{}", line(i)).unwrap();
    }
}

const ONE_STEP: &str = r#"journey: one
trigger: { segment: "true" }
steps:
  - id: send
    webhook: { url: "{{ env.HOOK_URL }}/hook", body: { id: "{{ customer.id }}", email: "{{ customer.email }}" } }
"#;

const THREE_STEPS: &str = r#"journey: three
trigger: { segment: "true" }
steps:
  - id: crm
    webhook: { url: "{{ env.HOOK_URL }}/crm", body: { id: "{{ customer.id }}", email: "{{ customer.email | normalize_email }}", plan: "{{ customer.attributes.plan }}", ltv: "{{ customer.attributes.ltv }}", city: "{{ customer.attributes.city }}", a: 1, b: true, c: "x", d: "{{ customer.attributes.first_name }}", e: "{{ now }}" } }
  - id: email
    webhook: { url: "{{ env.HOOK_URL }}/email", body: { to: "{{ customer.email | normalize_email }}", name: "Hi {{ customer.attributes.first_name }}", plan: "{{ customer.attributes.plan }}", t: welcome, a: 1, b: 2, c: 3, d: 4, e: 5, f: 6 } }
  - id: score
    webhook: { url: "{{ env.HOOK_URL }}/score", body: { id: "{{ customer.id }}", ltv: "{{ customer.attributes.ltv }}", h: "{{ customer.email | sha256 }}", a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7 } }
"#;

fn customer(i: usize) -> String {
    format!(
        r#"{{"id":"c{i}","email":"User{i}@Example.com","attributes":{{"plan":"trial","ltv":{},"city":"Lyon","first_name":"U{i}"}}}}"#,
        i % 997
    )
}

/// One journey's figures in a round: entries per second and peak MB.
type Figures = (f64, Option<f64>);

/// Picks one journey's figures out of a round.
type Pick = fn(&Round) -> Figures;

/// One round's figures: entries per second and peak MB, for each mode.
struct Round {
    without: Figures,
    with: Figures,
    /// With the PostgreSQL store (when `JOURNEY_TEST_POSTGRES` is set; the baseline too).
    pg: Option<Figures>,
    dry: Figures,
}

/// The real run of the 1-step journey over the NDJSON customers, with `store` (its flags).
fn real(bin: &str, dir: &Path, url: &str, n: usize, store: &[&str]) -> Figures {
    let run = ["run", "one.yaml", "--fixtures", "real.ndjson"];
    journey(bin, dir, url, n, &[&run[..], store].concat())
}

/// The real run with a fresh PostgreSQL store, dropped after.
fn with_postgres(bin: &str, dir: &Path, url: &str, real_n: usize, base: &str) -> Figures {
    let schema = format!("bench_{}_{}", std::process::id(), fastrand::u32(..));
    let store = format!("{base}?schema={schema}");
    let figures = real(bin, dir, url, real_n, &["--state", &store]);
    common::sql(base, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    figures
}

/// One round of each build in `bins`, mode by mode: each mode runs for every build in turn, so
/// that the runs compared are seconds apart, not a whole round (this machine drifts by a quarter
/// between minutes).
fn round(bins: &[&str], dir: &Path, url: &str, n: (usize, usize), pg: Option<&str>) -> Vec<Round> {
    let (real_n, dry_n) = n;
    let each = |run: &dyn Fn(&str) -> Figures| bins.iter().map(|b| run(b)).collect::<Vec<_>>();
    let pgs = pg.map(|base| each(&|b| with_postgres(b, dir, url, real_n, base)));
    let without = each(&|b| real(b, dir, url, real_n, &["--no-state"]));
    let with = each(&|b| {
        let _ = std::fs::remove_file(dir.join("s.sqlite"));
        let _ = std::fs::remove_file(dir.join("s.sqlite.lock"));
        real(b, dir, url, real_n, &["--state", "s.sqlite"])
    });
    let dry = each(&|b| {
        let run = ["run", "--dry-run", "three.yaml", "--fixtures", "dry.ndjson"];
        journey(b, dir, url, dry_n, &run)
    });
    (0..bins.len())
        .map(|i| Round {
            pg: pgs.as_ref().map(|p| p[i]),
            without: without[i],
            with: with[i],
            dry: dry[i],
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

fn main() {
    let scale: f64 = common::setting("BENCH_SCALE", 1.0);
    let rounds: usize = common::setting("BENCH_ROUNDS", 3).max(1);
    let (real_n, dry_n) = ((200_000.0 * scale) as usize, (1_000_000.0 * scale) as usize);
    let receiver = common::fastest_receiver();
    let url = receiver.url.clone();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one.yaml"), ONE_STEP).unwrap();
    std::fs::write(dir.path().join("three.yaml"), THREE_STEPS).unwrap();
    write_lines(&dir.path().join("real.ndjson"), real_n, customer);
    write_lines(&dir.path().join("dry.ndjson"), dry_n, customer);
    // This machine's speed drifts by a quarter between minutes: wrk runs before and after each
    // round, each round is compared with the mean of the two, and the medians are reported.
    let this = env!("CARGO_BIN_EXE_journey");
    let other = std::env::var("BENCH_BASELINE").ok();
    let pg = std::env::var("JOURNEY_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty());
    let pg = pg.as_deref();
    let mut loads = vec![wrk(&url)];
    let mut measured = Vec::new();
    let mut base = Vec::new();
    for i in 0..rounds {
        let (d, n) = (dir.path(), (real_n, dry_n));
        match &other {
            Some(o) if i % 2 == 1 => {
                let mut r = round(&[o, this], d, &url, n, pg).into_iter();
                base.extend(r.next());
                measured.extend(r.next());
            }
            Some(o) => {
                let mut r = round(&[this, o], d, &url, n, pg).into_iter();
                measured.extend(r.next());
                base.extend(r.next());
            }
            None => measured.extend(round(&[this], d, &url, n, pg)),
        }
        loads.push(wrk(&url));
    }
    let baseline = |i: usize| match (loads[i], loads[i + 1]) {
        (Some(b), Some(a)) => Some((a + b) / 2.0),
        (b, a) => b.or(a),
    };
    let load = loads.iter().flatten().copied().collect::<Vec<_>>();
    let load = (!load.is_empty()).then(|| median(load));
    let ratio = |pick: Pick| -> String {
        let ratios: Vec<f64> = (0..rounds)
            .filter_map(|i| baseline(i).map(|l| pick(&measured[i]).0 / l))
            .collect();
        if ratios.is_empty() {
            return "wrk not installed".into();
        }
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        format!("{:.2}x of wrk ({})", median(ratios.clone()), each.join(" "))
    };
    let rate = |pick: Pick| median(measured.iter().map(|r| pick(r).0).collect());
    let peak = |pick: Pick| {
        measured
            .iter()
            .filter_map(|r| pick(r).1)
            .reduce(f64::max)
            .map(|m| format!("{m:.0} MB"))
            .unwrap_or_else(|| "n/a".into())
    };
    println!(
        "large batches against one local receiver, {} (same machine, same run; medians of {rounds} rounds)",
        receiver.kind
    );
    match load {
        Some(l) => println!(
            "  wrk -t1 -c32 (load generator)                    {l:>9.0} req/s      1.00x  (before and after each round: {})",
            loads
                .iter()
                .map(|l| l.map_or("-".into(), |l| format!("{:.0}k", l / 1000.0)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        None => println!("  wrk: not installed (apt-get install wrk); ratios are omitted"),
    }
    println!(
        "  real run, {real_n} NDJSON, --no-state        {:>9.0} entries/s  {}  peak {}",
        rate(|r| r.without),
        ratio(|r| r.without),
        peak(|r| r.without)
    );
    println!(
        "  real run, {real_n} NDJSON, state store        {:>9.0} entries/s  {}  peak {}",
        rate(|r| r.with),
        ratio(|r| r.with),
        peak(|r| r.with)
    );
    if pg.is_some() {
        let pg_of = |r: &Round| r.pg.unwrap_or((0.0, None));
        let of_sqlite = median(measured.iter().map(|r| pg_of(r).0 / r.with.0).collect());
        println!(
            "  real run, {real_n} NDJSON, PostgreSQL store   {:>9.0} entries/s  {}  peak {}  ({of_sqlite:.2}x of the SQLite store)",
            rate(pg_of),
            ratio(pg_of),
            peak(pg_of)
        );
    } else {
        println!("  PostgreSQL store: JOURNEY_TEST_POSTGRES is not set, not measured");
    }
    println!(
        "  dry-run, {dry_n} NDJSON, 3 steps x 10 fields {:>9.0} entries/s  peak {}",
        rate(|r| r.dry),
        peak(|r| r.dry)
    );
    println!(
        "  targets: real >= 0.50x (no store) / 0.35x (SQLite) of wrk; PostgreSQL >= 0.60x of SQLite; dry-run >= 250000/s; peak < 100 MB"
    );
    if let Some(o) = &other {
        println!("this build against BENCH_BASELINE={o}, round by round:");
        let mut modes: Vec<(&str, Pick)> = vec![
            ("real run, --no-state", |r| r.without),
            ("real run, state store", |r| r.with),
            ("dry-run, 3 steps", |r| r.dry),
        ];
        if pg.is_some() {
            modes.push(("real run, PostgreSQL", |r| r.pg.unwrap_or((0.0, None))));
        }
        for (name, pick) in modes {
            let ratios: Vec<f64> = measured
                .iter()
                .zip(&base)
                .map(|(m, b)| pick(m).0 / pick(b).0)
                .collect();
            let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
            println!(
                "  {name:<24} {:.2}x ({})  baseline {:.0} entries/s",
                median(ratios.clone()),
                each.join(" "),
                median(base.iter().map(|b| pick(b).0).collect())
            );
        }
    }
}
