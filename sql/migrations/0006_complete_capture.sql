-- Capture, complete: every subscribable event of the contract, with the context of
-- a deleted entity kept even when the delete cascaded from its list or project.
--
-- Note on cascades. PostgreSQL runs ON DELETE CASCADE as row triggers of the parent
-- whose deletes are queued behind the parent's own statement triggers: the parent's
-- event comes first, and each child's capture runs once its parent row is gone. To
-- keep the context, a row trigger BEFORE DELETE on each parent (company, project,
-- list, todo, checklist, checklist item) remembers the departing row in
-- relay.departed_rows, where captures look when the live row is missing. Those
-- rows are only needed inside the deleting transaction; the relay forgets committed
-- ones as it fans events out. Only deletes pay for this.
--
-- Note on what an event carries. Each outbox row keeps the entity before and after
-- the change (snake_case rows). A delete also keeps its context (`_context`: the
-- rows of the checklist, todo, list, project and company above it) and a deleted
-- todo its assignees, tags and custom field values, because none of them can be
-- read later. An assignee, tag or custom field change keeps the todo's whole set
-- before and after (`_todo_users`, `_todo_tags`, `_todo_custom_fields`).
--
-- Note on replication. The triggers fire ALWAYS, so sessions that run with
-- session_replication_role = replica (logical replication subscribers, bulk loaders)
-- are captured too: no committed change escapes capture silently. TRUNCATE of a
-- captured table is refused for the same reason.

-- Where a list, todo or checklist belongs, for the captures of live rows.
CREATE VIEW relay.todo_contexts_v2 AS
SELECT t.id AS todo_id, t.todo_list_id, c.project_id, c.company_id
FROM public.todos t
JOIN relay.list_contexts_v1 c ON c.todo_list_id = t.todo_list_id;

CREATE VIEW relay.checklist_contexts_v2 AS
SELECT k.id AS todo_checklist_id, c.todo_id, c.todo_list_id, c.project_id,
       c.company_id
FROM public.todo_checklists k
JOIN relay.todo_contexts_v2 c ON c.todo_id = k.todo_id;

CREATE UNLOGGED TABLE relay.departed_rows (
    entity text NOT NULL,
    id text NOT NULL,
    row_value jsonb NOT NULL,
    remembered_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (entity, id)
);

-- A departing todo or checklist item also takes its assignees, tags and values
-- along: they go in the same cascade, after the todo's own event is captured. A
-- departing project takes its members' ids, which decide who may see its events.
CREATE FUNCTION relay.remember_departing_row_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    remembered jsonb := to_jsonb(OLD);
BEGIN
    IF TG_ARGV[0] = 'todo' THEN
        SELECT remembered || jsonb_build_object(
            '_todo_users', coalesce((SELECT jsonb_agg(to_jsonb(r))
                FROM public.todo_users r WHERE r.todo_id = OLD.id), '[]'),
            '_todo_tags', coalesce((SELECT jsonb_agg(to_jsonb(r))
                FROM public.todo_tags r WHERE r.todo_id = OLD.id), '[]'),
            '_todo_custom_fields', coalesce((SELECT jsonb_agg(to_jsonb(r))
                FROM public.todo_custom_fields r WHERE r.todo_id = OLD.id), '[]'))
        INTO remembered;
    ELSIF TG_ARGV[0] = 'project' THEN
        -- Its members, for the scope of the events of what goes with it.
        SELECT remembered || jsonb_build_object(
            '_member_ids', coalesce((SELECT jsonb_agg(m.user_id ORDER BY m.user_id)
                FROM public.project_users m WHERE m.project_id = OLD.id), '[]'))
        INTO remembered;
    ELSIF TG_ARGV[0] = 'todo_checklist_item' THEN
        SELECT remembered || jsonb_build_object(
            '_todo_checklist_item_users', coalesce((SELECT jsonb_agg(to_jsonb(r))
                FROM public.todo_checklist_item_users r
                WHERE r.todo_checklist_item_id = OLD.id), '[]'))
        INTO remembered;
    END IF;

    -- A row of the same id remembered earlier (deleted, inserted again) is stale.
    INSERT INTO relay.departed_rows AS d (entity, id, row_value)
    VALUES (TG_ARGV[0], OLD.id, remembered)
    ON CONFLICT (entity, id) DO UPDATE
    SET row_value = EXCLUDED.row_value, remembered_at = EXCLUDED.remembered_at;
    RETURN OLD;
