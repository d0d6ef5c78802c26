//! Contacts as CSV: the streaming importer (used by `POST /api/contact_imports` and
//! `sauti contacts import`) and the export format (re-importable).
//!
//! Accepted layouts, UTF-8 with or without BOM, `,` or `;`:
//! - a header row naming a phone column (`msisdn`, `phone`, `mobile`, …); known columns map
//!   to contact fields, a `metadata` column holding a JSON object is merged into the
//!   metadata, and any other column becomes a metadata key;
//! - ICTCore's headerless layout: `phone, first_name, last_name, email, address, custom1,
//!   custom2, custom3, description` (any leading subset, so a phone-only file works too).
//!
//! The file is read on a blocking thread and sent in batches to the database, so memory
//! stays flat whatever the file size. A bad row is reported with its line number and never
//! stops the import.

use std::collections::HashMap;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use sauti_core::clock;
use sauti_core::email;
use sauti_core::msisdn::{Msisdn, Region};
use sauti_store::{Contact, ContactFields, ImportProgress, RejectedRow, Store};

/// Rows parsed together and handed to the writer at once.
const BATCH: usize = 5000;
/// At most this many rows (give or take a batch) are written in one transaction, and as
/// many wait parsed for the writer.
const WRITE_ROWS: usize = 50_000;
/// Rejected rows kept in the report (all are counted).
pub const MAX_REJECTED_KEPT: usize = 1000;
/// How much of the file is inspected before accepting it.
pub const SNIFF_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Msisdn,
    Email,
    FirstName,
    LastName,
    Address,
    Custom1,
    Custom2,
    Custom3,
    Description,
    MetadataJson,
    Metadata(usize),
    Ignore,
}

const HEADERLESS: [Column; 9] = [
    Column::Msisdn,
    Column::FirstName,
    Column::LastName,
    Column::Email,
    Column::Address,
    Column::Custom1,
    Column::Custom2,
    Column::Custom3,
    Column::Description,
];

/// How a file is laid out, decided from its first bytes.
#[derive(Debug, Clone)]
pub struct Layout {
    delimiter: u8,
    has_header: bool,
    columns: Vec<Column>,
    metadata_keys: Vec<String>,
}

fn column_for(name: &str) -> Option<Column> {
    let n: String = name
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect();
    Some(match n.as_str() {
        "msisdn" | "phone" | "phone_number" | "phonenumber" | "mobile" | "mobile_number" | "number" | "telephone"
        | "tel" => Column::Msisdn,
        "email" | "email_address" | "e_mail" => Column::Email,
        "first_name" | "firstname" | "given_name" => Column::FirstName,
        "last_name" | "lastname" | "surname" | "family_name" => Column::LastName,
        "address" => Column::Address,
        "custom1" | "custom_1" => Column::Custom1,
        "custom2" | "custom_2" => Column::Custom2,
        "custom3" | "custom_3" => Column::Custom3,
        "description" => Column::Description,
        "metadata" => Column::MetadataJson,
        // Export columns that describe the row rather than the contact.
        "id" | "account_id" | "created_at" | "updated_at" | "opted_out_at" | "client_id" => Column::Ignore,
        _ => return None,
    })
}

