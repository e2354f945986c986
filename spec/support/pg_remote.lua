--- Functions the pg cluster specs (spec/cluster/pg_spec.lua) run on other
-- nodes with pogo.rpc. Each rpc runs in a fresh process that ends after
-- answering, so what must outlive the call is spawned here and its pid returned.
local pogo = require "pogo"
local pg = require "pogo.pg"
local uv = require "luv"

local M = {}

function M.start(scope) return pg.start(scope) end
function M.members(scope, group) return pg.get_members(scope, group) end
function M.local_members(scope, group) return pg.get_local_members(scope, group) end
function M.groups(scope) return pg.which_groups(scope) end
function M.peers(scope) return pg.info(scope).peers end
function M.ngroups(scope) return #pg.which_groups(scope) end

--- A process that joins `groups` (an array) of `scope` and then obeys:
-- {"join", group}, {"leave", group} (each answered with {"done", pid} to
-- the sender given as m[3]), "stop", "crash".
function M.member(scope, groups)
  return pogo.spawn(function()
    for _, g in ipairs(groups or {}) do pg.join(scope, g, pogo.self()) end
    while true do
      local m = pogo.receive()
      if m == "stop" then return end
      if m == "crash" then error("member crashed on purpose") end
      if type(m) == "table" and (m[1] == "join" or m[1] == "leave") then
        pg[m[1]](scope, m[2], pogo.self())
        if m[3] then pogo.send(m[3], {"done", pogo.self()}) end
      end
    end
  end)
end

--- A process that monitors `group` of `scope` and forwards each notification to `report` as
-- {"pgw", tag, kind, group, pids, hrtime_ns}; it first sends
-- {"pgw", tag, "ready", snapshot}. "stop" ends it.
function M.watcher(scope, group, report, tag, whole_scope)
  return pogo.spawn(function()
    local ref, snap
    if whole_scope then ref, snap = pg.monitor_scope(scope)
    else ref, snap = pg.monitor(scope, group) end
    pogo.send(report, {"pgw", tag, "ready", snap})
    while true do
      local m = pogo.receive()
      if m == "stop" then return end
      if type(m) == "table" and m[1] == "pg" and m[2] == ref then
        pogo.send(report, {"pgw", tag, m[3], m[4], m[5], uv.hrtime()})
      end
    end
  end)
end

--- The same for the whole scope.
function M.scope_watcher(scope, report, tag)
  return M.watcher(scope, nil, report, tag, true)
end

--- Join `n` fresh processes of this node to group {prefix, i} each (i = 1..n);
-- returns their pids.
function M.many(scope, prefix, n)
  local pids = {}
  for i = 1, n do pids[i] = M.member(scope, {{prefix, i}}) end
  return pids
end

--- One process in groups {prefix, 1} .. {prefix, n}; returns its pid.
function M.member_of_many(scope, prefix, n)
  local groups = {}
  for i = 1, n do groups[i] = {prefix, i} end
  return M.member(scope, groups)
end

--- This node's view of `scope` as one string (groups by canonical encoding,
-- members sorted), to compare the views of several nodes.
function M.dump(scope)
  local lines = {}
  for _, g in ipairs(pg.which_groups(scope)) do
    local pids = {}
    for i, p in ipairs(pg.get_members(scope, g)) do pids[i] = tostring(p) end
    table.sort(pids)
    lines[#lines + 1] = string.format("%q %s", pogo.core.encode(g), table.concat(pids, " "))
  end
  table.sort(lines)
  return table.concat(lines, "\n")
end

--- Churn: `nprocs` processes each make `nops` random joins and leaves of
-- groups {"c", 1..8} (yielding now and then); every third one then crashes,
-- every third one exits normally, the others stay (and are returned).
-- Returns when all have done their operations.
function M.churn(scope, nprocs, nops, seed)
  local x = seed
  local function rnd(n)
    x = (x * 1103515245 + 12345) % 2147483648
    return x % n + 1
  end
  local me, stay = pogo.self(), {}
  for i = 1, nprocs do
    local plan = {}
    for j = 1, nops do plan[j] = {rnd(3) == 1 and "leave" or "join", {"c", rnd(8)}, rnd(4) == 1} end
    local fate = i % 3
    local pid = pogo.spawn(function()
      for _, op in ipairs(plan) do
        pg[op[1]](scope, op[2], pogo.self())
        if op[3] then pogo.yield() end
      end
      pogo.send(me, {"churned"})
      if fate == 0 then error("churn crash") end
      if fate == 1 then return end
      pogo.receive()
    end)
    if fate == 2 then stay[#stay + 1] = pid end
  end
  for _ = 1, nprocs do
    pogo.receive(function(m) return type(m) == "table" and m[1] == "churned" end)
  end
  return stay
end

--- One process that joins groups "f1" .. "f<n>" and then leaves them, `rounds`
-- times, and then sends {"flipped"} to `report`; returns its pid.
function M.flip(scope, n, rounds, report)
  return pogo.spawn(function()
    local me = pogo.self()
    for _ = 1, rounds do
      for i = 1, n do pg.join(scope, "f" .. i, me) end
      pogo.yield()
      for i = 1, n do pg.leave(scope, "f" .. i, me) end
      pogo.yield()
    end
    pogo.send(report, {"flipped"})
  end)
end

--- Send `msg` to `dest` from this node.
function M.send(dest, msg)
  pogo.send(dest, msg)
  return true
end

--- pogo.rpc from this node to `node` (to reach a node that the caller cannot).
function M.relay(node, fn, args)
  return pogo.rpc(node, "support.pg_remote", fn, args)
end

return M