END;
$$;

-- One row of a parent, live or departing, as jsonb. One small query per branch:
-- a single CASE of sub-selects would start all of them on every call.
CREATE FUNCTION relay.find_row_v1(entity text, row_id text) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found_row jsonb;
BEGIN
    IF entity = 'todo_checklist' THEN
        SELECT to_jsonb(r) INTO found_row FROM public.todo_checklists r
        WHERE r.id = row_id;
    ELSIF entity = 'todo' THEN
        SELECT to_jsonb(r) INTO found_row FROM public.todos r WHERE r.id = row_id;
    ELSIF entity = 'todo_list' THEN
        SELECT to_jsonb(r) INTO found_row FROM public.todo_lists r WHERE r.id = row_id;
    ELSIF entity = 'project' THEN
        SELECT to_jsonb(r) INTO found_row FROM public.projects r WHERE r.id = row_id;
    ELSIF entity = 'company' THEN
        SELECT to_jsonb(r) INTO found_row FROM public.companies r WHERE r.id = row_id;
    END IF;
    IF found_row IS NULL THEN
        SELECT d.row_value INTO found_row
        FROM relay.departed_rows d
        WHERE d.entity = find_row_v1.entity AND d.id = row_id;
    END IF;
    RETURN found_row;
END;
$$;

