-- Webhooks and their deliveries. A delivery is one row per (webhook, event);
-- the supervisor's dispatcher fans wa_events out into it and works through
-- it at least once.
-- wa_webhook_deliveries.state: pending | delivered | failed (a 4xx other than
-- 408/429, or a refused target) | dead (every attempt failed)

CREATE TABLE IF NOT EXISTS wa_webhooks (
  id text PRIMARY KEY,
  url text NOT NULL,
  events text[] NOT NULL,
  secret text NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now());

CREATE TABLE IF NOT EXISTS wa_webhook_deliveries (
  id bigserial PRIMARY KEY,
  webhook_id text NOT NULL REFERENCES wa_webhooks (id) ON DELETE CASCADE,
  event_id bigint NOT NULL REFERENCES wa_events (id) ON DELETE CASCADE,
  state text NOT NULL DEFAULT 'pending',
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_attempt_at timestamptz,
  last_status integer,
  last_error text,
  delivered_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (webhook_id, event_id));
CREATE INDEX IF NOT EXISTS wa_webhook_deliveries_due ON wa_webhook_deliveries (next_attempt_at, id)
  WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS wa_webhook_deliveries_log ON wa_webhook_deliveries (webhook_id, id);

-- How far the dispatcher has fanned wa_events out (one row).
CREATE TABLE IF NOT EXISTS wa_webhook_cursor (
  id integer PRIMARY KEY CHECK (id = 1),
  last_event_id bigint NOT NULL DEFAULT 0);
INSERT INTO wa_webhook_cursor (id) VALUES (1) ON CONFLICT DO NOTHING;
