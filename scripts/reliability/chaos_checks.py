"""The invariants scripts/chaos.py checks from the database once work has settled:
each function returns readable lines, one per violation (empty when it holds)."""
from common import invariant_violations, psql

TERMINAL_OPERATIONS = ("Succeeded", "Failed", "Canceled")
TERMINAL_ROLLOUTS = ("Succeeded", "Aborted", "RolledBack", "Failed")
# deployment_events.kind -> the outbox event type its change must have written.
EVENT_TYPE_SQL = """CASE kind WHEN 'deploy' THEN 'deployment.deployed' WHEN 'upgrade' THEN 'deployment.upgraded'
                    WHEN 'edit' THEN 'deployment.edited' WHEN 'rollback' THEN 'deployment.rolled_back' END"""


def history(db_url):
    """Chains unbroken, ending at the current version, every move onto a version
    published at that moment (common.invariant_violations)."""
    return invariant_violations(db_url)


def unfinished(db_url):
    """Operations and rollouts that are not terminal (after the settle phase)."""
    problems = [f"operation {r[0]} is still {r[1]} ({r[2]} items not settled)" for r in psql(db_url, f"""
        SELECT o.id, o.status, count(i.seq) FILTER (WHERE i.status IN ('pending', 'running'))
        FROM operations o LEFT JOIN operation_items i ON i.operation_id = o.id
        WHERE o.status NOT IN {TERMINAL_OPERATIONS} GROUP BY 1, 2""")]
    problems += [f"rollout {r[0]} is still {r[1]} (reason {r[2] or '-'})" for r in psql(db_url, f"""
        SELECT id, status, reason FROM rollouts WHERE status NOT IN {TERMINAL_ROLLOUTS}""")]
    return problems


def operation_items(db_url):
    """Each operation's items: all settled once it is terminal, and each applied at
    most once: an `updated` item has exactly one event of its operation onto its
    target, any other item (unchanged, failed, skipped, canceled, a dry run's) none."""
    problems = [f"operation {r[0]} ({r[1]}) has {r[2]} items still pending or running" for r in psql(db_url, f"""
        SELECT o.id, o.status, count(*) FROM operations o JOIN operation_items i ON i.operation_id = o.id
        WHERE o.status IN {TERMINAL_OPERATIONS} AND i.status IN ('pending', 'running') GROUP BY 1, 2""")]
    problems += [f"operation {r[0]}: total {r[1]} but {r[2]} items" for r in psql(db_url, """
        SELECT o.id, o.total, count(i.seq) FROM operations o LEFT JOIN operation_items i ON i.operation_id = o.id
        GROUP BY 1, 2 HAVING o.total <> count(i.seq)""")]
    problems += [f"operation {r[0]} item {r[1]} ({r[2]}, dry run {r[3]}) has {r[4]} events of its operation, "
                 f"{r[5]} onto its target {r[6]}" for r in psql(db_url, """
        SELECT i.operation_id, i.seq, i.status, o.dry_run, count(e.id),
               count(e.id) FILTER (WHERE e.to_version = i.to_version), i.to_version
        FROM operation_items i JOIN operations o ON o.id = i.operation_id
        LEFT JOIN deployment_events e ON e.operation_id = i.operation_id AND e.deployment_id = i.deployment_id
        GROUP BY 1, 2, 3, 4, 7
        HAVING (i.status = 'updated' AND NOT o.dry_run AND (count(e.id) <> 1 OR count(e.id) FILTER (
                    WHERE e.to_version = i.to_version) <> 1))
            OR ((i.status <> 'updated' OR o.dry_run) AND count(e.id) <> 0)""")]
    return problems


def counters(db_url, monitors):
    """The monitors' counters (read through the API) equal the items' outcomes in the
    database. `monitors`: operation id -> the monitor's counters."""
    problems = []
    by_op = {}
    for op, status, n in psql(db_url, "SELECT operation_id, status, count(*) FROM operation_items GROUP BY 1, 2"):
        by_op.setdefault(op, {})[status] = int(n)
    for op, shown in monitors.items():
        stored = by_op.get(op, {})
        expected = {k: stored.get(k, 0) for k in ("pending", "running", "updated", "unchanged", "failed", "skipped",
                                                  "canceled")}
        expected["total"] = sum(stored.values())
        if {k: shown.get(k) for k in expected} != expected:
            problems.append(f"operation {op}: monitor says {shown}, items say {expected}")
    return problems


