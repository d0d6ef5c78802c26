//! The SMPP adapter against sauti's own SMSC simulator (crates/smsc-sim): volume,
//! throttling, disconnects, error statuses, multi-part receipts, MO, shutdown drain.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sauti_channels::smpp::{SmppChannel, validate_settings};
use sauti_channels::{Channel, ChannelKind, Event, Health, Inbound, Outbound, Receipt, SendOutcome};
use sauti_smsc_sim::{SimConfig, Simulator};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};

/// Everything the channel reported; acks are fired as the engine would after storing.
#[derive(Default)]
struct Seen {
    outcomes: Vec<(i64, SendOutcome)>,
    receipts: Vec<Receipt>,
    inbound: Vec<Inbound>,
}

fn collect(mut events: mpsc::Receiver<Event>) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let out = seen.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let mut s = out.lock().unwrap();
            match event {
                Event::Outcome { attempt_id, outcome } => s.outcomes.push((attempt_id, outcome)),
                Event::Receipt { receipt, ack, .. } => {
                    s.receipts.push(receipt);
                    let _ = ack.map(|a| a.send(()));
                }
                Event::Inbound { message, ack, .. } => {
                    s.inbound.push(message);
                    let _ = ack.map(|a| a.send(()));
                }
            }
        }
    });
    seen
}

async fn wait_for(seen: &Arc<Mutex<Seen>>, what: &str, limit: Duration, done: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if done(&seen.lock().unwrap()) {
            return;
        }
        {
            let s = seen.lock().unwrap();
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {} outcomes, {} receipts",
                s.outcomes.len(),
                s.receipts.len()
            );
        }
        sleep(Duration::from_millis(20)).await;
    }
}

async fn start(sim: &Simulator, extra: serde_json::Value) -> (Arc<SmppChannel>, Arc<Mutex<Seen>>) {
    let mut settings = json!({
        "host": "127.0.0.1",
        "port": sim.addr().port(),
        "system_id": "test",
        "password": "secret",
        "window": 500,
        "response_timeout_secs": 5,
        "reconnect_min_ms": 50,
        "reconnect_max_ms": 400,
        "default_from": "+254711000000",
    });
    settings
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (sink, events) = mpsc::channel(4096);
    let channel = SmppChannel::start(1, validate_settings(&settings).unwrap(), None, sink);
    let deadline = Instant::now() + Duration::from_secs(10);
    while channel.health() != Health::Up {
        assert!(Instant::now() < deadline, "never bound");
        sleep(Duration::from_millis(10)).await;
    }
    (channel, collect(events))
}

fn message(attempt_id: i64, body: &str, want_receipt: bool) -> Outbound {
    Outbound {
        attempt_id,
        transmission_id: attempt_id,
        account_id: 1,
        channel: ChannelKind::Sms,
        to: format!("+2547{:08}", attempt_id),
        from: None,
        body: body.into(),
        subject: None,
        html: None,
        attachments: vec![],
        validity: None,
        want_receipt,
    }
}