-- The chain of rows above an entity, from its parent up to the company:
-- {"todo_checklist": ..., "todo": ..., "todo_list": ..., "project": ..., "company": ...}
CREATE FUNCTION relay.context_of_v1(parent_entity text, parent_id text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    context jsonb := '{}';
    level text := parent_entity;
    row_id text := parent_id;
    found_row jsonb;
BEGIN
    WHILE level IS NOT NULL AND row_id IS NOT NULL LOOP
        found_row := relay.find_row_v1(level, row_id);
        EXIT WHEN found_row IS NULL;
        context := context || jsonb_build_object(level, found_row);
        SELECT up.parent, found_row->>up.key INTO level, row_id
        FROM (VALUES
            ('todo_checklist', 'todo', 'todo_id'),
            ('todo', 'todo_list', 'todo_list_id'),
            ('todo_list', 'project', 'project_id'),
            ('project', 'company', 'company_id')
        ) AS up (child, parent, key)
        WHERE up.child = level;
        IF NOT FOUND THEN
            level := NULL;
        END IF;
    END LOOP;
    RETURN context;
END;
$$;

-- Record events: the todo itself.
CREATE OR REPLACE FUNCTION relay.capture_todos_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, todo_id, todo_list_ids,
                                  previous_value, current_value)
        SELECT 'TODO_CREATED', 'todo', n.id, c.company_id, c.project_id,
               relay.actor_id_v1(), n.id, ARRAY[n.todo_list_id], NULL, to_jsonb(n)
        FROM new_rows n
        LEFT JOIN relay.list_contexts_v1 c ON c.todo_list_id = n.todo_list_id
        ORDER BY n.id;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, todo_id, todo_list_ids, changed_fields,
                                  previous_value, current_value)
        SELECT change.event, 'todo', n.id, c.company_id, c.project_id,
               relay.actor_id_v1(), n.id,
               CASE WHEN o.todo_list_id = n.todo_list_id THEN ARRAY[n.todo_list_id]
                    ELSE ARRAY[o.todo_list_id, n.todo_list_id] END,
               ARRAY[change.field], to_jsonb(o), to_jsonb(n)
        FROM old_rows o
        JOIN new_rows n ON n.id = o.id
        CROSS JOIN LATERAL (VALUES
            (1, 'TODO_NAME_CHANGED', 'title', o.title IS DISTINCT FROM n.title),
            (2, 'TODO_MOVED', 'todoListId', o.todo_list_id <> n.todo_list_id),
            (3, 'TODO_DONE_STATUS_UPDATED', 'done', o.done <> n.done),
            (4, CASE WHEN o.dued_at IS NULL THEN 'TODO_DUE_DATE_ADDED'
                     WHEN n.dued_at IS NULL THEN 'TODO_DUE_DATE_REMOVED'
                     ELSE 'TODO_DUE_DATE_UPDATED' END,
             'duedAt', o.dued_at IS DISTINCT FROM n.dued_at)
        ) AS change (ordinal, event, field, happened)
        LEFT JOIN relay.list_contexts_v1 c ON c.todo_list_id = n.todo_list_id
        WHERE change.happened
        ORDER BY n.id, change.ordinal;
    ELSE
        -- EXECUTE plans this for the rows at hand: a plan cached while
        -- relay.departed_rows was nearly empty would scan it once per row.
        EXECUTE $query$
        -- One context per parent, computed once: a bulk delete usually has few.
        WITH x AS MATERIALIZED (
            SELECT parent.id, relay.context_of_v1('todo_list', parent.id) AS context
            FROM (SELECT DISTINCT todo_list_id AS id FROM old_rows) AS parent
        )
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, todo_id, todo_list_ids,
                                  previous_value, current_value)
        SELECT 'TODO_DELETED', 'todo', o.id, x.context->'company'->>'id',
               x.context->'project'->>'id', relay.actor_id_v1(), o.id,
               ARRAY[o.todo_list_id],
               coalesce(remembered.row_value, to_jsonb(o))
                   || jsonb_build_object('_context', x.context),
               NULL
        FROM old_rows o
        JOIN x ON x.id = o.todo_list_id
        LEFT JOIN relay.departed_rows remembered
            ON remembered.entity = 'todo' AND remembered.id = o.id
        ORDER BY o.id
        $query$;
    END IF;

    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION relay.capture_todo_lists_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, todo_list_ids, previous_value,
                                  current_value)
        SELECT 'TODO_LIST_CREATED', 'todo_list', n.id, p.company_id, n.project_id,
               relay.actor_id_v1(), ARRAY[n.id], NULL, to_jsonb(n)
        FROM new_rows n
        LEFT JOIN public.projects p ON p.id = n.project_id
        ORDER BY n.id;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, todo_list_ids, changed_fields,
                                  previous_value, current_value)
        SELECT 'TODO_LIST_NAME_CHANGED', 'todo_list', n.id, p.company_id,
               n.project_id, relay.actor_id_v1(), ARRAY[n.id], ARRAY['title'],
               to_jsonb(o), to_jsonb(n)
        FROM old_rows o
        JOIN new_rows n ON n.id = o.id
        LEFT JOIN public.projects p ON p.id = n.project_id
        WHERE o.title IS DISTINCT FROM n.title
        ORDER BY n.id;
    ELSE
        -- One context per parent, computed once: a bulk delete usually has few.
        WITH x AS MATERIALIZED (
            SELECT parent.id, relay.context_of_v1('project', parent.id) AS context
            FROM (SELECT DISTINCT project_id AS id FROM old_rows) AS parent
        )
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, todo_list_ids, previous_value,
                                  current_value)
        SELECT 'TODO_LIST_DELETED', 'todo_list', o.id, x.context->'company'->>'id',
               o.project_id, relay.actor_id_v1(), ARRAY[o.id],
               to_jsonb(o) || jsonb_build_object('_context', x.context), NULL
        FROM old_rows o
        JOIN x ON x.id = o.project_id
        ORDER BY o.id;
    END IF;

    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION relay.capture_comments_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, todo_id, todo_list_ids,
                                  previous_value, current_value)
        SELECT 'COMMENT_CREATED', 'comment', n.id, c.company_id, c.project_id,
               relay.actor_id_v1(), n.todo_id, ARRAY[c.todo_list_id],
               NULL, to_jsonb(n)
        FROM new_rows n
        LEFT JOIN relay.todo_contexts_v2 c ON c.todo_id = n.todo_id
        ORDER BY n.id;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, todo_id, todo_list_ids, changed_fields,
                                  previous_value, current_value)
        SELECT 'COMMENT_UPDATED', 'comment', n.id, c.company_id, c.project_id,
               relay.actor_id_v1(), n.todo_id, ARRAY[c.todo_list_id],
               array_remove(ARRAY[
                   CASE WHEN o.html IS DISTINCT FROM n.html THEN 'html' END,
                   CASE WHEN o.text IS DISTINCT FROM n.text THEN 'text' END], NULL),
               to_jsonb(o), to_jsonb(n)
        FROM old_rows o
        JOIN new_rows n ON n.id = o.id
        LEFT JOIN relay.todo_contexts_v2 c ON c.todo_id = n.todo_id
        WHERE (o.html, o.text) IS DISTINCT FROM (n.html, n.text)
        ORDER BY n.id;
    ELSE
        -- One context per parent, computed once: a bulk delete usually has few.
        WITH x AS MATERIALIZED (
            SELECT parent.id, relay.context_of_v1('todo', parent.id) AS context
            FROM (SELECT DISTINCT todo_id AS id FROM old_rows) AS parent
        )
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, todo_id, todo_list_ids,
                                  previous_value, current_value)
        SELECT 'COMMENT_DELETED', 'comment', o.id, x.context->'company'->>'id',
               x.context->'project'->>'id', relay.actor_id_v1(), o.todo_id,
               ARRAY[x.context->'todo_list'->>'id'],
               to_jsonb(o) || jsonb_build_object('_context', x.context), NULL
        FROM old_rows o
        JOIN x ON x.id = o.todo_id
        ORDER BY o.id;
    END IF;

    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION relay.capture_todo_checklists_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, todo_id, todo_list_ids,
                                  previous_value, current_value)
        SELECT 'TODO_CHECKLIST_CREATED', 'todo_checklist', n.id, c.company_id,
               c.project_id, relay.actor_id_v1(), n.todo_id, ARRAY[c.todo_list_id],
               NULL, to_jsonb(n)
        FROM new_rows n
        LEFT JOIN relay.todo_contexts_v2 c ON c.todo_id = n.todo_id
        ORDER BY n.id;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, todo_id, todo_list_ids, changed_fields,
                                  previous_value, current_value)
        SELECT 'TODO_CHECKLIST_NAME_CHANGED', 'todo_checklist', n.id, c.company_id,
               c.project_id, relay.actor_id_v1(), n.todo_id, ARRAY[c.todo_list_id],
               ARRAY['title'], to_jsonb(o), to_jsonb(n)
        FROM old_rows o
        JOIN new_rows n ON n.id = o.id
        LEFT JOIN relay.todo_contexts_v2 c ON c.todo_id = n.todo_id
        WHERE o.title IS DISTINCT FROM n.title
        ORDER BY n.id;
    ELSE
        -- One context per parent, computed once: a bulk delete usually has few.
        WITH x AS MATERIALIZED (
            SELECT parent.id, relay.context_of_v1('todo', parent.id) AS context
            FROM (SELECT DISTINCT todo_id AS id FROM old_rows) AS parent
        )
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, todo_id, todo_list_ids,
                                  previous_value, current_value)
        SELECT 'TODO_CHECKLIST_DELETED', 'todo_checklist', o.id,
               x.context->'company'->>'id', x.context->'project'->>'id',
               relay.actor_id_v1(), o.todo_id, ARRAY[x.context->'todo_list'->>'id'],
               to_jsonb(o) || jsonb_build_object('_context', x.context), NULL
        FROM old_rows o
        JOIN x ON x.id = o.todo_id
        ORDER BY o.id;
    END IF;

    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION relay.capture_todo_checklist_items_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, todo_id, todo_list_ids,
                                  previous_value, current_value)
        SELECT 'TODO_CHECKLIST_ITEM_CREATED', 'todo_checklist_item', n.id,
               c.company_id, c.project_id, relay.actor_id_v1(), c.todo_id,
               ARRAY[c.todo_list_id], NULL, to_jsonb(n)
        FROM new_rows n
        LEFT JOIN relay.checklist_contexts_v2 c
            ON c.todo_checklist_id = n.todo_checklist_id
        ORDER BY n.id;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, todo_id, todo_list_ids, changed_fields,
                                  previous_value, current_value)
        SELECT change.event, 'todo_checklist_item', n.id, c.company_id,
               c.project_id, relay.actor_id_v1(), c.todo_id, ARRAY[c.todo_list_id],
               ARRAY[change.field], to_jsonb(o), to_jsonb(n)
        FROM old_rows o
        JOIN new_rows n ON n.id = o.id
        CROSS JOIN LATERAL (VALUES
            (1, 'TODO_CHECKLIST_ITEM_NAME_CHANGED', 'title',
             o.title IS DISTINCT FROM n.title),
            (2, 'TODO_CHECKLIST_ITEM_DONE_STATUS_UPDATED', 'done', o.done <> n.done),
            (3, CASE WHEN o.dued_at IS NULL THEN 'TODO_CHECKLIST_ITEM_DUE_DATE_ADDED'
                     WHEN n.dued_at IS NULL THEN 'TODO_CHECKLIST_ITEM_DUE_DATE_REMOVED'
                     ELSE 'TODO_CHECKLIST_ITEM_DUE_DATE_UPDATED' END,
             'duedAt', o.dued_at IS DISTINCT FROM n.dued_at)
        ) AS change (ordinal, event, field, happened)
        LEFT JOIN relay.checklist_contexts_v2 c
            ON c.todo_checklist_id = n.todo_checklist_id
        WHERE change.happened
        ORDER BY n.id, change.ordinal;
    ELSE
        EXECUTE $query$
        -- One context per parent, computed once: a bulk delete usually has few.
        WITH x AS MATERIALIZED (
            SELECT parent.id, relay.context_of_v1('todo_checklist', parent.id) AS context
            FROM (SELECT DISTINCT todo_checklist_id AS id FROM old_rows) AS parent
        )
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, todo_id, todo_list_ids,
                                  previous_value, current_value)
        SELECT 'TODO_CHECKLIST_ITEM_DELETED', 'todo_checklist_item', o.id,
               x.context->'company'->>'id', x.context->'project'->>'id',
               relay.actor_id_v1(), x.context->'todo'->>'id',
               ARRAY[x.context->'todo_list'->>'id'],
               coalesce(remembered.row_value, to_jsonb(o))
                   || jsonb_build_object('_context', x.context),
               NULL
        FROM old_rows o
        JOIN x ON x.id = o.todo_checklist_id
        LEFT JOIN relay.departed_rows remembered
            ON remembered.entity = 'todo_checklist_item' AND remembered.id = o.id
        ORDER BY o.id
        $query$;
    END IF;

    RETURN NULL;
