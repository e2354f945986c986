-- examples/embed/prosody/mod_pogo.lua: a node inside a real Prosody (Debian's
-- prosody 0.12 on lua5.4, a minimal loopback config in a temporary
-- directory), in a cluster of bin/pogo nodes (spec/support/embed_moves.lua).
local pogo = require "pogo"

require "support.embed_moves" (_ENV, "prosody", function(_, _, names)
  -- it is Prosody: mod_pogo's "prosody" server answers from inside it
  local info = pogo.call({ "prosody", names[1] }, "info", 5000)
  assert.matches("^0%.12", info.version)
  assert.same({ "localhost" }, info.hosts)
end)
