--- Placement: which node runs each child.
--
-- The ring holds the nodes whose supervisor of the scope is in the pg group
-- `"sup"`; the node the ring assigns to a child id (its owner) runs the child.
-- Every node computes the same owner from the same members. A running child
-- is in the pg group `{"child", id}`, so every node sees where each child
-- runs. When the ring changes, the ids whose owner changed are reconciled.
-- After a netsplit heals, a child may run on two nodes: the owner's copy
-- stays, else the copy of the lowest node name.
-- @module pogo.dynamic_supervisor.placement
local pogo = require "pogo"
local pg = require "pogo.pg"
local state = require "pogo.dynamic_supervisor.state"
local join_wait = require "pogo.dynamic_supervisor.join_wait"
local events = require "pogo.dynamic_supervisor.events"

local encode = pogo.core.encode

local M = {}

--- The ring's owner of record `c`, noted on it.
-- @tparam table st
-- @tparam table c
-- @treturn string
function M.owner(st, c)
  local owner = st.ring:key_to_node(c.id)
  c.owner = owner
  return owner
end

--- The ring changed: reconcile the ids whose owner is not the one they had,
-- and the children this node runs.
-- @tparam table st
function M.owners_changed(st)
  for _, c in pairs(st.children) do
    if next(c.requests) ~= nil then
      local owner = st.ring:key_to_node(c.id)
      if c.owner ~= owner then
        c.owner = owner
        state.mark(st, c)
      end
    end
    if c.proc then state.mark(st, c) end
  end
end

--- Read the ring's nodes from the `"sup"` group: tell the join wait and the
-- listeners about the nodes that came and went.
-- @tparam table st
function M.update_ring(st)
  local nodes = {}
  local changed = false
  for _, pid in ipairs(pg.get_members(st.scope, "sup")) do nodes[pogo.node_of(pid)] = pid end
  for node in pairs(st.ring_nodes) do
    if not nodes[node] then
      changed = true
      st.ring:remove(node)
      join_wait.clear(st, node) -- its supervisor went: nothing to wait for there
      if node ~= st.me then events.notify(st, "node_down", node, st.down_reason[node] or "left") end
    end
  end
  for node, pid in pairs(nodes) do
    if not st.ring_nodes[node] then
      changed = true
      st.ring:add(node)
      join_wait.joined(st, node, pid)
      if node ~= st.me then events.notify(st, "node_up", node) end
    end
  end
  st.ring_nodes = nodes
  if changed then M.owners_changed(st) end
end

--- The lowest other node that runs record `c`'s child, or nil.
-- @tparam table st
-- @tparam table c
-- @treturn ?string
function M.running_elsewhere(st, c)
  local elsewhere
  for _, pid in ipairs(pg.get_members(st.scope, { "child", c.id })) do
    local node = pogo.node_of(pid)
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
-- child started; only the node running it and its owner act on it.
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
    for _, pid in ipairs(pids or {}) do c.last_node = pogo.node_of(pid) end
  end
  if c and (c.proc or st.ring:key_to_node(id) == st.me) then state.mark(st, c) end
end

--- The pid running child `id` anywhere (the owner's copy if two run), or nil.
-- @tparam table st
-- @param id
-- @return pid or nil
function M.whereis(st, id)
  local members = pg.get_members(st.scope, { "child", id })
  if #members <= 1 then return members[1] end
  local owner = st.ring:key_to_node(id)
  for _, pid in ipairs(members) do
    if pogo.node_of(pid) == owner then return pid end
  end
  return members[1]
end

return M
