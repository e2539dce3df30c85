-- make bench: wrk script for POST /api/messages with an API key.
--   wrk -s tests/bench/msg_post.lua URL -- KEY [TO]
-- TO is a phone number (every request to that one chat) or "spread" (each
-- request to a chat of its own). Every request carries a text of its own and
-- no idempotency_key.
local threads = {}

function setup(thread)
    table.insert(threads, thread)
    thread:set("tid", #threads)
end

function init(args)
    key = args[1]
    to = args[2] or "+15550009999"
    n = 0
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["X-Api-Key"] = key
end

function request()
    n = n + 1
    local dest = to
    if to == "spread" then
        dest = string.format("+1%d%09d", 2 + tid, n)
    end
    return wrk.format("POST", nil, nil, string.format('{"to":"%s","text":"bench %d.%d"}', dest, tid, n))
end
