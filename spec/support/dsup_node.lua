-- Node script for the distributed-supervisor cluster specs (run by bin/pogo):
--   dsup_node.lua <name> <initial children count> [redistribute] [events node] [has_local_module]
--     [settle_ms] [probe node] [manual]
-- Runs pogo.dynamic_supervisor "dsup" (scope "test") under a local one_for_one
-- supervisor (support.dsup_remote.start_supervisor), so a killed supervisor is
-- restarted and requests its initial children again. Initial children are
-- workers {"worker", 1..count}. With an events node, listener calls are sent
-- to {"dsup_events", events node} as {"event", <listener>, this node, args...,
-- ns = uv.hrtime()}; with a probe node, each listener event calls every API
-- function once (support.dsup_remote.api_probe). With has_local_module "yes",
-- the module "support.only_here" exists on this node only. With manual "yes"
-- no supervisor starts: the spec starts it with dsup_remote.start_sup.
local pogo = require "pogo"
local helpers = require "support.dsup_remote"

local _, count, redistribute, events_node, has_local, settle_ms, probe_node, manual = ...
local function arg(v) if v ~= nil and v ~= "" then return v end end
if has_local == "yes" then
  package.preload["support.only_here"] = function()
    return { start_link = function() return require("support.worker").start_link() end }
  end
end
if manual ~= "yes" then
  helpers.start_supervisor { initial = tonumber(count or 0) or 0, redistribute = arg(redistribute),
    events = arg(events_node), probe = arg(probe_node), settle_ms = tonumber(settle_ms) }
end
pogo.receive()
