#!/usr/bin/env python3
"""uplift against the database's own floor, in one run (see docs/benchmarks.md).

    bench/run.py BINARY [--quick] [--large N]

1. PostgreSQL, 10,000 deployments: bulk upgrades of all of them through HTTP in calls
   of 1,000 ids, then pgbench doing the same items with the naive per-item transaction
   and with the statement uplift's engine sends, at the engine's concurrency; peak
   memory of a 1,000-id and a 10,000-id call; the list call at this size.
2. PostgreSQL, 100,000 deployments: single-id bulk calls under load (wrk, 16
   connections) next to pgbench's single transaction at 16 clients; the list call
   (top=100, searchText, orderBy) next to its SQL in pgbench.
3. SQLite, 10,000 deployments: the bulk upgrade through HTTP next to a sqlite3 script
   of the statements the engine issues.
4. Durable operations (`POST …/operations/upgrades`) over the same 10,000 (and, without
   --quick, 100,000) deployments at the bulk call's concurrency (8), next to the
   synchronous call in calls of 1,000 and the pgbench floor: items/s, time from the
   202 to the first item settled, time spent between batches, the server's peak
   memory through each operation (on a warm server that has run the others: VmHWM
   reset before each).

Prints a table (and writes it to target/bench/). No assertions on times: the figures
are for reading, and --quick (smaller counts, for CI) only shows that it all runs.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "reliability"))
import common  # noqa: E402
import charts  # noqa: E402
from common import ScratchDatabase, psql  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BASE = "/local/apps_/default/api/v1/default"
BULK = BASE + "/models/deployed/apps/updateToLatestAppVersionBulk"
LIST = BASE + "/models/deployed/apps?top=100&searchText=bravo&orderBy=title%20asc"
CONCURRENCY = 8  # UPLIFT_UPGRADE_CONCURRENCY's default: items of one call upgraded at once
OPERATIONS = BASE + "/operations/upgrades"
BATCH = 500  # UPLIFT_OPERATION_BATCH_ITEMS's default: items a worker takes per claim


def log(message):
    print(message, file=sys.stderr, flush=True)


class Server(common.Server):
    """The reliability scripts' server, allowed 10,000-id calls, its memory readable."""

    def __init__(self, binary, database_url):
        super().__init__(binary, database_url, max_bulk_items=10000)

    def reset_peak_memory(self):
        """Starts VmHWM afresh from the current resident size (Linux's clear_refs 5), so
        that the peak read later is that of what ran since, without a restart."""
        try:
            with open(f"/proc/{self.process.pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError as e:  # then the peak is the process's since it started
            log(f"  could not reset the peak memory ({e}); it counts from the server's start")

    def memory_kib(self, field):
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise RuntimeError(f"{field} not in /proc status")


def bulk_call(server, seed, ids):
    body = json.dumps({"deploymentIds": ids}).encode()
    request = urllib.request.Request(server.base + BULK, data=body, method="POST", headers={
        "Authorization": f"Bearer {seed['token']}", "X-UiPath-Internal-TenantId": seed["tenantId"],
        "X-UiPath-FolderKey": seed["folderKey"], "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        answer = json.loads(response.read())
    if answer["failedItems"]:
        raise RuntimeError(f"bulk call failed items: {answer['failures'][:3]}")
    moved = sum(1 for u in answer["updatedDeployments"] if u["version"] != u["previousVersion"])
    if moved != len(ids):
        raise RuntimeError(f"only {moved} of {len(ids)} deployments moved")


def api(server, seed, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {seed['token']}", "X-UiPath-Internal-TenantId": seed["tenantId"],
               "X-UiPath-FolderKey": seed["folderKey"]}
    if data:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(server.base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.status, json.loads(response.read())


def operation_run(server, db, seed, ids, concurrency=CONCURRENCY):
    """One operation over `ids` at `concurrency` on the running server, its peak memory
    counted from the start of the run (VmHWM reset). Returns a dict of figures; raises
    unless every item was updated."""
    server.reset_peak_memory()
    rest = server.memory_kib("VmRSS")
    meter = CpuMeter(server).__enter__()
    before = time.time()
    status, monitor = api(server, seed, "POST", OPERATIONS, {"deploymentIds": ids, "maxConcurrency": concurrency})
    accepted = time.time()
    if status != 202:
        raise RuntimeError(f"operation not accepted: {status} {monitor}")
    op = monitor["id"]
    memory = [(0.0, rest / 1024)]  # (seconds since the POST, resident MiB), for the chart
    polled = time.time()
    while monitor["status"] not in ("Succeeded", "Failed", "Canceled"):
        time.sleep(0.25)
        memory.append((time.time() - before, server.memory_kib("VmRSS") / 1024))
        if time.time() - polled >= 1:  # the monitor's Retry-After, as a client would (the end is read from the database)
            polled = time.time()
            _, monitor = api(server, seed, "GET", f"{BASE}/operations/{op}")
    counters = monitor["counters"]
    if monitor["status"] != "Succeeded" or counters["updated"] != len(ids):
        raise RuntimeError(f"operation {op} ended {monitor['status']}: {counters}")
    peak = server.memory_kib("VmHWM")
    meter.__exit__(None, None, None)
    # Times from the database's clock (same machine): the end is the operation's
    # finished_at, not the poll that saw it; batches are the claims of BATCH items in
    # seq order, and the gaps between them the time spent releasing and claiming.
    first, finished, span, gaps, batches = psql(db.url, f"""
        WITH o AS (SELECT * FROM operations WHERE id = '{op}'),
        b AS (SELECT (seq - 1) / {BATCH} AS n, min(finished_at) AS first, max(finished_at) AS last
              FROM operation_items WHERE operation_id = '{op}' GROUP BY 1),
        g AS (SELECT n, first, last, LEAD(first) OVER (ORDER BY n) - last AS gap FROM b)
        SELECT extract(epoch FROM (SELECT min(first) FROM g)), extract(epoch FROM (SELECT finished_at FROM o)),
               extract(epoch FROM (SELECT max(last) - min(first) FROM g)),
               extract(epoch FROM COALESCE((SELECT sum(gap) FROM g), interval '0')), (SELECT count(*) FROM g)""")[0]
    elapsed = float(finished) - before
    return {"rate": len(ids) / elapsed, "first_ms": 1000 * (float(first) - accepted), "elapsed": elapsed,
            "gaps": float(gaps), "span": float(span), "batches": int(batches), "rest_mib": rest / 1024,
            "peak_mib": peak / 1024, "create_ms": 1000 * (accepted - before), "memory": memory,
            "cpu_ms": meter.per(len(ids))}


def bulk_in_calls(server, seed, ids, per_call):
    started = time.perf_counter()
    for i in range(0, len(ids), per_call):
        bulk_call(server, seed, ids[i:i + per_call])
    return len(ids) / (time.perf_counter() - started)


def paired_rounds(server, db, seed_info, ids, per_call, rounds):
    """`rounds` pairs of (sync bulk calls, one operation) over the same ids, each side on
    a freshly reset table, the two sides of a pair run back to back: on a shared machine
    a rate moves by a third between runs, so the ratio is taken within each pair and the
    median pair reported. Returns (sync rates, operation figures)."""
    # Both sides run on the same warm server: its connections open and its statements
    # prepared by a small run of each first. (A server started afresh for the operation
    # alone, as before, charged it the connections and the statements the sync side had
    # already paid for.)
    warm = ids[:min(per_call, 500)]
    db.reset()
    bulk_call(server, seed_info, warm)
    db.reset()
    operation_run(server, db, seed_info, warm)
    syncs, ops = [], []
    for _ in range(rounds):
        db.reset()
        before = db.writes()
        syncs.append(bulk_in_calls(server, seed_info, ids, per_call))
        sync_writes = db.writes_since(before)
        db.reset()
        before = db.writes()
        ops.append(operation_run(server, db, seed_info, ids))
        op_writes = db.writes_since(before)
        log(f"  writes: sync {sync_writes}; operation {op_writes}")
        log(f"  pair: sync {syncs[-1]:.0f} items/s, operation {ops[-1]['rate']:.0f} items/s "
            f"(ratio {ops[-1]['rate'] / syncs[-1]:.2f}; first item {ops[-1]['first_ms']:.0f} ms after the 202, "
            f"{ops[-1]['gaps']:.2f} s of {ops[-1]['elapsed']:.2f} s between {ops[-1]['batches']} batches, "
            f"peak {ops[-1]['peak_mib']:.1f} MiB)")
    return syncs, ops


def median_pair(syncs, ops):
    """The pair with the median ratio (the lower middle one of an even count), and every pair's ratio."""
    ratios = [op["rate"] / sync for sync, op in zip(syncs, ops)]
    middle = sorted(range(len(ratios)), key=ratios.__getitem__)[(len(ratios) - 1) // 2]
    return syncs[middle], ops[middle], ratios


LEVELS = (1, 2, 4, 8, 16)  # connections (HTTP) and clients (pgbench) of the scaling curve
PER_CALL = 100  # ids per bulk call in the scaling curve and the replica comparison


def scaling_curve(db, server, seed_info, engine_script, levels, seconds):
    """Throughput at each number of connections, each run on a freshly reset table:
    bulk calls of PER_CALL ids (items/s) next to pgbench's naive per-item transaction,
    and single-id calls (calls/s) next to pgbench running the engine's statement."""
    curve = {"bulk": [], "naive": [], "single": [], "engine": []}
    ids_file = seed_info["idsFile"]
    for c in levels:
        db.reset()
        bulk = wrk(server.base + BULK, "bulk.lua", c, seconds, wrk_env(seed_info, ids_file, PER_CALL))
        curve["bulk"].append((c, bulk.rate * PER_CALL))
        db.reset()
        curve["naive"].append((c, pg_latency(db, "naive.sql", c, seconds, seed_info).rate))
        db.reset()
        curve["single"].append((c, wrk(server.base + BULK, "bulk.lua", c, seconds, wrk_env(seed_info, ids_file)).rate))
        db.reset()
        curve["engine"].append((c, pg_latency(db, engine_script, c, seconds, seed_info).rate))
        log(f"  {c:2d} connections: bulk {curve['bulk'][-1][1]:.0f} items/s (naive {curve['naive'][-1][1]:.0f} tps), "
            f"single-id {curve['single'][-1][1]:.0f} calls/s (engine statement {curve['engine'][-1][1]:.0f} tps)")
    return curve


def replica_scaling(db, servers, seed_info, workdir, connections, seconds):
    """Single-id and PER_CALL-id bulk calls at `connections` in all, through one replica
    and then split evenly over two replicas of the same database (each wrk on its own
    half of the ids, so the two never upgrade the same deployment). Items/s."""
    with open(seed_info["idsFile"]) as f:
        ids = [line.strip() for line in f if line.strip()]
    halves = []
    for n, part in enumerate((ids[0::2], ids[1::2])):
        path = os.path.join(workdir, f"ids-half-{n}.txt")
        with open(path, "w") as f:
            f.write("\n".join(part) + "\n")
        halves.append(path)
    figures = {}
    for per_call, kind in [(1, "single"), (PER_CALL, "bulk")]:
        for replicas in (1, 2):
            db.reset()
            runs = [wrk_start(server.base + BULK, "bulk.lua", connections // replicas, seconds,
                              wrk_env(seed_info, halves[n] if replicas == 2 else seed_info["idsFile"], per_call))
                    for n, server in enumerate(servers[:replicas])]
            figures[(kind, replicas)] = sum(wrk_result(run, "bulk.lua").rate for run in runs) * per_call
            log(f"  {kind}, {replicas} replica(s), {connections} connections: {figures[(kind, replicas)]:.0f} items/s")
    return figures


def first_item_latency(server, db, seed_info, ids, count, size):
    """`count` operations of `size` items, one after another, each awaited: the time
    from its creation to its claim by a worker (its first item starting) and to its
    first item settled, from the database's timestamps. Returns sorted lists in ms."""
    db.reset()
    started, settled = [], []
    for n in range(count):
        status, monitor = api(server, seed_info, "POST", OPERATIONS, {"deploymentIds": ids[n * size:(n + 1) * size]})
        if status != 202:
            raise RuntimeError(f"operation not accepted: {status} {monitor}")
        while monitor["status"] not in ("Succeeded", "Failed", "Canceled"):
            time.sleep(0.05)
            _, monitor = api(server, seed_info, "GET", f"{BASE}/operations/{monitor['id']}")
        claim, first = psql(db.url, f"""
            SELECT extract(epoch FROM started_at - created_at),
                   extract(epoch FROM (SELECT min(finished_at) FROM operation_items i WHERE i.operation_id = o.id)
                                      - created_at)
            FROM operations o WHERE id = '{monitor['id']}'""")[0]
        started.append(1000 * float(claim))
        settled.append(1000 * float(first))
    return sorted(started), sorted(settled)


def percentile_of(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def seed(server, count, workdir):
    ids_file = os.path.join(workdir, f"ids-{count}.txt")
    started = time.perf_counter()
    summary = json.loads(server.cli("seed", "--deployments", str(count), "--ids-file", ids_file))
    log(f"  seeded {count} deployments in {time.perf_counter() - started:.1f} s")
    with open(ids_file) as f:
        ids = [line.strip() for line in f if line.strip()]
    summary["idsFile"] = ids_file
    return summary, ids


class Postgres(ScratchDatabase):
    """A fresh database of its own (dropped at the end), set up for pgbench."""

    def prepare_pgbench(self):
        psql(self.url, "DROP TABLE IF EXISTS bench_ids; "
                       "CREATE TABLE bench_ids AS SELECT row_number() OVER (ORDER BY id) AS n, id FROM deployments; "
                       "ALTER TABLE bench_ids ADD PRIMARY KEY (n); CREATE SEQUENCE IF NOT EXISTS bench_seq")

    def writes(self):
        """The cluster's checkpoints, buffers written out (by backends, by the
        background writer) and WAL position: read around a side, they show whether it
        ran a checkpoint or evicted dirty pages inside its own time (the buffer pool is
        the cluster's, 128 MB here)."""
        row = psql(self.url, "SELECT checkpoints_timed + checkpoints_req, buffers_backend, buffers_clean, "
                             "pg_current_wal_lsn() - '0/0'::pg_lsn FROM pg_stat_bgwriter")[0]
        return [float(x) for x in row]

    def writes_since(self, before):
        checkpoints, backends, bgwriter, wal = (b - a for a, b in zip(before, self.writes()))
        return (f"{checkpoints:.0f} checkpoints, {backends:.0f} buffers written by backends and "
                f"{bgwriter:.0f} by the background writer, {wal / 1e6:.0f} MB WAL")

    def reset(self):
        """Every deployment back on version 1 (an upgrade waiting), the sequence at 1."""
        psql(self.url, "UPDATE deployments SET version = 1")
        psql(self.url, "SELECT setval('bench_seq', 1, false)")
        # Each side starts from the same clean table and an empty WAL backlog. The
        # outbox too: every side adds an event per item, and with autovacuum off (as on
        # this workplace's machines) the fan-out would walk more dead index entries on
        # every later run, whichever side that is.
        psql(self.url, "VACUUM ANALYZE deployments")
        psql(self.url, "VACUUM ANALYZE webhook_events")
        psql(self.url, "VACUUM operation_items")  # each operation updates its items twice
        psql(self.url, "CHECKPOINT")

    def pgbench(self, script, clients, seed_info, transactions=None, seconds=None):
        # -M prepared, as uplift (sqlx) prepares its statements; the -D values are then
        # bound parameters, hence no SQL quotes around them.
        args = ["pgbench", "-n", "-M", "prepared", "-f", os.path.join(HERE, "sql", script), "-c", str(clients),
                "-j", str(min(clients, 2)), "-r",
                "-D", f"tenant={seed_info['tenantId']}", "-D", f"folder={seed_info['folderId']}",
                "-D", "pattern=%bravo%", "-D", f"folder_key={seed_info['folderKey']}", "-D", "subject=bench-admin", self.url]
        args += ["-t", str(transactions)] if transactions else ["-T", str(seconds)]
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
        tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out).group(1))
        latency = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))
        failed = re.search(r"number of failed transactions: (\d+)", out)
        if failed and int(failed.group(1)):
            raise RuntimeError(f"pgbench {script}: {failed.group(1)} failed transactions")
        return tps, latency


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def postgres_cpu_seconds():
    """CPU used so far by PostgreSQL: its live processes, plus what the postmaster has
    collected from backends that already exited (pgbench's close at its end)."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
        with open(f"/proc/{fields[1]}/comm") as f:
            parent_is_postgres = f.read().strip() == "postgres"
        if not parent_is_postgres:  # the postmaster: add its reaped children
            total += (int(fields[13]) + int(fields[14])) / TICKS
    return total


def children_cpu_seconds():
    import resource
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds spent by uplift, PostgreSQL and the load generator over a block."""

    def __init__(self, server=None):
        self.server = server

    def __enter__(self):
        self.start = (cpu_seconds(self.server.process.pid) if self.server else 0.0,
                      postgres_cpu_seconds(), children_cpu_seconds())
        return self

    def __exit__(self, *exc):
        end = (cpu_seconds(self.server.process.pid) if self.server else 0.0,
               postgres_cpu_seconds(), children_cpu_seconds())
        self.uplift, self.postgres, self.client = (b - a for a, b in zip(self.start, end))
        return False

    def per(self, count):
        """(uplift, postgres, client) CPU milliseconds per unit of work."""
        return tuple(1000.0 * v / count for v in (self.uplift, self.postgres, self.client))


PERCENTILES = (50, 75, 90, 99)


class Load:
    """One load run's rate and latency percentiles (ms)."""

    def __init__(self, rate, percentiles):
        self.rate, self.percentiles = rate, percentiles
        self.p50, self.p99 = percentiles[50], percentiles[99]

    def __iter__(self):  # (rate, p50, p99), as the table's rows read it
        return iter((self.rate, self.p50, self.p99))

    def __getitem__(self, index):
        return tuple(self)[index]


def wrk_start(url, script, connections, seconds, env):
    """wrk in the background (so that several can load replicas at once); `wrk_result`
    waits for it. Two threads at most, and never more threads than connections."""
    threads = min(2, connections)
    return subprocess.Popen(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
                             "-s", os.path.join(HERE, "wrk", script), url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **env, BENCH_THREADS=str(threads)))


def wrk_result(process, script):
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"wrk {script} exited {process.returncode}: {err.strip()}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def percentile(p):
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise RuntimeError(f"wrk {script}: {bad.group(1)} answers were not 2xx")
    return Load(rps, {p: percentile(p) for p in PERCENTILES})


def wrk(url, script, connections, seconds, env):
    return wrk_result(wrk_start(url, script, connections, seconds, env), script)


def wrk_env(seed_info, ids_file=None, per_call=1):
    env = {"BENCH_TOKEN": seed_info["token"], "BENCH_TENANT": seed_info["tenantId"],
           "BENCH_FOLDER": seed_info["folderKey"], "BENCH_PATH": BULK, "BENCH_PER_CALL": str(per_call)}
    if ids_file:
        env["BENCH_IDS"] = ids_file
    return env


def pg_latency(db, script, clients, seconds, seed_info):
    """pgbench's rate and latency percentiles, from its per-transaction log."""
    logdir = tempfile.mkdtemp()
    args = ["pgbench", "-n", "-M", "prepared", "-f", os.path.join(HERE, "sql", script), "-c", str(clients),
            "-j", str(min(clients, 2)), "-T", str(seconds), "-l", "--log-prefix", os.path.join(logdir, "tx"),
            "-D", f"tenant={seed_info['tenantId']}", "-D", f"folder={seed_info['folderId']}",
            "-D", "pattern=%bravo%", "-D", f"folder_key={seed_info['folderKey']}", "-D", "subject=bench-admin", db.url]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out).group(1))
    latencies = []
    for name in os.listdir(logdir):
        with open(os.path.join(logdir, name)) as f:
            latencies += [int(line.split()[2]) for line in f if line.strip()]
    shutil.rmtree(logdir, ignore_errors=True)
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1000.0
    return Load(tps, {p: pick(p / 100) for p in PERCENTILES})


