//! The files journey touches: the state store is refused rather than started afresh when it was
//! emptied, replaced, deleted beside its siblings, misnamed or a device; output files never
//! change a node that is not journey's own (`--report /dev/null` leaves /dev/null as it was).

use std::path::Path;
use std::time::Duration;

use crate::support::server::{Reply, TestServer};
use crate::support::{Output, Test, names};

const JOURNEY: &str = r#"journey: j
trigger: { segment: "true" }
defaults: { retry: { attempts: 1 } }
steps:
  - id: send
    webhook: { url: "{{ env.HOOK_URL }}/{{ customer.attributes.path }}", body: { id: "{{ customer.id }}" } }
"#;

const CUSTOMERS: &str = r#"customers:
  - { id: c1, attributes: { path: ok } }
  - { id: c2, attributes: { path: ok } }
  - { id: c3, attributes: { path: fail } }
"#;

fn setup(server: &TestServer) -> Test {
    server.script("/fail", vec![Reply::status(500)]);
    let t = Test::new().env("HOOK_URL", &server.url);
    t.file("j.yaml", JOURNEY);
    t.file("f.yaml", CUSTOMERS);
    t
}

fn send(t: &Test, extra: &[&str]) -> Output {
    let mut args = vec!["run", "j.yaml", "--fixtures", "f.yaml", "--yes"];
    args.extend_from_slice(extra);
    t.run(&args)
}

#[test]
fn an_emptied_store_is_refused_and_nothing_is_sent_again() {
    let server = TestServer::start();
    let t = setup(&server);
    t.file("s/keep", "");
    let first = send(&t, &["--state", "s/state.sqlite"]);
    assert_eq!(first.code, 1, "{}", first.all());
    assert_eq!(server.requests().len(), 3);
    std::fs::write(t.path("s/state.sqlite"), b"").unwrap();
    let second = send(&t, &["--state", "s/state.sqlite"]);
    assert_eq!(second.code, 3, "{}", second.all());
    assert!(
        second.stderr.contains("holds no journey state") && second.stderr.contains("restore"),
        "{}",
        second.stderr
    );
    assert_eq!(server.requests().len(), 3, "nothing sent again");
}

#[test]
fn a_store_replaced_by_another_file_is_refused() {
    let server = TestServer::start();
    let t = setup(&server);
    t.file("notes.sqlite", "not a database at all\n");
    let out = send(&t, &["--state", "notes.sqlite"]);
    assert_eq!(out.code, 3, "{}", out.all());
    assert!(out.stderr.contains("notes.sqlite"), "{}", out.stderr);
    let other = t.path("other.sqlite");
    let conn = rusqlite::Connection::open(&other).unwrap();
    conn.execute_batch("CREATE TABLE t (x INTEGER);").unwrap();
    drop(conn);
    let out = send(&t, &["--state", "other.sqlite"]);
    assert_eq!(out.code, 3, "{}", out.all());
    assert!(
        out.stderr.contains("holds no journey state"),
        "{}",
        out.stderr
    );
    assert!(server.requests().is_empty());
}

#[test]
fn a_deleted_store_whose_siblings_remain_is_refused() {
    let server = TestServer::start();
    let t = setup(&server);
    assert_eq!(send(&t, &[]).code, 1);
    std::fs::remove_file(t.path(".journey/state.sqlite")).unwrap();
    let out = send(&t, &[]);
    assert_eq!(out.code, 3, "{}", out.all());
    assert!(
        out.stderr.contains("state.sqlite.lock") && out.stderr.contains("deleted or moved"),
        "{}",
        out.stderr
    );
    assert_eq!(server.requests().len(), 3, "nothing sent again");
    assert!(!t.path(".journey/state.sqlite").exists(), "no fresh store");
}

