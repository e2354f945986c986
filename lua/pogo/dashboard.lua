--- The live web page of the cluster, served by a node started with
-- `pogo.start{http = "127.0.0.1:8080"}` (or `bin/pogo --http`): the nodes and
-- their links, each supervisor's ring with the nodes' shares, its children
-- per node, a timeline of events (restarts, moves, nodes up and down) and,
-- per node, its memory, processes and message rates.
--
-- Routes (GET and HEAD):
--
-- * `/` and its files (`index.html`, `app.js`, `style.css`, `favicon.svg`,
--   installed with the modules in `pogo/web/`): static; the page asks
--   nothing of any other host (its Content-Security-Policy says so too);
-- * `/api/cluster`: the last snapshot (JSON, at most 1 s old);
-- * `/api/stream`: the same as server-sent events, one every `interval_ms`
--   (500) while someone watches, and at once when a node comes or goes;
-- * `/api/children?sup=NAME&page=1&per_page=50&node=&q=`: one page of a
--   supervisor's children (NAME: its scope, else its name) (its global view, read on a node that runs it),
--   with the count per node: the page never holds more than one page of
--   rows, whatever the number of children;
-- * `/api/events?since=SEQ`: the timeline (the last 500 moves, restarts and
--   failed starts, and the last 100 comings and goings of nodes);
-- * `/api/nodes/NAME`: what node NAME tells about itself; NAME is a full
--   name, its short part when one node has it, or "host:port"
--   (`pogo.node_name`; 404: no such node connected or known to be down, or
--   more than one with that short part; 502: it did not answer);
-- * `/metrics`: Prometheus' text format (`pogo.metrics`).
--
-- **The collector.** One process per page gathers the cluster
-- (`pogo.observer.gather`, every node asked at once, each answer bounded by
-- `timeout_ms`) every `interval_ms` while an event stream is open or an API
-- request came in the last 10 s, and otherwise not at all; it also gathers
-- at once when this node sees a node come or go (monitor_nodes), so a node
-- that dies shows as down within a round trip of its nodedown. It keeps
-- the rates (`pogo.observer.rates`) and the timeline, and encodes each
-- snapshot once for every watcher (`pogo.json`: lists are `[]` when empty).
--
-- **The timeline** is in time order (each event's `time`, from the clock of
-- the node it happened on); `cseq` numbers events by arrival, for
-- `/api/events?since=`. Observers (`bin/pogo`'s commands, any node that
-- declared itself one) are not in it: a node that comes up is an event once a
-- gather shows it is no observer, one that goes down unless it is a known
-- observer (`pogo.observer.known_observer`).
-- @module pogo.dashboard
local pogo = require "pogo"
local json_mod = require "pogo.json"
local http = require "pogo.http"
local observer = require "pogo.observer"
local metrics = require "pogo.metrics"
local timeline = require "pogo.observer.timeline"
local node_name = require "pogo.node_name"

local M = {}

local TIMELINE_MAX = 500 -- events kept by the collector (moves, restarts, failed starts)
local NODE_EVENTS_MAX = 100 -- nodes' comings and goings kept by the collector, besides
local SNAPSHOT_EVENTS = 100 -- events in each snapshot sent to the page
local SNAPSHOT_NODE_EVENTS = 20 -- nodes' comings and goings in each snapshot, besides

local function node_event(e)
  return e.kind == "node_up" or e.kind == "node_down"
end
local WATCH_MS = 10000 -- an API request keeps the collector polling this long

local FILES = {
  ["/"] = { "index.html", "text/html; charset=utf-8" },
  ["/index.html"] = { "index.html", "text/html; charset=utf-8" },
  ["/app.js"] = { "app.js", "text/javascript; charset=utf-8" },
  ["/style.css"] = { "style.css", "text/css; charset=utf-8" },
  ["/favicon.svg"] = { "favicon.svg", "image/svg+xml" },
}

