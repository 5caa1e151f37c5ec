//! Latency per provider: a peak-EWMA load estimate for the `fastest` policy, and a bounded
//! streaming quantile estimator of latency to first byte for the adaptive hedge delay.
//!
//! Both are a fixed handful of numbers per provider, updated in O(1) without allocating.

use crate::time::Time;
use std::time::Duration;

/// The default half-life of [`PeakEwma`]. Two seconds forgets a 10× latency spike in
/// `log2(10) ≈ 3.3` half-lives, about 7 s, inside the 10 s the issue gives `fastest` to return to a
/// provider after a brownout; Finagle's 10 s decay time (a 7 s half-life) is tuned for RPCs sampled
/// thousands of times a second, not for LLM calls seconds apart.
pub const DEFAULT_HALF_LIFE: Duration = Duration::from_secs(2);

/// The cost of a provider that has requests in flight but no estimate (unseen, or decayed to
/// exactly zero): Finagle's `Long.MaxValue >> 16` nanoseconds, so it loses to any measured one.
const PENALTY_NS: f64 = (i64::MAX >> 16) as f64;

/// Finagle's and tower's Peak-EWMA: an exponentially weighted moving average of latency that
/// jumps to any sample above it (so a provider turning slow is avoided at once) and decays
/// towards zero with time (so a provider that was slow gets tried again after a while, and its
/// next sample tells the truth), multiplied by the requests in flight plus one (so a provider
/// piling up requests looks slower before any of them returns).
///
/// Samples are unevenly spaced, so each weighs by the time since the previous one:
/// `w = exp(-elapsed / tau)` with `tau = half_life / ln 2`; a sample above the current (decayed)
/// estimate replaces it, else `estimate = prior · w + sample · (1 − w)`. Reading never changes the
/// state (tower and Finagle decay on read; here the read computes the same decayed value), so the
/// result does not depend on how often a policy looks.
#[derive(Debug, Clone)]
pub struct PeakEwma {
    tau_ns: f64,
    /// The estimate at `stamp`, in ns; meaningful only once `seen`.
    estimate_ns: f64,
    stamp: Time,
    seen: bool,
    in_flight: u32,
}

impl PeakEwma {
    /// An unseen provider's estimator; `half_life` zero is taken as 1 ns (every sample replaces the
    /// estimate and it is forgotten at once).
    pub fn new(half_life: Duration) -> PeakEwma {
        let half_life_ns = (half_life.as_nanos() as f64).max(1.0);
        PeakEwma {
            tau_ns: half_life_ns / std::f64::consts::LN_2,
            estimate_ns: 0.0,
            stamp: Time::ZERO,
            seen: false,
            in_flight: 0,
        }
    }

    /// A request was sent to the provider.
    pub fn sent(&mut self) {
        self.in_flight = self.in_flight.saturating_add(1);
    }

