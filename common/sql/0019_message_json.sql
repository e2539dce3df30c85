-- One definition of a message as JSON: the REST bodies (GET, lists, the 202
-- of a send), and the data of every message event (received, sent, status,
-- reaction, edited, revoked), so users see the same fields, names and time
-- precision (milliseconds, UTC) everywhere. A plain SQL expression, so the
-- planner inlines it. json, not jsonb: the REST bodies keep this field order.
-- status, when given, stands for m.status: message.sent says "sent" even
-- when a delivery receipt committed first.
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
        'idempotency_key', m.idempotency_key)
$$;

-- Incoming messages, several in one statement (one transaction, one round
-- trip): the supervisor commits what arrived together before their receipts
-- and acks. p is a JSON array, applied in its order, each element one of
--   {"k":"m", id, chat, sender, from_me, type, subtype, text, reply_to,
--    reaction_to, reaction, ts, push_name, lid, ev, et}   a new message
--   {"k":"e", target, chat, text, ts, ev}                 an edit
--   {"k":"r", target, chat, ts, ev}                       a revoke
-- (ts: Unix seconds; ev: the event id; et: its type.) A message already
-- stored (same id) and an edit or revoke that finds nothing to change leave
-- no row and no event. Returns one row per element that was applied: its
-- position (from 1) and the event made, whose data is the message as it now
-- is (wapi_message_json). A later element sees what an earlier one did (an
-- edit of a message of the same batch finds it).
DROP FUNCTION IF EXISTS wapi_incoming_store(jsonb);
CREATE FUNCTION wapi_incoming_store(p jsonb)
    RETURNS TABLE (ord int, event_id bigint, event_type text, data text) LANGUAGE plpgsql AS $$
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
