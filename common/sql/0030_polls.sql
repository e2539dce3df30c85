-- Polls and votes. A poll is a message of type poll whose content is
-- {question, options, multiple}; the secret its votes are sealed with is
-- kept apart (never in content, which the API shows). A vote replaces its
-- voter's earlier one (by the sender's time), an empty one withdraws it; a
-- vote message told again changes nothing.
CREATE TABLE IF NOT EXISTS wa_poll_secrets (
    message_id text PRIMARY KEY REFERENCES wa_messages (id) ON DELETE CASCADE,
    secret bytea NOT NULL CHECK (length(secret) = 32)
);

-- Each voter's current choice (options by name; empty: withdrawn).
CREATE TABLE IF NOT EXISTS wa_poll_votes (
    poll_id text NOT NULL REFERENCES wa_messages (id) ON DELETE CASCADE,
    voter text NOT NULL,
    vote_id text NOT NULL,
    options text[] NOT NULL,
    voted_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (poll_id, voter)
);

-- The vote messages applied, so that one told again adds nothing (a
-- voter's current row names only the latest).
CREATE TABLE IF NOT EXISTS wa_poll_vote_messages (
    id text PRIMARY KEY,
    poll_id text NOT NULL REFERENCES wa_messages (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS wa_poll_vote_messages_poll ON wa_poll_vote_messages (poll_id);

-- The definition of 0027, with the poll's content.
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


-- A poll's tally: each option (in the poll's order) with who chose it.
CREATE OR REPLACE FUNCTION wapi_poll_json(m wa_messages) RETURNS json
    LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', m.id, 'chat_jid', m.chat_jid,
        'question', m.content->>'question', 'multiple', coalesce((m.content->>'multiple')::boolean, false),
        'options', coalesce((SELECT json_agg(json_build_object(
                       'name', o.name,
                       'voters', coalesce((SELECT json_agg(v.voter ORDER BY v.voted_at, v.voter) FROM wa_poll_votes v
                                           WHERE v.poll_id = m.id AND o.name = ANY (v.options)), '[]'::json),
                       'count', (SELECT count(*) FROM wa_poll_votes v WHERE v.poll_id = m.id AND o.name = ANY (v.options)))
                       ORDER BY o.n)
                   FROM jsonb_array_elements_text(m.content->'options') WITH ORDINALITY AS o(name, n)), '[]'::json),
        'voters_total', (SELECT count(*) FROM wa_poll_votes v WHERE v.poll_id = m.id AND cardinality(v.options) > 0))
$$;

-- Incoming messages with polls and votes: the elements "k":"v" are votes
-- (opened by the supervisor: {id, poll, voter, options: [names], ts_ms,
-- ev}); the others go to wapi_incoming_store as they are, and the secret of
-- a poll among them ("poll_secret", hex) is kept with it. Positions are the
-- elements' in p.
CREATE OR REPLACE FUNCTION wapi_incoming_store_polls(p jsonb)
    RETURNS TABLE (ord int, event_id bigint, event_type text, data text) LANGUAGE plpgsql
    SET plan_cache_mode = auto AS $$
#variable_conflict use_column
DECLARE
    v jsonb;
    i int;
    others jsonb;
    pos int[];
    pm wa_messages;
    applied boolean;
BEGIN
    SELECT jsonb_agg(e ORDER BY n), array_agg(n::int ORDER BY n) INTO others, pos
    FROM jsonb_array_elements(p) WITH ORDINALITY AS x(e, n) WHERE e->>'k' IS DISTINCT FROM 'v';
    IF others IS NOT NULL THEN
        RETURN QUERY SELECT pos[s.ord], s.event_id, s.event_type, s.data FROM wapi_incoming_store(others) s;
        INSERT INTO wa_poll_secrets (message_id, secret)
        SELECT e->>'id', decode(e->>'poll_secret', 'hex') FROM jsonb_array_elements(others) AS e
        WHERE e ? 'poll_secret' AND length(e->>'poll_secret') = 64
          AND EXISTS (SELECT 1 FROM wa_messages m WHERE m.id = e->>'id' AND m.type = 'poll')
        ON CONFLICT (message_id) DO NOTHING;
    END IF;
    FOR v, i IN SELECT e, n FROM jsonb_array_elements(p) WITH ORDINALITY AS x(e, n) WHERE e->>'k' = 'v' ORDER BY n LOOP
        SELECT * INTO pm FROM wa_messages m WHERE m.id = v->>'poll' AND m.type = 'poll';
        IF pm.id IS NULL THEN
            CONTINUE;
        END IF;
        INSERT INTO wa_poll_vote_messages (id, poll_id) VALUES (v->>'id', pm.id) ON CONFLICT (id) DO NOTHING;
        IF NOT FOUND THEN
            CONTINUE; -- told again
        END IF;
        applied := false;
        INSERT INTO wa_poll_votes AS w (poll_id, voter, vote_id, options, voted_at)
        VALUES (pm.id, v->>'voter', v->>'id', ARRAY(SELECT jsonb_array_elements_text(v->'options')),
                to_timestamp((v->>'ts_ms')::bigint / 1000.0))
        ON CONFLICT (poll_id, voter) DO UPDATE SET vote_id = EXCLUDED.vote_id, options = EXCLUDED.options,
            voted_at = EXCLUDED.voted_at, updated_at = now()
        WHERE w.voted_at <= EXCLUDED.voted_at
        RETURNING true INTO applied;
        IF applied THEN
            ord := i;
            event_id := (v->>'ev')::bigint;
            event_type := 'poll.vote';
            INSERT INTO wa_events (id, type, data)
            VALUES (event_id, 'poll.vote', jsonb_build_object(
                'message_id', pm.id, 'chat_jid', pm.chat_jid, 'voter', v->>'voter',
                'options', coalesce(v->'options', '[]'::jsonb), 'vote_id', v->>'id',
                'ts', to_char(to_timestamp((v->>'ts_ms')::bigint / 1000.0) AT TIME ZONE 'UTC',
                              'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
            RETURNING wa_events.data::text INTO data;
            RETURN NEXT;
        END IF;
    END LOOP;
END;
$$;
