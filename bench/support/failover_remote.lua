-- rpc targets of bench/failover.lua.

local dsup = require "pogo.dynamic_supervisor"

local M = {}

function M.spec(id, report_node)
  return { id = id, start = { "failover_child", "start_link", id, report_node }, shutdown = "brutal_kill" }
end

--- Request children from..to on this node (from a process here); returns when all are requested.
function M.start_children(from, to, report_node)
  for id = from, to do assert(dsup.start_child("bench", M.spec(id, report_node))) end
  return true
end

--- The options of the bench's supervisor (failover_node.lua); `settle_ms`
-- 200 unless given.
function M.opts(settle_ms)
  return { name = "bench", settle_ms = settle_ms or 200, log = function() end }
end

--- Request stateful children from..to (bench/support/handoff_child.lua, with
-- or without `handoff`) pinned to `node`.
function M.start_stateful(from, to, report_node, node, handoff)
  for id = from, to do
    assert(dsup.start_child("bench", { id = id, start = { "handoff_child", "start_link", id, report_node, handoff } },
      node))
  end
  return true
end

--- Request children from..to pinned to `node`.
function M.start_pinned(from, to, report_node, node)
  for id = from, to do assert(dsup.start_child("bench", M.spec(id, report_node), node)) end
  return true
end

--- Stop this node's supervisor (its children stop; their owners elsewhere start them).
function M.stop_supervisor()
  require("pogo.server").stop("bench", "shutdown")
  return true
end

--- Start this node's supervisor again (in a process that outlives the rpc);
-- returns uv.hrtime() when start_link returned: the supervisor has joined the ring.
function M.restart_supervisor()
  local pogo = require "pogo"
  local uv = require "luv"
  local me = pogo.self()
  pogo.spawn(function()
    assert(dsup.start_link(M.opts()))
    pogo.send(me, { "restarted", uv.hrtime() })
    pogo.receive()
  end)
  return pogo.receive(function(m) return type(m) == "table" and m[1] == "restarted" end, 5000)[2]
end

function M.local_count() return dsup.count_children("bench", "local").active end
function M.ring_size() return #dsup.nodes("bench") end

--- Whether this node runs exactly the children the ring assigns to it.
function M.settled()
  local pogo = require "pogo"
  local me, running = pogo.node(), {}
  for _, e in ipairs(dsup.which_children("bench", "local")) do
    if not pogo.is_pid(e[2]) or dsup.node_for("bench", e[1]) ~= me then return false end
    running[e[1]] = true
  end
  for _, spec in ipairs(dsup.specs("bench")) do
    if dsup.node_for("bench", spec.id) == me and not running[spec.id] then return false end
  end
  return true
end

--- CPU seconds (user + system, every thread) and RSS (KiB) of this OS
-- process. The CPU time is getrusage's, in microseconds: /proc/self/stat
-- gives the same sum in ticks of 10 ms, 0.2 % of a core over the idle rows'
-- 5 s windows.
function M.usage()
  local r = require("luv").getrusage()
  local cpu = r.utime.sec + r.stime.sec + (r.utime.usec + r.stime.usec) / 1e6
  local rss
  for line in io.lines("/proc/self/status") do
    rss = rss or tonumber(line:match("^VmRSS:%s+(%d+)"))
  end
  return cpu, rss
end

return M
