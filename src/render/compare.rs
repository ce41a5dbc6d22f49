//! Text never compares with a number. minijinja orders values of different kinds by kind, so
//! `"5" > 30` is silently true and a customer whose `days_inactive` is the text `"5"` would enter
//! a `> 30` segment. Every comparison in a template or expression is compiled through
//! [`FUNCTION`], which compares exactly as minijinja does but refuses an ordering between text
//! and a number (an error for that entry, naming both values and the fix) and warns once per
//! operand when an equality between them is false for that reason.
//!
//! The rewrite works on minijinja's own parse tree (its `unstable_machinery` feature): each
//! comparison's operands are cut out of the source by their spans and passed to the function,
//! with their source text for the message.

use std::collections::BTreeMap;
use std::sync::Mutex;

use minijinja::machinery::ast::{self, CompareOpKind, Expr};
use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{Error, ErrorKind};

/// The name the rewritten comparisons call.
pub const FUNCTION: &str = "__journey_compare";

/// One comparison in a source: its byte range, its operands' ranges and the operators between.
#[derive(Debug)]
struct Site {
    range: (usize, usize),
    operands: Vec<(usize, usize)>,
    ops: Vec<&'static str>,
}

/// The expression with every comparison routed through [`FUNCTION`], or `None` when it has
/// none (or does not parse: minijinja then reports the error on the original).
pub fn rewrite_expression(source: &str) -> Option<String> {
    let mut sites = Vec::new();
    super::ast::each_in_expression(source, &mut |e| sites.extend(site_of(e)));
    rewrite(source, sites)
}

/// The template with every comparison routed through [`FUNCTION`], or `None` when it has none.
pub fn rewrite_template(source: &str) -> Option<String> {
    let mut sites = Vec::new();
    super::ast::each_in_template(source, &mut |e| sites.extend(site_of(e)));
    rewrite(source, sites)
}

fn rewrite(source: &str, mut sites: Vec<Site>) -> Option<String> {
    if sites.is_empty() {
        return None;
    }
    // minijinja's spans start where each operand's first token is, but an operand in brackets
    // starts inside them, and a comparison's own span starts a token early: every range is
    // taken from its operands and widened until its brackets balance.
    for site in &mut sites {
        for operand in &mut site.operands {
            *operand = balance(source, *operand);
        }
        let first = site.operands.first().map_or(0, |o| o.0);
        let last = site.operands.last().map_or(0, |o| o.1);
        site.range = balance(source, (first, last));
    }
    sites.sort_by_key(|s| (s.range.0, std::cmp::Reverse(s.range.1)));
    Some(splice(source, (0, source.len()), &sites))
}

/// The text of `range` with each outermost comparison inside it replaced by its call.
fn splice(source: &str, range: (usize, usize), sites: &[Site]) -> String {
    let mut out = String::with_capacity(range.1 - range.0 + 32);
    let mut at = range.0;
    for site in sites {
        let inside = site.range.0 >= at && site.range.1 <= range.1;
        if !inside || site.range.0 < range.0 {
            continue;
        }
        out.push_str(&source[at..site.range.0]);
        out.push_str(&call(source, site, sites));
        at = site.range.1;
    }
    out.push_str(&source[at..range.1]);
    out
}

/// `__journey_compare("a", (a), ">", "30", (30))` for `a > 30`.
fn call(source: &str, site: &Site, sites: &[Site]) -> String {
    let inner: Vec<&Site> = sites
        .iter()
        .filter(|s| s.range != site.range && s.range.0 >= site.range.0 && s.range.1 <= site.range.1)
        .collect();
    let mut out = format!("{FUNCTION}(");
    for (i, &(start, end)) in site.operands.iter().enumerate() {
        if i > 0 {
            out.push_str(&format!(", {:?}, ", site.ops[i - 1]));
        }
        let text = source[start..end].trim();
        let nested: Vec<Site> = inner
            .iter()
            .filter(|s| s.range.0 >= start && s.range.1 <= end)
            .map(|s| Site {
                range: s.range,
                operands: s.operands.clone(),
                ops: s.ops.clone(),
            })
            .collect();
        let operand = splice(source, (start, end), &nested);
        out.push_str(&format!("{}, ({})", literal(text), operand.trim()));
    }
    out.push(')');
    out
}

/// Widens `range` over the brackets around it until those inside it balance.
fn balance(source: &str, (mut start, mut end): (usize, usize)) -> (usize, usize) {
    let bytes = source.as_bytes();
    let (mut open, mut close) = brackets(&bytes[start..end]);
    while close > 0 {
        match bytes[..start]
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
        {
            Some(i) if matches!(bytes[i], b'(' | b'[') => {
                start = i;
                close -= 1;
            }
            _ => break,
        }
    }
    while open > 0 {
        match bytes[end..].iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) if matches!(bytes[end + i], b')' | b']') => {
                end += i + 1;
                open -= 1;
            }
            _ => break,
        }
    }
    (start, end)
}

