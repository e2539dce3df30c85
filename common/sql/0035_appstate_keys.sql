-- The app-state sync keys our phone shares (AppStateSyncKeyShare): what
-- app-state patches (archive, pin, mute, names, ...) are sealed with. Stored
-- with the incoming batch that brought them, before its ack, so a key is
-- never lost to a crash; the phone shares each once.
CREATE TABLE IF NOT EXISTS wa_appstate_keys (
  key_id bytea PRIMARY KEY CHECK (length(key_id) BETWEEN 1 AND 64),
  key_data bytea NOT NULL CHECK (length(key_data) = 32),
  shared_at timestamptz,
  stored_at timestamptz NOT NULL DEFAULT now()
);
