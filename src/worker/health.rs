//! What the worker knows about itself, kept fresh as it works, so that `/readyz` and
//! `/healthz` answer from memory in microseconds whatever the database and broker do; and the
//! database gate: while the database is unreachable, consumption pauses and units hold their
//! deliveries instead of spending the delivery limit.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A dependency whose last good round trip is older than this is not ready.
pub const FRESH: Duration = Duration::from_secs(5);

/// Milliseconds since `start`; 0 means never.
#[derive(Debug, Default)]
struct Stamp(AtomicU64);

impl Stamp {
    fn set(&self, start: Instant) {
        let ms = start.elapsed().as_millis().max(1);
        self.0
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn age(&self, start: Instant) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(start.elapsed().saturating_sub(Duration::from_millis(ms))),
        }
    }
}

/// A periodic service's heartbeat.
#[derive(Debug)]
struct Beat {
    name: &'static str,
    every: Duration,
    tick: Stamp,
}

/// Shared by the loop, the units, the relay, the periodic services and the ops endpoints.
#[derive(Debug)]
pub struct WorkerStatus {
    start: Instant,
    broker_connected: AtomicBool,
    /// A broker round trip (the liveness probe, a confirm) succeeded.
    broker_ok: Stamp,
    /// A database round trip succeeded.
    db_ok: Stamp,
    /// `true` while the database is unreachable: the gate is shut.
    db_down: watch::Sender<bool>,
    db_down_since: Stamp,
    /// The consume loop went round (it ticks every second while a session is up).
    loop_tick: Stamp,
    /// Each periodic service's last tick, with its interval.
    services: std::sync::Mutex<Vec<Beat>>,
    /// Units working right now (not waiting at the gate).
    running: AtomicUsize,
    /// A unit finished (its delivery settled or handed back).
    unit_done: Stamp,
}

impl Default for WorkerStatus {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            broker_connected: AtomicBool::new(false),
            broker_ok: Stamp::default(),
            db_ok: Stamp::default(),
            db_down: watch::Sender::new(false),
            db_down_since: Stamp::default(),
            loop_tick: Stamp::default(),
            services: std::sync::Mutex::new(Vec::new()),
            running: AtomicUsize::new(0),
            unit_done: Stamp::default(),
        }
    }
}

/// A copy of the status at one instant, judged by pure functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub broker_connected: bool,
    pub broker_ok_age: Option<Duration>,
    pub db_ok_age: Option<Duration>,
    pub db_down_for: Option<Duration>,
    pub loop_tick_age: Option<Duration>,
    /// The periodic service most overdue for a tick: its name and how long past its own
    /// interval it is (since start, if it never ticked).
    pub stalest_service: Option<(&'static str, Duration)>,
    pub running: usize,
    pub unit_done_age: Option<Duration>,
    pub uptime: Duration,
}

/// Marks a unit as running for as long as it lives.
pub struct Running<'a>(&'a WorkerStatus);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
        self.0.unit_done.set(self.0.start);
    }
}

impl WorkerStatus {
    pub fn set_broker_connected(&self, up: bool) {
        self.broker_connected.store(up, Ordering::Relaxed);
        if up {
            self.broker_ok.set(self.start);
        }
    }

    pub fn broker_answered(&self) {
        self.broker_ok.set(self.start);
    }

    pub fn loop_ticked(&self) {
        self.loop_tick.set(self.start);
    }

    /// A periodic service joined; it counts for liveness from now on.
    pub fn service_registered(&self, name: &'static str, every: Duration) {
        let mut beats = self.services.lock().unwrap_or_else(|e| e.into_inner());
        beats.retain(|b| b.name != name);
        beats.push(Beat {
            name,
            every,
            tick: Stamp::default(),
        });
    }

    /// The wait a periodic service chose before its next tick: its interval, or longer when a
    /// run asked for it (a gauge waiting out its budget, `periodic::Next::Budgeted`). Liveness
    /// measures it late past this, so a chosen wait never reads as wedged.
    pub fn service_waits(&self, name: &'static str, wait: Duration) {
        let mut beats = self.services.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = beats.iter_mut().find(|b| b.name == name) {
            b.every = wait;
        }
    }

    /// A periodic service went round (ran, or skipped a run while the database is down).
    pub fn service_ticked(&self, name: &'static str) {
        let beats = self.services.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = beats.iter().find(|b| b.name == name) {
            b.tick.set(self.start);
        }
    }