/// Unmatched openers and closers in `text`, outside string literals.
fn brackets(text: &[u8]) -> (usize, usize) {
    let (mut open, mut close) = (0usize, 0usize);
    let mut quote = None;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'\'' | b'"' => quote = Some(b),
                b'(' | b'[' => open += 1,
                b')' | b']' if open > 0 => open -= 1,
                b')' | b']' => close += 1,
                _ => {}
            },
        }
        i += 1;
    }
    (open, close)
}

/// A minijinja string literal holding `text`.
fn literal(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

fn offsets(span: minijinja::machinery::Span) -> (usize, usize) {
    (span.start_offset as usize, span.end_offset as usize)
}

/// Where an operand's text begins: a filter's, test's or attribute's span starts at its own
/// name, so the leftmost child is looked at too.
fn start_of(e: &Expr<'_>) -> usize {
    let own = e.span().start_offset as usize;
    let child = match e {
        Expr::Filter(f) => f.expr.as_ref().map(start_of),
        Expr::Test(t) => Some(start_of(&t.expr)),
        Expr::GetAttr(g) => Some(start_of(&g.expr)),
        Expr::GetItem(g) => Some(start_of(&g.expr)),
        Expr::Call(c) => Some(start_of(&c.expr)),
        Expr::Slice(s) => Some(start_of(&s.expr)),
        Expr::BinOp(b) => Some(start_of(&b.left)),
        Expr::Compare(c) => Some(start_of(&c.expr)),
        Expr::IfExpr(i) => Some(start_of(&i.true_expr)),
        _ => None,
    };
    child.map_or(own, |c| c.min(own))
}

/// Where an operand's text ends (its own span, or its rightmost child's).
fn end_of(e: &Expr<'_>) -> usize {
    let own = e.span().end_offset as usize;
    let child = match e {
        Expr::BinOp(b) => Some(end_of(&b.right)),
        Expr::IfExpr(i) => Some(i.false_expr.as_ref().map_or(end_of(&i.test_expr), end_of)),
        Expr::UnaryOp(u) => Some(end_of(&u.expr)),
        _ => None,
    };
    child.map_or(own, |c| c.max(own))
}

fn operand(e: &Expr<'_>) -> (usize, usize) {
    (start_of(e), end_of(e))
}

fn op_name(op: CompareOpKind) -> Option<&'static str> {
    Some(match op {
        CompareOpKind::Eq => "==",
        CompareOpKind::Ne => "!=",
        CompareOpKind::Lt => "<",
        CompareOpKind::Lte => "<=",
        CompareOpKind::Gt => ">",
        CompareOpKind::Gte => ">=",
        CompareOpKind::In | CompareOpKind::NotIn => return None,
    })
}

fn binop_name(op: ast::BinOpKind) -> Option<&'static str> {
    use ast::BinOpKind as B;
    Some(match op {
        B::Eq => "==",
        B::Ne => "!=",
        B::Lt => "<",
        B::Lte => "<=",
        B::Gt => ">",
        B::Gte => ">=",
        _ => return None,
    })
}

/// The comparison `e` is, if it is one of `==`, `!=`, `<`, `<=`, `>`, `>=` (a chain of them too).
fn site_of(e: &Expr<'_>) -> Option<Site> {
    match e {
        Expr::BinOp(b) => binop_name(b.op).map(|op| Site {
            range: offsets(e.span()),
            operands: vec![operand(&b.left), operand(&b.right)],
            ops: vec![op],
        }),
        Expr::Compare(c) => {
            let ops: Option<Vec<&'static str>> = c.ops.iter().map(|o| op_name(o.op)).collect();
            let mut operands = vec![operand(&c.expr)];
            operands.extend(c.ops.iter().map(|o| operand(&o.expr)));
            ops.map(|ops| Site {
                range: offsets(e.span()),
                operands,
                ops,
            })
        }
        _ => None,
    }
}

/// Operands whose text was compared equal to a number, with how often: one warning each.
static WARNED: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// The warnings of the run so far, with their counts: one per operand whose text was compared
/// equal to a number.
pub fn warnings() -> Vec<(String, u64)> {
    WARNED
        .lock()
        .map(|w| {
            w.iter()
                .map(|(what, n)| (format!("{what} compares text with a number, which is never equal: write `| int` or `| float` (or quote the number)"), *n))
                .collect()
        })
        .unwrap_or_default()
}

/// The function the rewritten comparisons call: `(text, value, op, text, value, ...)`.
pub fn compare(args: Rest<Value>) -> Result<bool, Error> {
    let args = &args.0;
    let mut i = 0;
    while i + 4 < args.len() {
        let (ltext, l) = (args[i].as_str().unwrap_or(""), &args[i + 1]);
        let op = args[i + 2].as_str().unwrap_or("");
        let (rtext, r) = (args[i + 3].as_str().unwrap_or(""), &args[i + 4]);
        if !pair(ltext, l, op, rtext, r)? {
            return Ok(false);
        }
        i += 3;
    }
    Ok(true)
}

