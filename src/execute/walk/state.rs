//! The walk and the state store: resuming, guarding each delivery, recording outcomes, parking waits.

use std::time::Duration;

use super::{Next, Walk, step_value};
use crate::execute::deliver::Delivery;
use crate::execute::executor::Executor;
use crate::execute::request::Request;
use crate::execute::result::Outcome;
use crate::execute::result::{EntryError, EntryResult, StepStatus};
use crate::identity;
use crate::journey::plan::StepPlan;
use crate::render::value_of;
use crate::state::DeliveryState;
use crate::state::Snapshot;
use crate::state::StoredEntry;

/// What the store says about sending a delivery.
pub(super) enum Guard {
    /// Recorded as pending: send it.
    Send,
    /// An earlier run delivered it: walk on with what it saved.
    Delivered,
    /// The store failed: stop this entry.
    Stop,
}

impl<'a, E: Executor> Walk<'a, E> {
    /// Takes the key of a parked entry (its vars come from the snapshot).
    pub fn with_key(mut self, key: &str) -> Self {
        self.result.key = key.to_string();
        self.trace_id = identity::trace_id(key);
        self.ctx.set_entry(key, &self.trace_id);
        self
    }

    /// Walks on from where the store says the entry stands.
    pub fn resume(mut self, stored: StoredEntry) -> Self {
        self.start = stored.start_step;
        self.stored = stored.deliveries;
        if let Some(s) = stored.snapshot {
            self.ctx.restore(&s.vars, &s.saved, &s.steps);
            if let Ok(now) = crate::clock::parse(&s.now) {
                self.ctx.now = now.max(self.ctx.now);
            }
        }
        self
    }

    /// A parked entry that is not due yet.
    pub fn still_waiting(mut self) -> EntryResult {
        self.result.outcome = Outcome::Waiting;
        self.result
    }

    /// The store failed before the entry could start.
    pub fn interrupted(mut self, why: &str) -> EntryResult {
        self.result.outcome = Outcome::Interrupted;
        self.result.error = Some(EntryError {
            message: format!("state store: {why}"),
        });
        self.result
    }

    /// Decides whether a delivery is sent, and records it as pending before it is.
    pub(super) async fn guard(&mut self, i: usize, step: &StepPlan, req: &Request) -> Guard {
        let store = &self.settings.state;
        if !store.keeps_entries() {
            return Guard::Send;
        }
        match self.stored.get(&step.id).map(|d| (d.status, d.clone())) {
            Some((DeliveryState::Ok, d)) => {
                for (k, v) in &d.saved {
                    self.ctx.saved.insert(k.clone(), value_of(v));
                }
                self.ctx
                    .steps
                    .insert(step.id.clone(), step_value(d.http_status, StepStatus::Ok));
                self.record(
                    i,
                    StepStatus::Delivered,
                    Delivery {
                        status: d.http_status,
                        ..Delivery::default()
                    },
                    None,
                );
                return Guard::Delivered;
            }
            Some((DeliveryState::Pending, _)) => self.result.in_doubt = true,
            _ => {}
        }
        match store
            .before(&crate::state::Pending {
                id: &req.delivery_id,
                entry: &self.result.key,
                step: &step.id,
                customer: &self.result.customer,
                channel: step.channel.as_deref(),
                at: self.ctx.now,
            })
            .await
        {
            Ok(()) => Guard::Send,
            Err(why) => {
                self.result.error = Some(EntryError {
                    message: format!("state store: {why}"),
                });
                Guard::Stop
            }
        }
    }

    /// Records a delivery's outcome and what its step saved.
    pub(super) fn record_outcome(&self, step: &StepPlan, d: &Delivery) {
        let store = &self.settings.state;
        if !store.keeps_entries() {
            return;
        }
        let status = match d.step_status {
            _ if d.deferred => DeliveryState::Deferred,
            StepStatus::Ok | StepStatus::Assumed | StepStatus::Delivered => DeliveryState::Ok,
            StepStatus::Failed | StepStatus::Suppressed | StepStatus::Capped => {
                DeliveryState::Failed
            }
        };
        let saved: serde_json::Map<String, serde_json::Value> = step
            .save
            .iter()
            .filter_map(|(name, _)| {
                self.ctx
                    .saved
                    .get(name)
                    .map(|v| (name.clone(), serde_json::to_value(v).unwrap_or_default()))
            })
            .collect();
        store.after(
            &self.result.key,
            &step.id,
            status,
            d.status,
            &serde_json::Value::Object(saved),
            d.attempts,
        );
    }

    /// Ends the entry in the store; waiting and interrupted entries stay open. An invalid entry
    /// ends failed (outcome `invalid`): it is not entered again, and `--retry-failed` walks it
    /// again once its data is fixed.
    pub(super) fn persist(&self, outcome: &Outcome) {
        let store = &self.settings.state;
        if !store.keeps_entries() {
            return;
        }
        match outcome {
            Outcome::Waiting | Outcome::Interrupted => {}
            o => store.end(&self.row(), o.is_failure(), o.as_str()),
        }
    }

