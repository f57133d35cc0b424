-- Runtime queries of relay/claims.py. Parameters are positional ($1, $2, ...).

-- name: fan_out_events
-- Turn a batch of new events into one delivery per webhook that wants the event.
WITH batch AS (
    SELECT e.id, e.event, e.company_id, e.project_id, e.created_at, e.todo_id,
           e.todo_list_ids, e.changed_fields, e.for_webhook_id, e.backfill_id,
           -- Who was a member of the project when a delete took it away: its
           -- project_users rows went with it.
           e.previous_value #> '{_context,project,_member_ids}' AS departed_member_ids,
           -- The record's tags and assignees before and after the change, when the
           -- event kept them; null means "read the live rows of todo_id". Lax
           -- jsonpath skips what is not shaped as expected instead of failing.
           CASE WHEN kept.tags IS NOT NULL THEN ARRAY(
               SELECT tag #>> '{}'
               FROM jsonb_path_query(kept.tags, '$[*][*].tag_id') AS tag)
           END AS kept_tag_ids,
           CASE WHEN kept.users IS NOT NULL THEN ARRAY(
               SELECT person #>> '{}'
               FROM jsonb_path_query(kept.users, '$[*][*].user_id') AS person)
           END AS kept_user_ids
    FROM relay.events e
    -- Where they are kept: in the entity before and after, and in the record that
    -- a cascaded delete (of a comment, say) took along in its context.
    CROSS JOIN LATERAL (
        SELECT nullif(
                   jsonb_build_array(e.previous_value -> '_todo_tags',
                                     e.current_value -> '_todo_tags',
                                     e.previous_value #> '{_context,todo,_todo_tags}'),
                   '[null, null, null]') AS tags,
               nullif(
                   jsonb_build_array(e.previous_value -> '_todo_users',
                                     e.current_value -> '_todo_users',
                                     e.previous_value #> '{_context,todo,_todo_users}'),
                   '[null, null, null]') AS users
    ) AS kept
    WHERE e.fanned_out_at IS NULL
    ORDER BY e.id
    LIMIT $1
    FOR UPDATE OF e SKIP LOCKED
),
wanted AS (
    -- A health check goes to its one webhook, whatever it subscribes to.
    SELECT batch.id AS event_id, w.id AS webhook_id
    FROM batch
    JOIN relay.webhooks w
        ON w.id = batch.for_webhook_id AND batch.backfill_id IS NULL AND w.enabled
    UNION ALL
    -- A live event goes to every webhook that wants it; a backfill event only to
    -- the webhook of its run, if that one wants it by the same rules.
    SELECT batch.id, w.id
    FROM batch
    JOIN relay.webhooks w
        ON (batch.for_webhook_id IS NULL
            OR batch.backfill_id IS NOT NULL AND w.id = batch.for_webhook_id)
        AND w.enabled
        -- A webhook receives what happens from its creation on.
        AND w.created_at <= batch.created_at
        -- Each filter is cheap to skip when empty, so its test comes first.
        AND (cardinality(w.events) = 0 OR batch.event = ANY (w.events))
        AND (cardinality(w.project_ids) = 0 OR batch.project_id = ANY (w.project_ids))
        -- Lists: events about no list pass; a move counts for both of its lists.
        AND (
            cardinality(w.todo_list_ids) = 0
            OR batch.todo_list_ids IS NULL
            OR batch.todo_list_ids && w.todo_list_ids
        )
        -- Changed fields narrow updates only; creations and deletions pass.
        AND (
            cardinality(w.changed_fields) = 0
            OR batch.changed_fields IS NULL
            OR batch.changed_fields && w.changed_fields
        )
        -- Tags and assignees narrow events about a record: one of them carried
        -- before or after the change.
        AND (
            cardinality(w.tag_ids) = 0
            OR batch.todo_id IS NULL
            OR batch.kept_tag_ids && w.tag_ids
            OR batch.kept_tag_ids IS NULL AND EXISTS (
                SELECT FROM public.todo_tags live
                WHERE live.todo_id = batch.todo_id AND live.tag_id = ANY (w.tag_ids)
            )
        )
        AND (
            cardinality(w.assignee_ids) = 0
            OR batch.todo_id IS NULL
            OR batch.kept_user_ids && w.assignee_ids
            OR batch.kept_user_ids IS NULL AND EXISTS (
                SELECT FROM public.todo_users live
                WHERE live.todo_id = batch.todo_id
                    AND live.user_id = ANY (w.assignee_ids)
            )
        )
    -- Scope: the creator's company, and the creator a member of the project now,
    -- or when it was deleted if the event went with it.
    JOIN public.users creator
        ON creator.id = w.created_by_id
        AND creator.company_id = batch.company_id
        AND (
            EXISTS (
                SELECT FROM public.project_users membership
                WHERE membership.project_id = batch.project_id
                    AND membership.user_id = creator.id
            )
            OR batch.departed_member_ids ? creator.id
        )
),
fanned_out AS (
    INSERT INTO relay.deliveries (event_id, webhook_id)
    SELECT event_id, webhook_id
    FROM wanted
    ORDER BY event_id, webhook_id
    ON CONFLICT (event_id, webhook_id) DO NOTHING
    RETURNING 1
),
marked AS (
    UPDATE relay.events e
    SET fanned_out_at = now()
    FROM batch
    WHERE e.id = batch.id
    RETURNING 1
),
-- Rows that deletes remembered for their own captures (0006). Those this session
-- sees are committed, so their events are in the outbox and they are not needed.
forgotten AS (
    DELETE FROM relay.departed_rows
    WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM relay.departed_rows FOR UPDATE SKIP LOCKED
    ))
)
SELECT (SELECT count(*) FROM marked) AS events,
       (SELECT count(*) FROM fanned_out) AS deliveries;

