//! CPU time by process over a span of the morning, read from Linux's `/proc` a few times a
//! second: the whole machine, PostgreSQL's processes, RabbitMQ's and the bench's workers.
//! Throughput on a shared host moves with the host's hour; the CPU a cycle costs each process
//! moves much less, and is what a deployment is sized from (README, Capacity).
//!
//! A process counts its own time and what its reaped children used (`cutime`, `cstime`): a
//! backend or an autovacuum worker that exits between two readings stays counted, in the
//! postmaster's. Elsewhere than Linux nothing is read and the report's fields are null.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `/proc`'s clock ticks a second: USER_HZ, which Linux fixes at 100 for user space.
const TICKS_PER_SECOND: f64 = 100.0;

/// How often the sampler reads: a span's ends are off by at most this.
const EVERY: Duration = Duration::from_millis(250);

/// Busy CPU time so far, in ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticks {
    /// Every CPU, all but idle, I/O wait and steal (`/proc/stat`).
    pub machine: u64,
    pub postgres: u64,
    pub rabbitmq: u64,
    pub workers: u64,
}

impl Ticks {
    fn since(self, earlier: Ticks) -> Ticks {
        Ticks {
            machine: self.machine.saturating_sub(earlier.machine),
            postgres: self.postgres.saturating_sub(earlier.postgres),
            rabbitmq: self.rabbitmq.saturating_sub(earlier.rabbitmq),
            workers: self.workers.saturating_sub(earlier.workers),
        }
    }
}

/// CPU milliseconds per unit of work (a cycle, a pgbench transaction). `other` is the machine
/// less the three: the bench itself, pgbench, the kernel's own threads.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpuPer {
    pub machine_ms: f64,
    pub postgres_ms: f64,
    pub rabbitmq_ms: f64,
    pub workers_ms: f64,
    pub other_ms: f64,
}

impl CpuPer {
    /// `t` spread over `units`; `None` for no work.
    pub fn of(t: Ticks, units: f64) -> Option<Self> {
        if units.is_nan() || units <= 0.0 {
            return None;
        }
        let ms = |ticks: u64| ticks as f64 * 1000.0 / TICKS_PER_SECOND / units;
        let parts = t.postgres + t.rabbitmq + t.workers;
        Some(Self {
            machine_ms: ms(t.machine),
            postgres_ms: ms(t.postgres),
            rabbitmq_ms: ms(t.rabbitmq),
            workers_ms: ms(t.workers),
            other_ms: ms(t.machine.saturating_sub(parts)),
        })
    }
}

/// The busy ticks in `/proc/stat`'s first line (`cpu user nice system idle iowait irq
/// softirq steal ...`): user to softirq less idle and iowait. Steal is time the hypervisor
/// gave to someone else, and guest time is already inside user.
pub fn machine_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().next()?;
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = fields
        .take(7)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if v.len() < 4 {
        return None;
    }
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some(v.iter().sum::<u64>() - idle)
}

/// A `/proc/PID/stat` line's command name and its CPU ticks: utime, stime, cutime, cstime
/// (fields 14 to 17). The name is in parentheses and may hold spaces or parentheses itself,
/// so the fields are counted from the last `)`.
pub fn process_ticks(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    // After ") ": field 3 (state) is the first; utime is field 14, the 12th after it.
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    let ticks = rest
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<i64>().ok().map(|n| n.max(0) as u64))
        .sum::<Option<u64>>()?;
    Some((comm, ticks))
}

/// Adds a process's ticks to its group, by its command name; other processes count only in
/// the machine's.
fn add(t: &mut Ticks, comm: &str, ticks: u64) {
    match comm {
        "postgres" => t.postgres += ticks,
        "beam.smp" | "erl_child_setup" | "inet_gethost" | "epmd" => t.rabbitmq += ticks,
        _ => {}
    }
}

/// Reads every process now. `None` where there is no `/proc`.
pub fn read(workers: &[u32]) -> Option<Ticks> {
    let machine = machine_busy(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let mut t = Ticks {
        machine,
        ..Ticks::default()
    };
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may end between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((comm, ticks)) = process_ticks(&stat) else {
            continue;
        };
        if workers.contains(&pid) {
            t.workers += ticks;
        } else {
            add(&mut t, comm, ticks);
        }
    }
    Some(t)
}

