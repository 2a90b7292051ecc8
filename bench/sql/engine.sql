-- The statement uplift's engine sends per item on PostgreSQL (src/upgrade/postgres.rs),
-- with its bound values written in: one round trip, its own transaction.
WITH cur AS (
    SELECT d.id, d.version, d.app_id, a.system_name
    FROM deployments d
    JOIN apps a ON a.id = d.app_id
    WHERE d.id = (SELECT id FROM bench_ids WHERE n = (SELECT nextval('bench_seq'))) AND d.tenant_id = :tenant AND d.folder_id = :folder
    FOR UPDATE OF d
),
target AS (
    SELECT v.version, v.published_at
    FROM app_versions v
    JOIN cur ON v.app_id = cur.app_id
    WHERE v.published AND (NULL::integer IS NULL OR v.version = NULL::integer)
    ORDER BY v.version DESC
    LIMIT 1
    FOR SHARE OF v
),
moved AS (
    UPDATE deployments d
    SET version = target.version, updated_at = GREATEST(now(), target.published_at)
    FROM cur, target
    WHERE d.id = cur.id AND target.version > cur.version
    RETURNING d.id, cur.version AS from_version, target.version AS to_version, d.updated_at
),
recorded AS (
    INSERT INTO deployment_events
        (tenant_id, deployment_id, kind, from_version, to_version, actor, request_id, created_at)
    SELECT :tenant, moved.id, 'upgrade', moved.from_version, moved.to_version, 'pgbench', NULL, moved.updated_at
    FROM moved
)
SELECT cur.system_name, cur.version AS current_version,
       (SELECT version FROM target) AS target_version
FROM cur;
