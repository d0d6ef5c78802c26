#!/usr/bin/env bash
# HTTP benchmark of the native API (not a test; never run in CI).
#
# Builds the release binary, then for each backend: starts `target/release/sauti serve` on a
# fresh database (SQLite in a temporary data dir; PostgreSQL in a new database that is
# dropped afterwards), bootstraps an account, creates BENCH_TOKENS access tokens with
# metadata (every fourth {"tier":"gold"}), and drives with wrk --latency:
#   (a) GET /api/access_tokens/:id            (random ids among the created tokens)
#   (b) GET /api/access_tokens?q[metadata][tier]=gold&per_page=25
#   (c) POST /api/verifications                 (a new number each time; the engine sends
#                                                every code through the sandbox meanwhile)
#   (d) POST /api/verifications/:id/verification_checks  (wrong codes over the verifications
#                                                of (c): each is a real check, answered 422)
# and prints a Markdown table of requests/s and p50/p99 latency.
#
# Usage: bench/http.sh [sqlite|postgres|all]        (default: all)
# Environment:
#   WRK_THREADS (2)  WRK_CONNECTIONS (64)  WRK_DURATION (15s)  BENCH_TOKENS (1000)
#   BENCH_PG_HOST (127.0.0.1)  BENCH_PG_PORT (5432)  BENCH_PG_USER (postgres)
#   BENCH_NO_BUILD=1  use the existing target/release/sauti instead of (re)building it
# Raw wrk output goes to bench/out/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"

backends="${1:-all}"
case "$backends" in
    all) backends="sqlite postgres" ;;
    sqlite | postgres) ;;
    *)
        echo "usage: $0 [sqlite|postgres|all]" >&2
        exit 2
        ;;
esac

threads="${WRK_THREADS:-2}"
connections="${WRK_CONNECTIONS:-64}"
duration="${WRK_DURATION:-15s}"
token_count="${BENCH_TOKENS:-1000}"
pg_host="${BENCH_PG_HOST:-127.0.0.1}"
pg_port="${BENCH_PG_PORT:-5432}"
pg_user="${BENCH_PG_USER:-postgres}"

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
    printf '[bench] FATAL: %s\n' "$*" >&2
    exit 1
}

if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk (Debian package)"
    [[ $(id -u) -eq 0 ]] || die "wrk is missing and installing it needs root: apt-get install -y wrk"
    DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null 2>&1 ||
        { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null; } ||
        die "cannot install wrk"
fi
command -v curl >/dev/null 2>&1 || die "curl is required"

work="$(mktemp -d "${TMPDIR:-/tmp}/sauti-bench.XXXXXX")"
server_pid=""
pg_database=""

stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}

drop_pg_database() {
    if [[ -n "$pg_database" ]]; then
        psql -q -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres \
            -c "DROP DATABASE IF EXISTS ${pg_database} WITH (FORCE)" >/dev/null 2>&1 ||
            log "could not drop database ${pg_database}; drop it by hand"
        pg_database=""
    fi
}

cleanup() {
    stop_server
    drop_pg_database
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bin="$root/target/release/sauti"
if [[ "${BENCH_NO_BUILD:-0}" == 1 && -x "$bin" ]]; then
    log "using the existing $bin (BENCH_NO_BUILD=1)"
else
    log "building target/release/sauti"
    cargo build --release -p sauti >&2
fi

mkdir -p bench/out
results="$work/results.md"
: >"$results"

# Start serve on a free port and set $base_url from its "listening on" log line.
start_server() {
    local name="$1" url="$2"
    local server_log="bench/out/${name}-server.log"
    SAUTI_BIND=127.0.0.1:0 SAUTI_DATA_DIR="$work/$name" SAUTI_DATABASE_URL="$url" \
        SAUTI_LOG="warn,sauti=info" SAUTI_LOG_FORMAT=text SAUTI_RATE_LIMIT=off \
        "$bin" serve >/dev/null 2>"$server_log" &
    server_pid=$!
    base_url=""
    for _ in $(seq 1 300); do
        base_url="$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$server_log" | head -n 1)"
        [[ -n "$base_url" ]] && return 0
        kill -0 "$server_pid" 2>/dev/null || die "serve exited at start; see $server_log"
        sleep 0.1
    done
    die "serve did not start listening within 30 s; see $server_log"
}

# GET with the bench token; prints the body, fails on a non-2xx answer.
api_get() {
    curl -fsS -H "Authorization: Bearer $token" "$base_url$1"
}

