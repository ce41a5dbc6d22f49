//! One delivery: attempts until success, a final failure, or the attempts run out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use minijinja::Value;

use super::executor::{Attempt, Executor, Outcome, Response};
use super::protect::Held;
use super::recorder::{AttemptRecord, Recorder};
use super::request::Request;
use super::result::StepStatus;
use super::retry;
use crate::journey::plan::{StepPlan, WebhookPlan};
use crate::render::context::{EntryContext, Scope};
use crate::render::{RenderError, map, value_of};

/// What came of one delivery.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Attempts made.
    pub attempts: u32,
    /// The last HTTP status.
    pub status: Option<u16>,
    /// Latency of each attempt that got a response.
    pub latencies: Vec<Duration>,
    /// Ok, failed or assumed.
    pub step_status: StepStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// The successful response, for `save`.
    pub response: Option<Response>,
    /// `Retry-After` asked for longer than `max_backoff`: send again in a later run.
    pub deferred: bool,
    /// The answers of the attempts before the last (empty, so free, when one attempt did).
    pub earlier: Vec<Answer>,
    /// The last attempt's transport failure (`timeout`, `connect`, `reset`), when no response
    /// came.
    pub transport: Option<&'static str>,
    /// The last response of a delivery that failed (for `--show` and the HTML report).
    pub failed_response: Option<Response>,
}

/// What one attempt got back, for `--show paths`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP status.
    Status(u16),
    /// No response: `timeout`, `connect` or `reset`.
    Transport(&'static str),
}

/// Who is delivering: the parts of an entry a delivery needs.
#[derive(Clone, Copy)]
pub struct Deliverer<'a, E> {
    /// The executor.
    pub exec: &'a E,
    /// Where attempts are recorded.
    pub recorder: &'a dyn Recorder,
    /// The journey name.
    pub journey: &'a str,
    /// The entry key.
    pub entry_key: &'a str,
    /// The jitter seed.
    pub seed: u64,
    /// No attempt starts once this is set.
    pub stop: &'a super::stop::Stop,
    /// Rate limits and circuit breakers (real runs).
    pub protect: Option<&'a super::protect::Protection>,
}

