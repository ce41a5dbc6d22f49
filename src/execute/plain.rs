//! A lean HTTP/1.1 client for plain-http URLs (local receivers, in-cluster services): keep-alive
//! connections per `host:port`, owned by the lane's thread, straight on hyper. HTTPS goes
//! through reqwest.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;

use super::executor::{Headers, Outcome, Response, TransportError};
use crate::journey::plan::CONNECT_TIMEOUT;

type Sender = SendRequest<Full<Bytes>>;

/// Idle keep-alive connections by `host:port`.
#[derive(Debug, Default)]
pub struct Plain {
    idle: Mutex<foldhash::HashMap<String, Vec<Sender>>>,
}

/// One request, ready to go.
pub struct Call<'a> {
    /// The parsed `http://` URL.
    pub url: &'a url::Url,
    /// The method.
    pub method: http::Method,
    /// Headers in sending order: the request's, then the attempt's own.
    pub headers: [&'a [(String, String)]; 2],
    /// The body.
    pub body: &'a [u8],
    /// Total timeout (connect, send, read).
    pub timeout: Duration,
}

impl Plain {
    /// Sends `call` and reads the response (its body cut at [`super::http::MAX_BODY`]).
    pub async fn send(&self, call: Call<'_>) -> Outcome {
        let started = Instant::now();
        match tokio::time::timeout(call.timeout, self.exchange(call, started)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Transport(TransportError::Timeout),
        }
    }

    async fn exchange(&self, call: Call<'_>, started: Instant) -> Outcome {
        if call.url.host_str().is_none() {
            return Outcome::Transport(TransportError::Connect("the URL has no host".into()));
        }
        let addr = &call.url[url::Position::BeforeHost..url::Position::AfterPort];
        let mut req = match request(&call, addr) {
            Ok(req) => req,
            Err(e) => return Outcome::Transport(TransportError::Connect(e.to_string())),
        };
        // A kept-alive connection the server has closed meanwhile fails before the request is
        // written: it goes again on a new connection, so that is not a failed attempt.
        let mut reused = true;
        let (sender, resp) = loop {
            let mut sender = match self.checkout(call.url, addr, reused).await {
                Ok((s, was_idle)) => {
                    reused = was_idle;
                    s
                }
                Err(e) => return Outcome::Transport(e),
            };
            match sender.try_send_request(req).await {
                Ok(resp) => break (sender, resp),
                Err(mut e) => match e.take_message() {
                    Some(again) if reused => req = again,
                    _ => return Outcome::Transport(TransportError::Reset(e.error().to_string())),
                },
            }
        };
        let (parts, body) = resp.into_parts();
        let (body, complete) = match super::http::read_capped(body).await {
            Ok(read) => read,
            Err(e) => return Outcome::Transport(TransportError::Reset(e.to_string())),
        };
        if complete {
            self.checkin(addr, sender);
        }
        Outcome::Response(Response {
            status: parts.status.as_u16(),
            headers: Headers::Received(Box::new(parts.headers)),
            body,
            latency: started.elapsed(),
        })
    }

    /// An idle connection to the URL's host and port (its `authority`) that is still open (when
    /// `reuse`), or a new one; and whether it was idle.
    async fn checkout(
        &self,
        url: &url::Url,
        authority: &str,
        reuse: bool,
    ) -> Result<(Sender, bool), TransportError> {
        while let Some(mut s) = reuse.then(|| self.idle(authority)).flatten() {
            if s.ready().await.is_ok() {
                return Ok((s, true));
            }
        }
        let host = url.host_str().unwrap_or_default();
        let addr = format!("{host}:{}", url.port_or_known_default().unwrap_or(80));
        connect(&addr).await.map(|s| (s, false))
    }

    fn idle(&self, addr: &str) -> Option<Sender> {
        self.idle.lock().expect("not poisoned").get_mut(addr)?.pop()
    }

    fn checkin(&self, authority: &str, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("not poisoned");
        match idle.get_mut(authority) {
            Some(senders) => senders.push(sender),
            None => {
                idle.insert(authority.to_string(), vec![sender]);
            }
        }
    }
}

/// Opens a connection and runs it on this thread's runtime.
async fn connect(addr: &str) -> Result<Sender, TransportError> {
    let refused = |e: &dyn std::fmt::Display| TransportError::Connect(format!("{addr}: {e}"));
    let stream =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(refused(&e)),
            Err(_) => return Err(refused(&"connect timed out")),
        };
    let _ = stream.set_nodelay(true);
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| refused(&e))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Header names parsed at most once per thread: a batch sends the same few names a million
/// times, and parsing one (an allocation for names that are not standard) cost more than this.
fn header_name(name: &str) -> Result<http::HeaderName, http::header::InvalidHeaderName> {
    const KEPT: usize = 32;
    thread_local! {
        static NAMES: std::cell::RefCell<Vec<(String, http::HeaderName)>> = const {
            std::cell::RefCell::new(Vec::new())
        };
    }
    NAMES.with_borrow_mut(|names| {
        if let Some((_, parsed)) = names.iter().find(|(n, _)| n == name) {
            return Ok(parsed.clone());
        }
        let parsed = http::HeaderName::from_bytes(name.as_bytes())?;
        if names.len() < KEPT {
            names.push((name.to_string(), parsed.clone()));
        }
        Ok(parsed)
    })
}

/// The request in origin form, with `Host` (the URL's host, and its port when it gives one) and
/// the headers reqwest would add.
fn request(call: &Call<'_>, host: &str) -> Result<http::Request<Full<Bytes>>, http::Error> {
    use http::header::{ACCEPT, HOST, HeaderValue};
    let url = call.url;
    let target = match url.query() {
        Some(_) => &url[url::Position::BeforePath..url::Position::AfterQuery],
        None => url.path(),
    };
    let mut req = http::Request::new(Full::new(Bytes::copy_from_slice(call.body)));
    *req.method_mut() = call.method.clone();
    *req.uri_mut() = target.parse()?;
    let headers = req.headers_mut();
    headers.insert(HOST, HeaderValue::from_bytes(host.as_bytes())?);
    for (name, value) in call.headers.iter().flat_map(|h| h.iter()) {
        headers.append(
            header_name(name)?,
            HeaderValue::from_bytes(value.as_bytes())?,
        );
    }
    if !headers.contains_key(ACCEPT) {
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    }
    Ok(req)
}
