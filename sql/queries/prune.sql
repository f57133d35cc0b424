-- Queries of relay/prune.py (psycopg: named %(parameters)s). Every batch reads a
-- range of ids through a primary key, so no statement scans a whole table.

-- name: limit_lock_waits
-- A batch waits this long at most for a row lock (a delivery being recorded).
SELECT set_config('lock_timeout', %(timeout)s, false);

-- name: take_prune_lock
-- One prune at a time per database: relays on a schedule and the command.
SELECT pg_try_advisory_lock(7250431002) AS taken;

-- name: event_id_range
-- The lowest and highest event ids, from the ends of the primary key.
SELECT min(id) AS low, max(id) AS high FROM relay.events;

-- name: event_time_at
-- When the first event at or after an id was written: the outbox is bisected by age.
SELECT created_at AS written_at
FROM relay.events
WHERE id >= %(id)s
ORDER BY id
LIMIT 1;

-- name: attempt_id_range
-- The lowest and highest attempt ids, from the ends of the primary key.
SELECT min(id) AS low, max(id) AS high FROM relay.attempts;

-- name: attempt_time_at
-- When the first attempt at or after an id was made: attempts are bisected by age.
SELECT attempted_at AS written_at
FROM relay.attempts
WHERE id >= %(id)s
ORDER BY id
LIMIT 1;

-- name: oldest_waiting_event
-- The oldest event up to %(through)s that may still be sent: not fanned out, or
-- with a delivery pending (or failed, which a replay may send again, unless failed
-- ones go too). Delete events from it on stay: a payload may need the deleted row.
-- The scan of deliveries stops at the first waiting one and reads old rows only.
SELECT least(
    (SELECT min(id) FROM relay.events WHERE fanned_out_at IS NULL),
    (SELECT min(event_id)
     FROM relay.deliveries
     WHERE event_id <= %(through)s
         AND (state = 'pending' OR state = 'failed' AND NOT %(include_failed)s))
) AS event_id;

-- name: event_batch_end
-- The last id of the next batch of at most %(batch_size)s events after %(after)s.
SELECT max(id) AS last_id
FROM (
    SELECT id
    FROM relay.events
    WHERE id > %(after)s AND id <= %(through)s
    ORDER BY id
    LIMIT %(batch_size)s
) AS batch;

-- name: lock_prunable_events
-- Lock the events of a batch that may go, skipping those the relay holds, and
-- then every delivery of theirs, in id order: a replay of one waits for us.
WITH prunable AS (
    SELECT e.id
    FROM relay.events e
    WHERE e.id > %(after)s AND e.id <= %(last_id)s
        AND e.created_at < %(cutoff)s
        AND e.fanned_out_at IS NOT NULL
        AND (e.current_value IS NOT NULL OR e.id < %(waiting_event_id)s)
    ORDER BY e.id
    FOR UPDATE OF e SKIP LOCKED
),
locked_deliveries AS (
    SELECT d.id
    FROM relay.deliveries d
    WHERE d.event_id IN (SELECT id FROM prunable)
    ORDER BY d.id
    FOR UPDATE OF d
)
SELECT array(SELECT id FROM prunable) AS event_ids,
       (SELECT count(*) FROM locked_deliveries) AS deliveries;

-- name: delete_events
-- Delete the locked events whose deliveries are all done with; their deliveries
-- and attempts go with them (the foreign keys cascade). Returns what went. The
-- test per event is a subquery and the delete takes an array, so that both read
-- by key instead of joining whole tables.
WITH doomed AS (
    SELECT e.id
    FROM relay.events e
    WHERE e.id = ANY (%(event_ids)s)
        AND (
            SELECT count(*)
            FROM relay.deliveries d
            WHERE d.event_id = e.id
                AND NOT (d.state = 'delivered'
                         OR %(include_failed)s AND d.state = 'failed')
        ) = 0
),
doomed_deliveries AS (
    SELECT d.id
    FROM relay.deliveries d
    WHERE d.event_id = ANY (ARRAY(SELECT id FROM doomed))
),
deleted AS (
    DELETE FROM relay.events e
    WHERE e.id = ANY (ARRAY(SELECT id FROM doomed))
    RETURNING 1
)
SELECT (SELECT count(*) FROM deleted) AS events,
       (SELECT count(*) FROM doomed_deliveries) AS deliveries,
       -- Those trim_attempts left, as it runs first: a dry run, which rolled the
       -- trim back, counts each attempt once too.
       (SELECT count(*) FROM relay.attempts a
        WHERE a.delivery_id = ANY (ARRAY(SELECT id FROM doomed_deliveries))
            AND NOT (a.id <= %(trimmed_through)s
                     AND a.attempted_at < %(cutoff)s
                     AND EXISTS (
                         SELECT FROM relay.attempts later
                         WHERE later.delivery_id = a.delivery_id
                             AND later.id > a.id))) AS attempts;

-- name: attempt_batch_end
-- The last id of the next batch of at most %(batch_size)s attempts after %(after)s.
SELECT max(id) AS last_id
FROM (
    SELECT id
    FROM relay.attempts
    WHERE id > %(after)s AND id <= %(through)s
    ORDER BY id
    LIMIT %(batch_size)s
) AS batch;

-- name: trim_attempts
-- Delete the attempts of a batch past retention, each but the latest of its
-- delivery, so that a delivery still shows why it last failed. Runs before the
-- events go, whose count of attempts (delete_events) says the same.
WITH doomed AS (
    SELECT a.id
    FROM relay.attempts a
    WHERE a.id > %(after)s AND a.id <= %(last_id)s
        AND a.attempted_at < %(cutoff)s
        AND EXISTS (
            SELECT FROM relay.attempts later
            WHERE later.delivery_id = a.delivery_id AND later.id > a.id
        )
    FOR UPDATE OF a SKIP LOCKED
),
deleted AS (
    DELETE FROM relay.attempts a
    USING doomed
    WHERE a.id = doomed.id
    RETURNING 1
)
SELECT count(*) AS attempts FROM deleted;
