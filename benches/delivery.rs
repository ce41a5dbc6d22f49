//! Real delivery throughput against a local receiver on 127.0.0.1, in one run: a bare reqwest
//! loop (the ceiling), then `journey run` without and with the state store, as ratios.
//! `BENCH_ENTRIES` sets the size (default 5,000). `BENCH_BASELINE=/path/to/journey` also runs
//! another build in each round (alternating which goes first) and prints this build's
//! throughput as a ratio to it.

mod common;

use std::time::Instant;

const JOURNEY: &str = r#"journey: bench
trigger: { segment: "true" }
steps:
  - id: send
    webhook:
      url: "{{ env.HOOK_URL }}/hook"
      body: { id: "{{ customer.id }}", email: "{{ customer.email }}", plan: "{{ customer.attributes.plan }}" }
"#;

/// The ceiling: 32 tasks posting the same bodies with one reqwest client, no journey work.
fn bare(url: &str, n: usize) -> f64 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (client, next, url) = (client.clone(), next.clone(), format!("{url}/hook"));
                tokio::spawn(async move {
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                        let body = r#"{"id":"c1","email":"a@b.c","plan":"trial"}"#;
                        client
                            .post(&url)
                            .body(body)
                            .send()
                            .await
                            .unwrap()
                            .bytes()
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        n as f64 / start.elapsed().as_secs_f64()
    })
}

fn journey(bin: &str, dir: &std::path::Path, url: &str, n: usize, extra: &[&str]) -> f64 {
    let start = Instant::now();
    let out = std::process::Command::new(bin)
        .args([
            "run",
            "j.yaml",
            "--fixtures",
            "f.yaml",
            "--yes",
            "--quiet",
            "--concurrency",
            "32",
        ])
        .args(extra)
        .current_dir(dir)
        .env("HOOK_URL", url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let n: usize = common::setting("BENCH_ENTRIES", 5_000);
    let url = common::receiver();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("j.yaml"), JOURNEY).unwrap();
    let customers: String = (0..n)
        .map(|i| {
            format!("  - {{ id: c{i}, email: u{i}@example.com, attributes: {{ plan: trial }} }}\n")
        })
        .collect();
    std::fs::write(
        dir.path().join("f.yaml"),
        format!("customers:\n{customers}"),
    )
    .unwrap();
    let rounds: usize = common::setting("BENCH_ROUNDS", 5);
    let this = env!("CARGO_BIN_EXE_journey");
    let other = std::env::var("BENCH_BASELINE").ok();
    let ceiling = bare(&url, n);
    let (mut without, mut with) = (Vec::new(), Vec::new());
    let (mut base_without, mut base_with) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut order = vec![(this, false)];
        if let Some(o) = &other {
            order.push((o.as_str(), true));
        }
        if round % 2 == 1 {
            order.reverse();
        }
        for (bin, is_base) in order {
            let store = format!("fresh{round}{}.sqlite", if is_base { "b" } else { "" });
            let a = journey(bin, dir.path(), &url, n, &["--no-state"]);
            let b = journey(bin, dir.path(), &url, n, &["--state", &store]);
            let (x, y) = if is_base {
                (&mut base_without, &mut base_with)
            } else {
                (&mut without, &mut with)
            };
            x.push(a);
            y.push(b);
        }
    }
    let ratios = |a: &[f64], b: &[f64]| {
        let each: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
        let text: Vec<String> = each.iter().map(|r| format!("{r:.2}")).collect();
        (median(each), text.join(" "))
    };
    let ab = other
        .as_ref()
        .map(|_| (ratios(&without, &base_without), ratios(&with, &base_with)));
    let (without, with) = (median(without), median(with));
    println!(
        "1-step journey, {n} entries, against one local receiver (same machine, same run; medians of {rounds} alternating rounds)"
    );
    println!("  bare reqwest loop, 32 tasks (ceiling)   {ceiling:>9.0} req/s      1.00x");
    println!(
        "  journey run --no-state                 {without:>9.0} entries/s  {:.2}x",
        without / ceiling
    );
    println!(
        "  journey run with the state store       {with:>9.0} entries/s  {:.2}x",
        with / ceiling
    );
    println!(
        "  the store keeps {:.0}% of the throughput (target: more than 67%)",
        100.0 * with / without
    );
    if let (Some(o), Some((ab_without, ab_with))) = (other, ab) {
        println!("this build against BENCH_BASELINE={o}, round by round:");
        println!(
            "  --no-state        {:.2}x ({})",
            ab_without.0, ab_without.1
        );
        println!("  with the store    {:.2}x ({})", ab_with.0, ab_with.1);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
