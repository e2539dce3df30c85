-- Who got and read each message we sent: one row per recipient (a person,
-- without the device), with the first time any of their devices said so.
-- In a group every member answers for themselves; in a chat with a person,
-- that person. The message's own status is the first of these
-- (wa_messages.status: delivered on the first delivery, read on the first
-- read).
CREATE TABLE IF NOT EXISTS wa_message_receipts (
    message_id   text NOT NULL REFERENCES wa_messages (id) ON DELETE CASCADE,
    recipient    text NOT NULL, -- user@s.whatsapp.net or user@lid
    delivered_at timestamptz,
    read_at      timestamptz,
    played_at    timestamptz,
    PRIMARY KEY (message_id, recipient)
);
