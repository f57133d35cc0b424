-- Runtime queries of relay/payloads.py. Parameters are positional ($1, $2, ...).

-- name: build_payloads
-- The JSON body of each claimed delivery, nested context included, ready to send.
-- Each event's values and each webhook's JSON are rendered once for the batch
-- (MATERIALIZED keeps the planner from rendering them once per delivery); the
-- body is relay.payload_v2's, from relay.payload_from_parts_v2.
WITH claimed AS (
    SELECT d.id, d.event_id, d.webhook_id
    FROM relay.deliveries d
    WHERE d.id = ANY ($1::bigint[])
),
event_values AS MATERIALIZED (
    SELECT e.id, e.event,
           relay.entity_json_v2(e.entity, e.previous_value) AS previous_value,
           relay.entity_json_v2(e.entity, e.current_value) AS current_value
    FROM relay.events e
    WHERE e.id IN (SELECT claimed.event_id FROM claimed)
),
webhook_values AS MATERIALIZED (
    SELECT w.id, relay.webhook_json_v2(w) AS webhook
    FROM relay.webhooks w
    WHERE w.id IN (SELECT claimed.webhook_id FROM claimed)
)
SELECT c.id AS delivery_id,
       relay.payload_from_parts_v2(
           v.event, h.webhook, v.previous_value, v.current_value) AS body
FROM claimed c
JOIN event_values v ON v.id = c.event_id
JOIN webhook_values h ON h.id = c.webhook_id;
