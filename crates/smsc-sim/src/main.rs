//! `sauti-smsc-sim`: the SMSC simulator as a standalone process, for benchmarks and manual
//! testing. Prints `listening on ADDR` once bound, a line of rates per second on stderr, and
//! the final counters as JSON on SIGINT/SIGTERM.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use sauti_smsc_sim::{SimConfig, Simulator, Stats};

#[derive(Parser, Debug)]
#[command(name = "sauti-smsc-sim", about = "An SMPP 3.4 SMSC simulator")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:2775")]
    bind: SocketAddr,
    #[arg(long, default_value = "test")]
    system_id: String,
    #[arg(long, default_value = "secret")]
    password: String,
    #[arg(long, default_value_t = 0)]
    submit_latency_ms: u64,
    #[arg(long, default_value_t = 0)]
    receipt_delay_ms: u64,
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// command_status for the `--error-rate` fraction (default ESME_RSUBMITFAIL).
    #[arg(long, default_value_t = 0x45)]
    error_status: u32,
    #[arg(long, default_value_t = 0.0)]
    throttle_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    undelivered_rate: f64,
    /// Close each connection after this many PDUs received (0 = never).
    #[arg(long, default_value_t = 0)]
    disconnect_every: u64,
    #[arg(long, default_value_t = 1000)]
    deliver_window: usize,
    /// Accepted for symmetry with the library: the binary never records submits.
    #[arg(long)]
    no_record: bool,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let config = SimConfig {
        bind: args.bind,
        system_id: args.system_id,
        password: args.password,
        submit_latency: Duration::from_millis(args.submit_latency_ms),
        receipt_delay: Duration::from_millis(args.receipt_delay_ms),
        error_rate: args.error_rate,
        error_status: args.error_status,
        throttle_rate: args.throttle_rate,
        undelivered_rate: args.undelivered_rate,
        disconnect_every: args.disconnect_every,
        // A long benchmark would otherwise keep every message in memory.
        record: false,
        deliver_window: args.deliver_window,
    };
    let _ = args.no_record;
    let sim = Simulator::start(config).await?;
    println!("listening on {}", sim.addr());
    std::io::stdout().flush()?;

    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut last = (Instant::now(), sim.stats());
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            result = &mut stop => {
                result?;
                break;
            }
            _ = ticker.tick() => {
                let (now, stats) = (Instant::now(), sim.stats());
                let secs = now.duration_since(last.0).as_secs_f64();
                let rate = |current: u64, previous: u64| (current - previous) as f64 / secs;
                eprintln!(
                    "submits/s={:.0} receipts/s={:.0} acked/s={:.0} total_submits={} throttled={} errors={}",
                    rate(stats.submits, last.1.submits),
                    rate(stats.receipts_sent, last.1.receipts_sent),
                    rate(stats.receipts_acked, last.1.receipts_acked),
                    stats.submits,
                    stats.throttled,
                    stats.submit_errors,
                );
                last = (now, stats);
            }
        }
    }
    let stats = sim.stats();
    sim.shutdown().await;
    println!("{}", stats_json(&stats));
    Ok(())
}

async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = term.recv() => Ok(()),
    }
}

fn stats_json(stats: &Stats) -> String {
    let fields = [
        ("binds", stats.binds),
        ("bind_failures", stats.bind_failures),
        ("submits", stats.submits),
        ("submit_errors", stats.submit_errors),
        ("throttled", stats.throttled),
        ("receipts_sent", stats.receipts_sent),
        ("receipts_acked", stats.receipts_acked),
        ("receipts_redelivered", stats.receipts_redelivered),
        ("mo_sent", stats.mo_sent),
        ("disconnects", stats.disconnects),
        ("enquire_links", stats.enquire_links),
    ];
    let body: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("\"{name}\":{value}"))
        .collect();
    format!("{{{}}}", body.join(","))
}
