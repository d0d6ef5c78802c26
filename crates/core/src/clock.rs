//! Time as sauti stores it.

use chrono::{DateTime, SubsecRound, Utc};

/// The current time truncated to microseconds.
///
/// PostgreSQL keeps microseconds; truncating here makes a value read back from either
/// backend equal to the value written, and keeps SQLite's text timestamps ordered.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
