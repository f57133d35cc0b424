-- The armed doorbell: a writing transaction sends NOTIFY only while a relay sleeps.
--
-- Why: PostgreSQL serialises the commits of transactions that sent a NOTIFY, so
-- one in every writing transaction cost concurrent writers about half their
-- throughput. A relay that has work polls back to back and needs no wake-up;
-- only a sleeping relay does. So the relay arms the doorbell when it runs out of
-- work and disarms it when it finds some, and a writer reads one value to decide.
--
-- Why a sequence: setval takes effect at once, outside any transaction, and a
-- read of a sequence sees its latest value whatever the reader's snapshot, so a
-- repeatable-read writer cannot act on a stale "disarmed". Only relays write it;
-- writers only read it, so they never contend with each other over it.
--
-- The race at arming (a writer read "disarmed" just before the relay armed) is
-- closed by the relay, not here: see relay/doorbell.py.

-- 1 armed (a relay sleeps: ring), 0 disarmed (a relay is polling: stay quiet).
-- It starts armed, which is what a relay that never ran or died needs.
CREATE SEQUENCE relay.doorbell_armed_v2 AS integer MINVALUE 0 MAXVALUE 1 START 1;

-- Rings once per statement that added events while armed; PostgreSQL folds the
-- repeats of one transaction into one notification, delivered at commit.
CREATE FUNCTION relay.ring_doorbell_v2() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF (SELECT last_value FROM relay.doorbell_armed_v2) = 1 THEN
        PERFORM pg_notify('relay_events_v2', '');
    END IF;
    RETURN NULL;
END;
$$;

-- The new channel has new semantics (silent while a relay polls), hence v2. The
-- v1 function stays, unused. No transition table: an empty statement that rings
-- while armed only costs the relay one empty look.
DROP TRIGGER relay_doorbell_trigger ON relay.events;

CREATE TRIGGER relay_armed_doorbell_trigger AFTER INSERT ON relay.events
    FOR EACH STATEMENT EXECUTE FUNCTION relay.ring_doorbell_v2();

ALTER TABLE relay.events ENABLE ALWAYS TRIGGER relay_armed_doorbell_trigger;
