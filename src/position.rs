//! Where each value of a YAML file stands: a map from key path (`steps[0].webhook.url`) to line and column.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use marked_yaml::Node;

/// A place in a file, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    /// The file.
    pub file: Arc<PathBuf>,
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Key paths of one file and where their values start.
#[derive(Debug, Clone)]
pub struct Positions {
    file: Arc<PathBuf>,
    source: Arc<str>,
    map: std::sync::OnceLock<HashMap<String, (usize, usize)>>,
}

impl Positions {
    /// Positions of every value in `source`, read on first use (a large fixture file that
    /// holds no error is never parsed twice); a file marked-yaml cannot read maps nothing.
    pub fn read(file: &Path, source: &str) -> Positions {
        Positions {
            file: Arc::new(file.to_path_buf()),
            source: Arc::from(source),
            map: std::sync::OnceLock::new(),
        }
    }

    fn map(&self) -> &HashMap<String, (usize, usize)> {
        self.map.get_or_init(|| {
            let mut map = HashMap::new();
            if let Ok(node) = marked_yaml::parse_yaml(0, &*self.source) {
                walk(&node, String::new(), &mut map);
            }
            map
        })
    }

    /// The position of `path`, or of its nearest ancestor that has one, or the file's start.
    pub fn at(&self, path: &str) -> Pos {
        let mut key = path;
        loop {
            if let Some(&(line, column)) = self.map().get(key) {
                return self.pos(line, column);
            }
            match key.rfind(['.', '[']) {
                Some(i) => key = &key[..i],
                None => return self.pos(1, 1),
            }
        }
    }

    /// Where the first scalar written as `text` stands at or under `path`: the value an error
    /// about `path` names.
    pub fn find_value(&self, path: &str, text: &str) -> Option<Pos> {
        self.find_key(path, text).map(|(pos, _)| pos)
    }

    /// Where the scalar `text` stands at or below `path`, and the full key path to it
    /// (`defaults` and `4sec` find `defaults.timeout`).
    pub fn find_key(&self, path: &str, text: &str) -> Option<(Pos, String)> {
        let node = marked_yaml::parse_yaml(0, &*self.source).ok()?;
        let (line, column, key) = find_scalar(&node, "", path, text)?;
        Some((self.pos(line, column), key))
    }

    /// The file these positions belong to.
    pub fn file(&self) -> &Arc<PathBuf> {
        &self.file
    }

    /// A position in this file.
    pub fn pos(&self, line: usize, column: usize) -> Pos {
        Pos {
            file: self.file.clone(),
            line,
            column,
        }
    }
}

fn walk(node: &Node, path: String, map: &mut HashMap<String, (usize, usize)>) {
    if let Some(start) = node.span().start() {
        map.insert(path.clone(), (start.line(), start.column()));
    }
    for (child, value) in children(node, &path) {
        walk(value, child, map);
    }
}

/// The values of a mapping or sequence with their key paths (`a.b`, `a[0]`).
fn children<'n>(node: &'n Node, path: &str) -> Vec<(String, &'n Node)> {
    match node {
        Node::Mapping(m) => m
            .iter()
            .map(|(key, value)| {
                let child = if path.is_empty() {
                    key.as_str().to_string()
                } else {
                    format!("{path}.{}", key.as_str())
                };
                (child, value)
            })
            .collect(),
        Node::Sequence(s) => s
            .iter()
            .enumerate()
            .map(|(i, value)| (format!("{path}[{i}]"), value))
            .collect(),
        Node::Scalar(_) => Vec::new(),
    }
}

fn find_scalar(node: &Node, path: &str, under: &str, text: &str) -> Option<(usize, usize, String)> {
    let inside = under.is_empty()
        || (path.starts_with(under)
            && (path.len() == under.len() || path[under.len()..].starts_with(['.', '['])));
    if !inside && !under.starts_with(path) {
        return None;
    }
    match node {
        Node::Scalar(s) if inside && s.as_str() == text => node
            .span()
            .start()
            .map(|p| (p.line(), p.column(), path.to_string())),
        _ => children(node, path)
            .into_iter()
            .find_map(|(child, value)| find_scalar(value, &child, under, text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_nested_paths_to_lines() {
        let src = "journey: a\nsteps:\n  - id: one\n    webhook:\n      url: \"x\"\n";
        let p = Positions::read(Path::new("a.yaml"), src);
        assert_eq!(p.at("steps[0].webhook.url").to_string(), "a.yaml:5:12");
        assert_eq!(p.at("steps[0].id").line, 3);
        assert_eq!(p.at("steps[0].webhook.body.x").line, 5);
    }

    #[test]
    fn finds_a_named_value_under_a_path() {
        let src = "timeout: 5x
steps:
  - id: one
    webhook:
      url: x
      timeout: 5x
";
        let p = Positions::read(Path::new("a.yaml"), src);
        let at = |path, text| p.find_value(path, text).map(|pos| pos.to_string());
        assert_eq!(at("steps[0].webhook", "5x").as_deref(), Some("a.yaml:6:16"));
        assert_eq!(at("steps[0]", "5x").as_deref(), Some("a.yaml:6:16"));
        assert_eq!(at("", "5x").as_deref(), Some("a.yaml:1:10"));
        assert_eq!(at("steps[0].webhook", "6x"), None);
        assert_eq!(at("steps[1]", "5x"), None);
    }
}
