//! Sending alerts: each is tried `retry.attempts` times (3 by default: a transport error, 408,
//! 429 or 5xx is tried again after 1 s, then 2 s, or what `Retry-After` asks up to
//! `max_backoff`), each attempt within its `timeout` (10 s by default), with the run's safety
//! rules; one that cannot be delivered is said on stderr, counted and written to the
//! dead-letter file. Nothing here changes the run's exit code.

use std::time::Duration;

use super::Fired;
use crate::redact::Redactor;
use crate::report::AlertOutcome;

/// How a real run sends its alerts.
pub struct Sending<'a> {
    /// Keeps secrets out of what is said and written.
    pub redactor: &'a Redactor,
    /// `--allow-insecure-http`.
    pub allow_insecure_http: bool,
    /// Where an alert that cannot be delivered is written.
    pub dead_letter: Option<&'a std::path::Path>,
    /// The run's id.
    pub run_id: &'a str,
}

/// Sends every alert; what became of each.
pub async fn send_all(fired: &[Fired], how: &Sending<'_>) -> Vec<AlertOutcome> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().build();
    let mut out = Vec::new();
    for f in fired {
        let (attempts, result) = match &client {
            Ok(c) => send(c, f, how.allow_insecure_http).await,
            Err(e) => (0, Err(e.to_string())),
        };
        let error = result.err().map(|e| how.redactor.redact(&e));
        if let Some(why) = &error {
            crate::output::stderr(&format!(
                "error: alert `{}` of journey `{}` could not be delivered ({}): {why}",
                f.name, f.journey, f.to
            ));
            if let Some(path) = how.dead_letter {
                dead_letter(path, f, why, how);
            }
        }
        out.push(AlertOutcome {
            journey: f.journey.clone(),
            name: f.name.clone(),
            to: f.to.into(),
            state: if error.is_some() { "failed" } else { "sent" }.into(),
            attempts,
            error,
            body: how.redactor.redact_json(&f.body),
        });
    }
    out
}

/// One alert, tried up to three times: the attempts made, and why it failed.
async fn send(client: &reqwest::Client, f: &Fired, insecure: bool) -> (u32, Result<(), String>) {
    let url = match url::Url::parse(&f.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        _ => return (0, Err(format!("`{}` is not an http(s) URL", f.url))),
    };
    let loopback = url.host_str().is_some_and(|h| {
        h == "localhost"
            || h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
            || h == "[::1]"
    });
    if url.scheme() == "http" && f.secret_headers && !loopback && !insecure {
        return (
            0,
            Err("it carries a secret and its URL is plain http: use https, or pass --allow-insecure-http".into()),
        );
    }
    let mut last = String::new();
    let tries = f.retry.attempts.max(1);
    let mut backoff = f.retry.backoff;
    for attempt in 1..=tries {
        let mut req = client
            .post(url.clone())
            .timeout(f.timeout)
            .header("content-type", "application/json")
            .body(f.body.to_string());
        for (k, v) in &f.headers {
            req = req.header(k, v);
        }
        let wait = match req.send().await {
            Ok(r) if r.status().is_success() => return (attempt, Ok(())),
            Ok(r) => {
                let status = r.status().as_u16();
                last = format!("HTTP {status}");
                if !(status == 408 || status == 429 || status >= 500) {
                    return (attempt, Err(last));
                }
                r.headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(f.retry.max_backoff))
            }
            Err(e) => {
                last = e.to_string();
                None
            }
        };
        if attempt < tries {
            tokio::time::sleep(wait.unwrap_or(backoff)).await;
            backoff = (backoff * 2).min(f.retry.max_backoff);
        }
    }
    (tries, Err(last))
}

/// Appends the alert to the dead-letter file (`replay` leaves such lines as they are).
fn dead_letter(path: &std::path::Path, f: &Fired, why: &str, how: &Sending<'_>) {
    use std::io::Write;
    let line = serde_json::json!({
        "kind": "alert",
        "run_id": how.run_id,
        "journey": f.journey,
        "alert": f.name,
        "to": f.to,
        "error": why,
        "at": crate::clock::rfc3339(chrono::Utc::now()),
        "body": how.redactor.redact_json(&f.body),
    });
    let written =
        crate::output::append_private(path).and_then(|mut file| Ok(writeln!(file, "{line}")?));
    if let Err(e) = written {
        crate::output::stderr(&format!(
            "error: the dead-letter file {}: {e}",
            path.display()
        ));
    }
}
