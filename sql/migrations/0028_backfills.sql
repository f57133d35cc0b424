-- Backfills: the records that already exist, sent to one webhook as creation
-- events marked as backfill (relay/backfill.py, `relay backfill`).
--
-- Why a view of creation events: a backfill event must be the event that the
-- capture of the record's INSERT would have written (0006), so that fan-out
-- filters it and the payload functions render it exactly as a live one. Each
-- branch below mirrors the INSERT branch of its capture function, through the
-- same context views; capture writes no `_todo_tags` or `_context` keys on a
-- creation, and neither does this. The record's own created_at decides whether
-- a run covers it (records newer than the run's cutoff reach it live).
--
-- Why no foreign key from relay.events.backfill_id: every captured row would pay
-- a referential check at insert, on the path whose cost the benchmark watches.
-- A run's events name its webhook in for_webhook_id, so deleting the webhook
-- deletes them with its runs; nothing else deletes a run.

CREATE VIEW relay.creation_events_v1 AS
SELECT 'TODO_LIST_CREATED' AS event, 'todo_list' AS entity, n.id AS entity_id,
       p.company_id, n.project_id, NULL::text AS todo_id,
       ARRAY[n.id] AS todo_list_ids, to_jsonb(n) AS current_value,
       n.created_at AS record_created_at
FROM public.todo_lists n
LEFT JOIN public.projects p ON p.id = n.project_id
UNION ALL
SELECT 'TAG_CREATED', 'tag', n.id, p.company_id, n.project_id, NULL, NULL,
       to_jsonb(n), n.created_at
FROM public.tags n
LEFT JOIN public.projects p ON p.id = n.project_id
UNION ALL
SELECT 'CUSTOM_FIELD_CREATED', 'custom_field', n.id, p.company_id, n.project_id,
       NULL, NULL, to_jsonb(n), n.created_at
FROM public.custom_fields n
LEFT JOIN public.projects p ON p.id = n.project_id
UNION ALL
SELECT 'TODO_CREATED', 'todo', n.id, c.company_id, c.project_id, n.id,
       ARRAY[n.todo_list_id], to_jsonb(n), n.created_at
FROM public.todos n
LEFT JOIN relay.list_contexts_v1 c ON c.todo_list_id = n.todo_list_id
UNION ALL
SELECT 'COMMENT_CREATED', 'comment', n.id, c.company_id, c.project_id, n.todo_id,
       ARRAY[c.todo_list_id], to_jsonb(n), n.created_at
FROM public.comments n
LEFT JOIN relay.todo_contexts_v2 c ON c.todo_id = n.todo_id
UNION ALL
SELECT 'TODO_CHECKLIST_CREATED', 'todo_checklist', n.id, c.company_id,
       c.project_id, n.todo_id, ARRAY[c.todo_list_id], to_jsonb(n), n.created_at
FROM public.todo_checklists n
LEFT JOIN relay.todo_contexts_v2 c ON c.todo_id = n.todo_id
UNION ALL
SELECT 'TODO_CHECKLIST_ITEM_CREATED', 'todo_checklist_item', n.id, c.company_id,
       c.project_id, c.todo_id, ARRAY[c.todo_list_id], to_jsonb(n), n.created_at
FROM public.todo_checklist_items n
LEFT JOIN relay.checklist_contexts_v2 c ON c.todo_checklist_id = n.todo_checklist_id;

-- The ids of the next `size` records of a creation kind after `after`, in id
-- order, created by `cutoff`: the chunk a backfill writes next. Read through the
-- primary key, so a chunk costs the same at the end of a table as at its start
-- (the view above, a union of joins, would sort every remaining record first).
CREATE FUNCTION relay.next_record_ids_v1(
    kind text, after text, cutoff timestamptz, size integer
) RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    table_name text := CASE kind
        WHEN 'TODO_LIST_CREATED' THEN 'todo_lists'
        WHEN 'TAG_CREATED' THEN 'tags'
        WHEN 'CUSTOM_FIELD_CREATED' THEN 'custom_fields'
        WHEN 'TODO_CREATED' THEN 'todos'
        WHEN 'COMMENT_CREATED' THEN 'comments'
        WHEN 'TODO_CHECKLIST_CREATED' THEN 'todo_checklists'
        WHEN 'TODO_CHECKLIST_ITEM_CREATED' THEN 'todo_checklist_items'
    END;
    found text[];
BEGIN
    IF table_name IS NULL THEN
        RAISE EXCEPTION 'no backfill of %', kind
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format(
        'SELECT coalesce(array_agg(chunk.id ORDER BY chunk.id), ''{}'')'
        ' FROM (SELECT r.id FROM public.%I r'
        '       WHERE r.id > $1 AND r.created_at <= $2'
        '       ORDER BY r.id LIMIT $3) AS chunk',
        table_name)
    INTO found
    USING after, cutoff, size;
    RETURN found;
END;
$$;

-- One run of `relay backfill` for one webhook. It writes the creation events of
-- `kinds` one after the other (parents first); `phase` is the index of the kind
-- in progress (0-based) and `cursor` the last record id it has passed in that
-- phase. A chunk's events and its move of the cursor commit together, so a run
-- resumed after any interruption neither repeats nor skips a record.
CREATE TABLE relay.backfills (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id text NOT NULL REFERENCES relay.webhooks (id) ON DELETE CASCADE,
    kinds text[] NOT NULL CHECK (cardinality(kinds) > 0),
    phase integer NOT NULL DEFAULT 0 CHECK (phase >= 0),
    cursor text,
    -- Records created after it are left to live events.
    cutoff timestamptz NOT NULL,
    state text NOT NULL DEFAULT 'running'
        CHECK (state IN ('running', 'done', 'cancelled')),
    events_written bigint NOT NULL DEFAULT 0,
    -- Records in scope still to write when it last (re)started, plus those written.
    total bigint NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

-- At most one unfinished run per webhook: a second start resumes it instead.
CREATE UNIQUE INDEX backfills_one_running_idx ON relay.backfills (webhook_id)
    WHERE state = 'running';

-- The pacing of a run counts its events that the relay has not fanned out yet.
-- Live events (backfill_id null) never enter this index.
CREATE INDEX events_backfill_unfanned_idx ON relay.events (backfill_id)
    WHERE backfill_id IS NOT NULL AND fanned_out_at IS NULL;
