-- What relay status reads per webhook: its latest success and its failed
-- deliveries, without reading the whole history of the webhook.
--
-- Why partial indexes: a row gets an entry only once it is delivered or failed,
-- so the fan-out and the claim (the busiest writes) pay nothing for them, and the
-- final write of a delivery pays one entry.
CREATE INDEX deliveries_webhook_delivered_idx
    ON relay.deliveries (webhook_id, delivered_at)
    WHERE state = 'delivered';

CREATE INDEX deliveries_webhook_failed_idx
    ON relay.deliveries (webhook_id, id)
    WHERE state = 'failed';
