--- The distributed supervisor: Pogo's algorithm over `pogo.pg` and `pogo.ring`.
--
-- Each node runs `start_link{name =, scope =, ...}`; the supervisors of one scope
-- form one distributed supervisor. `start_child` on any node is a request: the
-- spec is replicated to every node of the scope and the node that the ring
-- assigns to the child id starts it. Children move when nodes come and go, and
-- `which_children(sup, "global")` shows every child from any node.
--
-- Cluster state lives in pg groups of the scope:
--
-- * `"sup"`: the supervisor process of every node (the ring's nodes);
-- * `{"spec", uid, spec}`: one request (`uid` names it), held by the keeper (an
--   idle process that outlives a crash of the supervisor process) of the node
--   that made it; every node learns it from pg. When no node holds it any more
--   (that node died, or its supervisor was stopped) the child's owner takes it
--   over, so a spec survives as long as any node of the scope does;
-- * `{"child", id}`: the pid running the child;
-- * `{"term", uid}`: a termination marker, held by the keeper of the node that
--   asked, until no node holds the spec.
--
-- **The algorithm.** Pogo's supervisor, every `sync_interval`, reads every
-- spec from pg, builds the ring from the supervisors' group, and for each
-- spec starts the child if the ring assigns it to this node and it runs
-- nowhere here, or stops it if it runs here and belongs elsewhere; then it
-- stops the local children whose spec is gone. This supervisor makes the same
-- decision (`reconcile`, whose steps are named below) for one child id at a
-- time, as soon as something about that id changes: a pg notification, a
-- child's exit, a node coming or going. It reads its whole mailbox first and
-- reconciles once the mailbox is drained (`handle_drained`), so it acts on one
-- consistent view. `sync_interval` is only a periodic repair pass over a
-- bounded slice of the ids, whose cost does not grow with their number.
--
-- While nodes join, a node starts nothing until it knows which children they
-- run (see `join_wait`), so a joining node never starts a child that an old
-- owner still runs: the old owner stops it first and the new owner starts it
-- on the pg leave. When a node dies its children start on their new owners at
-- once.
--
-- **The parts**, one concept each (under `pogo.dynamic_supervisor.`):
--
-- * `state`: the supervisor's state, every field commented, and the one
--   record this node keeps per child id;
-- * `requests`: spec groups, termination markers and the keeper;
-- * `placement`: the ring, owners, where children run, duplicates;
-- * `join_wait`: the wait for joining nodes;
-- * `children`: the child processes this node runs (start, stop, exit, backoff);
-- * `events`: listeners and log lines.
--
-- This module holds the public API and the `pogo.server` callbacks of the
-- supervisor process, which dispatch the messages to those parts, and
-- `reconcile`.
-- @module pogo.dynamic_supervisor
local pogo = require "pogo"
local server = require "pogo.server"
local pg = require "pogo.pg"
local child_spec = require "pogo.child_spec"
local state = require "pogo.dynamic_supervisor.state"
local requests = require "pogo.dynamic_supervisor.requests"
local placement = require "pogo.dynamic_supervisor.placement"
local join_wait = require "pogo.dynamic_supervisor.join_wait"
local children = require "pogo.dynamic_supervisor.children"
local events = require "pogo.dynamic_supervisor.events"

local encode = pogo.core.encode

local M = {}

local now = pogo.now

-- ---- reconcile: Pogo's handle_info(:sync), for one child id ----

-- A child of ours (reconcile, step 5). Stop it when it was started from a
-- request that lost to another; when it belongs elsewhere (Pogo: "running on
-- current node, but should run on another: terminate it here"; its owner
-- starts it on the pg leave); or when it runs elsewhere too (a healed
-- netsplit) and the other copy is the one that stays. A child on its way out,
-- or waiting for its restart, is left to its exit or its retry.
local function keep_or_stop(st, c, req, owner)
  local proc = c.proc
  if proc.status == "stopping" then return end
  if proc.request.uid ~= req.uid then return children.stop(st, c) end
  if proc.status ~= "running" then return end
  if owner ~= st.me and st.redistribute == "active" then
    children.stop(st, c)
    st.unsettled[c] = true
  else
    local elsewhere = placement.running_elsewhere(st, c)
    if elsewhere and not placement.keeps_copy(st, owner, elsewhere) then children.stop(st, c) end
  end
end

-- It belongs here and does not run here (reconcile, step 6; Pogo: "should
-- run on current node, but not running yet: start it"), once no other node
-- runs it (its old owner stops it first) and no joining node is waited for.
local function start_here(st, c, req)
  if not placement.running_elsewhere(st, c) and join_wait.settled(st) then
    children.start(st, c, req)
  else
    st.unsettled[c] = true
  end
end

-- What should this node do about child id `c`? The decisions of Pogo's sync,
-- for one id, in order.
local function reconcile(st, c)
  st.unsettled[c] = nil
  local req = requests.settle(st, c)      -- 1. the request that counts; the others are let go
  if not req then                         -- 2. Pogo: "terminate children whose spec is gone"
    children.stop(st, c)
    return state.release(st, c)
  end
  local owner = placement.owner(st, c)    -- 3. where the ring puts it (Pogo: key_to_node)
  requests.take_over(st, req, owner)      -- 4. a request no node holds is held by its owner
  if c.proc then                          -- 5. a child of ours: keep it, or stop it
    keep_or_stop(st, c, req, owner)
  elseif owner == st.me then              -- 6. it belongs here: start it
    start_here(st, c, req)
  end
end

local function reconcile_dirty(st)
  if st.all_dirty then
    st.all_dirty = false
    st.dirty = {}
    for _, c in pairs(st.children) do reconcile(st, c) end
  end
  while true do
    local batch = st.dirty
    if next(batch) == nil then return end
    st.dirty, st.spare = st.spare, batch -- what reconciling marks waits for the next round
    for c in pairs(batch) do
      batch[c] = nil
      reconcile(st, c)
    end
  end
end

-- Read pg again (at start, and every sweep_passes repair passes).
local function rescan(st)
  requests.rescan(st)
  placement.update_ring(st)
end

-- The periodic repair pass: the ids still waiting for something, plus a
-- bounded slice of all ids (a full sweep every `sweep_passes` passes, when pg
-- is read again). Its cost does not grow with the number of groups.
local function repair_pass(st, t)
  st.next_sync = t + st.sync_interval
  -- settle what the last messages changed first: a rescan must not forget a
  -- request whose holder just went away before its owner takes it over
  reconcile_dirty(st)
  for c in pairs(st.unsettled) do state.mark(st, c) end
  if not st.sweep or st.sweep_i > #st.sweep then
    st.passes = st.passes + 1
    if st.passes % st.sweep_passes == 0 then rescan(st) end
    local keys = {}
    for key in pairs(st.children) do keys[#keys + 1] = key end
    st.sweep, st.sweep_i = keys, 1
  end
  local per = math.max(1, math.ceil(#st.sweep / st.sweep_passes))
  for i = st.sweep_i, math.min(#st.sweep, st.sweep_i + per - 1) do
    local c = st.children[st.sweep[i]]
    if c then state.mark(st, c) end
  end
  st.sweep_i = st.sweep_i + per
  requests.expire_markers(st, t)
end

-- ---- views (answers to calls) ----

local function entry(id, pid, spec, extra)
  local e = { id, pid, spec.type, spec.modules, id = id, pid = pid, type = spec.type, modules = spec.modules }
  if extra then for k, v in pairs(extra) do e[k] = v end end
  return e
end

-- Entries sorted by the canonical encoding of their ids (then node), so every
-- node lists the same children in the same order.
local function which_children(st, mode)
  local out, keys = {}, {}
  local function add(key, e)
    out[#out + 1] = e
    keys[e] = key .. "\0" .. (e.node or "")
  end
  for key, c in pairs(st.children) do
    if mode == "global" then
      local req = requests.active(st, c)
      if req then
        local id = req.spec.id
        for _, pid in ipairs(pg.get_members(st.scope, { "child", id })) do
          add(key, entry(id, pid, req.spec, { node = pogo.node_of(pid) }))
        end
      end
    elseif c.proc then
      local proc = c.proc
      local pid = proc.pid
      if pid == nil then pid = proc.status == "restarting" and "restarting" or "undefined" end
      add(key, entry(proc.request.spec.id, pid, proc.request.spec, { status = proc.status, error = proc.error }))
    end
  end
  table.sort(out, function(x, y) return keys[x] < keys[y] end)
  return out
end

local function count_children(st, mode)
  local n = { specs = 0, active = 0, supervisors = 0, workers = 0 }
  local function count(spec, active)
    n.specs = n.specs + 1
    n.active = n.active + active
    if spec.type == "supervisor" then n.supervisors = n.supervisors + 1 else n.workers = n.workers + 1 end
  end
  if mode == "global" then
    for _, c in pairs(st.children) do
      local req = requests.active(st, c)
      if req then count(req.spec, #pg.get_members(st.scope, { "child", req.spec.id })) end
    end
  else
    for _, c in pairs(st.children) do
      local proc = c.proc
      if proc then count(proc.request.spec, pogo.is_pid(proc.pid) and 1 or 0) end
    end
  end
  return n
end

-- The answers to the calls of the API below: {value, error}.
local answers = {
  start_child = function(st, spec) return { requests.request(st, spec) } end,
  terminate_child = function(st, id)
    if requests.terminate(st, id) then return { true } end
    return { nil, "not found" }
  end,
  which_children = function(st, mode) return { which_children(st, mode) } end,
  count_children = function(st, mode) return { count_children(st, mode) } end,
  whereis = function(st, id) return { placement.whereis(st, id) } end,
  node_for = function(st, id) return { st.ring:key_to_node(id) } end,
  nodes = function(st) return { st.ring:nodes() } end,
  scope = function(st) return { st.scope } end,
  specs = function(st) return { requests.specs(st) } end,
}

-- ---- the supervisor process (pogo.server callbacks) ----

local Server = {}

function Server.init(arg)
  local opts, specs = arg[1], arg[2]
  local st = state.new(opts)
  pg.start(st.scope)
  requests.adopt_keeper(st)
  st.pg_ref = pg.monitor_scope(st.scope)
  pogo.monitor_nodes(true)
  join_wait.boot(st)
  pg.join(st.scope, "sup", pogo.self())
  rescan(st)
  for _, spec in ipairs(specs) do
    local ok, err = requests.request(st, spec)
    if not ok then events.log(st, "debug", "initial child %s: %s", tostring(spec.id), tostring(err)) end
  end
  st.next_sync = now() + st.sync_interval
  return st
end

function Server.handle_call(req, _, st)
  local answer = type(req) == "table" and answers[req[1]]
  if not answer then return { nil, "unknown request" }, st end
  -- a bad request (say, an id that cannot be encoded) is answered, not fatal
  local ok, reply = pcall(answer, st, req[2])
  return ok and reply or { nil, "bad request: " .. tostring(reply) }, st
end

-- A pg notification {"pg", ref, "join" | "leave", group, pids}.
local function on_pg(st, kind, group, pids)
  if group == "sup" then return placement.update_ring(st) end
  if type(group) ~= "table" then return end
  local tag = group[1]
  if tag == "spec" then
    requests.on_spec(st, kind, group)
  elseif tag == "term" then
    requests.on_marker(st, kind, group)
  elseif tag == "child" then
    placement.on_child(st, kind, group, pids)
  end
end

-- Each message notes what changed (the records to reconcile); handle_drained acts.
function Server.handle_info(msg, st)
  local tag = type(msg) == "table" and msg[1]
  if tag == "pg" and msg[2] == st.pg_ref then
    on_pg(st, msg[3], msg[4], msg[5])
  elseif tag == "EXIT" then
    local c = st.by_pid[msg[2]]
    if c and c.proc and c.proc.pid == msg[2] then children.exited(st, c, msg[3]) end
  elseif tag == "DOWN" then
    if msg[2] == st.keeper_ref then
      requests.keeper_down(st)
    elseif st.probes[msg[2]] then
      join_wait.probe_down(st, msg[2], msg[4])
    end
  elseif tag == "$dsup_ring" then
    join_wait.answer_ring(st, msg[2])
  elseif tag == "$dsup_ring_reply" then
    join_wait.peer_ring(st, msg[2], msg[3])
  elseif tag == "$dsup_connected" then
    join_wait.connected(st, msg[2], msg[3])
  elseif tag == "nodeup" then
    join_wait.node_up(st, msg[2])
  elseif tag == "nodedown" then
    join_wait.clear(st, msg[2])
    st.down_reason[msg[2]] = msg[3]
  end
  return st
end

-- The mailbox is drained: act on one consistent view.
function Server.handle_drained(st)
  local t = now()
  children.due(st, t)     -- restarts and kills whose time has come
  join_wait.expire(st, t) -- joining nodes that took longer than settle_ms
  t = now()
  if t >= st.next_sync then repair_pass(st, t) end
  reconcile_dirty(st)
  return st
end

-- Wake up for the next retry, kill, end of a join wait or repair pass.
function Server.timeout(st)
  local soonest = st.next_sync
  local d = children.next_deadline(st)
  if d and d < soonest then soonest = d end
  d = join_wait.next_deadline(st)
  if d and d < soonest then soonest = d end
  return soonest - now()
end

-- A stop (the parent's exit, server.stop) shuts the children down and gives
-- this node's requests up: their owners take them over. After a crash the
-- children go down through their links, and the keeper keeps the requests for
-- the supervisor's restart.
function Server.terminate(reason, st)
  if server.is_crash(reason) then return end
  children.shutdown_all(st)
  requests.give_up(st)
end

-- ---- API ----

--- Start this node's part of a distributed supervisor, linked to the caller.
-- @tparam table opts `name` (registered locally, and the default scope),
--   `scope`, `sync_interval` (5000 ms, a repair pass), `children` (specs
--   requested at start), `redistribute` ("active" or "on_failure"),
--   `listeners` (tables with optional `node_up`, `node_down`, `child_started`,
--   `child_stopped`, `child_moved`), `intensity`/`period_ms` (restarts of one
--   child before backing off), `max_backoff_ms`, `settle_ms` (1000: how long a
--   connecting node may take to show its supervisor), `log` (function(level, msg)).
-- @return pid, or nil and the reason
function M.start_link(opts)
  if type(opts) ~= "table" then return nil, "options table expected" end
  if opts.name == nil and opts.scope == nil then return nil, "name or scope required" end
  if opts.scope ~= nil and type(opts.scope) ~= "string" then return nil, "scope must be a string" end
  if opts.name ~= nil and type(opts.name) ~= "string" then return nil, "name must be a string" end
  if opts.redistribute ~= nil and opts.redistribute ~= "active" and opts.redistribute ~= "on_failure" then
    return nil, "redistribute must be \"active\" or \"on_failure\""
  end
  local bad = events.check(opts.listeners)
  if bad then return nil, bad end
  local specs = {}
  for i, c in ipairs(opts.children or {}) do
    local spec, err = child_spec.normalize(c)
    if not spec then return nil, err end
    local ok, e = pcall(encode, spec)
    if not ok then return nil, "invalid child spec: " .. tostring(e) end
    specs[i] = spec
  end
  return server.start_link(Server, { opts, specs }, { name = opts.name, trap_exit = true })
end

local function call(sup, req, timeout)
  local r = pogo.call(sup, req, timeout or 30000)
  return r[1], r[2]
end

--- Request a child anywhere in the cluster: it starts on the node the ring
-- assigns to its id. Bad specs give `nil, "invalid child spec: <why>"` and are
-- never replicated.
-- @param sup the local supervisor (name or pid)
-- @param spec a child spec or shorthand
-- @return true, or nil and the reason
function M.start_child(sup, spec)
  local s, err = child_spec.normalize(spec)
  if not s then return nil, err end
  local ok, e = pcall(encode, s)
  if not ok then return nil, "invalid child spec: " .. tostring(e):gsub("^value", "spec") end
  return call(sup, { "start_child", s })
end

--- Terminate a child wherever it runs, from any node, and forget its spec.
-- Waits (up to `timeout_ms`, default 5000) until no copy runs any more.
-- @return true, or nil and "not found"
function M.terminate_child(sup, id, timeout)
  local ok, err = call(sup, { "terminate_child", id })
  if not ok then return nil, err end
  local deadline = now() + (timeout or 5000)
  local scope = call(sup, { "scope" })
  local group = { "child", id }
  local ref = pg.monitor(scope, group)
  while #pg.get_members(scope, group) > 0 and now() < deadline do
    pogo.receive(function(m) return type(m) == "table" and m[1] == "pg" and m[2] == ref end,
      math.max(1, deadline - now()))
  end
  pg.demonitor(ref)
  while pogo.receive(function(m) return type(m) == "table" and m[1] == "pg" and m[2] == ref end, 0) do end
  return true
end

--- Children: `"local"` (default) lists what this node supervises,
-- `"global"` every running child in the cluster (with its pid and `node`).
-- Entries are `{id, pid | "restarting" | "undefined", type, modules}` with the
-- same fields by name, sorted by id; local entries also carry `status` and
-- `error`, global ones `node`.
function M.which_children(sup, mode) return (call(sup, { "which_children", mode or "local" })) end

--- Counts `{specs =, active =, supervisors =, workers =}`, `"local"` or `"global"`.
function M.count_children(sup, mode) return (call(sup, { "count_children", mode or "local" })) end

--- Every child spec requested in the cluster and not terminated (running or
-- not), as this node knows them.
function M.specs(sup) return (call(sup, { "specs" })) end

--- The pid running child `id` anywhere in the cluster, or nil.
function M.whereis(sup, id) return (call(sup, { "whereis", id })) end

--- The node the ring assigns to `id`.
function M.node_for(sup, id) return (call(sup, { "node_for", id })) end

--- The nodes of this distributed supervisor.
function M.nodes(sup) return (call(sup, { "nodes" })) end

--- Call child `id` wherever it runs (see `pogo.call`); raises `noproc` if it runs nowhere.
function M.call(sup, id, request, timeout)
  local pid = M.whereis(sup, id)
  if not pid then error("noproc: child " .. tostring(id) .. " is not running", 2) end
  return pogo.call(pid, request, timeout)
end

--- Cast to child `id` wherever it runs; false if it runs nowhere.
function M.cast(sup, id, msg)
  local pid = M.whereis(sup, id)
  if not pid then return false end
  return pogo.cast(pid, msg)
end

return M
