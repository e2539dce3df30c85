-- Messages that failed to decrypt and whose sender was asked (a retry
-- receipt) to send them again. Recorded with the batch that acknowledges
-- them, so the ack never leaves a message without a trace: the resend (or
-- our phone's copy) clears the row when it is stored; a row that waits too
-- long (whatsapp.retry_wait_seconds) becomes a placeholder, and our phone is
-- asked for the message.
CREATE TABLE IF NOT EXISTS wa_retry_waits (
  id text PRIMARY KEY,
  chat_jid text NOT NULL,
  sender_jid text,
  sender_lid text,
  from_me boolean NOT NULL DEFAULT false,
  push_name text,
  ts timestamptz NOT NULL,
  retries int NOT NULL DEFAULT 1,
  failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS wa_retry_waits_failed_at ON wa_retry_waits (failed_at);
