-- Received media: what is downloaded by itself, and asking the phone again.
--
-- The download policy (media.auto_download, media.max_download_bytes) is
-- written here by the supervisor at each start, so the attachment of a
-- received message gets its state in the same commit as the message (and
-- the message.received event shows it): 'pending' (the download queue takes
-- it) or 'skipped' (not downloaded: the kind is not auto-downloaded, or the
-- file is larger than the limit; error says which and how to fetch it).
CREATE TABLE IF NOT EXISTS wapi_media_policy (
    id                 integer PRIMARY KEY CHECK (id = 1),
    auto_kinds         text[] NOT NULL,
    max_download_bytes bigint NOT NULL CHECK (max_download_bytes > 0),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE wa_message_media DROP CONSTRAINT IF EXISTS wa_message_media_state_check;
ALTER TABLE wa_message_media ADD CONSTRAINT wa_message_media_state_check
    CHECK (state IN ('pending', 'stored', 'failed', 'expired', 'skipped'));

-- Media retry: how many times our phone was asked to upload the file again
-- after the media hosts answered 403/404/410 (supervisor/media_download.c).
ALTER TABLE wa_message_media ADD COLUMN IF NOT EXISTS phone_asks integer NOT NULL DEFAULT 0;

-- A PDF we send: its page count when it was cheap to read (the message
-- carries it; kept so a resend is the same message).
ALTER TABLE wa_message_media ADD COLUMN IF NOT EXISTS pages integer CHECK (pages > 0);

-- Only received attachments start 'pending' (a sent one is 'stored' from
-- the start). No policy row yet: everything is downloaded.
CREATE OR REPLACE FUNCTION wapi_media_policy_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p wapi_media_policy;
BEGIN
    IF NEW.state <> 'pending' THEN
        RETURN NEW;
    END IF;
    SELECT * INTO p FROM wapi_media_policy WHERE id = 1;
    IF NOT FOUND THEN
        RETURN NEW;
    END IF;
    IF NOT (NEW.kind = ANY (p.auto_kinds)) THEN
        NEW.state := 'skipped';
        NEW.error := format('not downloaded automatically (media.auto_download does not list %s); '
                            'POST /api/messages/{id}/media/download fetches it', NEW.kind);
    ELSIF NEW.file_length > p.max_download_bytes THEN
        NEW.state := 'skipped';
        NEW.error := format('%s bytes: larger than media.max_download_bytes (%s)', NEW.file_length,
                            p.max_download_bytes);
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS wa_message_media_policy ON wa_message_media;
CREATE TRIGGER wa_message_media_policy BEFORE INSERT ON wa_message_media
    FOR EACH ROW EXECUTE FUNCTION wapi_media_policy_apply();

-- A download asked for by a user (POST /api/messages/{id}/media/download):
-- a received attachment that is skipped, failed or expired goes back to
-- the queue, with its attempts and phone requests counted afresh; one
-- larger than media.max_download_bytes does not. The answer: the state
-- before ('too_large' instead when it is too large) and the message as it
-- is now; no row when the message has no received attachment.
CREATE OR REPLACE FUNCTION wapi_media_download_request(mid text)
    RETURNS TABLE (before text, message text) LANGUAGE plpgsql AS $$
DECLARE
    st text;
    len bigint;
BEGIN
    SELECT a.state, a.file_length INTO st, len FROM wa_message_media a
    WHERE a.message_id = mid AND a.direct_path IS NOT NULL AND a.uploaded_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF st <> 'stored' AND len > (SELECT p.max_download_bytes FROM wapi_media_policy p WHERE p.id = 1) THEN
        st := 'too_large';
    ELSIF st IN ('skipped', 'failed', 'expired') THEN
        UPDATE wa_message_media SET state = 'pending', error = NULL, attempts = 0, phone_asks = 0,
               next_attempt_at = now(), updated_at = now()
        WHERE message_id = mid;
    END IF;
    RETURN QUERY SELECT st, wapi_message_json(m)::text FROM wa_messages m WHERE m.id = mid;
END;
$$;
