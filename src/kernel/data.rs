//! One pass over the input builds an index the rules read: metric series by id, per-campaign
//! and per-channel spend and attributed revenue, opportunity aggregates. Everything keyed is in
//! a BTreeMap or a sorted Vec so no hash order can reach the output.

use super::KernelParams;
pub use super::days::date_string;
use super::days::{Days, day};
use super::rhythm::rhythm;
use super::stats;
use crate::contract::{Checked, KernelInput, KnownLever, Levers, RiskTolerance, Subsystem};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A word-at-a-time multiplicative hash (rustc's Fx hash): ids are short,
/// trusted-after-validation strings and the map is only ever looked up, never iterated, so a
/// fast non-keyed hash is safe here; eight bytes a step, several times quicker than SipHash.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl IdHasher {
    const K: u64 = 0xf135_7aea_2e62_a9c5;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // The product's best-mixed bits are its high ones; the table indexes by the low ones.
        self.0.rotate_left(26)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

pub type IdMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Budget step, relative minimum detectable effect and default treatment share per risk level.
#[derive(Debug, Clone, Copy)]
pub struct Risk {
    pub level: RiskTolerance,
    pub step: f64,
    pub mde: f64,
    pub treatment_pct: f64,
}

impl Risk {
    pub fn of(level: RiskTolerance) -> Self {
        let (step, mde, treatment_pct) = match level {
            RiskTolerance::Low => (0.10, 0.30, 10.0),
            RiskTolerance::Medium => (0.20, 0.20, 20.0),
            RiskTolerance::High => (0.30, 0.10, 30.0),
        };
        Self {
            level,
            step,
            mde,
            treatment_pct,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CampaignStats<'a> {
    pub id: &'a str,
    /// Its status says running (or active) and the window end lies within its dates.
    pub running: bool,
    /// Its status alone says running.
    pub status_running: bool,
    /// Its end date, when that is before the window end.
    pub ended: Option<i32>,
    pub spent: f64,
    pub total: f64,
    /// `budget_spent / days elapsed` (start to the window end, or the end date if earlier).
    pub daily: f64,
    /// Daily estimate times the days the campaign ran inside the window.
    pub window_spend: f64,
    /// Attributed acquisition revenue inside the window, net of refunds and churn (negative
    /// amounts), without expansion or renewal revenue (`is_acquisition`).
    pub revenue: f64,
    /// Attributed revenue counting positive amounts of every type (what a gross view shows).
    pub gross: f64,
    pub events: u32,
    /// Channel carrying most of its attributed revenue (ties: smallest name).
    pub channel: Option<&'a str>,
    /// Attributed revenue per channel slot (index into the build's channel names).
    channels: Vec<(usize, f64)>,
}

impl CampaignStats<'_> {
    pub fn roas(&self) -> Option<f64> {
        (self.window_spend > 0.0).then(|| self.revenue / self.window_spend)
    }
    pub fn budget_left(&self) -> f64 {
        self.total - self.spent
    }
    /// Whether its net acquisition revenue differs from the gross (refunds, churn, expansion).
    pub fn netted(&self) -> bool {
        (self.gross - self.revenue).abs() > 0.005
    }
}

/// Revenue from existing customers is not a campaign's acquisition return.
pub const NOT_ACQUISITION: [&str; 5] = ["expansion", "renewal", "upsell", "cross_sell", "upgrade"];

/// Whether an event of this `type` counts toward a campaign's acquisition return.
pub fn is_acquisition(kind: &str) -> bool {
    // No allocation: this runs once per revenue event.
    !NOT_ACQUISITION.iter().any(|t| t.eq_ignore_ascii_case(kind))
}

/// The CAC of one channel (`cac_blended` or `cac_by_channel` with a `channel` dimension): its
/// newest value in the window.
#[derive(Debug, Clone, Copy)]
pub struct ChannelCac {
    pub day: i32,
    pub value: f64,
}

#[derive(Debug, Clone, Default)]
pub struct ChannelStats {
    pub revenue: f64,
    pub window_spend: f64,
    /// Daily estimate summed over the running campaigns mapped to the channel.
    pub daily: f64,
    /// Budget left (`budget_total − budget_spent`) summed over those running campaigns.
    pub left: f64,
    pub campaigns: u32,
}

#[derive(Debug, Clone, Default)]
pub struct OppStats {
    pub count: usize,
    pub amount: f64,
    /// Late stage: win_probability at or above `LATE_STAGE_MIN_PROBABILITY`.
    pub late_count: usize,
    pub late_mean_probability: f64,
    pub late_closing_30d: usize,
    pub closing_30d: usize,
    pub mean_probability: f64,
    /// Amount past its expected close date (before the window end).
    pub overdue_amount: f64,
    /// The largest not-yet-overdue opportunity: (id, amount, win probability).
    pub largest: Option<(String, f64, f64)>,
}

/// One opportunity holding more than this share of the open amount is a whale (principle 5).
pub const WHALE_SHARE: f64 = 0.5;

impl OppStats {
    /// The share of the open amount that counts as healthy coverage (principle 5): overdue
    /// amount is left out, and a whale counts at its win probability relative to `rate` (the
    /// tenant's win rate), at most fully. 1 without opportunities.
    pub fn quality(&self, rate: f64) -> PipelineQuality {
        let mut q = PipelineQuality {
            share: 1.0,
            overdue_share: 0.0,
            whale: None,
        };
        if self.amount <= 0.0 {
            return q;
        }
        q.overdue_share = (self.overdue_amount / self.amount).clamp(0.0, 1.0);
        let mut counted = self.amount - self.overdue_amount;
        if let Some((id, a, p)) = &self.largest
            && *a / self.amount > WHALE_SHARE
        {
            let weight = if rate > 0.0 { (p / rate).min(1.0) } else { 1.0 };
            counted -= a * (1.0 - weight);
            q.whale = Some((id.clone(), a / self.amount, *p, weight));
        }
        q.share = (counted / self.amount).clamp(0.0, 1.0);
        q
    }
}

/// What `OppStats::quality` found.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineQuality {
    /// Share of pipeline counted as coverage.
    pub share: f64,
    pub overdue_share: f64,
    /// (id, share of the open amount, win probability, weight it counts at).
    pub whale: Option<(String, f64, f64, f64)>,
}

pub const LATE_STAGE_MIN_PROBABILITY: f64 = 0.4;

/// A newest point that breaks a stable history (`stats::glitch`).
#[derive(Debug, Clone)]
pub struct Glitch<'a> {
    pub metric: &'a str,
    pub day: i32,
    pub value: f64,
    /// The recent median it is compared with.
    pub typical: f64,
    /// Days of history before it in the window.
    pub history: usize,
}

