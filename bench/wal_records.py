#!/usr/bin/env python3
"""What each side of a sync/operation pair writes to the WAL, by record type.

    bench/wal_records.py BINARY [--size N] [--pairs K] [--wal-dir DIR]

The pairs of bench/operations.py (the sync bulk call over every id in calls of
1,000, then one operation over the same ids, on the same warm server, each side on a
freshly reset table), with `pg_waldump --stats=record` run over the WAL each side
wrote (from its first LSN to its last, read before the next reset's checkpoint
recycles the segments). Prints both tables and the difference per item of the types
that differ; the full output goes to target/bench/wal-*.txt.

`--wal-dir` is the cluster's pg_wal (default: the Debian cluster's,
/var/lib/postgresql/15/main/pg_wal; reading it needs root or the postgres user).
Nothing is asserted.
"""
import argparse
import os
import re
import subprocess
import tempfile

import run
from common import psql

WALDUMP = "/usr/lib/postgresql/15/bin/pg_waldump"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--wal-dir", default="/var/lib/postgresql/15/main/pg_wal")
    options = parser.parse_args()
    out_dir = os.path.join(run.ROOT, "target", "bench")
    os.makedirs(out_dir, exist_ok=True)
    db = run.Postgres()
    server = run.Server(os.path.abspath(options.binary), db.url)
    try:
        seed_info, ids = run.seed(server, options.size, tempfile.mkdtemp(prefix="uplift-bench-wal-"))
        db.prepare_pgbench()
        server.start()
        warm = ids[:500]
        db.reset()
        run.bulk_call(server, seed_info, warm)
        db.reset()
        run.operation_run(server, db, seed_info, warm)
        for p in range(options.pairs):
            db.reset()
            start = lsn(db)
            sync = run.bulk_in_calls(server, seed_info, ids, 1000)
            sync_records = records(db, options.wal_dir, start, os.path.join(out_dir, f"wal-sync-{p}.txt"))
            db.reset()
            start = lsn(db)
            op = run.operation_run(server, db, seed_info, ids)["rate"]
            op_records = records(db, options.wal_dir, start, os.path.join(out_dir, f"wal-operation-{p}.txt"))
            print(f"pair {p}: sync {sync:.0f} items/s, operation {op:.0f} items/s, ratio {op / sync:.2f}")
            print(f"| record type | sync: count | bytes (FPI) | operation: count | bytes (FPI) | "
                  f"difference per item, B (FPI) |")
            print("| --- | ---: | ---: | ---: | ---: | ---: |")
            for kind in sorted(set(sync_records) | set(op_records), key=lambda k: -op_records.get(k, (0, 0, 0))[1]):
                s, o = sync_records.get(kind, (0, 0, 0)), op_records.get(kind, (0, 0, 0))
                if s == o == (0, 0, 0):
                    continue
                print(f"| {kind} | {s[0]} | {s[1]} ({s[2]}) | {o[0]} | {o[1]} ({o[2]}) | "
                      f"{(o[1] - s[1]) / len(ids):.0f} ({(o[2] - s[2]) / len(ids):.0f}) |")
            total = [sum(v[i] for v in recs.values()) for recs in (sync_records, op_records) for i in (1, 2)]
            print(f"| all | | {total[0]} ({total[1]}) | | {total[2]} ({total[3]}) | "
                  f"{(total[2] - total[0]) / len(ids):.0f} ({(total[3] - total[1]) / len(ids):.0f}) |", flush=True)
    finally:
        server.stop()
        db.drop()


def lsn(db):
    return psql(db.url, "SELECT pg_current_wal_lsn()")[0][0]


def records(db, wal_dir, start, path):
    """{record type: (count, record bytes, full-page-image bytes)} from `start` to now."""
    end = lsn(db)
    psql(db.url, "SELECT pg_switch_wal()")  # the last segment complete on disk
    out = subprocess.run([WALDUMP, "-p", wal_dir, "-s", start, "-e", end, "--stats=record"],
                         capture_output=True, text=True)
    with open(path, "w") as f:
        f.write(out.stdout + out.stderr)
    found = {}
    for line in out.stdout.splitlines():
        m = re.match(r"^(\S+/\S+)\s+(\d+)\s+\(\s*[\d.]+\)\s+(\d+)\s+\(\s*[\d.]+\)\s+(\d+)", line)
        if m:
            found[m.group(1)] = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
    if not found:
        raise RuntimeError(f"pg_waldump read nothing: {out.stderr.strip()}")
    return found


if __name__ == "__main__":
    main()
