#!/usr/bin/env python3
"""kill -9 of a replica in the middle of a 5,000-id keyed bulk call, ROUNDS times: the
same call (same Idempotency-Key, same body) retried on the other replica must finish
the work with every item upgraded exactly once, and the invariants must hold.

Usage: crash.py BINARY ROUNDS [IDS]"""
import sys
import threading
import time
import uuid

from common import ScratchDatabase, Server, call, invariant_violations, psql, seed_deployments, setup_tenant

binary, rounds = sys.argv[1], int(sys.argv[2])
count = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
settings = dict(max_bulk_items=count, max_body_bytes=count * 64 + 4096, idempotency_lease_seconds=3,
                upgrade_concurrency=2)

db = ScratchDatabase()
a, b = Server(binary, db.url, **settings), Server(binary, db.url, **settings)
failed = False
try:
    a.start()
    b.start()
    folder, folder_id, token = setup_tenant(a)
    package = "Crash " + uuid.uuid4().hex[:6]
    status, body = call(a.base, "POST", "/models/apps/codedapp/publish", token,
                        body={"packageName": package, "packageVersion": "1.0.0"})
    assert status == 200, body
    app_id = psql(db.url, f"SELECT id FROM apps WHERE system_name = '{body['systemName']}'")[0][0]
    ids = seed_deployments(db.url, folder_id, app_id, 1, count)
    print(f"crash: {count} deployments, {rounds} rounds, kill -9 mid-call, retry on the other replica")
    for round_no in range(1, rounds + 1):
        status, body = call(b.base, "POST", "/models/apps/codedapp/publish", token,
                            body={"packageName": package, "packageVersion": f"1.{round_no}.0"})
        target = body["deployVersion"]
        key = f"crash-round-{round_no}-{uuid.uuid4().hex[:6]}"
        first = {}

        def doomed():
            first["status"], _ = call(a.base, "POST", "/models/deployed/apps/updateToLatestAppVersionBulk", token,
                                      folder=folder, body={"deploymentIds": ids}, key=key)

        thread = threading.Thread(target=doomed)
        thread.start()
        upgraded = lambda: int(psql(db.url, f"SELECT count(*) FROM deployments WHERE app_id = {app_id} AND version = {target}")[0][0])
        while upgraded() < count // 20:
            time.sleep(0.02)
        a.kill9()
        thread.join()
        at_kill = upgraded()
        started, conflicts = time.time(), 0
        while True:
            status, answer = call(b.base, "POST", "/models/deployed/apps/updateToLatestAppVersionBulk", token,
                                  folder=folder, body={"deploymentIds": ids}, key=key)
            if status != 409:
                break
            conflicts += 1  # the dead call's lease has not lapsed yet
            time.sleep(0.25)
        events = int(psql(db.url, f"SELECT count(*) FROM deployment_events WHERE kind = 'upgrade' AND to_version = {target}")[0][0])
        problems = invariant_violations(db.url)
        ok = (status == 200 and not answer["failedItems"] and upgraded() == count and events == count and not problems
              and first["status"] == 0 and 0 < at_kill < count)
        print(f"  round {round_no}: killed with {at_kill}/{count} upgraded; retry answered {status} after "
              f"{time.time() - started:.1f} s ({conflicts} × 409 while the lease ran out); "
              f"{upgraded()} on version {target}, {events} upgrade events, {len(problems)} invariant violations"
              f" -> {'ok' if ok else 'FAILED'}")
        for p in problems[:10]:
            print("   ", p)
        failed = failed or not ok
        a.start()
finally:
    a.stop()
    b.stop()
    db.drop()
sys.exit(1 if failed else 0)
