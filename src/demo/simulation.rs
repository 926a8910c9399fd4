//! `revenue-os demo --loop`: 60 simulated days of one tenant whose metrics respond to the
//! changes executors apply, run through the real worker, broker, database, stand-in executor
//! and watchdog on an injected clock. Nothing here is a shortcut: each simulated day imports
//! yesterday's metrics, sweeps the watchdog, and triggers a cycle, exactly as production does.
//!
//! The simulated world (deterministic: noise is a hash of metric and day):
//! - a budget raise on cmp_002 (poor marginal returns) raises `cac_blended` 15% from the
//!   second day after it is applied;
//! - a tightened follow-up SLA (`follow_up_sla_hours` ≤ 8) cuts `speed_to_lead_hours` 35%
//!   from the next day;
//! - pausing cmp_007 lowers `cac_blended` 3%;
//! - everything else is its recent level with ±2% daily noise.
//!
//! The tenant decides weekly (`kernel.min_cycle_interval_hours` = 167): the daily triggers in
//! between are recorded as skipped, as the spacing rule says.

use super::standin::StandIn;
use crate::broker::{Topology, TriggerClient};
use crate::clock::Clock;
use crate::config::Settings;
use crate::contract::catalog::Catalog;
use crate::contract::{
    KernelInput, KernelOutput, Levers, MetricPoint, Subsystem, Trigger, TriggerMessage,
    TriggerType, decode_input, format_date, parse_timestamp,
};
use crate::error::Error;
use crate::store::{Store, WatchVerdict};
use crate::watchdog::{self, Watchdog};
use chrono::{DateTime, Days, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const TEMPLATE: &str = include_str!("../../tests/fixtures/valid/demand_bound.json");
pub const DAYS: u64 = 60;

/// What the run showed, for the test and the README.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub tenant_id: Uuid,
    pub log: Vec<String>,
    /// (day, action_id) of every action a cycle proposed.
    pub proposed: Vec<(u64, String)>,
    /// (day, action_id, sentence) of every revert the watchdog published.
    pub reverted: Vec<(u64, String, String)>,
    /// (day, action_id, outcome or "unmeasurable").
    pub measured: Vec<(u64, String, String)>,
}

/// The first simulated day: the example tenant's data ends the day before.
fn start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 26).unwrap_or(NaiveDate::MIN)
}

fn at_six(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(6, 0, 0).unwrap_or_default().and_utc()
}

/// A value in [-1, 1) from a metric and a day: the same every run.
fn noise(metric: &str, day: NaiveDate) -> f64 {
    let mut z = day
        .to_string()
        .bytes()
        .chain(metric.bytes())
        .fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
        });
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// The simulated tenant: recent levels of each metric, and how levers move them.
struct World {
    base: BTreeMap<String, f64>,
}

impl World {
    fn new(template: &KernelInput) -> Self {
        let mut by_metric: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
        for m in template.metrics.iter().filter(|m| m.dimension.is_none()) {
            by_metric
                .entry(m.metric_id.clone())
                .or_default()
                .push((m.date.clone(), m.value));
        }
        let base = by_metric
            .into_iter()
            .map(|(id, mut v)| {
                v.sort_by(|a, b| a.0.cmp(&b.0));
                let last: Vec<f64> = v.iter().rev().take(7).map(|x| x.1).collect();
                (id, last.iter().sum::<f64>() / last.len().max(1) as f64)
            })
            .collect();
        Self { base }
    }

    /// The metric's value on `day`, given what the executors applied.
    fn value(&self, metric: &str, day: NaiveDate, levers: &Levers) -> f64 {
        let base = self.base.get(metric).copied().unwrap_or(0.0);
        let active = |s: Subsystem,
                      e: Option<&str>,
                      f: &str,
                      lag: u64,
                      on: &dyn Fn(&serde_json::Value) -> bool| {
            levers.get(s, e, f).is_some_and(|l| {
                let since = parse_timestamp(&l.since).map(|t| t.date_naive());
                let settled = since
                    .and_then(|s| s.checked_add_days(Days::new(lag)))
                    .is_some_and(|d| d <= day);
                // A new value in the same direction keeps the effect going.
                on(&l.value) && (settled || l.before.as_ref().is_some_and(on))
            })
        };
        let raised = |v: &serde_json::Value| v.as_f64().is_some_and(|x| x > 517.85 + 0.005);
        let mut v = base * (1.0 + 0.02 * noise(metric, day));
        match metric {
            "cac_blended" => {
                if active(
                    Subsystem::Campaigns,
                    Some("cmp_002"),
                    "budget_daily",
                    2,
                    &raised,
                ) {
                    v *= 1.15;
                }
                if active(Subsystem::Campaigns, Some("cmp_007"), "status", 1, &|v| {
                    v == "paused"
                }) {
                    v *= 0.97;
                }
            }
            "speed_to_lead_hours" => {
                let tight = |v: &serde_json::Value| v.as_f64().is_some_and(|h| h <= 8.0);
                if active(Subsystem::Crm, None, "follow_up_sla_hours", 1, &tight) {
                    v *= 0.65;
                }
            }
            _ => {}
        }
        if base.abs() < 10.0 {
            (v * 10_000.0).round() / 10_000.0
        } else {
            (v * 100.0).round() / 100.0
        }
    }
}

