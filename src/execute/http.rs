//! The HTTP executor: sends each attempt for real with one shared client; redirects are not followed.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::executor::{Attempt, Executor, Headers, Outcome, Response, TransportError};
use super::proxy::Proxies;
use crate::journey::model::Method;
use crate::journey::plan::CONNECT_TIMEOUT;
use crate::journey::plan::TlsFiles;

/// Response bodies are read up to this size; the rest is dropped.
pub const MAX_BODY: usize = 1024 * 1024;

/// Sends requests: plain http through [`super::plain`], https (and anything a proxy carries)
/// over one pooled reqwest client, built on the first such request (it loads the system's
/// certificates).
#[derive(Debug, Clone)]
pub struct Http {
    client: Arc<OnceLock<Result<reqwest::Client, String>>>,
    plain: Arc<super::plain::Plain>,
    concurrency: usize,
    proxies: Arc<Proxies>,
    tls: Arc<Tls>,
    /// Clients of steps with their own `tls`, by setting.
    by_tls:
        Arc<std::sync::Mutex<std::collections::HashMap<TlsFiles, Result<reqwest::Client, String>>>>,
}

/// What TLS trusts and shows beyond the system's roots.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// More certificates to trust (`--cacert`).
    pub roots: Vec<reqwest::Certificate>,
    /// The client certificate and key (`--client-cert`, `--client-key`).
    pub identity: Option<reqwest::Identity>,
}

impl Tls {
    /// Reads `--cacert` and `--client-cert`/`--client-key`; `Err` names the file and why.
    pub fn load(
        cacert: Option<&std::path::Path>,
        client: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Result<Tls, String> {
        let read = |p: &std::path::Path, flag: &str| {
            std::fs::read(p).map_err(|e| format!("{flag} {}: cannot read: {e}", p.display()))
        };
        let roots = match cacert {
            None => Vec::new(),
            Some(p) => {
                let roots = reqwest::Certificate::from_pem_bundle(&read(p, "--cacert")?)
                    .map_err(|e| format!("--cacert {}: not PEM certificates: {e}", p.display()))?;
                if roots.is_empty() {
                    return Err(format!(
                        "--cacert {}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                        p.display()
                    ));
                }
                roots
            }
        };
        let identity = match client {
            None => None,
            Some((cert, key)) => {
                let mut pem = read(cert, "--client-cert")?;
                pem.push(b'\n');
                pem.extend(read(key, "--client-key")?);
                Some(reqwest::Identity::from_pem(&pem).map_err(|e| {
                    format!(
                        "--client-cert {} / --client-key {}: not a PEM certificate and key: {e}",
                        cert.display(),
                        key.display()
                    )
                })?)
            }
        };
        Ok(Tls { roots, identity })
    }
}

impl Http {
    /// An executor whose connections are reused, that never follows redirects, and that sends
    /// through `proxies` the targets they apply to.
    pub fn new(concurrency: usize, proxies: Arc<Proxies>, tls: Arc<Tls>) -> Http {
        // Several crates may race to install a provider; either outcome leaves one installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Http {
            client: Arc::default(),
            plain: Arc::default(),
            concurrency,
            proxies,
            tls,
            by_tls: Arc::default(),
        }
    }

    /// The executor of a real run or a replay: its proxies, and `--cacert` and `--client-cert`
    /// / `--client-key` read now (`Err` names the file and why).
    pub fn configured(
        concurrency: usize,
        proxies: &Proxies,
        cacert: Option<&std::path::Path>,
        client: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    ) -> Result<Http, String> {
        let client = client.map(|(c, k)| (c.as_path(), k.as_path()));
        let tls = Tls::load(cacert, client)?;
        Ok(Http::new(
            concurrency,
            Arc::new(proxies.clone()),
            Arc::new(tls),
        ))
    }

    fn client(&self) -> Result<&reqwest::Client, TransportError> {
        let built = self.client.get_or_init(|| self.build(&self.tls));
        built
            .as_ref()
            .map_err(|e| TransportError::Connect(e.clone()))
    }

    /// The client of a step with its own `tls` files: the run's roots and certificate with the
    /// step's over them, built once per distinct setting.
    fn client_for(&self, files: &TlsFiles) -> Result<reqwest::Client, TransportError> {
        let mut clients = self.by_tls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(built) = clients.get(files) {
            return built.clone().map_err(TransportError::Untrusted);
        }
        let built = Tls::load(
            files.cacert.as_deref(),
            files
                .client
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path())),
        )
        .map(|step| Tls {
            roots: self.tls.roots.iter().cloned().chain(step.roots).collect(),
            identity: step.identity.or_else(|| self.tls.identity.clone()),
        })
        .and_then(|tls| self.build(&tls));
        clients.insert(files.clone(), built.clone());
        built.map_err(TransportError::Untrusted)
    }

    /// A client that never follows redirects, trusts `tls`'s roots beside the system's, shows
    /// its certificate, and sends through the run's proxies where they apply.
    fn build(&self, tls: &Tls) -> Result<reqwest::Client, String> {
        let proxies = Arc::clone(&self.proxies);
        let builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(self.concurrency.max(1))
            .tcp_nodelay(true)
            .no_proxy()
            .tls_certs_merge(tls.roots.iter().cloned());
        let builder = match tls.identity.clone() {
            Some(id) => builder.identity(id),
            None => builder,
        };
        // The one rule decides, not reqwest's own reading of the environment.
        let builder = match proxies.is_empty() {
            true => builder,
            false => builder.proxy(reqwest::Proxy::custom(move |target| {
                proxies.for_url(target).cloned()
            })),
        };
        builder
            .build()
            .map_err(|e| format!("cannot set up the HTTPS client: {e}"))
    }
}

