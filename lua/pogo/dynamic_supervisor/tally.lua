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
-- The entries of `which_children(sup, "global")` are built here too, once per
-- change of a record (`st.running`: its entry, or the list of its copies'
-- entries), so a reader copies references in order and reads nothing else
-- of the state: walking every record, its request and its spec cost a
-- cache miss or more per child (measured: 17 ms at 10,000 children, 240 ms
-- at 100,000; the walk over the prepared entries, 1 ms and 30 ms). The
-- entries are shared by every answer: a caller reads them, never changes
-- them.
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
local pogo = require "pogo"
local pg = require "pogo.pg"
local requests = require "pogo.dynamic_supervisor.requests"

local node_of = pogo.core.node_of

local M = {}

--- Add contribution `t` (see the module text), times `sign`, to the counters
-- `count` (`{specs =, active =, supervisors =, workers =}`); the local counts
-- (children.lua) use the same encoding, with one copy at most.
-- @tparam table count
-- @tparam ?integer t
-- @tparam integer sign 1 or -1
function M.add(count, t, sign)
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

-- The global view's entry for `pid` running `spec`: `old` if it says the
-- same. Without `modules` (the usual case) the table holds four named
-- fields, whose slots fit them (a fifth would double them).
local function entry(old, spec, pid)
  local id, kind, modules = spec.id, spec.type, spec.modules
  if old and old.pid == pid and old.id == id and old.type == kind and old.modules == modules then return old end
  if modules == nil then
    return { id, pid, kind, nil, id = id, pid = pid, type = kind, node = node_of(pid) }
  end
  return { id, pid, kind, modules, id = id, pid = pid, type = kind, modules = modules, node = node_of(pid) }
end

-- The entries of `pids` (two or more copies) running `spec`, in the order
-- of their nodes.
local function entries(old, spec, pids)
  local reuse = {}
  if old and old.pid == nil then
    for _, e in ipairs(old) do reuse[e.pid] = e end
  elseif old then
    reuse[old.pid] = old
  end
  local out = {}
  for i, pid in ipairs(pids) do out[i] = entry(reuse[pid], spec, pid) end
  table.sort(out, function(a, b) return a.node < b.node end)
  return out
end

-- What record `c` adds now; its running copies' entries are noted in `st.running`.
local function contribution(st, c)
  if st.children[c.key] ~= c then return nil end
  local req = requests.active(st, c)
  local running = st.running
  if not req then
    running[c.key] = nil
    return 0
  end
  -- no copy has ever joined (a request just learned): nothing to look up
  local pids = c.last_node and pg.get_members(st.scope, { "child", c.id }) or NONE
  local n = #pids
  local spec, old = req.spec, running[c.key]
  if n == 0 then
    running[c.key] = nil
    -- a temporary child lost with its node (requests.lua) is gone from the view
    if requests.lost(st, req.uid) then return 0 end
  elseif n == 1 then
    if old and old.pid == nil then old = nil end
    running[c.key] = entry(old, spec, pids[1])
  else
    running[c.key] = entries(old, spec, pids)
  end
  if spec.type == "supervisor" then return -n - 1 end
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
      M.add(count, before, -1)
      M.add(count, now, 1)
      if before == nil then new[#new + 1] = c.key end
      if now == nil then st.order_gone = st.order_gone + 1 end
      c.tally = now
    end
  end
  local size = #st.order
  if (#new >= 256 and #new >= size) or st.order_gone > size // 2 + 256 then M.compact(st) end
end

--- The global counts, or the counters `n` (the local ones), as a copy.
-- @tparam table st
-- @tparam[opt] table n
-- @treturn table
function M.counts(st, n)
  n = n or st.count
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
-- canonical keys, then of their nodes. The entries are the state's (shared
-- by every answer, see the module text); the list is the caller's.
-- @tparam table st
-- @treturn {table,...}
function M.which_children(st)
  local out, k, last = {}, 0, nil
  local running = st.running
  local keys = ordered_keys(st)
  for i = 1, #keys do
    local key = keys[i]
    local e = running[key]
    if e and key ~= last then
      last = key
      if e.pid ~= nil then -- one copy
        k = k + 1
        out[k] = e
      else
        for j = 1, #e do out[k + j] = e[j] end
        k = k + #e
      end
    end
  end
  return out
end

return M
