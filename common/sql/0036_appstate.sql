-- App-state sync (archive, pin, mute, read, names, labels, ... kept in step
-- with our phone). Per collection its version and LTHash; per collection
-- the index MAC → value MAC map each patch is checked against, with the
-- action each entry holds (its index, kind and SyncActionValue, so what
-- wapi does not act on is still kept as a raw row). What the actions mean
-- lands on chats, contacts, messages and labels (wapi_appstate_apply in
-- common/sql/defs/wapi_appstate_apply.sql, one patch per statement).
CREATE TABLE IF NOT EXISTS wa_appstate_collections (
  name text PRIMARY KEY,
  version bigint NOT NULL CHECK (version >= 0),
  hash bytea NOT NULL CHECK (length(hash) = 128),
  snapshots integer NOT NULL DEFAULT 0, -- snapshots applied (the first sync, and each resync)
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS wa_appstate_map (
  collection text NOT NULL,
  index_mac bytea NOT NULL CHECK (length(index_mac) = 32),
  value_mac bytea NOT NULL CHECK (length(value_mac) = 32),
  index_json text NOT NULL,
  kind text NOT NULL,
  value bytea,
  action_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (collection, index_mac)
);
CREATE TABLE IF NOT EXISTS wa_labels (
  id text PRIMARY KEY,
  name text,
  color integer,
  deleted boolean NOT NULL DEFAULT false,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS wa_chat_labels (
  label_id text NOT NULL,
  chat_jid text NOT NULL,
  PRIMARY KEY (label_id, chat_jid)
);
CREATE TABLE IF NOT EXISTS wa_appstate_settings (
  name text PRIMARY KEY,
  value text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE wa_chats ADD COLUMN IF NOT EXISTS archived boolean NOT NULL DEFAULT false;
ALTER TABLE wa_chats ADD COLUMN IF NOT EXISTS pinned_at timestamptz;
ALTER TABLE wa_chats ADD COLUMN IF NOT EXISTS muted_until timestamptz;
ALTER TABLE wa_chats ADD COLUMN IF NOT EXISTS marked_unread boolean NOT NULL DEFAULT false;
ALTER TABLE wa_chats ADD COLUMN IF NOT EXISTS cleared_at timestamptz;
ALTER TABLE wa_chats ADD COLUMN IF NOT EXISTS deleted_at timestamptz;
ALTER TABLE wa_contacts ADD COLUMN IF NOT EXISTS saved_name text;
ALTER TABLE wa_contacts ADD COLUMN IF NOT EXISTS first_name text;
ALTER TABLE wa_messages ADD COLUMN IF NOT EXISTS starred boolean NOT NULL DEFAULT false;
ALTER TABLE wa_messages ADD COLUMN IF NOT EXISTS deleted_for_me_at timestamptz;
