//! One entry's walk through its journey: steps in order, branches, waits, deliveries, saves.

mod async_steps;
mod gates;
mod store;

use std::sync::Arc;

use minijinja::Value;

use super::deliver::{Deliverer, Delivery, response_value};
use super::entries::Entry;
use super::executor::Executor;
use super::recorder::DeadLetter;
use super::request::{self, Request};
use super::result::{EntryError, EntryResult, Outcome, StepRecord, StepStatus};
use super::runner::RunSettings;
use crate::fixture::Customer;
use crate::gate;
use crate::identity;
use crate::journey::Journey;
use crate::journey::plan::{OnFailure, StepKind, StepPlan, WebhookPlan};
use crate::render::context::{EntryContext, Scope};
use crate::render::{RenderError, map, value_of};

/// Who walks: the customer, the trigger event, when the entry started and the events that can
/// end it.
struct Entrant {
    customer: Customer,
    event: Option<Arc<serde_json::Value>>,
    /// When the entry started.
    started: chrono::DateTime<chrono::Utc>,
    /// Events that can end the entry (`exit_when`).
    exits: Vec<crate::fixture::Event>,
}

/// One entry's walk.
pub struct Walk<'a, E> {
    j: &'a Journey,
    entrant: Entrant,
    trace_id: String,
    exec: &'a E,
    settings: &'a RunSettings,
    ctx: EntryContext,
    result: EntryResult,
    jobs: Option<tokio::sync::mpsc::UnboundedSender<async_steps::Job>>,
    /// The step to walk from (after a wait).
    start: usize,
    /// Deliveries already recorded in the state store, by step id.
    stored: std::collections::HashMap<String, crate::state::StoredDelivery>,
    /// The store held nothing of this entry when this run began it.
    fresh: bool,
}

/// Where the walk goes after a step.
enum Next {
    Step(Option<usize>),
    End(Outcome),
}

impl<'a, E: Executor> Walk<'a, E> {
    /// A walk of `e` through `j`.
    pub fn new(j: &'a Journey, e: &Entry, exec: &'a E, settings: &'a RunSettings) -> Self {
        let key = identity::entry_key(
            &j.name,
            e.event.as_ref().map_or(&e.customer.id, |ev| &ev.id),
        );
        let event = e.event.as_ref().map(|ev| Arc::clone(&ev.record));
        let ctx = EntryContext::new(
            &j.name,
            &e.customer.record,
            event.as_ref(),
            &settings.env,
            settings.now,
        );
        Walk {
            j,
            entrant: Entrant {
                customer: e.customer.clone(),
                event,
                started: e.started,
                exits: e.exits.clone(),
            },
            trace_id: String::new(),
            exec,
            settings,
            ctx,
            result: EntryResult::new(
                e.journey,
                &e.customer.id,
                e.event.as_ref().map(|ev| ev.id.clone()),
                key,
            ),
            jobs: None,
            start: 0,
            stored: Default::default(),
            fresh: false,
        }
    }

    /// Computes the entry key, trace id and vars; the key is known only after this.
    pub fn enter(mut self) -> Result<Self, Box<EntryResult>> {
        match self.try_enter() {
            Ok(()) => Ok(self),
            Err(e) => Err(Box::new(self.invalid(None, e))),
        }
    }

    /// The entry key.
    pub fn key(&self) -> &str {
        &self.result.key
    }

    fn try_enter(&mut self) -> Result<(), RenderError> {
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

    /// The customer is in the journey's holdout group.
    fn in_holdout(&self) -> bool {
        gate::holdout::held_out(self.j, &self.result.customer)
    }

    /// The channel whose missing consent keeps the customer out of the journey (the holdout
    /// is decided first): such a customer is not entered.
    fn kept_out_by(&self) -> Option<&'a str> {
        if self.in_holdout() {
            return None;
        }
        gate::consent::missing(self.j.consent.as_deref(), &self.entrant.customer)
    }

    /// True when the journey's consent keeps the customer out.
    pub fn kept_out(&self) -> bool {
        self.kept_out_by().is_some()
    }

