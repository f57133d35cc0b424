-- What the operator commands need from the hot path: the body each attempt sent,
-- replays that restart the retry schedule, and events marked as backfill.

-- The exact bytes of the request (as UTF-8 text); null when no body could be
-- built. Bodies are rebuilt at each attempt (context is read at sending time), so
-- they are kept per attempt, not per delivery.
ALTER TABLE relay.attempts ADD COLUMN body text;

-- Which replay of its delivery an attempt belongs to: 0 for the original run.
ALTER TABLE relay.attempts ADD COLUMN replay integer NOT NULL DEFAULT 0;

-- How often an operator asked to send the delivery again, and how many attempts
-- it had before the latest replay: the retry schedule counts from there, so a
-- replay of a delivery that used up its retries gets the whole schedule again.
ALTER TABLE relay.deliveries
    ADD COLUMN replays integer NOT NULL DEFAULT 0,
    ADD COLUMN retry_base integer NOT NULL DEFAULT 0;

-- The backfill run that wrote an event; null for an event captured from a change.
ALTER TABLE relay.events ADD COLUMN backfill_id bigint;
