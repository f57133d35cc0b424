-- Capture: statement-level triggers with transition tables write one outbox row per
-- event, in the writing transaction; a trigger on the outbox rings the doorbell.
--
-- Why statement-level: one INSERT ... SELECT per statement whatever its row count,
-- so a bulk UPDATE costs one set-based insert instead of one trigger call per row.
-- Why SECURITY DEFINER with a pinned search_path: the application's roles need no
-- rights on the relay schema, and no session setting can redirect a name used here.
-- The doorbell is a NOTIFY with an empty payload: the relay reads the rows itself.

CREATE FUNCTION relay.actor_id_v1() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT nullif(current_setting('relay.actor_id', true), '')
$$;

-- Where a list or a todo belongs: the captures below look context up here.
CREATE VIEW relay.list_contexts_v1 AS
SELECT l.id AS todo_list_id, l.project_id, p.company_id
FROM public.todo_lists l
JOIN public.projects p ON p.id = l.project_id;

CREATE VIEW relay.todo_contexts_v1 AS
SELECT t.id AS todo_id, c.project_id, c.company_id
FROM public.todos t
JOIN relay.list_contexts_v1 c ON c.todo_list_id = t.todo_list_id;

-- The doorbell rings once per statement that wrote events, whichever capture wrote
-- them; PostgreSQL folds identical notifications of one transaction into one.
CREATE FUNCTION relay.ring_doorbell_v1() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM new_events) THEN
        PERFORM pg_notify('relay_events_v1', '');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER relay_doorbell_trigger AFTER INSERT ON relay.events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION relay.ring_doorbell_v1();

CREATE FUNCTION relay.capture_todos_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, previous_value, current_value)
        SELECT 'TODO_CREATED', 'todo', n.id, c.company_id, c.project_id,
               relay.actor_id_v1(), NULL, to_jsonb(n)
        FROM new_rows n
        LEFT JOIN relay.list_contexts_v1 c ON c.todo_list_id = n.todo_list_id
        ORDER BY n.id;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, previous_value, current_value)
        SELECT change.event, 'todo', n.id, c.company_id, c.project_id,
               relay.actor_id_v1(), to_jsonb(o), to_jsonb(n)
        FROM old_rows o
        JOIN new_rows n ON n.id = o.id
        CROSS JOIN LATERAL (VALUES
            (1, 'TODO_NAME_CHANGED', o.title IS DISTINCT FROM n.title),
            (2, 'TODO_MOVED', o.todo_list_id IS DISTINCT FROM n.todo_list_id)
        ) AS change (ordinal, event, happened)
        LEFT JOIN relay.list_contexts_v1 c ON c.todo_list_id = n.todo_list_id
        WHERE change.happened
        ORDER BY n.id, change.ordinal;
    ELSE
        -- TODO(issue 3): keep the context of a todo whose list went in the same cascade.
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, previous_value, current_value)
        SELECT 'TODO_DELETED', 'todo', o.id, c.company_id, c.project_id,
               relay.actor_id_v1(), to_jsonb(o), NULL
        FROM old_rows o
        LEFT JOIN relay.list_contexts_v1 c ON c.todo_list_id = o.todo_list_id
        ORDER BY o.id;
    END IF;

    RETURN NULL;
END;
$$;

CREATE FUNCTION relay.capture_todo_lists_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, previous_value, current_value)
        SELECT 'TODO_LIST_CREATED', 'todo_list', n.id, p.company_id, n.project_id,
               relay.actor_id_v1(), NULL, to_jsonb(n)
        FROM new_rows n
        LEFT JOIN public.projects p ON p.id = n.project_id
        ORDER BY n.id;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, previous_value, current_value)
        SELECT 'TODO_LIST_NAME_CHANGED', 'todo_list', n.id, p.company_id,
               n.project_id, relay.actor_id_v1(), to_jsonb(o), to_jsonb(n)
        FROM old_rows o
        JOIN new_rows n ON n.id = o.id
        LEFT JOIN public.projects p ON p.id = n.project_id
        WHERE o.title IS DISTINCT FROM n.title
        ORDER BY n.id;
    ELSE
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, previous_value, current_value)
        SELECT 'TODO_LIST_DELETED', 'todo_list', o.id, p.company_id, o.project_id,
               relay.actor_id_v1(), to_jsonb(o), NULL
        FROM old_rows o
        LEFT JOIN public.projects p ON p.id = o.project_id
        ORDER BY o.id;
    END IF;

    RETURN NULL;
END;
$$;

