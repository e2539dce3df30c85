-- Per-chat order of webhook deliveries: each delivery remembers its event's
-- chat, and a delivery is attempted only when no earlier delivery of the same
-- webhook and chat is still pending (being attempted, or waiting for a retry).
-- Events without a chat (session.*) are not ordered.
ALTER TABLE wa_webhook_deliveries ADD COLUMN IF NOT EXISTS chat text;
UPDATE wa_webhook_deliveries d SET chat = e.data->>'chat' FROM wa_events e
  WHERE e.id = d.event_id AND d.state = 'pending' AND d.chat IS NULL;
CREATE INDEX IF NOT EXISTS wa_webhook_deliveries_chat ON wa_webhook_deliveries (webhook_id, chat, event_id)
  WHERE state = 'pending';
