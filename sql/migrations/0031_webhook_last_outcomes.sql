-- Each webhook's last success and last failure, kept on the webhook itself.
--
-- Why: `relay status` found them in the attempts, among a webhook's latest
-- deliveries only, so a busy webhook that recovered lost its last failure from
-- view within seconds, and `relay prune` took both away with the history. The
-- relay writes them with the health it already updates per batch of results
-- (claims.sql, update_webhook_health): the same row, no extra statement.

ALTER TABLE relay.webhooks
    ADD COLUMN last_success_at timestamptz,
    ADD COLUMN last_failure_at timestamptz,
    ADD COLUMN last_failure_outcome text,
    ADD COLUMN last_failure_status_code integer,
    ADD COLUMN last_failure_error text;

-- From the history there is, once.
UPDATE relay.webhooks w
SET last_success_at = success.at
FROM (
    SELECT d.webhook_id, max(a.attempted_at) AS at
    FROM relay.attempts a
    JOIN relay.deliveries d ON d.id = a.delivery_id
    WHERE a.outcome = 'delivered'
    GROUP BY d.webhook_id
) AS success
WHERE w.id = success.webhook_id;

UPDATE relay.webhooks w
SET last_failure_at = failure.attempted_at,
    last_failure_outcome = failure.outcome,
    last_failure_status_code = failure.status_code,
    last_failure_error = failure.error
FROM (
    SELECT DISTINCT ON (d.webhook_id)
           d.webhook_id, a.attempted_at, a.outcome, a.status_code, a.error
    FROM relay.attempts a
    JOIN relay.deliveries d ON d.id = a.delivery_id
    WHERE a.outcome <> 'delivered'
    ORDER BY d.webhook_id, a.attempted_at DESC, a.id DESC
) AS failure
WHERE w.id = failure.webhook_id;

-- 0029's index of delivered deliveries served only the last success, read above
-- from now on; every delivery paid an index entry for it.
DROP INDEX relay.deliveries_webhook_delivered_idx;