def outbox(db_url):
    """Every committed change has exactly one outbox event and the reverse: deployment
    events against `deployment.*` outbox rows (same deployment, type, versions and
    instant), terminal operations against `operation.completed`, published and
    withdrawn versions against `app.version_*`."""
    problems = [f"deployment {r[0]}: {r[1]} {r[2]}->{r[3]} at {r[4]}: {r[5] or 0} changes, {r[6] or 0} outbox events"
                for r in psql(db_url, f"""
        WITH d AS (SELECT deployment_id, {EVENT_TYPE_SQL} AS t, COALESCE(from_version, -1) AS f, to_version AS v,
                          created_at AS c, count(*) AS n FROM deployment_events GROUP BY 1, 2, 3, 4, 5),
             w AS (SELECT deployment_id, event_type AS t, COALESCE(from_version, -1) AS f, to_version AS v,
                          created_at AS c, count(*) AS n FROM webhook_events WHERE event_type LIKE 'deployment.%'
                   GROUP BY 1, 2, 3, 4, 5)
        SELECT deployment_id, t, f, v, c, d.n, w.n FROM d FULL JOIN w USING (deployment_id, t, f, v, c)
        WHERE d.n IS DISTINCT FROM w.n""")]
    problems += [f"operation {r[0]} ({r[1]}) has {r[2]} operation.completed events" for r in psql(db_url, f"""
        SELECT o.id, o.status, count(w.seq) FROM operations o
        LEFT JOIN webhook_events w ON w.event_type = 'operation.completed' AND w.operation_id = o.id
        GROUP BY 1, 2 HAVING count(w.seq) <> CASE WHEN o.status IN {TERMINAL_OPERATIONS} THEN 1 ELSE 0 END""")]
    for kind, column in (("published", "published_at"), ("unpublished", "unpublished_at")):
        problems += [f"version {r[1]} of app {r[0]} has {r[2]} app.version_{kind} events" for r in psql(db_url, f"""
            SELECT a.system_name, v.version, count(w.seq) FROM app_versions v JOIN apps a ON a.id = v.app_id
            LEFT JOIN webhook_events w ON w.event_type = 'app.version_{kind}'
                 AND (w.data::jsonb ->> 'appSystemName') = a.system_name
                 AND (w.data::jsonb ->> 'version')::int = v.version
            WHERE v.{column} IS NOT NULL GROUP BY 1, 2 HAVING count(w.seq) <> 1""")]
    return problems


def deliveries(db_url, endpoint_id, accepted, types):
    """Every outbox event (the endpoint takes all types and folders, and existed
    before the first) was delivered: its delivery `succeeded` and the receiver
    answered 2xx to its webhook-id at least once; and every id the receiver accepted is
    an outbox event of that type (nothing for a change that was rolled back)."""
    problems = []
    rows = psql(db_url, f"""
        SELECT w.id, w.event_type, d.status, d.attempts FROM webhook_events w
        LEFT JOIN webhook_deliveries d ON d.event_seq = w.seq AND d.endpoint_id = '{endpoint_id}' AND NOT d.replay
        WHERE w.event_type <> 'webhook.test'""")
    known = {}
    for row_id, event_type, status, attempts in rows:
        event_id = "evt_" + row_id.replace("-", "")  # its webhook-id (src/webhooks/message.rs)
        known[event_id] = event_type
        if status != "succeeded" or not accepted.get(event_id):
            problems.append(f"event {event_id} ({event_type}): delivery {status or 'missing'} after {attempts or 0} "
                            f"attempts, receiver accepted it {accepted.get(event_id, 0)} times")
    for event_id, event_type in types.items():
        if known.get(event_id) != event_type and event_type != "webhook.test":
            problems.append(f"the receiver accepted {event_id} ({event_type}), which is not an outbox event "
                            f"({known.get(event_id) or 'no such row'})")
    return problems
