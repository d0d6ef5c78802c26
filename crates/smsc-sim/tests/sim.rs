//! End-to-end tests: a minimal ESME built on rusmpp's codec talks to the simulator over TCP.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rusmpp::pdus::{BindReceiver, BindTransceiver, BindTransmitter, DeliverSm, DeliverSmResp, SubmitSm};
use rusmpp::tlvs::TlvValue;
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::OctetString;
use rusmpp::values::{DataCoding, EsmClass, InterfaceVersion, MessageState, Npi, RegisteredDelivery, Ton};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use sauti_smsc_sim::{SimConfig, Simulator};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::codec::Framed;

const WAIT: Duration = Duration::from_secs(10);

struct Client {
    framed: Framed<TcpStream, CommandCodec>,
    seq: u32,
}

enum BindAs {
    Transceiver,
    Transmitter,
    Receiver,
}

impl Client {
    async fn connect(sim: &Simulator) -> Client {
        let stream = TcpStream::connect(sim.addr()).await.expect("connects");
        Client {
            framed: Framed::new(stream, CommandCodec::new()),
            seq: 0,
        }
    }

    /// Connected and bound as transceiver with the default credentials.
    async fn bound(sim: &Simulator) -> Client {
        let mut client = Client::connect(sim).await;
        assert_eq!(
            client.bind(BindAs::Transceiver, "test", "secret").await,
            CommandStatus::EsmeRok
        );
        client
    }

    async fn send(&mut self, pdu: impl Into<Pdu>) -> u32 {
        self.seq += 1;
        let command = Command::new(CommandStatus::EsmeRok, self.seq, pdu);
        self.framed.send(command).await.expect("sends");
        self.seq
    }

    async fn respond(&mut self, seq: u32, status: CommandStatus, pdu: impl Into<Pdu>) {
        self.framed.send(Command::new(status, seq, pdu)).await.expect("sends");
    }

    /// The next PDU, or `None` once the simulator closed the connection.
    async fn recv(&mut self) -> Option<Command> {
        match timeout(WAIT, self.framed.next())
            .await
            .expect("simulator answers in time")
        {
            Some(Ok(command)) => Some(command),
            Some(Err(_)) | None => None,
        }
    }

    async fn expect(&mut self) -> Command {
        self.recv().await.expect("connection open")
    }

    async fn bind(&mut self, kind: BindAs, system_id: &str, password: &str) -> CommandStatus {
        let (system_id, password) = (system_id.parse().unwrap(), password.parse().unwrap());
        let version = InterfaceVersion::Smpp3_4;
        let seq = match kind {
            BindAs::Transceiver => {
                let bind = BindTransceiver::builder().system_id(system_id).password(password);
                self.send(bind.interface_version(version).build()).await
            }
            BindAs::Transmitter => {
                let bind = BindTransmitter::builder().system_id(system_id).password(password);
                self.send(bind.interface_version(version).build()).await
            }
            BindAs::Receiver => {
                let bind = BindReceiver::builder().system_id(system_id).password(password);
                self.send(bind.interface_version(version).build()).await
            }
        };
        let resp = self.expect().await;
        assert_eq!(resp.sequence_number(), seq);
        resp.status()
    }

    async fn ack(&mut self, seq: u32) {
        self.respond(seq, CommandStatus::EsmeRok, DeliverSmResp::builder().build())
            .await;
    }
}

fn submit_sm(user_data: &[u8], data_coding: u8, esm_class: u8, registered_delivery: u8) -> SubmitSm {
    SubmitSm::builder()
        .source_addr_ton(Ton::International)
        .source_addr_npi(Npi::Isdn)
        .source_addr("254700000001".parse().unwrap())
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr("254700000002".parse().unwrap())
        // rusmpp's EsmClass::default() is 0x08, so it is always given explicitly.
        .esm_class(EsmClass::from(esm_class))
        .registered_delivery(RegisteredDelivery::from(registered_delivery))
        .data_coding(DataCoding::from(data_coding))
        .short_message(OctetString::from_slice(user_data).unwrap())
        .build()
}