/// Decide the layout from the start of the file, or say why it is not a contacts CSV.
pub fn sniff(head: &[u8]) -> Result<Layout, String> {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if head.iter().all(u8::is_ascii_whitespace) {
        return Err("the file is empty".into());
    }
    if head.contains(&0) {
        return Err("the file is binary, not CSV".into());
    }
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        // A multi-byte character cut at the end of the sniffed window is fine.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default(),
        Err(_) => return Err("the file is not UTF-8 text".into()),
    };
    let first_line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
    let count = |c: char| {
        let mut quoted = false;
        first_line
            .chars()
            .filter(|&ch| {
                if ch == '"' {
                    quoted = !quoted;
                }
                ch == c && !quoted
            })
            .count()
    };
    let delimiter = if count(';') > count(',') { b';' } else { b',' };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let first = match reader.records().next() {
        Some(Ok(r)) => r,
        Some(Err(e)) => return Err(format!("the file is not CSV: {e}")),
        None => return Err("the file is empty".into()),
    };
    let mapped: Vec<Option<Column>> = first.iter().map(column_for).collect();
    if mapped.contains(&Some(Column::Msisdn)) {
        let mut metadata_keys = Vec::new();
        let columns = first
            .iter()
            .zip(mapped)
            .map(|(name, c)| {
                c.unwrap_or_else(|| {
                    metadata_keys.push(name.trim().to_string());
                    Column::Metadata(metadata_keys.len() - 1)
                })
            })
            .collect();
        return Ok(Layout {
            delimiter,
            has_header: true,
            columns,
            metadata_keys,
        });
    }
    let phone_like = first.get(0).is_some_and(|p| {
        let p = p.trim();
        !p.is_empty()
            && p.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c))
            && p.chars().any(|c| c.is_ascii_digit())
    });
    if !phone_like {
        return Err(
            "no phone column: the header names none of msisdn, phone, phone_number, mobile, and the first column \
             is not a phone number"
                .into(),
        );
    }
    Ok(Layout {
        delimiter,
        has_header: false,
        columns: HEADERLESS.to_vec(),
        metadata_keys: Vec::new(),
    })
}

/// One parsed row, or why it was refused.
fn parse_row(record: &csv::ByteRecord, layout: &Layout, region: Option<Region>) -> Result<ContactFields, String> {
    let mut f = ContactFields::default();
    let mut msisdn = None;
    for (i, raw) in record.iter().enumerate() {
        let Some(col) = layout.columns.get(i).copied() else {
            continue;
        };
        let value = std::str::from_utf8(raw)
            .map_err(|_| format!("column {} is not UTF-8", i + 1))?
            .trim();
        if value.is_empty() {
            continue;
        }
        let text = || Some(value.to_string());
        match col {
            Column::Msisdn => msisdn = Some(value),
            Column::Email => {
                if !email::is_valid(value) {
                    return Err(format!("email {value:?} is invalid"));
                }
                f.email = Some(value.to_lowercase());
            }
            Column::FirstName => f.first_name = text(),
            Column::LastName => f.last_name = text(),
            Column::Address => f.address = text(),
            Column::Custom1 => f.custom1 = text(),
            Column::Custom2 => f.custom2 = text(),
            Column::Custom3 => f.custom3 = text(),
            Column::Description => f.description = text(),
            Column::MetadataJson => match serde_json::from_str::<serde_json::Value>(value) {
                Ok(serde_json::Value::Object(m)) => f.metadata.extend(m),
                _ => return Err("metadata is not a JSON object".into()),
            },
            Column::Metadata(k) => {
                f.metadata.insert(
                    layout.metadata_keys[k].clone(),
                    serde_json::Value::String(value.to_string()),
                );
            }
            Column::Ignore => {}
        }
    }
    let m = msisdn.ok_or("msisdn can't be blank")?;
    f.msisdn = Msisdn::parse(m, region)
        .map_err(|e| format!("msisdn {m:?} {e}"))?
        .into_string();
    Ok(f)
}

/// What the reader thread hands to the writer.
struct Batch {
    rows: Vec<ContactFields>,
    rows_read: i64,
    rejected: Vec<RejectedRow>,
}

