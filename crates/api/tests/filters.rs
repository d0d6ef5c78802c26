//! The list query language over `GET /api/access_tokens`: `q[...]` filters (metadata
//! equality, operators, casts, nesting, timestamps, fields), bad input, sorting and
//! pagination with `Per-Page`, `Total` and `Link`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{App, Resp, Tenant};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// `?k=v&…`, percent-encoded as a browser or curl -G --data-urlencode would.
fn qs(pairs: &[(&str, &str)]) -> String {
    let owned: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    format!(
        "/api/access_tokens?{}",
        serde_urlencoded::to_string(&owned).expect("encode")
    )
}

async fn create(app: &App, t: &Tenant, metadata: Value) -> Value {
    let r = app
        .post(
            "/api/access_tokens",
            &t.token,
            json!({"permissions": [], "metadata": metadata}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body
}

fn id(v: &Value) -> i64 {
    v["id"].as_i64().expect("id")
}

fn time(v: &Value, field: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v[field].as_str().expect("timestamp"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

fn midpoint(a: DateTime<Utc>, b: DateTime<Utc>) -> DateTime<Utc> {
    assert!(b - a >= chrono::Duration::milliseconds(10), "{a} {b}");
    a + (b - a) / 2
}

fn ids_of(r: &Resp) -> Vec<i64> {
    r.body
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {} {}", r.status, r.text))
        .iter()
        .map(id)
        .collect()
}

/// The ids a list request returns, in order; asserts 200 and that `Total` agrees.
async fn list(app: &App, t: &Tenant, path: &str) -> Vec<i64> {
    let r = app.get(path, &t.token).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    let ids = ids_of(&r);
    assert_eq!(
        r.header("total"),
        Some(ids.len().to_string().as_str()),
        "{path}: Total disagrees with a one-page answer"
    );
    ids
}

/// The set of ids matching `pairs`.
async fn matching(app: &App, t: &Tenant, pairs: &[(&str, &str)]) -> BTreeSet<i64> {
    list(app, t, &qs(pairs)).await.into_iter().collect()
}

fn set(ids: &[i64]) -> BTreeSet<i64> {
    ids.iter().copied().collect()
}

/// A 422 about `field` in the house shape.
fn assert_invalid(r: &Resp, field: &str, what: &str) {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {}", r.text);
    assert_eq!(r.error_code(), "validation_failed", "{what}");
    let msgs = r.body["errors"][field]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no error about {field:?}: {}", r.text));
    assert!(!msgs.is_empty() && msgs.iter().all(|m| m.as_str().is_some_and(|s| !s.is_empty())));
}

/// The `Link` header as (rel, url) pairs.
fn links(r: &Resp) -> Vec<(String, String)> {
    let Some(h) = r.header("link") else {
        return vec![];
    };
    h.split(',')
        .map(|part| {
            let part = part.trim();
            let (url, params) = part.split_once(';').expect("<url>; rel=…");
            let url = url
                .trim()
                .strip_prefix('<')
                .and_then(|u| u.strip_suffix('>'))
                .expect("<url>");
            let rel = params
                .split(';')
                .find_map(|p| p.trim().strip_prefix("rel="))
                .expect("rel")
                .trim_matches('"');
            (rel.to_string(), url.to_string())
        })
        .collect()
}

fn link<'a>(links: &'a [(String, String)], rel: &str) -> Option<&'a str> {
    links.iter().find(|(r, _)| r == rel).map(|(_, u)| u.as_str())
}

/// The decoded query of a link.
fn link_query(url: &str) -> Vec<(String, String)> {
    let (_, q) = url.split_once('?').expect("a query");
    serde_urlencoded::from_str(q).expect("decodes")
}

both_backends!(metadata_equality_and_operators, |app| async move {
    let t = app.tenant("Acme").await;
    let boot = t.token_id;
    let a = id(&create(
        &app,
        &t,
        json!({"gender": "f", "age": 30, "vip": true, "tags": ["x", "y"], "score": "9",
               "date_of_birth": "2022-01-15", "address": {"city": "Nairobi", "zip": "00100"}}),
    )
    .await);
    let b = id(&create(
        &app,
        &t,
        json!({"gender": "m", "age": "30", "vip": false, "tags": ["y", "z"], "score": "10",
               "date_of_birth": "2021-12-31", "address": {"city": "Mombasa"}}),
    )
    .await);
    let c = id(&create(
        &app,
        &t,
        json!({"gender": "f", "age": 9.5, "tags": "x", "score": "abc",
               "date_of_birth": "not a date", "nick": null}),
    )
    .await);
    let d = id(&create(
        &app,
        &t,
        json!({"gender": "x", "age": 100, "vip": "true", "score": 10,
               "date_of_birth": "2022-02-01T10:00:00Z", "address": {"city": "Nairobi"}}),
    )
    .await);
    // Another tenant's identical tokens never show up.
    let other = app.tenant("Umbrella").await;
    create(&app, &other, json!({"gender": "f", "age": 30, "tags": ["x"]})).await;

    type Case = (Vec<(&'static str, &'static str)>, Vec<i64>);
    let cases: Vec<Case> = vec![
        (vec![], vec![boot, a, b, c, d]),
        // Equality: strings, numbers (30 matches 30 and "30"), booleans.
        (vec![("q[metadata][gender]", "f")], vec![a, c]),
        (vec![("q[metadata][gender]", "F")], vec![]),
        (vec![("q[metadata][age]", "30")], vec![a, b]),
        (vec![("q[metadata][age]", "9.5")], vec![c]),
        (vec![("q[metadata][age]", "100")], vec![d]),
        (vec![("q[metadata][vip]", "true")], vec![a, d]),
        (vec![("q[metadata][vip]", "false")], vec![b]),
        (vec![("q[metadata][missing]", "x")], vec![]),
        // Conditions combine with AND.
        (vec![("q[metadata][gender]", "f"), ("q[metadata][age]", "30")], vec![a]),
        // in: a comma-separated list.
        (vec![("q[metadata][gender.in]", "f,m")], vec![a, b, c]),
        (vec![("q[metadata][gender.in]", "m, x")], vec![b, d]),
        (vec![("q[metadata][age.in]", "30,100")], vec![a, b, d]),
        (vec![("q[metadata][age.numeric.in]", "9.5,100")], vec![c, d]),
        // any: the value is an array holding any of these.
        (vec![("q[metadata][tags.any]", "x")], vec![a]),
        (vec![("q[metadata][tags.any]", "y")], vec![a, b]),
        (vec![("q[metadata][tags.any]", "z,q")], vec![b]),
        (vec![("q[metadata][tags.any]", "q")], vec![]),
        (vec![("q[metadata][gender.any]", "f")], vec![]),
        // ... also in Rack's array form.
        (
            vec![("q[metadata][tags.any][]", "x"), ("q[metadata][tags.any][]", "z")],
            vec![a, b],
        ),
        (
            vec![("q[metadata][gender.in][]", "m"), ("q[metadata][gender.in][]", "x")],
            vec![b, d],
        ),
        // Comparisons as text: "10" < "9".
        (vec![("q[metadata][score.gt]", "9")], vec![c]),
        (vec![("q[metadata][score.lt]", "9")], vec![b, d]),
        (vec![("q[metadata][score.lteq]", "9")], vec![a, b, d]),
        (vec![("q[metadata][score.gteq]", "9")], vec![a, c]),
        // ... and as numbers, where 9 < 10; "abc" is no number and matches nothing.
        (vec![("q[metadata][score.numeric.gt]", "9")], vec![b, d]),
        (vec![("q[metadata][score.numeric.lt]", "10")], vec![a]),
        (vec![("q[metadata][score.numeric.lteq]", "10")], vec![a, b, d]),
        (vec![("q[metadata][score.numeric.gteq]", "10")], vec![b, d]),
        (vec![("q[metadata][score.numeric.gt]", "-1e9")], vec![a, b, d]),
        (vec![("q[metadata][age.numeric.gteq]", "30")], vec![a, b, d]),
        (vec![("q[metadata][age.numeric.lt]", "30")], vec![c]),
        (vec![("q[metadata][age.numeric.lteq]", "9.5")], vec![c]),
        (vec![("q[metadata][age.numeric.gt]", "30.0")], vec![d]),
        (vec![("q[metadata][age.numeric]", "30.0")], vec![a, b]),
        (vec![("q[metadata][gender.numeric.gt]", "0")], vec![]),
        (vec![("q[metadata][vip.numeric.gteq]", "0")], vec![]),
        (vec![("q[metadata][address.numeric.gteq]", "0")], vec![]),
        // Dates (SCFM's example); "not a date" matches nothing.
        (vec![("q[metadata][date_of_birth.date.gt]", "2022-01-01")], vec![a, d]),
        (vec![("q[metadata][date_of_birth.date.lt]", "2022-02-01")], vec![a, b]),
        (
            vec![
                ("q[metadata][date_of_birth.date.gt]", "2022-01-01"),
                ("q[metadata][date_of_birth.date.lt]", "2022-02-01"),
            ],
            vec![a],
        ),
        (vec![("q[metadata][date_of_birth.date.gteq]", "2022-02-01")], vec![d]),
        (vec![("q[metadata][date_of_birth.date.lteq]", "2021-12-31")], vec![b]),
        (vec![("q[metadata][date_of_birth.date]", "2022-01-15")], vec![a]),
        (
            vec![("q[metadata][date_of_birth.date.gt]", "1900-01-01")],
            vec![a, b, d],
        ),
        (vec![("q[metadata][gender.date.gt]", "1900-01-01")], vec![]),
        (vec![("q[metadata][age.date.gt]", "1900-01-01")], vec![]),
        // Numbers are not dates (SQLite would read them as Julian day numbers).
        (vec![("q[metadata][age.date.lt]", "2100-01-01")], vec![]),
        (vec![("q[metadata][score.date.lteq]", "2100-01-01")], vec![]),
        // exists (a JSON null is present).
        (vec![("q[metadata][vip.exists]", "true")], vec![a, b, d]),
        (vec![("q[metadata][vip.exists]", "false")], vec![boot, c]),
        (vec![("q[metadata][nick.exists]", "true")], vec![c]),
        (vec![("q[metadata][nick.exists]", "false")], vec![boot, a, b, d]),
        (vec![("q[metadata][address.exists]", "1")], vec![a, b, d]),
        (vec![("q[metadata][address.exists]", "0")], vec![boot, c]),
        // Nested keys, with and without operators.
        (vec![("q[metadata][address][city]", "Nairobi")], vec![a, d]),
        (vec![("q[metadata][address][city]", "Mombasa")], vec![b]),
        (vec![("q[metadata][address][city.in]", "Mombasa,Kisumu")], vec![b]),
        (vec![("q[metadata][address][zip]", "00100")], vec![a]),
        (vec![("q[metadata][address][zip.exists]", "true")], vec![a]),
        (vec![("q[metadata][address][zip.exists]", "false")], vec![boot, b, c, d]),
        (vec![("q[metadata][address][zip.numeric.lt]", "101")], vec![a]),
        (vec![("q[metadata][address][zip.gt]", "00099")], vec![a]),
        // A path through something that is not an object matches nothing, without error.
        (vec![("q[metadata][tags][foo]", "x")], vec![]),
        (vec![("q[metadata][gender][foo]", "f")], vec![]),
        (vec![("q[metadata][tags][0]", "x")], vec![]),
        (vec![("q[metadata][address][city][name.exists]", "true")], vec![]),
        // Keys SQL would choke on are plain keys.
        (vec![("q[metadata][x'); DROP TABLE access_tokens; --]", "1")], vec![]),
        (vec![("q[metadata][first name]", "Kate")], vec![]),
        (vec![("q[metadata][$.gender]", "f")], vec![]),
        (vec![("q[metadata][gender')]", "f")], vec![]),
    ];
    for (pairs, want) in cases {
        let got = matching(&app, &t, &pairs).await;
        assert_eq!(got, set(&want), "{pairs:?}");
    }
    app.stop().await;
});

both_backends!(unusual_metadata_keys_and_values, |app| async move {
    let t = app.tenant("Acme").await;
    let a = id(&create(
        &app,
        &t,
        json!({"first name": "Kate", "o'neil": "it's", "dotted.key": "yes", "ключ": "значение",
               "weird": "a,b", "pct": "50%", "empty": "", "zero": 0, "neg": -5, "big": 1e20,
               "dob": "2022-01-15 08:00"}),
    )
    .await);
    let b = id(&create(
        &app,
        &t,
        json!({"zero": "0.0", "neg": "-5.0", "big": "100000000000000000000", "dob": "2022-13-45"}),
    )
    .await);
    for (pairs, want) in [
        (vec![("q[metadata][first name]", "Kate")], vec![a]),
        (vec![("q[metadata][o'neil]", "it's")], vec![a]),
        (vec![("q[metadata][ключ]", "значение")], vec![a]),
        (vec![("q[metadata][pct]", "50%")], vec![a]),
        (vec![("q[metadata][empty]", "")], vec![a]),
        (vec![("q[metadata][empty.exists]", "true")], vec![a]),
        // A key holding dots: the last segment's operator is split off, the rest is the key.
        (vec![("q[metadata][dotted.key]", "yes")], vec![a]),
        (vec![("q[metadata][dotted.key.exists]", "true")], vec![a]),
        (vec![("q[metadata][dotted.key.in]", "no,yes")], vec![a]),
        (vec![("q[metadata][zero.numeric]", "0")], vec![a, b]),
        (vec![("q[metadata][neg.numeric.lt]", "-4.5")], vec![a, b]),
        (vec![("q[metadata][neg.numeric.gt]", "-5")], vec![]),
        (vec![("q[metadata][big.numeric.gteq]", "1e20")], vec![a, b]),
        (vec![("q[metadata][weird.in]", "a,b")], vec![]),
        (vec![("q[metadata][weird]", "a,b")], vec![a]),
        // A date with a time after it is that date; a month 13 is no date.
        (vec![("q[metadata][dob.date]", "2022-01-15")], vec![a]),
        (vec![("q[metadata][dob.date.gt]", "2022-01-01")], vec![a]),
        (vec![("q[metadata][dob.date.lt]", "2100-01-01")], vec![a]),
        (vec![("q[metadata][dob.gt]", "2022-01-01")], vec![a, b]),
    ] {
        assert_eq!(matching(&app, &t, &pairs).await, set(&want), "{pairs:?}");
    }
    app.stop().await;
});

// On SQLite an equality on text first looks for the value's JSON spelling (`"north"`) in
// the stored text, then reads the value at the path. These are the rows where the
// spelling is there but the value is not, and values spelled with escapes.
both_backends!(metadata_equality_reads_the_value_not_the_text, |app| async move {
    let t = app.tenant("Acme").await;
    let a = id(&create(
        &app,
        &t,
        json!({"north": "south", "region": {"name": "north"}, "city": "Nairobi", "note": "north",
               "quote": "say \"hi\"", "path": "C:\\dir", "line": "a\nb", "tab": "a\tb",
               "sep": "\u{2028}", "accent": "é"}),
    )
    .await);
    let b = id(&create(
        &app,
        &t,
        json!({"region": "north", "alias": "Nairobi", "list": ["north"]}),
    )
    .await);
    let c = id(&create(&app, &t, json!({"region": "northern", "city": "nairobi"})).await);
    for (pairs, want) in [
        (vec![("q[metadata][region]", "north")], vec![b]),
        (vec![("q[metadata][region]", "nort")], vec![]),
        (vec![("q[metadata][region.in]", "north,south")], vec![b]),
        (vec![("q[metadata][region.in]", "northern,south")], vec![c]),
        (vec![("q[metadata][north]", "south")], vec![a]),
        (vec![("q[metadata][north.in]", "north,south")], vec![a]),
        (vec![("q[metadata][region][name]", "north")], vec![a]),
        (vec![("q[metadata][city]", "Nairobi")], vec![a]),
        (vec![("q[metadata][list]", "north")], vec![]),
        (
            vec![("q[metadata][region]", "north"), ("q[metadata][alias]", "Nairobi")],
            vec![b],
        ),
        (
            vec![("q[metadata][region]", "north"), ("q[metadata][city]", "Nairobi")],
            vec![],
        ),
        (vec![("q[metadata][quote]", "say \"hi\"")], vec![a]),
        (vec![("q[metadata][path]", "C:\\dir")], vec![a]),
        (vec![("q[metadata][line]", "a\nb")], vec![a]),
        (vec![("q[metadata][tab.in]", "x,a\tb")], vec![a]),
        (vec![("q[metadata][sep]", "\u{2028}")], vec![a]),
        (vec![("q[metadata][accent]", "é")], vec![a]),
    ] {
        assert_eq!(matching(&app, &t, &pairs).await, set(&want), "{pairs:?}");
    }
    app.stop().await;
});

both_backends!(timestamp_filters, |app| async move {
    let t = app.tenant("Acme").await;
    let boot = t.token_id;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let e1 = create(&app, &t, json!({})).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let e2 = create(&app, &t, json!({})).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let e3 = create(&app, &t, json!({})).await;
    let (i1, i2, i3) = (id(&e1), id(&e2), id(&e3));
    let m12 = midpoint(time(&e1, "created_at"), time(&e2, "created_at"));
    let m23 = midpoint(time(&e2, "created_at"), time(&e3, "created_at"));
    let z = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // The same instant written in another zone.
    let plus3 = |t: DateTime<Utc>| {
        t.with_timezone(&chrono::FixedOffset::east_opt(3 * 3600).unwrap())
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
    };
    let naive = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();

    for fmt in [&z as &dyn Fn(DateTime<Utc>) -> String, &plus3, &naive] {
        let (s12, s23) = (fmt(m12), fmt(m23));
        assert_eq!(
            matching(&app, &t, &[("q[created_at_after]", &s12)]).await,
            set(&[i2, i3]),
            "{s12}"
        );
        assert_eq!(
            matching(&app, &t, &[("q[created_at_before]", &s12)]).await,
            set(&[boot, i1]),
            "{s12}"
        );
        assert_eq!(
            matching(
                &app,
                &t,
                &[("q[created_at_after]", &s12), ("q[created_at_before]", &s23)]
            )
            .await,
            set(&[i2]),
            "{s12} {s23}"
        );
    }
    let today = Utc::now().date_naive();
    let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
    let all = set(&[boot, i1, i2, i3]);
    assert_eq!(matching(&app, &t, &[("q[created_at_after]", "2000-01-01")]).await, all);
    assert_eq!(
        matching(&app, &t, &[("q[created_at_before]", "2000-01-01")]).await,
        set(&[])
    );
    assert_eq!(
        matching(
            &app,
            &t,
            &[(
                "q[created_at_before]",
                &day(today.succ_opt().unwrap().succ_opt().unwrap())
            )]
        )
        .await,
        all
    );
    assert_eq!(
        matching(
            &app,
            &t,
            &[(
                "q[created_at_after]",
                &day(today.succ_opt().unwrap().succ_opt().unwrap())
            )]
        )
        .await,
        set(&[])
    );

    // updated_at moves with an update; created_at does not.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let r = app
        .patch(
            &format!("/api/access_tokens/{i1}"),
            &t.token,
            json!({"metadata": {"touched": true}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let e1b = app.get(&format!("/api/access_tokens/{i1}"), &t.token).await.body;
    assert_eq!(e1b["created_at"], e1["created_at"]);
    let m = midpoint(time(&e3, "updated_at"), time(&e1b, "updated_at"));
    assert_eq!(matching(&app, &t, &[("q[updated_at_after]", &z(m))]).await, set(&[i1]));
    assert_eq!(
        matching(&app, &t, &[("q[updated_at_before]", &z(m))]).await,
        set(&[boot, i2, i3])
    );
    assert_eq!(matching(&app, &t, &[("q[created_at_after]", &z(m))]).await, set(&[]));
    // Mixed with a metadata filter.
    assert_eq!(
        matching(
            &app,
            &t,
            &[("q[updated_at_after]", &z(m12)), ("q[metadata][touched]", "true")]
        )
        .await,
        set(&[i1])
    );
    app.stop().await;
});

both_backends!(field_filters, |app| async move {
    let t = app.tenant("Acme").await;
    let api = id(&create(&app, &t, json!({"n": 1})).await);
    let r = app
        .post(
            "/api/users",
            &t.token,
            json!({"email": "kate@example.com", "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let user_id = r.body["id"].as_i64().unwrap();
    let r = app
        .call(
            reqwest::Method::POST,
            "/api/authenticate",
            None,
            Some(json!({"email": "kate@example.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    let sessions = list(&app, &t, &qs(&[("q[kind]", "session")])).await;
    assert_eq!(sessions.len(), 1);
    let session = sessions[0];
    assert_eq!(matching(&app, &t, &[("q[kind]", "api")]).await, set(&[t.token_id, api]));
    assert_eq!(matching(&app, &t, &[("q[kind]", "nope")]).await, set(&[]));
    let uid = user_id.to_string();
    assert_eq!(matching(&app, &t, &[("q[user_id]", &uid)]).await, set(&[session]));
    assert_eq!(matching(&app, &t, &[("q[user_id]", "999999")]).await, set(&[]));
    assert_eq!(
        matching(&app, &t, &[("q[user_id]", &uid), ("q[kind]", "api")]).await,
        set(&[])
    );
    let r = app.get(&format!("/api/access_tokens/{session}"), &t.token).await;
    assert_eq!(r.body["kind"], "session");
    assert_eq!(r.body["user_id"], user_id);
    app.stop().await;
});

both_backends!(bad_list_input_is_422, |app| async move {
    let t = app.tenant("Acme").await;
    create(&app, &t, json!({"x": "1"})).await;
    for (pairs, field) in [
        (vec![("q[metadata][age.gte]", "1")], "q"),
        (vec![("q[metadata][age.eq]", "1")], "q"),
        (vec![("q[metadata][age.numeric.gte]", "1")], "q"),
        (vec![("q[metadata][age.int.gt]", "1")], "q"),
        (vec![("q[metadata][age.numeric.gt]", "old")], "q"),
        (vec![("q[metadata][age.numeric]", "")], "q"),
        (vec![("q[metadata][age.numeric.in]", "1,two")], "q"),
        (vec![("q[metadata][age.numeric.gt]", "1e999")], "q"),
        (vec![("q[metadata][dob.date.lt]", "yesterday")], "q"),
        (vec![("q[metadata][dob.date.lt]", "2022-13-01")], "q"),
        (vec![("q[metadata][dob.date.gt]", "2022-02-30")], "q"),
        (vec![("q[metadata][x.exists]", "maybe")], "q"),
        (vec![("q[metadata][x.exists]", "")], "q"),
        (vec![("q[metadata][x.date.exists]", "true")], "q"),
        (vec![("q[metadata][x.numeric.any]", "1")], "q"),
        (vec![("q[metadata][x.in]", "")], "q"),
        (vec![("q[metadata][x.in]", " , ")], "q"),
        (vec![("q[metadata][x.any]", "")], "q"),
        (vec![("q[metadata][]", "x")], "q"),
        (vec![("q[metadata]", "x")], "q"),
        (vec![("q[metadata][a\"b]", "x")], "q"),
        (vec![("q[metadata][a\\b]", "x")], "q"),
        (vec![("q[metadata][x][]", "1")], "q"),
        (vec![("q[metadata][x.gt][]", "1")], "q"),
        (vec![("q[nope]", "1")], "q"),
        (vec![("q[digest]", "1")], "q"),
        (vec![("q[account_id]", "1")], "q"),
        (vec![("q[id]", "1")], "q"),
        (vec![("q[metadata", "1")], "q"),
        (vec![("q[metadata]]", "1")], "q"),
        (vec![("q[metadata][x", "1")], "q"),
        (vec![("q[metadata]x", "1")], "q"),
        (vec![("q", "x")], "q"),
        (vec![("q[]", "x")], "q"),
        (vec![("q[kind][x]", "api")], "q"),
        (vec![("q[created_at_after]", "soon")], "q"),
        (vec![("q[created_at_after]", "")], "q"),
        (vec![("q[created_at_before]", "2023-02-30")], "q"),
        (vec![("q[updated_at_after]", "17:00")], "q"),
        (vec![("q[updated_at_before][x]", "2023-01-01")], "q"),
        (vec![("q[created_at_after][]", "2023-01-01")], "q"),
        (vec![("q[user_id]", "abc")], "q"),
        (vec![("q[user_id]", "1.5")], "q"),
        (vec![("q[metadata][x]", "a\0b")], "q"),
        (vec![("q[kind]", "a\0b")], "q"),
        (vec![("sort", "password")], "sort"),
        (vec![("sort", "digest")], "sort"),
        (vec![("sort", "-metadata")], "sort"),
        (vec![("sort", "id;DROP TABLE access_tokens")], "sort"),
        (vec![("sort", "id desc")], "sort"),
        (vec![("sort", "--id")], "sort"),
        (vec![("page", "0")], "page"),
        (vec![("page", "-1")], "page"),
        (vec![("page", "abc")], "page"),
        (vec![("page", "")], "page"),
        (vec![("page", "1.5")], "page"),
        (vec![("per_page", "abc")], "per_page"),
        (vec![("per_page", "0")], "per_page"),
        (vec![("per_page", "-5")], "per_page"),
    ] {
        let r = app.get(&qs(&pairs), &t.token).await;
        assert_invalid(&r, field, &format!("{pairs:?}"));
    }
    // Several mistakes are reported together.
    let r = app
        .get(&qs(&[("sort", "password"), ("page", "0"), ("q[nope]", "1")]), &t.token)
        .await;
    for field in ["sort", "page", "q"] {
        assert_invalid(&r, field, "several");
    }
    // Parameters the list does not know are ignored (cache busters).
    let r = app.get(&qs(&[("_", "12345"), ("foo[bar]", "x")]), &t.token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.stop().await;
});

both_backends!(injection_attempts_are_harmless, |app| async move {
    let t = app.tenant("Acme").await;
    let a = id(&create(&app, &t, json!({"x": "1'); DROP TABLE access_tokens; --"})).await);
    let attempts: Vec<Vec<(&str, &str)>> = vec![
        vec![("q[metadata][x]", "1'); DROP TABLE access_tokens; --")],
        vec![("q[metadata][x]", "1' OR '1'='1")],
        vec![("q[metadata][x.in]", "1') OR 1=1; --,2")],
        vec![("q[metadata][x.any]", "') OR 1=1 --")],
        vec![("q[metadata][x.gt]", "' OR 1=1 --")],
        vec![("q[metadata][x'); DROP TABLE access_tokens; --]", "1")],
        vec![("q[metadata][x' OR '1'='1]", "1")],
        vec![("q[metadata][x') OR 1=1 --.exists]", "true")],
        vec![("q[metadata][$') OR 1=1 --][y]", "1")],
        vec![("q[metadata][x.numeric.gt]", "0) OR (1=1")],
        vec![("q[kind]", "api' OR '1'='1")],
        vec![("q[created_at_after]", "2000-01-01' OR '1'='1")],
        vec![("sort", "id); DROP TABLE access_tokens; --")],
        vec![("per_page", "1; DROP TABLE access_tokens")],
    ];
    for pairs in attempts {
        let r = app.get(&qs(&pairs), &t.token).await;
        assert!(
            r.status == StatusCode::OK || r.status == StatusCode::UNPROCESSABLE_ENTITY,
            "{pairs:?}: {} {}",
            r.status,
            r.text
        );
        if r.status == StatusCode::OK {
            // Nothing leaks past the filter: at most the one token whose value is that text.
            let got = ids_of(&r);
            assert!(got.is_empty() || got == vec![a], "{pairs:?}: {got:?}");
        } else {
            r.error_code();
        }
    }
    // The value is a value: it matches the token that stores exactly that text.
    assert_eq!(
        matching(&app, &t, &[("q[metadata][x]", "1'); DROP TABLE access_tokens; --")]).await,
        set(&[a])
    );
    // The table is still there, and so is everything in it.
    assert_eq!(matching(&app, &t, &[]).await, set(&[t.token_id, a]));
    let r = app.get(&format!("/api/access_tokens/{a}"), &t.token).await;
    assert_eq!(r.status, StatusCode::OK);
    app.stop().await;
});

both_backends!(sorting, |app| async move {
    let t = app.tenant("Acme").await;
    let mut made = vec![t.token_id];
    for i in 0..4 {
        made.push(id(&create(&app, &t, json!({"i": i})).await));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let asc = made.clone();
    let mut desc = made.clone();
    desc.reverse();

    assert_eq!(
        list(&app, &t, "/api/access_tokens").await,
        asc,
        "default order is by id"
    );
    assert_eq!(list(&app, &t, &qs(&[("sort", "id")])).await, asc);
    assert_eq!(list(&app, &t, &qs(&[("sort", "+id")])).await, asc);
    assert_eq!(list(&app, &t, &qs(&[("sort", "-id")])).await, desc);
    assert_eq!(list(&app, &t, &qs(&[("sort", "created_at")])).await, asc);
    assert_eq!(list(&app, &t, &qs(&[("sort", "-created_at")])).await, desc);
    assert_eq!(list(&app, &t, &qs(&[("sort", "-created_at,id")])).await, desc);
    assert_eq!(list(&app, &t, &qs(&[("sort", "")])).await, asc);

    // Touch made[1], then made[3]: updated_at order differs from id order.
    for i in [1, 3] {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let r = app
            .patch(
                &format!("/api/access_tokens/{}", made[i]),
                &t.token,
                json!({"metadata": {"t": i}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    let by_updated = vec![made[0], made[2], made[4], made[1], made[3]];
    assert_eq!(list(&app, &t, &qs(&[("sort", "updated_at")])).await, by_updated);
    let mut rev = by_updated.clone();
    rev.reverse();
    assert_eq!(list(&app, &t, &qs(&[("sort", "-updated_at")])).await, rev);

    // Multi-key: ties on the first key are broken by the second, in its direction.
    let later = "2999-01-01T00:00:00Z";
    let sooner = "2998-01-01T00:00:00Z";
    for (i, at) in [(1, later), (2, sooner), (3, later), (4, sooner)] {
        let r = app
            .patch(
                &format!("/api/access_tokens/{}", made[i]),
                &t.token,
                json!({"expires_at": at}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    }
    let with_expiry = |v: Vec<i64>| v.into_iter().filter(|i| *i != t.token_id).collect::<Vec<_>>();
    let got = with_expiry(list(&app, &t, &qs(&[("sort", "expires_at,-id")])).await);
    assert_eq!(got, vec![made[4], made[2], made[3], made[1]]);
    let got = with_expiry(list(&app, &t, &qs(&[("sort", "expires_at,id")])).await);
    assert_eq!(got, vec![made[2], made[4], made[1], made[3]]);
    let got = with_expiry(list(&app, &t, &qs(&[("sort", "-expires_at,id")])).await);
    assert_eq!(got, vec![made[1], made[3], made[2], made[4]]);
    let got = with_expiry(list(&app, &t, &qs(&[("sort", "-expires_at,-id")])).await);
    assert_eq!(got, vec![made[3], made[1], made[4], made[2]]);
    // A token that never expires sorts as the latest expiry, the same on every backend.
    let got = list(&app, &t, &qs(&[("sort", "expires_at")])).await;
    assert_eq!(got.last(), Some(&t.token_id), "{got:?}");
    let got = list(&app, &t, &qs(&[("sort", "-expires_at")])).await;
    assert_eq!(got.first(), Some(&t.token_id), "{got:?}");

    // Sorting and filtering together.
    let got = list(&app, &t, &qs(&[("sort", "-id"), ("q[metadata][i.numeric.gteq]", "1")])).await;
    assert_eq!(got, vec![made[4], made[3], made[2]]);
    app.stop().await;
});

both_backends!(pagination_and_link_header, |app| async move {
    let t = app.tenant("Acme").await;
    let mut all = vec![t.token_id];
    for i in 0..30 {
        all.push(id(&create(&app, &t, json!({"batch": "p", "i": i})).await));
    }
    assert_eq!(all.len(), 31);

    // Page 1: 25 items, next and last, no first or prev.
    let r = app.get("/api/access_tokens", &t.token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(ids_of(&r), all[..25].to_vec());
    assert_eq!(r.header("per-page"), Some("25"));
    assert_eq!(r.header("total"), Some("31"));
    let l = links(&r);
    assert!(link(&l, "first").is_none() && link(&l, "prev").is_none(), "{l:?}");
    let next = link(&l, "next").expect("next").to_string();
    let last = link(&l, "last").expect("last").to_string();
    assert!(next.starts_with("/api/access_tokens?"), "{next}");
    assert_eq!(link_query(&next), vec![("page".to_string(), "2".to_string())]);
    assert_eq!(link_query(&last), vec![("page".to_string(), "2".to_string())]);

    // Following `next` (a relative reference) gives page 2: 6 items, first and prev.
    let r = app.get(&next, &t.token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(ids_of(&r), all[25..].to_vec());
    assert_eq!(r.header("total"), Some("31"));
    assert_eq!(r.header("per-page"), Some("25"));
    let l = links(&r);
    assert!(link(&l, "next").is_none(), "{l:?}");
    assert_eq!(
        link_query(link(&l, "first").expect("first")),
        vec![("page".into(), "1".into())]
    );
    assert_eq!(
        link_query(link(&l, "prev").expect("prev")),
        vec![("page".into(), "1".into())]
    );
    let r2 = app.get(link(&l, "prev").unwrap(), &t.token).await;
    assert_eq!(ids_of(&r2), all[..25].to_vec());

    // per_page=10: four pages, the middle ones with all four links.
    let r = app.get("/api/access_tokens?per_page=10&page=2", &t.token).await;
    assert_eq!(ids_of(&r), all[10..20].to_vec());
    assert_eq!(r.header("per-page"), Some("10"));
    assert_eq!(r.header("total"), Some("31"));
    let l = links(&r);
    let page_of = |rel: &str| {
        link_query(link(&l, rel).unwrap_or_else(|| panic!("{rel} in {l:?}")))
            .into_iter()
            .find(|(k, _)| k == "page")
            .map(|(_, v)| v)
            .unwrap()
    };
    assert_eq!(
        (page_of("first"), page_of("prev"), page_of("next"), page_of("last")),
        ("1".into(), "1".into(), "3".into(), "4".into())
    );
    for rel in ["first", "prev", "next", "last"] {
        let q = link_query(link(&l, rel).unwrap());
        assert!(q.contains(&("per_page".into(), "10".into())), "{rel}: {q:?}");
    }
    let r = app.get(link(&l, "last").unwrap(), &t.token).await;
    assert_eq!(ids_of(&r), vec![all[30]]);

    // per_page is capped at 100.
    let r = app.get("/api/access_tokens?per_page=500", &t.token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("per-page"), Some("100"));
    assert_eq!(ids_of(&r), all);
    assert!(links(&r).is_empty(), "one page needs no links: {:?}", r.header("link"));
    let r = app.get("/api/access_tokens?per_page=100", &t.token).await;
    assert_eq!(r.header("per-page"), Some("100"));

    // Past the end: an empty page that still links back.
    let r = app.get("/api/access_tokens?page=9", &t.token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!([]));
    assert_eq!(r.header("total"), Some("31"));
    let l = links(&r);
    assert!(link(&l, "next").is_none(), "{l:?}");
    assert_eq!(
        link_query(link(&l, "prev").expect("prev")),
        vec![("page".into(), "2".into())]
    );

    // Links keep the filter and the sort.
    let path = qs(&[
        ("q[metadata][batch]", "p"),
        ("q[metadata][i.numeric.gteq]", "5"),
        ("sort", "-id"),
        ("per_page", "10"),
    ]);
    let r = app.get(&path, &t.token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.header("total"), Some("25"));
    let mut filtered: Vec<i64> = all[6..].to_vec();
    filtered.reverse();
    assert_eq!(ids_of(&r), filtered[..10].to_vec());
    let l = links(&r);
    let next = link(&l, "next").expect("next").to_string();
    let q = link_query(&next);
    for kv in [
        ("q[metadata][batch]", "p"),
        ("q[metadata][i.numeric.gteq]", "5"),
        ("sort", "-id"),
        ("per_page", "10"),
        ("page", "2"),
    ] {
        assert!(
            q.contains(&(kv.0.to_string(), kv.1.to_string())),
            "{kv:?} not kept in {next}"
        );
    }
    assert_eq!(q.iter().filter(|(k, _)| k == "page").count(), 1, "{next}");
    let r = app.get(&next, &t.token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(ids_of(&r), filtered[10..20].to_vec());
    let last = link(&links(&r), "last").expect("last").to_string();
    let r = app.get(&last, &t.token).await;
    assert_eq!(ids_of(&r), filtered[20..].to_vec());
    assert!(link(&links(&r), "next").is_none());

    // A page number given twice: the link names one page.
    let r = app.get("/api/access_tokens?page=1&per_page=10&page=2", &t.token).await;
    if r.status == StatusCode::OK {
        let l = links(&r);
        for (rel, url) in &l {
            let pages = link_query(url).iter().filter(|(k, _)| k == "page").count();
            assert_eq!(pages, 1, "{rel}: {url}");
        }
    }
    app.stop().await;
});
