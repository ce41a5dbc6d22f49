//! Where bytes go: stdout (a closed pipe is a quiet end), stderr, and private files (mode 0600).
//!
//! A file journey creates is created 0600. A path that exists and is not a regular file (a
//! device such as `/dev/null`, `/dev/stdout`, a FIFO) is written to as it is, its type, mode and
//! owner untouched; an existing regular file wider than 0600 is narrowed only when this process
//! owns it (root must not make another user's file private, nor `/dev/null`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

/// Writes to stdout; a closed pipe is reported as `BrokenPipe` for main to end quietly.
pub fn stdout(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// Writes a line to stderr, ignoring failures (nothing better can be done).
pub fn stderr(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// How a private file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// Add to the end (logs, dead letters, records).
    Append,
    /// Replace what it holds (reports).
    Replace,
}

/// Opens a file that may hold customer data for appending, creating it (and its folder) as 0600.
pub fn append_private(path: &Path) -> anyhow::Result<File> {
    open_private(path, Open::Append).with_context(|| format!("cannot open {}", path.display()))
}

/// Creates or replaces a file that may hold customer data, readable by its owner only.
pub fn private_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = open_private(path, Open::Replace)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Replaces a private file whole: written beside it under a name ending `.tmp`, then renamed
/// over it, so that a reader (node_exporter's textfile collector) never sees half of it. A path
/// that is not a regular file (`/dev/null`) is written to as it is.
pub fn replace_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if is_special(path) {
        return private_file(path, bytes);
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    private_file(&tmp, bytes)?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// True when `path` exists and is not a regular file (after following links): a device, a FIFO,
/// a socket or a folder. Such a path is never replaced, renamed over or given a mode.
pub fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file())
}

fn open_private(path: &Path, how: Open) -> anyhow::Result<File> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => {
            // Written to as it is: no truncation, no mode, no owner change.
            let file = OpenOptions::new().write(true).open(path)?;
            Ok(file)
        }
        Ok(meta) => {
            let file = options(how).open(path)?;
            narrow_if_ours(&file, &meta)?;
            Ok(file)
        }
        Err(_) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create folder {}", dir.display()))?;
            }
            Ok(options(how).open(path)?)
        }
    }
}

fn options(how: Open) -> OpenOptions {
    let mut opts = OpenOptions::new();
    match how {
        Open::Append => opts.append(true).create(true),
        Open::Replace => opts.write(true).create(true).truncate(true),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts
}

/// Narrows a regular file wider than 0600 to 0600, when this process owns it.
#[cfg(unix)]
fn narrow_if_ours(file: &File, meta: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let wider = meta.mode() & 0o077 != 0;
    if wider && meta.uid() == effective_uid() {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn narrow_if_ours(_: &File, _: &std::fs::Metadata) -> std::io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