END;
$$;

-- Project-level definitions: tags and custom fields.
CREATE FUNCTION relay.capture_tags_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, previous_value, current_value)
        SELECT 'TAG_CREATED', 'tag', n.id, p.company_id, n.project_id,
               relay.actor_id_v1(), NULL, to_jsonb(n)
        FROM new_rows n
        LEFT JOIN public.projects p ON p.id = n.project_id
        ORDER BY n.id;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, changed_fields, previous_value,
                                  current_value)
        SELECT 'TAG_UPDATED', 'tag', n.id, p.company_id, n.project_id,
               relay.actor_id_v1(),
               array_remove(ARRAY[
                   CASE WHEN o.title IS DISTINCT FROM n.title THEN 'title' END,
                   CASE WHEN o.color IS DISTINCT FROM n.color THEN 'color' END], NULL),
               to_jsonb(o), to_jsonb(n)
        FROM old_rows o
        JOIN new_rows n ON n.id = o.id
        LEFT JOIN public.projects p ON p.id = n.project_id
        WHERE (o.title, o.color) IS DISTINCT FROM (n.title, n.color)
        ORDER BY n.id;
    ELSE
        -- One context per parent, computed once: a bulk delete usually has few.
        WITH x AS MATERIALIZED (
            SELECT parent.id, relay.context_of_v1('project', parent.id) AS context
            FROM (SELECT DISTINCT project_id AS id FROM old_rows) AS parent
        )
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, previous_value, current_value)
        SELECT 'TAG_DELETED', 'tag', o.id, x.context->'company'->>'id', o.project_id,
               relay.actor_id_v1(),
               to_jsonb(o) || jsonb_build_object('_context', x.context), NULL
        FROM old_rows o
        JOIN x ON x.id = o.project_id
        ORDER BY o.id;
    END IF;

    RETURN NULL;
