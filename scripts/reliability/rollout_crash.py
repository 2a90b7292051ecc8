#!/usr/bin/env python3
"""Progressive rollouts with two real replicas on one PostgreSQL database (issue 15,
point 8): a two-wave rollout over COUNT deployments, with a bake between the waves.

1. kill -9 during a wave: once wave 0's operation runs, the replica holding its lease
   (`operations.lease_owner` names its pid) is killed; the other takes the operation
   over when the lease lapses, and its driver moves the rollout on.
2. kill -9 during the bake: the rollout is Baking with a stored deadline; a replica is
   killed (then started again). The deadline must not move, and wave 1 must start
   only after it, driven by whichever replica is alive.

At the end the rollout must be Succeeded with every deployment on the target version
and exactly one `upgrade` event each, and the database invariants holding.

Usage: rollout_crash.py BINARY [COUNT]   (default 3000)"""
import signal
import sys
import time
import uuid
from datetime import datetime

from common import ScratchDatabase, Server, call, invariant_violations, psql, seed_deployments, setup_tenant

binary = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
LEASE = 3
BAKE = 6
settings = dict(operation_lease_seconds=LEASE, operation_batch_items=max(100, count // 8),
                log="warn,uplift::operations=info")


class Replica(Server):
    def __init__(self, name, db_url):
        super().__init__(binary, f"{db_url}?application_name={name}", **settings)
        self.name = name


def scalar(db_url, sql):
    return psql(db_url, sql)[0][0]


def rollout(server, token, rid):
    status, body = call(server.base, "GET", f"/rollouts/{rid}", token)
    assert status == 200, (status, body)
    return body


def alive(replicas):
    return next(r for r in replicas if r.process and r.process.poll() is None)


def holder(db_url, op, replicas):
    rows = psql(db_url, f"SELECT lease_owner FROM operations WHERE id = '{op}'")
    owner = rows[0][0] if rows and rows[0][0] else ""
    for r in replicas:
        if r.process and f":{r.process.pid}:" in owner:
            return r
    return None


def wait(replicas, token, rid, predicate, what, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        body = rollout(alive(replicas), token, rid)
        if predicate(body):
            return body
        if time.monotonic() > deadline:
            raise RuntimeError(f"rollout {rid}: not {what} after {timeout} s: {body['status']} {body.get('reason')}")
        time.sleep(0.1)


def parse(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
db = ScratchDatabase()
a, b = Replica("replica-a", db.url), Replica("replica-b", db.url)
replicas = [a, b]
problems = []
try:
    a.start()
    b.start()
    folder, folder_id, token = setup_tenant(a)
    package = "RolloutCrash " + uuid.uuid4().hex[:6]
    status, body = call(a.base, "POST", "/models/apps/codedapp/publish", token,
                        body={"packageName": package, "packageVersion": "1.0.0"})
    assert status == 200, body
    app_id = scalar(db.url, f"SELECT id FROM apps WHERE system_name = '{body['systemName']}'")
    seed_deployments(db.url, folder_id, app_id, 1, count)
    status, body = call(b.base, "POST", "/models/apps/codedapp/publish", token,
                        body={"packageName": package, "packageVersion": "1.1.0"})
    target = body["deployVersion"]
    started = time.time()
    status, created = call(a.base, "POST", "/rollouts", token, body={
        "name": "crash", "waves": [
            {"name": "first", "size": "40%", "maxConcurrency": 8, "bakeSeconds": BAKE},
            {"name": "rest", "maxConcurrency": 8}]})
    assert status == 201, (status, created)
    rid = created["id"]
    sizes = [len(w["deploymentIds"]) for w in created["waves"]]
    print(f"rollout crash: {count} deployments, waves {sizes}, bake {BAKE} s, lease {LEASE} s, two replicas")

    # ------------------------------------------------------------ 1. kill -9 during wave 0
    running = wait(replicas, token, rid, lambda r: r["status"] == "Running" and r["waves"][0]["counters"]
                   and r["waves"][0]["counters"]["updated"] >= sizes[0] * 0.15, "15% into wave 0")
    op = running["waves"][0]["operationId"]
    victim = None
    deadline = time.monotonic() + 30
    while victim is None and time.monotonic() < deadline:
        victim = holder(db.url, op, replicas)
        time.sleep(0.01)
    if victim is None:
        problems.append("nobody held wave 0's operation")
    else:
        done_at_kill = rollout(alive(replicas), token, rid)["waves"][0]["counters"]["updated"]
        victim.kill9()
        killed = time.time()
        print(f"  kill -9 during wave 0: {victim.name} killed holding {op} with {done_at_kill}/{sizes[0]} updated")
    baking = wait(replicas, token, rid, lambda r: r["status"] in ("Baking", "Running") and r["waves"][0]["status"] != "Running"
                  and r["waves"][0]["finishedAt"], "past wave 0")
    if victim:
        print(f"    the other replica finished wave 0 {time.time() - killed:.1f} s after the kill: {baking['waves'][0]['counters']}")
        victim.start()

    # ------------------------------------------------------------ 2. kill -9 during the bake
    baking = rollout(alive(replicas), token, rid)
    if baking["status"] != "Baking":
        problems.append(f"expected Baking after wave 0, found {baking['status']}")
    bake_until = baking["bakeUntil"]
    victim2 = a
    victim2.kill9()
    print(f"  kill -9 during the bake: {victim2.name} killed; bakeUntil {bake_until}")
    moved_on = wait(replicas, token, rid, lambda r: r["status"] != "Baking", "past the bake", timeout=BAKE * 10)
    victim2.start()
    if moved_on["bakeUntil"] not in (None, bake_until):
        problems.append(f"the bake deadline moved: {bake_until} -> {moved_on['bakeUntil']}")
    wave1 = moved_on["waves"][1]
    if not wave1["startedAt"] or parse(wave1["startedAt"]) < parse(bake_until):
        problems.append(f"wave 1 started at {wave1['startedAt']}, before the bake ended at {bake_until}")
    else:
        late = (parse(wave1["startedAt"]) - parse(bake_until)).total_seconds()
        print(f"    wave 1 started {late:.2f} s after the stored deadline, on the surviving replica")

    done = wait(replicas, token, rid, lambda r: r["status"] in ("Succeeded", "Paused", "Failed"), "finished", timeout=600)
    elapsed = time.time() - started
    if done["status"] != "Succeeded":
        problems.append(f"rollout {done['status']}: {done.get('reason')}")
    per = psql(db.url, f"""SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n > 1)
        FROM (SELECT deployment_id, count(*) AS n FROM deployment_events
              WHERE kind = 'upgrade' AND to_version = {target} GROUP BY 1) t""")[0]
    on_target = int(scalar(db.url, f"SELECT count(*) FROM deployments WHERE version = {target}"))
    if int(per[0]) != count or int(per[1]) or on_target != count:
        problems.append(f"{per[0]} deployments upgraded once, {per[1]} more than once, {on_target} on the target; expected {count}")
    problems += invariant_violations(db.url)
    kinds = [e["kind"] for e in done["timeline"]]
    print(f"  finished in {elapsed:.1f} s: {done['status']}; {per[0]}/{count} upgraded exactly once, "
          f"{per[1]} twice; timeline {kinds} -> {'ok' if not problems else 'FAILED'}")
finally:
    for r in replicas:
        r.stop()
    db.drop()
for p in problems[:20]:
    print("   ", p)
sys.exit(1 if problems else 0)
