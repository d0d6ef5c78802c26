//! Time as sauti stores it.

use chrono::{DateTime, SubsecRound, Utc};

/// The current time truncated to microseconds.
///
/// PostgreSQL keeps microseconds; truncating here makes a value read back from either
/// backend equal to the value written, and keeps SQLite's text timestamps ordered.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Where rules that count time (code expiry, send and velocity limits, request rate
/// limits) read it, so tests can move time on instead of sleeping.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time, truncated to microseconds like [`now`].
    fn now(&self) -> DateTime<Utc>;
}

/// A clock shared by everything one server runs.
pub type SharedClock = std::sync::Arc<dyn Clock>;

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        now()
    }
}

/// The real clock, shared.
pub fn system() -> SharedClock {
    std::sync::Arc::new(SystemClock)
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    at: std::sync::Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at the current real time.
    pub fn new() -> std::sync::Arc<ManualClock> {
        Self::at(now())
    }

    pub fn at(t: DateTime<Utc>) -> std::sync::Arc<ManualClock> {
        std::sync::Arc::new(ManualClock {
            at: std::sync::Mutex::new(t.trunc_subsecs(6)),
        })
    }

    /// Move the clock forward by `d`.
    pub fn advance(&self, d: std::time::Duration) {
        let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        *at = (*at + chrono::Duration::from_std(d).expect("a duration a test can use")).trunc_subsecs(6);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new();
        let t0 = c.now();
        assert_eq!(c.now(), t0);
        c.advance(std::time::Duration::from_secs(601));
        assert_eq!(c.now() - t0, chrono::Duration::seconds(601));
    }
}
