//! The tools around the runner: the editor schema and shell completions.

use crate::support::{Test, repo};

fn schema() -> serde_json::Value {
    let out = Test::new().run(&["schema"]);
    assert_eq!(out.code, 0, "{}", out.all());
    serde_json::from_str(&out.stdout).expect("the schema is JSON")
}

fn as_json(yaml: &str) -> serde_json::Value {
    serde_yaml::from_str(yaml).unwrap()
}

#[test]
fn the_schema_accepts_every_example_and_rejects_unknown_keys() {
    let validator = jsonschema::validator_for(&schema()).expect("a valid JSON Schema");
    let mut checked = 0;
    for entry in std::fs::read_dir(repo().join("journeys")).unwrap() {
        let path = entry.unwrap().path();
        let doc = as_json(&std::fs::read_to_string(&path).unwrap());
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        checked += 1;
    }
    assert_eq!(checked, 3);
    let typo = as_json(
        "journey: j\ntrigger: { event: a }\nsteps:\n  - id: s\n    on_falure: stop\n    end: completed\n",
    );
    assert!(!validator.is_valid(&typo), "an unknown key is rejected");
    let good_timeout = as_json(
        "journey: j\ntrigger: { event: a }\ndefaults: { timeout: 500ms }\nsteps:\n  - id: s\n    end: completed\n",
    );
    assert!(validator.is_valid(&good_timeout));
    let bad_timeout = as_json(
        "journey: j\ntrigger: { event: a }\ndefaults: { timeout: soon }\nsteps:\n  - id: s\n    end: completed\n",
    );
    assert!(
        !validator.is_valid(&bad_timeout),
        "a duration must look like `5s`"
    );
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef journey"),
        ("fish", "complete -c journey"),
    ] {
        let out = Test::new().run(&["completions", shell]);
        assert_eq!(out.code, 0, "{}", out.all());
        assert!(
            out.stdout.contains(marker),
            "{shell}: {}",
            &out.stdout[..200.min(out.stdout.len())]
        );
        assert!(
            out.stdout.contains("replay") && out.stdout.contains("listen"),
            "{shell} knows the subcommands"
        );
    }
}

#[test]
fn the_committed_schema_is_current() {
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("journey.schema.json")).unwrap())
            .unwrap();
    assert_eq!(
        committed,
        schema(),
        "run `journey schema > journey.schema.json`"
    );
}

#[test]
fn fish_completes_subcommands_and_values_without_errors() {
    if !crate::support::have("fish", "fish", "the fish completion check") {
        return;
    }
    let t = Test::new();
    let out = t.run(&["completions", "fish"]);
    assert_eq!(out.code, 0, "{}", out.all());
    t.file("journey.fish", &out.stdout);
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_journey"))
        .parent()
        .unwrap();
    let fish = std::process::Command::new("fish")
        .args([
            "--no-config",
            "-c",
            "source journey.fish; complete -C 'journey run --show '; echo ---; complete -C 'journey st'",
        ])
        .current_dir(t.dir.path())
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&fish.stdout);
    let stderr = String::from_utf8_lossy(&fish.stderr);
    assert!(stderr.is_empty(), "fish says: {stderr}");
    let (show, sub) = stdout.split_once("---").unwrap();
    let values: Vec<&str> = show
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(
        values,
        ["curl", "paths", "requests"],
        "--show completes to its values: {stdout}"
    );
    assert!(sub.lines().any(|l| l.starts_with("state\t")), "{stdout}");
}

/// The edges `a -> b` of a dot graph.
fn dot_edges(dot: &str) -> Vec<(String, String)> {
    dot.lines()
        .filter_map(|l| l.trim().split_once(" -> "))
        .map(|(a, b)| {
            (
                a.to_string(),
                b.split([' ', ';']).next().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn graphs_draw_every_node_reachably_with_the_entry_conditions_on_top() {
    for name in ["cart_abandonment", "churn_risk", "trial_onboarding"] {
        let file = repo()
            .join(format!("journeys/{name}.yaml"))
            .display()
            .to_string();
        let out = Test::new().run(&["graph", &file, "--format", "dot"]);
        assert_eq!(out.code, 0, "{}", out.all());
        let dot = out.stdout;
        let nodes: Vec<String> = dot
            .lines()
            .filter(|l| l.contains("[shape="))
            .map(|l| l.trim().split(' ').next().unwrap().to_string())
            .collect();
        let edges = dot_edges(&dot);
        let mut seen = vec!["start".to_string()];
        let mut i = 0;
        while i < seen.len() {
            for (a, b) in &edges {
                if *a == seen[i] && !seen.contains(b) {
                    seen.push(b.clone());
                }
            }
            i += 1;
        }
        for n in &nodes {
            assert!(
                seen.contains(n),
                "{name}: `{n}` is drawn but nothing leads to it:\n{dot}"
            );
        }
        let start = dot
            .lines()
            .find(|l| l.trim().starts_with("start ["))
            .unwrap();
        assert!(
            start.contains("event ") || start.contains("segment "),
            "{start}"
        );
        if crate::support::have("dot", "graphviz", "the Graphviz check of `journey graph`") {
            let mut child = std::process::Command::new("dot")
                .arg("-Tsvg")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            std::io::Write::write_all(child.stdin.as_mut().unwrap(), dot.as_bytes()).unwrap();
            let done = child.wait_with_output().unwrap();
            assert!(
                done.status.success(),
                "{}",
                String::from_utf8_lossy(&done.stderr)
            );
        }
    }
    let cart = repo()
        .join("journeys/cart_abandonment.yaml")
        .display()
        .to_string();
    let out = Test::new().run(&["graph", &cart]);
    assert!(
        out.stdout
            .contains("where event.properties.cart_value >= 50"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("consent: email"), "{}", out.stdout);
    let trial = repo()
        .join("journeys/trial_onboarding.yaml")
        .display()
        .to_string();
    let out = Test::new().run(&["graph", &trial]);
    assert!(out.stdout.contains("after 3d"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("completed(["),
        "no ending nothing reaches: {}",
        out.stdout
    );
}

#[test]
fn on_failure_stop_is_drawn() {
    let t = Test::new();
    t.file("j.yaml", "journey: j\ntrigger: { event: signup }\nholdout: 10%\nexit_when: { event: bought }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x\" }\n    on_failure: stop\n");
    let out = t.run(&["graph", "j.yaml"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains("s0 -->|\"failure (stop)\"| stopped"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("holdout: 10%") && out.stdout.contains("exits on bought"),
        "{}",
        out.stdout
    );
}
