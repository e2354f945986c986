--- The join wait: a node that sees nodes joining starts nothing until it knows
-- which children they run.
--
-- A node that sees a node connect waits (starts no child of its own; see
-- `settled`) until that node's supervisor shows up in the ring and has told
-- it the nodes of its ring, or `settle_ms` pass. Monitoring that node's
-- keeper by name (a probe) tells at once whether it runs a supervisor of this
-- scope: a node without one (an observer, a node of other scopes) answers
-- "noproc" in one round trip and is not waited for. A supervisor that starts
-- while its node's seeds are still being dialed waits for them the same way,
-- and so for the nodes of its peers' rings that it does not know yet (a node
-- that joins through one seed learns the others by gossip, a little later).
-- So a joining node never starts a child that an old owner still runs: the
-- old owner stops it first, and the new owner starts it on the pg leave.
--
-- A node answers a peer's question about its ring once no child is starting
-- here (a child in its start is not in pg yet; a start that looks stuck is
-- not waited for), and from a helper process spawned after the supervisor's
-- pg changes were queued, so the answer reaches the peer after the pg joins
-- of the children it runs.
-- @module pogo.dynamic_supervisor.join_wait
local pogo = require "pogo"
local dist = require "pogo.dist"
local requests = require "pogo.dynamic_supervisor.requests"
local state = require "pogo.dynamic_supervisor.state"

local M = {}

local now = pogo.now

local function drop_probe(st, w)
  if w.probe then
    pogo.demonitor(w.probe)
    st.probes[w.probe] = nil
    w.probe = nil
  end
end

--- Whether nothing is waited for: a child that belongs here may start.
-- @tparam table st
-- @treturn boolean
function M.settled(st)
  return next(st.waiting) == nil
end

