//! JSON bodies rendered leaf by leaf: strings are templates, everything else is kept as written.

use minijinja::Value;

use super::{Compiler, RenderError, Tmpl};

/// A YAML body value with its string leaves compiled.
#[derive(Debug, Clone)]
pub enum BodyTemplate {
    /// A non-string leaf, kept as written.
    Lit(serde_json::Value),
    /// A string leaf: a template (a lone `{{ expr }}` keeps its type).
    Str(Tmpl),
    /// A list.
    List(Vec<BodyTemplate>),
    /// A mapping; keys are literal.
    Map(Vec<(String, BodyTemplate)>),
}

impl BodyTemplate {
    /// Compiles every string leaf of `value`, found at `field` in the file.
    pub fn compile(c: &mut Compiler, field: &str, value: &serde_json::Value) -> BodyTemplate {
        match value {
            serde_json::Value::String(s) => BodyTemplate::Str(c.template(field, s)),
            serde_json::Value::Array(items) => BodyTemplate::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Self::compile(c, &format!("{field}[{i}]"), v))
                    .collect(),
            ),
            serde_json::Value::Object(map) => BodyTemplate::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), Self::compile(c, &format!("{field}.{k}"), v)))
                    .collect(),
            ),
            other => BodyTemplate::Lit(other.clone()),
        }
    }

    /// Renders against an entry's context.
    pub fn render(&self, ctx: &Value) -> Result<serde_json::Value, RenderError> {
        Ok(match self {
            BodyTemplate::Lit(v) => v.clone(),
            BodyTemplate::Str(t) => t.render_json(ctx)?,
            BodyTemplate::List(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|i| i.render(ctx))
                    .collect::<Result<_, _>>()?,
            ),
            BodyTemplate::Map(entries) => {
                let mut map = serde_json::Map::with_capacity(entries.len());
                for (k, v) in entries {
                    map.insert(k.clone(), v.render(ctx)?);
                }
                serde_json::Value::Object(map)
            }
        })
    }
}