END;
$$;

CREATE FUNCTION relay.capture_custom_fields_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, previous_value, current_value)
        SELECT 'CUSTOM_FIELD_CREATED', 'custom_field', n.id, p.company_id,
               n.project_id, relay.actor_id_v1(), NULL, to_jsonb(n)
        FROM new_rows n
        LEFT JOIN public.projects p ON p.id = n.project_id
        ORDER BY n.id;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, changed_fields, previous_value,
                                  current_value)
        SELECT 'CUSTOM_FIELD_UPDATED', 'custom_field', n.id, p.company_id,
               n.project_id, relay.actor_id_v1(),
               array_remove(ARRAY[
                   CASE WHEN o.name IS DISTINCT FROM n.name THEN 'name' END,
                   CASE WHEN o.type IS DISTINCT FROM n.type THEN 'type' END], NULL),
               to_jsonb(o), to_jsonb(n)
        FROM old_rows o
        JOIN new_rows n ON n.id = o.id
        LEFT JOIN public.projects p ON p.id = n.project_id
        WHERE (o.name, o.type) IS DISTINCT FROM (n.name, n.type)
        ORDER BY n.id;
    ELSE
        -- One context per parent, computed once: a bulk delete usually has few.
        WITH x AS MATERIALIZED (
            SELECT parent.id, relay.context_of_v1('project', parent.id) AS context
            FROM (SELECT DISTINCT project_id AS id FROM old_rows) AS parent
        )
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, previous_value, current_value)
        SELECT 'CUSTOM_FIELD_DELETED', 'custom_field', o.id,
               x.context->'company'->>'id', o.project_id, relay.actor_id_v1(),
               to_jsonb(o) || jsonb_build_object('_context', x.context), NULL
        FROM old_rows o
        JOIN x ON x.id = o.project_id
        ORDER BY o.id;
    END IF;

    RETURN NULL;
