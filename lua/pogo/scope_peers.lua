--- The processes of other nodes that a replicated service's process talks to:
-- the bookkeeping that `pogo.pg`'s scope processes and `pogo.registry`'s
-- registry process share.
--
-- Such a service runs one process per node, registered under the same local
-- name on each (`reg`). On nodeup it sends `{"discover", self}` to that name
-- on the new node; each side then knows the other's process (its peer on
-- that node), monitors it, and sends it a sync, in chunks, then its changes
-- in order. A peer is forgotten on nodedown or on the DOWN of its process.
-- What the messages carry is the service's own; this module keeps the peers,
-- their monitors and the state of the syncs being received (made by the
-- service at a sync's first chunk, forgotten with the peer).
-- @module pogo.scope_peers
local pogo = require "pogo"

local core = pogo.core
local send, is_pid, node_of, node_name = core.send, core.is_pid, core.node_of, core.node_name
local next, type = next, type

local M = {}

local Peers = {}
Peers.__index = Peers

--- The peers of a service whose process is registered as `reg` on every node.
-- @tparam string reg
-- @return peers: `peers.pids` is node -> that node's process (read-only)
function M.new(reg)
  return setmetatable({ reg = reg, pids = {}, refs = {}, syncs = {} }, Peers)
end

--- Forget every peer, without demonitoring (for a restarted process, which
-- holds none of the old monitors).
function Peers:reset()
  self.pids, self.refs, self.syncs = {}, {}, {}
end

--- The node of `pid` if it is a process of another node, else nil (to check
-- the sender named in a peer's message).
function M.remote_node(pid)
  if not is_pid(pid) then return nil end
  local node = node_of(pid)
  if node == node_name() then return nil end
  return node
end

--- `node` of a `{"nodeup" | "nodedown", node}` message, unless it is this node.
function M.other_node(node)
  if type(node) ~= "string" or node == node_name() then return nil end
  return node
end

--- `pid` is the process of `node`: monitor it (instead of an older one).
function Peers:add(node, pid)
  local old = self.refs[node]
  if old then pogo.demonitor(old) end
  self.pids[node] = pid
  self.syncs[node] = nil
  -- the DOWN may come at once (no connection): it is handled like any other
  self.refs[node] = pogo.monitor(pid)
end

--- Forget the process of `node` (and the sync being received from it).
function Peers:remove(node)
  local ref = self.refs[node]
  if ref then pogo.demonitor(ref) end
  self.pids[node], self.refs[node], self.syncs[node] = nil, nil, nil
end

--- If `{"DOWN", ref, pid}` is about a peer, the peer's node (the caller
-- then removes it); else nil.
function Peers:down(ref, pid)
  local node = node_of(pid)
  if self.refs[node] ~= ref then return nil end
  self.refs[node] = nil
  return node
end

--- The state of the sync being received from `node`: the one begun by an
-- earlier chunk, else `begin(arg, node)`'s (a new sync). A new peer process
-- of that node, or its removal, forgets it.
-- @tparam string node
-- @tparam function begin
-- @param arg
-- @return the state
function Peers:receiving(node, begin, arg)
  local st = self.syncs[node]
  if st == nil then
    st = begin(arg, node)
    self.syncs[node] = st
  end
  return st
end

--- The sync being received from `node` has had its last chunk: the next
-- chunk begins a new one.
function Peers:received(node)
  self.syncs[node] = nil
end

--- The processes of the peers of this moment (a new array).
function Peers:list()
  local list = {}
  for _, pid in next, self.pids do list[#list + 1] = pid end
  return list
end

--- Send `{tag, from, part}` to each process of `list`, `items` cut into
-- parts of at most `limit` (a send may suspend the caller).
function M.send_parts(list, tag, from, items, limit)
  local n = #items
  for a = 1, n, limit do
    local part = n <= limit and items or table.move(items, a, math.min(a + limit - 1, n), 1, {})
    local msg = { tag, from, part }
    for i = 1, #list do send(list[i], msg) end
  end
end

--- `send_parts` to every peer (those of the moment of the call: a send may
-- suspend the caller).
function Peers:broadcast(tag, from, items, limit)
  M.send_parts(self:list(), tag, from, items, limit)
end

--- Send `{"discover", from}` to the service's process on `node`.
function Peers:discover(node, from)
  send({ self.reg, node }, { "discover", from })
end

--- Subscribe the caller to nodeup/nodedown (before pogo.start the
-- subscription waits for the node to start) and discover the service on
-- every connected node.
function Peers:discover_all(from)
  pogo.monitor_nodes(true)
  local nodes = pogo.nodes()
  for i = 1, #nodes do self:discover(nodes[i], from) end
end

return M
