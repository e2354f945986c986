--- Replicated process groups, with the semantics of Erlang's `pg`.
--
--     local pogo, pg = require "pogo", require "pogo.pg"
--     pg.start("workers")
--     pg.join("workers", {"spec", {id = 1}}, pogo.self())
--     pg.get_members("workers", {"spec", {id = 1}})   --> {pid, ...} on every node
--     local ref, pids = pg.monitor("workers", "jobs")
--     -- later: {"pg", ref, "join" | "leave", "jobs", {pid, ...}}
--
-- Semantics (as Erlang's `pg`):
--
-- * Scopes are independent name spaces; `start(scope)` is idempotent. A scope
--   exists on a node once started there, and sees the scopes of the same name on
--   the nodes it is connected to.
-- * A group is any serializable value except nil (see the codec): equal tables
--   are the same group whatever their construction order; `1` and `1.0`
--   differ, and so do `0.0` and `-0.0` (a float keeps its exact bits).
--   Group values that pg hands back (in `which_groups`, notifications, ...) are
--   shared with its index: treat them as read-only.
-- * Only local processes join or leave. A process may join a group several
--   times and is then listed that many times, and must leave as many times.
--   Joining a local process that is not alive does nothing.
-- * A member that exits leaves all its groups; when a node goes down, all of its
--   members leave every other node's view at once.
-- * Monitors (`monitor_scope`, `monitor`) get
--   `{"pg", ref, "join" | "leave", group, pids}` for local and remote changes,
--   including those caused by exits, node downs and resyncs, in the order the
--   local view changes. The group and pids in a notification are shared by
--   all monitors of that change: read-only.
--
-- How it works: the index of each scope lives in C (`csrc/pg.c`: canonical
-- encoding of the group -> members; per pid and per node indexes), so
-- `get_members` costs O(members of that group) and `which_groups` O(groups).
-- A local `join`/`leave` updates the index at once in the caller and notifies
-- local monitors there and then. One scope process per scope per node,
-- registered as `"pg:" .. scope`, does the rest, as Erlang's does: it monitors
-- nodes and on nodeup sends `{"discover", self}` to the peer's scope; a
-- discover is answered with a full "sync" of the local membership (in chunks);
-- a sync replaces everything known of that node (the difference is notified).
-- The receiver notes each chunk's items (O(chunk), the index unchanged) and,
-- at the last one, applies the difference in steps of about SYNC_STEP
-- members (`ix:sync_step`: each group whole, leaves then joins, one event per
-- group; a member that stays gets no event), with a turn of the loop between
-- steps, so that a sync of any size never freezes the node; the scope
-- process takes its next message (the peer's ops, its nodedown, its next
-- sync) only after the last step, which keeps the transport's order;
-- incremental changes of known peers are applied as they come; a peer's scope
-- going away (nodedown, or a DOWN of its scope process) removes all its members
-- (in the same steps, as a sync with no items); local members are monitored so that their exit removes them
-- everywhere. A guard (`pogo.service`) starts the scope process again if it
-- exits: the new one keeps the index and the pg monitors, watches the local
-- members again and resyncs with the peers, which dropped this node's members
-- when the old one went down. Local changes reach the peers through the
-- scope process only (the caller queues them and the scope process sends the
-- queue, in batches, on its next run): the transport may suspend a sender
-- under backpressure, and a single sender keeps every peer's copy in the
-- order of the local changes, with a new peer getting each change either in
-- its sync or after it (the snapshot for a new peer and its addition are one
-- step for the local joins and leaves: see handlers.discover). Each
-- node is the only writer of its own members, so no global ordering is needed;
-- the transport keeps messages from one node to another in order, so a sync is
-- never overtaken by later changes.
--
-- @module pogo.pg
local pogo = require "pogo"
local scope_peers = require "pogo.scope_peers"
local service = require "pogo.service"
local core = pogo.core

local send, self, is_pid, node_of, sleep = core.send, core.self, core.is_pid, core.node_of, core.sleep
local critical_enter, critical_leave = core.critical_enter, core.critical_leave
local make_ref, node_name = core.make_ref, core.node_name
local remote_node, other_node = scope_peers.remote_node, scope_peers.other_node
local send_parts = scope_peers.send_parts
local mbox_len, mbox_peek, mbox_take = core.mbox_len, core.mbox_peek, core.mbox_take
local next, type, rawget, error = next, type, rawget, error

local M = {}

--- Members per sync message (a sync is split into messages of about this many
-- pids, so that a big scope never makes one huge frame).
M.SYNC_CHUNK = 2048

--- Units of work (a member looked at or moved) per step of applying a
-- received sync: the scope process lets the loop turn between steps (a
-- sleep of 0 ms), so that a big sync
-- never holds the node's other processes back for long (about 2 ms a step).
M.SYNC_STEP = 2048

local scopes = {}   -- scope name -> state
local monitors = {} -- pg monitor ref -> state

local function new_state(scope)
  return {
    name = scope,
    reg = "pg:" .. scope,
    ix = core.pg_index(),
    pid = nil,         -- the scope process
    peers = scope_peers.new("pg:" .. scope), -- the scope processes of other nodes
    outbox = {},       -- local changes not yet sent to the peers
    flush_pending = false,
    member_ref = {},   -- local member pid -> monitor ref
    smons = {},        -- scope monitor ref -> watcher pid
    nsmons = 0,
    gmons = {},        -- group key -> {ref -> watcher pid}
    mon_key = {},      -- group monitor ref -> group key
    watchers = {},     -- watcher pid -> {ref -> true}
    watcher_ref = {},  -- watcher pid -> monitor ref (held by the scope process)
  }
end

-- Raise for a scope that is not one started here, naming the API function
-- `fn` and blaming its caller (`level` 3 when called from `fn` directly).
local function bad_scope(fn, scope, level)
  if type(scope) ~= "string" then
    error(string.format("%s: scope must be a string, got %s", fn, type(scope)), level or 3)
  end
  error(string.format("%s: pg scope '%s' not started", fn, scope), level or 3)
end

-- Raise for a bad argument of the API function `fn` (`why` from the index),
-- blaming the caller of `fn` (called from `fn` directly).
local function bad_arg(fn, why)
  error(fn .. ": " .. tostring(why), 3)
end

-- The state of `scope` for the API function `fn` (which calls this directly,
-- not as a tail call).
local function state(fn, scope)
  local S = scopes[scope]
  if not S then bad_scope(fn, scope, 4) end
  return S
end

local function notify(S, kind, group, key, pids)
  if S.nsmons > 0 then
    for ref, w in next, S.smons do send(w, {"pg", ref, kind, group, pids}) end
  end
  local gm = S.gmons[key]
  if gm then
    for ref, w in next, gm do send(w, {"pg", ref, kind, group, pids}) end
  end
end

local function notify_events(S, events)
  if not events then return end
  for i = 1, #events do
    local e = events[i]
    if e[4] then notify(S, "leave", e[1], e[2], e[4]) end
    if e[3] then notify(S, "join", e[1], e[2], e[3]) end
  end
end

local FLUSH = {"flush"}

-- Queue a change of local membership for the peers. Only the scope process
-- sends replication traffic (see flush), so a sender that the transport
-- suspends under backpressure can never reorder changes, and a peer added in
-- the meantime gets exactly the changes its sync did not contain.
local function replicate(S, op)
  local ob = S.outbox
  ob[#ob + 1] = op
  if not S.flush_pending then
    S.flush_pending = true
    send(S.pid, FLUSH)
  end
end

-- Start the scope process of S and register it (by M.start, and by its
-- guard when it has exited).
local function spawn_scope(S)
  local holder = core.whereis(S.reg)
  if holder then
    error(string.format("pg.start: the name '%s' is taken by %s", S.reg, tostring(holder)), 0)
  end
  S.pid = core.spawn(M._scope_loop, S)
  core.register(S.reg, S.pid)
  return S.pid
end

--- Start the scope `scope` on this node (idempotent).
-- The scope process is kept running (`pogo.service`): if it exits (killed,
-- out of memory), a guard starts it again, with a warning in the log; the
-- new one keeps the local members and the pg monitors, watches the members
-- again, and resyncs with the peers (which drop this node's members while it
-- is down, and get them back in its sync). Local joins and leaves made
-- meanwhile stay in the local view and reach the peers in that sync.
-- @tparam string scope
-- @return the pid of the scope process (registered as `"pg:" .. scope`)
function M.start(scope)
  if type(scope) ~= "string" or scope == "" then
    error("pg.start: scope must be a non-empty string", 2)
  end
  local S = scopes[scope]
  if S and S.pid and core.alive(S.pid) then return S.pid end
  local holder = core.whereis("pg:" .. scope)
  if holder then
    error(string.format("pg.start: the name 'pg:%s' is taken by %s", scope, tostring(holder)), 2)
  end
  if not S then
    S = new_state(scope)
    scopes[scope] = S
  end
  return service.keep(S.reg, function() return spawn_scope(S) end)
end

--- Whether `scope` is started on this node (false for the moment between
-- the exit of its scope process and the restart by its guard).
-- @tparam string scope
-- @treturn boolean
function M.started(scope)
  local S = scopes[scope]
  return S ~= nil and S.pid ~= nil and core.alive(S.pid)
end

-- After a local join or leave changed the index: tell the scope process which
-- pids to start or stop watching (`moved`: the pids with no membership before /
-- any more, or true for the single pid `pids`), replicate the change to peers
-- and notify local monitors. `pids` is a pid or an array of pids.
local function publish(S, kind, watch, key, gval, pids, moved)
  if moved == true then
    send(S.pid, {watch, pids})
  elseif moved then
    for i = 1, #moved do send(S.pid, {watch, moved[i]}) end
  end
  local peers, mon = next(S.peers.pids), S.nsmons > 0 or S.gmons[key]
  if peers or mon then
    if type(pids) ~= "table" then pids = {pids} end
    if peers then replicate(S, {kind, gval, pids}) end
    if mon then notify(S, kind, gval, key, pids) end
  end
end

--- Make local processes join `group` (once more each).
-- Raises (at the caller, changing nothing) for a scope not started here, a
-- nil or unserializable group, or anything but local pids.
-- @tparam string scope
-- @param group any serializable value but nil
-- @param pid_or_pids a local pid or an array of local pids; pids that are not
--   alive are skipped; any other pid raises an error
-- @treturn boolean true
function M.join(scope, group, pid_or_pids)
  local S = scopes[scope]
  if not S then bad_scope("pg.join", scope) end
  -- the index, the outbox and the notifications change as one step: a
  -- preemption in between would let the scope process flush the outbox this
  -- op is being added to (and lose it) or sync a new peer twice. The index
  -- returns bad input instead of raising, so that the section is always left.
  critical_enter()
  local key, gval, joined, fresh = S.ix:join(group, pid_or_pids)
  if not key then
    critical_leave()
    bad_arg("pg.join", gval)
  end
  if joined then publish(S, "join", "watch", key, gval, joined, fresh) end
  critical_leave()
  return true
end

--- Make local processes leave `group` (once each).
-- Raises as `join` does.
-- @tparam string scope
-- @param group
-- @param pid_or_pids a local pid or an array of local pids
-- @treturn boolean whether any of them was a member (Erlang's `not_joined` is false)
function M.leave(scope, group, pid_or_pids)
  local S = scopes[scope]
  if not S then bad_scope("pg.leave", scope) end
  critical_enter() -- (as in join)
  local key, gval, left, gone = S.ix:leave(group, pid_or_pids)
  if not key then
    critical_leave()
    bad_arg("pg.leave", gval)
  end
  if left then publish(S, "leave", "unwatch", key, gval, left, gone) end
  critical_leave()
  return left ~= nil and left ~= false
end

--- Members of `group` on every node of the scope, a pid once per join.
-- Costs O(members of the group).
-- @treturn {pid,...} a new array (empty if the group has no members)
function M.get_members(scope, group)
  local S = scopes[scope]
  if not S then bad_scope("pg.get_members", scope) end
  local pids, why = S.ix:members(group)
  if not pids then bad_arg("pg.get_members", why) end
  return pids
end

--- Members of `group` on this node.
-- @treturn {pid,...} a new array
function M.get_local_members(scope, group)
  local S = scopes[scope]
  if not S then bad_scope("pg.get_local_members", scope) end
  local pids, why = S.ix:members(group, true)
  if not pids then bad_arg("pg.get_local_members", why) end
  return pids
end

--- Every group with members in the scope. O(groups).
-- @treturn {group,...}
function M.which_groups(scope)
  local groups = state("pg.which_groups", scope).ix:groups()
  return groups
end

--- Groups with local members.
-- @treturn {group,...}
function M.which_local_groups(scope)
  local groups = state("pg.which_local_groups", scope).ix:local_groups()
  return groups
end

local function add_watcher(S, w, ref)
  local ws = S.watchers[w]
  if not ws then
    ws = {}
    S.watchers[w] = ws
    if S.pid then send(S.pid, {"watcher", w}) end
  end
  ws[ref] = true
  monitors[ref] = S
end

--- Monitor every group of the scope.
-- The caller gets `{"pg", ref, "join" | "leave", group, pids}` for each change.
-- @tparam string scope
-- @return ref
-- @return the current groups, an array of `{group, pids}` pairs (groups can be
--   tables, so a table keyed by group would not do)
function M.monitor_scope(scope)
  local S = state("pg.monitor_scope", scope)
  local ref, me = make_ref(), self()
  -- the snapshot and the subscription as one step: the scope process
  -- changes the index and notifies in one too (see notify_events), so each
  -- change is either in the snapshot or notified, never both or neither
  critical_enter()
  S.smons[ref] = me
  S.nsmons = S.nsmons + 1
  add_watcher(S, me, ref)
  local snap = S.ix:snapshot()
  critical_leave()
  return ref, snap
end

--- Monitor one group.
-- The caller gets `{"pg", ref, "join" | "leave", group, pids}` for each change.
-- @tparam string scope
-- @param group
-- @return ref
-- @return the current members (array of pids)
function M.monitor(scope, group)
  local S = state("pg.monitor", scope)
  local ref, me = make_ref(), self()
  critical_enter() -- (as in monitor_scope)
  local pids, key = S.ix:members(group)
  if not pids then
    critical_leave()
    bad_arg("pg.monitor", key)
  end
  local gm = S.gmons[key]
  if not gm then
    gm = {}
    S.gmons[key] = gm
  end
  gm[ref] = me
  S.mon_key[ref] = key
  add_watcher(S, me, ref)
  critical_leave()
  return ref, pids
end

-- Forget monitor `ref` of S; returns its watcher.
local function drop_monitor(S, ref)
  monitors[ref] = nil
  local w = S.smons[ref]
  if w then
    S.smons[ref] = nil
    S.nsmons = S.nsmons - 1
    return w
  end
  local key = S.mon_key[ref]
  if not key then return nil end
  S.mon_key[ref] = nil
  local gm = S.gmons[key]
  w = gm[ref]
  gm[ref] = nil
  if not next(gm) then S.gmons[key] = nil end
  return w
end

-- Remove {"pg", ref, ...} messages from the caller's mailbox.
local function flush_mailbox(ref)
  local i = 1
  while i <= mbox_len() do -- (read each time: a preempted caller may get more meanwhile)
    local m = mbox_peek(i)
    if type(m) == "table" and rawget(m, 1) == "pg" and rawget(m, 2) == ref then
      mbox_take(i)
    else
      i = i + 1
    end
  end
end

--- Remove a monitor made by `monitor_scope` or `monitor`; its notifications
-- already in the caller's mailbox are removed too.
-- @param ref
-- @treturn boolean whether the monitor was active
function M.demonitor(ref)
  local S = monitors[ref]
  if not S then
    flush_mailbox(ref)
    return false
  end
  local w = drop_monitor(S, ref)
  local ws = w and S.watchers[w]
  if ws then
    ws[ref] = nil
    if not next(ws) then
      S.watchers[w] = nil
      if S.pid then send(S.pid, {"unwatcher", w}) end
    end
  end
  flush_mailbox(ref)
  return true
end

--- Facts about a scope on this node, for tools and tests.
-- @tparam string scope
-- @return `{pid = scope process, groups = number of groups, peers = {node, ...}
--   (nodes whose scope process this one knows), monitors = number of pg monitors}`
function M.info(scope)
  local S = state("pg.info", scope)
  local peers = {}
  for node in next, S.peers.pids do peers[#peers + 1] = node end
  table.sort(peers)
  local n = 0
  for _, s in next, monitors do
    if s == S then n = n + 1 end
  end
  return {pid = S.pid, groups = S.ix:count(), peers = peers, monitors = n}
end

-- ---------------------------------------------------------------------------
-- The scope process

-- Send the queued changes to every peer, in order, in messages
-- {"ops", scope pid, {op, ...}}; op is {"join", group, pids},
-- {"leave", group, pids} or {"exit", pids}. Runs in the scope process only.
local function flush(S)
  S.flush_pending = false
  while #S.outbox > 0 do
    local ops = S.outbox
    S.outbox = {}
    S.peers:broadcast("ops", S.pid, ops, M.SYNC_CHUNK)
  end
end

-- Send our local membership to `peer` from the walk `walk` (ix:walk_begin:
-- the local members as they were when it began), in messages of about
-- SYNC_CHUNK memberships, the last one with `last` = true, with a turn of
-- the loop between them: a step costs O(SYNC_CHUNK), whatever the size of
-- the scope.
local function send_sync(S, peer, walk)
  local ix = S.ix
  while true do
    local items, done = ix:walk_step(walk, M.SYNC_CHUNK)
    send(peer, {"sync", S.pid, items, done})
    if done then return end
    sleep(0)
  end
end

local function watch_member(S, pid)
  if S.member_ref[pid] or not S.ix:has_pid(pid) then return end
  S.member_ref[pid] = pogo.monitor(pid)
end

local function watch_watcher(S, w)
  if S.watcher_ref[w] or not S.watchers[w] then return end
  S.watcher_ref[w] = pogo.monitor(w)
end

local handlers = {}

-- A peer's scope process asks for our membership. The snapshot begins
-- (ix:walk_begin) and the peer is added in one critical section, which local
-- joins and leaves (each in one too) cannot split: a change made before it
-- is in the snapshot, one made after it is queued for the peer too (and the
-- walk sends the members as they were when it began, whatever changes while
-- it is sent). The changes queued before it are taken out in the same step
-- and sent to the peers of before only (a known peer synced again gets them
-- before the sync that contains them), so the peer gets each change exactly
-- once, either in the sync or after it. The section costs O(local pids) (a
-- flat copy of them); the sync goes in bounded steps. (No send inside the
-- section: a send may suspend the process, and a critical section ends with
-- the slice.)
function handlers.discover(S, m)
  local peer = m[2]
  local node = remote_node(peer)
  if not node then return end
  critical_enter()
  local pending, before = S.outbox, S.peers:list()
  S.outbox = {}
  local walk = S.ix:walk_begin()
  local known = S.peers.pids[node] == peer
  if not known then S.peers:add(node, peer) end
  critical_leave()
  if #pending > 0 then send_parts(before, "ops", S.pid, pending, M.SYNC_CHUNK) end
  send_sync(S, peer, walk)
  if not known then send(peer, {"discover", S.pid}) end
end

local function sync_begin(ix, node) return ix:sync_begin(node) end

-- Apply a received sync in steps of about SYNC_STEP units, with a turn of
-- the loop between them (a sleep of 0 ms: the scheduler's batch would
-- resume a process that yields before any I/O or timer), so that the node's
-- other processes, its links and timers run. The scope process takes no
-- other message meanwhile: the peer's later ops, its nodedown or its next
-- sync apply after the last step, in the order they came.
local function apply_sync(S, st)
  local ix = S.ix
  while true do
    critical_enter() -- (a step and its notifications as one: see handlers.ops)
    local events, done = ix:sync_step(st, M.SYNC_STEP)
    notify_events(S, events)
    critical_leave()
    if done then return end
    sleep(0)
  end
end

-- Forget the peer of `node` and remove its members: a sync with no items,
-- in steps as any (for a peer of 200,000 groups, one call froze the node).
local function drop_peer(S, node)
  S.peers:remove(node)
  local st = S.ix:sync_begin(node)
  if st then apply_sync(S, st) end
end

-- A chunk of a peer's sync: its items are noted (the index does not change
-- before the last chunk), and the last one applies the whole sync.
function handlers.sync(S, m)
  local peer, items, last = m[2], m[3], m[4]
  local node = remote_node(peer)
  if not node or type(items) ~= "table" then return end
  if S.peers.pids[node] ~= peer then S.peers:add(node, peer) end
  local st = S.peers:receiving(node, sync_begin, S.ix)
  S.ix:sync_chunk(st, items)
  if last then
    S.peers:received(node)
    apply_sync(S, st)
  end
end

-- Changes of a peer's members, in the order it made them. Each change of
-- the index and its notifications are one step for the other processes (a
-- critical section): a process taking a monitor meanwhile would otherwise
-- find the change in its snapshot and be notified of it too (a join twice,
-- or a leave of a member it never had).
function handlers.ops(S, m)
  local peer, ops = m[2], m[3]
  local node = remote_node(peer)
  if not node or S.peers.pids[node] ~= peer or type(ops) ~= "table" then return end
  local ix = S.ix
  for i = 1, #ops do
    local op = ops[i]
    local kind = type(op) == "table" and op[1]
    if kind == "join" or kind == "leave" then
      critical_enter()
      local key, gval, pids = ix[kind](ix, op[2], op[3], node)
      if pids then
        if type(pids) ~= "table" then pids = {pids} end
        notify(S, kind, gval, key, pids)
      end
      critical_leave()
    elseif kind == "exit" and type(op[2]) == "table" then
      local pids = op[2]
      for j = 1, #pids do
        local pid = pids[j]
        if is_pid(pid) and node_of(pid) == node then
          critical_enter()
          notify_events(S, ix:remove_pid(pid))
          critical_leave()
        end
      end
    end
  end
end

function handlers.flush(S)
  flush(S)
end

function handlers.nodeup(S, m)
  local node = other_node(m[2])
  if node then S.peers:discover(node, S.pid) end
end

function handlers.nodedown(S, m)
  local node = other_node(m[2])
  if node then drop_peer(S, node) end
end

-- The DOWN of a monitor: on a local member, a watcher, or a peer's scope process
-- (a pid may be both a member and a watcher, each with its own ref).
handlers.DOWN = function(S, m)
  local ref, pid = m[2], m[3]
  if not is_pid(pid) then return end
  if S.member_ref[pid] == ref then
    S.member_ref[pid] = nil
    critical_enter() -- (as in join; the flush, which may wait, after it)
    local events = S.ix:remove_pid(pid)
    local peers = events and next(S.peers.pids)
    if peers then replicate(S, {"exit", {pid}}) end
    notify_events(S, events)
    critical_leave()
    if peers then flush(S) end
  elseif S.watcher_ref[pid] == ref then
    S.watcher_ref[pid] = nil
    local ws = S.watchers[pid]
    S.watchers[pid] = nil
    if ws then
      for r in next, ws do drop_monitor(S, r) end
    end
  else
    local node = S.peers:down(ref, pid)
    if node then drop_peer(S, node) end
  end
end

function handlers.watch(S, m)
  local pid = m[2]
  if is_pid(pid) and node_of(pid) == node_name() then watch_member(S, pid) end
end

function handlers.unwatch(S, m)
  local pid = m[2]
  local ref = is_pid(pid) and S.member_ref[pid]
  if ref and not S.ix:has_pid(pid) then
    pogo.demonitor(ref)
    S.member_ref[pid] = nil
  end
end

function handlers.watcher(S, m)
  if is_pid(m[2]) then watch_watcher(S, m[2]) end
end

function handlers.unwatcher(S, m)
  local w = m[2]
  local ref = is_pid(w) and S.watcher_ref[w]
  if ref and not S.watchers[w] then
    pogo.demonitor(ref)
    S.watcher_ref[w] = nil
  end
end

-- Subscribe to nodeup/nodedown and discover the connected nodes' scopes
-- (before pogo.start the subscription waits for the node to start, and its
-- nodeups bring the discovery).
local function subscribe(S)
  S.subscribed = true
  S.peers:discover_all(S.pid)
end

-- Body of the scope process (exposed for pg.start only).
function M._scope_loop(S)
  -- A restarted scope process holds none of the old monitors: start afresh,
  -- keeping the index and the pg monitors.
  S.peers:reset()
  S.member_ref, S.watcher_ref = {}, {}
  S.outbox, S.flush_pending = {}, false
  S.ix:walk_reset() -- (the old process's syncs being sent)
  -- Forget other nodes' members: no peer is known any more, and each peer
  -- that still runs the scope sends them again in its sync.
  local others = S.ix:remote_nodes()
  for i = 1, #others do apply_sync(S, S.ix:sync_begin(others[i])) end
  local pids = S.ix:local_pids()
  for i = 1, #pids do watch_member(S, pids[i]) end
  for w in next, S.watchers do watch_watcher(S, w) end
  S.subscribed = false
  subscribe(S)
  local receive = core.receive
  while true do
    local m = receive()
    if not S.subscribed then subscribe(S) end
    local h = type(m) == "table" and handlers[rawget(m, 1)]
    if h then h(S, m) end
  end
end

return M
