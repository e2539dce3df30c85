-- Disappearing messages and view once.
--
-- A chat's timer (wa_chats.ephemeral_seconds, 0 = off) with when and by whom
-- it was last set. It is learned from a peer's or our phone's setting
-- (protocolMessage EPHEMERAL_SETTING), from the timer incoming messages
-- carry, from a group's metadata and w:gp2 notices, and from our own
-- changes once WhatsApp has taken them. Every change raises chat.disappearing.
--
-- Messages keep the timer they were sent or received with
-- (wa_messages.ephemeral_seconds, NULL = none); the API shows it and when
-- the message expires on the phones (ts + timer). Nothing is deleted here
-- when it expires: the record stays until the user deletes it.
--
-- wa_messages.view_once: a view-once photo, video or voice note (sent or
-- received). Its file is stored and served like any other.
--
-- Type 'disappearing': our own change of a 1:1 chat's timer, a row only so
-- that the outbox sends it (content {"seconds": N}); not listed in chats.
ALTER TABLE wa_chats ADD COLUMN IF NOT EXISTS ephemeral_seconds integer NOT NULL DEFAULT 0;
ALTER TABLE wa_chats ADD COLUMN IF NOT EXISTS ephemeral_set_at timestamptz;
ALTER TABLE wa_chats ADD COLUMN IF NOT EXISTS ephemeral_set_by text;
ALTER TABLE wa_messages ADD COLUMN IF NOT EXISTS ephemeral_seconds integer;
ALTER TABLE wa_messages ADD COLUMN IF NOT EXISTS view_once boolean NOT NULL DEFAULT false;

-- A chat's timer set to secs at at by who: the event chat.disappearing
-- (event id ev) as text when it changed, else NULL. An older setting than the
-- one recorded is ignored (settings may arrive out of order).
CREATE OR REPLACE FUNCTION wapi_chat_ephemeral(chat text, secs int, at timestamptz, who text, ev bigint)
    RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    c wa_chats;
    d text;
BEGIN
    INSERT INTO wa_chats AS w (jid, ephemeral_seconds, ephemeral_set_at, ephemeral_set_by)
    VALUES (chat, secs, at, who)
    ON CONFLICT (jid) DO UPDATE SET ephemeral_seconds = EXCLUDED.ephemeral_seconds,
        ephemeral_set_at = EXCLUDED.ephemeral_set_at, ephemeral_set_by = EXCLUDED.ephemeral_set_by,
        updated_at = now()
    WHERE w.ephemeral_seconds <> EXCLUDED.ephemeral_seconds
      AND (w.ephemeral_set_at IS NULL OR w.ephemeral_set_at <= EXCLUDED.ephemeral_set_at)
    RETURNING * INTO c;
    IF c.jid IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO wa_events (id, type, data)
    VALUES (ev, 'chat.disappearing', jsonb_build_object('jid', c.jid, 'ephemeral_seconds', c.ephemeral_seconds,
            'set_by', c.ephemeral_set_by,
            'set_at', to_char(c.ephemeral_set_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
    RETURNING data::text INTO d;
    RETURN d;
END;
$$;

-- What we send to a chat with a timer carries it: each new outgoing message
-- (text, media, place, cards) takes the chat's timer when it is queued.
CREATE OR REPLACE FUNCTION wapi_outgoing_ephemeral() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.ephemeral_seconds := (SELECT nullif(c.ephemeral_seconds, 0) FROM wa_chats c WHERE c.jid = NEW.chat_jid);
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS wa_messages_outgoing_ephemeral ON wa_messages;
CREATE TRIGGER wa_messages_outgoing_ephemeral BEFORE INSERT ON wa_messages FOR EACH ROW
    WHEN (NEW.from_me AND NEW.status = 'queued' AND NEW.ephemeral_seconds IS NULL
          AND NEW.type IN ('text', 'image', 'video', 'audio', 'voice', 'document', 'sticker', 'location', 'contacts'))
    EXECUTE FUNCTION wapi_outgoing_ephemeral();

-- The definition of 0030 (0027's with the poll's content), with view_once,
-- ephemeral_seconds and expires_at.
CREATE OR REPLACE FUNCTION wapi_message_json(m wa_messages, status text DEFAULT NULL) RETURNS json
    LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', m.id, 'chat_jid', m.chat_jid, 'sender_jid', m.sender_jid, 'sender_pn', m.sender_pn,
        'sender_lid', m.sender_lid, 'from_me', m.from_me,
        'type', m.type, 'subtype', m.subtype, 'text', m.text, 'reply_to', m.reply_to,
        'reaction_to', m.reaction_to, 'reaction', m.reaction, 'mentions', coalesce(to_json(m.mentions), '[]'::json),
        'location', CASE WHEN m.type = 'location' THEN m.content END,
        'contacts', CASE WHEN m.type = 'contacts' THEN m.content END,
        'poll', CASE WHEN m.type = 'poll' THEN m.content END,
        'forwarded', m.forwarded,
        'view_once', m.view_once,
        'ephemeral_seconds', m.ephemeral_seconds,
        'expires_at', to_char((m.ts + make_interval(secs => m.ephemeral_seconds)) AT TIME ZONE 'UTC',
                              'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'status', coalesce(status, m.status), 'error', m.error,
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

-- Incoming messages (0027): elements "k":"m" may say "exp" (the timer they
-- carry, seconds) and "view_once": true; elements "k":"d" set a chat's timer
-- ("chat", "seconds", "sender", "ts", "ev").
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
            INSERT INTO wa_messages (id, chat_jid, sender_jid, sender_pn, sender_lid, from_me, type, subtype, text,
                                     reply_to, reaction_to, reaction, mentions, content, forwarded, view_once,
                                     ephemeral_seconds, status, ts)
            VALUES (v->>'id', v->>'chat', v->>'sender',
                    CASE WHEN v->>'sender' LIKE '%@s.whatsapp.net' THEN v->>'sender' END, v->>'lid',
                    (v->>'from_me')::boolean, v->>'type', v->>'subtype',
                    v->>'text', v->>'reply_to', v->>'reaction_to', v->>'reaction',
                    CASE WHEN v ? 'mentions' THEN ARRAY(SELECT jsonb_array_elements_text(v->'mentions')) END,
                    v->'content', coalesce((v->>'forwarded')::boolean, false),
                    coalesce((v->>'view_once')::boolean, false), nullif((v->>'exp')::int, 0),
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
                -- The timer a message carries keeps the chat's in step (a
                -- setting missed, or changed on a phone before we linked);
                -- a later explicit change wins over an older message.
                IF v ? 'exp' THEN
                    UPDATE wa_chats SET ephemeral_seconds = (v->>'exp')::int, ephemeral_set_at = r.ts,
                        ephemeral_set_by = r.sender_jid, updated_at = now()
                    WHERE jid = r.chat_jid AND ephemeral_seconds <> (v->>'exp')::int
                      AND (ephemeral_set_at IS NULL OR ephemeral_set_at <= r.ts);
                END IF;
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
        ELSIF v->>'k' = 'd' THEN
            -- A chat's disappearing-messages timer set (a peer's or our
            -- phone's protocolMessage): the chat changes, no message is kept.
            ord := i;
            event_id := (v->>'ev')::bigint;
            event_type := 'chat.disappearing';
            data := wapi_chat_ephemeral(v->>'chat', (v->>'seconds')::int, to_timestamp((v->>'ts')::bigint),
                                        v->>'sender', event_id);
            IF data IS NOT NULL THEN
                RETURN NEXT;
            END IF;
            CONTINUE;
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