-- name: lock_claims
-- Relays claim one at a time, so each sees the others' claims when it counts slots.
SELECT pg_advisory_xact_lock(7250431001);

-- name: claim_deliveries
-- Claim due deliveries of enabled webhooks, at most $4 in flight per webhook over
-- all relays: count the attempt, stamp the lease. $5 are this relay's claims whose
-- request has ended but whose result is not written yet: no longer in flight, they
-- hold no slot (another relay counts them until they are written). When $6, each
-- claim comes with its body, built as relay/payloads.py builds it: one statement
-- instead of two on the relay's busiest path.
-- Every enabled webhook is probed once per claim: with 2,001 webhooks that all
-- had due work, a claim of 256 took 4.4 ms.
WITH webhook_slots AS (
    SELECT w.id,
           $4 - (
               SELECT count(*)
               FROM relay.deliveries live
               WHERE live.webhook_id = w.id
                   AND live.state = 'pending'
                   AND live.claimed_by IS NOT NULL
                   AND live.next_attempt_at > now()
                   AND live.id <> ALL ($5::bigint[])
           ) AS free
    FROM relay.webhooks w
    WHERE w.enabled
        -- A probe per webhook (LIMIT keeps it from becoming a join that reads
        -- every due delivery, as it did with a backlog of 50,000). The ORDER BY
        -- is that of deliveries_webhook_due_idx: without it the planner may scan
        -- the table, expecting a due row soon, and pass every delivered one first.
        AND (
            SELECT true
            FROM relay.deliveries d
            WHERE d.webhook_id = w.id
                AND d.state = 'pending'
                AND d.next_attempt_at <= now()
            ORDER BY d.next_attempt_at, d.id
            LIMIT 1
        )
),
due AS (
    SELECT picked.id
    FROM webhook_slots s
    CROSS JOIN LATERAL (
        SELECT d.id, d.next_attempt_at
        FROM relay.deliveries d
        WHERE d.webhook_id = s.id
            AND d.state = 'pending'
            AND d.next_attempt_at <= now()
        ORDER BY d.next_attempt_at, d.id
        LIMIT greatest(s.free, 0)
        FOR UPDATE SKIP LOCKED
    ) picked
    WHERE s.free > 0
    ORDER BY picked.next_attempt_at, picked.id
    LIMIT $1
),
claimed AS (
    UPDATE relay.deliveries d
    SET attempts = d.attempts + 1,
        next_attempt_at = now() + make_interval(secs => $3),
        claimed_by = $2,
        updated_at = now()
    FROM due, relay.events e, relay.webhooks w
    WHERE d.id = due.id AND e.id = d.event_id AND w.id = d.webhook_id
    RETURNING d.id AS delivery_id, d.event_id, e.event, d.webhook_id, w.url,
              w.secret, d.attempts AS attempt, d.replays AS replay, d.retry_base,
              e.backfill_id
),
-- As in payloads.sql: each event's values and each webhook's JSON rendered once.
event_values AS MATERIALIZED (
    SELECT e.id,
           relay.entity_json_v2(e.entity, e.previous_value) AS previous_value,
           relay.entity_json_v2(e.entity, e.current_value) AS current_value
    FROM relay.events e
    WHERE $6 AND e.id IN (SELECT claimed.event_id FROM claimed)
),
webhook_values AS MATERIALIZED (
    SELECT w.id, relay.webhook_json_v2(w) AS webhook
    FROM relay.webhooks w
    WHERE $6 AND w.id IN (SELECT claimed.webhook_id FROM claimed)
)
SELECT c.*,
       CASE WHEN $6 THEN relay.payload_from_parts_v2(
           c.event, h.webhook, v.previous_value, v.current_value)
       END AS body
