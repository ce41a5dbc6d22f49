//! The template context of one entry: what `customer`, `event`, `vars`, `saved`, `steps`, `now` … are.
//!
//! A render sees the context as a minijinja object that answers by name; nothing is copied into a
//! new map per render (the dry-run profile was dominated by those copies). `vars`, `saved` and
//! `steps` are copy-on-write maps: cloning them costs a reference count.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use minijinja::Value;
use minijinja::value::{Enumerator, Object};

use crate::render::env_vars::{EnvVars, Namespace};
use crate::render::{map, value_of};

/// A copy-on-write map of template values.
#[derive(Debug, Clone, Default)]
pub struct Fields(Arc<BTreeMap<String, Value>>);

impl Fields {
    /// Sets a value (copying the map only when a render still holds it).
    pub fn insert(&mut self, key: String, value: Value) {
        Arc::make_mut(&mut self.0).insert(key, value);
    }

    /// A value by name.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The template value: the map itself, shared.
    pub fn value(&self) -> Value {
        Value::from_object(FieldsObject(Arc::clone(&self.0)))
    }
}

impl FromIterator<(String, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Fields(Arc::new(iter.into_iter().collect()))
    }
}

impl serde::Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

#[derive(Debug)]
struct FieldsObject(Arc<BTreeMap<String, Value>>);

impl Object for FieldsObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.get(key.as_str()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.keys().map(|k| Value::from(k.as_str())).collect())
    }
}

/// The customer and event as read, and their template values, made once a template needs them
/// whole (attribute paths read the records directly: see [`record`]).
#[derive(Debug)]
struct Records {
    customer: Arc<serde_json::Value>,
    event: Option<Arc<serde_json::Value>>,
    env: EnvVars,
    values: std::sync::OnceLock<(Value, Option<Value>)>,
}

impl Records {
    fn values(&self) -> &(Value, Option<Value>) {
        self.values.get_or_init(|| {
            let event = self.event.as_deref().map(value_of);
            (value_of(&*self.customer), event)
        })
    }
}

/// `customer` or `event` of a render's context as read from the fixtures, when `ctx` is an
/// entry's context.
pub fn record<'a>(ctx: &'a Value, name: &str) -> Option<&'a serde_json::Value> {
    let view = ctx.downcast_object_ref::<View>()?;
    match name {
        "customer" => Some(&view.records.customer),
        "event" => view.records.event.as_deref(),
        _ => None,
    }
}

/// `env.NAME` or `secret.NAME` of a render's context, as a template reads it, when `ctx` is an
/// entry's context.
pub fn variable<'a>(ctx: &'a Value, namespace: &str, name: &str) -> Option<Cow<'a, str>> {
    let view = ctx.downcast_object_ref::<View>()?;
    let namespace = match namespace {
        "env" => Namespace::Env,
        "secret" => Namespace::Secret,
        _ => return None,
    };
    view.records.env.get(namespace, name)
}

/// `journey`, `env` and `secret` of a journey's entries: made once per journey and environment
/// on each thread.
fn base_of(journey: &str, env: &EnvVars) -> Arc<BTreeMap<&'static str, Value>> {
    type Made = foldhash::HashMap<String, (EnvVars, Arc<BTreeMap<&'static str, Value>>)>;
    thread_local! {
        static MADE: std::cell::RefCell<Made> = Default::default();
    }
    MADE.with_borrow_mut(|made| {
        // The cache holds the environment it was made with, so a match is never a stale one.
        if let Some((made_with, base)) = made.get(journey)
            && made_with.is(env)
        {
            return Arc::clone(base);
        }
        let base = Arc::new(BTreeMap::from([
            ("journey", map([("name", Value::from(journey))])),
            ("env", env.value(Namespace::Env)),
            ("secret", env.value(Namespace::Secret)),
        ]));
        made.insert(journey.to_string(), (env.clone(), Arc::clone(&base)));
        base
    })
}

/// The growing context of one entry.
#[derive(Debug, Clone)]
pub struct EntryContext {
    base: Arc<BTreeMap<&'static str, Value>>,
    records: Arc<Records>,
    /// `entry.{key, trace_id}`, once known.
    entry: Option<Value>,
    /// `vars.NAME`.
    pub vars: Fields,
    /// `saved.NAME`.
    pub saved: Fields,
    /// `steps.ID.{status,outcome}`.
    pub steps: Fields,
    /// The entry's clock.
    pub now: DateTime<Utc>,
}