run_wrk() {
    local name="$1" key="$2" label="$3"
    shift 3
    local out="bench/out/${name}-${key}.txt"
    log "$name: wrk -t$threads -c$connections -d$duration --latency ($label)"
    wrk -t"$threads" -c"$connections" -d"$duration" --latency --timeout 5s \
        -H "Authorization: Bearer $token" -s bench/http.lua "$base_url" -- "$@" >"$out"
    local line
    line="$(grep '^BENCH ' "$out")" || die "no BENCH line in $out"
    local field rps p50 p99 non2xx socket_errors
    for field in $line; do
        case "$field" in
            rps=*) rps="${field#rps=}" ;;
            p50_ms=*) p50="${field#p50_ms=}" ;;
            p99_ms=*) p99="${field#p99_ms=}" ;;
            non2xx=*) non2xx="${field#non2xx=}" ;;
            socket_errors=*) socket_errors="${field#socket_errors=}" ;;
        esac
    done
    printf '| %s | %s | %s | %s ms | %s ms | %s | %s |\n' \
        "$name" "$label" "$rps" "$p50" "$p99" "$non2xx" "$socket_errors" >>"$results"
}

bench_backend() {
    local name="$1" url="$2"
    log "$name: bootstrapping an account"
    local created
    created="$(SAUTI_DATA_DIR="$work/$name" SAUTI_DATABASE_URL="$url" SAUTI_LOG=warn \
        "$bin" accounts create --name "Bench $name")"
    token="$(printf '%s' "$created" | sed -n 's/.*"access_token": *"\([^"]*\)".*/\1/p')"
    [[ -n "$token" ]] || die "accounts create printed no token"

    start_server "$name" "$url"
    log "$name: serving at $base_url; creating $token_count access tokens"

    local i tier body id first_id="" last_id=""
    for ((i = 1; i <= token_count; i++)); do
        tier=silver
        ((i % 4 == 0)) && tier=gold
        body="$(curl -fsS -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
            -d "{\"permissions\":[\"contacts_read\"],\"metadata\":{\"tier\":\"$tier\",\"n\":$i}}" \
            "$base_url/api/access_tokens")" || die "creating token $i failed"
        id="$(printf '%s' "$body" | grep -o '"id": *[0-9]*' | head -n 1 | grep -o '[0-9]*$')"
        [[ -n "$id" ]] || die "no id in: $body"
        [[ -z "$first_id" ]] && first_id="$id"
        last_id="$id"
    done

    # Check both requests answer what we mean to measure before timing them.
    api_get "/api/access_tokens/$last_id" >/dev/null || die "GET /api/access_tokens/$last_id failed"
    local list_path='/api/access_tokens?q%5Bmetadata%5D%5Btier%5D=gold&per_page=25'
    local listed
    listed="$(api_get "$list_path" | grep -o '"tier": *"gold"' | wc -l)" || die "filtered list failed"
    [[ "$listed" -eq 25 ]] || die "filtered list returned $listed gold tokens, expected 25"

    run_wrk "$name" get "GET /api/access_tokens/:id" get "$first_id" "$last_id"
    run_wrk "$name" list "GET /api/access_tokens?q[metadata][tier]=gold&per_page=25" path "$list_path"

    # Verifications: the prefix guard off (every number here shares +2547), then codes to
    # new numbers, then checks of them. A 10-digit wrong code never matches a 6-digit one.
    curl -fsS -X PATCH -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d '{"settings":{"fraud_guard_prefix_max":0}}' "$base_url/api/account" >/dev/null ||
        die "turning the prefix guard off failed"
    run_wrk "$name" verify "POST /api/verifications" verify
    local total
    total="$(curl -fsS -D - -o /dev/null -H "Authorization: Bearer $token" "$base_url/api/verifications?per_page=1" |
        tr -d '\r' | sed -n 's/^[Tt]otal: *//p')"
    [[ -n "$total" && "$total" -gt 0 ]] || die "no verifications were created"
    run_wrk "$name" check "POST /api/verifications/:id/verification_checks (wrong code, 422)" check 1 "$total"

    stop_server
}

for backend in $backends; do
    case "$backend" in
        sqlite)
            bench_backend sqlite "sqlite://$work/sqlite/sauti.db"
            ;;
        postgres)
            pg_isready -q -h "$pg_host" -p "$pg_port" || die "PostgreSQL does not answer at $pg_host:$pg_port"
            pg_database="sauti_bench_$$"
            psql -q -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres \
                -c "CREATE DATABASE ${pg_database}" >/dev/null || die "cannot create database ${pg_database}"
            bench_backend postgres "postgres://${pg_user}@${pg_host}:${pg_port}/${pg_database}"
            drop_pg_database
            ;;
    esac
done

cat <<EOF

Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2); sauti $(git describe --always --dirty 2>/dev/null || echo "(not a git checkout)")
Load: wrk -t$threads -c$connections -d$duration --latency, $token_count tokens per account, wrk and sauti on the same machine.

| backend | request | requests/s | p50 | p99 | non-2xx | socket errors |
|---|---|---:|---:|---:|---:|---:|
EOF
cat "$results"