END;
$$;

-- Assignees, tags and custom field values of a todo, and assignees of a checklist
-- item: one generic capture for the four relation tables. Each change gives one
-- event about the parent (the todo or the item), carrying the parent's whole set
-- before and after the statement. Rows that go because their parent goes give no
-- event: the parent's own delete event carries them.
CREATE FUNCTION relay.relation_set_v1(relation text, parent_id text) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found_set jsonb;
BEGIN
    IF relation = 'todo_users' THEN
        SELECT jsonb_agg(to_jsonb(r)) INTO found_set
        FROM public.todo_users r WHERE r.todo_id = parent_id;
    ELSIF relation = 'todo_tags' THEN
        SELECT jsonb_agg(to_jsonb(r)) INTO found_set
        FROM public.todo_tags r WHERE r.todo_id = parent_id;
    ELSIF relation = 'todo_custom_fields' THEN
        SELECT jsonb_agg(to_jsonb(r)) INTO found_set
        FROM public.todo_custom_fields r WHERE r.todo_id = parent_id;
    ELSIF relation = 'todo_checklist_item_users' THEN
        SELECT jsonb_agg(to_jsonb(r)) INTO found_set
        FROM public.todo_checklist_item_users r
        WHERE r.todo_checklist_item_id = parent_id;
    END IF;
    RETURN coalesce(found_set, '[]');
END;
$$;