    /// A request ended without a latency worth learning from (cancelled: another leg won, the
    /// caller's deadline).
    pub fn abandoned(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// A request ended at `now` after `latency`.
    pub fn completed(&mut self, now: Time, latency: Duration) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let sample = latency.as_nanos() as f64;
        let w = self.weight(now);
        let current = self.estimate_ns * w;
        self.estimate_ns = if !self.seen || sample > current {
            sample
        } else {
            current + sample * (1.0 - w)
        };
        self.stamp = self.stamp.max(now);
        self.seen = true;
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// The latency estimate at `now`, None before the first sample.
    pub fn estimate(&self, now: Time) -> Option<Duration> {
        self.seen
            .then(|| Duration::from_nanos((self.estimate_ns * self.weight(now)) as u64))
    }

    /// The load to compare providers by (lower is better), in ns: the estimate times in-flight + 1.
    /// None for an unseen provider with nothing in flight, so a policy tries it first; an unseen
    /// or fully decayed provider with requests in flight costs a large penalty instead, so one
    /// request discovers it rather than every request until the first answers.
    pub fn cost(&self, now: Time) -> Option<f64> {
        if !self.seen && self.in_flight == 0 {
            return None;
        }
        let estimate = if self.seen {
            self.estimate_ns * self.weight(now)
        } else {
            0.0
        };
        Some(if estimate == 0.0 && self.in_flight > 0 {
            PENALTY_NS + f64::from(self.in_flight)
        } else {
            estimate * (f64::from(self.in_flight) + 1.0)
        })
    }

    /// The decay factor from the last sample to `now` (1 if `now` is not later).
    fn weight(&self, now: Time) -> f64 {
        let elapsed = now.saturating_since(self.stamp).as_nanos() as f64;
        (-elapsed / self.tau_ns).exp()
    }
}

/// Smallest latency the histogram tells apart: 0.1 ms (below it, everything reads as 0.1 ms).
const MIN_NS: f64 = 100_000.0;
/// Each bucket is 10 % wider than the previous one.
const GROWTH: f64 = 1.1;
/// Bucket 0 holds latencies up to 0.1 ms, buckets 1..=164 grow by 10 % up to 0.1 ms · 1.1^164 ≈
/// 10.2 min, and the last holds everything longer.
const BUCKETS: usize = 166;

/// The default for [`LatencyQuantiles::new`]'s `min_samples`: below 20 samples a p95 is a guess.
pub const DEFAULT_MIN_SAMPLES: u32 = 20;
/// The default for [`LatencyQuantiles::new`]'s `halve_at`: the counts halve when they reach 1024,
/// so the estimate follows a change within a few hundred samples.
pub const DEFAULT_HALVE_AT: u32 = 1024;

/// A streaming quantile estimator (p50/p95/p99 of latency to first byte) in a fixed-bucket log
/// histogram: 166 counters, 10 % wide from 0.1 ms to about 10 minutes, nothing else stored.
///
/// **Accuracy**: for latencies between 0.1 ms and 10.2 min, [`LatencyQuantiles::quantile`]`(q)`
/// returns the geometric middle of the bucket holding the nearest-rank `q`-quantile of the counted
/// samples (the `ceil(q·n)`-th smallest), so it is within a factor `sqrt(1.1)` of it: at most
/// 4.9 % relative error. Below 0.1 ms it says 0.1 ms; above 10.2 min it says 10.2 min.
///
/// **Following change**: when the counts reach `halve_at`, every count is halved (rounding down),
/// so old samples weigh half as much after each halving and a shift in latency shows within about
/// `halve_at / 2` samples. Halving is a pass over the 166 counters once per `halve_at / 2`
/// samples: constant, allocation-free.
#[derive(Debug, Clone)]
pub struct LatencyQuantiles {
    counts: [u32; BUCKETS],
    total: u32,
    recorded: u64,
    min_samples: u32,
    halve_at: u32,
}

impl LatencyQuantiles {
    /// An empty estimator that answers once it has seen `min_samples` samples, and halves its
    /// counts when they reach `halve_at` (at least 64 and twice `min_samples`, so a halving never
    /// leaves too little to answer from).
    pub fn new(min_samples: u32, halve_at: u32) -> LatencyQuantiles {
        LatencyQuantiles {
            counts: [0; BUCKETS],
            total: 0,
            recorded: 0,
            min_samples,
            halve_at: halve_at.max(64).max(min_samples.saturating_mul(2)),
        }
    }

    /// Counts one latency.
    pub fn record(&mut self, latency: Duration) {
        self.counts[bucket(latency)] += 1;
        self.total += 1;
        self.recorded = self.recorded.saturating_add(1);
        if self.total >= self.halve_at {
            self.total = 0;
            for count in &mut self.counts {
                *count /= 2;
                self.total += *count;
            }
        }
    }

    /// The `q`-quantile (`q` in 0..=1, clamped; NaN gives None), None until `min_samples` have been
    /// recorded.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if q.is_nan() || self.recorded < u64::from(self.min_samples) || self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * f64::from(self.total)).ceil() as u32).max(1);
        let mut seen = 0u32;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bucket_value(i));
            }
        }
        None // unreachable: the counts sum to `total`
    }
}

fn bucket(latency: Duration) -> usize {
    let ns = latency.as_nanos() as f64;
    if ns <= MIN_NS {
        return 0;
    }
    let i = ((ns / MIN_NS).ln() / GROWTH.ln()).ceil();
    (i as usize).clamp(1, BUCKETS - 1)
}