fn message_id(command: &Command) -> Option<String> {
    match command.pdu() {
        Some(Pdu::SubmitSmResp(resp)) => Some(resp.message_id().as_str().to_owned()),
        _ => None,
    }
}

/// (receipted_message_id, message_state, short_message as text) of a receipt.
fn receipt_fields(deliver: &DeliverSm) -> (String, MessageState, String) {
    let mut id = String::new();
    let mut state = MessageState::Scheduled;
    for tlv in deliver.tlvs() {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(value)) => id = value.as_str().to_owned(),
            Some(TlvValue::MessageState(value)) => state = *value,
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(deliver.short_message().as_ref()).into_owned();
    (id, state, text)
}

#[tokio::test]
async fn bind_checks_credentials() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut client = Client::connect(&sim).await;
    assert_eq!(
        client.bind(BindAs::Transceiver, "test", "wrong").await,
        CommandStatus::EsmeRbindfail
    );
    assert_eq!(
        client.bind(BindAs::Transceiver, "other", "secret").await,
        CommandStatus::EsmeRbindfail
    );
    assert_eq!(
        client.bind(BindAs::Transceiver, "test", "secret").await,
        CommandStatus::EsmeRok
    );
    assert_eq!(
        client.bind(BindAs::Transceiver, "test", "secret").await,
        CommandStatus::EsmeRalybnd
    );

    let mut transmitter = Client::connect(&sim).await;
    assert_eq!(
        transmitter.bind(BindAs::Transmitter, "test", "secret").await,
        CommandStatus::EsmeRok
    );
    let mut receiver = Client::connect(&sim).await;
    assert_eq!(
        receiver.bind(BindAs::Receiver, "test", "secret").await,
        CommandStatus::EsmeRok
    );
    // A receiver may not submit.
    receiver.send(submit_sm(b"x", 0, 0, 0)).await;
    assert_eq!(receiver.expect().await.status(), CommandStatus::EsmeRinvbndsts);

    let stats = sim.stats();
    assert_eq!((stats.binds, stats.bind_failures), (3, 2));
    sim.shutdown().await;
}