CREATE FUNCTION relay.record_relation_changes_v1(
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
        SELECT r->>parent_key AS parent_id, r->>member_key AS member_id, r AS row_value
        FROM jsonb_array_elements(removed) r
    ),
    new_side AS (
        SELECT r->>parent_key AS parent_id, r->>member_key AS member_id, r AS row_value
        FROM jsonb_array_elements(added) r
    ),
    change AS (
        SELECT coalesce(n.parent_id, o.parent_id) AS parent_id,
               coalesce(n.member_id, o.member_id) AS member_id,
               coalesce(n.row_value, o.row_value)->>'id' AS row_id,
               CASE WHEN shape[4] = 'TODO_CUSTOM_FIELD' THEN 'TODO_CUSTOM_FIELD_UPDATED'
                    WHEN o.row_value IS NULL THEN shape[4] || '_ADDED'
                    ELSE shape[4] || '_REMOVED' END AS event
        FROM old_side o
        FULL JOIN new_side n ON n.parent_id = o.parent_id AND n.member_id = o.member_id
        WHERE o.row_value IS NULL OR n.row_value IS NULL
            OR o.row_value->'value' IS DISTINCT FROM n.row_value->'value'
    ),
    parent AS (
        SELECT p.parent_id, p.row_value, c.todo_id, c.todo_list_id, c.project_id,
               c.company_id, s.after_set
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
        WHERE p.row_value IS NOT NULL
    ),
    before_sets AS (
        SELECT parent.parent_id, coalesce(jsonb_agg(kept.row_value), '[]') AS before_set
        FROM parent
        CROSS JOIN LATERAL (
            SELECT a AS row_value
            FROM jsonb_array_elements(parent.after_set) a
            WHERE NOT EXISTS (
                SELECT FROM new_side n WHERE n.row_value->>'id' = a->>'id')
            UNION ALL
            SELECT o.row_value FROM old_side o WHERE o.parent_id = parent.parent_id
        ) kept
        GROUP BY parent.parent_id
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
    ORDER BY change.parent_id, change.row_id;
END;
$$;

CREATE FUNCTION relay.live_parent_v1(entity text, parent_id text) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF entity = 'todo' THEN
        RETURN (SELECT to_jsonb(t) FROM public.todos t WHERE t.id = parent_id);
    END IF;
    RETURN (SELECT to_jsonb(i) FROM public.todo_checklist_items i
            WHERE i.id = parent_id);
END;
$$;

CREATE FUNCTION relay.capture_relations_v1() RETURNS trigger
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
    PERFORM relay.record_relation_changes_v1(TG_TABLE_NAME, removed, added);
    RETURN NULL;
END;
$$;

-- A TRUNCATE would remove rows without a single event: refuse it.
CREATE FUNCTION relay.refuse_truncate_v1() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'TRUNCATE of %.% is refused: relay captures every change of it '
                    'for webhooks, and TRUNCATE would skip that', TG_TABLE_SCHEMA,
                    TG_TABLE_NAME
        USING ERRCODE = 'feature_not_supported',
              HINT = 'Use DELETE instead; it is captured like any other change.';
END;
$$;

-- The triggers. Captures of the five tables of migration 0003 keep their names.
CREATE TRIGGER relay_capture_update_trigger AFTER UPDATE
    ON public.todo_checklist_items
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION relay.capture_todo_checklist_items_v1();
CREATE TRIGGER relay_capture_delete_trigger AFTER DELETE
    ON public.todo_checklist_items
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION relay.capture_todo_checklist_items_v1();

DO $$
DECLARE
    captured record;
    relation text;
BEGIN
    FOR captured IN
        SELECT * FROM (VALUES
            ('tags', 'relay.capture_tags_v1'),
            ('custom_fields', 'relay.capture_custom_fields_v1'),
            ('todo_users', 'relay.capture_relations_v1'),
            ('todo_tags', 'relay.capture_relations_v1'),
            ('todo_custom_fields', 'relay.capture_relations_v1'),
            ('todo_checklist_item_users', 'relay.capture_relations_v1')
        ) AS t (table_name, function_name)
    LOOP
        EXECUTE format(
            'CREATE TRIGGER relay_capture_insert_trigger AFTER INSERT ON public.%I'
            ' REFERENCING NEW TABLE AS new_rows'
            ' FOR EACH STATEMENT EXECUTE FUNCTION %s()',
            captured.table_name, captured.function_name);
        EXECUTE format(
            'CREATE TRIGGER relay_capture_update_trigger AFTER UPDATE ON public.%I'
            ' REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows'
            ' FOR EACH STATEMENT EXECUTE FUNCTION %s()',
            captured.table_name, captured.function_name);
        EXECUTE format(
            'CREATE TRIGGER relay_capture_delete_trigger AFTER DELETE ON public.%I'
            ' REFERENCING OLD TABLE AS old_rows'
            ' FOR EACH STATEMENT EXECUTE FUNCTION %s()',
            captured.table_name, captured.function_name);
    END LOOP;

    -- Parents whose deletes cascade to captured children remember their rows.
    FOR captured IN
        SELECT * FROM (VALUES
            ('companies', 'company'),
            ('projects', 'project'),
            ('todo_lists', 'todo_list'),
            ('todos', 'todo'),
            ('todo_checklists', 'todo_checklist'),
            ('todo_checklist_items', 'todo_checklist_item')
        ) AS t (table_name, entity)
    LOOP
        EXECUTE format(
            'CREATE TRIGGER relay_remember_departing_trigger BEFORE DELETE'
            ' ON public.%I FOR EACH ROW'
            ' EXECUTE FUNCTION relay.remember_departing_row_v1(%L)',
            captured.table_name, captured.entity);
    END LOOP;

    FOREACH relation IN ARRAY ARRAY[
        'todo_lists', 'todos', 'todo_users', 'tags', 'todo_tags', 'custom_fields',
        'todo_custom_fields', 'comments', 'todo_checklists', 'todo_checklist_items',
        'todo_checklist_item_users']
    LOOP
        EXECUTE format(
            'CREATE TRIGGER relay_refuse_truncate_trigger BEFORE TRUNCATE'
            ' ON public.%I FOR EACH STATEMENT'
            ' EXECUTE FUNCTION relay.refuse_truncate_v1()', relation);
    END LOOP;

    -- Every relay trigger fires ALWAYS: under session_replication_role = replica too.
    FOR captured IN
        SELECT t.tgrelid::regclass AS table_name, t.tgname
        FROM pg_catalog.pg_trigger t
        WHERE NOT t.tgisinternal AND t.tgname LIKE 'relay\_%'
    LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I',
                       captured.table_name, captured.tgname);
    END LOOP;
END;
$$;