/// Read `path` on a blocking thread, sending batches of parsed rows.
fn read_file(
    path: &Path,
    layout: Layout,
    region: Option<Region>,
    tx: tokio::sync::mpsc::Sender<Batch>,
) -> Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("opening the upload: {e}"))?;
    let mut bom = [0u8; 3];
    let n = file.read(&mut bom).map_err(|e| e.to_string())?;
    if !(n == 3 && bom == *b"\xEF\xBB\xBF") {
        file.rewind().map_err(|e| e.to_string())?;
    }
    // The header is read as a plain record and skipped here, and records end at `\n` only
    // (a CRLF's `\r` is trimmed with the field): then every position the reader reports is
    // the line number a person sees in the file. With its default CRLF handling the reader
    // ends a record at `\r` and reports the next one a line early.
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(layout.delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .has_headers(false)
        .flexible(true)
        .from_reader(BufReader::with_capacity(256 * 1024, file));
    let mut record = csv::ByteRecord::new();
    let mut skip_header = layout.has_header;
    // Raw records (with their line numbers) are gathered here and parsed in parallel:
    // validating a phone number is the most expensive step of an import.
    let mut raw: Vec<(u64, Result<csv::ByteRecord, String>)> = Vec::with_capacity(BATCH);
    loop {
        let more = match reader.read_byte_record(&mut record) {
            Ok(false) => false,
            Ok(true) => {
                let blank = record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace));
                if !blank && !std::mem::take(&mut skip_header) {
                    raw.push((record.position().map(|p| p.line()).unwrap_or(0), Ok(record.clone())));
                }
                true
            }
            Err(e) => {
                // A malformed record (e.g. an unterminated quote) is rejected and reading
                // goes on from the next line the parser can find.
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    return Err(format!("reading the upload: {e}"));
                }
                raw.push((
                    e.position().map(|p| p.line()).unwrap_or(0),
                    Err(format!("malformed CSV: {e}")),
                ));
                true
            }
        };
        if (raw.len() >= BATCH || (!more && !raw.is_empty()))
            && tx
                .blocking_send(parse_batch(std::mem::take(&mut raw), &layout, region))
                .is_err()
        {
            return Ok(()); // the writer stopped; it reports why
        }
        if !more {
            return Ok(());
        }
    }
}

/// Parse a batch of raw records on the rayon pool, keeping file order.
fn parse_batch(raw: Vec<(u64, Result<csv::ByteRecord, String>)>, layout: &Layout, region: Option<Region>) -> Batch {
    use rayon::prelude::*;
    let parsed: Vec<(u64, Result<ContactFields, String>)> = raw
        .into_par_iter()
        .map(|(line, r)| (line, r.and_then(|rec| parse_row(&rec, layout, region))))
        .collect();
    let mut batch = Batch {
        rows: Vec::with_capacity(parsed.len()),
        rows_read: parsed.len() as i64,
        rejected: Vec::new(),
    };
    for (line, r) in parsed {
        match r {
            Ok(row) => batch.rows.push(row),
            Err(reason) => batch.rejected.push(RejectedRow { line, reason }),
        }
    }
    batch
}

/// Merge rows repeating a msisdn within one batch (later values win), so one statement
/// never touches a row twice. Returns how many rows were folded into earlier ones.
fn fold_duplicates(rows: Vec<ContactFields>) -> (Vec<ContactFields>, u64) {
    let mut index: HashMap<String, usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<ContactFields> = Vec::with_capacity(rows.len());
    let mut folded = 0;
    for r in rows {
        match index.get(&r.msisdn) {
            Some(&i) => {
                folded += 1;
                let e = &mut out[i];
                for (dst, src) in [
                    (&mut e.email, r.email),
                    (&mut e.first_name, r.first_name),
                    (&mut e.last_name, r.last_name),
                    (&mut e.address, r.address),
                    (&mut e.custom1, r.custom1),
                    (&mut e.custom2, r.custom2),
                    (&mut e.custom3, r.custom3),
                    (&mut e.description, r.description),
                ] {
                    if src.is_some() {
                        *dst = src;
                    }
                }
                e.metadata.extend(r.metadata);
            }
            None => {
                index.insert(r.msisdn.clone(), out.len());
                out.push(r);
            }
        }
    }
    (out, folded)
}

/// Where an import's progress goes: the import's row, a progress bar, …
pub trait ProgressSink: Send {
    /// Called when the import starts, after each batch, and once at the end.
    fn report(&mut self, progress: &ImportProgress) -> impl std::future::Future<Output = ()> + Send;
}

