--- Cluster-wide names, as Horde.Registry and Erlang's `global`, without locks.
--
--     local pogo, registry = require "pogo", require "pogo.registry"
--     registry.register("leader")                    --> true (the caller holds it)
--     registry.whereis("leader")                     --> that pid, on every node
--     pogo.send({"via", "pogo.registry", "leader"}, msg)      -- also pogo.call, pogo.cast
--     server.start_link(mod, arg, {name = {"via", "pogo.registry", "leader"}})
--     local ref = registry.monitor("leader")
--     -- later: {"DOWN", ref, {"via", "pogo.registry", "leader"}, reason, pid}
--
-- Semantics:
--
-- * Every node runs a registry process (registered locally as
--   `"pogo.registry"`), as every Erlang node runs `global`: `pogo.start`
--   starts it, and so does requiring the module on a node not started. A
--   guard process restarts it if it exits (killed, out of memory). A
--   node sees the names of the nodes it is connected to.
-- * A name is any serializable value but nil; equal tables are the same name
--   (their canonical encoding is compared, as pg's groups); `1` and `1.0`
--   differ, and so do `0.0` and `-0.0`. Strings that begin with the byte 0xC1 (never valid UTF-8) are
--   reserved. A name is held by one process; a process may hold several.
-- * `register` acts at once on the calling node and the other nodes see it
--   as soon as the change reaches them (one message; well under a
--   millisecond on loopback). A name is released by `unregister`, when its
--   process exits (a process that has exited never holds its names again, even
--   if the registry process has not yet seen its exit) and, on every other
--   node, at once when its node goes down or is disconnected.
-- * Conflicts: two nodes that register one name before either has heard of
--   the other (at the same moment, or on both sides of a netsplit) both get
--   `true`. Each node's view is the same function of the registrations it
--   knows: the registration made first stays (by the wall clock of the
--   registering nodes, in µs; ties go to the lower node name). When the two
--   meet, the node of the other one removes it everywhere and sends its
--   process the exit signal `{"name_conflict", name}` (a process that traps
--   exits gets `{"EXIT", registry pid, {"name_conflict", name}}` and lives
--   on without the name). A `pogo.server` registered with `{"via",
--   "pogo.registry", name}` whose module has `handoff` or
--   `resolve_conflict` (a distributed supervisor's child that keeps its
--   state, say) is asked instead to hand its `handoff(state)` to the
--   winner's `resolve_conflict(state, data)`, and then exits with
--   `{"name_conflict", name}` (see `hands_off`). A node that sees only one
--   of them (a partial netsplit) keeps that one meanwhile.
-- * `monitor(name)` watches the registration that holds `name` now: the
--   caller gets one `{"DOWN", ref, {"via", "pogo.registry", name}, reason,
--   pid}` when `pid` stops holding the name on the caller's node. `reason`
--   is `"unregistered"`, the exit reason of the process (`"normal"`,
--   `"killed"`, ... on every node: a reason that cannot be serialized
--   reaches other nodes as a string), `"noconnection"` (its node went away),
--   or `{"name_conflict", name}` (another registration won). A name that is
--   not registered gives `{"DOWN", ref, {"via", "pogo.registry", name},
--   "noproc"}` at once. The tables in a DOWN are shared by the monitors of
--   one change: read-only.
-- * As a via module (`{"via", "pogo.registry", name}`, see `pogo.send`), it
--   gives `whereis` and `register`.
--
-- How it works: each node keeps its view in plain Lua tables (name -> pid),
-- so `whereis` is one table read. A node is the only writer of its own
-- registrations (its local processes); replication follows `pogo.pg`'s
-- scope processes: the registry process of each node monitors nodes; on
-- nodeup it sends `{"discover", self}` to the peer's registry process, which
-- answers with a "sync" of its registrations (in chunks) that replaces all
-- that was known of that node; later changes go to every peer, in order, in
-- "ops" messages, sent by the registry process only (the caller updates the
-- view at once and queues the change), so every peer gets each change either
-- in its sync or after it. A node's names leave the view at once on its
-- nodedown or the DOWN of its registry process. Local holders are monitored
-- by the registry process, so an exit releases the names and tells the peers.
-- Each registration carries its time; a view holds, for each name, the first
-- registration it knows and keeps the others ("rivals") until their nodes
-- drop them, so every node converges on the same holder with no lock and no
-- extra round trip.
--
-- @module pogo.registry
local pogo = require "pogo"
local scope_peers = require "pogo.scope_peers"
local uv = require "luv"
local service = require "pogo.service"

local core = pogo.core
local send, self, is_pid, node_of, node_name = core.send, core.self, core.is_pid, core.node_of, core.node_name
local encode, make_ref, alive = core.encode, core.make_ref, core.alive
local critical_enter, critical_leave, sleep = core.critical_enter, core.critical_leave, core.sleep
local gettimeofday = uv.gettimeofday
local next, type, rawget, error, pcall, tostring = next, type, rawget, error, pcall, tostring
local byte, math_type = string.byte, math.type
local remote_node, other_node = scope_peers.remote_node, scope_peers.other_node

local M = {}

local MOD = "pogo.registry" -- the module's require name, and its process's local name

--- Registrations per sync message (a node's sync is split into messages of
-- about this many names).
M.SYNC_CHUNK = 2048

--- Names per step when the registry process applies a received sync or drops
-- a node's names: it leaves its critical section and yields between steps, so
-- that a big sync never holds the node's other processes back for long.
M.SYNC_STEP = 1024

-- This node's view. A name's key is the name itself for a string, "\193"
-- and its canonical encoding otherwise.
local holder = {}   -- key -> pid holding the name
local since = {}    -- key -> time of the holder's registration (µs, wall clock of its node)
local value = {}    -- key -> name, for names that are not strings
local rivals = {}   -- key -> {node -> {pid, time}}: other nodes' registrations that lost here
local held = {}     -- node -> {key -> true}: the names each other node registered (holders and rivals)
local owned = {}    -- local pid -> key, or {key -> true} when it holds several
local dying = {}    -- dead local pid released before the registry process saw its exit ->
                    -- {ops = {unreg op, ...}, mons = {{name, monitor set}, ...}} awaiting its exit reason
local mons = {}     -- key -> monitor set {ref -> watcher pid}: the monitors of the holder of key
local mon_set = {}  -- ref -> its monitor set (in mons, or in dying)
local mon_key = {}  -- ref -> key
local watching = {} -- watcher pid -> {ref -> true}
local hands = {}    -- local pid -> true: a pogo.server that hands its state over when it loses a name

-- The registry process and what only it uses.
local R = {
  pid = nil,
  peers = scope_peers.new(MOD), -- the registry processes of other nodes
  owner_ref = {},    -- local holder pid -> monitor ref
  watcher_ref = {},  -- watcher pid -> monitor ref
  outbox = {},       -- local changes not yet sent to the peers
  flush_pending = false,
}

local FLUSH = { "flush" }

local function now_us()
  local s, us = gettimeofday()
  return s * 1000000 + us
end

-- Whether the registration (t1 by node n1) comes before (t2 by n2).
local function first(t1, n1, t2, n2)
  return t1 < t2 or (t1 == t2 and n1 < n2)
end

local function key_of(name)
  if type(name) == "string" then return name end
  return "\193" .. encode(name)
end

local function name_of(key)
  return value[key] or key
end

-- The key of a name given by a caller of `fn`; raises naming the argument.
local function user_key(fn, name)
  if type(name) == "string" then
    if byte(name, 1) == 193 then
      error("pogo.registry." .. fn .. ": name: strings that begin with byte 0xC1 are reserved", 3)
    end
    return name
  end
  if name == nil then error("pogo.registry." .. fn .. ": name expected, got nil", 3) end
  local ok, enc = pcall(encode, name)
  if not ok then error("pogo.registry." .. fn .. ": name cannot be serialized: " .. tostring(enc), 3) end
  return "\193" .. enc
end

local function via(name)
  return { "via", MOD, name }
end

local function own(pid, key)
  local o = owned[pid]
  if o == nil then
    owned[pid] = key
  elseif type(o) == "table" then
    o[key] = true
  else
    owned[pid] = { [o] = true, [key] = true }
  end
end

local function disown(pid, key)
  local o = owned[pid]
  if o == key then
    owned[pid] = nil
  elseif type(o) == "table" then
    o[key] = nil
    if next(o) == nil then owned[pid] = nil end
  end
  if owned[pid] == nil then hands[pid] = nil end
end

local function set_holder(key, name, pid, t)
  holder[key], since[key] = pid, t
  if type(name) ~= "string" then value[key] = name end
end

local function clear_holder(key)
  holder[key], since[key], value[key] = nil, nil, nil
end

-- Send every monitor of the set `ms` its DOWN (pid stopped holding `name`).
local function fire_set(ms, name, pid, reason)
  local msg_via = via(name)
  for ref, w in next, ms do
    mon_set[ref], mon_key[ref] = nil, nil
    local ws = watching[w]
    if ws then
      ws[ref] = nil
      if next(ws) == nil then watching[w] = nil end
    end
    send(w, { "DOWN", ref, msg_via, reason, pid })
  end
end

-- The same for the monitors of `key`.
local function fire(key, name, pid, reason)
  local ms = mons[key]
  if not ms then return end
  mons[key] = nil
  fire_set(ms, name, pid, reason)
end

-- Queue a change of local registrations for the peers; the registry process
-- sends the queue (see flush), so the peers get the changes in order.
local function replicate(op)
  local ob = R.outbox
  ob[#ob + 1] = op
  if not R.flush_pending then
    R.flush_pending = true
    send(R.pid, FLUSH)
  end
end

-- A reason as it can travel to the peers.
local function wire_reason(reason)
  if pcall(encode, reason) then return reason end
  return tostring(reason)
end

-- The best rival of `key` (if any) becomes its holder.
local function promote(key, name)
  local r = rivals[key]
  if not r then return end
  local bn, best
  for node, e in next, r do
    if not best or first(e[2], node, best[2], bn) then bn, best = node, e end
  end
  r[bn] = nil
  if next(r) == nil then rivals[key] = nil end
  set_holder(key, name, best[1], best[2])
end

-- Release the name `key` of the local process `pid`. `reason` nil: pid has
-- exited and the registry process has not seen its exit yet; its monitors
-- and peers get the reason when it does.
local function drop_local(key, pid, reason)
  local name = name_of(key)
  disown(pid, key)
  clear_holder(key)
  local op = { "unreg", name, pid }
  if reason ~= nil then op[4] = wire_reason(reason) end
  replicate(op)
  if reason ~= nil then
    fire(key, name, pid, reason)
  else
    local d = dying[pid]
    if not d then
      d = { ops = {}, mons = {} }
      dying[pid] = d
    end
    d.ops[#d.ops + 1] = op
    -- its monitors wait apart: they are not the next holder's
    if mons[key] then
      d.mons[#d.mons + 1] = { name, mons[key] }
      mons[key] = nil
    end
  end
  promote(key, name)
end

local ensure_process -- starts the registry process (defined with it, below)

-- Give `key` (of `name`) to local `pid` unless a live process holds it
-- (register, inside its critical section): true, or nil, "taken", holder.
local function take(key, name, pid)
  local h = holder[key]
  if h then
    -- a local holder that has exited (the registry process has not seen it
    -- yet): its names are free now, so that a restarted process gets them
    if node_of(h) ~= node_name() or alive(h) then return nil, "taken", h end
    drop_local(key, h, nil)
    if holder[key] then return nil, "taken", holder[key] end
  end
  local t = now_us()
  set_holder(key, name, pid, t)
  own(pid, key)
  replicate({ "reg", name, pid, t })
  return true
end

--- Register `name` for `pid` (default: the caller) across the cluster.
-- @param name any serializable value but nil
-- @param[opt] pid a process of this node
-- @return true; or nil, "taken", the pid holding it (on this node's view); or
--  nil, "noproc" when `pid` is not alive
function M.register(name, pid)
  local key = user_key("register", name)
  if pid == nil then
    pid = self()
  elseif not is_pid(pid) then
    error("pogo.registry.register: pid must be a pid, got " .. type(pid), 2)
  end
  if node_of(pid) ~= node_name() then
    error("pogo.registry.register: pid must be a process of this node, got " .. tostring(pid), 2)
  end
  if not alive(pid) then return nil, "noproc" end
  ensure_process()
  -- look and take as one step: preempted in between, another process (or the
  -- registry process applying a peer's change) could take the name too
  critical_enter()
  local ok, err, h = take(key, name, pid)
  critical_leave()
  return ok, err, h
end

--- Remove the registration of `name`. On the node of its holder it is gone at
-- once; from another node, that node is asked to remove it (the name is gone
-- everywhere once it has).
-- @param name
-- @treturn boolean whether `name` was registered (in this node's view)
function M.unregister(name)
  local key = user_key("unregister", name)
  local pid = holder[key]
  if not pid then return false end
  local node = node_of(pid)
  if node == node_name() then
    ensure_process()
    critical_enter()
    if holder[key] == pid then drop_local(key, pid, "unregistered") end
    critical_leave()
  else
    send({ MOD, node }, { "unregister", name, pid })
  end
  return true
end

--- Mark the local process `pid`, which holds a name, as a `pogo.server`
-- whose module has `handoff` or `resolve_conflict` (`pogo.server` calls it
-- when it registers a `{"via", "pogo.registry", name}` name). When a healed
-- netsplit gives one of its names to another process, it is not sent the
-- exit signal but `{"$name_conflict", winner, {"name_conflict", name}}`: it
-- hands `handoff(state)` to the winner's `resolve_conflict` and exits with
-- `{"name_conflict", name}`. Lasts while `pid` holds a name.
-- @param pid
function M.hands_off(pid)
  if owned[pid] ~= nil then hands[pid] = true end
end

--- The pid holding `name`, or nil: one table read, from any node.
-- @param name
-- @return pid or nil
function M.whereis(name)
  if type(name) == "string" then return holder[name] end
  if name == nil then error("pogo.registry.whereis: name expected, got nil", 2) end
  local ok, enc = pcall(encode, name)
  if not ok then error("pogo.registry.whereis: name cannot be serialized: " .. tostring(enc), 2) end
  return holder["\193" .. enc]
end

--- Whether local process `pid` holds a name: a conflict over one of its
-- names is settled by the registry (the registration made first stays),
-- which the distributed supervisor leaves it to.
-- @param pid
-- @treturn boolean
function M.holds(pid)
  return owned[pid] ~= nil
end

--- Every registered name (this node's view of the cluster).
-- @treturn {name,...} a new array, in no particular order
function M.names()
  local out, n = {}, 0
  for key in next, holder do
    n = n + 1
    out[n] = name_of(key)
  end
  return out
end

--- Monitor the registration that holds `name` now: the caller gets
-- `{"DOWN", ref, {"via", "pogo.registry", name}, reason, pid}` once, when
-- `pid` stops holding `name` (see the module's description for the reasons);
-- `{"DOWN", ref, {"via", "pogo.registry", name}, "noproc"}` at once if
-- nothing holds it.
-- @param name
-- @return ref
function M.monitor(name)
  local key = user_key("monitor", name)
  ensure_process()
  local ref, me = make_ref(), self()
  -- look and subscribe as one step: preempted in between, the registry
  -- process could drop the holder and fire its monitors without this one
  critical_enter()
  if not holder[key] then
    critical_leave()
    send(me, { "DOWN", ref, via(name), "noproc" })
    return ref
  end
  local ms = mons[key]
  if not ms then
    ms = {}
    mons[key] = ms
  end
  ms[ref] = me
  mon_set[ref], mon_key[ref] = ms, key
  local ws = watching[me]
  if not ws then
    ws = {}
    watching[me] = ws
    send(R.pid, { "watcher", me })
  end
  ws[ref] = true
  critical_leave()
  return ref
end

-- Forget monitor `ref`; returns whether it was active.
local function drop_monitor(ref)
  local ms, key = mon_set[ref], mon_key[ref]
  if not ms then return false end
  mon_set[ref], mon_key[ref] = nil, nil
  local w = ms[ref]
  ms[ref] = nil
  if next(ms) == nil and mons[key] == ms then mons[key] = nil end
  local ws = watching[w]
  if ws then
    ws[ref] = nil
    if next(ws) == nil then watching[w] = nil end
  end
  return true
end

--- Remove a monitor made by `monitor`; its DOWN, if already in the caller's
-- mailbox, is removed too.
-- @param ref
-- @treturn boolean whether the monitor was active
function M.demonitor(ref)
  critical_enter() -- (the tables change as one step for the registry process)
  local active = drop_monitor(ref)
  critical_leave()
  core.mbox_flush_down(ref)
  return active
end

--- Facts about the registry on this node, for tools and tests.
-- @return `{pid = the registry process, names = number of names in the view,
--  peers = {node, ...} (nodes whose registry process this one knows, sorted),
--  monitors = number of name monitors}`
function M.info()
  local peers, n, m = {}, 0, 0
  for node in next, R.peers.pids do peers[#peers + 1] = node end
  table.sort(peers)
  for _ in next, holder do n = n + 1 end
  for _ in next, mon_key do m = m + 1 end
  return { pid = R.pid, names = n, peers = peers, monitors = m }
end

-- ---------------------------------------------------------------------------
-- Other nodes' registrations (applied by the registry process)

-- The pid of node's registration of key, if it has one.
local function entry_pid(node, key)
  local hs = held[node]
  if not hs or not hs[key] then return nil end
  local h = holder[key]
  if h and node_of(h) == node then return h end
  local r = rivals[key]
  local e = r and r[node]
  return e and e[1]
end

-- Remove node's registration of key (it is gone from that node).
local function drop_remote(node, key, reason)
  local hs = held[node]
  if not hs or not hs[key] then return end
  hs[key] = nil
  local h = holder[key]
  if h and node_of(h) == node then
    local name = name_of(key)
    clear_holder(key)
    fire(key, name, h, reason)
    promote(key, name)
  else
    local r = rivals[key]
    if r then
      r[node] = nil
      if next(r) == nil then rivals[key] = nil end
    end
  end
end

local function add_rival(key, node, pid, t)
  local r = rivals[key]
  if not r then
    r = {}
    rivals[key] = r
  end
  r[node] = { pid, t }
end

-- Node `node` registered `name` for its process `pid` at time `t`.
local function add_remote(node, name, pid, t)
  if name == nil or not is_pid(pid) or node_of(pid) ~= node or math_type(t) ~= "integer" then return end
  local ok, key = pcall(key_of, name)
  if not ok then return end
  local old = entry_pid(node, key)
  if old == pid then return end
  if old then drop_remote(node, key, "noproc") end
  local hs = held[node]
  if not hs then
    hs = {}
    held[node] = hs
  end
  hs[key] = true
  local h = holder[key]
  if not h then return set_holder(key, name, pid, t) end
  add_rival(key, node, pid, t)
  local hn, ht = node_of(h), since[key]
  if not first(t, node, ht, hn) then return end
  -- the newcomer came first: the holder loses, here and (this being the same
  -- function of the same registrations) on every node; the newcomer, first
  -- of all the rivals, takes its place
  local reason = { "name_conflict", name }
  if hn == node_name() then
    local merge = hands[h]
    drop_local(key, h, reason)
    if merge then
      send(h, { "$name_conflict", pid, reason }) -- handoff(state) goes to the winner, then it exits
    else
      core.exit_signal(h, reason)
    end
  else
    clear_holder(key)
    fire(key, name, h, reason)
    add_rival(key, hn, h, ht)
    promote(key, name)
  end
end

-- ---------------------------------------------------------------------------
-- The registry process

-- (a dying pid is watched too: its exit reason is awaited)
local function watch_owner(pid)
  if (owned[pid] or dying[pid]) and not R.owner_ref[pid] then R.owner_ref[pid] = pogo.monitor(pid) end
end

local function unwatch_owner(pid)
  local ref = R.owner_ref[pid]
  if ref and not owned[pid] then
    pogo.demonitor(ref)
    R.owner_ref[pid] = nil
  end
end

local function watch_watcher(w)
  if watching[w] and not R.watcher_ref[w] then R.watcher_ref[w] = pogo.monitor(w) end
end

-- Send the queued changes to every peer, in order, in messages
-- {"ops", registry pid, {op, ...}}; op is {"reg", name, pid, time} or
-- {"unreg", name, pid, reason}. Watches the new local holders first.
local function flush()
  R.flush_pending = false
  while #R.outbox > 0 do
    local ops = R.outbox
    R.outbox = {}
    for i = 1, #ops do
      local op = ops[i]
      if op[1] == "reg" then watch_owner(op[3]) elseif not dying[op[3]] then unwatch_owner(op[3]) end
    end
    R.peers:broadcast("ops", R.pid, ops, M.SYNC_CHUNK)
  end
end

-- Let the node's other processes, its I/O and its timers run: the registry
-- process leaves the critical section its handlers run in (loop) and waits
-- for the next turn of the loop (a sleep of 0 ms: a yield would not do, the
-- scheduler's batch would resume it before any I/O). Called between the
-- steps of a long change, where the tables are whole.
local function pause()
  critical_leave()
  sleep(0)
  critical_enter()
end

-- Drop node's registrations held in hs (held[node]) that `keep(key)` does
-- not keep, SYNC_STEP names at a time. Nothing else changes hs meanwhile:
-- only the registry process does, and it takes no other message before the
-- end (a cleared field does not upset next).
local function drop_held(node, hs, keep, reason)
  local key, n = nil, 0
  while true do
    key = next(hs, key)
    if key == nil then return end
    if not keep(key) then drop_remote(node, key, reason) end
    n = n + 1
    if n % M.SYNC_STEP == 0 then pause() end
  end
end

local function keep_none() return false end

-- Send this node's registrations to `peer`, in messages of about SYNC_CHUNK
-- names: {"sync", registry pid, {{name, pid, time}, ...}, last}. The peer is
-- one already (discover): every change made from now on reaches it after the
-- sync, as an op. So the registrations are copied first, in one step (flat
-- arrays: O(local names), about 20 ms for 100,000), as they stand when the
-- peer was added, and the sync then goes out from the copy, pausing (see
-- pause) every SYNC_STEP names. (Sending each name as it stood when its step
-- came, as it did, was ahead of the ops replayed after it: a name that
-- moved between two local processes during the sync was taken from its
-- holder on the peer, and the peer's monitors of it fired "noproc".)
local function send_sync(peer)
  local names, pids, times, n = {}, {}, {}, 0
  for pid, o in next, owned do
    if type(o) == "table" then
      for key in next, o do
        n = n + 1
        names[n], pids[n], times[n] = name_of(key), pid, since[key]
      end
    else
      n = n + 1
      names[n], pids[n], times[n] = name_of(o), pid, since[o]
    end
  end
  local items, limit = {}, M.SYNC_CHUNK
  for i = 1, n do
    items[#items + 1] = { names[i], pids[i], times[i] }
    if #items >= limit then
      send(peer, { "sync", R.pid, items, false })
      items = {}
    end
    if i % M.SYNC_STEP == 0 then pause() end
  end
  send(peer, { "sync", R.pid, items, true })
end


-- Everything known of `node` leaves the view (it went down, or its registry
-- process did), in steps.
local function drop_peer(node)
  R.peers:remove(node)
  local hs = held[node]
  if not hs then return end
  drop_held(node, hs, keep_none, "noconnection")
  if held[node] == hs then held[node] = nil end
end

-- A new sync from `node`: its registrations by key, gathered chunk by chunk.
local function sync_begin() return {} end

-- Note the items of a sync's chunk ({name, pid, time} each) in `new`. O(items).
local function sync_chunk(new, items)
  for i = 1, #items do
    local it = items[i]
    if type(it) == "table" and it[1] ~= nil then
      local ok, key = pcall(key_of, it[1])
      if ok then new[key] = it end
    end
  end
end

-- A sync replaces all that was known of `node`: the registrations it lacks
-- go, then its own are added, SYNC_STEP names a step.
local function apply_sync(node, new)
  local hs = held[node]
  if hs then
    drop_held(node, hs, function(key)
      local it = new[key]
      return it ~= nil and it[2] == entry_pid(node, key)
    end, "noconnection")
  end
  local n = 0
  for _, it in next, new do
    add_remote(node, it[1], it[2], it[3])
    n = n + 1
    if n % M.SYNC_STEP == 0 then pause() end
  end
end

-- A process that exited: its names go, with its exit reason.
local function owner_down(pid, reason)
  local d = dying[pid]
  if d then
    dying[pid] = nil
    local wire = wire_reason(reason)
    for i = 1, #d.ops do d.ops[i][4] = wire end
    for i = 1, #d.mons do fire_set(d.mons[i][2], d.mons[i][1], pid, reason) end
  end
  local o = owned[pid]
  if type(o) == "table" then
    local keys = {}
    for key in next, o do keys[#keys + 1] = key end
    for i = 1, #keys do drop_local(keys[i], pid, reason) end
  elseif o then
    drop_local(o, pid, reason)
  end
end

local handlers = {}

-- A peer's registry process asks for our registrations: queued changes go
-- first, then the sync, so the peer gets each change either in the sync or
-- after it.
function handlers.discover(m)
  local peer = m[2]
  local node = remote_node(peer)
  if not node then return end
  flush()
  local known = R.peers.pids[node] == peer
  if not known then R.peers:add(node, peer) end
  send_sync(peer)
  if not known then send(peer, { "discover", R.pid }) end
end

function handlers.sync(m)
  local peer, items, last = m[2], m[3], m[4]
  local node = remote_node(peer)
  if not node or type(items) ~= "table" then return end
  if R.peers.pids[node] ~= peer then R.peers:add(node, peer) end
  local new = R.peers:receiving(node, sync_begin)
  sync_chunk(new, items)
  if not last then return end
  R.peers:received(node)
  apply_sync(node, new)
  flush() -- conflicts may have released local names
end

function handlers.ops(m)
  local peer, ops = m[2], m[3]
  local node = remote_node(peer)
  if not node or R.peers.pids[node] ~= peer or type(ops) ~= "table" then return end
  for i = 1, #ops do
    local op = ops[i]
    local kind = type(op) == "table" and op[1]
    if kind == "reg" then
      add_remote(node, op[2], op[3], op[4])
    elseif kind == "unreg" and op[2] ~= nil then
      local ok, key = pcall(key_of, op[2])
      if ok and entry_pid(node, key) == op[3] then
        local reason = op[4]
        if reason == nil then reason = "noproc" end
        drop_remote(node, key, core.crash_restore(reason))
      end
    end
  end
  flush()
end

-- Another node's `unregister` of a name held here.
function handlers.unregister(m)
  local name, pid = m[2], m[3]
  if name == nil then return end
  local ok, key = pcall(key_of, name)
  if ok and holder[key] == pid and is_pid(pid) and node_of(pid) == node_name() then
    drop_local(key, pid, "unregistered")
    flush()
  end
end

function handlers.flush()
  flush()
end

function handlers.watcher(m)
  if is_pid(m[2]) then watch_watcher(m[2]) end
end

function handlers.nodeup(m)
  local node = other_node(m[2])
  if node then R.peers:discover(node, R.pid) end
end

function handlers.nodedown(m)
  local node = other_node(m[2])
  if node then drop_peer(node) end
end

-- The DOWN of a local holder, a watcher, or a peer's registry process.
handlers.DOWN = function(m)
  local ref, pid = m[2], m[3]
  if not is_pid(pid) then return end
  if R.owner_ref[pid] == ref then
    R.owner_ref[pid] = nil
    owner_down(pid, m[4])
    flush()
  elseif R.watcher_ref[pid] == ref then
    R.watcher_ref[pid] = nil
    local ws = watching[pid]
    if ws then
      for r in next, ws do drop_monitor(r) end
    end
  else
    local node = R.peers:down(ref, pid)
    if node then drop_peer(node) end
  end
end

-- Body of the registry process. A restarted one holds none of the old
-- monitors: it forgets the other nodes' names (each peer sends them again in
-- its sync) and watches the local holders and watchers again.
local function loop()
  R.peers:reset()
  R.owner_ref, R.watcher_ref = {}, {}
  R.outbox, R.flush_pending = {}, false
  local nodes = {}
  for node in next, held do nodes[#nodes + 1] = node end
  critical_enter() -- (drop_peer pauses between its steps)
  for i = 1, #nodes do drop_peer(nodes[i]) end
  critical_leave()
  for pid in next, dying do owner_down(pid, "noproc") end
  for pid in next, owned do watch_owner(pid) end
  for w in next, watching do watch_watcher(w) end
  R.peers:discover_all(R.pid)
  local receive = core.receive
  while true do
    local m = receive()
    local h = type(m) == "table" and handlers[rawget(m, 1)]
    if h then
      critical_enter() -- (the tables change as one step for the other processes)
      h(m)
      critical_leave()
    end
  end
end

-- Start the registry process (raises if another process holds its name).
local function start_process()
  local taken = core.whereis(MOD)
  if taken then
    error(string.format("pogo.registry: the local name '%s' is taken by %s", MOD, tostring(taken)), 0)
  end
  R.pid = core.spawn(loop)
  core.register(MOD, R.pid)
  return R.pid
end

-- Start the registry process if it is not running, kept running by a guard
-- (pogo.service): the other nodes drop this node's names while it is down,
-- and the restarted one sends them again (`loop`).
function ensure_process()
  if R.pid and alive(R.pid) then return end
  R.pid = service.keep(MOD, start_process)
end

--- Start the node's registry process if it is not running (`pogo.start`
-- calls it, so every node runs one from its start). Raises if another
-- process holds the local name `"pogo.registry"`.
-- @treturn pid the registry process
function M.start()
  ensure_process()
  return R.pid
end

ensure_process()

return M
