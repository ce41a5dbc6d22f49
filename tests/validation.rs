//! Errors before anything runs: each with file:line:column and a way to fix it.

use crate::support::Test;

const GOOD_STEP: &str = "  - id: send\n    webhook:\n      url: \"{{ env.HOOK_URL }}/hook\"\n";

fn journey(steps: &str) -> String {
    format!("journey: j\ntrigger: {{ event: signup }}\nsteps:\n{steps}")
}

fn validate(text: &str) -> crate::support::Output {
    let t = Test::new();
    t.file("j.yaml", text);
    t.run(&["validate", "j.yaml"])
}

#[test]
fn a_valid_journey_passes() {
    let out = validate(&journey(GOOD_STEP));
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("ok: 1 journey(s) valid"));
}

#[test]
fn unknown_key_names_line_and_suggests() {
    let out = validate(&journey(&format!("{GOOD_STEP}    on_falure: stop\n")));
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("j.yaml:7:5"), "{}", out.stderr);
    assert!(
        out.stderr.contains("unknown key `on_falure`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("did you mean `on_failure`?"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing was run"));
}

#[test]
fn unknown_top_level_key_suggests() {
    let out = validate(&format!(
        "journey: j\ntriger: {{ event: a }}\nsteps:\n{GOOD_STEP}"
    ));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("j.yaml:2:1"), "{}", out.stderr);
    assert!(
        out.stderr.contains("did you mean `trigger`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_id_is_an_error_with_its_line() {
    let out = validate(&journey(
        "  - webhook:\n      url: \"{{ env.HOOK_URL }}\"\n",
    ));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("j.yaml:4:"), "{}", out.stderr);
    assert!(out.stderr.contains("missing field `id`"), "{}", out.stderr);
}

#[test]
fn duplicate_ids_are_errors() {
    let out = validate(&journey(&format!("{GOOD_STEP}{GOOD_STEP}")));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("j.yaml:7:9: duplicate step id `send`"),
        "{}",
        out.stderr
    );
}

#[test]
fn dangling_references_suggest_the_nearest_id() {
    let out = validate(&journey(&format!(
        "{GOOD_STEP}    next: dnoe\n  - id: done\n    end: completed\n"
    )));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("j.yaml:7:11: no step `dnoe` in this journey; did you mean `done`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn cycles_are_errors() {
    let steps = "  - id: a\n    wait: 1d\n    next: b\n  - id: b\n    wait: 1d\n    next: a\n";
    let out = validate(&journey(steps));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("j.yaml:4:9: steps form a cycle: a -> b -> a"),
        "{}",
        out.stderr
    );
}

#[test]
fn templates_that_do_not_compile_are_errors() {
    let out = validate(&journey(
        "  - id: send\n    webhook:\n      url: \"{{ env.HOOK_URL }}/x\"\n      body: { a: \"{{ customer.id | }}\" }\n",
    ));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("j.yaml:7:18"), "{}", out.stderr);
    assert!(out.stderr.contains("does not compile"), "{}", out.stderr);
}

