-- One chat per person. A 1:1 chat is kept under the person's phone number
-- JID; a message that comes addressed by LID alone (its number not yet
-- known) starts a chat under the LID. The moment the number behind that LID
-- is learned (a wa_contacts row gets both), the LID chat is merged into the
-- number's in the same transaction: its messages move, the unread counts
-- add up, the later last message wins, and the LID chat is gone. Messages
-- stored after that under the LID go to the number's chat directly.
-- wa_chat_merges records each merge; the supervisor turns the ones without
-- an event yet into chat.merged events (event ids are its to give).

CREATE TABLE IF NOT EXISTS wa_chat_merges (
  lid text PRIMARY KEY,
  pn text NOT NULL,
  messages integer NOT NULL,
  merged_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  event_id bigint
);
CREATE INDEX IF NOT EXISTS wa_chat_merges_unannounced ON wa_chat_merges (merged_at) WHERE event_id IS NULL;
-- The LID chats (few): the announcer's sweep every few seconds reads these,
-- not every chat.
CREATE INDEX IF NOT EXISTS wa_chats_lid ON wa_chats (jid) WHERE jid LIKE '%@lid';

-- The chat a message to or from jid belongs in: the number's when jid is a
-- LID whose number is known, else jid itself.
CREATE OR REPLACE FUNCTION wapi_chat_of(addr text) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN addr LIKE '%@lid'
              THEN coalesce((SELECT c.jid FROM wa_contacts c WHERE c.lid = addr AND c.jid LIKE '%@s.whatsapp.net'), addr)
              ELSE addr END
$$;

CREATE OR REPLACE FUNCTION wapi_message_chat_by_pn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.chat_jid := wapi_chat_of(NEW.chat_jid);
  RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS wa_messages_chat_by_pn ON wa_messages;
CREATE TRIGGER wa_messages_chat_by_pn BEFORE INSERT ON wa_messages
  FOR EACH ROW WHEN (NEW.chat_jid LIKE '%@lid') EXECUTE FUNCTION wapi_message_chat_by_pn();

-- A contact known by LID alone is keyed by the LID and does not claim the
-- lid column: that belongs to the number's row once the pair is known (the
-- column is unique, and a LID-keyed row holding it kept the pair from ever
-- being recorded).
CREATE OR REPLACE FUNCTION wapi_contact_lid_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.lid := NULL;
  RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS wa_contacts_lid_row ON wa_contacts;
CREATE TRIGGER wa_contacts_lid_row BEFORE INSERT OR UPDATE ON wa_contacts
  FOR EACH ROW WHEN (NEW.jid LIKE '%@lid' AND NEW.lid IS NOT NULL) EXECUTE FUNCTION wapi_contact_lid_row();
UPDATE wa_contacts SET lid = NULL WHERE jid LIKE '%@lid' AND lid IS NOT NULL;

