//! Prometheus metrics for HTTP: request counts and latency histograms by route and status.
//!
//! The recorder belongs to the app state rather than the process, so several servers in
//! one process (the tests) keep separate counts.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::AppState;

pub struct HttpMetrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl HttpMetrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        Self { recorder, handle }
    }

    /// The recorder to count into (`metrics::with_local_recorder`).
    pub(crate) fn recorder(&self) -> &PrometheusRecorder {
        &self.recorder
    }

    pub fn render(&self) -> String {
        self.handle.render()
    }
}

pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let elapsed = start.elapsed().as_secs_f64();
    metrics::with_local_recorder(&state.metrics.recorder, || {
        let labels = [("method", method), ("route", route), ("status", status)];
        metrics::counter!("sauti_http_requests_total", &labels).increment(1);
        metrics::histogram!("sauti_http_request_duration_seconds", &labels).record(elapsed);
    });
    resp
}

/// Count a verification send refused by a limit (`destination`, `ip` or `prefix`).
pub(crate) fn count_verification_blocked(state: &AppState, limit: &'static str) {
    metrics::with_local_recorder(&state.metrics.recorder, || {
        metrics::counter!("sauti_verifications_blocked_total", "limit" => limit).increment(1);
    });
}
