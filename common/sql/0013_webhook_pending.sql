-- Exact fan-out of events to webhooks: every wa_events row also lands, in the
-- same transaction, in wa_webhook_pending (a row trigger); the dispatcher
-- takes pending rows and turns them into deliveries in one statement. An
-- event whose transaction commits late is therefore never skipped (this
-- replaces the id cursor of 0011, which wa_webhook_cursor still records).
CREATE TABLE IF NOT EXISTS wa_webhook_pending (event_id bigint PRIMARY KEY);
INSERT INTO wa_webhook_pending (event_id)
  SELECT id FROM wa_events
  WHERE id > coalesce((SELECT last_event_id FROM wa_webhook_cursor WHERE id = 1), 0) - 10000000
  ON CONFLICT DO NOTHING;
CREATE OR REPLACE FUNCTION wapi_events_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO wa_webhook_pending (event_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS wa_events_pending ON wa_events;
CREATE TRIGGER wa_events_pending AFTER INSERT ON wa_events FOR EACH ROW EXECUTE FUNCTION wapi_events_pending();
