//! The seam between the runner and the world: an executor sends one attempt of a built request.
//!
//! The runner owns retries, branches and saves; executors only answer "what came back". The dry-run
//! executor answers from mocks and never sleeps; the HTTP executor sends for real.

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use super::request::Request;

/// One attempt of one delivery.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The journey name.
    pub journey: &'a str,
    /// The step id.
    pub step: &'a str,
    /// The request, identical on every attempt but for per-attempt headers.
    pub request: &'a Request,
    /// 1 for the first try.
    pub number: u32,
    /// The entry's context (mock conditions build their value from it, only when they need it).
    pub context: &'a crate::render::context::EntryContext,
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers as received.
    pub headers: Headers,
    /// The body, capped at 1 MiB.
    pub body: Vec<u8>,
    /// Time to the full response.
    pub latency: Duration,
}

impl Response {
    /// A header by name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        match &self.headers {
            Headers::Received(map) => map.get(name).map(|v| text_of(v)),
            Headers::Given(pairs) => pairs
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| Cow::from(v.as_str())),
        }
    }
}

/// A response's headers: as the client parsed them (made into text only when something reads
/// them, which most runs never do: that was a dozen allocations a response), or as a mock
/// gave them. Boxed, since a response is moved several times and a map is four times the
/// size of a `Vec`.
#[derive(Debug, Clone)]
pub enum Headers {
    /// A real response's.
    Received(Box<http::HeaderMap>),
    /// A mocked response's, in order.
    Given(Vec<(String, String)>),
}

impl Headers {
    /// Name/value pairs in order (values read as UTF-8, lossily).
    pub fn pairs(&self) -> Vec<(String, String)> {
        match self {
            Headers::Received(map) => map
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), text_of(v).into_owned()))
                .collect(),
            Headers::Given(pairs) => pairs.clone(),
        }
    }
}

/// A header's value as text (read as UTF-8, lossily).
fn text_of(v: &http::HeaderValue) -> Cow<'_, str> {
    match v.to_str() {
        Ok(text) => Cow::from(text),
        Err(_) => String::from_utf8_lossy(v.as_bytes()),
    }
}

/// A failure below HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// No complete response within the timeout.
    Timeout,
    /// The connection could not be made.
    Connect(String),
    /// The connection broke.
    Reset(String),
    /// The server's TLS certificate is not trusted, or it refused ours: trying again changes
    /// nothing.
    Untrusted(String),
}

impl TransportError {
    /// The word a mock uses for it: `timeout`, `connect` or `reset`.
    pub fn kind(&self) -> &'static str {
        match self {
            TransportError::Timeout => "timeout",
            TransportError::Connect(_) | TransportError::Untrusted(_) => "connect",
            TransportError::Reset(_) => "reset",
        }
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Timeout => write!(f, "timeout"),
            TransportError::Connect(m) => write!(f, "connect error: {m}"),
            TransportError::Reset(m) => write!(f, "connection reset: {m}"),
            TransportError::Untrusted(m) => write!(f, "TLS: {m}"),
        }
    }
}

/// What one attempt produced.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A response arrived.
    Response(Response),
    /// The request did not get a response.
    Transport(TransportError),
    /// Dry-run only: no mock matched, so success is assumed.
    Assumed,
    /// Dry-run only: a mock condition could not be evaluated.
    MockFailed(crate::render::RenderError),
}

/// Sends attempts and waits between them.
pub trait Executor: Send + Sync + Clone + 'static {
    /// Sends one attempt.
    fn send(&self, attempt: Attempt<'_>) -> impl Future<Output = Outcome> + Send;
    /// Waits before a retry (a dry-run does not).
    fn pause(&self, delay: Duration) -> impl Future<Output = ()> + Send;
    /// True when responses come from mocks, not the network (a dry-run): its log lines say so.
    fn mocks(&self) -> bool {
        false
    }
    /// The executor of one lane of a run (its own connections, say); a clone by default.
    fn for_lane(&self) -> Self {
        self.clone()
    }
}
