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
    match node {
        Node::Mapping(m) => {
            for (key, value) in m.iter() {
                let child = if path.is_empty() {
                    key.as_str().to_string()
                } else {
                    format!("{path}.{}", key.as_str())
                };
                walk(value, child, map);
            }
        }
        Node::Sequence(s) => {
            for (i, value) in s.iter().enumerate() {
                walk(value, format!("{path}[{i}]"), map);
            }
        }
        Node::Scalar(_) => {}
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
}
