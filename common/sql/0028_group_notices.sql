-- Changes to groups (w:gp2 notices) become events group.created,
-- group.updated and group.participants in the statement that records the
-- notice here: the server tells a notice again until it is acked (after this
-- commit), and a notice seen before makes no second event.
CREATE TABLE IF NOT EXISTS wa_group_notices (
  id text PRIMARY KEY, -- the group's JID and the notice's id
  created_at timestamptz NOT NULL DEFAULT now()
);