/// One cut of `Index::cap_cuts`: `new` is the daily budget, or None for a pause.
#[derive(Debug, Clone)]
pub struct CapCut<'x, 'a> {
    pub campaign: &'x CampaignStats<'a>,
    pub current: f64,
    pub new: Option<f64>,
}

/// One metric's undimensioned points, and their trend once a rule asks for it.
#[derive(Debug, Default)]
pub struct Series {
    /// Sorted by day, one per day (the last in input order).
    pub points: Vec<(i32, f64)>,
    /// Robust trend of the points inside the window (3 points or more), computed the first
    /// time a rule asks for it: most cycles read a handful of a tenant's series' trends, and a
    /// trend is the costliest thing in the index (a third of `decide` when all were built).
    trend: std::cell::OnceCell<Option<stats::Trend>>,
}

/// No known lever state (for the checks that read the input alone).
pub static NO_LEVERS: Levers = Levers { levers: Vec::new() };

pub struct Index<'a> {
    pub input: &'a KernelInput,
    /// What executors reported setting (`contract::Levers`), beside the input.
    pub levers: &'a Levers,
    pub params: &'a KernelParams,
    pub start: i32,
    pub end: i32,
    pub window_days: i32,
    /// Undimensioned points per metric: an entry for every metric id of the input, empty when
    /// all its points have a dimension.
    pub series: BTreeMap<&'a str, Series>,
    /// Same metric and day given twice undimensioned with different values: (metric, day, a, b).
    pub undimensioned_conflicts: Vec<(&'a str, i32, f64, f64)>,
    /// Newest points set aside as suspected sync glitches.
    pub glitches: Vec<Glitch<'a>>,
    /// Newest points out of line with the series that their weekday, month-end position or
    /// the tenant's own events explain (principle 1): kept, with why, for the trace.
    pub rhythms: Vec<String>,
    /// Every metric id that appears in the input, with or without a dimension.
    pub reported: BTreeSet<&'a str>,
    /// The input's metric points as runs of one id (indices into `input.metrics`), in input
    /// order: the checks that read every point look each id up once per run.
    pub metric_runs: Vec<(&'a str, std::ops::Range<usize>)>,
    pub campaigns: Vec<CampaignStats<'a>>,
    pub campaign_by_id: IdMap<&'a str, usize>,
    pub channels: BTreeMap<&'a str, ChannelStats>,
    /// CAC per channel from dimensioned points, newest in the window (issue 24, principle 2).
    pub channel_cac: BTreeMap<&'a str, ChannelCac>,
    pub revenue_total: f64,
    pub revenue_unattributed: f64,
    pub events_in_window: usize,
    pub opps: OppStats,
    pub risk: Risk,
    /// Sum of the daily estimates of running campaigns.
    pub daily_total: f64,
    /// `max_daily_spend - daily_total`, floored at 0; None without a cap.
    pub headroom: Option<f64>,
    pub min_sample_size: u64,
    pub default_window: u32,
}

impl<'a> Index<'a> {
    pub fn build(checked: &'a Checked, levers: &'a Levers, params: &'a KernelParams) -> Self {
        let input = checked.input();
        let start = day(checked.window_start());
        let end = day(checked.window_end());
        let window_days = end - start + 1;

        // Inputs usually list a metric's points together, by date: each run of one id collects
        // into its own vector (sized like the run before it), filed by id once all are read.
        let mut runs: Vec<(&str, Vec<(i32, f64)>)> = Vec::with_capacity(32);
        let mut metric_runs: Vec<(&str, std::ops::Range<usize>)> = Vec::with_capacity(32);
        let mut days = Days::default();
        let mut channel_cac: BTreeMap<&str, ChannelCac> = BTreeMap::new();
        for (i, (m, date)) in checked.metrics().enumerate() {
            let id = m.metric_id.as_str();
            // The dimension first: most points have none, and then no id is compared.
            if let Some(ch) = m.dimension.as_ref().and_then(|d| d.get("channel"))
                && matches!(id, "cac_blended" | "cac_by_channel")
            {
                let d = days.of(date);
                let newer = channel_cac.get(ch.as_str()).is_none_or(|c| d >= c.day);
                if d >= start && d <= end && newer {
                    channel_cac.insert(
                        ch.as_str(),
                        ChannelCac {
                            day: d,
                            value: m.value,
                        },
                    );
                }
            }
            match metric_runs.last_mut() {
                Some((run_id, r)) if *run_id == id => r.end = i + 1,
                _ => {
                    metric_runs.push((id, i..i + 1));
                    let size = runs.last().map_or(32, |r| r.1.len());
                    runs.push((id, Vec::with_capacity(size)));
                }
            }
            if m.dimension.as_ref().is_some_and(|d| !d.is_empty()) {
                continue;
            }
            if let Some(run) = runs.last_mut() {
                run.1.push((days.of(date), m.value));
            }
        }
        // Every run files an entry, even one of dimensioned points only.
        let mut series: BTreeMap<&str, Series> = BTreeMap::new();
        for (id, run) in runs {
            match series.entry(id) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(Series {
                        points: run,
                        trend: Default::default(),
                    });
                }
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    e.get_mut().points.extend(run)
                }
            }
        }
        // The ids of the runs, already sorted and unique as the series' keys.
        let reported: BTreeSet<&str> = series.keys().copied().collect();
        let mut undimensioned_conflicts = Vec::new();
        for (id, s) in series.iter_mut() {
            let v = &mut s.points;
            // Already one point per day in date order (the usual input): nothing to sort or
            // merge.
            if v.windows(2).all(|w| w[0].0 < w[1].0) {
                continue;
            }
            // Stable sort keeps input order within a day, so "last wins" is well defined.
            v.sort_by_key(|p| p.0);
            let mut out: Vec<(i32, f64)> = Vec::with_capacity(v.len());
            for &(d, x) in v.iter() {
                match out.last_mut() {
                    Some(last) if last.0 == d => {
                        if last.1 != x {
                            undimensioned_conflicts.push((*id, d, last.1, x));
                        }
                        last.1 = x;
                    }
                    _ => out.push((d, x)),
                }
            }
            *v = out;
        }
        // A suspected sync glitch on the newest window point is set aside: the rules read the
        // series without it, and data health reports it.
        let mut glitches = Vec::new();
        let mut rhythms = Vec::new();
        for (id, s) in series.iter_mut() {
            let v = &mut s.points;
            let hi = v.partition_point(|p| p.0 <= end);
            let lo = v.partition_point(|p| p.0 < start);
            if hi > lo
                && let Some(typical) = stats::glitch(&v[lo..hi])
            {
                // Principle 1: out of line with the series, but in line with its own weekday
                // or month-end position, or the tenant's own bookings add up to it: a rhythm.
                if let Some(r) = rhythm(id, &v[..hi], typical, checked) {
                    rhythms.push(r);
                    continue;
                }
                let (d, x) = v.remove(hi - 1);
                glitches.push(Glitch {
                    metric: id,
                    day: d,
                    value: x,
                    typical,
                    history: hi - 1 - lo,
                });
            }
        }

        let mut campaigns: Vec<CampaignStats> = Vec::with_capacity(input.campaigns.len());
        let mut campaign_by_id =
            IdMap::with_capacity_and_hasher(input.campaigns.len(), Default::default());
        for (c, cstart, cend) in checked.campaigns() {
            let cstart = day(cstart);
            let ended = cend.map(day).filter(|&e| e < end);
            let cend = cend.map_or(end, |e| day(e).min(end));
            let elapsed = (cend - cstart + 1).max(1);
            let daily = c.budget_spent / f64::from(elapsed);
            let overlap = (cend.min(end) - cstart.max(start) + 1).max(0);
            let status = c.status.to_ascii_lowercase();
            campaign_by_id
                .entry(c.id.as_str())
                .or_insert(campaigns.len());
            campaigns.push(CampaignStats {
                id: &c.id,
                // Running by its status and its dates: the window end lies within them.
                running: (status == "running" || status == "active")
                    && cstart <= end
                    && ended.is_none(),
                status_running: status == "running" || status == "active",
                ended,
                spent: c.budget_spent,
                total: c.budget_total,
                daily,
                window_spend: daily * f64::from(overlap),
                revenue: 0.0,
                gross: 0.0,
                events: 0,
                channel: None,
                channels: Vec::new(),
            });
        }

        let mut channels: BTreeMap<&str, ChannelStats> = BTreeMap::new();
        let (mut revenue_total, mut revenue_unattributed, mut events_in_window) = (0.0, 0.0, 0);
        let mut last_channel: Option<(&str, usize)> = None;
        let mut channel_names: Vec<&str> = Vec::new();
        let mut channel_revenue: Vec<f64> = Vec::new();
        for (e, date) in checked.revenue_events() {
            let d = days.of(date);
            if d < start || d > end {
                continue;
            }
            events_in_window += 1;
            let amount = e.amount.max(0.0);
            // A campaign's return: acquisition revenue, net of refunds and churn.
            let net = if is_acquisition(&e.kind) {
                e.amount
            } else {
                0.0
            };
            revenue_total += amount;
            let camp = e
                .attributed_campaign_id
                .as_deref()
                .filter(|s| !s.is_empty());
            let chan = e.attributed_channel.as_deref().filter(|s| !s.is_empty());
            if camp.is_none() && chan.is_none() {
                revenue_unattributed += amount;
            }
            let mut slot = None;
            if let Some(ch) = chan {
                let i = match last_channel {
                    Some((n, i)) if n == ch => i,
                    _ => {
                        let i = match channel_names.iter().position(|n| *n == ch) {
                            Some(i) => i,
                            None => {
                                channel_names.push(ch);
                                channel_revenue.push(0.0);
                                channel_names.len() - 1
                            }
                        };
                        last_channel = Some((ch, i));
                        i
                    }
                };
                channel_revenue[i] += net;
                slot = Some(i);
            }
            if let Some(&i) = camp.and_then(|c| campaign_by_id.get(c)) {
                let s = &mut campaigns[i];
                s.revenue += net;
                s.gross += amount;
                s.events += 1;
                // The campaign's channel is the one carrying most of its gross revenue.
                if let Some(i) = slot {
                    match s.channels.iter_mut().find(|(n, _)| *n == i) {
                        Some(c) => c.1 += amount,
                        None => s.channels.push((i, amount)),
                    }
                }
            }
        }
        for (n, r) in channel_names.iter().zip(&channel_revenue) {
            channels.entry(n).or_default().revenue += r;
        }
        let mut daily_total = 0.0;
        for s in &mut campaigns {
            s.channel = s
                .channels
                .iter()
                .map(|&(i, r)| (channel_names[i], r))
                .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(a.0)))
                .map(|c| c.0);
            if s.running {
                daily_total += s.daily;
            }
            if let Some(ch) = s.channel {
                let c = channels.entry(ch).or_default();
                c.window_spend += s.window_spend;
                c.campaigns += 1;
                if s.running {
                    c.daily += s.daily;
                    c.left += s.budget_left().max(0.0);
                }
            }
        }

        let mut opps = OppStats::default();
        let horizon = end + 30;
        let (mut p_sum, mut late_p_sum) = (0.0, 0.0);
        for (o, close) in checked.opportunities() {
            opps.count += 1;
            opps.amount += o.amount;
            p_sum += o.win_probability;
            let close = days.of(close);
            if close < end {
                opps.overdue_amount += o.amount;
            } else if opps
                .largest
                .as_ref()
                .is_none_or(|l| o.amount > l.1 || (o.amount == l.1 && o.id.as_str() < l.0.as_str()))
            {
                opps.largest = Some((o.id.clone(), o.amount, o.win_probability));
            }
            let closing = (end + 1..=horizon).contains(&close);
            if closing {
                opps.closing_30d += 1;
            }
            if o.win_probability >= LATE_STAGE_MIN_PROBABILITY {
                opps.late_count += 1;
                late_p_sum += o.win_probability;
                if closing {
                    opps.late_closing_30d += 1;
                }
            }
        }
        if opps.count > 0 {
            opps.mean_probability = p_sum / opps.count as f64;
        }
        if opps.late_count > 0 {
            opps.late_mean_probability = late_p_sum / opps.late_count as f64;
        }

        let cfg = input.config.clone().unwrap_or_default();
        let risk = Risk::of(cfg.risk_tolerance.unwrap_or(RiskTolerance::Medium));
        let headroom = input
            .guardrails
            .max_daily_spend
            .map(|cap| (cap - daily_total).max(0.0));
        Index {
            input,
            levers,
            glitches,
            rhythms,
            params,
            start,
            end,
            window_days,
            series,
            undimensioned_conflicts,
            reported,
            metric_runs,
            campaigns,
            campaign_by_id,
            channels,
            channel_cac,
            revenue_total,
            revenue_unattributed,
            events_in_window,
            opps,
            risk,
            daily_total,
            headroom,
            min_sample_size: cfg.min_sample_size.map_or(0, |n| n.max(0.0) as u64),
            default_window: cfg
                .default_observation_window_days
                .map_or(params.default_observation_window_days, |n| {
                    n.clamp(1.0, 365.0) as u32
                }),
        }
    }

    pub fn latest(&self, metric: &str) -> Option<(i32, f64)> {
        self.series
            .get(metric)
            .and_then(|s| s.points.last().copied())
    }

    pub fn latest_value(&self, metric: &str) -> Option<f64> {
        self.latest(metric).map(|p| p.1)
    }

    /// Points inside the analysis window.
    pub fn window_points(&self, metric: &str) -> &[(i32, f64)] {
        self.series
            .get(metric)
            .map_or(&[], |s| self.in_window(&s.points))
    }

    fn in_window<'s>(&self, v: &'s [(i32, f64)]) -> &'s [(i32, f64)] {
        let lo = v.partition_point(|p| p.0 < self.start);
        let hi = v.partition_point(|p| p.0 <= self.end);
        &v[lo..hi]
    }

    /// Mean daily value over the window, for flow metrics such as `leads_created`.
    pub fn daily_mean(&self, metric: &str) -> Option<f64> {
        let p = self.window_points(metric);
        (!p.is_empty()).then(|| p.iter().map(|x| x.1).sum::<f64>() / p.len() as f64)
    }

    /// Relative change across the window of the robust trend (`stats::trend`), 0 when it is
    /// not significant against the series' noise. None with fewer than 3 points.
    pub fn trend(&self, metric: &str) -> Option<f64> {
        self.trend_stats(metric)
            .map(|t| if t.significant { t.rel } else { 0.0 })
    }

    /// The robust trend of the window's points, computed once per metric.
    pub fn trend_stats(&self, metric: &str) -> Option<&stats::Trend> {
        let s = self.series.get(metric)?;
        s.trend
            .get_or_init(|| stats::trend(self.in_window(&s.points)))
            .as_ref()
    }

    /// The known value of a lever, as its executor last reported it.
    pub fn known(&self, s: Subsystem, entity: Option<&str>, field: &str) -> Option<&'a KnownLever> {
        self.levers.get(s, entity, field)
    }

    pub fn campaign(&self, id: &str) -> Option<&CampaignStats<'a>> {
        self.campaign_by_id.get(id).map(|&i| &self.campaigns[i])
    }

    /// Running spend above `max_daily_spend`: the cuts that bring it back under the cap, worst
    /// return first (no attributed revenue counts as 0x; ties: larger spend, then id). Each
    /// campaign is paused when it returns less than its spend, or when a step cut would leave
    /// it above the cap (or when nothing less is needed), otherwise cut by the risk step or by
    /// what is left to cut if less; a blocked pause becomes the step cut. Empty under the cap.
    pub fn cap_cuts(&self) -> Vec<CapCut<'_, 'a>> {
        let Some(cap) = self.input.guardrails.max_daily_spend else {
            return Vec::new();
        };
        let mut excess = self.daily_total - cap;
        if excess < 0.01 {
            return Vec::new();
        }
        let mut order: Vec<&CampaignStats> = self
            .campaigns
            .iter()
            .filter(|c| c.running && floor_cents(c.daily) > 0.0)
            .collect();
        let roas = |c: &CampaignStats| c.roas().unwrap_or(0.0);
        order.sort_by(|a, b| {
            roas(a)
                .total_cmp(&roas(b))
                .then_with(|| b.daily.total_cmp(&a.daily))
                .then_with(|| a.id.cmp(b.id))
        });
        let no_pause = self
            .input
            .guardrails
            .is_blocked(crate::contract::ActionType::Pause);
        let step = self.risk.step;
        let mut out = Vec::new();
        for c in order {
            if excess < 0.01 {
                break;
            }
            let current = floor_cents(c.daily);
            let stepped = ceil_cents(current * (1.0 - step));
            // Down to what is left to cut (floored, so the total ends under the cap), but by no
            // more than the risk step.
            let cut = floor_cents(current - excess).max(stepped);
            let pause = !no_pause && (roas(c) < 1.0 || cut > cap || excess >= current);
            let new = if pause {
                None
            } else if no_pause {
                Some(stepped)
            } else {
                Some(cut)
            };
            excess -= current - new.unwrap_or(0.0);
            out.push(CapCut {
                campaign: c,
                current,
                new,
            });
        }
        out
    }

    /// The channel's CAC when it is over `cac_max` (principle 2): no spend is added there.
    pub fn channel_over_cac(&self, channel: &str) -> Option<(f64, f64)> {
        let max = self.input.targets.cac_max?;
        let c = self.channel_cac.get(channel)?;
        (c.value > max).then_some((c.value, max))
    }

    /// A campaign's channel CAC over `cac_max`, if its channel has one.
    pub fn campaign_over_cac(&self, s: &CampaignStats<'a>) -> Option<(&'a str, f64, f64)> {
        let ch = s.channel?;
        self.channel_over_cac(ch).map(|(v, m)| (ch, v, m))
    }

    /// Current daily spend of a campaign or channel entity (running campaigns only).
    pub fn entity_daily(&self, id: &str) -> Option<f64> {
        if let Some(c) = self.campaign(id) {
            return Some(c.daily);
        }
        self.channels.get(id).map(|c| c.daily)
    }
}

