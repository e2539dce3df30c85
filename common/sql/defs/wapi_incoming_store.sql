-- Incoming messages, one batch in one statement (see 0018 and the migrations
-- that extended it: 0023 groups, 0026 content, 0027 forwarded, 0031 timers
-- and view once; 0032 placeholders filled in place; 0034 pins and
-- keep-in-chat; 0035 app-state keys; 0037 history sync jobs; 0040 retry
-- waits). Kept whole here from now on: a change is made in this file.
CREATE OR REPLACE FUNCTION wapi_incoming_store(p jsonb)
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
    filled boolean;
    waits boolean := EXISTS (SELECT 1 FROM wa_retry_waits);
BEGIN
    FOR v, i IN SELECT e, n FROM jsonb_array_elements(p) WITH ORDINALITY AS x(e, n) ORDER BY n LOOP
        r := NULL;
        filled := false;
        -- Whatever a message turned out to be, it arrived: it waits no more
        -- (0040). Most batches find the table empty and skip this.
        IF waits AND v->>'k' <> 'w' THEN
            DELETE FROM wa_retry_waits WHERE id = coalesce(v->>'id', v->>'mid');
        END IF;
        IF v->>'k' = 'w' THEN
            -- Not decrypted, its sender asked to send it again: remembered
            -- with the ack (0040); nothing to wait for when it is stored.
            INSERT INTO wa_retry_waits (id, chat_jid, sender_jid, sender_lid, from_me, push_name, ts)
            SELECT v->>'id', v->>'chat', v->>'sender', v->>'lid', (v->>'from_me')::boolean, v->>'push_name',
                   to_timestamp((v->>'ts')::bigint)
            WHERE NOT EXISTS (SELECT 1 FROM wa_messages WHERE id = v->>'id')
            ON CONFLICT (id) DO UPDATE SET retries = wa_retry_waits.retries + 1;
            waits := true;
            CONTINUE;
        ELSIF v->>'k' = 'wd' THEN
            CONTINUE; -- a resend with nothing to store: its wait is over (above)
        ELSIF v->>'k' = 'm' THEN
            t := v->>'et';
            IF NOT coalesce((v->>'fill')::boolean, false) THEN
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
            END IF;
            -- Our phone's resend (fill), or a later delivery that decrypted
            -- after all (0032): the placeholder under this id takes the
            -- content, in place (an id with no placeholder, or one filled
            -- already, is left as it is).
            IF r.id IS NULL AND v->>'type' <> 'undecryptable' THEN
                UPDATE wa_messages SET type = v->>'type', subtype = v->>'subtype', text = v->>'text',
                    reply_to = v->>'reply_to', reaction_to = v->>'reaction_to', reaction = v->>'reaction',
                    mentions = CASE WHEN v ? 'mentions' THEN ARRAY(SELECT jsonb_array_elements_text(v->'mentions')) END,
                    content = v->'content', forwarded = coalesce((v->>'forwarded')::boolean, false),
                    view_once = coalesce((v->>'view_once')::boolean, false),
                    ephemeral_seconds = nullif((v->>'exp')::int, 0),
                    sender_lid = coalesce(sender_lid, v->>'lid'), updated_at = now()
                WHERE id = v->>'id' AND type = 'undecryptable'
                RETURNING * INTO r;
                filled := r.id IS NOT NULL;
                IF filled THEN
                    t := 'message.updated';
                END IF;
            END IF;
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
            IF r.id IS NOT NULL AND NOT filled THEN
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
        ELSIF v->>'k' = 'ak' THEN
            -- App-state sync keys our phone shared (0035): kept, a key seen
            -- before adds nothing; no message, no event.
            INSERT INTO wa_appstate_keys (key_id, key_data, shared_at)
            SELECT decode(x->>'id', 'hex'), decode(x->>'data', 'hex'), to_timestamp((x->>'ts_ms')::bigint / 1000.0)
            FROM jsonb_array_elements(v->'keys') AS x
            WHERE length(decode(x->>'id', 'hex')) BETWEEN 1 AND 64 AND length(decode(x->>'data', 'hex')) = 32
            ON CONFLICT (key_id) DO NOTHING; -- a key of another length is none we can use: left out, never a failed batch
            CONTINUE;
        ELSIF v->>'k' IN ('p', 'kp') THEN
            -- A message pinned (for secs, or with no end said) or unpinned;
            -- kept in its disappearing chat or no longer (0034): a change of
            -- the target, no message of its own.
            t := 'message.updated';
            IF v->>'k' = 'p' THEN
                UPDATE wa_messages SET
                    pinned_at = CASE WHEN (v->>'on')::boolean THEN to_timestamp((v->>'ts')::bigint) END,
                    pinned_until = CASE WHEN (v->>'on')::boolean AND (v->>'secs')::int > 0
                                        THEN to_timestamp((v->>'ts')::bigint) + make_interval(secs => (v->>'secs')::int) END,
                    pinned_by = CASE WHEN (v->>'on')::boolean THEN v->>'sender' END,
                    updated_at = now()
                WHERE id = v->>'target' AND chat_jid = wapi_chat_of(v->>'chat')
                RETURNING * INTO r;
            ELSE
                UPDATE wa_messages SET kept = (v->>'on')::boolean, updated_at = now()
                WHERE id = v->>'target' AND chat_jid = wapi_chat_of(v->>'chat')
                  AND kept IS DISTINCT FROM (v->>'on')::boolean
                RETURNING * INTO r;
            END IF;
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
        ELSIF v->>'k' = 'hs' THEN
            -- A history sync notification from our phone (0037): a job for
            -- the history runner, kept before the ack (skipped when history
            -- is off: only its receipt is due); one seen before adds
            -- nothing. No message, no event.
            INSERT INTO wa_history_jobs (message_id, sync_type, chunk_order, progress, media_key, direct_path,
                file_sha256, file_enc_sha256, file_length, inline_payload, oldest_msg_ts, request_id, state)
            VALUES (v->>'id', (v->>'type')::int, (v->>'chunk')::int, (v->>'progress')::int,
                    decode(v->>'media_key', 'hex'), v->>'direct_path', decode(v->>'file_sha256', 'hex'),
                    decode(v->>'file_enc_sha256', 'hex'), (v->>'file_length')::bigint,
                    decode(v->>'inline', 'hex'), (v->>'oldest')::bigint, v->>'request',
                    CASE WHEN coalesce((v->>'off')::boolean, false) THEN 'skipped' ELSE 'pending' END)
            ON CONFLICT (message_id) DO NOTHING;
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
