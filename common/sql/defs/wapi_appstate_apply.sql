-- App-state sync: what a chat's and a contact's synced state looks like in
-- JSON, and one decoded patch (or snapshot) of a collection applied in one
-- statement: the index → value map, the raw rows, their effects on chats,
-- contacts, messages and labels, the collection's new version and LTHash,
-- and the events of what changed (common/sql/0036_appstate.sql).

-- The synced state of a chat, merged into every chat's JSON.
CREATE OR REPLACE FUNCTION wapi_chat_state(c wa_chats) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'archived', c.archived,
        'pinned', c.pinned_at IS NOT NULL,
        'pinned_at', to_char(c.pinned_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'muted', c.muted_until IS NOT NULL AND c.muted_until > now(),
        'muted_until', CASE WHEN c.muted_until IS NOT NULL AND c.muted_until <> 'infinity' THEN
            to_char(c.muted_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END,
        'marked_unread', c.marked_unread,
        'labels', coalesce((SELECT jsonb_agg(l.label_id ORDER BY l.label_id) FROM wa_chat_labels l
                            WHERE l.chat_jid = c.jid), '[]'::jsonb));
$$;

-- A chat's name: the contact's saved name, else its push name, else the chat's own (a group's subject).
CREATE OR REPLACE FUNCTION wapi_chat_name(c wa_chats) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT coalesce(k.saved_name, k.push_name) FROM wa_contacts k WHERE k.jid = c.jid), c.name);
$$;

-- The data of chat.updated.
CREATE OR REPLACE FUNCTION wapi_chat_event(chat text) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('jid', c.jid, 'name', wapi_chat_name(c), 'unread_count', c.unread_count) ||
           wapi_chat_state(c)
    FROM wa_chats c WHERE c.jid = chat;
$$;

-- The data of contact.updated.
CREATE OR REPLACE FUNCTION wapi_contact_event(who text) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('jid', k.jid, 'lid', k.lid, 'saved_name', k.saved_name, 'first_name', k.first_name,
                              'push_name', k.push_name)
    FROM wa_contacts k WHERE k.jid = who;
$$;

