//! Black-box tests of the `sauti` binary: real processes, real databases, real HTTP.
//!
//! Every test runs in its own temporary directory with every inherited `SAUTI_*` variable
//! removed, so neither the developer's environment nor a stray `./sauti-data` can leak in.
//! `serve` is started with `SAUTI_BIND=127.0.0.1:0` and the test reads the real address
//! from its "listening on http://…" log line: no port is guessed, so tests never collide.

use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sauti_store::testing::{Backend, TestDatabase};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_sauti");
/// Generous: a cold PostgreSQL migration on a busy 2-core CI machine can take seconds.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A `sauti` invocation in `dir` with a clean `SAUTI_*` environment plus `env`.
fn sauti(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir).stdin(Stdio::null()).kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SAUTI_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("SAUTI_LOG_FORMAT", "text");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

async fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::time::timeout(START_TIMEOUT, sauti(dir, args, env).output())
        .await
        .unwrap_or_else(|_| panic!("sauti {args:?} did not finish in {START_TIMEOUT:?}"))
        .expect("run sauti")
}

fn describe(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[derive(Debug)]
struct CreatedAccount {
    account_id: i64,
    access_token: String,
}

/// `sauti accounts create`, checking stdout is exactly one JSON object with the two keys.
async fn create_account(dir: &Path, env: &[(&str, &str)], name: &str) -> CreatedAccount {
    // Debug logging on purpose: however chatty the logs, none may reach stdout.
    let mut env = env.to_vec();
    env.push(("SAUTI_LOG", "debug"));
    let output = run(dir, &["accounts", "create", "--name", name], &env).await;
    assert!(output.status.success(), "accounts create failed: {}", describe(&output));
    let stdout = String::from_utf8(output.stdout.clone()).expect("utf-8 stdout");
    assert_eq!(
        stdout.lines().count(),
        1,
        "stdout must be one line: {}",
        describe(&output)
    );
    let value: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let object = value.as_object().expect("a JSON object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["access_token", "account_id"], "{stdout}");
    let access_token = object["access_token"]
        .as_str()
        .expect("access_token is a string")
        .to_string();
    assert!(access_token.len() >= 32, "token too short: {access_token}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains(&access_token),
        "the token must not be logged: {stderr}"
    );
    CreatedAccount {
        account_id: object["account_id"].as_i64().expect("account_id is an integer"),
        access_token,
    }
}

/// A running `sauti serve`; killed if the test ends without stopping it.
struct Server {
    child: Child,
    base_url: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    async fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
        Self::start_as(dir, env, &["serve"]).await
    }

    /// `serve` with `args` (`["serve", "--role", "api"]`); a worker has no address, and is
    /// ready when it says it runs the delivery workers.
    async fn start_as(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut env = env.to_vec();
        env.push(("SAUTI_BIND", "127.0.0.1:0"));
        let mut child = sauti(dir, args, &env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(String::new()));

        let found = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = lines.next_line().await.expect("read serve's stderr") {
                log.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default().to_string();
                    return Some(addr);
                }
                if line.contains("delivery workers only") {
                    return Some(String::new());
                }
            }
            None
        })
        .await;
        let addr = match found {
            Ok(Some(addr)) => addr,
            Ok(None) => {
                let status = child.wait().await.unwrap();
                panic!("serve exited ({status}) before listening:\n{}", log.lock().unwrap());
            }
            Err(_) => panic!(
                "serve did not listen within {START_TIMEOUT:?}:\n{}",
                log.lock().unwrap()
            ),
        };

        // Keep draining stderr: a full pipe would block the server's logging.
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Server {
            child,
            base_url: format!("http://{addr}"),
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    async fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("serve is running").to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    async fn wait(&mut self) -> ExitStatus {
        match tokio::time::timeout(EXIT_TIMEOUT, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => panic!("serve did not exit within {EXIT_TIMEOUT:?}:\n{}", self.log()),
        }
    }
}

