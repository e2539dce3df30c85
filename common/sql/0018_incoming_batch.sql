-- Incoming messages, several in one statement (one transaction, one round
-- trip): the supervisor commits what arrived together before their receipts
-- and acks. p is a JSON array, applied in its order, each element one of
--   {"k":"m", id, chat, sender, from_me, type, subtype, text, reply_to,
--    reaction_to, reaction, ts, push_name, lid, ev, et, data}   a new message
--   {"k":"e", target, chat, text, ts, ev, data}                 an edit
--   {"k":"r", target, chat, ts, ev, data}                       a revoke
-- (ts: Unix seconds; ev: the event id; et: its type; data: its JSON.) A
-- message already stored (same id) and an edit or revoke that finds nothing
-- to change leave no row and no event. Returns one character per element:
-- 't' applied, 'f' not. A later element sees what an earlier one did (an
-- edit of a message of the same batch finds it).
CREATE OR REPLACE FUNCTION wapi_incoming_store(p jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
    v_out text := '';
    v_ok boolean;
BEGIN
    FOR v IN SELECT e FROM jsonb_array_elements(p) WITH ORDINALITY AS t(e, i) ORDER BY i LOOP
        IF v->>'k' = 'm' THEN
            WITH m AS (
                INSERT INTO wa_messages (id, chat_jid, sender_jid, from_me, type, subtype, text, reply_to,
                                         reaction_to, reaction, status, ts)
                VALUES (v->>'id', v->>'chat', v->>'sender', (v->>'from_me')::boolean, v->>'type', v->>'subtype',
                        v->>'text', v->>'reply_to', v->>'reaction_to', v->>'reaction',
                        CASE WHEN (v->>'from_me')::boolean THEN 'sent' ELSE 'received' END,
                        to_timestamp((v->>'ts')::bigint))
                ON CONFLICT (id) DO NOTHING RETURNING id),
            c AS (
                -- The LID unless another contact holds it already (a number that
                -- changed hands keeps its old mapping until that row is
                -- corrected): the unique index must never fail the batch.
                INSERT INTO wa_contacts (jid, lid, push_name, updated_at)
                SELECT v->>'sender',
                       CASE WHEN EXISTS (SELECT 1 FROM wa_contacts o WHERE o.lid = v->>'lid' AND o.jid <> v->>'sender')
                            THEN NULL ELSE v->>'lid' END,
                       v->>'push_name', now()
                FROM m WHERE NOT (v->>'from_me')::boolean AND v->>'sender' IS NOT NULL
                ON CONFLICT (jid) DO UPDATE SET push_name = COALESCE(EXCLUDED.push_name, wa_contacts.push_name),
                    lid = COALESCE(EXCLUDED.lid, wa_contacts.lid), updated_at = now()
                RETURNING 1),
            ch AS (
                INSERT INTO wa_chats (jid, last_message_id, last_message_at, unread_count, updated_at)
                SELECT v->>'chat', v->>'id', to_timestamp((v->>'ts')::bigint),
                       CASE WHEN (v->>'from_me')::boolean OR v->>'type' = 'reaction' THEN 0 ELSE 1 END, now()
                FROM m
                ON CONFLICT (jid) DO UPDATE SET last_message_id = EXCLUDED.last_message_id,
                    last_message_at = EXCLUDED.last_message_at,
                    unread_count = wa_chats.unread_count + EXCLUDED.unread_count, updated_at = now()
                RETURNING 1),
            e AS (
                INSERT INTO wa_events (id, type, data) SELECT (v->>'ev')::bigint, v->>'et', v->'data' FROM m
                RETURNING 1)
            SELECT EXISTS (SELECT 1 FROM m) INTO v_ok;
        ELSIF v->>'k' = 'e' THEN
            WITH u AS (
                UPDATE wa_messages SET text = v->>'text', edited_at = to_timestamp((v->>'ts')::bigint),
                    updated_at = now()
                WHERE id = v->>'target' AND chat_jid = v->>'chat'
                  AND (edited_at IS NULL OR edited_at < to_timestamp((v->>'ts')::bigint))
                RETURNING id),
            e AS (
                INSERT INTO wa_events (id, type, data) SELECT (v->>'ev')::bigint, 'message.edited', v->'data' FROM u
                RETURNING 1)
            SELECT EXISTS (SELECT 1 FROM u) INTO v_ok;
        ELSIF v->>'k' = 'r' THEN
            WITH u AS (
                UPDATE wa_messages SET revoked_at = to_timestamp((v->>'ts')::bigint), updated_at = now()
                WHERE id = v->>'target' AND chat_jid = v->>'chat' AND revoked_at IS NULL
                RETURNING id),
            e AS (
                INSERT INTO wa_events (id, type, data) SELECT (v->>'ev')::bigint, 'message.revoked', v->'data' FROM u
                RETURNING 1)
            SELECT EXISTS (SELECT 1 FROM u) INTO v_ok;
        ELSE
            RAISE EXCEPTION 'wapi_incoming_store: element % has kind %', v, v->>'k';
        END IF;
        v_out := v_out || CASE WHEN v_ok THEN 't' ELSE 'f' END;
    END LOOP;
    RETURN v_out;
END;
$$;
