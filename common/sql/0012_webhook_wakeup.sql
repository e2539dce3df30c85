-- The webhook dispatcher LISTENs on wapi_events: every transaction that adds
-- events wakes it once, at commit (it also polls, so a missed wake-up only
-- delays a delivery).
CREATE OR REPLACE FUNCTION wapi_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('wapi_events', '');
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS wa_events_notify ON wa_events;
CREATE TRIGGER wa_events_notify AFTER INSERT ON wa_events FOR EACH STATEMENT EXECUTE FUNCTION wapi_events_notify();