impl<E: Executor> Deliverer<'_, E> {
    /// Sends `req` with the step's retry policy; `ctx` is the entry's context for `success`.
    pub async fn deliver(
        &self,
        step: &StepPlan,
        w: &WebhookPlan,
        req: &Request,
        ctx: &EntryContext,
    ) -> Result<Delivery, RenderError> {
        let mut rng = fastrand::Rng::with_seed(self.seed ^ seed_of(&req.delivery_id));
        let mut d = Delivery::default();
        for n in 1..=w.retry.attempts {
            if n > 1 && self.stop.is_set() {
                d.error = Some("the run was stopped before the next attempt".into());
                d.deferred = true;
                self.stop.defer();
                break;
            }
            d.attempts = n;
            let outcome = match self.attempt(step, w, req, ctx, n).await {
                Ok(outcome) => outcome,
                Err(_) if self.stop.is_set() => {
                    // Stopped while waiting for a rate limit or a paused host: never sent, so
                    // not in doubt; a later run sends it.
                    d.attempts = n - 1;
                    d.error = Some("the run was stopped before this attempt".into());
                    d.deferred = true;
                    self.stop.defer();
                    break;
                }
                Err(Held::Beyond(why)) => {
                    // The partner asked every host for quiet past max_backoff: never sent, so
                    // not in doubt; a later run sends it, as after a Retry-After past it here.
                    d.attempts = n - 1;
                    d.error = Some(why);
                    d.deferred = true;
                    break;
                }
                Err(Held::Stopped(why)) => {
                    // The host is stopped: this attempt was never made.
                    d.attempts = n - 1;
                    d.error = Some(why);
                    break;
                }
            };
            match &outcome {
                Outcome::Assumed => {
                    d.step_status = StepStatus::Assumed;
                    d.error = None;
                    return Ok(d);
                }
                Outcome::MockFailed(e) => return Err(e.clone()),
                Outcome::Response(r) => {
                    d.status = Some(r.status);
                    d.latencies.push(r.latency);
                    if succeeded(step, w, r, ctx)? {
                        d.step_status = StepStatus::Ok;
                        // The attempt's own response, moved: a copy of its headers and body
                        // cost a dozen allocations a delivery.
                        if let Outcome::Response(r) = outcome {
                            d.response = Some(r);
                        }
                        return Ok(d);
                    }
                    d.error = Some(format!("HTTP {}", r.status));
                    d.transport = None;
                    d.failed_response = Some(r.clone());
                }
                Outcome::Transport(e) => {
                    d.error = Some(e.to_string());
                    d.transport = Some(e.kind());
                    d.failed_response = None;
                }
            }
            if !retry::is_retryable(&outcome) || n == w.retry.attempts {
                break;
            }
            d.earlier.push(match &outcome {
                Outcome::Response(r) => Answer::Status(r.status),
                Outcome::Transport(e) => Answer::Transport(e.kind()),
                Outcome::Assumed | Outcome::MockFailed(_) => Answer::Transport("none"),
            });
            match next_delay(w, &outcome, n, &mut rng, ctx.now) {
                Ok(delay) => {
                    self.stop.unless_stopped(self.exec.pause(delay)).await;
                }
                Err(why) => {
                    d.error = Some(why);
                    d.deferred = true;
                    break;
                }
            }
        }
        d.step_status = StepStatus::Failed;
        Ok(d)
    }

    /// One attempt: through the host's breaker and the pacers (real runs), sent, counted by
    /// the breaker and recorded. `Err` when it is not made (the host is stopped, or asked for
    /// quiet past the step's `max_backoff`, or the run was stopped).
    async fn attempt(
        &self,
        step: &StepPlan,
        w: &WebhookPlan,
        req: &Request,
        ctx: &EntryContext,
        number: u32,
    ) -> Result<Outcome, Held> {
        let host = self
            .protect
            .map(|_| super::protect::host_of(&req.url))
            .unwrap_or_default();
        if let Some(p) = self.protect {
            let before = async {
                p.before(self.journey, &step.id, &host, w.retry.max_backoff)
                    .await
            };
            // `before` first: when nothing makes it wait it is ready at once, and the stop is
            // never registered with (a lock shared by every lane).
            tokio::select! {
                biased;
                r = before => r?,
                _ = self.stop.stopped() => return Err(Held::Stopped("the run was stopped".into())),
            }
        }
        let attempt = Attempt {
            journey: self.journey,
            step: &step.id,
            request: req,
            number,
            context: ctx,
        };
        // A mock answers at once: only a real attempt's wait is worth a clock reading.
        let started = (!self.exec.mocks()).then(std::time::Instant::now);
        let outcome = Box::pin(self.exec.send(attempt)).await;
        let waited = started.map(|s| s.elapsed()).unwrap_or_default();
        if let Some(p) = self.protect {
            let status = match &outcome {
                Outcome::Response(r) => Some(r.status),
                _ => None,
            };
            p.breakers.record(&host, status);
            if let Outcome::Response(r) = &outcome
                && r.status == 429
                && let Some(pause) = retry::retry_after(r, chrono::Utc::now())
            {
                p.asked_pause(&host, pause);
            }
        }
        self.record(step, req, number, &outcome, waited);
        Ok(outcome)
    }

    /// Records one attempt; `waited` is how long it took, for one that got no response (a
    /// timeout waited its whole timeout).
    fn record(&self, step: &StepPlan, req: &Request, n: u32, outcome: &Outcome, waited: Duration) {
        let (status, error, latency, body, headers, kind) = match outcome {
            Outcome::Response(r) => (
                Some(r.status),
                None,
                r.latency,
                r.body.as_slice(),
                Some(&r.headers),
                None,
            ),
            Outcome::Transport(e) => (
                None,
                Some(e.to_string()),
                waited,
                &[][..],
                None,
                Some(e.kind()),
            ),
            Outcome::Assumed | Outcome::MockFailed(_) => return,
        };
        self.recorder.attempt(&AttemptRecord {
            journey: self.journey,
            step: &step.id,
            entry_key: self.entry_key,
            trace_id: &req.trace_id,
            delivery_id: &req.delivery_id,
            attempt: n,
            status,
            error,
            latency_ms: latency.as_secs_f64() * 1000.0,
            mocked: self.exec.mocks(),
            request: req,
            response_body: body,
            response_headers: headers,
            error_kind: kind,
        });
    }
}