    /// Ends the entry before anything is rendered: the customer is on the suppression list.
    pub fn suppressed(mut self) -> EntryResult {
        self.result.outcome = Outcome::Suppressed;
        self.result.why = Some("on the --suppress list".into());
        self.result
    }

    /// Ends the entry without walking it (its key was already taken).
    pub fn already_done(mut self) -> EntryResult {
        self.result.outcome = Outcome::AlreadyDone;
        self.result
    }

    /// Walks the steps while a driver sends the entry's async deliveries; the entry ends once
    /// both are done.
    pub async fn run(mut self) -> EntryResult {
        if self.in_holdout() {
            self.result.outcome = Outcome::Holdout;
            self.persist(&Outcome::Holdout);
            return self.result;
        }
        if let Some(channel) = self.kept_out_by() {
            // A stored entry whose customer has since withdrawn consent ends here.
            self.result.outcome = Outcome::Suppressed;
            self.result.why = Some(gate::consent::reason(channel));
            self.persist(&Outcome::Suppressed);
            return self.result;
        }
        let has_async = self
            .j
            .steps
            .iter()
            .any(|s| matches!(&s.kind, StepKind::Webhook(w) if w.is_async));
        let walked = if has_async {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            self.jobs = Some(tx);
            let driver = async_steps::drive(self.deliverer(), self.j, self.result.key.clone(), rx);
            // Boxed: only journeys with async steps take this path, and its two futures side
            // by side made every entry's walk 3.0 KB instead of 2.6 KB.
            let (walked, done) = Box::pin(async { tokio::join!(self.walk(), driver) }).await;
            self.settle(done);
            walked
        } else {
            self.walk().await
        };
        let outcome = match &walked {
            Ok(outcome) => outcome,
            Err(_) => &Outcome::Invalid,
        };
        self.persist(outcome);
        match walked {
            Ok(outcome) => {
                self.result.outcome = outcome;
                self.result
            }
            Err((step, e)) => self.invalid(Some(&step), e),
        }
    }

    /// The steps, in order; the outcome label, or the step and error that made the entry invalid.
    async fn walk(&mut self) -> Result<Outcome, (String, RenderError)> {
        let mut at = (self.start < self.j.steps.len()).then_some(self.start);
        let result = loop {
            let Some(i) = at else {
                break Ok(Outcome::Completed);
            };
            let step = &self.j.steps[i];
            match self.converted() {
                Ok(true) => break Ok(Outcome::Exited),
                Ok(false) => {}
                Err(e) => break Err((step.id.clone(), e)),
            }
            self.result.walked.push(i);
            match self.step(i, step).await {
                Ok(Next::Step(n)) => at = n,
                Ok(Next::End(label)) => break Ok(label),
                Err(e) => break Err((step.id.clone(), e)),
            }
        };
        self.jobs = None;
        result
    }

    fn invalid(mut self, step: Option<&str>, e: RenderError) -> EntryResult {
        let at = step.map(|s| format!(", step `{s}`")).unwrap_or_default();
        self.result.outcome = Outcome::Invalid;
        self.result.error = Some(EntryError {
            message: format!(
                "{}: journey `{}`{at}, `{}`: {}",
                e.pos, self.j.name, e.field, e.message
            ),
        });
        self.result
    }

    async fn step(&mut self, i: usize, step: &'a StepPlan) -> Result<Next, RenderError> {
        match &step.kind {
            StepKind::Webhook(w) if w.is_async => self.spawn(i, step, w).await,
            StepKind::Webhook(w) => self.webhook(i, step, w).await,
            StepKind::Branch { arms, default } => {
                let ctx = self.ctx.value(&Scope {
                    step: Some(&step.id),
                    ..Scope::default()
                });
                for (cond, target) in arms {
                    if cond.is_true(&ctx)? {
                        return Ok(Next::Step(Some(*target)));
                    }
                }
                Ok(Next::Step(default.or(step.next)))
            }
            StepKind::Split(arms) => {
                let bucket =
                    crate::identity::hash_percent(&[&self.j.name, &step.id, &self.result.customer]);
                let target = arms
                    .iter()
                    .find(|(upto, _)| bucket < *upto)
                    .map(|(_, t)| *t);
                Ok(Next::Step(target.or(step.next)))
            }
            StepKind::Wait(d) => Ok(self.wait(i, step, *d)),
            StepKind::End(label) => Ok(Next::End(Outcome::from_label(label))),
        }
    }

