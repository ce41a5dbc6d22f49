//! JSON bodies rendered leaf by leaf: strings are templates, everything else is kept as written.

use minijinja::Value;

use super::{Compiler, RenderError, Tmpl};

/// A YAML body value with its string leaves compiled.
#[derive(Debug, Clone)]
pub enum BodyTemplate {
    /// A non-string leaf, kept as written: its JSON text, serialized once.
    Lit(Box<[u8]>),
    /// A string leaf: a template (a lone `{{ expr }}` keeps its type).
    Str(Tmpl),
    /// A list.
    List(Vec<BodyTemplate>),
    /// A mapping; keys are literal, each kept as its JSON text and colon (`"key":`).
    Map(Vec<(Box<[u8]>, BodyTemplate)>),
}

/// One step of a path into a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKey {
    /// A mapping's key.
    Key(String),
    /// A list's index.
    Index(usize),
}

impl BodyTemplate {
    /// The paths of the string leaves that read a `secret.*`.
    pub fn secret_paths(&self) -> Vec<Vec<BodyKey>> {
        let mut out = Vec::new();
        self.collect_secret_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_secret_paths(&self, at: &mut Vec<BodyKey>, out: &mut Vec<Vec<BodyKey>>) {
        match self {
            BodyTemplate::Lit(_) => {}
            BodyTemplate::Str(t) if t.reads_secret() => out.push(at.clone()),
            BodyTemplate::Str(_) => {}
            BodyTemplate::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    at.push(BodyKey::Index(i));
                    item.collect_secret_paths(at, out);
                    at.pop();
                }
            }
            BodyTemplate::Map(entries) => {
                for (key, item) in entries.iter() {
                    let name =
                        serde_json::from_slice::<String>(&key[..key.len() - 1]).unwrap_or_default();
                    at.push(BodyKey::Key(name));
                    item.collect_secret_paths(at, out);
                    at.pop();
                }
            }
        }
    }

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
                    .map(|(k, v)| {
                        let mut key = Vec::new();
                        write_json(&mut key, k);
                        key.push(b':');
                        (key.into(), Self::compile(c, &format!("{field}.{k}"), v))
                    })
                    .collect(),
            ),
            other => {
                let mut json = Vec::new();
                write_json(&mut json, other);
                BodyTemplate::Lit(json.into())
            }
        }
    }

    /// Renders against an entry's context straight to JSON text (what is sent), with no
    /// intermediate value: the same bytes as serializing the rendered value.
    pub fn write(&self, ctx: &Value, out: &mut Vec<u8>) -> Result<(), RenderError> {
        match self {
            BodyTemplate::Lit(json) => out.extend_from_slice(json),
            BodyTemplate::Str(t) => t.write_json(ctx, out)?,
            BodyTemplate::List(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(ctx, out)?;
                }
                out.push(b']');
            }
            BodyTemplate::Map(entries) => {
                out.push(b'{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(k);
                    v.write(ctx, out)?;
                }
                out.push(b'}');
            }
        }
        Ok(())
    }

    /// Renders against an entry's context to a value: the reference [`BodyTemplate::write`] is
    /// checked against.
    #[cfg(test)]
    pub fn render(&self, ctx: &Value) -> Result<serde_json::Value, RenderError> {
        Ok(match self {
            BodyTemplate::Lit(json) => serde_json::from_slice(json).expect("written as JSON"),
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
                    let key = serde_json::from_slice(&k[..k.len() - 1]).expect("written as JSON");
                    map.insert(key, v.render(ctx)?);
                }
                serde_json::Value::Object(map)
            }
        })
    }
}

/// Appends a value that always serializes (JSON data, a string).
pub fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    serde_json::to_writer(out, v).expect("JSON data and strings always serialize");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::Positions;
    use minijinja::context;

    #[test]
    fn written_bytes_are_the_serialized_value() {
        let body: serde_json::Value = serde_json::json!({
            "id": "{{ c.id }}", "n": "{{ c.n }}", "f": "{{ c.f }}", "ok": "{{ c.ok }}",
            "none": "{{ c.none }}", "list": "{{ c.list }}", "map": "{{ c.map }}",
            "text": "Hi \"{{ c.name }}\"\n\t{{ c.f }}", "lit": [1, 2.5, null, true, "é\u{1}"],
            "nested": { "sum": "{{ c.n + 1 }}", "upper": "{{ c.name | upper }}" }
        });
        let p = Positions::read(std::path::Path::new("t.yaml"), "a: 1\n");
        let mut c = Compiler::new(&p);
        let t = BodyTemplate::compile(&mut c, "body", &body);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        let ctx = context! { c => context! {
            id => "c1", n => 41, f => 1.0, ok => false, none => (), name => "Zoë <z>",
            list => vec![1, 2], map => context! { b => 1, a => "x" },
        } };
        let mut written = Vec::new();
        t.write(&ctx, &mut written).unwrap();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            serde_json::to_string(&t.render(&ctx).unwrap()).unwrap()
        );
    }
}
