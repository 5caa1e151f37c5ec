//! What the machine knows about each provider: its budget (configured and learned from its
//! rate-limit headers), its health (a circuit breaker), its latency (peak EWMA and quantiles),
//! and the retry/hedge throttle. Each is a pure building block: time is passed in, nothing reads
//! a clock, and nothing allocates after construction.

pub mod budget;
pub mod health;
pub mod latency;
pub mod rate_limit_headers;
pub mod throttle;

pub use budget::{Budget, BudgetSnapshot};
pub use health::{Admit, Breaker, BreakerState, HealthConfig};
pub use latency::{LatencyQuantiles, PeakEwma};
pub use rate_limit_headers::{LearnedLimits, Limit};
pub use throttle::{Throttle, ThrottleConfig};
