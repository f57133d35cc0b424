-- The webhook as payloads and the CLI show it, now with its filters inside
-- metadata. Version 1 stays for anything built against it.

CREATE FUNCTION relay.webhook_json_v2(webhook relay.webhooks) RETURNS json
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
                'projectIds', to_json(webhook.project_ids),
                'todoListIds', to_json(webhook.todo_list_ids),
                'tagIds', to_json(webhook.tag_ids),
                'assigneeIds', to_json(webhook.assignee_ids),
                'changedFields', to_json(webhook.changed_fields)),
            'createdById', webhook.created_by_id,
            'createdAt', relay.iso_time_v1(webhook.created_at),
            'updatedAt', relay.iso_time_v1(webhook.updated_at))
    );
END;
$$;
