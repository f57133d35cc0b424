-- Payloads, version 2: every entity of the catalogue, the filters in the webhook,
-- and the context of a deleted entity taken from its event when the live rows are
-- gone. Version 1 (0004) stays for anything built against it.
--
-- Each renderer takes a snapshot (a snake_case row as jsonb, typed again with
-- jsonb_populate_record) and the `_context` of the event: the rows above the
-- entity as they were when it was deleted. Live rows win over the context, so an
-- event delivered later shows its list, project and company as they are now, as
-- long as they exist. Assignees, tags and custom field values come from the
-- snapshot when it carries them (a change of them, or a deletion), else live.
-- json (not jsonb) keeps the keys in the order written here; PL/pgSQL keeps the
-- plans of its queries for the life of the relay's long-lived connections.

-- The row of `entity` with this id: live, else the one the context remembers,
-- else the one its delete event kept.
CREATE FUNCTION relay.context_row_v2(entity text, row_id text, context jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    live jsonb;
BEGIN
    live := CASE entity
        WHEN 'todo_checklist' THEN
            (SELECT to_jsonb(r) FROM public.todo_checklists r WHERE r.id = row_id)
        WHEN 'todo' THEN (SELECT to_jsonb(r) FROM public.todos r WHERE r.id = row_id)
        WHEN 'todo_list' THEN
            (SELECT to_jsonb(r) FROM public.todo_lists r WHERE r.id = row_id)
        WHEN 'project' THEN
            (SELECT to_jsonb(r) FROM public.projects r WHERE r.id = row_id)
        WHEN 'company' THEN
            (SELECT to_jsonb(r) FROM public.companies r WHERE r.id = row_id)
    END;
    IF live IS NULL AND context->entity->>'id' = row_id THEN
        RETURN context->entity;
    END IF;
    RETURN coalesce(live, relay.deleted_row_v2(entity, row_id));
END;
$$;

-- An entity deleted since: the row its delete event kept, with that event's
-- context inside, so that what hung below it still shows where it was.
CREATE FUNCTION relay.deleted_row_v2(entity text, row_id text) RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT e.previous_value
        FROM relay.events e
        WHERE e.current_value IS NULL
            AND e.entity = deleted_row_v2.entity
            AND e.entity_id = row_id
            AND e.previous_value IS NOT NULL
        ORDER BY e.id DESC
        LIMIT 1
    );
END;
$$;

CREATE FUNCTION relay.company_json_v2(company jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT json_build_object(
            'id', c.id,
            'uid', c.uid,
            'slug', c.slug,
            'name', c.name,
            'description', c.description,
            'createdAt', relay.iso_time_v1(c.created_at),
            'updatedAt', relay.iso_time_v1(c.updated_at))
        FROM jsonb_populate_record(NULL::public.companies, company) c
        WHERE company IS NOT NULL
    );
END;
$$;

