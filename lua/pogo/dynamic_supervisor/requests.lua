--- Requests, termination and lost markers: how child specs live in pg, and the keeper
-- that holds this node's.
--
-- `start_child` on any node is a request: a pg group `{"spec", uid, spec}`
-- (the `uid`, `node/creation/seq`, names it), joined by the keeper of the node
-- that made it. Every node of the scope learns it from pg. When no node holds
-- it any more (that node died, or its supervisor was stopped), the child's
-- owner takes it over, so a spec survives as long as any node of the scope;
-- and if it is still held by no node a while later (the owner did not know
-- it: its supervisor restarted meanwhile, and what no node holds is not in
-- pg), any node that knows it takes it over.
--
-- `terminate_child` marks every request for the id with a group
-- `{"term", uid}`, held by the keeper of the node that asked. A request with
-- a marker is terminated: every node stops its child, holders let the request
-- go, and once no node holds it the marker's node lets the marker go too. A
-- terminated uid is remembered `tombstone_ms` after its marker went (a
-- tombstone), so that a node coming back from a partition with the request
-- is told again; when no node of the scope went down in that time before,
-- no node can come back with it, and the tombstone goes at the next repair
-- pass once this node has forgotten the request (`expire_markers`).
--
-- A temporary child whose node went is lost, not terminated: the node that
-- would start it (its owner) marks its request with a group `{"lost", uid}`,
-- held by its keeper, instead of a termination marker. A lost request is
-- started by no node that knows the marker (nor, as ever, by one that saw
-- its child run), and the views leave it out while no copy runs; but it is
-- no instruction to stop a copy. A netsplit looks the same as a node's
-- death from the other side, and the child may still run there: after the
-- heal that copy is seen in pg again, the node that marked it withdraws the
-- marker (`found`), and the child runs on, once. The children of a node that
-- really died never show up again: a node that holds a lost marker
-- `tombstone_ms` long without seeing a copy turns it into a termination
-- (`expire_markers`), which then goes as any other. What a node learned of
-- a lost marker it keeps (a note in `st.lost`) while it knows the request:
-- the child has run, so it never starts again.
--
-- Several requests for one id (a conflict, a re-request of a terminated id):
-- the lowest uid not terminated counts, on every node alike; the others are
-- let go like terminated ones, and the node whose request lost a conflict
-- logs it. A node refuses a second spec for an id it knows (`request`);
-- two nodes that request different specs before either has heard of the
-- other's both answer true, and the lower uid wins everywhere.
--
-- The keeper is an idle process of this node and scope. It runs no user
-- code, so it outlives a crash of the supervisor process, whose restart
-- adopts it (`rescan`): the requests survive as long as the node does. A
-- deliberate stop of the supervisor kills it (`give_up`). What the node's
-- supervisor must remember across its own restarts lives with the keeper
-- (`memory`): the temporary children it started, which must not start again
-- once they have run.
-- @module pogo.dynamic_supervisor.requests
local pogo = require "pogo"
local pg = require "pogo.pg"
local state = require "pogo.dynamic_supervisor.state"
local events = require "pogo.dynamic_supervisor.events"
local child_spec = require "pogo.child_spec"

local core = pogo.core
local encode = core.encode

local M = {}

local now = pogo.now

local function held_by_any(st, group) return #pg.get_members(st.scope, group) > 0 end

local function keeper_holds(st, group)
  for _, pid in ipairs(pg.get_local_members(st.scope, group)) do
    if pid == st.keeper then return true end
  end
  return false
end

-- ---- a record's requests ----
--
-- `c.requests` is nil (none), the request itself (one: the usual case), or
-- uid -> request (several: a conflict, or a terminated one being let go). A
-- table of one entry per child id on every node cost 80 bytes each. A request
-- has a `uid` field; the uids that key the map are never "uid".

--- The requests of record `c`: `for uid, req in requests.each(c)`.
-- @tparam table c
-- @return an iterator
function M.each(c)
  local r = c.requests
  if r == nil then return next, {} end
  if r.uid ~= nil then
    return function(_, uid)
      if uid == nil then return r.uid, r end
    end
  end
  return next, r
end

-- The only request of record `c`, or nil (none, or several).
local function only(c)
  local r = c.requests
  if r ~= nil and r.uid ~= nil then return r end
  return nil
end

