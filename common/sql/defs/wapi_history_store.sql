-- History sync (0037): one batch of a chunk's import, and the end of the
-- chunk. The supervisor's history runner calls these inside the chunk's one
-- transaction: every batch, then wapi_history_done, then COMMIT. Nothing
-- here raises a message event (history is not news): the chunk's own
-- history.progress / history.completed are written by wapi_history_done.
-- Idempotent: a message id stored before adds nothing, a chat's settings
-- are set (not added to), so a replayed chunk adds no row.
--
-- p: {"l": [{"pn","lid"}], "c": [conversation], "n": [{"jid","name"}],
--     "m": [message elements as wapi_incoming_store takes them]}
CREATE OR REPLACE FUNCTION wapi_history_store(p jsonb) RETURNS int LANGUAGE plpgsql
    SET plan_cache_mode = auto AS $$
#variable_conflict use_column
DECLARE
    v jsonb;
    stored int := 0;
BEGIN
    -- Mappings first: a chat or message named by LID then lands in the
    -- number's chat (and 0033's triggers merge a LID chat already there).
    FOR v IN SELECT e FROM jsonb_array_elements(coalesce(p->'l', '[]')) AS x(e) LOOP
        INSERT INTO wa_contacts (jid, lid, updated_at) SELECT v->>'pn', v->>'lid', now()
        WHERE NOT EXISTS (SELECT 1 FROM wa_contacts x WHERE x.lid = v->>'lid' AND x.jid <> v->>'pn')
        ON CONFLICT (jid) DO UPDATE SET lid = EXCLUDED.lid, updated_at = now()
        WHERE wa_contacts.lid IS DISTINCT FROM EXCLUDED.lid;
    END LOOP;
    FOR v IN SELECT e FROM jsonb_array_elements(coalesce(p->'n', '[]')) AS x(e) LOOP
        INSERT INTO wa_contacts (jid, push_name, updated_at) VALUES (v->>'jid', v->>'name', now())
        ON CONFLICT (jid) DO UPDATE SET push_name = EXCLUDED.push_name, updated_at = now()
        WHERE wa_contacts.push_name IS NULL; -- a live message's newer name is kept
    END LOOP;
    FOR v IN SELECT e FROM jsonb_array_elements(coalesce(p->'c', '[]')) AS x(e) LOOP
        INSERT INTO wa_chats (jid, name, unread_count, archived, pinned_at, muted_until, marked_unread,
                              ephemeral_seconds, updated_at)
        VALUES (wapi_chat_of(v->>'jid'), v->>'name', coalesce((v->>'unread')::int, 0),
                coalesce((v->>'archived')::boolean, false),
                CASE WHEN (v->>'pinned_at')::bigint > 0 THEN to_timestamp((v->>'pinned_at')::bigint) END,
                CASE WHEN (v->>'mute')::bigint > 0 THEN to_timestamp((v->>'mute')::bigint) END,
                coalesce((v->>'marked_unread')::boolean, false), coalesce((v->>'exp')::int, 0), now())
        ON CONFLICT (jid) DO UPDATE SET name = coalesce(wa_chats.name, EXCLUDED.name),
            unread_count = EXCLUDED.unread_count, archived = EXCLUDED.archived, pinned_at = EXCLUDED.pinned_at,
            muted_until = EXCLUDED.muted_until, marked_unread = EXCLUDED.marked_unread,
            -- a timer set since (a live change) wins over the phone's snapshot
            ephemeral_seconds = CASE WHEN wa_chats.ephemeral_set_at IS NULL THEN EXCLUDED.ephemeral_seconds
                                     ELSE wa_chats.ephemeral_seconds END,
            updated_at = now();
    END LOOP;
    -- The messages, set-based: stored as a live message is (its attachment
    -- as metadata, pending: downloaded as the media policy says of any
    -- received file), a message id seen before adding nothing; then each
    -- sender's name (the latest in the batch) when none is known (a live
    -- message's newer name is kept), and each chat's last message when the
    -- batch has a later one (no unread count: the conversation says it).
    WITH x AS (
        SELECT DISTINCT ON (e->>'id') e AS v, n
        FROM jsonb_array_elements(coalesce(p->'m', '[]')) WITH ORDINALITY AS a(e, n)
        ORDER BY e->>'id', n
    ), ins AS (
        INSERT INTO wa_messages (id, chat_jid, sender_jid, sender_pn, sender_lid, from_me, type, subtype, text,
                                 reply_to, reaction_to, reaction, mentions, content, forwarded, view_once,
                                 ephemeral_seconds, status, ts)
        SELECT v->>'id', v->>'chat', v->>'sender',
               CASE WHEN v->>'sender' LIKE '%@s.whatsapp.net' THEN v->>'sender' END, v->>'lid',
               (v->>'from_me')::boolean, v->>'type', v->>'subtype',
               v->>'text', v->>'reply_to', v->>'reaction_to', v->>'reaction',
               CASE WHEN v ? 'mentions' THEN ARRAY(SELECT jsonb_array_elements_text(v->'mentions')) END,
               v->'content', coalesce((v->>'forwarded')::boolean, false),
               coalesce((v->>'view_once')::boolean, false), nullif((v->>'exp')::int, 0),
               CASE WHEN (v->>'from_me')::boolean THEN 'sent' ELSE 'received' END,
               to_timestamp((v->>'ts')::bigint)
        FROM x ORDER BY n
        ON CONFLICT (id) DO NOTHING
        RETURNING id, chat_jid, sender_jid, from_me, type, ts
    ), s AS (
        SELECT ins.*, x.v, x.n FROM ins JOIN x ON x.v->>'id' = ins.id
    ), media AS (
        INSERT INTO wa_message_media (message_id, kind, state, mimetype, file_name, width, height, seconds,
            waveform, thumbnail, media_key, file_sha256, file_enc_sha256, file_length, direct_path, url,
            media_key_ts)
        SELECT s.id, m->>'kind', 'pending', m->>'mimetype', m->>'file_name', (m->>'width')::int,
               (m->>'height')::int, (m->>'seconds')::int, decode(m->>'waveform', 'hex'),
               decode(m->>'thumbnail', 'hex'), decode(m->>'media_key', 'hex'), decode(m->>'file_sha256', 'hex'),
               decode(m->>'file_enc_sha256', 'hex'), (m->>'file_length')::bigint, m->>'direct_path',
               m->>'url', (m->>'media_key_ts')::bigint
        FROM s CROSS JOIN LATERAL (SELECT s.v->'media' AS m) mm WHERE s.v ? 'media'
    ), polls AS (
        INSERT INTO wa_poll_secrets (message_id, secret)
        SELECT s.id, decode(s.v->>'poll_secret', 'hex') FROM s
        WHERE s.type = 'poll' AND length(s.v->>'poll_secret') = 64
        ON CONFLICT (message_id) DO NOTHING
    ), names AS (
        INSERT INTO wa_contacts (jid, push_name, updated_at)
        SELECT DISTINCT ON (s.sender_jid) s.sender_jid, s.v->>'push_name', now() FROM s
        WHERE NOT s.from_me AND s.sender_jid IS NOT NULL AND s.v->>'push_name' IS NOT NULL
        ORDER BY s.sender_jid, s.n DESC
        ON CONFLICT (jid) DO UPDATE SET push_name = EXCLUDED.push_name, updated_at = now()
        WHERE wa_contacts.push_name IS NULL
    ), chats AS (
        INSERT INTO wa_chats (jid, last_message_id, last_message_at, updated_at)
        SELECT DISTINCT ON (s.chat_jid) s.chat_jid, s.id, s.ts, now() FROM s ORDER BY s.chat_jid, s.ts DESC, s.id DESC
        ON CONFLICT (jid) DO UPDATE SET last_message_id = EXCLUDED.last_message_id,
            last_message_at = EXCLUDED.last_message_at, updated_at = now()
        WHERE wa_chats.last_message_at IS NULL OR wa_chats.last_message_at < EXCLUDED.last_message_at
    )
    SELECT count(*) INTO stored FROM s;
    RETURN stored;
