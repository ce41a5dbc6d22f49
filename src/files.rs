//! Command-line path arguments: a file, or a folder whose matching files are taken in name order.

use std::path::{Path, PathBuf};

/// Expands files and folders (not recursive) to files whose name ends with one of `exts`.
pub fn expand(args: &[PathBuf], exts: &[&str]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let mut found = list(arg, exts)?;
            if found.is_empty() {
                return Err(format!(
                    "{}: no files ending in {} in this folder",
                    arg.display(),
                    exts.iter()
                        .map(|e| format!(".{e}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            out.append(&mut found);
        } else if arg.exists() {
            out.push(arg.clone());
        } else {
            return Err(format!("{}: no such file or folder", arg.display()));
        }
    }
    Ok(out)
}

fn list(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: cannot read folder: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && has_ext(p, exts))
        .collect();
    files.sort();
    Ok(files)
}

/// True when the file name ends with `.EXT` for one of `exts` (`csv.gz` style endings allowed).
pub fn has_ext(path: &Path, exts: &[&str]) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    exts.iter().any(|e| name.ends_with(&format!(".{e}")))
}
