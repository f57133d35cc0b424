-- Queries of relay/status.py (psycopg: named %(parameters)s). Ages are seconds
-- before the database's now(), so that the clock of the machine asking does not
-- matter; each query reads through an index (see 0029 for the per-webhook ones).

-- name: snapshot
-- Every later query of the report sees the same moment and the same now().
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;

-- name: outbox
-- Events not yet fanned out (events_pending_idx) and the age of the oldest.
SELECT now() AS checked_at,
       count(*) AS events,
       min(created_at) AS oldest_created_at,
       extract(epoch FROM now() - min(created_at))::float8 AS oldest_age_seconds
FROM relay.events
WHERE fanned_out_at IS NULL;

-- name: pending_deliveries
-- Pending deliveries (deliveries_webhook_due_idx), split four ways: held by a
-- disabled webhook, claimed by a relay now, due now, waiting for a retry.
SELECT count(*) AS pending,
       count(*) FILTER (WHERE w.enabled AND d.next_attempt_at <= now()) AS due,
       count(*) FILTER (
           WHERE w.enabled AND d.next_attempt_at > now() AND d.claimed_by IS NOT NULL
       ) AS in_flight,
       count(*) FILTER (
           WHERE w.enabled AND d.next_attempt_at > now() AND d.claimed_by IS NULL
       ) AS waiting_retry,
       count(*) FILTER (WHERE NOT w.enabled) AS held,
       min(e.created_at) AS oldest_event_created_at,
       extract(epoch FROM now() - min(e.created_at))::float8 AS oldest_event_age_seconds,
       extract(epoch FROM now() - min(d.next_attempt_at) FILTER (
           WHERE w.enabled AND d.next_attempt_at <= now()
       ))::float8 AS oldest_due_wait_seconds
FROM relay.deliveries d
JOIN relay.events e ON e.id = d.event_id
JOIN relay.webhooks w ON w.id = d.webhook_id
WHERE d.state = 'pending';

-- name: failed_deliveries
-- Deliveries that used up their retries (deliveries_webhook_failed_idx), and what
-- the planner believes the table holds: a count of delivered rows reads them all.
SELECT (SELECT count(*) FROM relay.deliveries WHERE state = 'failed') AS failed,
       (SELECT reltuples FROM pg_class WHERE oid = 'relay.deliveries'::regclass)::float8
           AS estimated_rows;

-- name: delivered_deliveries
-- The exact count of delivered deliveries, for a table small enough to read.
SELECT count(*) FROM relay.deliveries WHERE state = 'delivered';

-- name: webhooks
-- Each webhook's health with its latest success and failure, which the relay
-- keeps on the webhook (0031) as it records attempts.
SELECT w.id, w.name, w.enabled, w.status, w.consecutive_failures, w.failing_since,
       w.last_success_at, w.last_failure_at, w.last_failure_outcome,
       w.last_failure_status_code, w.last_failure_error,
       (SELECT count(*) FROM relay.deliveries d
        WHERE d.webhook_id = w.id AND d.state = 'pending') AS pending,
       (SELECT count(*) FROM relay.deliveries d
        WHERE d.webhook_id = w.id AND d.state = 'failed') AS failed,
       disabling.reason AS disabled_reason,
       disabling.changed_at AS disabled_at
FROM relay.webhooks w
-- Why it was disabled: the latest change that switched it off.
LEFT JOIN LATERAL (
    SELECT c.reason, c.changed_at
    FROM relay.webhook_status_changes c
    WHERE NOT w.enabled AND c.webhook_id = w.id
        AND c.old_enabled AND NOT c.new_enabled
    ORDER BY c.id DESC
    LIMIT 1
) AS disabling ON true
ORDER BY w.created_at, w.id;

-- name: capture
-- The capture triggers the migrations installed (0030), and how many of them do
-- not fire now as installed: missing, disabled, or on replicas only.
SELECT count(*) AS triggers,
       count(*) FILTER (WHERE enabled IS DISTINCT FROM recorded_enabled) AS off
FROM relay.trigger_states_v1()
WHERE kind = 'capture';

-- name: claims
-- Relays holding live claims now (deliveries_live_claims_idx), oldest claim first.
SELECT claimed_by AS relay,
       count(*) AS claims,
       min(updated_at) AS oldest_claimed_at,
       extract(epoch FROM now() - min(updated_at))::float8 AS oldest_claim_age_seconds,
       min(next_attempt_at) AS first_lease_ends_at
FROM relay.deliveries
WHERE state = 'pending' AND claimed_by IS NOT NULL AND next_attempt_at > now()
GROUP BY claimed_by
ORDER BY min(updated_at), claimed_by;
