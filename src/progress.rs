//! Progress on stderr: an indicatif bar on a terminal, nothing otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How a run shows its progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A bar (or a spinner for streams): stderr is a terminal.
    Bar,
    /// A line every 30 s: stderr is a log (cron, CI).
    Heartbeat,
    /// Nothing (`--quiet`).
    Silent,
}

impl Progress {
    /// The kind for a stderr that is (or is not) a terminal, unless `quiet`.
    pub fn choose(stderr_tty: bool, quiet: bool) -> Progress {
        match (quiet, stderr_tty) {
            (true, _) => Progress::Silent,
            (false, true) => Progress::Bar,
            (false, false) => Progress::Heartbeat,
        }
    }
}

/// A bar when the number of entries is known, a spinner with a count when it is not (a stream
/// is counted as it is read); nothing when stderr is not a terminal.
pub fn bar(enabled: bool, total: Option<u64>) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(template(total))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "rate",
            |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&rate(s.per_sec()));
            },
        )
        .progress_chars("=> ");
    bar.set_style(style);
    if total.is_none() {
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
    }
    bar
}

/// The bar's layout: a bar with the total and the time left, or a spinner with the count.
pub fn template(total: Option<u64>) -> &'static str {
    match total {
        Some(_) => "[{bar:30}] {pos}/{len} entries  {rate}  eta {eta}",
        None => "{spinner} {pos} entries  {rate}  {elapsed}",
    }
}

/// Entries a second, whole: `128/s`.
pub fn rate(per_sec: f64) -> String {
    if per_sec.is_finite() {
        format!("{per_sec:.0}/s")
    } else {
        "-/s".into()
    }
}

/// Without a terminal, a line on stderr every 30 seconds so a cron log shows the run is alive.
pub struct Heartbeat {
    counts: std::sync::Arc<Counts>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
struct Counts {
    done: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
}

/// The heartbeat line, a pure function of the counts.
pub fn heartbeat_line(
    done: u64,
    total: Option<u64>,
    failed: u64,
    elapsed: std::time::Duration,
) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
    // How long the rest takes at the rate so far, when the total is known.
    let left = match total {
        Some(t) if done > 0 && t > done => format!(", about {:.0}s left", (t - done) as f64 / rate),
        _ => String::new(),
    };
    let total = total.map(|t| format!("/{t}")).unwrap_or_default();
    format!(
        "journey: {done}{total} entries, {failed} failed or invalid, {}s elapsed, {rate:.0} entries/s{left}",
        elapsed.as_secs()
    )
}

impl Heartbeat {
    /// Starts beating every 30 s when `enabled`.
    pub fn start(enabled: bool, total: Option<u64>) -> Heartbeat {
        let counts = std::sync::Arc::new(Counts::default());
        let task = enabled.then(|| {
            let counts = std::sync::Arc::clone(&counts);
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let load = |a: &std::sync::atomic::AtomicU64| {
                        a.load(std::sync::atomic::Ordering::Relaxed)
                    };
                    let line = heartbeat_line(
                        load(&counts.done),
                        total,
                        load(&counts.failed),
                        started.elapsed(),
                    );
                    crate::output::stderr(&line);
                }
            })
        });
        Heartbeat { counts, task }
    }

    /// Counts one finished entry.
    pub fn add(&self, r: &crate::execute::result::EntryResult) {
        use std::sync::atomic::Ordering::Relaxed;
        self.counts.done.fetch_add(1, Relaxed);
        if r.is_failure() {
            self.counts.failed.fetch_add(1, Relaxed);
        }
    }

    /// Stops beating.
    pub fn stop(self) {
        if let Some(t) = self.task {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bar_is_a_bar_with_a_total_and_a_spinner_without() {
        assert!(super::template(Some(10)).contains("{bar:30}"));
        assert!(super::template(Some(10)).contains("{len}"));
        assert!(!super::template(None).contains("{bar"));
        assert!(!super::template(None).contains("{len}"));
        assert!(super::template(None).starts_with("{spinner}"));
        assert_eq!(super::rate(127.8212), "128/s");
        assert_eq!(super::rate(f64::INFINITY), "-/s");
    }

    #[test]
    fn heartbeat_line_reads_well() {
        let line = super::heartbeat_line(120, Some(1000), 3, std::time::Duration::from_secs(61));
        assert_eq!(
            line,
            "journey: 120/1000 entries, 3 failed or invalid, 61s elapsed, 2 entries/s, about 447s left"
        );
        let streamed = super::heartbeat_line(90_000, None, 0, std::time::Duration::from_secs(30));
        assert_eq!(
            streamed,
            "journey: 90000 entries, 0 failed or invalid, 30s elapsed, 3000 entries/s"
        );
    }
}
