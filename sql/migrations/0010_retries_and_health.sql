-- Retries that end, webhook health, and a record of every status change.

-- A delivery whose last scheduled attempt failed is 'failed': nothing retries it.
ALTER TABLE relay.deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE relay.deliveries ADD CONSTRAINT deliveries_state_check
    CHECK (state IN ('pending', 'delivered', 'failed'));

-- The per-webhook limit counts a webhook's live claims and picks its due work.
CREATE INDEX deliveries_webhook_due_idx
    ON relay.deliveries (webhook_id, next_attempt_at, id)
    WHERE state = 'pending';

-- What the relay decided after each attempt: seconds until the next one, or null.
ALTER TABLE relay.attempts ADD COLUMN retry_delay_seconds double precision;

-- Health: failures in a row since the last success, and when that run began.
ALTER TABLE relay.webhooks
    ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0,
    ADD COLUMN failing_since timestamptz;

-- Every change of a webhook's status or enabled flag, whoever made it.
CREATE TABLE relay.webhook_status_changes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id text NOT NULL REFERENCES relay.webhooks (id) ON DELETE CASCADE,
    old_status text NOT NULL,
    new_status text NOT NULL,
    old_enabled boolean NOT NULL,
    new_enabled boolean NOT NULL,
    reason text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX webhook_status_changes_webhook_id_idx
    ON relay.webhook_status_changes (webhook_id, id);

-- The doorbell for the application: a few ids and words, never a whole row.
CREATE FUNCTION relay.announce_webhook_status_change_v1() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pg_notify(
        'relay_webhook_status_v1',
        json_build_object(
            'webhook_id', NEW.webhook_id,
            'old_status', NEW.old_status,
            'new_status', NEW.new_status,
            'enabled', NEW.new_enabled,
            'reason', left(NEW.reason, 200)
        )::text
    );
    RETURN NULL;
END;
$$;

CREATE TRIGGER relay_status_change_announce_trigger
AFTER INSERT ON relay.webhook_status_changes
FOR EACH ROW EXECUTE FUNCTION relay.announce_webhook_status_change_v1();

-- Changes made by anyone but the relay's health bookkeeping (an operator's
-- disable, an enable) are recorded here. The relay records its own, with their
-- reasons, and says so with the transaction-local setting relay.health_update.
-- Enabling a webhook starts its health afresh: the failures that disabled it
-- must not disable it again at its next failure.
CREATE FUNCTION relay.record_webhook_status_change_v1() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.enabled AND NOT OLD.enabled THEN
        NEW.consecutive_failures := 0;
        NEW.failing_since := NULL;
    END IF;
    IF coalesce(current_setting('relay.health_update', true), '') = 'on' THEN
        RETURN NEW;
    END IF;
    INSERT INTO relay.webhook_status_changes
        (webhook_id, old_status, new_status, old_enabled, new_enabled, reason)
    VALUES (
        NEW.id, OLD.status, NEW.status, OLD.enabled, NEW.enabled,
        CASE
            WHEN NEW.enabled AND NOT OLD.enabled THEN 'enabled by ' || session_user
            WHEN OLD.enabled AND NOT NEW.enabled THEN 'disabled by ' || session_user
            ELSE 'status set to ' || NEW.status || ' by ' || session_user
        END
    );
    RETURN NEW;
END;
$$;

CREATE TRIGGER relay_webhook_status_change_trigger
BEFORE UPDATE OF status, enabled ON relay.webhooks
FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.enabled IS DISTINCT FROM NEW.enabled)
EXECUTE FUNCTION relay.record_webhook_status_change_v1();
