//! What a template or expression refers to, read from minijinja's parse tree: the filters it
//! applies and the `vars.NAME`, `saved.NAME` and `steps.ID` it reads, so `validate` can refuse a
//! name the journey does not have (`normalise_phone`, `vars.nmae`) before any entry runs.

use minijinja::machinery::ast::Expr;

/// One name a source uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// `| name`.
    Filter(String),
    /// `vars.NAME`.
    Var(String),
    /// `saved.NAME`.
    Saved(String),
    /// `steps.ID`.
    Step(String),
}

/// The names an expression uses (nothing when it does not parse).
pub fn of_expression(source: &str) -> Vec<Ref> {
    let mut out = Vec::new();
    super::ast::each_in_expression(source, &mut |e| out.extend(ref_of(e)));
    out
}

/// The names a template uses (nothing when it does not parse).
pub fn of_template(source: &str) -> Vec<Ref> {
    let mut out = Vec::new();
    super::ast::each_in_template(source, &mut |e| out.extend(ref_of(e)));
    out
}

/// The name `e` uses itself: a filter's, or `vars.NAME`, `saved.NAME`, `steps.ID`.
fn ref_of(e: &Expr<'_>) -> Option<Ref> {
    match e {
        Expr::Filter(f) => Some(Ref::Filter(f.name.to_string())),
        Expr::GetAttr(g) => match &g.expr {
            Expr::Var(v) => {
                let name = g.name.to_string();
                match v.id {
                    "vars" => Some(Ref::Var(name)),
                    "saved" => Some(Ref::Saved(name)),
                    "steps" => Some(Ref::Step(name)),
                    _ => None,
                }
            }
            _ => None,
        },
        _ => None,
    }
}

/// The dotted paths an expression reads (`event.properties.cart_value`), longest first seen,
/// without the shorter paths inside them: what `--show paths` prints the values of when a
/// trigger's `where` keeps a customer out.
pub fn paths_of_expression(source: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    super::ast::each_in_expression(source, &mut |e| {
        if let Some(p) = dotted(e)
            && !out
                .iter()
                .any(|o| o == &p || o.starts_with(&format!("{p}.")))
        {
            out.push(p);
        }
    });
    out
}

/// `a.b.c` for a chain of attributes on a variable.
fn dotted(e: &Expr<'_>) -> Option<String> {
    match e {
        Expr::Var(v) => Some(v.id.to_string()),
        Expr::GetAttr(g) => Some(format!("{}.{}", dotted(&g.expr)?, g.name)),
        _ => None,
    }
}

/// True when the environment knows the filter `name` (an unknown one fails only when an entry
/// renders it, so it is asked once here).
pub fn is_filter(name: &str) -> bool {
    let env = super::engine::environment();
    match env.render_str(&format!("{{{{ none | {name} }}}}"), ()) {
        Ok(_) => true,
        Err(e) => e.kind() != minijinja::ErrorKind::UnknownFilter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_filters_and_names() {
        let refs = of_template(
            "Hi {{ vars.name | title }} {% if saved.score > 1 %}{{ steps.ask.status }}{% endif %}",
        );
        for r in [
            Ref::Var("name".into()),
            Ref::Filter("title".into()),
            Ref::Saved("score".into()),
            Ref::Step("ask".into()),
        ] {
            assert!(refs.contains(&r), "{r:?} in {refs:?}");
        }
        assert_eq!(
            of_expression("customer.phone | normalise_phone"),
            [Ref::Filter("normalise_phone".into())]
        );
        assert_eq!(
            paths_of_expression("event.properties.cart_value >= 50 and customer.plan != 'x'"),
            ["event.properties.cart_value", "customer.plan"]
        );
        assert!(
            is_filter("normalize_phone") && is_filter("default") && !is_filter("normalise_phone")
        );
    }
}