    /// The service most overdue for a tick, measured past its own interval.
    fn stalest_service(&self) -> Option<(&'static str, Duration)> {
        let beats = self.services.lock().unwrap_or_else(|e| e.into_inner());
        beats
            .iter()
            .map(|b| {
                let age = b.tick.age(self.start).unwrap_or(self.start.elapsed());
                (b.name, age.saturating_sub(b.every))
            })
            .max_by_key(|(_, late)| *late)
    }

    pub fn unit_started(&self) -> Running<'_> {
        self.running.fetch_add(1, Ordering::Relaxed);
        Running(self)
    }

    /// A database call succeeded: the link is good (and the gate opens if it was shut).
    pub fn db_answered(&self) {
        self.db_ok.set(self.start);
        self.db_down
            .send_if_modified(|down| std::mem::replace(down, false));
    }

    /// A call found the database unreachable: shut the gate (the probe opens it again).
    /// Returns whether this call shut it.
    pub fn db_unreachable(&self) -> bool {
        let shut = self
            .db_down
            .send_if_modified(|down| !std::mem::replace(down, true));
        if shut {
            self.db_down_since.set(self.start);
        }
        shut
    }

    /// Shuts the gate for `e` and says so once per outage.
    pub fn report_unreachable(&self, e: &dyn std::fmt::Display) {
        if self.db_unreachable() {
            tracing::warn!(error = %e, "database unreachable; consumption paused until it answers");
        }
    }

    pub fn db_down(&self) -> bool {
        *self.db_down.borrow()
    }

    /// Waits until the database is reachable (at once if it is).
    pub async fn db_up(&self) {
        let mut rx = self.db_down.subscribe();
        let _ = rx.wait_for(|down| !*down).await;
    }

    /// Waits until the gate shuts.
    pub async fn db_lost(&self) {
        let mut rx = self.db_down.subscribe();
        let _ = rx.wait_for(|down| *down).await;
    }

    pub fn snapshot(&self) -> Snapshot {
        let down = self.db_down();
        Snapshot {
            broker_connected: self.broker_connected.load(Ordering::Relaxed),
            broker_ok_age: self.broker_ok.age(self.start),
            db_ok_age: self.db_ok.age(self.start),
            db_down_for: down.then(|| self.db_down_since.age(self.start)).flatten(),
            loop_tick_age: self.loop_tick.age(self.start),
            stalest_service: self.stalest_service(),
            running: self.running.load(Ordering::Relaxed),
            unit_done_age: self.unit_done.age(self.start),
            uptime: self.start.elapsed(),
        }
    }
}

/// `/readyz`'s line naming the database server the last probe reached: with a multi-host
/// DSN and `target_session_attrs=read-write`, the primary.
pub fn primary_line(server: Option<&str>) -> String {
    format!(
        "database primary: {}\n",
        server.unwrap_or("unknown (no answer yet)")
    )
}

fn fresh(age: Option<Duration>) -> bool {
    age.is_some_and(|a| a <= FRESH)
}

fn secs(age: Option<Duration>) -> String {
    age.map_or_else(
        || "never".to_owned(),
        |a| format!("{:.1}s ago", a.as_secs_f64()),
    )
}

impl Snapshot {
    /// Readiness: a database round trip and a broker round trip within `FRESH`, and a session.
    pub fn readiness(&self) -> (bool, String) {
        let db = self.db_down_for.is_none() && fresh(self.db_ok_age);
        let mq = self.broker_connected && fresh(self.broker_ok_age);
        let body = format!(
            "database: {} (last answer {})\nbroker: {} (last answer {})\n",
            if db { "ok" } else { "down" },
            secs(self.db_ok_age),
            if mq { "ok" } else { "down" },
            secs(self.broker_ok_age),
        );
        (db && mq, body)
    }

