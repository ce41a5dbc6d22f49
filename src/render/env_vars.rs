//! `env` and `secret` in templates: environment variables, with placeholders when a run needs none.

use std::sync::Arc;

use minijinja::Value;
use minijinja::value::{Enumerator, Object};

/// The environment variables a run may read, captured once.
#[derive(Debug, Clone, Default)]
pub struct EnvVars {
    /// Variable values by name (read at every render that names one: a quick hash).
    pub values: Arc<foldhash::HashMap<String, String>>,
    /// When true (dry-run, test, validate), a missing value renders as `<env.NAME>`.
    pub placeholders: bool,
}

/// Which of the two namespaces a `VarsObject` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// `env.NAME`
    Env,
    /// `secret.NAME`
    Secret,
}

impl Namespace {
    fn prefix(self) -> &'static str {
        match self {
            Namespace::Env => "env",
            Namespace::Secret => "secret",
        }
    }
}

#[derive(Debug)]
struct VarsObject {
    vars: EnvVars,
    namespace: Namespace,
}

impl Object for VarsObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Value::from(
            self.vars.get(self.namespace, key.as_str()?)?.as_ref(),
        ))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Empty
    }
}

impl EnvVars {
    /// `env.NAME` or `secret.NAME` as a template reads it: the value, its placeholder, or `None`.
    pub fn get(&self, namespace: Namespace, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        match self.values.get(name) {
            Some(v) => Some(v.as_str().into()),
            None if self.placeholders => Some(format!("<{}.{name}>", namespace.prefix()).into()),
            None => None,
        }
    }

    /// The same variables, read from the same capture (not merely equal ones).
    pub fn is(&self, other: &EnvVars) -> bool {
        Arc::ptr_eq(&self.values, &other.values) && self.placeholders == other.placeholders
    }

    /// The template value for one namespace.
    pub fn value(&self, namespace: Namespace) -> Value {
        Value::from_object(VarsObject {
            vars: self.clone(),
            namespace,
        })
    }
}
