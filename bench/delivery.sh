#!/usr/bin/env bash
# End-to-end delivery benchmark (not a test; never run in CI).
#
# Release builds of `sauti` and `sauti-smsc-sim`; for each backend: starts the simulator
# (receipts on, nothing recorded), `sauti serve` on a fresh database with an SMPP provider
# pointing at the simulator, then POSTs BENCH_MESSAGES transmissions with wrk (each to its
# own number) and waits until every one is delivered. Prints the accept rate under wrk
# (POST /api/transmissions accepted/s; the POST phase lasts BENCH_SECONDS, or until
# BENCH_MESSAGES were accepted) and, from the database: submitted/s, receipted/s,
# end-to-end messages/s and p50/p99 from API accept to `delivered`, and sauti's peak RSS.
#
# Usage: bench/delivery.sh [sqlite|postgres|all]   (default: sqlite)
# Environment: BENCH_MESSAGES (100000)  BENCH_SECONDS (20)  WRK_CONNECTIONS (64)  SMPP_WINDOW (1000)
#   BENCH_NO_BUILD=1 reuse target/release binaries. Raw output goes to bench/out/.
#   BENCH_ENGINE_ALONE=1: the engine's own ceiling. The API runs alone (`--role api`) while
#   wrk POSTs, then a worker (`--role worker`) starts and drains the queue with nothing
#   else running; submitted/s and receipted/s are then the engine's, and the peak RSS is
#   the worker's.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
backends="${1:-sqlite}"
[[ "$backends" == all ]] && backends="sqlite postgres"
messages="${BENCH_MESSAGES:-100000}"
connections="${WRK_CONNECTIONS:-64}"
window="${SMPP_WINDOW:-1000}"
threads=2
mkdir -p bench/out
log() { printf '[bench] %s\n' "$*" >&2; }

command -v wrk >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y wrk >/dev/null
[[ -n "${BENCH_NO_BUILD:-}" ]] || cargo build --release -p sauti -p sauti-smsc-sim

work="$(mktemp -d "${TMPDIR:-/tmp}/sauti-delivery.XXXXXX")"
pids=()
pg_db=""
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -z "$pg_db" ]] || psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# Wait for a line matching $2 in file $1 and print the text after "$3".
wait_for() {
    for _ in $(seq 1 600); do
        if grep -q "$2" "$1" 2>/dev/null; then
            grep -m1 "$2" "$1" | sed "s|.*$3||" | awk '{print $1}'
            return 0
        fi
        sleep 0.1
    done
    log "timed out waiting for '$2' in $1"; cat "$1" >&2; exit 1
}

for backend in $backends; do
    dir="$work/$backend"; mkdir -p "$dir"
    target/release/sauti-smsc-sim --bind 127.0.0.1:0 >"$dir/sim.out" 2>"$dir/sim.err" &
    pids+=($!)
    sim_addr="$(wait_for "$dir/sim.out" "listening on" "listening on ")"
    if [[ "$backend" == postgres ]]; then
        pg_db="sauti_delivery_$$"
        psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $pg_db" >/dev/null
        db_url="postgres://postgres@127.0.0.1:5432/$pg_db"
    else
        db_url="sqlite://$dir/sauti.db"
    fi
    export SAUTI_DATABASE_URL="$db_url" SAUTI_DATA_DIR="$dir" SAUTI_BIND=127.0.0.1:0 SAUTI_LOG=warn,sauti=info
    # The benchmark measures throughput, not the per-token request limit.
    export SAUTI_RATE_LIMIT=off
    token="$(target/release/sauti accounts create --name Bench 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
    role=all
    [[ -z "${BENCH_ENGINE_ALONE:-}" ]] || role=api
    target/release/sauti serve --role "$role" 2>"$dir/serve.log" &
    server=$!; pids+=($server)
    base="http://$(wait_for "$dir/serve.log" "listening on http://" "listening on http://")"
    curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
        -d "{\"name\":\"sim\",\"kind\":\"smpp\",\"settings\":{\"host\":\"${sim_addr%:*}\",\"port\":${sim_addr##*:},\"system_id\":\"test\",\"password\":\"secret\",\"window\":$window}}" \
        "$base/api/providers" >/dev/null
    sleep 1
    log "$backend: POSTing up to $messages transmissions with wrk ($threads threads, $connections connections)"
    BENCH_TOKEN="$token" BENCH_PER_THREAD=$((messages / threads)) \
        wrk -t"$threads" -c"$connections" -d"${BENCH_SECONDS:-20}s" --latency -s bench/transmissions.lua "$base" \
        >"bench/out/delivery-wrk-$backend.txt" 2>"bench/out/delivery-wrk-$backend.err" || true
    grep -E "Requests/sec|Latency|50%|99%" "bench/out/delivery-wrk-$backend.txt" >&2 || true
    measured=$server
    if [[ -n "${BENCH_ENGINE_ALONE:-}" ]]; then
        log "$backend: starting the worker alone"
        target/release/sauti serve --role worker 2>"$dir/worker.log" &
        measured=$!; pids+=($measured)
    fi
    log "$backend: waiting until every transmission is final"
    total_of() {
        curl -sfg -D - -o /dev/null -H "Authorization: Bearer $token" "$base/api/transmissions?per_page=1$1" |
            tr -d '\r' | awk -F': ' 'tolower($1)=="total"{print $2}'
    }
    all="$(total_of "")"
    for _ in $(seq 1 3000); do
        final=$(( $(total_of "&q[status]=delivered") + $(total_of "&q[status]=undelivered") + $(total_of "&q[status]=failed") ))
        [[ "$final" -ge "$all" ]] && break
        sleep 0.5
    done
    rss="$(awk '/VmHWM/{print $2" "$3}' "/proc/$measured/status")"
    if [[ "$backend" == postgres ]]; then
        stats="$(python3 bench/delivery_stats.py postgres "$db_url")"
    else
        stats="$(python3 bench/delivery_stats.py sqlite "$dir/sauti.db")"
    fi
    echo "$backend: $stats peak_rss=\"$rss\"" | tee -a bench/out/delivery-results.txt
    kill -TERM "$server" "$measured"; wait "$server" "$measured" 2>/dev/null || true
done
