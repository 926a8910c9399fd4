//! The morning benchmark's tenants, as the files a warehouse export would hand `ingest`: the
//! example tenant (tests/fixtures/valid/demand_bound.json) moved to end yesterday, its metric
//! values scaled per tenant so that decisions differ, and cut into the history (seeded) and
//! yesterday (the morning's load). Files are produced as they are read: nothing is held.

use crate::contract::KernelInput;
use crate::ingest::Kind;
use chrono::{Days, NaiveDate};
use serde::Serialize;
use std::io::Read;
use std::sync::Arc;

/// Which days of the tenant a file carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Every day before yesterday, back to `days` days.
    History,
    /// Yesterday, and today's snapshots of campaigns and opportunities.
    Morning,
}

/// The example tenant, placed in time.
#[derive(Debug, Clone)]
pub struct Dataset {
    template: Arc<KernelInput>,
    /// The template's last day, which becomes `yesterday`.
    end: NaiveDate,
    pub yesterday: NaiveDate,
    pub days: u32,
    pub tenants: usize,
}

fn date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

impl Dataset {
    pub fn new(
        template: KernelInput,
        tenants: usize,
        days: u32,
        yesterday: NaiveDate,
    ) -> Option<Self> {
        let end = date(&template.analysis_window.end_date)?;
        Some(Self {
            template: Arc::new(template),
            end,
            yesterday,
            days: days.max(2),
            tenants,
        })
    }

    /// Days from the template's last day to `d` (0 = its last day).
    fn age(&self, d: &str) -> Option<u64> {
        let d = date(d)?;
        u64::try_from((self.end - d).num_days()).ok()
    }

    /// The template's date `d` moved by as many days as yesterday is after its last day.
    fn moved(&self, d: &str) -> String {
        let shift = (self.yesterday - self.end).num_days();
        date(d)
            .and_then(|x| {
                x.checked_add_signed(chrono::Duration::days(shift))
                    .map(|m| m.to_string())
            })
            .unwrap_or_else(|| d.to_owned())
    }

    fn days_ago(&self, n: u64) -> String {
        self.yesterday
            .checked_sub_days(Days::new(n))
            .unwrap_or(self.yesterday)
            .to_string()
    }

    /// Metric rows per tenant in `part`.
    #[cfg(test)]
    fn metric_rows(&self, part: Part) -> usize {
        let per_day = self.per_day();
        match part {
            Part::History => per_day * (self.days as usize - 1),
            Part::Morning => per_day,
        }
    }

    #[cfg(test)]
    fn per_day(&self) -> usize {
        self.template
            .metrics
            .iter()
            .filter(|m| self.age(&m.date) == Some(0))
            .count()
    }

    /// The file of one kind and part, for every tenant: CSV for metrics, NDJSON otherwise.
    pub fn file(&self, kind: Kind, part: Part) -> PerTenant {
        let header = match kind {
            Kind::Metrics => b"tenant_id,metric_id,date,value\n".to_vec(),
            _ => Vec::new(),
        };
        let me = self.clone();
        PerTenant::new(
            self.tenants,
            header,
            Box::new(move |i, out| me.write(kind, part, i, out)),
        )
    }

    fn write(&self, kind: Kind, part: Part, i: usize, out: &mut Vec<u8>) {
        use std::io::Write;
        let tenant = super::tenant_id(i + 1);
        let t = &*self.template;
        match kind {
            Kind::Metrics => {
                let scale = 0.7 + (i % 7) as f64 * 0.1;
                // History goes back `days` days, repeating the template's days beyond its own.
                let span = self.template_days();
                let ages: Vec<u64> = match part {
                    Part::Morning => vec![0],
                    Part::History => (1..u64::from(self.days)).collect(),
                };
                for age in ages {
                    let from = if span == 0 { 0 } else { age % span };
                    let day = self.days_ago(age);
                    for m in t.metrics.iter().filter(|m| self.age(&m.date) == Some(from)) {
                        let _ = writeln!(out, "{tenant},{},{day},{}", m.metric_id, m.value * scale);
                    }
                }
            }
            Kind::RevenueEvents => {
                for e in &t.revenue_events {
                    let age = self.age(&e.effective_date);
                    let mut e = e.clone();
                    match part {
                        Part::History => e.effective_date = self.moved(&e.effective_date),
                        // Yesterday's events: the template's last two days again, new ids.
                        Part::Morning if matches!(age, Some(0..=1)) => {
                            e.id = format!("{}.y", e.id);
                            e.effective_date = self.yesterday.to_string();
                        }
                        Part::Morning => continue,
                    }
                    line(out, &tenant, &e);
                }
            }
            Kind::Campaigns => {
                for c in &t.campaigns {
                    let mut c = c.clone();
                    c.start_date = self.moved(&c.start_date);
                    c.end_date = c.end_date.as_deref().map(|d| self.moved(d));
                    if part == Part::Morning && c.status == "running" {
                        // A day's spend, as the morning's snapshot shows it.
                        c.budget_spent = (c.budget_spent * 1.01).min(c.budget_total);
                    }
                    line(out, &tenant, &c);
                }
            }
            Kind::Opportunities => {
                for o in &t.opportunities {
                    let mut o = o.clone();
                    o.expected_close_date = self.moved(&o.expected_close_date);
                    line(out, &tenant, &o);
                }
            }
            Kind::Tenants => {
                let mut settings = serde_json::json!({
                    "targets": t.targets, "guardrails": t.guardrails,
                });
                if let Some(c) = &t.config {
                    settings["config"] = serde_json::json!(c);
                }
                line(out, &tenant, &settings);
            }
            Kind::ActionResults => {}
        }
    }

