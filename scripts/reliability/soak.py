#!/usr/bin/env python3
"""Two uplift replicas on one PostgreSQL database, driven for a while by many clients
mixing overlapping bulk upgrades (some dry runs, some with a failure budget, some
keyed and retried), publishes, unpublishes, edits, rollbacks and reads. Afterwards
the invariants are checked straight from the database.

Usage: soak.py BINARY SECONDS [CLIENTS]"""
import collections
import random
import sys
import threading
import time
import uuid

from common import ScratchDatabase, Server, call, invariant_violations, setup_tenant

binary, seconds = sys.argv[1], float(sys.argv[2])
clients = int(sys.argv[3]) if len(sys.argv) > 3 else 16
DEPLOYMENTS = 80

db = ScratchDatabase()
replicas = [Server(binary, db.url, max_bulk_items=5000, lock_timeout_ms=500) for _ in range(2)]
stats = collections.Counter()
lock = threading.Lock()
try:
    for replica in replicas:
        replica.start()
    folder, _, token = setup_tenant(replicas[0])
    package = "Soak " + uuid.uuid4().hex[:6]
    published = []  # integer versions published and never unpublished by us
    minor = [0]

    def publish(base):
        with lock:
            minor[0] += 1
            label = f"1.{minor[0]}.0"
        status, body = call(base, "POST", "/models/apps/codedapp/publish", token,
                            body={"packageName": package, "packageVersion": label})
        if status == 200:
            with lock:
                published.append(body["deployVersion"])
            return body["systemName"]
        return None

    system_name = publish(replicas[0].base)
    ids = []
    for i in range(DEPLOYMENTS):
        status, body = call(replicas[i % 2].base, "POST", f"/models/{system_name}/publish/versions/1/deploy", token,
                            folder=folder)
        assert status == 200, (status, body)
        ids.append(body["id"])

    def record(action, status, body=None):
        with lock:
            stats["requests"] += 1
            stats[f"{status // 100}xx" if status else "no answer"] += 1
            if status >= 500 or status == 0:
                stats["server errors"] += 1
                print(f"  {action}: {status} {body}", flush=True)
            if action == "bulk" and status == 200:
                stats["items upgraded"] += sum(u["version"] != u["previousVersion"] for u in body["updatedDeployments"])
                stats["conflicts"] += sum(f["code"] == "conflict" for f in body["failures"])

    def client(n):
        rng = random.Random(n)
        deadline = time.time() + seconds
        while time.time() < deadline:
            base = replicas[rng.randrange(2)].base
            roll = rng.random()
            if roll < 0.40:
                subset = rng.sample(ids, rng.randint(5, 40))
                query, action = "", "bulk"
                if rng.random() < 0.15:
                    query, action = "?dryRun=true", "bulk dry run"
                elif rng.random() < 0.15:
                    query = f"?maxFailures={rng.randint(1, 3)}"
                # Dry runs never store an answer, so only real calls are keyed and retried.
                key = f"soak-{n}-{rng.random()}" if action == "bulk" and rng.random() < 0.2 else None
                status, body = call(base, "POST", "/models/deployed/apps/updateToLatestAppVersionBulk" + query, token,
                                    folder=folder, body={"deploymentIds": subset}, key=key)
                record(action, status, body)
                if key and status == 200:
                    other = replicas[rng.randrange(2)].base
                    again, replay = call(other, "POST", "/models/deployed/apps/updateToLatestAppVersionBulk" + query,
                                         token, folder=folder, body={"deploymentIds": subset}, key=key)
                    record("bulk retry", again, replay)
                    if again == 200 and replay != body:
                        with lock:
                            stats["replay mismatches"] += 1
            elif roll < 0.45:
                record("publish", 200 if publish(base) else 500)
            elif roll < 0.50:
                with lock:
                    candidates = sorted(published)[:-1]  # never the newest, so one always stays
                    version = rng.choice(candidates) if candidates else None
                    if version is not None:
                        published.remove(version)
                if version is not None:
                    status, body = call(base, "DELETE", f"/models/{system_name}/publish/versions/{version}", token)
                    record("unpublish", status, body)
            elif roll < 0.65:
                with lock:
                    version = rng.choice(published)
                status, body = call(base, "PATCH", f"/models/deployed/apps/{rng.choice(ids)}", token, folder=folder,
                                    body={"version": version, "title": f"edited by {n}", "tags": [f"t{n}"]})
                record("edit", status, body)
            elif roll < 0.75:
                status, body = call(base, "POST", f"/models/deployed/apps/{rng.choice(ids)}/rollback", token, folder=folder)
                record("rollback", status, body)
            elif roll < 0.87:
                status, body = call(base, "GET", f"/models/deployed/apps/{rng.choice(ids)}/history?top=5", token,
                                    folder=folder)
                record("history", status, body)
            else:
                status, body = call(base, "GET", "/models/deployed/apps?top=50&orderBy=version%20desc", token,
                                    folder=folder)
                record("list", status, body)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - started
    violations = invariant_violations(db.url)
    events = int(__import__("common").psql(db.url, "SELECT count(*) FROM deployment_events")[0][0])
    print(f"soak: {seconds:.0f} s, {clients} clients, 2 replicas, {DEPLOYMENTS} deployments")
    print(f"  requests done: {stats['requests']} ({stats['requests'] / elapsed:.0f}/s): "
          f"2xx {stats['2xx']}, 4xx {stats['4xx']}, 5xx {stats['5xx']}, no answer {stats['no answer']}")
    print(f"  items upgraded: {stats['items upgraded']}, conflicts: {stats['conflicts']}, "
          f"versions published: {minor[0]}, events written: {events}")
    print(f"  replayed answers that differed: {stats['replay mismatches']}")
    print(f"  invariant violations: {len(violations)}")
    for v in violations[:20]:
        print("   ", v)
    failed = violations or stats["server errors"] or stats["replay mismatches"]
finally:
    for replica in replicas:
        replica.stop()
    db.drop()
sys.exit(1 if failed else 0)
