//! Large batches: NDJSON and CSV streams (and .gz), malformed records reported and skipped.

use std::io::Write;

use std::time::Duration;

use crate::support::server::{Reply, TestServer};
use crate::support::{Test, terminate};

const JOURNEYS: &str = r#"journey: cart
trigger: { event: cart_abandoned }
steps:
  - id: send
    webhook: { url: "{{ env.HOOK_URL }}/cart", body: { c: "{{ customer.id }}", v: "{{ event.properties.cart_value }}", zip: "{{ (customer.attributes | default({})).zip | default('none', true) }}" } }
"#;

fn gz(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

fn bodies(out: &str) -> Vec<serde_json::Value> {
    out.split("\n{")
        .skip(1)
        .map(|b| {
            serde_json::Deserializer::from_str(&format!("{{{b}"))
                .into_iter()
                .next()
                .unwrap()
                .unwrap()
        })
        .collect()
}

#[test]
fn ndjson_lines_bad_records_are_reported_and_skipped() {
    let t = Test::new();
    t.file("j.yaml", JOURNEYS);
    t.file(
        "batch.ndjson",
        concat!(
            "{\"customer\": {\"id\": \"c1\"}, \"event\": {\"name\": \"cart_abandoned\", \"at\": \"2026-11-20T10:00:00Z\", \"properties\": {\"cart_value\": 12.5}}}\n",
            "{\"id\": \"c2\", \"email\": \"no-event@example.com\"}\n",
            "this is not json\n",
            "\n",
            "{\"customer\": {\"email\": \"no-id@example.com\"}}\n",
            "{\"customer\": {\"id\": 42}, \"event\": {\"name\": \"cart_abandoned\", \"at\": \"2026-11-20T11:00:00Z\", \"properties\": {\"cart_value\": 7}}}\n",
        ),
    );
    let out = t.run(&[
        "run",
        "--dry-run",
        "j.yaml",
        "--fixtures",
        "batch.ndjson",
        "--show",
        "requests",
    ]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(
        bodies(&out.stdout),
        vec![
            serde_json::json!({ "c": "c1", "v": 12.5, "zip": "none" }),
            serde_json::json!({ "c": "42", "v": 7, "zip": "none" })
        ]
    );
    assert!(
        out.stderr.contains(
            "batch.ndjson:3:2 (record 3): not JSON (expected ident): write each record as one JSON object on its own line (1 entry)\n"
        ),
        "the position is the line's, and a line without a customer has no example: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("batch.ndjson:5 (record 4): a customer needs an `id`"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("2 invalid"), "{}", out.stdout);
}

#[test]
fn csv_with_bom_dotted_headers_types_suffixes_and_gzip() {
    let t = Test::new();
    t.file("j.yaml", JOURNEYS);
    let csv = "\u{feff}id;consent.email;attributes.zip;attributes.code:string;event.name;event.at;event.properties.cart_value\n\
               c1;yes;01234;0099;cart_abandoned;2026-11-20T10:00:00Z;120.5\n\
               c2;maybe;10115;1;cart_abandoned;2026-11-20T10:00:00Z;3\n\
               c3;0;;7;cart_abandoned;2026-11-20T10:00:00Z;1.50\n";
    std::fs::write(t.path("batch.csv.gz"), gz(csv)).unwrap();
    let out = t.run(&[
        "run",
        "--dry-run",
        "j.yaml",
        "--fixtures",
        "batch.csv.gz",
        "--csv-delimiter",
        ";",
        "--show",
        "requests",
    ]);
    assert_eq!(out.code, 1, "c2's consent is malformed: {}", out.all());
    assert_eq!(
        bodies(&out.stdout),
        vec![
            serde_json::json!({ "c": "c1", "v": 120.5, "zip": "01234" }),
            serde_json::json!({ "c": "c3", "v": "1.50", "zip": "none" })
        ],
        "leading zeros and non-round-tripping numbers stay text; empty cells are absent"
    );
    assert!(
        out.stderr.contains(
            "batch.csv.gz:3 (record 2): `consent.email`: `maybe` is not true/false/1/0/yes/no"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn a_csv_row_with_the_wrong_number_of_cells_names_the_fix_and_the_batch_goes_on() {
    let t = Test::new();
    t.file("j.yaml", JOURNEYS);
    t.file(
        "batch.csv",
        "id,event.name,event.at,event.properties.cart_value\n\
         c1;cart_abandoned;2026-11-20T10:00:00Z;3\n\
         c2,cart_abandoned,2026-11-20T10:00:00Z,4\n\
         [1,2]\n",
    );
    let out = t.run(&[
        "run",
        "--dry-run",
        "j.yaml",
        "--fixtures",
        "batch.csv",
        "--show",
        "requests",
    ]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(
        bodies(&out.stdout),
        vec![serde_json::json!({ "c": "c2", "v": 4, "zip": "none" })]
    );
    for line in [
        "error: batch.csv:2 (record 1): 1 cells where the header has 4: check the delimiter (--csv-delimiter) and that every quoted cell is closed (1 entry)\n",
        "error: batch.csv:4 (record 3): 2 cells where the header has 4: check the delimiter (--csv-delimiter) and that every quoted cell is closed (1 entry)\n",
    ] {
        assert!(out.stderr.contains(line), "{line}\n{}", out.stderr);
    }
    assert!(out.stdout.contains("2 invalid"), "{}", out.stdout);
}

#[test]
fn a_csv_header_that_would_misread_its_records_rejects_the_file_and_says_why() {
    let t = Test::new();
    t.file("j.yaml", JOURNEYS);
    t.file("twice.csv", "id,event.name,id\nc1,cart_abandoned,c2\n");
    t.file("nested.csv", "id,attributes,attributes.zip\nc1,x,01234\n");
    t.file("typo.csv", "id,event.properties.cart_value:numbr\nc1,3\n");
    t.file("blank.csv", "id,,event.name\nc1,x,cart_abandoned\n");
    let out = t.run(&[
        "run",
        "--dry-run",
        "j.yaml",
        "--fixtures",
        "twice.csv",
        "--fixtures",
        "nested.csv",
        "--fixtures",
        "typo.csv",
        "--fixtures",
        "blank.csv",
    ]);
    assert_eq!(out.code, 1, "{}", out.all());
    for line in [
        "error: twice.csv:1: columns 1 `id` and 3 `id` name the same field: rename or remove one (1 entry)\n",
        "error: nested.csv:1: columns 2 `attributes` and 3 `attributes.zip` cannot both be set: a field with a value cannot also hold fields (1 entry)\n",
        "error: typo.csv:1: column 2: `event.properties.cart_value:numbr`: unknown type suffix `:numbr`; did you mean `:number`? (:string, :number, :bool or :json) (1 entry)\n",
        "error: blank.csv:1: column 2: no header: name its field, like `email` or `attributes.plan` (1 entry)\n",
    ] {
        assert!(out.stderr.contains(line), "{line}\n{}", out.stderr);
    }
    assert!(out.stdout.contains("4 invalid"), "{}", out.stdout);
}

#[test]
fn an_export_that_came_out_empty_is_said_once() {
    let t = Test::new();
    t.file("j.yaml", JOURNEYS);
    t.file("tonight.ndjson", "\n");
    t.file("tonight.csv", "id,event.name,event.at\n");
    let out = t.run(&[
        "run",
        "--dry-run",
        "j.yaml",
        "--fixtures",
        "tonight.ndjson",
        "--fixtures",
        "tonight.csv",
        "--output",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    for file in ["tonight.ndjson", "tonight.csv"] {
        let warning = format!("warning: {file} holds no records: nothing was run from it\n");
        assert!(out.stderr.contains(&warning), "{warning}\n{}", out.stderr);
    }
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["totals"]["entries"], 0);
    let notices = report["notices"].as_array().unwrap();
    for file in ["tonight.ndjson", "tonight.csv"] {
        let notice = format!("{file} holds no records: nothing was run from it");
        assert!(notices.iter().any(|n| n == &notice), "{report}");
    }
}

#[test]
fn a_line_that_is_not_utf8_is_placed_at_its_byte_and_the_batch_goes_on() {
    let t = Test::new();
    t.file("j.yaml", JOURNEYS);
    let mut bytes = b"{\"customer\": {\"id\": \"c1\", \"name\": \"\xff\"}}\n".to_vec();
    bytes.extend_from_slice(b"{\"customer\": {\"id\": \"c2\"}, \"event\": {\"name\": \"cart_abandoned\", \"at\": \"2026-11-20T10:00:00Z\", \"properties\": {\"cart_value\": 3}}}\n");
    std::fs::write(t.path("latin1.ndjson"), bytes).unwrap();
    let out = t.run(&[
        "run",
        "--dry-run",
        "j.yaml",
        "--fixtures",
        "latin1.ndjson",
        "--show",
        "requests",
    ]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains(
            "error: latin1.ndjson:1:36 (record 1): not UTF-8: save the file as UTF-8 (1 entry)\n"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(
        bodies(&out.stdout),
        vec![serde_json::json!({ "c": "c2", "v": 3, "zip": "none" })]
    );
}

#[test]
fn a_truncated_gz_ends_its_file_with_one_error_after_the_records_before_the_cut() {
    let t = Test::new();
    t.file("j.yaml", JOURNEYS);
    let lines: String = (0..2000).map(|i| cart_line(i, i)).collect();
    let whole = gz(&lines);
    std::fs::write(t.path("cut.ndjson.gz"), &whole[..whole.len() / 2]).unwrap();
    // --limit bounds the run even if the read error repeated forever.
    let out = t.run(&[
        "run",
        "--dry-run",
        "j.yaml",
        "--fixtures",
        "cut.ndjson.gz",
        "--limit",
        "5000",
    ]);
    assert_eq!(out.code, 1, "{}", out.all());
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(
        errors[0].contains("cannot read further (")
            && errors[0].ends_with("the records before this line were read (1 entry)"),
        "{}",
        errors[0]
    );
    let completed: u64 = out
        .stdout
        .split("entries: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        (1..2000).contains(&completed),
        "the records before the cut ran: {}",
        out.stdout
    );
    assert!(out.stdout.contains("1 invalid"), "{}", out.stdout);
}

#[test]
fn tab_separated_and_jsonl_exports_are_streams_too() {
    let t = Test::new();
    t.file("j.yaml", JOURNEYS);
    let tsv = "id\tevent.name\tevent.at\tevent.properties.cart_value\nc1\tcart_abandoned\t2026-11-20T10:00:00Z\t3\n";
    t.file("a.tsv", tsv);
    std::fs::write(t.path("b.tsv.gz"), gz(&tsv.replace("c1", "c2"))).unwrap();
    t.file("c.csv", &tsv.replace("c1", "c3"));
    t.file(
        "d.jsonl",
        "{\"customer\": {\"id\": \"c4\"}, \"event\": {\"name\": \"cart_abandoned\", \"at\": \"2026-11-20T10:00:00Z\", \"properties\": {\"cart_value\": 6}}}\n",
    );
    let mut args = vec!["run", "--dry-run", "j.yaml", "--show", "requests"];
    for f in ["a.tsv", "b.tsv.gz", "d.jsonl"] {
        args.extend(["--fixtures", f]);
    }
    let out = t.run(&args);
    assert_eq!(out.code, 0, "{}", out.all());
    let c = |id: &str, v: u32| serde_json::json!({ "c": id, "v": v, "zip": "none" });
    assert_eq!(
        bodies(&out.stdout),
        vec![c("c1", 3), c("c2", 3), c("c4", 6)]
    );
    // A tab-separated file named .csv takes `--csv-delimiter '\t'` (or `tab`).
    for tab in ["\\t", "tab"] {
        let out = t.run(&[
            "run",
            "--dry-run",
            "j.yaml",
            "--fixtures",
            "c.csv",
            "--csv-delimiter",
            tab,
            "--show",
            "requests",
        ]);
        assert_eq!(bodies(&out.stdout), vec![c("c3", 3)], "{}", out.all());
    }
    let out = t.run(&[
        "run",
        "--dry-run",
        "j.yaml",
        "--fixtures",
        "c.csv",
        "--csv-delimiter",
        ";;",
    ]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains(
            "give one ASCII character, like `;` or `|`, or `\\t` for tab-separated files, not `;;`"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn a_stop_signal_reads_no_further_into_the_file() {
    let server = TestServer::start();
    server.script(
        "/cart",
        vec![Reply::status(200).delay(Duration::from_millis(300))],
    );
    let t = Test::new().env("HOOK_URL", &server.url);
    t.file("j.yaml", JOURNEYS);
    let mut lines: String = (0..5000).map(|i| cart_line(i, 1)).collect();
    // The last line is bad: reading the whole file would report it.
    lines.push_str("not json at the end\n");
    t.file("tonight.ndjson", &lines);
    let child = t.spawn(&[
        "run",
        "j.yaml",
        "--fixtures",
        "tonight.ndjson",
        "--no-state",
        "--yes",
        "--concurrency",
        "2",
        "--report",
        "r.json",
    ]);
    server.wait_for(2);
    let out = terminate(child);
    assert_eq!(out.code, 143, "{}", out.stderr);
    assert!(
        !out.stderr.contains("tonight.ndjson:5001"),
        "the rest of the file was not read: {}",
        out.stderr
    );
    let report: serde_json::Value = serde_json::from_str(&t.read("r.json")).unwrap();
    assert_eq!(report["totals"]["invalid"], 0, "{report}");
    assert!(server.requests().len() < 100, "stopped early");
}

#[test]
fn a_streamed_batch_runs_for_real() {
    let server = TestServer::start();
    let t = Test::new().env("HOOK_URL", &server.url);
    t.file("j.yaml", JOURNEYS);
    let lines: String = (0..3000).map(|i| cart_line(i, i)).collect();
    std::fs::write(t.path("big.ndjson.gz"), gz(&lines)).unwrap();
    let out = t.run(&[
        "run",
        "j.yaml",
        "--fixtures",
        "big.ndjson.gz",
        "--concurrency",
        "16",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(server.requests_to("/cart").len(), 3000);
    let again = t.run(&["run", "j.yaml", "--fixtures", "big.ndjson.gz"]);
    assert!(
        again.stdout.contains("3000 already done"),
        "{}",
        again.stdout
    );
    assert_eq!(
        server.requests_to("/cart").len(),
        3000,
        "the store holds for streams too"
    );
}

/// A real run on the lanes `JOURNEY_LANES` asks for (on two cores, one lane is the default: three
/// take the many-lane path): every entry sent once, and each customer's entries in input order.
#[test]
fn lanes_asked_for_send_each_entry_once_and_a_customers_entries_in_order() {
    let lines: String = (0..600).map(|i| cart_line(i % 200, i)).collect();
    for lanes in ["1", "3"] {
        let server = TestServer::start();
        let t = Test::new()
            .env("HOOK_URL", &server.url)
            .env("JOURNEY_LANES", lanes);
        t.file("j.yaml", JOURNEYS);
        t.file("big.ndjson", &lines);
        let out = t.run(&[
            "run",
            "j.yaml",
            "--fixtures",
            "big.ndjson",
            "--yes",
            "--no-state",
            "--concurrency",
            "24",
        ]);
        assert_eq!(out.code, 0, "JOURNEY_LANES={lanes}: {}", out.all());
        assert!(out.stdout.contains("600 ok"), "{}", out.stdout);
        let mut values: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
        for r in server.requests_to("/cart") {
            let b = r.json();
            let v = match &b["v"] {
                serde_json::Value::String(s) => s.parse().unwrap(),
                v => v.as_i64().unwrap(),
            };
            values
                .entry(b["c"].as_str().unwrap().into())
                .or_default()
                .push(v);
        }
        assert_eq!(values.len(), 200, "JOURNEY_LANES={lanes}");
        for (customer, sent) in &values {
            let n: i64 = customer[1..].parse().unwrap();
            assert_eq!(
                sent,
                &[n, n + 200, n + 400],
                "JOURNEY_LANES={lanes}: {customer}'s entries, once each, in input order"
            );
        }
    }
    let t = Test::new().env("JOURNEY_LANES", "0");
    t.file("j.yaml", JOURNEYS);
    t.file("big.ndjson", &lines);
    let out = t.run(&["run", "--dry-run", "j.yaml", "--fixtures", "big.ndjson"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert_eq!(
        out.stderr,
        "error: JOURNEY_LANES=0: give a number of lanes from 1 to 256, or unset it\n"
    );
}

#[test]
fn shards_split_a_batch_with_no_overlap_and_no_gap() {
    let t = Test::new();
    t.file("j.yaml", "journey: s\ntrigger: { segment: \"true\" }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/s\", body: { c: \"{{ customer.id }}\" } }\n");
    let lines: String = (0..300)
        .map(|i| format!("{{\"id\": \"cust_{i}\"}}\n"))
        .collect();
    t.file("all.ndjson", &lines);
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let out = t.run(&[
            "run",
            "--dry-run",
            "j.yaml",
            "--fixtures",
            "all.ndjson",
            "--shard",
            &shard,
            "--show",
            "requests",
        ]);
        assert_eq!(out.code, 0, "{}", out.all());
        let ids: Vec<String> = bodies(&out.stdout)
            .iter()
            .map(|b| b["c"].as_str().unwrap().to_string())
            .collect();
        assert!(
            (70..=130).contains(&ids.len()),
            "shard {shard}: {}",
            ids.len()
        );
        total += ids.len();
        seen.extend(ids);
    }
    assert_eq!(
        (total, seen.len()),
        (300, 300),
        "every customer in exactly one shard"
    );
    assert_eq!(
        t.run(&[
            "run",
            "--dry-run",
            "j.yaml",
            "--fixtures",
            "all.ndjson",
            "--shard",
            "4/3"
        ])
        .code,
        2
    );
}

#[test]
fn a_store_remembers_its_shard() {
    let server = TestServer::start();
    let t = Test::new().env("HOOK_URL", &server.url);
    t.file("j.yaml", "journey: s\ntrigger: { segment: \"true\" }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/s\", body: {} }\n");
    t.file("f.ndjson", "{\"id\": \"a\"}\n{\"id\": \"b\"}\n");
    assert_eq!(
        t.run(&["run", "j.yaml", "--fixtures", "f.ndjson", "--shard", "1/2"])
            .code,
        0
    );
    let other = t.run(&["run", "j.yaml", "--fixtures", "f.ndjson", "--shard", "2/2"]);
    assert_eq!(other.code, 2, "{}", other.all());
    assert!(
        other
            .stderr
            .contains("this store belongs to shard 1/2, not 2/2"),
        "{}",
        other.stderr
    );
    let none = t.run(&["run", "j.yaml", "--fixtures", "f.ndjson"]);
    assert_eq!(none.code, 2, "{}", none.all());
    assert!(none.stderr.contains("pass --shard 1/2"), "{}", none.stderr);
}

/// One NDJSON line: customer `c{customer}` abandons a cart worth `value`.
fn cart_line(customer: usize, value: usize) -> String {
    format!(
        "{{\"customer\": {{\"id\": \"c{customer}\"}}, \"event\": {{\"name\": \"cart_abandoned\", \"at\": \"2026-11-20T10:00:00Z\", \"properties\": {{\"cart_value\": {value}}}}}}}\n"
    )
}
