-- A message as the API shows it (GET /api/messages/{id}, events, webhooks).
-- Kept whole here: a change is made in this file (applied again by
-- `wapi --migrate` whenever it differs), never by a migration repeating it.
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
        'pinned_at', to_char(m.pinned_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'pinned_until', to_char(m.pinned_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'pinned_by', m.pinned_by,
        'kept', m.kept,
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
