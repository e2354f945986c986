-- examples/embed/cqueues/node.lua, a node in a cqueues program (Debian's
-- lua-cqueues), in a cluster of bin/pogo nodes (spec/support/embed_moves.lua).
local pogo = require "pogo"

require "support.embed_moves" (_ENV, "cqueues", function(_, _, names)
  -- the host's own coroutines run beside the node: its ticker counts on
  local first = pogo.call({ "cqueues", names[1] }, "ticks", 2000)
  pogo.sleep(250)
  assert.is_true(pogo.call({ "cqueues", names[1] }, "ticks", 2000) > first)
end)
