-- The authorisation read of a call (`access::authorize_folder`): the folder named by the
-- folder header with the caller's grants on it or tenant-wide, one round trip.
SELECT f.id, f.key, f.tenant_id, f.name, f.parent_id, f.region, f.created_at,
       g.id, g.tenant_id, g.subject, g.role, g.folder_id, g.created_at
FROM folders f
LEFT JOIN role_assignments g
  ON f.tenant_id = g.tenant_id AND g.subject = :subject
 AND (g.folder_id IS NULL OR g.folder_id = f.id)
WHERE f.key = :folder_key AND f.tenant_id = :tenant;
