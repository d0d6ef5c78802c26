//! The list query language of the native API (SCFM "Filtering, Sorting and Pagination").
//!
//! `q[...]` parameters are parsed into a typed AST ([`Filter`]), which is compiled to a SQL
//! condition per backend with bound parameters only: a value from the request never
//! becomes SQL text.
//!
//! Grammar of the keys:
//! - `q[metadata][k1][k2]…[kN(.cast)?(.op)?]=value` — a metadata condition at the nested
//!   path `k1…kN`; `cast` is `date` or `numeric`; `op` is one of `in any lt lteq gt gteq
//!   exists` (equality when absent). `in` and `any` take a comma-separated list.
//! - `q[created_at_before]`, `q[created_at_after]`, `q[updated_at_before]`,
//!   `q[updated_at_after]` — an ISO-8601 date or timestamp.
//! - `q[<field>]=value` — equality on a field the resource declares.
//! - `sort=-id,created_at`, `page`, `per_page` (25 by default, at most 100).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::validation::ValidationErrors;

pub const DEFAULT_PER_PAGE: u32 = 25;
pub const MAX_PER_PAGE: u32 = 100;

/// Which SQL dialect to compile to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The type of a filterable column, used to parse the request's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Int,
    Bool,
}

/// A field a resource lets clients filter on with `q[name]=value`.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    /// A column compared for equality, or, when it contains `{}`, a trusted SQL condition
    /// in which `{}` stands for the bound value (`id IN (SELECT … WHERE group_id = {})`).
    pub column: &'static str,
    pub kind: FieldKind,
}

/// What one resource allows in its list query.
#[derive(Debug, Clone, Copy)]
pub struct ResourceSpec {
    /// Columns clients may sort by (the API name is the column name).
    pub sortable: &'static [&'static str],
    /// Extra `q[field]` equality filters.
    pub fields: &'static [FieldSpec],
    /// Whether the resource has a `metadata` column.
    pub has_metadata: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cast {
    Text,
    Date,
    Numeric,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MetadataOp {
    Eq(Scalar),
    In(Vec<Scalar>),
    /// The value at the path is an array holding any of these.
    Any(Vec<String>),
    Lt(Scalar),
    Lteq(Scalar),
    Gt(Scalar),
    Gteq(Scalar),
    Exists(bool),
}

/// A comparison operand, already parsed by the cast.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Text(String),
    /// A calendar date, compared as `YYYY-MM-DD`.
    Date(NaiveDate),
    Numeric(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Metadata { path: Vec<String>, op: MetadataOp },
    Before { column: &'static str, at: DateTime<Utc> },
    After { column: &'static str, at: DateTime<Utc> },
    Field { column: &'static str, value: SqlValue },
}

/// A conjunction of conditions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub column: &'static str,
    pub descending: bool,
}

/// A parsed list request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filter: Filter,
    pub sort: Vec<SortKey>,
    pub page: u32,
    pub per_page: u32,
}

impl ListQuery {
    pub fn offset(&self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.per_page)
    }
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Text(String),
    /// A text NULL (bound, so the statement text stays the same whatever is absent).
    NullText,
    Int(i64),
    /// An integer NULL.
    NullInt,
    Float(f64),
    Bool(bool),
    Timestamp(DateTime<Utc>),
    /// A timestamp NULL.
    NullTimestamp,
    /// PostgreSQL only (`text[]`), for JSON paths.
    TextArray(Vec<String>),
}

const OPS: &[&str] = &["in", "any", "lt", "lteq", "gt", "gteq", "exists"];
const CASTS: &[&str] = &["date", "numeric"];

/// Parse the decoded query pairs of a list request.
///
/// Unknown keys outside `q[...]`, `sort`, `page` and `per_page` are ignored (clients add
/// cache-busters); anything malformed inside them is a validation error, never a 500.
pub fn parse_list_query(pairs: &[(String, String)], spec: &ResourceSpec) -> Result<ListQuery, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let mut filter = Filter::default();
    let mut sort = Vec::new();
    let mut page = 1u32;
    let mut per_page = DEFAULT_PER_PAGE;
    let mut arrays: Vec<(String, Vec<String>)> = Vec::new();

    for (key, value) in pairs {
        match key.as_str() {
            "sort" => match parse_sort(value, spec) {
                Ok(s) => sort = s,
                Err(m) => errors.add("sort", m),
            },
            "page" => match value.parse::<u32>() {
                Ok(p) if p >= 1 => page = p,
                _ => errors.add("page", "must be a whole number of at least 1"),
            },
            "per_page" => match value.parse::<u32>() {
                Ok(p) if p >= 1 => per_page = p.min(MAX_PER_PAGE),
                _ => errors.add("per_page", "must be a whole number of at least 1"),
            },
            k if k == "q" || k.starts_with("q[") => {
                // Rack's array form, `q[metadata][k.any][]=a&q[metadata][k.any][]=b`,
                // gathers every value of the key into one list (SCFM's own example).
                if let Some(base) = k.strip_suffix("[]").filter(|b| b.starts_with("q[")) {
                    match arrays.iter_mut().find(|(b, _)| b == base) {
                        Some((_, vs)) => vs.push(value.clone()),
                        None => arrays.push((base.to_string(), vec![value.clone()])),
                    }
                    continue;
                }
                match parse_q(k, &QValue::One(value.clone()), spec) {
                    Ok(c) => filter.conditions.push(c),
                    Err(m) => errors.add("q", m),
                }
            }
            _ => {}
        }
    }
    for (key, values) in arrays {
        match parse_q(&key, &QValue::Many(values), spec) {
            Ok(c) => filter.conditions.push(c),
            Err(m) => errors.add("q", m),
        }
    }
    errors.into_result()?;
    Ok(ListQuery {
        filter,
        sort,
        page,
        per_page,
    })
}

