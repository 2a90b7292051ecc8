#!/usr/bin/env python3
"""Webhook relay throughput and the outbox's cost to a bulk upgrade (issue 16, point 9;
see docs/benchmarks.md, "Webhooks").

    bench/webhooks.py BINARY [--count N] [--quick]

bench/run.sh runs it (with its own arguments) before bench/run.py.

Two replicas of BINARY on one scratch PostgreSQL database (free ports, 127.0.0.1 only)
and a receiver here on 127.0.0.1 (asyncio, HTTP/1.1 keep-alive, answers 204 at once,
allowed by UPLIFT_WEBHOOK_ALLOW_NETWORKS).

1. Outbox cost: COUNT deployments upgraded by bulk calls of 1,000 ids to replica A with
   no endpoint registered (outbox rows written, nothing to deliver), then COUNT others
   with one endpoint registered while both replicas deliver to the receiver; the ratio
   of the two rates (issue 18's target: >= 0.9).
2. Relay: the second run's events, from the first bulk call to the last event received:
   events per second, delivery lag p50/p99 (the event's timestamp, taken in the
   upgrade's transaction just before its commit, to the receipt of the request that
   the receiver answers 2xx), duplicates (a webhook-id received twice).

Prints the figures (and writes them to target/bench/). No assertions on times: the
machine may be shared; it exits 1 only when an event is missing.
"""
import argparse
import asyncio
import contextlib
import datetime
import json
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts", "reliability"))
from common import ScratchDatabase, Server, call, psql, seed_deployments, setup_tenant  # noqa: E402

BULK = "/models/deployed/apps/updateToLatestAppVersionBulk"
PER_CALL = 1000
SETTINGS = dict(webhook_allow_http="true", webhook_allow_networks="127.0.0.1/32", webhook_poll_ms=50,
                max_bulk_items=PER_CALL, log=os.environ.get("UPLIFT_BENCH_LOG", "warn"))


def log(message):
    print(message, file=sys.stderr, flush=True)


class Receiver:
    """A minimal HTTP/1.1 server on its own event loop and thread: reads each request
    (keep-alive), records (webhook-id, event timestamp, receipt time, deployment id)
    and answers 204. asyncio rather than http.server: a thread per connection and
    Python's header parsing would be the bottleneck well before the relay is."""

    def __init__(self):
        self.received = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._run, args=(started,), daemon=True).start()
        started.wait()

    def _run(self, started):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=512))
        self.port = self.server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()

    async def _connection(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                now = time.time()
                payload = json.loads(body)
                stamp = datetime.datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00")).timestamp()
                with self.lock:
                    self.received.append((headers.get("webhook-id"), stamp, now,
                                          payload.get("data", {}).get("deploymentId")))
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def snapshot(self):
        with self.lock:
            return list(self.received)

    def stop(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


def bulk(server, token, folder, ids):
    """Deployments per second the bulk calls over `ids` (PER_CALL per call) upgraded."""
    started = time.perf_counter()
    for i in range(0, len(ids), PER_CALL):
        status, body = call(server.base, "POST", BULK, token, folder=folder,
                            body={"deploymentIds": ids[i:i + PER_CALL]})
        if status != 200 or body["failedItems"]:
            raise RuntimeError(f"bulk call answered {status}: {str(body)[:300]}")
    return len(ids) / (time.perf_counter() - started)


def app_with_deployments(server, db, token, folder_id, name, count):
    """An app published at 1.0.0 with `count` deployments on it, then 1.1.0 published:
    the ids to upgrade."""
    publish(server, token, name, "1.0.0")
    app_id = int(psql(db.url, f"SELECT id FROM apps WHERE system_name = '{name}'")[0][0])
    ids = seed_deployments(db.url, folder_id, app_id, 1, count)
    publish(server, token, name, "1.1.0")
    return ids


def publish(server, token, name, version):
    status, _ = call(server.base, "POST", "/models/apps/codedapp/publish", token,
                     body={"packageName": name, "packageVersion": version})
    if status != 200:
        raise RuntimeError(f"publishing {name} {version} answered {status}")


def wait_for(what, done, timeout):
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--count", type=int, default=10000, help="deployments upgraded in each run")
    parser.add_argument("--quick", action="store_true", help="1,000 deployments (CI)")
    parser.add_argument("--large", type=int, help="bench/run.sh's option for bench/run.py; not used here")
    options = parser.parse_args()
    count = 1000 if options.quick else options.count

    receiver = Receiver()
    db = ScratchDatabase()
    servers = []
    try:
        log(f"webhooks bench: two replicas of {options.binary}, database {db.name}, {count} upgrades per run")
        a = Server(options.binary, db.url, **SETTINGS).start()
        servers.append(a)
        servers.append(Server(options.binary, db.url, **SETTINGS).start())
        folder, folder_id, token = setup_tenant(a)
        log("server logs: " + ", ".join(s.log_path for s in servers))

        plain = app_with_deployments(a, db, token, folder_id, "Plain", count)
        without = bulk(a, token, folder, plain)
        wait_for("the outbox without endpoints to be marked dispatched",
                 lambda: psql(db.url, "SELECT count(*) FROM webhook_events WHERE NOT dispatched")[0][0] == "0",
                 timeout=300)

        hooked = app_with_deployments(a, db, token, folder_id, "Hooked", count)
        status, endpoint = call(a.base, "POST", "/webhooks", token,
                                body={"url": f"http://127.0.0.1:{receiver.port}/hook",
                                      "eventTypes": ["deployment.upgraded"]})
        if status != 201:
            raise RuntimeError(f"registering the endpoint answered {status}: {endpoint}")
        started = time.time()
        with_endpoint = bulk(a, token, folder, hooked)
        bulk_done = time.time()
        wanted = set(hooked)

        def arrived():
            return {r[3] for r in receiver.snapshot()} >= wanted

        wait_for(f"{count} events at the receiver", arrived, timeout=max(300, count / 10))
        received = [r for r in receiver.snapshot() if r[3] in wanted]
        last = max(r[2] for r in received)
        unique = {r[0] for r in received}
        lags = sorted(r[2] - r[1] for r in received)
        rate = len(unique) / (last - started)
        figures = [
            f"bulk upgrade, {count} deployments in calls of {PER_CALL}, no endpoint: {without:.0f}/s",
            f"bulk upgrade, {count} deployments, one endpoint, both replicas delivering: {with_endpoint:.0f}/s "
            f"({with_endpoint / without:.2f}x; issue 18's target >= 0.9x)",
            f"relay: {len(unique)} events delivered by two replicas in {last - started:.1f} s from the first "
            f"bulk call ({rate:.0f} events/s; the last arrived {last - bulk_done:.1f} s after the bulk calls ended)",
            f"delivery lag (event timestamp before commit to receipt): p50 {statistics.median(lags) * 1000:.0f} ms, "
            f"p99 {percentile(lags, 0.99) * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms",
            f"duplicates (a webhook-id received twice): {len(received) - len(unique)}",
        ]
    finally:
        for server in servers:
            with contextlib.suppress(Exception):  # cleaning up, perhaps after a failure
                server.stop()
        db.drop()
        receiver.stop()

    header = f"uplift webhooks benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, {options.binary}"
    text = "\n".join([header] + figures)
    print(text)
    out_dir = os.path.join(ROOT, "target", "bench")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"webhooks-{time.strftime('%Y%m%d-%H%M%S')}.txt"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
