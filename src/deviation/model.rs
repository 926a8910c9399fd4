//! MSTL with one period (7) and a small AutoETS on the seasonally adjusted series, written out
//! so that one fit serves every rolling origin: the weekly profile and the ETS parameters come
//! from the days before the error window, and the filter's state at each day uses only earlier
//! days, so every recorded one-step error is out of sample (docs/deviations.md).

use super::robust::{MAD_SCALE, median, median_mad};

pub const PERIOD: usize = 7;
/// Innovations beyond this many robust standard deviations move the state only this far: one
/// holiday or month-end spike must not drag the level (and so the next days' forecasts).
const CLIP_K: f64 = 3.0;
/// Days at the start of the fit whose errors only warm the filter up.
const WARM_UP: usize = PERIOD;

const ALPHAS: [f64; 6] = [0.05, 0.1, 0.2, 0.3, 0.5, 0.8];
/// β as a share of α (β ≤ α keeps the damped trend admissible).
const BETA_SHARES: [f64; 2] = [0.05, 0.2];
const PHIS: [f64; 2] = [0.8, 0.95];

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ets {
    pub alpha: f64,
    pub beta: f64,
    /// 0 for the model without trend (A,N,N); else the damping of (A,Ad,N).
    pub phi: f64,
    pub trend: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub season: [f64; PERIOD],
    pub ets: Ets,
    /// Robust standard deviation of the fit period's remainder: the day-to-day noise.
    pub noise: f64,
    l0: f64,
    b0: f64,
    clip: f64,
}

/// Fit on `x[..end]` (None = a gap). None when the fit region is too thin to say anything.
pub fn fit(x: &[Option<f64>], end: usize) -> Option<Fit> {
    let x = x.get(..end)?;
    let season = weekly_profile(x)?;
    let adjusted: Vec<Option<f64>> = x
        .iter()
        .enumerate()
        .map(|(i, v)| v.map(|v| v - season[i % PERIOD]))
        .collect();
    let obs: Vec<f64> = adjusted.iter().flatten().copied().collect();
    if obs.len() < 2 * PERIOD - 2 {
        return None;
    }
    let mut first: Vec<f64> = obs.iter().take(PERIOD).copied().collect();
    let mut second: Vec<f64> = obs.iter().skip(PERIOD).take(PERIOD).copied().collect();
    let l0 = median(&mut first)?;
    let b0 = median(&mut second).map_or(0.0, |m| (m - l0) / PERIOD as f64);
    let noise = noise_scale(x, &season).unwrap_or(0.0);
    let clip = if noise > 0.0 {
        CLIP_K * noise
    } else {
        f64::INFINITY
    };

    let mut best: Option<(f64, Ets)> = None;
    for ets in candidates() {
        let mut state = State::new(l0, b0, ets);
        let (mut sse, mut n) = (0.0, 0usize);
        for (i, a) in adjusted.iter().enumerate() {
            if let Some(e) = state.step(*a, clip, ets)
                && i >= WARM_UP
            {
                let e = e.clamp(-clip, clip);
                sse += e * e;
                n += 1;
            }
        }
        let k = if ets.trend { 5.0 } else { 2.0 };
        let nf = n as f64;
        if nf <= k + 1.0 {
            continue;
        }
        // AICc; a perfect fit (sse 0) is as good as it gets.
        let aicc =
            nf * (sse / nf).max(1e-300).ln() + 2.0 * k + 2.0 * k * (k + 1.0) / (nf - k - 1.0);
        if aicc.is_finite() && best.is_none_or(|(b, _)| aicc < b) {
            best = Some((aicc, ets));
        }
    }
    let (_, ets) = best?;
    Some(Fit {
        season,
        ets,
        noise,
        l0,
        b0,
        clip,
    })
}

impl Fit {
    /// Runs the filter over `x[..last]` and returns the one-step errors at the observed days
    /// from `from` on, and the one-step forecast for day `last`.
    pub fn errors_and_forecast(
        &self,
        x: &[Option<f64>],
        from: usize,
        last: usize,
    ) -> (Vec<f64>, f64) {
        let mut state = State::new(self.l0, self.b0, self.ets);
        let mut errors = Vec::with_capacity(last.saturating_sub(from));
        for (i, v) in x.iter().take(last).enumerate() {
            let s = self.season[i % PERIOD];
            if let Some(e) = state.step(v.map(|v| v - s), self.clip, self.ets)
                && i >= from
            {
                errors.push(e);
            }
        }
        (errors, state.predict(self.ets) + self.season[last % PERIOD])
    }
}

