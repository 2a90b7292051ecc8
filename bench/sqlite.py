#!/usr/bin/env python3
"""The SQLite phase of bench/run.py alone, as pairs (see docs/benchmarks.md).

    bench/sqlite.py BINARY [--deployments N] [--per-call N] [--pairs N] [--sql-from BINARY]

Seeds one SQLite file, then runs `--pairs` pairs back to back: the bulk upgrade of every
deployment through HTTP in calls of `--per-call` ids, then the sqlite3 shell running
`sqlite_script` (bench/run.py: the statements the engine issues per item) on the same
file, every deployment reset to version 1 before each side. The machine is shared, so a
rate moves between runs; the ratio is taken within each pair and every pair printed.
`--sql-from` takes the floor's statements from another build (to measure an older
binary against the same floor).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import Server, bulk_in_calls, log, seed, sqlite_script  # noqa: E402


def reset(sqlite_file):
    """Every deployment back on version 1, so each side moves all of them."""
    subprocess.run(["sqlite3", sqlite_file, "UPDATE deployments SET version = 1;"], check=True)


def floor_rate(sqlite_file, script, count):
    started = time.perf_counter()
    with open(script) as stdin:
        subprocess.run(["sqlite3", sqlite_file], stdin=stdin, stdout=subprocess.DEVNULL, check=True)
    return count / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--deployments", type=int, default=10000)
    parser.add_argument("--per-call", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--sql-from", help="the binary that prints the floor's statements (default: BINARY)")
    options = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="uplift-bench-sqlite-")
    sqlite_file = os.path.join(workdir, "uplift.db")
    server = Server(os.path.abspath(options.binary), f"sqlite://{sqlite_file}?mode=rwc")
    try:
        seed_info, ids = seed(server, options.deployments, workdir)
        script = os.path.join(workdir, "engine.sqlite.sql")
        sqlite_script(script, seed_info, ids, os.path.abspath(options.sql_from or options.binary))
        ratios = []
        for n in range(1, options.pairs + 1):
            reset(sqlite_file)
            server.start()
            uplift = bulk_in_calls(server, seed_info, ids, options.per_call)
            server.stop()
            reset(sqlite_file)
            floor = floor_rate(sqlite_file, script, len(ids))
            ratios.append(uplift / floor)
            log(f"pair {n}: uplift {uplift:.0f} items/s, sqlite3 script {floor:.0f} items/s, ratio {ratios[-1]:.2f}")
        print(f"ratios per pair: {', '.join(f'{r:.2f}' for r in ratios)}; "
              f"median {sorted(ratios)[(len(ratios) - 1) // 2]:.2f}")
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
