//! Dry-run throughput over generated customers, as a ratio against a baseline measured in the same run.
//!
//! Baseline: the same three JSON bodies rendered straight with minijinja from each customer (the
//! template work alone). Then the library's dry-run (triggers, context, requests, mocks, retries,
//! report) and the built binary end to end (process start, YAML parse, table). `BENCH_CUSTOMERS`
//! sets the size (default 10,000).

mod common;

use std::sync::Arc;
use std::time::Instant;

use journey::execute::dry_run::DryRun;
use journey::execute::entries::candidates;
use journey::execute::runner::{self, RunSettings};
use journey::render::EnvVars;
use journey::report::{Mode, Tally};

const JOURNEY: &str = r#"journey: bench
trigger: { segment: "customer.attributes.plan == 'trial'" }
defaults: { headers: { X-Source: journey } }
steps:
  - id: crm
    webhook:
      method: PATCH
      url: "{{ env.CRM_URL }}/contacts/{{ customer.id }}"
      auth: { bearer: "{{ secret.CRM_TOKEN }}" }
      body: { stage: trial, ltv: "{{ customer.attributes.ltv }}", plan: "{{ customer.attributes.plan }}" }
  - id: email
    webhook:
      url: "{{ env.ESP_URL }}/send"
      body: { to: "{{ customer.email | normalize_email }}", name: "Hi {{ customer.attributes.first_name }}", template: welcome }
  - id: score
    webhook:
      url: "{{ env.SCORING_URL }}/score"
      body: { id: "{{ customer.id }}", ltv: "{{ customer.attributes.ltv }}", hashed: "{{ customer.email | normalize_email | sha256 }}" }
"#;

fn customers(n: usize) -> String {
    let mut out = String::from("customers:\n");
    for i in 0..n {
        out.push_str(&format!(
            "  - {{ id: c{i}, email: \" User{i}@Example.com \", consent: {{ email: true }}, attributes: {{ first_name: U{i}, plan: trial, ltv: {} }} }}\n",
            i % 1000
        ));
    }
    out
}

fn baseline(records: &[serde_json::Value]) -> f64 {
    let env = journey::render::engine::environment();
    let templates = [
        r#"{"stage":"trial","ltv":{{ customer.attributes.ltv }},"plan":"{{ customer.attributes.plan }}"}"#,
        r#"{"to":"{{ customer.email | normalize_email }}","name":"Hi {{ customer.attributes.first_name }}","template":"welcome"}"#,
        r#"{"id":"{{ customer.id }}","ltv":{{ customer.attributes.ltv }},"hashed":"{{ customer.email | normalize_email | sha256 }}"}"#,
    ];
    let compiled: Vec<_> = templates
        .iter()
        .map(|t| env.template_from_str(t).unwrap())
        .collect();
    let start = Instant::now();
    let mut bytes = 0;
    for r in records {
        let ctx = minijinja::context! { customer => journey::render::value_of(r) };
        for t in &compiled {
            bytes += t.render(&ctx).unwrap().len();
        }
    }
    assert!(bytes > 0);
    records.len() as f64 / start.elapsed().as_secs_f64()
}

fn library(dir: &std::path::Path) -> (f64, u64) {
    let loaded = journey::journey::load(&[dir.join("j.yaml")], false);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let fixtures = Arc::new(journey::fixture::load(&[dir.join("f.yaml")]).unwrap());
    let env = EnvVars {
        values: Arc::new(Default::default()),
        placeholders: true,
    };
    let now = chrono::Utc::now();
    let settings = RunSettings::dry(now, env.clone(), 32, 0, false);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let start = Instant::now();
    let list = candidates(&loaded.journeys, &fixtures, &env, now);
    let mut tally = Tally::new(&loaded.journeys, Mode::DryRun, String::new(), String::new());
    runtime.block_on(runner::run(
        &loaded.journeys,
        list,
        &DryRun::new(fixtures),
        &settings,
        |r| {
            tally.add(&r);
            Some(r)
        },
    ));
    let report = tally.finish();
    (
        report.totals.entries as f64 / start.elapsed().as_secs_f64(),
        report.totals.completed,
    )
}

fn binary(dir: &std::path::Path, n: usize) -> f64 {
    let start = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_journey"))
        .args([
            "run",
            "--dry-run",
            "j.yaml",
            "--fixtures",
            "f.yaml",
            "--quiet",
        ])
        .current_dir(dir)
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
    let n: usize = common::setting("BENCH_CUSTOMERS", 10_000);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("j.yaml"), JOURNEY).unwrap();
    std::fs::write(dir.path().join("f.yaml"), customers(n)).unwrap();
    let records: Vec<serde_json::Value> = journey::fixture::load(&[dir.path().join("f.yaml")])
        .unwrap()
        .customers
        .iter()
        .map(|c| (*c.record).clone())
        .collect();
    let base = baseline(&records);
    let (lib, completed) = library(dir.path());
    assert_eq!(completed as usize, n);
    let bin = binary(dir.path(), n);
    println!(
        "dry-run of a 3-step journey over {n} customers (one process, same machine, same run)"
    );
    println!("  baseline: minijinja renders the 3 bodies   {base:>10.0} customers/s  1.00x");
    println!(
        "  journey library dry-run                  {lib:>10.0} entries/s    {:.2}x",
        lib / base
    );
    println!(
        "  journey binary end to end (YAML parse)   {bin:>10.0} entries/s    {:.2}x",
        bin / base
    );
}
