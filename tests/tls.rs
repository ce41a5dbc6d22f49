//! TLS with a private CA and client certificates, against a local TLS server whose CA and
//! certificates the test makes (rcgen): a server that requires a client certificate refuses a
//! run without one and takes one with it; a certificate no root vouches for is a clear error,
//! tried once, not a retry storm.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Test, send};

/// A CA, the server's certificate for `localhost`, and a client certificate, as PEM files.
struct Pki {
    ca: rcgen::Certificate,
    server: (rcgen::Certificate, KeyPair),
}

fn pki(t: &Test) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(vec![]).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "journey test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let signed = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        (cert, key)
    };
    let server = signed(vec!["localhost".into()]);
    let client = signed(vec!["client.journey.test".into()]);
    t.file("ca.pem", &ca.pem());
    t.file("client.pem", &client.0.pem());
    t.file("client.key", &client.1.serialize_pem());
    Pki { ca, server }
}

/// Serves TLS with `config` on a free port of 127.0.0.1, on a thread of its own, handing each
/// accepted connection to `handle`; returns the `https://localhost:PORT` URL.
fn tls_server<F, Fut>(config: rustls::ServerConfig, handle: F) -> String
where
    F: Fn(tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, handle) = (acceptor.clone(), Arc::clone(&handle));
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        handle(tls).await;
                    }
                });
            }
        });
    });
    url
}

/// The server's certificate and key, as rustls takes them.
fn server_cert(
    pki: &Pki,
) -> (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(pki.server.1.serialize_der());
    (vec![pki.server.0.der().clone()], key.into())
}

/// A TLS server on 127.0.0.1 that requires a client certificate signed by the CA and answers
/// every request 200; it counts the requests it answered.
fn serve(pki: &Pki) -> (String, Arc<AtomicUsize>) {
    let (certs, key) = server_cert(pki);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&answered);
    let url = tls_server(config, move |mut tls| {
        let count = Arc::clone(&count);
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            count.fetch_add(1, Ordering::SeqCst);
            let _ = tls
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                .await;
            let _ = tls.shutdown().await;
        }
    });
    (url, answered)
}

const JOURNEY: &str = "journey: j\ntrigger: { segment: \"true\" }\ndefaults: { retry: { attempts: 3, backoff: 10ms } }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/hook\", body: { who: \"{{ customer.id }}\" } }\n";

fn folder(url: &str) -> Test {
    let t = Test::new().env("HOOK_URL", url);
    t.file("j.yaml", JOURNEY);
    t.file("f.yaml", "customers: [{ id: c1 }, { id: c2 }]\n");
    t
}

fn attempts(t: &Test) -> usize {
    t.read("log.ndjson").lines().count()
}

#[test]
fn a_private_ca_and_a_client_certificate_reach_a_server_that_requires_them() {
    let probe = Test::new();
    let pki = pki(&probe);
    let (url, answered) = serve(&pki);
    let t = folder(&url);
    for f in ["ca.pem", "client.pem", "client.key"] {
        t.file(f, &probe.read(f));
    }
    // No root vouches for the server: a clear error, tried once for each customer.
    let untrusted = send(&t, &["--log", "log.ndjson"]);
    assert_eq!(untrusted.code, 1, "{}", untrusted.all());
    assert!(
        untrusted
            .stderr
            .contains("the server's certificate is not trusted"),
        "{}",
        untrusted.stderr
    );
    assert!(untrusted.stderr.contains("pass --cacert FILE"));
    assert_eq!(attempts(&t), 2, "no retry storm");
    // Trusted, but without a client certificate: refused, said so, not retried.
    std::fs::remove_file(t.path("log.ndjson")).unwrap();
    let anonymous = send(&t, &["--cacert", "ca.pem", "--log", "log.ndjson"]);
    assert_eq!(anonymous.code, 1, "{}", anonymous.all());
    assert!(anonymous.stderr.contains("TLS: "), "{}", anonymous.stderr);
    assert_eq!(answered.load(Ordering::SeqCst), 0);
    // With one: both customers delivered.
    let mutual = send(
        &t,
        &[
            "--cacert",
            "ca.pem",
            "--client-cert",
            "client.pem",
            "--client-key",
            "client.key",
        ],
    );
    assert_eq!(mutual.code, 0, "{}", mutual.all());
    assert_eq!(answered.load(Ordering::SeqCst), 2);
    // The refused deliveries were dead-lettered; replay takes the same TLS flags.
    let letters = t.read(".journey/dead-letter.ndjson").lines().count();
    assert!(letters >= 2, "{letters}");
    let replayed = t.run(&[
        "replay",
        ".journey/dead-letter.ndjson",
        "--yes",
        "--cacert",
        "ca.pem",
        "--client-cert",
        "client.pem",
        "--client-key",
        "client.key",
    ]);
    assert_eq!(replayed.code, 0, "{}", replayed.all());
    assert_eq!(answered.load(Ordering::SeqCst), 2 + letters);
    // A file that is not PEM is a usage error, before anything is sent.
    t.file("bad.pem", "not a certificate\n");
    let bad = send(&t, &["--cacert", "bad.pem"]);
    assert_eq!(bad.code, 2, "{}", bad.all());
}

