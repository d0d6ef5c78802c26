//! Campaign work: populating callouts from their audience, and pacing their
//! participations into the delivery queue. Both are steps over the store that any number
//! of workers may run at once (populations are leased, pacing locks the callout row), so a
//! crash loses nothing: the next tick, here or on another node, goes on from the data.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sauti_core::filter::{filter_params_to_pairs, parse_list_query};
use sauti_store::callouts::participation_row;
use sauti_store::{BatchOperation, JsonMap, StoreResult};
use tokio_util::sync::CancellationToken;

use crate::{Inner, now_plus};

/// Contacts read and participations written per population transaction.
const POPULATION_CHUNK: u32 = 2000;
/// Longest a population holds the loop before the pacer gets a turn.
const POPULATION_SLICE: Duration = Duration::from_millis(250);

pub(crate) async fn campaign_loop(inner: Arc<Inner>, stop: CancellationToken) {
    loop {
        let mut busy = false;
        match populate(&inner).await {
            Ok(more) => busy |= more,
            Err(e) => tracing::warn!(error = %e, "populating a callout failed; retrying"),
        }
        match pace(&inner).await {
            Ok(full) => busy |= full,
            Err(e) => tracing::warn!(error = %e, "pacing callouts failed; retrying"),
        }
        // Pacing slots are stamped a horizon ahead, so a tick per poll interval keeps
        // the queue fed; a tick that released a full batch (an unthrottled callout) or a
        // population with more to do goes again at once.
        let wait = if busy {
            Duration::from_millis(5)
        } else {
            inner.config.poll_interval
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One tick of every running callout. `true` when one released a full batch.
async fn pace(inner: &Inner) -> StoreResult<bool> {
    let limits = inner.config.pacing;
    let mut full = false;
    let mut released = 0;
    for id in inner.store.running_callouts().await? {
        let now = inner.config.clock.now();
        let paced = inner.store.pace_callout(id, now, limits).await?;
        released += paced.released;
        full |= paced.released >= u64::from(limits.max_release);
    }
    if released > 0 {
        inner.wake.notify_one();
    }
    Ok(full)
}

/// Work on one population for a slice of time. `true` when it has more to do.
async fn populate(inner: &Inner) -> StoreResult<bool> {
    let owner = &inner.config.owner;
    let now = inner.config.clock.now();
    let Some(mut op) = inner
        .store
        .claim_batch_operation(owner, now, now_plus(inner.config.lease))
        .await?
    else {
        return Ok(false);
    };
    let Some(callout) = (match op.callout_id {
        Some(id) => inner.store.callout_by_id(id).await?,
        None => None,
    }) else {
        inner
            .store
            .fail_batch_operation(op.id, "its callout no longer exists")
            .await?;
        return Ok(false);
    };
    let content = match inner.store.callout_content(&callout).await? {
        Ok(c) => c,
        Err(why) => {
            inner.store.fail_batch_operation(op.id, &why).await?;
            return Ok(false);
        }
    };
    let query = match audience_query(&op) {
        Ok(q) => q,
        Err(why) => {
            inner.store.fail_batch_operation(op.id, &why).await?;
            return Ok(false);
        }
    };
    let started = Instant::now();
    while started.elapsed() < POPULATION_SLICE {
        let contacts = inner.store.population_chunk(&op, &query, POPULATION_CHUNK).await?;
        let finished = contacts.len() < POPULATION_CHUNK as usize;
        let cursor = contacts.last().map_or(op.contact_cursor, |c| c.id);
        let rows: Vec<_> = contacts
            .iter()
            .filter_map(|c| participation_row(&callout, &content, c, Some(op.id), JsonMap::new()))
            .collect();
        let kept = inner
            .store
            .advance_population(&op, owner, &rows, cursor, finished, now_plus(inner.config.lease))
            .await?;
        if !kept {
            tracing::warn!(
                batch_operation_id = op.id,
                "lost the lease of a population; another worker has it"
            );
            return Ok(false);
        }
        if finished {
            tracing::info!(
                batch_operation_id = op.id,
                callout_id = callout.id,
                "population finished"
            );
            return Ok(false);
        }
        op.contact_cursor = cursor;
    }
    Ok(true)
}

/// The contact filter of a population, parsed as `GET /api/contacts` parses its `q`.
fn audience_query(op: &BatchOperation) -> Result<sauti_core::filter::ListQuery, String> {
    let pairs = op.contact_filter().map(filter_params_to_pairs).unwrap_or_default();
    parse_list_query(&pairs, &sauti_store::contacts::FILTER)
        .map_err(|e| format!("its contact_filter_params no longer parse: {e:?}"))
}