-- p: {c: collection, snap: true for a snapshot (the map is replaced) else
-- from: the version the patch was decoded on top of, v: the new version,
-- h: the new LTHash (hex), ev: the first of as many event ids as actions,
-- a: [{op: "s"|"r", im, vm (hex MACs), ij (index JSON), i: [index], kind,
-- ts (ms), f (flag), me (mute end ms, -1 for ever), n (name), fn (first
-- name), pn, lid, col (colour), val (SyncActionValue, hex)}]}.
-- Returns {ok: true, events: [{id, type, data}]}, or {ok: false, why:
-- "stale"} when the collection is no longer at from (the patch was applied
-- already, or the state moved): nothing is changed then.
CREATE OR REPLACE FUNCTION wapi_appstate_apply(p jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    coll text := p->>'c';
    snap boolean := coalesce((p->>'snap')::boolean, false);
    cur bigint;
    a jsonb;
    v_kind text;
    cj text;
    v_flag boolean;
    v_at timestamptz;
    chats text[] := '{}';
    contacts text[] := '{}';
    evs jsonb := '[]'::jsonb;
    ev bigint := (p->>'ev')::bigint;
    x text;
    d jsonb;
BEGIN
    SELECT version INTO cur FROM wa_appstate_collections WHERE name = coll FOR UPDATE;
    IF NOT snap AND coalesce(cur, 0) <> (p->>'from')::bigint THEN
        RETURN jsonb_build_object('ok', false, 'why', 'stale', 'version', coalesce(cur, 0));
    END IF;
    IF snap THEN
        DELETE FROM wa_appstate_map WHERE collection = coll;
    END IF;
    FOR a IN SELECT e FROM jsonb_array_elements(p->'a') AS x(e) LOOP
        v_kind := a->>'kind';
        v_at := CASE WHEN coalesce((a->>'ts')::bigint, 0) > 0 THEN to_timestamp((a->>'ts')::bigint / 1000.0) END;
        IF a->>'op' = 'r' THEN
            DELETE FROM wa_appstate_map WHERE collection = coll AND index_mac = decode(a->>'im', 'hex');
        ELSE
            INSERT INTO wa_appstate_map AS m (collection, index_mac, value_mac, index_json, kind, value, action_at)
            VALUES (coll, decode(a->>'im', 'hex'), decode(a->>'vm', 'hex'), a->>'ij', v_kind,
                    decode(a->>'val', 'hex'), v_at)
            ON CONFLICT (collection, index_mac) DO UPDATE SET value_mac = EXCLUDED.value_mac,
                index_json = EXCLUDED.index_json, kind = EXCLUDED.kind, value = EXCLUDED.value,
                action_at = EXCLUDED.action_at, updated_at = now();
        END IF;
        -- A REMOVE takes the setting back to its default (not archived, not pinned, ...).
        v_flag := a->>'op' <> 'r' AND coalesce((a->>'f')::boolean, false);
        cj := CASE WHEN v_kind IN ('archive', 'pin', 'mute', 'mark_read', 'clear_chat', 'delete_chat', 'contact')
                    THEN wapi_chat_of(a->'i'->>1) END;
        IF v_kind IN ('archive', 'pin', 'mute', 'mark_read') AND cj IS NOT NULL THEN
            INSERT INTO wa_chats (jid) VALUES (cj) ON CONFLICT DO NOTHING;
        END IF;
        IF v_kind = 'archive' AND cj IS NOT NULL THEN
            UPDATE wa_chats SET archived = v_flag, updated_at = now() WHERE wa_chats.jid = cj AND archived <> v_flag;
        ELSIF v_kind = 'pin' AND cj IS NOT NULL THEN
            UPDATE wa_chats SET pinned_at = CASE WHEN v_flag THEN coalesce(v_at, now()) END, updated_at = now()
            WHERE wa_chats.jid = cj AND (pinned_at IS NOT NULL) <> v_flag;
        ELSIF v_kind = 'mute' AND cj IS NOT NULL THEN
            UPDATE wa_chats SET muted_until = CASE WHEN NOT v_flag THEN NULL
                    WHEN coalesce((a->>'me')::bigint, -1) <= 0 THEN 'infinity'::timestamptz
                    ELSE to_timestamp((a->>'me')::bigint / 1000.0) END, updated_at = now()
            WHERE wa_chats.jid = cj AND muted_until IS DISTINCT FROM CASE WHEN NOT v_flag THEN NULL
                    WHEN coalesce((a->>'me')::bigint, -1) <= 0 THEN 'infinity'::timestamptz
                    ELSE to_timestamp((a->>'me')::bigint / 1000.0) END;
        ELSIF v_kind = 'mark_read' AND cj IS NOT NULL THEN
            -- read on the phone: nothing unread here either; unread: marked so
            UPDATE wa_chats SET marked_unread = NOT v_flag AND a->>'op' <> 'r',
                unread_count = CASE WHEN v_flag THEN 0 ELSE unread_count END, updated_at = now()
            WHERE wa_chats.jid = cj AND (marked_unread <> (NOT v_flag AND a->>'op' <> 'r') OR (v_flag AND unread_count <> 0));
        ELSIF v_kind = 'clear_chat' AND cj IS NOT NULL AND a->>'op' <> 'r' THEN
            UPDATE wa_chats SET cleared_at = coalesce(v_at, now()), updated_at = now() WHERE wa_chats.jid = cj;
        ELSIF v_kind = 'delete_chat' AND cj IS NOT NULL AND a->>'op' <> 'r' THEN
            UPDATE wa_chats SET deleted_at = coalesce(v_at, now()), updated_at = now() WHERE wa_chats.jid = cj;
        ELSIF v_kind = 'contact' AND a->'i'->>1 IS NOT NULL THEN
            cj := a->'i'->>1;
            -- a LID's contact goes on the phone number's row when one knows it
            cj := coalesce((SELECT k.jid FROM wa_contacts k WHERE k.lid = cj LIMIT 1), cj);
            INSERT INTO wa_contacts (jid) VALUES (cj) ON CONFLICT DO NOTHING;
            UPDATE wa_contacts SET saved_name = CASE WHEN a->>'op' = 'r' THEN NULL ELSE nullif(a->>'n', '') END,
                first_name = CASE WHEN a->>'op' = 'r' THEN NULL ELSE nullif(a->>'fn', '') END, updated_at = now()
            WHERE wa_contacts.jid = cj
              AND (saved_name IS DISTINCT FROM CASE WHEN a->>'op' = 'r' THEN NULL ELSE nullif(a->>'n', '') END
                   OR first_name IS DISTINCT FROM CASE WHEN a->>'op' = 'r' THEN NULL ELSE nullif(a->>'fn', '') END);
            IF FOUND THEN
                contacts := contacts || cj;
                IF EXISTS (SELECT 1 FROM wa_chats c WHERE c.jid = cj) THEN
                    chats := chats || cj; -- its name changed
                END IF;
            END IF;
            cj := NULL;
        ELSIF v_kind = 'push_name' THEN
            INSERT INTO wa_appstate_settings AS s (name, value) VALUES ('push_name', a->>'n')
            ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now();
        ELSIF v_kind = 'locale' THEN
            INSERT INTO wa_appstate_settings AS s (name, value) VALUES ('locale', a->>'n')
            ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now();
        ELSIF v_kind = 'star' THEN
            UPDATE wa_messages SET starred = v_flag, updated_at = now()
            WHERE id = a->'i'->>2 AND chat_jid = wapi_chat_of(a->'i'->>1) AND starred <> v_flag;
        ELSIF v_kind = 'delete_for_me' AND a->>'op' <> 'r' THEN
            UPDATE wa_messages SET deleted_for_me_at = coalesce(v_at, now()), updated_at = now()
            WHERE id = a->'i'->>2 AND chat_jid = wapi_chat_of(a->'i'->>1) AND deleted_for_me_at IS NULL;
        ELSIF v_kind = 'label_edit' AND a->'i'->>1 IS NOT NULL THEN
            INSERT INTO wa_labels AS l (id, name, color, deleted)
            VALUES (a->'i'->>1, a->>'n', (a->>'col')::int, a->>'op' = 'r' OR v_flag)
            ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, color = EXCLUDED.color, deleted = EXCLUDED.deleted,
                updated_at = now();
        ELSIF v_kind = 'label_assoc' AND a->'i'->>1 IS NOT NULL AND a->'i'->>2 IS NOT NULL THEN
            cj := wapi_chat_of(a->'i'->>2);
            IF v_flag THEN
                INSERT INTO wa_chat_labels (label_id, chat_jid) VALUES (a->'i'->>1, cj) ON CONFLICT DO NOTHING;
            ELSE
                DELETE FROM wa_chat_labels WHERE label_id = a->'i'->>1 AND chat_jid = cj;
            END IF;
            IF FOUND AND EXISTS (SELECT 1 FROM wa_chats c WHERE c.jid = cj) THEN
                chats := chats || cj;
            END IF;
            cj := NULL;
        END IF;
        IF cj IS NOT NULL AND v_kind IN ('archive', 'pin', 'mute', 'mark_read') AND FOUND THEN
            chats := chats || cj;
        END IF;
    END LOOP;
    INSERT INTO wa_appstate_collections AS c (name, version, hash, snapshots)
    VALUES (coll, (p->>'v')::bigint, decode(p->>'h', 'hex'), CASE WHEN snap THEN 1 ELSE 0 END)
    ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, hash = EXCLUDED.hash, updated_at = now(),
        snapshots = c.snapshots + CASE WHEN snap THEN 1 ELSE 0 END;
    -- one event per chat and per contact that changed
    FOR x IN SELECT DISTINCT u FROM unnest(chats) AS u LOOP
        d := wapi_chat_event(x);
        INSERT INTO wa_events (id, type, data) VALUES (ev, 'chat.updated', d);
        evs := evs || jsonb_build_object('id', ev, 'type', 'chat.updated', 'data', d);
        ev := ev + 1;
    END LOOP;
    FOR x IN SELECT DISTINCT u FROM unnest(contacts) AS u LOOP
        d := wapi_contact_event(x);
        INSERT INTO wa_events (id, type, data) VALUES (ev, 'contact.updated', d);
        evs := evs || jsonb_build_object('id', ev, 'type', 'contact.updated', 'data', d);
        ev := ev + 1;
    END LOOP;
    RETURN jsonb_build_object('ok', true, 'events', evs);
END;
$$;
