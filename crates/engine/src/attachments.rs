//! The files an email carries: its template's attachments as they are when the email
//! leaves, read from the blob store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sauti_channels::Attachment;
use sauti_store::blobs::Blobs;
use sauti_store::{Attempt, Transmission};

use crate::{Inner, apply_failures, fail_now};

/// Most bytes of attachment files kept in memory between claims. A campaign sends the
/// same few files to every recipient; blob names are never reused (a new upload is a new
/// name), so a cached file is never stale.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Default)]
pub(crate) struct AttachmentCache {
    files: Mutex<Cached>,
}

/// Files by blob name, and how many bytes they hold together.
#[derive(Default)]
struct Cached {
    bytes: usize,
    by_blob: HashMap<String, Arc<Vec<u8>>>,
}

impl AttachmentCache {
    fn get(&self, blob: &str) -> Option<Arc<Vec<u8>>> {
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files.by_blob.get(blob).cloned()
    }

    fn put(&self, blob: &str, bytes: Arc<Vec<u8>>) {
        if bytes.len() > CACHE_BYTES {
            return;
        }
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if files.bytes + bytes.len() > CACHE_BYTES {
            *files = Cached::default();
        }
        files.bytes += bytes.len();
        files.by_blob.insert(blob.to_string(), bytes);
    }
}

type Pair = (Transmission, Attempt);

/// The attachments of the emails among `pairs` (by transmission id). An email whose file
/// is gone from the blob store is failed (`attachment_missing`); when the attachments
/// cannot be read at all, the emails from templates are held back and their leases
/// expire, so they are claimed again.
pub(crate) async fn with_attachments(inner: &Inner, pairs: Vec<Pair>) -> (Vec<Pair>, HashMap<i64, Vec<Attachment>>) {
    let from_template = |t: &Transmission| t.channel == "email" && t.template_id.is_some();
    let mut template_ids: Vec<i64> = pairs
        .iter()
        .filter(|(t, _)| from_template(t))
        .filter_map(|(t, _)| t.template_id)
        .collect();
    let mut files = HashMap::new();
    if template_ids.is_empty() {
        return (pairs, files);
    }
    template_ids.sort_unstable();
    template_ids.dedup();
    let rows = match inner.store.template_attachments(None, &template_ids).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "reading template attachments failed; those emails wait for the lease to expire");
            let rest = pairs.into_iter().filter(|(t, _)| !from_template(t)).collect();
            return (rest, files);
        }
    };
    let blobs = Blobs::new(&inner.config.data_dir);
    // Per (account, template): its files, or `None` when one of them could not be read.
    // Keyed by account too, so a message only ever carries its own account's files.
    let mut by_template: HashMap<(i64, i64), Option<Vec<Attachment>>> = HashMap::new();
    for row in rows {
        let entry = by_template
            .entry((row.account_id, row.template_id))
            .or_insert_with(|| Some(vec![]));
        let Some(list) = entry else { continue };
        let bytes = match inner.attachments.get(&row.blob) {
            Some(b) => Some(b),
            None => match blobs.read(row.account_id, &row.blob).await {
                Ok(Some(b)) => {
                    let b = Arc::new(b);
                    inner.attachments.put(&row.blob, b.clone());
                    Some(b)
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, blob = %row.blob, "reading an attachment failed");
                    None
                }
            },
        };
        match bytes {
            Some(b) => list.push(Attachment {
                file_name: row.file_name,
                content_type: row.content_type,
                data: b.as_ref().clone(),
            }),
            None => *entry = None,
        }
    }
    let mut keep = Vec::with_capacity(pairs.len());
    let mut failed = Vec::new();
    for (t, a) in pairs {
        let Some(template_id) = t.template_id.filter(|_| from_template(&t)) else {
            keep.push((t, a));
            continue;
        };
        match by_template.get(&(t.account_id, template_id)) {
            // A template without files, or one deleted since: the email goes as it is.
            None => keep.push((t, a)),
            Some(Some(list)) => {
                files.insert(t.id, list.clone());
                keep.push((t, a));
            }
            Some(None) => {
                let why = "a file of the email's template could not be read from the blob store";
                failed.push(fail_now(inner, &t, Some(a.id), "attachment_missing", why));
            }
        }
    }
    apply_failures(inner, &failed, "emails whose attachments are missing").await;
    (keep, files)
}
