//! Rendering: the minijinja environment, compiled templates and expressions, native-typed bodies, filters.

pub(crate) mod ast;
pub(crate) mod body;
pub(crate) mod compare;
pub(crate) mod context;
pub mod engine;
pub mod env_vars;
pub(crate) mod fast;
pub(crate) mod filters;
pub(crate) mod guard;
pub(crate) mod refs;
pub(crate) mod url;

pub use body::BodyTemplate;
pub use engine::{Compiler, Expr, Tmpl};
pub use env_vars::EnvVars;

use std::fmt;

use crate::position::Pos;

/// A template or expression that failed for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    /// Where the template stands in its journey file.
    pub pos: Pos,
    /// The field path, e.g. `steps[0].webhook.body.cart_value`.
    pub field: String,
    /// What went wrong, without customer data positions.
    pub message: String,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: `{}`: {}", self.pos, self.field, self.message)
    }
}

/// Any serializable value as a template value.
pub fn value_of<T: serde::Serialize>(v: &T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(v))
}

/// A template map from key/value pairs.
pub fn map<const N: usize>(pairs: [(&str, minijinja::Value); N]) -> minijinja::Value {
    minijinja::Value::from(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<std::collections::BTreeMap<String, minijinja::Value>>(),
    )
}

/// Describes a minijinja error in one lowercase line with a hint.
pub fn describe(err: &minijinja::Error) -> String {
    use minijinja::ErrorKind as K;
    let detail = err.detail().map(|d| format!(": {d}")).unwrap_or_default();
    match err.kind() {
        K::UndefinedError => format!(
            "undefined value{detail}; write `x is defined and ...` or `x | default('y', true)` where it may be missing"
        ),
        K::UnknownFilter => format!("unknown filter{detail}"),
        K::UnknownFunction => format!("unknown function{detail}"),
        K::SyntaxError => format!("syntax error{detail}"),
        _ => format!("{}{detail}", lower_first(&err.kind().to_string())),
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}
