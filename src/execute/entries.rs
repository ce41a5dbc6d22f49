//! From triggers and fixtures to entries, in input order; selection by `--customer` and `--limit`.

use chrono::{DateTime, Utc};

use crate::fixture::{Customer, Event, Fixtures};
use crate::identity;
use crate::journey::Journey;
use crate::journey::plan::TriggerPlan;
use crate::render::EnvVars;
use crate::render::context::{EntryContext, Scope};

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

/// Sightings: what tonight's streams say about the customers of parked entries, gathered as the streams are
/// read: each one's latest record and their `exit_when` events. Only the customers asked for are
/// kept, so memory follows the parked entries, not the file.
#[derive(Debug, Default)]
pub struct Sightings {
    /// The customers asked for, and the event names kept (the journeys' `exit_when` events).
    wanted: std::sync::OnceLock<(std::collections::HashSet<String>, Vec<String>)>,
    seen: std::sync::Mutex<std::collections::HashMap<String, Seen>>,
    /// The run's stop: reading on past `--limit` ends with it.
    stop: std::sync::OnceLock<std::sync::Arc<super::stop::Stop>>,
}

/// One customer's records and events in tonight's streams.
#[derive(Debug, Default)]
struct Seen {
    customer: Option<Customer>,
    events: Vec<Event>,
}

impl Sightings {
    /// Asks for these customers and their `exit_when` events of `journeys` (before the streams
    /// are read).
    pub fn want(
        &self,
        customers: impl IntoIterator<Item = String>,
        journeys: &[Journey],
        stop: &std::sync::Arc<super::stop::Stop>,
    ) {
        let exits = journeys
            .iter()
            .filter_map(|j| j.exit_when.as_ref().map(|x| x.event.clone()))
            .collect();
        let _ = self.wanted.set((customers.into_iter().collect(), exits));
        let _ = self.stop.set(std::sync::Arc::clone(stop));
    }

    /// Whether the streams must be read to their end for parked customers, past `--limit`:
    /// someone is asked for, and the run is not stopping.
    fn reads_on(&self) -> bool {
        let watching = self.wanted.get().is_some_and(|(c, _)| !c.is_empty());
        watching && !self.stop.get().is_some_and(|s| s.is_set())
    }

    /// Keeps what a streamed record says about a customer asked for.
    fn observe(&self, r: &crate::fixture::stream::Record) {
        let Some((customers, exits)) = self.wanted.get() else {
            return;
        };
        if !customers.contains(&r.customer.id) {
            return;
        }
        if let Ok(mut seen) = self.seen.lock() {
            let s = seen.entry(r.customer.id.clone()).or_default();
            s.customer = Some(r.customer.clone());
            let exit = r.event.as_ref().filter(|e| exits.contains(&e.name));
            s.events.extend(exit.cloned());
        }
    }

    /// The customer's latest record in tonight's streams.
    fn customer(&self, id: &str) -> Option<Customer> {
        let seen = self.seen.lock().ok()?;
        seen.get(id)?.customer.clone()
    }

    /// The customer's events called `name` in tonight's streams.
    fn events(&self, id: &str, name: &str) -> Vec<Event> {
        let Ok(seen) = self.seen.lock() else {
            return Vec::new();
        };
        seen.get(id).map_or_else(Vec::new, |s| {
            s.events
                .iter()
                .filter(|e| e.name == name)
                .cloned()
                .collect()
        })
    }
}

/// Rebuilds the entry of a parked wait: the customer from tonight's fixtures (documents, then
/// streams) when there is one, so consent is checked again, else the stored snapshot; the
/// `exit_when` events of both.
pub fn resumed(
    j: &Journey,
    ji: usize,
    key: &str,
    snapshot: &crate::state::Snapshot,
    fx: &Fixtures,
    sightings: &Sightings,
) -> Option<Candidate> {
    let id = snapshot.customer.get("id")?.as_str()?.to_string();
    let customer = fx
        .customer(&id)
        .cloned()
        .or_else(|| sightings.customer(&id))
        .unwrap_or_else(|| Customer {
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
    let mut exits = exits(j, fx, &customer.id);
    if let Some(x) = &j.exit_when {
        exits.extend(sightings.events(&customer.id, &x.event));
    }
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
    /// Only the customers of shard `K` of `N` (1-based).
    pub shard: Option<(u64, u64)>,
}

/// True when the customer id falls in shard `k` of `n`: sha256, first 8 bytes, modulo `n`.
pub fn in_shard(customer: &str, (k, n): (u64, u64)) -> bool {
    use sha2::{Digest, Sha256};
    crate::identity::first_u64(&Sha256::digest(customer.as_bytes())) % n == k - 1
}

/// Parses `K/N` with 1 ≤ K ≤ N.
pub fn parse_shard(text: &str) -> Result<(u64, u64), String> {
    let err = || format!("--shard `{text}`: write K/N with 1 <= K <= N, e.g. 2/4");
    let (k, n) = text.split_once('/').ok_or_else(err)?;
    let (k, n): (u64, u64) = (
        k.trim().parse().map_err(|_| err())?,
        n.trim().parse().map_err(|_| err())?,
    );
    if k == 0 || n == 0 || k > n {
        return Err(err());
    }
    Ok((k, n))
}

/// Candidates, produced as the runner asks for them.
pub type Candidates<'a> = Box<dyn Iterator<Item = Candidate> + Send + 'a>;

impl Candidate {
    /// The customer id the candidate is about.
    pub fn customer(&self) -> &str {
        match self {
            Candidate::Entry(e) | Candidate::Resume(e, _) => &e.customer.id,
            Candidate::Invalid(r) => &r.customer,
        }
    }
}

/// At most `left` candidates; then, while tonight's parked customers are asked for, the rest of
/// the streams is read (entering no one) so that their records and `exit_when` events are seen.
struct Limited<'a> {
    inner: Candidates<'a>,
    left: usize,
    sightings: &'a Sightings,
}

impl Iterator for Limited<'_> {
    type Item = Candidate;

    fn next(&mut self) -> Option<Candidate> {
        if self.left > 0 {
            self.left -= 1;
            return self.inner.next();
        }
        while self.sightings.reads_on() && self.inner.next().is_some() {}
        None
    }
}