/// Runs the 60 days, reporting each through `say`.
pub async fn run(
    mut settings: Settings,
    catalog: Catalog,
    mut say: impl FnMut(&str),
) -> Result<Summary, Error> {
    settings.kernel.min_cycle_interval_hours = 7 * 24 - 1;
    settings.watchdog.interval_secs = 0;
    settings.worker.outbox_sweep_secs = 1;
    let clock = Clock::manual(at_six(start()));
    let store = crate::app::store(&settings, true).await?;
    store.migrate().await?;
    let mut template = decode_input(TEMPLATE.as_bytes())?;
    let tenant = Uuid::new_v4();
    template.tenant_id = tenant.to_string();
    store.import(&template, &catalog).await?;
    let world = World::new(&template);
    let topology = Topology::new(
        &settings.amqp.prefix,
        &catalog,
        settings.amqp.delivery_limit,
    );
    let wd = Watchdog {
        topology: topology.clone(),
        clock: clock.clone(),
    };
    let shutdown = CancellationToken::new();
    let worker =
        crate::app::worker(&settings, store.clone(), catalog.clone()).with_clock(clock.clone());
    let worker_task = tokio::spawn(worker.run(shutdown.clone()));
    let executor = StandIn::start(&settings.amqp, &topology, clock.clone()).await?;
    let client = TriggerClient::connect(&settings.amqp, topology.clone()).await?;
    let mut sum = Summary {
        tenant_id: tenant,
        ..Summary::default()
    };
    let mut log = |sum: &mut Summary, line: String| {
        say(&line);
        sum.log.push(line);
    };
    log(
        &mut sum,
        format!(
            "simulated tenant {tenant}: {DAYS} days from {}, one trigger a day, weekly decisions, a STAND-IN executor",
            start()
        ),
    );
    let started = Instant::now();
    let outcome = async {
        let mut last_refusal: Option<String> = None;
        for d in 0..DAYS {
            let day = start().checked_add_days(Days::new(d)).unwrap_or(start());
            clock.set(at_six(day));
            let mut events = Vec::new();
            // Yesterday's numbers, as imported this morning (day 0: the example tenant's own).
            let yesterday = day.pred_opt().unwrap_or(day);
            let levers = store.levers(tenant).await?;
            let shown = (
                world.value("cac_blended", yesterday, &levers),
                world.value("speed_to_lead_hours", yesterday, &levers),
            );
            if d > 0 {
                import_day(&store, &catalog, &template, &world, yesterday, &levers).await?;
                for w in watchdog::sweep(&store, &wd, Some(tenant)).await? {
                    let e = &w.decision.evaluation;
                    match e.verdict {
                        WatchVerdict::Abort => {
                            sum.reverted
                                .push((d, w.action_id.clone(), e.sentence.clone()));
                            events.push(format!("REVERT {}: {}", w.action_id, e.sentence));
                        }
                        WatchVerdict::Measured | WatchVerdict::Unmeasurable => {
                            let o = e.outcome.map_or("unmeasurable", |o| o.as_str()).to_owned();
                            events.push(format!(
                                "{} {}: {}",
                                o.to_uppercase(),
                                w.action_id,
                                e.sentence
                            ));
                            sum.measured.push((d, w.action_id.clone(), o));
                        }
                        WatchVerdict::Escalate => {
                            events.push(format!("ESCALATE {}: {}", w.action_id, e.sentence))
                        }
                        _ => {}
                    }
                }
                settle(&store, tenant).await?;
            }
            let reply = trigger(&client, tenant, day, &clock).await?;
            match reply {
                Ok(out) => {
                    let ids: Vec<String> =
                        out.actions.iter().map(|a| a.action_id.clone()).collect();
                    settle(&store, tenant).await?;
                    events.push(format!(
                        "cycle: {} binds on {}; {} actions applied by the stand-in: {}",
                        out.cycle_summary.binding_constraint,
                        out.cycle_summary.priority_metric,
                        ids.len(),
                        ids.join(", ")
                    ));
                    sum.proposed.extend(ids.into_iter().map(|id| (d, id)));
                }
                Err(status) if status == "skipped" => {}
                // The same refusal every day says nothing new.
                Err(status) if last_refusal.as_deref() == Some(status.as_str()) => {}
                Err(status) => {
                    events.push(format!("cycle {status} (again until it changes)"));
                    last_refusal = Some(status);
                }
            }
            let line = format!(
                "day {d:02} {}  cac {:>5.0}  speed-to-lead {:>4.1}h  {}",
                format_date(day).get(5..).unwrap_or(""),
                shown.0,
                shown.1,
                if events.is_empty() {
                    "·".to_owned()
                } else {
                    events.join("\n                                            ")
                }
            );
            log(&mut sum, line);
        }
        Ok::<(), Error>(())
    }
    .await;
    let stopped = executor.stop().await;
    client.close().await;
    shutdown.cancel();
    let _ = worker_task.await;
    outcome?;
    stopped?;
    let last = format!(
        "{DAYS} days in {:.1} s: {} reverts, {} outcomes measured; `revenue-os watch --tenant {tenant} --explain` shows every evaluation",
        started.elapsed().as_secs_f64(),
        sum.reverted.len(),
        sum.measured.len()
    );
    log(&mut sum, last);
    Ok(sum)
}

