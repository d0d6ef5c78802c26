#!/usr/bin/env bash
# Campaign benchmarks (not tests; never run in CI).
#
# Release builds of `sauti` and `sauti-smsc-sim`; for each backend: imports BENCH_CONTACTS
# contacts into a group with `sauti contacts import`, starts the simulator (receipts on,
# nothing recorded) and `sauti serve` with an SMPP provider pointing at it, then:
#   fanout  — one SMS callout over the group, unthrottled, from `start` until every
#             participation is delivered: messages/s end to end (population included) and
#             sauti's peak RSS.
#   otp     — as fanout over the group, and BENCH_OTPS one-time codes requested (4 at a
#             time) once it is under way: how long each code took from the API to the
#             SMSC while the campaign ran.
#   pacing  — one SMS callout over the group at rate_per_minute = BENCH_RATE, for
#             BENCH_PACING_SECONDS: the rate achieved between 10 s after the start and the
#             end, against the rate asked for.
#
# Usage: bench/callout.sh [sqlite|postgres|all] [fanout|otp|pacing|both]   (default: sqlite fanout)
# Environment: BENCH_CONTACTS (1000000)  BENCH_OTPS (300)  BENCH_RATE (6000)  BENCH_PACING_SECONDS (300)
#   SMPP_WINDOW (1000)  BENCH_NO_BUILD=1 reuse target/release binaries. Output: bench/out/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
backends="${1:-sqlite}"
[[ "$backends" == all ]] && backends="sqlite postgres"
modes="${2:-fanout}"
[[ "$modes" == both ]] && modes="fanout pacing"
contacts="${BENCH_CONTACTS:-1000000}"
rate="${BENCH_RATE:-6000}"
pacing_seconds="${BENCH_PACING_SECONDS:-300}"
window="${SMPP_WINDOW:-1000}"
mkdir -p bench/out
log() { printf '[bench] %s\n' "$*" >&2; }

[[ -n "${BENCH_NO_BUILD:-}" ]] || cargo build --release -p sauti -p sauti-smsc-sim

