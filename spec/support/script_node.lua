-- A script for bin/pogo (spec/cluster/node_spec.lua): runs as the node's first
-- process and keeps its arguments for anyone who asks {"script_args", node}.
local pogo = require "pogo"
local args = table.pack(...)
if args[1] == "fail" then error("the script failed on purpose") end
if args[1] == "tree" then -- starts a tree linked to it and returns: the tree runs on
  local worker = { start = function()
    return pogo.spawn_link(function()
      pogo.register("tree_worker", pogo.self())
      while true do pogo.receive() end
    end)
  end }
  package.loaded.script_tree_worker = worker
  assert(require("pogo.supervisor").start_link({ { id = "w", start = { "script_tree_worker", "start" } } }))
  -- a second tree, which can be made to crash
  local sup2 = assert(require("pogo.supervisor").start_link({}))
  pogo.register("tree_sup2", sup2)
  return
end
pogo.register("script_args", pogo.self())
require("pogo.server").enter_loop({ handle_call = function(_, _, s) return s, s end }, args)