/// The CPU between `from` and `to`, from the readings that enclose the span (the last at or
/// before `from`, the first at or after `to`), so the whole span is counted and at most one
/// interval more at each end. `None` when the readings do not enclose it.
pub fn between(
    samples: &[(DateTime<Utc>, Ticks)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Option<Ticks> {
    let start = samples.iter().rev().find(|(at, _)| *at <= from)?;
    let end = samples.iter().find(|(at, _)| *at >= to)?;
    Some(end.1.since(start.1))
}

/// Readings in the order taken.
type Readings = Arc<Mutex<Vec<(DateTime<Utc>, Ticks)>>>;

/// Reads `/proc` every `EVERY` on a blocking thread until dropped.
pub struct Sampler {
    samples: Readings,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn start(workers: Vec<u32>) -> Self {
        let samples = Readings::default();
        let into = samples.clone();
        let task = tokio::spawn(async move {
            loop {
                let w = workers.clone();
                let read = tokio::task::spawn_blocking(move || read(&w)).await;
                match read {
                    Ok(Some(t)) => lock(&into).push((Utc::now(), t)),
                    // No /proc here: nothing to sample.
                    Ok(None) | Err(_) => return,
                }
                tokio::time::sleep(EVERY).await;
            }
        });
        Self { samples, task }
    }

    /// The CPU per unit of work between `from` and `to`, once a reading at or after `to`
    /// exists (waits up to two intervals for it).
    pub async fn per(&self, from: DateTime<Utc>, to: DateTime<Utc>, units: f64) -> Option<CpuPer> {
        for _ in 0..3 {
            if let Some(t) = between(&lock(&self.samples), from, to) {
                return CpuPer::of(t, units);
            }
            tokio::time::sleep(EVERY).await;
        }
        None
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_machine_is_busy_for_all_but_idle_iowait_and_steal() {
        let stat = "cpu  100 5 50 1000 20 3 7 2 0 0\ncpu0 50 2 25 500 10 1 3 1 0 0\n";
        assert_eq!(machine_busy(stat), Some(100 + 5 + 50 + 3 + 7));
        assert_eq!(machine_busy("intr 1 2 3"), None);
        assert_eq!(machine_busy("cpu 1 x 3 4"), None);
        assert_eq!(machine_busy(""), None);
    }

    #[test]
    fn a_process_counts_its_own_and_its_reaped_childrens_time() {
        // Fields 14 to 17 of proc(5): utime 11, stime 22, cutime 33, cstime 44.
        let stat = "1234 (postgres) S 1 1234 1234 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0 \
                    5 6 7";
        assert_eq!(process_ticks(stat), Some(("postgres", 110)));
        // A name with spaces and a parenthesis is read to the last `)`.
        let odd = "99 (a (b) c) R 1 1 1 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0";
        assert_eq!(process_ticks(odd), Some(("a (b) c", 10)));
        assert_eq!(process_ticks("99 (cut) S 1 1"), None);
        assert_eq!(process_ticks("no parentheses"), None);
    }

    #[test]
    fn processes_are_grouped_by_their_command() {
        let mut t = Ticks::default();
        for (comm, n) in [("postgres", 3), ("beam.smp", 5), ("epmd", 1), ("bash", 100)] {
            add(&mut t, comm, n);
        }
        assert_eq!((t.postgres, t.rabbitmq, t.workers), (3, 6, 0));
    }

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0)
            .single()
            .expect("a valid time")
    }

    fn ticks(n: u64) -> Ticks {
        Ticks {
            machine: 4 * n,
            postgres: 2 * n,
            rabbitmq: n / 2,
            workers: n,
        }
    }

    #[test]
    fn a_span_is_read_from_the_readings_that_enclose_it() {
        let samples: Vec<_> = (0..10).map(|s| (at(s), ticks(10 * s as u64))).collect();
        // From 2.5 s to 6.5 s: the readings at 2 and 7.
        let from = at(2) + chrono::Duration::milliseconds(500);
        let to = at(6) + chrono::Duration::milliseconds(500);
        assert_eq!(between(&samples, from, to), Some(ticks(50)));
        assert_eq!(between(&samples, at(3), at(3)), Some(Ticks::default()));
        // Not enclosed: before the first reading, or past the last.
        assert_eq!(between(&samples, at(-1), at(3)), None);
        assert_eq!(between(&samples, at(3), at(10)), None);
        assert_eq!(between(&[], at(0), at(1)), None);
    }

    #[test]
    fn cpu_is_spread_over_the_units_and_the_rest_is_other() {
        // 400 ticks are 4 s of CPU; over 1,000 cycles, 4 ms each.
        let per = CpuPer::of(ticks(100), 1000.0).expect("work was done");
        assert_eq!(per.machine_ms, 4.0);
        assert_eq!(per.postgres_ms, 2.0);
        assert_eq!(per.rabbitmq_ms, 0.5);
        assert_eq!(per.workers_ms, 1.0);
        assert_eq!(per.other_ms, 0.5);
        assert_eq!(CpuPer::of(ticks(100), 0.0), None);
        assert_eq!(CpuPer::of(ticks(100), f64::NAN), None);
        // Processes read a moment after the machine may sum past it: other stays at 0.
        let over = Ticks {
            machine: 10,
            postgres: 11,
            ..Ticks::default()
        };
        assert_eq!(CpuPer::of(over, 1.0).map(|p| p.other_ms), Some(0.0));
    }
}
