-- The columns that the complete catalogue and the webhook filters stand on.
--
-- Application side: checklist items get assignees, like records.
-- Outbox side: each event says which record and lists it concerns and, for an
-- update, which fields changed, so that fan-out can apply a webhook's filters
-- without rebuilding the payload. A health check names the one webhook it is for.
-- Webhook side: the filters themselves, as data on the webhook.

CREATE TABLE public.todo_checklist_item_users (
    id text PRIMARY KEY DEFAULT public.new_id('ciu'),
    uid text NOT NULL UNIQUE DEFAULT public.new_uid(),
    todo_checklist_item_id text NOT NULL
        REFERENCES public.todo_checklist_items (id) ON DELETE CASCADE,
    user_id text NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (todo_checklist_item_id, user_id)
);

-- The record (todo) an event concerns: the todo itself, or the todo of a comment,
-- checklist or checklist item. Null for list, tag and custom field events.
ALTER TABLE relay.events ADD COLUMN todo_id text;
-- The lists an event concerns: a record's list (both lists for a move) or the list
-- of a list event. Null for tag and custom field events.
ALTER TABLE relay.events ADD COLUMN todo_list_ids text[];
-- For an update, the payload fields that changed (camelCase), or the ids of the
-- custom fields whose value changed. Null for creations and deletions.
ALTER TABLE relay.events ADD COLUMN changed_fields text[];
-- Set only for WEBHOOK_HEALTH_CHECK: the one webhook that receives it.
ALTER TABLE relay.events ADD COLUMN for_webhook_id text
    REFERENCES relay.webhooks (id) ON DELETE CASCADE;
-- Deleting a webhook looks its health checks up here, not in the whole outbox.
CREATE INDEX events_for_webhook_id_idx ON relay.events (for_webhook_id)
    WHERE for_webhook_id IS NOT NULL;

-- Filters that narrow which records a webhook sees; empty means no narrowing.
ALTER TABLE relay.webhooks
    ADD COLUMN todo_list_ids text[] NOT NULL DEFAULT '{}',
    ADD COLUMN tag_ids text[] NOT NULL DEFAULT '{}',
    ADD COLUMN assignee_ids text[] NOT NULL DEFAULT '{}',
    ADD COLUMN changed_fields text[] NOT NULL DEFAULT '{}';
