-- Queries of relay/webhooks.py and relay/filters.py (psycopg: named %(parameters)s).

-- name: find_user
-- The creator of a new webhook, with the company the webhook will belong to.
SELECT id, company_id FROM public.users WHERE id = %(user_id)s;

-- name: find_projects
-- Projects a webhook names: in its creator's company? the creator a member?
SELECT p.id,
       p.company_id = creator.company_id AS same_company,
       EXISTS (
           SELECT FROM public.project_users pu
           WHERE pu.project_id = p.id AND pu.user_id = creator.id
       ) AS member
FROM public.projects p
JOIN public.users creator ON creator.id = %(user_id)s
WHERE p.id = ANY (%(ids)s);

-- name: find_lists
-- Lists a webhook names, with their project: the creator's company? a member?
SELECT l.id,
       l.project_id,
       p.company_id = creator.company_id AS same_company,
       EXISTS (
           SELECT FROM public.project_users pu
           WHERE pu.project_id = p.id AND pu.user_id = creator.id
       ) AS member
FROM public.todo_lists l
JOIN public.projects p ON p.id = l.project_id
JOIN public.users creator ON creator.id = %(user_id)s
WHERE l.id = ANY (%(ids)s);

-- name: find_tags
-- Tags a webhook names, with their project: in the creator's company?
SELECT t.id, t.project_id, p.company_id = creator.company_id AS same_company
FROM public.tags t
JOIN public.projects p ON p.id = t.project_id
JOIN public.users creator ON creator.id = %(user_id)s
WHERE t.id = ANY (%(ids)s);

-- name: find_assignees
-- Users a webhook filters on as assignees: in the creator's company?
SELECT u.id, u.company_id = creator.company_id AS same_company
FROM public.users u
JOIN public.users creator ON creator.id = %(user_id)s
WHERE u.id = ANY (%(ids)s);

-- name: find_custom_fields
-- Custom fields a webhook names as changed fields: in the creator's company?
SELECT f.id, p.company_id = creator.company_id AS same_company
FROM public.custom_fields f
JOIN public.projects p ON p.id = f.project_id
JOIN public.users creator ON creator.id = %(user_id)s
WHERE f.id = ANY (%(ids)s);

-- name: insert_webhook
-- Register a webhook; returns it as payloads show it (without the secret).
INSERT INTO relay.webhooks AS w (
    name, url, secret, created_by_id, events, project_ids, todo_list_ids, tag_ids,
    assignee_ids, changed_fields
)
VALUES (
    %(name)s, %(url)s, %(secret)s, %(created_by_id)s, %(events)s, %(project_ids)s,
    %(todo_list_ids)s, %(tag_ids)s, %(assignee_ids)s, %(changed_fields)s
)
RETURNING relay.webhook_json_v2(w)::text;

-- name: lock_webhook
-- The webhook about to be updated, locked; filters in the order of filters.Filters.
SELECT name, url, created_by_id, events, project_ids, todo_list_ids, tag_ids,
       assignee_ids, changed_fields
FROM relay.webhooks
WHERE id = %(webhook_id)s
FOR UPDATE;

-- name: update_webhook
-- Replace a webhook's name, URL and filters; returns it as payloads show it.
UPDATE relay.webhooks AS w
SET name = %(name)s,
    url = %(url)s,
    events = %(events)s,
    project_ids = %(project_ids)s,
    todo_list_ids = %(todo_list_ids)s,
    tag_ids = %(tag_ids)s,
    assignee_ids = %(assignee_ids)s,
    changed_fields = %(changed_fields)s,
    updated_at = now()
WHERE id = %(webhook_id)s
RETURNING relay.webhook_json_v2(w)::text;

-- name: list_webhooks
-- Every webhook, oldest first, as payloads show it.
SELECT relay.webhook_json_v2(w)::text FROM relay.webhooks w ORDER BY w.created_at, w.id;

-- name: show_webhook
-- One webhook as payloads show it, with its delivery counts.
SELECT relay.webhook_json_v2(w)::text,
       count(d.id) FILTER (WHERE d.state = 'pending') AS pending,
       count(d.id) FILTER (WHERE d.state = 'delivered') AS delivered
FROM relay.webhooks w
LEFT JOIN relay.deliveries d ON d.webhook_id = w.id
WHERE w.id = %(webhook_id)s
GROUP BY w.id;

-- name: delete_webhook
-- Remove a webhook with its deliveries and their attempts.
DELETE FROM relay.webhooks WHERE id = %(webhook_id)s RETURNING id;

-- name: set_enabled
-- Enable or disable a webhook; says whether it was enabled before. A switch to
-- the state it already has changes nothing, updated_at included.
UPDATE relay.webhooks AS w
SET enabled = %(enabled)s,
    updated_at = CASE WHEN w.enabled = %(enabled)s THEN w.updated_at ELSE now() END
FROM (
    SELECT id, enabled FROM relay.webhooks WHERE id = %(webhook_id)s FOR UPDATE
) AS before
WHERE w.id = before.id
RETURNING relay.webhook_json_v2(w)::text, before.enabled AS was_enabled;

-- name: unknown_webhooks
-- Which of these webhook ids do not exist.
SELECT given.id
FROM unnest(%(ids)s::text[]) AS given (id)
WHERE NOT EXISTS (SELECT FROM relay.webhooks w WHERE w.id = given.id)
ORDER BY given.id;
