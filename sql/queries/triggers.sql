-- Queries of relay/triggers.py (psycopg).

-- name: trigger_states
-- Each relay trigger the migrations installed beside its state now (0030).
SELECT schema_name, table_name, trigger_name, kind, definition,
       recorded_enabled, enabled, same_definition
FROM relay.trigger_states_v1();