    /// Liveness: `Err` names what is wedged. Waiting out an outage is not wedged (a restart
    /// would only hand the held deliveries back); a loop or a unit that stopped moving is.
    pub fn liveness(&self, wedged_after: Duration) -> Result<(), String> {
        let stale = |age: Option<Duration>| age.is_some_and(|a| a > wedged_after);
        if self.broker_connected && stale(self.loop_tick_age) {
            return Err(format!(
                "consumer loop has not turned for {}",
                secs(self.loop_tick_age)
            ));
        }
        if let Some((name, late)) = self.stalest_service
            && late > wedged_after
        {
            return Err(format!(
                "periodic service {name} is {:.0}s past its interval",
                late.as_secs_f64()
            ));
        }
        if self.running > 0 && self.db_down_for.is_none() {
            let since = self.unit_done_age.unwrap_or(self.uptime);
            if since > wedged_after {
                return Err(format!(
                    "{} trigger(s) running, none finished for {:.0}s",
                    self.running,
                    since.as_secs_f64()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_is_late_only_past_the_wait_it_chose() {
        let status = WorkerStatus {
            start: Instant::now() - Duration::from_secs(400),
            ..WorkerStatus::default()
        };
        status.service_registered("overdue_gauge", Duration::from_secs(30));
        // Its last tick was at the start, 400 s ago.
        {
            let beats = status.services.lock().unwrap();
            beats[0].tick.0.store(1, Ordering::Relaxed);
        }
        let late = |s: &WorkerStatus| s.stalest_service().map(|(_, l)| l.as_secs());
        assert!(late(&status).is_some_and(|l| (369..=371).contains(&l)));
        status.service_waits("overdue_gauge", Duration::from_secs(390));
        assert!(late(&status).is_some_and(|l| (9..=11).contains(&l)));
    }

    fn ok() -> Snapshot {
        let s = Some(Duration::from_secs(1));
        Snapshot {
            broker_connected: true,
            broker_ok_age: s,
            db_ok_age: s,
            db_down_for: None,
            loop_tick_age: s,
            stalest_service: Some(("outbox_sweep", Duration::ZERO)),
            running: 0,
            unit_done_age: None,
            uptime: Duration::from_secs(600),
        }
    }

    #[test]
    fn readiness_names_the_primary() {
        assert_eq!(
            primary_line(Some("10.0.0.7:5432")),
            "database primary: 10.0.0.7:5432\n"
        );
        assert!(primary_line(None).contains("unknown"));
    }

    #[test]
    fn ready_needs_fresh_answers_from_both() {
        assert!(ok().readiness().0);
        let old = Some(FRESH + Duration::from_secs(1));
        assert!(
            !Snapshot {
                db_ok_age: old,
                ..ok()
            }
            .readiness()
            .0
        );
        assert!(
            !Snapshot {
                broker_ok_age: old,
                ..ok()
            }
            .readiness()
            .0
        );
        assert!(
            !Snapshot {
                broker_connected: false,
                ..ok()
            }
            .readiness()
            .0
        );
        let down = Snapshot {
            db_down_for: Some(Duration::ZERO),
            ..ok()
        };
        assert!(!down.readiness().0);
        assert!(ok().readiness().1.contains("database: ok"));
    }

    #[test]
    fn a_stopped_loop_or_unit_is_wedged_but_an_outage_is_not() {
        let w = Duration::from_secs(120);
        assert_eq!(ok().liveness(w), Ok(()));
        let long = Some(Duration::from_secs(300));
        let e = Snapshot {
            loop_tick_age: long,
            ..ok()
        }
        .liveness(w)
        .unwrap_err();
        assert!(e.contains("consumer loop"), "{e}");
        let e = Snapshot {
            stalest_service: long.map(|l| ("outbox_sweep", l)),
            ..ok()
        }
        .liveness(w)
        .unwrap_err();
        assert!(e.contains("outbox_sweep"), "{e}");
        let stuck = Snapshot {
            running: 3,
            unit_done_age: long,
            ..ok()
        };
        assert!(stuck.liveness(w).unwrap_err().contains("3 trigger(s)"));
        let waiting = Snapshot {
            db_down_for: long,
            ..stuck
        };
        assert_eq!(waiting.liveness(w), Ok(()));
        // Between sessions the loop does not tick; that is the broker's outage, not a wedge.
        let between = Snapshot {
            broker_connected: false,
            loop_tick_age: long,
            ..ok()
        };
        assert_eq!(between.liveness(w), Ok(()));
    }

    #[tokio::test]
    async fn the_gate_shuts_once_and_opens_on_an_answer() {
        let s = WorkerStatus::default();
        assert!(!s.db_down());
        assert!(s.db_unreachable());
        assert!(!s.db_unreachable(), "already shut");
        assert!(s.snapshot().db_down_for.is_some());
        let waiter = async { s.db_up().await };
        s.db_answered();
        waiter.await;
        assert!(!s.db_down());
        let r = s.unit_started();
        assert_eq!(s.snapshot().running, 1);
        drop(r);
        assert_eq!(s.snapshot().running, 0);
        assert!(s.snapshot().unit_done_age.is_some());
    }
}