FROM claimed c
LEFT JOIN event_values v ON v.id = c.event_id
LEFT JOIN webhook_values h ON h.id = c.webhook_id;

-- name: record_attempts
-- Write a batch of attempts; a success ends its delivery, a failure schedules it
-- again, or fails it for good when no retry is left (a null delay).
WITH result AS (
    SELECT *
    FROM unnest($1::bigint[], $2::integer[], $3::text[], $4::integer[],
                $5::double precision[], $6::text[], $7::text[], $8::timestamptz[],
                $9::double precision[], $10::text[], $11::integer[])
        AS r (delivery_id, attempt, outcome, status_code, duration_ms, error,
              response_excerpt, attempted_at, retry_in_seconds, body, replay)
),
logged AS (
    INSERT INTO relay.attempts (delivery_id, attempt, outcome, status_code,
                                duration_ms, error, response_excerpt, attempted_at,
                                retry_delay_seconds, body, replay)
    SELECT r.delivery_id, r.attempt, r.outcome, r.status_code, r.duration_ms,
           r.error, r.response_excerpt, r.attempted_at, r.retry_in_seconds,
           r.body, r.replay
    FROM result r
    -- A delivery deleted with its webhook meanwhile has nothing left to record.
    JOIN relay.deliveries d ON d.id = r.delivery_id
    RETURNING 1
)
UPDATE relay.deliveries d
SET state = CASE
        WHEN r.outcome = 'delivered' THEN 'delivered'
        WHEN r.retry_in_seconds IS NULL THEN 'failed'
        ELSE d.state
    END,
    delivered_at = CASE WHEN r.outcome = 'delivered' THEN now() ELSE d.delivered_at END,
    next_attempt_at = CASE
        WHEN r.retry_in_seconds IS NULL THEN d.next_attempt_at
        ELSE now() + make_interval(secs => r.retry_in_seconds)
    END,
    claimed_by = NULL,
    last_status_code = r.status_code,
    last_error = r.error,
    updated_at = now()
FROM result r
WHERE d.id = r.delivery_id
    AND d.state = 'pending'
    -- A result of the run before a replay must not end the replay unsent.
    AND d.replays = r.replay
    -- A failure reported after the lease ran out must not undo a newer claim.
    AND (r.outcome = 'delivered' OR d.attempts = r.attempt);

-- name: release_claims
-- Give back claims that were never attempted, so another relay can take them now.
UPDATE relay.deliveries d
SET attempts = d.attempts - 1,
    next_attempt_at = now(),
    claimed_by = NULL,
    updated_at = now()
FROM unnest($1::bigint[], $2::integer[]) AS released (delivery_id, attempt)
WHERE d.id = released.delivery_id
    AND d.attempts = released.attempt
    AND d.claimed_by = $3
    AND d.state = 'pending';

-- name: lock_webhooks
-- Hold the webhooks whose health is about to change, in one order for every relay.
SELECT id FROM relay.webhooks WHERE id = ANY ($1::text[]) ORDER BY id FOR NO KEY UPDATE;

-- name: mark_health_update
-- Tell the status-change trigger that this transaction records its own changes.
SELECT set_config('relay.health_update', 'on', true);

