//! From triggers and fixtures to entries, in input order; selection by `--customer` and `--limit`.

use chrono::{DateTime, Utc};

use super::context::{EntryContext, Scope};
use super::identity;
use crate::fixture::{Customer, Event, Fixtures};
use crate::journey::Journey;
use crate::journey::plan::TriggerPlan;
use crate::render::EnvVars;

/// One customer entering one journey.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The journey index.
    pub journey: usize,
    /// The customer (resolved).
    pub customer: Customer,
    /// The trigger event, for event triggers.
    pub event: Option<Event>,
    /// When the entry started: its event's `at`, or the run's clock for segments.
    pub started: DateTime<Utc>,
    /// The customer's events that can end the entry (`exit_when`).
    pub exits: Vec<Event>,
}

/// The customer's events named by the journey's `exit_when`.
fn exits(j: &Journey, fx: &Fixtures, customer: &str) -> Vec<Event> {
    match &j.exit_when {
        Some(x) => fx
            .events_of(customer)
            .filter(|e| e.name == x.event)
            .cloned()
            .collect(),
        None => Vec::new(),
    }
}

/// An entry that could not be made: the event names an unknown customer, or the trigger failed.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// The journey index.
    pub journey: usize,
    /// The customer id as given.
    pub customer: String,
    /// The event id.
    pub event: Option<String>,
    /// The entry key.
    pub key: String,
    /// The aggregated message.
    pub message: String,
}

/// Either an entry to run or an invalid one to count.
#[derive(Debug, Clone)]
pub enum Candidate {
    /// Runs.
    Entry(Entry),
    /// Counts as invalid.
    Invalid(Rejected),
    /// A parked entry that is due, to walk on from its snapshot.
    Resume(Entry, String),
}

/// Rebuilds the entry of a parked wait: the customer from tonight's fixtures when there is one
/// (so consent is checked again), else the stored snapshot.
pub fn resumed(
    j: &Journey,
    ji: usize,
    key: &str,
    snapshot: &crate::execute::recorder::Snapshot,
    fx: &Fixtures,
) -> Option<Candidate> {
    let id = snapshot.customer.get("id")?.as_str()?.to_string();
    let customer = fx.customer(&id).cloned().unwrap_or_else(|| Customer {
        id,
        record: std::sync::Arc::new(snapshot.customer.clone()),
    });
    let event = snapshot.event.as_ref().and_then(Event::from_record);
    let started = snapshot
        .started
        .as_deref()
        .and_then(|s| crate::clock::parse(s).ok())
        .or(event.as_ref().map(|e| e.at))
        .unwrap_or_else(Utc::now);
    let exits = exits(j, fx, &customer.id);
    Some(Candidate::Resume(
        Entry {
            journey: ji,
            customer,
            event,
            started,
            exits,
        },
        key.to_string(),
    ))
}

/// Which entries to take.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only these customer ids (empty: all).
    pub customers: Vec<String>,
    /// At most this many entries.
    pub limit: Option<usize>,
}

/// Every candidate entry, journey by journey, in fixture order.
pub fn candidates(
    journeys: &[Journey],
    fx: &Fixtures,
    env: &EnvVars,
    now: DateTime<Utc>,
    sel: &Selection,
) -> Vec<Candidate> {
    let wanted = |id: &str| sel.customers.is_empty() || sel.customers.iter().any(|c| c == id);
    let mut out = Vec::new();
    for (ji, j) in journeys.iter().enumerate() {
        match &j.trigger {
            TriggerPlan::Event { name, filter } => {
                for e in fx
                    .events
                    .iter()
                    .filter(|e| &e.name == name && wanted(&e.customer))
                {
                    out.extend(from_event(ji, j, e, filter.as_ref(), fx, env, now));
                }
            }
            TriggerPlan::Segment(expr) => {
                for c in fx.customers.iter().filter(|c| wanted(&c.id)) {
                    let ctx = EntryContext::new(&j.name, &c.record, None, env, now);
                    match expr.is_true(&ctx.value(&Scope::default())) {
                        Ok(true) => out.push(Candidate::Entry(Entry {
                            journey: ji,
                            customer: c.clone(),
                            event: None,
                            started: now,
                            exits: exits(j, fx, &c.id),
                        })),
                        Ok(false) => {}
                        Err(err) => out.push(invalid(
                            ji,
                            &c.id,
                            None,
                            identity::entry_key(&j.name, &c.id),
                            trigger_error(j, &err),
                        )),
                    }
                }
            }
        }
    }
    if let Some(limit) = sel.limit {
        out.truncate(limit);
    }
    out
}

fn from_event(
    ji: usize,
    j: &Journey,
    e: &Event,
    filter: Option<&crate::render::Expr>,
    fx: &Fixtures,
    env: &EnvVars,
    now: DateTime<Utc>,
) -> Option<Candidate> {
    let key = identity::entry_key(&j.name, &e.id);
    let Some(c) = fx.customer(&e.customer) else {
        let msg = format!(
            "journey `{}`: event `{}` names customer `{}`, who is in no fixture file",
            j.name, e.id, e.customer
        );
        return Some(invalid(ji, &e.customer, Some(&e.id), key, msg));
    };
    if let Some(f) = filter {
        let ctx = EntryContext::new(&j.name, &c.record, Some(&e.record), env, now);
        match f.is_true(&ctx.value(&Scope::default())) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(err) => return Some(invalid(ji, &c.id, Some(&e.id), key, trigger_error(j, &err))),
        }
    }
    Some(Candidate::Entry(Entry {
        journey: ji,
        customer: c.clone(),
        event: Some(e.clone()),
        started: e.at,
        exits: exits(j, fx, &c.id),
    }))
}

fn invalid(
    ji: usize,
    customer: &str,
    event: Option<&str>,
    key: String,
    message: String,
) -> Candidate {
    Candidate::Invalid(Rejected {
        journey: ji,
        customer: customer.to_string(),
        event: event.map(str::to_string),
        key,
        message,
    })
}

fn trigger_error(j: &Journey, e: &crate::render::RenderError) -> String {
    format!(
        "{}: journey `{}`, `{}`: {}",
        e.pos, j.name, e.field, e.message
    )
}
