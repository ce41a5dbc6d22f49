//! A shortcut for the commonest templates: `{{ customer.email }}`, `Hi {{ customer.name }}`,
//! `{{ customer.email | normalize_email | sha256 }}`: attribute paths and our own argument-free
//! filters, evaluated without minijinja's VM.
//!
//! It gives the same answer as minijinja or none at all: whenever a lookup is undefined or a filter
//! does not apply, the caller renders through minijinja, which produces the value or the error.

use std::borrow::Cow;

use minijinja::Value;

use super::filters;
use crate::render::context::variable;

/// An expression of the form `a.b.c | filter | filter`.
#[derive(Debug, Clone)]
pub struct FastExpr {
    path: Vec<&'static str>,
    filters: Vec<Filter>,
}

#[derive(Debug, Clone, Copy)]
enum Filter {
    NormalizeEmail,
    Sha256,
    PathSegment,
    QueryPart,
}

/// A text template of literal text and fast expressions.
#[derive(Debug, Clone)]
pub struct FastText(Vec<Piece>);

#[derive(Debug, Clone)]
enum Piece {
    Text(&'static str),
    Expr(FastExpr),
}

/// Words that are literals or operators, never a name to look up.
const RESERVED: &[&str] = &[
    "true", "false", "none", "True", "False", "None", "and", "or", "not", "in", "is", "if", "else",
];

impl FastExpr {
    /// Parses `source` (the inside of `{{ }}`), or `None` when it is anything else.
    pub fn parse(source: &'static str) -> Option<FastExpr> {
        let mut parts = source.split('|').map(str::trim);
        let path: Vec<&'static str> = parts.next()?.split('.').collect();
        if !path.iter().all(|p| is_name(p)) || RESERVED.contains(&path[0]) {
            return None;
        }
        let filters = parts
            .map(|f| match f {
                "normalize_email" => Some(Filter::NormalizeEmail),
                "sha256" => Some(Filter::Sha256),
                super::url::PATH_SEGMENT => Some(Filter::PathSegment),
                super::url::QUERY_PART => Some(Filter::QueryPart),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(FastExpr { path, filters })
    }

    /// The value, or `None` when minijinja must decide (something undefined, a filter not applying).
    pub fn eval(&self, ctx: &Value) -> Option<Value> {
        if let Some(v) = self.scalar(ctx).and_then(Scalar::value) {
            return Some(v);
        }
        let mut v = self.lookup(ctx)?;
        for f in &self.filters {
            v = match f {
                Filter::NormalizeEmail => Value::from(filters::normalize_email(v.as_str()?)),
                Filter::Sha256 => Value::from(filters::sha256(&v)),
                Filter::PathSegment => super::url::path_segment(&v).ok()?,
                Filter::QueryPart => super::url::query_part(&v),
            };
        }
        Some(v)
    }
}

/// A value read without minijinja: text, or a JSON scalar (number, boolean, null).
enum Scalar<'a> {
    Text(Cow<'a, str>),
    Json(&'a serde_json::Value),
}

impl Scalar<'_> {
    /// The template value, as minijinja converts the whole record.
    fn value(self) -> Option<Value> {
        Some(match self {
            Scalar::Text(t) => Value::from(t.as_ref()),
            Scalar::Json(serde_json::Value::Bool(b)) => Value::from(*b),
            Scalar::Json(serde_json::Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Value::from(u),
                (None, Some(i)) => Value::from(i),
                _ => Value::from(n.as_f64()?),
            },
            Scalar::Json(_) => Value::from(()),
        })
    }
}

impl FastExpr {
    /// Appends the value as JSON (what `write_json` of its template value gives); `false`, with
    /// nothing written, when it takes a template value to answer.
    pub fn write_json(&self, ctx: &Value, out: &mut Vec<u8>) -> bool {
        match self.scalar(ctx) {
            Some(Scalar::Text(t)) => super::body::write_json(out, t.as_ref()),
            Some(Scalar::Json(v)) => super::body::write_json(out, v),
            None => return false,
        }
        true
    }

    /// Appends the value as text; `false`, with nothing written, when it takes a template value.
    fn write_text(&self, ctx: &Value, out: &mut String) -> bool {
        match self.scalar(ctx) {
            Some(Scalar::Text(t)) => out.push_str(&t),
            Some(Scalar::Json(serde_json::Value::Number(n))) if n.is_i64() || n.is_u64() => {
                out.push_str(&n.to_string())
            }
            _ => return false,
        }
        true
    }

    /// The value when it is a record's scalar or a variable, through string filters.
    fn scalar<'a>(&self, ctx: &'a Value) -> Option<Scalar<'a>> {
        let mut v = match (self.path[0], self.path.len()) {
            ("env" | "secret", 2) => Scalar::Text(variable(ctx, self.path[0], self.path[1])?),
            _ => match self.record_value(ctx)? {
                serde_json::Value::String(s) => Scalar::Text(s.as_str().into()),
                serde_json::Value::Array(_) | serde_json::Value::Object(_) => return None,
                scalar => Scalar::Json(scalar),
            },
        };
        for f in &self.filters {
            let Scalar::Text(text) = &v else {
                return None;
            };
            v = Scalar::Text(match f {
                Filter::NormalizeEmail => filters::normalize_email(text).into(),
                Filter::Sha256 => filters::sha256_text(text).into(),
                // `..` is an error only minijinja can give.
                Filter::PathSegment => super::url::segment(text).ok()?.into(),
                Filter::QueryPart => url::form_urlencoded::byte_serialize(text.as_bytes())
                    .collect::<String>()
                    .into(),
            });
        }
        Some(v)
    }

