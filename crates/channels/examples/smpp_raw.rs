//! Raw SMPP session rate: sauti's SmppChannel against the in-repo simulator, same process.
//!
//! ```text
//! cargo run --release -p sauti-channels --example smpp_raw -- [--messages N] [--window W]
//!     [--receipts | --no-receipts] [--producers P] [--threads T]
//! ```
//!
//! Pushes N messages (default 1,000,000) through one session; the sink only counts
//! outcomes and receipts (firing each receipt's ack, so deliver_sm_resp flows as in
//! production). Prints submit_sm/s (until the last outcome) and receipts/s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sauti_channels::smpp::{SmppChannel, validate_settings};
use sauti_channels::{Channel, ChannelKind, Event, Health, Outbound, SendOutcome};
use sauti_smsc_sim::{SimConfig, Simulator};
use serde_json::json;
use tokio::sync::mpsc;

struct Args {
    messages: u64,
    window: u32,
    receipts: bool,
    producers: u64,
    threads: usize,
}

fn args() -> Args {
    let mut a = Args {
        messages: 1_000_000,
        window: 1_000,
        receipts: true,
        producers: 2,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> u64 {
            it.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match arg.as_str() {
            "--messages" => a.messages = num("--messages"),
            "--window" => a.window = num("--window") as u32,
            "--producers" => a.producers = num("--producers").max(1),
            "--threads" => a.threads = num("--threads").max(1) as usize,
            "--receipts" => a.receipts = true,
            "--no-receipts" => a.receipts = false,
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn main() {
    let a = args();
    // The simulator gets a runtime (one thread) of its own, as an SMSC would be another
    // process: the two sides meet only over loopback TCP, and sauti's side (producers,
    // session, counting sink) runs on a second thread, as one busy provider's session
    // would in sauti.
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("smsc-sim")
        .enable_all()
        .build()
        .expect("simulator runtime");
    let sim = sim_rt
        .block_on(Simulator::start(SimConfig {
            record: false,
            // Let the simulator push receipts as fast as they are acknowledged.
            deliver_window: 10_000,
            ..Default::default()
        }))
        .expect("simulator starts");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stats = rt.block_on(run(&a, sim.addr().port(), || sim.stats()));
    println!(
        "simulator: {} submits, {} receipts sent, {} acked, {} disconnects",
        stats.submits, stats.receipts_sent, stats.receipts_acked, stats.disconnects
    );
    sim_rt.block_on(sim.shutdown());
}

async fn run(a: &Args, port: u16, sim_stats: impl Fn() -> sauti_smsc_sim::Stats) -> sauti_smsc_sim::Stats {
    let settings = validate_settings(&json!({
        "host": "127.0.0.1",
        "port": port,
        "system_id": "test",
        "password": "secret",
        "window": a.window,
        "default_from": "SAUTI",
    }))
    .expect("settings");

    let (sink, mut events) = mpsc::channel(65_536);
    let channel = SmppChannel::start(1, settings, None, sink);
    while channel.health() != Health::Up {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let outcomes = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (n, want_receipts) = (a.messages, a.receipts);
    let counted = outcomes.clone();
    let counter = tokio::spawn(async move {
        let (mut accepted, mut other, mut receipts) = (0u64, 0u64, 0u64);
        let (mut outcomes_at, mut receipts_at) = (None, None);
        let mut done_tx = Some(done_tx);
        while let Some(event) = events.recv().await {
            match event {
                Event::Outcome { outcome, .. } => {
                    match outcome {
                        SendOutcome::Accepted { .. } => accepted += 1,
                        _ => other += 1,
                    }
                    counted.fetch_add(1, Ordering::Relaxed);
                    if accepted + other == n {
                        outcomes_at = Some(Instant::now());
                    }
                }
                Event::Receipt { ack, .. } => {
                    receipts += 1;
                    if let Some(ack) = ack {
                        let _ = ack.send(());
                    }
                    if receipts == n {
                        receipts_at = Some(Instant::now());
                    }
                }
                Event::Inbound { ack, .. } => drop(ack),
            }
            if accepted + other == n
                && (!want_receipts || receipts == n)
                && let Some(tx) = done_tx.take()
            {
                let _ = tx.send(());
            }
        }
        (accepted, other, receipts, outcomes_at, receipts_at)
    });

    let start = Instant::now();
    let per = a.messages / a.producers;
    let mut producers = Vec::new();
    for p in 0..a.producers {
        let channel = channel.clone();
        let count = if p == a.producers - 1 {
            a.messages - per * p
        } else {
            per
        };
        producers.push(tokio::spawn(async move {
            for i in 0..count {
                let id = (p * per + i) as i64;
                channel
                    .send(Outbound {
                        attempt_id: id,
                        transmission_id: id,
                        account_id: 1,
                        channel: ChannelKind::Sms,
                        to: format!("+2547{:08}", id % 100_000_000),
                        from: None,
                        body: "Your sauti verification code is 123456".into(),
                        subject: None,
                        html: None,
                        attachments: vec![],
                        validity: None,
                        want_receipt: want_receipts,
                    })
                    .await;
            }
        }));
    }
    for p in producers {
        p.await.expect("producer");
    }
    let queued = start.elapsed();
    let finished = tokio::time::timeout(Duration::from_secs(600), done_rx).await;
    let total = start.elapsed();
    channel.shutdown().await;
    drop(channel);
    let (accepted, other, receipts, outcomes_at, receipts_at) = counter.await.expect("counter");
    let stats = sim_stats();

    if finished.is_err() {
        eprintln!(
            "timed out after {total:?}: {} outcomes",
            outcomes.load(Ordering::Relaxed)
        );
    }
    let rate = |count: u64, at: Option<Instant>| at.map(|t| count as f64 / (t - start).as_secs_f64()).unwrap_or(0.0);
    println!(
        "messages {n}, window {}, receipts {}, producers {}",
        a.window, want_receipts, a.producers
    );
    println!(
        "queued in {:.2} s, all done in {:.2} s",
        queued.as_secs_f64(),
        total.as_secs_f64()
    );
    println!(
        "outcomes: {accepted} accepted, {other} other; submit_sm/s {:.0}",
        rate(accepted + other, outcomes_at)
    );
    if want_receipts {
        println!("receipts: {receipts}; receipts/s {:.0}", rate(receipts, receipts_at));
    }
    stats
}
