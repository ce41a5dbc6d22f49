//! Where the store is, decided before anything is opened: the path is checked (a regular file
//! or nothing; its folder must exist unless it is the default `.journey/`), canonicalized so a
//! link and its target share one lock and one redo file, and a store that has vanished from
//! beside its own `-wal`, `-redo` or `.lock` files is refused rather than started afresh.

use std::path::{Path, PathBuf};

use super::StoreError;

/// The store a run names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorePath {
    /// `.journey/state.sqlite` beside the first journey: its folder is created when missing.
    Default(PathBuf),
    /// `--state` or `JOURNEY_STATE`: nothing is created but the file itself.
    Given(PathBuf),
}

impl StorePath {
    /// The path as the user gave it (or the default), for messages and the summary.
    pub fn shown(&self) -> &Path {
        match self {
            StorePath::Default(p) | StorePath::Given(p) => p,
        }
    }
}

/// The files SQLite and journey keep beside a store; any of them without the store means the
/// store was deleted or moved, not that there never was one.
const SIBLINGS: &[&str] = &["-wal", "-shm", "-journal", "-redo", ".lock"];

/// Checks `store` and returns the canonical path to open, lock and name the redo file by.
pub fn resolve(store: &StorePath) -> Result<PathBuf, StoreError> {
    let path = store.shown();
    let folder = folder_of(path);
    if let StorePath::Default(_) = store {
        make_default_folder(path, &folder)?;
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => std::fs::canonicalize(path).map_err(|e| unusable(path, e)),
        Ok(meta) => Err(bad_path(path, not_a_file(&meta))),
        Err(_) if std::fs::symlink_metadata(path).is_ok() => Err(bad_path(
            path,
            "is a symbolic link to nothing: point it at the store, or name the store itself",
        )),
        Err(_) => missing(path, &folder),
    }
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn make_default_folder(path: &Path, folder: &Path) -> Result<(), StoreError> {
    match std::fs::create_dir(folder) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(unusable(path, e)),
        _ => Ok(()),
    }
}

/// A store that does not exist yet: its folder must, and none of its siblings may.
fn missing(path: &Path, folder: &Path) -> Result<PathBuf, StoreError> {
    let folder = match std::fs::canonicalize(folder) {
        Ok(dir) if dir.is_dir() => dir,
        _ => {
            return Err(bad_path(
                path,
                format!(
                    "is in a folder that does not exist (`{}`): create it first, or fix the path (journey creates only its default `.journey/` folder)",
                    folder.display()
                ),
            ));
        }
    };
    let name = path
        .file_name()
        .ok_or_else(|| bad_path(path, "names no file"))?;
    let real = folder.join(name);
    if let Some(left) = sibling_left(&real) {
        return Err(unusable(
            path,
            format!(
                "the store file is missing but `{}` is still there, so the store was deleted or moved and a fresh one would contact everyone again: put the store back, or remove `{}` (and its other `{}*` files) to start afresh",
                left.display(),
                left.display(),
                real.display()
            ),
        ));
    }
    Ok(real)
}

fn sibling_left(store: &Path) -> Option<PathBuf> {
    SIBLINGS
        .iter()
        .map(|suffix| {
            let mut name = store.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        })
        .find(|p| std::fs::symlink_metadata(p).is_ok())
}

fn not_a_file(meta: &std::fs::Metadata) -> &'static str {
    if meta.is_dir() {
        return "is a folder, not a state store file: name a file in it, e.g. `DIR/state.sqlite`";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let kind = meta.file_type();
        if kind.is_fifo() {
            return "is a FIFO, not a state store file: name a regular file, or pass --no-state";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "is a device, not a state store file: name a regular file, or pass --no-state";
        }
    }
    "is not a regular file: name a regular file, or pass --no-state"
}

fn bad_path(path: &Path, why: impl std::fmt::Display) -> StoreError {
    StoreError::BadPath {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

fn unusable(path: &Path, why: impl std::fmt::Display) -> StoreError {
    super::unusable(path, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(p: PathBuf) -> StorePath {
        StorePath::Given(p)
    }

    #[test]
    fn a_given_store_in_a_missing_folder_is_a_bad_path_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope/deeper/s.sqlite");
        let err = resolve(&given(path)).unwrap_err();
        assert!(matches!(err, StoreError::BadPath { .. }), "{err}");
        assert!(!dir.path().join("nope").exists());
    }

    #[test]
    fn the_default_folder_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".journey/state.sqlite");
        let real = resolve(&StorePath::Default(path)).unwrap();
        assert!(dir.path().join(".journey").is_dir());
        assert_eq!(real.file_name().unwrap(), "state.sqlite");
    }

    #[test]
    fn a_link_resolves_to_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.sqlite");
        std::fs::write(&target, b"").unwrap();
        let link = dir.path().join("link.sqlite");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let real = resolve(&given(link)).unwrap();
        assert_eq!(real, std::fs::canonicalize(&target).unwrap());
    }

    #[test]
    fn a_missing_store_beside_its_lock_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.sqlite.lock"), b"").unwrap();
        let err = resolve(&given(dir.path().join("s.sqlite"))).unwrap_err();
        assert!(matches!(err, StoreError::Unusable { .. }), "{err}");
        assert!(err.to_string().contains("s.sqlite.lock"), "{err}");
    }

    #[test]
    fn a_folder_is_a_bad_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(&given(dir.path().to_path_buf())).unwrap_err();
        assert!(err.to_string().contains("is a folder"), "{err}");
    }
}
