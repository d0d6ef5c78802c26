//! `sauti contacts import` and `sauti contacts export`: the same importer and CSV format
//! as the API, run against the database directly.

use std::io::{BufRead, Write};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use sauti_api::contact_csv::{self, ProgressSink, SaveProgress};
use sauti_core::filter::{Filter, ListQuery};
use sauti_store::{ContactScope, ImportProgress, NewGroup, Store};

use crate::cli::{ExportContactsArgs, ImportContactsArgs};
use crate::commands::open_store;
use crate::config::Config;

/// The account named by `--account`, or the only one there is.
async fn pick_account(store: &Store, account: Option<i64>) -> Result<i64> {
    if let Some(id) = account {
        store
            .get_account(id)
            .await?
            .with_context(|| format!("there is no account {id}"))?;
        return Ok(id);
    }
    let q = ListQuery {
        filter: Filter::default(),
        sort: vec![],
        page: 1,
        per_page: 2,
    };
    let page = store.list_accounts(&q).await?;
    match page.items.as_slice() {
        [only] => Ok(only.id),
        [] => bail!("there is no account yet: create one with `sauti accounts create --name NAME`"),
        _ => bail!("there are {} accounts: say which with --account ID", page.total),
    }
}

/// The progress bar and the import's row, both kept up to date.
struct BarAndRow {
    bar: ProgressBar,
    row: SaveProgress,
}

impl ProgressSink for BarAndRow {
    async fn report(&mut self, p: &ImportProgress) {
        self.bar.set_position(p.rows_read.max(0) as u64);
        self.bar.set_message(format!(
            "{} created, {} updated, {} rejected",
            p.created, p.updated, p.rejected
        ));
        self.row.report(p).await;
    }
}

/// Data rows in the file, for the bar's length and ETA (a quoted field spanning lines
/// makes this an over-estimate, which only shortens the last stretch of the bar).
fn count_lines(path: &std::path::Path) -> Result<u64> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut lines = 0u64;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
        let n = buf.len();
        reader.consume(n);
    }
    Ok(lines)
}

pub async fn import(config: &Config, args: &ImportContactsArgs) -> Result<()> {
    let head = {
        use std::io::Read;
        let mut buf = Vec::new();
        std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?
            .take(contact_csv::SNIFF_BYTES as u64)
            .read_to_end(&mut buf)?;
        buf
    };
    contact_csv::sniff(&head).map_err(|why| anyhow::anyhow!("{}: {why}", args.file.display()))?;
    let total = count_lines(&args.file)?;

    let store = open_store(config).await?;
    let account_id = pick_account(&store, args.account).await?;
    let group_id = match &args.group {
        None => None,
        Some(name) => Some(match store.find_group_by_name(account_id, name.trim()).await? {
            Some(g) => g.id,
            None => {
                store
                    .create_group(
                        account_id,
                        &NewGroup {
                            name: name.trim().to_string(),
                            ..Default::default()
                        },
                    )
                    .await?
                    .id
            }
        }),
    };
    let account = store
        .get_account(account_id)
        .await?
        .context("the account disappeared")?;
    let region = account.default_region();
    let file_name = args.file.file_name().map(|n| n.to_string_lossy().into_owned());
    let import = store
        .create_contact_import(account_id, group_id, file_name.as_deref())
        .await?;

    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{wide_bar} {pos}/{len} rows  {per_sec}  ETA {eta}\n{msg}")
            .expect("a valid template"),
    );
    let mut sink = BarAndRow {
        bar: bar.clone(),
        row: SaveProgress::new(store.clone(), import.id),
    };
    let outcome = contact_csv::import_file(&store, account_id, group_id, region, &args.file, &mut sink).await;
    bar.finish();
    store.close().await;

    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "import {} {}: {} rows read, {} created, {} updated, {} rejected",
        import.id, outcome.status, outcome.rows_read, outcome.created, outcome.updated, outcome.rejected
    )?;
    for r in &outcome.rejected_rows {
        writeln!(err, "  line {}: {}", r.line, r.reason)?;
    }
    if outcome.rejected as usize > outcome.rejected_rows.len() {
        writeln!(
            err,
            "  … and {} more rejected rows",
            outcome.rejected as usize - outcome.rejected_rows.len()
        )?;
    }
    if let Some(why) = outcome.failure_reason {
        bail!("the import failed: {why}");
    }
    Ok(())
}

pub async fn export(config: &Config, args: &ExportContactsArgs) -> Result<()> {
    let store = open_store(config).await?;
    let account_id = pick_account(&store, args.account).await?;
    let scope = match &args.group {
        None => None,
        Some(name) => Some(
            store
                .find_group_by_name(account_id, name.trim())
                .await?
                .with_context(|| format!("there is no group {name:?}"))?
                .id,
        ),
    };
    let q = ListQuery {
        filter: Filter::default(),
        sort: vec![],
        page: 1,
        per_page: 1000,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut after = 0;
    let mut header = true;
    loop {
        let rows = store
            .contacts_after(account_id, scope.map(ContactScope::Group), &q, after, 1000)
            .await?;
        out.write_all(&contact_csv::export_rows(&rows, header))?;
        header = false;
        match rows.last() {
            Some(last) if rows.len() == 1000 => after = last.id,
            _ => break,
        }
    }
    out.flush()?;
    store.close().await;
    Ok(())
}
