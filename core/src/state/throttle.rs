//! TEMP stub (lead), replaced on merge.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ThrottleConfig {
    pub max_tokens: f64,
    pub token_ratio: f64,
}
impl ThrottleConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        Ok(())
    }
}
#[derive(Debug)]
pub struct Throttle {
    t: f64,
    max: f64,
    r: f64,
}
impl Throttle {
    pub fn new(c: &ThrottleConfig) -> Self {
        Throttle {
            t: c.max_tokens,
            max: c.max_tokens,
            r: c.token_ratio,
        }
    }
    pub fn record_success(&mut self) {
        self.t = (self.t + self.r).min(self.max);
    }
    pub fn record_failure(&mut self) {
        self.t = (self.t - 1.0).max(0.0);
    }
    pub fn allows_retry(&self) -> bool {
        self.t > self.max / 2.0
    }
}
