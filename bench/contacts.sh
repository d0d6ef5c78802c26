#!/usr/bin/env bash
# Audience benchmark (not a test; never run in CI), issue 3:
#   1. import of a generated CSV of BENCH_ROWS (1,000,000) random valid Kenyan mobile
#      numbers with 3 metadata columns through POST /api/contact_imports: rows/s from
#      upload to `completed`, and the server's peak RSS (VmHWM) by then and over the
#      whole run;
#   2. the count of contacts matching a two-condition metadata filter
#      (GET /api/contacts?q[metadata][region]=north&q[metadata][tier.in]=gold,silver&per_page=1,
#      read from the Total header): p50 and max of BENCH_COUNT_RUNS (11) runs;
#   3. export of every contact (GET /api/contacts.csv): rows/s.
# For each backend (SQLite in a temporary data dir; PostgreSQL in a new database dropped
# afterwards), on a release build. Prints a Markdown table.
#
# Usage: bench/contacts.sh [sqlite|postgres|all]      (default: all)
# Environment: BENCH_ROWS (1000000), BENCH_COUNT_RUNS (11), BENCH_NO_BUILD=1,
#   BENCH_PG_HOST (127.0.0.1), BENCH_PG_PORT (5432), BENCH_PG_USER (postgres)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"
backends="${1:-all}"
[[ "$backends" == all ]] && backends="sqlite postgres"
rows="${BENCH_ROWS:-1000000}"
runs="${BENCH_COUNT_RUNS:-11}"
pg_host="${BENCH_PG_HOST:-127.0.0.1}"
pg_port="${BENCH_PG_PORT:-5432}"
pg_user="${BENCH_PG_USER:-postgres}"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] FATAL: %s\n' "$*" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/sauti-bench-contacts.XXXXXX")"
server_pid=""
pg_database=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n "$pg_database" ]]; then
        psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres -qc "DROP DATABASE IF EXISTS $pg_database WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

if [[ -z "${BENCH_NO_BUILD:-}" ]]; then
    log "building the release binary"
    cargo build --release -p sauti >&2
fi
bin="$root/target/release/sauti"
[[ -x "$bin" ]] || die "no $bin"

csv="$work/contacts.csv"
log "generating $rows rows"
python3 - "$rows" "$csv" <<'PY'
import random, sys
n, path = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(42)
regions = ["north", "south", "east", "west", "coast"]
tiers = ["gold", "silver", "bronze", "none"]
# Safaricom's 0710…0729 blocks: every number in them is a valid Kenyan mobile.
numbers = rnd.sample(range(20_000_000), n)
with open(path, "w") as f:
    f.write("msisdn,first_name,region,tier,score\n")
    for i, x in enumerate(numbers):
        f.write(f"+2547{10_000_000 + x:08d},Person {i},{rnd.choice(regions)},{rnd.choice(tiers)},{rnd.randint(0, 1000)}\n")
PY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

results=()
for backend in $backends; do
    data="$work/data-$backend"
    mkdir -p "$data"
    if [[ "$backend" == postgres ]]; then
        pg_database="sauti_bench_$$"
        psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres -qc "CREATE DATABASE $pg_database" >/dev/null
        url="postgres://$pg_user@$pg_host:$pg_port/$pg_database"
    else
        url="sqlite://$data/sauti.db"
    fi
    port="$(free_port)"
    export SAUTI_DATA_DIR="$data" SAUTI_DATABASE_URL="$url" SAUTI_BIND="127.0.0.1:$port" SAUTI_LOG=warn
    # The benchmark measures throughput, not the per-token request limit.
    export SAUTI_RATE_LIMIT=off
    "$bin" migrate >&2
    token="$("$bin" accounts create --name Bench | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
    "$bin" serve >"$work/serve-$backend.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    base="http://127.0.0.1:$port"
    auth=(-H "Authorization: Bearer $token")

    log "$backend: importing $rows rows"
    t0="$(now)"
    id="$(curl -fsS "${auth[@]}" -H 'Content-Type: text/csv' --data-binary "@$csv" "$base/api/contact_imports" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
    # Polled with curl and sed alone: a Python start-up per poll took a sixth of the two
    # cores the import runs on.
    while :; do
        status="$(curl -fsS "${auth[@]}" "$base/api/contact_imports/$id" | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')"
        case "$status" in completed|failed) break ;; esac
        sleep 0.2
    done
    t1="$(now)"
    status="$(curl -fsS "${auth[@]}" "$base/api/contact_imports/$id" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["status"], d["created"], d["rejected"])')"
    [[ "$status" == completed* ]] || die "$backend import: $status"
    import_rate="$(python3 -c "print(round($rows / ($t1 - $t0)))")"
    log "$backend: import $status in $(python3 -c "print(round($t1 - $t0, 1))") s"
    import_rss="$(peak_rss_mb "$server_pid")"

    log "$backend: counting with a two-condition metadata filter, $runs runs"
    times=()
    total=""
    for _ in $(seq 1 "$runs"); do
        out="$(curl -fsS -o /dev/null -D - -w 'TIME %{time_total}\n' "${auth[@]}" -g "$base/api/contacts?q[metadata][region]=north&q[metadata][tier.in]=gold,silver&per_page=1")"
        total="$(printf '%s' "$out" | awk -F': ' 'tolower($1)=="total" {gsub("\r",""); print $2}')"
        times+=("$(printf '%s' "$out" | awk '/^TIME/ {print $2}')")
    done
    count_stats="$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.0f %.0f", a[int((NR+1)/2)]*1000, a[NR]*1000}')"
    read -r count_p50 count_max <<<"$count_stats"

    log "$backend: exporting"
    t0="$(now)"
    exported="$(curl -fsS "${auth[@]}" "$base/api/contacts.csv" | wc -l)"
    t1="$(now)"
    export_rate="$(python3 -c "print(round(($exported - 1) / ($t1 - $t0)))")"
    rss="$(peak_rss_mb "$server_pid")"

    results+=("| $backend | $import_rate | $import_rss | $count_p50 / $count_max (Total $total) | $export_rate | $rss |")
    kill -TERM "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    if [[ "$backend" == postgres ]]; then
        psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres -qc "DROP DATABASE IF EXISTS $pg_database WITH (FORCE)" >/dev/null
        pg_database=""
    fi
done

echo
echo "| backend | import rows/s ($rows rows) | peak RSS MB by the import's end | filtered count p50 / max ms | export rows/s | server peak RSS MB, whole run |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${results[@]}"