fn parse_sort(value: &str, spec: &ResourceSpec) -> Result<Vec<SortKey>, String> {
    let mut keys = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (descending, name) = match part.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, part.strip_prefix('+').unwrap_or(part)),
        };
        let column = spec
            .sortable
            .iter()
            .find(|c| **c == name)
            .ok_or_else(|| format!("cannot sort by {name:?}; allowed: {}", spec.sortable.join(", ")))?;
        keys.push(SortKey { column, descending });
    }
    Ok(keys)
}

/// Turn a JSON filter object (SCFM's `contact_filter_params`) into the `q[...]` pairs the
/// query string would carry: `{"metadata": {"gender": "f"}}` → `q[metadata][gender]=f`,
/// arrays → Rack's `[]` form.
pub fn filter_params_to_pairs(params: &serde_json::Map<String, serde_json::Value>) -> Vec<(String, String)> {
    fn walk(prefix: String, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    walk(format!("{prefix}[{k}]"), v, out);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    walk(format!("{prefix}[]"), item, out);
                }
            }
            serde_json::Value::String(s) => out.push((prefix, s.clone())),
            serde_json::Value::Null => out.push((prefix, String::new())),
            other => out.push((prefix, other.to_string())),
        }
    }
    let mut out = Vec::new();
    for (k, v) in params {
        walk(format!("q[{k}]"), v, &mut out);
    }
    out
}

/// Split `q[a][b][c]` into `["a", "b", "c"]`.
fn bracket_segments(key: &str) -> Result<Vec<&str>, String> {
    let mut rest = key.strip_prefix('q').unwrap_or(key);
    let mut segs = Vec::new();
    while !rest.is_empty() {
        let inner = rest
            .strip_prefix('[')
            .ok_or_else(|| format!("malformed filter key {key:?}"))?;
        let end = inner.find(']').ok_or_else(|| format!("malformed filter key {key:?}"))?;
        segs.push(&inner[..end]);
        rest = &inner[end + 1..];
    }
    if segs.is_empty() || segs.iter().any(|s| s.is_empty()) {
        return Err(format!("malformed filter key {key:?}"));
    }
    Ok(segs)
}

/// A filter's value: one, or a list from Rack's `key[]=a&key[]=b` form.
enum QValue {
    One(String),
    Many(Vec<String>),
}

impl QValue {
    /// The single value; a list is refused unless the operator takes one.
    fn single(&self, key: &str) -> Result<&str, String> {
        match self {
            QValue::One(v) => Ok(v),
            QValue::Many(_) => Err(format!("{key:?} takes one value, not a list")),
        }
    }

