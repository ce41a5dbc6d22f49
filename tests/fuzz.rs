//! A bounded generator: journey files, fixture files (YAML, JSON, NDJSON, CSV, gzipped),
//! suppress files and dead-letter files, made by mutating the examples with a fixed seed, each
//! given to the built binary. None may panic (101), abort (134, a stack overflow), die by a
//! signal or run past 5 seconds. `JOURNEY_FUZZ_INPUTS=N` runs N inputs of each kind (default
//! 40, so `cargo test` stays quick); `JOURNEY_FUZZ_SEED` picks another sequence.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Test, repo};

/// Pieces that break parsers: brackets, quotes, template markers, YAML indicators, odd bytes.
const TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    "\\",
    "\n",
    "\r\n",
    "- ",
    ": ",
    "#",
    "&a",
    "*a",
    "!!binary",
    "|",
    ">",
    "%",
    "%Q",
    "..",
    "/",
    "?",
    "\u{feff}",
    "\u{0}",
    "\t",
    "é",
    "💥",
    "99999999999999999999",
    "-1",
    "1e308",
    "NaN",
    "null",
    "~",
    ",",
    ";",
    "=",
    "not not not ",
    "((((",
    "))))",
    "customer.id",
    "secret.TOKEN",
    "env.HOOK_URL",
    " > 30",
    " | int",
    " | datetimeformat('%') ",
    "  ",
    "0x1F",
    "true",
    "\"\":",
    "<<: *a",
];

/// What a template's expression can be given: filters with odd arguments, comparisons.
const IN_TAG: &[&str] = &[
    " | datetimeformat('%')",
    " | datetimeformat('%Q')",
    " | datetimeformat('50%')",
    " | datetimeformat('%#z')",
    " | datetimeformat('%E')",
    " | normalize_phone",
    " | int",
    " | sha256",
    " | as_path",
    " > 30",
    " < '5'",
    " == 5",
    " ~ '{{'",
    " | default('x', true)",
    " | tojson",
    " * 99999999999",
    " / 0",
    " // 0",
    " | first",
    " | length > 1",
];

/// Tokens whose long repetition nests: a parser's recursion.
const NESTING: &[&str] = &["[", "{", "(", "not ", "- ", "-", "x.", "1 + "];

struct Mutator(fastrand::Rng);

impl Mutator {
    fn token(&mut self) -> &'static str {
        TOKENS[self.0.usize(..TOKENS.len())]
    }

    /// Where a piece goes inside a template's `{{ }}` (before its `}}`), if there is one.
    fn in_tag(&mut self, out: &[u8]) -> Option<usize> {
        let ends: Vec<usize> = (0..out.len().saturating_sub(1))
            .filter(|&i| &out[i..i + 2] == b"}}")
            .collect();
        (!ends.is_empty()).then(|| ends[self.0.usize(..ends.len())])
    }

    /// One to four edits of `seed`: a token inserted (anywhere, or into a template's tag), a
    /// byte span cut or repeated, the end cut, a byte changed, or a nesting token repeated
    /// thousands of times.
    fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut out = seed.to_vec();
        for _ in 0..self.0.usize(1..=4) {
            let at = if out.is_empty() {
                0
            } else {
                self.0.usize(..out.len())
            };
            match self.0.u8(..8) {
                5 | 6 => {
                    if let Some(end) = self.in_tag(&out) {
                        let piece = IN_TAG[self.0.usize(..IN_TAG.len())].as_bytes();
                        out.splice(end..end, piece.iter().copied());
                    }
                }
                7 => {
                    let t = NESTING[self.0.usize(..NESTING.len())];
                    let deep = t.as_bytes().repeat(self.0.usize(200..=50_000));
                    let inside = self.in_tag(&out).filter(|_| self.0.bool());
                    let at = inside.unwrap_or(at);
                    out.splice(at..at, deep);
                }
                0 => {
                    let t = self.token().as_bytes().repeat(self.0.usize(1..=3));
                    out.splice(at..at, t);
                }
                1 => {
                    let end = (at + self.0.usize(1..=16)).min(out.len());
                    out.drain(at..end);
                }
                2 => {
                    let end = (at + self.0.usize(1..=64)).min(out.len());
                    let chunk = out[at..end].repeat(self.0.usize(1..=50));
                    out.splice(at..at, chunk);
                }
                3 => out.truncate(at),
                _ => {
                    if let Some(b) = out.get_mut(at) {
                        *b = self.0.u8(..);
                    }
                }
            }
        }
        out
    }
}