work="$(mktemp -d "${TMPDIR:-/tmp}/sauti-callout.XXXXXX")"
pids=()
pg_db=""
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ -z "$pg_db" ]] || psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

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
now() { date +%s.%N; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

log "writing $contacts contacts"
awk -v n="$contacts" 'BEGIN { print "msisdn,first_name"; for (i = 0; i < n; i++) printf "+2547%08d,N%d\n", i, i }' >"$work/contacts.csv"

for backend in $backends; do
  for mode in $modes; do
    dir="$work/$backend-$mode"; mkdir -p "$dir"
    if [[ "$backend" == postgres ]]; then
        pg_db="sauti_callout_$$"
        psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null
        psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $pg_db" >/dev/null
        db_url="postgres://postgres@127.0.0.1:5432/$pg_db"
    else
        db_url="sqlite://$dir/sauti.db"
    fi
    export SAUTI_DATABASE_URL="$db_url" SAUTI_DATA_DIR="$dir" SAUTI_BIND=127.0.0.1:0 SAUTI_LOG=warn,sauti=info SAUTI_RATE_LIMIT=off
    token="$(target/release/sauti accounts create --name Bench 2>/dev/null | json 'd["access_token"]')"
    log "$backend/$mode: importing"
    target/release/sauti contacts import "$work/contacts.csv" --group everyone >/dev/null 2>"$dir/import.log"

    target/release/sauti-smsc-sim --bind 127.0.0.1:0 >"$dir/sim.out" 2>"$dir/sim.err" &
    sim=$!; pids+=($sim)
    sim_addr="$(wait_for "$dir/sim.out" "listening on" "listening on ")"
    target/release/sauti serve 2>"$dir/serve.log" &
    server=$!; pids+=($server)
    base="http://$(wait_for "$dir/serve.log" "listening on http://" "listening on http://")"
    api() { curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
    api -d "{\"name\":\"sim\",\"kind\":\"smpp\",\"settings\":{\"host\":\"${sim_addr%:*}\",\"port\":${sim_addr##*:},\"system_id\":\"test\",\"password\":\"secret\",\"window\":$window}}" \
        "$base/api/providers" >/dev/null
    group="$(api -g "$base/api/groups?q[name]=everyone" | json 'd[0]["id"]')"
    if [[ "$mode" == pacing ]]; then pace="$rate"; else pace=null; fi
    id="$(api -d "{\"channel\":\"sms\",\"body\":\"Dear {{first_name}}, the water point opens at 9.\",\"group_id\":$group,\"rate_per_minute\":$pace}" \
        "$base/api/callouts" | json 'd["id"]')"
    # Each statistics read is timed: it groups every participation, so its cost grows
    # with the callout and it runs beside the delivery being measured.
    stats() {
        local a out
        a="$(now)"
        out="$(api "$base/api/callouts/$id/statistics")"
        echo "$a $(now) $out" >>"$dir/stats-times"
        printf '%s\n' "$out"
    }
    sleep 1
    t0="$(now)"
    api -d '{"event":"start"}' "$base/api/callouts/$id/callout_events" >/dev/null
    log "$backend/$mode: callout $id started"
    if [[ "$mode" == otp ]]; then
        until [[ "$(stats | json 'd["sent"]')" -ge 10000 ]]; do sleep 0.5; done
        log "$backend/otp: campaign under way; requesting ${BENCH_OTPS:-300} codes"
        seq 1 "${BENCH_OTPS:-300}" | xargs -P 4 -I{} sh -c \
            "printf '{\"to\":\"+25479%07d\"}' {} | curl -sf -o /dev/null -H 'Authorization: Bearer $token' \
             -H 'Content-Type: application/json' -d @- $base/api/verifications"
        sleep 5
        sent_now="$(stats | json 'd["sent"]')"
        if [[ "$backend" == postgres ]]; then where="$db_url"; else where="$dir/sauti.db"; fi
        echo "$backend otp ($sent_now campaign messages sent meanwhile): $(python3 bench/otp_stats.py "$backend" "$where")" |
            tee -a bench/out/callout-results.txt
    elif [[ "$mode" == fanout ]]; then
        while :; do
            s="$(stats)"
            delivered="$(echo "$s" | json 'd["delivered"]')"
            [[ "$delivered" -ge "$contacts" ]] && break
            # Each read groups every participation; polling faster would load the run.
            sleep 2
        done
        t1="$(now)"
        rss="$(awk '/VmHWM/{print $2" "$3}' "/proc/$server/status")"
        cp "$dir/stats-times" "bench/out/callout-fanout-$backend-timeline.txt"
        echo "$s" >"bench/out/callout-fanout-$backend.json"
        python3 - "$backend" "$contacts" "$t0" "$t1" "$rss" "$dir/stats-times" <<'EOF' | tee -a bench/out/callout-results.txt
import sys
backend, n, t0, t1, rss = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
reads = [float(b) - float(a) for a, b, _ in (line.split(maxsplit=2) for line in open(sys.argv[6]))]
print(f"{backend} fanout: {n} contacts delivered in {t1 - t0:.1f} s = {n / (t1 - t0):,.0f} messages/s end to end; peak_rss={rss}; "
      f"{len(reads)} statistics reads, last {reads[-1] * 1000:.0f} ms, slowest {max(reads) * 1000:.0f} ms")
EOF
    else
        sleep 10
        a="$(now)"; sa="$(stats | json 'd["sent"]')"
        sleep "$pacing_seconds"
        b="$(now)"; sb="$(stats | json 'd["sent"]')"
        python3 - "$backend" "$rate" "$a" "$sa" "$b" "$sb" <<'EOF' | tee -a bench/out/callout-results.txt
import sys
backend, rate, a, sa, b, sb = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
got = (sb - sa) / (b - a) * 60
print(f"{backend} pacing: asked {rate}/min, achieved {got:,.1f}/min over {b - a:.0f} s ({(got / rate - 1) * 100:+.2f}%)")
EOF
    fi
    kill -TERM "$server" "$sim"; wait "$server" "$sim" 2>/dev/null || true
  done
done
