#!/usr/bin/env python3
"""Webhooks with the real binary, checked by the Standard Webhooks reference library.

1. Two replicas (A, B) on one scratch PostgreSQL database, an endpoint registered
   through the API pointing at a receiver here on 127.0.0.1 (allowed by
   UPLIFT_WEBHOOK_ALLOW_NETWORKS). DEPLOYMENTS deployments are upgraded: half by bulk
   calls to A, half by an operation created on B. Every event must arrive, each
   signature verified by `standardwebhooks.Webhook.verify` (not uplift's code): one
   `deployment.upgraded` per deployment, the publish, the `operation.completed`.
   The receiver answers the first few requests with 500 (retried).
2. A rollout over another app's deployments, created on A and acted on through B: its
   first wave, the manual gate before the second, a pause and resume there, the
   approval, the end, a rollback. Each `rollout.*` type must arrive (verified the same
   way), in the order of the transitions.
3. kill -9 mid-delivery: the receiver holds the next request without answering; the
   replica sending it (its pid is in the delivery's lease) is killed with SIGKILL; the
   other must send it again, with the same webhook-id, once the lease lapses.

Prints: events, verified, duplicates (same webhook-id twice), events per second,
delivery lag p50/p99 (payload timestamp to receipt). Exits 1 on any unverified
signature, any missing event, or no redelivery.

Usage: verify.py BINARY [DEPLOYMENTS]"""
import http.server
import json
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reliability"))
from common import ScratchDatabase, Server, call, log_tail, psql, seed_deployments, setup_tenant  # noqa: E402
from standardwebhooks.webhooks import Webhook, WebhookVerificationError  # noqa: E402

binary = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 500
TIMEOUT_MS = 2000
settings = dict(webhook_allow_http="true", webhook_allow_networks="127.0.0.1/32",
                webhook_retry_schedule_seconds="0,1,1,1,2,2,2,2,2,2", webhook_poll_ms=50,
                webhook_timeout_ms=TIMEOUT_MS, operation_poll_ms=50,
                log=os.environ.get("UPLIFT_WEBHOOKS_LOG", "warn"))


ROLLOUT_EVENTS = ["rollout.wave_completed", "rollout.awaiting_approval", "rollout.paused",
                  "rollout.completed", "rollout.rolled_back"]


class Receiver(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # The relay sends up to UPLIFT_WEBHOOK_CONCURRENCY at once; the default backlog of
    # 5 drops the rest's SYNs, which the kernel retries only a second later.
    request_queue_size = 128

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.webhook = None
        self.received = []  # (webhook-id, type, data, lag seconds)
        self.unverified = []
        self.fail_first = 0
        self.hold = threading.Event()
        self.hold.set()
        self.held = threading.Event()

    def handle_error(self, request, client_address):
        # The held request's sender was killed: answering it fails, as it should.
        pass


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        r = self.server
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k: v for k, v in self.headers.items()}
        with r.lock:
            if r.fail_first > 0:
                r.fail_first -= 1
                self.send_response(500)
                self.end_headers()
                return
        try:
            payload = r.webhook.verify(body, headers)
        except WebhookVerificationError as e:
            with r.lock:
                r.unverified.append(f"{headers.get('webhook-id')}: {e}")
            self.send_response(400)
            self.end_headers()
            return
        stamp = payload["timestamp"].replace("Z", "+00:00")
        lag = time.time() - __import__("datetime").datetime.fromisoformat(stamp).timestamp()
        with r.lock:
            r.received.append((headers["webhook-id"], payload["type"], payload["data"], lag))
        if not r.hold.is_set():
            r.held.set()
            r.hold.wait(60)
        self.send_response(204)
        self.end_headers()


def wait_for(what, done, timeout=180):
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"webhooks: timed out waiting for {what}")
        time.sleep(0.1)


def bulk(server, token, folder, ids):
    """Seconds the bulk calls over `ids` (1,000 per call) took."""
    started = time.monotonic()
    for i in range(0, len(ids), 1000):
        status, body = call(server.base, "POST", "/models/deployed/apps/updateToLatestAppVersionBulk",
                            token, folder=folder, body={"deploymentIds": ids[i:i + 1000]})
        assert status == 200, (status, body)
    return time.monotonic() - started


