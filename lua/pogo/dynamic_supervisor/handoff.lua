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
-- Data kept for a child that then starts on a third node is dropped (the
-- pg join of that copy clears it; not the join of the copy that sent it,
-- which may reach the supervisor after the data: pg notifications take one
-- more hop, through the node's pg scope process).
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

-- Keep handoff data for the child's start here (see `received`).
local function keep(st, id, data, from)
  local ok, key = pcall(encode, id)
  if not ok then return end
  local c = st.children[key]
  if data == nil then
    if c then c.handoff, c.handoff_from = nil, nil end
    return
  end
  if not c then
    c = state.child(st, id, key)
    state.touch(st, c) -- (in the order the sweep goes through)
  end
  local proc = c.proc
  if proc and proc.status == "running" then
    if proc.takes then pogo.send(proc.pid, { "$resolve_conflict", data }) end
  elseif not proc or proc.status == "restarting" or (proc.status == "starting" and not proc.starter) then
    c.handoff, c.handoff_from = data, from
  else
    events.log(st, "debug", "handoff data of child %s dropped: it is %s here", events.describe(id), proc.status)
  end
  state.mark(st, c)
end

--- `{"$handoff_data", id, data, from, reply_to, ref}` came from a child that
-- moved here (or from a stopping node that passed it on), or from the copy
-- of a conflict that stopped: kept for the child's start, or passed to the
-- copy that runs here; then answered.
-- @tparam table st
-- @param id
-- @param data
-- @tparam string from the node of the instance that sent it
-- @param[opt] reply_to who waits for the answer
-- @param[opt] ref the reference of the answer
function M.received(st, id, data, from, reply_to, ref)
  keep(st, id, data, from)
  M.ack(reply_to, ref)
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

--- The data passed on by a stopping node, whose answers it waits for.
-- @treturn table
function M.passing()
  return { n = 0, until_ms = 0, refs = {} } -- refs: monitor ref of the owner -> {reply_to, ref}
end

-- Send `data` of child `id` (from the instance on node `from`) on to the
-- owner of record `c` among the nodes that are not this one, `from`, or one
-- of `visited` (the nodes the data went through): the monitor ref of its
-- supervisor, or nil (no node left: the data is dropped and logged).
local function send_on(st, c, id, data, from, visited)
  local excluded = { [st.me] = true }
  if type(from) == "string" then excluded[from] = true end
  if type(visited) == "table" then
    for _, node in ipairs(visited) do
      if type(node) == "string" then excluded[node] = true end
    end
  end
  local node = placement.owner_among(st, c, excluded)
  local dest = node and M.dest(st, node)
  if not dest then
    events.log(st, "warning", "handoff data of child %s dropped: every node it could go to is stopping",
      events.describe(id))
    return nil
  end
  local through = {}
  for n in pairs(excluded) do through[#through + 1] = n end
  table.sort(through)
  local mref = pogo.monitor(dest)
  pogo.send(dest, { "$handoff_data", id, data, from, st.pid, mref, through })
  return mref
end

local function wait_for(passing, mref, reply_to, ref)
  passing.refs[mref] = { reply_to, ref }
  passing.n = passing.n + 1
  passing.until_ms = now() + PASS_MS
end

--- This node has left the ring (it stops): the data it holds for children
-- it was to start, or is starting (their starters end them as the
-- supervisor goes), goes to their new owners.
-- @tparam table st
-- @tparam table passing (see `passing`)
function M.pass_held(st, passing)
  for _, c in pairs(st.children) do
    local proc = c.proc
    local data, from = c.handoff, c.handoff_from
    if proc and proc.status == "starting" and proc.handoff ~= nil then
      data, from = proc.handoff, proc.handoff_from
      proc.handoff, proc.handoff_from = nil, nil
    elseif proc and proc.pid then
      data = nil -- (it runs: it hands its own state over)
    end
    if data ~= nil then
      local mref = send_on(st, c, c.id, data, from, nil)
      if mref then wait_for(passing, mref, nil, nil) end
    end
    c.handoff, c.handoff_from = nil, nil
  end
end

--- While the node stops (children.shutdown_all): `m` is handoff data for a
-- child (passed on), or the answer to data passed on, or the DOWN of its
-- destination (the sender is answered). Other messages are not ours.
-- @tparam table st
-- @tparam table passing
-- @tparam table m
-- @treturn boolean whether `m` was one of those
function M.on_passing(st, passing, m)
  local tag = m[1]
  if tag == "$handoff_data" then
    local id, data, from, reply_to, ref, visited = m[2], m[3], m[4], m[5], m[6], m[7]
    local ok, key = pcall(encode, id)
    local c = ok and st.children[key]
    local mref = c and data ~= nil and send_on(st, c, id, data, from, visited)
    if mref then wait_for(passing, mref, reply_to, ref) else M.ack(reply_to, ref) end
    return true
  elseif tag == "$handoff_ack" or tag == "DOWN" then
    local p = passing.refs[m[2]]
    if not p then return false end
    passing.refs[m[2]] = nil
    passing.n = passing.n - 1
    if tag == "$handoff_ack" then pogo.demonitor(m[2]) end
    M.ack(p[1], p[2])
    return true
  end
  return false
end

--- The owners did not answer in time: answer the senders anyway.
-- @tparam table passing
function M.give_up_passing(passing)
  for mref, p in pairs(passing.refs) do
    pogo.demonitor(mref)
    M.ack(p[1], p[2])
  end
  passing.refs, passing.n = {}, 0
end

return M