    /// The items of a list operator (`in`, `any`): `a,b` or the `[]` form.
    fn items(&self) -> Vec<&str> {
        match self {
            QValue::One(v) => split_list(v),
            QValue::Many(vs) => vs.iter().map(|v| v.trim()).filter(|v| !v.is_empty()).collect(),
        }
    }
}

fn parse_q(key: &str, qvalue: &QValue, spec: &ResourceSpec) -> Result<Condition, String> {
    let segs = bracket_segments(key)?;
    if segs[0] == "metadata" && spec.has_metadata {
        return parse_metadata(&segs[1..], qvalue, key);
    }
    let value = qvalue.single(key)?;
    match segs[0] {
        "created_at_before" | "created_at_after" | "updated_at_before" | "updated_at_after" if segs.len() == 1 => {
            let at = parse_time(value).ok_or_else(|| format!("{} must be an ISO 8601 date or time", segs[0]))?;
            let (column, before) = match segs[0] {
                "created_at_before" => ("created_at", true),
                "created_at_after" => ("created_at", false),
                "updated_at_before" => ("updated_at", true),
                _ => ("updated_at", false),
            };
            Ok(if before {
                Condition::Before { column, at }
            } else {
                Condition::After { column, at }
            })
        }
        name if segs.len() == 1 => {
            let field = spec
                .fields
                .iter()
                .find(|f| f.name == name)
                .ok_or_else(|| format!("unknown filter {name:?}"))?;
            let value = match field.kind {
                FieldKind::Text => SqlValue::Text(value.to_string()),
                FieldKind::Int => SqlValue::Int(value.parse().map_err(|_| format!("{name} must be a whole number"))?),
                FieldKind::Bool => {
                    SqlValue::Bool(parse_bool(value).ok_or_else(|| format!("{name} must be true or false"))?)
                }
            };
            Ok(Condition::Field {
                column: field.column,
                value,
            })
        }
        _ => Err(format!("unknown filter {key:?}")),
    }
}

fn split_list(v: &str) -> Vec<&str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect()
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Accepts `2023-09-17`, `2023-09-17T06:34:48Z`, `2023-09-17T06:34:48.708+03:00` and
/// `2023-09-17 06:34:48` (UTC).
pub fn parse_time(v: &str) -> Option<DateTime<Utc>> {
    let v = v.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, fmt) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
}

fn parse_metadata(segs: &[&str], qvalue: &QValue, key: &str) -> Result<Condition, String> {
    let Some((last, parents)) = segs.split_last() else {
        return Err(format!("{key:?} names no metadata key"));
    };
    // The operator and cast ride on the last key: `date_of_birth.date.gt`.
    let mut parts: Vec<&str> = last.split('.').collect();
    let op = if parts.len() > 1 && OPS.contains(parts.last().expect("non-empty")) {
        parts.pop()
    } else {
        None
    };
    let cast = if parts.len() > 1 && CASTS.contains(parts.last().expect("non-empty")) {
        match parts.pop() {
            Some("date") => Cast::Date,
            _ => Cast::Numeric,
        }
    } else {
        Cast::Text
    };
    // `key.gte` is a mistyped operator, not a key literally named "key.gte": refuse it.
    if let Some(last) = parts.last().filter(|_| parts.len() > 1)
        && is_operator_like(last)
    {
        return Err(format!(
            "unknown operator {last:?} in {key:?}; allowed: {}",
            OPS.join(", ")
        ));
    }
    let leaf = parts.join(".");
    let mut path: Vec<String> = parents.iter().map(|s| s.to_string()).collect();
    path.push(leaf);
    for p in &path {
        if p.is_empty() || p.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
            return Err(format!("invalid metadata key {p:?}"));
        }
    }

    let scalar = |v: &str| -> Result<Scalar, String> {
        match cast {
            Cast::Text => Ok(Scalar::Text(v.to_string())),
            Cast::Date => parse_time(v)
                .map(|t| Scalar::Date(t.date_naive()))
                .ok_or_else(|| format!("{v:?} is not a date (use YYYY-MM-DD)")),
            Cast::Numeric => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Scalar::Numeric)
                .ok_or_else(|| format!("{v:?} is not a number")),
        }
    };

    let value = match op {
        Some("in" | "any") => "",
        _ => qvalue.single(key)?,
    };
    let op = match op {
        None => MetadataOp::Eq(scalar(value)?),
        Some("in") => {
            let items = qvalue.items();
            if items.is_empty() {
                return Err(format!("{key:?} needs at least one value"));
            }
            MetadataOp::In(items.into_iter().map(scalar).collect::<Result<_, _>>()?)
        }
        Some("any") => {
            if cast != Cast::Text {
                return Err(format!("{key:?}: the any operator takes no cast"));
            }
            let items = qvalue.items();
            if items.is_empty() {
                return Err(format!("{key:?} needs at least one value"));
            }
            MetadataOp::Any(items.into_iter().map(String::from).collect())
        }
        Some("lt") => MetadataOp::Lt(scalar(value)?),
        Some("lteq") => MetadataOp::Lteq(scalar(value)?),
        Some("gt") => MetadataOp::Gt(scalar(value)?),
        Some("gteq") => MetadataOp::Gteq(scalar(value)?),
        Some("exists") => {
            if cast != Cast::Text {
                return Err(format!("{key:?}: the exists operator takes no cast"));
            }
            MetadataOp::Exists(parse_bool(value).ok_or_else(|| format!("{key:?} must be true or false"))?)
        }
        Some(other) => return Err(format!("unknown operator {other:?}")),
    };
    Ok(Condition::Metadata { path, op })
}

