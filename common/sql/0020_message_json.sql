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
    -- received: the download queue (supervisor/media_download.c)
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- The same file sent again while its upload is fresh reuses that upload
-- (key, link and sums): one upload for many chats.
CREATE INDEX IF NOT EXISTS wa_message_media_upload ON wa_message_media (media_id, kind, uploaded_at)
    WHERE uploaded_at IS NOT NULL;

-- Received media waiting for their download, oldest first.
CREATE INDEX IF NOT EXISTS wa_message_media_pending ON wa_message_media (next_attempt_at) WHERE state = 'pending';

-- One definition of a message as JSON: the REST bodies (GET, lists, the 202
-- of a send), and the data of every message event (received, sent, status,
-- reaction, edited, revoked), so users see the same fields, names and time
-- precision (milliseconds, UTC) everywhere. A plain SQL expression, so the
-- planner inlines it. json, not jsonb: the REST bodies keep this field order.
-- status, when given, stands for m.status: message.sent says "sent" even
-- when a delivery receipt committed first. media is the attachment with its
-- file's metadata (null for a message without one); caption is the text;
-- url a signed link to the stored file (wapi_media_link, 0019).
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
        -- Only the media kinds have an attachment: texts skip the lookup.
        'media', CASE WHEN m.type IN ('image', 'video', 'audio', 'voice', 'document', 'sticker') THEN (SELECT json_build_object(
                      'id', a.media_id, 'kind', a.kind, 'mimetype', coalesce(f.mimetype, a.mimetype),
                      'size', coalesce(f.size, a.file_length), 'sha256', coalesce(f.sha256, encode(a.file_sha256, 'hex')),
                      'file_name', a.file_name, 'caption', m.text,
                      'width', coalesce(a.width, f.width), 'height', coalesce(a.height, f.height),
                      'seconds', coalesce(a.seconds, f.seconds), 'state', a.state, 'error', a.error,
                      'url', CASE WHEN f.state = 'stored' THEN wapi_media_link(f.id) END)
                  FROM wa_message_media a LEFT JOIN wa_media f ON f.id = a.media_id
                  WHERE a.message_id = m.id) END)
$$;

