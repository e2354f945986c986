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
-- `handoff(state)`, sends `{"$handoff_data", id, data}` to `dest`, runs
-- `terminate("shutdown", state)` and exits "shutdown" (see `pogo.server`).
-- The new owner keeps the data on the child's record (`c.handoff`) and gives
-- it to the child's next start: the starter runs the start function inside
-- `pogo.server.handing_over`, so the server it starts gets
-- `init(arg, data)`.
--
--     old node: supervisor      child                 new owner: supervisor
--     {"$handoff", dest, id} ->
--                               handoff(state)
--                               {"$handoff_data", id, data, node} ->  c.handoff = data
--                               terminate, exit
--     pg: leave {"child", id} ------------------------------>  start(spec) with data
--
-- **No overlap, and the wait.** The new owner starts a moved child only once
-- no other node runs it: on the pg leave of the old copy, which its node's pg
-- scope sends when the old process has exited. The data was sent before that
-- exit, on the same connection (one per pair of nodes, frames kept in
-- order), so it is in the new owner's mailbox before the leave; the
-- supervisor reads its whole mailbox before it acts. The new owner thus waits
-- for the data exactly as long as it waits for the old copy to go, which the
-- old node bounds by the child's `shutdown` time.
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

local M = {}

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
function M.ask(pid, id, dest)
  pogo.send(pid, { "$handoff", dest, id })
end

--- A child was killed at its shutdown time while it handed over: log it.
-- @tparam table st
-- @param id
-- @param shutdown its spec's shutdown (ms)
function M.timed_out(st, id, shutdown)
  events.log(st, "warning", "handoff of child %s did not finish within %s ms: killed, it starts with nil",
    events.describe(id), tostring(shutdown))
end

--- `{"$handoff_data", id, data}` came from a child that moved here, or from
-- the copy of a conflict that stopped: kept for the child's start, or passed
-- to the copy that runs here.
-- @tparam table st
-- @param id
-- @param data
-- @tparam string from the node of the instance that sent it
function M.received(st, id, data, from)
  local ok, key = pcall(encode, id)
  if not ok then return end
  local c = st.children[key]
  if data == nil then
    if c then c.handoff, c.handoff_from = nil, nil end
    return
  end
  c = c or state.child(st, id, key)
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

return M
