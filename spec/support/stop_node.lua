-- A script for bin/pogo (spec/cluster/stop_spec.lua): a node whose children
-- report to the spec's node, for SIGTERM to stop in order.
--   stop_node.lua <events node> <local tree: yes|no> [stubborn: yes] [marker file]
-- Connects to the events node, starts the local tree "local_top" (when asked;
-- see support.stop_remote.start_local), then the distributed supervisor
-- "dstop", and forwards its nodedown messages to the events node.
local pogo = require "pogo"
local helpers = require "support.stop_remote"

local events_node, with_local, stubborn, marker = ...
assert(pogo.connect(events_node:match("@(.+)$")))
helpers.watch_nodes(events_node)
if with_local == "yes" then
  helpers.start_local(events_node, { stubborn = stubborn == "yes", marker = marker ~= "" and marker or nil })
end
helpers.start_dsup()
pogo.receive() -- the supervisors' parent stays (its exit would stop them)
