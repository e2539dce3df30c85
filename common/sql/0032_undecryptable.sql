-- Messages that cannot be decrypted (supervisor/wa/wa_receive.c): stored as a
-- placeholder, type 'undecryptable' (event message.undecryptable), and our
-- phone is asked to send them again (a peer data operation). Its answer, or a
-- later delivery that decrypts after all, fills the placeholder in place: the
-- same id takes the real type and content (event message.updated).

-- Placeholders still waiting, newest first: asked for again at each connect
-- (supervisor/placeholder.c).
CREATE INDEX IF NOT EXISTS wa_messages_undecryptable ON wa_messages (created_at DESC)
    WHERE type = 'undecryptable';

-- Incoming messages: an element "k":"m" with "fill": true only fills the
-- placeholder under its id; any other fills it too when its id holds one
-- (common/sql/defs/wapi_incoming_store.sql).