#[test]
fn a_given_store_in_a_folder_that_does_not_exist_is_exit_2_and_creates_nothing() {
    let server = TestServer::start();
    let t = setup(&server);
    let out = send(&t, &["--state", "nope/dir/s.sqlite"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    assert!(!t.path("nope").exists());
    let t = t.env("JOURNEY_STATE", "missing/s.sqlite");
    let out = send(&t, &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(!t.path("missing").exists());
    assert!(server.requests().is_empty());
}

#[test]
fn a_store_named_through_a_link_shares_its_targets_lock_and_files() {
    let server = TestServer::start();
    server.script(
        "/slow",
        vec![Reply::status(200).delay(Duration::from_secs(30))],
    );
    let t = setup(&server);
    t.file("real/keep", "");
    t.file("links/keep", "");
    assert_eq!(send(&t, &["--state", "real/state.sqlite"]).code, 1);
    std::os::unix::fs::symlink(t.path("real/state.sqlite"), t.path("links/state.sqlite")).unwrap();
    // A run through the link leaves nothing beside the link: the lock and redo files are the
    // target's.
    t.file(
        "f2.yaml",
        "customers:\n  - { id: c9, attributes: { path: ok } }\n",
    );
    let out = t.run(&[
        "run",
        "j.yaml",
        "--fixtures",
        "f2.yaml",
        "--yes",
        "--state",
        "links/state.sqlite",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(names(&t.path("links")), ["keep", "state.sqlite"]);
    // While a run holds the store by its real path, a run through the link is told it is in use.
    t.file(
        "slow.yaml",
        "customers:\n  - { id: s1, attributes: { path: slow } }\n",
    );
    let holder = t.spawn(&[
        "run",
        "j.yaml",
        "--fixtures",
        "slow.yaml",
        "--yes",
        "--state",
        "real/state.sqlite",
    ]);
    server.wait_for(5);
    let out = t.run(&[
        "run",
        "j.yaml",
        "--fixtures",
        "f2.yaml",
        "--yes",
        "--state",
        "links/state.sqlite",
    ]);
    let mut holder = holder;
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(out.code, 75, "{}", out.all());
    assert!(
        out.stderr.contains("in use by another run"),
        "{}",
        out.stderr
    );
}

/// Makes a FIFO and reads everything written to it, for as long as the test runs.
fn fifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        loop {
            let Ok(mut f) = std::fs::File::open(&path) else {
                return;
            };
            let _ = std::io::copy(&mut f, &mut std::io::sink());
        }
    });
}

/// Makes a character device like /dev/null (as root), or says why not.
fn null_device(path: &Path) -> bool {
    let made = std::process::Command::new("mknod")
        .arg(path)
        .args(["c", "1", "3"])
        .status();
    match made {
        Ok(s) if s.success() => {
            std::process::Command::new("chmod")
                .arg("666")
                .arg(path)
                .status()
                .unwrap();
            true
        }
        _ => {
            eprintln!(
                "store_files: cannot mknod (not root?): the character-device checks did not run"
            );
            false
        }
    }
}

/// The type and mode of a node, as `ls -l` would show them.
fn node(path: &Path) -> (String, u32) {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(path).unwrap();
    let kind = meta.file_type();
    let kind = if kind.is_fifo() {
        "fifo"
    } else if kind.is_char_device() {
        "char device"
    } else if kind.is_file() {
        "file"
    } else {
        "other"
    };
    (kind.to_string(), meta.permissions().mode() & 0o7777)
}

const OUTPUTS: &[&str] = &[
    "--report",
    "--junit",
    "--log",
    "--dead-letter",
    "--record-mocks",
    "--html",
    "--metrics",
];

fn outputs_into(t: &Test, names: &[String]) -> Output {
    let mut args: Vec<String> = [
        "run",
        "j.yaml",
        "--fixtures",
        "f.yaml",
        "--yes",
        "--no-state",
    ]
    .map(String::from)
    .to_vec();
    for (flag, name) in OUTPUTS.iter().zip(names) {
        args.push(flag.to_string());
        args.push(name.clone());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    t.run(&args)
}

#[test]
fn output_flags_write_into_fifos_and_devices_without_changing_them() {
    let server = TestServer::start();
    let t = setup(&server);
    let files: Vec<String> = OUTPUTS.iter().map(|f| format!("plain{f}")).collect();
    let baseline = outputs_into(&t, &files);
    assert_eq!(baseline.code, 1, "{}", baseline.all());
    for f in &files {
        assert_eq!(node(&t.path(f)), ("file".to_string(), 0o600), "{f}");
    }
    let fifos: Vec<String> = OUTPUTS.iter().map(|f| format!("fifo{f}")).collect();
    for f in &fifos {
        fifo(&t.path(f));
        std::process::Command::new("chmod")
            .arg("644")
            .arg(t.path(f))
            .status()
            .unwrap();
    }
    let out = outputs_into(&t, &fifos);
    assert_eq!(out.code, baseline.code, "{}", out.all());
    for f in &fifos {
        assert_eq!(node(&t.path(f)), ("fifo".to_string(), 0o644), "{f}");
    }
    let devices: Vec<String> = OUTPUTS.iter().map(|f| format!("null{f}")).collect();
    if devices.iter().all(|d| null_device(&t.path(d))) {
        let out = outputs_into(&t, &devices);
        assert_eq!(out.code, baseline.code, "{}", out.all());
        for d in &devices {
            assert_eq!(node(&t.path(d)), ("char device".to_string(), 0o666), "{d}");
        }
    }
}

#[test]
fn an_existing_wider_file_of_ours_is_narrowed_and_a_stricter_one_kept() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start();
    let t = setup(&server);
    t.file("wide.json", "{}");
    t.file("strict.xml", "");
    std::fs::set_permissions(t.path("wide.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(t.path("strict.xml"), std::fs::Permissions::from_mode(0o400)).unwrap();
    let out = send(
        &t,
        &["--no-state", "--report", "wide.json", "--log", "strict.xml"],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(node(&t.path("wide.json")).1, 0o600);
    assert_eq!(node(&t.path("strict.xml")).1, 0o400);
}

#[test]
fn a_state_store_on_a_device_a_fifo_or_a_folder_is_exit_2_and_nothing_is_made_beside_it() {
    let server = TestServer::start();
    let t = setup(&server);
    t.file("nodes/keep", "");
    fifo(&t.path("nodes/fifo"));
    std::fs::create_dir(t.path("nodes/folder")).unwrap();
    let mut nodes = vec!["nodes/fifo", "nodes/folder"];
    if null_device(&t.path("nodes/null")) {
        nodes.push("nodes/null");
    }
    let before = names(&t.path("nodes"));
    for n in &nodes {
        let out = send(&t, &["--state", n]);
        assert_eq!(out.code, 2, "{n}: {}", out.all());
        assert!(
            out.stderr.contains(&format!("--state {n} is a")),
            "{}",
            out.stderr
        );
        let env = Test::new()
            .env("HOOK_URL", &server.url)
            .env("JOURNEY_STATE", t.path(n).to_str().unwrap());
        env.file("j.yaml", JOURNEY);
        env.file("f.yaml", CUSTOMERS);
        assert_eq!(send(&env, &[]).code, 2, "JOURNEY_STATE={n}");
    }
    assert_eq!(
        names(&t.path("nodes")),
        before,
        "nothing created beside them"
    );
    assert!(server.requests().is_empty());
}

#[test]
fn replay_of_dev_null_leaves_it_a_device() {
    let t = Test::new();
    let path = t.path("null");
    if !null_device(&path) {
        return;
    }
    let out = t.run(&["replay", "null"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(node(&path), ("char device".to_string(), 0o666));
}

#[test]
fn a_wider_file_another_user_owns_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start();
    let t = setup(&server);
    t.file("theirs.json", "{}");
    let owned = std::process::Command::new("chown")
        .args(["65534:65534", t.path("theirs.json").to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success());
    if !owned {
        eprintln!("store_files: cannot chown (not root?): the other-owner check did not run");
        return;
    }
    std::fs::set_permissions(
        t.path("theirs.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = send(&t, &["--no-state", "--report", "theirs.json"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(
        node(&t.path("theirs.json")).1,
        0o644,
        "not journey's own: left as it was"
    );
    assert!(
        t.read("theirs.json").contains("\"schema_version\""),
        "written all the same"
    );
}
