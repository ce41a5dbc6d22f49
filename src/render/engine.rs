//! The one minijinja environment of the process, and templates/expressions compiled once against it.
//!
//! Template sources are leaked once at load so that compiled handles are `'static`: a batch of a
//! million entries renders the same compiled code and never parses a template twice.

use std::sync::{Arc, OnceLock};

use minijinja::{AutoEscape, Environment, Expression, Template, UndefinedBehavior, Value};

use super::fast::{self, FastExpr, FastText};
use super::{RenderError, describe, filters};
use crate::position::{Pos, Positions};

static ENV: OnceLock<Environment<'static>> = OnceLock::new();

/// The shared environment: strict undefined, no auto-escaping, our filters.
pub fn environment() -> &'static Environment<'static> {
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        filters::register(&mut env);
        env.add_function(super::compare::FUNCTION, super::compare::compare);
        env.add_filter(super::url::PATH_SEGMENT, super::url::path_segment);
        env.add_filter(super::url::QUERY_PART, super::url::query_part);
        env.add_filter("as_path", super::url::as_path);
        env
    })
}

/// A compiled template string.
#[derive(Debug, Clone)]
pub struct Tmpl {
    kind: TmplKind,
    /// Where it stands in the journey file.
    pub pos: Pos,
    /// Its field path.
    pub field: String,
    /// Its source text.
    pub source: &'static str,
}

#[derive(Debug, Clone)]
enum TmplKind {
    Literal,
    Text(Template<'static, 'static>, Option<FastText>),
    Native(Arc<Expression<'static, 'static>>, Option<FastExpr>),
}

/// A compiled expression (no `{{ }}`).
#[derive(Debug, Clone)]
pub struct Expr {
    expr: Arc<Expression<'static, 'static>>,
    /// Where it stands in the journey file.
    pub pos: Pos,
    /// Its field path.
    pub field: String,
    /// Its source text.
    pub source: &'static str,
}

/// Compiles the templates of one file, collecting every error with its position.
pub struct Compiler<'a> {
    /// Positions of the file being compiled.
    pub positions: &'a Positions,
    /// Errors so far, as `file:line:col: message`.
    pub errors: Vec<String>,
    /// The filters, `vars`, `saved` and `steps` names each field uses, for the journey to check.
    pub refs: Vec<(String, super::refs::Ref)>,
}

impl<'a> Compiler<'a> {
    /// A compiler for the file with these positions.
    pub fn new(positions: &'a Positions) -> Self {
        Compiler {
            positions,
            errors: Vec::new(),
            refs: Vec::new(),
        }
    }

    /// Records an error at `field`.
    pub fn error(&mut self, field: &str, message: impl std::fmt::Display) {
        let pos = self.positions.at(field);
        self.errors.push(format!("{pos}: {message}"));
    }

    /// Checks what minijinja would take but should not: nesting or chains past the guard's
    /// limits (its parser and evaluator recurse, and a stack overflow aborts the process) and literal
    /// `datetimeformat` formats that chrono cannot format.
    fn sound(&mut self, field: &str, source: &str) -> bool {
        if let Err(msg) = super::guard::check(source) {
            self.error(field, format!("`{field}` {msg}"));
            return false;
        }
        let mut ok = true;
        for format in super::guard::literal_date_formats(source) {
            if let Err(msg) = filters::check_format(&format) {
                self.error(field, format!("`{field}`: {msg}"));
                ok = false;
            }
        }
        ok
    }

    /// Compiles a template; on error records it and returns a literal stand-in.
    pub fn template(&mut self, field: &str, source: &str) -> Tmpl {
        let source: &'static str = Box::leak(source.to_string().into_boxed_str());
        let pos = self.positions.at(field);
        let shape = if self.sound(field, source) {
            classify(source)
        } else {
            Shape::Literal
        };
        if !matches!(shape, Shape::Literal) {
            let found = super::refs::of_template(source);
            self.refs
                .extend(found.into_iter().map(|r| (field.to_string(), r)));
        }
        let kind = match shape {
            Shape::Literal => TmplKind::Literal,
            Shape::Lone(inner) => match environment().compile_expression(guarded_expr(inner)) {
                Ok(expr) => TmplKind::Native(Arc::new(expr), FastExpr::parse(inner)),
                Err(e) => self.bad(field, source, &e),
            },
            Shape::Text => match environment().template_from_str(guarded_text(source)) {
                Ok(t) => TmplKind::Text(t, FastText::parse(source)),
                Err(e) => self.bad(field, source, &e),
            },
        };
        Tmpl {
            kind,
            pos,
            field: field.to_string(),
            source,
        }
    }

