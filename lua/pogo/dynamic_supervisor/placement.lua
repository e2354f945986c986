--- Placement: which node runs each child.
--
-- **The ring.** Each supervisor joins the pg group `{"sup", weight, nodes}`,
-- which publishes its `weight` option and its `nodes` option (the sorted
-- list, or false), so every node knows every supervisor's settings. The ring
-- holds each supervisor's node, with its weight, that every published
-- `nodes` list names (a supervisor without the option restricts nothing):
-- with the same list on every node, the ring is that list; the others of the
-- scope may request and look but run nothing. Every node builds the ring from
-- the same groups, so all compute the same owners.
--
-- **Owners.** A child's owner is the node its spec pins it to (`node =` in
-- the spec, or `start_child(sup, spec, node)`), while that node is in the
-- ring; else the node the ring assigns to its id. The pin is part of the
-- replicated spec, so this too is the same on every node. A running child is
-- in the pg group `{"child", id}`, so every node sees where each child runs.
-- When the ring changes, the ids whose owner changed are reconciled.
--
-- **Moves.** With `redistribute = "active"` a running child moves to its
-- new owner (the old node stops it, the owner starts it on the pg leave);
-- with `"on_failure"` it stays until its node goes, or until `rebalance`
-- asks every node to move its children now. A pinned child goes back to its
-- node when that node's supervisor returns, in both modes. A temporary child
-- never moves: starting it elsewhere would run it again. A moving child hands
-- its state to its next instance (handoff.lua): the old node stops it with
-- the new owner's supervisor as the destination of its data.
--
-- After a netsplit heals, a child may run on two nodes: the owner's copy
-- stays, else the copy of the lowest node name.
-- @module pogo.dynamic_supervisor.placement
local pogo = require "pogo"
local pg = require "pogo.pg"
local state = require "pogo.dynamic_supervisor.state"
local requests = require "pogo.dynamic_supervisor.requests"
local join_wait = require "pogo.dynamic_supervisor.join_wait"
local events = require "pogo.dynamic_supervisor.events"

local encode = pogo.core.encode
local mbox_len, mbox_peek = pogo.core.mbox_len, pogo.core.mbox_peek
local node_of = pogo.node_of

local M = {}

--- The largest `weight`: a node's share of the ring is `vnodes * weight`
-- points, built on every node (a weight of 4,000 took 1.25 s, and the nodes
-- missed their heartbeats).
M.MAX_WEIGHT = 100

