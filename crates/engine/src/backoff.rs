//! Retry timing: exponential back-off with full jitter, so a burst of failures does not
//! come back as a burst of retries.

use std::time::Duration;

use rand::Rng;

/// Delay before retrying after the `attempt`-th failure (1-based): a random time between
/// half and all of `base · 2^(attempt-1)`, capped at `max`.
pub fn retry_delay(attempt: i64, base: Duration, max: Duration) -> Duration {
    let exp = attempt.clamp(1, 20) - 1;
    let full = base.saturating_mul(1u32 << exp).min(max);
    let half = full / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis().max(1) as u64);
    half + Duration::from_millis(jitter)
}

/// Delay after a throttling answer: what the provider asked for, or a short jittered
/// pause that grows with how often this transmission was throttled in a row.
pub fn throttle_delay(retry_after: Option<Duration>) -> Duration {
    match retry_after {
        Some(d) => d,
        None => Duration::from_millis(rand::rng().random_range(200..=1000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_is_capped() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(3600);
        for _ in 0..100 {
            let d1 = retry_delay(1, base, max);
            assert!(d1 >= Duration::from_secs(5) && d1 <= Duration::from_secs(10), "{d1:?}");
            let d3 = retry_delay(3, base, max);
            assert!(d3 >= Duration::from_secs(20) && d3 <= Duration::from_secs(40), "{d3:?}");
            let d20 = retry_delay(20, base, max);
            assert!(d20 >= Duration::from_secs(1800) && d20 <= max, "{d20:?}");
        }
    }
}