-- Incoming messages, several in one statement (one transaction, one round
-- trip): the supervisor commits what arrived together before their receipts
-- and acks. p is a JSON array, applied in its order, each element one of
--   {"k":"m", id, chat, sender, from_me, type, subtype, text, reply_to,
--    reaction_to, reaction, ts, push_name, lid, ev, et, media?}   a new message
--   {"k":"e", target, chat, text, ts, ev}                 an edit
--   {"k":"r", target, chat, ts, ev}                       a revoke
-- (ts: Unix seconds; ev: the event id; et: its type; media: {kind,
-- mimetype, file_name, width, height, seconds, waveform, thumbnail,
-- media_key, file_sha256, file_enc_sha256 (hex), file_length, direct_path,
-- url, media_key_ts}, stored as the message's attachment, pending.) A message already
-- stored (same id) and an edit or revoke that finds nothing to change leave
-- no row and no event. Returns one row per element that was applied: its
-- position (from 1) and the event made, whose data is the message as it now
-- is (wapi_message_json). A later element sees what an earlier one did (an
-- edit of a message of the same batch finds it).
DROP FUNCTION IF EXISTS wapi_incoming_store(jsonb);
CREATE FUNCTION wapi_incoming_store(p jsonb)
    RETURNS TABLE (ord int, event_id bigint, event_type text, data text) LANGUAGE plpgsql
    -- Its statements are planned once per connection and kept (generic
    -- plans; every one is an index probe or an insert), not for every
    -- message as the connection's force_custom_plan would: planning the
    -- inlined wapi_message_json() per message made the commit of a batch of
    -- 64 the bottleneck of incoming streams.
    SET plan_cache_mode = auto AS $$
#variable_conflict use_column
DECLARE
    v jsonb;
    i int;
    r wa_messages;
    t text;
BEGIN
    FOR v, i IN SELECT e, n FROM jsonb_array_elements(p) WITH ORDINALITY AS x(e, n) ORDER BY n LOOP
        r := NULL;
        IF v->>'k' = 'm' THEN
            t := v->>'et';
            INSERT INTO wa_messages (id, chat_jid, sender_jid, from_me, type, subtype, text, reply_to,
                                     reaction_to, reaction, status, ts)
            VALUES (v->>'id', v->>'chat', v->>'sender', (v->>'from_me')::boolean, v->>'type', v->>'subtype',
                    v->>'text', v->>'reply_to', v->>'reaction_to', v->>'reaction',
                    CASE WHEN (v->>'from_me')::boolean THEN 'sent' ELSE 'received' END,
                    to_timestamp((v->>'ts')::bigint))
            ON CONFLICT (id) DO NOTHING RETURNING * INTO r;
            IF r.id IS NOT NULL AND v ? 'media' THEN
                -- A media message: its attachment, pending download, in the
                -- same commit (before the receipt and ack).
                INSERT INTO wa_message_media (message_id, kind, state, mimetype, file_name, width, height, seconds,
                    waveform, thumbnail, media_key, file_sha256, file_enc_sha256, file_length, direct_path, url,
                    media_key_ts)
                SELECT r.id, x->>'kind', 'pending', x->>'mimetype', x->>'file_name', (x->>'width')::int,
                       (x->>'height')::int, (x->>'seconds')::int, decode(x->>'waveform', 'hex'),
                       decode(x->>'thumbnail', 'hex'), decode(x->>'media_key', 'hex'), decode(x->>'file_sha256', 'hex'),
                       decode(x->>'file_enc_sha256', 'hex'), (x->>'file_length')::bigint, x->>'direct_path',
                       x->>'url', (x->>'media_key_ts')::bigint
                FROM (SELECT v->'media' AS x) s;
            END IF;
            IF r.id IS NOT NULL THEN
                -- The LID unless another contact holds it already (a number that
                -- changed hands keeps its old mapping until that row is
                -- corrected): the unique index must never fail the batch.
                IF NOT r.from_me AND r.sender_jid IS NOT NULL THEN
                    INSERT INTO wa_contacts (jid, lid, push_name, updated_at)
                    SELECT r.sender_jid,
                           CASE WHEN EXISTS (SELECT 1 FROM wa_contacts o WHERE o.lid = v->>'lid'
                                                                          AND o.jid <> r.sender_jid)
                                THEN NULL ELSE v->>'lid' END,
                           v->>'push_name', now()
                    ON CONFLICT (jid) DO UPDATE SET push_name = COALESCE(EXCLUDED.push_name, wa_contacts.push_name),
                        lid = COALESCE(EXCLUDED.lid, wa_contacts.lid), updated_at = now();
                END IF;
                INSERT INTO wa_chats (jid, last_message_id, last_message_at, unread_count, updated_at)
                VALUES (r.chat_jid, r.id, r.ts, CASE WHEN r.from_me OR r.type = 'reaction' THEN 0 ELSE 1 END, now())
                ON CONFLICT (jid) DO UPDATE SET last_message_id = EXCLUDED.last_message_id,
                    last_message_at = EXCLUDED.last_message_at,
                    unread_count = wa_chats.unread_count + EXCLUDED.unread_count, updated_at = now();
            END IF;
        ELSIF v->>'k' = 'e' THEN
            t := 'message.edited';
            UPDATE wa_messages SET text = v->>'text', edited_at = to_timestamp((v->>'ts')::bigint), updated_at = now()
            WHERE id = v->>'target' AND chat_jid = v->>'chat'
              AND (edited_at IS NULL OR edited_at < to_timestamp((v->>'ts')::bigint))
            RETURNING * INTO r;
        ELSIF v->>'k' = 'r' THEN
            t := 'message.revoked';
            UPDATE wa_messages SET revoked_at = to_timestamp((v->>'ts')::bigint), updated_at = now()
            WHERE id = v->>'target' AND chat_jid = v->>'chat' AND revoked_at IS NULL
            RETURNING * INTO r;
        ELSE
            RAISE EXCEPTION 'wapi_incoming_store: element % has kind %', v, v->>'k';
        END IF;
        IF r.id IS NOT NULL THEN
            ord := i;
            event_id := (v->>'ev')::bigint;
            event_type := t;
            INSERT INTO wa_events (id, type, data) VALUES (event_id, t, wapi_message_json(r)::jsonb)
            RETURNING wa_events.data::text INTO data;
            RETURN NEXT;
        END IF;
    END LOOP;
END;
$$;

-- The end of a received attachment's download, with its event, in one
-- transaction: state 'stored' (media_id names the file) raises
-- message.media_stored; 'failed' or 'expired' (error says why) raises
-- message.media_failed. A row no longer pending is left alone (no event).
-- The event's data is the message as it now is.
CREATE OR REPLACE FUNCTION wapi_media_outcome(mid text, media text, st text, err text, ev bigint)
    RETURNS TABLE (event_id bigint, event_type text, data text) LANGUAGE plpgsql AS $$
BEGIN
    UPDATE wa_message_media SET media_id = media, state = st, error = err, updated_at = now()
    WHERE message_id = mid AND state = 'pending';
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY INSERT INTO wa_events (id, type, data)
        SELECT ev, CASE WHEN st = 'stored' THEN 'message.media_stored' ELSE 'message.media_failed' END,
               wapi_message_json(m)::jsonb
        FROM wa_messages m WHERE m.id = mid
        RETURNING wa_events.id, wa_events.type, wa_events.data::text;
END;
$$;