--- Whether `w` is a weight this supervisor accepts (from its options, or
-- published by another node's supervisor: an invalid one counts as 1).
-- @param w
-- @treturn boolean
function M.valid_weight(w)
  return type(w) == "number" and w > 0 and w <= M.MAX_WEIGHT
end

--- The pg group in which this supervisor publishes its ring settings.
-- @tparam table st
-- @treturn table `{"sup", weight, nodes | false}`
function M.sup_group(st)
  return { "sup", st.weight, st.allow }
end

--- The owner of record `c`: its pin, if that node is in the ring, else the
-- ring's node for its id (nil: empty ring). Noted on the record.
-- @tparam table st
-- @tparam table c
-- @tparam[opt] table req the request that counts, if known (else looked up)
-- @treturn ?string
function M.owner(st, c, req)
  req = req or requests.active(st, c)
  local pin = req and req.spec.node
  local owner
  if pin and st.ring_nodes[pin] then owner = pin else owner = st.ring:key_to_node(c.id) end
  state.note_owner(st, c, owner)
  return owner
end

--- The owner of record `c` among the nodes of the ring but `excluded`
-- (node -> true), or nil: where a stopping node passes the handoff data of
-- a child on, when the nodes it would go to are stopping too. Not noted.
-- @tparam table st
-- @tparam table c
-- @tparam table excluded
-- @treturn ?string
function M.owner_among(st, c, excluded)
  local req = requests.active(st, c)
  local pin = req and req.spec.node
  if pin and st.ring_nodes[pin] and not excluded[pin] then return pin end
  local n = #st.ring
  for _, node in ipairs(n > 0 and st.ring:key_to_nodes(c.id, n) or {}) do
    if not excluded[node] then return node end
  end
  return nil
end

--- The owner of child `id` (see `owner`), for any id, known or not.
-- @tparam table st
-- @param id
-- @treturn ?string
function M.owner_of(st, id)
  local c = st.children[encode(id)]
  if c then return M.owner(st, c) end
  return (st.ring:key_to_node(id))
end

--- Whether a child of request `req` running here should go to `owner` now.
-- @tparam table st
-- @tparam table req
-- @tparam string owner
-- @treturn boolean
function M.moves(st, req, owner)
  local spec = req.spec
  if spec.restart == "temporary" then return false end
  return st.redistribute == "active" or spec.node == owner
end

--- The ring changed: reconcile the ids whose owner is not the one they had,
-- and the children this node runs.
--
-- When nodes only left (`gone`, and this node is still in the ring), an id
-- changes owner only if its owner was one of them: removing a node's points
-- moves only the keys on them, and a pin elsewhere still holds. Every
-- record with a request had its owner noted (`state.note_owner`) by the last
-- pass over all of them or by its own reconcile (one not reconciled yet is
-- marked already), so `st.owned` names those records: at 50 nodes the walk
-- over every record and its ring lookup were most of what a node spent on a
-- failover.
-- @tparam table st
-- @tparam[opt] table gone node -> true: the only change was that these left
function M.owners_changed(st, gone)
  if gone and not gone[st.me] then
    local moved = {}
    for node in pairs(gone) do
      for c in pairs(st.owned[node] or {}) do moved[#moved + 1] = c end
      st.owned[node] = nil
    end
    for i = 1, #moved do
      local c = moved[i]
      c.owner = nil -- its set went with the node
      if c.requests ~= nil then M.owner(st, c) end
      state.mark(st, c)
    end
    for _, c in pairs(st.by_pid) do state.mark(st, c) end
    return
  end
  for _, c in pairs(st.children) do
    if c.requests ~= nil then
      local before = c.owner
      if M.owner(st, c) ~= before then state.mark(st, c) end
    end
    if c.proc then state.mark(st, c) end
  end
end

-- The set of a published `nodes` list, or false.
local function allow_set(list)
  if type(list) ~= "table" then return false end
  local set = {}
  for _, node in ipairs(list) do set[node] = true end
  return set
end

-- Is `node` named by every published list (`allows`, the lists)?
local function eligible(allows, node)
  for i = 1, #allows do
    if not allows[i][node] then return false end
  end
  return true
end

--- Rebuild the ring from `sups`: tell the listeners about the nodes that
-- came and went, and reconcile the ids whose owner changed.
-- @tparam table st
function M.update_ring(st)
  local nodes, allows = {}, {}
  for _, s in pairs(st.sups) do
    if s.allow then allows[#allows + 1] = s.allow end
  end
  for node, s in pairs(st.sups) do
    if eligible(allows, node) then nodes[node] = s end
  end
  local gone, added = nil, false
  for node in pairs(st.ring_nodes) do
    if not nodes[node] then
      gone = gone or {}
      gone[node] = true
      st.ring:remove(node)
      if node ~= st.me then events.notify(st, "node_down", node, st.down_reason[node] or "left") end
    end
  end
  for node, s in pairs(nodes) do
    local had = st.ring_nodes[node]
    if not had or had.weight ~= s.weight then
      added = true
      st.ring:add(node, s.weight)
      if not had and node ~= st.me then events.notify(st, "node_up", node) end
    end
  end
  st.ring_nodes = nodes
  st.ring_stale = false
  if added then
    M.owners_changed(st)
  elseif gone then
    M.owners_changed(st, gone)
  end
end

-- A supervisor `pid` joined a {"sup", weight, nodes} group.
local function sup_joined(st, group, pid)
  local node = node_of(pid)
  local known = st.sups[node]
  st.sups[node] = { pid = pid, weight = M.valid_weight(group[2]) and group[2] or 1, allow = allow_set(group[3]) }
  if not known or known.pid ~= pid then join_wait.joined(st, node, pid) end
end

-- Is the next message in the supervisor's mailbox a change of a
-- `{"sup", ...}` group?
local function sup_change_next(st)
  if mbox_len() == 0 then return false end
  local m = mbox_peek(1)
  return type(m) == "table" and m[1] == "pg" and m[2] == st.pg_ref and type(m[4]) == "table" and m[4][1] == "sup"
end

--- A `{"sup", weight, nodes}` group was joined or left (a pg notification).
-- When the next message is another such change (the links of a joining
-- node come up together, each bringing a supervisor), the ring is rebuilt
-- once, at the last of them: the ring places the nodes added since it last
-- looked up a key in one merge (csrc/ring.c), and the records are looked
-- at once. Nothing in between reads the ring: the next message is that change.
-- @tparam table st
-- @tparam string kind "join" or "leave"
-- @tparam table group
-- @tparam {pid,...} pids
function M.on_sup(st, kind, group, pids)
  for _, pid in ipairs(pids) do
    local node = node_of(pid)
    if kind == "join" then
      sup_joined(st, group, pid)
    elseif st.sups[node] and st.sups[node].pid == pid then
      st.sups[node] = nil
      join_wait.clear(st, node) -- its supervisor went: nothing to wait for there
    end
  end
  if sup_change_next(st) then
    st.ring_stale = true
  else
    M.update_ring(st)
  end
end

--- Read every supervisor's group again (at start, and with each rescan).
-- @tparam table st
-- @tparam {table,...} groups the scope's `{"sup", ...}` groups
function M.rescan(st, groups)
  local found = {} -- node -> {group, pid}: the pid we know if it is still there, else the last seen
  for _, group in ipairs(groups) do
    for _, pid in ipairs(pg.get_members(st.scope, group)) do
      local node = node_of(pid)
      local known = st.sups[node]
      if not found[node] or (known and known.pid == pid) then found[node] = { group, pid } end
    end
  end
  for node in pairs(st.sups) do
    if not found[node] then
      st.sups[node] = nil
      join_wait.clear(st, node)
    end
  end
  for _, f in pairs(found) do sup_joined(st, f[1], f[2]) end
  M.update_ring(st)
end

--- The lowest other node that runs record `c`'s child, or nil.
-- @tparam table st
-- @tparam table c
-- @treturn ?string
function M.running_elsewhere(st, c)
  local elsewhere
  for _, pid in ipairs(pg.get_members(st.scope, { "child", c.id })) do
    local node = node_of(pid)
    if node ~= st.me and (elsewhere == nil or node < elsewhere) then elsewhere = node end
  end
  return elsewhere
end

--- A child runs here and on `elsewhere` (a healed netsplit): whether this
-- node's copy is the one that stays (the owner's, else the lowest node's).
-- @tparam table st
-- @tparam string owner
-- @tparam string elsewhere
-- @treturn boolean
function M.keeps_copy(st, owner, elsewhere)
  return owner == st.me or (owner ~= elsewhere and st.me < elsewhere)
end

--- A child group was joined or left (a pg notification): note where the
-- child started, and that the request that counts has run; only the node
-- running it and its owner act on it.
-- @tparam table st
-- @tparam string kind "join" or "leave"
-- @tparam table group {"child", id}
-- @tparam {pid,...} pids
function M.on_child(st, kind, group, pids)
  local id = group[2]
  local key = encode(id)
  local c = st.children[key]
  if kind == "join" then
    c = c or state.child(st, id, key)
    for _, pid in ipairs(pids or {}) do c.last_node = node_of(pid) end
  end
  if not c then return end
  state.touch(st, c)
  local req = requests.active(st, c)
  if req then c.ran_uid = req.uid end
  -- a copy runs: not lost (a netsplit healed), whatever this node noted
  if kind == "join" and pids and #pids > 0 then requests.found(st, c) end
  -- (and a record with no request left is released once no copy runs)
  if c.proc or not req or M.owner(st, c, req) == st.me then state.mark(st, c) end
end

--- The child groups that already had members when the supervisor began to
-- monitor the scope (the snapshot `pg.monitor_scope` returns, `{group, pids}`
-- entries): each is taken as the join it would have been notified as, once
-- the requests are known (after the first rescan). A restarted supervisor
-- learns so where every child runs (`last_node`, for the global view) and
-- which requests have run (`ran_uid`: a temporary child never runs again).
-- @tparam table st
-- @tparam {table,...} snapshot
function M.existing_children(st, snapshot)
  for _, entry in ipairs(snapshot or {}) do
    local group, pids = entry[1], entry[2]
    if type(group) == "table" and group[1] == "child" and #pids > 0 then M.on_child(st, "join", group, pids) end
  end
end

--- Repair record `c` when it has no `last_node` though its child group has
-- members (a join this supervisor never saw): as if that join came now.
-- Called by the repair pass's sweep.
-- @tparam table st
-- @tparam table c
function M.repair_running(st, c)
  if c.last_node then return end
  local group = { "child", c.id }
  local pids = pg.get_members(st.scope, group)
  if #pids > 0 then M.on_child(st, "join", group, pids) end
end

--- The pid running child `id` anywhere (the owner's copy if two run), or nil.
-- @tparam table st
-- @param id
-- @return pid or nil
function M.whereis(st, id)
  local members = pg.get_members(st.scope, { "child", id })
  if #members <= 1 then return members[1] end
  local owner = M.owner_of(st, id)
  for _, pid in ipairs(members) do
    if node_of(pid) == owner then return pid end
  end
  return members[1]
end

--- `rebalance` reached this node: stop each child running here whose owner
-- is another node (its owner starts it on the pg leave), whatever
-- `redistribute` says; temporary children stay.
-- @tparam table st
-- @tparam table children the children module (stop)
function M.rebalance(st, children)
  for _, c in pairs(st.children) do
    local proc = c.proc
    if proc and proc.status == "running" and proc.request.spec.restart ~= "temporary" then
      local owner = M.owner(st, c)
      if owner and owner ~= st.me then
        local s = st.sups[owner]
        children.stop(st, c, s and s.pid) -- its state goes with it (handoff.lua)
        st.unsettled[c] = true
      end
    end
  end
end

--- Ask every supervisor of the scope (this one included) to `rebalance`.
-- @tparam table st
function M.request_rebalance(st)
  for _, s in pairs(st.sups) do pogo.send(s.pid, { "$dsup_rebalance" }) end
end

return M
