-- The relay's own tables, in the relay schema: webhooks, the outbox of events,
-- one delivery per event and webhook, and every attempt at a delivery.

-- STABLE like to_char and without SET clauses, so that the planner inlines it.
CREATE FUNCTION relay.iso_time_v1(value timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

CREATE TABLE relay.webhooks (
    id text PRIMARY KEY DEFAULT public.new_id('wh'),
    uid text NOT NULL UNIQUE DEFAULT public.new_uid(),
    name text NOT NULL,
    url text NOT NULL CHECK (url ~ '^https?://'),
    secret text NOT NULL CHECK (secret <> ''),
    status text NOT NULL DEFAULT 'HEALTHY'
        CHECK (status IN ('HEALTHY', 'UNHEALTHY')),
    enabled boolean NOT NULL DEFAULT true,
    -- metadata.events and metadata.projectIds of the contract; empty means all.
    events text[] NOT NULL DEFAULT '{}',
    project_ids text[] NOT NULL DEFAULT '{}',
    -- A webhook whose creator is gone keeps its history but matches nothing.
    created_by_id text REFERENCES public.users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhooks_created_by_id_idx ON relay.webhooks (created_by_id);

-- The outbox. A trigger writes one row per event in the writing transaction. The
-- entity's state before and after the change is kept here because a deleted row
-- cannot be joined later; company and project say where it happened.
CREATE TABLE relay.events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event text NOT NULL,
    entity text NOT NULL,
    entity_id text NOT NULL,
    company_id text,
    project_id text,
    actor_id text,
    previous_value jsonb,
    current_value jsonb,
    -- When the change was made, not when its transaction began: a webhook created
    -- while a transaction was open still receives what that transaction did later.
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    fanned_out_at timestamptz
);

CREATE INDEX events_pending_idx ON relay.events (id) WHERE fanned_out_at IS NULL;

-- One delivery per event and webhook. A claim pushes next_attempt_at forward by
-- the lease and names the relay that holds it: if that relay dies, the delivery
-- simply becomes due again when the lease runs out.
CREATE TABLE relay.deliveries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id bigint NOT NULL REFERENCES relay.events (id) ON DELETE CASCADE,
    webhook_id text NOT NULL REFERENCES relay.webhooks (id) ON DELETE CASCADE,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_by text,
    last_status_code integer,
    last_error text,
    delivered_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, webhook_id)
);

CREATE INDEX deliveries_due_idx ON relay.deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX deliveries_webhook_id_idx ON relay.deliveries (webhook_id);

CREATE TABLE relay.attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id bigint NOT NULL REFERENCES relay.deliveries (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    outcome text NOT NULL,
    status_code integer,
    duration_ms double precision NOT NULL,
    error text,
    response_excerpt text,
    attempted_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX attempts_delivery_id_idx ON relay.attempts (delivery_id);