/// Per-render additions: the step, the delivery, the response.
#[derive(Debug, Default, Clone)]
pub struct Scope<'a> {
    /// The step being rendered.
    pub step: Option<&'a str>,
    /// `delivery.{id, attempt}`.
    pub delivery: Option<(&'a str, u32)>,
    /// `response`, inside `success` and `save` only.
    pub response: Option<Value>,
}

/// One render's view of the context: each name becomes a template value only when a template
/// asks for it (most renders read `customer` and nothing else).
#[derive(Debug)]
struct View {
    base: Arc<BTreeMap<&'static str, Value>>,
    records: Arc<Records>,
    entry: Option<Value>,
    vars: Fields,
    saved: Fields,
    steps: Fields,
    now: DateTime<Utc>,
    step: Option<String>,
    delivery: Option<(String, u32)>,
    response: Option<Value>,
}

impl Object for View {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "vars" => Some(self.vars.value()),
            "saved" => Some(self.saved.value()),
            "steps" => Some(self.steps.value()),
            "now" => Some(Value::from(crate::clock::rfc3339(self.now))),
            "step" => self.step.as_deref().map(|s| map([("id", Value::from(s))])),
            "delivery" => self.delivery.as_ref().map(|(id, attempt)| {
                map([
                    ("id", Value::from(id.as_str())),
                    ("attempt", Value::from(*attempt)),
                ])
            }),
            "response" => self.response.clone(),
            "customer" => Some(self.records.values().0.clone()),
            "event" => self.records.values().1.clone(),
            "entry" => self.entry.clone(),
            other => self.base.get(other).cloned(),
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<Value> = self.base.keys().map(|k| Value::from(*k)).collect();
        keys.push(Value::from("customer"));
        if self.records.event.is_some() {
            keys.push(Value::from("event"));
        }
        keys.extend(["vars", "saved", "steps", "now"].map(Value::from));
        for (name, present) in [
            ("entry", self.entry.is_some()),
            ("step", self.step.is_some()),
            ("delivery", self.delivery.is_some()),
            ("response", self.response.is_some()),
        ] {
            if present {
                keys.push(Value::from(name));
            }
        }
        Enumerator::Values(keys)
    }
}

impl EntryContext {
    /// The context of an entry before its first step.
    pub fn new(
        journey: &str,
        customer: &Arc<serde_json::Value>,
        event: Option<&Arc<serde_json::Value>>,
        env: &EnvVars,
        now: DateTime<Utc>,
    ) -> EntryContext {
        let records = Arc::new(Records {
            customer: Arc::clone(customer),
            event: event.map(Arc::clone),
            env: env.clone(),
            values: Default::default(),
        });
        EntryContext {
            base: base_of(journey, env),
            records,
            entry: None,
            vars: Fields::default(),
            saved: Fields::default(),
            steps: Fields::default(),
            now,
        }
    }

    /// Takes `vars`, `saved` and `steps` back from where they were kept as JSON (a parked
    /// entry's snapshot, a dead letter's).
    pub fn restore(
        &mut self,
        vars: &serde_json::Value,
        saved: &serde_json::Value,
        steps: &serde_json::Value,
    ) {
        let fields = |v: &serde_json::Value| -> Fields {
            v.as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), value_of(v))).collect())
                .unwrap_or_default()
        };
        self.vars = fields(vars);
        self.saved = fields(saved);
        self.steps = fields(steps);
    }

    /// Sets `entry.{key, trace_id}`.
    pub fn set_entry(&mut self, key: &str, trace_id: &str) {
        let entry = map([
            ("key", Value::from(key)),
            ("trace_id", Value::from(trace_id)),
        ]);
        self.entry = Some(entry);
    }

    /// The template value for a render in `scope`.
    pub fn value(&self, scope: &Scope<'_>) -> Value {
        Value::from_object(View {
            base: Arc::clone(&self.base),
            records: Arc::clone(&self.records),
            entry: self.entry.clone(),
            vars: self.vars.clone(),
            saved: self.saved.clone(),
            steps: self.steps.clone(),
            now: self.now,
            step: scope.step.map(str::to_string),
            delivery: scope
                .delivery
                .map(|(id, attempt)| (id.to_string(), attempt)),
            response: scope.response.clone(),
        })
    }
}
