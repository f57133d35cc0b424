-- The catalogue of relay's triggers: each one as the migrations installed it.
--
-- Why: `relay triggers status|install|uninstall` must know which triggers the
-- migrations installed, and how, without a second hand-kept list that could drift
-- from them. The migrations stay the only source; this table records what they
-- did, read back from pg_trigger: the definition as PostgreSQL prints it and the
-- enabled state. So `relay triggers install` can recreate a trigger that a
-- restore or a hand dropped exactly as it was, where asking to re-run its
-- migration would not work (an applied migration never runs again).
--
-- Which triggers: every trigger named relay_*, the naming rule of every relay
-- migration so far. Its kind comes from its name, and says what uninstall does:
--   capture   relay_capture_*: write the events (uninstall disables them)
--   context   relay_remember_departing_trigger: keep a deleted parent's row for
--             its children's events, useless without capture (disabled too)
--   guard     relay_refuse_truncate_trigger: refuse TRUNCATE (left in place)
--   internal  the relay's own, on relay.* tables (left in place)
--
-- A later migration that adds or changes a relay trigger calls
-- relay.record_installed_triggers_v1() at its end; one that drops a trigger
-- deletes its row. A test checks the catalogue against pg_trigger.

CREATE TABLE relay.installed_triggers (
    schema_name text NOT NULL,
    table_name text NOT NULL,
    trigger_name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('capture', 'context', 'guard', 'internal')),
    -- pg_get_triggerdef() under search_path pg_catalog: every name qualified.
    definition text NOT NULL,
    -- pg_trigger.tgenabled: O origin, A always, R replica, D disabled.
    enabled "char" NOT NULL CHECK (enabled IN ('O', 'A', 'R', 'D')),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, table_name, trigger_name)
);

-- Records every relay_* trigger present now; returns how many.
--
-- Triggers on the application's tables are recorded as ENABLE ALWAYS whatever
-- their state at this moment: 0006 made them so, and a bulk load that disabled
-- one while a migration ran must not make "disabled" the state to restore.
CREATE FUNCTION relay.record_installed_triggers_v1() RETURNS integer
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH found AS (
        SELECT n.nspname AS schema_name, c.relname AS table_name,
               t.tgname AS trigger_name,
               CASE
                   WHEN n.nspname = 'relay' THEN 'internal'
                   WHEN t.tgname LIKE 'relay\_capture\_%' THEN 'capture'
                   WHEN t.tgname = 'relay_remember_departing_trigger' THEN 'context'
                   ELSE 'guard'
               END AS kind,
               pg_get_triggerdef(t.oid) AS definition,
               t.tgenabled
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT t.tgisinternal AND t.tgname LIKE 'relay\_%'
    ),
    recorded AS (
        INSERT INTO relay.installed_triggers
            (schema_name, table_name, trigger_name, kind, definition, enabled)
        SELECT schema_name, table_name, trigger_name, kind, definition,
               CASE WHEN kind = 'internal' THEN tgenabled ELSE 'A' END
        FROM found
        ON CONFLICT (schema_name, table_name, trigger_name) DO UPDATE
        SET kind = excluded.kind,
            definition = excluded.definition,
            enabled = excluded.enabled,
            recorded_at = now()
        RETURNING 1
    )
    SELECT count(*)::integer FROM recorded;
$$;

-- Each recorded trigger beside what pg_trigger holds now: null enabled and
-- same_definition when it is missing. The definitions are printed under the
-- same search_path as when they were recorded, so equal means equal.
CREATE FUNCTION relay.trigger_states_v1()
RETURNS TABLE (
    schema_name text,
    table_name text,
    trigger_name text,
    kind text,
    definition text,
    recorded_enabled "char",
    enabled "char",
    same_definition boolean
)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.schema_name, r.table_name, r.trigger_name, r.kind, r.definition,
           r.enabled, t.tgenabled, pg_get_triggerdef(t.oid) = r.definition
    FROM relay.installed_triggers r
    LEFT JOIN pg_namespace n ON n.nspname = r.schema_name
    LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = r.table_name
    LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname = r.trigger_name
    ORDER BY array_position(ARRAY['capture', 'context', 'guard', 'internal'],
                            r.kind),
             r.schema_name, r.table_name, r.trigger_name;
$$;

SELECT relay.record_installed_triggers_v1();
