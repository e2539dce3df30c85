-- Access control: three roles (admin, member, viewer), invitations, the
-- one-time setup token for the first admin, and the audit log.

-- Better Auth's admin plugin calls an ordinary user "user": here that is a
-- member (reads and sends messages). NULL and other names are read-only
-- viewers (see common/authz.c).
UPDATE "user" SET "role" = 'member' WHERE "role" = 'user';

-- An invitation: a single-use token (only its SHA-256 is kept) that lets one
-- person sign up with the role it names, before it expires; optionally only
-- with the e-mail it names.
CREATE TABLE IF NOT EXISTS wapi_invitations (
    id          text PRIMARY KEY,
    token_hash  text NOT NULL UNIQUE,
    email       text,
    role        text NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    used_by     text,
    revoked_at  timestamptz
);

-- While no account exists in production, the first sign-up must show the
-- token the supervisor printed in its log at start (only its SHA-256 here).
CREATE TABLE IF NOT EXISTS wapi_setup_token (
    id         integer PRIMARY KEY CHECK (id = 1),
    token_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Who did what. Rows are written in the transaction of what they record (or
-- right after, for actions on the live connection); the supervisor then
-- publishes each as an audit.* event (event_id set in that same step).
CREATE TABLE IF NOT EXISTS wapi_audit (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    actor_user_id text,  -- NULL: the server itself or the command line
    actor_key_id  text,  -- the API key used, if any
    actor_ip      text,
    action        text NOT NULL,
    target        text,
    detail        jsonb NOT NULL DEFAULT '{}',
    event_id      bigint
);
CREATE INDEX IF NOT EXISTS wapi_audit_unpublished ON wapi_audit (id) WHERE event_id IS NULL;

-- One audit row (callable from a statement that also does the action).
CREATE OR REPLACE FUNCTION wapi_audit_add(p_user text, p_key text, p_ip text, p_action text, p_target text,
                                          p_detail jsonb)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO wapi_audit (actor_user_id, actor_key_id, actor_ip, action, target, detail)
    VALUES (nullif(p_user, ''), nullif(p_key, ''), nullif(p_ip, ''), p_action, p_target, coalesce(p_detail, '{}'));
$$;

-- Creates a user with a credential account, deciding under one lock whether
-- the registration policy allows it:
--   * the first user becomes admin (in production only with the setup token
--     when p_need_setup);
--   * later, a valid unused invitation lets its holder in with its role;
--   * 'open' lets anyone in as a member; 'invite' and 'closed' only an admin
--     or the command line (p_privileged, role p_role).
-- Returns 'created:<role>', 'exists', 'invite', 'closed', 'setup_token'
-- (first account without the right token), 'invitation' (unknown, used,
-- revoked or expired) or 'invitation_email' (made out to another address).
DROP FUNCTION IF EXISTS wapi_create_user(text, text, text, text, text, text, boolean, text);
CREATE OR REPLACE FUNCTION wapi_create_user(p_id text, p_name text, p_email text, p_hash text, p_account_id text,
                                            p_policy text, p_privileged boolean, p_role text,
                                            p_invitation_hash text, p_setup_hash text, p_need_setup boolean,
                                            p_actor text, p_key text, p_ip text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_role text;
    v_via text;
    v_inv wapi_invitations%ROWTYPE;
BEGIN
    PERFORM pg_advisory_xact_lock(7761706900000002);
    IF NOT EXISTS (SELECT 1 FROM "user") THEN
        IF p_policy = 'closed' AND NOT p_privileged THEN
            RETURN 'closed';
        END IF;
        IF p_need_setup AND NOT p_privileged THEN
            IF p_setup_hash IS NULL OR NOT EXISTS (SELECT 1 FROM wapi_setup_token WHERE id = 1 AND token_hash = p_setup_hash) THEN
                RETURN 'setup_token';
            END IF;
        END IF;
        v_role := 'admin';
        v_via := CASE WHEN NOT p_privileged THEN 'first-user' WHEN p_actor IS NULL THEN 'command-line' ELSE 'admin' END;
    ELSIF EXISTS (SELECT 1 FROM "user" WHERE "email" = p_email) THEN
        RETURN 'exists';
    ELSIF p_privileged THEN
        v_role := coalesce(p_role, 'member');
        v_via := CASE WHEN p_actor IS NULL THEN 'command-line' ELSE 'admin' END;
    ELSIF p_invitation_hash IS NOT NULL THEN
        SELECT * INTO v_inv FROM wapi_invitations WHERE token_hash = p_invitation_hash FOR UPDATE;
        IF NOT FOUND OR v_inv.used_at IS NOT NULL OR v_inv.revoked_at IS NOT NULL OR v_inv.expires_at <= now() THEN
            RETURN 'invitation';
        END IF;
        IF v_inv.email IS NOT NULL AND lower(v_inv.email) <> lower(p_email) THEN
            RETURN 'invitation_email';
        END IF;
        UPDATE wapi_invitations SET used_at = now(), used_by = p_id WHERE id = v_inv.id;
        v_role := v_inv.role;
        v_via := 'invitation';
    ELSIF p_policy <> 'open' THEN
        RETURN p_policy;
    ELSE
        v_role := 'member';
        v_via := 'sign-up';
    END IF;
    INSERT INTO "user" ("id", "name", "email", "emailVerified", "image", "createdAt", "updatedAt", "role")
    VALUES (p_id, p_name, p_email, false, NULL, now(), now(), v_role);
    INSERT INTO "account" ("id", "accountId", "providerId", "userId", "password", "createdAt", "updatedAt")
    VALUES (p_account_id, p_id, 'credential', p_id, p_hash, now(), now());
    DELETE FROM wapi_setup_token;
    -- Who acted: the admin, the new user themselves, or no one (the command line).
    PERFORM wapi_audit_add(CASE WHEN p_privileged THEN p_actor ELSE p_id END, p_key, p_ip,
                           'user.created', p_id,
                           jsonb_build_object('email', p_email, 'role', v_role, 'via', v_via,
                                              'invitation', v_inv.id));
    RETURN 'created:' || v_role;
END $$;

-- Changes a user's role; never leaves the installation without an admin.
-- Returns 'ok:<previous role>', 'not_found' or 'last_admin'.
CREATE OR REPLACE FUNCTION wapi_set_role(p_user text, p_role text, p_actor text, p_key text, p_ip text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_old text;
BEGIN
    PERFORM pg_advisory_xact_lock(7761706900000002);
    SELECT coalesce("role", '') INTO v_old FROM "user" WHERE "id" = p_user FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'not_found';
    END IF;
    IF v_old = 'admin' AND p_role <> 'admin'
       AND NOT EXISTS (SELECT 1 FROM "user" WHERE "role" = 'admin' AND "id" <> p_user) THEN
        RETURN 'last_admin';
    END IF;
    IF v_old IS DISTINCT FROM p_role THEN
        UPDATE "user" SET "role" = p_role, "updatedAt" = now() WHERE "id" = p_user;
        PERFORM wapi_audit_add(p_actor, p_key, p_ip, 'user.role_changed', p_user,
                               jsonb_build_object('from', nullif(v_old, ''), 'to', p_role));
    END IF;
    RETURN 'ok:' || v_old;
END $$;

-- Deletes a user, their sessions, accounts and API keys; never the last
-- admin. Returns 'ok', 'not_found' or 'last_admin'.
CREATE OR REPLACE FUNCTION wapi_remove_user(p_user text, p_actor text, p_key text, p_ip text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_role text;
    v_email text;
    v_keys integer;
BEGIN
    PERFORM pg_advisory_xact_lock(7761706900000002);
    SELECT coalesce("role", ''), "email" INTO v_role, v_email FROM "user" WHERE "id" = p_user FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'not_found';
    END IF;
    IF v_role = 'admin' AND NOT EXISTS (SELECT 1 FROM "user" WHERE "role" = 'admin' AND "id" <> p_user) THEN
        RETURN 'last_admin';
    END IF;
    DELETE FROM "apikey" WHERE "referenceId" = p_user;
    GET DIAGNOSTICS v_keys = ROW_COUNT;
    DELETE FROM "user" WHERE "id" = p_user;
    PERFORM wapi_audit_add(p_actor, p_key, p_ip, 'user.deleted', p_user,
                           jsonb_build_object('email', v_email, 'role', nullif(v_role, ''), 'api_keys', v_keys));
    RETURN 'ok';
END $$;