/// A TLS server that offers HTTP/2 over ALPN (and HTTP/1.1), and records the version of each
/// request it answers.
fn serve_h2(pki: &Pki) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let (certs, key) = server_cert(pki);
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let versions = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&versions);
    let url = tls_server(config, move |tls| {
        let seen = Arc::clone(&seen);
        async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                seen.lock().unwrap().push(format!("{:?}", req.version()));
                async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                    ))
                }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
    });
    (url, versions)
}

#[test]
fn a_server_that_offers_http2_over_alpn_is_spoken_to_in_http2() {
    let probe = Test::new();
    let pki = pki(&probe);
    let (url, versions) = serve_h2(&pki);
    let t = folder(&url);
    t.file("ca.pem", &probe.read("ca.pem"));
    let out = send(&t, &["--cacert", "ca.pem"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(*versions.lock().unwrap(), ["HTTP/2.0", "HTTP/2.0"]);
}

#[test]
fn ssl_cert_file_is_honoured_as_the_roots_to_trust() {
    let probe = Test::new();
    let pki = pki(&probe);
    let (url, versions) = serve_h2(&pki);
    let t = folder(&url);
    t.file("ca.pem", &probe.read("ca.pem"));
    let untrusted = send(&t, &[]);
    assert_eq!(untrusted.code, 1, "{}", untrusted.all());
    let t = t.env("SSL_CERT_FILE", "ca.pem");
    let out = send(&t, &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(versions.lock().unwrap().len(), 2);
}

#[test]
fn a_step_or_the_defaults_carry_their_own_tls_files() {
    let probe = Test::new();
    let pki = pki(&probe);
    let (url, answered) = serve(&pki);
    let own = "    webhook: { url: \"{{ env.HOOK_URL }}/hook\", body: {}, tls: { cacert: pki/ca.pem, client_cert: pki/client.pem, client_key: pki/client.key } }\n";
    let defaults = "defaults: { tls: { cacert: pki/ca.pem, client_cert: pki/client.pem, client_key: pki/client.key } }\n";
    for journey in [
        format!("journey: j\ntrigger: {{ segment: \"true\" }}\nsteps:\n  - id: send\n{own}"),
        format!(
            "journey: j\ntrigger: {{ segment: \"true\" }}\n{defaults}steps:\n  - id: send\n    webhook: {{ url: \"{{{{ env.HOOK_URL }}}}/hook\", body: {{}} }}\n"
        ),
    ] {
        let t = folder(&url);
        t.file("j.yaml", &journey);
        for f in ["ca.pem", "client.pem", "client.key"] {
            t.file(&format!("pki/{f}"), &probe.read(f));
        }
        let out = send(&t, &[]);
        assert_eq!(out.code, 0, "{journey}\n{}", out.all());
    }
    assert_eq!(answered.load(Ordering::SeqCst), 4);
    // A file that is not there is found before anything runs, at its place in the file.
    let t = folder(&url);
    t.file(
        "j.yaml",
        &format!("journey: j\ntrigger: {{ segment: \"true\" }}\nsteps:\n  - id: send\n{own}"),
    );
    let out = t.run(&["validate", "j.yaml"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("j.yaml:5:"), "{}", out.stderr);
    assert!(
        out.stderr.contains("pki/ca.pem` is not a file"),
        "{}",
        out.stderr
    );
}