local function add_request(c, req)
  local r = c.requests
  if r == nil then
    c.requests = req
  elseif r.uid ~= nil then
    c.requests = { [r.uid] = r, [req.uid] = req }
  else
    r[req.uid] = req
  end
end

local function remove_request(c, req)
  local r = c.requests
  if r == req then
    c.requests = nil
  elseif r ~= nil and r.uid == nil and r[req.uid] == req then
    r[req.uid] = nil
    local uid, one = next(r)
    if uid ~= nil and next(r, uid) == nil then c.requests = one end
  end
end

-- ---- the keeper ----

-- requests made on this node: the last part of their uids (never reused by a
-- restarted supervisor, whose keeper may still hold the earlier ones)
local seq = 0

-- scope -> what this node's supervisor of the scope remembers across its
-- restarts (see `memory`); per node, as every Lua state is a node
local memories = {}

--- What the supervisor of `scope` on this node remembers across its own
-- restarts, as the keeper outlives them: `ran`, uid -> true for the
-- temporary children started here (a restarted supervisor must not start
-- them again, though their exit with the old supervisor went unseen).
-- @tparam string scope
-- @treturn table
function M.memory(scope)
  local m = memories[scope]
  if not m then
    m = { ran = {} }
    memories[scope] = m
  end
  return m
end

--- The name the keeper of `scope` is registered under on its node.
-- @tparam string scope
-- @treturn string
function M.keeper_name(scope) return "$dsup_keeper:" .. scope end

--- Take this node's keeper (a restarted supervisor finds the old one), or
-- start one, and monitor it.
-- @tparam table st
function M.adopt_keeper(st)
  local name = M.keeper_name(st.scope)
  local keeper = pogo.whereis(name)
  if not keeper then
    keeper = pogo.spawn(function()
      while pogo.receive() ~= "stop" do end
    end)
    pogo.register(name, keeper)
  end
  st.keeper = keeper
  st.keeper_ref = pogo.monitor(keeper)
  st.uid_prefix = string.format("%s/%d/", st.me, core.creation())
  st.memory = M.memory(st.scope)
end

--- The keeper died (killed by hand): a new one holds what the old one held.
-- @tparam table st
function M.keeper_down(st)
  M.adopt_keeper(st)
  for _, req in pairs(st.requests) do
    if req.held then pg.join(st.scope, req.group, st.keeper) end
  end
  for _, m in pairs(st.markers) do
    if m.held then pg.join(st.scope, m.group, st.keeper) end
  end
  for _, l in pairs(st.lost) do
    if l.held then pg.join(st.scope, l.group, st.keeper) end
  end
end

--- A deliberate stop gives this node's requests and markers up: the keeper
-- goes, and the owners take the requests over.
-- @tparam table st
function M.give_up(st)
  pogo.demonitor(st.keeper_ref)
  pogo.exit(st.keeper, "kill")
  memories[st.scope] = nil
end

-- ---- requests ----

--- Learn the request of spec group `group` ({"spec", uid, spec}).
-- @tparam table st
-- @tparam table group
-- @tparam[opt] string key the canonical encoding of its child id, if known
-- @treturn table the request
-- @treturn boolean whether it was new
function M.learn(st, group, key)
  local uid = group[2]
  local req = st.requests[uid]
  if req then return req, false end
  -- the spec in its replicated form (child_spec.compact): its defaults read back
  local spec = child_spec.with_defaults(group[3])
  local c = state.child(st, spec.id, key)
  -- every node keeps one per request in the cluster: four fields fill the
  -- table's four slots (a fifth would double them), so `held`, which only
  -- the holder sets, is not among them
  req = {
    uid = uid,      -- names the request: "node/creation/seq" of the node that made it
    spec = spec,    -- the child spec
    group = group,  -- its pg group {"spec", uid, spec}
    child = c,      -- the record of its child id
    -- held = true: this node's keeper holds it (nil: it does not)
  }
  st.requests[uid] = req
  add_request(c, req)
  state.touch(st, c)
  return req, true
end

