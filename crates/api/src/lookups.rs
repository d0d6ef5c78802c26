//! Batched look-ups of contacts by number. A send to a raw number must know whether the
//! number belongs to a contact (whose opt-out and fields apply) before it answers;
//! concurrent sends hand their numbers to two readers, which ask for all of them in one
//! query (`batch.rs`).

use std::collections::HashMap;

use sauti_store::{Contact, Store, StoreResult};
use tokio::sync::oneshot;

use crate::batch::Batcher;

/// Most numbers in one query.
const MAX_BATCH: usize = 256;

struct Job {
    account_id: i64,
    msisdn: String,
    reply: oneshot::Sender<StoreResult<Option<Contact>>>,
}

pub(crate) struct ContactLookups {
    store: Store,
    batcher: Batcher<Job>,
}

impl ContactLookups {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            batcher: Batcher::new(MAX_BATCH),
        }
    }

    /// The account's contact with number `msisdn` (E.164), if there is one.
    pub async fn find(&self, account_id: i64, msisdn: String) -> StoreResult<Option<Contact>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            account_id,
            msisdn,
            reply,
        };
        let store = self.store.clone();
        let read = move |jobs| read_batch(store.clone(), jobs);
        // Two readers: one gathers while the other's query runs.
        if let Err(job) = self.batcher.submit(job, 2, read).await {
            // The readers are gone (the runtime is shutting down): ask here.
            return self.store.find_contact_by_msisdn(job.account_id, &job.msisdn).await;
        }
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(sauti_store::StoreError::Config("the contact reader stopped".into())),
        }
    }
}

async fn read_batch(store: Store, jobs: Vec<Job>) {
    let mut by_account: HashMap<i64, Vec<Job>> = HashMap::new();
    for j in jobs {
        by_account.entry(j.account_id).or_default().push(j);
    }
    for (account_id, jobs) in by_account {
        let numbers: Vec<&str> = jobs.iter().map(|j| j.msisdn.as_str()).collect();
        match store.find_contacts_by_msisdns(account_id, &numbers).await {
            Ok(found) => {
                let by_number: HashMap<String, Contact> = found.into_iter().map(|c| (c.msisdn.clone(), c)).collect();
                for j in jobs {
                    let _ = j.reply.send(Ok(by_number.get(&j.msisdn).cloned()));
                }
            }
            // Each alone, for its own answer.
            Err(_) => {
                for j in jobs {
                    let _ = j
                        .reply
                        .send(store.find_contact_by_msisdn(j.account_id, &j.msisdn).await);
                }
            }
        }
    }
}
