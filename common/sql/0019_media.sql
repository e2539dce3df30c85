-- Media: the metadata of the files in the media store (supervisor/media_store.c).
-- The bytes live on the media volume, named by the SHA-256 of their content:
-- one file however many rows (uploads, later messages) share it. A row is
-- written by the supervisor once its file is durable in the store; the
-- daily sweep removes files no row in state pending or stored names.
CREATE TABLE IF NOT EXISTS wa_media (
    seq        bigserial NOT NULL UNIQUE,   -- list order and cursors
    id         text PRIMARY KEY,            -- "m_" + 24 random hex digits
    sha256     text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size       bigint NOT NULL CHECK (size > 0),
    mimetype   text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('image', 'video', 'audio', 'voice', 'document', 'sticker')),
    file_name  text,
    width      integer,
    height     integer,
    seconds    integer,
    state      text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'stored', 'failed', 'expired')),
    error      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The sweep asks, per file, whether a live row names it.
CREATE INDEX IF NOT EXISTS wa_media_sha256 ON wa_media (sha256);
-- Retention finds old stored rows.
CREATE INDEX IF NOT EXISTS wa_media_stored_created ON wa_media (created_at) WHERE state = 'stored';

-- The key of signed media links (GET /api/media/{id}/url): 32 random bytes
-- the supervisor makes once and hands to the workers over their socket. It
-- lives here, not in the repository or the configuration, so a link stays
-- valid across restarts and pods that share the database.
CREATE TABLE IF NOT EXISTS wapi_media_secret (
    id              integer PRIMARY KEY CHECK (id = 1),
    secret          text NOT NULL CHECK (secret ~ '^[0-9a-f]{64}$'),
    base_url        text,    -- BETTER_AUTH_URL, written at each start: the links' origin
    url_ttl_seconds integer, -- media.url_ttl_seconds, likewise
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- One definition of a media row as JSON, for every answer that shows one
-- (the 201 of an upload, lists). Times in milliseconds, UTC.
CREATE OR REPLACE FUNCTION wapi_media_json(m wa_media) RETURNS json
    LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', m.id, 'sha256', m.sha256, 'mimetype', m.mimetype, 'size', m.size, 'kind', m.kind,
        'file_name', m.file_name, 'width', m.width, 'height', m.height, 'seconds', m.seconds,
        'state', m.state, 'error', m.error,
        'created_at', to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'updated_at', to_char(m.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
$$;

-- HMAC-SHA256 (RFC 2104) from sha256(), for keys of at most 64 bytes: the
-- signature of media links made in SQL is the one common/media_url.c makes
-- (t_media_messages compares them through the server).
CREATE OR REPLACE FUNCTION wapi_hmac_sha256(k bytea, m bytea) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT AS $$
    WITH p AS (SELECT k || decode(repeat('00', 64 - length(k)), 'hex') AS k),
    x AS (SELECT decode(string_agg(lpad(to_hex(get_byte(p.k, i) # 54), 2, '0'), '' ORDER BY i), 'hex') AS ik,
                 decode(string_agg(lpad(to_hex(get_byte(p.k, i) # 92), 2, '0'), '' ORDER BY i), 'hex') AS ok
          FROM p, generate_series(0, 63) AS i)
    SELECT sha256(x.ok || sha256(x.ik || m)) FROM x
$$;

-- A signed link to a stored file, as GET /api/media/{id}/url makes it:
-- BASE/api/media/ID?expires=UNIX&sig=base64url(HMAC(key, ID "\n" UNIX)),
-- valid for media.url_ttl_seconds from now; NULL before the supervisor has
-- recorded the key and base URL.
CREATE OR REPLACE FUNCTION wapi_media_link(mid text) RETURNS text
    LANGUAGE sql STABLE AS $$
    SELECT rtrim(s.base_url, '/') || '/api/media/' || mid || '?expires=' || e.t || '&sig=' ||
           rtrim(translate(encode(wapi_hmac_sha256(decode(s.secret, 'hex'),
                                                   convert_to(mid || E'\n' || e.t, 'UTF8')), 'base64'), '+/', '-_'), '=')
    FROM wapi_media_secret s,
         LATERAL (SELECT (extract(epoch FROM now())::bigint + s.url_ttl_seconds)::text AS t) e
    WHERE s.id = 1 AND s.base_url IS NOT NULL AND s.url_ttl_seconds IS NOT NULL
$$;
