//! The runner: walks each entry through its journey, in order, delivering through an [`Executor`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use minijinja::Value;

use super::context::{EntryContext, Scope};
use super::entries::{Candidate, Entry, Rejected};
use super::executor::{Attempt, Executor, Outcome, Response};
use super::identity;
use super::request::{self, Ids, Request};
use super::result::{EntryError, EntryResult, StepRecord, StepStatus};
use super::retry;
use crate::journey::Journey;
use crate::journey::plan::{OnFailure, StepKind, StepPlan, WebhookPlan};
use crate::render::{EnvVars, RenderError, map, value_of};

/// What the runner needs besides journeys and entries.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The run's clock at start.
    pub now: DateTime<Utc>,
    /// Environment variables (with placeholders for dry-runs).
    pub env: EnvVars,
    /// Entries in flight at once.
    pub concurrency: usize,
    /// Seed of the backoff jitter.
    pub seed: u64,
    /// Keep each request in the results (for `--show` and expectations).
    pub keep_requests: bool,
}

/// Runs every candidate and hands each result to `sink`, in input order.
pub async fn run<E: Executor>(
    journeys: &[Journey],
    candidates: Vec<Candidate>,
    exec: &E,
    settings: &RunSettings,
    mut sink: impl FnMut(EntryResult),
) {
    let mut seen = std::collections::HashSet::new();
    let stream = futures_util::stream::iter(candidates.into_iter().map(|c| async {
        match c {
            Candidate::Invalid(r) => rejected(r),
            Candidate::Entry(e) => {
                Walk::new(&journeys[e.journey], &e, exec, settings)
                    .run()
                    .await
            }
        }
    }))
    .buffered(settings.concurrency.max(1));
    futures_util::pin_mut!(stream);
    while let Some(mut result) = stream.next().await {
        if !seen.insert(result.key.clone()) {
            result.outcome = "already_done".into();
            result.path.clear();
            result.walked.clear();
            result.steps.clear();
        }
        sink(result);
    }
}

fn rejected(r: Rejected) -> EntryResult {
    EntryResult {
        journey: r.journey,
        customer: r.customer,
        event: r.event,
        key: r.key,
        outcome: "invalid".into(),
        path: vec![],
        walked: vec![],
        steps: vec![],
        error: Some(EntryError { message: r.message }),
        warnings: vec![],
    }
}

/// One entry's walk through its journey.
struct Walk<'a, E> {
    j: &'a Journey,
    customer: crate::fixture::Customer,
    trace_id: String,
    exec: &'a E,
    settings: &'a RunSettings,
    ctx: EntryContext,
    result: EntryResult,
}

/// Where the walk goes after a step.
enum Next {
    Step(Option<usize>),
    End(String),
}

impl<'a, E: Executor> Walk<'a, E> {
    fn new(j: &'a Journey, e: &Entry, exec: &'a E, settings: &'a RunSettings) -> Self {
        let key = identity::entry_key(
            &j.name,
            e.event.as_ref().map_or(&e.customer.id, |ev| &ev.id),
        );
        let ctx = EntryContext::new(
            &j.name,
            &e.customer.record,
            e.event.as_ref().map(|ev| &*ev.record),
            &settings.env,
            settings.now,
        );
        Walk {
            j,
            customer: e.customer.clone(),
            trace_id: String::new(),
            exec,
            settings,
            ctx,
            result: EntryResult {
                journey: e.journey,
                customer: e.customer.id.clone(),
                event: e.event.as_ref().map(|ev| ev.id.clone()),
                key,
                outcome: String::new(),
                path: vec![],
                walked: vec![],
                steps: vec![],
                error: None,
                warnings: vec![],
            },
        }
    }

    async fn run(mut self) -> EntryResult {
        if let Err(e) = self.enter() {
            return self.invalid(None, e);
        }
        if let Some(channel) = &self.j.consent
            && !self.entry_consents(channel)
        {
            self.result.outcome = "suppressed".into();
            return self.result;
        }
        let mut at = Some(0);
        while let Some(i) = at {
            let step = &self.j.steps[i];
            self.result.path.push(step.id.clone());
            self.result.walked.push(i);
            match self.step(i, step).await {
                Ok(Next::Step(n)) => at = n,
                Ok(Next::End(label)) => {
                    self.result.outcome = label;
                    return self.result;
                }
                Err(e) => return self.invalid(Some(&step.id), e),
            }
        }
        self.result.outcome = "completed".into();
        self.result
    }