    /// Days the template covers.
    fn template_days(&self) -> u64 {
        self.template
            .metrics
            .iter()
            .filter_map(|m| self.age(&m.date))
            .max()
            .map_or(0, |a| a + 1)
    }
}

/// One NDJSON line: `tenant_id` and the object's own fields.
fn line(out: &mut Vec<u8>, tenant: &str, value: &impl Serialize) {
    let Ok(body) = serde_json::to_vec(value) else {
        return;
    };
    out.extend_from_slice(b"{\"tenant_id\":\"");
    out.extend_from_slice(tenant.as_bytes());
    out.extend_from_slice(b"\"");
    if body.len() > 2 {
        out.push(b',');
        out.extend_from_slice(&body[1..]);
    } else {
        out.push(b'}');
    }
    out.push(b'\n');
}

type Writer = Box<dyn FnMut(usize, &mut Vec<u8>) + Send>;

/// A file made tenant by tenant as it is read.
pub struct PerTenant {
    tenants: usize,
    next: usize,
    write: Writer,
    pending: Vec<u8>,
    at: usize,
}

impl PerTenant {
    fn new(tenants: usize, header: Vec<u8>, write: Writer) -> Self {
        Self {
            tenants,
            next: 0,
            write,
            pending: header,
            at: 0,
        }
    }
}

impl Read for PerTenant {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.pending.len() && self.next < self.tenants {
            self.pending.clear();
            self.at = 0;
            (self.write)(self.next, &mut self.pending);
            self.next += 1;
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(days: u32) -> Dataset {
        let t = crate::contract::decode_input(super::super::TENANT_TEMPLATE.as_bytes()).unwrap();
        let y = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        Dataset::new(t, 3, days, y).unwrap()
    }

    fn read(mut r: PerTenant) -> String {
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn history_and_morning_split_the_days() {
        let d = dataset(30);
        let hist = read(d.file(Kind::Metrics, Part::History));
        let morning = read(d.file(Kind::Metrics, Part::Morning));
        assert_eq!(hist.lines().count(), 1 + 3 * d.metric_rows(Part::History));
        assert_eq!(
            morning.lines().count(),
            1 + 3 * d.metric_rows(Part::Morning)
        );
        assert!(morning.lines().skip(1).all(|l| l.contains(",2026-12-03,")));
        assert!(!hist.contains(",2026-12-03,"));
        assert!(hist.contains(",2026-11-04,"), "29 days before yesterday");
        assert!(!hist.contains(",2026-11-03,"));
    }

    #[test]
    fn a_longer_history_repeats_the_template() {
        let d = dataset(60);
        let hist = read(d.file(Kind::Metrics, Part::History));
        assert_eq!(hist.lines().count(), 1 + 3 * d.metric_rows(Part::History));
        assert!(hist.contains(",2026-10-05,"));
    }

    #[test]
    fn ndjson_lines_carry_the_tenant() {
        let d = dataset(30);
        for kind in [Kind::Campaigns, Kind::Opportunities, Kind::Tenants] {
            let s = read(d.file(kind, Part::History));
            for l in s.lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert!(
                    v["tenant_id"]
                        .as_str()
                        .unwrap()
                        .starts_with("00000000-0000-4000")
                );
            }
        }
        let events = read(d.file(Kind::RevenueEvents, Part::History));
        assert_eq!(events.lines().count(), 3 * 60);
        let morning = read(d.file(Kind::RevenueEvents, Part::Morning));
        assert!(morning.lines().count() >= 3, "{morning}");
        assert!(morning.lines().all(|l| l.contains("\"2026-12-03\"")));
    }
}
