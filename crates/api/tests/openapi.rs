//! The committed `docs/openapi.json` must be what the code generates, so the published
//! description never drifts from the API. Regenerate with `UPDATE_OPENAPI=1 cargo test -p sauti-api --test openapi`.

use std::path::PathBuf;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[test]
fn committed_openapi_matches_the_code() {
    let generated = sauti_api::openapi::json() + "\n";
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).expect("docs/openapi.json exists");
    assert!(
        committed == generated,
        "docs/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p sauti-api --test openapi` and commit it"
    );
}

#[test]
fn every_documented_operation_declares_its_responses() {
    let doc: serde_json::Value = serde_json::from_str(&sauti_api::openapi::json()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/access_tokens",
        "/api/access_tokens/{id}",
        "/api/account",
        "/api/accounts/{id}",
        "/api/users/{id}/user_events",
        "/api/authenticate",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path}: no responses"));
            assert!(!responses.is_empty(), "{method} {path}: no responses");
        }
    }
}