    fn entry_consents(&self, channel: &str) -> bool {
        self.customer.consents(channel)
    }

    /// Computes the entry key, trace id and vars.
    fn enter(&mut self) -> Result<(), RenderError> {
        if let Some(t) = &self.j.entry_key {
            let key = t.render(&self.ctx.value(&Scope::default()))?;
            self.result.key = format!("{}:{key}", self.j.name);
        }
        self.trace_id = identity::trace_id(&self.result.key);
        self.ctx.set_entry(&self.result.key, &self.trace_id);
        for (name, t) in &self.j.vars {
            let v = t.render_json(&self.ctx.value(&Scope::default()))?;
            self.ctx.vars.insert(name.clone(), value_of(&v));
        }
        Ok(())
    }

    fn invalid(mut self, step: Option<&str>, e: RenderError) -> EntryResult {
        let at = step.map(|s| format!(", step `{s}`")).unwrap_or_default();
        self.result.outcome = "invalid".into();
        self.result.error = Some(EntryError {
            message: format!(
                "{}: journey `{}`{at}, `{}`: {}",
                e.pos, self.j.name, e.field, e.message
            ),
        });
        self.result
    }

    async fn step(&mut self, i: usize, step: &'a StepPlan) -> Result<Next, RenderError> {
        let scope = Scope {
            step: Some(&step.id),
            ..Scope::default()
        };
        match &step.kind {
            StepKind::Webhook(w) => self.webhook(i, step, w).await,
            StepKind::Branch { arms, default } => {
                let ctx = self.ctx.value(&scope);
                for (cond, target) in arms {
                    if cond.is_true(&ctx)? {
                        return Ok(Next::Step(Some(*target)));
                    }
                }
                Ok(Next::Step(default.or(step.next)))
            }
            StepKind::Split(arms) => {
                let bucket =
                    crate::execute::hash_percent(&[&self.j.name, &step.id, &self.result.customer]);
                let target = arms
                    .iter()
                    .find(|(upto, _)| bucket < *upto)
                    .map(|(_, t)| *t);
                Ok(Next::Step(target.or(step.next)))
            }
            StepKind::Wait(d) => {
                self.ctx.now += chrono::Duration::from_std(*d).unwrap_or_default();
                Ok(Next::Step(step.next))
            }
            StepKind::End(label) => Ok(Next::End(label.clone())),
        }
    }