--- Forget a request that no node holds any more. Its marker, if this node
-- holds it, has done its work and goes too.
-- @tparam table st
-- @tparam table req
function M.forget(st, req)
  if st.requests[req.uid] ~= req then return end
  st.requests[req.uid] = nil
  st.unheld[req] = nil
  remove_request(req.child, req)
  state.touch(st, req.child)
  st.memory.ran[req.uid] = nil
  local m = st.markers[req.uid]
  if m and m.held then
    pg.leave(st.scope, m.group, st.keeper)
    m.held = false
  end
  local l = st.lost[req.uid]
  if l then
    if l.held then pg.leave(st.scope, l.group, st.keeper) end
    st.lost[req.uid] = nil
  end
end

--- Whether request `uid` is terminated (it has a marker, or had one lately).
-- @tparam table st
-- @tparam string uid
-- @treturn boolean
function M.terminated(st, uid)
  return st.markers[uid] ~= nil
end

--- The request for record `c` that counts: the lowest uid not terminated.
-- @tparam table st
-- @tparam table c
-- @treturn ?table the request, or nil when every one is terminated
function M.active(st, c)
  local one = only(c)
  if one then
    if st.markers[one.uid] then return nil end
    return one
  end
  local best
  for uid, req in M.each(c) do
    if not st.markers[uid] and (best == nil or uid < best.uid) then best = req end
  end
  return best
end