fn pair(ltext: &str, l: &Value, op: &str, rtext: &str, r: &Value) -> Result<bool, Error> {
    if l.is_undefined() || r.is_undefined() {
        let which = if l.is_undefined() { ltext } else { rtext };
        return Err(Error::new(
            ErrorKind::UndefinedError,
            format!("`{which}` is undefined"),
        ));
    }
    let mixed = is_text(l) && is_number(r) || is_number(l) && is_text(r);
    match op {
        "==" | "!=" => {
            if mixed && let Ok(mut w) = WARNED.lock() {
                let text = if is_text(l) { ltext } else { rtext };
                *w.entry(format!("`{text}`")).or_default() += 1;
            }
            Ok((l == r) == (op == "=="))
        }
        _ if mixed => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "`{ltext} {op} {rtext}` compares text with a number ({} {op} {}): text never orders against a number; write `{} | int` or `| float`",
                shown(l),
                shown(r),
                if is_text(l) { ltext } else { rtext },
            ),
        )),
        _ => order(l, op, r),
    }
}

fn order(l: &Value, op: &str, r: &Value) -> Result<bool, Error> {
    let ord = l.partial_cmp(r);
    Ok(match op {
        "<" => ord.is_some_and(|o| o.is_lt()),
        "<=" => ord.is_some_and(|o| o.is_le()),
        ">" => ord.is_some_and(|o| o.is_gt()),
        ">=" => ord.is_some_and(|o| o.is_ge()),
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("unknown comparison `{op}`"),
            ));
        }
    })
}

fn is_text(v: &Value) -> bool {
    v.kind() == ValueKind::String
}

fn is_number(v: &Value) -> bool {
    v.kind() == ValueKind::Number
}

fn shown(v: &Value) -> String {
    if is_text(v) {
        format!("text {:?}", v.as_str().unwrap_or(""))
    } else {
        format!("number {v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> &'static minijinja::Environment<'static> {
        super::super::engine::environment()
    }

    fn eval(src: &str, ctx: &Value) -> Result<Value, Error> {
        let rewritten = rewrite_expression(src).unwrap_or_else(|| src.to_string());
        env().compile_expression(&rewritten)?.eval(ctx)
    }

    #[test]
    fn the_rewrite_keeps_minijinjas_answers_on_well_typed_values() {
        let ctx =
            minijinja::context! { a => 5, b => 30, s => "x", t => "y", l => vec![1, 2], f => 2.5 };
        for src in [
            "a > b",
            "a < b",
            "a <= 5",
            "a >= 6",
            "a == 5",
            "a != 5",
            "s == 'x'",
            "s < t",
            "a < b < 40",
            "1 < a < 4",
            "not a > b",
            "(a + 1) * 2 > b - 20",
            "a > b or s == 'x'",
            "[a > 1, b > 1][1]",
            "l | length > 1",
            "a in l or a > 1",
            "f >= 2.5",
            "a == f",
            "(a > b) == false",
            "a if a > b else b",
            "x is defined and x >= 50",
            "a | default(0) > 1",
            "s ~ ')' == 'x)'",
            "'(' < s",
            "[1, 2][0] < 2",
            "{'k': 1}.k > 0",
            "a > -1",
            "-a < 0",
            "a ~ 'x' == '5x'",
            "(l | length) > 1 and (a > 1)",
            "range(a) | length >= 5",
            "l[0] < l[1]",
            "a > 1 if s == 'x' else a < 1",
            "(((a))) > ((b))",
            "a is odd and b > 1",
            "[a > 1] == [true]",
        ] {
            let plain = env().compile_expression(src).unwrap().eval(&ctx).unwrap();
            assert_eq!(
                eval(src, &ctx).unwrap(),
                plain,
                "{src} -> {:?}",
                rewrite_expression(src)
            );
        }
    }

    #[test]
    fn ordering_text_against_a_number_is_an_error_naming_both() {
        let ctx = minijinja::context! { customer => minijinja::context! { days => "5" } };
        let err = eval("customer.days > 30", &ctx).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("customer.days > 30"), "{msg}");
        assert!(msg.contains("text \"5\""), "{msg}");
        assert!(msg.contains("| int"), "{msg}");
        assert!(eval("customer.days | int > 30", &ctx).unwrap() == Value::from(false));
    }

    #[test]
    fn equality_stays_false_and_warns_once() {
        let ctx = minijinja::context! { code => "5" };
        assert_eq!(eval("code == 5", &ctx).unwrap(), Value::from(false));
        assert_eq!(eval("code != 5", &ctx).unwrap(), Value::from(true));
        assert!(warnings().iter().any(|(w, _)| w.contains("`code`")));
    }

    #[test]
    fn templates_are_rewritten_in_tags_and_blocks() {
        let ctx = minijinja::context! { n => "7" };
        let src = "{% if n > 3 %}big{% endif %}";
        let rewritten = rewrite_template(src).unwrap();
        assert!(env().render_str(&rewritten, &ctx).is_err());
        assert!(rewrite_template("Hi {{ name }}").is_none());
    }
}
