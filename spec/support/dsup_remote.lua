--- Functions the distributed-supervisor cluster specs run on nodes with pogo.rpc,
-- and the supervisor setup of spec/support/dsup_node.lua.
local pogo = require "pogo"
local uv = require "luv"
local dsup = require "pogo.dynamic_supervisor"
local supervisor = require "pogo.supervisor"
local pg = require "pogo.pg"

local M = {}

local SUP = "dsup"
local EVENTS = { "node_up", "node_down", "child_started", "child_stopped", "child_moved" }
local top -- the local supervisor over this node's distributed supervisor

--- The spec of worker n (id {"worker", n}); the worker answers {"id", from} with n.
function M.worker_spec(n)
  return { id = { "worker", n }, start = { "support.worker", "start_link", false, { id = n } } }
end

-- ---- reporting to the spec's node ----

local relays = {} -- events node -> relay process

--- A process that connects to `events_node` and forwards what it gets, in
-- order, to {"dsup_events", events_node} (so a supervisor starts at once, as
-- on a node that is still joining).
function M.relay(events_node)
  local r = relays[events_node]
  if not r then
    r = pogo.spawn(function()
      assert(pogo.connect(events_node:match("@(.+)$")))
      while true do pogo.send({ "dsup_events", events_node }, pogo.receive()) end
    end)
    relays[events_node] = r
  end
  return r
end

--- rpc: send {"flushed", this node, token} through this node's relay to the
-- events node: it arrives after every event this node reported before.
function M.flush_events(events_node, token)
  pogo.send(M.relay(events_node), { "flushed", pogo.node(), token })
  return true
end

-- ---- calls into the supervisor from its children and listeners ----

local probed = {} -- where -> true: probed once per node