/// Words that read as an operator or cast someone mistyped (`gte`, `eq`, `neq`, `like`).
fn is_operator_like(word: &str) -> bool {
    matches!(
        word,
        "eq" | "ne"
            | "neq"
            | "not"
            | "gte"
            | "lte"
            | "like"
            | "ilike"
            | "nin"
            | "all"
            | "contains"
            | "int"
            | "integer"
            | "float"
            | "number"
            | "string"
            | "datetime"
            | "time"
            | "bool"
    )
}

/// A compiled condition: SQL text with `$N` placeholders and the values to bind, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sql {
    pub text: String,
    pub params: Vec<SqlValue>,
}

impl Sql {
    /// Bind a value and return its placeholder.
    pub fn bind(&mut self, v: SqlValue) -> String {
        self.params.push(v);
        format!("${}", self.params.len())
    }
}

impl Filter {
    /// Append ` AND <condition>` for every condition to `sql`, binding values after the
    /// ones `sql` already holds. Column names come from the resource spec, never the request.
    ///
    /// Cheap pre-tests (see [`sqlite_needle`]) come first, before any exact condition, so
    /// a row one of them rules out is never parsed as JSON at all.
    pub fn compile_into(&self, dialect: Dialect, sql: &mut Sql) {
        let mut exact = Vec::with_capacity(self.conditions.len());
        for c in &self.conditions {
            let (pre, cond) = compile_condition(c, dialect, sql);
            if let Some(pre) = pre {
                sql.text.push_str(" AND ");
                sql.text.push_str(&pre);
            }
            exact.push(cond);
        }
        for cond in exact {
            sql.text.push_str(" AND ");
            sql.text.push_str(&cond);
        }
    }
}

/// The JSON spelling of `s` when an equality with it can be tested on SQLite's stored
/// text: `"north"` for `north`.
///
/// Every metadata column on SQLite holds text written by serde_json (or `json_patch` of
/// it), which escapes only `"`, `\` and control characters and adds no whitespace. So a
/// string value equal to `s` appears in the text as exactly this needle, and
/// `instr(metadata, needle)` is a necessary condition, about ten times cheaper than the
/// JSON functions (the 1M-contact count in docs/BENCHMARKS.md). `None` where the needle
/// would not be necessary: values that also match a number or boolean spelled
/// differently (`30` matches `30.0`, `true` matches JSON `true`), values that match an
/// object's or array's text, and values serde_json would escape.
fn sqlite_needle(s: &Scalar) -> Option<String> {
    let Scalar::Text(t) = s else { return None };
    let numeric = t.trim().parse::<f64>().is_ok();
    let keyword = matches!(t.as_str(), "true" | "false" | "null");
    let structured = t.starts_with('{') || t.starts_with('[');
    let escaped = t.chars().any(|c| c == '"' || c == '\\' || c < ' ');
    (!numeric && !keyword && !structured && !escaped).then(|| format!("\"{t}\""))
}