    /// Compiles a URL template: its values after the origin are percent-encoded by the part of
    /// the URL they land in (`render::url`); the source shown in messages is the one written.
    pub fn url_template(&mut self, field: &str, source: &str) -> Tmpl {
        let encoded = super::url::encode_values(source);
        let mut t = self.template(field, &encoded);
        if let std::borrow::Cow::Owned(_) = encoded {
            t.source = Box::leak(source.to_string().into_boxed_str());
        }
        t
    }

    /// Compiles an expression; `None` (with the error recorded) when it does not compile.
    pub fn expression(&mut self, field: &str, source: &str) -> Option<Expr> {
        if source.contains("{{") || source.contains("{%") {
            self.error(
                field,
                format!(
                    "`{field}` is an expression: write it without `{{{{ }}}}`, e.g. `customer.attributes.plan == 'trial'`"
                ),
            );
            return None;
        }
        if !self.sound(field, source) {
            return None;
        }
        let found = super::refs::of_expression(source);
        self.refs
            .extend(found.into_iter().map(|r| (field.to_string(), r)));
        let source: &'static str = Box::leak(source.to_string().into_boxed_str());
        match environment().compile_expression(guarded_expr(source)) {
            Ok(expr) => Some(Expr {
                expr: Arc::new(expr),
                pos: self.positions.at(field),
                field: field.to_string(),
                source,
            }),
            Err(e) => {
                self.bad(field, source, &e);
                None
            }
        }
    }

    fn bad(&mut self, field: &str, source: &str, err: &minijinja::Error) -> TmplKind {
        self.error(
            field,
            format!(
                "`{field}` does not compile: {} in `{source}`",
                describe(err)
            ),
        );
        TmplKind::Literal
    }
}

/// The expression as compiled: its comparisons refuse to order text against a number
/// ([`super::compare`]). Leaked like every source: compiled handles are `'static`.
fn guarded_expr(source: &'static str) -> &'static str {
    match super::compare::rewrite_expression(source) {
        Some(rewritten) => Box::leak(rewritten.into_boxed_str()),
        None => source,
    }
}

/// The template as compiled; see [`guarded_expr`].
fn guarded_text(source: &'static str) -> &'static str {
    match super::compare::rewrite_template(source) {
        Some(rewritten) => Box::leak(rewritten.into_boxed_str()),
        None => source,
    }
}

enum Shape<'s> {
    Literal,
    Lone(&'s str),
    Text,
}

fn classify(source: &str) -> Shape<'_> {
    if !(source.contains("{{") || source.contains("{%") || source.contains("{#")) {
        return Shape::Literal;
    }
    let t = source.trim();
    if let Some(inner) = t.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
        let inner = inner.trim_start_matches('-').trim_end_matches('-');
        if !inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%") {
            return Shape::Lone(inner.trim());
        }
    }
    Shape::Text
}

impl Tmpl {
    /// True when the template reads a `secret.*`: what it renders is shown nowhere, whatever
    /// its length.
    pub fn reads_secret(&self) -> bool {
        !matches!(self.kind, TmplKind::Literal) && self.source.contains("secret.")
    }

    /// Renders to text; a lone `{{ expr }}` is converted to its string form.
    pub fn render(&self, ctx: &Value) -> Result<String, RenderError> {
        match &self.kind {
            TmplKind::Literal => Ok(self.source.to_string()),
            TmplKind::Text(_, Some(fast)) if let Some(text) = fast.render(ctx) => Ok(text),
            TmplKind::Text(t, _) => t.render(ctx).map_err(|e| self.fail(&e)),
            TmplKind::Native(..) => {
                let v = self.eval(ctx)?;
                Ok(match v.as_str() {
                    Some(s) => s.to_string(),
                    None if v.is_none() => String::new(),
                    None => v.to_string(),
                })
            }
        }
    }

    /// Renders keeping the native type of a lone `{{ expr }}`.
    pub fn render_json(&self, ctx: &Value) -> Result<serde_json::Value, RenderError> {
        match &self.kind {
            TmplKind::Native(..) => {
                let v = self.eval(ctx)?;
                if let Some(json) = fast::to_json(&v) {
                    return Ok(json);
                }
                serde_json::to_value(&v).map_err(|e| self.message(e.to_string()))
            }
            _ => self.render(ctx).map(serde_json::Value::String),
        }
    }

