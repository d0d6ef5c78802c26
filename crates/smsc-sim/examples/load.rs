//! Load generator for measuring the simulator itself: pipelined ESME sessions that keep a
//! window of submit_sm in flight and acknowledge every receipt. The client side is hand-rolled
//! and batched like the simulator, so the number it prints is the simulator's ceiling on this
//! machine (both share the CPU).
//!
//! ```sh
//! cargo run --release -p sauti-smsc-sim --example load -- [SESSIONS] [WINDOW] [SECONDS] [ADDR]
//! ```
//!
//! Without ADDR a simulator is started in-process (record off).

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use sauti_smsc_sim::{SimConfig, Simulator};
use tokio::net::TcpStream;

#[derive(Default, Clone, Copy)]
struct Counts {
    resps: u64,
    receipts: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (sessions, window, seconds) = (arg(0, 4), arg(1, 4096), arg(2, 10));
    let (addr, sim) = match args.get(3) {
        Some(addr) => (addr.parse::<SocketAddr>().map_err(std::io::Error::other)?, None),
        None => {
            let config = SimConfig {
                record: false,
                ..SimConfig::default()
            };
            let sim = Simulator::start(config).await?;
            (sim.addr(), Some(sim))
        }
    };
    let duration = Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..sessions)
        .map(|_| tokio::spawn(drive(addr, window, duration)))
        .collect();
    let mut total = Counts::default();
    for task in tasks {
        let counts = task.await.map_err(std::io::Error::other)??;
        total.resps += counts.resps;
        total.receipts += counts.receipts;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sessions={sessions} window={window} submit_sm_resp/s={:.0} receipts/s={:.0}",
        total.resps as f64 / secs,
        total.receipts as f64 / secs
    );
    if let Some(sim) = sim {
        println!("{:?}", sim.stats());
        sim.shutdown().await;
    }
    Ok(())
}

async fn drive(addr: SocketAddr, window: u64, duration: Duration) -> std::io::Result<Counts> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut wbuf, mut wpos) = (Vec::with_capacity(1 << 21), 0);
    let mut rbuf = BytesMut::with_capacity(1 << 20);
    let mut bind = Vec::new();
    for field in [&b"test"[..], b"secret", b""] {
        bind.extend_from_slice(field);
        bind.push(0);
    }
    bind.extend_from_slice(&[0x34, 0, 0, 0]); // interface_version, ton, npi, address_range
    put_pdu(&mut wbuf, 0x09, 1, &bind);
    let submit = submit_body();

    let deadline = Instant::now() + duration;
    let (mut seq, mut in_flight, mut counts) = (1u32, 0u64, Counts::default());
    let mut bound = false;
    loop {
        let sending = Instant::now() < deadline;
        while bound && sending && in_flight < window && wbuf.len() - wpos < (1 << 20) {
            seq += 1;
            put_pdu(&mut wbuf, 0x04, seq, &submit);
            in_flight += 1;
        }
        if !sending && in_flight == 0 {
            return Ok(counts);
        }
        tokio::select! {
            ready = stream.readable() => {
                ready?;
                rbuf.reserve(1 << 16);
                match stream.try_read_buf(&mut rbuf) {
                    Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            ready = stream.writable(), if wpos < wbuf.len() => ready?,
        }
        while rbuf.len() >= 16 {
            let length = u32::from_be_bytes([rbuf[0], rbuf[1], rbuf[2], rbuf[3]]) as usize;
            if rbuf.len() < length {
                break;
            }
            let id = u32::from_be_bytes([rbuf[4], rbuf[5], rbuf[6], rbuf[7]]);
            let pdu_seq = u32::from_be_bytes([rbuf[12], rbuf[13], rbuf[14], rbuf[15]]);
            match id {
                0x8000_0009 => bound = true,
                0x8000_0004 => {
                    in_flight -= 1;
                    counts.resps += 1;
                }
                0x0000_0005 => {
                    counts.receipts += 1;
                    put_pdu(&mut wbuf, 0x8000_0005, pdu_seq, b"\0");
                }
                _ => {}
            }
            rbuf.advance(length);
        }
        if wpos < wbuf.len() {
            match stream.try_write(&wbuf[wpos..]) {
                Ok(n) => wpos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if wpos == wbuf.len() {
                wbuf.clear();
                wpos = 0;
            } else if wpos > 1 << 20 {
                wbuf.drain(..wpos);
                wpos = 0;
            }
        }
    }
}

fn put_pdu(dst: &mut Vec<u8>, id: u32, seq: u32, body: &[u8]) {
    dst.put_u32(16 + body.len() as u32);
    dst.put_u32(id);
    dst.put_u32(0);
    dst.put_u32(seq);
    dst.put_slice(body);
}

/// A 23-character GSM text from 254700000001 to 254700000002 asking for a receipt.
fn submit_body() -> Vec<u8> {
    let mut body = vec![0, 1, 1];
    body.extend_from_slice(b"254700000001\0");
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(b"254700000002\0");
    body.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 0, 0]);
    let text = b"Hello from the load gen";
    body.push(text.len() as u8);
    body.extend_from_slice(text);
    body
}
