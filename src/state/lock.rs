//! One run at a time: an OS lock on `STATE.lock`, released by the OS when the process ends (even
//! by SIGKILL), holding a line that names the holder.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held for the whole run.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Why the lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another run holds it (who).
    Held(String),
    /// The lock file cannot be opened (why).
    Io(String),
}

/// The lock file of a store.
pub fn lock_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock or says who has it.
pub fn acquire(store: &Path) -> Result<Lock, LockError> {
    let path = lock_path(store);
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts
        .open(&path)
        .map_err(|e| LockError::Io(format!("{}: {e}", path.display())))?;
    if file.try_lock().is_err() {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Err(LockError::Held(holder.trim().to_string()));
    }
    let holder = format!(
        "pid {} since {}",
        std::process::id(),
        crate::clock::rfc3339(chrono::Utc::now())
    );
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = file.write_all(holder.as_bytes());
    let _ = file.flush();
    Ok(Lock { _file: file })
}
