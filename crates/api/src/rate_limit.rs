//! Request rate limits: a token bucket per access token (per client address for requests
//! without a valid token), answered with `RateLimit-*` headers and, once spent, `429` with
//! `Retry-After`.
//!
//! The buckets live in this process (see docs/decisions/0012-rate-limits.md) and read the
//! time from [`ApiConfig::clock`](crate::ApiConfig::clock), so tests move time by hand.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use sauti_core::clock::SharedClock;

use crate::AppState;
use crate::auth::Credential;
use crate::error::ApiError;

/// How many requests one caller may make: `per_second` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second a caller's budget refills by.
    pub per_second: u32,
    /// The most requests a caller may make at once (the bucket's size).
    pub burst: u32,
}

impl Default for RateLimit {
    /// 200 requests a second, bursts of 400: far above what one client of an interactive
    /// API needs, low enough that one runaway script cannot take a node for itself.
    fn default() -> Self {
        RateLimit {
            per_second: 200,
            burst: 400,
        }
    }
}

impl RateLimit {
    /// Parse `off`, `N/s` or `N/s,burst=M` (the burst defaults to twice the rate).
    /// `Ok(None)` is `off`.
    pub fn parse(text: &str) -> Result<Option<RateLimit>, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let syntax = || format!("expected \"off\", \"N/s\" or \"N/s,burst=M\", got {text:?}");
        let (rate, burst) = match text.split_once(',') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (text, None),
        };
        let per_second = rate
            .trim()
            .strip_suffix("/s")
            .and_then(|n| n.trim().parse::<u32>().ok())
            .ok_or_else(syntax)?;
        let burst = match burst {
            None => per_second.saturating_mul(2),
            Some(b) => b
                .trim()
                .strip_prefix("burst=")
                .and_then(|n| n.trim().parse::<u32>().ok())
                .ok_or_else(syntax)?,
        };
        if per_second == 0 || burst == 0 {
            return Err(format!(
                "the rate and the burst must be positive, got {text:?} (use \"off\" to disable)"
            ));
        }
        Ok(Some(RateLimit { per_second, burst }))
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/s,burst={}", self.per_second, self.burst)
    }
}

/// Whose budget a request spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// A valid access token (or login session), by id.
    Token(i64),
    /// No valid token: the client's address (IPv6 by its /64, which one host usually holds).
    Address(IpAddr),
    /// No valid token and no known address (the router served without connect info).
    Unknown,
}

impl Key {
    fn kind(&self) -> &'static str {
        match self {
            Key::Token(_) => "token",
            Key::Address(_) | Key::Unknown => "address",
        }
    }
}

fn address_key(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// governor's view of [`SharedClock`]: nanoseconds since the limiter was made.
#[derive(Debug, Clone)]
struct LimiterClock {
    clock: SharedClock,
    epoch: chrono::DateTime<chrono::Utc>,
}

impl governor::clock::Clock for LimiterClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        // A wall clock stepped back before the epoch reads as the epoch; governor's
        // arithmetic saturates, so a step back only delays refills.
        let since = (self.clock.now() - self.epoch).num_nanoseconds().unwrap_or(i64::MAX);
        Nanos::new(u64::try_from(since).unwrap_or(0))
    }
}

/// How often buckets that are full again are dropped, so memory follows the callers of
/// the last minute rather than every address ever seen.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The buckets of one server.
pub(crate) struct Limiter {
    limiter: RateLimiter<Key, DashMapStateStore<Key>, LimiterClock, StateInformationMiddleware>,
    clock: LimiterClock,
    limit: RateLimit,
    /// When buckets were last swept, in [`LimiterClock`] nanoseconds.
    last_sweep: AtomicU64,
}

/// The outcome of one request against its bucket.
struct Decision {
    allowed: bool,
    remaining: u32,
    /// Seconds until the bucket is full again.
    reset_secs: u64,
    /// Seconds until the next request would be allowed (refusals only).
    retry_after_secs: u64,
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Limiter {
    pub(crate) fn new(limit: RateLimit, clock: SharedClock) -> Self {
        let per_second = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(per_second).allow_burst(burst);
        let clock = LimiterClock {
            epoch: clock.now(),
            clock,
        };
        Limiter {
            limiter: RateLimiter::dashmap_with_clock(quota, clock.clone())
                .with_middleware::<StateInformationMiddleware>(),
            clock,
            limit: RateLimit {
                per_second: per_second.get(),
                burst: burst.get(),
            },
            last_sweep: AtomicU64::new(0),
        }
    }

    fn check(&self, key: &Key) -> Decision {
        use governor::clock::Clock as _;
        let now = self.clock.now();
        self.sweep(now);
        let interval = Duration::from_secs(1) / self.limit.per_second;
        match self.limiter.check_key(key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    remaining,
                    reset_secs: ceil_secs(interval * (self.limit.burst - remaining.min(self.limit.burst))),
                    retry_after_secs: 0,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(now);
                Decision {
                    allowed: false,
                    remaining: 0,
                    reset_secs: ceil_secs(wait + interval * (self.limit.burst - 1)),
                    retry_after_secs: ceil_secs(wait).max(1),
                }
            }
        }
    }

