//! Provider throughput limits, enforced where the bytes leave (`throughput_per_second`,
//! counted in SMS segments).

use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// A token bucket of `per_second` tokens a second (burst of one second's worth), or no
/// limit at all.
pub struct Throughput {
    limiter: Option<DefaultDirectRateLimiter>,
    per_second: u32,
}

impl Throughput {
    pub fn new(per_second: Option<u32>) -> Self {
        let per_second = per_second.unwrap_or(0);
        let limiter = NonZeroU32::new(per_second).map(|n| RateLimiter::direct(Quota::per_second(n)));
        Self { limiter, per_second }
    }

    /// Wait until `segments` may be sent. A message larger than a second's budget waits
    /// for each token in turn rather than forever.
    pub async fn acquire(&self, segments: u32) {
        let Some(l) = &self.limiter else { return };
        let mut left = segments.max(1);
        while left > 0 {
            let take = left.min(self.per_second);
            let n = NonZeroU32::new(take).expect("take is at least 1");
            // `until_n_ready` only fails when n exceeds the burst, which `take` never does.
            let _ = l.until_n_ready(n).await;
            left -= take;
        }
    }
}
