-- Queries of relay/deliveries.py (psycopg: named %(parameters)s).

-- name: list_deliveries
-- Deliveries, newest first, narrowed by each filter given (null or empty: none).
-- The time window is on the event's created_at; a record matches the event's
-- entity or, for events about a record's parts, the record itself (todo_id).
SELECT d.id, d.event_id, e.event, d.webhook_id, d.state, d.attempts,
       d.last_status_code, d.last_error, e.entity_id,
       e.created_at AS event_created_at, d.created_at, d.delivered_at
FROM relay.deliveries d
JOIN relay.events e ON e.id = d.event_id
WHERE (%(webhook_id)s::text IS NULL OR d.webhook_id = %(webhook_id)s::text)
    AND (cardinality(%(events)s::text[]) = 0 OR e.event = ANY (%(events)s::text[]))
    AND (cardinality(%(states)s::text[]) = 0 OR d.state = ANY (%(states)s::text[]))
    AND (%(since)s::timestamptz IS NULL OR e.created_at >= %(since)s::timestamptz)
    AND (%(until)s::timestamptz IS NULL OR e.created_at < %(until)s::timestamptz)
    AND (
        %(record)s::text IS NULL
        OR e.entity_id = %(record)s::text
        OR e.todo_id = %(record)s::text
    )
ORDER BY d.id DESC
LIMIT %(limit)s;

-- name: show_delivery
-- One delivery with its event and its webhook (never the secret).
-- Only a pending delivery has a next attempt; a failed one waits for a replay.
SELECT d.id, d.state, d.attempts, d.replays,
       CASE WHEN d.state = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
       d.claimed_by,
       d.last_status_code, d.last_error, d.created_at, d.updated_at, d.delivered_at,
       e.id AS event_id, e.event, e.entity, e.entity_id, e.todo_id,
       e.created_at AS event_created_at, e.backfill_id,
       w.id AS webhook_id, w.name AS webhook_name, w.url AS webhook_url,
       w.status AS webhook_status, w.enabled AS webhook_enabled
FROM relay.deliveries d
JOIN relay.events e ON e.id = d.event_id
JOIN relay.webhooks w ON w.id = d.webhook_id
WHERE d.id = %(delivery_id)s;

-- name: delivery_attempts
-- Every attempt at one delivery (attempts_delivery_id_idx), oldest first, with
-- the exact body each one sent.
SELECT a.attempt, a.replay, a.attempted_at, a.outcome, a.status_code,
       a.duration_ms, a.error, a.response_excerpt, a.retry_delay_seconds, a.body
FROM relay.attempts a
WHERE a.delivery_id = %(delivery_id)s
ORDER BY a.attempted_at, a.id;
