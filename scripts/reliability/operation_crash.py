#!/usr/bin/env python3
"""Durable operations with two real replicas on one PostgreSQL database (issue 14,
point 10):

1. kill -9: an operation over ITEMS deployments is created on replica A; once it
   runs, the replica holding its lease (`operations.lease_owner` names its pid) is
   killed with SIGKILL. The other must take it over when the lease lapses and finish
   it: Succeeded, counters exact (total = updated, nothing pending or running),
   exactly one `upgrade` event per deployment to the target with the operation's id,
   the invariants holding, and a take-over on the survivor's /metrics.
2. SIGSTOP: a second operation; the replica holding it is paused past its lease, the
   other takes over, the paused one is resumed with SIGCONT. It must write nothing
   under the generation it lost, and the operation must finish exactly once.

Who wrote what is proven from the database itself: each replica connects with its own
`application_name`, and triggers (created in the scratch database by this script,
not by uplift) log every lease change, item settlement and `upgrade` event with the
writing session's name, transaction id and `clock_timestamp()`. An item's row does
not name the generation that settles it (a claim writes nothing to its items), so the
audit puts the newest generation the writing replica had claimed beside each
settlement. The fencing rule is then checked row by row: every item settled under
generation g was settled by the replica that claimed g, before anyone claimed g + 1.
(A replica that lost g and later claimed g + 2 would have a late write under g
counted under g + 2; here the other replica holds the operation to its end once it
took it over, so the paused one cannot claim it again.)

Usage: operation_crash.py BINARY [ITEMS]   (default 20000)"""
import re
import signal
import sys
import time
import urllib.request
import uuid

from common import ScratchDatabase, Server, call, invariant_violations, psql, seed_deployments, setup_tenant

