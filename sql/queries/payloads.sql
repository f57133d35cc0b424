-- Runtime queries of relay/payloads.py. Parameters are positional ($1, $2, ...).

-- name: build_payloads
-- The JSON body of each given delivery, nested context included, ready to send.
-- The relay's claim builds the same bodies in its own statement (claims.sql), from
-- the same parts; this is for building them one by one when one of them fails.
SELECT d.id AS delivery_id, relay.payload_v2(e, w) AS body
FROM relay.deliveries d
JOIN relay.events e ON e.id = d.event_id
JOIN relay.webhooks w ON w.id = d.webhook_id
WHERE d.id = ANY ($1::bigint[]);
