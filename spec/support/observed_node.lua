-- A node of the clusters the observer and dashboard specs look at: run by
-- bin/pogo as `observed_node.lua N SETTLE_MS` (also require'd by rpc for its
-- helpers). It starts distributed supervisor "jobs" with N children
-- {"job<i>", support.worker} and serves until stopped.
local pogo = require "pogo"
local dsup = require "pogo.dynamic_supervisor"

local M = {}

--- The children specs of `jobs`: ids "job1" .. "job<n>".
function M.specs(n)
  local list = {}
  for i = 1, n do list[i] = { id = "job" .. i, start = { "support.worker", "start_link" } } end
  return list
end

--- How many nodes the supervisor of this node waits for (its join wait).
function M.waiting(sup)
  local st = require("pogo.dynamic_supervisor.views").state_of(sup or "jobs")
  local n = 0
  for _ in pairs(st and st.waiting or {}) do n = n + 1 end
  return n
end

--- How many processes of this node are ready to run or running, the
-- caller aside (a chunk that spins stays so; an idle node has none for long).
function M.busy()
  local me, n = pogo.self(), 0
  for _, pid in ipairs(pogo.processes()) do
    local info = pid ~= me and pogo.process_info(pid)
    if info and (info.status == "runnable" or info.status == "running") then n = n + 1 end
  end
  return n
end

--- This node's `pogo.observer.node_stats` read while the state of its
-- supervisor `sup` cannot be read (as while the supervisor is in the middle
-- of a change and was preempted: its `version` odd). Returns that
-- supervisor's entry.
function M.stats_while_busy(sup)
  local st = require("pogo.dynamic_supervisor.views").state_of(sup)
  st.version = st.version + 1
  local ok, stats = pcall(require("pogo.observer").node_stats)
  st.version = st.version - 1
  assert(ok, stats)
  for _, s in ipairs(stats.supervisors) do
    if s.name == sup then return s end
  end
end

--- Add `n` restart events of supervisor `jobs` to this node's timeline
-- (children "flood1" .. "flood<n>"), as many restarts or moves would.
function M.flood(n)
  local timeline = require "pogo.observer.timeline"
  for i = 1, n do timeline.record("restart", "jobs", "flood" .. i, "flooded") end
  return true
end

--- Start a distributed supervisor here, `opts` as `start_link`'s (its
-- children: `n` workers "<prefix><i>"), held by a process of its own.
-- Returns once it runs.
function M.start_other(opts, n, prefix)
  local me = pogo.self()
  local list = {}
  for i = 1, n do list[i] = { id = prefix .. i, start = { "support.worker", "start_link" } } end
  opts.children = list
  pogo.spawn(function()
    local pid, err = dsup.start_link(opts)
    pogo.send(me, { "started", pid or false, err })
    if pid then pogo.receive() end
  end)
  local m = pogo.receive(function(x) return type(x) == "table" and x[1] == "started" end, 10000)
  return m and m[2] and true or false, m and m[3]
end

--- Crash the child `id` wherever it runs (its supervisor restarts it).
function M.crash(id)
  local pid = dsup.whereis("jobs", id)
  if not pid then return false end
  pogo.send(pid, "crash")
  return true
end

--- Start the cluster the specs look at (from the spec's process, with
-- local_cluster `c`): 3 nodes named `prefix`1..3 running this script, the
-- first one serving the web page when `http`; this process's node joins as
-- an observer. Waits for the mesh and for the children to run.
-- @tparam table opts `prefix`, `children`, `settle_ms` (300), `http`
--  (boolean), `first_only` (only the first node requests the children)
-- @return the nodes, and the page's "host:port" (with `http`)
function M.start_cluster(c, opts)
  local cluster = require "pogo.local_cluster"
  c:start_self()
  require("pogo.observer").set_observer(true) -- the spec looks, and counts nowhere
  local nodes = {}
  for i = 1, 3 do
    local n = (i == 1 or not opts.first_only) and opts.children or 0
    nodes[i] = c:start_node { name = opts.prefix .. i, script = "spec/support/observed_node.lua",
                              args = { tostring(n), tostring(opts.settle_ms or 300) },
                              seeds = i > 1 and { nodes[1] } or nil,
                              extra = (i == 1 and opts.http) and { "--http", "127.0.0.1:0" } or nil }
  end
  c:connect(nodes[1])
  c:wait_meshed(nodes)
  cluster.wait_until(function()
    local ok, k = c:rpc(nodes[1], "pogo.dynamic_supervisor", "count_children", { "jobs", "global" }, 5000)
    return ok and k.active == opts.children
  end, 60000, opts.children .. " children running")
  return nodes, opts.http and c:call(nodes[1], "pogo.observer", "node_stats", {}).http or nil
end

--- What the transport of this node knows of node `name`: wanted (redialed), up,
-- left (it stopped cleanly).
function M.peer(name)
  local p = pogo.dist_info().peers[name]
  return p and { wanted = p.wanted, up = p.up, left = p.left } or nil
end

if tonumber((...)) then -- run as a script: N [SETTLE_MS]
  local n, settle = tonumber((...)), tonumber((select(2, ...))) or 300
  assert(dsup.start_link { name = "jobs", children = M.specs(n), settle_ms = settle })
  pogo.receive()
end

return M