CREATE FUNCTION relay.capture_comments_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, previous_value, current_value)
        SELECT 'COMMENT_CREATED', 'comment', n.id, c.company_id, c.project_id,
               relay.actor_id_v1(), NULL, to_jsonb(n)
        FROM new_rows n
        LEFT JOIN relay.todo_contexts_v1 c ON c.todo_id = n.todo_id
        ORDER BY n.id;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, previous_value, current_value)
        SELECT 'COMMENT_UPDATED', 'comment', n.id, c.company_id, c.project_id,
               relay.actor_id_v1(), to_jsonb(o), to_jsonb(n)
        FROM old_rows o
        JOIN new_rows n ON n.id = o.id
        LEFT JOIN relay.todo_contexts_v1 c ON c.todo_id = n.todo_id
        WHERE (o.html, o.text) IS DISTINCT FROM (n.html, n.text)
        ORDER BY n.id;
    ELSE
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, previous_value, current_value)
        SELECT 'COMMENT_DELETED', 'comment', o.id, c.company_id, c.project_id,
               relay.actor_id_v1(), to_jsonb(o), NULL
        FROM old_rows o
        LEFT JOIN relay.todo_contexts_v1 c ON c.todo_id = o.todo_id
        ORDER BY o.id;
    END IF;

    RETURN NULL;
END;
$$;

CREATE FUNCTION relay.capture_todo_checklists_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, previous_value, current_value)
        SELECT 'TODO_CHECKLIST_CREATED', 'todo_checklist', n.id, c.company_id,
               c.project_id, relay.actor_id_v1(), NULL, to_jsonb(n)
        FROM new_rows n
        LEFT JOIN relay.todo_contexts_v1 c ON c.todo_id = n.todo_id
        ORDER BY n.id;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, previous_value, current_value)
        SELECT 'TODO_CHECKLIST_NAME_CHANGED', 'todo_checklist', n.id, c.company_id,
               c.project_id, relay.actor_id_v1(), to_jsonb(o), to_jsonb(n)
        FROM old_rows o
        JOIN new_rows n ON n.id = o.id
        LEFT JOIN relay.todo_contexts_v1 c ON c.todo_id = n.todo_id
        WHERE o.title IS DISTINCT FROM n.title
        ORDER BY n.id;
    ELSE
        INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                                  actor_id, previous_value, current_value)
        SELECT 'TODO_CHECKLIST_DELETED', 'todo_checklist', o.id, c.company_id,
               c.project_id, relay.actor_id_v1(), to_jsonb(o), NULL
        FROM old_rows o
        LEFT JOIN relay.todo_contexts_v1 c ON c.todo_id = o.todo_id
        ORDER BY o.id;
    END IF;

    RETURN NULL;
END;
$$;

-- TODO(issue 3): capture the checklist item events beyond TODO_CHECKLIST_ITEM_CREATED.
CREATE FUNCTION relay.capture_todo_checklist_items_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO relay.events (event, entity, entity_id, company_id, project_id,
                              actor_id, previous_value, current_value)
    SELECT 'TODO_CHECKLIST_ITEM_CREATED', 'todo_checklist_item', n.id, c.company_id,
           c.project_id, relay.actor_id_v1(), NULL, to_jsonb(n)
    FROM new_rows n
    LEFT JOIN public.todo_checklists k ON k.id = n.todo_checklist_id
    LEFT JOIN relay.todo_contexts_v1 c ON c.todo_id = k.todo_id
    ORDER BY n.id;

    RETURN NULL;
END;
$$;

CREATE TRIGGER relay_capture_insert_trigger AFTER INSERT ON public.todos
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION relay.capture_todos_v1();
CREATE TRIGGER relay_capture_update_trigger AFTER UPDATE ON public.todos
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION relay.capture_todos_v1();
CREATE TRIGGER relay_capture_delete_trigger AFTER DELETE ON public.todos
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION relay.capture_todos_v1();

CREATE TRIGGER relay_capture_insert_trigger AFTER INSERT ON public.todo_lists
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION relay.capture_todo_lists_v1();
CREATE TRIGGER relay_capture_update_trigger AFTER UPDATE ON public.todo_lists
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION relay.capture_todo_lists_v1();
CREATE TRIGGER relay_capture_delete_trigger AFTER DELETE ON public.todo_lists
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION relay.capture_todo_lists_v1();

CREATE TRIGGER relay_capture_insert_trigger AFTER INSERT ON public.comments
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION relay.capture_comments_v1();
CREATE TRIGGER relay_capture_update_trigger AFTER UPDATE ON public.comments
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION relay.capture_comments_v1();
CREATE TRIGGER relay_capture_delete_trigger AFTER DELETE ON public.comments
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION relay.capture_comments_v1();

CREATE TRIGGER relay_capture_insert_trigger AFTER INSERT ON public.todo_checklists
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION relay.capture_todo_checklists_v1();
CREATE TRIGGER relay_capture_update_trigger AFTER UPDATE ON public.todo_checklists
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION relay.capture_todo_checklists_v1();
CREATE TRIGGER relay_capture_delete_trigger AFTER DELETE ON public.todo_checklists
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION relay.capture_todo_checklists_v1();

CREATE TRIGGER relay_capture_insert_trigger AFTER INSERT
    ON public.todo_checklist_items
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION relay.capture_todo_checklist_items_v1();