/// Yesterday's metrics (and a day of revenue events, so the window keeps some) into the
/// database, as a daily import would bring them.
async fn import_day(
    store: &Store,
    catalog: &Catalog,
    template: &KernelInput,
    world: &World,
    day: NaiveDate,
    levers: &Levers,
) -> Result<(), Error> {
    let mut doc = template.clone();
    let date = format_date(day);
    doc.metrics = world
        .base
        .keys()
        .map(|m| MetricPoint {
            metric_id: m.clone(),
            value: world.value(m, day, levers),
            date: date.clone(),
            dimension: None,
        })
        .collect();
    let shift = (day - start()).num_days() + 30;
    doc.revenue_events = template
        .revenue_events
        .iter()
        .filter(|e| {
            crate::contract::parse_date(&e.effective_date)
                .is_some_and(|d| d.checked_add_days(Days::new(shift as u64)) == Some(day))
        })
        .map(|e| {
            let mut e = e.clone();
            e.id = format!("{}-sim{shift}", e.id);
            e.effective_date = date.clone();
            e
        })
        .collect();
    doc.recent_action_results = None;
    crate::contract::validate_content(&doc, catalog)?;
    store.import(&doc, catalog).await?;
    Ok(())
}

/// One trigger for `day` with its 30-day window; the completed output, or the status.
async fn trigger(
    client: &TriggerClient,
    tenant: Uuid,
    day: NaiveDate,
    clock: &Clock,
) -> Result<Result<KernelOutput, String>, Error> {
    let end = day.pred_opt().unwrap_or(day);
    let window =
        crate::contract::DateRange::new(end.checked_sub_days(Days::new(29)).unwrap_or(end), end)
            .map(|w| w.to_window());
    let msg = TriggerMessage {
        tenant_id: tenant.to_string(),
        trigger: Trigger {
            kind: TriggerType::Scheduled,
            source: "simulation".into(),
            triggered_at: clock
                .now()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
        analysis_window: window,
    };
    let id = format!("sim-{tenant}-{day}");
    let reply = client
        .send_and_wait(&msg, &id, Duration::from_secs(30))
        .await?;
    if reply.status == "completed" {
        let out = serde_json::from_value(reply.body)
            .map_err(|e| Error::Run(format!("unexpected reply: {e}")))?;
        Ok(Ok(out))
    } else if reply.status == "skipped" {
        Ok(Err(reply.status))
    } else {
        let why = reply.body["message"].as_str().unwrap_or("").to_owned();
        Ok(Err(format!(
            "{}: {} {why}",
            reply.status,
            reply.body["code"].as_str().unwrap_or("?")
        )))
    }
}

/// Waits until the tenant's outbox is published and the stand-in has reported on everything
/// sent to it (no action left between sent and applied, no revert in flight).
async fn settle(store: &Store, tenant: Uuid) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if store.in_flight(tenant).await? == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Run(
                "the stand-in executor did not settle within 30 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
