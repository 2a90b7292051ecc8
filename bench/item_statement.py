#!/usr/bin/env python3
"""The operation's item statement alone against the sync call's, under pgbench: the
floor of what an operation can reach against the synchronous call, with no HTTP, no
worker and no claim in the way.

    bench/item_statement.py BINARY [--size N] [--rounds R]

Seeds N deployments (default 20,000) on a scratch PostgreSQL database and creates one
operation over all of them (a server with no workers, so nothing runs it), its items
numbered in the order of `bench_ids`. Then, R times (default 5) and alternating, on
freshly reset rows (every deployment on version 1, every item `pending` as a claim
leaves it, the tables vacuumed, a checkpoint):

- `sync`: the statement the bulk call sends per item (`uplift debug sql upgrade-item`);
- `operation`: the one an operation's item sends (`uplift debug sql operation-item`),
  which also settles the item's row: the fence and the recorded outcome.

8 pgbench clients, prepared statements as uplift's driver sends them, each client
taking its own items (n = client + 1 + 8 k), N transactions in all; the two sides
take turns going first. `--spread` adds a third side, `spread`: the operation's
statement with each client taking a run of N/8 items of its own (n = client × N/8 +
k), so the items settled at once are N/8 apart instead of neighbours on one page of
`operation_items` (as a worker settles a batch): what sharing a page costs them.
Prints every round's rates and each side's median ratio to the sync side (of an
even count the lower middle one). Checks that every deployment moved.
"""
import argparse
import os
import re
import subprocess
import tempfile

import run

CLIENTS = 8


def script(binary, command, path, operation_id, own=0):
    """A pgbench script of one statement from the binary, each client's next item: the
    next of all clients' in turn, or with `own`, the next of the client's own run of
    that many items."""
    overrides = {1: "(SELECT id FROM bench_ids WHERE n = :n)"}
    if command == "operation-item":
        overrides.update({9: f"'{operation_id}'", 10: "1", 11: ":n", 12: "false"})
    sql = open(run.engine_sql(binary, path, command, overrides)).read()
    counter = f"\\set k :k + 1\n\\set n :client_id + 1 + {CLIENTS} * (:k - 1)\n"
    if own:
        counter = f"\\set k :k + 1\n\\set n :client_id * {own} + :k\n"
    # pgbench reads an SQL command up to its semicolon; SQL comments would swallow it.
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    with open(path, "w") as f:
        f.write(counter + body.rstrip().rstrip(";") + ";\n")
    return path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--size", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--spread", action="store_true", help="also the operation's items settled a run apart")
    options = parser.parse_args()
    binary = os.path.abspath(options.binary)
    size = options.size - options.size % CLIENTS
    workdir = tempfile.mkdtemp(prefix="uplift-bench-item-")
    db = run.Postgres()
    server = run.Server(binary, db.url)
    server.env["UPLIFT_OPERATION_WORKERS"] = "0"
    try:
        seed, _ = run.seed(server, size, workdir)
        db.prepare_pgbench()
        server.start()
        ordered = [row[0] for row in run.psql(db.url, "SELECT id FROM bench_ids ORDER BY n")]
        status, monitor = run.api(server, seed, "POST", run.OPERATIONS, {"deploymentIds": ordered})
        server.stop()
        if status != 202:
            raise RuntimeError(f"operation not accepted: {status} {monitor}")
        op = monitor["id"]
        scripts = {
            "sync": script(binary, "upgrade-item", os.path.join(workdir, "sync.sql"), op),
            "operation": script(binary, "operation-item", os.path.join(workdir, "operation.sql"), op),
        }
        if options.spread:
            scripts["spread"] = script(binary, "operation-item", os.path.join(workdir, "spread.sql"), op,
                                       size // CLIENTS)
        rates = {name: [] for name in scripts}
        for n in range(options.rounds):
            # Each side goes first every other round: the event tables only grow.
            for name, path in sorted(scripts.items(), reverse=n % 2 == 1):
                db.reset()
                run.psql(db.url, "UPDATE operation_items SET status = 'pending', lease_generation = NULL, "
                                 "finished_at = NULL, from_version = NULL, to_version = NULL, "
                                 f"app_system_name = NULL WHERE operation_id = '{op}'")
                run.psql(db.url, "VACUUM operation_items")
                run.psql(db.url, "CHECKPOINT")
                out = subprocess.run(
                    ["pgbench", "-n", "-M", "prepared", "-f", path, "-c", str(CLIENTS), "-j", "2",
                     "-t", str(size // CLIENTS), "-D", "k=0", "-D", f"tenant={seed['tenantId']}",
                     "-D", f"folder={seed['folderId']}", db.url],
                    capture_output=True, text=True, check=True).stdout
                moved = int(run.psql(db.url, "SELECT count(*) FROM deployments WHERE version > 1")[0][0])
                if moved != size:
                    raise RuntimeError(f"{name}: {moved} of {size} deployments moved")
                rates[name].append(float(re.search(r"tps = ([\d.]+) \(without", out).group(1)))
                run.log(f"  round {n + 1} {name}: {rates[name][-1]:.0f} tps")
        print(f"| statement | {size} items, {CLIENTS} clients, tps per round | median |")
        print("| --- | --- | ---: |")
        for name, values in rates.items():
            print(f"| {name} | {', '.join(f'{v:.0f}' for v in values)} | {sorted(values)[(len(values) - 1) // 2]:.0f} |")
        for name in [n for n in rates if n != "sync"]:
            ratios = sorted(o / s for o, s in zip(rates[name], rates["sync"]))
            print(f"| ratio {name} / sync (sorted) | {', '.join(f'{r:.2f}' for r in ratios)} | "
                  f"{ratios[(len(ratios) - 1) // 2]:.2f} |")
    finally:
        server.stop()
        db.drop()


if __name__ == "__main__":
    main()
