-- examples/embed/c_host/host.c, a C program with its own epoll loop running
-- two nodes in two Lua states, in a cluster of bin/pogo nodes
-- (spec/support/embed_moves.lua). Under make valgrind it runs under valgrind.
local pogo = require "pogo"

require "support.embed_moves" (_ENV, "c_host", function(_, _, names)
  -- the two nodes of the one process are linked to each other over TCP
  for i, name in ipairs(names) do
    local other = names[3 - i]
    local ok, peers = pogo.rpc(name, "pogo", "nodes", {}, 5000)
    assert.is_true(ok, tostring(peers))
    local seen = false
    for _, p in ipairs(peers) do seen = seen or p == other end
    assert.is_true(seen, name .. " is not linked to " .. other)
    assert.equal(name, (select(2, pogo.rpc(name, "pogo", "node", {}, 5000))))
  end
end, { nodes = 2 })
