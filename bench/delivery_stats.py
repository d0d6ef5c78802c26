#!/usr/bin/env python3
"""Delivery figures of a finished benchmark run, read from the database.

Usage: delivery_stats.py sqlite PATH | delivery_stats.py postgres URL
Prints JSON: counts by status, accept window, submitted/s, receipted/s, and p50/p99 of
(delivered_at - created_at).
"""
import json
import subprocess
import sys
from datetime import datetime


def parse(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def rows(kind, where):
    q = ("SELECT status, created_at, sent_at, delivered_at FROM transmissions")
    if kind == "sqlite":
        import sqlite3
        con = sqlite3.connect(where)
        return [tuple(r) for r in con.execute(q)]
    out = subprocess.run(["psql", "-At", "-F", "|", where, "-c",
                          q.replace("created_at, sent_at, delivered_at",
                                    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US+00:00'), "
                                    "to_char(sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US+00:00'), "
                                    "to_char(delivered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US+00:00')")],
                         check=True, capture_output=True, text=True).stdout
    return [tuple(c or None for c in line.split("|")) for line in out.splitlines() if line]


def pct(sorted_values, p):
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


def main():
    kind, where = sys.argv[1], sys.argv[2]
    data = rows(kind, where)
    counts = {}
    for r in data:
        counts[r[0]] = counts.get(r[0], 0) + 1
    created = [parse(r[1]) for r in data]
    sent = [parse(r[2]) for r in data if r[2]]
    delivered = [(parse(r[1]), parse(r[3])) for r in data if r[3]]
    start = min(created)
    latency = sorted((d - c).total_seconds() * 1000 for c, d in delivered)
    submit_span = (max(sent) - min(sent)).total_seconds() if sent else 0
    receipt_span = (max(d for _, d in delivered) - min(d for _, d in delivered)).total_seconds() if delivered else 0
    end_to_end = (max(d for _, d in delivered) - start).total_seconds() if delivered else 0
    print(json.dumps({
        "counts": counts,
        "accept_seconds": round((max(created) - start).total_seconds(), 2),
        "submitted_per_s": round(len(sent) / submit_span) if submit_span else None,
        "receipted_per_s": round(len(delivered) / receipt_span) if receipt_span else None,
        "end_to_end_per_s": round(len(delivered) / end_to_end) if end_to_end else None,
        "latency_ms_p50": round(pct(latency, 0.50), 1) if latency else None,
        "latency_ms_p99": round(pct(latency, 0.99), 1) if latency else None,
    }))


main()
