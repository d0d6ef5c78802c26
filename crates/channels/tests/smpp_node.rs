//! The SMPP adapter against an SMSC on the npm package `smpp` (peers/smsc-node/smsc.js):
//! a peer we did not write, so the wire format is checked by someone else's decoder.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sauti_channels::smpp::{SmppChannel, SmppSettings, validate_settings};
use sauti_channels::{Channel, ChannelKind, Event, Health, Outbound, ReceiptStatus, SendOutcome};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The node SMSC and every JSON line it printed.
struct Node {
    _child: Child,
    port: u16,
    log: Arc<Mutex<Vec<Value>>>,
}

impl Node {
    async fn start() -> Node {
        assert!(
            root().join("peers/smsc-node/node_modules/smpp").is_dir(),
            "npm smpp missing: run scripts/install-test-peers"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("node")
            .arg("peers/smsc-node/smsc.js")
            .current_dir(root())
            .env("PORT", port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let sink = log.clone();
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if v["event"] == "listening"
                    && let Some(tx) = ready.take()
                {
                    let _ = tx.send(());
                }
                sink.lock().unwrap().push(v);
            }
        });
        timeout(Duration::from_secs(15), ready_rx)
            .await
            .expect("node SMSC listening")
            .unwrap();
        Node {
            _child: child,
            port,
            log,
        }
    }

    fn lines(&self, pdu: &str) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["pdu"] == pdu)
            .cloned()
            .collect()
    }

    async fn wait_lines(&self, pdu: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.lines(pdu);
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            sleep(Duration::from_millis(20)).await;
        }
    }
}

fn settings(port: u16, password: &str) -> SmppSettings {
    validate_settings(&json!({
        "host": "127.0.0.1",
        "port": port,
        "system_id": "test",
        "password": password,
        "enquire_link_interval_secs": 1,
        "response_timeout_secs": 5,
        "reconnect_min_ms": 100,
        "reconnect_max_ms": 500,
        "default_from": "SAUTI",
    }))
    .unwrap()
}

fn message(attempt_id: i64, to: &str, body: &str) -> Outbound {
    Outbound {
        attempt_id,
        transmission_id: attempt_id,
        account_id: 1,
        channel: ChannelKind::Sms,
        to: to.into(),
        from: None,
        body: body.into(),
        subject: None,
        html: None,
        attachments: vec![],
        validity: Some(Duration::from_secs(3600)),
        want_receipt: true,
    }
}

async fn wait_up(channel: &SmppChannel) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while channel.health() != Health::Up {
        assert!(Instant::now() < deadline, "never bound");
        sleep(Duration::from_millis(20)).await;
    }
}

