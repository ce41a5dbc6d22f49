//! The walk and the state store: resuming, guarding each delivery, recording outcomes, parking
//! waits and send windows.

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

    /// An entry the store holds nothing of: its records are the first (a store may insert them
    /// without looking for earlier ones).
    pub fn fresh(mut self) -> Self {
        self.fresh = true;
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
                fresh: self.fresh,
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
    pub(super) fn row(&self) -> crate::state::EntryRow<'_> {
        crate::state::EntryRow {
            key: &self.result.key,
            journey: &self.j.name,
            customer: &self.result.customer,
            started: self.entrant.started,
            fresh: self.fresh,
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
    pub(super) fn note_wait(&mut self, i: usize, text: String) {
        if self.settings.keep_requests {
            self.result.waited.push((i, text));
        }
    }

    /// The entry's data, for a parked wait or a dead letter: no `env`, no `secret`.
    pub(super) fn snapshot(&self, ctx: &crate::render::context::EntryContext) -> Snapshot {
        let json = |m: &crate::render::context::Fields| serde_json::to_value(m).unwrap_or_default();
        Snapshot {
            customer: (*self.entrant.customer.record).clone(),
            event: self.entrant.event.as_deref().cloned(),
            vars: json(&ctx.vars),
            saved: json(&ctx.saved),
            steps: json(&ctx.steps),
            now: crate::clock::rfc3339(ctx.now),
            started: Some(crate::clock::rfc3339(self.entrant.started)),
        }
    }
}
