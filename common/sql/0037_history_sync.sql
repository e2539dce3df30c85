-- History sync: each HISTORY_SYNC_NOTIFICATION our phone sends is a job,
-- stored with the incoming batch that brought it (before its ack), so a
-- chunk is never lost to a crash. The supervisor's history runner
-- downloads the blob (or takes the inline payload), imports it in one
-- transaction that also marks the job done, and only then sends the
-- hist_sync receipt (receipted_at). A blob that cannot be had or read is
-- retried a few times, then the job ends failed with its error.
CREATE TABLE IF NOT EXISTS wa_history_jobs (
  message_id text PRIMARY KEY,          -- the notification's message id (the receipt names it)
  sync_type integer NOT NULL,           -- HistorySync.HistorySyncType: 0 initial bootstrap, 2 full, 3 recent, 6 on demand, ...
  chunk_order integer NOT NULL DEFAULT 0,
  progress integer NOT NULL DEFAULT 0,  -- percent, as the phone reports it
  media_key bytea CHECK (media_key IS NULL OR length(media_key) = 32),
  direct_path text,
  file_sha256 bytea CHECK (file_sha256 IS NULL OR length(file_sha256) = 32),
  file_enc_sha256 bytea CHECK (file_enc_sha256 IS NULL OR length(file_enc_sha256) = 32),
  file_length bigint,
  inline_payload bytea,                 -- the blob itself when the notification carries it
  oldest_msg_ts bigint,
  request_id text,                      -- an on-demand answer: the request's session id
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed', 'skipped')),
  attempts integer NOT NULL DEFAULT 0,
  error text,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  conversations integer NOT NULL DEFAULT 0,
  messages integer NOT NULL DEFAULT 0,  -- stored by the import (a replay stores none)
  pushnames integer NOT NULL DEFAULT 0,
  lid_mappings integer NOT NULL DEFAULT 0,
  received_at timestamptz NOT NULL DEFAULT now(),
  done_at timestamptz,
  receipted_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS wa_history_jobs_pending ON wa_history_jobs (next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS wa_history_jobs_unreceipted ON wa_history_jobs (received_at)
  WHERE receipted_at IS NULL AND state <> 'pending';

-- What a conversation of the history says of its chat.
ALTER TABLE wa_chats ADD COLUMN IF NOT EXISTS archived boolean NOT NULL DEFAULT false;
ALTER TABLE wa_chats ADD COLUMN IF NOT EXISTS pinned_at timestamptz; -- as 0036 (app-state sync) has it
ALTER TABLE wa_chats ADD COLUMN IF NOT EXISTS muted_until timestamptz;
ALTER TABLE wa_chats ADD COLUMN IF NOT EXISTS marked_unread boolean NOT NULL DEFAULT false;
