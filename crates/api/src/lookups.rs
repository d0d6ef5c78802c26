//! Batched look-ups of contacts by number. A send to a raw number must know whether the
//! number belongs to a contact (whose opt-out and fields apply) before it answers;
//! concurrent sends hand their numbers to a few readers, which ask for all of them in one
//! query. Each query is a hop to a database connection and back; under load this turns
//! one per request into one per batch, as `inserts.rs` does for the inserts.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use sauti_store::{Contact, Store, StoreResult};
use tokio::sync::{Mutex, mpsc, oneshot};

/// Most numbers in one query.
const MAX_BATCH: usize = 256;

struct Job {
    account_id: i64,
    msisdn: String,
    reply: oneshot::Sender<StoreResult<Option<Contact>>>,
}

pub(crate) struct ContactLookups {
    store: Store,
    queue: OnceLock<mpsc::Sender<Job>>,
}

impl ContactLookups {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            queue: OnceLock::new(),
        }
    }

    /// The readers start with the first look-up, inside the server's runtime.
    fn queue(&self) -> &mpsc::Sender<Job> {
        self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>(MAX_BATCH * 8);
            let rx = Arc::new(Mutex::new(rx));
            // Two readers: one gathers while the other's query runs.
            for _ in 0..2 {
                tokio::spawn(read_loop(self.store.clone(), rx.clone()));
            }
            tx
        })
    }

    /// The account's contact with number `msisdn` (E.164), if there is one.
    pub async fn find(&self, account_id: i64, msisdn: String) -> StoreResult<Option<Contact>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            account_id,
            msisdn,
            reply,
        };
        if let Err(mpsc::error::SendError(job)) = self.queue().send(job).await {
            // The readers are gone (the runtime is shutting down): ask here.
            return self.store.find_contact_by_msisdn(job.account_id, &job.msisdn).await;
        }
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(sauti_store::StoreError::Config("the contact reader stopped".into())),
        }
    }
}

async fn read_loop(store: Store, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            jobs.push(first);
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
        }
        let mut by_account: HashMap<i64, Vec<Job>> = HashMap::new();
        for j in jobs {
            by_account.entry(j.account_id).or_default().push(j);
        }
        for (account_id, jobs) in by_account {
            let numbers: Vec<&str> = jobs.iter().map(|j| j.msisdn.as_str()).collect();
            match store.find_contacts_by_msisdns(account_id, &numbers).await {
                Ok(found) => {
                    let by_number: HashMap<String, Contact> =
                        found.into_iter().map(|c| (c.msisdn.clone(), c)).collect();
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
}