END;
$$;

-- The chunk is in: the job done with its counts, and its events (ids
-- given by the supervisor): history.progress always, history.completed
-- with it when (completed) the phone said this was the end. Nothing when
-- the job is not pending (done already by an earlier run).
CREATE OR REPLACE FUNCTION wapi_history_done(job text, type_name text, counts jsonb, completed boolean,
                                             ev bigint, ev2 bigint)
    RETURNS TABLE (event_id bigint, event_type text, data text) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    j wa_history_jobs;
    d jsonb;
BEGIN
    -- clock_timestamp(): the end of the import, not the start of its transaction
    -- The blob's key and an inline payload are of no use once imported.
    UPDATE wa_history_jobs SET state = 'done', done_at = clock_timestamp(), updated_at = now(), error = NULL,
        media_key = NULL, inline_payload = NULL,
        attempts = attempts + 1,
        chunk_order = coalesce((counts->>'chunk_order')::int, chunk_order),
        progress = greatest(progress, coalesce((counts->>'progress')::int, 0)),
        conversations = (counts->>'conversations')::int, messages = (counts->>'messages')::int,
        pushnames = (counts->>'pushnames')::int, lid_mappings = (counts->>'lid_mappings')::int
    WHERE message_id = job AND state = 'pending'
    RETURNING * INTO j;
    IF j.message_id IS NULL THEN
        RETURN;
    END IF;
    d := jsonb_build_object('id', j.message_id, 'sync_type', type_name, 'chunk_order', j.chunk_order,
                            'progress', j.progress, 'conversations', j.conversations, 'messages', j.messages,
                            'pushnames', j.pushnames, 'lid_mappings', j.lid_mappings,
                            'skipped', (counts->>'skipped')::int, 'request_id', j.request_id);
    event_id := ev;
    event_type := 'history.progress';
    INSERT INTO wa_events (id, type, data) VALUES (ev, event_type, d) RETURNING wa_events.data::text INTO data;
    RETURN NEXT;
    IF completed THEN
        event_id := ev2;
        event_type := 'history.completed';
        d := jsonb_build_object('sync_type', type_name, 'request_id', j.request_id,
                                'chunks', (SELECT count(*) FROM wa_history_jobs WHERE sync_type = j.sync_type
                                           AND state = 'done'),
                                'messages', (SELECT coalesce(sum(messages), 0) FROM wa_history_jobs
                                             WHERE sync_type = j.sync_type AND state = 'done'));
        INSERT INTO wa_events (id, type, data) VALUES (ev2, event_type, d) RETURNING wa_events.data::text INTO data;
        RETURN NEXT;
    END IF;
END;
$$;