--- Stop waiting for `node` (or a dial's token): it showed up in the ring,
-- went away, runs no supervisor of the scope, or took too long. When nothing
-- is waited for any more, the children that waited for that are looked at again.
-- @tparam table st
-- @tparam string node
function M.clear(st, node)
  local w = st.waiting[node]
  if not w then return end
  drop_probe(st, w)
  st.waiting[node] = nil
  if next(st.waiting) == nil then
    for c in pairs(st.unsettled) do state.mark(st, c) end
  end
end

--- A node connected: wait for its supervisor (or `settle_ms`), and probe its keeper.
-- @tparam table st
-- @tparam string node
function M.await_node(st, node)
  local w = st.waiting[node]
  if not w then
    w = {}
    st.waiting[node] = w
  end
  w.deadline = now() + st.settle
  drop_probe(st, w)
  w.probe = pogo.monitor({ requests.keeper_name(st.scope), node })
  st.probes[w.probe] = node
end

-- Is `addr` ("host:port" or a node name) the address of `node`?
local function is_addr_of(node, addr)
  return node == addr or node:sub(-#addr - 1) == "@" .. addr
end

--- Dial `addr` (a seed not connected yet, or a node in a peer's ring that we
-- do not know) in a helper process, waiting for it meanwhile (up to
-- `settle_ms`): until we are connected, we cannot know which children it runs.
-- The helper answers `{"$dsup_connected", token, node | nil}` (see `connected`).
-- @tparam table st
-- @tparam string addr
function M.await_connect(st, addr)
  local token = "$connect " .. addr
  if st.waiting[token] then return end
  st.waiting[token] = { deadline = now() + st.settle }
  local sup, timeout = pogo.self(), st.settle
  pogo.spawn(function()
    local ok, node = pcall(pogo.connect, addr, timeout)
    pogo.send(sup, { "$dsup_connected", token, ok and node or nil })
  end)
end

--- At start: wait for the nodes already connected, and for the seeds of
-- `pogo.start` that are not connected yet.
-- @tparam table st
function M.boot(st)
  local connected = pogo.nodes()
  for _, node in ipairs(connected) do M.await_node(st, node) end
  for _, addr in ipairs(dist.seeds()) do
    local known = is_addr_of(st.me, addr)
    for _, node in ipairs(connected) do known = known or is_addr_of(node, addr) end
    if not known then M.await_connect(st, addr) end
  end
end

--- A dial of `await_connect` ended: wait for the node it reached instead.
-- @tparam table st
-- @tparam string token
-- @tparam ?string node
function M.connected(st, token, node)
  if node and node ~= st.me and not st.sups[node] and st.waiting[node] == nil then
    M.await_node(st, node)
  end
  M.clear(st, token)
end

--- A node came up (nodeup): wait for it unless its supervisor is known.
-- @tparam table st
-- @tparam string node
function M.node_up(st, node)
  if not st.sups[node] then M.await_node(st, node) end
end

--- A node's supervisor showed up: if it is waited for, ask it for the
-- nodes of its ring (`{"$dsup_ring", self}`, answered by `answer_ring` there
-- and read by `peer_ring` here); else nothing is waited for there.
-- @tparam table st
-- @tparam string node
-- @param pid its supervisor
function M.joined(st, node, pid)
  if st.waiting[node] and node ~= st.me then
    pogo.send(pid, { "$dsup_ring", pogo.self() })
  else
    M.clear(st, node)
  end
end

--- `{"$dsup_ring", asker}`: answer it (see `answer_rings`).
-- @tparam table st
-- @param asker the asking supervisor's pid
function M.answer_ring(st, asker)
  st.ring_askers[#st.ring_askers + 1] = asker
end

--- Once the mailbox is drained and no child is starting here, answer the
-- askers with the nodes of every supervisor known here, from a helper
-- process (it runs after the pg scope process has sent this node's changes).
-- @tparam table st
-- @tparam boolean starting whether a start is on its way (children.starting)
function M.answer_rings(st, starting)
  local askers = st.ring_askers
  if #askers == 0 or starting then return end
  st.ring_askers = {}
  local list = {}
  for node in pairs(st.sups) do list[#list + 1] = node end
  local reply = { "$dsup_ring_reply", st.me, list }
  pogo.spawn(function()
    for _, asker in ipairs(askers) do pogo.send(asker, reply) end
  end)
end

--- A joining node's supervisor told the nodes of its ring: those we do not
-- have are waited for too, then that node is not.
-- @tparam table st
-- @tparam string node
-- @tparam {string,...} nodes
function M.peer_ring(st, node, nodes)
  if st.waiting[node] == nil then return end
  local connected = {}
  for _, n in ipairs(pogo.nodes()) do connected[n] = true end
  for _, n in ipairs(nodes) do
    if n ~= st.me and not st.sups[n] and st.waiting[n] == nil then
      if connected[n] then M.await_node(st, n) else M.await_connect(st, n) end
    end
  end
  M.clear(st, node)
end

--- The DOWN of a keeper probe: "noproc" means that node runs no supervisor
-- of this scope, so nothing there is to be waited for.
-- @tparam table st
-- @param ref the probe's monitor ref
-- @param reason
function M.probe_down(st, ref, reason)
  local node = st.probes[ref]
  st.probes[ref] = nil
  local w = st.waiting[node]
  if not w or w.probe ~= ref then return end
  w.probe = nil
  if reason == "noproc" then M.clear(st, node) end
end

--- Stop waiting for the nodes whose `settle_ms` have passed.
-- @tparam table st
-- @tparam number t now
function M.expire(st, t)
  for node, w in pairs(st.waiting) do
    if w.deadline <= t then M.clear(st, node) end
  end
end

--- The soonest deadline of a wait, or nil.
-- @tparam table st
-- @treturn ?number
function M.next_deadline(st)
  if next(st.waiting) == nil then return nil end
  local soonest
  for _, w in pairs(st.waiting) do
    if soonest == nil or w.deadline < soonest then soonest = w.deadline end
  end
  return soonest
end

return M
