-- Queries of relay/backfill.py (psycopg: named %(parameters)s).

-- name: find_webhook
-- The webhook to backfill: is it enabled, what it subscribes to, who made it and
-- when (what was created after that reached it live).
SELECT id, enabled, events, created_by_id, created_at
FROM relay.webhooks
WHERE id = %(webhook_id)s;

-- name: scope_projects
-- The projects whose records the webhook may see: its creator's memberships in
-- the creator's company, narrowed by its project filter. Fan-out decides for
-- each event; this only spares writing events that it would drop.
SELECT coalesce(array_agg(p.id ORDER BY p.id), '{}')
FROM relay.webhooks w
JOIN public.users creator ON creator.id = w.created_by_id
JOIN public.project_users membership ON membership.user_id = creator.id
JOIN public.projects p
    ON p.id = membership.project_id AND p.company_id = creator.company_id
WHERE w.id = %(webhook_id)s
    AND (cardinality(w.project_ids) = 0 OR p.id = ANY (w.project_ids));

-- name: limit_lock_wait
-- How long to wait for the webhook below: long enough for the session of a
-- process just killed to end, short enough to refuse a live one soon.
SELECT set_config('lock_timeout', '5s', true);

-- name: take_webhook
-- One backfill process per webhook: a session lock, gone when the session ends.
SELECT pg_advisory_lock(7250432, hashtext(%(webhook_id)s));

-- name: find_unfinished_run
-- The webhook's run that has not finished, if any.
SELECT id, webhook_id, kinds, phase, cursor, cutoff, state, events_written, total,
       started_at, updated_at, finished_at
FROM relay.backfills
WHERE webhook_id = %(webhook_id)s AND state = 'running';

-- name: find_run
-- One run as it stands.
SELECT id, webhook_id, kinds, phase, cursor, cutoff, state, events_written, total,
       started_at, updated_at, finished_at
FROM relay.backfills
WHERE id = %(run_id)s;

-- name: find_finished_run
-- The webhook's latest run that wrote every record, if any.
SELECT id, webhook_id, kinds, phase, cursor, cutoff, state, events_written, total,
       started_at, updated_at, finished_at
FROM relay.backfills
WHERE webhook_id = %(webhook_id)s AND state = 'done'
ORDER BY id DESC
LIMIT 1;

-- name: cancel_run
-- Give up a run; the events it wrote stay in the outbox and are delivered.
UPDATE relay.backfills
SET state = 'cancelled', finished_at = now(), updated_at = now()
WHERE id = %(run_id)s AND state = 'running';

-- name: start_run
-- A new run of these kinds, covering the records created by the cutoff (null:
-- every record that exists now).
INSERT INTO relay.backfills (webhook_id, kinds, cutoff)
VALUES (%(webhook_id)s, %(kinds)s, coalesce(%(cutoff)s::timestamptz, now()))
RETURNING id, webhook_id, kinds, phase, cursor, cutoff, state, events_written,
          total, started_at, updated_at, finished_at;

-- name: count_records
-- Records of one kind in the projects given, past the cursor, created by the
-- cutoff (a null cutoff: by now, as a run started now would count them).
SELECT count(*)
FROM relay.creation_events_v1 r
WHERE r.event = %(kind)s
    AND r.entity_id > %(cursor)s
    AND r.record_created_at <= coalesce(%(cutoff)s::timestamptz, now())
    AND r.project_id = ANY (%(project_ids)s);

-- name: set_total
-- What the run will have written when done, as counted at this (re)start.
UPDATE relay.backfills SET total = %(total)s, updated_at = now()
WHERE id = %(run_id)s
RETURNING id, webhook_id, kinds, phase, cursor, cutoff, state, events_written,
          total, started_at, updated_at, finished_at;

-- name: lock_run
-- Hold the run for one chunk, with its webhook's switch.
SELECT b.state, b.phase, b.cursor, w.enabled
FROM relay.backfills b
JOIN relay.webhooks w ON w.id = b.webhook_id
WHERE b.id = %(run_id)s
FOR UPDATE OF b;

