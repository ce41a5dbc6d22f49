//! A real HTTP server on 127.0.0.1 that records every request and answers from a script.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header names lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How many other requests were in flight when this one arrived.
    pub concurrent: usize,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<Recorded>,
    /// Per path: replies in order; the last repeats.
    script: HashMap<String, Vec<Reply>>,
    served: HashMap<String, usize>,
    in_flight: HashMap<String, usize>,
    max_in_flight: HashMap<String, usize>,
    total_in_flight: usize,
}

type Shared = Arc<Mutex<Inner>>;

/// The running server; it stops when the test process ends.
pub struct TestServer {
    pub url: String,
    inner: Shared,
}

impl TestServer {
    pub fn start() -> TestServer {
        let inner: Shared = Arc::default();
        let state = Arc::clone(&inner);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().fallback(handle).with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        TestServer {
            url: format!("http://{addr}"),
            inner,
        }
    }

    /// Answers requests to `path` with these replies in turn; the last one repeats.
    pub fn script(&self, path: &str, replies: Vec<Reply>) -> &Self {
        self.inner
            .lock()
            .unwrap()
            .script
            .insert(path.to_string(), replies);
        self
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// The most requests to `path` that were ever in flight at once.
    pub fn max_in_flight(&self, path: &str) -> usize {
        self.inner
            .lock()
            .unwrap()
            .max_in_flight
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path() == path)
            .collect()
    }

    /// How many requests have arrived (without copying them).
    pub fn count(&self) -> usize {
        self.inner.lock().unwrap().requests.len()
    }

    /// Waits (20 s at most) until `n` requests have arrived.
    pub fn wait_for(&self, n: usize) {
        let started = std::time::Instant::now();
        while self.count() < n && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

async fn handle(
    State(inner): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let path = uri.path().to_string();
    let reply = {
        let mut s = inner.lock().unwrap();
        let concurrent = s.total_in_flight;
        s.total_in_flight += 1;
        let now = *s
            .in_flight
            .entry(path.clone())
            .and_modify(|n| *n += 1)
            .or_insert(1);
        let max = s.max_in_flight.entry(path.clone()).or_insert(0);
        *max = (*max).max(now);
        s.requests.push(Recorded {
            method: method.to_string(),
            target,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: body.to_vec(),
            concurrent,
            at: std::time::Instant::now(),
        });
        let n = *s
            .served
            .entry(path.clone())
            .and_modify(|n| *n += 1)
            .or_insert(0);
        match s.script.get(&path) {
            Some(replies) if !replies.is_empty() => replies[n.min(replies.len() - 1)].clone(),
            _ => Reply::json(200, serde_json::json!({ "ok": true })),
        }
    };
    tokio::time::sleep(reply.delay).await;
    {
        let mut s = inner.lock().unwrap();
        s.total_in_flight -= 1;
        if let Some(n) = s.in_flight.get_mut(&path) {
            *n -= 1;
        }
    }
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (k, v) in reply.headers {
        let name = axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        resp.headers_mut().insert(name, v.parse().unwrap());
    }
    resp
}
