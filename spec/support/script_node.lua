-- A script for bin/pogo (spec/cluster/node_spec.lua): runs as the node's first
-- process and keeps its arguments for anyone who asks {"script_args", node}.
local pogo = require "pogo"
local args = table.pack(...)
if args[1] == "fail" then error("the script failed on purpose") end
pogo.register("script_args", pogo.self())
require("pogo.server").enter_loop({ handle_call = function(_, _, s) return s, s end }, args)