    /// Renders a webhook step's request, or `None` when consent is missing (recorded as suppressed).
    fn prepare(
        &mut self,
        i: usize,
        step: &StepPlan,
        w: &WebhookPlan,
    ) -> Result<Option<Request>, RenderError> {
        if gate::consent::missing(step.consent.as_deref(), &self.entrant.customer).is_some() {
            self.record(i, StepStatus::Suppressed, Delivery::default(), None);
            self.ctx
                .steps
                .insert(step.id.clone(), step_value(None, StepStatus::Suppressed));
            return Ok(None);
        }
        let keys = match self.settings.env.placeholders {
            true => request::Keys::DummyForPlaceholders,
            false => request::Keys::Given,
        };
        let safety = match &self.settings.sending {
            super::runner::Sending::Real(safety) => Some(safety),
            super::runner::Sending::Mocked => None,
        };
        let entry = (
            self.j.name.as_str(),
            self.result.key.as_str(),
            self.trace_id.clone(),
        );
        request::for_step(entry, &step.id, w, &self.ctx, keys, safety).map(Some)
    }

    fn deliverer(&self) -> Deliverer<'a, E> {
        Deliverer {
            exec: self.exec,
            recorder: &*self.settings.recorder,
            journey: &self.j.name,
            entry_key: "",
            seed: self.settings.seed,
            stop: &self.settings.stop,
            protect: self.settings.protect.as_deref(),
        }
    }

    /// What comes before any webhook send: the send window, the frequency cap, rendering (and
    /// consent), a stop, and the store's record. `Err(next)` when the step is not sent now.
    async fn ready(
        &mut self,
        i: usize,
        step: &'a StepPlan,
        w: &'a WebhookPlan,
    ) -> Result<Result<Request, Next>, RenderError> {
        if let Some(next) = self.window(i, step)? {
            return Ok(Err(next));
        }
        if self.capped(i, step).await {
            return Ok(Err(Next::Step(step.next)));
        }
        let Some(req) = self.prepare(i, step, w)? else {
            return Ok(Err(Next::Step(step.next)));
        };
        if self.settings.stop.is_set() {
            return Ok(Err(Next::End(Outcome::Interrupted)));
        }
        Ok(match self.guard(i, step, &req).await {
            store::Guard::Send => Ok(req),
            store::Guard::Delivered => Err(Next::Step(step.next)),
            store::Guard::Stop => Err(Next::End(Outcome::Interrupted)),
        })
    }

    async fn webhook(
        &mut self,
        i: usize,
        step: &'a StepPlan,
        w: &'a WebhookPlan,
    ) -> Result<Next, RenderError> {
        let req = match self.ready(i, step, w).await? {
            Ok(req) => req,
            Err(next) => return Ok(next),
        };
        let d = Deliverer {
            entry_key: &self.result.key,
            ..self.deliverer()
        }
        .deliver(step, w, &req, &self.ctx)
        .await?;
        if let Some(r) = &d.response {
            self.save(step, r)?;
        } else if d.step_status == StepStatus::Assumed {
            for (name, _) in &step.save {
                let placeholder = Value::from(format!("<{}.{name}>", step.id));
                self.ctx.saved.insert(name.clone(), placeholder);
            }
        }
        self.ctx
            .steps
            .insert(step.id.clone(), step_value(d.status, d.step_status));
        self.record_outcome(step, &d);
        self.note_sent(step, &d);
        let failed = d.step_status == StepStatus::Failed;
        if failed && d.deferred && self.settings.state.keeps_entries() {
            self.record(i, d.step_status, d, Some(req));
            return Ok(Next::End(Outcome::Waiting));
        }
        if failed && step.on_failure == OnFailure::Fail {
            self.dead_letter(step, &d, &self.ctx);
            self.result.error = Some(EntryError {
                message: self.failure(step, &d),
            });
        }
        self.record(i, d.step_status, d, Some(req));
        if !failed {
            return Ok(Next::Step(step.next));
        }
        Ok(match step.on_failure {
            OnFailure::Fail => Next::End(Outcome::Failed),
            OnFailure::Continue => Next::Step(step.next),
            OnFailure::Stop => Next::End(Outcome::Stopped),
            OnFailure::Goto(t) => Next::Step(Some(t)),
        })
    }

    /// Why a delivery failed, the same words for every customer it failed for.
    fn failure(&self, step: &StepPlan, d: &Delivery) -> String {
        let why = d.error.as_deref().unwrap_or("failed");
        let after = match d.attempts {
            0 => String::new(),
            1 => " after 1 attempt".into(),
            n => format!(" after {n} attempts"),
        };
        format!(
            "journey `{}`, step `{}`: {why}{after}",
            self.j.name, step.id
        )
    }

    fn record(&mut self, index: usize, status: StepStatus, d: Delivery, request: Option<Request>) {
        let saved = if self.settings.keep_requests {
            self.saved_text(index)
        } else {
            Vec::new()
        };
        self.result.steps.push(StepRecord {
            index,
            status,
            attempts: d.attempts,
            http_status: d.status,
            latencies: d.latencies,
            request: request
                .filter(|_| self.settings.keep_requests)
                .map(Box::new),
            error: d.error,
            earlier: d.earlier,
            saved,
            transport: d.transport,
            response: d
                .response
                .or(d.failed_response)
                .filter(|_| self.settings.keep_requests)
                .map(Box::new),
        });
    }

    /// What step `index` saved, as text, for `--show` (only then: it costs a string each).
    fn saved_text(&self, index: usize) -> Vec<(String, String)> {
        self.j.steps[index]
            .save
            .iter()
            .filter_map(|(name, _)| {
                let v = self.ctx.saved.get(name)?;
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                Some((name.clone(), text))
            })
            .collect()
    }

    fn dead_letter(&self, step: &StepPlan, d: &Delivery, ctx: &EntryContext) {
        let letter = DeadLetter {
            journey: self.j.name.clone(),
            journey_file: std::fs::canonicalize(&*self.j.file)
                .unwrap_or_else(|_| self.j.file.to_path_buf())
                .display()
                .to_string(),
            step: step.id.clone(),
            entry_key: self.result.key.clone(),
            delivery_id: identity::delivery_id(&self.j.name, &self.result.key, &step.id),
            customer: self.result.customer.clone(),
            event: self.result.event.clone(),
            attempts: d.attempts,
            status: d.status,
            error: d.error.clone().unwrap_or_default(),
            snapshot: self.snapshot(ctx),
            state: self.settings.state.location(),
        };
        self.settings.recorder.dead_letter(&letter);
    }

    fn save(
        &mut self,
        step: &'a StepPlan,
        r: &super::executor::Response,
    ) -> Result<(), RenderError> {
        if step.save.is_empty() {
            return Ok(());
        }
        let ctx = self.ctx.value(&Scope {
            step: Some(&step.id),
            delivery: None,
            response: Some(response_value(r)),
        });
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

/// `steps.ID`: made once per status and outcome on each thread (template values are immutable).
fn step_value(status: Option<u16>, s: StepStatus) -> Value {
    thread_local! {
        static MADE: std::cell::RefCell<foldhash::HashMap<(Option<u16>, StepStatus), Value>> =
            Default::default();
    }
    MADE.with_borrow_mut(|made| {
        made.entry((status, s))
            .or_insert_with(|| {
                map([
                    ("status", Value::from(status)),
                    ("outcome", Value::from(s.as_str())),
                ])
            })
            .clone()
    })
}