binary = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
LEASE = 3
# Batches of half the items: the replica found holding the operation at 15% done is in
# the middle of its batch, with items in flight, when it is killed or paused (and the
# lease cannot move between the look and the signal by a normal release).
settings = dict(operation_lease_seconds=LEASE, operation_batch_items=max(500, count // 2),
                max_operation_items=max(count, 100000), log="warn,uplift::operations=info")

AUDIT = """
CREATE TABLE crash_audit (
    id bigserial PRIMARY KEY, what text NOT NULL, app text NOT NULL, txid bigint NOT NULL,
    generation bigint, seq integer, deployment_id text, status text, owner text,
    operation_id text, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE INDEX ON crash_audit (operation_id, what, txid);
CREATE FUNCTION crash_audit_lease() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO crash_audit (what, app, txid, generation, owner, operation_id)
    VALUES ('lease', current_setting('application_name'), txid_current(), NEW.lease_generation,
            NEW.lease_owner, NEW.id);
    RETURN NEW; END $$;
CREATE TRIGGER crash_audit_lease AFTER UPDATE ON operations FOR EACH ROW
    WHEN (OLD.lease_generation IS DISTINCT FROM NEW.lease_generation) EXECUTE FUNCTION crash_audit_lease();
CREATE FUNCTION crash_audit_item() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO crash_audit (what, app, txid, generation, seq, deployment_id, status, operation_id)
    VALUES ('item', current_setting('application_name'), txid_current(),
            (SELECT max(generation) FROM crash_audit WHERE what = 'lease' AND operation_id = NEW.operation_id
                AND app = current_setting('application_name')),
            NEW.seq, NEW.deployment_id, NEW.status, NEW.operation_id);
    RETURN NEW; END $$;
CREATE TRIGGER crash_audit_item AFTER UPDATE ON operation_items FOR EACH ROW
    WHEN (OLD.status IN ('pending', 'running') AND NEW.status NOT IN ('pending', 'running'))
    EXECUTE FUNCTION crash_audit_item();
CREATE FUNCTION crash_audit_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO crash_audit (what, app, txid, deployment_id, operation_id)
    VALUES ('event', current_setting('application_name'), txid_current(), NEW.deployment_id, NEW.operation_id);
    RETURN NEW; END $$;
CREATE TRIGGER crash_audit_event AFTER INSERT ON deployment_events FOR EACH ROW
    WHEN (NEW.kind = 'upgrade') EXECUTE FUNCTION crash_audit_event();
"""


def scalar(db_url, sql):
    return psql(db_url, sql)[0][0]


def takeovers(server):
    with urllib.request.urlopen(server.base + "/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(r"^uplift_operation_lease_takeovers_total (\d+)", text, re.M)
    return int(found.group(1)) if found else 0


class Replica(Server):
    def __init__(self, name, db_url):
        super().__init__(binary, f"{db_url}?application_name={name}", **settings)
        self.name = name


def fencing_violations(db_url, op):
    """Items settled (and events written) other than by the current holder of the
    generation they were settled under."""
    problems = []
    # Fresh statistics first: autovacuum has not seen these rows yet, and a plan made for
    # an empty table turns these anti-joins into nested loops over every pair.
    psql(db_url, "ANALYZE")
    # Every item settled under g: by the session that claimed g, before g + 1 existed.
    for row in psql(db_url, f"""
        WITH claims AS (
            SELECT generation, app, at, LEAD(at) OVER (ORDER BY generation) AS superseded_at
            FROM crash_audit WHERE what = 'lease' AND operation_id = '{op}')
        SELECT i.seq, i.app, i.generation, c.app, i.at, c.superseded_at
        FROM crash_audit i LEFT JOIN claims c ON c.generation = i.generation
        WHERE i.what = 'item' AND i.operation_id = '{op}'
          AND i.status IN ('updated', 'unchanged', 'failed')
          AND (c.app IS NULL OR c.app <> i.app OR (c.superseded_at IS NOT NULL AND i.at >= c.superseded_at))"""):
        problems.append(f"item {row[0]} settled by {row[1]} under generation {row[2]} (claimed by {row[3]}) at {row[4]}, "
                        f"generation superseded at {row[5]}")
    # Every upgrade event of the operation was written in the transaction that settled its item.
    for row in psql(db_url, f"""
        SELECT e.deployment_id, e.app, e.at FROM crash_audit e
        WHERE e.what = 'event' AND e.operation_id = '{op}'
          AND NOT EXISTS (SELECT 1 FROM crash_audit i WHERE i.operation_id = '{op}' AND i.what = 'item'
                          AND i.txid = e.txid
                          AND i.deployment_id = e.deployment_id AND i.status = 'updated')"""):
        problems.append(f"event for {row[0]} by {row[1]} at {row[2]} without its item's settlement")
    return problems


def event_problems(db_url, op, target, total):
    """Exactly one upgrade event to `target` per item's deployment, all with `op`."""
    problems = []
    psql(db_url, "ANALYZE")  # see fencing_violations
    per = psql(db_url, f"""
        SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n > 1), COALESCE(sum(n), 0)
        FROM (SELECT e.deployment_id, count(*) AS n FROM deployment_events e
              WHERE e.kind = 'upgrade' AND e.to_version = {target} GROUP BY 1) t""")[0]
    once, twice, events = map(int, per)
    with_op = int(scalar(db_url, f"SELECT count(*) FROM deployment_events WHERE kind = 'upgrade' "
                                 f"AND to_version = {target} AND operation_id = '{op}'"))
    missing = int(scalar(db_url, f"""SELECT count(*) FROM operation_items i WHERE i.operation_id = '{op}'
        AND NOT EXISTS (SELECT 1 FROM deployment_events e WHERE e.deployment_id = i.deployment_id
                        AND e.kind = 'upgrade' AND e.to_version = {target} AND e.operation_id = '{op}')"""))
    on_target = int(scalar(db_url, f"SELECT count(*) FROM deployments WHERE version = {target}"))
    if once != total or twice or events != total or with_op != total or missing or on_target != total:
        problems.append(f"{once} deployments with one upgrade event to {target}, {twice} with more, {events} events "
                        f"({with_op} with the operation's id), {missing} items without their event, "
                        f"{on_target} deployments on {target}; expected {total} of each")
    return problems


def holder(db_url, op, replicas):
    """The replica whose pid `operations.lease_owner` names (owner is host:pid:uuid), or None."""
    rows = psql(db_url, f"SELECT lease_owner, lease_generation FROM operations WHERE id = '{op}'")
    owner = rows[0][0] if rows and rows[0][0] else ""
    for r in replicas:
        if r.process and f":{r.process.pid}:" in owner:
            return r, int(rows[0][1])
    return None, None


def monitor(server, token, folder, op):
    status, body = call(server.base, "GET", f"/operations/{op}", token, folder=folder)
    assert status == 200, (status, body)
    return body


def settled(counters):
    return sum(counters[k] for k in ("updated", "unchanged", "failed", "skipped", "canceled"))


def wait_finished(server, token, folder, op, timeout):
    deadline = time.monotonic() + timeout
    while True:
        m = monitor(server, token, folder, op)
        c = m["counters"]
        assert c["total"] == sum(c[k] for k in ("pending", "running", "updated", "unchanged", "failed", "skipped",
                                                "canceled")), m
        if m["status"] in ("Succeeded", "Failed", "Canceled"):
            return m
        if time.monotonic() > deadline:
            raise RuntimeError(f"operation {op} not finished after {timeout} s: {m}")
        time.sleep(0.2)


def wait_running_on(db_url, server, token, folder, op, replicas, fraction):
    """Until `fraction` of the items settled; the replica holding the lease then, and
    the figures (settled, items/s since `since`)."""
    started = time.time()
    while True:
        c = monitor(server, token, folder, op)["counters"]
        if settled(c) >= count * fraction:
            found, generation = holder(db_url, op, replicas)
            if found:
                return found, generation, settled(c), settled(c) / (time.time() - started)
        if time.time() - started > 120:
            raise RuntimeError(f"operation {op} made no progress: {c}")
        time.sleep(0.05)


def claimed_by_other(db_url, op, generation, name):
    rows = psql(db_url, f"SELECT app, extract(epoch FROM at), generation FROM crash_audit WHERE what = 'lease' "
                        f"AND operation_id = '{op}' AND generation > {generation} AND app <> '{name}' "
                        f"ORDER BY generation LIMIT 1")
    return (float(rows[0][1]), int(rows[0][2]), rows[0][0]) if rows else None


def rate_between(db_url, op, since, until=None):
    """Items settled per second between two epoch times (from the audit's clock)."""
    until_sql = f"AND at < to_timestamp({until})" if until else ""
    row = psql(db_url, f"""SELECT count(*), extract(epoch FROM max(at) - min(at)) FROM crash_audit
        WHERE what = 'item' AND operation_id = '{op}' AND at >= to_timestamp({since}) {until_sql}""")[0]
    n, span = int(row[0]), float(row[1] or 0)
    return n / span if span > 0 else 0.0


def publish(server, token, package, version):
    """Publishes `version` of `package` through `server`: the published version's body."""
    status, body = call(server.base, "POST", "/models/apps/codedapp/publish", token,
                        body={"packageName": package, "packageVersion": version})
    assert status == 200, body
    return body


def settled_items(db_url, op):
    """How many of the operation's items the audit has seen settled."""
    return int(scalar(db_url, f"SELECT count(*) FROM crash_audit WHERE what = 'item' AND operation_id = '{op}'"))


def lease_generation(db_url, op):
    return int(scalar(db_url, f"SELECT lease_generation FROM operations WHERE id = '{op}'"))


def wait_claimed_by_other(db_url, op, generation, name, since):
    """Another replica's claim of the operation (as `claimed_by_other`), waited for up to
    ten leases after `since`; None if none came."""
    took = None
    while took is None and time.time() - since < LEASE * 10:
        took = claimed_by_other(db_url, op, generation, name)
        time.sleep(0.05)
    return took


def finished_problems(db_url, done, op, target, count):
    """What is wrong with a finished operation over `count` deployments upgraded to
    `target`: its monitor, its events, the fencing rule and the invariants."""
    c = done["counters"]
    problems = []
    if done["status"] != "Succeeded" or c["total"] != count or c["updated"] != count or c["pending"] or c["running"]:
        problems.append(f"monitor: {done['status']} {c}")
    problems += event_problems(db_url, op, target, count)
    problems += fencing_violations(db_url, op)
    problems += invariant_violations(db_url)
    return problems


def create_operation(server, token, folder, ids):
    status, body = call(server.base, "POST", "/operations/upgrades", token, folder=folder,
                        body={"deploymentIds": ids, "maxConcurrency": 8})
    assert status == 202, (status, body)
    assert body["counters"]["total"] == len(ids), body
    return body["id"], time.time()


# A SIGTERM (CI's timeout) still stops the replicas and drops the database.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
db = ScratchDatabase()
a, b = Replica("replica-a", db.url), Replica("replica-b", db.url)
replicas = [a, b]
failures = []
try:
    a.start()
    b.start()
    psql(db.url, AUDIT)
    folder, folder_id, token = setup_tenant(a)
    package = "OpCrash " + uuid.uuid4().hex[:6]
    body = publish(a, token, package, "1.0.0")
    app_id = scalar(db.url, f"SELECT id FROM apps WHERE system_name = '{body['systemName']}'")
    started = time.time()
    ids = seed_deployments(db.url, folder_id, app_id, 1, count)
    print(f"operation crash: {count} deployments seeded in {time.time() - started:.1f} s; lease {LEASE} s, "
          f"batches of {settings['operation_batch_items']}, two replicas")

    # ------------------------------------------------------------ 1. kill -9 of the holder
    target = publish(b, token, package, "1.1.0")["deployVersion"]
    op, created = create_operation(a, token, folder, ids)
    victim, generation, at_kill, rate_before = wait_running_on(db.url, a, token, folder, op, replicas, 0.15)
    survivor = b if victim is a else a
    before_takeovers = takeovers(survivor)
    killed_at = time.time()
    victim.kill9()
    at_kill = settled_items(db.url, op)
    # The generation still current when it died must be the victim's (else the lease
    # moved between the look and the kill, and this would not test a take-over).
    current = lease_generation(db.url, op)
    raced = current != generation
    took = wait_claimed_by_other(db.url, op, generation, victim.name, killed_at)
    done = wait_finished(survivor, token, folder, op, 600)
    finished_at = time.time()
    c = done["counters"]
    problems = []
    if raced:
        problems.append(f"the lease moved from generation {generation} to {current} before the kill landed")
    if took is None:
        problems.append("no other replica claimed the operation after the kill")
    problems += finished_problems(db.url, done, op, target, count)
    gained = takeovers(survivor) - before_takeovers
    if gained < 1:
        problems.append(f"{survivor.name}'s /metrics shows no take-over (uplift_operation_lease_takeovers_total +{gained})")
    rate_after = rate_between(db.url, op, took[0]) if took else 0.0
    print(f"  kill -9: {victim.name} (pid {victim.process.pid}) killed holding generation {generation} with "
          f"{at_kill}/{count} settled ({rate_before:.0f} items/s before); {survivor.name} took over "
          f"{(took[0] - killed_at) if took else float('nan'):.2f} s after the kill (generation "
          f"{took[1] if took else '?'}), then {rate_after:.0f} items/s; finished {finished_at - created:.1f} s after "
          f"the 202: {done['status']}, {c}; take-overs on {survivor.name}'s /metrics +{gained}"
          f" -> {'ok' if not problems else 'FAILED'}")
    for p in problems[:20]:
        print("   ", p)
    failures += problems
    victim.start()

    # ------------------------------------------------------------ 2. SIGSTOP past the lease, SIGCONT
    target = publish(a, token, package, "1.2.0")["deployVersion"]
    op, created = create_operation(b, token, folder, ids)
    paused, generation, at_stop, rate_before = wait_running_on(db.url, b, token, folder, op, replicas, 0.15)
    other = b if paused is a else a
    before_takeovers = takeovers(other)
    stopped_at = time.time()
    paused.process.send_signal(signal.SIGSTOP)
    time.sleep(0.1)  # what was in flight at the signal has landed
    at_stop = settled_items(db.url, op)
    current = lease_generation(db.url, op)
    raced = current != generation
    took = wait_claimed_by_other(db.url, op, generation, paused.name, stopped_at)
    # Past the take-over, a little longer: the other replica is writing meanwhile.
    time.sleep(1.0)
    paused_rows = int(scalar(db.url, f"SELECT count(*) FROM crash_audit WHERE app = '{paused.name}' "
                                     f"AND what <> 'lease' AND operation_id = '{op}'"))
    resumed_at = time.time()
    paused.process.send_signal(signal.SIGCONT)
    done = wait_finished(other, token, folder, op, 600)
    finished_at = time.time()
    time.sleep(LEASE)  # whatever the resumed replica still had to send has been sent
    c = done["counters"]
    problems = []
    if raced:
        problems.append(f"the lease moved from generation {generation} to {current} before SIGSTOP landed")
    if took is None:
        problems.append("no other replica claimed the operation while the holder was paused")
    # Nothing under the lost generation once it was superseded (the resumed replica
    # may claim the operation again later, under a new generation).
    late = psql(db.url, f"""SELECT count(*) FROM crash_audit WHERE app = '{paused.name}' AND what = 'item'
        AND operation_id = '{op}' AND generation = {generation}
        AND at >= (SELECT min(at) FROM crash_audit WHERE what = 'lease' AND operation_id = '{op}'
                   AND generation > {generation})""")[0][0]
    after_resume = psql(db.url, f"""SELECT count(*), count(*) FILTER (WHERE generation <= {generation})
        FROM crash_audit WHERE app = '{paused.name}' AND what = 'item' AND operation_id = '{op}'
        AND at >= to_timestamp({resumed_at})""")[0]
    if int(late):
        problems.append(f"{late} items settled by {paused.name} under generation {generation} after the take-over")
    if int(after_resume[1]):
        problems.append(f"{after_resume[1]} items settled by {paused.name} under its old generation after SIGCONT")
    problems += finished_problems(db.url, done, op, target, count)
    gained = takeovers(other) - before_takeovers
    if gained < 1:
        problems.append(f"{other.name}'s /metrics shows no take-over (+{gained})")
    with open(paused.log_path, errors="replace") as f:
        noticed = "this worker stops writing" in f.read()
    rate_after = rate_between(db.url, op, took[0], resumed_at) if took else 0.0
    print(f"  SIGSTOP: {paused.name} paused holding generation {generation} with {at_stop}/{count} settled "
          f"({rate_before:.0f} items/s before); {other.name} took over {(took[0] - stopped_at) if took else float('nan'):.2f}"
          f" s after the pause ({rate_after:.0f} items/s while it was paused); SIGCONT after "
          f"{resumed_at - stopped_at:.1f} s; {paused.name} wrote {paused_rows} rows before the take-over, "
          f"{after_resume[0]} after SIGCONT ({after_resume[1]} under its old generation), its log "
          f"{'says' if noticed else 'does not say'} it stopped writing; finished {finished_at - created:.1f} s after "
          f"the 202: {done['status']}, {c} -> {'ok' if not problems else 'FAILED'}")
    for p in problems[:20]:
        print("   ", p)
    failures += problems
finally:
    for r in replicas:
        if r.process and r.process.poll() is None:
            r.process.send_signal(signal.SIGCONT)
        try:
            r.stop()
        except Exception:  # noqa: BLE001 - cleaning up after a failure
            r.process.kill()
    db.drop()
sys.exit(1 if failures else 0)
