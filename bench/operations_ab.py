#!/usr/bin/env python3
"""Two or more variants of the operation path compared in alternating rounds: which one
brings the operation nearer the synchronous call, on a machine where a rate moves by
a fifth from one run to the next.

    bench/operations_ab.py VARIANT,VARIANT[,...] [--size N] [--rounds R]

A variant is a binary, optionally with `@F`: the `fillfactor` of `operation_items`
set on its database after the migrations (`target/release/uplift@40`). Each variant
gets a scratch database of its own, seeded once. Each round runs every variant (in
the reverse order every other round, so that neither always goes first): a server
started afresh on its database, a small run of each side to warm it, then the pair
of bench/operations.py (the sync bulk call over every id in calls of 1,000, then one
operation over the same ids, each on a freshly reset table). Prints every pair, then
each variant's median and mean ratio. Nothing is asserted.

`--one-database` seeds one database for every variant (they must not differ in
`fillfactor`): variants that differ only in their binary are then compared on the
same rows. With a database each, the sync side (the same code in every binary) ran
faster on one variant's database than on the other's in most rounds, which skews the
ratios between variants.
"""
import argparse
import os
import statistics
import tempfile

import run
from common import psql


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("variants", help="BINARY[@FILLFACTOR],BINARY[@FILLFACTOR][,...]")
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--one-database", action="store_true", help="every variant on the same seeded database")
    options = parser.parse_args()
    variants = options.variants.split(",")
    if options.one_database and len({v.partition("@")[2] for v in variants}) > 1:
        parser.error("--one-database: the variants must have the same fillfactor")
    workdir = tempfile.mkdtemp(prefix="uplift-bench-ab-")
    setups, ratios, databases = {}, {v: [] for v in variants}, []
    try:
        for n, variant in enumerate(variants):
            binary, _, fillfactor = variant.partition("@")
            if options.one_database and setups:
                _, db, seed_info, ids = next(iter(setups.values()))
                setups[variant] = (os.path.abspath(binary), db, seed_info, ids)
                continue
            db = run.Postgres()
            databases.append(db)
            seeded = os.path.join(workdir, str(n))
            os.makedirs(seeded)
            seed_info, ids = run.seed(run.Server(os.path.abspath(binary), db.url), options.size, seeded)
            db.prepare_pgbench()
            if fillfactor:
                psql(db.url, f"ALTER TABLE operation_items SET (fillfactor = {int(fillfactor)})")
            setups[variant] = (os.path.abspath(binary), db, seed_info, ids)
        for r in range(options.rounds):
            for variant in variants if r % 2 == 0 else variants[::-1]:
                binary, db, seed_info, ids = setups[variant]
                server = run.Server(binary, db.url)
                server.start()
                try:
                    warm = ids[:500]
                    db.reset()
                    run.bulk_call(server, seed_info, warm)
                    db.reset()
                    run.operation_run(server, db, seed_info, warm)
                    db.reset()
                    sync = run.bulk_in_calls(server, seed_info, ids, 1000)
                    db.reset()
                    op = run.operation_run(server, db, seed_info, ids)["rate"]
                finally:
                    server.stop()
                ratios[variant].append(op / sync)
                print(f"round {r}: {variant}: sync {sync:.0f} items/s, operation {op:.0f} items/s, "
                      f"ratio {op / sync:.2f}", flush=True)
        print("| variant | median ratio | mean | every round |")
        print("| --- | ---: | ---: | --- |")
        for variant, rs in ratios.items():
            print(f"| {variant} | {statistics.median(rs):.3f} | {statistics.mean(rs):.3f} | "
                  f"{', '.join(f'{x:.2f}' for x in rs)} |")
    finally:
        for db in databases:
            db.drop()


if __name__ == "__main__":
    main()
