//! Finding and running the real peer software the adapter tests talk to on loopback.
//!
//! Peers are installed by `scripts/install-test-peers`; a missing one fails the test with
//! that instruction rather than skipping it, so a green run always means "tested".
#![allow(dead_code)] // each test binary uses its own part of this module

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sauti_channels::{ChannelKind, Event, Outbound};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The repository root (the crate lives in `crates/channels`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// A peer executable or file that must exist; panics with how to install it.
pub fn require(path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    assert!(
        path.exists(),
        "test peer {} is missing: run scripts/install-test-peers (from the repository root) first",
        path.display()
    );
    path.to_path_buf()
}

/// The peers' Python (a venv with aiosmtpd and twilio).
pub fn python() -> PathBuf {
    require(repo_root().join(".peers/venv/bin/python"))
}

/// The peers' Python, checked to have `module` installed.
pub fn python_with(module: &str) -> PathBuf {
    let python = python();
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "test peer Python package {module} is missing from .peers/venv: run scripts/install-test-peers \
         (from the repository root) first"
    );
    python
}

/// A port free on 127.0.0.1 right now. (Another process could take it before the peer
/// binds it; on a test machine that is rare enough.)
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Spawn `cmd` so that it dies with its handle.
pub fn spawn(cmd: &mut Command) -> Child {
    cmd.kill_on_drop(true)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"))
}

/// Read the child's stdout until a line containing `needle`; return that line. The rest
/// of stdout is drained in the background so the child never blocks on a full pipe.
pub async fn wait_for_line(child: &mut Child, needle: &str, within: Duration) -> String {
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    let found = tokio::time::timeout(within, async {
        while let Some(line) = lines.next_line().await.expect("read peer stdout") {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("peer exited before printing {needle:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("peer did not print {needle:?} within {within:?}"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    found
}

/// Wait until something accepts TCP connections on `port`.
pub async fn wait_for_port(port: u16, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing listens on 127.0.0.1:{port} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next event, or a panic after `within`.
pub async fn next_event(events: &mut mpsc::Receiver<Event>, within: Duration) -> Event {
    tokio::time::timeout(within, events.recv())
        .await
        .unwrap_or_else(|_| panic!("no event within {within:?}"))
        .expect("event sink closed")
}

/// A bare SMS to send.
pub fn sms(attempt_id: i64, to: &str, from: Option<&str>, body: &str) -> Outbound {
    Outbound {
        attempt_id,
        transmission_id: attempt_id * 10,
        account_id: 1,
        channel: ChannelKind::Sms,
        to: to.to_string(),
        from: from.map(str::to_string),
        body: body.to_string(),
        subject: None,
        html: None,
        attachments: vec![],
        validity: None,
        want_receipt: true,
    }
}

/// One HTTP request a provider made to the test's stand-in for sauti's API.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    /// The full URL as the provider called it (for signature checks).
    pub url: String,
    pub headers: axum::http::HeaderMap,
    /// Query and form parameters, in order.
    pub params: Vec<(String, String)>,
}

/// An HTTP server on 127.0.0.1 that records every request and answers 200; stands in for
/// sauti's callback and MO endpoints. Returns its base URL and the stream of requests.
pub async fn callback_server() -> (String, mpsc::UnboundedReceiver<Hit>) {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, Uri};

    let (tx, rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let base2 = base.clone();
    let app = axum::Router::new()
        .fallback(
            |State(tx): State<mpsc::UnboundedSender<Hit>>, uri: Uri, headers: HeaderMap, body: Bytes| async move {
                let mut params: Vec<(String, String)> =
                    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                        .into_owned()
                        .collect();
                params.extend(url::form_urlencoded::parse(&body).into_owned());
                let _ = tx.send(Hit {
                    path: uri.path().to_string(),
                    url: format!("{base2}{uri}"),
                    headers,
                    params,
                });
                "ok"
            },
        )
        .with_state(tx);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, rx)
}

/// The next recorded request, or a panic after `within`.
pub async fn next_hit(hits: &mut mpsc::UnboundedReceiver<Hit>, within: Duration) -> Hit {
    tokio::time::timeout(within, hits.recv())
        .await
        .unwrap_or_else(|_| panic!("no callback within {within:?}"))
        .expect("callback server stopped")
}

/// The value of `key` in `params`.
pub fn get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}
