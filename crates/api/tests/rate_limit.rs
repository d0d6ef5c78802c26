//! Request rate limits as a client meets them: a budget per access token (per client
//! address without one), `RateLimit-*` headers on every limited answer, `429` with
//! `Retry-After` in the house error shape once it is spent, and the budget back as time
//! passes. Time is a clock the test moves; nothing sleeps.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use reqwest::{Method, StatusCode};
use sauti_api::{ApiConfig, RateLimit};
use sauti_core::clock::ManualClock;

/// Like `both_backends!`, over a server limited to `$limit` whose clock the scenario moves.
macro_rules! both_backends_limited {
    ($name:ident, $limit:expr, |$app:ident, $clock:ident| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn scenario($app: App, $clock: Arc<ManualClock>) {
                $body.await
            }

            async fn run(backend: sauti_store::testing::Backend) {
                let clock = ManualClock::new();
                let config = ApiConfig {
                    clock: clock.clone(),
                    rate_limit: Some($limit),
                    ..Default::default()
                };
                if let Some(app) = App::start_with(backend, config).await {
                    scenario(app, clock).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(sauti_store::testing::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run(sauti_store::testing::Backend::Postgres).await;
            }
        }
    };
}

/// Two requests a second, bursts of three.
const SMALL: RateLimit = RateLimit {
    per_second: 2,
    burst: 3,
};

fn header_u64(r: &Resp, name: &str) -> u64 {
    r.header(name)
        .unwrap_or_else(|| panic!("no {name} header: {} {}", r.status, r.text))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number of seconds"))
}

/// The `RateLimit-*` headers of `r`: limit, remaining, reset.
fn budget(r: &Resp) -> (u64, u64, u64) {
    (
        header_u64(r, "ratelimit-limit"),
        header_u64(r, "ratelimit-remaining"),
        header_u64(r, "ratelimit-reset"),
    )
}

/// A refusal: 429 in the house shape, `Retry-After` in seconds, nothing left.
fn assert_limited(r: &Resp, what: &str) {
    assert_status(r, StatusCode::TOO_MANY_REQUESTS, what);
    assert_eq!(r.error_code(), "too_many_requests", "{what}");
    let base = r.body["errors"]["base"][0].as_str().unwrap_or_default();
    assert!(base.contains("Rate limit exceeded"), "{what}: {}", r.text);
    assert_eq!(
        header_u64(r, "retry-after"),
        1,
        "{what}: the next request is due within a second"
    );
    let (limit, remaining, reset) = budget(r);
    assert_eq!((limit, remaining), (3, 0), "{what}");
    assert!(reset >= 1, "{what}");
}

both_backends_limited!(burst_then_429_then_the_clock_refills, SMALL, |app, clock| async move {
    let t = app.tenant("Acme").await;

    let mut remaining = vec![];
    for _ in 0..3 {
        let r = app.get("/api/account", &t.token).await;
        assert_status(&r, StatusCode::OK, "within the burst");
        let (limit, left, reset) = budget(&r);
        assert_eq!(limit, 3);
        assert!((1..=2).contains(&reset), "full again within 1.5 s, got {reset}");
        remaining.push(left);
    }
    assert_eq!(remaining, [2, 1, 0], "remaining counts down");

    // Any method and route spends the same budget.
    assert_limited(&app.get("/api/account", &t.token).await, "past the burst");
    assert_limited(
        &app.post("/api/contacts", &t.token, serde_json::json!({"msisdn": "+85510000001"}))
            .await,
        "a write past the burst",
    );

    // Half a second refills one request; the refusals above cost nothing.
    clock.advance(Duration::from_millis(500));
    let r = app.get("/api/account", &t.token).await;
    assert_status(&r, StatusCode::OK, "after half a second");
    assert_eq!(budget(&r).1, 0);
    assert_limited(&app.get("/api/account", &t.token).await, "spent again");

    // After long enough the whole burst is back.
    clock.advance(Duration::from_secs(2));
    let r = app.get("/api/account", &t.token).await;
    assert_status(&r, StatusCode::OK, "after two seconds");
    assert_eq!(budget(&r).1, 2, "the full burst is back");
    app.stop().await;
});

both_backends_limited!(each_token_has_its_own_budget, SMALL, |app, _clock| async move {
    let a = app.tenant("Acme").await;
    let b = app.tenant("Beta").await;
    for _ in 0..3 {
        assert_status(
            &app.get("/api/account", &a.token).await,
            StatusCode::OK,
            "a within its burst",
        );
    }
    assert_limited(&app.get("/api/account", &a.token).await, "a past its burst");

    let r = app.get("/api/account", &b.token).await;
    assert_status(&r, StatusCode::OK, "b is not held back by a");
    assert_eq!(budget(&r).1, 2, "b has its whole burst");

    // A request without a token from the same address has a budget of its own too.
    let r = app.call(Method::GET, "/api/account", None, None).await;
    assert_status(&r, StatusCode::UNAUTHORIZED, "no token, not limited by a's budget");
    assert_eq!(budget(&r).1, 2);
    app.stop().await;
});

both_backends_limited!(
    requests_without_a_valid_token_are_limited_by_address,
    SMALL,
    |app, clock| async move {
        let t = app.tenant("Acme").await;
        // Missing and invalid tokens share the address's budget: guessing tokens costs it.
        let r = app.call(Method::GET, "/api/account", None, None).await;
        assert_status(&r, StatusCode::UNAUTHORIZED, "no token");
        assert_eq!(budget(&r).1, 2);
        let r = app.get("/api/account", "not-a-token").await;
        assert_status(&r, StatusCode::UNAUTHORIZED, "an invalid token");
        assert_eq!(budget(&r).1, 1);
        let r = app.get("/api/account", "another-guess").await;
        assert_status(&r, StatusCode::UNAUTHORIZED, "another invalid token");
        assert_eq!(budget(&r).1, 0);
        assert_limited(
            &app.get("/api/account", "a-third-guess").await,
            "guessing past the burst",
        );
        assert_limited(
            &app.call(Method::POST, "/api/authenticate", None, Some(serde_json::json!({})))
                .await,
            "logging in past the burst",
        );

        // A valid token from the same address keeps its own budget.
        assert_status(
            &app.get("/api/account", &t.token).await,
            StatusCode::OK,
            "a valid token",
        );

        // Another address has its own budget (Linux answers all of 127.0.0.0/8 on loopback).
        let other = reqwest::Client::builder()
            .local_address(Some("127.0.0.2".parse().unwrap()))
            .build()
            .unwrap();
        let r = Resp::from(other.get(app.url("/api/account")).send().await.expect("request")).await;
        assert_status(&r, StatusCode::UNAUTHORIZED, "another address");
        assert_eq!(budget(&r).1, 2, "another address has its whole burst");

        // Probes, scrapes and the API docs are never limited, and carry no budget.
        for path in ["/healthz", "/readyz", "/metrics", "/api/openapi.json"] {
            for _ in 0..5 {
                let r = app.call(Method::GET, path, None, None).await;
                assert_status(&r, StatusCode::OK, path);
                assert_eq!(r.header("ratelimit-limit"), None, "{path}");
            }
        }

        // Refusals are counted, by kind of key.
        let metrics = app.call(Method::GET, "/metrics", None, None).await.text;
        assert!(
            metrics.contains("sauti_rate_limited_total{by=\"address\"} 2"),
            "{metrics}"
        );

        clock.advance(Duration::from_secs(2));
        let r = app.call(Method::GET, "/api/account", None, None).await;
        assert_status(&r, StatusCode::UNAUTHORIZED, "the address's budget is back");
        app.stop().await;
    }
);

both_backends_limited!(refusals_from_tokens_are_counted, SMALL, |app, _clock| async move {
    let t = app.tenant("Acme").await;
    for _ in 0..3 {
        assert_status(
            &app.get("/api/account", &t.token).await,
            StatusCode::OK,
            "within the burst",
        );
    }
    for _ in 0..4 {
        assert_limited(&app.get("/api/account", &t.token).await, "past the burst");
    }
    let metrics = app.call(Method::GET, "/metrics", None, None).await.text;
    assert!(
        metrics.contains("sauti_rate_limited_total{by=\"token\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("status=\"429\""),
        "refusals also show in the request counts: {metrics}"
    );
    app.stop().await;
});

// The test harness runs without a limit (many tests fire hundreds of requests with one
// token); so does `SAUTI_RATE_LIMIT=off`: no budget, no headers.
both_backends!(without_a_limit_there_are_no_budget_headers, |app| async move {
    let t = app.tenant("Acme").await;
    for _ in 0..50 {
        let r = app.get("/api/account", &t.token).await;
        assert_status(&r, StatusCode::OK, "unlimited");
        assert_eq!(r.header("ratelimit-limit"), None);
    }
    app.stop().await;
});
