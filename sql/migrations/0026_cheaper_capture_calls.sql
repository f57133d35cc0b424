-- Two functions that every captured statement calls, made cheaper to call.
--
-- Why: a function with a SET clause saves and restores that setting on every
-- call, and a SQL function with one is never inlined. Capture calls the doorbell
-- once per statement that adds events and the acting user once per row; both
-- only ever run inside the capture functions (SECURITY DEFINER, with their own
-- pinned search_path), so their own pinning bought nothing and cost about a
-- tenth of a one-row insert's capture. And the doorbell now reads its sequence
-- with a function call, which PL/pgSQL evaluates on its fast path, instead of a
-- sub-select that starts the executor.

ALTER FUNCTION relay.actor_id_v1() RESET search_path;

-- pg_sequence_last_value is null until the sequence is first set: a relay that
-- never ran has not disarmed it, so null counts as armed, as START 1 meant.
CREATE OR REPLACE FUNCTION relay.ring_doorbell_v2() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER
AS $$
BEGIN
    IF coalesce(pg_catalog.pg_sequence_last_value('relay.doorbell_armed_v2'::regclass), 1)
        = 1
    THEN
        PERFORM pg_catalog.pg_notify('relay_events_v2', '');
    END IF;
    RETURN NULL;
END;
$$;
