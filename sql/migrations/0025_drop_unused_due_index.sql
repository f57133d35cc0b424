-- The index of pending deliveries by next_attempt_at has had no reader since the
-- claim looks for due work per webhook (deliveries_webhook_due_idx, 0010). Every
-- delivery is written three times (fan-out, claim, record), none of them a HOT
-- update, so each index on it costs three entries per delivery.
DROP INDEX relay.deliveries_due_idx;
