-- The naive per-item transaction of issue 8: lock one row FOR UPDATE, update it, insert
-- one audit row; five round trips (BEGIN, SELECT, UPDATE, INSERT, COMMIT). Each
-- transaction takes the next deployment from bench_seq, so every row is done once.
BEGIN;
SELECT version FROM deployments
 WHERE id = (SELECT id FROM bench_ids WHERE n = (SELECT nextval('bench_seq'))) FOR UPDATE;
UPDATE deployments SET version = 3, updated_at = now()
 WHERE id = (SELECT id FROM bench_ids WHERE n = (SELECT currval('bench_seq')));
INSERT INTO deployment_events (tenant_id, deployment_id, kind, from_version, to_version, actor, request_id, created_at)
VALUES (:tenant, (SELECT id FROM bench_ids WHERE n = (SELECT currval('bench_seq'))), 'upgrade', 1, 3, 'pgbench', NULL, now());
END;
