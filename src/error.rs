//! The one error type of the commands: each variant knows its exit code (SPEC §4), and `main`
//! prints it once, as `error: ...` lines. A journey's failures are not errors: they are data in
//! the report, and the exit code is computed from it ([`crate::exit`]).

use crate::exit::Exit;

/// Why a command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is unusable before anything was sent (exit 2): one `error:` line each, then a
    /// closing line when there is one (`3 error(s); nothing was run`).
    #[error("{}", .lines.join("; "))]
    Usage {
        /// What is wrong, each with its file:line:column where there is one.
        lines: Vec<String>,
        /// Said last, without `error:`.
        closing: Option<String>,
    },
    /// The state store cannot be read or written (exit 3).
    #[error("{0}")]
    State(String),
    /// Another run holds the state store (exit 75).
    #[error("{0}")]
    Locked(String),
    /// The tool itself failed: a file it could not write, the runtime (exit 70).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A command's result: the exit code its report computed, or why it could not run.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// One usage error.
    pub fn usage(line: impl Into<String>) -> Error {
        Error::Usage {
            lines: vec![line.into()],
            closing: None,
        }
    }

    /// Several usage errors, then a closing line.
    pub fn usage_all(lines: Vec<String>, closing: String) -> Error {
        Error::Usage {
            lines,
            closing: Some(closing),
        }
    }

    /// The exit code.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage { .. } => Exit::Usage,
            Error::State(_) => Exit::State,
            Error::Locked(_) => Exit::Locked,
            Error::Internal(_) => Exit::Internal,
        }
    }

    /// The lines to print on stderr.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Error::Usage { lines, closing } => lines
                .iter()
                .map(|l| format!("error: {l}"))
                .chain(closing.iter().cloned())
                .collect(),
            Error::State(why) | Error::Locked(why) => vec![format!("error: {why}")],
            Error::Internal(e) => vec![format!("error: {e:#}")],
        }
    }

    /// True when stdout was closed under the command (`| head`): a normal end.
    pub fn is_broken_pipe(&self) -> bool {
        let Error::Internal(e) = self else {
            return false;
        };
        e.chain()
            .filter_map(|c| c.downcast_ref::<std::io::Error>())
            .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl From<crate::state::StoreError> for Error {
    /// A store that cannot be used: held (75), misnamed (2), unusable (3).
    fn from(e: crate::state::StoreError) -> Error {
        use crate::state::StoreError;
        match e {
            StoreError::Locked { .. } => Error::Locked(e.to_string()),
            StoreError::BadPath { .. } | StoreError::Refused { .. } => Error::usage(e.to_string()),
            StoreError::Unusable { .. } => Error::State(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Internal(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_knows_its_exit_code_and_lines() {
        let e = Error::usage_all(vec!["a.yaml:1:1: bad".into()], "1 error(s)".into());
        assert_eq!(e.exit(), Exit::Usage);
        assert_eq!(e.lines(), ["error: a.yaml:1:1: bad", "1 error(s)"]);
        let locked: Error = crate::state::StoreError::Locked {
            path: "s".into(),
            holder: "pid 1".into(),
        }
        .into();
        assert_eq!(locked.exit(), Exit::Locked);
        let pipe = Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(pipe.is_broken_pipe() && pipe.exit() == Exit::Internal);
    }
}