impl Selection {
    /// Keeps the chosen customers, then at most `limit` candidates (reading on for `sightings`).
    pub fn apply<'a>(&self, all: Candidates<'a>, sightings: &'a Sightings) -> Candidates<'a> {
        let all: Candidates<'a> = match self.shard {
            Some(shard) => Box::new(all.filter(move |c| in_shard(c.customer(), shard))),
            None => all,
        };
        let customers = self.customers.clone();
        let chosen: Candidates<'a> = if customers.is_empty() {
            all
        } else {
            Box::new(all.filter(move |c| customers.iter().any(|id| id == c.customer())))
        };
        match self.limit {
            Some(left) => Box::new(Limited {
                inner: chosen,
                left,
                sightings,
            }),
            None => chosen,
        }
    }
}

/// Every candidate: the fixture documents journey by journey, then each streamed record.
pub fn all<'a>(
    journeys: &'a [Journey],
    fx: &'a Fixtures,
    env: &'a EnvVars,
    now: DateTime<Utc>,
    options: crate::fixture::stream::Options,
    sightings: &'a Sightings,
) -> Candidates<'a> {
    let docs = candidates(journeys, fx, env, now);
    let streams =
        fx.streams.iter().flat_map(
            move |path| match crate::fixture::stream::open(path, options) {
                Ok(items) => items,
                Err(e) => Box::new(std::iter::once(crate::fixture::stream::Item::Bad(e))),
            },
        );
    Box::new(
        docs.into_iter()
            .chain(streams.flat_map(move |item| streamed(journeys, fx, env, now, item, sightings))),
    )
}

/// The candidates of one streamed record, one per journey it enters.
fn streamed(
    journeys: &[Journey],
    fx: &Fixtures,
    env: &EnvVars,
    now: DateTime<Utc>,
    item: crate::fixture::stream::Item,
    sightings: &Sightings,
) -> Vec<Candidate> {
    let r = match item {
        crate::fixture::stream::Item::Record(r) => r,
        crate::fixture::stream::Item::Bad(message) => {
            return vec![invalid(0, "", None, String::new(), message)];
        }
    };
    sightings.observe(&r);
    journeys
        .iter()
        .enumerate()
        .filter_map(|(ji, j)| match (&j.trigger, &r.event) {
            (TriggerPlan::Segment(expr), _) => {
                segment_entry(ji, j, expr, &r.customer, fx, env, now)
            }
            (TriggerPlan::Event { name, filter }, Some(e)) if &e.name == name => {
                event_entry(ji, j, e, filter.as_ref(), &r.customer, fx, env, now)
            }
            _ => None,
        })
        .collect()
}

/// Every candidate of the fixture documents, journey by journey, in fixture order.
pub fn candidates(
    journeys: &[Journey],
    fx: &Fixtures,
    env: &EnvVars,
    now: DateTime<Utc>,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (ji, j) in journeys.iter().enumerate() {
        match &j.trigger {
            TriggerPlan::Event { name, filter } => {
                for e in fx.events.iter().filter(|e| &e.name == name) {
                    out.extend(from_event(ji, j, e, filter.as_ref(), fx, env, now));
                }
            }
            TriggerPlan::Segment(expr) => {
                out.extend(
                    fx.customers
                        .iter()
                        .filter_map(|c| segment_entry(ji, j, expr, c, fx, env, now)),
                );
            }
        }
    }
    out
}

fn segment_entry(
    ji: usize,
    j: &Journey,
    expr: &crate::render::Expr,
    c: &Customer,
    fx: &Fixtures,
    env: &EnvVars,
    now: DateTime<Utc>,
) -> Option<Candidate> {
    let verdict = if expr.is_always_true() {
        Ok(true)
    } else {
        let ctx = EntryContext::new(&j.name, &c.record, None, env, now);
        expr.is_true(&ctx.value(&Scope::default()))
    };
    match verdict {
        Ok(true) => Some(Candidate::Entry(Entry {
            journey: ji,
            customer: c.clone(),
            event: None,
            started: now,
            exits: exits(j, fx, &c.id),
        })),
        Ok(false) => None,
        Err(err) => Some(invalid(
            ji,
            &c.id,
            None,
            identity::entry_key(&j.name, &c.id),
            trigger_error(j, &err),
        )),
    }
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
    let Some(c) = fx.customer(&e.customer) else {
        let msg = format!(
            "journey `{}`: event `{}` names customer `{}`, who is in no fixture file",
            j.name, e.id, e.customer
        );
        return Some(invalid(
            ji,
            &e.customer,
            Some(&e.id),
            identity::entry_key(&j.name, &e.id),
            msg,
        ));
    };
    event_entry(ji, j, e, filter, c, fx, env, now)
}

#[allow(clippy::too_many_arguments)]
fn event_entry(
    ji: usize,
    j: &Journey,
    e: &Event,
    filter: Option<&crate::render::Expr>,
    c: &Customer,
    fx: &Fixtures,
    env: &EnvVars,
    now: DateTime<Utc>,
) -> Option<Candidate> {
    let key = identity::entry_key(&j.name, &e.id);
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
