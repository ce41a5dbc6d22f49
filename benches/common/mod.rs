//! What the benches share: a fast local receiver and settings from the environment.

#![allow(dead_code)]

/// A receiver on 127.0.0.1 that answers `{}` to everything, on its own one-thread runtime;
/// its base URL.
pub fn receiver() -> String {
    serve(axum::Router::new().fallback(|| async { "{}" }))
}

/// Serves `app` on a free port of 127.0.0.1, on its own one-thread runtime; its base URL.
pub fn serve(app: axum::Router) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

/// A number from the environment variable `name`, or `default`.
pub fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The receiver the batch bench sends to: nginx (`return 200`) when it is installed, the receiver
/// that leaves the client the most CPU, else the axum one above (said on stderr). Dropping it
/// stops nginx.
pub struct Receiver {
    /// Its base URL.
    pub url: String,
    /// `nginx` or `axum`.
    pub kind: &'static str,
    nginx: Option<(std::process::Child, tempfile::TempDir)>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some((child, _)) = &mut self.nginx {
            // SIGTERM: nginx's master stops its workers too (a SIGKILL would leave them running).
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let _ = child.wait();
        }
    }
}

/// nginx on a free port of 127.0.0.1, or `None` when it is not installed or does not start.
fn nginx() -> Option<(String, std::process::Child, tempfile::TempDir)> {
    let dir = tempfile::tempdir().ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let conf = format!(
        "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{ return 200 '{{}}'; }}\n  }}\n}}\n",
        d = dir.path().display()
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).ok()?;
    let child = std::process::Command::new("nginx")
        .args(["-g", "daemon off;", "-p"])
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((format!("http://127.0.0.1:{port}"), child, dir));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    None
}

/// nginx when it is installed, else the axum receiver, with a warning.
pub fn fastest_receiver() -> Receiver {
    match nginx() {
        Some((url, child, dir)) => Receiver {
            url,
            kind: "nginx",
            nginx: Some((child, dir)),
        },
        None => {
            eprintln!(
                "warning: nginx is not installed (apt-get install nginx-light): the bench uses its own axum receiver, which takes more CPU than nginx and flatters the ratios"
            );
            Receiver {
                url: receiver(),
                kind: "axum",
                nginx: None,
            }
        }
    }
}

/// Runs SQL on the bench's database (`JOURNEY_TEST_POSTGRES`).
pub fn sql(base: &str, text: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("JOURNEY_TEST_POSTGRES={base}: {e}"));
        tokio::spawn(conn);
        client.batch_execute(text).await.unwrap();
    });
}