/// An equality (or `in`) on plain text values, on SQLite: the needle pre-test and the
/// exact condition. For such values `json_extract` alone is exact: it yields the string
/// for a JSON string, and a number, 0/1 or NULL — never equal to a plain text — for the
/// rest, so the `json_type` cases of [`compile_metadata`] are not needed.
fn sqlite_plain_match(path: &[String], op: &MetadataOp, dialect: Dialect, sql: &mut Sql) -> Option<(String, String)> {
    if dialect != Dialect::Sqlite {
        return None;
    }
    let values: &[Scalar] = match op {
        MetadataOp::Eq(s) => std::slice::from_ref(s),
        MetadataOp::In(items) if !items.is_empty() => items,
        _ => return None,
    };
    let needles: Vec<String> = values.iter().map(sqlite_needle).collect::<Option<_>>()?;
    let pre: Vec<String> = needles
        .into_iter()
        .map(|n| format!("instr(metadata, {}) > 0", sql.bind(SqlValue::Text(n))))
        .collect();
    let p = sql.bind(SqlValue::Text(sqlite_json_path(path)));
    let rhs: Vec<String> = values
        .iter()
        .map(|s| match s {
            Scalar::Text(t) => sql.bind(SqlValue::Text(t.clone())),
            _ => unreachable!("sqlite_needle accepts text only"),
        })
        .collect();
    Some((
        format!("({})", pre.join(" OR ")),
        format!("json_extract(metadata, {p}) IN ({})", rhs.join(", ")),
    ))
}

/// `$."k1"."k2"`: a JSON path whose keys are quoted, so none is read as path syntax.
fn sqlite_json_path(path: &[String]) -> String {
    let mut jp = String::from("$");
    for k in path {
        jp.push_str(".\"");
        jp.push_str(k);
        jp.push('"');
    }
    jp
}

/// A condition's cheap pre-test, if it has one, and the condition itself.
fn compile_condition(c: &Condition, dialect: Dialect, sql: &mut Sql) -> (Option<String>, String) {
    let exact = match c {
        Condition::Before { column, at } => format!("{column} < {}", sql.bind(SqlValue::Timestamp(*at))),
        Condition::After { column, at } => format!("{column} > {}", sql.bind(SqlValue::Timestamp(*at))),
        Condition::Field { column, value } => {
            let placeholder = sql.bind(value.clone());
            if column.contains("{}") {
                column.replace("{}", &placeholder)
            } else {
                format!("{column} = {placeholder}")
            }
        }
        Condition::Metadata { path, op } => {
            if let Some((pre, exact)) = sqlite_plain_match(path, op, dialect, sql) {
                return (Some(pre), exact);
            }
            compile_metadata(path, op, dialect, sql)
        }
    };
    (None, exact)
}

