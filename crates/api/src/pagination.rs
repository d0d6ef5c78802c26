//! List responses: `Per-Page`, `Total` and an RFC 8288 `Link` header (first, prev, next,
//! last), as SCFM's api-pagination does. Links are relative references to the same path.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use sauti_core::filter::ListQuery;
use sauti_store::Page;
use serde::Serialize;

pub fn list_response<T: Serialize>(
    uri: &Uri,
    pairs: &[(String, String)],
    query: &ListQuery,
    page: Page<T>,
) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static("per-page"), HeaderValue::from(query.per_page));
    headers.insert(HeaderName::from_static("total"), HeaderValue::from(page.total));
    let last = page.total.div_ceil(u64::from(query.per_page)).max(1);
    let current = u64::from(query.page);
    let mut links = Vec::new();
    if current > 1 {
        links.push(link(uri, pairs, 1, "first"));
        links.push(link(uri, pairs, (current - 1).min(last), "prev"));
    }
    if current < last {
        links.push(link(uri, pairs, current + 1, "next"));
        links.push(link(uri, pairs, last, "last"));
    }
    if !links.is_empty()
        && let Ok(v) = HeaderValue::from_str(&links.join(", "))
    {
        headers.insert(axum::http::header::LINK, v);
    }
    (headers, axum::Json(page.items)).into_response()
}

fn link(uri: &Uri, pairs: &[(String, String)], page: u64, rel: &str) -> String {
    let mut kept: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "page").cloned().collect();
    kept.push(("page".into(), page.to_string()));
    let query = serde_urlencoded::to_string(&kept).unwrap_or_default();
    format!("<{}?{query}>; rel=\"{rel}\"", uri.path())
}
