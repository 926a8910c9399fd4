//! When the results consumer is read: executor reports give way to running cycles.
//!
//! A cycle is what someone waits for (a trigger's publish to its actions' confirm); a report
//! is bookkeeping whose effects (an action applied, its watch started) can come a moment
//! later. On a busy worker the two share the database's and the host's CPU, so while cycles
//! run a new report batch is taken at most once per `every`: a burst of triggers finishes
//! sooner and the reports that arrived meanwhile go as a few large batches once it is over.
//! The floor of one batch per `every` keeps reports moving under any trigger rate.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct ReportTurns {
    every: Duration,
    last: Option<Instant>,
}

impl ReportTurns {
    /// `every`: the longest reports wait while cycles run. Zero: they never wait.
    pub fn new(every: Duration) -> Self {
        Self { every, last: None }
    }

    /// Whether a report batch may be taken `now`, with `cycles_running` of them in flight.
    pub fn open(&self, cycles_running: bool, now: Instant) -> bool {
        !cycles_running || self.every.is_zero() || self.next(now).is_none()
    }

    /// When a report batch held back by running cycles gets its turn anyway; `None` when that
    /// time has come.
    pub fn next(&self, now: Instant) -> Option<Instant> {
        let at = self.last? + self.every;
        (at > now).then_some(at)
    }

    /// A report batch was taken `now`.
    pub fn taken(&mut self, now: Instant) {
        self.last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn reports_go_at_once_when_no_cycle_runs() {
        let t0 = Instant::now();
        let mut turns = ReportTurns::new(SEC);
        turns.taken(t0);
        assert!(turns.open(false, t0));
    }

    #[test]
    fn while_cycles_run_one_batch_per_period() {
        let t0 = Instant::now();
        let mut turns = ReportTurns::new(SEC);
        assert!(turns.open(true, t0), "the first batch need not wait");
        turns.taken(t0);
        assert!(!turns.open(true, t0 + SEC / 2));
        assert_eq!(turns.next(t0 + SEC / 2), Some(t0 + SEC));
        assert!(turns.open(true, t0 + SEC));
        assert_eq!(turns.next(t0 + SEC), None);
    }

    #[test]
    fn zero_never_holds_reports_back() {
        let t0 = Instant::now();
        let mut turns = ReportTurns::new(Duration::ZERO);
        turns.taken(t0);
        assert!(turns.open(true, t0));
    }

    proptest! {
        /// However often cycles run, a report waits no longer than the period after the last
        /// batch, and a held-back batch always has a wake-up time to wait for.
        #[test]
        fn reports_never_starve(
            period_ms in 1u64..5_000,
            steps in proptest::collection::vec((0u64..3_000, any::<bool>()), 1..50),
        ) {
            let t0 = Instant::now();
            let every = Duration::from_millis(period_ms);
            let mut turns = ReportTurns::new(every);
            let mut now = t0;
            for (gap, busy) in steps {
                now += Duration::from_millis(gap);
                if turns.open(busy, now) {
                    turns.taken(now);
                } else {
                    let wake = turns.next(now);
                    prop_assert!(wake.is_some_and(|w| w > now && w <= now + every));
                    prop_assert!(turns.open(busy, wake.unwrap_or(now)));
                }
            }
        }
    }
}
