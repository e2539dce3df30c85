-- Accounts, sessions and API keys, in Better Auth's own tables and column
-- names (camelCase, quoted), so a database Better Auth created keeps working
-- and one wapi created can be handed back to Better Auth. Every statement
-- tolerates the tables being there already.

CREATE TABLE IF NOT EXISTS "user" (
    "id"            text PRIMARY KEY,
    "name"          text NOT NULL,
    "email"         text NOT NULL UNIQUE,
    "emailVerified" boolean NOT NULL,
    "image"         text,
    "createdAt"     timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"     timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
-- The admin plugin's column: 'admin' or 'user'.
ALTER TABLE "user" ADD COLUMN IF NOT EXISTS "role" text;
-- On a database that already has users, the first of them is the admin.
UPDATE "user" SET "role" = 'admin'
WHERE "id" = (SELECT "id" FROM "user" ORDER BY "createdAt", "id" LIMIT 1)
  AND NOT EXISTS (SELECT 1 FROM "user" WHERE "role" = 'admin');

CREATE TABLE IF NOT EXISTS "session" (
    "id"        text PRIMARY KEY,
    "expiresAt" timestamptz NOT NULL,
    "token"     text NOT NULL UNIQUE,
    "createdAt" timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" timestamptz NOT NULL,
    "ipAddress" text,
    "userAgent" text,
    "userId"    text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS "session_userId_idx" ON "session" ("userId");

CREATE TABLE IF NOT EXISTS "account" (
    "id"                    text PRIMARY KEY,
    "accountId"             text NOT NULL,
    "providerId"            text NOT NULL,
    "userId"                text NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
    "accessToken"           text,
    "refreshToken"          text,
    "idToken"               text,
    "accessTokenExpiresAt"  timestamptz,
    "refreshTokenExpiresAt" timestamptz,
    "scope"                 text,
    "password"              text,
    "createdAt"             timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"             timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS "account_userId_idx" ON "account" ("userId");

CREATE TABLE IF NOT EXISTS "verification" (
    "id"         text PRIMARY KEY,
    "identifier" text NOT NULL,
    "value"      text NOT NULL,
    "expiresAt"  timestamptz NOT NULL,
    "createdAt"  timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt"  timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS "verification_identifier_idx" ON "verification" ("identifier");

-- The api-key plugin's table (@better-auth/api-key): "key" holds
-- base64url(SHA-256(key)) without padding; "start" the first characters.
CREATE TABLE IF NOT EXISTS "apikey" (
    "id"                  text PRIMARY KEY,
    "configId"            text NOT NULL DEFAULT 'default',
    "name"                text,
    "start"               text,
    "referenceId"         text NOT NULL,
    "prefix"              text,
    "key"                 text NOT NULL,
    "refillInterval"      integer,
    "refillAmount"        integer,
    "lastRefillAt"        timestamptz,
    "enabled"             boolean DEFAULT true,
    "rateLimitEnabled"    boolean DEFAULT true,
    "rateLimitTimeWindow" integer DEFAULT 86400000,
    "rateLimitMax"        integer DEFAULT 10,
    "requestCount"        integer DEFAULT 0,
    "remaining"           integer,
    "lastRequest"         timestamptz,
    "expiresAt"           timestamptz,
    "createdAt"           timestamptz NOT NULL,
    "updatedAt"           timestamptz NOT NULL,
    "permissions"         text,
    "metadata"            text
);
-- Tables from plugin versions before 1.5 name the owner "userId" and have no
-- "configId": add what is missing and carry the owner over.
ALTER TABLE "apikey" ADD COLUMN IF NOT EXISTS "configId" text NOT NULL DEFAULT 'default';
ALTER TABLE "apikey" ADD COLUMN IF NOT EXISTS "referenceId" text;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'apikey' AND column_name = 'userId') THEN
        EXECUTE 'UPDATE "apikey" SET "referenceId" = "userId" WHERE "referenceId" IS NULL';
        EXECUTE 'ALTER TABLE "apikey" ALTER COLUMN "userId" DROP NOT NULL';
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS "apikey_key_idx" ON "apikey" ("key");
CREATE INDEX IF NOT EXISTS "apikey_referenceId_idx" ON "apikey" ("referenceId");

-- Sign-in and sign-up attempts per client address, shared by all workers.
CREATE TABLE IF NOT EXISTS wapi_rate_limit (
    key          text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    count        integer NOT NULL
);

-- Creates a user with a credential account, deciding under one lock whether
-- the registration policy allows it: the first user becomes admin; after
-- that 'open' lets anyone in, 'invite' and 'closed' only an admin (or the
-- command line). Returns 'created:<role>', 'exists', 'invite' or 'closed'.
CREATE OR REPLACE FUNCTION wapi_create_user(p_id text, p_name text, p_email text, p_hash text, p_account_id text,
                                            p_policy text, p_privileged boolean, p_role text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_role text;
BEGIN
    PERFORM pg_advisory_xact_lock(7761706900000002);
    IF NOT EXISTS (SELECT 1 FROM "user") THEN
        IF p_policy = 'closed' AND NOT p_privileged THEN
            RETURN 'closed';
        END IF;
        v_role := 'admin';
    ELSIF NOT p_privileged AND p_policy <> 'open' THEN
        RETURN p_policy;
    ELSIF EXISTS (SELECT 1 FROM "user" WHERE "email" = p_email) THEN
        RETURN 'exists';
    ELSIF p_privileged THEN
        v_role := coalesce(p_role, 'user');
    ELSE
        v_role := 'user';
    END IF;
    INSERT INTO "user" ("id", "name", "email", "emailVerified", "image", "createdAt", "updatedAt", "role")
    VALUES (p_id, p_name, p_email, false, NULL, now(), now(), v_role);
    INSERT INTO "account" ("id", "accountId", "providerId", "userId", "password", "createdAt", "updatedAt")
    VALUES (p_account_id, p_id, 'credential', p_id, p_hash, now(), now());
    RETURN 'created:' || v_role;
END $$;
