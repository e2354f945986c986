--- Views: answers read from a supervisor's state by any process of its node.
--
-- All the processes of a node share one Lua state, so `whereis`,
-- `which_children`, `count_children`, `node_for`, `mine`, `nodes` and `specs`
-- read the supervisor's state (and pg's C index) directly, as Horde and
-- DistributedSupervisor read ETS: they never wait for the supervisor
-- process, so a listener, a child's start function or a child's `terminate`
-- may call them while the supervisor is busy, even with that very child.
--
-- Only the supervisor changes its state (one writer). Its callbacks make
-- `state.version` odd on entry and even on return; a read that saw the
-- version odd, or changed, while it ran (the supervisor yielded inside a
-- callback: a send under backpressure, or preemption) is read again, and
-- after a few tries asked of the supervisor itself. A supervisor of another
-- node, or one this node does not know, is always asked.
-- @module pogo.dynamic_supervisor.views
local pogo = require "pogo"
local requests = require "pogo.dynamic_supervisor.requests"
local placement = require "pogo.dynamic_supervisor.placement"
local tally = require "pogo.dynamic_supervisor.tally"
local children_mod = require "pogo.dynamic_supervisor.children"

local core = pogo.core
local is_pid = core.is_pid

local M = {}

-- the supervisors of this node: pid -> state
local registry = {}

--- Make state `st` readable through its supervisor's pid (at the end of init).
-- Entries of supervisors that died without `unregister` (killed) are swept.
-- @tparam table st
function M.register(st)
  for pid in pairs(registry) do
    if not core.alive(pid) then registry[pid] = nil end
  end
  registry[st.pid] = st
end

--- The states of the live supervisors of this node (for `pogo.observer`),
-- in no particular order.
-- @treturn {table,...}
function M.list()
  local out = {}
  for pid, st in pairs(registry) do
    if core.alive(pid) then out[#out + 1] = st end
  end
  return out
end

--- Forget state `st` (the supervisor is going).
-- @tparam table st
function M.unregister(st)
  if registry[st.pid] == st then registry[st.pid] = nil end
end

--- The state of the local supervisor `sup` (a registered name or a pid), or nil.
-- @param sup
-- @treturn ?table
function M.state_of(sup)
  local pid = sup
  if type(sup) == "string" then pid = core.whereis(sup) end
  if not is_pid(pid) then return nil end
  return registry[pid]
end

--- The state of the local supervisor `sup` for the tools: by its registered
-- name or pid (as `state_of`), else by its scope (a supervisor started with
-- a scope and no name); with `scope_only`, `sup` is a scope.
-- @param sup
-- @tparam[opt] boolean scope_only
-- @treturn ?table
function M.lookup(sup, scope_only)
  local st = not scope_only and M.state_of(sup)
  if st or type(sup) ~= "string" then return st or nil end
  for pid, s in pairs(registry) do
    if s.scope == sup and core.alive(pid) then return s end
  end
  return nil
end

--- Run the view `f(st, arg)` on a consistent state.
-- @tparam table st
-- @tparam function f
-- @param arg
-- @treturn boolean whether it could be read here (false: ask the supervisor)
-- @return the view's results, or nil and "bad request: <why>" if it raised
function M.read(st, f, arg)
  for _ = 1, 3 do
    local v = st.version
    if v % 2 == 0 then
      local ok, a, b = pcall(f, st, arg)
      if st.version == v then
        if ok then return true, a, b end
        return true, nil, "bad request: " .. tostring(a)
      end
    end
    if st.pid == pogo.self() then break end
    pogo.yield()
  end
  return false
end

-- ---- the views ----

local function entry(id, pid, spec, extra)
  local e = { id, pid, spec.type, spec.modules, id = id, pid = pid, type = spec.type, modules = spec.modules }
  if extra then for k, v in pairs(extra) do e[k] = v end end
  return e
end

--- Entries sorted by the canonical encoding of their ids (then node), so every
-- node lists the same children in the same order. The global view comes from
-- the order that `tally` keeps; the local one from the records this node
-- keeps by status (`children.local_records`), not from a walk over every
-- record of the cluster.
-- @tparam table st
-- @tparam string mode "local" or "global"
-- @treturn {table,...}
function M.which_children(st, mode)
  if mode == "global" then return tally.which_children(st) end
  local out, keys, children = {}, {}, st.children
  for i, c in ipairs(children_mod.local_records(st)) do keys[i] = c.key end
  table.sort(keys)
  for i, key in ipairs(keys) do
    local proc = children[key].proc
    local pid = proc.pid
    if pid == nil or proc.status == "starting" then
      pid = proc.status == "restarting" and "restarting" or "undefined"
    end
    out[i] = entry(proc.request.spec.id, pid, proc.request.spec, { status = proc.status, error = proc.error })
  end
  return out
end

--- Counts `{specs =, active =, supervisors =, workers =}`.
-- @tparam table st
-- @tparam string mode "local" or "global"
-- @treturn table
function M.count_children(st, mode)
  return tally.counts(st, mode ~= "global" and st.local_count or nil)
end

--- The pid running child `id` anywhere, or nil.
M.whereis = placement.whereis

--- The owner of `id` (pins included), or nil on an empty ring.
M.node_for = placement.owner_of

--- Whether this node is the owner of `id`.
-- @tparam table st
-- @param id
-- @treturn boolean
function M.mine(st, id)
  return placement.owner_of(st, id) == st.me
end

--- The nodes of the ring, sorted.
-- @tparam table st
-- @treturn {string,...}
function M.nodes(st)
  return st.ring:nodes()
end

--- Every spec requested and not terminated, as this node knows them.
M.specs = requests.specs

return M