CREATE FUNCTION relay.project_json_v2(project jsonb, context jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    -- A row kept by a delete event carries the context it had then.
    context := coalesce(project->'_context', context);
    RETURN (
        SELECT json_build_object(
            'id', p.id,
            'uid', p.uid,
            'slug', p.slug,
            'name', p.name,
            'description', p.description,
            'archived', p.archived,
            'category', p.category,
            'createdAt', relay.iso_time_v1(p.created_at),
            'updatedAt', relay.iso_time_v1(p.updated_at),
            'companyId', p.company_id,
            'company', relay.company_json_v2(
                relay.context_row_v2('company', p.company_id, context)))
        FROM jsonb_populate_record(NULL::public.projects, project) p
        WHERE project IS NOT NULL
    );
END;
$$;

CREATE FUNCTION relay.todo_list_json_v2(list jsonb, context jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    -- A row kept by a delete event carries the context it had then.
    context := coalesce(list->'_context', context);
    RETURN (
        SELECT json_build_object(
            'id', l.id,
            'uid', l.uid,
            'title', l.title,
            'position', l.position,
            'createdAt', relay.iso_time_v1(l.created_at),
            'updatedAt', relay.iso_time_v1(l.updated_at),
            'createdById', l.created_by_id,
            'projectId', l.project_id,
            'project', relay.project_json_v2(
                relay.context_row_v2('project', l.project_id, context), context))
        FROM jsonb_populate_record(NULL::public.todo_lists, list) l
        WHERE list IS NOT NULL
    );
END;
$$;

-- Assignees of a todo or a checklist item, from rows of either table.
CREATE FUNCTION relay.assignees_json_v2(assignments jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT coalesce(json_agg(json_build_object(
            'id', a.id,
            'uid', a.uid,
            'userId', a.user_id,
            'user', CASE WHEN u.id IS NOT NULL THEN json_build_object(
                'id', u.id,
                'uid', u.uid,
                'email', u.email,
                'firstName', u.first_name,
                'lastName', u.last_name) END,
            'createdAt', relay.iso_time_v1(a.created_at))
            ORDER BY a.created_at, a.id), '[]'::json)
        FROM jsonb_to_recordset(assignments)
            AS a (id text, uid text, user_id text, created_at timestamptz)
        LEFT JOIN public.users u ON u.id = a.user_id
    );
END;
$$;

CREATE FUNCTION relay.todo_tags_json_v2(taggings jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT coalesce(json_agg(json_build_object(
            'id', tt.id,
            'uid', tt.uid,
            'tagId', tt.tag_id,
            'tag', CASE WHEN t.id IS NOT NULL THEN json_build_object(
                'id', t.id,
                'uid', t.uid,
                'title', t.title,
                'color', t.color) END,
            'createdAt', relay.iso_time_v1(tt.created_at))
            ORDER BY tt.created_at, tt.id), '[]'::json)
        FROM jsonb_populate_recordset(NULL::public.todo_tags, taggings) tt
        CROSS JOIN LATERAL jsonb_populate_record(NULL::public.tags, coalesce(
            (SELECT to_jsonb(live) FROM public.tags live WHERE live.id = tt.tag_id),
            relay.deleted_row_v2('tag', tt.tag_id))) t
    );
END;
$$;

CREATE FUNCTION relay.todo_custom_fields_json_v2(field_values jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT coalesce(json_agg(json_build_object(
            'id', v.id,
            'uid', v.uid,
            'customFieldId', v.custom_field_id,
            'value', v.value,
            'customField', CASE WHEN cf.id IS NOT NULL THEN json_build_object(
                'id', cf.id,
                'uid', cf.uid,
                'name', cf.name,
                'type', cf.type) END,
            'updatedAt', relay.iso_time_v1(v.updated_at))
            ORDER BY cf.position, v.custom_field_id), '[]'::json)
        FROM jsonb_populate_recordset(NULL::public.todo_custom_fields, field_values) v
        CROSS JOIN LATERAL jsonb_populate_record(NULL::public.custom_fields, coalesce(
            (SELECT to_jsonb(live) FROM public.custom_fields live
             WHERE live.id = v.custom_field_id),
            relay.deleted_row_v2('custom_field', v.custom_field_id))) cf
    );
END;
$$;

CREATE FUNCTION relay.todo_json_v2(todo jsonb, context jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    -- A row kept by a delete event carries the context it had then.
    context := coalesce(todo->'_context', context);
    RETURN (
        SELECT json_build_object(
            'id', t.id,
            'uid', t.uid,
            'title', t.title,
            'html', t.html,
            'text', t.text,
            -- numeric travels as a string so that no precision is lost
            'position', t.position::text,
            'archived', t.archived,
            'done', t.done,
            'startedAt', relay.iso_time_v1(t.started_at),
            'duedAt', relay.iso_time_v1(t.dued_at),
            'timezone', t.timezone,
            'createdAt', relay.iso_time_v1(t.created_at),
            'updatedAt', relay.iso_time_v1(t.updated_at),
            'createdById', t.created_by_id,
            'todoListId', t.todo_list_id,
            'todoUsers', relay.assignees_json_v2(coalesce(
                todo->'_todo_users', relay.relation_set_v1('todo_users', t.id))),
            'todoTags', relay.todo_tags_json_v2(coalesce(
                todo->'_todo_tags', relay.relation_set_v1('todo_tags', t.id))),
            'todoCustomFields', relay.todo_custom_fields_json_v2(coalesce(
                todo->'_todo_custom_fields',
                relay.relation_set_v1('todo_custom_fields', t.id))),
            'todoList', relay.todo_list_json_v2(
                relay.context_row_v2('todo_list', t.todo_list_id, context), context))
        FROM jsonb_populate_record(NULL::public.todos, todo) t
        WHERE todo IS NOT NULL
    );
END;
$$;

CREATE FUNCTION relay.comment_json_v2(comment jsonb, context jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    -- A row kept by a delete event carries the context it had then.
    context := coalesce(comment->'_context', context);
    RETURN (
        SELECT json_build_object(
            'id', c.id,
            'uid', c.uid,
            'html', c.html,
            'text', c.text,
            'createdAt', relay.iso_time_v1(c.created_at),
            'updatedAt', relay.iso_time_v1(c.updated_at),
            'createdById', c.created_by_id,
            'todoId', c.todo_id,
            'todo', relay.todo_json_v2(
                relay.context_row_v2('todo', c.todo_id, context), context))
        FROM jsonb_populate_record(NULL::public.comments, comment) c
        WHERE comment IS NOT NULL
    );
END;
$$;

CREATE FUNCTION relay.todo_checklist_json_v2(checklist jsonb, context jsonb)
RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    -- A row kept by a delete event carries the context it had then.
    context := coalesce(checklist->'_context', context);
    RETURN (
        SELECT json_build_object(
            'id', k.id,
            'uid', k.uid,
            'title', k.title,
            'position', k.position,
            'createdAt', relay.iso_time_v1(k.created_at),
            'updatedAt', relay.iso_time_v1(k.updated_at),
            'createdById', k.created_by_id,
            'todoId', k.todo_id,
            'todo', relay.todo_json_v2(
                relay.context_row_v2('todo', k.todo_id, context), context))
        FROM jsonb_populate_record(NULL::public.todo_checklists, checklist) k
        WHERE checklist IS NOT NULL
    );
END;
$$;

CREATE FUNCTION relay.todo_checklist_item_json_v2(item jsonb, context jsonb)
RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    -- A row kept by a delete event carries the context it had then.
    context := coalesce(item->'_context', context);
    RETURN (
        SELECT json_build_object(
            'id', i.id,
            'uid', i.uid,
            'title', i.title,
            'position', i.position,
            'done', i.done,
            'startedAt', relay.iso_time_v1(i.started_at),
            'duedAt', relay.iso_time_v1(i.dued_at),
            'createdAt', relay.iso_time_v1(i.created_at),
            'updatedAt', relay.iso_time_v1(i.updated_at),
            'createdById', i.created_by_id,
            'todoChecklistId', i.todo_checklist_id,
            'todoChecklistItemUsers', relay.assignees_json_v2(coalesce(
                item->'_todo_checklist_item_users',
                relay.relation_set_v1('todo_checklist_item_users', i.id))),
            'todoChecklist', relay.todo_checklist_json_v2(
                relay.context_row_v2('todo_checklist', i.todo_checklist_id, context),
                context))
        FROM jsonb_populate_record(NULL::public.todo_checklist_items, item) i
        WHERE item IS NOT NULL
    );
END;
$$;

CREATE FUNCTION relay.tag_json_v2(tag jsonb, context jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    -- A row kept by a delete event carries the context it had then.
    context := coalesce(tag->'_context', context);
    RETURN (
        SELECT json_build_object(
            'id', t.id,
            'uid', t.uid,
            'title', t.title,
            'color', t.color,
            'createdAt', relay.iso_time_v1(t.created_at),
            'updatedAt', relay.iso_time_v1(t.updated_at),
            'projectId', t.project_id,
            'project', relay.project_json_v2(
                relay.context_row_v2('project', t.project_id, context), context))
        FROM jsonb_populate_record(NULL::public.tags, tag) t
        WHERE tag IS NOT NULL
    );
END;
$$;

CREATE FUNCTION relay.custom_field_json_v2(field jsonb, context jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    -- A row kept by a delete event carries the context it had then.
    context := coalesce(field->'_context', context);
    RETURN (
        SELECT json_build_object(
            'id', f.id,
            'uid', f.uid,
            'name', f.name,
            'type', f.type,
            'position', f.position,
            'createdAt', relay.iso_time_v1(f.created_at),
            'updatedAt', relay.iso_time_v1(f.updated_at),
            'projectId', f.project_id,
            'project', relay.project_json_v2(
                relay.context_row_v2('project', f.project_id, context), context))
        FROM jsonb_populate_record(NULL::public.custom_fields, field) f
        WHERE field IS NOT NULL
    );
END;
$$;

CREATE FUNCTION relay.entity_json_v2(entity text, snapshot jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    context jsonb := snapshot->'_context';
BEGIN
    RETURN CASE entity
        WHEN 'todo' THEN relay.todo_json_v2(snapshot, context)
        WHEN 'todo_list' THEN relay.todo_list_json_v2(snapshot, context)
        WHEN 'comment' THEN relay.comment_json_v2(snapshot, context)
        WHEN 'todo_checklist' THEN relay.todo_checklist_json_v2(snapshot, context)
        WHEN 'todo_checklist_item' THEN
            relay.todo_checklist_item_json_v2(snapshot, context)
        WHEN 'tag' THEN relay.tag_json_v2(snapshot, context)
        WHEN 'custom_field' THEN relay.custom_field_json_v2(snapshot, context)
    END;
END;
$$;

-- A health check (entity 'webhook') has neither value: the webhook says it all.
CREATE FUNCTION relay.payload_v2(event relay.events, webhook relay.webhooks)
RETURNS text
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT json_build_object(
            'event', event.event,
            'webhook', relay.webhook_json_v2(webhook),
            'previousValue', relay.entity_json_v2(event.entity, event.previous_value),
            'currentValue', relay.entity_json_v2(event.entity, event.current_value))::text
    );
END;
$$;
