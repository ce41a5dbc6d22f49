//! A YAML or JSON document nested too deep is refused before it is parsed: libyaml takes time
//! quadratic in the depth before serde_yaml's own recursion limit rejects it (100,000 levels in
//! a 200 KB file took 36 s). One pass over the text, in linear time, finds the depth of flow
//! collections (`[`, `{`) and of block sequences stacked on one line (`- - -`), outside quotes,
//! comments and block scalars.

use std::path::Path;

/// The deepest nesting a journey or fixture document may have.
pub const MAX_DEPTH: usize = 100;

/// `Err(file:line:column: …)` at the first place the document goes deeper than [`MAX_DEPTH`].
pub fn check(file: &Path, source: &str) -> Result<(), String> {
    let mut scan = Scan::default();
    for (n, line) in source.lines().enumerate() {
        if let Some(column) = scan.line(line) {
            return Err(format!(
                "{}:{}:{column}: nested more than {MAX_DEPTH} levels deep: flatten the data (journey reads at most {MAX_DEPTH} levels)",
                file.display(),
                n + 1
            ));
        }
    }
    Ok(())
}

#[derive(Default)]
struct Scan {
    /// Open flow collections.
    flow: usize,
    /// Inside a quoted scalar that goes on to the next line.
    quote: Option<u8>,
    /// Inside a block scalar introduced by a line of this indentation.
    block: Option<usize>,
}

impl Scan {
    /// Scans one line; the 1-based column where it goes too deep, if it does.
    fn line(&mut self, line: &str) -> Option<usize> {
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|b| **b == b' ').count();
        if let Some(at) = self.block {
            if indent > at || line.trim().is_empty() {
                return None;
            }
            self.block = None;
        }
        let mut i = indent;
        let mut dashes = 0;
        if self.quote.is_none() && self.flow == 0 {
            while bytes.get(i) == Some(&b'-') && matches!(bytes.get(i + 1), Some(b' ') | None) {
                dashes += 1;
                i += 2;
                if dashes > MAX_DEPTH {
                    return Some(i);
                }
            }
        }
        while i < bytes.len() {
            let b = bytes[i];
            match self.quote {
                Some(b'"') if b == b'\\' => i += 1,
                Some(q) if b == q => self.quote = None,
                Some(_) => {}
                None => match b {
                    b'"' | b'\'' if starts_scalar(bytes, i) => self.quote = Some(b),
                    b'#' if i == 0 || bytes[i - 1] == b' ' => break,
                    b'[' | b'{' => {
                        self.flow += 1;
                        if self.flow + dashes > MAX_DEPTH {
                            return Some(i + 1);
                        }
                    }
                    b']' | b'}' => self.flow = self.flow.saturating_sub(1),
                    _ => {}
                },
            }
            i += 1;
        }
        if self.quote.is_none() && self.flow == 0 && introduces_block(line) {
            self.block = Some(indent);
        }
        None
    }
}

/// A quote opens a scalar only where a scalar can start (not inside a plain word: `it's`).
fn starts_scalar(bytes: &[u8], i: usize) -> bool {
    i == 0
        || matches!(
            bytes[i - 1],
            b' ' | b'[' | b'{' | b',' | b':' | b'-' | b'\t'
        )
}

/// `key: |`, `- >-`, `text: |2`: the lines after it, indented more, are text.
fn introduces_block(line: &str) -> bool {
    let code = line.split(" #").next().unwrap_or("").trim_end();
    let last = code.rsplit([' ', '\t']).next().unwrap_or("");
    last.starts_with(['|', '>'])
        && last[1..]
            .chars()
            .all(|c| matches!(c, '-' | '+' | '1'..='9'))
        && code.len() > last.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> bool {
        check(Path::new("f.yaml"), text).is_ok()
    }

    #[test]
    fn deep_flow_and_dashes_are_refused_at_their_place() {
        let deep = format!(
            "customers: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let err = check(Path::new("f.yaml"), &deep).unwrap_err();
        assert!(err.starts_with("f.yaml:1:"), "{err}");
        assert!(err.contains("nested more than 100 levels deep"), "{err}");
        assert!(!ok(&format!("{}1\n", "- ".repeat(500))));
    }

    #[test]
    fn ordinary_documents_pass() {
        assert!(ok("a: { b: [1, 2, { c: d }] }\n- - x\n"));
        assert!(ok("t: \"[[[[\"\nu: '{{{{'\nv: it's [fine]\n# [[[[[\n"));
        let block = format!("body_text: |\n  {}\n  more\nnext: 1\n", "{".repeat(500));
        assert!(ok(&block));
        assert!(ok(&format!("{}{}", "[".repeat(100), "]".repeat(100))));
        assert!(!ok(&format!("{}{}", "[".repeat(101), "]".repeat(101))));
    }
}
