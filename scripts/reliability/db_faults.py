#!/usr/bin/env python3
"""PostgreSQL restarted in the middle of a bulk call, on a private cluster this script
starts and stops itself (never the shared server): the call answers 200 with the items
that met the outage failed (internal or conflict) and the rest upgraded, /readyz says
503 while the database is away, and the same uplift process then serves a retry that
finishes the work, without being restarted.

Usage: db_faults.py BINARY [IDS]"""
import sys
import threading
import time
import uuid

from common import PrivateCluster, Server, call, invariant_violations, psql, seed_deployments, setup_tenant

binary = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
cluster = PrivateCluster()
url = cluster.url
server = Server(binary, url, max_bulk_items=count, max_body_bytes=count * 64 + 4096, upgrade_concurrency=1)
failed = True
try:
    server.start()
    folder, folder_id, token = setup_tenant(server)
    package = "Faults " + uuid.uuid4().hex[:6]
    status, body = call(server.base, "POST", "/models/apps/codedapp/publish", token,
                        body={"packageName": package, "packageVersion": "1.0.0"})
    app_id = psql(url, f"SELECT id FROM apps WHERE system_name = '{body['systemName']}'")[0][0]
    ids = seed_deployments(url, folder_id, app_id, 1, count)
    call(server.base, "POST", "/models/apps/codedapp/publish", token, body={"packageName": package, "packageVersion": "1.1.0"})
    answer = {}

    def bulk():
        answer["status"], answer["body"] = call(server.base, "POST", "/models/deployed/apps/updateToLatestAppVersionBulk",
                                                token, folder=folder, body={"deploymentIds": ids})

    thread = threading.Thread(target=bulk)
    thread.start()
    upgraded = lambda: int(psql(url, f"SELECT count(*) FROM deployments WHERE app_id = {app_id} AND version = 2")[0][0])
    while upgraded() < count // 10:
        time.sleep(0.02)
    cluster.stop()
    ready_while_down = {server.ready() for _ in range(10) if not time.sleep(0.2)}
    cluster.start()
    thread.join()
    body = answer["body"] or {}
    codes = {}
    for f in body.get("failures", []):
        codes[f["code"]] = codes.get(f["code"], 0) + 1
    updated = len(body.get("updatedDeployments", []))
    ready_after = None
    for _ in range(50):
        ready_after = server.ready()
        if ready_after == 200:
            break
        time.sleep(0.2)
    retry_status, retry = call(server.base, "POST", "/models/deployed/apps/updateToLatestAppVersionBulk", token,
                               folder=folder, body={"deploymentIds": ids})
    problems = invariant_violations(url)
    events = int(psql(url, "SELECT count(*) FROM deployment_events WHERE kind = 'upgrade'")[0][0])
    print(f"db faults: PostgreSQL stopped and restarted during a {count}-id bulk call (one uplift process)")
    print(f"  the call answered {answer['status']}: {updated} updated, failures by code {codes}")
    print(f"  /readyz while the database was down: {sorted(s for s in ready_while_down if s)}; after: {ready_after}")
    print(f"  retry on the same process: {retry_status}, {len(retry.get('failedItems', [])) if retry else '?'} failed; "
          f"{upgraded()}/{count} on the new version, {events} upgrade events, {len(problems)} invariant violations")
    for p in problems[:10]:
        print("   ", p)
    failed = not (answer["status"] == 200 and set(codes) <= {"internal", "conflict"} and sum(codes.values()) > 0
                  and 503 in ready_while_down and ready_after == 200 and retry_status == 200
                  and not retry["failedItems"] and upgraded() == count and events == count and not problems
                  and server.process.poll() is None)
    print("  ->", "FAILED" if failed else "ok")
finally:
    server.stop()
    cluster.destroy()
sys.exit(1 if failed else 0)
