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
    id         integer PRIMARY KEY CHECK (id = 1),
    secret     text NOT NULL CHECK (secret ~ '^[0-9a-f]{64}$'),
    created_at timestamptz NOT NULL DEFAULT now()
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