/// Saves an import's progress to its row, at most twice a second until it ends.
pub struct SaveProgress {
    pub store: Store,
    pub import_id: i64,
    last_save: Option<std::time::Instant>,
}

impl SaveProgress {
    pub fn new(store: Store, import_id: i64) -> Self {
        Self {
            store,
            import_id,
            last_save: None,
        }
    }
}

impl ProgressSink for SaveProgress {
    async fn report(&mut self, p: &ImportProgress) {
        let ended = p.status != "running";
        if ended
            || self
                .last_save
                .is_none_or(|t| t.elapsed() >= std::time::Duration::from_millis(500))
        {
            self.last_save = Some(std::time::Instant::now());
            if let Err(e) = self.store.save_import_progress(self.import_id, p).await {
                tracing::error!(error = %e, import = self.import_id, "saving import progress");
            }
        }
    }
}

/// Import the file at `path` into the account, reporting progress to `sink`; the final
/// progress is returned (status `completed` or `failed`).
pub async fn import_file(
    store: &Store,
    account_id: i64,
    group_id: Option<i64>,
    region: Option<Region>,
    path: &Path,
    sink: &mut impl ProgressSink,
) -> ImportProgress {
    let mut progress = ImportProgress {
        status: "running".into(),
        started_at: Some(clock::now()),
        ..Default::default()
    };
    sink.report(&progress).await;
    let head = {
        let mut buf = Vec::with_capacity(SNIFF_BYTES);
        match std::fs::File::open(path).and_then(|f| f.take(SNIFF_BYTES as u64).read_to_end(&mut buf)) {
            Ok(_) => buf,
            Err(e) => return finish(progress, Some(format!("the upload could not be read: {e}")), sink).await,
        }
    };
    let layout = match sniff(&head) {
        Ok(l) => l,
        Err(why) => return finish(progress, Some(why), sink).await,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(WRITE_ROWS / BATCH);
    let path_owned = path.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || read_file(&path_owned, layout, region, tx));
    let mut failure = None;
    while let Some(first) = rx.recv().await {
        // Everything parsed meanwhile goes into one transaction. On SQLite a commit
        // writes every page it changed to the WAL, and random msisdns spread over the
        // whole unique index: at 5,000 rows a commit that was near a page per row
        // (62k rows/s), at 50,000 about one in ten (109k; decision 0019).
        let mut rows = Vec::with_capacity(first.rows.len());
        let mut next = Some(first);
        while let Some(batch) = next.take() {
            progress.rows_read += batch.rows_read;
            progress.rejected += batch.rejected.len() as i64;
            let room = MAX_REJECTED_KEPT.saturating_sub(progress.rejected_rows.len());
            progress.rejected_rows.extend(batch.rejected.into_iter().take(room));
            rows.extend(batch.rows);
            if rows.len() < WRITE_ROWS {
                next = rx.try_recv().ok();
            }
        }
        let (rows, folded) = fold_duplicates(rows);
        let distinct = rows.len() as u64;
        match store.upsert_contacts_batch(account_id, rows, group_id).await {
            Ok(created) => {
                progress.created += created as i64;
                progress.updated += (distinct - created + folded) as i64;
            }
            Err(e) => {
                tracing::error!(error = %e, "contact import batch failed");
                failure = Some("the database refused a batch of contacts; see the server log".to_string());
                break;
            }
        }
        sink.report(&progress).await;
    }
    drop(rx);
    match reader.await {
        Ok(Err(why)) if failure.is_none() => failure = Some(why),
        Err(e) if failure.is_none() => failure = Some(format!("the reader stopped: {e}")),
        _ => {}
    }
    if progress.created + progress.updated >= ANALYZE_AFTER_ROWS {
        // Before `completed`, so the first queries after the import are planned well.
        if let Err(e) = store.refresh_contact_statistics().await {
            tracing::warn!(error = %e, "refreshing contact statistics after an import");
        }
    }
    finish(progress, failure, sink).await
}