fn compile_metadata(path: &[String], op: &MetadataOp, dialect: Dialect, sql: &mut Sql) -> String {
    // PostgreSQL walks the path with `->` and text keys, which (unlike `#>`) never index
    // into an array: `q[metadata][tags][0]` means the key "0" on both backends.
    let pg_keys: Vec<String> = match dialect {
        Dialect::Postgres => path
            .iter()
            .map(|k| format!("{}::text", sql.bind(SqlValue::Text(k.clone()))))
            .collect(),
        Dialect::Sqlite => vec![],
    };
    let pg_at = format!("(metadata -> {})", pg_keys.join(" -> "));
    let p = match dialect {
        Dialect::Postgres => String::new(),
        Dialect::Sqlite => sql.bind(SqlValue::Text(sqlite_json_path(path))),
    };
    // The value at the path as text: strings unquoted, numbers and booleans as JSON
    // spells them, so `q[metadata][age]=30` matches both 30 and "30".
    let text = match dialect {
        Dialect::Postgres => match pg_keys.split_last() {
            Some((last, [])) => format!("(metadata ->> {last})"),
            Some((last, parents)) => format!("(metadata -> {} ->> {last})", parents.join(" -> ")),
            None => "NULL".into(),
        },
        Dialect::Sqlite => format!(
            "(CASE json_type(metadata, {p}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
             WHEN 'null' THEN NULL ELSE CAST(json_extract(metadata, {p}) AS TEXT) END)"
        ),
    };
    let cast_of = |s: &Scalar| match s {
        Scalar::Text(_) => Cast::Text,
        Scalar::Date(_) => Cast::Date,
        Scalar::Numeric(_) => Cast::Numeric,
    };
    // A value that does not read as the cast's type yields NULL and matches nothing,
    // rather than failing the whole query.
    let cast_expr = |cast: Cast| -> String {
        match (cast, dialect) {
            (Cast::Text, _) => text.clone(),
            // The leading `YYYY-MM-DD` of a string, compared as text; the same test on both
            // backends (SQLite's date() would read a number as a Julian day).
            (Cast::Date, Dialect::Postgres) => format!(
                "(CASE WHEN {text} ~ '^\\d{{4}}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])' THEN substr({text}, 1, 10) END)"
            ),
            (Cast::Date, Dialect::Sqlite) => format!(
                "(CASE WHEN substr({text}, 1, 10) GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' \
                 AND substr({text}, 6, 2) BETWEEN '01' AND '12' AND substr({text}, 9, 2) BETWEEN '01' AND '31' \
                 THEN substr({text}, 1, 10) END)"
            ),
            (Cast::Numeric, Dialect::Postgres) => format!(
                "(CASE WHEN {text} ~ '^\\s*[-+]?(\\d+\\.?\\d*|\\.\\d+)([eE][-+]?\\d+)?\\s*$' THEN ({text})::double precision END)"
            ),
            (Cast::Numeric, Dialect::Sqlite) => format!(
                "(CASE WHEN json_type(metadata, {p}) IN ('integer', 'real') THEN json_extract(metadata, {p}) \
                 WHEN json_type(metadata, {p}) = 'text' AND trim({text}) <> '' \
                 AND trim({text}) NOT GLOB '*[^0-9.eE+-]*' AND trim({text}) GLOB '*[0-9]*' \
                 THEN CAST(trim({text}) AS REAL) END)"
            ),
        }
    };
    let mut operand = |s: &Scalar, sql: &mut Sql| -> String {
        match s {
            Scalar::Text(t) => sql.bind(SqlValue::Text(t.clone())),
            Scalar::Date(d) => sql.bind(SqlValue::Text(d.format("%Y-%m-%d").to_string())),
            Scalar::Numeric(f) => sql.bind(SqlValue::Float(*f)),
        }
    };
    let cmp = |sym: &str, s: &Scalar, sql: &mut Sql, operand: &mut dyn FnMut(&Scalar, &mut Sql) -> String| {
        let rhs = operand(s, sql);
        format!("{} {sym} {rhs}", cast_expr(cast_of(s)))
    };
    match op {
        MetadataOp::Eq(s) => cmp("=", s, sql, &mut operand),
        MetadataOp::Lt(s) => cmp("<", s, sql, &mut operand),
        MetadataOp::Lteq(s) => cmp("<=", s, sql, &mut operand),
        MetadataOp::Gt(s) => cmp(">", s, sql, &mut operand),
        MetadataOp::Gteq(s) => cmp(">=", s, sql, &mut operand),
        MetadataOp::In(items) => {
            let lhs = cast_expr(cast_of(&items[0]));
            let rhs: Vec<String> = items.iter().map(|s| operand(s, sql)).collect();
            format!("{lhs} IN ({})", rhs.join(", "))
        }
        MetadataOp::Any(items) => {
            let rhs: Vec<String> = items.iter().map(|s| sql.bind(SqlValue::Text(s.clone()))).collect();
            match dialect {
                Dialect::Postgres => format!(
                    "EXISTS (SELECT 1 FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof({pg_at}) = 'array' \
                     THEN {pg_at} ELSE '[]'::jsonb END) AS e(v) WHERE e.v IN ({}))",
                    rhs.join(", ")
                ),
                Dialect::Sqlite => format!(
                    "(json_type(metadata, {p}) = 'array' AND EXISTS (SELECT 1 FROM json_each(metadata, {p}) AS e \
                     WHERE (CASE e.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(e.value AS TEXT) END) IN ({})))",
                    rhs.join(", ")
                ),
            }
        }
        MetadataOp::Exists(want) => {
            let present = match dialect {
                Dialect::Postgres => format!("({pg_at}) IS NOT NULL"),
                Dialect::Sqlite => format!("json_type(metadata, {p}) IS NOT NULL"),
            };
            if *want { present } else { format!("NOT ({present})") }
        }
    }
}