fn candidates() -> impl Iterator<Item = Ets> {
    let level = ALPHAS.into_iter().map(|alpha| Ets {
        alpha,
        beta: 0.0,
        phi: 0.0,
        trend: false,
    });
    let trend = ALPHAS.into_iter().flat_map(|alpha| {
        BETA_SHARES.into_iter().flat_map(move |b| {
            PHIS.into_iter().map(move |phi| Ets {
                alpha,
                beta: alpha * b,
                phi,
                trend: true,
            })
        })
    });
    level.chain(trend)
}

struct State {
    l: f64,
    b: f64,
}

impl State {
    fn new(l0: f64, b0: f64, ets: Ets) -> Self {
        Self {
            l: l0,
            b: if ets.trend { b0 } else { 0.0 },
        }
    }

    fn predict(&self, ets: Ets) -> f64 {
        self.l + ets.phi * self.b
    }

    /// One day: the error of the forecast made before seeing `a` (None on a gap, where the
    /// state only moves on).
    fn step(&mut self, a: Option<f64>, clip: f64, ets: Ets) -> Option<f64> {
        let pred = self.predict(ets);
        match a {
            Some(a) => {
                let e = a - pred;
                let ec = e.clamp(-clip, clip);
                self.l = pred + ets.alpha * ec;
                self.b = ets.phi * self.b + ets.beta * ec;
                Some(e)
            }
            None => {
                self.l = pred;
                self.b *= ets.phi;
                None
            }
        }
    }
}

/// Centred 7-day mean of the observed days around `i` (at least 4 of them).
fn local_trend(x: &[Option<f64>], i: usize) -> Option<f64> {
    let lo = i.saturating_sub(PERIOD / 2);
    let hi = (i + PERIOD / 2 + 1).min(x.len());
    let (mut sum, mut n) = (0.0, 0usize);
    for v in x[lo..hi].iter().flatten() {
        sum += v;
        n += 1;
    }
    (n >= 4).then(|| sum / n as f64)
}

/// The weekly profile: per position mod 7, the median distance from the local trend, centred
/// to sum 0 (a weekday never seen gets 0).
fn weekly_profile(x: &[Option<f64>]) -> Option<[f64; PERIOD]> {
    let mut by_day: [Vec<f64>; PERIOD] = Default::default();
    for (i, v) in x.iter().enumerate() {
        if let (Some(v), Some(t)) = (v, local_trend(x, i)) {
            by_day[i % PERIOD].push(v - t);
        }
    }
    let mut season = [0.0; PERIOD];
    let mut seen = 0;
    for (s, d) in season.iter_mut().zip(by_day.iter_mut()) {
        if let Some(m) = median(d) {
            *s = m;
            seen += 1;
        }
    }
    if seen == 0 {
        return None;
    }
    let mean = season.iter().sum::<f64>() / PERIOD as f64;
    for s in &mut season {
        *s -= mean;
    }
    Some(season)
}

/// Robust standard deviation of the decomposition's remainder: the day-to-day noise.
fn noise_scale(x: &[Option<f64>], season: &[f64; PERIOD]) -> Option<f64> {
    let mut rem: Vec<f64> = x
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some(v.as_ref()? - season[i % PERIOD] - local_trend(x, i)?))
        .collect();
    median_mad(&mut rem).map(|(_, mad)| MAD_SCALE * mad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekly(n: usize) -> Vec<Option<f64>> {
        (0..n)
            .map(|i| Some(if i % 7 >= 5 { 60.0 } else { 100.0 }))
            .collect()
    }

    #[test]
    fn profile_of_a_clean_week() {
        let s = weekly_profile(&weekly(28)).unwrap();
        // Weekdays above, weekend below, centred.
        assert!(s[0] > 0.0 && s[5] < 0.0);
        assert!(s.iter().sum::<f64>().abs() < 1e-9);
    }

    #[test]
    fn forecast_of_a_noiseless_weekly_series_is_exact() {
        let x = weekly(42);
        let f = fit(&x, 28).unwrap();
        let (errors, next) = f.errors_and_forecast(&x, 28, 41);
        assert_eq!(errors.len(), 13);
        assert!(errors.iter().all(|e| e.abs() < 1.0), "{errors:?}");
        // Day 41 is the weekend's second day.
        assert!((next - 60.0).abs() < 1.0, "{next}");
    }

    #[test]
    fn gaps_move_the_state_without_errors() {
        let mut x = weekly(42);
        x[35] = None;
        x[36] = None;
        let f = fit(&x, 28).unwrap();
        let (errors, _) = f.errors_and_forecast(&x, 28, 41);
        assert_eq!(errors.len(), 11);
    }
}
