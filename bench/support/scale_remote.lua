-- rpc targets of bench/scale.lua, run on its nodes (scale_node.lua).
local pogo = require "pogo"
local uv = require "luv"
local dsup = require "pogo.dynamic_supervisor"
local child = require "scale_child"

local M = {}

local SUP = "scale"

--- The options of the bench's supervisor.
function M.opts()
  return { name = SUP, settle_ms = 200, log = function() end }
end

local function spec(id, requested)
  return { id = id, start = { "scale_child", "start_link", id, requested }, shutdown = "brutal_kill" }
end

--- Request children from..to on this node (from a process here), pinned to
-- node `pin` if given; returns when all are requested.
function M.start_children(from, to, pin)
  for id = from, to do assert(dsup.start_child(SUP, spec(id), pin)) end
  return true
end

--- How many children started on this node, and the uv.hrtime of the last start.
function M.starts() return child.starts, child.last end

--- Send {"$start", uv.hrtime()} to `pid` at each start of a child here from
-- now on (nil: stop): the bench hears of starts without asking every node.
function M.watch_starts(pid)
  child.watcher = pid
  return true
end

--- This node's running children (count_children local).
function M.local_count() return dsup.count_children(SUP, "local").active end

--- The nodes of the ring.
function M.ring_size() return #dsup.nodes(SUP) end

-- The median of `n` timings (ms) of f().
local function timed(n, f)
  local t = {}
  local r
  for i = 1, n do
    local t0 = uv.hrtime()
    r = f()
    t[i] = (uv.hrtime() - t0) / 1e6
  end
  table.sort(t)
  return t[(n + 1) // 2], r
end

--- which_children global, timed here: median ms of `n` calls, and the entries.
function M.which_global(n)
  local ms, r = timed(n or 5, function() return dsup.which_children(SUP, "global") end)
  return ms, #r
end

--- count_children global, timed here: median ms of `n` calls, and `active`.
function M.count_global(n)
  local ms, r = timed(n or 5, function() return dsup.count_children(SUP, "global") end)
  return ms, r.active
end

--- count_children and which_children local, timed here: median ms of `n`
-- calls each, and `active` and the number of entries.
function M.local_views(n)
  local count_ms, counts = timed(n or 5, function() return dsup.count_children(SUP, "local") end)
  local which_ms, list = timed(n or 5, function() return dsup.which_children(SUP, "local") end)
  return count_ms, counts.active, which_ms, #list
end

--- CPU seconds (user + system) and RSS (KiB) of this OS process.
M.usage = require("failover_remote").usage

--- The Lua heap (KiB) before and after a full collection, and the RSS (KiB).
function M.memory()
  local before = collectgarbage("count")
  collectgarbage("collect")
  local _, rss = M.usage()
  return before, collectgarbage("count"), rss
end

--- Sizes of the supervisor's tables and of its pg scope, and the Lua heap (KiB).
function M.census()
  local st = require("pogo.dynamic_supervisor.views").state_of(SUP)
  local function n(t)
    local k = 0
    for _ in pairs(t) do k = k + 1 end
    return k
  end
  return { children = n(st.children), requests = n(st.requests), markers = n(st.markers),
    order = #st.order + #st.order_new, groups = require("pogo.pg").info(SUP).groups,
    processes = #pogo.processes(), heap = collectgarbage("count") }
end

-- ---- the mesh rows ----

local mesh = {}

-- The ring of `n` nodes is there: note when (a listener's node_up, or the start).
local function ring_check(n)
  if not mesh.ring and #dsup.nodes(SUP) >= n then mesh.ring = uv.hrtime() end
end

--- The listener of a supervisor on a node of the mesh rows (scale_node.lua):
-- each node_up looks whether the ring holds `n` nodes.
function M.mesh_listener(n)
  return { node_up = function() ring_check(n) end }
end

--- Watch until this node sees `n` - 1 other nodes of the bench (names not
-- starting with "bench@") and a ring of `n`; `mesh_times` tells when. Both
-- are told by events (nodeup, the supervisor's node_up): polling every 2
-- ms woke each of 50 nodes 500 times a second while the mesh formed, on 2
-- cores where a wake-up of a node is what the mesh costs.
function M.watch_mesh(n)
  ring_check(n)
  pogo.spawn(function()
    pogo.monitor_nodes(true)
    while true do
      local k = 0
      for _, node in ipairs(pogo.nodes()) do
        if node:sub(1, 6) ~= "bench@" then k = k + 1 end
      end
      if k >= n - 1 then
        mesh.full = uv.hrtime()
        break
      end
      pogo.receive(function(m) return type(m) == "table" and m[1] == "nodeup" end)
    end
    pogo.monitor_nodes(false)
  end)
  return true
end

--- When this node saw the full mesh and the full ring (uv.hrtime, or nil).
function M.mesh_times() return mesh.full, mesh.ring end

-- ---- churn ----

--- Churn from this node: every 10 ms request `rate`/100 children (ids from
-- `first`) and terminate those requested `life_ms` earlier, for `ms`. Each
-- spec carries the time of its request (the child records the delay).
-- Returns the number of children requested and terminated.
function M.churn(first, rate, ms, life_ms)
  local per_tick = math.max(1, rate // 100)
  local t0 = uv.hrtime()
  local born = {} -- tick -> first id of that tick
  local id, tick, terminated = first, 0, 0
  local pending = 0
  local me = pogo.self()
  while true do
    local elapsed = (uv.hrtime() - t0) / 1e6
    if elapsed >= ms then break end
    local due = math.floor(elapsed / 10)
    while tick <= due do
      born[tick] = id
      local now = uv.hrtime()
      for _ = 1, per_tick do
        assert(dsup.start_child(SUP, spec(id, now)))
        id = id + 1
      end
      local old = tick - life_ms // 10
      if born[old] then
        local from = born[old]
        born[old] = nil
        pending = pending + 1
        pogo.spawn(function()
          for k = from, from + per_tick - 1 do dsup.terminate_child(SUP, k) end
          pogo.send(me, "terminated")
        end)
        terminated = terminated + per_tick
      end
      tick = tick + 1
    end
    pogo.sleep(math.max(1, (tick * 10) - (uv.hrtime() - t0) / 1e6))
  end
  for _ = 1, pending do pogo.receive(function(m) return m == "terminated" end, 30000) end
  return id - first, terminated
end

--- The start delays recorded here since the last call, and forget them
-- (scale_child.take_delays).
function M.take_delays() return child.take_delays() end

return M