    /// Renders as JSON text onto `out`, keeping the native type of a lone `{{ expr }}`.
    pub fn write_json(&self, ctx: &Value, out: &mut Vec<u8>) -> Result<(), RenderError> {
        match &self.kind {
            TmplKind::Native(_, Some(fast)) if fast.write_json(ctx, out) => {}
            TmplKind::Native(..) => {
                let v = self.eval(ctx)?;
                match v.as_str() {
                    Some(s) => super::body::write_json(out, s),
                    None => {
                        serde_json::to_writer(out, &v).map_err(|e| self.message(e.to_string()))?
                    }
                }
            }
            _ => super::body::write_json(out, &self.render(ctx)?),
        }
        Ok(())
    }

    fn eval(&self, ctx: &Value) -> Result<Value, RenderError> {
        let TmplKind::Native(expr, fast) = &self.kind else {
            unreachable!("eval on a native template only")
        };
        if let Some(v) = fast.as_ref().and_then(|f| f.eval(ctx)) {
            return Ok(v);
        }
        let v = expr.eval(ctx).map_err(|e| self.fail(&e))?;
        if v.is_undefined() {
            return Err(self.message(format!(
                "undefined value in `{}`; write `x | default('y', true)` where it may be missing",
                self.source.trim()
            )));
        }
        Ok(v)
    }

    fn fail(&self, err: &minijinja::Error) -> RenderError {
        self.message(format!("{} in `{}`", describe(err), self.source.trim()))
    }

    fn message(&self, message: String) -> RenderError {
        RenderError {
            pos: self.pos.clone(),
            field: self.field.clone(),
            message,
        }
    }
}

impl Expr {
    /// Evaluates to a value; undefined stays undefined (the caller decides).
    pub fn eval(&self, ctx: &Value) -> Result<Value, RenderError> {
        self.expr.eval(ctx).map_err(|e| RenderError {
            pos: self.pos.clone(),
            field: self.field.clone(),
            message: format!("{} in `{}`", describe(&e), self.source),
        })
    }

    /// True when the expression is the literal `true` (a segment of everyone): nothing to evaluate.
    pub fn is_always_true(&self) -> bool {
        matches!(self.source.trim(), "true" | "True")
    }

    /// Evaluates as a condition; an undefined result is an error (strict).
    pub fn is_true(&self, ctx: &Value) -> Result<bool, RenderError> {
        let v = self.eval(ctx)?;
        if v.is_undefined() {
            return Err(RenderError {
                pos: self.pos.clone(),
                field: self.field.clone(),
                message: format!(
                    "undefined value in `{}`; write `x is defined and ...` where it may be missing",
                    self.source
                ),
            });
        }
        Ok(v.is_true())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;
    use std::path::Path;

    fn compile(src: &str) -> Tmpl {
        let p = Positions::read(Path::new("t.yaml"), "a: 1\n");
        let mut c = Compiler::new(&p);
        let t = c.template("a", src);
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        t
    }

    #[test]
    fn lone_expression_keeps_its_type() {
        let ctx = context! { n => 120.5, ok => true, list => vec![1, 2] };
        assert_eq!(
            compile("{{ n }}").render_json(&ctx).unwrap(),
            serde_json::json!(120.5)
        );
        assert_eq!(
            compile(" {{ ok }} ").render_json(&ctx).unwrap(),
            serde_json::json!(true)
        );
        assert_eq!(
            compile("{{ list }}").render_json(&ctx).unwrap(),
            serde_json::json!([1, 2])
        );
        assert_eq!(
            compile("n={{ n }}").render_json(&ctx).unwrap(),
            serde_json::json!("n=120.5")
        );
    }

    #[test]
    fn missing_values_are_errors() {
        let ctx = context! { customer => context! { id => "c1" } };
        let err = compile("{{ customer.email }}")
            .render_json(&ctx)
            .unwrap_err();
        assert!(err.message.contains("undefined"), "{err}");
        let err = compile("Hi {{ customer.name }}").render(&ctx).unwrap_err();
        assert!(err.message.contains("undefined"), "{err}");
    }

    #[test]
    fn data_is_never_a_template() {
        let ctx = context! { name => "{{ 7*7 }}" };
        assert_eq!(
            compile("Hi {{ name }}").render(&ctx).unwrap(),
            "Hi {{ 7*7 }}"
        );
    }
}