fn sim_config() -> SimConfig {
    SimConfig {
        system_id: "test".into(),
        password: "secret".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_accepted_and_receipted() {
    let sim = Simulator::start(sim_config()).await.unwrap();
    let (channel, seen) = start(&sim, json!({})).await;
    const N: i64 = 10_000;
    timeout(Duration::from_secs(60), async {
        for i in 1..=N {
            channel.send(message(i, "Your code is 1234", true)).await;
        }
    })
    .await
    .expect("sent in time");
    wait_for(&seen, "outcomes and receipts", Duration::from_secs(60), |s| {
        s.outcomes.len() as i64 >= N && s.receipts.len() as i64 >= N
    })
    .await;
    assert!(sim.wait_for_receipts_acked(N as u64, Duration::from_secs(20)).await);

    {
        let s = seen.lock().unwrap();
        let mut remote = HashSet::new();
        let attempts: HashSet<i64> = s.outcomes.iter().map(|(a, _)| *a).collect();
        assert_eq!(attempts.len() as i64, N, "exactly one outcome per message");
        for (attempt, outcome) in &s.outcomes {
            match outcome {
                SendOutcome::Accepted {
                    remote_id, segments: 1, ..
                } => assert!(remote.insert(remote_id.clone())),
                other => panic!("attempt {attempt}: {other:?}"),
            }
        }
        let receipted: HashSet<String> = s.receipts.iter().map(|r| r.remote_id.clone()).collect();
        assert_eq!(receipted, remote, "every receipt matches an accepted message");
    }

    let submits = sim.submits();
    assert_eq!(submits.len() as i64, N);
    assert!(
        submits
            .iter()
            .all(|s| s.data_coding == 0 && s.esm_class == 0 && s.udh.is_none())
    );
    assert!(
        submits
            .iter()
            .all(|s| s.source_addr == "254711000000" && s.text == "Your code is 1234")
    );
    timeout(Duration::from_secs(10), channel.shutdown()).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_messages_receipts_name_the_first_part_and_mo_arrives() {
    let sim = Simulator::start(sim_config()).await.unwrap();
    let (channel, seen) = start(&sim, json!({})).await;
    let long = "Привет! ".repeat(20); // UCS-2, 160 units: 3 parts
    for i in 1..=5 {
        channel.send(message(i, &long, true)).await;
    }
    wait_for(&seen, "receipts of 15 parts", Duration::from_secs(20), |s| {
        s.outcomes.len() == 5 && s.receipts.len() == 15
    })
    .await;
    {
        let s = seen.lock().unwrap();
        let mut firsts = HashMap::new();
        for (_, outcome) in &s.outcomes {
            match outcome {
                SendOutcome::Accepted {
                    remote_id,
                    part_ids,
                    segments: 3,
                    ..
                } => {
                    assert_eq!(&part_ids[0], remote_id);
                    firsts.insert(remote_id.clone(), 0);
                }
                other => panic!("{other:?}"),
            }
        }
        for r in &s.receipts {
            *firsts.get_mut(&r.remote_id).expect("receipt names a first part") += 1;
        }
        assert!(firsts.values().all(|&n| n == 3), "{firsts:?}");
    }
    let submits = sim.submits();
    assert_eq!(submits.len(), 15);
    for s in &submits {
        let (_, total, _) = s.udh.expect("UDH on every part");
        assert_eq!((s.data_coding, s.esm_class, total), (8, 0x40, 3));
    }
    let joined: String = submits
        .iter()
        .filter(|s| s.destination_addr == "254700000001")
        .map(|s| s.text.clone())
        .collect();
    assert_eq!(joined, long);

    assert!(sim.send_mo("+254722000001", "SAUTI", "Habari from the handset").await);
    wait_for(&seen, "the MO", Duration::from_secs(10), |s| !s.inbound.is_empty()).await;
    let mo = seen.lock().unwrap().inbound[0].clone();
    assert_eq!(mo.body, "Habari from the handset");
    assert!(mo.from.ends_with("254722000001"), "{}", mo.from);
    timeout(Duration::from_secs(10), channel.shutdown()).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_comes_back_throttled_then_recovers() {
    let sim = Simulator::start(SimConfig {
        throttle_rate: 1.0,
        ..sim_config()
    })
    .await
    .unwrap();
    let (channel, seen) = start(&sim, json!({})).await;
    for i in 1..=50 {
        channel.send(message(i, "slow down", false)).await;
    }
    wait_for(&seen, "50 outcomes", Duration::from_secs(20), |s| {
        s.outcomes.len() == 50
    })
    .await;
    for (attempt, outcome) in &seen.lock().unwrap().outcomes {
        match outcome {
            SendOutcome::Throttled {
                raw_status,
                retry_after,
            } => {
                assert_eq!(raw_status.as_deref(), Some("ESME_RTHROTTLED"));
                assert!(retry_after.is_some());
            }
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    sim.set_throttle_rate(0.0);
    for i in 51..=100 {
        channel.send(message(i, "go on", false)).await;
    }
    wait_for(&seen, "100 outcomes", Duration::from_secs(20), |s| {
        s.outcomes.len() == 100
    })
    .await;
    {
        let s = seen.lock().unwrap();
        assert!(
            s.outcomes[50..]
                .iter()
                .all(|(_, o)| matches!(o, SendOutcome::Accepted { .. }))
        );
    }
    assert_eq!(channel.health(), Health::Up);
    timeout(Duration::from_secs(10), channel.shutdown()).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnects_give_every_message_one_outcome_and_the_session_recovers() {
    let sim = Simulator::start(SimConfig {
        disconnect_every: 500,
        ..sim_config()
    })
    .await
    .unwrap();
    let (channel, seen) = start(&sim, json!({ "window": 200 })).await;
    const N: i64 = 3_000;
    timeout(Duration::from_secs(60), async {
        for i in 1..=N {
            channel.send(message(i, "through a flaky link", false)).await;
        }
    })
    .await
    .expect("sent in time");
    wait_for(&seen, "every outcome", Duration::from_secs(60), |s| {
        s.outcomes.len() as i64 >= N
    })
    .await;
    sleep(Duration::from_millis(200)).await;
    let (accepted, ambiguous, not_sent) = {
        let s = seen.lock().unwrap();
        assert_eq!(s.outcomes.len() as i64, N, "no message gets two outcomes");
        let attempts: HashSet<i64> = s.outcomes.iter().map(|(a, _)| *a).collect();
        assert_eq!(attempts.len() as i64, N);
        let (mut accepted, mut ambiguous, mut not_sent) = (0, 0, 0);
        for (attempt, outcome) in &s.outcomes {
            match outcome {
                SendOutcome::Accepted { .. } => accepted += 1,
                SendOutcome::Ambiguous { .. } => ambiguous += 1,
                SendOutcome::NotSent { .. } => not_sent += 1,
                other => panic!("attempt {attempt}: {other:?}"),
            }
        }
        (accepted, ambiguous, not_sent)
    };
    let stats = sim.stats();
    assert!(stats.disconnects >= 3, "{stats:?}");
    assert!(
        stats.binds > stats.disconnects,
        "rebound after each disconnect: {stats:?}"
    );
    assert!(ambiguous >= 1, "the unanswered submit at each disconnect is ambiguous");
    // Each disconnect strands at most a window (200) of written, unanswered submits.
    assert!(
        accepted >= N / 2 && (ambiguous + not_sent) as u64 <= (stats.disconnects + 1) * 200,
        "accepted {accepted}, ambiguous {ambiguous}, not sent {not_sent}, {stats:?}"
    );
    // And it is still working.
    let deadline = Instant::now() + Duration::from_secs(10);
    while channel.health() != Health::Up {
        assert!(Instant::now() < deadline);
        sleep(Duration::from_millis(10)).await;
    }
    channel.send(message(N + 1, "still there?", false)).await;
    wait_for(&seen, "one more", Duration::from_secs(10), |s| {
        s.outcomes.len() as i64 == N + 1
    })
    .await;
    timeout(Duration::from_secs(10), channel.shutdown()).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses_fail_permanently_or_not() {
    for (status, name, permanent) in [(0x0B, "ESME_RINVDSTADR", true), (0x45, "ESME_RSUBMITFAIL", false)] {
        let sim = Simulator::start(SimConfig {
            error_rate: 1.0,
            error_status: status,
            ..sim_config()
        })
        .await
        .unwrap();
        let (channel, seen) = start(&sim, json!({})).await;
        for i in 1..=10 {
            channel.send(message(i, "refused", true)).await;
        }
        wait_for(&seen, "10 outcomes", Duration::from_secs(20), |s| {
            s.outcomes.len() == 10
        })
        .await;
        for (attempt, outcome) in &seen.lock().unwrap().outcomes {
            match outcome {
                SendOutcome::Failed(f) => {
                    assert_eq!(f.code.as_deref(), Some(format!("0x{status:08X}").as_str()));
                    assert_eq!(
                        (f.message.as_str(), f.permanent, f.provider_fault),
                        (name, permanent, false)
                    );
                }
                other => panic!("attempt {attempt}: {other:?}"),
            }
        }
        timeout(Duration::from_secs(10), channel.shutdown()).await.unwrap();
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_in_flight_responses() {
    let sim = Simulator::start(SimConfig {
        submit_latency: Duration::from_millis(800),
        ..sim_config()
    })
    .await
    .unwrap();
    let (channel, seen) = start(&sim, json!({})).await;
    for i in 1..=20 {
        channel.send(message(i, "almost closing time", false)).await;
    }
    assert!(sim.wait_for_submits(20, Duration::from_secs(5)).await);
    timeout(Duration::from_secs(10), channel.shutdown())
        .await
        .expect("shutdown in time");
    // Reported (in the sink) before shutdown returned; the collector reads them just after.
    wait_for(&seen, "20 outcomes", Duration::from_secs(2), |s| s.outcomes.len() == 20).await;
    {
        let s = seen.lock().unwrap();
        assert!(
            s.outcomes
                .iter()
                .all(|(_, o)| matches!(o, SendOutcome::Accepted { .. }))
        );
    }
    assert_eq!(channel.health(), Health::Down);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_that_never_comes_in_time_is_ambiguous_once() {
    let sim = Simulator::start(SimConfig {
        submit_latency: Duration::from_millis(2500),
        ..sim_config()
    })
    .await
    .unwrap();
    let (channel, seen) = start(&sim, json!({ "response_timeout_secs": 1 })).await;
    for i in 1..=5 {
        channel.send(message(i, "too slow", false)).await;
    }
    wait_for(&seen, "5 outcomes", Duration::from_secs(5), |s| s.outcomes.len() == 5).await;
    // The late responses (at 2.5 s) must not produce a second outcome.
    sleep(Duration::from_millis(2000)).await;
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.outcomes.len(), 5);
        for (attempt, outcome) in &s.outcomes {
            match outcome {
                SendOutcome::Ambiguous { reason } => assert!(reason.contains("no submit_sm_resp"), "{reason}"),
                other => panic!("attempt {attempt}: {other:?}"),
            }
        }
    }
    assert_eq!(channel.health(), Health::Up);
    timeout(Duration::from_secs(10), channel.shutdown()).await.unwrap();
    sim.shutdown().await;
}
