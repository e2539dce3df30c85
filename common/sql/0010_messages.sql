-- Messaging: contacts, chats, messages, the outbox the supervisor sends from,
-- and the durable event log (an event is durable iff it has a wa_events row;
-- ids come from the supervisor's event log).
-- wa_messages.type: text | reaction | unsupported (subtype = the Message field name)
-- wa_messages.status: queued | sent | delivered | read | failed | received
-- wa_outbox.state: pending | inflight | done | failed

CREATE TABLE IF NOT EXISTS wa_contacts (jid text PRIMARY KEY, lid text UNIQUE, push_name text,
  updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS wa_chats (jid text PRIMARY KEY, name text, last_message_id text,
  last_message_at timestamptz, unread_count integer NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS wa_messages (
  seq bigserial NOT NULL UNIQUE, id text PRIMARY KEY, chat_jid text NOT NULL, sender_jid text,
  from_me boolean NOT NULL, type text NOT NULL, subtype text, text text, reply_to text,
  reaction_to text, reaction text, edited_at timestamptz, revoked_at timestamptz,
  status text NOT NULL, error text, ts timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
  idempotency_key text UNIQUE);
CREATE INDEX IF NOT EXISTS wa_messages_chat_seq ON wa_messages (chat_jid, seq);
CREATE TABLE IF NOT EXISTS wa_outbox (message_id text PRIMARY KEY REFERENCES wa_messages(id),
  to_jid text NOT NULL, state text NOT NULL DEFAULT 'pending', attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(), last_error text);
CREATE TABLE IF NOT EXISTS wa_events (id bigint PRIMARY KEY, type text NOT NULL, data jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now());
