-- The claim counts each webhook's live claims to apply the per-webhook limit.
--
-- Why an index of its own: every claim and every recorded attempt moves a
-- delivery's next_attempt_at, so the index on it fills with entries of versions
-- that are gone, and counting through it visited thousands of them per claim
-- (about 10 ms with 50,000 deliveries behind). Live claims are the few rows with
-- claimed_by set; an index of just those stays small, and plain index scans mark
-- the dead entries they meet so that the next count skips them.
CREATE INDEX deliveries_live_claims_idx ON relay.deliveries (webhook_id)
    WHERE state = 'pending' AND claimed_by IS NOT NULL;
