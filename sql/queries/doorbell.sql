-- Runtime queries of relay/doorbell.py. Parameters are positional ($1, $2, ...).

-- name: arm_doorbell
-- Ask writers to ring from now on; takes effect at once, whatever the transaction.
SELECT setval('relay.doorbell_armed_v2', 1);

-- name: disarm_doorbell
-- Tell writers that a relay is polling and needs no ring.
SELECT setval('relay.doorbell_armed_v2', 0);

-- name: running_transactions
-- The transactions in progress now, by id; run after arm_doorbell, in a statement
-- of its own, so that its snapshot is taken after the doorbell was armed.
SELECT coalesce(array_agg(xid::text::bigint), '{}')
FROM pg_snapshot_xip(pg_current_snapshot()) AS xid;

-- name: still_running
-- Which of these transactions are still in progress.
SELECT coalesce(array_agg(xid), '{}')
FROM unnest($1::bigint[]) AS xid
WHERE pg_xact_status(xid::text::xid8) = 'in progress';
