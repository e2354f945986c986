-- A script for bin/pogo (spec/cluster/handoff_spec.lua): a node of the
-- distributed supervisor "dhand" whose counters (support.handoff_remote)
-- report to the spec's node.
--   handoff_node.lua <events node> [redistribute] ["later"]
-- With "later" the supervisor starts only when the spec calls start_sup_later.
local pogo = require "pogo"
local helpers = require "support.handoff_remote"

local events_node, redistribute, later = ...
assert(pogo.connect(events_node:match("@(.+)$")))
if later ~= "later" then helpers.start_sup(redistribute ~= "" and redistribute or nil) end
pogo.receive() -- the supervisor's parent stays (its exit would stop it)
