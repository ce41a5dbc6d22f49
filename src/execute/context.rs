//! The template context of one entry: what `customer`, `event`, `vars`, `saved`, `steps`, `now` … are.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use minijinja::Value;

use crate::render::env_vars::{EnvVars, Namespace};
use crate::render::{map, value_of};

/// The growing context of one entry.
#[derive(Debug, Clone)]
pub struct EntryContext {
    base: BTreeMap<&'static str, Value>,
    /// `vars.NAME`.
    pub vars: BTreeMap<String, Value>,
    /// `saved.NAME`.
    pub saved: BTreeMap<String, Value>,
    /// `steps.ID.{status,outcome}`.
    pub steps: BTreeMap<String, Value>,
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

impl EntryContext {
    /// The context of an entry before its first step.
    pub fn new(
        journey: &str,
        customer: &serde_json::Value,
        event: Option<&serde_json::Value>,
        env: &EnvVars,
        now: DateTime<Utc>,
    ) -> EntryContext {
        let mut base = BTreeMap::new();
        base.insert("customer", value_of(customer));
        if let Some(e) = event {
            base.insert("event", value_of(e));
        }
        base.insert("journey", map([("name", Value::from(journey))]));
        base.insert("env", env.value(Namespace::Env));
        base.insert("secret", env.value(Namespace::Secret));
        EntryContext {
            base,
            vars: BTreeMap::new(),
            saved: BTreeMap::new(),
            steps: BTreeMap::new(),
            now,
        }
    }

    /// Sets `entry.{key, trace_id}`.
    pub fn set_entry(&mut self, key: &str, trace_id: &str) {
        self.base.insert(
            "entry",
            map([
                ("key", Value::from(key)),
                ("trace_id", Value::from(trace_id)),
            ]),
        );
    }

    /// The template value for a render in `scope`.
    pub fn value(&self, scope: &Scope<'_>) -> Value {
        let mut m: BTreeMap<&str, Value> = self.base.clone();
        m.insert("vars", Value::from(self.vars.clone()));
        m.insert("saved", Value::from(self.saved.clone()));
        m.insert("steps", Value::from(self.steps.clone()));
        m.insert("now", Value::from(crate::clock::rfc3339(self.now)));
        if let Some(step) = scope.step {
            m.insert("step", map([("id", Value::from(step))]));
        }
        if let Some((id, attempt)) = scope.delivery {
            m.insert(
                "delivery",
                map([("id", Value::from(id)), ("attempt", Value::from(attempt))]),
            );
        }
        if let Some(r) = &scope.response {
            m.insert("response", r.clone());
        }
        Value::from(m)
    }
}
