//! The outcome writer's batch on both backends: outcomes and receipts in one transaction,
//! a receipt naming a message id that an outcome of the same batch records, and the
//! status-change webhooks of a batch larger than one statement can carry.

use chrono::Utc;
use sauti_core::filter::{Filter, ListQuery};
use sauti_store::testing::{Backend, TestDatabase};
use sauti_store::{
    Json, NewAccount, NewTransmission, Outcome, ReceiptIn, ReceiptMatch, Settle, Store, StoreOptions, WebhookEndpoint,
};
use serde_json::json;

async fn store(backend: Backend) -> Option<(Store, TestDatabase)> {
    let db = TestDatabase::create(backend).await?;
    let store = Store::connect(&db.url, &StoreOptions::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    Some((store, db))
}

fn receipt(remote_id: String) -> ReceiptIn {
    ReceiptIn {
        kind: "smpp".into(),
        provider_id: None,
        attempt_id: None,
        remote_id,
        status: "delivered",
        raw_status: "DELIVRD".into(),
        error_code: None,
        done_at: None,
        raw: json!({"text": "stat:DELIVRD"}),
    }
}

async fn one_batch(backend: Backend) {
    let Some((s, _db)) = store(backend).await else { return };
    let account = s
        .create_account(&NewAccount {
            name: "settle".into(),
            super_admin: false,
            metadata: Default::default(),
            settings: Default::default(),
        })
        .await
        .unwrap();
    // Two listeners: every status change is two deliveries.
    let mut endpoints = Vec::new();
    for n in 0..2 {
        let e = s
            .create_webhook_endpoint(&WebhookEndpoint {
                id: 0,
                account_id: account.id,
                url: format!("http://127.0.0.1:9/hook{n}"),
                description: None,
                events: Json(vec!["transmission.status_changed".into()]),
                secret: format!("whsec_{n}"),
                active: true,
                disabled_reason: None,
                metadata: Json(Default::default()),
                created_at: Utc::now(),
                updated_at: Utc::now(),
            })
            .await
            .unwrap();
        endpoints.push(e.id);
    }
    // 2,100 sent and 1,050 delivered changes, twice: 6,300 deliveries of 8 values each,
    // more than one SQLite statement may bind.
    const N: usize = 2100;
    let rows: Vec<NewTransmission> = (0..N)
        .map(|i| NewTransmission {
            account_id: account.id,
            direction: "outbound".into(),
            channel: "sms".into(),
            origin: "api".into(),
            to_address: format!("+25470{i:07}"),
            body: "hello".into(),
            segments: 1,
            status: "queued".into(),
            max_attempts: 3,
            ..Default::default()
        })
        .collect();
    let mut created = Vec::new();
    for chunk in rows.chunks(500) {
        created.extend(s.create_transmissions(chunk).await.unwrap());
    }
    assert_eq!(created.len(), N);
    let owner = "worker-settle";
    let mut claimed = Vec::new();
    while claimed.len() < N {
        let now = Utc::now();
        let (pairs, unrouted) = s
            .claim_due(owner, now, now + chrono::Duration::seconds(30), 500, true, |_| {
                Some((None, "sandbox".to_string()))
            })
            .await
            .unwrap();
        assert!(unrouted.is_empty());
        assert!(!pairs.is_empty(), "claimed {} of {N}", claimed.len());
        claimed.extend(pairs);
    }
    let outcomes: Vec<Outcome> = claimed
        .iter()
        .map(|(t, a)| Outcome {
            transmission_id: t.id,
            attempt_id: Some(a.id),
            number: a.number,
            lease_owner: Some(owner.into()),
            settle: Settle::Sent {
                remote_id: format!("r{}", a.id),
                segments: 1,
                raw_status: None,
                response: json!({}),
            },
        })
        .collect();
    // Receipts for every other message, by the message id its outcome (in this same
    // batch) records, and one for a message nobody sent.
    let mut receipts: Vec<ReceiptIn> = claimed
        .iter()
        .step_by(2)
        .map(|(_, a)| receipt(format!("r{}", a.id)))
        .collect();
    receipts.push(receipt("nobody-sent-this".into()));
    let (changed, matches) = s.settle_batch(&outcomes, &receipts).await.unwrap();
    assert_eq!(changed.len(), N, "the outcomes' changes");
    assert!(changed.iter().all(|t| t.status == "sent"));
    assert_eq!(matches.len(), receipts.len());
    assert!(matches[..N / 2].iter().all(|m| *m == ReceiptMatch::Applied));
    assert_eq!(matches[N / 2], ReceiptMatch::Unmatched);

    for (i, (t, _)) in claimed.iter().enumerate() {
        let t = s.get_transmission(account.id, t.id).await.unwrap().unwrap();
        let want = if i % 2 == 0 { "delivered" } else { "sent" };
        assert_eq!(t.status, want, "transmission {} (#{i})", t.id);
    }
    let count = ListQuery {
        filter: Filter::default(),
        sort: vec![],
        page: 1,
        per_page: 1,
    };
    for e in endpoints {
        let page = s.list_webhook_deliveries(account.id, Some(e), &count).await.unwrap();
        assert_eq!(page.total, (N + N / 2) as u64, "deliveries to endpoint {e}");
    }
}

#[tokio::test]
async fn one_batch_on_sqlite() {
    one_batch(Backend::Sqlite).await;
}

#[tokio::test]
async fn one_batch_on_postgres() {
    one_batch(Backend::Postgres).await;
}
