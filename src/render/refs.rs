//! What a template or expression refers to, read from minijinja's parse tree: the filters it
//! applies and the `vars.NAME`, `saved.NAME` and `steps.ID` it reads, so `validate` can refuse a
//! name the journey does not have (`normalise_phone`, `vars.nmae`) before any entry runs.

use minijinja::machinery::ast::{CallArg, Expr, Stmt};

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
    if let Ok(e) = minijinja::machinery::parse_expr(source) {
        expr(&e, &mut out);
    }
    out
}

/// The names a template uses (nothing when it does not parse).
pub fn of_template(source: &str) -> Vec<Ref> {
    let mut out = Vec::new();
    if let Ok(s) = minijinja::machinery::parse(source, "<template>", Default::default()) {
        stmt(&s, &mut out);
    }
    out
}

fn expr(e: &Expr<'_>, out: &mut Vec<Ref>) {
    match e {
        Expr::Var(_) | Expr::Const(_) => {}
        Expr::GetAttr(g) => {
            if let Expr::Var(v) = &g.expr {
                let name = g.name.to_string();
                match v.id {
                    "vars" => out.push(Ref::Var(name)),
                    "saved" => out.push(Ref::Saved(name)),
                    "steps" => out.push(Ref::Step(name)),
                    _ => {}
                }
            }
            expr(&g.expr, out);
        }
        Expr::Filter(f) => {
            out.push(Ref::Filter(f.name.to_string()));
            if let Some(x) = &f.expr {
                expr(x, out);
            }
            args(&f.args, out);
        }
        Expr::Slice(s) => {
            expr(&s.expr, out);
            for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                expr(part, out);
            }
        }
        Expr::UnaryOp(u) => expr(&u.expr, out),
        Expr::BinOp(b) => {
            expr(&b.left, out);
            expr(&b.right, out);
        }
        Expr::Compare(c) => {
            expr(&c.expr, out);
            c.ops.iter().for_each(|o| expr(&o.expr, out));
        }
        Expr::IfExpr(i) => {
            expr(&i.test_expr, out);
            expr(&i.true_expr, out);
            if let Some(f) = &i.false_expr {
                expr(f, out);
            }
        }
        Expr::Test(t) => {
            expr(&t.expr, out);
            args(&t.args, out);
        }
        Expr::GetItem(g) => {
            expr(&g.expr, out);
            expr(&g.subscript_expr, out);
        }
        Expr::Call(c) => {
            expr(&c.expr, out);
            args(&c.args, out);
        }
        Expr::List(l) => l.items.iter().for_each(|i| expr(i, out)),
        Expr::Tuple(t) => t.items.iter().for_each(|i| expr(i, out)),
        Expr::Map(m) => {
            m.keys.iter().for_each(|k| expr(k, out));
            m.values.iter().for_each(|v| expr(v, out));
        }
    }
}

fn args(args: &[CallArg<'_>], out: &mut Vec<Ref>) {
    for a in args {
        match a {
            CallArg::Pos(e)
            | CallArg::Kwarg(_, e)
            | CallArg::PosSplat(e)
            | CallArg::KwargSplat(e) => expr(e, out),
        }
    }
}

fn stmts(list: &[Stmt<'_>], out: &mut Vec<Ref>) {
    list.iter().for_each(|s| stmt(s, out));
}

fn stmt(s: &Stmt<'_>, out: &mut Vec<Ref>) {
    match s {
        Stmt::Template(t) => stmts(&t.children, out),
        Stmt::EmitExpr(e) => expr(&e.expr, out),
        Stmt::ForLoop(f) => {
            expr(&f.iter, out);
            if let Some(x) = &f.filter_expr {
                expr(x, out);
            }
            stmts(&f.body, out);
            stmts(&f.else_body, out);
        }
        Stmt::IfCond(i) => {
            expr(&i.expr, out);
            stmts(&i.true_body, out);
            stmts(&i.false_body, out);
        }
        Stmt::WithBlock(w) => {
            w.assignments.iter().for_each(|(_, v)| expr(v, out));
            stmts(&w.body, out);
        }
        Stmt::Set(set) => expr(&set.expr, out),
        Stmt::SetBlock(b) => stmts(&b.body, out),
        Stmt::AutoEscape(a) => stmts(&a.body, out),
        Stmt::FilterBlock(f) => {
            expr(&f.filter, out);
            stmts(&f.body, out);
        }
        _ => {}
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
        assert!(
            is_filter("normalize_phone") && is_filter("default") && !is_filter("normalise_phone")
        );
    }
}
