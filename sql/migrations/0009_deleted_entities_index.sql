-- Payloads built after a parent was deleted find the parent's last state in its
-- delete event (relay.deleted_row_v2). Only delete events (no currentValue) are
-- indexed, so the writes of creations and updates pay nothing for it.
CREATE INDEX events_deleted_entity_idx ON relay.events (entity, entity_id)
    WHERE current_value IS NULL;