    /// Drop the buckets that are indistinguishable from fresh ones, once a [`SWEEP_EVERY`].
    fn sweep(&self, now: Nanos) {
        let last = self.last_sweep.load(Ordering::Relaxed);
        let due = now.as_u64().saturating_sub(last) >= SWEEP_EVERY.as_nanos() as u64;
        if due
            && self
                .last_sweep
                .compare_exchange(last, now.as_u64(), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.limiter.len()
    }
}

/// Paths no budget applies to: probes and scrapes, the API's documentation, and
/// providers' callbacks and TwiML requests (their volume follows what sauti itself sent;
/// a refused delivery receipt would be lost, a refused TwiML fetch fails a call that was
/// answered, and a provider's calls all come from its few addresses, so they would share
/// one anonymous budget).
fn exempt(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/api/openapi.json")
        || path == "/api/docs"
        || path.starts_with("/api/docs/")
        || path.starts_with("/callbacks/")
        || path.starts_with("/twiml/")
}

fn set_headers(headers: &mut HeaderMap, limit: RateLimit, d: &Decision) {
    headers.insert("ratelimit-limit", HeaderValue::from(limit.burst));
    headers.insert("ratelimit-remaining", HeaderValue::from(d.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(d.reset_secs));
}

/// Spend one unit of the caller's budget, or answer 429. Runs after `auth::resolve`.
pub(crate) async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(limiter) = state.rate_limiter.as_deref() else {
        return next.run(req).await;
    };
    if exempt(req.uri().path()) {
        return next.run(req).await;
    }
    let key = match req.extensions().get::<Credential>() {
        Some(Credential::Valid(caller)) => Key::Token(caller.token_id),
        _ => match req.extensions().get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(addr)) => Key::Address(address_key(addr.ip())),
            None => Key::Unknown,
        },
    };
    let decision = limiter.check(&key);
    let mut resp = if decision.allowed {
        next.run(req).await
    } else {
        metrics::with_local_recorder(state.metrics.recorder(), || {
            metrics::counter!("sauti_rate_limited_total", "by" => key.kind()).increment(1);
        });
        ApiError::TooManyRequests {
            message: format!(
                "Rate limit exceeded ({} requests a second, bursts of {}); retry in {} s",
                limiter.limit.per_second, limiter.limit.burst, decision.retry_after_secs
            ),
            retry_after: decision.retry_after_secs,
        }
        .into_response()
    };
    set_headers(resp.headers_mut(), limiter.limit, &decision);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use sauti_core::clock::ManualClock;

    #[test]
    fn parses_the_configuration_syntax() {
        assert_eq!(RateLimit::parse("off"), Ok(None));
        assert_eq!(RateLimit::parse(" OFF "), Ok(None));
        assert_eq!(
            RateLimit::parse("200/s"),
            Ok(Some(RateLimit {
                per_second: 200,
                burst: 400
            }))
        );
        assert_eq!(
            RateLimit::parse("5/s, burst=10"),
            Ok(Some(RateLimit {
                per_second: 5,
                burst: 10
            }))
        );
        for bad in ["", "200", "200/m", "x/s", "0/s", "5/s,burst=0", "5/s,10", "-1/s"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(RateLimit::default().to_string(), "200/s,burst=400");
    }

    #[test]
    fn a_bucket_refills_with_the_clock_and_idle_buckets_are_dropped() {
        let clock = ManualClock::new();
        let limiter = Limiter::new(
            RateLimit {
                per_second: 2,
                burst: 3,
            },
            clock.clone(),
        );
        let a = Key::Token(1);
        let remaining: Vec<u32> = (0..3).map(|_| limiter.check(&a).remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limiter.check(&a);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 1);
        assert_eq!(refused.reset_secs, 2);
        assert!(limiter.check(&Key::Token(2)).allowed, "another key has its own bucket");

        clock.advance(Duration::from_millis(500));
        assert!(limiter.check(&a).allowed, "half a second refills one request");
        assert!(!limiter.check(&a).allowed);

        assert_eq!(limiter.keys(), 2);
        clock.advance(SWEEP_EVERY);
        assert!(limiter.check(&Key::Unknown).allowed);
        assert_eq!(limiter.keys(), 1, "the sweep dropped the full buckets");
    }

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
