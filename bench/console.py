#!/usr/bin/env python3
"""The operator console's fleet view over a folder of 10,000 deployments: the server
time of each call its first screen makes, and the bytes that screen transfers.

    python3 bench/console.py BINARY [--deployments N] [--rounds R]

For SQLite and for PostgreSQL (a scratch database on 127.0.0.1:5432): a fresh server,
`uplift seed --deployments N` (one folder, every deployment with an upgrade waiting),
then R rounds of the first screen's calls, as console/fleet.js makes them: the folder
list, a page of 50 deployments sorted by title, the folder's total and out-of-date
counts, the permission probe (a dry run over no deployment), the catalogue, the version
counts; then page 2 and a filtered page. Prints, per call, the median and the slowest
time (client-side over loopback, so server time plus a little), the median of the whole
screen's calls made one after another (the browser makes them at once, so the screen is
faster than that sum), and its bytes: the API answers plus the page, the stylesheet and
the modules. Writes the table to target/bench/console.txt. Nothing is asserted: the
figures are for reading (docs/benchmarks.md).
"""
import argparse
import json
import os
import statistics
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts", "reliability"))
import common  # noqa: E402
from common import ScratchDatabase  # noqa: E402

BASE = "/local/apps_/default/api/v1/default"
PAGE = 50


def request(server, seed, method, path, body=None):
    headers = {"Authorization": f"Bearer {seed['token']}", "X-UiPath-Internal-TenantId": seed["tenantId"],
               "X-UiPath-FolderKey": seed["folderKey"]}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(server.base + path, data=data, headers=headers, method=method)
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as response:
        payload = response.read()
        status = response.status
    elapsed = (time.perf_counter() - started) * 1000
    if status != 200:
        raise RuntimeError(f"{method} {path}: {status}")
    return elapsed, len(payload), payload


def first_screen(seed):
    tenant = seed["tenantId"]
    return [
        ("folders", "GET", f"{BASE}/folders?top=1000&skip=0", None),
        ("page 1 (50, by title)", "GET", f"{BASE}/models/deployed/apps?orderBy=title%20asc&top={PAGE}&skip=0", None),
        ("total count", "GET", f"{BASE}/models/deployed/apps?top=0", None),
        ("out-of-date count", "GET", f"{BASE}/models/deployed/apps?top=0&outdated=true", None),
        ("permission probe", "POST", f"{BASE}/models/deployed/apps/updateToLatestAppVersionBulk?dryRun=true",
         {"deploymentIds": []}),
        ("catalogue", "GET", f"{BASE}/models/tenants/{tenant}/publish/apps?top=1000&skip=0", None),
        ("version counts", "GET", f"{BASE}/models/deployed/apps/versionCounts", None),
    ]


def later(seed):
    return [
        ("page 2", "GET", f"{BASE}/models/deployed/apps?orderBy=title%20asc&top={PAGE}&skip={PAGE}", None),
        ("out of date, searched", "GET",
         f"{BASE}/models/deployed/apps?orderBy=version%20asc&top={PAGE}&skip=0&outdated=true&searchText=bravo", None),
    ]


def asset_bytes(server):
    total = 0
    for name in ["", "console.css", "icon.svg", "main.js", "api.js", "dom.js", "session.js", "signin.js",
                 "folders.js", "fleet.js", "chart.js", "operation.js", "history.js"]:
        with urllib.request.urlopen(f"{server.base}/console/{name}", timeout=30) as response:
            total += len(response.read())
    return total


def measure(label, server, seed, rounds):
    screen, extra = first_screen(seed), later(seed)
    times = {name: [] for name, *_ in screen + extra}
    sums, screen_bytes = [], 0
    # One round first, unmeasured: connections, caches and the planner warm up.
    for _, method, path, body in screen + extra:
        request(server, seed, method, path, body)
    for _ in range(rounds):
        total, screen_bytes = 0.0, 0
        for name, method, path, body in screen:
            elapsed, size, _ = request(server, seed, method, path, body)
            times[name].append(elapsed)
            total += elapsed
            screen_bytes += size
        sums.append(total)
        for name, method, path, body in extra:
            times[name].append(request(server, seed, method, path, body)[0])
    assets = asset_bytes(server)
    lines = [f"{label}: {seed['count']} deployments in one folder, {rounds} rounds",
             f"  {'call':<26} {'median ms':>10} {'max ms':>8}"]
    for name, values in times.items():
        lines.append(f"  {name:<26} {statistics.median(values):>10.1f} {max(values):>8.1f}")
    lines.append(f"  first screen, calls one after another: median {statistics.median(sums):.1f} ms")
    lines.append(f"  first screen bytes: API {screen_bytes / 1024:.1f} KiB + page and modules "
                 f"{assets / 1024:.1f} KiB = {(screen_bytes + assets) / 1024:.1f} KiB")
    return lines


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--deployments", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    report = []
    backends = [("SQLite", None)] + ([] if args.skip_postgres else [("PostgreSQL", "pg")])
    for label, kind in backends:
        db = ScratchDatabase() if kind else None
        server = common.Server(binary, db.url if db else None)
        try:
            server.start()
            started = time.perf_counter()
            seed = json.loads(server.cli("seed", "--deployments", str(args.deployments)))
            seed["count"] = args.deployments
            print(f"{label}: seeded {args.deployments} deployments in {time.perf_counter() - started:.1f} s",
                  file=sys.stderr, flush=True)
            report += measure(label, server, seed, args.rounds)
        finally:
            server.stop()
            if db:
                db.drop()
    text = "\n".join(report)
    print(text)
    os.makedirs(os.path.join(ROOT, "target", "bench"), exist_ok=True)
    with open(os.path.join(ROOT, "target", "bench", "console.txt"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