def engine_sql(binary, path, command="upgrade-item", overrides=None):
    """The statement uplift's engine sends per item on PostgreSQL, taken from the binary
    (`uplift debug sql upgrade-item`, or `upgrade-item-where-granted` for a one-id call's)
    with pgbench's values in place of the bound ones: each transaction takes the next
    seeded id."""
    params = {
        1: "(SELECT id FROM bench_ids WHERE n = (SELECT nextval('bench_seq')))",
        2: ":tenant", 3: ":folder", 4: "NULL", 5: "now()", 6: "'upgrade'", 7: "'pgbench'", 8: "NULL",
    }
    params.update(overrides or {})
    args = [binary, "debug", "sql", command] + [f"--param={n}={text}" for n, text in params.items()]
    sql = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    with open(path, "w") as f:
        f.write(sql.rstrip().rstrip(";") + ";\n")
    return path


def granted_sql(binary, path):
    """A one-id call's statement (grant check and upgrade in one) for pgbench: the
    folder by its key, the seeded tenant-wide administrator as the caller."""
    return engine_sql(binary, path, "upgrade-item-where-granted",
                      {3: ":folder_key", 7: ":subject", 9: "'Administrator,FolderAdministrator'"})


def sqlite_script(path, seed_info, ids, binary):
    """The statements uplift's engine issues per item on SQLite, one transaction each:
    BEGIN IMMEDIATE, the item's statements as the binary prints them (`uplift debug sql
    upgrade-item --backend sqlite`, from `src/upgrade/sqlite.rs`) with values in place
    of the bound ones, COMMIT."""
    params = {
        1: "__ID__", 2: f"'{seed_info['tenantId']}'", 3: str(seed_info["folderId"]), 4: "NULL",
        5: "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')", 6: "'sqlite3'", 7: "NULL", 8: "NULL",
        9: "'upgrade'", 10: "lower(hex(randomblob(16)))", 11: "'deployment.upgraded'",
    }
    args = [binary, "debug", "sql", "upgrade-item", "--backend", "sqlite"] + [
        f"--param={n}={text}" for n, text in params.items()]
    item = subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()
    with open(path, "w") as f:
        f.write("PRAGMA journal_mode=WAL;\nPRAGMA synchronous=NORMAL;\nPRAGMA foreign_keys=ON;\n"
                "PRAGMA busy_timeout=2000;\n")
        for i in ids:
            f.write("BEGIN IMMEDIATE;\n" + item.replace("__ID__", f"'{i}'") + "\nCOMMIT;\n")


