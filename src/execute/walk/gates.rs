//! The walk at its gates (`crate::gate`): an `exit_when` event before each step, a send window
//! and a frequency cap before a delivery, and the deliveries a cap counts.

use super::{Next, Walk};
use crate::execute::deliver::Delivery;
use crate::execute::executor::Executor;
use crate::execute::result::{Outcome, StepStatus};
use crate::journey::plan::StepPlan;

impl<'a, E: Executor> Walk<'a, E> {
    /// `exit_when`: an event of that name for this customer, after the entry started and no
    /// later than the entry's clock, for which `where` holds.
    pub(super) fn converted(&self) -> Result<bool, crate::render::RenderError> {
        let Some(exit) = &self.j.exit_when else {
            return Ok(false);
        };
        let base = || self.ctx.value(&crate::render::context::Scope::default());
        crate::gate::exit_when::converted(
            exit,
            &self.entrant.exits,
            self.entrant.started,
            self.ctx.now,
            base,
        )
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