-- name: write_chunk
-- The next records (a chunk's size) of the phase's kind after the cursor: their
-- creation events (those in the projects given) for the run's webhook, and the
-- cursor moved past them, in one statement. A short chunk ends the phase; the
-- last phase's end ends the run.
WITH picked AS (
    SELECT relay.next_record_ids_v1(
               %(kind)s, %(cursor)s, %(cutoff)s, %(size)s) AS ids
),
written AS (
    INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                              todo_id, todo_list_ids, previous_value, current_value,
                              for_webhook_id, backfill_id)
    SELECT r.event, r.entity, r.entity_id, r.company_id, r.project_id, r.todo_id,
           r.todo_list_ids, NULL, r.current_value, %(webhook_id)s, %(run_id)s
    FROM relay.creation_events_v1 r
    WHERE r.event = %(kind)s
        -- A scalar sub-select: the ids become one parameter of a key lookup.
        AND r.entity_id = ANY ((SELECT picked.ids FROM picked)::text[])
        AND r.project_id = ANY (%(project_ids)s)
    ORDER BY r.entity_id
    RETURNING 1
),
chunk AS (
    SELECT cardinality(p.ids) < %(size)s AS ends_phase,
           p.ids[cardinality(p.ids)] AS last_id,
           (SELECT count(*) FROM written) AS written
    FROM picked p
)
UPDATE relay.backfills b
SET phase = b.phase + CASE WHEN c.ends_phase THEN 1 ELSE 0 END,
    cursor = CASE WHEN c.ends_phase THEN NULL ELSE c.last_id END,
    state = CASE
        WHEN c.ends_phase AND b.phase + 1 >= cardinality(b.kinds) THEN 'done'
        ELSE b.state
    END,
    finished_at = CASE
        WHEN c.ends_phase AND b.phase + 1 >= cardinality(b.kinds) THEN now()
    END,
    events_written = b.events_written + c.written,
    updated_at = now()
FROM chunk c
WHERE b.id = %(run_id)s
RETURNING c.written, b.id, b.webhook_id, b.kinds, b.phase, b.cursor, b.cutoff,
          b.state, b.events_written, b.total, b.started_at, b.updated_at,
          b.finished_at;

-- name: outstanding
-- The run's events the relay has not finished with: not fanned out yet, or with
-- a pending delivery to the webhook; and whether the webhook is still enabled.
SELECT (SELECT count(*)
        FROM relay.events e
        WHERE e.backfill_id = %(run_id)s AND e.fanned_out_at IS NULL)
     + (SELECT count(*)
        FROM relay.deliveries d
        JOIN relay.events e ON e.id = d.event_id
        WHERE d.webhook_id = w.id AND d.state = 'pending'
            AND e.backfill_id = %(run_id)s),
       w.enabled
FROM relay.webhooks w
WHERE w.id = %(webhook_id)s;

-- name: list_runs
-- Every run, or those of one webhook, oldest first. An unfinished run that no
-- process holds (the lock of take_webhook) is shown as 'stopped'.
SELECT b.id, b.webhook_id, b.kinds, b.phase, b.cursor, b.cutoff,
       CASE
           WHEN b.state = 'running' AND NOT EXISTS (
               SELECT FROM pg_locks l
               WHERE l.locktype = 'advisory'
                   AND l.database = (SELECT oid FROM pg_database
                                     WHERE datname = current_database())
                   AND l.classid = 7250432
                   AND l.objid = hashtext(b.webhook_id)::oid
                   AND l.objsubid = 2
                   AND l.granted
           ) THEN 'stopped'
           ELSE b.state
       END AS state,
       b.events_written, b.total, b.started_at, b.updated_at, b.finished_at
FROM relay.backfills b
WHERE %(webhook_id)s::text IS NULL OR b.webhook_id = %(webhook_id)s
ORDER BY b.id;