/// Imports that wrote at least this many contacts refresh the planner's statistics.
const ANALYZE_AFTER_ROWS: i64 = 10_000;

async fn finish(mut progress: ImportProgress, failure: Option<String>, sink: &mut impl ProgressSink) -> ImportProgress {
    progress.status = if failure.is_some() { "failed" } else { "completed" }.into();
    progress.failure_reason = failure;
    progress.finished_at = Some(clock::now());
    sink.report(&progress).await;
    progress
}

/// The export's columns, in order; the importer reads them back.
pub const EXPORT_HEADER: [&str; 13] = [
    "id",
    "msisdn",
    "first_name",
    "last_name",
    "email",
    "address",
    "custom1",
    "custom2",
    "custom3",
    "description",
    "opted_out_at",
    "created_at",
    "metadata",
];

/// CSV text (RFC 4180 quoting) for some contacts, optionally preceded by the header.
pub fn export_rows(contacts: &[Contact], header: bool) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(contacts.len() * 128));
    if header {
        let _ = w.write_record(EXPORT_HEADER);
    }
    for c in contacts {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let meta = if c.metadata.0.is_empty() {
            String::new()
        } else {
            serde_json::Value::Object(c.metadata.0.clone()).to_string()
        };
        let _ = w.write_record([
            c.id.to_string(),
            c.msisdn.clone(),
            opt(&c.first_name),
            opt(&c.last_name),
            opt(&c.email),
            opt(&c.address),
            opt(&c.custom1),
            opt(&c.custom2),
            opt(&c.custom3),
            opt(&c.description),
            c.opted_out_at.map(|t| crate::wire::ts::format(&t)).unwrap_or_default(),
            crate::wire::ts::format(&c.created_at),
            meta,
        ]);
    }
    w.into_inner().unwrap_or_default()
}

/// The sample file of `GET /api/groups/sample.csv`.
pub const SAMPLE_CSV: &str = "msisdn,first_name,last_name,email,address,custom1,custom2,custom3,description,gender\r\n\
+254712345678,Amina,Otieno,amina@example.com,\"Moi Avenue 1, Nairobi\",,,,Field officer,f\r\n\
+252662345999,Kate,,,,,,,,f\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_headers_delimiters_and_bad_files() {
        let l = sniff(b"\xEF\xBB\xBFPhone;First Name;district\n+254712345678;A;x\n").unwrap();
        assert_eq!(l.delimiter, b';');
        assert!(l.has_header);
        assert_eq!(l.columns, vec![Column::Msisdn, Column::FirstName, Column::Metadata(0)]);
        assert_eq!(l.metadata_keys, vec!["district".to_string()]);
        let l = sniff(b"0712345678,Amina\n").unwrap();
        assert!(!l.has_header);
        assert!(sniff(b"").is_err());
        assert!(sniff(b"\x00\x01\x02binary").is_err());
        assert!(sniff(b"\xff\xfe\xfd not utf8").is_err());
        assert!(sniff(b"name,age\nbob,3\n").is_err());
        assert!(sniff(SAMPLE_CSV.as_bytes()).unwrap().has_header);
    }

    #[test]
    fn folds_repeated_numbers_within_a_batch() {
        let row = |m: &str, first: Option<&str>| ContactFields {
            msisdn: m.into(),
            first_name: first.map(String::from),
            ..Default::default()
        };
        let (rows, folded) = fold_duplicates(vec![row("+1", Some("a")), row("+2", None), row("+1", Some("b"))]);
        assert_eq!(folded, 1);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].first_name.as_deref(), Some("b"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            if let Ok(layout) = sniff(&bytes) {
                let mut reader = csv::ReaderBuilder::new().delimiter(layout.delimiter).has_headers(layout.has_header)
                    .flexible(true).from_reader(&bytes[..]);
                let mut record = csv::ByteRecord::new();
                while let Ok(true) = reader.read_byte_record(&mut record) {
                    let _ = parse_row(&record, &layout, Region::parse("KE"));
                }
            }
        }
    }
}
