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

--- Crash the child `id` wherever it runs (its supervisor restarts it).
function M.crash(id)
  local pid = dsup.whereis("jobs", id)
  if not pid then return false end
  pogo.send(pid, "crash")
  return true
end

--- What the transport of this node knows of node `name`: wanted (redialed), up.
function M.peer(name)
  local p = pogo.dist_info().peers[name]
  return p and { wanted = p.wanted, up = p.up } or nil
end

if tonumber((...)) then -- run as a script: N [SETTLE_MS]
  local n, settle = tonumber((...)), tonumber((select(2, ...))) or 300
  assert(dsup.start_link { name = "jobs", children = M.specs(n), settle_ms = settle })
  pogo.receive()
end

return M
