--- The children and rpc functions of the state-handoff specs
-- (spec/cluster/handoff_spec.lua, on nodes running spec/support/handoff_node.lua).
--
-- A *counter* is a pogo.server child whose state is a count. It takes its
-- count over from `init(arg, data)` (0 when `data` is nil) and hands it over
-- in `handoff`; after a netsplit `resolve_conflict` adds the count of the
-- copy that stopped to its own. It reports to a process (`arg.to`, a pid or
-- {name, node}), with `ns = uv.hrtime()` stamps (a clock all the processes
-- of one machine share):
--
-- * `{"started", node, id, count, got_data, ns}` at the end of `init`;
-- * `{"handoff_begin", node, id, count, ns}` and `{"handoff_end", node, id,
--   ns}` around `handoff`;
-- * `{"terminated", node, id, reason, ns}` at the end of `terminate` (a
--   crash's reason as a string);
-- * `{"resolved", node, id, mine, theirs, ns}` in `resolve_conflict`.
--
-- Options (`arg`): `slow_ms` (handoff takes that long), `unserializable`
-- (handoff returns a function in its data), `pad` (bytes of state carried
-- along with the count), `named` (the server is registered cluster-wide as
-- `{"via", "pogo.registry", id}`).
local pogo = require "pogo"
local uv = require "luv"
local server = require "pogo.server"
local dsup = require "pogo.dynamic_supervisor"

local M = {}

local SUP = "dhand"

local Counter = {}

function Counter.init(arg, data)
  local st = { arg = arg, count = data and data.count or 0, pad = data and data.pad }
  if arg.pad and not st.pad then st.pad = string.rep("x", arg.pad) end
  if arg.to then pogo.send(arg.to, { "started", pogo.node(), arg.id, st.count, data ~= nil, uv.hrtime() }) end
  return st
end

function Counter.handle_call(req, _, st)
  if req == "get" then return st.count, st end
  if type(req) == "table" and req[1] == "add" then
    st.count = st.count + req[2]
    return st.count, st
  end
  return nil, st
end

function Counter.handle_cast(msg, st)
  if type(msg) == "table" and msg[1] == "add" then st.count = st.count + msg[2] end
  return st
end

function Counter.handoff(st)
  local to, id = st.arg.to, st.arg.id
  if to then pogo.send(to, { "handoff_begin", pogo.node(), id, st.count, uv.hrtime() }) end
  if st.arg.slow_ms then pogo.sleep(st.arg.slow_ms) end
  local data = { count = st.count, pad = st.pad }
  if st.arg.unserializable then data.fn = function() end end
  if to then pogo.send(to, { "handoff_end", pogo.node(), id, uv.hrtime() }) end
  return data
end

function Counter.resolve_conflict(st, data)
  local mine = st.count
  st.count = mine + (data and data.count or 0)
  local to = st.arg.to
  if to then pogo.send(to, { "resolved", pogo.node(), st.arg.id, mine, data and data.count, uv.hrtime() }) end
  return st
end

function Counter.terminate(reason, st)
  local to = st.arg.to
  if type(reason) == "table" and getmetatable(reason) ~= nil then reason = tostring(reason) end -- a crash
  if to then pogo.send(to, { "terminated", pogo.node(), st.arg.id, reason, uv.hrtime() }) end
end

--- Start a counter (a child's start function).
-- @tparam table arg `{id =, to =, slow_ms =, unserializable =, pad =}`
function M.counter(arg)
  if arg.named then return server.start_link(Counter, arg, { name = { "via", "pogo.registry", arg.id } }) end
  return server.start_link(Counter, arg)
end

--- The child spec of counter `id` (`arg` as for `counter`, `id` set; `shutdown` ms).
function M.spec(id, arg, shutdown)
  arg = arg or {}
  arg.id = id
  return { id = id, start = { "support.handoff_remote", "counter", arg }, shutdown = shutdown }
end

-- ---- rpc, on a node (handoff_node.lua) ----

--- Request counter `id` reporting to the events node (`arg` as for `counter`).
function M.request(events_node, id, arg, shutdown)
  arg = arg or {}
  arg.to = events_node and { "handoff_events", events_node } or nil
  local ok, err = dsup.start_child(SUP, M.spec(id, arg, shutdown))
  if not ok then error(err) end
  return true
end

--- Add `n` to counter `id` (wherever it runs, as this node sees it); its new count.
function M.add(id, n) return dsup.call(SUP, id, { "add", n }, 5000) end

--- Counter `id`'s count.
function M.get(id) return dsup.call(SUP, id, "get", 5000) end

--- The node running `id` as this node sees it, or nil.
function M.where(id)
  local pid = dsup.whereis(SUP, id)
  return pid and pogo.node_of(pid)
end

--- The owner of `id`.
function M.node_for(id) return dsup.node_for(SUP, id) end

--- The nodes of the ring.
function M.nodes() return dsup.nodes(SUP) end

--- Move every child to its owner.
function M.rebalance() return dsup.rebalance(SUP) end

--- The ids of the children this node runs, sorted by tostring.
function M.local_ids()
  local out = {}
  for _, e in ipairs(dsup.which_children(SUP, "local")) do
    if e.status == "running" then out[#out + 1] = e.id end
  end
  table.sort(out, function(a, b) return tostring(a) < tostring(b) end)
  return out
end

--- Start this node's distributed supervisor "dhand".
function M.start_sup(redistribute)
  return assert(dsup.start_link { name = SUP, settle_ms = 300, redistribute = redistribute })
end

--- Start it from an rpc (handoff_node.lua ... "later"): not linked to the
-- rpc's worker, which ends with the call.
function M.start_sup_later(redistribute)
  local pid = M.start_sup(redistribute)
  pogo.unlink(pid)
  return true
end

return M
