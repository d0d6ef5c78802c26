//! `sauti callouts watch`: a callout's progress, read from the database the service uses
//! (the same numbers as `GET /api/callouts/{id}/statistics`).

use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sauti_store::{Callout, CalloutStatistics, Store};

use crate::cli::WatchCalloutArgs;
use crate::commands::open_store;
use crate::config::Config;

pub async fn watch(config: &Config, args: &WatchCalloutArgs) -> Result<()> {
    let store = open_store(config).await?;
    let every = Duration::from_secs_f64(args.every.clamp(0.1, 3600.0));
    let (c, s) = read(&store, args.id).await?;
    if args.once {
        println!("{}", line(&c, &s));
        return Ok(());
    }
    let bar = ProgressBar::new(s.total.max(0) as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").expect("a valid progress template"));
    let mut current = (c, s);
    loop {
        let (c, s) = &current;
        let p = s.progress(c, sauti_core::clock::now());
        bar.set_length(s.total.max(0) as u64);
        bar.set_position((s.total - p.pending).max(0) as u64);
        bar.set_message(summary(c, s));
        if is_over(c) {
            bar.finish();
            break;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => { bar.abandon(); break; }
            _ = tokio::time::sleep(every) => {}
        }
        current = read(&store, args.id).await?;
    }
    store.close().await;
    Ok(())
}

async fn read(store: &Store, id: i64) -> Result<(Callout, CalloutStatistics)> {
    let c = store
        .callout_by_id(id)
        .await?
        .with_context(|| format!("there is no callout {id}"))?;
    let s = store.callout_statistics(id).await?;
    Ok((c, s))
}

fn is_over(c: &Callout) -> bool {
    c.status == "completed" || c.status == "stopped"
}

/// Status, rate, ETA and the counts by status.
fn summary(c: &Callout, s: &CalloutStatistics) -> String {
    let p = s.progress(c, sauti_core::clock::now());
    let rate = p.rate_per_minute.map_or("-".to_string(), |r| format!("{r:.0}/min"));
    let eta = match p.eta_seconds {
        Some(0) => "done".to_string(),
        Some(e) => format!("ETA {}", human(e)),
        None => "ETA -".to_string(),
    };
    let counts: Vec<String> = s.by_status.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!("{} · {rate} · {eta} · {}", c.status, counts.join(", "))
}

/// One line for `--once`: done/total and the summary.
fn line(c: &Callout, s: &CalloutStatistics) -> String {
    let p = s.progress(c, sauti_core::clock::now());
    format!(
        "callout {}: {}/{} done · {}",
        c.id,
        s.total - p.pending,
        s.total,
        summary(c, s)
    )
}

fn human(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}
