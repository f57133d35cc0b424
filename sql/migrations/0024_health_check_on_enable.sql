-- Re-enabling a webhook queues WEBHOOK_HEALTH_CHECK, however it is re-enabled.
--
-- Why a trigger: until now only `relay webhooks enable` queued the check, from
-- Python, so an operator's UPDATE relay.webhooks SET enabled = true sent none.
-- A trigger sees every switch from disabled to enabled, in the transaction that
-- makes it: the check exists if and only if that switch commits, once per switch.
--
-- SECURITY DEFINER like the capture functions: a role that may enable a webhook
-- needs no right to write the outbox.

CREATE FUNCTION relay.queue_health_check_v1() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- For this webhook alone; a health check carries no entity values.
    INSERT INTO relay.events (event, entity, entity_id, for_webhook_id)
    VALUES ('WEBHOOK_HEALTH_CHECK', 'webhook', NEW.id, NEW.id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER relay_health_check_on_enable_trigger
AFTER UPDATE OF enabled ON relay.webhooks
FOR EACH ROW
WHEN (NEW.enabled AND NOT OLD.enabled)
EXECUTE FUNCTION relay.queue_health_check_v1();

ALTER TABLE relay.webhooks ENABLE ALWAYS TRIGGER relay_health_check_on_enable_trigger;
