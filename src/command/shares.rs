//! Hosts that share a store share their partners' limits: every half second a run leases its
//! share of each `rate_share: dynamic` limit, tells the pauses partners asked it for (`429`
//! with `Retry-After`) and hears the others'.

use std::sync::Arc;
use std::time::Duration;

use crate::execute::protect::{Protection, ShareMode};
use crate::execute::stop::Stop;
use crate::state::{Coordination, Storage};

/// How often a host renews its shares and hears the others.
const EVERY: Duration = Duration::from_millis(500);

/// The running coordination: its thread, and what it needs to leave.
pub struct Coordinator {
    thread: std::thread::JoinHandle<()>,
    done: Arc<tokio::sync::Notify>,
    store: Arc<dyn Storage>,
    holder: String,
}

/// Starts coordinating at once (the first shares are known before many attempts go), on a
/// thread of its own: the run's own thread may be busy reading its input.
pub fn coordinate(
    store: Arc<dyn Storage>,
    protect: Arc<Protection>,
    stop: Arc<Stop>,
    hosts: u64,
) -> Coordinator {
    let holder = format!(
        "journey on {} pid {} #{:08x}",
        hostname::get()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default(),
        std::process::id(),
        fastrand::u32(..)
    );
    let limits: Vec<(String, f64)> = protect
        .shares
        .iter()
        .filter(|s| s.mode == ShareMode::Dynamic)
        .map(|s| (s.key.clone(), s.limit))
        .collect();
    let done = Arc::new(tokio::sync::Notify::new());
    let (s, h, d) = (Arc::clone(&store), holder.clone(), Arc::clone(&done));
    let thread = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            let mut first = true;
            loop {
                if tick(s.as_ref(), &protect, &h, &limits, (hosts, first)).await {
                    first = false;
                }
                tokio::select! {
                    _ = tokio::time::sleep(EVERY) => {}
                    _ = d.notified() => break,
                    _ = stop.stopped() => break,
                }
            }
            // A pause told since the last tick reaches the store before the host leaves: the
            // hosts still running, and a run started within it, hear it.
            if protect.told.lock().is_ok_and(|t| !t.is_empty()) {
                tick(s.as_ref(), &protect, &h, &limits, (hosts, first)).await;
            }
        });
    });
    Coordinator {
        thread,
        done,
        store,
        holder,
    }
}

/// Tells and hears once; what the store cannot answer now is tried again next time.
/// `Ok` tells whether the store answered.
async fn tick(
    store: &dyn Storage,
    protect: &Protection,
    holder: &str,
    limits: &[(String, f64)],
    (hosts, first): (u64, bool),
) -> bool {
    let pauses = protect
        .told
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    let told = Coordination {
        holder: holder.to_string(),
        limits: limits.to_vec(),
        hosts,
        first,
        pauses: pauses.clone(),
    };
    match store.coordinate(told).await {
        Ok(heard) => {
            for share in protect
                .shares
                .iter()
                .filter(|s| s.mode == ShareMode::Dynamic)
            {
                if let Some(mine) = heard.shares.get(&share.key) {
                    share.set(*mine);
                }
            }
            for (host, left) in heard.pauses {
                protect.breakers.pause(&host, left);
            }
            true
        }
        Err(_) => {
            if let Ok(mut t) = protect.told.lock() {
                t.extend(pauses);
            }
            false
        }
    }
}

impl Coordinator {
    /// Stops renewing and gives this host's shares to the others at once.
    pub async fn leave(self) {
        self.done.notify_one();
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        let _ = self.store.leave(&self.holder).await;
    }
}
