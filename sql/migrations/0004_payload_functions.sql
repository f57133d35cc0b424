-- Payloads: the JSON a receiver gets, built in SQL. An entity's own fields come from
-- the snapshot kept in the outbox; the context nested inside it (list, project,
-- company, assignees, tags, custom field values) is read at delivery time.
-- json (not jsonb) keeps the keys in the order written here.
--
-- Why PL/pgSQL: it keeps the plans of its queries for the life of a session, and the
-- relay's connections live long; SQL functions with a FROM clause are never inlined
-- and would be planned again on every call. Only the relay calls these, on its own
-- connections, so they need no pinned search_path; every name is schema-qualified.

CREATE FUNCTION relay.company_json_v1(company_id text) RETURNS json
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
        FROM public.companies c
        WHERE c.id = company_id
    );
END;
$$;

CREATE FUNCTION relay.project_json_v1(project_id text) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
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
            'company', relay.company_json_v1(p.company_id))
        FROM public.projects p
        WHERE p.id = project_id
    );
END;
$$;

CREATE FUNCTION relay.todo_list_json_v1(list jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT json_build_object(
            'id', list->>'id',
            'uid', list->>'uid',
            'title', list->>'title',
            'position', list->'position',
            'createdAt', relay.iso_time_v1((list->>'created_at')::timestamptz),
            'updatedAt', relay.iso_time_v1((list->>'updated_at')::timestamptz),
            'createdById', list->>'created_by_id',
            'projectId', list->>'project_id',
            'project', relay.project_json_v1(list->>'project_id'))
        WHERE list IS NOT NULL
    );
END;
$$;

CREATE FUNCTION relay.todo_json_v1(todo jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT json_build_object(
            'id', todo->>'id',
            'uid', todo->>'uid',
            'title', todo->>'title',
            'html', todo->>'html',
            'text', todo->>'text',
            -- numeric travels as a string so that no precision is lost
            'position', todo->>'position',
            'archived', (todo->>'archived')::boolean,
            'done', (todo->>'done')::boolean,
            'startedAt', relay.iso_time_v1((todo->>'started_at')::timestamptz),
            'duedAt', relay.iso_time_v1((todo->>'dued_at')::timestamptz),
            'timezone', todo->>'timezone',
            'createdAt', relay.iso_time_v1((todo->>'created_at')::timestamptz),
            'updatedAt', relay.iso_time_v1((todo->>'updated_at')::timestamptz),
            'createdById', todo->>'created_by_id',
            'todoListId', todo->>'todo_list_id',
            'todoUsers', coalesce((
                SELECT json_agg(json_build_object(
                    'id', tu.id,
                    'uid', tu.uid,
                    'userId', u.id,
                    'user', json_build_object(
                        'id', u.id,
                        'uid', u.uid,
                        'email', u.email,
                        'firstName', u.first_name,
                        'lastName', u.last_name),
                    'createdAt', relay.iso_time_v1(tu.created_at))
                    ORDER BY tu.created_at, tu.id)
                FROM public.todo_users tu
                JOIN public.users u ON u.id = tu.user_id
                WHERE tu.todo_id = todo->>'id'), '[]'::json),
            'todoTags', coalesce((
                SELECT json_agg(json_build_object(
                    'id', tt.id,
                    'uid', tt.uid,
                    'tagId', t.id,
                    'tag', json_build_object(
                        'id', t.id,
                        'uid', t.uid,
                        'title', t.title,
                        'color', t.color),
                    'createdAt', relay.iso_time_v1(tt.created_at))
                    ORDER BY tt.created_at, tt.id)
                FROM public.todo_tags tt
                JOIN public.tags t ON t.id = tt.tag_id
                WHERE tt.todo_id = todo->>'id'), '[]'::json),
            'todoCustomFields', coalesce((
                SELECT json_agg(json_build_object(
                    'id', tcf.id,
                    'uid', tcf.uid,
                    'customFieldId', cf.id,
                    'value', tcf.value,
                    'customField', json_build_object(
                        'id', cf.id,
                        'uid', cf.uid,
                        'name', cf.name,
                        'type', cf.type),
                    'updatedAt', relay.iso_time_v1(tcf.updated_at))
                    ORDER BY cf.position, cf.id)
                FROM public.todo_custom_fields tcf
                JOIN public.custom_fields cf ON cf.id = tcf.custom_field_id
                WHERE tcf.todo_id = todo->>'id'), '[]'::json),
            'todoList', (
                SELECT relay.todo_list_json_v1(to_jsonb(l))
                FROM public.todo_lists l
                WHERE l.id = todo->>'todo_list_id'))
        WHERE todo IS NOT NULL
    );
