--- Seeing the cluster: what each node tells about itself, and the picture
-- of the whole cluster that a node (or an observer) puts together from
-- those answers. `bin/pogo status`, `children` and `top`, the web page
-- (`pogo.dashboard`) and `/metrics` (`pogo.metrics`) all read it.
--
-- **Per node** (`node_stats`, asked by rpc): memory (the Lua heap of the
-- node's state and the OS process's resident set), live processes, the run
-- queue, messages delivered to local mailboxes, the transport's counters
-- and each link's round-trip time (`core.dist_stats`), and for each
-- distributed supervisor of the node its children here, its ring (nodes and
-- shares of the hash space) and what it did (`pogo.observer.timeline`):
-- starts, stops, restarts, moves, and the events since the asker's last
-- question. All of it is read in O(number of supervisors and links), not
-- of processes or children.
--
-- **The cluster** (`gather`): every connected node is asked at once, each
-- answer bounded by `timeout_ms`; a node that does not answer in time is
-- listed with its error, and so is a node of the cluster that is down
-- (`down_nodes`: the transport still redials it; one that stopped cleanly,
-- was disconnected on purpose or was forgotten after `forget_ms` is not
-- listed). Nodes that declared themselves observers
-- (`set_observer`: `bin/pogo`'s commands do) are listed apart and count
-- nowhere. Supervisors are merged by name: their children per node, ring
-- shares (from the node with the largest ring), counters added up. Links
-- are listed once per pair of nodes, with the round-trip time each side
-- measured (`rtt_ms`: their mean).
--
-- **Observers cost the cluster nothing**: an observer is a node without
-- supervisors, so it is in no ring; a distributed supervisor that sees it
-- connect probes its keeper, gets "noproc" in one round trip and does not
-- wait for it (`pogo.dynamic_supervisor.join_wait`); and `leave` disconnects
-- it so that no node redials it.
-- @module pogo.observer
local pogo = require "pogo"
local uv = require "luv"
local timeline = require "pogo.observer.timeline"

local core = pogo.core

local M = {}

local observer = false
local http_addr -- "host:port" of the web page this node serves, if any

--- Declare this node an observer (a tool's node: listed apart, counted
-- nowhere) or not.
-- @tparam boolean flag
function M.set_observer(flag)
  observer = flag and true or false
end

--- Whether this node is an observer.
-- @treturn boolean
function M.is_observer()
  return observer
end

-- ---- observers and nodes that are down ----

-- The nodes this node knows are observers: those that said so (`hello`,
-- `known_nodes`, asking `node_stats` as one) and those that answered a
-- gather as one: name -> true, or since when the transport no longer knows
-- it (forgotten FORGET_OBSERVER_MS later, in `down_nodes`).
local observers_known = {}
local FORGET_OBSERVER_MS = 60000

--- Note that node `name` is an observer (`bin/pogo` tells every node it
-- connects to, by rpc): it is then never listed as a node that is down, and
-- its coming and going is no event of the web page's timeline.
-- @tparam string name
function M.hello(name)
  if type(name) ~= "string" then error("pogo.observer.hello: name must be a string, got " .. type(name), 2) end
  observers_known[name] = true
end

--- Whether node `name` is known to this node as an observer.
-- @tparam string name
-- @treturn boolean
function M.known_observer(name)
  return observers_known[name] ~= nil
end

--- The nodes this node knows to be down: peers of the cluster that are not
-- connected and that the transport still redials (`pogo.dist_info().peers`
-- that are `wanted`). Not listed: a node that stopped cleanly (`pogo.stop`,
-- SIGTERM: it left on purpose), one disconnected on purpose
-- (`pogo.disconnect`: not redialed), one forgotten (down for `forget_ms`),
-- and observers.
-- @treturn table node -> why it is listed ("down: not connected")
function M.down_nodes()
  local peers = pogo.dist_info().peers or {}
  local now = pogo.now()
  for name, v in pairs(observers_known) do
    if peers[name] then
      observers_known[name] = true
    elseif v == true then
      observers_known[name] = now
    elseif now - v > FORGET_OBSERVER_MS then
      observers_known[name] = nil
    end
  end
  local out = {}
  for name, p in pairs(peers) do
    if not p.up and p.wanted and not p.left and not observers_known[name] then
      out[name] = "down: not connected (redialed since)"
    end
  end
  return out
end

--- What this node knows of the cluster, for an observer that just
-- connected to it (`bin/pogo`): the nodes connected and those down
-- (`down_nodes`). Notes the asker as an observer.
-- @tparam[opt] string asker the observer's name
-- @treturn table `{nodes = {names}, down = {[node] = why}, observers =
--  {names of the nodes known as observers}}`
function M.known_nodes(asker)
  if asker ~= nil then M.hello(asker) end
  local down = M.down_nodes()
  local obs = {}
  for name in pairs(observers_known) do obs[#obs + 1] = name end
  return { nodes = pogo.nodes(), down = down, observers = obs }
end

--- Note the address of the web page this node serves (`pogo.dashboard`).
-- @tparam ?string addr
function M.set_http(addr)
  http_addr = addr
end

local function describe(id)
  return require("pogo.dynamic_supervisor.events").describe(id)
end

-- A supervisor's counts {active =, specs =} as last read (state -> counts).
local last_counts = setmetatable({}, { __mode = "k" })

-- The counts of supervisor `st`: the children it runs here and the specs it
-- knows, from the counters it keeps as children change (count_children's,
-- so O(1)). While its state cannot be read (it is in the middle of a change,
-- preempted: a node that joined or went, thousands of children to move),
-- the last counts read are reported, or the counters as they stand: never a
-- false 0.
local function counts_of(st, views)
  local ok, here = views.read(st, views.count_children, "local")
  local okg, all = views.read(st, views.count_children, "global")
  local last = last_counts[st]
  local active = ok and here.active or last and last.active
  local specs = okg and all.specs or last and last.specs
  if active == nil then active = views.count_children(st, "local").active end
  if specs == nil then specs = views.count_children(st, "global").specs end
  last_counts[st] = { active = active, specs = specs }
  return active, specs
end

-- The supervisors of this node, each {name, scope, active, specs, ring, shares, counters}.
local function supervisors()
  local views = require "pogo.dynamic_supervisor.views"
  local out = {}
  local counters = timeline.counters()
  for _, st in ipairs(views.list()) do
    local active, specs = counts_of(st, views)
    local name, scope = tostring(st.name or st.scope), tostring(st.scope)
    out[#out + 1] = {
      name = name, scope = scope,
      active = active, specs = specs,
      ring = st.ring:nodes(), shares = st.ring:shares(),
      counters = counters[scope] or timeline.counters_of(scope),
    }
  end
  table.sort(out, function(a, b) return a.name < b.name or (a.name == b.name and a.scope < b.scope) end)
  return out
end

--- What this node tells about itself (asked by rpc from `gather`).
-- @tparam[opt=0] integer since the last event sequence number the asker saw
-- @tparam[opt] string asker the asker's name when it is an observer (noted as one)
-- @treturn table `{name =, observer =, time =, memory = {lua =,
--  rss =}, processes =, run_queue =, messages =, dist = {messages_in =,
--  messages_out =, bytes_in =, bytes_out =, links = {[node] = {rtt_ms =,
--  ...}}}, supervisors = {...}, events = {...}, seq =, http =}`
function M.node_stats(since, asker)
  if type(asker) == "string" then observers_known[asker] = true end
  local ns = core.node_stats()
  local events, seq = timeline.since(since)
  return {
    name = pogo.node(), observer = observer, http = http_addr,
    time = timeline.wall_ms(),
    memory = { lua = math.floor(collectgarbage("count") * 1024), rss = uv.resident_set_memory() },
    processes = ns.processes, run_queue = ns.run_queue, messages = ns.messages,
    dist = core.dist_stats(), supervisors = supervisors(),
    events = events, seq = seq,
  }
end

-- ---- the cluster ----

-- Merge the supervisors of every node's stats by scope (the supervisors of
-- one scope form one distributed supervisor; two of different scopes may
-- show the same name).
local function merge_supervisors(nodes)
  local by_scope, list = {}, {}
  for _, n in ipairs(nodes) do
    for _, s in ipairs(n.supervisors or {}) do
      local key = s.scope or s.name
      local m = by_scope[key]
      if not m then
        m = { name = s.name, scope = s.scope, children = 0, specs = 0, per_node = {}, ring = {}, shares = {},
              restarts = 0, moves = 0, starts = 0, stops = 0, failed_starts = 0 }
        by_scope[key] = m
        list[#list + 1] = m
      end
      m.children = m.children + s.active
      m.specs = math.max(m.specs, s.specs)
      m.per_node[n.name] = s.active
      if #s.ring > #m.ring then m.ring, m.shares = s.ring, s.shares end
      for _, k in ipairs { "restarts", "moves", "starts", "stops", "failed_starts" } do
        m[k] = m[k] + (s.counters[k] or 0)
      end
    end
  end
  table.sort(list, function(a, b) return a.name < b.name or (a.name == b.name and a.scope < b.scope) end)
  return list
end

--- The distributed supervisor that `sup` means among a snapshot's
-- (`gather`'s `supervisors`): the one of scope `sup`, else one named `sup`.
-- @tparam table snap
-- @tparam string sup
-- @treturn ?table its entry
function M.find_supervisor(snap, sup)
  local named
  for _, s in ipairs(snap and snap.supervisors or {}) do
    if s.scope == sup then return s end
    if s.name == sup and not named then named = s end
  end
  return named
end

-- Every link between two listed nodes once, with the mean of both sides' round trips.
local function merge_links(nodes)
  local listed, pairs_seen, out = {}, {}, {}
  for _, n in ipairs(nodes) do listed[n.name] = true end
  for _, n in ipairs(nodes) do
    for peer, l in pairs(n.dist and n.dist.links or {}) do
      if listed[peer] then
        local a, b = n.name, peer
        if b < a then a, b = b, a end
        local key = a .. "\0" .. b
        local e = pairs_seen[key]
        if not e then
          e = { from = a, to = b, samples = {} }
          pairs_seen[key] = e
          out[#out + 1] = e
        end
        if l.rtt_avg_ms then e.samples[#e.samples + 1] = l.rtt_avg_ms end
      end
    end
  end
  for _, e in ipairs(out) do
    local sum = 0
    for _, s in ipairs(e.samples) do sum = sum + s end
    e.rtt_ms = #e.samples > 0 and sum / #e.samples or nil
    e.samples = nil
  end
  table.sort(out, function(x, y) return x.from .. x.to < y.from .. y.to end)
  return out
end

--- Ask every node (this one, unless it is an observer, and every connected
-- node) for its `node_stats`, at once, and put the answers together.
-- A node that is down (`down_nodes`, unless this node is an observer, and
-- `opts.down`) is listed with its error, not asked.
-- @tparam[opt] table opts `timeout_ms` (1000: the longest wait for an
--  answer), `since` (node -> the last event sequence number seen there),
--  `down` (node -> why: more nodes known to be down, listed with that error)
-- Each node's stats get `children` (its children of every supervisor),
-- `link_count` and `rtt_ms` (the mean round trip of its links to the nodes listed).
-- @treturn table `{time =, via =, nodes = {stats..., or {name =, error =}},
--  observers = {names}, supervisors = {...}, links = {...}, events = {new
--  events, oldest first}, seqs = {[node] = seq}}`
function M.gather(opts)
  opts = opts or {}
  local timeout = opts.timeout_ms or 1000
  local since = opts.since or {}
  local me_node = pogo.node()
  local names, asked = {}, {}
  if not observer then names[1] = me_node end
  for _, n in ipairs(pogo.nodes()) do names[#names + 1] = n end
  for _, n in ipairs(names) do asked[n] = true end
  -- nodes that are down: listed with why, not asked
  local down = {}
  if not observer then
    for n, why in pairs(M.down_nodes()) do down[n] = why end
  end
  for n, why in pairs(opts.down or {}) do
    if not M.known_observer(n) then down[n] = down[n] or why end
  end
  local got = {}
  for n, why in pairs(down) do
    if not asked[n] then
      names[#names + 1] = n
      got[n] = { name = n, error = why }
    end
  end
  local me, tag = pogo.self(), pogo.make_ref()
  local asker = observer and me_node or nil
  local left = 0
  for n in pairs(asked) do
    left = left + 1
    pogo.spawn(function()
      local ok, st
      if n == me_node then
        ok, st = pcall(M.node_stats, since[n])
      else
        ok, st = pogo.rpc(n, "pogo.observer", "node_stats", { since[n] or 0, asker }, timeout)
      end
      pogo.send(me, { tag, n, ok, st })
    end)
  end
  local deadline = pogo.now() + timeout + 50
  while left > 0 do
    local m = pogo.receive(function(msg) return type(msg) == "table" and msg[1] == tag end,
                           math.max(0, deadline - pogo.now()))
    if not m then break end
    got[m[2]] = m[3] and m[4] or { name = m[2], error = tostring(m[4]) }
    left = left - 1
  end
  local snap = { time = timeline.wall_ms(), via = me_node, nodes = {}, observers = {}, events = {}, seqs = {} }
  table.sort(names)
  for _, n in ipairs(names) do
    local st = got[n] or { name = n, error = "timeout: no answer within " .. timeout .. " ms" }
    if st.observer then
      observers_known[n] = true
      snap.observers[#snap.observers + 1] = n
    else
      local children = 0
      for _, s in ipairs(st.supervisors or {}) do children = children + s.active end
      st.children = children
      for _, e in ipairs(st.events or {}) do snap.events[#snap.events + 1] = e end
      st.events = nil
      snap.seqs[n] = st.seq
      snap.nodes[#snap.nodes + 1] = st
    end
  end
  -- the links between the nodes listed (not those to observers, or to nodes
  -- that connected after this gather began)
  local listed = {}
  for _, n in ipairs(snap.nodes) do listed[n.name] = true end
  for _, n in ipairs(snap.nodes) do
    local count, rtt, k = 0, 0, 0
    for peer, l in pairs(n.dist and n.dist.links or {}) do
      if not listed[peer] then
        n.dist.links[peer] = nil
      else
        count = count + 1
        if l.rtt_avg_ms then rtt, k = rtt + l.rtt_avg_ms, k + 1 end
      end
    end
    n.link_count, n.rtt_ms = count, k > 0 and rtt / k or nil
  end
  table.sort(snap.events, function(a, b)
    if a.time ~= b.time then return a.time < b.time end
    return a.node .. a.seq < b.node .. b.seq
  end)
  snap.supervisors = merge_supervisors(snap.nodes)
  snap.links = merge_links(snap.nodes)
  return snap
end

--- Per-second rates between two snapshots of the same cluster, added to each
-- node of `cur` that is in `prev` too as `rates = {messages_in =,
-- messages_out =, bytes_in =, bytes_out =, delivered =}` (transport
-- messages and bytes, local mailbox deliveries). A node whose counters went
-- back (it restarted) gets none.
-- @tparam ?table prev
-- @tparam table cur
-- @treturn table cur
function M.rates(prev, cur)
  if not prev then return cur end
  local before = {}
  for _, n in ipairs(prev.nodes) do before[n.name] = n end
  for _, n in ipairs(cur.nodes) do
    local p = before[n.name]
    if p and p.time and n.time and n.time > p.time and p.dist and n.dist then
      local dt = (n.time - p.time) / 1000
      local r = {}
      local function rate(k, a, b)
        if a and b and b >= a then r[k] = (b - a) / dt else r[k] = nil end
      end
      rate("messages_in", p.dist.messages_in, n.dist.messages_in)
      rate("messages_out", p.dist.messages_out, n.dist.messages_out)
      rate("bytes_in", p.dist.bytes_in, n.dist.bytes_in)
      rate("bytes_out", p.dist.bytes_out, n.dist.bytes_out)
      rate("delivered", p.messages, n.messages)
      if next(r) then n.rates = r end
    end
  end
  return cur
end

-- ---- children ----

--- The children of distributed supervisor `sup` (a name registered on this
-- node, else the scope of one of its supervisors) in the cluster: its
-- global view, as rows of text, filtered and paged. Asked by rpc, so that 10,000 children cross the wire as one page.
-- The view is read again at most once a second (paging through it costs a
-- filter and a copy of one page), unless `fresh`.
-- @tparam string sup
-- @tparam[opt] table opts `offset` (0), `limit` (all), `node` (only that
--  node's), `q` (only ids whose text contains it), `fresh` (read it now),
--  `scope` (true: `sup` is a scope, not a name)
-- @treturn[1] table `{supervisor =, total =, matched =, per_node = {[node] =
--  count}, entries = {{id =, node =, pid =}, ...}}`
-- @treturn[2] nil
-- @treturn[2] string why (no such supervisor here)
local CHILDREN_TTL_MS = 1000
local children_cache = {} -- supervisor name -> {at =, all = {{id =, node =, pid =}, ...}, per_node =}

-- The global view of supervisor state `st` as rows of text, read again at
-- most every CHILDREN_TTL_MS (cached by scope).
local function child_rows(st)
  local views = require "pogo.dynamic_supervisor.views"
  local sup = st.scope
  local e = children_cache[sup]
  local now = pogo.now()
  if e and now - e.at < CHILDREN_TTL_MS then return e end
  local ok, list = views.read(st, views.which_children, "global")
  if not ok then list = pogo.call(st.pid, { "which_children", "global" }, 30000)[1] end
  local all, per_node = {}, {}
  for i, x in ipairs(list) do
    per_node[x.node] = (per_node[x.node] or 0) + 1
    all[i] = { id = describe(x.id), node = x.node, pid = x.pid }
  end
  e = { at = now, all = all, per_node = per_node }
  children_cache[sup] = e
  return e
end

function M.children(sup, opts)
  opts = opts or {}
  local views = require "pogo.dynamic_supervisor.views"
  local st = type(sup) == "string" and views.lookup(sup, opts.scope == true)
  if not st then
    return nil, "no distributed supervisor named " .. tostring(sup) .. " on " .. pogo.node()
  end
  if opts.fresh then children_cache[st.scope] = nil end
  local cached = child_rows(st)
  local list, per_node, rows = cached.all, cached.per_node, {}
  local q, only = opts.q, opts.node
  if q == "" then q = nil end
  if only == "" then only = nil end
  for _, r in ipairs(list) do
    if (not only or r.node == only) and (not q or r.id:find(q, 1, true)) then rows[#rows + 1] = r end
  end
  local offset = math.max(0, math.tointeger(opts.offset) or 0)
  local limit = math.tointeger(opts.limit) or #rows
  local page = {}
  for i = offset + 1, math.min(#rows, offset + limit) do
    local r = rows[i]
    page[#page + 1] = { id = r.id, node = r.node, pid = tostring(r.pid) }
  end
  return { supervisor = sup, total = #list, matched = #rows, offset = offset, per_node = per_node, entries = page }
end

return M
