//! Runs the futures of a stream `width` at a time, started in input order, and yields their
//! outputs in input order. Unlike `buffered`, a finished future frees its place at once: a slow
//! one holds back only the outputs behind it (up to a window), not the start of the next ones.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, Stream, StreamExt};

/// The adapter; see the module.
pub struct InOrder<St, F: Future> {
    input: Option<Pin<Box<St>>>,
    running: FuturesUnordered<Numbered<F>>,
    /// Outputs from `first` on, in input order; `None` while still running.
    outputs: VecDeque<Option<F::Output>>,
    first: u64,
    width: usize,
    window: usize,
}

/// Runs `input`'s futures `width` at a time, with at most `window` started and not yet yielded.
pub fn in_order<St, F>(input: St, width: usize, window: usize) -> InOrder<St, F>
where
    St: Stream<Item = F>,
    F: Future + Unpin,
{
    let width = width.max(1);
    InOrder {
        input: Some(Box::pin(input)),
        running: FuturesUnordered::new(),
        outputs: VecDeque::new(),
        first: 0,
        width,
        window: window.max(width),
    }
}

// Outputs are moved out, never pinned; the input is boxed.
impl<St, F: Future> Unpin for InOrder<St, F> {}

/// A future and its place in the input.
struct Numbered<F> {
    n: u64,
    future: F,
}

impl<F: Future + Unpin> Future for Numbered<F> {
    type Output = (u64, F::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let n = self.n;
        Pin::new(&mut self.future).poll(cx).map(|out| (n, out))
    }
}

impl<St, F> InOrder<St, F>
where
    St: Stream<Item = F>,
    F: Future + Unpin,
{
    /// Starts futures while there is room.
    fn start(&mut self, cx: &mut Context<'_>) {
        while self.running.len() < self.width && self.outputs.len() < self.window {
            let Some(input) = self.input.as_mut() else {
                return;
            };
            match input.as_mut().poll_next(cx) {
                Poll::Ready(Some(future)) => {
                    let n = self.first + self.outputs.len() as u64;
                    self.running.push(Numbered { n, future });
                    self.outputs.push_back(None);
                }
                Poll::Ready(None) => self.input = None,
                Poll::Pending => return,
            }
        }
    }

    /// Takes the outputs of the futures that finished; true if any did.
    fn collect(&mut self, cx: &mut Context<'_>) -> bool {
        let mut any = false;
        while let Poll::Ready(Some((n, out))) = self.running.poll_next_unpin(cx) {
            if let Some(slot) = self.outputs.get_mut((n - self.first) as usize) {
                *slot = Some(out);
            }
            any = true;
        }
        any
    }
}

impl<St, F> Stream for InOrder<St, F>
where
    St: Stream<Item = F>,
    F: Future + Unpin,
{
    type Item = F::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let this = self.get_mut();
        loop {
            this.start(cx);
            let finished = this.collect(cx);
            if matches!(this.outputs.front(), Some(Some(_))) {
                this.first += 1;
                return Poll::Ready(this.outputs.pop_front().flatten());
            }
            if this.input.is_none() && this.outputs.is_empty() {
                return Poll::Ready(None);
            }
            // Finished futures made room: start more before waiting.
            if !finished {
                return Poll::Pending;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::sync::oneshot;

    type Boxed = Pin<Box<dyn Future<Output = usize>>>;

    /// `n` futures, each finishing when the test says so; the log says which started.
    struct Work {
        finish: Vec<Option<oneshot::Sender<()>>>,
        started: Arc<Mutex<Vec<usize>>>,
        outputs: Arc<Mutex<Vec<usize>>>,
    }

    impl Work {
        /// Starts collecting `in_order(futures, width, window)` on the current thread.
        fn run(n: usize, width: usize, window: usize) -> Work {
            let started = Arc::new(Mutex::new(Vec::new()));
            let (finish, waits): (Vec<_>, Vec<_>) = (0..n)
                .map(|_| {
                    let (tx, rx) = oneshot::channel::<()>();
                    (Some(tx), rx)
                })
                .unzip();
            let log = Arc::clone(&started);
            let futures =
                futures_util::stream::iter(waits.into_iter().enumerate()).map(move |(i, wait)| {
                    let log = Arc::clone(&log);
                    Box::pin(async move {
                        log.lock().unwrap().push(i);
                        let _ = wait.await;
                        i
                    }) as Boxed
                });
            let outputs = Arc::new(Mutex::new(Vec::new()));
            let out = Arc::clone(&outputs);
            tokio::task::spawn_local(async move {
                let mut stream = in_order(futures, width, window);
                while let Some(i) = stream.next().await {
                    out.lock().unwrap().push(i);
                }
            });
            Work {
                finish,
                started,
                outputs,
            }
        }

        /// Finishes future `i` and lets the collector run.
        async fn finish(&mut self, i: usize) {
            if let Some(tx) = self.finish[i].take() {
                let _ = tx.send(());
            }
            settle().await;
        }

        fn started(&self) -> Vec<usize> {
            self.started.lock().unwrap().clone()
        }

        fn outputs(&self) -> Vec<usize> {
            self.outputs.lock().unwrap().clone()
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn outputs_come_in_input_order_and_a_finished_future_makes_room_at_once() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let mut work = Work::run(6, 3, 100);
                settle().await;
                assert_eq!(work.started(), [0, 1, 2]);
                work.finish(2).await;
                assert_eq!(work.started(), [0, 1, 2, 3], "2 made room while 0 runs");
                assert!(work.outputs().is_empty());
                work.finish(1).await;
                assert_eq!(work.started(), [0, 1, 2, 3, 4]);
                work.finish(0).await;
                assert_eq!(work.outputs(), [0, 1, 2]);
                assert_eq!(work.started(), [0, 1, 2, 3, 4, 5]);
                for i in [5, 4, 3] {
                    work.finish(i).await;
                }
                assert_eq!(work.outputs(), [0, 1, 2, 3, 4, 5]);
            })
            .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_slow_future_holds_back_at_most_a_window_of_starts() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let mut work = Work::run(20, 4, 6);
                settle().await;
                for i in 1..6 {
                    work.finish(i).await;
                }
                assert_eq!(
                    work.started(),
                    [0, 1, 2, 3, 4, 5],
                    "6 started, 0 still runs"
                );
                assert!(work.outputs().is_empty());
                work.finish(0).await;
                assert_eq!(work.outputs(), [0, 1, 2, 3, 4, 5]);
                assert_eq!(work.started().len(), 10, "4 more run at once");
                for i in 6..20 {
                    work.finish(i).await;
                }
                assert_eq!(work.outputs(), (0..20).collect::<Vec<_>>());
            })
            .await;
    }
}
