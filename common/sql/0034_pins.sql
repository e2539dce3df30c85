-- Pins and keep-in-chat: a message pinned in its chat for everyone (when,
-- until when, by whom) and a disappearing message kept. Set by the incoming
-- pinInChatMessage / keepInChatMessage (common/sql/defs/wapi_incoming_store.sql).
ALTER TABLE wa_messages ADD COLUMN IF NOT EXISTS pinned_at timestamptz;
ALTER TABLE wa_messages ADD COLUMN IF NOT EXISTS pinned_until timestamptz;
ALTER TABLE wa_messages ADD COLUMN IF NOT EXISTS pinned_by text;
ALTER TABLE wa_messages ADD COLUMN IF NOT EXISTS kept boolean NOT NULL DEFAULT false;
