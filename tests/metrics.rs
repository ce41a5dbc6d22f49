//! `--metrics FILE.prom`: a real run against a recording server leaves the Prometheus text
//! node_exporter's textfile collector reads. It is parsed with a Prometheus parser, agrees with
//! the JSON report, and passes `promtool check metrics` where Debian's `prometheus` is installed.

use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value};

use crate::support::server::{Reply, TestServer};
use crate::support::{against, have};

const JOURNEY: &str = r#"journey: nightly
trigger: { segment: "true" }
defaults: { retry: { attempts: 2, backoff: 10ms }, timeout: 300ms }
steps:
  - id: send
    webhook: { url: "{{ env.HOOK_URL }}/{{ customer.path }}", body: { id: "{{ customer.id }}" } }
"#;

const CUSTOMERS: &str = "customers:\n  - { id: c1, path: ok }\n  - { id: c2, path: ok }\n  - { id: c3, path: flaky }\n  - { id: c4, path: slow }\n";

fn scrape(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text")
}

/// The value of the one sample of `metric` whose labels include `labels`.
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let hits: Vec<&Sample> = s
        .samples
        .iter()
        .filter(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(hits.len(), 1, "{metric} {labels:?}: {hits:?}");
    match &hits[0].value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{metric}: {other:?}"),
    }
}

#[test]
fn a_real_run_leaves_prometheus_text_that_agrees_with_its_report() {
    let server = TestServer::start();
    server.script("/ok", vec![Reply::status(200)]);
    server.script("/flaky", vec![Reply::status(503), Reply::status(200)]);
    server.script(
        "/slow",
        vec![Reply::status(200).delay(Duration::from_secs(2))],
    );
    let t = against(&server, JOURNEY, CUSTOMERS);
    let out = t.run(&[
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--yes",
        "--no-state",
        "--report",
        "r.json",
        "--metrics",
        "m.prom",
    ]);
    assert_eq!(out.code, 1, "c4 times out twice: {}", out.all());
    let text = t.read("m.prom");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(t.path("m.prom"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !t.path("m.prom.tmp").exists(),
        "written beside, then renamed"
    );
    let s = scrape(&text);
    let step = [("journey", "nightly"), ("step", "send")];
    fn with<'a>(
        step: [(&'a str, &'a str); 2],
        extra: (&'a str, &'a str),
    ) -> [(&'a str, &'a str); 3] {
        [step[0], step[1], extra]
    }
    assert_eq!(
        value(
            &s,
            "journey_deliveries_total",
            &with(step, ("outcome", "ok"))
        ),
        3.0
    );
    assert_eq!(
        value(
            &s,
            "journey_deliveries_total",
            &with(step, ("outcome", "failed"))
        ),
        1.0
    );
    assert_eq!(
        value(&s, "journey_attempts_total", &with(step, ("result", "200"))),
        3.0
    );
    assert_eq!(
        value(&s, "journey_attempts_total", &with(step, ("result", "503"))),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "journey_attempts_total",
            &with(step, ("result", "timeout"))
        ),
        2.0
    );
    let entries = |o| {
        value(
            &s,
            "journey_entries_total",
            &[("journey", "nightly"), ("outcome", o)],
        )
    };
    assert_eq!((entries("completed"), entries("failed")), (3.0, 1.0));
    assert_eq!(
        value(&s, "journey_last_run_exit_code", &[("mode", "run")]),
        1.0
    );
    let ended = value(&s, "journey_last_run_timestamp_seconds", &[("mode", "run")]);
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - 120.0..=now + 1.0).contains(&ended), "{ended}");
    // The histogram counts the 4 attempts that got a response, as the report's percentiles do.
    let histogram = s
        .samples
        .iter()
        .find(|x| x.metric == "journey_delivery_duration_seconds")
        .expect("a histogram");
    let Value::Histogram(buckets) = &histogram.value else {
        panic!("{histogram:?}")
    };
    let inf = buckets.iter().find(|b| b.less_than.is_infinite()).unwrap();
    assert_eq!(inf.count, 4.0, "{buckets:?}");
    let report: serde_json::Value = serde_json::from_str(&t.read("r.json")).unwrap();
    assert_eq!(report["steps"][0]["attempts"], 6);
    assert_eq!(report["totals"]["timeout_rate"], 100.0 * 2.0 / 6.0);
    if have("promtool", "prometheus", "the promtool check of --metrics") {
        let check = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(t.path("m.prom")).unwrap())
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
    }
}