-- name: update_webhook_health
-- Count failures in a row per webhook ($1 webhook, $2 outcome, $3 time, $6 status
-- code, $7 error of each attempt), turn it UNHEALTHY at $4 of them, HEALTHY at a
-- success, disable it on 410 or after failing $5 seconds without a success; keep
-- its last success and last failure; record each status change.
WITH result AS (
    SELECT *
    FROM unnest($1::text[], $2::text[], $3::timestamptz[], $6::integer[],
                $7::text[])
        AS r (webhook_id, outcome, attempted_at, status_code, error)
),
latest_failure AS (
    SELECT DISTINCT ON (r.webhook_id) r.*
    FROM result r
    WHERE r.outcome <> 'delivered'
    ORDER BY r.webhook_id, r.attempted_at DESC
),
last_success AS (
    SELECT r.webhook_id,
           max(r.attempted_at) FILTER (WHERE r.outcome = 'delivered') AS at,
           bool_or(r.outcome = 'gone') AS gone
    FROM result r
    GROUP BY r.webhook_id
),
tally AS (
    SELECT s.webhook_id, s.at AS succeeded_at, s.gone,
           count(*) FILTER (WHERE r.outcome <> 'delivered'
                            AND r.attempted_at > coalesce(s.at, '-infinity'))
               AS failures,
           min(r.attempted_at) FILTER (WHERE r.outcome <> 'delivered'
                                       AND r.attempted_at > coalesce(s.at, '-infinity'))
               AS first_failure
    FROM last_success s
    JOIN result r ON r.webhook_id = s.webhook_id
    GROUP BY s.webhook_id, s.at, s.gone
),
counted AS (
    SELECT w.id, w.status AS old_status, w.enabled AS old_enabled, t.gone,
           t.succeeded_at,
           CASE WHEN t.succeeded_at IS NULL
               THEN w.consecutive_failures + t.failures
               ELSE t.failures
           END AS failures,
           CASE
               WHEN t.failures = 0 THEN NULL
               WHEN t.succeeded_at IS NULL
                   THEN coalesce(w.failing_since, t.first_failure)
               ELSE t.first_failure
           END AS failing_since
    FROM relay.webhooks w
    JOIN tally t ON t.webhook_id = w.id
),
decided AS (
    SELECT c.*,
           CASE
               WHEN c.failures >= $4 THEN 'UNHEALTHY'
               WHEN c.succeeded_at IS NOT NULL THEN 'HEALTHY'
               ELSE c.old_status
           END AS new_status,
           c.old_enabled AND NOT c.gone
               AND coalesce(c.failing_since > now() - make_interval(secs => $5), true)
               AS new_enabled
    FROM counted c
),
updated AS (
    UPDATE relay.webhooks w
    SET consecutive_failures = d.failures,
        failing_since = d.failing_since,
        status = d.new_status,
        enabled = d.new_enabled,
        updated_at = CASE
            WHEN (d.new_status, d.new_enabled) = (d.old_status, d.old_enabled)
                THEN w.updated_at
            ELSE now()
        END,
        last_success_at = greatest(w.last_success_at, d.succeeded_at),
        last_failure_at = greatest(w.last_failure_at, f.attempted_at),
        last_failure_outcome = CASE WHEN f.attempted_at >= w.last_failure_at
            OR w.last_failure_at IS NULL AND f.attempted_at IS NOT NULL
            THEN f.outcome ELSE w.last_failure_outcome END,
        last_failure_status_code = CASE WHEN f.attempted_at >= w.last_failure_at
            OR w.last_failure_at IS NULL AND f.attempted_at IS NOT NULL
            THEN f.status_code ELSE w.last_failure_status_code END,
        last_failure_error = CASE WHEN f.attempted_at >= w.last_failure_at
            OR w.last_failure_at IS NULL AND f.attempted_at IS NOT NULL
            THEN f.error ELSE w.last_failure_error END
    FROM decided d
    LEFT JOIN latest_failure f ON f.webhook_id = d.id
    WHERE w.id = d.id
    RETURNING 1
)
INSERT INTO relay.webhook_status_changes
    (webhook_id, old_status, new_status, old_enabled, new_enabled, reason)
SELECT d.id, d.old_status, d.new_status, d.old_enabled, d.new_enabled,
       CASE
           WHEN d.old_enabled AND d.gone THEN 'the receiver answered 410 Gone'
           WHEN d.old_enabled AND NOT d.new_enabled
               THEN 'no success since ' || relay.iso_time_v1(d.failing_since)
           WHEN d.new_status = 'UNHEALTHY' THEN d.failures || ' failures in a row'
           ELSE 'delivered again'
       END
FROM decided d
WHERE (d.new_status, d.new_enabled) <> (d.old_status, d.old_enabled)
ORDER BY d.id
RETURNING webhook_id, old_status, new_status, old_enabled, new_enabled, reason;