--- Request a child (`start_child`): a new spec group, held by the keeper,
-- unless the id is already requested (a request whose temporary child was
-- lost with its node, and runs nowhere this node sees, is terminated and
-- requested anew, as OTP's start_child after a temporary child has gone).
-- @tparam table st
-- @tparam table spec a normalised child spec
-- @return true, or nil and "already started: <id>" (another spec for the id) or
--   "invalid child spec: <why>" (it cannot be encoded)
function M.request(st, spec)
  local ok, key = pcall(encode, spec.id)
  if not ok then return nil, M.invalid(spec) end
  spec = child_spec.compact(spec) -- as every node will hold it
  local c = st.children[key]
  local active = c and M.active(st, c)
  if active and M.hidden(st, c, active) then
    -- its temporary child was lost with its node and runs nowhere we see:
    -- it is over here, as an exited one would be; a copy beyond a netsplit
    -- ends at the heal, and this request runs instead
    M.mark_terminated(st, active.uid)
    state.mark(st, c)
    active = nil
  end
  if active then
    if encode(active.spec) == encode(spec) then return true end
    return nil, "already started: " .. events.describe(spec.id)
  end
  seq = seq + 1
  local group = { "spec", st.uid_prefix .. seq, spec }
  -- pg encodes the group: a spec that cannot be encoded is refused here, unreplicated
  if not pcall(pg.join, st.scope, group, st.keeper) then return nil, M.invalid(spec) end
  local req = M.learn(st, group, key)
  req.held = true
  state.mark(st, req.child)
  return true
end

--- Why `spec` cannot be replicated: `"invalid child spec: <why>"`.
-- @tparam table spec
-- @treturn string
function M.invalid(spec)
  local ok, e = pcall(encode, spec)
  return "invalid child spec: " .. (ok and "it cannot be encoded" or tostring(e):gsub("^value", "spec"))
end

-- The note of uid in `set` (st.markers: its termination marker, group
-- {"term", uid}; st.lost: its lost mark, {"lost", uid}), created (not
-- present, not held) on first sight.
local function note(st, set, tag, uid)
  local m = set[uid]
  if not m then
    m = {
      group = { tag, uid },    -- its pg group
      present = false,         -- whether some node holds the group
      held = false,            -- whether this node's keeper holds it
      since = now(),           -- marker: when it was last seen joined, or when it went (the
                               -- tombstone's age); lost mark: when this node's keeper joined it
    }
    set[uid] = m
    local req = st.requests[uid]
    if req then state.touch(st, req.child) end
  end
  return m
end

local function marker(st, uid) return note(st, st.markers, "term", uid) end

--- Mark request `uid` terminated: this node's keeper holds its marker until
-- no node holds the request.
-- @tparam table st
-- @tparam string uid
function M.mark_terminated(st, uid)
  local m = marker(st, uid)
  m.present, m.since = true, now()
  if not m.held then
    pg.join(st.scope, m.group, st.keeper)
    m.held = true
  end
end

-- ---- lost temporary children ----

local function lost_note(st, uid) return note(st, st.lost, "lost", uid) end

--- Mark request `uid` lost: its temporary child ran on a node that went,
-- and runs nowhere this node sees. No node that knows the marker starts
-- it; a copy still running (beyond a netsplit) is not stopped, and the
-- marker is withdrawn once that copy is seen (`found`).
-- @tparam table st
-- @tparam string uid
function M.mark_lost(st, uid)
  local l = lost_note(st, uid)
  l.present = true
  if not l.held then
    pg.join(st.scope, l.group, st.keeper)
    l.held, l.since = true, now()
  end
end

--- Whether this node knows request `uid` as lost (a lost marker, now or
-- before): its temporary child has run, and is not started again.
-- @tparam table st
-- @tparam string uid
-- @treturn boolean
function M.lost(st, uid)
  return st.lost[uid] ~= nil
end

--- A copy of record `c`'s child runs (its child group was joined): the lost
-- markers this node holds for its requests are withdrawn, as that copy is
-- not lost (a netsplit healed). The note stays: the child has run.
-- @tparam table st
-- @tparam table c
function M.found(st, c)
  for uid in M.each(c) do
    local l = st.lost[uid]
    if l and l.held then
      pg.leave(st.scope, l.group, st.keeper)
      l.held = false
    end
  end
end

--- A lost marker group was joined or left (a pg notification).
-- @tparam table st
-- @tparam string kind "join" or "leave"
-- @tparam table group {"lost", uid}
function M.on_lost(st, kind, group)
  local uid = group[2]
  if kind == "join" then
    lost_note(st, uid).present = true
  elseif not held_by_any(st, group) then
    local l = st.lost[uid]
    if l then l.present = false end
  end
  local req = st.requests[uid]
  if req then
    state.touch(st, req.child)
    state.mark(st, req.child)
  end
end

--- Whether the views leave record `c`'s request `req` out: it is lost and
-- no copy runs.
-- @tparam table st
-- @tparam table c
-- @tparam table req
-- @treturn boolean
function M.hidden(st, c, req)
  return st.lost[req.uid] ~= nil and #pg.get_members(st.scope, { "child", c.id }) == 0
end

--- Terminate every request for `id`, cluster-wide (`terminate_child`).
-- @tparam table st
-- @param id
-- @treturn boolean whether a request was found
function M.terminate(st, id)
  local c = st.children[encode(id)]
  if not c then return false end
  local found = false
  for uid in M.each(c) do
    if not st.markers[uid] then
      found = true
      M.mark_terminated(st, uid)
    end
  end
  state.mark(st, c)
  return found
end

--- Reconcile step: the request of record `c` that counts; the others (that
-- lost to it, or are terminated) are let go by this node's keeper, and
-- forgotten once no node holds them.
-- @tparam table st
-- @tparam table c
-- @treturn ?table the request that counts, or nil
function M.settle(st, c)
  if c.requests == nil then return nil end
  local one = only(c)
  if one and not st.markers[one.uid] then return one end -- one live request
  local active = M.active(st, c)
  local all = {} -- forget() below changes c.requests
  for _, req in M.each(c) do all[#all + 1] = req end
  for _, req in ipairs(all) do
    if req ~= active then
      if req.held then
        pg.leave(st.scope, req.group, st.keeper)
        req.held = false
        if active and not st.markers[req.uid] and encode(req.spec) ~= encode(active.spec) then
          events.log(st, "warning", "start_child %s: the spec requested here lost to another one, "
            .. "requested at the same time on %s", events.describe(req.spec.id), tostring(active.uid:match("^[^/]*")))
        end
      end
      if not held_by_any(st, req.group) then M.forget(st, req) end
    end
  end
  return active
end

-- How long a request may stay held by no node before any node that knows
-- it takes it over, not only its child's owner: the owner may not know it
-- (its supervisor restarted meanwhile, and what no node holds is not in pg).
local function unheld_grace(st)
  return 2 * st.settle + 1000
end

-- Request `req` is held by no node since now (if not noted before).
local function note_unheld(st, req)
  if st.unheld[req] then return end
  local t = now()
  st.unheld[req] = t
  local due = t + unheld_grace(st)
  if st.unheld_next == nil or due < st.unheld_next then st.unheld_next = due end
end

--- Reconcile step: a request that no node holds any more (its node died, or
-- its supervisor was stopped) is taken over by its child's owner, or by any
-- node that knows it once it has stayed so for `unheld_grace`.
-- @tparam table st
-- @tparam table req
-- @tparam string owner the ring's node for its child
function M.take_over(st, req, owner)
  if req.held then return end
  if held_by_any(st, req.group) then
    st.unheld[req] = nil
    return
  end
  local since = st.unheld[req]
  if owner == st.me or (since and now() - since >= unheld_grace(st)) then
    pg.join(st.scope, req.group, st.keeper)
    req.held = true
    st.unheld[req] = nil
  else
    note_unheld(st, req)
  end
end

--- The requests held by no node for `unheld_grace` by `t`: their records are
-- reconciled (`take_over`). The next such deadline (nil: none).
-- @tparam table st
-- @tparam number t
-- @treturn ?number
function M.due_unheld(st, t)
  if st.unheld_next == nil or st.unheld_next > t then return st.unheld_next end
  local grace = unheld_grace(st)
  st.unheld_next = state.sweep_due(st.unheld, t, function(since) return since + grace end,
    function(req) state.mark(st, req.child) end)
  return st.unheld_next
end

-- ---- what pg says ----

--- A spec group was joined or left (a pg notification).
-- @tparam table st
-- @tparam string kind "join" or "leave"
-- @tparam table group {"spec", uid, spec}
function M.on_spec(st, kind, group)
  local uid = group[2]
  if kind == "join" then
    local req, new = M.learn(st, group)
    -- a request made here was learned from the group given to pg.join: keep
    -- pg's copy instead (the one every other node holds), not both
    if req.group ~= group and req.group[3] ~= group[3] and type(group[3]) == "table"
        and encode(group[3]) == encode(req.spec) then
      req.group, req.spec = group, child_spec.with_defaults(group[3])
    end
    -- another node joining a request we know changes nothing here
    if new or not req.held then state.mark(st, req.child) end
    -- a node back from a partition may bring a terminated request back
    local m = st.markers[uid]
    if m and not m.held and not m.present then M.mark_terminated(st, uid) end
  else
    -- a request that no node holds any more: forgotten if terminated, else
    -- its owner takes it over (see reconcile)
    local req = st.requests[uid]
    if req and not held_by_any(st, group) then
      state.mark(st, req.child)
      if st.markers[uid] then M.forget(st, req) else note_unheld(st, req) end
    end
  end
end

-- Marker `m` of `uid` went (no node holds it any more): its tombstone's age
-- starts, and it joins the queue that expire_gone looks at.
local function went(st, uid, m)
  local t = now()
  m.present, m.since = false, t
  local q = st.gone
  q.tail = q.tail + 1
  q[q.tail], q[-q.tail] = uid, t
end

--- A marker group was joined or left (a pg notification).
-- @tparam table st
-- @tparam string kind "join" or "leave"
-- @tparam table group {"term", uid}
function M.on_marker(st, kind, group)
  local uid = group[2]
  if kind == "join" then
    local m = marker(st, uid)
    m.present, m.since = true, now()
  elseif not held_by_any(st, group) then
    local m = st.markers[uid]
    if m and m.present then went(st, uid, m) end
  end
  local req = st.requests[uid]
  if req then state.mark(st, req.child) end
end

--- Read every spec and marker group of the scope (at start, and every
-- `sweep_passes` repair passes): learn what notifications may have missed,
-- and forget what no node holds any more.
-- @tparam table st
-- @tparam[opt] function other called with each other table group of the scope
function M.rescan(st, other)
  local seen_specs, seen_markers, seen_lost = {}, {}, {}
  for _, group in ipairs(pg.which_groups(st.scope)) do
    if type(group) == "table" then
      if group[1] == "lost" then
        local l = lost_note(st, group[2])
        l.present = true
        if keeper_holds(st, group) then l.held = true end
        seen_lost[group[2]] = true
      elseif other and group[1] ~= "spec" and group[1] ~= "term" then
        other(group)
      elseif group[1] == "spec" then
        local req, new = M.learn(st, group)
        if new then state.mark(st, req.child) end
        if not req.held and keeper_holds(st, group) then req.held = true end
        seen_specs[req.uid] = true
      elseif group[1] == "term" then
        local m = marker(st, group[2])
        m.present = true
        if keeper_holds(st, group) then m.held = true end
        seen_markers[group[2]] = true
      end
    end
  end
  for uid, req in pairs(st.requests) do
    if not seen_specs[uid] and not req.held then
      -- held by no node: forgotten if terminated or lost to another request,
      -- else taken over (reconcile; nodes that knew it may be all that is left)
      if st.markers[uid] or M.active(st, req.child) ~= req then
        M.forget(st, req)
      else
        note_unheld(st, req)
        state.mark(st, req.child)
      end
    end
  end
  for uid, m in pairs(st.markers) do
    if not seen_markers[uid] then
      if m.present then went(st, uid, m) end
    elseif m.held and not st.requests[uid] then
      -- a marker of a request no node holds (a restarted supervisor adopts
      -- its keeper's markers) has done its work
      pg.leave(st.scope, m.group, st.keeper)
      m.held = false
    end
  end
  for uid, l in pairs(st.lost) do
    if not seen_lost[uid] then
      l.present = false
      -- (a note of a request this node does not know is no use)
      if not st.requests[uid] then st.lost[uid] = nil end
    elseif l.held and not st.requests[uid] then
      pg.leave(st.scope, l.group, st.keeper) -- (a restarted supervisor adopts its keeper's)
      l.held = false
    end
  end
end

-- Whether tombstone `m` has done its work: older than `tombstone_ms`; or
-- its request is forgotten here, it went a repair interval ago (pg changes
-- of other nodes that raced it have come by then), and no node of the scope
-- went down from `tombstone_ms` before it went (so no node away, that could
-- come back with the request, held it then).
local function expired(st, uid, m, t)
  local age = t - m.since
  if age > st.tombstone_ms then return true end
  if st.requests[uid] or age <= st.sync_interval then return false end
  return st.last_down == nil or st.last_down < m.since - st.tombstone_ms
end

--- Forget the tombstones that have done their work (see `expired`): in a
-- cluster where no node went down, terminated requests leave nothing behind.
-- @tparam table st
-- @tparam number t now
function M.expire_markers(st, t)
  for uid, m in pairs(st.markers) do
    if not m.present and not m.held and expired(st, uid, m, t) then
      st.markers[uid] = nil
      local req = st.requests[uid]
      if req then state.touch(st, req.child) end
    end
  end
  -- a lost marker held `tombstone_ms` with no copy seen: its node died (or
  -- stayed away that long); the request is terminated, and goes
  for uid, l in pairs(st.lost) do
    local req = st.requests[uid]
    if l.held and t - l.since > st.tombstone_ms and req and not st.markers[uid]
        and #pg.get_members(st.scope, { "child", req.child.id }) == 0 then
      M.mark_terminated(st, uid)
      state.mark(st, req.child)
    end
  end
end

--- Forget the tombstones of the markers that went a repair interval ago
-- or more, in the order they went, when they have done their work (see
-- `expired`). The supervisor calls it whenever its mailbox is drained, so
-- that under churn a tombstone lasts a repair interval, not up to two
-- (measured at 1,000 terminations a second: 5,000 tombstones, where the
-- repair pass alone left 5,000 to 10,000); it costs the tombstones it looks
-- at, and stops at the first that went less than a repair interval ago.
-- Those not done yet (their request is still known here, or a node went
-- down) are left to the repair pass's `expire_markers`.
-- @tparam table st
-- @tparam number t now
function M.expire_gone(st, t)
  local q = st.gone
  local i, last = q.head, q.tail
  while i <= last do
    local since = q[-i]
    if t - since <= st.sync_interval then break end
    local uid = q[i]
    q[i], q[-i] = nil, nil
    i = i + 1
    local m = st.markers[uid]
    if m and m.since == since and not m.present and not m.held and expired(st, uid, m, t) then
      st.markers[uid] = nil
      local req = st.requests[uid]
      if req then state.touch(st, req.child) end
    end
  end
  if i > last then
    st.gone = { head = 1, tail = 0 } -- a fresh one: an emptied table keeps its slots
  else
    q.head = i
  end
end

--- The spec of every child id requested and not terminated, as this node
-- knows them (normalised copies, the caller's), but those lost that run
-- nowhere (`hidden`).
-- @tparam table st
-- @treturn {table,...}
function M.specs(st)
  local out = {}
  for _, c in pairs(st.children) do
    local req = M.active(st, c)
    if req and not M.hidden(st, c, req) then out[#out + 1] = child_spec.expand(req.spec) end
  end
  return out
end

return M
