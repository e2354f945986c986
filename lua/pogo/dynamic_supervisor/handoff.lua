--- State handoff: a child that moves while both nodes are up takes its state
-- with it (as Swarm's handoff).
--
-- **When.** A running child moves when its owner changes and
-- `redistribute` is "active" (a node joined, or left the ring), on
-- `rebalance`, and when its node stops in order (`pogo.stop`, SIGTERM: the
-- supervisor leaves the ring, then stops its children). A child that stops
-- for any other reason (its spec is gone or lost to another, its node died)
-- hands nothing over. Only a `pogo.server` child whose module defines
-- `handoff` or `resolve_conflict` takes part (the starter learns that as it
-- starts the child: `pogo.server.handing_over`); any other child is stopped
-- as before.
--
-- **How the data travels.** The old node sends the child, instead of the
-- exit signal "shutdown", the system message `{"$handoff", dest, id}` where
-- `dest` is the supervisor of the new owner. The server runs
-- `handoff(state)`, sends `{"$handoff_data", id, data, node, self, ref}` to
-- `dest`, runs `terminate("shutdown", state)`, waits for `dest`'s
-- `{"$handoff_ack", ref}` and exits "shutdown" (see `pogo.server`). The new
-- owner keeps the data on the child's record (`c.handoff`), answers, and
-- gives the data to the child's next start: the starter runs the start
-- function inside `pogo.server.handing_over`, so the server it starts gets
-- `init(arg, data)`.
--
--     old node: supervisor      child                 new owner: supervisor
--     {"$handoff", dest, id} ->
--                               handoff(state)
--                               {"$handoff_data", id, data, node, self, ref} ->  c.handoff = data
--                               terminate      <-  {"$handoff_ack", ref}
--                               exit
--     pg: leave {"child", id} ------------------------------>  start(spec) with data
--
-- **No overlap, and the wait.** The new owner starts a moved child only once
-- no other node runs it: on the pg leave of the old copy, which its node's pg
-- scope sends when the old process has exited, after the answer: the data
-- is in the new owner's mailbox before the leave, even when it came through
-- a third node (below); the supervisor reads its whole mailbox before it
-- acts. The new owner thus waits for the data exactly as long as it waits
-- for the old copy to go, which the old node bounds by the child's
-- `shutdown` time.
--
-- **Failures** (the new instance then starts with `init(arg, nil)`):
--
-- * the old node dies mid-handoff: its pg members are dropped with it, and
--   the child starts on its new owner at once, without data;
-- * the handoff does not finish within the child's `shutdown` time: the old
--   node kills the child and logs it (`timed_out`);
-- * the data cannot be serialized (or `handoff` raises): the old child logs
--   it and sends nil.
--
-- **When the owner changes meanwhile** (a node joins while data travels):
-- a supervisor that gets data for a child it does not run and whose owner
-- is another node, which the data has not gone through, passes it on to
-- that owner and answers the sender only once that owner has answered
-- (`received`), so the old instance still exits only after the data is
-- where the new one starts. Data kept here for a child whose owner changes
-- afterwards goes on to the new owner (`pass_on`, from reconcile), and
-- data kept for a child that starts on a third node goes there (the pg
-- join of that copy; not the join of the copy that sent it, which may reach
-- the supervisor after the data: pg notifications take one more hop,
-- through the node's pg scope process). Data that reaches an instance
-- after it started without it is given to its `resolve_conflict`, as a
-- conflict's data is (`deliver_late`), or dropped with a warning.
--
-- **Conflicts.** After a netsplit heals a child may run on two nodes; the
-- copy that stops (placement.keeps_copy) is sent `{"$handoff", dest, id}`
-- with the supervisor of the copy that stays as `dest`, which finds its child
-- running and passes the data on as `{"$resolve_conflict", data}`: the
-- staying server runs `resolve_conflict(state, data) -> state`.
-- @module pogo.dynamic_supervisor.handoff
local pogo = require "pogo"
local state = require "pogo.dynamic_supervisor.state"
local placement = require "pogo.dynamic_supervisor.placement"
local events = require "pogo.dynamic_supervisor.events"

local encode = pogo.core.encode
local now = pogo.now

local M = {}

-- How long a stopping node waits, at most, for the answers of the owners it
-- passed data on to.
local PASS_MS = 5000

--- The supervisor on `node` that handoff data goes to, or nil (this node,
-- or a node whose supervisor is not known).
-- @tparam table st
-- @tparam ?string node
-- @return pid or nil
function M.dest(st, node)
  if node == nil or node == st.me then return nil end
  local s = st.sups[node]
  return s and s.pid
end

--- Where the child of record `c` goes when this node stops in order (the
-- supervisor has left the ring): its new owner's supervisor, or nil (a
-- temporary child never moves).
-- @tparam table st
-- @tparam table c
-- @return pid or nil
function M.dest_on_stop(st, c)
  local req = c.proc and c.proc.request
  if not req or req.spec.restart == "temporary" then return nil end
  return M.dest(st, placement.owner(st, c, req))
end

--- Whether record `c`'s child hands its state over when stopped towards
-- `dest`: it runs, takes handoff, and is not killed outright.
-- @tparam table proc the record's `proc`
-- @param dest pid or nil
-- @treturn boolean
function M.applies(proc, dest)
  return dest ~= nil and proc.takes == true and proc.request.spec.shutdown ~= "brutal_kill"
end

--- Ask child `pid` of id `id` to hand its state to `dest` and stop.
-- @param pid
-- @param id
-- @param dest
-- @param[opt] via the supervisor of this node when it stops: the child sends
--  its data there if `dest` is gone before it answered (`on_passing` passes
--  it on)
function M.ask(pid, id, dest, via)
  pogo.send(pid, { "$handoff", dest, id, via })
end

--- A child was killed at its shutdown time while it handed over: log it.
-- @tparam table st
-- @param id
-- @param shutdown its spec's shutdown (ms)
function M.timed_out(st, id, shutdown)
  events.log(st, "warning", "child %s was killed while it handed over (its shutdown is %s ms): its next "
    .. "instance starts with nil unless its handoff data was sent before", events.describe(id), tostring(shutdown))
end

--- Tell the instance (or the stopping node) that sent handoff data that it
-- has arrived: the server waits for that before it exits (pogo.server).
-- @param reply_to its pid (nil: nobody waits)
-- @param ref its reference
function M.ack(reply_to, ref)
  if ref ~= nil and pogo.is_pid(reply_to) then pogo.send(reply_to, { "$handoff_ack", ref }) end
end

-- Forget the handoff data record `c` keeps.
local function forget(c)
  c.handoff, c.handoff_from, c.handoff_skip = nil, nil, nil
end

-- Keep handoff data for the child's start here (see `received`); `stopping`:
-- the set of the stopping nodes it went through, never passed on to.
local function keep(st, id, data, from, stopping)
  local ok, key = pcall(encode, id)
  if not ok then return end
  local c = st.children[key]
  if data == nil then
    if c then forget(c) end
    return
  end
  if not c then
    c = state.child(st, id, key)
    state.touch(st, c) -- (in the order the sweep goes through)
  end
  st.coming[key] = nil
  local proc = c.proc
  if proc and proc.status == "running" then
    M.deliver_late(st, c, data)
  elseif not proc or proc.status == "restarting" or proc.status == "stopping"
      or (proc.status == "starting" and not proc.starter) then
    -- (stopping: its instance here handed over to a node that went before it
    -- answered, and sent the data back here; the record keeps it for the next
    -- start, here or at the owner's, once that instance has gone)
    events.log(st, "debug", "handoff data of child %s kept for its start", events.describe(id))
    c.handoff, c.handoff_from = data, from
    c.handoff_skip = stopping and next(stopping) ~= nil and stopping or nil
  elseif proc.status == "starting" then
    events.log(st, "debug", "handoff data of child %s came while it starts here", events.describe(id))
    proc.late, proc.late_from = data, from -- its start began without it: given to it once it runs
  end
  state.mark(st, c)
end

--- Handoff data that came after the child's instance here started without
-- it (its owner changed while the data travelled), or from the copy of a
-- conflict that stopped: the running server gets it as
-- `{"$resolve_conflict", data}`, so its `resolve_conflict(state, data)`
-- merges it; a child without that callback cannot take it (logged).
-- @tparam table st
-- @tparam table c its record (its child runs here)
-- @param data
function M.deliver_late(st, c, data)
  local proc = c.proc
  if proc.takes then
    events.log(st, "debug", "handoff data of child %s came after it started here: to resolve_conflict",
      events.describe(c.id))
    pogo.send(proc.pid, { "$resolve_conflict", data })
  else
    events.log(st, "warning", "handoff data of child %s dropped: it came after the child started here, "
      .. "and the child has no resolve_conflict", events.describe(c.id))
  end
end

-- The nodes in `visited` (the nodes handoff data went through, from its
-- message), as a set, with this node and `from` (the node of the instance
-- that sent it).
local function excluded_set(st, from, visited)
  local excluded = { [st.me] = true }
  if type(from) == "string" then excluded[from] = true end
  if type(visited) == "table" then
    for _, node in ipairs(visited) do
      if type(node) == "string" then excluded[node] = true end
    end
  end
  return excluded
end

-- The most times handoff data is passed on between supervisors: their
-- views of the ring differ while nodes come and go, so a supervisor may
-- pass data to a node that passes it back, until their views agree.
local MAX_HOPS = 8

-- Send handoff data of child `id` on to the supervisor `dest`, noting the
-- nodes of `excluded` as stopping (never to be sent to again), and note
-- that `reply_to` (with `ref`; nil: nobody) waits for the answer (`st.passing`).
local function send_to(st, dest, id, data, from, excluded, hops, reply_to, ref)
  local stopping = {}
  for n in pairs(excluded) do stopping[#stopping + 1] = n end
  table.sort(stopping)
  local mref = pogo.monitor(dest)
  pogo.send(dest, { "$handoff_data", id, data, from, st.pid, mref, stopping, hops })
  local passing = st.passing
  -- (the data is kept until the answer: sent again elsewhere if `dest` goes first)
  passing.refs[mref] = { reply_to, ref, id = id, data = data, from = from, stopping = stopping, hops = hops,
                         node = pogo.node_of(dest) }
  passing.n = passing.n + 1
  passing.until_ms = now() + PASS_MS
end

-- The set of the nodes in `visited` (from a message: the stopping nodes
-- that handoff data went through), without this node.
local function stopping_set(st, visited)
  local set = excluded_set(st, nil, visited)
  set[st.me] = nil
  return set
end

--- `{"$handoff_data", id, data, from, reply_to, ref, visited, hops}` came
-- from a child that moved here (or from a node that passed it on), or from
-- the copy of a conflict that stopped: kept for the child's start, or
-- passed to the copy that runs here; then answered. When the child's owner
-- is another node (the owner changed while the data travelled: a node
-- joined, or went), not one of the stopping nodes it went through
-- (`visited`) nor the node it came from, the data goes on to that owner,
-- and the sender is answered once the owner has answered (`st.passing`):
-- the old instance exits only then, so the owner, which starts the new one
-- on that exit, has the data first.
-- @tparam table st
-- @param id
-- @param data
-- @tparam string from the node of the instance that sent it
-- @param[opt] reply_to who waits for the answer
-- @param[opt] ref the reference of the answer
-- @param[opt] visited the stopping nodes the data went through
-- @param[opt] hops how many times it was passed on
function M.received(st, id, data, from, reply_to, ref, visited, hops)
  local ok, key = pcall(encode, id)
  local c = ok and st.children[key]
  hops = math.type(hops) == "integer" and hops or 0
  local stopping = stopping_set(st, visited)
  if data ~= nil and c and not c.proc and hops < MAX_HOPS then
    local owner = placement.owner(st, c)
    local dest = owner and owner ~= from and not stopping[owner] and M.dest(st, owner)
    if dest then
      events.log(st, "debug", "handoff data of child %s goes on to its owner %s", events.describe(id), owner)
      return send_to(st, dest, id, data, from, stopping, hops + 1, reply_to, ref)
    end
  end
  keep(st, id, data, from, stopping)
  M.ack(reply_to, ref)
end

--- Record `c` holds handoff data and its owner is now `owner`, another node
-- (a node joined after the data came): the data goes on to it, unanswered.
-- @tparam table st
-- @tparam table c
-- @tparam string owner
function M.pass_on(st, c, owner)
  local skip = c.handoff_skip or {}
  local dest = owner ~= c.handoff_from and not skip[owner] and M.dest(st, owner)
  if not dest then return end
  events.log(st, "debug", "handoff data of child %s goes on to its new owner %s", events.describe(c.id), owner)
  send_to(st, dest, c.id, c.handoff, c.handoff_from, skip, 1, nil, nil)
  forget(c)
end

--- The child of record `c` started on `c.last_node` (its pg group was
-- joined): data kept here for it from another node goes there, where its
-- instance takes it late (`deliver_late`). Not the data of the copy that
-- sent it: that copy's own join may come after its data, through pg.
-- @tparam table st
-- @tparam ?table c
function M.started_elsewhere(st, c)
  if c and c.handoff_from and c.last_node ~= st.me and c.last_node ~= c.handoff_from then
    M.pass_on(st, c, c.last_node)
    forget(c) -- (stale here, even when it could not go there)
  end
end

--- An answer to data passed on (`{"$handoff_ack", ref}`): the sender is
-- answered; or the DOWN of its destination (its node stopped, or went,
-- before it answered): the data is handled again as if it had just come,
-- that node now among the stopping ones. Whether `m` was one of those.
-- @tparam table st
-- @tparam table m
-- @treturn boolean
function M.on_answer(st, m)
  local passing = st.passing
  local p = passing.refs[m[2]]
  if not p then return false end
  passing.refs[m[2]] = nil
  passing.n = passing.n - 1
  if m[1] == "$handoff_ack" then
    pogo.demonitor(m[2])
    M.ack(p[1], p[2])
    return true
  end
  local stopping = { p.node }
  for _, n in ipairs(p.stopping) do stopping[#stopping + 1] = n end
  events.log(st, "debug", "handoff data of child %s: %s went before it answered", events.describe(p.id), p.node)
  local again = { "$handoff_data", p.id, p.data, p.from, p[1], p[2], stopping, p.hops }
  if st.stopping then
    M.on_passing(st, again)
  else
    M.received(st, p.id, p.data, p.from, p[1], p[2], stopping, p.hops)
  end
  return true
end

--- The owners that data was passed on to did not answer within PASS_MS:
-- answer the senders anyway.
-- @tparam table st
function M.give_up_passing(st)
  for mref, p in pairs(st.passing.refs) do
    pogo.demonitor(mref)
    events.log(st, "warning", "handoff data of child %s: %s did not answer within %d ms", events.describe(p.id),
      p.node, PASS_MS)
    M.ack(p[1], p[2])
  end
  st.passing.refs, st.passing.n = {}, 0
end

--- When the answers of data passed on are given up (nil: none waited for).
-- @tparam table st
-- @treturn ?number
function M.deadline(st)
  return st.passing.n > 0 and st.passing.until_ms or nil
end

-- ---- a stopping node passes data on ----
--
-- Two nodes that stop at the same instant each hand their children to the
-- other, as far as they know: a node that is stopping does not start what
-- it is handed. It passes the data on to the child's owner among the nodes
-- that are not known to be stopping (not itself, not the node of the
-- instance, not the nodes the data went through), and answers the sender
-- once that owner has answered; the old instance exits only then, so the
-- new one, which starts on that exit, finds the data. Data a stopping node
-- held already for a child it was to start goes on to the new owner in the
-- step in which the node leaves the ring, so it comes before the leave that
-- makes that node the owner. A node that stops may learn too late that the
-- other stops as well: it hands a child to a supervisor that has already
-- gone through its stop. The child then sees its destination go without an
-- answer and sends the data to its own node's supervisor (`ask`'s `via`),
-- which passes it on like data handed to it, leaving out the node that went.

-- Send `data` of child `id` (from the instance on node `from`) on to the
-- owner of record `c` among the nodes that are not this one, `from`, or one
-- of `visited` (the nodes the data went through), `reply_to` waiting for
-- the answer: whether it went (no node left: the data is dropped and logged).
local function send_on(st, c, id, data, from, visited, hops, reply_to, ref)
  local excluded = excluded_set(st, from, visited)
  local node = placement.owner_among(st, c, excluded)
  local dest = node and M.dest(st, node)
  if not dest then
    local gone = {}
    for n in pairs(excluded) do gone[#gone + 1] = n end
    table.sort(gone)
    events.log(st, "warning", "handoff data of child %s dropped: every node it could go to is stopping (%s)",
      events.describe(id), table.concat(gone, ", "))
    return false
  end
  send_to(st, dest, id, data, from, excluded, (math.type(hops) == "integer" and hops or 0) + 1, reply_to, ref)
  return true
end

--- This node has left the ring (it stops): the data it holds for children
-- it was to start, or is starting (their starters end them as the
-- supervisor goes), goes to their new owners.
-- @tparam table st
function M.pass_held(st)
  local coming = {}
  for _, c in pairs(st.children) do
    local proc = c.proc
    local data, from = c.handoff, c.handoff_from
    if proc and proc.status == "starting" and proc.handoff ~= nil then
      data, from = proc.handoff, proc.handoff_from
      proc.handoff, proc.handoff_from = nil, nil
    elseif proc and proc.status == "starting" and proc.late ~= nil then
      data, from = proc.late, proc.late_from
      proc.late, proc.late_from = nil, nil
    elseif proc and proc.pid then
      data = nil -- (it runs: it hands its own state over)
    end
    if data ~= nil then
      local skipped = {}
      for node in pairs(c.handoff_skip or {}) do skipped[#skipped + 1] = node end
      if send_on(st, c, c.id, data, from, skipped, 0, nil, nil) then coming[#coming + 1] = c.id end
    end
    forget(c)
  end
  -- The owner to be may not be the node the data went to (that one may be
  -- stopping too, and pass it on): every supervisor hears now, before this
  -- node's leave of the ring, which children to wait for (`expect`).
  if #coming > 0 then
    for node, s in pairs(st.sups) do
      if node ~= st.me then pogo.send(s.pid, { "$handoff_coming", coming }) end
    end
  end
end

-- How long a supervisor waits, at most, for handoff data a stopping node
-- said is coming before it starts the child without it.
local COMING_MS = PASS_MS

--- `{"$handoff_coming", ids}` from a node that is stopping: it holds
-- handoff data for these children, on its way to their owners (perhaps
-- through other stopping nodes). Its leave of the ring comes after this
-- message, so this node, if it owns one of them then, waits for the data
-- (`awaited`) before it starts the child, at most COMING_MS.
-- @tparam table st
-- @param ids
function M.expect(st, ids)
  if st.stopping or type(ids) ~= "table" then return end
  local until_ms = now() + COMING_MS
  for _, id in ipairs(ids) do
    local ok, key = pcall(encode, id)
    if ok then st.coming[key] = until_ms end
  end
  if st.coming_next == nil or until_ms < st.coming_next then st.coming_next = until_ms end
end

--- Whether record `c`'s start waits for handoff data that a stopping node
-- said is coming (`expect`).
-- @tparam table st
-- @tparam table c
-- @treturn boolean
function M.awaited(st, c)
  local until_ms = st.coming[c.key]
  return until_ms ~= nil and c.handoff == nil and now() < until_ms
end

--- The waits for data said to come that are over by `t`: the records start
-- without it. The next such deadline (nil: none).
-- @tparam table st
-- @tparam number t
-- @treturn ?number
local function until_ms(v) return v end

function M.expire_coming(st, t)
  if st.coming_next == nil or st.coming_next > t then return st.coming_next end
  st.coming_next = state.sweep_due(st.coming, t, until_ms, function(key)
    st.coming[key] = nil
    local c = st.children[key]
    if not c then return end
    if c.handoff == nil and not c.proc and placement.owner(st, c) == st.me then
      events.log(st, "warning", "handoff data of child %s, said to be coming, did not come within %d ms: "
        .. "it starts without it", events.describe(c.id), COMING_MS)
    end
    state.mark(st, c)
  end)
  return st.coming_next
end

--- While the node stops (children.shutdown_all): `m` is handoff data for a
-- child (passed on), or the answer to data passed on, or the DOWN of its
-- destination (the sender is answered). Other messages are not ours.
-- @tparam table st
-- @tparam table m
-- @treturn boolean whether `m` was one of those
function M.on_passing(st, m)
  local tag = m[1]
  if tag == "$handoff_data" then
    local id, data, from, reply_to, ref, visited = m[2], m[3], m[4], m[5], m[6], m[7]
    local ok, key = pcall(encode, id)
    local c = ok and st.children[key]
    if not (c and data ~= nil and send_on(st, c, id, data, from, visited, m[8], reply_to, ref)) then
      M.ack(reply_to, ref)
    end
    return true
  elseif tag == "$handoff_ack" or tag == "DOWN" then
    return M.on_answer(st, m)
  end
  return false
end

return M
