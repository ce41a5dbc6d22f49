//! What the environment is — terminals, NO_COLOR, environment variables — captured once and passed in.

use std::collections::HashMap;
use std::io::IsTerminal;

/// The process's surroundings.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    /// stdout is a terminal.
    pub stdout_tty: bool,
    /// stderr is a terminal.
    pub stderr_tty: bool,
    /// stdin is a terminal (someone can answer a question).
    pub stdin_tty: bool,
    /// `NO_COLOR` is set (to anything non-empty).
    pub no_color: bool,
    /// Every environment variable.
    pub vars: HashMap<String, String>,
}

impl RunContext {
    /// Reads the real environment.
    pub fn capture() -> RunContext {
        let vars: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        RunContext {
            stdout_tty: std::io::stdout().is_terminal(),
            stderr_tty: std::io::stderr().is_terminal(),
            stdin_tty: std::io::stdin().is_terminal(),
            no_color: vars.get("NO_COLOR").is_some_and(|v| !v.is_empty()),
            vars,
        }
    }

    /// Colour on stdout: a terminal and no NO_COLOR.
    pub fn color(&self) -> bool {
        self.stdout_tty && !self.no_color
    }

    /// The width the results table fits: `COLUMNS` when set, else the terminal's (found by the
    /// table itself), else none (stdout is not a terminal: no limit).
    pub fn width(&self) -> Option<u16> {
        let columns = self.vars.get("COLUMNS").and_then(|c| c.parse().ok());
        columns.or_else(|| self.stdout_tty.then(crossterm_width).flatten())
    }

    /// A progress bar: only on a terminal stderr.
    pub fn progress_bar(&self) -> bool {
        self.stderr_tty
    }
}

/// The terminal's width, through the console crate indicatif already uses.
fn crossterm_width() -> Option<u16> {
    let (_, cols) = console::Term::stdout().size_checked()?;
    Some(cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_needs_a_terminal_and_no_no_color() {
        let mut c = RunContext {
            stdout_tty: true,
            ..Default::default()
        };
        assert!(c.color());
        c.no_color = true;
        assert!(!c.color());
        c = RunContext::default();
        assert!(!c.color());
        assert!(!c.progress_bar());
    }
}
