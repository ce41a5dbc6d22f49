//! One walk over minijinja's parse tree (its `unstable_machinery` feature): every expression of
//! a template or an expression source, outermost first. The comparison guard and the name
//! checks of `validate` both read sources through it.

use minijinja::machinery::ast::{CallArg, Expr, Stmt};

/// Calls `f` on every expression of the expression `source` (nothing when it does not parse).
pub fn each_in_expression(source: &str, f: &mut dyn FnMut(&Expr<'_>)) {
    if let Ok(e) = minijinja::machinery::parse_expr(source) {
        expr(&e, f);
    }
}

/// Calls `f` on every expression of the template `source` (nothing when it does not parse).
pub fn each_in_template(source: &str, f: &mut dyn FnMut(&Expr<'_>)) {
    if let Ok(s) = minijinja::machinery::parse(source, "<template>", Default::default()) {
        stmt(&s, f);
    }
}

fn expr(e: &Expr<'_>, f: &mut dyn FnMut(&Expr<'_>)) {
    f(e);
    match e {
        Expr::Var(_) | Expr::Const(_) => {}
        Expr::BinOp(b) => {
            expr(&b.left, f);
            expr(&b.right, f);
        }
        Expr::Compare(c) => {
            expr(&c.expr, f);
            c.ops.iter().for_each(|o| expr(&o.expr, f));
        }
        Expr::Slice(s) => {
            expr(&s.expr, f);
            for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                expr(part, f);
            }
        }
        Expr::UnaryOp(u) => expr(&u.expr, f),
        Expr::IfExpr(i) => {
            expr(&i.test_expr, f);
            expr(&i.true_expr, f);
            if let Some(x) = &i.false_expr {
                expr(x, f);
            }
        }
        Expr::Filter(x) => {
            if let Some(inner) = &x.expr {
                expr(inner, f);
            }
            args(&x.args, f);
        }
        Expr::Test(t) => {
            expr(&t.expr, f);
            args(&t.args, f);
        }
        Expr::GetAttr(g) => expr(&g.expr, f),
        Expr::GetItem(g) => {
            expr(&g.expr, f);
            expr(&g.subscript_expr, f);
        }
        Expr::Call(c) => {
            expr(&c.expr, f);
            args(&c.args, f);
        }
        Expr::List(l) => l.items.iter().for_each(|i| expr(i, f)),
        Expr::Tuple(t) => t.items.iter().for_each(|i| expr(i, f)),
        Expr::Map(m) => {
            m.keys.iter().for_each(|k| expr(k, f));
            m.values.iter().for_each(|v| expr(v, f));
        }
    }
}

fn args(args: &[CallArg<'_>], f: &mut dyn FnMut(&Expr<'_>)) {
    for a in args {
        match a {
            CallArg::Pos(e)
            | CallArg::Kwarg(_, e)
            | CallArg::PosSplat(e)
            | CallArg::KwargSplat(e) => expr(e, f),
        }
    }
}

fn stmts(list: &[Stmt<'_>], f: &mut dyn FnMut(&Expr<'_>)) {
    list.iter().for_each(|s| stmt(s, f));
}

fn stmt(s: &Stmt<'_>, f: &mut dyn FnMut(&Expr<'_>)) {
    match s {
        Stmt::Template(t) => stmts(&t.children, f),
        Stmt::EmitExpr(e) => expr(&e.expr, f),
        Stmt::ForLoop(l) => {
            expr(&l.iter, f);
            if let Some(x) = &l.filter_expr {
                expr(x, f);
            }
            stmts(&l.body, f);
            stmts(&l.else_body, f);
        }
        Stmt::IfCond(i) => {
            expr(&i.expr, f);
            stmts(&i.true_body, f);
            stmts(&i.false_body, f);
        }
        Stmt::WithBlock(w) => {
            w.assignments.iter().for_each(|(_, v)| expr(v, f));
            stmts(&w.body, f);
        }
        Stmt::Set(set) => expr(&set.expr, f),
        Stmt::SetBlock(b) => stmts(&b.body, f),
        Stmt::AutoEscape(a) => stmts(&a.body, f),
        Stmt::FilterBlock(b) => {
            expr(&b.filter, f);
            stmts(&b.body, f);
        }
        // Blocks, macros, imports and includes have no place in a journey's templates.
        _ => {}
    }
}