/// `ORDER BY …` for a parsed sort, always ending in `id` so pages are stable.
pub fn order_by(sort: &[SortKey]) -> String {
    let mut parts: Vec<String> = sort
        .iter()
        .map(|k| match (k.column, k.descending) {
            ("id", d) => format!("id {}", if d { "DESC" } else { "ASC" }),
            // NULL (no expiry, say) sorts as the largest value on both backends, as
            // PostgreSQL does by default and SQLite does not.
            (c, true) => format!("{c} DESC NULLS FIRST"),
            (c, false) => format!("{c} ASC NULLS LAST"),
        })
        .collect();
    if !sort.iter().any(|k| k.column == "id") {
        let id_desc = sort.first().map(|k| k.descending).unwrap_or(false);
        parts.push(format!("id {}", if id_desc { "DESC" } else { "ASC" }));
    }
    format!(" ORDER BY {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ResourceSpec = ResourceSpec {
        sortable: &["id", "created_at", "updated_at"],
        fields: &[FieldSpec {
            name: "email",
            column: "email",
            kind: FieldKind::Text,
        }],
        has_metadata: true,
    };

    fn q(pairs: &[(&str, &str)]) -> Result<ListQuery, ValidationErrors> {
        let owned: Vec<(String, String)> = pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        parse_list_query(&owned, &SPEC)
    }

    fn meta(path: &[&str], op: MetadataOp) -> Condition {
        Condition::Metadata {
            path: path.iter().map(|s| s.to_string()).collect(),
            op,
        }
    }

    #[test]
    fn parses_the_scfm_example() {
        let lq = q(&[
            ("q[metadata][gender]", "f"),
            ("q[metadata][date_of_birth.date.gt]", "2022-01-01"),
            ("q[metadata][date_of_birth.date.lt]", "2022-02-01"),
            ("q[created_at_after]", "2023-09-17"),
            ("sort", "-id,created_at"),
        ])
        .unwrap();
        let d = |s| Scalar::Date(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap());
        assert_eq!(
            lq.filter.conditions,
            vec![
                meta(&["gender"], MetadataOp::Eq(Scalar::Text("f".into()))),
                meta(&["date_of_birth"], MetadataOp::Gt(d("2022-01-01"))),
                meta(&["date_of_birth"], MetadataOp::Lt(d("2022-02-01"))),
                Condition::After {
                    column: "created_at",
                    at: parse_time("2023-09-17").unwrap()
                },
            ]
        );
        assert_eq!(
            lq.sort,
            vec![
                SortKey {
                    column: "id",
                    descending: true
                },
                SortKey {
                    column: "created_at",
                    descending: false
                }
            ]
        );
        assert_eq!((lq.page, lq.per_page), (1, 25));
    }

    #[test]
    fn nested_keys_lists_and_casts() {
        let lq = q(&[
            ("q[metadata][address][city.in]", "Nairobi, Mombasa"),
            ("q[metadata][tags.any]", "a,b"),
            ("q[metadata][age.numeric.gteq]", "18"),
            ("q[metadata][nick.exists]", "false"),
        ])
        .unwrap();
        assert_eq!(
            lq.filter.conditions,
            vec![
                meta(
                    &["address", "city"],
                    MetadataOp::In(vec![Scalar::Text("Nairobi".into()), Scalar::Text("Mombasa".into())])
                ),
                meta(&["tags"], MetadataOp::Any(vec!["a".into(), "b".into()])),
                meta(&["age"], MetadataOp::Gteq(Scalar::Numeric(18.0))),
                meta(&["nick"], MetadataOp::Exists(false)),
            ]
        );
    }

    #[test]
    fn rack_array_values_form_one_list() {
        let lq = q(&[
            ("q[metadata][registered_districts.any][]", "1402"),
            ("q[metadata][registered_districts.any][]", "1401"),
            ("q[metadata][tier.in][]", "gold"),
        ])
        .unwrap();
        assert_eq!(
            lq.filter.conditions,
            vec![
                meta(
                    &["registered_districts"],
                    MetadataOp::Any(vec!["1402".into(), "1401".into()])
                ),
                meta(&["tier"], MetadataOp::In(vec![Scalar::Text("gold".into())])),
            ]
        );
        // A list where one value is expected is refused, not silently truncated.
        assert!(q(&[("q[metadata][age.gt][]", "1"), ("q[metadata][age.gt][]", "2")]).is_err());
        assert!(q(&[("q[email][]", "a@b.co")]).is_err());
    }

    #[test]
    fn bad_input_is_a_validation_error() {
        for (k, v) in [
            ("q[metadata][age.numeric.gt]", "old"),
            ("q[metadata][dob.date.lt]", "yesterday"),
            ("q[metadata][x.exists]", "maybe"),
            ("q[metadata][x.gte]", "1"),
            ("q[metadata][x.in]", ""),
            ("q[metadata]", "x"),
            ("q[metadata][]", "x"),
            ("q[metadata][a\"b]", "x"),
            ("q[nope]", "x"),
            ("q[created_at_after]", "soon"),
            ("q[metadata", "x"),
            ("q", "x"),
            ("sort", "password"),
            ("page", "0"),
            ("per_page", "lots"),
        ] {
            let err = q(&[(k, v)]).expect_err(k);
            assert!(!err.is_empty());
        }
    }

    #[test]
    fn per_page_is_capped_and_fields_parse() {
        let lq = q(&[("per_page", "500"), ("page", "3"), ("q[email]", "a@b.co")]).unwrap();
        assert_eq!((lq.page, lq.per_page, lq.offset()), (3, 100, 200));
        assert_eq!(
            lq.filter.conditions,
            vec![Condition::Field {
                column: "email",
                value: SqlValue::Text("a@b.co".into())
            }]
        );
    }

    #[test]
    fn compiles_with_bound_parameters_only() {
        let lq = q(&[
            ("q[metadata][name]", "x'); DROP TABLE users; --"),
            ("q[metadata][n.numeric.lt]", "5"),
        ])
        .unwrap();
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let mut sql = Sql {
                text: "account_id = $1".into(),
                params: vec![SqlValue::Int(1)],
            };
            lq.filter.compile_into(dialect, &mut sql);
            assert!(!sql.text.contains("DROP"), "{}", sql.text);
            // SQLite binds the text equality's needle too.
            let want = if dialect == Dialect::Sqlite { 6 } else { 5 };
            assert_eq!(sql.params.len(), want, "{}", sql.text);
            assert!(sql.params.contains(&SqlValue::Text("x'); DROP TABLE users; --".into())));
        }
        assert_eq!(order_by(&[]), " ORDER BY id ASC");
        assert_eq!(
            order_by(&[SortKey {
                column: "created_at",
                descending: true
            }]),
            " ORDER BY created_at DESC NULLS FIRST, id DESC"
        );
    }

    #[test]
    fn sqlite_pre_tests_only_values_spelled_one_way() {
        let text = |t: &str| sqlite_needle(&Scalar::Text(t.into()));
        assert_eq!(text("north").as_deref(), Some("\"north\""));
        assert_eq!(text("").as_deref(), Some("\"\""));
        assert_eq!(text("é ü").as_deref(), Some("\"é ü\""));
        // Numbers and booleans also match JSON numbers and booleans, spelled otherwise.
        for t in ["30", " 30", "9.5", "1e20", "-0", "inf", "NaN", "true", "false", "null"] {
            assert_eq!(text(t), None, "{t}");
        }
        // The text of an object or array, and values serde_json escapes.
        for t in ["{\"a\":1}", "[1]", "say \"hi\"", "C:\\dir", "a\nb", "\u{1}"] {
            assert_eq!(text(t), None, "{t:?}");
        }
        assert_eq!(sqlite_needle(&Scalar::Numeric(1.0)), None);

        // Pre-tests come before every exact condition.
        let lq = q(&[
            ("q[metadata][region]", "north"),
            ("q[metadata][tier.in]", "gold,silver"),
        ])
        .unwrap();
        let mut sql = Sql {
            text: "account_id = $1".into(),
            params: vec![SqlValue::Int(1)],
        };
        lq.filter.compile_into(Dialect::Sqlite, &mut sql);
        let first_exact = sql.text.find("json_extract").expect("exact conditions");
        assert_eq!(sql.text.matches("instr(").count(), 3, "{}", sql.text);
        assert!(sql.text.rfind("instr(").unwrap() < first_exact, "{}", sql.text);
        assert!(!sql.text.contains("json_type"), "{}", sql.text);
    }
}
