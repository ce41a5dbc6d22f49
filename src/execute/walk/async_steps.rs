//! `async` steps: handed to a driver that sends them while the entry walks on, then settled
//! (recorded, dead-lettered when they fail) before the entry ends.

use futures_util::StreamExt;

use super::{Next, Walk};
use crate::execute::deliver::{Deliverer, Delivery};
use crate::execute::executor::Executor;
use crate::execute::request::Request;
use crate::execute::result::StepStatus;
use crate::journey::Journey;
use crate::journey::plan::{StepKind, StepPlan, WebhookPlan};
use crate::render::RenderError;
use crate::render::context::EntryContext;

/// An `async` delivery to make: its step index, request and the entry's context at that step.
pub(super) type Job = (usize, Request, EntryContext);

/// An `async` delivery made: the job and its outcome.
pub(super) type Done = (usize, Request, EntryContext, Result<Delivery, RenderError>);

impl<'a, E: Executor> Walk<'a, E> {
    /// Hands an async delivery to the driver; the entry moves on at once.
    pub(super) async fn spawn(
        &mut self,
        i: usize,
        step: &'a StepPlan,
        w: &'a WebhookPlan,
    ) -> Result<Next, RenderError> {
        let req = match self.ready(i, step, w).await? {
            Ok(req) => req,
            Err(next) => return Ok(next),
        };
        if let Some(jobs) = &self.jobs {
            // The driver lives as long as the walk; a send cannot fail while it runs.
            let _ = jobs.send((i, req, self.ctx.clone()));
        }
        Ok(Next::Step(step.next))
    }

    /// Records every async delivery; an unhandled failure is dead-lettered.
    pub(super) fn settle(&mut self, done: Vec<Done>) {
        for (i, req, ctx, d) in done {
            let step = &self.j.steps[i];
            match d {
                Ok(d) => {
                    self.record_outcome(step, &d);
                    self.note_sent(step, &d);
                    if d.step_status == StepStatus::Failed {
                        self.dead_letter(step, &d, &ctx);
                    }
                    self.record(i, d.step_status, d, Some(req));
                }
                Err(e) => self.result.warnings.push(format!(
                    "{}: journey `{}`, async step `{}`: {}",
                    e.pos, self.j.name, step.id, e.message
                )),
            }
        }
    }
}

/// Sends async deliveries as they come, all at once, until the walk closes the channel.
pub(super) async fn drive<'a, E: Executor>(
    deliverer: Deliverer<'a, E>,
    j: &'a Journey,
    key: String,
    mut jobs: tokio::sync::mpsc::UnboundedReceiver<Job>,
) -> Vec<Done> {
    let mut running = futures_util::stream::FuturesUnordered::new();
    let mut done = Vec::new();
    let deliver = |(i, req, ctx): Job| {
        let key = key.clone();
        async move {
            let step = &j.steps[i];
            let StepKind::Webhook(w) = &step.kind else {
                unreachable!("only webhook steps are async")
            };
            let d = Deliverer {
                entry_key: &key,
                ..deliverer
            }
            .deliver(step, w, &req, &ctx)
            .await;
            (i, req, ctx, d)
        }
    };
    loop {
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => running.push(deliver(job)),
                None => break,
            },
            Some(d) = running.next(), if !running.is_empty() => done.push(d),
        }
    }
    while let Some(d) = running.next().await {
        done.push(d);
    }
    done
}
