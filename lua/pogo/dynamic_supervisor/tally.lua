--- The global view kept as it changes: the counts of `count_children(sup,
-- "global")` as counters, and the ids of `which_children(sup, "global")` in
-- their order, so neither answer scans every record nor sorts them all.
--
-- What a record adds to the global view depends on its request that counts
-- (requests.lua: its spec, or none once terminated) and on the members of
-- its pg group `{"child", id}` (the copies that run). The parts that change
-- either (a request learned or forgotten, a termination marker, a child group
-- joined or left, a record released) `touch` the record; at the end of each
-- callback of the supervisor process, `settle` looks at the records touched
-- and moves the counters by the difference, so readers (views.lua) see them
-- up to date with the state they read.
--
-- A record's contribution is noted on it (`tally`): nil while it is not in
-- the order (never counted), 0 when it counts nothing (no request that
-- counts), else the number of running copies plus one, negative for a
-- supervisor child. The order is the canonical keys of the records, sorted
-- (`st.order`), plus the keys that came since (`st.order_new`, unsorted);
-- `compact` merges them and drops the keys of records gone, when the new
-- ones are as many as the sorted ones, or the gone ones half as many (so the
-- merges cost O(n) amortised), and at each repair pass. A reader merges what is left of `order_new` into
-- its own answer without changing the state.
-- @module pogo.dynamic_supervisor.tally
local pg = require "pogo.pg"
local requests = require "pogo.dynamic_supervisor.requests"

local M = {}

-- Add contribution `t` (see the module text), times `sign`, to the counters.
local function add(count, t, sign)
  if not t or t == 0 then return end
  count.specs = count.specs + sign
  if t < 0 then
    count.supervisors = count.supervisors + sign
    count.active = count.active + sign * (-t - 1)
  else
    count.workers = count.workers + sign
    count.active = count.active + sign * (t - 1)
  end
end

local NONE = {} -- no pids (shared, never changed)

-- What record `c` adds now; its running copies are noted in `st.running`.
local function contribution(st, c)
  if st.children[c.key] ~= c then return nil end
  local req = requests.active(st, c)
  if not req then
    st.running[c.key] = nil
    return 0
  end
  -- no copy has ever joined (a request just learned): nothing to look up
  local pids = c.last_node and pg.get_members(st.scope, { "child", c.id }) or NONE
  local n = #pids
  st.running[c.key] = n == 1 and pids[1] or n > 1 and pids or nil
  if req.spec.type == "supervisor" then return -n - 1 end
  return n + 1
end

--- Merge the new keys into the sorted order, dropping the keys of records
-- gone (and duplicates: a record released and created again).
-- @tparam table st
function M.compact(st)
  local new, old = st.order_new, st.order
  table.sort(new)
  local out, children = {}, st.children
  local i, j, n, m, k, last = 1, 1, #old, #new, 0, nil
  while i <= n or j <= m do
    local key
    if j > m or (i <= n and old[i] < new[j]) then
      key, i = old[i], i + 1
    else
      key, j = new[j], j + 1
    end
    if key ~= last then
      local c = children[key]
      if c and c.tally then
        k = k + 1
        out[k] = key
        last = key
      end
    end
  end
  st.order, st.order_new, st.order_gone = out, {}, 0
end

--- Whether the order holds keys to merge or to drop (a repair pass compacts it).
-- @tparam table st
-- @treturn boolean
function M.untidy(st)
  return #st.order_new > 0 or st.order_gone > 0
end

--- Note the changes of the records touched since the last call (at the end
-- of each callback of the supervisor).
-- @tparam table st
function M.settle(st)
  local touched = st.touched
  local n = #touched
  if n == 0 then return end
  local count, new = st.count, st.order_new
  for i = 1, n do
    local c = touched[i]
    touched[i] = nil
    local before, now = c.tally, contribution(st, c)
    if now == nil and st.children[c.key] == nil then st.running[c.key] = nil end
    if before ~= now then
      add(count, before, -1)
      add(count, now, 1)
      if before == nil then new[#new + 1] = c.key end
      if now == nil then st.order_gone = st.order_gone + 1 end
      c.tally = now
    end
  end
  local size = #st.order
  if (#new >= 256 and #new >= size) or st.order_gone > size // 2 + 256 then M.compact(st) end
end

--- The global counts (a copy).
-- @tparam table st
-- @treturn table
function M.counts(st)
  local n = st.count
  return { specs = n.specs, active = n.active, supervisors = n.supervisors, workers = n.workers }
end

-- The keys in order: the sorted ones merged with a sorted copy of the new ones.
local function ordered_keys(st)
  local new = st.order_new
  if #new == 0 then return st.order end
  local extra = table.move(new, 1, #new, 1, {})
  table.sort(extra)
  local old, out = st.order, {}
  local i, j, n, m = 1, 1, #st.order, #extra
  for k = 1, n + m do
    if j > m or (i <= n and old[i] < extra[j]) then
      out[k], i = old[i], i + 1
    else
      out[k], j = extra[j], j + 1
    end
  end
  return out
end

--- Every running child in the cluster, `{id, pid, type, modules}` entries
-- (with the same fields by name, and `node`), in the order of their ids'
-- canonical keys, then of their nodes.
-- @tparam table st
-- @tparam function node_of
-- @treturn {table,...}
function M.which_children(st, node_of)
  local out, k, last = {}, 0, nil
  local children, running, markers = st.children, st.running, st.markers
  local keys = ordered_keys(st)
  for i = 1, #keys do
    local key = keys[i]
    local pids = running[key]
    if pids and key ~= last then
      last = key
      local c = children[key]
      local reqs = c.requests
      local uid, req = next(reqs) -- the common case: one request, not terminated
      if next(reqs, uid) ~= nil or markers[uid] then req = requests.active(st, c) end
      local spec = req.spec
      local id, kind, modules = spec.id, spec.type, spec.modules
      if type(pids) ~= "table" then -- one pid
        k = k + 1
        out[k] = { id, pids, kind, modules, id = id, pid = pids, type = kind, modules = modules, node = node_of(pids) }
      else
        local nodes = {}
        pids = table.move(pids, 1, #pids, 1, {}) -- the state's: read-only here
        for _, pid in ipairs(pids) do nodes[pid] = node_of(pid) end
        table.sort(pids, function(a, b) return nodes[a] < nodes[b] end)
        for _, pid in ipairs(pids) do
          k = k + 1
          out[k] = { id, pid, kind, modules, id = id, pid = pid, type = kind, modules = modules, node = nodes[pid] }
        end
      end
    end
  end
  return out
end

return M