fn succeeded(
    step: &StepPlan,
    w: &WebhookPlan,
    r: &Response,
    ctx: &EntryContext,
) -> Result<bool, RenderError> {
    match &w.success {
        None => Ok((200..300).contains(&r.status)),
        Some(expr) => expr.is_true(&ctx.value(&Scope {
            step: Some(&step.id),
            delivery: None,
            response: Some(response_value(r)),
        })),
    }
}

/// The wait before retry `n`: the jittered backoff, or `Retry-After` when the answer has one;
/// an `Err` when `Retry-After` is beyond `max_backoff` (the delivery fails in this run).
fn next_delay(
    w: &WebhookPlan,
    outcome: &Outcome,
    n: u32,
    rng: &mut fastrand::Rng,
    now: DateTime<Utc>,
) -> Result<Duration, String> {
    let backoff = retry::backoff(&w.retry, n, rng);
    let Outcome::Response(r) = outcome else {
        return Ok(backoff);
    };
    match retry::retry_after(r, now) {
        None => Ok(backoff),
        Some(after) if after > w.retry.max_backoff => Err(format!(
            "HTTP {}: Retry-After {}s exceeds max_backoff {}s",
            r.status,
            after.as_secs(),
            w.retry.max_backoff.as_secs()
        )),
        Some(after) => Ok(after),
    }
}

/// `response` in `success` and `save`: the body is JSON when the content type says so.
pub fn response_value(r: &Response) -> Value {
    let ct = r
        .header("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let media = ct.split(';').next().unwrap_or("").trim();
    let is_json = media == "application/json" || media.ends_with("+json");
    let text = || Value::from(String::from_utf8_lossy(&r.body).into_owned());
    let body = if is_json {
        serde_json::from_slice::<serde_json::Value>(&r.body)
            .map(|v| value_of(&v))
            .unwrap_or_else(|_| text())
    } else {
        text()
    };
    let headers: std::collections::BTreeMap<String, String> = r
        .headers
        .pairs()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    map([
        ("status", Value::from(r.status)),
        ("headers", Value::from(headers)),
        ("body", body),
    ])
}

fn seed_of(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(content_type: &str, body: &str) -> Response {
        Response {
            status: 200,
            headers: super::super::executor::Headers::Given(vec![(
                "Content-Type".into(),
                content_type.into(),
            )]),
            body: body.as_bytes().to_vec(),
            latency: Duration::ZERO,
        }
    }

    #[test]
    fn a_json_body_is_read_as_json_and_anything_else_as_text() {
        let v = response_value(&response(
            "application/json; charset=utf-8",
            r#"{"code":"A1"}"#,
        ));
        assert_eq!(
            v.get_attr("body")
                .unwrap()
                .get_attr("code")
                .unwrap()
                .as_str(),
            Some("A1")
        );
        assert_eq!(v.get_attr("status").unwrap().as_usize(), Some(200));
        let v = response_value(&response("application/problem+json", r#"{"title":"x"}"#));
        assert_eq!(
            v.get_attr("body")
                .unwrap()
                .get_attr("title")
                .unwrap()
                .as_str(),
            Some("x")
        );
        let v = response_value(&response("text/plain", r#"{"code":"A1"}"#));
        assert_eq!(
            v.get_attr("body").unwrap().as_str(),
            Some(r#"{"code":"A1"}"#)
        );
        let v = response_value(&response("application/json", "not json"));
        assert_eq!(
            v.get_attr("body").unwrap().as_str(),
            Some("not json"),
            "broken JSON is text"
        );
        let headers = v.get_attr("headers").unwrap();
        assert_eq!(
            headers.get_attr("content-type").unwrap().as_str(),
            Some("application/json")
        );
    }

    #[test]
    fn the_jitter_seed_is_stable_per_delivery() {
        assert_eq!(seed_of("dlv_a"), seed_of("dlv_a"));
        assert_ne!(seed_of("dlv_a"), seed_of("dlv_b"));
    }
}
