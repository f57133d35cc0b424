-- Queries of relay/migrations.py (psycopg).

-- name: applied_migrations
-- What relay migrate recorded, in version order.
SELECT version, name, checksum, applied_at
FROM relay.schema_migrations
ORDER BY version;
