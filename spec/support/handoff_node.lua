-- A script for bin/pogo (spec/cluster/handoff_spec.lua): a node of the
-- distributed supervisor "dhand" whose counters (support.handoff_remote)
-- report to the spec's node.
--   handoff_node.lua <events node> [redistribute]
local pogo = require "pogo"
local helpers = require "support.handoff_remote"

local events_node, redistribute = ...
assert(pogo.connect(events_node:match("@(.+)$")))
helpers.start_sup(redistribute ~= "" and redistribute or nil)
pogo.receive() -- the supervisor's parent stays (its exit would stop it)
