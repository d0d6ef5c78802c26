//! The routing table: every active provider's adapter, and the choice of provider for a
//! transmission (channel, then longest matching prefix, then weighted choice).

use std::collections::HashMap;
use std::sync::Arc;

use rand::Rng;
use sauti_channels::{Channel, Context, EventSink, Health};
use sauti_store::{Provider, Transmission};

/// One provider's adapter and what it serves.
pub(crate) struct Route {
    pub provider_id: i64,
    pub kind: String,
    pub channels: Vec<String>,
    /// Digits an E.164 destination (without `+`) must start with; empty matches all.
    pub prefix: String,
    pub weight: i64,
    pub adapter: Arc<dyn Channel>,
    /// When the provider row last changed; a newer row rebuilds the adapter.
    pub version: chrono::DateTime<chrono::Utc>,
    /// This node's share of the provider's `throughput_per_second`; a new share (a node
    /// came or went) rebuilds the adapter.
    pub throughput: Option<u32>,
}

/// This node's share of a provider's `throughput_per_second` when `nodes` workers are
/// alive. An SMPP limit is the SMSC's per bind, and every node has its own bind, so each
/// keeps the whole; an HTTP API's or a mail relay's is for the account, so the nodes
/// split it (rounded up: a node never gets nothing).
pub(crate) fn throughput_share(p: &Provider, nodes: u32) -> Option<u32> {
    let limit = p.throughput_per_second.and_then(|n| u32::try_from(n).ok())?;
    if p.kind == "smpp" {
        return Some(limit);
    }
    Some(limit.div_ceil(nodes.max(1)))
}

/// A snapshot of the routing table (swapped whole when providers change).
pub(crate) struct Registry {
    pub by_account: HashMap<i64, Vec<Arc<Route>>>,
    pub by_provider: HashMap<i64, Arc<Route>>,
    /// Used by accounts that have no provider for a channel.
    pub sandbox: Arc<dyn Channel>,
}

/// Where a claimed transmission goes.
pub(crate) enum Choice {
    Provider(Arc<Route>),
    /// The built-in sandbox (no provider row).
    Sandbox,
}

impl Registry {
    /// Pick the provider for `t`, or `None` when the account has providers for the
    /// channel but none whose prefix matches the destination.
    pub fn choose(&self, t: &Transmission) -> Option<Choice> {
        let routes = self.by_account.get(&t.account_id);
        let serving: Vec<&Arc<Route>> = routes
            .map(|r| r.iter().filter(|r| r.channels.contains(&t.channel)).collect())
            .unwrap_or_default();
        if serving.is_empty() {
            return Some(Choice::Sandbox);
        }
        let digits = t.to_address.trim_start_matches('+');
        let matching: Vec<&Arc<Route>> = serving
            .into_iter()
            .filter(|r| t.channel == "email" || digits.starts_with(&r.prefix))
            .collect();
        let longest = matching.iter().map(|r| r.prefix.len()).max()?;
        let mut best: Vec<&Arc<Route>> = matching.into_iter().filter(|r| r.prefix.len() == longest).collect();
        // Prefer providers that are up and not the one whose fault the last failure was,
        // as long as some remain.
        let healthy: Vec<&Arc<Route>> = best
            .iter()
            .copied()
            .filter(|r| r.adapter.health() == Health::Up && Some(r.provider_id) != t.avoid_provider_id)
            .collect();
        if !healthy.is_empty() {
            best = healthy;
        }
        Some(Choice::Provider(weighted(&best).clone()))
    }
}

fn weighted<'a>(routes: &[&'a Arc<Route>]) -> &'a Arc<Route> {
    let total: i64 = routes.iter().map(|r| r.weight.max(1)).sum();
    let mut pick = rand::rng().random_range(0..total);
    for r in routes {
        let w = r.weight.max(1);
        if pick < w {
            return r;
        }
        pick -= w;
    }
    routes[routes.len() - 1]
}

/// Build a registry from the provider rows, reusing the adapters of unchanged providers
/// from `previous` (an SMPP bind is not torn down because another provider changed), for
/// a cluster of `nodes` live workers.
/// Returns the registry and the adapters that are no longer used, to shut down.
pub(crate) fn rebuild(
    providers: &[Provider],
    previous: &Registry,
    nodes: u32,
    ctx: &Context,
    sink: &EventSink,
) -> (Registry, Vec<Arc<dyn Channel>>) {
    let mut by_account: HashMap<i64, Vec<Arc<Route>>> = HashMap::new();
    let mut by_provider = HashMap::new();
    for p in providers.iter().filter(|p| p.active) {
        let tps = throughput_share(p, nodes);
        let route = match previous.by_provider.get(&p.id) {
            Some(r) if r.version == p.updated_at && r.throughput == tps => r.clone(),
            _ => {
                let settings = serde_json::Value::Object(p.settings.0.clone());
                match sauti_channels::build(&p.kind, p.id, &settings, tps, ctx, sink.clone()) {
                    Ok(adapter) => Arc::new(Route {
                        provider_id: p.id,
                        kind: p.kind.clone(),
                        channels: p.channels.0.clone(),
                        prefix: p.prefix.clone(),
                        weight: p.weight,
                        adapter,
                        version: p.updated_at,
                        throughput: tps,
                    }),
                    Err(e) => {
                        tracing::error!(provider_id = p.id, kind = %p.kind, error = %e, "provider settings are unusable; not routing to it");
                        continue;
                    }
                }
            }
        };
        by_account.entry(p.account_id).or_default().push(route.clone());
        by_provider.insert(p.id, route);
    }
    let retired = previous
        .by_provider
        .iter()
        .filter(|(id, r)| by_provider.get(*id).is_none_or(|n: &Arc<Route>| !Arc::ptr_eq(n, r)))
        .map(|(_, r)| r.adapter.clone())
        .collect();
    (
        Registry {
            by_account,
            by_provider,
            sandbox: previous.sandbox.clone(),
        },
        retired,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(kind: &str, tps: Option<i64>) -> Provider {
        Provider {
            id: 1,
            account_id: 1,
            name: "p".into(),
            kind: kind.into(),
            channels: sauti_store::Json(vec!["sms".into()]),
            settings: sauti_store::Json(Default::default()),
            prefix: String::new(),
            weight: 1,
            throughput_per_second: tps,
            active: true,
            metadata: sauti_store::Json(Default::default()),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn http_limits_are_shared_between_nodes_and_smpp_binds_keep_theirs() {
        let twilio = provider("twilio", Some(10));
        assert_eq!(throughput_share(&twilio, 1), Some(10));
        assert_eq!(throughput_share(&twilio, 2), Some(5));
        assert_eq!(throughput_share(&twilio, 3), Some(4), "rounded up");
        assert_eq!(throughput_share(&twilio, 50), Some(1), "never nothing");
        assert_eq!(throughput_share(&provider("kannel", Some(100)), 4), Some(25));
        assert_eq!(throughput_share(&provider("smpp", Some(100)), 4), Some(100));
        assert_eq!(throughput_share(&provider("twilio", None), 4), None, "no limit");
    }
}
