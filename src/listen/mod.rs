//! `journey listen`: a webhook receiver on 127.0.0.1 that prints what arrives, checks signatures,
//! flags repeated idempotency keys, and answers from a script.

pub(crate) mod respond;
pub(crate) mod verify;

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
    /// Idempotency key → what was seen of it.
    keys: HashMap<String, KeySeen>,
    rng: Option<fastrand::Rng>,
}

/// One idempotency key's requests so far.
struct KeySeen {
    /// The request that first carried it.
    first: usize,
    /// How many came since.
    times: usize,
    /// The first request with it that was answered 2xx: after that, the key is delivered.
    delivered: Option<usize>,
}

/// What an earlier request with the same key makes of this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// The key is new.
    First,
    /// The key was seen and never answered 2xx: the sender retries (after a 5xx, a timeout).
    Retry { first: usize },
    /// The key was answered 2xx already: the sender sent a delivered request again.
    Duplicate { of: usize },
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
    repeat: Repeat,
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
    let (n, repeat, nth) = remember(&s, key.as_deref());
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
        repeat,
        status: answer.status,
    };
    if (200..300).contains(&answer.status) {
        delivered(&s, key.as_deref(), n);
    }
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

/// Numbers the request; returns its number, what an earlier request with the same key makes of
/// it, and how many earlier requests carried that key.
fn remember(s: &Shared, key: Option<&str>) -> (usize, Repeat, usize) {
    let mut m = s.memory.lock().expect("not poisoned");
    m.count += 1;
    let n = m.count;
    let Some(key) = key else {
        return (n, Repeat::First, 0);
    };
    match m.keys.get_mut(key) {
        Some(seen) => {
            seen.times += 1;
            let repeat = match seen.delivered {
                Some(of) => Repeat::Duplicate { of },
                None => Repeat::Retry { first: seen.first },
            };
            (n, repeat, seen.times)
        }
        None => {
            let seen = KeySeen {
                first: n,
                times: 0,
                delivered: None,
            };
            m.keys.insert(key.to_string(), seen);
            (n, Repeat::First, 0)
        }
    }
}

/// Marks the key delivered by request `n` (answered 2xx), unless an earlier one was.
fn delivered(s: &Shared, key: Option<&str>, n: usize) {
    let mut m = s.memory.lock().expect("not poisoned");
    if let Some(seen) = key.and_then(|k| m.keys.get_mut(k)) {
        seen.delivered.get_or_insert(n);
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
    match seen.repeat {
        Repeat::Duplicate { of } => out.push_str(&format!(
            "  DUPLICATE: this idempotency key was already delivered (answered 2xx) in request #{of}\n"
        )),
        Repeat::Retry { first } => out.push_str(&format!(
            "  retry of request #{first} (this key was not answered 2xx yet)\n"
        )),
        Repeat::First => {}
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
            "duplicate_of": match seen.repeat { Repeat::Duplicate { of } => Some(of), _ => None },
            "retry_of": match seen.repeat { Repeat::Retry { first } => Some(first), _ => None },
            "status": seen.status,
        });
        let _ = writeln!(f, "{line}");
    }
}
