-- Node script for the distributed-supervisor cluster specs (run by bin/pogo):
--   dsup_node.lua <name> <initial children count> [redistribute]
-- Runs pogo.dynamic_supervisor <name> (scope "test") under a local one_for_one
-- supervisor, so a killed supervisor is restarted and requests its initial
-- children again. Initial children are workers {"worker", 1..count}.
local pogo = require "pogo"
local supervisor = require "pogo.supervisor"
local helpers = require "support.dsup_remote"

local name, count, redistribute = ...
local children = {}
for i = 1, tonumber(count or 0) or 0 do children[i] = helpers.worker_spec(i) end
local opts = { name = name or "dsup", scope = "test", children = children, sync_interval = 5000,
  redistribute = redistribute, settle_ms = 300, log = function() end }
assert(supervisor.start_link({
  { id = "dsup", type = "supervisor", start = { "pogo.dynamic_supervisor", "start_link", opts } },
}, { intensity = 100, period_ms = 1000 }))
pogo.receive()