def draw_charts(figures, out_dir):
    """The run's pictures (docs/benchmarks.md embeds the committed ones of the recorded run)."""
    note = figures["header"]
    curve = figures["curve"]
    charts.line_chart(
        os.path.join(out_dir, "throughput-vs-connections.svg"), "PostgreSQL: throughput against connections",
        "connections (HTTP) / clients (pgbench)", "per second",
        {f"uplift bulk, {PER_CALL} ids per call (items)": curve["bulk"],
         "pgbench naive per-item transaction": curve["naive"],
         "uplift single-id calls": curve["single"],
         "pgbench engine statement": curve["engine"]},
        log2_x=True, dashed=("pgbench naive per-item transaction", "pgbench engine statement"), note=note)
    charts.bar_chart(
        os.path.join(out_dir, "latency-single-id.svg"), "Single-id calls at 16 connections: latency",
        "milliseconds", [(f"p{p}", [figures["single"][p], figures["single_sql"][p]]) for p in PERCENTILES],
        ["uplift (HTTP call)", "pgbench (engine statement)"], note=note)
    charts.line_chart(
        os.path.join(out_dir, "memory-operation.svg"),
        f"Resident memory during a {figures['memory_items']:,}-item operation", "seconds since the POST", "MiB",
        {"uplift RSS": figures["memory"]}, note=note, limit=(100, "goal: peak below 100 MiB"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--quick", action="store_true", help="small counts and short runs (CI)")
    parser.add_argument("--large", type=int, default=None, help="deployments for the load and read tests")
    options = parser.parse_args()
    binary = os.path.abspath(options.binary)
    small = 1000 if options.quick else 10000
    large = options.large or (20000 if options.quick else 100000)
    seconds = 3 if options.quick else 10
    per_call = min(1000, small)
    rows = []  # (measure, uplift, floor, ratio, target)
    workdir = tempfile.mkdtemp(prefix="uplift-bench-")
    servers, databases = [], []
    engine_script = engine_sql(binary, os.path.join(workdir, "engine.sql"))

    def row(measure, uplift, floor, target, higher_is_better=True):
        ratio = (uplift / floor if higher_is_better else floor / uplift) if floor and uplift else None
        rows.append((measure, uplift, floor, ratio, target))

    def seeded_postgres(count):
        """A fresh database with `count` deployments and a server on it."""
        log(f"PostgreSQL, {count} deployments")
        db = Postgres()
        databases.append(db)
        server = Server(binary, db.url)
        servers.append(server)
        seed_info, ids = seed(server, count, workdir)
        db.prepare_pgbench()
        server.start()
        return db, server, seed_info, ids

    try:
        # ---------------------------------------------------------------- 1. PostgreSQL, small
        db, server, seed_info, ids = seeded_postgres(small)
        at_rest = server.memory_kib("VmRSS")
        bulk_call(server, seed_info, ids[:per_call])
        peak_small_call = server.memory_kib("VmHWM")
        db.reset()
        bulk_call(server, seed_info, ids)
        peak_full_call = server.memory_kib("VmHWM")

        db.reset()
        with CpuMeter(server) as bulk_cpu:
            uplift_bulk = bulk_in_calls(server, seed_info, ids, per_call)
        log(f"  uplift bulk: {uplift_bulk:.0f} items/s")
        db.reset()
        with CpuMeter() as naive_cpu:
            naive, _ = db.pgbench("naive.sql", CONCURRENCY, seed_info, transactions=small // CONCURRENCY)
        db.reset()
        naive_1, _ = db.pgbench("naive.sql", 1, seed_info, transactions=small)
        db.reset()
        engine, _ = db.pgbench(engine_script, CONCURRENCY, seed_info, transactions=small // CONCURRENCY)
        log(f"  pgbench naive {naive:.0f} tps (1 client: {naive_1:.0f}), engine statement {engine:.0f} tps")
        row(f"PG bulk upgrade, {small} ids in calls of {per_call} (items/s) vs pgbench naive, {CONCURRENCY} clients",
            uplift_bulk, naive, ">= 0.8 (aim > 1.0)")
        row(f"PG bulk upgrade vs pgbench of the engine's own statement, {CONCURRENCY} clients",
            uplift_bulk, engine, "close to 1.0")
        for label, index in [("uplift process", 0), ("PostgreSQL", 1)]:
            row(f"  CPU ms per item: {label}", bulk_cpu.per(small)[index],
                naive_cpu.per(small)[index] if index else None, "", higher_is_better=False)
        row("PG pgbench naive shape, 1 client (tps, for reference)", naive_1, None, "")
        db.reset()
        small_pairs = paired_rounds(server, db, seed_info, ids, per_call, 1 if options.quick else 3)
        first_started, first_settled = first_item_latency(server, db, seed_info, ids, 5 if options.quick else 30, 100)
        log(f"  202 to first item: started p50 {percentile_of(first_started, 0.5):.0f} ms, "
            f"p99 {percentile_of(first_started, 0.99):.0f} ms")
        small_list = wrk(server.base + LIST, "get.lua", CONCURRENCY, seconds, wrk_env(seed_info))
        small_list_sql = pg_latency(db, "list.sql", CONCURRENCY, seconds, seed_info)
        server.stop()

        # ---------------------------------------------------------------- 2. PostgreSQL, large
        big, server, big_seed, big_ids = seeded_postgres(large)
        big.reset()
        with CpuMeter(server) as single_cpu:
            single = wrk(server.base + BULK, "bulk.lua", 16, seconds, wrk_env(big_seed, big_seed["idsFile"]))
        big.reset()
        with CpuMeter() as single_sql_cpu:
            single_sql = pg_latency(big, engine_script, 16, seconds, big_seed)
        # What a single-id call asks of PostgreSQL: the authorisation read, then the
        # engine's statement (each its own transaction, as uplift sends them).
        both_script = os.path.join(workdir, "authorise-then-engine.sql")
        with open(both_script, "w") as out, open(os.path.join(HERE, "sql", "authorise.sql")) as a, \
                open(engine_script) as e:
            out.write(a.read() + e.read())
        big.reset()
        with CpuMeter() as both_cpu:
            both_sql = pg_latency(big, both_script, 16, seconds, big_seed)
        big.reset()
        with CpuMeter() as granted_cpu:
            granted = pg_latency(big, granted_sql(binary, os.path.join(workdir, "granted.sql")), 16, seconds,
                                 big_seed)
        log(f"  single-id calls {single[0]:.0f}/s (p50 {single[1]:.2f} ms, p99 {single[2]:.2f} ms); "
            f"pgbench {single_sql[0]:.0f} tps, with the authorisation read first {both_sql[0]:.0f} tps, "
            f"the one-id call's statement {granted[0]:.0f} tps")
        row("PG single-id bulk calls, 16 connections (calls/s) vs pgbench engine statement, 16 clients",
            single[0], single_sql[0], ">= 0.7")
        row("  vs pgbench of the one-id call's own statement (grant check and upgrade in one), 16 clients",
            single[0], granted[0], "")
        row("  vs pgbench of the grant read then the engine statement (two round trips), 16 clients",
            single[0], both_sql[0], "")
        row("  p50 latency (ms): uplift vs pgbench", single[1], single_sql[1], "", higher_is_better=False)
        row("  p99 latency (ms): uplift vs pgbench", single[2], single_sql[2], "", higher_is_better=False)
        calls, txns = single[0] * seconds, single_sql[0] * seconds
        for label, (a, b) in [("uplift process", (single_cpu.per(calls)[0], None)),
                              ("PostgreSQL", (single_cpu.per(calls)[1], single_sql_cpu.per(txns)[1])),
                              ("PostgreSQL, pgbench of the one-id call's statement",
                               (single_cpu.per(calls)[1], granted_cpu.per(granted[0] * seconds)[1])),
                              ("PostgreSQL, pgbench of the grant read then the engine statement",
                               (single_cpu.per(calls)[1], both_cpu.per(both_sql[0] * seconds)[1])),
                              ("load generator (wrk / pgbench)", (single_cpu.per(calls)[2], single_sql_cpu.per(txns)[2]))]:
            row(f"  CPU ms per call: {label}", a, b, "", higher_is_better=False)
        levels = (1, 4, 16) if options.quick else LEVELS
        curve = scaling_curve(big, server, big_seed, engine_script, levels, 2 if options.quick else 5)
        second = Server(binary, big.url)
        servers.append(second)
        second.start()
        replicas = replica_scaling(big, [server, second], big_seed, workdir, 16, 2 if options.quick else 5)
        second.stop()
        big.reset()
        large_list = wrk(server.base + LIST, "get.lua", CONCURRENCY, seconds, wrk_env(big_seed))
        large_list_sql = pg_latency(big, "list.sql", CONCURRENCY, seconds, big_seed)
        for size, (rps, _, p99), (tps, _, sql_p99) in [(small, small_list, small_list_sql),
                                                       (large, large_list, large_list_sql)]:
            row(f"PG list top=100 searchText orderBy at {size} (calls/s) vs the SQL in pgbench, {CONCURRENCY} clients",
                rps, tps, ">= 0.5" if size == large else "")
            row(f"  p99 latency (ms) at {size}: uplift vs pgbench", p99, sql_p99, "", higher_is_better=False)
        large_pairs = large_naive = None
        if not options.quick:
            big.reset()
            large_pairs = paired_rounds(server, big, big_seed, big_ids, per_call, 2)
            big.reset()
            large_naive, _ = big.pgbench("naive.sql", CONCURRENCY, big_seed, transactions=large // CONCURRENCY)
            log(f"  pgbench naive {large_naive:.0f} tps at {large} deployments")
        server.stop()

        # ---------------------------------------------------------------- 3. SQLite
        log(f"SQLite, {small} deployments")
        sqlite_dir = tempfile.mkdtemp(dir=workdir)
        sqlite_file = os.path.join(sqlite_dir, "uplift.db")
        server = Server(binary, f"sqlite://{sqlite_file}?mode=rwc")
        servers.append(server)
        lite_seed, lite_ids = seed(server, small, workdir)
        server.start()
        uplift_lite = bulk_in_calls(server, lite_seed, lite_ids, per_call)
        server.stop()
        subprocess.run(["sqlite3", sqlite_file, "UPDATE deployments SET version = 1;"], check=True)
        script = os.path.join(workdir, "engine.sqlite.sql")
        sqlite_script(script, lite_seed, lite_ids, binary)
        started = time.perf_counter()
        with open(script) as stdin:
            subprocess.run(["sqlite3", sqlite_file], stdin=stdin, stdout=subprocess.DEVNULL, check=True)
        floor_lite = len(lite_ids) / (time.perf_counter() - started)
        log(f"  uplift {uplift_lite:.0f} items/s, sqlite3 script {floor_lite:.0f} items/s")
        row(f"SQLite bulk upgrade, {small} ids in calls of {per_call} (items/s) vs sqlite3 script, same statements",
            uplift_lite, floor_lite, ">= 0.8")

        for size, pairs, naive_floor in [(small, small_pairs, naive), (large, large_pairs, large_naive)]:
            if pairs is None:
                continue
            sync, op, ratios = median_pair(*pairs)
            row(f"PG operation over {size} ids, maxConcurrency {CONCURRENCY} (items/s) vs the sync bulk call "
                f"in calls of {per_call}, concurrency {CONCURRENCY} (median of {len(ratios)} pairs)", op["rate"], sync,
                ">= 0.95")
            row(f"  every pair's ratio: {', '.join(f'{r:.2f}' for r in ratios)}", None, None, "")
            row(f"  operation over {size} vs pgbench naive, {CONCURRENCY} clients", op["rate"], naive_floor, "")
            row(f"  time from the 202 to the first item settled (ms), {size} items", op["first_ms"], None, "")
            row(f"  time between batches of {BATCH} (seq order), s", op["gaps"], None,
                f"of {op['elapsed']:.1f} s, {op['batches']} batches")
            row("  CPU ms per item: uplift process", op["cpu_ms"][0], None, "")
            row("  CPU ms per item: PostgreSQL", op["cpu_ms"][1], None, "")
            row(f"  peak memory of the warm server through a {size}-item operation (MiB)",
                max(o["peak_mib"] for o in pairs[1]), None, "< 100")
        row(f"Operations of 100 items, one after another ({len(first_started)}): 202 to first item started, "
            "p50 (ms)", percentile_of(first_started, 0.5), None, "")
        row("  p99 (ms)", percentile_of(first_started, 0.99), None, "")
        row("  202 to first item settled, p50 (ms)", percentile_of(first_settled, 0.5), None, "")
        row("  202 to first item settled, p99 (ms)", percentile_of(first_settled, 0.99), None, "")
        for (kind, name, floor_name) in [("bulk", f"bulk calls of {PER_CALL} (items/s)", "naive"),
                                         ("single", "single-id calls (calls/s)", "engine")]:
            for (c, rate), (_, floor_rate) in zip(curve[kind], curve[floor_name]):
                row(f"Scaling: {name} at {c} connection(s) vs pgbench {floor_name}, {c} client(s)", rate, floor_rate, "")
        for kind in ("single", "bulk"):
            row(f"Replicas: {kind} calls, 16 connections, 2 replicas vs 1 (items/s)", replicas[(kind, 2)],
                replicas[(kind, 1)], "")
        row("Memory at rest (MiB)", at_rest / 1024, None, "")
        if per_call < small:
            row(f"Peak memory, {per_call}-id call (MiB)", peak_small_call / 1024, None, "")
        row(f"Peak memory, {small}-id call (MiB)", peak_full_call / 1024, None, "< 100")
    finally:
        for server in servers:
            try:
                server.stop()
            except Exception:  # noqa: BLE001 - cleaning up after a failure
                pass
        for db in databases:
            db.drop()

    header = f"uplift benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores" + (
        " (quick)" if options.quick else "")
    lines = [header, "", "| measure | uplift | floor | ratio | target |", "| --- | ---: | ---: | ---: | --- |"]
    for measure, uplift, floor, ratio, target in rows:
        fmt = lambda v: "" if v is None else (f"{v:.2f}" if v < 100 else f"{v:.0f}")
        lines.append(f"| {measure} | {fmt(uplift)} | {fmt(floor)} | "
                     f"{'' if ratio is None else f'{ratio:.2f}'} | {target} |")
    text = "\n".join(lines)
    print(text)
    out_dir = os.path.join(ROOT, "target", "bench")
    os.makedirs(out_dir, exist_ok=True)
    stamp = time.strftime('%Y%m%d-%H%M%S')
    with open(os.path.join(out_dir, f"results-{stamp}.md"), "w") as f:
        f.write(text + "\n")
    biggest = (large_pairs or small_pairs)[1]
    memory_run = max(biggest, key=lambda op: op["elapsed"])
    figures = {"header": header, "curve": curve, "single": single.percentiles, "single_sql": single_sql.percentiles,
               "replicas": {f"{k}/{n}": v for (k, n), v in replicas.items()},
               "memory": memory_run["memory"], "memory_items": large if large_pairs else small}
    with open(os.path.join(out_dir, f"results-{stamp}.json"), "w") as f:
        json.dump(figures, f, indent=1)
    draw_charts(figures, out_dir)
    log(f"table, figures and charts in {out_dir}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