#[test]
fn braces_inside_an_expression_are_errors() {
    let steps = format!(
        "  - id: pick\n    branch:\n      - when: \"{{{{ customer.vip }}}}\"\n        goto: send\n{GOOD_STEP}"
    );
    let out = validate(&journey(&steps));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("j.yaml:6:15"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("is an expression: write it without `{{ }}`"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_split_must_add_up_to_100() {
    let steps = format!(
        "  - id: ab\n    split: [{{percent: 50, goto: send}}, {{percent: 40, goto: send}}]\n{GOOD_STEP}"
    );
    let out = validate(&journey(&steps));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("j.yaml:5:12: split percentages add up to 90, not 100"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_origin_must_come_from_literals_and_env() {
    let out = validate(&journey(
        "  - id: send\n    webhook:\n      url: \"https://{{ customer.domain }}/hook\"\n",
    ));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("j.yaml:6:12"), "{}", out.stderr);
    assert!(
        out.stderr.contains("must come from literals and `env`"),
        "{}",
        out.stderr
    );
}

#[test]
fn months_are_refused_in_waits() {
    let out = validate(&journey(&format!(
        "  - id: pause\n    wait: 1M\n{GOOD_STEP}"
    )));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("j.yaml:5:11"), "{}", out.stderr);
    assert!(out.stderr.contains("months and years"), "{}", out.stderr);
}

#[test]
fn a_bad_value_is_placed_on_its_own_line() {
    let out = validate(&journey(
        "  - id: send\n    webhook:\n      url: \"http://127.0.0.1:9/hook\"\n      timeout: 5x\n",
    ));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("j.yaml:7:16"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`5x` is not a duration: write whole numbers with the units"),
        "{}",
        out.stderr
    );
}

#[test]
fn unreachable_steps_warn_and_strict_fails() {
    let steps =
        format!("{GOOD_STEP}  - id: done\n    end: completed\n  - id: orphan\n    end: failed\n");
    let t = Test::new();
    t.file("j.yaml", &journey(&steps));
    let out = t.run(&["validate", "j.yaml"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr
            .contains("j.yaml:9:9: warning: step `orphan` can never be reached"),
        "{}",
        out.stderr
    );
    let strict = t.run(&["validate", "j.yaml", "--strict"]);
    assert_eq!(strict.code, 2);
    assert!(
        strict
            .stderr
            .contains("step `orphan` can never be reached (--strict)"),
        "{}",
        strict.stderr
    );
}

#[test]
fn every_error_of_a_file_is_reported_at_once() {
    let steps = "  - id: a\n    next: nowhere\n    wait: 1d\n  - id: a\n    end: completed\n";
    let out = validate(&journey(steps));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no step `nowhere`"), "{}", out.stderr);
    assert!(
        out.stderr.contains("duplicate step id `a`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("2 error(s)"), "{}", out.stderr);
}

#[test]
fn unknown_fixture_keys_are_errors() {
    let t = Test::new();
    t.file("j.yaml", &journey(GOOD_STEP));
    t.file("f.yaml", "customers: [{ id: c1 }]\nevnets: []\n");
    let out = t.dry_run(&[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr
            .contains("f.yaml:2:1: unknown key `evnets` at the top level; did you mean `events`?"),
        "{}",
        out.stderr
    );
}

#[test]
fn duplicate_customer_ids_are_errors() {
    let t = Test::new();
    t.file("j.yaml", &journey(GOOD_STEP));
    t.file("a.yaml", "customers: [{ id: c1 }]\n");
    t.file("b.yaml", "customers:\n  - { id: c1 }\n");
    let out = t.run(&[
        "run",
        "--dry-run",
        "j.yaml",
        "--fixtures",
        "a.yaml",
        "--fixtures",
        "b.yaml",
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("b.yaml:2:5: duplicate customer id `c1`"),
        "{}",
        out.stderr
    );
}

#[test]
fn settings_for_later_stages_are_checked_now() {
    let text = format!(
        "journey: j\ntrigger: {{ event: signup }}\nsend_window: {{ hours: \"9am-8pm\" }}\ndefaults: {{ rate_limit: fast }}\nsteps:\n{GOOD_STEP}    frequency_cap: {{ channel: email, max: 0, per: 7d }}\n"
    );
    let out = validate(&text);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr
            .contains("j.yaml:3:23: send window hours `9am-8pm` must look like `09:00-20:00`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("j.yaml:4:25: `defaults.rate_limit`: rate `fast` must be a whole number above 0 per `s`, `m` or `h`, like `100/s`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("`frequency_cap` needs `max` of at least 1"),
        "{}",
        out.stderr
    );
}

#[test]
fn bodies_must_satisfy_their_schema_placeholders_aside() {
    let t = Test::new();
    t.file(
        "schemas/incentive.yaml",
        "type: object\nrequired: [customer_id, cart_value]\nproperties:\n  customer_id: { type: string }\n  cart_value: { type: number, minimum: 0 }\n  token: { type: string, minLength: 20 }\n",
    );
    t.file(
        "j.yaml",
        "journey: j\ntrigger: { segment: \"true\" }\nsteps:\n  - id: send\n    webhook:\n      url: \"{{ env.HOOK_URL }}/x\"\n      schema: schemas/incentive.yaml\n      body: { customer_id: \"{{ customer.id }}\", cart_value: \"{{ customer.cart }}\", token: \"{{ secret.TOKEN }}\" }\n",
    );
    t.file(
        "f.yaml",
        "customers:\n  - { id: good, cart: 12.5 }\n  - { id: bad, cart: \"lots\" }\n",
    );
    let out = t.run(&["run", "--dry-run", "j.yaml", "--fixtures", "f.yaml"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stdout.contains("1 completed / 0 failed / 1 invalid"),
        "the <secret.TOKEN> placeholder is not held against the body: {}",
        out.stdout
    );
    assert!(out.stderr.contains("j.yaml:7:15: journey `j`, step `send`, `steps[0].webhook.schema`: the body does not satisfy `schemas/incentive.yaml`: /cart_value:"), "{}", out.stderr);
    assert!(out.stderr.contains("(1 entry, e.g. bad)"), "{}", out.stderr);
    t.file(
        "j.yaml",
        &t.read("j.yaml")
            .replace("schemas/incentive.yaml", "schemas/missing.yaml"),
    );
    let missing = t.run(&["validate", "j.yaml"]);
    assert_eq!(missing.code, 2, "{}", missing.all());
    assert!(
        missing
            .stderr
            .contains("j.yaml:7:15: cannot read the schema"),
        "{}",
        missing.stderr
    );
}

#[test]
fn every_duration_and_rate_follows_one_rule_and_names_its_key() {
    let webhook = "  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/hook\" }\n";
    for (defaults, said) in [
        (
            "{ timeout: 4sec }",
            "defaults.timeout: `4sec` is not a duration",
        ),
        (
            "{ timeout: \"4 sec\" }",
            "defaults.timeout: `4 sec` is not a duration",
        ),
        (
            "{ timeout: 4seconds }",
            "defaults.timeout: `4seconds` is not a duration",
        ),
        ("{ timeout: 0s }", "`defaults.timeout` must be more than 0"),
        (
            "{ timeout: 1mo }",
            "defaults.timeout: `1mo`: months and years are not fixed lengths",
        ),
        (
            "{ rate_limit: 1.5/s }",
            "rate `1.5/s` must be a whole number above 0",
        ),
    ] {
        let out = validate(&format!(
            "journey: j\ntrigger: {{ event: signup }}\ndefaults: {defaults}\nsteps:\n{webhook}"
        ));
        assert_eq!(out.code, 2, "{defaults}: {}", out.all());
        assert!(out.stderr.contains(said), "{defaults}: {}", out.stderr);
    }
    for (wait, said) in [
        ("3 days", "`3 days` is not a duration"),
        ("1mo", "months and years are not fixed lengths"),
        ("4sec", "`4sec` is not a duration"),
    ] {
        let out = validate(&journey(&format!("  - id: w\n    wait: {wait}\n{webhook}")));
        assert_eq!(out.code, 2, "{wait}: {}", out.all());
        assert!(out.stderr.contains(said), "{wait}: {}", out.stderr);
    }
    let t = Test::new();
    t.file("j.yaml", &journey(webhook));
    t.file("f.yaml", "customers: [{ id: c1 }]\n");
    let out = t.dry_run(&["--rate", "1.5/s"]);
    assert_eq!(out.code, 2, "--rate follows the same rule: {}", out.all());
}

#[test]
fn unknown_filters_vars_saved_values_and_steps_are_errors_with_suggestions() {
    let text = "journey: j\ntrigger: { segment: \"true\" }\nvars:\n  name: \"{{ customer.id }}\"\nsteps:\n  - id: ask\n    webhook: { url: \"{{ env.HOOK_URL }}/ask\", body: { p: \"{{ customer.phone | normalise_phone }}\", n: \"{{ vars.nmae }}\" } }\n    save: { score: \"response.body.score\" }\n  - id: log\n    webhook: { url: \"{{ env.HOOK_URL }}/log\", async: true }\n  - id: use\n    webhook: { url: \"{{ env.HOOK_URL }}/use\", body: { s: \"{{ saved.scor }}\", a: \"{{ steps.ak.status }}\", l: \"{{ steps.log.status }}\" } }\n";
    let out = validate(text);
    assert_eq!(out.code, 2, "{}", out.all());
    for said in [
        "unknown filter `normalise_phone`; did you mean `normalize_phone`?",
        "unknown `vars` `nmae`; did you mean `name`?",
        "unknown saved value (no step saves it) `scor`; did you mean `score`?",
        "unknown step `ak`; did you mean `ask`?",
        "step `log` is async: it has no status to read through `steps.log`",
    ] {
        assert!(out.stderr.contains(said), "{said}\n{}", out.stderr);
    }
    assert!(out.stderr.contains("j.yaml:7:"), "{}", out.stderr);
}

#[test]
fn every_unknown_key_of_every_file_is_reported_in_one_run() {
    let t = Test::new();
    t.file(
        "journeys/a.yaml",
        "journey: a\ntrigger: { segment: \"true\" }\nstepz: []\nsteps:\n  - id: s\n    on_falure: stop\n    end: completed\n  - id: t\n    nxt: s\n    end: completed\n",
    );
    t.file("journeys/b.yaml", "journey: b\ntrigger: { segment: \"true\" }\nsteps:\n  - id: s\n    ned: completed\n    end: completed\n");
    let out = t.run(&["validate", "journeys/"]);
    assert_eq!(out.code, 2, "{}", out.all());
    for said in [
        "a.yaml:3:1: unknown key `stepz` at the top level; did you mean `steps`?",
        "unknown key `on_falure` in `steps[0]`; did you mean `on_failure`?",
        "unknown key `nxt` in `steps[1]`; did you mean `next`?",
        "b.yaml:5:5: unknown key `ned` in `steps[0]`; did you mean `end`?",
        "4 error(s); nothing was run",
    ] {
        assert!(out.stderr.contains(said), "{said}\n{}", out.stderr);
    }
}

#[test]
fn validate_reads_a_csv_that_run_reads_with_its_delimiter() {
    let t = Test::new();
    t.file(
        "j.yaml",
        "journey: j\ntrigger: { segment: \"customer.attributes.plan == 'trial'\" }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/hook\", body: { who: \"{{ customer.id }}\", plan: \"{{ customer.attributes.plan }}\" } }\n",
    );
    t.file("c.csv", "id;attributes.plan\nc1;trial\nc2;paid\n");
    let run = t.run(&[
        "run",
        "--dry-run",
        "j.yaml",
        "--fixtures",
        "c.csv",
        "--csv-delimiter",
        ";",
    ]);
    assert_eq!(run.code, 0, "{}", run.all());
    let out = t.run(&[
        "validate",
        "j.yaml",
        "--fixtures",
        "c.csv",
        "--csv-delimiter",
        ";",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout
            .contains("ok: 1 journey(s) valid, 1 entries rendered"),
        "{}",
        out.all()
    );
}

#[test]
fn validate_output_json_is_one_document_with_the_verdict_and_the_same_exit_code() {
    let t = Test::new();
    t.file(
        "j.yaml",
        "journey: j\ntrigger: { segment: \"true\" }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/hook\", body: { email: \"{{ customer.email }}\" } }\n",
    );
    t.file("good.yaml", "customers: [{ id: c1, email: a@b.c }]\n");
    t.file(
        "bad.yaml",
        "customers: [{ id: c1, email: a@b.c }, { id: c2 }]\n",
    );
    let good = t.run(&[
        "validate",
        "j.yaml",
        "--fixtures",
        "good.yaml",
        "--output",
        "json",
    ]);
    assert_eq!(good.code, 0, "{}", good.all());
    let doc = crate::support::json(&good);
    assert_eq!(
        (doc["valid"].clone(), doc["entries"].clone()),
        (true.into(), 1.into())
    );
    let bad = t.run(&[
        "validate",
        "j.yaml",
        "--fixtures",
        "bad.yaml",
        "--output",
        "json",
    ]);
    assert_eq!(bad.code, 1, "{}", bad.all());
    let doc = crate::support::json(&bad);
    assert_eq!(doc["invalid"], 1);
    assert_eq!(doc["errors"][0]["examples"][0], "c2");
    t.file("broken.yaml", "journey: j\nbogus: 1\n");
    let broken = t.run(&["validate", "broken.yaml", "--output", "json"]);
    assert_eq!(broken.code, 2, "{}", broken.all());
    let doc = crate::support::json(&broken);
    assert_eq!(doc["valid"], false);
    assert!(
        doc["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("broken.yaml:2:1"),
        "{doc}"
    );
}
