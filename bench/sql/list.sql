-- What the list call (top=100, searchText, orderBy=title asc) asks of the database
-- (src/service/listing.rs): the tenant's apps whose system name matches, the total
-- count and the page. The bench seeds no tags, so the tags lookup of the page's ids
-- is left out on both sides, and no app name matches 'bravo', so no app_id arm.
SELECT id FROM apps WHERE tenant_id = :tenant AND lower(system_name) LIKE :pattern;
SELECT COUNT(*) FROM deployments d LEFT JOIN apps a ON d.app_id = a.id
 WHERE d.tenant_id = :tenant AND d.folder_id = :folder
   AND (lower(d.title) LIKE :pattern OR lower(d.routing_name) LIKE :pattern);
SELECT d.id, d.tenant_id, d.folder_id, d.app_id, d.version, d.title, d.description, d.routing_name,
       d.maintenance_enabled, d.maintenance_url, d.maintenance_excluded_users, d.created_at, d.updated_at,
       a.id, a.tenant_id, a.system_name, a.title
  FROM deployments d LEFT JOIN apps a ON d.app_id = a.id
 WHERE d.tenant_id = :tenant AND d.folder_id = :folder
   AND (lower(d.title) LIKE :pattern OR lower(d.routing_name) LIKE :pattern)
 ORDER BY d.title ASC, d.id ASC LIMIT 100 OFFSET 0;
