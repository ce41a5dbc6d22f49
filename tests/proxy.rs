//! Egress proxies: a real run reaches a target name only the proxy on 127.0.0.1 can reach, in
//! absolute form for http and through CONNECT for https; loopback targets go direct; `--no-proxy`
//! and `NO_PROXY` send directly; the proxy's password is never shown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::support::server::{Reply, TestServer};
use crate::support::{Test, send};

/// A proxy that records each request's head and answers it itself: `ok` to absolute-form
/// requests, 502 to a CONNECT (it opens no tunnel).
struct Proxy {
    url: String,
    heads: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&heads);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || answer(stream, &seen));
            }
        });
        Proxy { url, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

fn answer(stream: std::net::TcpStream, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        let connect = head.starts_with("CONNECT ");
        seen.lock().unwrap().push(head);
        let reply: &[u8] = match connect {
            true => b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            false => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        };
        if out.write_all(reply).is_err() || connect {
            return;
        }
    }
}

const JOURNEY: &str = "journey: j\ntrigger: { segment: \"true\" }\ndefaults: { retry: { attempts: 1 } }\nsteps:\n  - id: send\n    webhook: { url: \"{{ env.HOOK_URL }}/hook\", body: { who: \"{{ customer.id }}\" } }\n";

fn folder(hook: &str, proxy_vars: &[(&str, &str)]) -> Test {
    let mut t = Test::new().env("HOOK_URL", hook);
    for (k, v) in proxy_vars {
        t = t.env(k, v);
    }
    t.file("j.yaml", JOURNEY);
    t.file("f.yaml", "customers: [{ id: c1 }, { id: c2 }]\n");
    t
}

#[test]
fn http_proxy_carries_plain_http_in_absolute_form_and_hides_its_password() {
    let proxy = Proxy::start();
    let with_password = proxy.url.replace("http://", "http://team:pr0xyS3cret@");
    let t = folder("http://partner.test", &[("HTTP_PROXY", &with_password)]);
    let out = send(
        &t,
        &[
            "--log",
            "log.ndjson",
            "--report",
            "r.json",
            "--show",
            "curl",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    // `--show curl` sends through the same proxy, named by its variable.
    assert!(
        out.stdout.contains("  --proxy \"$HTTP_PROXY\""),
        "{}",
        out.stdout
    );
    let heads = proxy.heads();
    assert_eq!(heads.len(), 2, "{heads:?}");
    for h in &heads {
        assert!(
            h.starts_with("POST http://partner.test/hook HTTP/1.1\r\n"),
            "{h}"
        );
        // Basic team:pr0xyS3cret
        assert!(
            h.to_ascii_lowercase()
                .contains("proxy-authorization: basic ")
                && h.contains("dGVhbTpwcjB4eVMzY3JldA=="),
            "{h}"
        );
    }
    for text in [out.all(), t.read("log.ndjson"), t.read("r.json")] {
        assert!(!text.contains("pr0xyS3cret"), "{text}");
    }
}

#[test]
fn https_goes_through_a_connect_tunnel_and_loopback_and_no_proxy_go_direct() {
    let proxy = Proxy::start();
    let t = folder("https://partner.test", &[("HTTPS_PROXY", &proxy.url)]);
    let out = send(&t, &[]);
    assert_eq!(out.code, 1, "the proxy refuses the tunnel: {}", out.all());
    assert!(
        proxy
            .heads()
            .iter()
            .any(|h| h.starts_with("CONNECT partner.test:443 HTTP/1.1\r\n")),
        "{:?}",
        proxy.heads()
    );
    // A loopback target is never proxied, and `--no-proxy` or `NO_PROXY` send directly (to a
    // name no resolver knows, so the run fails without the proxy).
    let server = TestServer::start();
    server.script("/hook", vec![Reply::status(200)]);
    let all = [("ALL_PROXY", proxy.url.as_str())];
    let before = proxy.heads().len();
    assert_eq!(send(&folder(&server.url, &all), &[]).code, 0);
    let host = server.url.replace("http://127.0.0.1", "http://localhost");
    assert_eq!(send(&folder(&host, &all), &[]).code, 0);
    assert_eq!(send(&folder(&server.url, &all), &["--no-proxy"]).code, 0);
    assert_eq!(server.requests_to("/hook").len(), 6);
    let listed = [("ALL_PROXY", proxy.url.as_str()), ("NO_PROXY", ".test")];
    assert_eq!(send(&folder("http://partner.test", &listed), &[]).code, 1);
    assert_eq!(
        send(&folder("http://partner.test", &all), &["--no-proxy"]).code,
        1
    );
    assert_eq!(proxy.heads().len(), before, "{:?}", proxy.heads());
    // `--proxy` names one for every scheme, over the environment's.
    let other = Proxy::start();
    let t = folder("http://partner.test", &all);
    let out = send(&t, &["--proxy", &other.url, "--show", "curl"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains(&format!("  --proxy '{}/'", other.url)),
        "{}",
        out.stdout
    );
    assert_eq!(other.heads().len(), 2);
    assert_eq!(proxy.heads().len(), before);
}
