//! What arrives: typed bodies, auth, identity headers, `--show` as sent, header and body limits.

use super::*;

#[test]
fn typed_bodies_auth_and_identity_arrive() {
    let server = TestServer::start();
    let step = r#"  - id: send
    webhook:
      url: "{{ env.HOOK_URL }}/send?c={{ customer.id }}"
      auth: { bearer: "{{ secret.TOKEN }}" }
      headers: { X-Campaign: "{{ journey.name }}" }
      body: { ltv: "{{ customer.attributes.ltv }}", vip: "{{ customer.attributes.vip }}", tags: "{{ customer.attributes.tags }}", text: "id {{ customer.id }}" }
"#;
    let t = setup(&server, &one(step), CUSTOMER);
    let out = send(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let reqs = server.requests_to("/send");
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/send?c=c1");
    assert_eq!(
        r.json(),
        serde_json::json!({ "ltv": 420.5, "vip": true, "tags": ["x", "y"], "text": "id c1" })
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-campaign"), Some("j"));
    assert!(r.header("user-agent").unwrap().starts_with("journey/"));
    assert!(r.header("idempotency-key").unwrap().starts_with("dlv_"));
    assert!(r.header("traceparent").unwrap().starts_with("00-"));
    assert!(
        out.stdout.contains("1 sent / 1 ok / 0 failed"),
        "{}",
        out.stdout
    );
}

#[test]
fn basic_and_header_auth() {
    let server = TestServer::start();
    let steps = r#"  - id: basic
    webhook: { url: "{{ env.HOOK_URL }}/basic", auth: { basic: { user: acct, password: "{{ secret.TOKEN }}" } }, body: {} }
  - id: keyed
    webhook: { url: "{{ env.HOOK_URL }}/keyed", auth: { header: { name: X-Api-Key, value: "{{ secret.TOKEN }}" } }, form: { to: "{{ customer.email }}", n: 2 } }
"#;
    let t = setup(&server, &one(steps), CUSTOMER);
    let out = send(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let basic = &server.requests_to("/basic")[0];
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("acct:{TOKEN}"));
    assert_eq!(
        basic.header("authorization"),
        Some(format!("Basic {expected}").as_str())
    );
    let keyed = &server.requests_to("/keyed")[0];
    assert_eq!(keyed.header("x-api-key"), Some(TOKEN));
    assert_eq!(
        keyed.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(String::from_utf8_lossy(&keyed.body), "to=a%40b.c&n=2");
}

#[test]
fn show_prints_exactly_what_is_sent() {
    let server = TestServer::start();
    let step = "  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x?c={{ customer.id }}\", body: { n: \"{{ customer.attributes.ltv }}\", name: \"a \\\"quoted\\\" name\" } }\n";
    let t = setup(&server, &one(step), CUSTOMER);
    let out = send(&t, &["--show", "requests"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let r = &server.requests_to("/x")[0];
    assert!(
        out.stdout.contains(&format!("POST {}/x?c=c1", server.url)),
        "{}",
        out.stdout
    );
    for (name, value) in r
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("idempotency") || n == "traceparent" || n == "x-source")
    {
        assert!(
            out.stdout
                .to_ascii_lowercase()
                .contains(&format!("{name}: {value}")),
            "{name} differs:\n{}",
            out.stdout
        );
    }
    let start = out.stdout.find("\n{").unwrap();
    let shown: serde_json::Value = serde_json::Deserializer::from_str(&out.stdout[start..])
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(shown, r.json());
}

#[test]
fn the_idempotency_header_can_be_renamed_or_left_out() {
    let server = TestServer::start();
    let steps = r#"  - id: renamed
    webhook: { url: "{{ env.HOOK_URL }}/renamed", idempotency_header: X-Request-Key, body: {} }
  - id: omitted
    webhook: { url: "{{ env.HOOK_URL }}/omitted", idempotency_header: false, body: {} }
"#;
    let t = setup(&server, &one(steps), CUSTOMER);
    assert_eq!(send(&t, &[]).code, 0);
    let renamed = &server.requests_to("/renamed")[0];
    assert!(renamed.header("x-request-key").unwrap().starts_with("dlv_"));
    assert!(renamed.header("idempotency-key").is_none());
    assert!(
        server.requests_to("/omitted")[0]
            .header("idempotency-key")
            .is_none()
    );
}

#[test]
fn a_line_break_in_a_header_is_a_render_error_not_a_request() {
    let server = TestServer::start();
    let step = "  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x\", headers: { X-Name: \"{{ customer.name }}\" }, body: {} }\n";
    let t = setup(
        &server,
        &one(step),
        "customers:\n  - { id: c1, name: \"Ann\\r\\nX-Admin: yes\" }\n  - { id: c2, name: Bob }\n",
    );
    let out = send(&t, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("a header value may not contain a line break"),
        "{}",
        out.stderr
    );
    let reqs = server.requests_to("/x");
    assert_eq!(reqs.len(), 1, "only Bob's request is sent");
    assert!(reqs[0].header("x-admin").is_none());
}

#[test]
fn response_bodies_are_capped_at_one_mebibyte() {
    let server = TestServer::start();
    let big = "x".repeat(3 * 1024 * 1024);
    server.script(
        "/big",
        vec![crate::support::server::Reply {
            status: 200,
            headers: vec![],
            body: big,
            delay: Duration::ZERO,
        }],
    );
    let steps = r#"  - id: big
    webhook: { url: "{{ env.HOOK_URL }}/big", body: {} }
    save: { size: "response.body | length" }
  - id: report
    webhook: { url: "{{ env.HOOK_URL }}/report", body: { size: "{{ saved.size }}" } }
"#;
    let t = setup(&server, &one(steps), CUSTOMER);
    assert_eq!(send(&t, &[]).code, 0);
    assert_eq!(server.requests_to("/report")[0].json()["size"], 1024 * 1024);
}

#[test]
fn show_curl_runs_with_the_real_curl_and_sends_the_same_request() {
    let server = TestServer::start();
    let step = r#"  - id: send
    webhook:
      url: "{{ env.HOOK_URL }}/curl?c={{ customer.id }}"
      auth: { bearer: "{{ secret.TOKEN }}" }
      headers: { X-Note: "it's {{ customer.id }}" }
      body: { id: "{{ customer.id }}", quote: "a 'quoted' \"text\" $HOME", token: "{{ secret.TOKEN }}" }
  - id: basic
    webhook: { url: "{{ env.HOOK_URL }}/basic", auth: { basic: { user: acct, password: "{{ secret.TOKEN }}" } }, body: {} }
"#;
    let t = setup(&server, &one(step), CUSTOMER);
    let out = t.dry_run(&["--show", "curl"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        !out.stdout.contains(TOKEN),
        "no secret value in the commands:\n{}",
        out.stdout
    );
    assert!(out.stdout.contains(r#""$TOKEN""#), "{}", out.stdout);
    assert!(server.requests().is_empty(), "a dry-run sends nothing");
    let script: String = out
        .stdout
        .split("\n\n")
        .filter(|b| b.contains("curl "))
        .map(|b| format!("{b}\n"))
        .collect();
    let status = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("TOKEN", TOKEN)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("sh and curl");
    assert!(status.success());
    let got = &server.requests_to("/curl")[0];
    assert_eq!(got.target, "/curl?c=c1");
    assert_eq!(
        got.json(),
        serde_json::json!({ "id": "c1", "quote": "a 'quoted' \"text\" $HOME", "token": TOKEN })
    );
    assert_eq!(
        got.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(got.header("x-note"), Some("it's c1"));
    let basic = &server.requests_to("/basic")[0];
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("acct:{TOKEN}"));
    assert_eq!(
        basic.header("authorization"),
        Some(format!("Basic {expected}").as_str())
    );
}

#[test]
fn credentials_in_the_url_are_sent_as_basic_auth() {
    let server = TestServer::start();
    let with_user = server.url.replacen("http://", "http://ops:pw@", 1);
    let t = Test::new().env("HOOK_URL", &with_user);
    t.file(
        "j.yaml",
        &one("  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x\", body: {} }\n"),
    );
    t.file("f.yaml", "customers: [{ id: c1 }]\n");
    let out = send(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let got = server.requests_to("/x");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("authorization"), Some("Basic b3BzOnB3"));
}