/// The value reported for bucket `i`: the geometric middle of its bounds.
fn bucket_value(i: usize) -> Duration {
    let ns = match i {
        0 => MIN_NS,
        i if i == BUCKETS - 1 => MIN_NS * GROWTH.powi(BUCKETS as i32 - 2),
        i => MIN_NS * GROWTH.powf(i as f64 - 0.5),
    };
    Duration::from_nanos(ns as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn at_ms(n: u64) -> Time {
        Time::from_millis(n)
    }

    #[test]
    fn unseen_first_then_peaks_replace_and_decay_by_the_half_life() {
        let mut e = PeakEwma::new(Duration::from_secs(2));
        assert_eq!(e.cost(at_ms(0)), None, "unseen and idle: try it first");
        e.sent();
        assert_eq!(e.cost(at_ms(0)), Some(PENALTY_NS + 1.0));
        e.completed(at_ms(100), ms(100));
        assert_eq!(e.estimate(at_ms(100)), Some(ms(100)));
        assert_eq!(e.cost(at_ms(100)), Some(100_000_000.0));
        // One half-life later the estimate has halved.
        let half = e.estimate(at_ms(2100)).unwrap().as_secs_f64();
        assert!((half - 0.05).abs() < 1e-9, "{half}");
        // A peak replaces the estimate at once.
        e.sent();
        e.sent();
        e.completed(at_ms(2100), ms(1000));
        assert_eq!(e.estimate(at_ms(2100)), Some(ms(1000)));
        // One in flight: the cost doubles.
        assert_eq!(e.cost(at_ms(2100)), Some(2.0 * 1e9));
        // A faster sample right away barely moves it (w ≈ 1)...
        e.completed(at_ms(2100), ms(10));
        assert_eq!(e.estimate(at_ms(2100)), Some(ms(1000)));
        // ...one half-life later it counts half: 1000/2 decayed plus 10/2.
        e.sent();
        e.completed(at_ms(4100), ms(10));
        let got = e.estimate(at_ms(4100)).unwrap().as_secs_f64();
        assert!((got - 0.505).abs() < 1e-6, "{got}");
        assert_eq!(e.in_flight(), 0);
        e.abandoned(); // more ends than sends saturate
        assert_eq!(e.in_flight(), 0);
    }

    #[test]
    fn steady_samples_converge_to_the_latency() {
        let mut e = PeakEwma::new(DEFAULT_HALF_LIFE);
        e.completed(at_ms(0), ms(5000)); // one slow start
        for i in 1..=400 {
            e.completed(at_ms(i * 100), ms(200));
        }
        let got = e.estimate(at_ms(40_000)).unwrap().as_millis();
        assert!((199..=201).contains(&got), "{got}");
    }

    #[test]
    fn decayed_to_zero_with_requests_in_flight_is_penalised() {
        let mut e = PeakEwma::new(Duration::from_millis(1));
        e.completed(at_ms(0), ms(10));
        let much_later = Time::from_nanos(u64::MAX);
        assert_eq!(e.cost(much_later), Some(0.0));
        e.sent();
        assert_eq!(e.cost(much_later), Some(PENALTY_NS + 1.0));
        // Time going backwards is no time at all.
        let mut e = PeakEwma::new(DEFAULT_HALF_LIFE);
        e.completed(at_ms(1000), ms(10));
        assert_eq!(e.estimate(at_ms(0)), Some(ms(10)));
    }

    fn nearest_rank(sorted: &[Duration], q: f64) -> Duration {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    #[test]
    fn quantiles_are_within_the_stated_bound_of_exact_ones() {
        let bound = GROWTH.sqrt() - 1.0; // 4.88 %
        for seed in [1u64, 2, 3, 0x5eed] {
            let mut rng = Rng::new(seed);
            let mut h = LatencyQuantiles::new(DEFAULT_MIN_SAMPLES, u32::MAX);
            let mut samples = Vec::new();
            for _ in 0..20_000 {
                // Lognormal around 800 ms with a heavy tail, plus a few fast cached answers.
                let secs = if rng.below(20) == 0 {
                    0.0002 + rng.next_f64() * 0.01
                } else {
                    0.8 * (rng.next_normal() * 0.9).exp()
                };
                let d = Duration::from_secs_f64(secs.min(600.0));
                h.record(d);
                samples.push(d);
            }
            samples.sort();
            for q in [0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
                let exact = nearest_rank(&samples, q).as_secs_f64();
                let got = h.quantile(q).unwrap().as_secs_f64();
                let err = (got / exact - 1.0).abs();
                assert!(
                    err <= bound + 1e-9,
                    "seed {seed} q {q}: {got} vs {exact} ({err})"
                );
            }
        }
    }

    #[test]
    fn no_answer_before_min_samples_and_edges_clamp() {
        let mut h = LatencyQuantiles::new(3, DEFAULT_HALVE_AT);
        h.record(ms(5));
        h.record(ms(5));
        assert_eq!(h.quantile(0.5), None);
        h.record(Duration::ZERO);
        assert_eq!(h.quantile(0.0), Some(Duration::from_micros(100)));
        assert_eq!(h.quantile(f64::NAN), None);
        let p = h.quantile(2.0).unwrap().as_secs_f64();
        assert!((p / 0.005 - 1.0).abs() < 0.049, "{p}");
        h.record(Duration::MAX);
        let top = h.quantile(1.0).unwrap();
        assert!(
            top > Duration::from_secs(600) && top < Duration::from_secs(620),
            "{top:?}"
        );
    }

    #[test]
    fn halving_follows_a_change() {
        let mut h = LatencyQuantiles::new(DEFAULT_MIN_SAMPLES, 256);
        for _ in 0..5_000 {
            h.record(ms(100));
        }
        for _ in 0..300 {
            h.record(ms(1000));
        }
        let p50 = h.quantile(0.5).unwrap().as_millis();
        assert!((950..=1050).contains(&p50), "{p50}");
        assert!(h.total < 256);
    }

    #[test]
    fn bucket_bounds_cover_the_range() {
        assert_eq!(bucket(Duration::from_micros(100)), 0);
        assert_eq!(bucket(Duration::from_nanos(100_001)), 1);
        assert_eq!(bucket(Duration::from_secs(600)), BUCKETS - 2);
        assert_eq!(bucket(Duration::from_secs(700)), BUCKETS - 1);
        for i in 1..BUCKETS - 1 {
            assert_eq!(bucket(bucket_value(i)), i, "bucket {i}");
        }
    }
}
