-- The payload functions of 0007 and 0008, rewritten for speed; every body they
-- return stays byte for byte the same, so their names and versions stay too.
--
-- Why: building payloads was two thirds of PostgreSQL's work per delivery. In
-- PL/pgSQL, `RETURN (SELECT ...)` and a CASE of sub-selects run through the full
-- executor on every call, which starts up every sub-plan of the expression
-- (context_row_v2 started five index scans to use one). A plain expression over
-- variables takes PL/pgSQL's fast path instead; lookups become one SELECT INTO
-- each, and empty relation sets skip their query.

CREATE OR REPLACE FUNCTION relay.context_row_v2(entity text, row_id text, context jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    live jsonb;
BEGIN
    IF entity = 'todo_checklist' THEN
        SELECT to_jsonb(r) INTO live FROM public.todo_checklists r WHERE r.id = row_id;
    ELSIF entity = 'todo' THEN
        SELECT to_jsonb(r) INTO live FROM public.todos r WHERE r.id = row_id;
    ELSIF entity = 'todo_list' THEN
        SELECT to_jsonb(r) INTO live FROM public.todo_lists r WHERE r.id = row_id;
    ELSIF entity = 'project' THEN
        SELECT to_jsonb(r) INTO live FROM public.projects r WHERE r.id = row_id;
    ELSIF entity = 'company' THEN
        SELECT to_jsonb(r) INTO live FROM public.companies r WHERE r.id = row_id;
    END IF;
    IF live IS NULL AND context->entity->>'id' = row_id THEN
        RETURN context->entity;
    END IF;
    RETURN coalesce(live, relay.deleted_row_v2(entity, row_id));
END;
$$;

CREATE OR REPLACE FUNCTION relay.webhook_json_v2(webhook relay.webhooks) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN json_build_object(
        'id', webhook.id,
        'uid', webhook.uid,
        'name', webhook.name,
        'url', webhook.url,
        'status', webhook.status,
        'enabled', webhook.enabled,
        'metadata', json_build_object(
            'events', to_json(webhook.events),
            'projectIds', to_json(webhook.project_ids),
            'todoListIds', to_json(webhook.todo_list_ids),
            'tagIds', to_json(webhook.tag_ids),
            'assigneeIds', to_json(webhook.assignee_ids),
            'changedFields', to_json(webhook.changed_fields)),
        'createdById', webhook.created_by_id,
        'createdAt', relay.iso_time_v1(webhook.created_at),
        'updatedAt', relay.iso_time_v1(webhook.updated_at));
END;
$$;

CREATE OR REPLACE FUNCTION relay.company_json_v2(company jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    c public.companies;
BEGIN
    IF company IS NULL THEN
        RETURN NULL;
    END IF;
    c := jsonb_populate_record(NULL::public.companies, company);
    RETURN json_build_object(
        'id', c.id,
        'uid', c.uid,
        'slug', c.slug,
        'name', c.name,
        'description', c.description,
        'createdAt', relay.iso_time_v1(c.created_at),
        'updatedAt', relay.iso_time_v1(c.updated_at));
END;
$$;

CREATE OR REPLACE FUNCTION relay.project_json_v2(project jsonb, context jsonb)
RETURNS json
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    p public.projects;
BEGIN
    IF project IS NULL THEN
        RETURN NULL;
    END IF;
    -- A row kept by a delete event carries the context it had then.
    context := coalesce(project->'_context', context);
    p := jsonb_populate_record(NULL::public.projects, project);
    RETURN json_build_object(
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
            relay.context_row_v2('company', p.company_id, context)));
END;
$$;

CREATE OR REPLACE FUNCTION relay.todo_list_json_v2(list jsonb, context jsonb)
RETURNS json
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    l public.todo_lists;
BEGIN
    IF list IS NULL THEN
        RETURN NULL;
    END IF;
    context := coalesce(list->'_context', context);
    l := jsonb_populate_record(NULL::public.todo_lists, list);
    RETURN json_build_object(
        'id', l.id,
        'uid', l.uid,
        'title', l.title,
        'position', l.position,
        'createdAt', relay.iso_time_v1(l.created_at),
        'updatedAt', relay.iso_time_v1(l.updated_at),
        'createdById', l.created_by_id,
        'projectId', l.project_id,
        'project', relay.project_json_v2(
            relay.context_row_v2('project', l.project_id, context), context));
END;
$$;

CREATE OR REPLACE FUNCTION relay.assignees_json_v2(assignments jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF assignments IS NULL OR assignments = '[]'::jsonb THEN
        RETURN '[]'::json;
    END IF;
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

CREATE OR REPLACE FUNCTION relay.todo_tags_json_v2(taggings jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF taggings IS NULL OR taggings = '[]'::jsonb THEN
        RETURN '[]'::json;
    END IF;
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

CREATE OR REPLACE FUNCTION relay.todo_custom_fields_json_v2(field_values jsonb)
RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    IF field_values IS NULL OR field_values = '[]'::jsonb THEN
        RETURN '[]'::json;
    END IF;
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

CREATE OR REPLACE FUNCTION relay.todo_json_v2(todo jsonb, context jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    t public.todos;
BEGIN
    IF todo IS NULL THEN
        RETURN NULL;
    END IF;
    context := coalesce(todo->'_context', context);
    t := jsonb_populate_record(NULL::public.todos, todo);
    RETURN json_build_object(
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
            relay.context_row_v2('todo_list', t.todo_list_id, context), context));
END;
$$;

CREATE OR REPLACE FUNCTION relay.comment_json_v2(comment jsonb, context jsonb)
RETURNS json
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    c public.comments;
BEGIN
    IF comment IS NULL THEN
        RETURN NULL;
    END IF;
    context := coalesce(comment->'_context', context);
    c := jsonb_populate_record(NULL::public.comments, comment);
    RETURN json_build_object(
        'id', c.id,
        'uid', c.uid,
        'html', c.html,
        'text', c.text,
        'createdAt', relay.iso_time_v1(c.created_at),
        'updatedAt', relay.iso_time_v1(c.updated_at),
        'createdById', c.created_by_id,
        'todoId', c.todo_id,
        'todo', relay.todo_json_v2(
            relay.context_row_v2('todo', c.todo_id, context), context));
END;
$$;

CREATE OR REPLACE FUNCTION relay.todo_checklist_json_v2(checklist jsonb, context jsonb)
RETURNS json
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    k public.todo_checklists;
BEGIN
    IF checklist IS NULL THEN
        RETURN NULL;
    END IF;
    context := coalesce(checklist->'_context', context);
    k := jsonb_populate_record(NULL::public.todo_checklists, checklist);
    RETURN json_build_object(
        'id', k.id,
        'uid', k.uid,
        'title', k.title,
        'position', k.position,
        'createdAt', relay.iso_time_v1(k.created_at),
        'updatedAt', relay.iso_time_v1(k.updated_at),
        'createdById', k.created_by_id,
        'todoId', k.todo_id,
        'todo', relay.todo_json_v2(
            relay.context_row_v2('todo', k.todo_id, context), context));
END;
$$;

CREATE OR REPLACE FUNCTION relay.todo_checklist_item_json_v2(item jsonb, context jsonb)
RETURNS json
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    i public.todo_checklist_items;
BEGIN
    IF item IS NULL THEN
        RETURN NULL;
    END IF;
    context := coalesce(item->'_context', context);
    i := jsonb_populate_record(NULL::public.todo_checklist_items, item);
    RETURN json_build_object(
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
            context));
END;
$$;

CREATE OR REPLACE FUNCTION relay.tag_json_v2(tag jsonb, context jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    t public.tags;
BEGIN
    IF tag IS NULL THEN
        RETURN NULL;
    END IF;
    context := coalesce(tag->'_context', context);
    t := jsonb_populate_record(NULL::public.tags, tag);
    RETURN json_build_object(
        'id', t.id,
        'uid', t.uid,
        'title', t.title,
        'color', t.color,
        'createdAt', relay.iso_time_v1(t.created_at),
        'updatedAt', relay.iso_time_v1(t.updated_at),
        'projectId', t.project_id,
        'project', relay.project_json_v2(
            relay.context_row_v2('project', t.project_id, context), context));
END;
$$;

CREATE OR REPLACE FUNCTION relay.custom_field_json_v2(field jsonb, context jsonb)
RETURNS json
LANGUAGE plpgsql STABLE
AS $$
DECLARE
    f public.custom_fields;
BEGIN
    IF field IS NULL THEN
        RETURN NULL;
    END IF;
    context := coalesce(field->'_context', context);
    f := jsonb_populate_record(NULL::public.custom_fields, field);
    RETURN json_build_object(
        'id', f.id,
        'uid', f.uid,
        'name', f.name,
        'type', f.type,
        'position', f.position,
        'createdAt', relay.iso_time_v1(f.created_at),
        'updatedAt', relay.iso_time_v1(f.updated_at),
        'projectId', f.project_id,
        'project', relay.project_json_v2(
            relay.context_row_v2('project', f.project_id, context), context));
END;
$$;

-- The body of one delivery from its parts. The relay builds each event's values
-- and each webhook's JSON once per batch (sql/queries/payloads.sql), so that an
-- event fanned out to fifty webhooks is rendered once, not fifty times.
CREATE FUNCTION relay.payload_from_parts_v2(
    event_name text, webhook json, previous_value json, current_value json)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT json_build_object(
        'event', event_name,
        'webhook', webhook,
        'previousValue', previous_value,
        'currentValue', current_value)::text
$$;

CREATE OR REPLACE FUNCTION relay.payload_v2(event relay.events, webhook relay.webhooks)
RETURNS text
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN relay.payload_from_parts_v2(
        event.event,
        relay.webhook_json_v2(webhook),
        relay.entity_json_v2(event.entity, event.previous_value),
        relay.entity_json_v2(event.entity, event.current_value));
END;
$$;

-- Why the entry points set plan_cache_mode: the relay's sessions plan each of
-- their own statements afresh (relay/db.py), because a plan cached while the
-- outbox was small reads whole tables once it is large. The payload functions'
-- lookups are by key and do well with cached plans, and planning them on every
-- call made a payload half as slow again.
ALTER FUNCTION relay.entity_json_v2(text, jsonb) SET plan_cache_mode = auto;
ALTER FUNCTION relay.webhook_json_v2(relay.webhooks) SET plan_cache_mode = auto;
