//! `journey listen`: a webhook receiver on 127.0.0.1 that prints what arrives, checks signatures,
//! flags repeated idempotency keys, and answers from a script.

pub mod respond;
pub mod verify;

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::redact::{MASK, Redactor, SENSITIVE_HEADERS};
use respond::Responder;
use verify::Verdict;

/// How the receiver runs.
pub struct Listener {
    /// The secrets signatures are checked with (valid when one matches).
    pub secrets: Vec<String>,
    /// Answers.
    pub responder: Responder,
    /// `--record`: one NDJSON line per request.
    pub record: Option<std::fs::File>,
}

/// What the receiver remembers.
#[derive(Default)]
struct Memory {
    count: usize,
    /// Idempotency key → the number of the request that first carried it, and how many since.
    keys: HashMap<String, (usize, usize)>,
    rng: Option<fastrand::Rng>,
}

struct Shared {
    listener: Mutex<Listener>,
    memory: Mutex<Memory>,
    redactor: Redactor,
}

/// Serves until the process is stopped; prints `listening on URL` first.
pub async fn serve(port: u16, listener: Listener) -> anyhow::Result<()> {
    let socket = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = socket.local_addr()?;
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;
    let redactor = Redactor::every_length(listener.secrets.iter().map(String::as_str));
    let shared = Arc::new(Shared {
        listener: Mutex::new(listener),
        memory: Mutex::default(),
        redactor,
    });
    let app = axum::Router::new().fallback(handle).with_state(shared);
    axum::serve(socket, app).await?;
    Ok(())
}

/// One received request, as printed and recorded.
struct Seen {
    n: usize,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    verdict: Verdict,
    duplicate_of: Option<usize>,
    status: u16,
}

async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let key = headers
        .iter()
        .find(|(k, _)| k == "idempotency-key" || k == "webhook-id")
        .map(|(_, v)| v.clone());
    let (n, duplicate_of, nth) = remember(&s, key);
    let (answer, verdict) = {
        let l = s.listener.lock().expect("not poisoned");
        let mut memory = s.memory.lock().expect("not poisoned");
        let rng = memory.rng.get_or_insert_with(fastrand::Rng::new);
        let answer = l.responder.answer(uri.path(), nth, rng);
        let verdict =
            verify::verify_any(&headers, &body, &l.secrets, chrono::Utc::now().timestamp());
        (answer, verdict)
    };
    let target = s.redactor.redact(
        &uri.path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
    );
    let seen = Seen {
        n,
        method: method.to_string(),
        target,
        headers,
        body: body.to_vec(),
        verdict,
        duplicate_of,
        status: answer.status,
    };
    print(&s, &seen);
    tokio::time::sleep(answer.delay).await;
    let mut resp = (
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK),
        answer.body,
    )
        .into_response();
    for (k, v) in answer.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// Numbers the request; returns its number, the first request with the same key, and how many
/// earlier requests carried that key.
fn remember(s: &Shared, key: Option<String>) -> (usize, Option<usize>, usize) {
    let mut m = s.memory.lock().expect("not poisoned");
    m.count += 1;
    let n = m.count;
    let Some(key) = key else { return (n, None, 0) };
    match m.keys.get_mut(&key) {
        Some((first, times)) => {
            *times += 1;
            (n, Some(*first), *times)
        }
        None => {
            m.keys.insert(key, (n, 0));
            (n, None, 0)
        }
    }
}

fn shown_headers(s: &Shared, seen: &Seen) -> Vec<(String, String)> {
    seen.headers
        .iter()
        .map(|(k, v)| {
            let value = if SENSITIVE_HEADERS.contains(&k.as_str()) {
                MASK.to_string()
            } else {
                s.redactor.redact(v)
            };
            (k.clone(), value)
        })
        .collect()
}

fn body_value(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned().into())
}

/// The printed form of one request: a pure function of what arrived.
fn text(seen: &Seen, headers: &[(String, String)], redactor: &Redactor) -> String {
    let mut out = format!("#{} {} {}\n", seen.n, seen.method, seen.target);
    for (k, v) in headers {
        out.push_str(&format!("  {k}: {v}\n"));
    }
    let body = match body_value(&seen.body) {
        serde_json::Value::String(t) => t,
        v => serde_json::to_string_pretty(&v).unwrap_or_default(),
    };
    if !body.is_empty() {
        for line in redactor.redact(&body).lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push_str(&format!("  signature: {}\n", seen.verdict));
    if let Some(first) = seen.duplicate_of {
        out.push_str(&format!(
            "  DUPLICATE: this idempotency key was first seen in request #{first}\n"
        ));
    }
    out.push_str(&format!("  -> {}\n", seen.status));
    out
}

fn print(s: &Shared, seen: &Seen) {
    let headers = shown_headers(s, seen);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text(seen, &headers, &s.redactor).as_bytes());
    let _ = stdout.flush();
    let mut l = s.listener.lock().expect("not poisoned");
    if let Some(f) = l.record.as_mut() {
        let line = serde_json::json!({
            "n": seen.n, "at": crate::clock::rfc3339(chrono::Utc::now()), "method": seen.method,
            "target": seen.target,
            "headers": headers.into_iter().map(|(k, v)| (k, v.into())).collect::<serde_json::Map<_, _>>(),
            "body": s.redactor.redact_json(&body_value(&seen.body)), "signature": seen.verdict.to_string(),
            "duplicate_of": seen.duplicate_of, "status": seen.status,
        });
        let _ = writeln!(f, "{line}");
    }
}
