//! Why a customer asked for with `--customer` has no entry in a journey: not in this shard, in
//! no fixture, no trigger event, or the trigger's `where` was false, with the values it read.
//! Asked only after the run, for the customers and journeys no entry was about, so a run
//! without `--customer` pays nothing; streams are read again only for customers the fixture
//! documents do not hold.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::entries::{Selection, in_shard};
use crate::fixture::{Customer, Event, Fixtures};
use crate::journey::Journey;
use crate::journey::plan::TriggerPlan;
use crate::render::context::{EntryContext, Scope};
use crate::render::{EnvVars, Expr};

/// One customer and journey (and trigger event) without an entry, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotEntered {
    /// The journey's name.
    pub journey: String,
    /// The customer id.
    pub customer: String,
    /// The trigger event that did not start an entry, for event triggers.
    pub event: Option<String>,
    /// Why, in words.
    pub reason: String,
}

/// What the run saw: (journey index, customer id, trigger event id) of each entry.
pub type Seen = HashSet<(usize, String, Option<String>)>;

/// What the explanation reads besides the journeys.
pub struct Inputs<'a> {
    /// The fixtures.
    pub fixtures: &'a Fixtures,
    /// Environment variables as templates see them.
    pub env: &'a EnvVars,
    /// The run's clock.
    pub now: DateTime<Utc>,
    /// How streams are read.
    pub options: crate::fixture::stream::Options,
}

/// Every customer of `selection` and journey that no entry of `seen` was about, with why.
pub fn explain(
    journeys: &[Journey],
    input: &Inputs<'_>,
    selection: &Selection,
    seen: &Seen,
) -> Vec<NotEntered> {
    let records = records(input, &selection.customers);
    let mut out = Vec::new();
    for id in &selection.customers {
        let shard = selection.shard.filter(|s| !in_shard(id, *s));
        for (ji, j) in journeys.iter().enumerate() {
            let why = |event: Option<&Event>, reason: String| NotEntered {
                journey: j.name.clone(),
                customer: id.clone(),
                event: event.map(|e| e.id.clone()),
                reason,
            };
            if let Some((k, n)) = shard {
                out.push(why(
                    None,
                    format!("not in shard {k}/{n} (sha256 of the id)"),
                ));
                continue;
            }
            let Some((customer, events)) = records.get(id.as_str()) else {
                out.push(why(None, format!("customer `{id}` is in no fixture file")));
                continue;
            };
            match &j.trigger {
                TriggerPlan::Segment(expr) => {
                    if !seen.contains(&(ji, id.clone(), None)) {
                        out.push(why(None, verdict(j, expr, customer, None, input)));
                    }
                }
                TriggerPlan::Event { name, filter } => {
                    let mine: Vec<&Event> = events.iter().filter(|e| &e.name == name).collect();
                    if mine.is_empty() {
                        out.push(why(None, format!("no `{name}` event for this customer")));
                    }
                    for e in mine {
                        if seen.contains(&(ji, id.clone(), Some(e.id.clone()))) {
                            continue;
                        }
                        let reason = match filter {
                            Some(f) => verdict(j, f, customer, Some(e), input),
                            None => not_reached(),
                        };
                        out.push(why(Some(e), reason));
                    }
                }
            }
        }
    }
    out
}

/// The customer's record and events, from the documents, else from the streams.
fn records<'a>(input: &Inputs<'a>, ids: &'a [String]) -> HashMap<&'a str, (Customer, Vec<Event>)> {
    let fx = input.fixtures;
    let mut found: HashMap<&str, (Customer, Vec<Event>)> = HashMap::new();
    for id in ids {
        if let Some(c) = fx.customer(id) {
            found.insert(id, (c.clone(), fx.events_of(id).cloned().collect()));
        }
    }
    let missing: HashSet<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| !found.contains_key(id))
        .collect();
    if missing.is_empty() {
        return found;
    }
    for path in &fx.streams {
        let Ok(items) = crate::fixture::stream::open(path, input.options) else {
            continue;
        };
        for item in items {
            let crate::fixture::stream::Item::Record(r) = item else {
                continue;
            };
            let Some(&id) = missing.get(r.customer.id.as_str()) else {
                continue;
            };
            let (customer, events) = found
                .entry(id)
                .or_insert_with(|| (r.customer.clone(), Vec::new()));
            *customer = r.customer.clone();
            events.extend(r.event);
        }
    }
    found
}

/// The trigger's `where` on this customer (and event): false with the values it read, or an
/// error, or true (then the run did not reach the entry).
fn verdict(
    j: &Journey,
    expr: &Expr,
    customer: &Customer,
    event: Option<&Event>,
    input: &Inputs<'_>,
) -> String {
    let ctx = EntryContext::new(
        &j.name,
        &customer.record,
        event.map(|e| &e.record),
        input.env,
        input.now,
    );
    let value = ctx.value(&Scope::default());
    match expr.is_true(&value) {
        Ok(false) => format!(
            "the trigger's `where` was false: `{}`{}",
            expr.source,
            read(expr.source, &value)
        ),
        Ok(true) => not_reached(),
        Err(e) => format!("the trigger's `where` failed: {}", e.message),
    }
}

fn not_reached() -> String {
    "the trigger takes this customer, but the run did not reach the entry (--limit, or the run stopped)".into()
}

/// `, read event.properties.cart_value = 20`: each path the expression reads, with its value.
fn read(source: &str, value: &minijinja::Value) -> String {
    let env = crate::render::engine::environment();
    let shown: Vec<String> = crate::render::refs::paths_of_expression(source)
        .into_iter()
        .filter_map(|path| {
            let v = env.compile_expression(&path).ok()?.eval(value).ok()?;
            let text = match v.kind() {
                minijinja::value::ValueKind::Undefined => "undefined".to_string(),
                minijinja::value::ValueKind::String => format!("'{v}'"),
                _ => v.to_string(),
            };
            Some(format!("{path} = {text}"))
        })
        .collect();
    match shown.is_empty() {
        true => String::new(),
        false => format!(", read {}", shown.join(", ")),
    }
}

/// The block `--show paths` prints for one customer and journey without an entry.
pub fn block(n: &NotEntered) -> String {
    let event = n
        .event
        .as_ref()
        .map(|e| format!(", event {e}"))
        .unwrap_or_default();
    format!(
        "customer {} in {}{event}\n  → did not enter: {}\n\n",
        n.customer, n.journey, n.reason
    )
}