fn inputs() -> usize {
    std::env::var("JOURNEY_FUZZ_INPUTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(40)
}

fn mutator(kind: u64) -> Mutator {
    let seed = std::env::var("JOURNEY_FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20261201u64);
    Mutator(fastrand::Rng::with_seed(
        seed ^ kind.wrapping_mul(0x9e37_79b9_7f4a_7c15),
    ))
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Runs `journey ARGS` in `dir`; the failure, if it panicked, aborted, died or hung.
fn survives(dir: &Path, args: &[&str], what: &str, input: &[u8]) -> Result<(), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_journey"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOOK_URL", "http://127.0.0.1:9")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A file, not a pipe: an error that quotes a large input would fill a pipe nobody
        // reads until the end, and the run would wait on it.
        .stderr(std::fs::File::create(dir.join("stderr.txt")).unwrap())
        .spawn()
        .expect("start journey");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(5) {
            child.kill().unwrap();
            child.wait().unwrap();
            return Err(format!("{what}: ran past 5 s on {}", kept(dir, input)));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
    match status.code() {
        Some(101) | Some(134) | None => Err(format!(
            "{what}: {status} on {}\n{}",
            kept(dir, input),
            &stderr[..stderr.len().min(2000)]
        )),
        Some(_) => Ok(()),
    }
}

/// The input's start, and the folder it is kept in (under target/, to run again by hand).
fn kept(dir: &Path, input: &[u8]) -> String {
    let text = String::from_utf8_lossy(input);
    let start: String = text.chars().take(300).collect();
    let keep = repo()
        .join("target/fuzz-failures")
        .join(dir.file_name().unwrap_or_default());
    let copied = std::fs::create_dir_all(&keep).is_ok()
        && std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .all(|e| std::fs::copy(e.path(), keep.join(e.file_name())).is_ok());
    let place = if copied {
        keep.display().to_string()
    } else {
        "not kept".into()
    };
    format!("{start:?} (files in {place})")
}

const JOURNEY: &str = "journey: j\ntrigger: { segment: \"true\" }\ndefaults: { retry: { attempts: 1 } }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/hook/{{ customer.id }}\", body: { who: \"{{ customer.id }}\", plan: \"{{ customer.attributes.plan | default('x') }}\" } }\n";

/// Runs `cases` inputs made from `seeds` by `make` (which writes the input's files and returns
/// the arguments), on two threads; every failure is collected.
fn fuzz(kind: u64, seeds: &[Vec<u8>], make: fn(&Test, &[u8]) -> Vec<String>) {
    let cases = inputs();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2u64)
            .map(|half| {
                scope.spawn(move || {
                    let mut m = mutator(kind * 2 + half);
                    let mut failures = Vec::new();
                    for i in 0..cases.div_ceil(2) {
                        let seed = &seeds[i % seeds.len()];
                        let input = m.mutate(seed);
                        let t = Test::new();
                        t.file("j.yaml", JOURNEY);
                        let args = make(&t, &input);
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        if let Err(f) = survives(t.dir.path(), &args, &args.join(" "), &input) {
                            failures.push(f);
                        }
                    }
                    failures
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn read_all(dir: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(repo().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn write(t: &Test, name: &str, bytes: &[u8]) {
    std::fs::write(t.path(name), bytes).unwrap();
}

#[test]
fn journey_files_never_crash_validate_or_a_dry_run() {
    fuzz(1, &read_all("journeys"), |t, input| {
        write(t, "fuzzed.yaml", input);
        t.file(
            "f.yaml",
            "customers: [{ id: c1, attributes: { plan: trial } }]\n",
        );
        [
            "run",
            "--dry-run",
            "fuzzed.yaml",
            "--fixtures",
            "f.yaml",
            "--now",
            "2026-11-20T11:00:00Z",
        ]
        .map(String::from)
        .to_vec()
    });
}

#[test]
fn fixture_documents_never_crash_a_dry_run() {
    let mut seeds = read_all("fixtures");
    seeds.push(
        br#"{"customers": [{"id": "c1", "attributes": {"plan": "trial", "n": 5}}], "events": []}"#
            .to_vec(),
    );
    fuzz(2, &seeds, |t, input| {
        let name = if input.first() == Some(&b'{') {
            "f.json"
        } else {
            "f.yaml"
        };
        write(t, name, input);
        ["run", "--dry-run", "j.yaml", "--fixtures", name]
            .map(String::from)
            .to_vec()
    });
}

const NDJSON: &[u8] = b"{\"id\": \"c1\", \"email\": \"a@x.com\", \"attributes\": {\"plan\": \"trial\"}}\n{\"customer\": {\"id\": \"c2\"}, \"event\": {\"name\": \"signup\", \"at\": \"2026-11-20T10:00:00Z\", \"properties\": {\"v\": 1}}}\n{\"id\": \"c3\", \"consent\": {\"email\": true}}\n";
const CSV: &[u8] = b"id,email,consent.email,attributes.plan,attributes.ltv:number,attributes.raw:json\nc1,a@x.com,true,trial,420,\"{\"\"a\"\": 1}\"\nc2,,no,paid,0,[]\n\"c3\",\"b@x.com\",1,\"tri,al\",1.5,null\n";

#[test]
fn streams_plain_and_gzipped_never_crash_a_dry_run() {
    fuzz(3, &[NDJSON.to_vec(), CSV.to_vec()], |t, input| {
        let csv = input.starts_with(b"id,");
        let (name, bytes) = match (csv, input.len() % 3) {
            (true, 0) => ("f.csv.gz", gz(input)),
            (true, _) => ("f.csv", input.to_vec()),
            (false, 0) => ("f.ndjson.gz", gz(input)),
            (false, 1) => {
                // A gzip stream cut short.
                let mut z = gz(input);
                z.truncate(z.len() / 2);
                ("f.ndjson.gz", z)
            }
            (false, _) => ("f.ndjson", input.to_vec()),
        };
        write(t, name, &bytes);
        ["run", "--dry-run", "j.yaml", "--fixtures", name]
            .map(String::from)
            .to_vec()
    });
}

#[test]
fn suppress_files_never_crash_a_dry_run() {
    let seed = b"\xef\xbb\xbfc1\n# a comment\nA@X.com\n5d41402abc4b2a76b9719d911017c592ae58bb9f4b1c2a6e1d1d3a3c8a0b1f2e\n\n".to_vec();
    fuzz(4, &[seed], |t, input| {
        write(t, "sup.txt", input);
        t.file(
            "f.yaml",
            "customers: [{ id: c1, email: a@x.com }, { id: c2 }]\n",
        );
        [
            "run",
            "--dry-run",
            "j.yaml",
            "--fixtures",
            "f.yaml",
            "--suppress",
            "sup.txt",
        ]
        .map(String::from)
        .to_vec()
    });
}

#[test]
fn dead_letter_files_never_crash_replay() {
    let t = Test::new();
    let letter = serde_json::json!({
        "run_id": "run_x", "at": "2026-11-20T11:00:00Z", "journey": "j",
        "journey_file": "JOURNEY_FILE", "step": "send", "entry_key": "j:c1",
        "delivery_id": "dlv_abc", "customer": "c1", "event": null, "attempts": 1, "status": 500,
        "error": "HTTP 500",
        "snapshot": { "customer": { "id": "c1", "attributes": { "plan": "trial" } }, "event": null,
            "vars": {}, "saved": { "code": "x" }, "steps": {}, "now": "2026-11-20T11:00:00Z" }
    });
    drop(t);
    let seed = format!("{letter}\n{letter}\n").into_bytes();
    fuzz(5, &[seed], |t, input| {
        let journey = t.path("j.yaml").display().to_string();
        let text = String::from_utf8_lossy(input).replace("JOURNEY_FILE", &journey);
        write(t, "dead.ndjson", text.as_bytes());
        ["replay", "dead.ndjson", "--quiet"]
            .map(String::from)
            .to_vec()
    });
}