async fn next(events: &mut mpsc::Receiver<Event>) -> Event {
    timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event in time")
        .expect("sink open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_gsm7_ucs2_and_long_messages_and_acks_receipts() {
    let node = Node::start().await;
    let (sink, mut events) = mpsc::channel(1024);
    let channel = SmppChannel::start(7, settings(node.port, "secret"), None, sink);
    wait_up(&channel).await;
    let bind = node.lines("bind_transceiver");
    assert_eq!(bind.len(), 1);
    assert_eq!(bind[0]["interface_version"], 0x34);

    let gsm = "Hello @home {ok} €5";
    let ucs2 = "Habari 😀 ç";
    let long = "Sauti long message. ".repeat(20); // 400 GSM-7 characters: 3 parts
    channel.send(message(1, "+254700000001", gsm)).await;
    channel.send(message(2, "+254700000002", ucs2)).await;
    channel.send(message(3, "+254700000003", &long)).await;

    let mut accepted = std::collections::HashMap::new();
    let mut receipts = Vec::new();
    while accepted.len() < 3 {
        match next(&mut events).await {
            Event::Outcome { attempt_id, outcome } => match outcome {
                SendOutcome::Accepted {
                    remote_id,
                    part_ids,
                    segments,
                    raw_status,
                    ..
                } => {
                    assert_eq!(raw_status.as_deref(), Some("ESME_ROK"));
                    assert_eq!(part_ids.len() as u32, segments);
                    assert_eq!(part_ids[0], remote_id);
                    accepted.insert(attempt_id, (remote_id, segments));
                }
                other => panic!("attempt {attempt_id}: {other:?}"),
            },
            Event::Receipt {
                receipt,
                ack,
                provider_id,
            } => {
                assert_eq!(provider_id, 7);
                receipts.push((receipt, ack));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(accepted[&1].1, 1);
    assert_eq!(accepted[&2].1, 1);
    assert_eq!(accepted[&3].1, 3);

    let submits = node.wait_lines("submit_sm", 5).await;
    assert_eq!(submits.len(), 5, "{submits:?}");
    let by_dest = |d: &str| {
        submits
            .iter()
            .filter(|s| s["destination_addr"] == d)
            .cloned()
            .collect::<Vec<_>>()
    };
    let g = &by_dest("254700000001")[0];
    assert_eq!((g["data_coding"].as_u64(), g["esm_class"].as_u64()), (Some(0), Some(0)));
    assert_eq!(g["udh"], false);
    assert_eq!(g["message_hex"], hex(&sauti_core::sms::encode_gsm7(gsm).unwrap()));
    assert_eq!(
        (g["source_addr"].as_str(), g["source_addr_ton"].as_u64()),
        (Some("SAUTI"), Some(5))
    );
    assert_eq!(
        (g["dest_addr_ton"].as_u64(), g["dest_addr_npi"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(g["registered_delivery"], 1);
    // One hour, relative: YYMMDDhhmmss000R.
    assert_eq!(g["validity_period"], "000000010000000R");
    let u = &by_dest("254700000002")[0];
    assert_eq!((u["data_coding"].as_u64(), u["esm_class"].as_u64()), (Some(8), Some(0)));
    assert_eq!(u["message_hex"], hex(&sauti_core::sms::encode_ucs2(ucs2)));
    let parts = by_dest("254700000003");
    assert_eq!(parts.len(), 3);
    let (_, texts) = sauti_core::sms::split(&long);
    let reference = &parts[0]["udh_hex"].as_str().unwrap()[6..8];
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(
            (p["data_coding"].as_u64(), p["esm_class"].as_u64()),
            (Some(0), Some(0x40))
        );
        assert_eq!(p["udh"], true);
        assert_eq!(p["udh_hex"], format!("050003{reference}03{:02x}", i + 1));
        assert_eq!(p["message_hex"], hex(&sauti_core::sms::encode_gsm7(&texts[i]).unwrap()));
    }

    // One receipt per part: 5, and the long message's three all name its first part.
    while receipts.len() < 5 {
        match next(&mut events).await {
            Event::Receipt { receipt, ack, .. } => receipts.push((receipt, ack)),
            other => panic!("{other:?}"),
        }
    }
    let mut per_remote = std::collections::HashMap::new();
    for (receipt, _) in &receipts {
        assert_eq!(receipt.status, ReceiptStatus::Delivered);
        assert_eq!(receipt.raw_status, "DELIVRD");
        assert_eq!(receipt.error_code.as_deref(), Some("000"));
        assert!(receipt.done_at.is_some());
        *per_remote.entry(receipt.remote_id.clone()).or_insert(0) += 1;
    }
    assert_eq!(per_remote[&accepted[&1].0], 1);
    assert_eq!(per_remote[&accepted[&2].0], 1);
    assert_eq!(per_remote[&accepted[&3].0], 3);

    // deliver_sm_resp goes out only once the ack fires.
    sleep(Duration::from_millis(300)).await;
    assert!(node.lines("deliver_sm_resp_for").is_empty(), "answered before the ack");
    for (_, ack) in receipts {
        ack.unwrap().send(()).unwrap();
    }
    let resps = node.wait_lines("deliver_sm_resp_for", 5).await;
    assert_eq!(resps.len(), 5);
    assert!(resps.iter().all(|r| r["status"] == 0), "{resps:?}");

    // A dropped ack (the engine could not store the receipt) answers ESME_RX_T_APPN.
    channel.send(message(4, "+254700000004", "drop my ack")).await;
    loop {
        match next(&mut events).await {
            Event::Outcome {
                outcome: SendOutcome::Accepted { .. },
                ..
            } => {}
            Event::Receipt { ack, .. } => {
                drop(ack);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    let resps = node.wait_lines("deliver_sm_resp_for", 6).await;
    assert_eq!(resps[5]["status"], 0x64);

    // A concatenated MO in two parts comes up as one inbound message.
    let mut mo = message(5, "+999", "send me an MO");
    mo.want_receipt = false;
    channel.send(mo).await;
    let inbound = loop {
        match next(&mut events).await {
            Event::Outcome {
                outcome: SendOutcome::Accepted { .. },
                ..
            } => {}
            Event::Inbound {
                message,
                ack,
                provider_id,
            } => {
                assert_eq!(provider_id, 7);
                ack.unwrap().send(()).unwrap();
                break message;
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(inbound.body, "Habari yako?");
    assert_eq!(inbound.from, "+254700000999");
    assert_eq!(inbound.to, "SAUTI");
    // No receipt wanted: registered_delivery 0.
    let mo_submit = node
        .lines("submit_sm")
        .into_iter()
        .find(|s| s["destination_addr"] == "999")
        .unwrap();
    assert_eq!(mo_submit["registered_delivery"], 0);
    let resps = node.wait_lines("deliver_sm_resp_for", 8).await;
    assert!(
        resps[6..].iter().all(|r| r["status"] == 0 && r["mo_part"].is_number()),
        "{resps:?}"
    );

    // The link stays alive with enquire_link while idle (interval 1 s).
    sleep(Duration::from_millis(1500)).await;
    assert!(!node.lines("enquire_link").is_empty());

    timeout(Duration::from_secs(10), channel.shutdown())
        .await
        .expect("shutdown in time");
    assert_eq!(channel.health(), Health::Down);
    assert_eq!(node.wait_lines("unbind", 1).await.len(), 1);
    // After shutdown a send comes straight back NotSent.
    channel.send(message(6, "+254700000006", "late")).await;
    match next(&mut events).await {
        Event::Outcome {
            attempt_id: 6,
            outcome: SendOutcome::NotSent { .. },
        } => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_never_binds() {
    let node = Node::start().await;
    let (sink, mut events) = mpsc::channel(16);
    let channel = SmppChannel::start(8, settings(node.port, "wrong"), None, sink);
    let binds = node.wait_lines("bind_transceiver", 2).await;
    assert!(binds.len() >= 2, "it keeps retrying: {binds:?}");
    assert!(binds.iter().all(|b| b["ok"] == false && b["password_ok"] == false));
    assert_eq!(channel.health(), Health::Down);

    // A message waits a few seconds for a bind that never comes, then is NotSent.
    let started = Instant::now();
    channel.send(message(1, "+254700000001", "hello")).await;
    match timeout(Duration::from_secs(10), events.recv()).await.unwrap().unwrap() {
        Event::Outcome {
            attempt_id: 1,
            outcome: SendOutcome::NotSent { reason },
        } => {
            assert!(started.elapsed() >= Duration::from_secs(4), "held before giving up");
            assert!(!reason.contains("wrong"), "the password is never repeated: {reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(channel.health(), Health::Down);
    assert!(node.lines("submit_sm").is_empty());
    timeout(Duration::from_secs(5), channel.shutdown())
        .await
        .expect("shutdown in time");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
