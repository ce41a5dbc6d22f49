//! The test harness: a temp folder with journey and fixture files, the built binary, what it
//! printed, and a recording HTTP server.

pub mod server;
pub mod store;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A temp folder to write files into and run `journey` in.
pub struct Test {
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

/// What one run printed and returned.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Everything printed.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl Test {
    pub fn new() -> Test {
        Test {
            dir: tempfile::tempdir().expect("temp dir"),
            env: vec![],
        }
    }

    /// Writes a file (folders created).
    pub fn file(&self, name: &str, text: &str) -> &Self {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    /// Sets an environment variable for every run.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The value an environment variable is set to for every run, if set.
    pub fn env_value(&self, k: &str) -> Option<String> {
        self.env
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Runs `journey run --dry-run j.yaml --fixtures f.yaml EXTRA...`.
    pub fn dry_run(&self, extra: &[&str]) -> Output {
        let mut args = vec!["run", "--dry-run", "j.yaml", "--fixtures", "f.yaml"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `journey ARGS` in the folder, with a clean environment but for PATH and what `env` set.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_journey"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().cloned());
        cmd
    }

    /// Runs `journey ARGS` to the end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run journey").into()
    }

    /// Starts `journey ARGS`, its output piped.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start journey")
    }
}

impl From<std::process::Output> for Output {
    fn from(out: std::process::Output) -> Output {
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Reads the first 64 bytes of a spawned run's stdout, closes it (like `| head -c 64`) and waits.
pub fn close_early(mut child: std::process::Child) -> Output {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut first = [0u8; 64];
    std::io::Read::read_exact(&mut stdout, &mut first).expect("64 bytes of output");
    drop(stdout);
    child.wait_with_output().expect("journey ends").into()
}

/// Sends SIGTERM to a spawned run and waits.
pub fn terminate(child: std::process::Child) -> Output {
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    child.wait_with_output().expect("journey ends").into()
}

/// The repository's own folder (for the examples).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A TCP listener on 127.0.0.1 that counts connections: a dry-run must never reach it.
pub struct Sentinel {
    pub url: String,
    hits: Arc<AtomicUsize>,
}

impl Sentinel {
    pub fn start() -> Sentinel {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stream.is_ok() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Sentinel { url, hits }
    }

    pub fn hits(&self) -> usize {
        std::thread::sleep(Duration::from_millis(100));
        self.hits.load(Ordering::SeqCst)
    }
}

/// A one-step journey posting `body` (YAML) to `{{ env.HOOK_URL }}/hook`.
pub fn one_step(name: &str, body: &str) -> String {
    format!(
        "journey: {name}\ntrigger: {{ segment: \"true\" }}\nsteps:\n  - id: send\n    webhook:\n      url: \"{{{{ env.HOOK_URL }}}}/hook\"\n      body: {body}\n"
    )
}

/// Whether `tool` is on PATH; says once that the checks needing it did not run when it is not
/// (`package` is the Debian package that brings it; `.ci/run` installs it).
pub fn have(tool: &str, package: &str, what: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("{tool} is not installed: {what} did not run (apt-get install {package})");
    }
    found
}

/// The names in a folder, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Whether `customer` is in shard `k` of `n`, by the rule the README gives: the first 8 bytes of
/// the id's sha256, big-endian, modulo `n`, is `k - 1`.
pub fn in_shard(customer: &str, k: u64, n: u64) -> bool {
    let out = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(customer.as_bytes())?;
            child.wait_with_output()
        })
        .expect("sha256sum");
    let hex = String::from_utf8(out.stdout).unwrap();
    u64::from_str_radix(&hex[..16], 16).unwrap() % n == k - 1
}

/// [`in_shard`] computed here rather than by `sha256sum`, for thousands of ids.
pub fn in_shard_fast(customer: &str, k: u64, n: u64) -> bool {
    use sha2::Digest;
    let d = sha2::Sha256::digest(customer.as_bytes());
    u64::from_be_bytes(d[..8].try_into().unwrap()) % n == k - 1
}

/// A folder with `j.yaml` and `f.yaml`, whose runs send to `server` (`HOOK_URL`).
pub fn against(server: &server::TestServer, journey: &str, fixtures: &str) -> Test {
    let t = Test::new().env("HOOK_URL", &server.url);
    t.file("j.yaml", journey);
    t.file("f.yaml", fixtures);
    t
}

/// `journey run j.yaml --fixtures f.yaml --yes --no-state EXTRA...`: a real run that keeps no
/// store, so every run sends.
pub fn send(t: &Test, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--yes",
        "--no-state",
    ];
    args.extend_from_slice(extra);
    t.run(&args)
}

/// The JSON document a run printed on stdout (`--output json`).
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.all()))
}