END;
$$;

-- A comment, checklist or checklist item carries its todo, current at delivery.
CREATE FUNCTION relay.current_todo_json_v1(todo_id text) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT relay.todo_json_v1(to_jsonb(t))
        FROM public.todos t
        WHERE t.id = todo_id
    );
END;
$$;

CREATE FUNCTION relay.comment_json_v1(comment jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT json_build_object(
            'id', comment->>'id',
            'uid', comment->>'uid',
            'html', comment->>'html',
            'text', comment->>'text',
            'createdAt', relay.iso_time_v1((comment->>'created_at')::timestamptz),
            'updatedAt', relay.iso_time_v1((comment->>'updated_at')::timestamptz),
            'createdById', comment->>'created_by_id',
            'todoId', comment->>'todo_id',
            'todo', relay.current_todo_json_v1(comment->>'todo_id'))
        WHERE comment IS NOT NULL
    );
END;
$$;

CREATE FUNCTION relay.todo_checklist_json_v1(checklist jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT json_build_object(
            'id', checklist->>'id',
            'uid', checklist->>'uid',
            'title', checklist->>'title',
            'position', checklist->'position',
            'createdAt', relay.iso_time_v1((checklist->>'created_at')::timestamptz),
            'updatedAt', relay.iso_time_v1((checklist->>'updated_at')::timestamptz),
            'createdById', checklist->>'created_by_id',
            'todoId', checklist->>'todo_id',
            'todo', relay.current_todo_json_v1(checklist->>'todo_id'))
        WHERE checklist IS NOT NULL
    );
END;
$$;

CREATE FUNCTION relay.todo_checklist_item_json_v1(item jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT json_build_object(
            'id', item->>'id',
            'uid', item->>'uid',
            'title', item->>'title',
            'position', item->'position',
            'done', (item->>'done')::boolean,
            'startedAt', relay.iso_time_v1((item->>'started_at')::timestamptz),
            'duedAt', relay.iso_time_v1((item->>'dued_at')::timestamptz),
            'createdAt', relay.iso_time_v1((item->>'created_at')::timestamptz),
            'updatedAt', relay.iso_time_v1((item->>'updated_at')::timestamptz),
            'createdById', item->>'created_by_id',
            'todoChecklistId', item->>'todo_checklist_id',
            'todoChecklist', (
                SELECT relay.todo_checklist_json_v1(to_jsonb(c))
                FROM public.todo_checklists c
                WHERE c.id = item->>'todo_checklist_id'))
        WHERE item IS NOT NULL
    );
END;
$$;

CREATE FUNCTION relay.entity_json_v1(entity text, snapshot jsonb) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT CASE entity
            WHEN 'todo' THEN relay.todo_json_v1(snapshot)
            WHEN 'todo_list' THEN relay.todo_list_json_v1(snapshot)
            WHEN 'comment' THEN relay.comment_json_v1(snapshot)
            WHEN 'todo_checklist' THEN relay.todo_checklist_json_v1(snapshot)
            WHEN 'todo_checklist_item' THEN relay.todo_checklist_item_json_v1(snapshot)
        END
    );
END;
$$;

-- The webhook as the contract shows it: every field but the secret.
CREATE FUNCTION relay.webhook_json_v1(webhook relay.webhooks) RETURNS json
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT json_build_object(
            'id', webhook.id,
            'uid', webhook.uid,
            'name', webhook.name,
            'url', webhook.url,
            'status', webhook.status,
            'enabled', webhook.enabled,
            'metadata', json_build_object(
                'events', to_json(webhook.events),
                'projectIds', to_json(webhook.project_ids)),
            'createdById', webhook.created_by_id,
            'createdAt', relay.iso_time_v1(webhook.created_at),
            'updatedAt', relay.iso_time_v1(webhook.updated_at))
    );
END;
$$;

CREATE FUNCTION relay.payload_v1(event relay.events, webhook relay.webhooks)
RETURNS text
LANGUAGE plpgsql STABLE
AS $$
BEGIN
    RETURN (
        SELECT json_build_object(
            'event', event.event,
            'webhook', relay.webhook_json_v1(webhook),
            'previousValue', relay.entity_json_v1(event.entity, event.previous_value),
            'currentValue', relay.entity_json_v1(event.entity, event.current_value))::text
    );
END;
$$;
