-- A script for bin/pogo (spec/cluster/node_spec.lua): runs as the node's first
-- process and keeps its arguments for anyone who asks {"script_args", node}.
local pogo = require "pogo"
local args = table.pack(...)
if args[1] == "fail" then error("the script failed on purpose") end
pogo.register("script_args", pogo.self())
while true do
  local m = pogo.receive()
  if type(m) == "table" and m[1] == "$call" then pogo.reply(m[2], args) end
end