/// The whole operator path on one database: migrate, bootstrap a tenant, serve, use the
/// token over HTTP, stop with SIGTERM.
async fn operator_path(dir: &Path, env: &[(&str, &str)]) {
    let output = run(dir, &["migrate"], env).await;
    assert!(output.status.success(), "migrate failed: {}", describe(&output));
    assert!(
        output.stdout.is_empty(),
        "migrate prints nothing on stdout: {}",
        describe(&output)
    );
    // Migrating an up-to-date database is a no-op, not an error.
    let output = run(dir, &["migrate"], env).await;
    assert!(output.status.success(), "second migrate failed: {}", describe(&output));

    let acme = create_account(dir, env, "Acme").await;
    let globex = create_account(dir, env, "Globex").await;
    assert_ne!(acme.account_id, globex.account_id);

    let mut server = Server::start(dir, env).await;
    let http = reqwest::Client::new();
    let tokens_url = format!("{}/api/access_tokens", server.base_url);

    let resp = http
        .get(&tokens_url)
        .bearer_auth(&acme.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "GET /api/access_tokens:\n{}", server.log());
    let body: serde_json::Value = resp.json().await.unwrap();
    let tokens = body.as_array().unwrap_or_else(|| panic!("a JSON array: {body}"));
    assert_eq!(tokens.len(), 1, "a new account has exactly its bootstrap token: {body}");

    // The other tenant's token works too, and the credential check is real.
    let resp = http
        .get(&tokens_url)
        .bearer_auth(&globex.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http.get(&tokens_url).bearer_auth("not-a-token").send().await.unwrap();
    assert_eq!(resp.status(), 401);

    server.signal("TERM").await;
    let status = server.wait().await;
    assert!(
        status.success(),
        "serve must exit 0 on SIGTERM, got {status}:\n{}",
        server.log()
    );
    let log = server.log();
    assert!(log.contains("shutting down"), "{log}");
    for account in [&acme, &globex] {
        assert!(!log.contains(&account.access_token), "a token reached the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_path_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data_dir = data_dir.to_str().unwrap();
    operator_path(dir.path(), &[("SAUTI_DATA_DIR", data_dir)]).await;
    assert!(
        Path::new(data_dir).join("sauti.db").is_file(),
        "the default database lives in SAUTI_DATA_DIR"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_path_on_postgres() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let url = with_password(&db.url, "pw-must-not-leak");
    let env = [
        ("SAUTI_DATA_DIR", data_dir.to_str().unwrap()),
        ("SAUTI_DATABASE_URL", url.as_str()),
    ];
    operator_path(dir.path(), &env).await;
    assert!(
        !data_dir.join("sauti.db").exists(),
        "no SQLite file when PostgreSQL is configured"
    );

    // With everything logged, the password still never appears.
    let password = password_of(&url).expect("the URL has a password");
    let output = run(dir.path(), &["migrate"], &[env[0], env[1], ("SAUTI_LOG", "trace")]).await;
    assert!(output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("postgres://"), "the redacted URL is logged: {stderr}");
    assert!(
        !stderr.contains(password),
        "the database password reached the log: {stderr}"
    );
}

/// A URL's password, if it has one.
fn password_of(url: &str) -> Option<&str> {
    let after_scheme = url.find("://")? + 3;
    let authority_end = url[after_scheme..].find('/').map_or(url.len(), |i| i + after_scheme);
    let userinfo = url[after_scheme..authority_end].rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, pw)| pw)
}

/// Give a PostgreSQL URL a password (the test server uses trust auth, so any password is
/// accepted); keep the one it already has.
fn with_password(url: &str, password: &str) -> String {
    if password_of(url).is_some() {
        return url.to_string();
    }
    let after_scheme = url.find("://").unwrap() + 3;
    let authority_end = url[after_scheme..].find('/').map_or(url.len(), |i| i + after_scheme);
    match url[after_scheme..authority_end].rfind('@') {
        Some(at) => {
            let at = at + after_scheme;
            format!("{}:{password}{}", &url[..at], &url[at..])
        }
        None => format!("{}postgres:{password}@{}", &url[..after_scheme], &url[after_scheme..]),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_stops_serve_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]).await;
    let resp = reqwest::get(format!("{}/healthz", server.base_url)).await.unwrap();
    assert_eq!(resp.status(), 200);
    server.signal("INT").await;
    let status = server.wait().await;
    assert!(
        status.success(),
        "serve must exit 0 on SIGINT, got {status}:\n{}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_configuration_means_sqlite_in_sauti_data() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["migrate"], &[]).await;
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        dir.path().join("sauti-data/sauti.db").is_file(),
        "{}",
        describe(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_file_is_read_and_env_wins_over_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sauti.toml"),
        "data_dir = \"from-file\"\nlog = \"info\"\n",
    )
    .unwrap();
    let output = run(dir.path(), &["migrate", "--config", "sauti.toml"], &[]).await;
    assert!(output.status.success(), "{}", describe(&output));
    assert!(dir.path().join("from-file/sauti.db").is_file(), "{}", describe(&output));

    let output = run(
        dir.path(),
        &["--config", "sauti.toml", "migrate"],
        &[("SAUTI_DATA_DIR", "from-env")],
    )
    .await;
    assert!(output.status.success(), "{}", describe(&output));
    assert!(dir.path().join("from-env/sauti.db").is_file(), "{}", describe(&output));

    std::fs::write(dir.path().join("bad.toml"), "bind = 8080\n").unwrap();
    let output = run(dir.path(), &["migrate", "--config", "bad.toml"], &[]).await;
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("bad.toml"),
        "{}",
        describe(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_role_runs_workers_without_http_and_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = sauti(
        dir.path(),
        &["serve", "--role", "worker"],
        &[("SAUTI_BIND", "127.0.0.1:0")],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let started = tokio::time::timeout(START_TIMEOUT, async {
        while let Some(line) = lines.next_line().await.expect("read serve's stderr") {
            log.push_str(&format!("{line}\n"));
            assert!(!line.contains("listening on"), "a worker must not serve HTTP:\n{log}");
            if line.contains("delivery workers only") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(started, Ok(true), "the worker did not start:\n{log}");
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(EXIT_TIMEOUT, child.wait())
        .await
        .expect("worker exits")
        .unwrap();
    assert!(status.success(), "a worker exits 0 on SIGINT, got {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn help_documents_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["--help"], &[]).await;
    assert!(output.status.success(), "{}", describe(&output));
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "serve",
        "migrate",
        "accounts",
        "--config",
        "SAUTI_BIND",
        "SAUTI_DATA_DIR",
        "SAUTI_DATABASE_URL",
        "SAUTI_LOG",
        "SAUTI_LOG_FORMAT",
        "SAUTI_SESSION_TTL_SECONDS",
        "SAUTI_BODY_LIMIT_BYTES",
        "SAUTI_PUBLIC_URL",
        "SAUTI_LEASE_SECONDS",
        "SAUTI_RATE_LIMIT",
    ] {
        assert!(help.contains(needle), "--help does not mention {needle}:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["migrate"], &[("SAUTI_LOG_FORMAT", "json")]).await;
    assert!(output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.trim().is_empty(), "migrate logs at info");
    for line in stderr.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value.get("level").is_some() && value.get("message").is_some(), "{line}");
    }
}

/// `sauti contacts import` reports like the API does and `export` writes what import reads.
async fn contacts_import_export(dir: &Path, env: &[(&str, &str)]) {
    let acme = create_account(dir, env, "Acme").await;
    let csv = dir.join("people.csv");
    std::fs::write(
        &csv,
        "phone,first_name,district\n+254712345601,Amina,Kibra\nnope,Bob,Kibra\n+254712345602,Chen,Mathare\n",
    )
    .unwrap();
    let output = run(
        dir,
        &["contacts", "import", csv.to_str().unwrap(), "--group", "Field"],
        env,
    )
    .await;
    assert!(output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("completed: 3 rows read, 2 created, 0 updated, 1 rejected"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 3: msisdn \"nope\" is not a valid phone number"),
        "{stderr}"
    );

    let output = run(dir, &["contacts", "export", "--group", "Field"], env).await;
    assert!(output.status.success(), "{}", describe(&output));
    let exported = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = exported.lines().collect();
    assert_eq!(lines.len(), 3, "{exported}");
    assert!(lines[0].starts_with("id,msisdn,first_name"));
    assert!(
        lines[1].contains("+254712345601,Amina") && lines[1].contains(r#"{""district"":""Kibra""}"#),
        "{exported}"
    );

    // A second account makes --account necessary, and the export re-imports into it.
    let other = create_account(dir, env, "Other").await;
    let output = run(dir, &["contacts", "export"], env).await;
    assert!(!output.status.success(), "two accounts need --account");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--account"));
    let again = dir.join("again.csv");
    std::fs::write(&again, &exported).unwrap();
    let account = other.account_id.to_string();
    let output = run(
        dir,
        &["contacts", "import", again.to_str().unwrap(), "--account", &account],
        env,
    )
    .await;
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("2 created, 0 updated, 0 rejected"),
        "{}",
        describe(&output)
    );
    let _ = acme;

    let output = run(
        dir,
        &[
            "contacts",
            "import",
            dir.join("missing.csv").to_str().unwrap(),
            "--account",
            &account,
        ],
        env,
    )
    .await;
    assert!(!output.status.success());
    let binary = dir.join("binary.csv");
    std::fs::write(&binary, b"\x00\x01\x02").unwrap();
    let output = run(
        dir,
        &["contacts", "import", binary.to_str().unwrap(), "--account", &account],
        env,
    )
    .await;
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("binary"),
        "{}",
        describe(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn contacts_import_export_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    contacts_import_export(dir.path(), &[("SAUTI_DATA_DIR", data_dir.to_str().unwrap())]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn contacts_import_export_on_postgres() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    contacts_import_export(
        dir.path(),
        &[
            ("SAUTI_DATA_DIR", data_dir.to_str().unwrap()),
            ("SAUTI_DATABASE_URL", &db.url),
        ],
    )
    .await;
}

/// How many messages the crash test sends.
const CRASH_MESSAGES: usize = 20_000;

/// Send `CRASH_MESSAGES` SMS through the SMPP adapter to the simulator, SIGKILL `serve`
/// in the middle, start it again, and check the accounting: every transmission reaches a
/// final status, none is lost, and every number the simulator saw more than once belongs
/// to a transmission with an attempt recorded as ambiguous.
async fn crash_and_recover(dir: &Path, env: &[(&str, &str)], db_url: &str) {
    use sauti_smsc_sim::{SimConfig, Simulator};
    let sim = Simulator::start(SimConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut env = env.to_vec();
    // A short lease, so the dead process's claims are taken over quickly.
    env.push(("SAUTI_LEASE_SECONDS", "2"));
    let account = create_account(dir, &env, "Crash").await;
    let mut server = Server::start(dir, &env).await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/api/providers", server.base_url))
        .bearer_auth(&account.access_token)
        .json(&serde_json::json!({"name": "smsc", "kind": "smpp", "settings": {
            "host": "127.0.0.1", "port": sim.addr().port(), "system_id": "test", "password": "secret",
            "reconnect_min_ms": 50, "reconnect_max_ms": 500}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // The messages go straight into the store in batches (as a campaign's fan-out will);
    // the HTTP path for single sends is covered by the API tests.
    let store = sauti_store::Store::connect(db_url, &Default::default()).await.unwrap();
    for chunk in (0..CRASH_MESSAGES).collect::<Vec<_>>().chunks(1000) {
        let rows: Vec<sauti_store::NewTransmission> = chunk
            .iter()
            .map(|i| sauti_store::NewTransmission {
                account_id: account.account_id,
                direction: "outbound".into(),
                channel: "sms".into(),
                origin: "api".into(),
                to_address: format!("+2547{i:08}"),
                body: format!("crash test {i}"),
                encoding: Some("GSM-7".into()),
                segments: 1,
                status: "queued".into(),
                max_attempts: 5,
                ..Default::default()
            })
            .collect();
        store.create_transmissions(&rows).await.unwrap();
    }
    let killed_at = CRASH_MESSAGES as u64 / 3;
    let reached = tokio::time::timeout(Duration::from_secs(120), async {
        while sim.stats().submits < killed_at {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "fewer than {killed_at} submits in 120 s:\n{}",
        server.log()
    );
    server.signal("KILL").await;
    let status = server.wait().await;
    assert!(!status.success(), "SIGKILL ends the process");
    let before_restart = sim.stats().submits;
    assert!(before_restart < CRASH_MESSAGES as u64, "the kill came before the end");

    let mut server = Server::start(dir, &env).await;
    let done = tokio::time::timeout(Duration::from_secs(240), async {
        loop {
            let counts = store
                .transmission_status_counts(Some(account.account_id))
                .await
                .unwrap();
            let finals: i64 = counts
                .iter()
                .filter(|(s, _)| ["delivered", "undelivered", "failed"].contains(&s.as_str()))
                .map(|(_, n)| n)
                .sum();
            if finals == CRASH_MESSAGES as i64 {
                return counts;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let counts = done.unwrap_or_else(|_| panic!("not every transmission reached a final status:\n{}", server.log()));
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, CRASH_MESSAGES as i64, "none lost, none invented: {counts:?}");
    assert_eq!(
        counts,
        vec![("delivered".to_string(), CRASH_MESSAGES as i64)],
        "all delivered"
    );

    let duplicated = duplicates_are_ambiguous(&sim, &store, account.account_id, CRASH_MESSAGES).await;
    eprintln!(
        "crash test: {} submits before the kill, {} duplicates, all accounted for as ambiguous",
        before_restart, duplicated
    );
    server.signal("TERM").await;
    server.wait().await;
    store.close().await;
    sim.shutdown().await;
}

/// Check that every destination the simulator saw more than once belongs to a
/// transmission with an attempt recorded as ambiguous, and that all `expected`
/// destinations reached it. Returns how many were seen twice.
async fn duplicates_are_ambiguous(
    sim: &sauti_smsc_sim::Simulator,
    store: &sauti_store::Store,
    account_id: i64,
    expected: usize,
) -> usize {
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    for s in sim.submits() {
        *seen.entry(s.destination_addr).or_default() += 1;
    }
    assert_eq!(seen.len(), expected, "every message reached the SMSC");
    let duplicated: Vec<String> = seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(d, _)| format!("+{d}"))
        .collect();
    let page = sauti_core::filter::ListQuery {
        filter: Default::default(),
        sort: vec![],
        page: 1,
        per_page: 100,
    };
    for to in &duplicated {
        let mut q = page.clone();
        q.filter = sauti_core::filter::parse_list_query(&[("q[to]".to_string(), to.clone())], &transmissions_spec())
            .unwrap()
            .filter;
        let t = store.list_transmissions(account_id, &q).await.unwrap().items.remove(0);
        let attempts = store.attempts_of(t.id).await.unwrap();
        assert!(
            attempts.iter().any(|a| a.status == "ambiguous"),
            "{to} was submitted more than once without an ambiguous attempt: {attempts:?}"
        );
    }
    duplicated.len()
}

fn transmissions_spec() -> sauti_core::filter::ResourceSpec {
    use sauti_core::filter::{FieldKind, FieldSpec, ResourceSpec};
    ResourceSpec {
        sortable: &["id"],
        fields: &[FieldSpec {
            name: "to",
            column: "to_address",
            kind: FieldKind::Text,
        }],
        has_metadata: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_send_loses_nothing_on_sqlite() {
    let db = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    crash_and_recover(dir.path(), &[("SAUTI_DATABASE_URL", &db.url)], &db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_send_loses_nothing_on_postgres() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    crash_and_recover(dir.path(), &[("SAUTI_DATABASE_URL", &db.url)], &db.url).await;
}

/// Contacts in the campaign crash tests.
const CAMPAIGN_CONTACTS: usize = 50_000;

/// A 50,000-contact SMS callout through the SMPP adapter to the simulator, while `serve`
/// processes are SIGKILLed: `workers` are started as `serve --role worker` beside one
/// `serve --role api` (or, with no workers, one `serve` doing both). Twice, once a third
/// and two thirds of the contacts were submitted, one process doing delivery work is
/// killed and (in the single-process case) started again. At the end every participation
/// is final, each contact participates once, every contact reached the SMSC, and any
/// contact submitted twice has an attempt recorded as ambiguous.
async fn campaign_crash(dir: &Path, env: &[(&str, &str)], db_url: &str, workers: usize) {
    use sauti_smsc_sim::{SimConfig, Simulator};
    let sim = Simulator::start(SimConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut env = env.to_vec();
    env.push(("SAUTI_LEASE_SECONDS", "2"));
    let account = create_account(dir, &env, "Campaign").await;
    let store = sauti_store::Store::connect(db_url, &Default::default()).await.unwrap();
    let group = store
        .create_group(
            account.account_id,
            &sauti_store::NewGroup {
                name: "everyone".into(),
                description: None,
                metadata: Default::default(),
            },
        )
        .await
        .unwrap();
    for chunk in (0..CAMPAIGN_CONTACTS).collect::<Vec<_>>().chunks(5000) {
        let rows: Vec<sauti_store::ContactFields> = chunk
            .iter()
            .map(|i| sauti_store::ContactFields {
                msisdn: format!("+2547{i:08}"),
                first_name: Some(format!("N{i}")),
                ..Default::default()
            })
            .collect();
        store
            .upsert_contacts_batch(account.account_id, rows, Some(group.id))
            .await
            .unwrap();
    }

    let (api, mut workers_running): (Server, Vec<Server>) = if workers == 0 {
        (Server::start(dir, &env).await, vec![])
    } else {
        let api = Server::start_as(dir, &env, &["serve", "--role", "api"]).await;
        let mut w = Vec::new();
        for _ in 0..workers {
            w.push(Server::start_as(dir, &env, &["serve", "--role", "worker"]).await);
        }
        (api, w)
    };
    let mut api = Some(api);
    let base = api.as_ref().unwrap().base_url.clone();
    let client = reqwest::Client::new();
    let token = account.access_token.clone();
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let r = post(
        "/api/providers",
        serde_json::json!({"name": "smsc", "kind": "smpp", "settings": {
            "host": "127.0.0.1", "port": sim.addr().port(), "system_id": "test", "password": "secret",
            "reconnect_min_ms": 50, "reconnect_max_ms": 500}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = post(
        "/api/callouts",
        serde_json::json!({"channel": "sms", "body": "Dear {{first_name}}", "group_id": group.id,
            "max_attempts": 5, "retry_delay": 1}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let callout: serde_json::Value = r.json().await.unwrap();
    let id = callout["id"].as_i64().unwrap();
    let r = post(
        &format!("/api/callouts/{id}/callout_events"),
        serde_json::json!({"event": "start"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);

    for third in [1, 2] {
        let at = (CAMPAIGN_CONTACTS * third / 3) as u64;
        let reached = tokio::time::timeout(Duration::from_secs(180), async {
            while sim.stats().submits < at {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        let log = |a: &Option<Server>| a.as_ref().map(Server::log).unwrap_or_default();
        assert!(reached.is_ok(), "fewer than {at} submits in 180 s:\n{}", log(&api));
        if workers == 0 {
            let mut server = api.take().unwrap();
            server.signal("KILL").await;
            assert!(!server.wait().await.success(), "SIGKILL ends the process");
            api = Some(Server::start(dir, &env).await);
        } else if third == 1 {
            // One of the workers dies for good: the others take its leases over.
            let mut w = workers_running.remove(0);
            w.signal("KILL").await;
            assert!(!w.wait().await.success(), "SIGKILL ends the worker");
        } else {
            // The other restarts.
            let mut w = workers_running.remove(0);
            w.signal("KILL").await;
            w.wait().await;
            workers_running.push(Server::start_as(dir, &env, &["serve", "--role", "worker"]).await);
        }
        assert!(
            sim.stats().submits < CAMPAIGN_CONTACTS as u64,
            "the kill came before the end"
        );
    }

    let callout_id = id;
    let done = tokio::time::timeout(Duration::from_secs(300), async {
        loop {
            let c = store
                .get_callout(account.account_id, callout_id)
                .await
                .unwrap()
                .unwrap();
            let s = store.callout_statistics(callout_id).await.unwrap();
            let delivered = s
                .by_status
                .iter()
                .find(|(k, _)| k == "delivered")
                .map_or(0, |(_, n)| *n);
            if c.status == "completed" && delivered == CAMPAIGN_CONTACTS as i64 {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let s = match done {
        Ok(s) => s,
        Err(_) => panic!(
            "the callout did not complete with everyone delivered: {:?}\n{}",
            store.callout_statistics(callout_id).await.unwrap(),
            api.as_ref().unwrap().log()
        ),
    };
    assert_eq!(
        s.total, CAMPAIGN_CONTACTS as i64,
        "each contact participates once: {s:?}"
    );
    assert_eq!(
        s.by_status,
        vec![("delivered".to_string(), CAMPAIGN_CONTACTS as i64)],
        "every participation final"
    );

    let duplicated = duplicates_are_ambiguous(&sim, &store, account.account_id, CAMPAIGN_CONTACTS).await;
    if workers > 0 {
        assert!(
            sim.stats().binds > workers as u64,
            "every worker sent: {:?}",
            sim.stats()
        );
    }
    // What an operator watching it sees.
    let out = run(dir, &["callouts", "watch", &id.to_string(), "--once"], &env).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        text.contains(&format!("{CAMPAIGN_CONTACTS}/{CAMPAIGN_CONTACTS} done"))
            && text.contains("completed")
            && text.contains(&format!("delivered {CAMPAIGN_CONTACTS}")),
        "callouts watch --once: {text}"
    );
    let out = run(dir, &["callouts", "watch", &id.to_string()], &env).await;
    assert!(
        out.status.success(),
        "watch ends when the callout has: {}",
        describe(&out)
    );
    let out = run(dir, &["callouts", "watch", "999999", "--once"], &env).await;
    assert!(!out.status.success() && describe(&out).contains("no callout 999999"));
    eprintln!(
        "campaign crash test ({} workers): {} duplicates, all accounted for as ambiguous",
        workers, duplicated
    );
    for mut w in workers_running {
        w.signal("TERM").await;
        w.wait().await;
    }
    let mut api = api.take().unwrap();
    api.signal("TERM").await;
    api.wait().await;
    store.close().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_callout_survives_two_sigkills_on_sqlite() {
    let db = TestDatabase::create(Backend::Sqlite).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    campaign_crash(dir.path(), &[("SAUTI_DATABASE_URL", &db.url)], &db.url, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_callout_survives_two_sigkills_on_postgres() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    campaign_crash(dir.path(), &[("SAUTI_DATABASE_URL", &db.url)], &db.url, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_run_one_callout_through_sigkills_on_postgres() {
    let Some(db) = TestDatabase::create(Backend::Postgres).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    campaign_crash(dir.path(), &[("SAUTI_DATABASE_URL", &db.url)], &db.url, 2).await;
}