    /// The entry, as the store writes its row.
    fn row(&self) -> crate::state::EntryRow<'_> {
        crate::state::EntryRow {
            key: &self.result.key,
            journey: &self.j.name,
            customer: &self.result.customer,
            started: self.started,
        }
    }

    /// A wait: the clock moves on; a real run with a store parks the entry until it is due.
    pub(super) fn wait(&mut self, i: usize, step: &StepPlan, d: Duration) -> Next {
        self.ctx.now += chrono::Duration::from_std(d).unwrap_or_default();
        let parks = !self.settings.fast_forward && self.ctx.now > self.settings.now;
        let store = &self.settings.state;
        let until = format!("until {}", crate::clock::rfc3339(self.ctx.now));
        self.note_wait(i, until);
        if parks && store.keeps_entries() {
            let next = step.next.unwrap_or(self.j.steps.len());
            store.park(&self.row(), next, self.ctx.now, &self.snapshot(&self.ctx));
            return Next::End(Outcome::Waiting);
        }
        Next::Step(step.next)
    }

    /// Keeps what step `i` waited for, for `--show paths` (only then: it costs a string).
    fn note_wait(&mut self, i: usize, text: String) {
        if self.settings.keep_requests {
            self.result.waited.push((i, text));
        }
    }

    /// The entry's data, for a parked wait or a dead letter: no `env`, no `secret`.
    pub(super) fn snapshot(&self, ctx: &crate::render::context::EntryContext) -> Snapshot {
        let json = |m: &crate::render::context::Fields| serde_json::to_value(m).unwrap_or_default();
        Snapshot {
            customer: (*self.customer.record).clone(),
            event: self.event.as_deref().cloned(),
            vars: json(&ctx.vars),
            saved: json(&ctx.saved),
            steps: json(&ctx.steps),
            now: crate::clock::rfc3339(ctx.now),
            started: Some(crate::clock::rfc3339(self.started)),
        }
    }

    /// `exit_when`: an event of that name for this customer, after the entry started and no
    /// later than the entry's clock, for which `where` holds.
    pub(super) fn converted(&self) -> Result<bool, crate::render::RenderError> {
        let Some(exit) = &self.j.exit_when else {
            return Ok(false);
        };
        let base = || self.ctx.value(&crate::render::context::Scope::default());
        crate::gate::exit_when::converted(exit, &self.exits, self.started, self.ctx.now, base)
    }
}

impl<'a, E: Executor> Walk<'a, E> {
    /// A send window: outside its hours, a real run with a store parks the entry at this step
    /// until it opens; a dry-run (or `--fast-forward`) moves the clock to the opening.
    pub(super) fn window(
        &mut self,
        i: usize,
        step: &StepPlan,
    ) -> Result<Option<Next>, crate::render::RenderError> {
        let Some(w) = step.send_window.as_ref().or(self.j.send_window.as_ref()) else {
            return Ok(None);
        };
        let ctx = self.ctx.value(&crate::render::context::Scope::default());
        let opens = crate::gate::window::opens(w, self.ctx.now, &ctx)?;
        if opens == self.ctx.now {
            return Ok(None);
        }
        let until = format!(
            "outside its send window: waited until {}",
            crate::clock::rfc3339(opens)
        );
        self.note_wait(i, until);
        let parks = !self.settings.fast_forward && opens > self.settings.now;
        let store = &self.settings.state;
        if parks && store.keeps_entries() {
            store.park(&self.row(), i, opens, &self.snapshot(&self.ctx));
            return Ok(Some(Next::End(Outcome::Waiting)));
        }
        self.ctx.now = opens;
        Ok(None)
    }
}

impl<'a, E: Executor> Walk<'a, E> {
    /// `frequency_cap`: a step whose channel already reached `max` deliveries to this customer
    /// within `per` (by any journey sharing the store, or this run without one) is skipped as
    /// `capped`. Returns true when it was.
    pub(super) async fn capped(&mut self, i: usize, step: &StepPlan) -> bool {
        let Some(cap) = &step.cap else { return false };
        let store = &*self.settings.state;
        match crate::gate::cap::reached(store, &self.result.customer, cap, self.ctx.now).await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(why) => {
                self.result.warnings.push(format!(
                    "state store: cannot count `{}` deliveries: {why}",
                    cap.channel
                ));
                return false;
            }
        }
        self.ctx.steps.insert(
            step.id.clone(),
            crate::render::map([
                ("status", minijinja::Value::from(())),
                ("outcome", "capped".into()),
            ]),
        );
        self.record(i, StepStatus::Capped, Delivery::default(), None);
        true
    }

    /// Tells the store of a delivery of the step's channel, for later caps (a store that
    /// records every delivery knows already).
    pub(super) fn note_sent(&self, step: &StepPlan, d: &Delivery) {
        if let Some(channel) = &step.channel
            && matches!(d.step_status, StepStatus::Ok | StepStatus::Assumed)
        {
            self.settings
                .state
                .sent(&self.result.customer, channel, self.ctx.now);
        }
    }
}
