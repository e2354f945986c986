-- Node script for the distributed-supervisor cluster specs (run by bin/pogo):
--   dsup_node.lua <name> <initial children count> [redistribute] [events node] [has_local_module]
--     [settle_ms]
-- Runs pogo.dynamic_supervisor <name> (scope "test") under a local one_for_one
-- supervisor, so a killed supervisor is restarted and requests its initial
-- children again. Initial children are workers {"worker", 1..count}. With an
-- events node, listener calls are sent to {"dsup_events", events node} as
-- {"event", <listener>, this node, args..., ns = uv.hrtime()}. With has_local_module "yes", the
-- module "support.only_here" exists on this node only.
local pogo = require "pogo"
local uv = require "luv"
local supervisor = require "pogo.supervisor"
local helpers = require "support.dsup_remote"

local name, count, redistribute, events_node, has_local, settle_ms = ...
if redistribute == "" then redistribute = nil end
if has_local == "yes" then
  package.preload["support.only_here"] = function()
    return { start_link = function() return require("support.worker").start_link() end }
  end
end
local children = {}
for i = 1, tonumber(count or 0) or 0 do children[i] = helpers.worker_spec(i) end

local listeners = {}
if events_node and events_node ~= "" then
  -- a relay connects to the events node and forwards the events in order, so
  -- the supervisor starts at once, as on a node that is still joining
  local relay = pogo.spawn(function()
    assert(pogo.connect(events_node:match("@(.+)$")))
    while true do pogo.send({ "dsup_events", events_node }, pogo.receive()) end
  end)
  local l = {}
  for _, ev in ipairs { "node_up", "node_down", "child_started", "child_stopped", "child_moved" } do
    l[ev] = function(...)
      local m = { "event", ev, pogo.node(), ... }
      m.ns = uv.hrtime() -- a monotonic clock shared by the processes of this host
      pogo.send(relay, m)
    end
  end
  listeners[1] = l
end

local opts = { name = name or "dsup", scope = "test", children = children, sync_interval = 5000,
  redistribute = redistribute, settle_ms = tonumber(settle_ms) or 300, log = function() end, listeners = listeners }
assert(supervisor.start_link({
  { id = "dsup", type = "supervisor", start = { "pogo.dynamic_supervisor", "start_link", opts } },
}, { intensity = 100, period_ms = 1000 }))
pogo.receive()
