-- The webhook dispatcher also LISTENs on wapi_webhook_due, so it need not
-- poll for deliveries made due outside it: a redelivery (attempts reset to 0)
-- or a webhook enabled again (its pending deliveries). Polling remains only as
-- a safety net, in case a notification is lost.
CREATE OR REPLACE FUNCTION wapi_webhook_due_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('wapi_webhook_due', '');
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS wa_webhook_deliveries_redeliver ON wa_webhook_deliveries;
CREATE TRIGGER wa_webhook_deliveries_redeliver AFTER UPDATE ON wa_webhook_deliveries FOR EACH ROW
  WHEN (NEW.state = 'pending' AND NEW.attempts < OLD.attempts) EXECUTE FUNCTION wapi_webhook_due_notify();
DROP TRIGGER IF EXISTS wa_webhooks_enabled ON wa_webhooks;
CREATE TRIGGER wa_webhooks_enabled AFTER UPDATE ON wa_webhooks FOR EACH ROW
  WHEN (NEW.enabled AND NOT OLD.enabled) EXECUTE FUNCTION wapi_webhook_due_notify();