    async fn webhook(
        &mut self,
        i: usize,
        step: &'a StepPlan,
        w: &'a WebhookPlan,
    ) -> Result<Next, RenderError> {
        if let Some(channel) = &step.consent
            && !self.entry_consents(channel)
        {
            self.record(i, StepStatus::Suppressed, 0, None, vec![], None, None);
            self.ctx
                .steps
                .insert(step.id.clone(), step_value(None, StepStatus::Suppressed));
            return Ok(Next::Step(step.next));
        }
        let ids = Ids {
            delivery_id: identity::delivery_id(&self.j.name, &self.result.key, &step.id),
            trace_id: self.trace_id.clone(),
        };
        let ctx = self.ctx.value(&Scope {
            step: Some(&step.id),
            delivery: Some((&ids.delivery_id, 1)),
            response: None,
        });
        let req = request::build(w, &ctx, &ids, self.settings.env.placeholders)?;
        let d = self.deliver(step, w, &req, &ctx).await?;
        let keep = self.settings.keep_requests.then(|| req.clone());
        self.ctx
            .steps
            .insert(step.id.clone(), step_value(d.status, d.step_status));
        self.record(
            i,
            d.step_status,
            d.attempts,
            d.status,
            d.latencies,
            keep,
            d.error,
        );
        match d.step_status {
            StepStatus::Failed => Ok(match step.on_failure {
                OnFailure::Fail => Next::End("failed".into()),
                OnFailure::Continue => Next::Step(step.next),
                OnFailure::Stop => Next::End("stopped".into()),
                OnFailure::Goto(t) => Next::Step(Some(t)),
            }),
            _ => Ok(Next::Step(step.next)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        index: usize,
        status: StepStatus,
        attempts: u32,
        http_status: Option<u16>,
        latencies: Vec<Duration>,
        request: Option<Request>,
        error: Option<String>,
    ) {
        self.result.steps.push(StepRecord {
            index,
            status,
            attempts,
            http_status,
            latencies,
            request,
            error,
        });
    }

    /// Attempts until success, a final failure, or the attempts run out.
    async fn deliver(
        &mut self,
        step: &'a StepPlan,
        w: &WebhookPlan,
        req: &Request,
        ctx: &Value,
    ) -> Result<Delivery, RenderError> {
        let mut rng = fastrand::Rng::with_seed(self.settings.seed ^ seed_of(&req.delivery_id));
        let mut d = Delivery::default();
        for n in 1..=w.retry.attempts {
            d.attempts = n;
            let attempt = Attempt {
                journey: &self.j.name,
                step: &step.id,
                request: req,
                number: n,
                context: ctx,
            };
            let outcome = self.exec.send(attempt).await;
            match &outcome {
                Outcome::Assumed => return Ok(self.assumed(step, d)),
                Outcome::MockFailed(e) => return Err(e.clone()),
                Outcome::Response(r) => {
                    d.status = Some(r.status);
                    d.latencies.push(r.latency);
                    if self.succeeded(step, w, r)? {
                        self.save(step, r)?;
                        d.step_status = StepStatus::Ok;
                        return Ok(d);
                    }
                    d.error = Some(format!("HTTP {}", r.status));
                }
                Outcome::Transport(e) => d.error = Some(e.to_string()),
            }
            if !retry::is_retryable(&outcome) || n == w.retry.attempts {
                break;
            }
            match next_delay(w, &outcome, n, &mut rng, self.ctx.now) {
                Ok(delay) => self.exec.pause(delay).await,
                Err(why) => {
                    d.error = Some(why);
                    break;
                }
            }
        }
        d.step_status = StepStatus::Failed;
        Ok(d)
    }

    fn assumed(&mut self, step: &StepPlan, mut d: Delivery) -> Delivery {
        for (name, _) in &step.save {
            self.ctx
                .saved
                .insert(name.clone(), Value::from(format!("<{}.{name}>", step.id)));
        }
        d.step_status = StepStatus::Assumed;
        d.error = None;
        d
    }

    fn response_scope(&self, step: &'a StepPlan, r: &Response) -> Value {
        self.ctx.value(&Scope {
            step: Some(&step.id),
            delivery: None,
            response: Some(response_value(r)),
        })
    }

    fn succeeded(
        &self,
        step: &'a StepPlan,
        w: &WebhookPlan,
        r: &Response,
    ) -> Result<bool, RenderError> {
        match &w.success {
            None => Ok((200..300).contains(&r.status)),
            Some(expr) => expr.is_true(&self.response_scope(step, r)),
        }
    }

    fn save(&mut self, step: &'a StepPlan, r: &Response) -> Result<(), RenderError> {
        if step.save.is_empty() {
            return Ok(());
        }
        let ctx = self.response_scope(step, r);
        for (name, expr) in &step.save {
            let v = expr.eval(&ctx)?;
            if v.is_undefined() {
                self.result.warnings.push(format!(
                    "{}: journey `{}`, step `{}`: `save.{name}` found nothing in the response; `saved.{name}` stays unset",
                    expr.pos, self.j.name, step.id
                ));
            } else {
                self.ctx.saved.insert(name.clone(), v);
            }
        }
        Ok(())
    }
}

/// What came of one delivery.
#[derive(Debug, Default)]
struct Delivery {
    attempts: u32,
    status: Option<u16>,
    latencies: Vec<Duration>,
    step_status: StepStatus,
    error: Option<String>,
}

fn step_value(status: Option<u16>, s: StepStatus) -> Value {
    map([
        ("status", Value::from(status)),
        ("outcome", Value::from(s.as_str())),
    ])
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
    let ct = r.header("content-type").unwrap_or("").to_ascii_lowercase();
    let is_json = ct.starts_with("application/json")
        || ct
            .split(';')
            .next()
            .is_some_and(|t| t.trim().ends_with("+json"));
    let body = if is_json {
        serde_json::from_slice::<serde_json::Value>(&r.body)
            .map(|v| value_of(&v))
            .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(&r.body).into_owned()))
    } else {
        Value::from(String::from_utf8_lossy(&r.body).into_owned())
    };
    let headers: std::collections::BTreeMap<String, String> = r
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
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
