//! Calls that can share one execution: each caller queues its keys, and whoever holds one of
//! a few permits runs the call for everything queued and answers each caller. Under load one
//! execution covers many callers; alone, a caller runs its own at once.

use std::sync::Mutex;
use tokio::sync::{Semaphore, oneshot};

type Queue<K> = Vec<(Vec<K>, oneshot::Sender<bool>)>;

pub struct Coalescer<K> {
    queue: Mutex<Queue<K>>,
    permits: Semaphore,
}

impl<K> Coalescer<K> {
    /// At most `at_once` executions run at the same time.
    pub fn new(at_once: usize) -> Self {
        Self {
            queue: Mutex::new(Vec::new()),
            permits: Semaphore::new(at_once.max(1)),
        }
    }

    /// Runs `f` over `keys` and whatever else is queued when a permit comes free, or waits for
    /// the execution that took `keys`. `f` gets the keys and how many callers they came from,
    /// and says whether it succeeded; that answer is this call's. False also when the
    /// execution that took `keys` was cancelled: it is not known to have run.
    pub async fn run<F, Fut>(&self, keys: Vec<K>, f: F) -> bool
    where
        F: Fn(Vec<K>, usize) -> Fut,
        Fut: Future<Output = bool>,
    {
        let (tx, mut rx) = oneshot::channel();
        self.lock().push((keys, tx));
        loop {
            let permit = tokio::select! {
                biased;
                done = &mut rx => return done.unwrap_or(false),
                p = self.permits.acquire() => p,
            };
            let Ok(permit) = permit else {
                return rx.await.unwrap_or(false);
            };
            let queued = std::mem::take(&mut *self.lock());
            if queued.is_empty() {
                // Ours is in an execution that is running now; its answer comes on `rx`.
                drop(permit);
                return rx.await.unwrap_or(false);
            }
            let callers = queued.len();
            let (keys, waiters): (Vec<Vec<K>>, Vec<_>) = queued.into_iter().unzip();
            let ok = f(keys.into_iter().flatten().collect(), callers).await;
            drop(permit);
            for w in waiters {
                // A caller that went away needs no answer; its keys were run all the same.
                let _ = w.send(ok);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<K>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Records each execution's keys; tracks how many ran at once.
    #[derive(Default)]
    struct Log {
        runs: Mutex<Vec<Vec<u32>>>,
        running: AtomicUsize,
        most: AtomicUsize,
    }

    async fn exec(log: &Log, keys: Vec<u32>, ok: bool) -> bool {
        let now = log.running.fetch_add(1, Ordering::SeqCst) + 1;
        log.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        log.running.fetch_sub(1, Ordering::SeqCst);
        log.runs.lock().unwrap().push(keys);
        ok
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_callers_share_few_executions_and_each_key_runs_once() {
        let c = Arc::new(Coalescer::new(2));
        let log = Arc::new(Log::default());
        let calls = (0..40u32).map(|i| {
            let (c, log) = (c.clone(), log.clone());
            tokio::spawn(async move {
                c.run(vec![i * 2, i * 2 + 1], |k, _| exec(&log, k, true))
                    .await
            })
        });
        for h in futures_util::future::join_all(calls).await {
            assert!(h.unwrap(), "every caller is told its keys ran");
        }
        let runs = log.runs.lock().unwrap().clone();
        let mut keys: Vec<u32> = runs.iter().flatten().copied().collect();
        keys.sort_unstable();
        assert_eq!(keys, (0..80).collect::<Vec<_>>(), "each key once");
        assert!(runs.len() < 40, "{} executions for 40 callers", runs.len());
        assert!(log.most.load(Ordering::SeqCst) <= 2);
        // A caller's keys stay together and in order.
        for r in &runs {
            for pair in r.chunks(2) {
                assert_eq!(pair[0] + 1, pair[1]);
            }
        }
    }

    #[tokio::test]
    async fn a_lone_caller_runs_its_own_keys_and_hears_a_failure() {
        let c = Coalescer::new(2);
        let log = Log::default();
        assert!(
            !c.run(vec![7], |k, n| {
                assert_eq!(n, 1);
                exec(&log, k, false)
            })
            .await
        );
        assert_eq!(*log.runs.lock().unwrap(), vec![vec![7]]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_goes_away_leaves_its_keys_to_run_and_others_answered() {
        let c = Arc::new(Coalescer::new(1));
        let log = Arc::new(Log::default());
        // The first takes the only permit; the next two queue behind it.
        let first = {
            let (c, log) = (c.clone(), log.clone());
            tokio::spawn(async move { c.run(vec![1], |k, _| exec(&log, k, true)).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let gone = {
            let (c, log) = (c.clone(), log.clone());
            tokio::spawn(async move { c.run(vec![2], |k, _| exec(&log, k, true)).await })
        };
        let stays = {
            let (c, log) = (c.clone(), log.clone());
            tokio::spawn(async move { c.run(vec![3], |k, _| exec(&log, k, true)).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        gone.abort();
        assert!(first.await.unwrap());
        assert!(stays.await.unwrap());
        let mut keys: Vec<u32> = log.runs.lock().unwrap().iter().flatten().copied().collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            vec![1, 2, 3],
            "the aborted caller's key ran all the same"
        );
    }
}