#[tokio::test]
async fn thousand_submits_get_thousand_receipts() {
    const N: usize = 1000;
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let client = Client::bound(&sim).await;
    let (mut sink, mut stream) = client.framed.split();

    let writer = tokio::spawn(async move {
        for seq in 1..=N as u32 {
            let text = format!("message {seq}");
            let command = Command::new(CommandStatus::EsmeRok, 100 + seq, submit_sm(text.as_bytes(), 0, 0, 1));
            sink.feed(command).await.unwrap();
        }
        sink.flush().await.unwrap();
        sink
    });

    let mut resp_ids = HashSet::new();
    let mut receipt_ids = HashSet::new();
    let mut acks = Vec::new();
    while resp_ids.len() < N || receipt_ids.len() < N {
        let command = timeout(WAIT, stream.next()).await.expect("in time").unwrap().unwrap();
        match command.pdu() {
            Some(Pdu::SubmitSmResp(_)) => {
                assert_eq!(command.status(), CommandStatus::EsmeRok);
                let id = message_id(&command).unwrap();
                assert_eq!(id.len(), 16);
                assert!(resp_ids.insert(id), "message ids are unique");
            }
            Some(Pdu::DeliverSm(deliver)) => {
                assert_eq!(u8::from(deliver.esm_class), 0x04);
                assert_eq!(deliver.source_addr.as_str(), "254700000002");
                assert_eq!(deliver.destination_addr.as_str(), "254700000001");
                let (id, state, text) = receipt_fields(deliver);
                assert_eq!(state, MessageState::Delivered);
                assert!(
                    text.starts_with(&format!("id:{id} sub:001 dlvrd:001 submit date:")),
                    "{text}"
                );
                assert!(text.contains(" stat:DELIVRD err:000 text:message "), "{text}");
                assert!(receipt_ids.insert(id));
                acks.push(Command::new(
                    CommandStatus::EsmeRok,
                    command.sequence_number(),
                    DeliverSmResp::builder().build(),
                ));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(resp_ids, receipt_ids);

    let mut sink = writer.await.unwrap();
    for ack in acks {
        sink.feed(ack).await.unwrap();
    }
    sink.flush().await.unwrap();
    assert!(sim.wait_for_receipts_acked(N as u64, WAIT).await);
    assert!(sim.wait_for_submits(N, WAIT).await);

    let stats = sim.stats();
    assert_eq!(
        (stats.submits, stats.receipts_sent, stats.receipts_acked),
        (N as u64, N as u64, N as u64)
    );
    let submits = sim.submits();
    assert_eq!(submits.len(), N);
    assert_eq!(submits[0].text, "message 1");
    assert_eq!(submits[N - 1].text, format!("message {N}"));
    let recorded: HashSet<String> = submits.iter().filter_map(|s| s.message_id.clone()).collect();
    assert_eq!(recorded, resp_ids);
    sim.shutdown().await;
}

#[tokio::test]
async fn throttle_rate_answers_throttled_and_can_change_at_run_time() {
    let config = SimConfig {
        throttle_rate: 1.0,
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await.unwrap();
    let mut client = Client::bound(&sim).await;
    client.send(submit_sm(b"hi", 0, 0, 1)).await;
    let resp = client.expect().await;
    assert_eq!(resp.status(), CommandStatus::EsmeRthrottled);
    assert_eq!(u32::from(resp.status()), 0x58);

    sim.set_throttle_rate(0.0);
    client.send(submit_sm(b"hi", 0, 0, 0)).await;
    assert_eq!(client.expect().await.status(), CommandStatus::EsmeRok);

    let stats = sim.stats();
    assert_eq!((stats.submits, stats.throttled, stats.receipts_sent), (2, 1, 0));
    sim.shutdown().await;
}

#[tokio::test]
async fn error_rate_answers_error_status() {
    let config = SimConfig {
        error_rate: 1.0,
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await.unwrap();
    let mut client = Client::bound(&sim).await;
    client.send(submit_sm(b"hi", 0, 0, 1)).await;
    assert_eq!(u32::from(client.expect().await.status()), 0x45);
    sim.set_error_rate(0.0);
    client.send(submit_sm(b"hi", 0, 0, 0)).await;
    assert_eq!(client.expect().await.status(), CommandStatus::EsmeRok);

    let submits = sim.submits();
    assert_eq!((submits[0].status, submits[0].message_id.as_ref()), (0x45, None));
    assert_eq!(submits[1].status, 0);
    assert!(submits[1].message_id.is_some());
    assert_eq!(sim.stats().submit_errors, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn undelivered_rate_reports_undeliv() {
    let config = SimConfig {
        undelivered_rate: 1.0,
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await.unwrap();
    let mut client = Client::bound(&sim).await;
    client.send(submit_sm(b"hi", 0, 0, 1)).await;
    assert_eq!(client.expect().await.status(), CommandStatus::EsmeRok);
    let deliver = client.expect().await;
    let Some(Pdu::DeliverSm(receipt)) = deliver.pdu() else {
        panic!("expected a receipt, got {deliver:?}");
    };
    let (_, state, text) = receipt_fields(receipt);
    assert_eq!(state, MessageState::Undeliverable);
    assert!(
        text.contains("dlvrd:000") && text.contains("stat:UNDELIV err:001"),
        "{text}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn disconnect_every_closes_the_connection_without_answering() {
    let config = SimConfig {
        disconnect_every: 3,
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await.unwrap();
    let mut client = Client::bound(&sim).await; // PDU 1
    client.send(Pdu::EnquireLink).await; // PDU 2
    assert_eq!(client.expect().await.id(), CommandId::EnquireLinkResp);
    client.send(Pdu::EnquireLink).await; // PDU 3: not answered
    assert!(client.recv().await.is_none(), "connection closed");
    assert_eq!(sim.stats().disconnects, 1);

    // The client can reconnect and gets a fresh count.
    let mut again = Client::bound(&sim).await;
    again.send(Pdu::EnquireLink).await;
    assert_eq!(again.expect().await.id(), CommandId::EnquireLinkResp);
    sim.shutdown().await;
}

#[tokio::test]
async fn unacked_receipts_are_redelivered_to_the_next_session() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut first = Client::bound(&sim).await;
    let mut ids = HashSet::new();
    for _ in 0..5 {
        first.send(submit_sm(b"hello", 0, 0, 1)).await;
    }
    let mut receipts = 0;
    while receipts < 5 || ids.len() < 5 {
        let command = first.expect().await;
        match command.pdu() {
            Some(Pdu::SubmitSmResp(_)) => {
                ids.insert(message_id(&command).unwrap());
            }
            Some(Pdu::DeliverSm(_)) => receipts += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(first); // a crash: nothing acknowledged

    let mut second = Client::bound(&sim).await;
    let mut redelivered = HashSet::new();
    while redelivered.len() < 5 {
        let command = second.expect().await;
        let Some(Pdu::DeliverSm(deliver)) = command.pdu() else {
            panic!("expected a receipt, got {command:?}");
        };
        redelivered.insert(receipt_fields(deliver).0);
        second.ack(command.sequence_number()).await;
    }
    assert_eq!(redelivered, ids);
    assert!(sim.wait_for_receipts_acked(5, WAIT).await);
    let stats = sim.stats();
    assert_eq!((stats.receipts_sent, stats.receipts_redelivered), (10, 5));
    sim.shutdown().await;
}

#[tokio::test]
async fn refused_receipt_is_retried() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut client = Client::bound(&sim).await;
    client.send(submit_sm(b"hello", 0, 0, 1)).await;
    let id = message_id(&client.expect().await).unwrap();
    let first = client.expect().await;
    client
        .respond(
            first.sequence_number(),
            CommandStatus::EsmeRsyserr,
            DeliverSmResp::builder().build(),
        )
        .await;
    let started = tokio::time::Instant::now();
    let retry = client.expect().await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    let Some(Pdu::DeliverSm(deliver)) = retry.pdu() else {
        panic!("expected the receipt again, got {retry:?}");
    };
    assert_eq!(receipt_fields(deliver).0, id);
    client.ack(retry.sequence_number()).await;
    assert!(sim.wait_for_receipts_acked(1, WAIT).await);
    assert_eq!(sim.stats().receipts_redelivered, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn receipts_of_a_transmitter_go_to_the_receiver() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut receiver = Client::connect(&sim).await;
    assert_eq!(
        receiver.bind(BindAs::Receiver, "test", "secret").await,
        CommandStatus::EsmeRok
    );
    let mut transmitter = Client::connect(&sim).await;
    assert_eq!(
        transmitter.bind(BindAs::Transmitter, "test", "secret").await,
        CommandStatus::EsmeRok
    );
    transmitter.send(submit_sm(b"hello", 0, 0, 1)).await;
    let id = message_id(&transmitter.expect().await).unwrap();
    let command = receiver.expect().await;
    let Some(Pdu::DeliverSm(deliver)) = command.pdu() else {
        panic!("expected a receipt, got {command:?}");
    };
    assert_eq!(receipt_fields(deliver).0, id);
    sim.shutdown().await;
}

#[tokio::test]
async fn deliver_window_limits_unacked_receipts() {
    let config = SimConfig {
        deliver_window: 3,
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await.unwrap();
    let mut client = Client::bound(&sim).await;
    for _ in 0..6 {
        client.send(submit_sm(b"x", 0, 0, 1)).await;
    }
    let mut delivers = Vec::new();
    let mut resps = 0;
    while resps < 6 || delivers.len() < 3 {
        let command = client.expect().await;
        match command.id() {
            CommandId::SubmitSmResp => resps += 1,
            CommandId::DeliverSm => delivers.push(command.sequence_number()),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Nothing more until something is acknowledged.
    assert!(timeout(Duration::from_millis(200), client.framed.next()).await.is_err());
    for seq in delivers {
        client.ack(seq).await;
    }
    for _ in 0..3 {
        let command = client.expect().await;
        assert_eq!(command.id(), CommandId::DeliverSm);
        client.ack(command.sequence_number()).await;
    }
    assert!(sim.wait_for_receipts_acked(6, WAIT).await);
    sim.shutdown().await;
}

#[tokio::test]
async fn latency_does_not_serialize_submits() {
    let config = SimConfig {
        submit_latency: Duration::from_millis(200),
        receipt_delay: Duration::from_millis(100),
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await.unwrap();
    let mut client = Client::bound(&sim).await;
    let started = tokio::time::Instant::now();
    for _ in 0..50 {
        client.send(submit_sm(b"x", 0, 0, 1)).await;
    }
    let mut seen: HashMap<CommandId, usize> = HashMap::new();
    while seen.values().sum::<usize>() < 100 {
        let command = client.expect().await;
        if command.id() == CommandId::DeliverSm {
            // Each receipt comes after its submit_sm_resp.
            assert_eq!(seen.get(&CommandId::SubmitSmResp), Some(&50));
            client.ack(command.sequence_number()).await;
        }
        *seen.entry(command.id()).or_default() += 1;
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(3),
        "50 submits at 200 ms each must overlap: {elapsed:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn concatenated_submits_are_recorded_with_their_udh() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut client = Client::bound(&sim).await;
    let mut gsm = vec![0x05, 0x00, 0x03, 0x2A, 0x02, 0x01];
    gsm.extend_from_slice(b"Hello ");
    gsm.extend_from_slice(&[0x1B, 0x65, 0x00]); // "€@" in GSM 03.38
    client.send(submit_sm(&gsm, 0, 0x40, 0)).await;
    let mut ucs2 = vec![0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x02];
    ucs2.extend("Привет".encode_utf16().flat_map(u16::to_be_bytes));
    client.send(submit_sm(&ucs2, 0x08, 0x40, 0)).await;
    for _ in 0..2 {
        assert_eq!(client.expect().await.status(), CommandStatus::EsmeRok);
    }

    let submits = sim.submits();
    assert_eq!(submits[0].udh, Some((0x2A, 2, 1)));
    assert_eq!(submits[0].text, "Hello €@");
    assert_eq!(submits[0].short_message, &gsm[6..]);
    assert_eq!((submits[0].esm_class, submits[0].data_coding), (0x40, 0));
    assert_eq!(submits[0].system_id, "test");
    assert_eq!(submits[0].source_addr, "254700000001");
    assert_eq!(submits[0].destination_addr, "254700000002");
    assert_eq!(submits[1].udh, Some((0x1234, 2, 2)));
    assert_eq!(submits[1].text, "Привет");
    sim.shutdown().await;
}

#[tokio::test]
async fn send_mo_reaches_a_bound_session() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    assert!(
        !sim.send_mo("254700000001", "12345", "Habari").await,
        "nobody bound yet"
    );
    let mut client = Client::bound(&sim).await;

    assert!(sim.send_mo("254700000001", "12345", "Habari {yako}").await);
    let command = client.expect().await;
    let Some(Pdu::DeliverSm(deliver)) = command.pdu() else {
        panic!("expected an MO, got {command:?}");
    };
    assert_eq!(u8::from(deliver.esm_class), 0x00);
    assert_eq!(u8::from(deliver.data_coding), 0x00);
    assert_eq!(deliver.source_addr.as_str(), "254700000001");
    assert_eq!(deliver.destination_addr.as_str(), "12345");
    assert_eq!(deliver.short_message().as_ref(), b"Habari \x1b\x28yako\x1b\x29");
    client.ack(command.sequence_number()).await;

    assert!(sim.send_mo("254700000001", "12345", "Привет").await);
    let command = client.expect().await;
    let Some(Pdu::DeliverSm(deliver)) = command.pdu() else {
        panic!("expected an MO, got {command:?}");
    };
    assert_eq!(u8::from(deliver.data_coding), 0x08);
    let expected: Vec<u8> = "Привет".encode_utf16().flat_map(u16::to_be_bytes).collect();
    assert_eq!(deliver.short_message().as_ref(), &expected[..]);
    assert_eq!(sim.stats().mo_sent, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn enquire_link_and_unbind_are_answered() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut client = Client::connect(&sim).await;
    let seq = client.send(Pdu::EnquireLink).await;
    let resp = client.expect().await;
    assert_eq!((resp.id(), resp.sequence_number()), (CommandId::EnquireLinkResp, seq));

    let mut client = Client::bound(&sim).await;
    client.send(Pdu::EnquireLink).await;
    assert_eq!(client.expect().await.id(), CommandId::EnquireLinkResp);
    client.send(Pdu::Unbind).await;
    assert_eq!(client.expect().await.id(), CommandId::UnbindResp);
    assert!(client.recv().await.is_none(), "closed after unbind");
    assert_eq!(sim.stats().enquire_links, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_commands_get_generic_nack() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut client = Client::bound(&sim).await;
    let seq = client.send(Pdu::CancelBroadcastSm(Default::default())).await;
    let resp = client.expect().await;
    assert_eq!((resp.id(), resp.sequence_number()), (CommandId::GenericNack, seq));
    assert_eq!(resp.status(), CommandStatus::EsmeRinvcmdid);
    sim.shutdown().await;
}

#[tokio::test]
async fn message_ids_stay_unique_across_simulators() {
    let mut ids = HashSet::new();
    for _ in 0..2 {
        let sim = Simulator::start(SimConfig::default()).await.unwrap();
        let mut client = Client::bound(&sim).await;
        for _ in 0..10 {
            client.send(submit_sm(b"x", 0, 0, 0)).await;
            assert!(ids.insert(message_id(&client.expect().await).unwrap()));
        }
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn receipts_wait_for_a_receiver_to_bind() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut transmitter = Client::connect(&sim).await;
    assert_eq!(
        transmitter.bind(BindAs::Transmitter, "test", "secret").await,
        CommandStatus::EsmeRok
    );
    transmitter.send(submit_sm(b"hello", 0, 0, 1)).await;
    let id = message_id(&transmitter.expect().await).unwrap();

    let mut receiver = Client::connect(&sim).await;
    assert_eq!(
        receiver.bind(BindAs::Receiver, "test", "secret").await,
        CommandStatus::EsmeRok
    );
    let command = receiver.expect().await;
    let Some(Pdu::DeliverSm(deliver)) = command.pdu() else {
        panic!("expected the waiting receipt, got {command:?}");
    };
    assert_eq!(receipt_fields(deliver).0, id);
    // It was never written before, so it is not a redelivery.
    assert_eq!(sim.stats().receipts_redelivered, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn receipt_delay_holds_the_receipt_back() {
    let config = SimConfig {
        receipt_delay: Duration::from_millis(300),
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await.unwrap();
    let mut client = Client::bound(&sim).await;
    client.send(submit_sm(b"hello", 0, 0, 1)).await;
    assert_eq!(client.expect().await.id(), CommandId::SubmitSmResp);
    let started = tokio::time::Instant::now();
    assert_eq!(client.expect().await.id(), CommandId::DeliverSm);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn message_payload_is_recorded_when_short_message_is_empty() {
    use rusmpp::tlvs::MessageSubmissionRequestTlvValue;
    use rusmpp::values::MessagePayload;

    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut client = Client::bound(&sim).await;
    let long = "a".repeat(300);
    let mut submit = submit_sm(b"", 0, 0, 0);
    let payload = MessagePayload::new(rusmpp::types::AnyOctetString::from_slice(long.as_bytes()));
    submit.push_tlv(MessageSubmissionRequestTlvValue::MessagePayload(payload));
    client.send(submit).await;
    assert_eq!(client.expect().await.status(), CommandStatus::EsmeRok);
    let submits = sim.submits();
    assert_eq!(submits[0].text, long);
    assert_eq!(submits[0].short_message.len(), 300);
    sim.shutdown().await;
}

#[tokio::test]
async fn submits_are_not_recorded_when_record_is_off() {
    let config = SimConfig {
        record: false,
        ..SimConfig::default()
    };
    let sim = Simulator::start(config).await.unwrap();
    let mut client = Client::bound(&sim).await;
    client.send(submit_sm(b"x", 0, 0, 0)).await;
    assert_eq!(client.expect().await.status(), CommandStatus::EsmeRok);
    assert!(sim.wait_for_submits(1, WAIT).await);
    assert!(sim.submits().is_empty());
    assert!(!sim.wait_for_submits(2, Duration::from_millis(50)).await);
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_open_sessions() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let mut client = Client::bound(&sim).await;
    timeout(WAIT, sim.shutdown()).await.expect("shutdown finishes");
    assert!(client.recv().await.is_none());
}