    /// The record's value at the path, if the path starts at a record.
    fn record_value<'a>(&self, ctx: &'a Value) -> Option<&'a serde_json::Value> {
        let mut v = crate::render::context::record(ctx, self.path[0])?;
        for name in &self.path[1..] {
            v = field(v.as_object()?, name)?;
        }
        Some(v)
    }

    /// The value through minijinja's attribute lookups.
    fn lookup(&self, ctx: &Value) -> Option<Value> {
        let mut v = ctx.clone();
        for name in &self.path {
            v = v.get_attr(name).ok()?;
            if v.is_undefined() {
                return None;
            }
        }
        Some(v)
    }
}

impl FastText {
    /// Splits `source` into text and fast expressions, or `None` when any part needs minijinja
    /// (blocks, comments, whitespace control, other expressions, a trailing newline).
    pub fn parse(source: &'static str) -> Option<FastText> {
        if source.contains("{%") || source.contains("{#") || source.ends_with('\n') {
            return None;
        }
        let mut pieces = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(&rest[..open]));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}")?;
            let inner = &after[..close];
            if inner.starts_with('-') || inner.ends_with('-') || inner.starts_with('+') {
                return None;
            }
            pieces.push(Piece::Expr(FastExpr::parse(inner.trim())?));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest));
        }
        Some(FastText(pieces))
    }

    /// The rendered text, or `None` when minijinja must decide.
    pub fn render(&self, ctx: &Value) -> Option<String> {
        use std::fmt::Write;
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Expr(e) if e.write_text(ctx, &mut out) => {}
                Piece::Expr(e) => {
                    let v = e.eval(ctx)?;
                    match v.as_str() {
                        Some(s) => out.push_str(s),
                        None => write!(out, "{v}").ok()?,
                    }
                }
            }
        }
        Some(out)
    }
}

