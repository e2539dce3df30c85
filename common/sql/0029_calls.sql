-- Calls offered to us. wapi takes no calls: each offer becomes a
-- call.received event in the statement that records it here; the server
-- tells a call again until its stanza is acked (after this commit), and a
-- call seen before makes no second event.
CREATE TABLE IF NOT EXISTS wa_calls (
  call_id text PRIMARY KEY,
  from_jid text NOT NULL,
  caller_pn text,          -- the caller's phone number when the call came by LID
  group_jid text,          -- a group call's group
  video boolean NOT NULL,
  offered_at timestamptz NOT NULL,
  rejected boolean NOT NULL, -- turned down at once (whatsapp.reject_calls)
  created_at timestamptz NOT NULL DEFAULT now()
);
