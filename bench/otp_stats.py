#!/usr/bin/env python3
"""Latency of one-time codes sent while a campaign runs, read from the database.

Usage: otp_stats.py sqlite PATH | otp_stats.py postgres URL
Prints p50/p99/max of (sent_at - created_at) — from the API's accept to the SMSC's — and
of (delivered_at - created_at) for the verification messages, in milliseconds.
"""
import subprocess
import sys
from datetime import datetime

Q = "SELECT created_at, sent_at, delivered_at FROM transmissions WHERE origin = 'verification'"


def parse(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00")) if ts else None


def rows(kind, where):
    if kind == "sqlite":
        import sqlite3
        return [tuple(r) for r in sqlite3.connect(where).execute(Q)]
    fmt = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US+00:00')"
    q = Q.replace("created_at, sent_at, delivered_at",
                  ", ".join(fmt.format(c) for c in ("created_at", "sent_at", "delivered_at")))
    out = subprocess.run(["psql", "-At", "-F", "|", where, "-c", q], check=True, capture_output=True, text=True).stdout
    return [tuple(c or None for c in line.split("|")) for line in out.splitlines() if line]


def pct(values, p):
    return values[min(len(values) - 1, int(p * len(values)))] if values else None


def main():
    data = [tuple(parse(c) for c in r) for r in rows(sys.argv[1], sys.argv[2])]
    sent = sorted((s - c).total_seconds() * 1000 for c, s, _ in data if s)
    delivered = sorted((d - c).total_seconds() * 1000 for c, _, d in data if d)
    f = lambda v: f"p50={pct(v, 0.5):.0f} p99={pct(v, 0.99):.0f} max={v[-1]:.0f} ms" if v else "none"
    print(f"codes={len(data)} accept→SMSC {f(sent)}; accept→delivered {f(delivered)}")


main()