/// A mapping's value by key: a look along the few keys of a customer's mapping is quicker than
/// hashing the key.
fn field<'a>(
    map: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a serde_json::Value> {
    if map.len() <= 12 {
        map.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    } else {
        map.get(name)
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A template value as JSON without going through serde for the common kinds.
pub fn to_json(v: &Value) -> Option<serde_json::Value> {
    use minijinja::value::ValueKind as K;
    match v.kind() {
        K::String => v.as_str().map(|s| serde_json::Value::String(s.to_string())),
        K::Bool => Some(serde_json::Value::Bool(v.is_true())),
        K::None => Some(serde_json::Value::Null),
        K::Number if v.is_integer() => v.as_i64().map(serde_json::Value::from),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn text(src: &'static str) -> Option<FastText> {
        FastText::parse(src)
    }

    #[test]
    fn parses_only_what_it_can_answer() {
        assert!(FastExpr::parse("customer.attributes.plan").is_some());
        assert!(FastExpr::parse("customer.email | normalize_email | sha256").is_some());
        assert!(FastExpr::parse("true").is_none());
        assert!(FastExpr::parse("customer.items[0]").is_none());
        assert!(FastExpr::parse("customer.email | default('x')").is_none());
        assert!(FastExpr::parse("a or b").is_none());
        assert!(text("Hi {{ customer.name }}!").is_some());
        assert!(text("{% if x %}y{% endif %}").is_none());
        assert!(text("{{- x }}").is_none());
        assert!(text("line\n").is_none());
    }

    #[test]
    fn answers_as_minijinja_does() {
        let env = super::super::engine::environment();
        let ctx =
            context! { c => context! { name => "Ada", n => 3, f => 1.5, ok => true, none => () } };
        for src in [
            "Hi {{ c.name }}!",
            "{{ c.n }}/{{ c.f }}/{{ c.ok }}/{{ c.none }}",
            "{{c.name|sha256}}",
        ] {
            let expected = env.render_str(src, &ctx).unwrap();
            assert_eq!(text(src).unwrap().render(&ctx).unwrap(), expected, "{src}");
        }
    }

    /// The template context of an entry of `customer` in journey `j`.
    fn entry_context(customer: serde_json::Value, env: crate::render::EnvVars) -> Value {
        use crate::render::context::{EntryContext, Scope};
        let customer = std::sync::Arc::new(customer);
        EntryContext::new("j", &customer, None, &env, chrono::Utc::now()).value(&Scope::default())
    }

    #[test]
    fn reads_records_as_minijinja_converts_them() {
        let customer = serde_json::json!({
            "id": "c1", "n": 18446744073709551615u64, "neg": -5, "f": 2.0, "ok": true,
            "none": null, "a": { "b": { "c": "deep" } }, "list": [1, 2]
        });
        let ctx = entry_context(customer, crate::render::EnvVars::default());
        let jinja = super::super::engine::environment();
        for src in [
            "customer.id",
            "customer.n",
            "customer.neg",
            "customer.f",
            "customer.ok",
            "customer.none",
            "customer.a.b.c",
            "customer.a",
            "customer.list",
            "customer.id | sha256",
        ] {
            let expected = jinja.compile_expression(src).unwrap().eval(&ctx).unwrap();
            let fast = FastExpr::parse(src).unwrap().eval(&ctx).unwrap();
            assert_eq!(fast, expected, "{src}");
            assert_eq!(fast.to_string(), expected.to_string(), "{src}");
            assert_eq!(fast.kind(), expected.kind(), "{src}");
        }
        assert!(
            FastExpr::parse("customer.missing")
                .unwrap()
                .eval(&ctx)
                .is_none()
        );
        assert!(
            FastExpr::parse("customer.id.x")
                .unwrap()
                .eval(&ctx)
                .is_none()
        );
    }

    #[test]
    fn writes_records_and_variables_as_minijinja_renders_them() {
        let customer = serde_json::json!({
            "id": "c\"1", "email": " Ada@Example.COM ", "n": 18446744073709551615u64,
            "neg": -5, "f": 2.5, "ok": true, "none": null, "a": { "b": "deep" }
        });
        let env = crate::render::EnvVars {
            values: std::sync::Arc::new(
                [("URL".to_string(), "http://h/é".to_string())]
                    .into_iter()
                    .collect(),
            ),
            placeholders: true,
        };
        let ctx = entry_context(customer, env);
        let jinja = super::super::engine::environment();
        for src in [
            "customer.id",
            "customer.email | normalize_email",
            "customer.email | normalize_email | sha256",
            "customer.n",
            "customer.neg",
            "customer.f",
            "customer.ok",
            "customer.none",
            "customer.a.b",
            "env.URL",
            "env.MISSING",
            "secret.TOKEN",
        ] {
            let value = jinja.compile_expression(src).unwrap().eval(&ctx).unwrap();
            let mut written = Vec::new();
            assert!(
                FastExpr::parse(src).unwrap().write_json(&ctx, &mut written),
                "{src}"
            );
            assert_eq!(written, serde_json::to_vec(&value).unwrap(), "{src}");
            let template = format!("<{{{{ {src} }}}}>");
            let leaked: &'static str = Box::leak(template.clone().into_boxed_str());
            assert_eq!(
                text(leaked).unwrap().render(&ctx).unwrap(),
                jinja.render_str(&template, &ctx).unwrap(),
                "{src}"
            );
        }
        let mut untouched = Vec::new();
        for src in ["customer.a", "customer.missing", "customer.n | sha256"] {
            assert!(
                !FastExpr::parse(src)
                    .unwrap()
                    .write_json(&ctx, &mut untouched),
                "{src}"
            );
        }
        assert!(untouched.is_empty());
    }

    #[test]
    fn leaves_undefined_and_mismatches_to_minijinja() {
        let ctx = context! { c => context! { n => 3 } };
        assert!(text("{{ c.missing }}").unwrap().render(&ctx).is_none());
        assert!(text("{{ d.x }}").unwrap().render(&ctx).is_none());
        assert!(
            FastExpr::parse("c.n | normalize_email")
                .unwrap()
                .eval(&ctx)
                .is_none()
        );
    }
}
