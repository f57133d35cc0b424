-- Events of assignees, tags and custom field values: a stable order, their
-- context when a company's delete reaches them, and a cost linear in the rows
-- of the statement.
--
-- Why the order: an UPDATE that gives an assignment (or a tagging, or a value)
-- to another user (tag, field) removes one member and adds another through the
-- same row, and the events were sorted by record and row alone. Their order was
-- whatever the sort left it: in a statement of 2,000 such rows about half came
-- out added-then-removed. The removal now comes first, as it would from a DELETE
-- and an INSERT.
--
-- Why the context: a company's delete reaches its users before its todos, so
-- their assignments go while the todo still lives but its project is gone. The
-- events were recorded without company, project or list. They now take them
-- from the rows the delete remembered (0006), as the delete events do.
--
-- Why the cost: the capture of 10,000 assignments took 40 s (and 150 s for
-- 3,000 next to 200,000 todos). Each record's lookups scanned the todos table
-- (see the note on collation below), and each record's set before the
-- statement scanned all the removed rows. Now 10,000 take about 1 s.
--
-- Same names and arguments: only the capture triggers call these functions.

CREATE OR REPLACE FUNCTION relay.record_relation_changes_v1(
    relation text, removed jsonb, added jsonb
) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- parent entity, parent key, member key, event prefix, changed field
    shape text[] := CASE relation
        WHEN 'todo_users' THEN
            ARRAY['todo', 'todo_id', 'user_id', 'TODO_ASSIGNEE', 'todoUsers']
        WHEN 'todo_tags' THEN
            ARRAY['todo', 'todo_id', 'tag_id', 'TODO_TAG', 'todoTags']
        WHEN 'todo_custom_fields' THEN
            ARRAY['todo', 'todo_id', 'custom_field_id', 'TODO_CUSTOM_FIELD', NULL]
        WHEN 'todo_checklist_item_users' THEN
            ARRAY['todo_checklist_item', 'todo_checklist_item_id', 'user_id',
                  'TODO_CHECKLIST_ITEM_ASSIGNEE', 'todoChecklistItemUsers']
    END;
    parent_key text := shape[2];
    member_key text := shape[3];
BEGIN
    WITH old_side AS (
        SELECT r->>parent_key AS parent_id, r->>member_key AS member_id,
               r AS row_value, position
        FROM jsonb_array_elements(removed) WITH ORDINALITY AS o (r, position)
    ),
    new_side AS (
        SELECT r->>parent_key AS parent_id, r->>member_key AS member_id, r AS row_value
        FROM jsonb_array_elements(added) r
    ),
    change AS (
        SELECT coalesce(n.parent_id, o.parent_id) AS parent_id,
               coalesce(n.member_id, o.member_id) AS member_id,
               coalesce(n.row_value, o.row_value)->>'id' AS row_id,
               -- Of one row's two changes, the removal comes first.
               o.row_value IS NULL AS is_addition,
               CASE WHEN shape[4] = 'TODO_CUSTOM_FIELD' THEN 'TODO_CUSTOM_FIELD_UPDATED'
                    WHEN o.row_value IS NULL THEN shape[4] || '_ADDED'
                    ELSE shape[4] || '_REMOVED' END AS event
        FROM old_side o
        FULL JOIN new_side n ON n.parent_id = o.parent_id AND n.member_id = o.member_id
        WHERE o.row_value IS NULL OR n.row_value IS NULL
            OR o.row_value->'value' IS DISTINCT FROM n.row_value->'value'
    ),
    parent AS (
        SELECT p.parent_id, p.row_value, s.after_set,
               coalesce(c.todo_id, departing.context->'todo'->>'id') AS todo_id,
               coalesce(c.todo_list_id, departing.context->'todo_list'->>'id')
                   AS todo_list_id,
               coalesce(c.project_id, departing.context->'project'->>'id')
                   AS project_id,
               coalesce(c.company_id, departing.context->'company'->>'id')
                   AS company_id
        FROM (SELECT DISTINCT parent_id FROM change) touched
        CROSS JOIN LATERAL (
            SELECT touched.parent_id,
                   relay.live_parent_v1(shape[1], touched.parent_id) AS row_value
        ) p
        CROSS JOIN LATERAL (
            SELECT relay.relation_set_v1(relation, p.parent_id) AS after_set
        ) s
        LEFT JOIN relay.todo_contexts_v2 c ON c.todo_id = CASE shape[1]
            WHEN 'todo' THEN p.parent_id
            ELSE (SELECT k.todo_id FROM public.todo_checklists k
                  WHERE k.id = p.row_value->>'todo_checklist_id')
        END
        -- Only when a row above the parent is departing: the live join missed.
        CROSS JOIN LATERAL (
            SELECT CASE WHEN c.todo_id IS NULL THEN
                CASE shape[1]
                    WHEN 'todo' THEN relay.context_of_v1('todo', p.parent_id)
                    ELSE relay.context_of_v1(
                        'todo_checklist', p.row_value->>'todo_checklist_id')
                END
            END AS context
        ) departing
        WHERE p.row_value IS NOT NULL
    ),
    -- Each record's set before the statement: its set after, less the rows the
    -- statement wrote, then the rows it removed. Joined once, not looked up per
    -- record, which made big statements quadratic.
    before_sets AS (
        SELECT kept.parent_id,
               jsonb_agg(kept.row_value ORDER BY kept.source, kept.position)
                   AS before_set
        FROM (
            SELECT parent.parent_id, a.row_value, 1 AS source, a.position
            FROM parent
            CROSS JOIN LATERAL jsonb_array_elements(parent.after_set)
                WITH ORDINALITY AS a (row_value, position)
            WHERE NOT EXISTS (
                SELECT FROM new_side n
                WHERE n.row_value->>'id' = a.row_value->>'id')
            UNION ALL
            SELECT o.parent_id, o.row_value, 2, o.position
            FROM old_side o
            WHERE o.parent_id IN (SELECT parent.parent_id FROM parent)
        ) kept
        GROUP BY kept.parent_id
    )
    INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                              actor_id, todo_id, todo_list_ids, changed_fields,
                              previous_value, current_value)
    SELECT change.event, shape[1], parent.parent_id, parent.company_id,
           parent.project_id, relay.actor_id_v1(), parent.todo_id,
           ARRAY[parent.todo_list_id], ARRAY[coalesce(shape[5], change.member_id)],
           parent.row_value
               || jsonb_build_object('_' || relation, coalesce(b.before_set, '[]')),
           parent.row_value || jsonb_build_object('_' || relation, parent.after_set)
    FROM change
    JOIN parent ON parent.parent_id = change.parent_id
    LEFT JOIN before_sets b ON b.parent_id = change.parent_id
    ORDER BY change.parent_id, change.row_id, change.is_addition;
END;
$$;

-- The capture passes its table's name as text of the default collation. As a
-- `name` it was of collation "C", which the functions it calls took on for
-- their own text: their lookups of a todo or a set by id could then use no
-- index (the ids' indexes are of the default collation), and every assignment,
-- tagging or value read the whole todos table once per record it touched.
CREATE OR REPLACE FUNCTION relay.capture_relations_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    removed jsonb := '[]';
    added jsonb := '[]';
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT coalesce(jsonb_agg(to_jsonb(o)), '[]') INTO removed FROM old_rows o;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT coalesce(jsonb_agg(to_jsonb(n)), '[]') INTO added FROM new_rows n;
    END IF;
    PERFORM relay.record_relation_changes_v1(
        TG_TABLE_NAME::text COLLATE "default", removed, added);
    RETURN NULL;
END;
$$;
