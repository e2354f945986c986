--- rpc targets of bench/pg_sync.lua and of the big-sync cases of
-- spec/cluster/pg_spec.lua and spec/cluster/registry_spec.lua, run on their
-- nodes with pogo.rpc. Each rpc runs in a fresh process that ends after
-- answering, so what must outlive the call is spawned here.
local pogo = require "pogo"
local uv = require "luv"
local pg = require "pogo.pg"

local M = {}

local holders = {} -- the processes of this node that hold members and names

-- A process that waits for "stop".
local function holder()
  local pid = pogo.spawn(function()
    repeat until pogo.receive() == "stop"
  end)
  holders[#holders + 1] = pid
  return pid
end

--- Start `scope` here.
function M.pg_start(scope) return pg.start(scope) end

--- Fill `scope` with `n` groups of one member each, as a distributed
-- supervisor's children are: `n / 2` processes, each in groups
-- {tag, "a", i} and {tag, "b", i}. Returns the number of processes.
function M.pg_fill(scope, tag, n)
  local procs = n // 2
  for i = 1, procs do
    local p = holder()
    pg.join(scope, {tag, "a", i}, p)
    pg.join(scope, {tag, "b", i}, p)
    if i % 1000 == 0 then pogo.yield() end
  end
  return procs
end

--- Check that this node lists what pg_fill(scope, tag, n) made on `node`:
-- n groups in all, group {tag, "a", i} and {tag, "b", i} each with one and the
-- same member, a process of `node`, and `extra` (default 0) other groups.
-- Returns true, or false and the first difference.
function M.pg_check(scope, tag, n, node, extra)
  local total = pg.info(scope).groups
  if total ~= n + (extra or 0) then return false, "groups: " .. total end
  for i = 1, n // 2 do
    local a, b = pg.get_members(scope, {tag, "a", i}), pg.get_members(scope, {tag, "b", i})
    if #a ~= 1 or #b ~= 1 or a[1] ~= b[1] or pogo.core.node_of(a[1]) ~= node then
      return false, "group " .. i
    end
    if i % 1000 == 0 then pogo.yield() end
  end
  return true
end

--- The members of group {tag, "a", i} for each i of `list`.
function M.pg_sample(scope, tag, list)
  local out = {}
  for k, i in ipairs(list) do out[k] = pg.get_members(scope, {tag, "a", i}) end
  return out
end

--- Number of groups of `scope` here (O(1)).
function M.pg_count(scope)
  return pg.info(scope).groups
end

--- Register `n` names {tag, i}, each for one of n / 4 processes.
function M.reg_fill(tag, n)
  local registry = require "pogo.registry"
  local p
  for i = 1, n do
    if i % 4 == 1 then p = holder() end
    assert(registry.register({tag, i}, p))
    if i % 1000 == 0 then pogo.yield() end
  end
  return n
end

--- Number of names in the registry's view here.
function M.reg_count()
  return require("pogo.registry").info().names
end

--- Stop every process made by pg_fill and reg_fill.
function M.stop_holders()
  for i = 1, #holders do pogo.send(holders[i], "stop") end
  holders = {}
  return true
end

local stall = nil
--- The longest gap (ms) between two wake-ups of a process that sleeps 5 ms
-- at a time, since the last call: how long this node held its processes back.
function M.stall()
  if not stall then
    stall = { max = 0 }
    pogo.spawn(function()
      local last = uv.hrtime()
      while true do
        pogo.sleep(5)
        local t = uv.hrtime()
        stall.max = math.max(stall.max, (t - last) / 1e6)
        last = t
      end
    end)
  end
  local m = stall.max
  stall.max = 0
  return m
end

--- Connect this node to `addr` (the nodes of these measurements start apart).
function M.connect(addr)
  return pogo.connect(addr)
end

--- Whether this node is connected to `name`.
function M.sees(name)
  for _, n in ipairs(pogo.nodes()) do
    if n == name then return true end
  end
  return false
end

return M
