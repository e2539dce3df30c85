-- When we sent a read receipt for an incoming message (POST /api/messages/{id}/read).
ALTER TABLE wa_messages ADD COLUMN IF NOT EXISTS read_at timestamptz;
-- Reactions do not count as unread (they never get a read receipt).
UPDATE wa_chats c SET unread_count = (SELECT count(*) FROM wa_messages m
  WHERE m.chat_jid = c.jid AND NOT m.from_me AND m.type <> 'reaction' AND m.read_at IS NULL)
  WHERE c.unread_count > 0;
