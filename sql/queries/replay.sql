-- Queries of relay/replay.py (psycopg: named %(parameters)s).

-- name: known_deliveries
-- Which of these delivery ids exist.
SELECT coalesce(array_agg(id ORDER BY id), '{}')
FROM relay.deliveries
WHERE id = ANY (%(ids)s::bigint[]);

-- name: event_exists
-- Whether an event of this id exists.
SELECT EXISTS (SELECT FROM relay.events WHERE id = %(event_id)s::bigint);

-- name: select_deliveries
-- The deliveries an operator chose, by id: those in one of the states to replay,
-- and the pending ones the same choice meets (they are reported as skipped). A
-- null or empty parameter does not narrow; the window is on the event's time,
-- since inclusive, until exclusive.
SELECT d.id AS delivery_id, d.event_id, e.event, d.webhook_id,
       w.enabled AS webhook_enabled, d.state,
       e.created_at AS event_created_at
FROM relay.deliveries d
JOIN relay.events e ON e.id = d.event_id
JOIN relay.webhooks w ON w.id = d.webhook_id
WHERE (%(delivery_ids)s::bigint[] IS NULL OR d.id = ANY (%(delivery_ids)s::bigint[]))
    AND (%(event_id)s::bigint IS NULL OR d.event_id = %(event_id)s::bigint)
    AND (%(webhook_id)s::text IS NULL OR d.webhook_id = %(webhook_id)s::text)
    AND (%(since)s::timestamptz IS NULL OR e.created_at >= %(since)s::timestamptz)
    AND (%(until)s::timestamptz IS NULL OR e.created_at < %(until)s::timestamptz)
    AND (
        cardinality(%(event_names)s::text[]) = 0
        OR e.event = ANY (%(event_names)s::text[])
    )
    AND (d.state = 'pending' OR d.state = ANY (%(states)s::text[]))
ORDER BY d.id;

-- name: replay_deliveries
-- Make these deliveries due again with the whole retry schedule (it counts the
-- attempts after retry_base). The state is checked again: one that is pending by
-- now, replayed or changed meanwhile, is left alone. What the last attempt said
-- (delivered_at, last_status_code, last_error) stays until the next attempt.
UPDATE relay.deliveries
SET state = 'pending',
    replays = replays + 1,
    retry_base = attempts,
    next_attempt_at = now(),
    claimed_by = NULL,
    updated_at = now()
WHERE id = ANY (%(ids)s::bigint[])
    AND state = ANY (%(states)s::text[])
RETURNING id;

-- name: retry_pending_now
-- Bring forward the next retry of these pending deliveries: due now, as if their
-- wait were over. Not a replay: no X-Relay-Replay, the schedule goes on. One a
-- relay holds (in flight) or that is due already is left alone.
UPDATE relay.deliveries
SET next_attempt_at = now(),
    updated_at = now()
WHERE id = ANY (%(ids)s::bigint[])
    AND state = 'pending'
    AND claimed_by IS NULL
    AND next_attempt_at > now()
RETURNING id;

-- name: ring_doorbell
-- Wake a sleeping relay at commit, as capture does (0020, 0026): only while the
-- doorbell is armed. Run after the update, so that a relay arming meanwhile sees
-- this transaction running and looks again when it ends (relay/doorbell.py).
SELECT pg_notify('relay_events_v2', '')
WHERE coalesce(pg_sequence_last_value('relay.doorbell_armed_v2'::regclass), 1) = 1;
