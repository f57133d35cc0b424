-- Queries of relay/webhooks.py (psycopg: named %(parameters)s).

-- name: find_user
-- The creator of a new webhook, with the company the webhook will belong to.
SELECT id, company_id FROM public.users WHERE id = %(user_id)s;

-- name: find_projects
-- The projects a new webhook names: in its creator's company? the creator a member?
SELECT p.id,
       p.company_id = creator.company_id AS same_company,
       EXISTS (
           SELECT FROM public.project_users pu
           WHERE pu.project_id = p.id AND pu.user_id = creator.id
       ) AS member
FROM public.projects p
JOIN public.users creator ON creator.id = %(user_id)s
WHERE p.id = ANY (%(project_ids)s);

-- name: insert_webhook
-- Register a webhook; returns it as payloads show it (without the secret).
INSERT INTO relay.webhooks AS w (name, url, secret, events, project_ids, created_by_id)
VALUES (%(name)s, %(url)s, %(secret)s, %(events)s, %(project_ids)s, %(created_by_id)s)
RETURNING relay.webhook_json_v1(w)::text;

-- name: list_webhooks
-- Every webhook, oldest first, as payloads show it.
SELECT relay.webhook_json_v1(w)::text FROM relay.webhooks w ORDER BY w.created_at, w.id;

-- name: show_webhook
-- One webhook as payloads show it, with its delivery counts.
SELECT relay.webhook_json_v1(w)::text,
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
-- Enable or disable a webhook; a disabled one receives nothing.
UPDATE relay.webhooks AS w
SET enabled = %(enabled)s, updated_at = now()
WHERE id = %(webhook_id)s
RETURNING relay.webhook_json_v1(w)::text;