def rollout_events(a, b, db, token, folder_id, receiver):
    """Drives a two-wave rollout through every rollout.* event; the problems seen."""
    for version in ("1.0.0", "1.1.0"):
        status, _ = call(a.base, "POST", "/models/apps/codedapp/publish", token,
                         body={"packageName": "Rolled", "packageVersion": version})
        assert status == 200, status
        if version == "1.0.0":
            rolled_app = int(psql(db.url, "SELECT id FROM apps WHERE system_name = 'Rolled'")[0][0])
            seed_deployments(db.url, folder_id, rolled_app, 1, 4)
    status, rollout = call(a.base, "POST", "/rollouts", token, body={
        "name": "rolled 1.1", "selector": {"appSystemNames": ["Rolled"]},
        "waves": [{"name": "canary", "size": 1}, {"name": "rest", "gate": "manual"}]})
    assert status == 201, (status, rollout)
    rid = rollout["id"]

    def reaches(wanted):
        wait_for(f"rollout {wanted}", lambda: call(b.base, "GET", f"/rollouts/{rid}", token)[1]["status"] == wanted,
                 timeout=60)

    reaches("AwaitingApproval")
    for action in ("pause", "resume", "approve"):
        status, body = call(b.base, "POST", f"/rollouts/{rid}/{action}", token, body={"comment": action})
        assert status == 200, (action, status, body)
    reaches("Succeeded")
    status, body = call(b.base, "POST", f"/rollouts/{rid}/rollback", token, body={"comment": "undo"})
    assert status == 200, (status, body)
    reaches("RolledBack")

    def of_rollout():
        with receiver.lock:
            return [r for r in receiver.received if r[1].startswith("rollout.") and r[2].get("rolloutId") == rid]

    expected = ["rollout.wave_completed", "rollout.awaiting_approval", "rollout.paused",
                "rollout.awaiting_approval", "rollout.wave_completed", "rollout.completed",
                "rollout.rolled_back"]
    try:
        wait_for("the rollout's events", lambda: len({r[0] for r in of_rollout()}) >= len(expected), timeout=60)
    except SystemExit as e:
        return [f"{e}: got {[r[1] for r in of_rollout()]}"]
    firsts = {}
    for r in of_rollout():
        firsts.setdefault(r[0], r[1])
    seen = list(firsts.values())
    print(f"webhooks: rollout {rid}: {len(seen)} rollout events verified by standardwebhooks: {', '.join(seen)}")
    problems = []
    if seen != expected:
        problems.append(f"rollout events {seen}, expected {expected}")
    paused = next((r[2] for r in of_rollout() if r[1] == "rollout.paused"), {})
    if paused.get("comment") != "pause" or paused.get("status") != "Paused":
        problems.append(f"rollout.paused data {paused}")
    return problems