fn method(m: Method) -> reqwest::Method {
    match m {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
    }
}

impl Http {
    /// Sends one attempt through reqwest (https, or URLs carrying credentials).
    async fn send_tls(&self, url: url::Url, a: Attempt<'_>) -> Outcome {
        let r = a.request;
        let client = match r.tls.as_deref() {
            Some(files) => self.client_for(files),
            None => self.client().cloned(),
        };
        let client = match client {
            Ok(client) => client,
            Err(e) => return Outcome::Transport(e),
        };
        let mut rb = client
            .request(method(r.method), url)
            .timeout(r.timeout)
            .body(r.body.clone());
        for (name, value) in r.attempt_headers(a.number, Utc::now().timestamp()) {
            rb = rb.header(name, value);
        }
        let started = Instant::now();
        let resp = match rb.send().await {
            Ok(resp) => resp,
            Err(e) => return Outcome::Transport(transport(e)),
        };
        let (parts, body) = http::Response::<reqwest::Body>::from(resp).into_parts();
        match read_capped(body).await {
            Ok((body, _)) => Outcome::Response(Response {
                status: parts.status.as_u16(),
                headers: Headers::Received(Box::new(parts.headers)),
                body,
                latency: started.elapsed(),
            }),
            Err(e) => Outcome::Transport(transport(e)),
        }
    }
}

/// Describes a client error without its URL (which may carry secrets in the query).
fn transport(e: reqwest::Error) -> TransportError {
    if e.is_timeout() {
        return TransportError::Timeout;
    }
    let connect = e.is_connect();
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    if let Some(why) = tls_refusal(&e) {
        TransportError::Untrusted(why)
    } else if connect {
        TransportError::Connect(msg)
    } else {
        TransportError::Reset(msg)
    }
}

/// Why TLS refused the connection, in words that say what to do, when it did for a reason that
/// another try would not change: the server's certificate, or the client's.
fn tls_refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return match tls {
                rustls::Error::InvalidCertificate(why) => Some(format!(
                    "the server's certificate is not trusted ({why:?}): if a private CA signed it, pass --cacert FILE"
                )),
                rustls::Error::AlertReceived(alert) => Some(format!(
                    "the server refused the connection ({alert:?}): if it asks for a client certificate, pass --client-cert FILE --client-key FILE"
                )),
                _ => None,
            };
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(why) = tls_refusal(inner)
        {
            return Some(why);
        }
        source = s.source();
    }
    None
}

/// A response body up to [`MAX_BODY`] (the rest is dropped); `true` when it was read to its end
/// (so its connection can be reused).
pub async fn read_capped<B>(mut body: B) -> Result<(Vec<u8>, bool), B::Error>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Unpin,
{
    use http_body_util::BodyExt;
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let room = MAX_BODY.saturating_sub(out.len());
        out.extend_from_slice(&data[..data.len().min(room)]);
        if room <= data.len() {
            return Ok((out, false));
        }
    }
    Ok((out, true))
}

impl Executor for Http {
    async fn send(&self, a: Attempt<'_>) -> Outcome {
        let r = a.request;
        let url = match super::urls::parse(&r.url) {
            Ok(url) => url,
            Err(e) => {
                return Outcome::Transport(TransportError::Connect(format!("invalid URL: {e}")));
            }
        };
        // Credentials in the URL become an Authorization header in reqwest; keep that there, and
        // a target a proxy carries (absolute-form, or a CONNECT tunnel).
        let direct = self.proxies.is_empty() || self.proxies.for_url(&url).is_none();
        if url.scheme() == "http" && direct && url.username().is_empty() && url.password().is_none()
        {
            let own = r.attempt_only_headers(a.number, Utc::now().timestamp());
            return self
                .plain
                .send(super::plain::Call {
                    url: &url,
                    method: method(r.method),
                    headers: [&r.headers, &own],
                    body: &r.body,
                    timeout: r.timeout,
                })
                .await;
        }
        self.send_tls(url::Url::clone(&url), a).await
    }

    async fn pause(&self, delay: Duration) {
        tokio::time::sleep(delay).await;
    }

    /// A lane has its own client: its connections live on the lane's thread.
    fn for_lane(&self) -> Self {
        Http::new(
            self.concurrency,
            Arc::clone(&self.proxies),
            Arc::clone(&self.tls),
        )
    }
}