--- Call every API function a child's init or a listener may call on its own
-- supervisor, each timed; report {"api", where, node, name, ms, ok, err} to the
-- events node, once per `where` on this node.
function M.api_probe(where, events_node)
  if probed[where] then return end
  probed[where] = true
  local me = pogo.node()
  local probe_id = { "probe", where, me }
  local echo = { "echo", 1 }
  local calls = {
    { "whereis", function() return pogo.is_pid(dsup.whereis(SUP, echo)) end },
    { "which_children", function()
      return type(dsup.which_children(SUP, "global")) == "table" and type(dsup.which_children(SUP, "local")) == "table"
    end },
    { "count_children", function() return dsup.count_children(SUP, "global").specs >= 1 end },
    { "node_for", function() return type(dsup.node_for(SUP, { "worker", 1 })) == "string" end },
    { "mine", function() return dsup.mine(SUP, { "worker", 1 }) == (dsup.node_for(SUP, { "worker", 1 }) == me) end },
    { "nodes", function() return #dsup.nodes(SUP) >= 1 end },
    { "call", function() return dsup.call(SUP, echo, "hi", 2000) == "hi" end },
    { "start_child", function()
      return dsup.start_child(SUP, { id = probe_id, start = { "support.worker", "start_link" } }) == true
    end },
    { "terminate_child", function() return dsup.terminate_child(SUP, probe_id) == true end },
  }
  local relay = M.relay(events_node)
  for _, c in ipairs(calls) do
    local t0 = uv.hrtime()
    local ok, res = pcall(c[2])
    local ms = (uv.hrtime() - t0) / 1e6
    pogo.send(relay, { "api", where, me, c[1], ms, ok and res == true, not ok and tostring(res) or nil })
  end
end

-- ---- the supervisor of a node ----

-- Listeners: `events` forwards every event to the events node as
-- {"event", <listener>, this node, args..., ns = uv.hrtime()}; `probe` runs
-- api_probe once per event on this node.
local function listeners(o)
  local list = {}
  if o.events then
    local relay = M.relay(o.events)
    local l = {}
    for _, ev in ipairs(EVENTS) do
      l[ev] = function(...)
        local m = { "event", ev, pogo.node(), ... }
        m.ns = uv.hrtime() -- a monotonic clock shared by the processes of this host
        pogo.send(relay, m)
      end
    end
    list[#list + 1] = l
  end
  if o.probe then
    local l = {}
    for _, ev in ipairs(EVENTS) do l[ev] = function() M.api_probe(ev, o.probe) end end
    list[#list + 1] = l
  end
  return list
end

--- Start this node's distributed supervisor "dsup" (scope "test") under a
-- local one_for_one supervisor, so a killed supervisor is restarted and
-- requests its initial children again. `o`: initial (worker count),
-- redistribute, events / probe (events node), settle_ms, nodes, weight.
function M.start_supervisor(o)
  local children = {}
  for i = 1, o.initial or 0 do children[i] = M.worker_spec(i) end
  local opts = { name = SUP, scope = "test", children = children, sync_interval = 5000,
    redistribute = o.redistribute, settle_ms = o.settle_ms or 300, log = function() end,
    listeners = listeners(o), nodes = o.nodes, weight = o.weight }
  top = assert(supervisor.start_link({
    { id = "dsup", type = "supervisor", start = { "pogo.dynamic_supervisor", "start_link", opts } },
  }, { intensity = 100, period_ms = 1000 }))
  return top
end

--- rpc: start the supervisor (see start_supervisor) from a process that outlives the rpc.
function M.start_sup(o)
  local me = pogo.self()
  pogo.spawn(function()
    local ok, err = pcall(M.start_supervisor, o)
    pogo.send(me, { "started", ok, err })
    pogo.receive()
  end)
  local m = pogo.receive(function(x) return type(x) == "table" and x[1] == "started" end, 5000)
  assert(m and m[2], m and tostring(m[3]) or "no answer")
  return true
end

--- Stop this node's distributed supervisor (an orderly stop: its requests are
-- given up), and start it again.
function M.stop_supervisor() return supervisor.terminate_child(top, "dsup") end
function M.restart_supervisor() return supervisor.restart_child(top, "dsup") end
--- Stop and restart it at once, as a one_for_all parent does.
function M.bounce_supervisor()
  assert(supervisor.terminate_child(top, "dsup"))
  return supervisor.restart_child(top, "dsup")
end

-- ---- rpc targets ----

function M.start_child(n) return dsup.start_child(SUP, M.worker_spec(n)) end
function M.start_pinned(n, node) return dsup.start_child(SUP, M.worker_spec(n), node) end
function M.start_spec(spec, node) return dsup.start_child(SUP, spec, node) end
function M.start_children(from, to)
  for n = from, to do assert(dsup.start_child(SUP, M.worker_spec(n))) end
  return true
end
function M.terminate_child(n) return dsup.terminate_child(SUP, { "worker", n }) end

--- Sorted numbers n of the children {kind, n} (kind "worker" by default) in
-- which_children(mode), and their pids.
function M.children(mode, kind)
  kind = kind or "worker"
  local ns, pids = {}, {}
  for _, c in ipairs(dsup.which_children(SUP, mode)) do
    if type(c.pid) ~= "string" and type(c.id) == "table" and c.id[1] == kind then
      ns[#ns + 1] = c.id[2]
      pids[c.id[2]] = c.pid
    end
  end
  table.sort(ns)
  return ns, pids
end

--- Sorted worker numbers of every request this node knows (running or not).
function M.known_specs()
  local ns = {}
  for _, spec in ipairs(dsup.specs(SUP)) do
    if type(spec.id) == "table" and spec.id[1] == "worker" then ns[#ns + 1] = spec.id[2] end
  end
  table.sort(ns)
  return ns
end

--- The specs this node knows for `id`.
function M.specs_for(id)
  local out = {}
  for _, spec in ipairs(dsup.specs(SUP)) do
    if spec.id == id then out[#out + 1] = spec end
  end
  return out
end

--- The counts a walk over which_children(sup, "local") gives, as
-- count_children reports them (`sup`: this node's "dsup" by default).
function M.walked_counts(sup)
  local walked = { specs = 0, active = 0, supervisors = 0, workers = 0 }
  for _, e in ipairs(dsup.which_children(sup or SUP, "local")) do
    walked.specs = walked.specs + 1
    if pogo.is_pid(e.pid) and e.status ~= "starting" then walked.active = walked.active + 1 end
    local kind = e.type == "supervisor" and "supervisors" or "workers"
    walked[kind] = walked[kind] + 1
  end
  return walked
end

--- How many records of supervisor `sup`'s state are missing from the order
-- the repair pass sweeps (tally.lua's `order` and `order_new`): none.
function M.unordered(sup)
  local st = require("pogo.dynamic_supervisor.views").state_of(sup or SUP)
  local ordered, missing = {}, 0
  for _, key in ipairs(st.order) do ordered[key] = true end
  for _, key in ipairs(st.order_new) do ordered[key] = true end
  for key in pairs(st.children) do
    if not ordered[key] then missing = missing + 1 end
  end
  return missing
end

--- count_children local (counters) and the same counts walked from
-- which_children local, read together; the ids of which_children local
-- with those of a walk over every record of the state that has a child
-- here (both sorted, joined): the two must be the same; and how many
-- records are missing from the order the repair pass sweeps (none).
function M.local_counts()
  local listed, all = {}, {}
  for _, e in ipairs(dsup.which_children(SUP, "local")) do listed[#listed + 1] = pogo.core.encode(e.id) end
  for _, c in pairs(require("pogo.dynamic_supervisor.views").state_of(SUP).children) do
    if c.proc then all[#all + 1] = pogo.core.encode(c.proc.request.spec.id) end
  end
  table.sort(listed)
  table.sort(all)
  return dsup.count_children(SUP, "local"), M.walked_counts(SUP), table.concat(listed, " "),
    table.concat(all, " "), M.unordered(SUP)
end

--- This node's local entries as {id, pid-or-status, error} (failures included).
function M.local_entries()
  local out = {}
  for _, c in ipairs(dsup.which_children(SUP, "local")) do out[#out + 1] = { c.id, c.pid, c.error } end
  return out
end

--- Ask a worker for its id (Pogo's Worker.get_id): {id, its own pid}, or nil.
function M.ask_id(pid)
  pogo.send(pid, { "id", pogo.self() })
  local m = pogo.receive(function(x) return type(x) == "table" and x[1] == "id" end, 2000)
  return m and { m[2], m[3] }
end

--- Request a child whose module exists only on nodes started with it.
function M.start_only_here(id)
  return dsup.start_child(SUP, { id = id, start = { "support.only_here", "start_link" } })
end

--- Request an OS process child (`sleep 30`) through the pogo.os_process shorthand.
function M.start_os_child(id)
  return dsup.start_child(SUP, { "pogo.os_process", { id = id, cmd = "sleep", args = { "30" } } })
end

function M.terminate_id(id) return dsup.terminate_child(SUP, id) end

--- The node and the OS pid of the program run by child `id`, or nil.
function M.os_child(id)
  local pid = dsup.whereis(SUP, id)
  if not pogo.is_pid(pid) then return nil end
  local ok, ospid = pcall(require("pogo.os_process").os_pid, pid)
  if not ok then return nil end
  return { pogo.node_of(pid), ospid }
end

--- The echo server fixture as child {"echo", n} (dsup.call reaches it).
function M.start_echo(n, node)
  return dsup.start_child(SUP, { id = { "echo", n }, start = { "support.echo_server", "start_link" } }, node)
end
function M.call_echo(n, v) return dsup.call(SUP, { "echo", n }, v, 2000) end
function M.global_count() return dsup.count_children(SUP, "global") end

function M.node_for(n) return dsup.node_for(SUP, { "worker", n }) end
function M.node_for_id(id) return dsup.node_for(SUP, id) end
function M.mine(n) return dsup.mine(SUP, { "worker", n }) end
function M.nodes() return dsup.nodes(SUP) end
function M.rebalance() return dsup.rebalance(SUP) end
function M.whereis(n) return dsup.whereis(SUP, { "worker", n }) end
function M.whereis_id(id) return dsup.whereis(SUP, id) end
function M.alive(pid) return pogo.alive(pid) end
function M.kill_supervisor() return pogo.exit(pogo.whereis(SUP), "kill") end
function M.supervisor() return pogo.whereis(SUP) end
function M.send(pid, msg) return pogo.send(pid, msg) end

--- Kill the supervisor and its keeper at once, so that no process of this node
-- holds its requests any more (as in Pogo, where the supervisor holds them).
function M.kill_supervisor_and_keeper()
  local keeper = pogo.whereis("$dsup_keeper:test")
  pogo.exit(keeper, "kill")
  pogo.exit(pogo.whereis(SUP), "kill")
  return true
end

--- The pg state of the scope: array of {group, {member nodes...}}.
function M.pg_state()
  local out = {}
  for _, g in ipairs(pg.which_groups("test")) do
    local nodes = {}
    for _, pid in ipairs(pg.get_members("test", g)) do nodes[#nodes + 1] = pogo.node_of(pid) end
    table.sort(nodes)
    out[#out + 1] = { g, nodes }
  end
  return out
end

return M