local SECURITY = {
  ["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    .. "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
  ["X-Content-Type-Options"] = "nosniff",
  ["Referrer-Policy"] = "no-referrer",
}

--- Where the page's files are: `web/` beside this module.
-- @treturn string a directory
function M.web_dir()
  local here = package.searchpath("pogo.dashboard", package.path)
  local dir = here and here:match("^(.*)/[^/]*$") or "."
  return dir .. "/web"
end

local function load_files()
  local dir = M.web_dir()
  local files = {}
  for path, f in pairs(FILES) do
    if not files[f[1]] then
      local h = io.open(dir .. "/" .. f[1], "rb")
      if not h then return nil, "the web page's files are missing (no " .. dir .. "/" .. f[1] .. ")" end
      files[f[1]] = h:read("a")
      h:close()
    end
    files[path] = files[f[1]]
  end
  return files
end

-- ---- the collector ----

-- What the page gets: the snapshot without the per-node detail it does not show.
local function page_view(snap, events, seq)
  local array = json_mod.array
  local nodes = array()
  for i, n in ipairs(snap.nodes) do
    if n.error then
      nodes[i] = { name = n.name, error = n.error }
    else
      nodes[i] = { name = n.name, processes = n.processes, run_queue = n.run_queue, children = n.children,
                   memory = n.memory, rates = n.rates, http = n.http, links = n.link_count, rtt_ms = n.rtt_ms,
                   messages = n.messages, messages_in = n.dist.messages_in, messages_out = n.dist.messages_out }
    end
  end
  local sups = array()
  for i, s in ipairs(snap.supervisors) do
    sups[i] = { name = s.name, scope = s.scope, children = s.children, specs = s.specs, ring = array(s.ring),
                shares = s.shares, per_node = s.per_node, restarts = s.restarts, moves = s.moves,
                starts = s.starts, stops = s.stops }
  end
  -- the newest events, and the newest comings and goings of nodes however
  -- many moves came after them, in time order
  local recent, others, nodes_ev = array(), 0, 0
  for i = #events, 1, -1 do
    local e = events[i]
    if node_event(e) then
      if nodes_ev < SNAPSHOT_NODE_EVENTS then nodes_ev = nodes_ev + 1; recent[#recent + 1] = e end
    elseif others < SNAPSHOT_EVENTS then
      others = others + 1
      recent[#recent + 1] = e
    end
    if others >= SNAPSHOT_EVENTS and nodes_ev >= SNAPSHOT_NODE_EVENTS then break end
  end
  for i = 1, #recent // 2 do recent[i], recent[#recent + 1 - i] = recent[#recent + 1 - i], recent[i] end
  return { time = snap.time, via = snap.via, nodes = nodes, observers = array(snap.observers), supervisors = sups,
           links = array(snap.links), events = recent, seq = seq }
end

local function collector(cfg)
  local st = { snap = nil, json = nil, at = -math.huge, since = {}, events = {}, seq = 0,
               watchers = {}, nwatchers = 0, wanted_until = -math.huge, prev = nil }
  pogo.monitor_nodes(true)

  -- the timeline in time order (events of several nodes arrive out of
  -- order: by gather, and a node's coming is added at the next gather),
  -- each numbered by arrival (cseq, for /api/events?since=). Nodes'
  -- comings and goings are kept apart from the rest (NODE_EVENTS_MAX of
  -- them, TIMELINE_MAX of the rest), so thousands of moves do not push them out.
  local counts = { [true] = 0, [false] = 0 } -- node events, others
  local limit = { [true] = NODE_EVENTS_MAX, [false] = TIMELINE_MAX }
  local function add_event(e)
    st.seq = st.seq + 1
    e.cseq = st.seq
    local list = st.events
    local i = #list
    while i > 0 and list[i].time > e.time do i = i - 1 end
    table.insert(list, i + 1, e)
    local kind = node_event(e)
    counts[kind] = counts[kind] + 1
    if counts[kind] > limit[kind] then -- the oldest of its kind goes
      local j = 1
      while node_event(list[j]) ~= kind do j = j + 1 end
      table.remove(list, j)
      counts[kind] = counts[kind] - 1
    end
  end

  -- A node that came up is an event once the next gather tells it is no
  -- observer (bin/pogo's commands, other tools: their comings and goings
  -- are not events); one that goes down is one unless it was an observer.
  local arrived = {} -- node -> its node_up event, until a gather tells
  local function settle_arrivals(snap)
    local obs = {}
    for _, n in ipairs(snap and snap.observers or {}) do obs[n] = true end
    for node, e in pairs(arrived) do
      if obs[node] or observer.known_observer(node) then
        arrived[node] = nil
      elseif snap then
        for _, n in ipairs(snap.nodes) do
          if n.name == node then
            arrived[node] = nil
            add_event(e)
            break
          end
        end
      end
    end
  end

  local refresh
  refresh = function()
    local snap = observer.gather { timeout_ms = cfg.timeout_ms, since = st.since }
    observer.rates(st.prev, snap)
    st.prev, st.since = snap, snap.seqs
    settle_arrivals(snap)
    for _, e in ipairs(snap.events) do add_event(e) end
    st.snap, st.at = snap, pogo.now()
    st.json = json_mod.encode(page_view(snap, st.events, st.seq))
    for pid in pairs(st.watchers) do pogo.send(pid, { "$dash_snapshot", st.json }) end
  end

  local function due()
    if st.nwatchers == 0 and pogo.now() > st.wanted_until then return nil end
    return math.max(0, st.at + cfg.interval_ms - pogo.now())
  end

  local log = require("pogo.log").with { module = "pogo.dashboard" }
  local gather = refresh
  refresh = function()
    local ok, err = pcall(gather)
    if not ok then
      log.error("gathering the cluster failed: %s", tostring(err))
      st.at = pogo.now() -- not again at once
    end
  end

  while true do
    local m = pogo.receive(due())
    if m == nil then
      refresh()
    elseif type(m) == "table" then
      local tag = m[1]
      if tag == "get" then -- {"get", pid, ref, max_age}
        st.wanted_until = pogo.now() + WATCH_MS
        if not st.snap or pogo.now() - st.at > m[4] then refresh() end
        pogo.send(m[2], { m[3], st.snap, st.json, st.events })
      elseif tag == "watch" then -- {"watch", pid}
        if not st.watchers[m[2]] then
          st.watchers[m[2]] = pogo.monitor(m[2])
          st.nwatchers = st.nwatchers + 1
        end
        if not st.snap or pogo.now() - st.at > cfg.interval_ms then refresh() end
        pogo.send(m[2], { "$dash_snapshot", st.json })
      elseif tag == "DOWN" and st.watchers[m[3]] == m[2] then
        st.watchers[m[3]] = nil
        st.nwatchers = st.nwatchers - 1
      elseif tag == "nodeup" or tag == "nodedown" then
        local node = m[2]
        local e = { time = timeline.wall_ms(), kind = tag == "nodeup" and "node_up" or "node_down", node = node,
                    detail = m[3] and tostring(m[3]) or nil, seq = 0 }
        if tag == "nodeup" then
          if not observer.known_observer(node) then arrived[node] = e end
        else
          local came = arrived[node]
          arrived[node] = nil
          if not observer.known_observer(node) then -- came and went between two gathers: both shown
            if came then add_event(came) end
            add_event(e)
          end
        end
        if st.nwatchers > 0 or pogo.now() <= st.wanted_until then refresh() end
      elseif tag == "stop" then
        return
      end
    end
  end
end

-- Ask the collector for a snapshot at most `max_age` ms old.
local function snapshot(dash, max_age)
  local ref = pogo.make_ref()
  local mref = pogo.monitor(dash.collector)
  pogo.send(dash.collector, { "get", pogo.self(), ref, max_age })
  local m = pogo.receive(function(msg)
    return type(msg) == "table" and (msg[1] == ref or (msg[1] == "DOWN" and msg[2] == mref))
  end, dash.timeout_ms * 3 + 1000)
  pogo.demonitor(mref)
  if not m or m[1] ~= ref then return nil end
  return m[2], m[3], m[4]
end

-- ---- routes ----

local JSON = { ["Content-Type"] = "application/json", ["Cache-Control"] = "no-store" }

local function json(res, status, v)
  return res:send(status, JSON, type(v) == "string" and v or json_mod.encode(v))
end

-- A query's integer: `default` when it is no number; clamped to [min, max]
-- however large (a number past 2^63 is no integer, but it is past max).
local function int(v, default, min, max)
  local x = tonumber(v)
  if not x or x ~= x then return default end
  if x >= max then return max end
  if x <= min then return min end
  return math.tointeger(x) or math.floor(x)
end

local function children_page(dash, req, res)
  local q = req.query
  local sup = q.sup
  if not sup or sup == "" then return json(res, 400, { error = "sup (the supervisor's name) is required" }) end
  local per_page = int(q.per_page, 50, 1, 500)
  local page = int(q.page, 1, 1, 1000000000)
  local opts = { offset = (page - 1) * per_page, limit = per_page, node = q.node, q = q.q }
  -- sup: a scope, else a name (as the snapshot shows them); read by scope where it runs
  local via
  local views = require "pogo.dynamic_supervisor.views"
  local here = views.lookup(sup)
  if here then
    via, opts.scope, sup = pogo.node(), true, here.scope
  else
    local s = observer.find_supervisor(snapshot(dash, 5000), sup)
    for node in pairs(s and s.per_node or {}) do
      if not via or node < via then via = node end
    end
    if s then opts.scope, sup = true, s.scope end
  end
  if not via then return json(res, 404, { error = "no node runs a supervisor named " .. sup }) end
  local ok, r, why
  if via == pogo.node() then
    ok, r, why = true, observer.children(sup, opts)
  else
    ok, r, why = pogo.rpc(via, "pogo.observer", "children", { sup, opts }, dash.timeout_ms * 2)
  end
  if not ok or not r then return json(res, 502, { error = tostring(ok and why or r), via = via }) end
  r.via, r.page, r.per_page = via, page, per_page
  r.entries = json_mod.array(r.entries)
  return json(res, 200, r)
end

local function stream(dash, res)
  if not res:stream(200, { ["Content-Type"] = "text/event-stream", ["Cache-Control"] = "no-store",
                           ["X-Accel-Buffering"] = "no" }) then
    return
  end
  pogo.send(dash.collector, { "watch", pogo.self() })
  local ref = pogo.monitor(dash.collector)
  res:write("retry: 1000\n\n")
  while true do
    local m = pogo.receive(function(msg)
      return type(msg) == "table" and (msg[1] == "$dash_snapshot" or (msg[1] == "DOWN" and msg[2] == ref))
    end, 15000)
    local ok
    if m == nil then
      ok = res:write(": keep-alive\n\n")
    elseif m[1] == "DOWN" then
      break
    elseif m[2] then
      ok = res:write("data: " .. m[2] .. "\n\n")
    else
      ok = true
    end
    if not ok then break end
  end
  res:finish()
end

local function route(dash, req, res)
  if req.method ~= "GET" and req.method ~= "HEAD" then
    return res:send(405, { Allow = "GET, HEAD", ["Content-Type"] = "text/plain; charset=utf-8" },
      "method not allowed\n")
  end
  local path = req.path
  local f = FILES[path]
  if f then
    local headers = { ["Content-Type"] = f[2], ["Cache-Control"] = "no-cache" }
    for k, v in pairs(SECURITY) do headers[k] = v end
    return res:send(200, headers, dash.files[path])
  end
  if path == "/api/cluster" then
    local _, body = snapshot(dash, 1000)
    if not body then return json(res, 503, { error = "the collector did not answer" }) end
    return json(res, 200, body)
  elseif path == "/api/stream" then
    return stream(dash, res)
  elseif path == "/api/children" then
    return children_page(dash, req, res)
  elseif path == "/api/events" then
    local since = int(req.query.since, 0, 0, math.maxinteger)
    local _, _, events = snapshot(dash, 1000)
    local list = json_mod.array()
    for _, e in ipairs(events or {}) do
      if e.cseq > since then list[#list + 1] = e end
    end
    return json(res, 200, { events = list })
  elseif path:match("^/api/nodes/") then
    local node = http.parse_query("n=" .. path:sub(#"/api/nodes/" + 1)).n
    local known = { pogo.node() }
    for n in pairs(observer.down_nodes()) do known[#known + 1] = n end
    for _, n in ipairs(pogo.nodes()) do known[#known + 1] = n end
    local full, why = node_name.resolve(node or "", known)
    if not full then return json(res, 404, { error = why }) end
    local ok, st
    if full == pogo.node() then
      ok, st = true, observer.node_stats()
    else
      ok, st = pogo.rpc(full, "pogo.observer", "node_stats", {}, dash.timeout_ms)
    end
    if not ok then return json(res, 502, { error = tostring(st) }) end
    local j = require("pogo.observer.console").jsonable(st)
    j.supervisors, j.events = json_mod.array(j.supervisors), json_mod.array(j.events)
    for _, s in ipairs(j.supervisors) do s.ring = json_mod.array(s.ring) end
    return json(res, 200, j)
  elseif path == "/metrics" then
    local snap = snapshot(dash, 1000)
    if not snap then
      return res:send(503, { ["Content-Type"] = "text/plain; charset=utf-8" }, "the collector did not answer\n")
    end
    return res:send(200, { ["Content-Type"] = metrics.CONTENT_TYPE }, metrics.render(snap))
  end
  return res:send(404, { ["Content-Type"] = "text/plain; charset=utf-8" }, "not found\n")
end

--- Serve the page on `addr`.
-- @tparam string addr "host:port" (port 0: any free port); it listens there only
-- @tparam[opt] table opts `interval_ms` (500: how often the page is
--  refreshed while watched), `timeout_ms` (800: the longest wait for a node's answer)
-- @return[1] the dashboard `{port =, addr =, close = fn}`
-- @return[2] nil
-- @return[2] string why
function M.start(addr, opts)
  opts = opts or {}
  local files, err = load_files()
  if not files then return nil, err end
  local dash = { files = files, interval_ms = opts.interval_ms or 500, timeout_ms = opts.timeout_ms or 800 }
  dash.collector = pogo.spawn(collector, dash)
  local srv, why = http.serve(addr, function(req, res) return route(dash, req, res) end)
  if not srv then
    pogo.send(dash.collector, { "stop" })
    return nil, why
  end
  dash.port, dash.addr, dash.server = srv.port, srv.addr, srv
  observer.set_http(srv.addr)
  function dash.close()
    srv:close()
    pogo.send(dash.collector, { "stop" })
    observer.set_http(nil)
  end
  return dash
end

return M