/// Rounds down to cents, so a derived spend never exceeds the bound it was derived from.
pub fn floor_cents(x: f64) -> f64 {
    (x * 100.0).floor() / 100.0
}

/// Rounds up to cents, so a derived cut never exceeds the step it was derived from.
pub fn ceil_cents(x: f64) -> f64 {
    (x * 100.0).ceil() / 100.0
}

pub fn round_to(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::test_support::*;

    fn glitched(t: Tenant) -> (Vec<String>, Vec<String>) {
        let c = t.checked();
        let ix = index(&c);
        (
            ix.glitches.iter().map(|g| g.metric.to_owned()).collect(),
            ix.rhythms.clone(),
        )
    }

    #[test]
    fn p1_a_value_in_line_with_its_weekday_is_a_rhythm_not_a_glitch() {
        // Nothing booked on the window end's weekday, every week.
        let weekly = |i: usize| {
            if (29 - i).is_multiple_of(7) {
                0.0
            } else {
                10_000.0
            }
        };
        let (g, r) = glitched(Tenant::new().series("bookings_new", weekly));
        assert!(g.is_empty(), "{g:?}");
        assert!(
            r[0].contains("in line with the median 0 of the 4 earlier"),
            "{r:?}"
        );
        // The same zero on the last day only: a glitch.
        let once = |i: usize| if i == 29 { 0.0 } else { 10_000.0 };
        let (g, r) = glitched(Tenant::new().series("bookings_new", once));
        assert_eq!(g, ["bookings_new"]);
        assert!(r.is_empty());
    }

    #[test]
    fn p1_bookings_the_tenants_own_events_add_up_to_are_real() {
        let spike = |i: usize| if i == 29 { 30_000.0 } else { 10_000.0 };
        let mut t = Tenant::new().series("bookings_new", spike);
        let (g, _) = glitched(Tenant::new().series("bookings_new", spike));
        assert_eq!(g, ["bookings_new"]);
        for _ in 0..3 {
            t = t.revenue(10_000.0, None, Some("email"));
        }
        for e in &mut t.0.revenue_events {
            e.kind = "new_booking".into();
        }
        let (g, r) = glitched(t);
        assert!(
            g.is_empty() && r[0].contains("add up to 30,000"),
            "{g:?} {r:?}"
        );
    }

    #[test]
    fn p2_a_channels_own_cac_over_the_maximum_is_seen_through_the_blend() {
        let mut t = Tenant::new()
            .campaign("c1", "running", 30_000.0, 3_000.0)
            .revenue(9_000.0, Some("c1"), Some("paid_social"));
        for (i, v) in [(28, 6_000.0), (29, 7_000.0)] {
            t.0.metrics.push(crate::contract::MetricPoint {
                metric_id: "cac_by_channel".into(),
                value: v,
                date: day_of(i),
                dimension: Some([("channel".to_owned(), "paid_social".to_owned())].into()),
            });
        }
        let c = t.checked();
        let ix = index(&c);
        assert_eq!(ix.channel_over_cac("paid_social"), Some((7_000.0, 3_500.0)));
        assert_eq!(ix.channel_over_cac("email"), None);
        assert_eq!(
            ix.campaign_over_cac(ix.campaign("c1").unwrap())
                .map(|x| x.0),
            Some("paid_social")
        );
    }

    fn day_of(i: usize) -> String {
        crate::kernel::test_support::day(i as i64)
    }

    #[test]
    fn p3_campaign_revenue_is_net_new_business() {
        let mut t = Tenant::new()
            .campaign("c1", "running", 30_000.0, 3_000.0)
            .revenue(10_000.0, Some("c1"), None)
            .revenue(-4_000.0, Some("c1"), None)
            .revenue(50_000.0, Some("c1"), None);
        t.0.revenue_events[1].kind = "refund".into();
        t.0.revenue_events[2].kind = "expansion".into();
        let c = t.checked();
        let ix = index(&c);
        let s = ix.campaign("c1").unwrap();
        assert_eq!((s.revenue, s.gross), (6_000.0, 60_000.0));
        assert!(s.netted());
        assert!(!is_acquisition("Renewal") && is_acquisition("new_booking"));
    }

    #[test]
    fn p5_overdue_pipeline_is_left_out_and_a_whale_counts_at_its_odds() {
        let mut t = Tenant::new();
        for _ in 0..4 {
            t = t.opportunity(0.3, 20);
        }
        t = t.opportunity(0.3, -10); // overdue: 20,000 of 100,000
        let c = t.checked();
        let q = index(&c).opps.quality(0.25);
        assert!(
            (q.share - 0.8).abs() < 1e-9 && (q.overdue_share - 0.2).abs() < 1e-9,
            "{q:?}"
        );
        assert_eq!(q.whale, None);
        // One opportunity of 70% at a 10% win probability against a 25% win rate: it counts at
        // 40% of its amount.
        let mut t = Tenant::new().opportunity(0.3, 20);
        t.0.opportunities[0].amount = 30_000.0;
        t = t.opportunity(0.1, 20);
        t.0.opportunities[1].amount = 70_000.0;
        let c = t.checked();
        let q = index(&c).opps.quality(0.25);
        let (id, share, _, w) = q.whale.clone().unwrap();
        assert_eq!(id, "opp_1");
        assert!((share - 0.7).abs() < 1e-9 && (w - 0.4).abs() < 1e-9);
        assert!((q.share - (0.3 + 0.7 * 0.4)).abs() < 1e-9, "{q:?}");
    }
}
