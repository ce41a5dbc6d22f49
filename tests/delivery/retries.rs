//! What is retried and how: signatures that verify, one idempotency key across retries, `Retry-After`, timeouts, refused and closed connections.

use super::*;

#[test]
fn signatures_verify_and_retries_keep_one_key() {
    let server = TestServer::start();
    server.script(
        "/signed",
        vec![
            Reply::status(503),
            Reply::status(503),
            Reply::json(200, serde_json::json!({})),
        ],
    );
    let steps = r#"  - id: signed
    webhook:
      url: "{{ env.HOOK_URL }}/signed"
      sign: { standard_webhooks: "{{ secret.WHSEC }}" }
      retry: { attempts: 3, backoff: 10ms }
      body: { id: "{{ customer.id }}" }
  - id: hmac
    webhook:
      url: "{{ env.HOOK_URL }}/hmac"
      sign: { hmac_sha256: { secret: "{{ secret.TOKEN }}", header: X-Signature } }
      body: { id: "{{ customer.id }}" }
"#;
    let t = setup(&server, &one(steps), CUSTOMER);
    let out = send(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    let signed = server.requests_to("/signed");
    assert_eq!(signed.len(), 3, "503, 503, then 200");
    for r in &signed {
        assert!(
            verify_standard_webhooks(r),
            "signature does not verify: {r:?}"
        );
    }
    let keys: std::collections::HashSet<_> = signed
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 1, "one idempotency key across retries");
    assert_eq!(
        signed[0].header("webhook-id"),
        signed[2].header("webhook-id")
    );
    assert_eq!(
        signed[0].header("webhook-id"),
        signed[0].header("idempotency-key")
    );
    let traces: std::collections::HashSet<_> = signed
        .iter()
        .map(|r| r.header("traceparent").unwrap()[3..35].to_string())
        .collect();
    assert_eq!(traces.len(), 1, "one trace per entry");
    let h = &server.requests_to("/hmac")[0];
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(&h.body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        h.header("x-signature"),
        Some(format!("sha256={hex}").as_str())
    );
    assert!(
        out.stdout.contains("2"),
        "retries are in the table: {}",
        out.stdout
    );
    let row = out.stdout.lines().find(|l| l.contains(" signed ")).unwrap();
    assert!(row.contains(" 2 "), "2 retries in the row: {row}");
}

#[test]
fn retry_after_is_honoured() {
    let server = TestServer::start();
    server.script(
        "/busy",
        vec![
            Reply::status(429).header("Retry-After", "1"),
            Reply::status(200),
        ],
    );
    server.script(
        "/later",
        vec![Reply::status(429).header("Retry-After", "120")],
    );
    let steps = r#"  - id: busy
    webhook: { url: "{{ env.HOOK_URL }}/busy", retry: { attempts: 2, backoff: 1h, max_backoff: 2h }, body: {} }
  - id: later
    webhook: { url: "{{ env.HOOK_URL }}/later", retry: { attempts: 5, max_backoff: 30s }, body: {} }
    on_failure: continue
"#;
    let t = setup(&server, &one(steps), CUSTOMER);
    let started = std::time::Instant::now();
    let out = send(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(server.requests_to("/busy").len(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the retry waited for Retry-After"
    );
    assert_eq!(
        server.requests_to("/later").len(),
        1,
        "Retry-After beyond max_backoff is not retried in this run"
    );
}

#[test]
fn client_errors_and_redirects_are_not_retried() {
    let server = TestServer::start();
    server.script("/bad", vec![Reply::status(400)]);
    server.script("/gone", vec![Reply::status(410)]);
    server.script(
        "/moved",
        vec![Reply::status(302).header("Location", "/elsewhere")],
    );
    let step = |id: &str| {
        format!(
            "  - id: {id}\n    webhook: {{ url: \"{{{{ env.HOOK_URL }}}}/{id}\", retry: {{ attempts: 3, backoff: 10ms }}, body: {{}} }}\n    on_failure: continue\n"
        )
    };
    let t = setup(
        &server,
        &one(&[step("bad"), step("gone"), step("moved")].concat()),
        CUSTOMER,
    );
    let out = send(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    for path in ["/bad", "/gone", "/moved"] {
        assert_eq!(server.requests_to(path).len(), 1, "{path} tried once");
    }
    assert!(
        server.requests_to("/elsewhere").is_empty(),
        "a redirect is not followed"
    );
    assert!(
        out.stdout.contains("3 sent / 0 ok / 3 failed"),
        "{}",
        out.stdout
    );
}

#[test]
fn timeouts_and_refused_connections_fail_after_retries() {
    let server = TestServer::start();
    server.script(
        "/slow",
        vec![Reply::status(200).delay(Duration::from_secs(3))],
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let steps = format!(
        "  - id: slow\n    webhook: {{ url: \"{{{{ env.HOOK_URL }}}}/slow\", timeout: 200ms, retry: {{ attempts: 2, backoff: 10ms }}, body: {{}} }}\n    on_failure: continue\n  - id: refused\n    webhook: {{ url: \"{closed_url}/x\", retry: {{ attempts: 2, backoff: 10ms }}, body: {{}} }}\n"
    );
    let t = setup(&server, &one(&steps), CUSTOMER);
    let out = send(&t, &["--log", "attempts.ndjson"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(server.requests_to("/slow").len(), 2);
    let log = t.read("attempts.ndjson");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "one line per attempt: {log}");
    assert!(
        lines
            .iter()
            .all(|l| l["run_id"].as_str().unwrap().starts_with("run_"))
    );
    assert_eq!(lines[0]["error"], "timeout");
    // A timeout took the time it waited, not 0 ms.
    let waited = lines[0]["latency_ms"].as_f64().unwrap();
    assert!((190.0..2000.0).contains(&waited), "{log}");
    assert_eq!(lines[1]["attempt"], 2);
    assert!(
        lines[2]["error"].as_str().unwrap().contains("connect"),
        "{log}"
    );
    assert!(
        lines[0].get("request_body").is_none(),
        "no bodies unless --log-bodies"
    );
}

/// A receiver that answers each request on a connection that stays open (no
/// `connection: close`) and then closes it, as a server whose keep-alive timeout passed does:
/// the first request gets a 503, the next ones 200. Counts the requests it received.
fn closing_receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let status = match seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => "503 Service Unavailable",
                _ => "200 OK",
            };
            let mut stream = reader.into_inner();
            let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\n{{}}");
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (url, count)
}

#[test]
fn a_kept_alive_connection_the_server_closed_is_not_a_failed_attempt() {
    let (url, count) = closing_receiver();
    let t = Test::new().env("HOOK_URL", &url);
    t.file(
        "j.yaml",
        &one("  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/x\", body: { c: \"{{ customer.id }}\" }, retry: { attempts: 2, backoff: 50ms } }\n"),
    );
    t.file("f.yaml", "customers: [{ id: c1 }]\n");
    let out = send(&t, &["--concurrency", "1", "--output", "json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the retry went out once, on a new connection"
    );
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["totals"]["completed"], 1, "{report}");
    assert_eq!(report["steps"][0]["retries"], 1, "{report}");
}
