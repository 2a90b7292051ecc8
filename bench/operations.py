#!/usr/bin/env python3
"""Durable operations against the synchronous bulk call, and nothing else: the pairs of
bench/run.py's point 4 at the sizes given, for a quicker look than the whole run.

    bench/operations.py BINARY [--size N ...] [--pairs K]

Each pair is the sync bulk call over every id in calls of 1,000 (concurrency 8 inside
each call), then one operation over the same ids (maxConcurrency 8), on the same warm
server, each side on a freshly reset table, back to back; the ratio is taken within
each pair. Prints every pair and the median (of an even count the lower middle
one), the time from the POST to the 202 (the create, which the sync side has no
counterpart of) and the server's peak memory through the operation.

`--shared-buffers SIZE` (`1GB`, say) runs on a PostgreSQL cluster of the bench's own
instead of the shared one, with that buffer pool and otherwise the shared cluster's
settings that matter here (autovacuum off): whether a gap comes from the 128 MB pool
of the shared cluster, which this workplace's sessions do not own.
"""
import argparse
import os
import tempfile

import run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--size", type=int, action="append", help="deployments (repeatable; default 10000)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--shared-buffers", help="run on a private cluster with this shared_buffers")
    options = parser.parse_args()
    binary = os.path.abspath(options.binary)
    workdir = tempfile.mkdtemp(prefix="uplift-bench-operations-")
    print("| deployments | sync items/s | operation items/s | ratio | every pair's ratio | POST to 202 (ms) | peak MiB |")
    print("| ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    cluster = None
    if options.shared_buffers:
        cluster = run.common.PrivateCluster({"shared_buffers": options.shared_buffers, "autovacuum": "off"})
        print(f"(a private cluster on port {cluster.port}: shared_buffers {options.shared_buffers}, autovacuum off)")
    try:
        for size in options.size or [10000]:
            pair(binary, size, options.pairs, workdir, cluster)
    finally:
        if cluster:
            cluster.destroy()


def pair(binary, size, pairs, workdir, cluster):
    """`pairs` pairs at `size` deployments on a scratch database; prints the table's row."""
    db = run.Postgres(cluster.admin_url) if cluster else run.Postgres()
    server = run.Server(binary, db.url)
    try:
        seed_info, ids = run.seed(server, size, workdir)
        db.prepare_pgbench()
        server.start()
        syncs, ops = run.paired_rounds(server, db, seed_info, ids, min(1000, size), pairs)
        sync, op, ratios = run.median_pair(syncs, ops)
        print(f"| {size} | {sync:.0f} | {op['rate']:.0f} | {op['rate'] / sync:.2f} | "
              f"{', '.join(f'{r:.2f}' for r in ratios)} | {op['create_ms']:.0f} | "
              f"{max(o['peak_mib'] for o in ops):.1f} |", flush=True)
    finally:
        server.stop()
        db.drop()


if __name__ == "__main__":
    main()
