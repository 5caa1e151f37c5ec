//! TEMP stub (lead), replaced on merge.
use crate::time::Time;
use std::time::Duration;
#[derive(Debug)]
pub struct PeakEwma {
    v: Option<f64>,
}
impl PeakEwma {
    pub fn new(_h: Duration) -> Self {
        PeakEwma { v: None }
    }
    pub fn record(&mut self, _now: Time, d: Duration) {
        self.v = Some(d.as_secs_f64());
    }
    pub fn cost(&self, _now: Time, inflight: u32) -> Option<f64> {
        self.v.map(|v| v * (inflight as f64 + 1.0))
    }
    pub fn estimate(&self, _now: Time) -> Option<Duration> {
        self.v.map(Duration::from_secs_f64)
    }
}
#[derive(Debug)]
pub struct LatencyQuantiles;
impl LatencyQuantiles {
    pub fn new() -> Self {
        LatencyQuantiles
    }
    pub fn record(&mut self, _d: Duration) {}
    pub fn quantile(&self, _q: f64) -> Option<Duration> {
        None
    }
}
