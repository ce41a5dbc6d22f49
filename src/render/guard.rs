//! What a template or expression must not do before minijinja sees it: nest or chain so deep
//! that its recursive parser overflows the stack (40,000 `not`s, or 10,000 `+`s, abort the
//! process), or give `datetimeformat` a literal format chrono cannot format.

/// The deepest nesting taken: brackets plus unary operators in a row.
pub const MAX_NESTING: usize = 100;

/// The most operators (binary, `.`, `|`) in one expression: each is a level of the tree that
/// minijinja walks recursively.
pub const MAX_OPERATORS: usize = 500;

/// Refuses a source past either limit, saying which.
pub fn check(source: &str) -> Result<(), String> {
    let shape = measure(source);
    if shape.nesting > MAX_NESTING {
        return Err(format!(
            "is nested too deeply (more than {MAX_NESTING} brackets or unary operators in a row): simplify it"
        ));
    }
    if shape.operators > MAX_OPERATORS {
        return Err(format!(
            "is too long (more than {MAX_OPERATORS} operators in one expression): split it, e.g. into `vars`"
        ));
    }
    Ok(())
}

/// How deep and how long a source is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Brackets plus unary operators stacked on one operand, at the deepest.
    pub nesting: usize,
    /// Operators in one `{{ }}` / `{% %}` (or the whole expression), at the most.
    pub operators: usize,
}

/// Measures `source` outside string literals: open brackets plus the unary operators (`not`,
/// `-`, `+`) stacked on the operand being read, and operators per tag.
pub fn measure(source: &str) -> Shape {
    let bytes = source.as_bytes();
    let (mut depth, mut unary, mut deepest) = (0usize, 0usize, 0usize);
    let (mut ops, mut most_ops) = (0usize, 0usize);
    let mut expect_operand = true;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' | b'"' => {
                i = skip_string(bytes, i);
                unary = 0;
                expect_operand = false;
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                expect_operand = true;
            }
            // The end of a tag: the next one is another expression.
            b'%' if bytes.get(i + 1) == Some(&b'}') => ops = 0,
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                ops = 0;
                depth = depth.saturating_sub(1);
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                unary = 0;
                expect_operand = false;
            }
            b'-' | b'+' if expect_operand => unary += 1,
            b if b.is_ascii_whitespace() => {}

            b if b.is_ascii_alphanumeric() || b == b'_' => {
                let end = word_end(bytes, i);
                let word = &source[i..end];
                match word {
                    "not" if expect_operand => unary += 1,
                    "not" | "and" | "or" | "in" | "is" | "if" | "else" => {
                        ops += 1;
                        expect_operand = true;
                    }
                    _ => {
                        unary = 0;
                        expect_operand = false;
                    }
                }
                i = end;
                deepest = deepest.max(depth + unary);
                most_ops = most_ops.max(ops);
                continue;
            }
            b'.' => ops += 1,
            _ => {
                if !expect_operand {
                    ops += 1;
                }
                expect_operand = true;
            }
        }
        deepest = deepest.max(depth + unary);
        most_ops = most_ops.max(ops);
        i += 1;
    }
    Shape {
        nesting: deepest,
        operators: most_ops,
    }
}

fn skip_string(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() && bytes[i] != quote {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

fn word_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
        i += 1;
    }
    i
}

/// The literal formats given to `datetimeformat` in `source` (`datetimeformat('%Y')`).
pub fn literal_date_formats(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("datetimeformat") {
        rest = &rest[at + "datetimeformat".len()..];
        let args = rest.trim_start();
        let Some(args) = args.strip_prefix('(') else {
            continue;
        };
        let args = args.trim_start();
        if let Some(quote) = args.chars().next().filter(|c| *c == '\'' || *c == '"')
            && let Some(end) = args[1..].find(quote)
        {
            out.push(args[1..1 + end].to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nesting(source: &str) -> usize {
        measure(source).nesting
    }

    #[test]
    fn counts_brackets_and_unary_runs() {
        assert_eq!(nesting("customer.id == 'c1'"), 0);
        assert_eq!(nesting("not (a and not b)"), 2);
        assert_eq!(nesting("x - 1 > -2"), 1);
        assert_eq!(nesting("'(((' ~ a"), 0);
        assert!(nesting(&"not ".repeat(500)) > MAX_NESTING);
        assert!(nesting(&"(".repeat(500)) > MAX_NESTING);
        assert!(nesting(&"-".repeat(500)) > MAX_NESTING);
        assert_eq!(
            nesting("{{ customer.attributes.first_name | default('there', true) }}"),
            3
        );
    }

    #[test]
    fn counts_operators_per_tag() {
        assert_eq!(measure("a + b * c").operators, 2);
        assert_eq!(measure("customer.attributes.plan == 'x'").operators, 3);
        assert_eq!(measure("{{ a.b }} {{ c.d }}").operators, 1);
        assert!(
            check(&"1 + ".repeat(10_000))
                .unwrap_err()
                .contains("too long")
        );
        assert!(check(&"x.".repeat(10_000)).is_err());
        assert!(
            check(&"not ".repeat(40_000))
                .unwrap_err()
                .contains("nested too deeply")
        );
    }

    #[test]
    fn finds_literal_formats() {
        assert_eq!(
            literal_date_formats(
                "{{ now | datetimeformat('%Y-%m') }} {{ t | datetimeformat(\"%Q\", tz='UTC') }}"
            ),
            ["%Y-%m", "%Q"]
        );
        assert!(literal_date_formats("{{ now | datetimeformat(customer.fmt) }}").is_empty());
    }
}