def main():
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    db = ScratchDatabase()
    a = b = None
    try:
        a = Server(binary, db.url, **settings).start()
        b = Server(binary, db.url, **settings).start()
        folder, folder_id, token = setup_tenant(a)
        status, _ = call(a.base, "POST", "/models/apps/codedapp/publish", token,
                         body={"packageName": "Hooked", "packageVersion": "1.0.0"})
        assert status == 200, status
        app_id = int(psql(db.url, "SELECT id FROM apps WHERE system_name = 'Hooked'")[0][0])
        ids = seed_deployments(db.url, folder_id, app_id, 1, count)
        half = len(ids) // 2

        # The cost of the outbox alone: the same bulk calls on another app before any
        # endpoint exists (outbox rows written, nothing to deliver).
        status, _ = call(a.base, "POST", "/models/apps/codedapp/publish", token,
                         body={"packageName": "Plain", "packageVersion": "1.0.0"})
        assert status == 200, status
        plain_id = int(psql(db.url, "SELECT id FROM apps WHERE system_name = 'Plain'")[0][0])
        plain = [d for d in seed_deployments(db.url, folder_id, plain_id, 1, half) if d not in set(ids)]
        status, _ = call(a.base, "POST", "/models/apps/codedapp/publish", token,
                         body={"packageName": "Plain", "packageVersion": "1.1.0"})
        assert status == 200, status
        without = bulk(a, token, folder, plain)
        wait_for("the outbox without endpoints to be marked",
                 lambda: psql(db.url, "SELECT count(*) FROM webhook_events WHERE NOT dispatched")[0][0] == "0")
        port = receiver.server_address[1]
        status, endpoint = call(a.base, "POST", "/webhooks", token,
                                body={"url": f"http://127.0.0.1:{port}/hook",
                                      "eventTypes": ["deployment.upgraded", "app.version_published",
                                                     "operation.completed", *ROLLOUT_EVENTS]})
        assert status == 201, (status, endpoint)
        receiver.webhook = Webhook(endpoint["secret"])
        receiver.fail_first = 3

        started = time.monotonic()
        status, _ = call(a.base, "POST", "/models/apps/codedapp/publish", token,
                         body={"packageName": "Hooked", "packageVersion": "1.1.0"})
        assert status == 200, status
        with_endpoint = bulk(a, token, folder, ids[:half])
        status, monitor = call(b.base, "POST", "/operations/upgrades", token, folder=folder,
                               body={"deploymentIds": ids[half:]})
        assert status == 202, (status, monitor)
        expected = len(ids) + 2

        def unique_ids():
            with receiver.lock:
                return {r[0] for r in receiver.received}

        def state():
            rows = psql(db.url, "SELECT status, count(*) FROM webhook_deliveries GROUP BY status")
            undispatched = psql(db.url, "SELECT count(*) FROM webhook_events WHERE NOT dispatched")[0][0]
            return f"received {len(unique_ids())}; deliveries {dict(rows)}; undispatched events {undispatched}"

        try:
            wait_for(f"{expected} events", lambda: len(unique_ids()) >= expected,
                     timeout=max(180, count / 20))
        except SystemExit as e:
            for server in (a, b):
                print(f"--- {server.log_path} ---\n" + log_tail(server.log_path, 15), file=sys.stderr)
            raise SystemExit(f"{e}: {state()}")
        elapsed = time.monotonic() - started
        with receiver.lock:
            received = list(receiver.received)
        upgraded = {r[2]["deploymentId"] for r in received if r[1] == "deployment.upgraded"}
        missing = set(ids) - upgraded
        types = {r[1] for r in received}
        lags = sorted(r[3] for r in received)
        duplicates = len(received) - len({r[0] for r in received})
        print(f"webhooks: {len(received)} deliveries of {len(unique_ids())} events verified by "
              f"standardwebhooks in {elapsed:.1f} s ({len(unique_ids()) / elapsed:.0f} events/s, "
              f"two replicas, 3 first answers 500); duplicates {duplicates}; lag p50 "
              f"{statistics.median(lags) * 1000:.0f} ms, p99 {lags[int(len(lags) * 0.99) - 1] * 1000:.0f} ms")
        print(f"webhooks: bulk upgrade of {half} deployments on one replica: {half / without:.0f}/s with no "
              f"endpoint (outbox rows only), {half / with_endpoint:.0f}/s with one endpoint receiving "
              f"({without / with_endpoint:.2f}x; a debug build, no time asserted)")
        failures = []
        if missing:
            failures.append(f"{len(missing)} deployments' upgrade events never arrived")
        for t in ("app.version_published", "operation.completed"):
            if t not in types:
                failures.append(f"no {t} arrived")

        failures += rollout_events(a, b, db, token, folder_id, receiver)

        # kill -9 of the replica in the middle of a delivery.
        receiver.hold.clear()
        status, _ = call(a.base, "POST", "/models/apps/codedapp/publish", token,
                         body={"packageName": "Hooked", "packageVersion": "1.2.0"})
        assert status == 200, status
        if not receiver.held.wait(30):
            raise SystemExit("webhooks: the held delivery never arrived")
        with receiver.lock:
            held_id = receiver.received[-1][0]
        owner = psql(db.url, "SELECT lease_owner FROM webhook_deliveries WHERE status = 'sending'")
        pid = int(owner[0][0].split(":")[0])
        victim, survivor = (a, b) if a.process.pid == pid else (b, a)
        victim.kill9()
        receiver.hold.set()
        killed = time.monotonic()
        wait_for("the redelivery", lambda: sum(1 for r in list(receiver.received) if r[0] == held_id) >= 2,
                 timeout=60)
        print(f"webhooks: replica {pid} killed with SIGKILL mid-delivery; {held_id} sent again by the "
              f"other with the same webhook-id after {time.monotonic() - killed:.1f} s (the lease)")
        victim.start()
        with receiver.lock:
            unverified = list(receiver.unverified)
        if unverified:
            failures.append(f"{len(unverified)} signatures did not verify: {unverified[:3]}")
        if failures:
            print("webhooks: FAILED: " + "; ".join(failures), file=sys.stderr)
            sys.exit(1)
        print("webhooks: every event arrived, every signature verified")
    finally:
        for s in (a, b):
            if s:
                s.stop()
        db.drop()
        receiver.shutdown()


main()