-- Merges what was kept under lid into pn's: the LID-keyed contact (its push
-- name when the number's has none) and the chat (nothing when there is none).
CREATE OR REPLACE FUNCTION wapi_chat_merge(to_pn text, from_lid text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  old wa_chats;
  moved integer;
BEGIN
  UPDATE wa_contacts p SET push_name = l.push_name FROM wa_contacts l
    WHERE p.jid = to_pn AND l.jid = from_lid AND p.push_name IS NULL AND l.push_name IS NOT NULL;
  DELETE FROM wa_contacts WHERE jid = from_lid;
  SELECT * INTO old FROM wa_chats WHERE jid = from_lid FOR UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  UPDATE wa_messages SET chat_jid = to_pn, updated_at = now() WHERE chat_jid = from_lid;
  GET DIAGNOSTICS moved = ROW_COUNT;
  INSERT INTO wa_chats AS c (jid, name, last_message_id, last_message_at, unread_count, updated_at,
                             ephemeral_seconds, ephemeral_set_at, ephemeral_set_by)
  VALUES (to_pn, old.name, old.last_message_id, old.last_message_at, old.unread_count, now(),
          old.ephemeral_seconds, old.ephemeral_set_at, old.ephemeral_set_by)
  ON CONFLICT (jid) DO UPDATE SET
    name = coalesce(c.name, EXCLUDED.name),
    -- the disappearing timer set last (0031) wins
    ephemeral_seconds = CASE WHEN EXCLUDED.ephemeral_set_at > coalesce(c.ephemeral_set_at, '-infinity')
                             THEN EXCLUDED.ephemeral_seconds ELSE c.ephemeral_seconds END,
    ephemeral_set_by = CASE WHEN EXCLUDED.ephemeral_set_at > coalesce(c.ephemeral_set_at, '-infinity')
                            THEN EXCLUDED.ephemeral_set_by ELSE c.ephemeral_set_by END,
    ephemeral_set_at = greatest(c.ephemeral_set_at, EXCLUDED.ephemeral_set_at),
    last_message_id = CASE WHEN c.last_message_at IS NULL OR EXCLUDED.last_message_at > c.last_message_at
                           THEN EXCLUDED.last_message_id ELSE c.last_message_id END,
    last_message_at = greatest(c.last_message_at, EXCLUDED.last_message_at),
    unread_count = c.unread_count + EXCLUDED.unread_count,
    updated_at = now();
  DELETE FROM wa_chats WHERE jid = from_lid;
  INSERT INTO wa_chat_merges (lid, pn, messages) VALUES (from_lid, to_pn, moved)
  ON CONFLICT (lid) DO UPDATE SET pn = EXCLUDED.pn, messages = wa_chat_merges.messages + EXCLUDED.messages,
    merged_at = clock_timestamp(), event_id = NULL;
END $$;

CREATE OR REPLACE FUNCTION wapi_contact_lid_learned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM wapi_chat_merge(NEW.jid, NEW.lid);
  RETURN NULL;
END $$;

-- Only when the mapping is new (every incoming message rewrites its
-- sender's contact row: that must cost nothing more).
DROP TRIGGER IF EXISTS wa_contacts_lid_learned ON wa_contacts;
CREATE TRIGGER wa_contacts_lid_learned AFTER INSERT ON wa_contacts
  FOR EACH ROW WHEN (NEW.lid IS NOT NULL AND NEW.jid LIKE '%@s.whatsapp.net') EXECUTE FUNCTION wapi_contact_lid_learned();
DROP TRIGGER IF EXISTS wa_contacts_lid_changed ON wa_contacts;
CREATE TRIGGER wa_contacts_lid_changed AFTER UPDATE OF lid ON wa_contacts
  FOR EACH ROW WHEN (NEW.lid IS NOT NULL AND NEW.lid IS DISTINCT FROM OLD.lid AND NEW.jid LIKE '%@s.whatsapp.net')
  EXECUTE FUNCTION wapi_contact_lid_learned();

-- The merges not yet told: each becomes a chat.merged event with the ids
-- from first_id on (one statement: the event and its mark commit together).
-- First, a LID chat whose number became known while a message to it was
-- being stored (a send racing the mapping) is merged too.
CREATE OR REPLACE FUNCTION wapi_chat_merges_announce(first_id bigint, max_n integer)
  RETURNS TABLE (id bigint, type text, data text) LANGUAGE plpgsql AS $$
DECLARE
  m wa_chat_merges;
  n integer := 0;
BEGIN
  PERFORM wapi_chat_merge(k.jid, k.lid) FROM wa_chats ch JOIN wa_contacts k ON k.lid = ch.jid
    WHERE ch.jid LIKE '%@lid' AND k.jid LIKE '%@s.whatsapp.net';
  FOR m IN SELECT * FROM wa_chat_merges WHERE event_id IS NULL ORDER BY merged_at LIMIT max_n FOR UPDATE SKIP LOCKED LOOP
    id := first_id + n;
    type := 'chat.merged';
    data := json_build_object('jid', m.pn, 'merged', m.lid, 'messages', m.messages)::text;
    INSERT INTO wa_events (id, type, data) VALUES (id, type, data::jsonb);
    UPDATE wa_chat_merges SET event_id = id WHERE lid = m.lid;
    n := n + 1;
    RETURN NEXT;
  END LOOP;
END $$;

-- Chats already split before this: merge them now (their events follow).
DO $$
DECLARE
  c record;
BEGIN
  FOR c IN SELECT k.jid AS pn, k.lid FROM wa_contacts k JOIN wa_chats ch ON ch.jid = k.lid
           WHERE k.lid IS NOT NULL AND k.jid LIKE '%@s.whatsapp.net' LOOP
    PERFORM wapi_chat_merge(c.pn, c.lid);
  END LOOP;
END $$;
