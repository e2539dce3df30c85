-- Media messages: a message's attachment, either way. wa_messages.type is the
-- kind (image, video, audio, voice, document, sticker) and wa_messages.text
-- the caption; this row holds the rest.
--
-- Sent: written with the message (POST /api/messages names a stored file,
-- media_id); the encryption and upload fields are filled by the supervisor
-- once the file is uploaded, committed before the stanza goes out, so a
-- resend after a crash carries the same key and link (byte-identical under
-- the same message id). Received: written with the message, from what it
-- carries; media_id is set once the file is downloaded into the store.
CREATE TABLE IF NOT EXISTS wa_message_media (
    message_id      text PRIMARY KEY REFERENCES wa_messages (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('image', 'video', 'audio', 'voice', 'document', 'sticker')),
    media_id        text REFERENCES wa_media (id) ON DELETE SET NULL, -- a deleted file: a queued send fails
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'stored', 'failed', 'expired')),
    error           text,
    mimetype        text,
    file_name       text,
    width           integer,
    height          integer,
    seconds         integer,
    waveform        bytea,
    thumbnail       bytea,
    -- What the message carries to find and decrypt the file.
    media_key       bytea CHECK (octet_length(media_key) = 32),
    file_sha256     bytea CHECK (octet_length(file_sha256) = 32),
    file_enc_sha256 bytea CHECK (octet_length(file_enc_sha256) = 32),
    file_length     bigint,
    direct_path     text,
    url             text,
    media_key_ts    bigint,
    uploaded_at     timestamptz, -- ours: when this upload was made
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- The same file sent again while its upload is fresh reuses that upload
-- (key, link and sums): one upload for many chats.
CREATE INDEX IF NOT EXISTS wa_message_media_upload ON wa_message_media (media_id, kind, uploaded_at)
    WHERE uploaded_at IS NOT NULL;

-- The message JSON gains "media": the attachment with its file's metadata
-- (null for a message without one). caption is the message's text.
CREATE OR REPLACE FUNCTION wapi_message_json(m wa_messages, status text DEFAULT NULL) RETURNS json
    LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', m.id, 'chat_jid', m.chat_jid, 'sender_jid', m.sender_jid, 'from_me', m.from_me,
        'type', m.type, 'subtype', m.subtype, 'text', m.text, 'reply_to', m.reply_to,
        'reaction_to', m.reaction_to, 'reaction', m.reaction, 'status', coalesce(status, m.status), 'error', m.error,
        'ts', to_char(m.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'edited_at', to_char(m.edited_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'revoked_at', to_char(m.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'created_at', to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'updated_at', to_char(m.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'read_at', to_char(m.read_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'idempotency_key', m.idempotency_key,
        'media', (SELECT json_build_object(
                      'id', a.media_id, 'kind', a.kind, 'mimetype', coalesce(f.mimetype, a.mimetype),
                      'size', coalesce(f.size, a.file_length), 'sha256', coalesce(f.sha256, encode(a.file_sha256, 'hex')),
                      'file_name', a.file_name, 'caption', m.text,
                      'width', coalesce(a.width, f.width), 'height', coalesce(a.height, f.height),
                      'seconds', coalesce(a.seconds, f.seconds), 'state', a.state, 'error', a.error)
                  FROM wa_message_media a LEFT JOIN wa_media f ON f.id = a.media_id
                  WHERE a.message_id = m.id))
$$;
