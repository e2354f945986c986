-- Specs for the cluster's web page as a server (pogo.dashboard): a node of a
-- 3-node cluster started with --http serves the page's files, /api/* (JSON
-- and server-sent events) and /metrics, checked with Prometheus' own
-- promtool and with a strict reader of the format. (The page in a real
-- browser: spec/cluster/browser_spec.lua.)
local uv = require "luv"
local cjson = require "cjson"
local cluster = require "support.cluster"
local client = require "support.http_client"
local prom = require "support.prom_text"

local N = 30
local R = "support.observed_node"


-- `promtool check metrics` passes `text` (when Debian's prometheus package is
-- installed: make test installs it).
local function promtool_check(text)
  if not uv.fs_access("/usr/bin/promtool", "X") then return end
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  local p = io.popen("/usr/bin/promtool check metrics < " .. path .. " 2>&1")
  local said = p:read("a")
  local ok = p:close()
  os.remove(path)
  assert.is_true(ok, "promtool check metrics: " .. said)
end

describe("the web page's server", function()
  local c, nodes, port

  setup(function()
    c = cluster.new { quiet = true }
    local http
    nodes, http = require(R).start_cluster(c, { prefix = "d", children = N, http = true })
    port = tonumber(http:match("^127%.0%.0%.1:(%d+)$"))
    assert(port, http)
  end)

  teardown(function() c:teardown() end)

  local function get_json(path)
    local status, headers, body = client.get(port, path)
    assert.are.equal("application/json", headers["content-type"], body)
    return status, cjson.decode(body)
  end

  it("/api/cluster: the nodes, their links and round trips, the ring and children per node", function()
    local status, s = get_json("/api/cluster")
    assert.are.equal(200, status)
    assert.are.equal(nodes[1].name, s.via)
    assert.are.equal(3, #s.nodes)
    for _, n in ipairs(s.nodes) do
      assert.is_nil(n.error)
      assert.is_true(n.processes > 0 and n.memory.lua > 0 and n.memory.rss > 0, n.name)
      assert.are.equal(2, n.links)
    end
    assert.are.equal(3, #s.links)
    for _, l in ipairs(s.links) do assert.is_true(l.rtt_ms > 0 and l.rtt_ms < 1000) end
    assert.are.same({ c.self_name }, s.observers)
    local sup = s.supervisors[1]
    assert.are.equal("jobs", sup.name)
    assert.are.equal(N, sup.children)
    local sum = 0
    for _, k in pairs(sup.per_node) do sum = sum + k end
    assert.are.equal(N, sum)
    assert.are.equal(3, #sup.ring)
  end)

  it("serves the page's own files, with a policy that keeps it to this server", function()
    local status, headers, body = client.get(port, "/")
    assert.are.equal(200, status)
    assert.are.equal("text/html; charset=utf-8", headers["content-type"])
    assert.matches("<script src=\"app.js\" defer></script>", body, 1, true)
    assert.matches("default-src 'self'", headers["content-security-policy"], 1, true)
    assert.matches("connect-src 'self'", headers["content-security-policy"], 1, true)
    assert.is_nil(body:find("https?://"), "the page names no other host")
    for path, ctype in pairs { ["/app.js"] = "text/javascript", ["/style.css"] = "text/css",
                               ["/favicon.svg"] = "image/svg+xml" } do
      local st, h, b = client.get(port, path)
      assert.are.equal(200, st, path)
      assert.matches(ctype, h["content-type"], 1, true)
      local refs = b:gsub('xmlns="http://www.w3.org/2000/svg"', "") -- a name, not a request
      assert.is_nil(refs:find("https?://[%w.]"), path .. " names no other host")
    end
    assert.are.equal(404, (client.get(port, "/nothing")))
    local st, h = client.get(port, "/api/cluster", "POST")
    assert.are.equal(405, st)
    assert.are.equal("GET, HEAD", h.allow)
  end)

  it("/api/children: one page at a time, per node, filtered", function()
    local status, r = get_json("/api/children?sup=jobs&per_page=7&page=1")
    assert.are.equal(200, status)
    assert.are.equal(N, r.total)
    assert.are.equal(7, #r.entries)
    local seen, sum = {}, 0
    for _, k in pairs(r.per_node) do sum = sum + k end
    assert.are.equal(N, sum)
    for page = 1, 5 do
      local _, p = get_json("/api/children?sup=jobs&per_page=7&page=" .. page)
      assert.are.equal(page < 5 and 7 or 2, #p.entries)
      for _, e in ipairs(p.entries) do
        assert.is_nil(seen[e.id], e.id)
        seen[e.id] = true
        assert.matches("^<" .. e.node:gsub("%p", "%%%0") .. "%.%d+>$", e.pid)
      end
    end
    local k = 0
    for _ in pairs(seen) do k = k + 1 end
    assert.are.equal(N, k)
    local node = nodes[2].name
    local _, f = get_json("/api/children?sup=jobs&node=" .. node:gsub("[@:]", function(ch)
      return string.format("%%%02X", ch:byte())
    end))
    assert.are.equal(r.per_node[node], f.matched)
    for _, e in ipairs(f.entries) do assert.are.equal(node, e.node) end
    local _, q = get_json("/api/children?sup=jobs&q=job1&per_page=500")
    assert.are.equal(11, q.matched) -- job1, job10 .. job19
    local st = get_json("/api/children?sup=nosuch")
    assert.are.equal(404, st)
    st = get_json("/api/children")
    assert.are.equal(400, st)
  end)

  it("/metrics: Prometheus' text format, checked by promtool and a strict reader", function()
    local status, headers, text = client.get(port, "/metrics")
    assert.are.equal(200, status)
    assert.are.equal("text/plain; version=0.0.4; charset=utf-8", headers["content-type"])
    local fams = prom.parse(text)
    assert.are.equal(3, prom.sum(fams, "pogo_nodes"))
    assert.are.equal(N, prom.sum(fams, "pogo_supervisor_children", { supervisor = "jobs" }))
    assert.are.equal(6, #fams.pogo_link_rtt_seconds.samples)
    for _, s in ipairs(fams.pogo_link_rtt_seconds.samples) do assert.is_true(s.value > 0 and s.value < 1) end
    for _, name in ipairs { "pogo_processes", "pogo_dist_messages_received_total", "pogo_dist_messages_sent_total",
                            "pogo_dist_bytes_received_total", "pogo_dist_bytes_sent_total",
                            "pogo_messages_delivered_total" } do
      assert.are.equal(3, #fams[name].samples, name)
      assert.is_true(prom.sum(fams, name) > 0, name)
    end
    assert.are.equal("counter", fams.pogo_restarts_total.type)
    assert.are.equal("counter", fams.pogo_moves_total.type)
    local shares = prom.sum(fams, "pogo_ring_share", { supervisor = "jobs" })
    assert.is_true(math.abs(shares - 1) < 1e-9)
    promtool_check(text)
    -- the strict reader does refuse what promtool would
    assert.has_error(function() prom.parse("# TYPE x counter\nx 1\n") end)
    assert.has_error(function() prom.parse('a{b="\\q"} 1\n') end)
    assert.has_error(function() prom.parse("a 1\nb 1\na 2\n") end)
  end)

  it("a restart is counted, and shows in the timeline and the event stream", function()
    local s = client.stream(port, "/api/stream")
    local data, why = s:next(3000)
    assert(data, why)
    local first = cjson.decode(data)
    assert.are.equal(3, #first.nodes)
    local ok, crashed = c:rpc(nodes[1], R, "crash", { "job5" })
    assert.is_true(ok and crashed)
    local seen
    local deadline = uv.now() + 5000
    while not seen and uv.now() < deadline do
      local more = s:next(2000)
      if more then
        for _, e in ipairs(cjson.decode(more).events) do
          if e.kind == "restart" and e.id == "job5" then seen = e end
        end
      end
      uv.update_time()
    end
    s:close()
    assert.is_not_nil(seen, "the restart of job5 in the stream")
    assert.matches("crashed on purpose", seen.detail)
    local _, ev = get_json("/api/events?since=0")
    local found = false
    for _, e in ipairs(ev.events) do found = found or (e.kind == "restart" and e.id == "job5") end
    assert.is_true(found)
    local _, _, text = client.get(port, "/metrics")
    assert.are.equal(1, prom.sum(prom.parse(text), "pogo_restarts_total", { supervisor = "jobs" }))
  end)

  it("HEAD /api/stream: the head of the stream, no body, the connection closed at once", function()
    local data = client.raw(port, "HEAD /api/stream HTTP/1.1\r\nHost: test\r\n\r\n", 3000)
    local status, headers, body = client.parse(data)
    assert.are.equal(200, status)
    assert.are.equal("text/event-stream", headers["content-type"])
    assert.are.equal("", body)
  end)

  it("/metrics and the JSON stay valid UTF-8 when a name is not (a scope of raw bytes)", function()
    local ok, started, why = c:rpc(nodes[1], R, "start_other", { { scope = "bad\xff\xc0", settle_ms = 0 }, 2, "b\xfe" },
      15000)
    assert.is_true(ok and started, tostring(why or started))
    local text
    cluster.wait_until(function()
      local _, _, t = client.get(port, "/metrics")
      text = t
      return t:find('supervisor="bad\\\\xFF\\\\xC0"', 1, true) ~= nil -- (its name is its scope)
    end, 10000, "the supervisor in /metrics")
    assert.is_not_nil(utf8.len(text), "/metrics is UTF-8")
    local fams = prom.parse(text)
    assert.are.equal(2, prom.sum(fams, "pogo_supervisor_specs", { supervisor = "bad\\xFF\\xC0" }))
    promtool_check(text)
    local _, _, body = client.get(port, "/api/cluster")
    assert.is_not_nil(utf8.len(body), "/api/cluster is UTF-8")
    local _, _, page = client.get(port, "/api/children?sup=bad%FF%C0")
    assert.is_not_nil(utf8.len(page), "/api/children is UTF-8")
    assert.are.equal(2, cjson.decode(page).total)
  end)

  it("a query's number past what it may be is clamped, not taken for its default", function()
    local _, ev = get_json("/api/events?since=99999999999999999999")
    assert.are.same({}, ev.events)
    _, ev = get_json("/api/events?since=1e300")
    assert.are.same({}, ev.events)
    local status, r = get_json("/api/children?sup=jobs&per_page=7&page=99999999999999999999")
    assert.are.equal(200, status)
    assert.are.equal(1000000000, r.page)
    assert.are.same({}, r.entries)
    status, r = get_json("/api/children?sup=jobs&per_page=1e40&page=-1e40")
    assert.are.equal(200, status)
    assert.are.equal(1, r.page)
    assert.are.equal(500, r.per_page)
  end)

  it("listens only where told", function()
    local conn, err = client.connect(port, "127.0.0.2")
    if conn then conn.close() end
    assert.is_nil(conn)
    assert.matches("ECONNREFUSED", tostring(err))
  end)

  it("a port that is taken: the node does not start, one clear line", function()
    local cli = require "support.pogo_cli"
    local code, _, err = cli.run { "--cookie", "x", "--http", "127.0.0.1:" .. port }
    assert.are.equal(1, code)
    assert.are.equal("pogo: http: cannot listen on 127.0.0.1:" .. port .. ": address already in use\n", err)
  end)
  it("/api/nodes/NAME: an unknown node is 404; empty lists are []", function()
    local status, body = get_json("/api/nodes/nosuch@127.0.0.1:1")
    assert.are.equal(404, status)
    assert.matches("no node nosuch@127.0.0.1:1", body.error, 1, true)
    status, body = get_json("/api/nodes/" .. nodes[2].name)
    assert.are.equal(200, status)
    assert.are.equal(nodes[2].name, body.name)
    local short, addr = nodes[2].name:match("^([^@]*)@(.*)$")
    for _, typed in ipairs { short, addr } do
      status, body = get_json("/api/nodes/" .. typed)
      assert.are.equal(200, status)
      assert.are.equal(nodes[2].name, body.name)
    end
    local st, _, text = client.get(port, "/api/children?sup=jobs&q=nothing-matches")
    assert.are.equal(200, st)
    assert.matches('"entries":[]', text, 1, true)
    st, _, text = client.get(port, "/api/events?since=" .. math.maxinteger)
    assert.are.equal(200, st)
    assert.are.equal('{"events":[]}', text)
  end)

  it("the timeline: observers' comings and goings are no events; events in time order", function()
    local cli = require "support.pogo_cli"
    get_json("/api/cluster") -- someone watches: the collector gathers at each nodeup and nodedown
    local args = { "status", "--seeds", nodes[1].addr }
    if c.tls then -- the cluster runs TLS (POGO_TEST_TLS=1): so does the observer
      for _, x in ipairs { "--tls-cert", c.tls.cert, "--tls-key", c.tls.key, "--tls-ca", c.tls.ca } do
        args[#args + 1] = x
      end
    end
    for _ = 1, 3 do
      local code, _, err = cli.run(args, { env = { POGO_COOKIE = c.cookie } })
      assert.are.equal(0, code, err)
    end
    local _, ev = get_json("/api/events?since=0")
    local last
    for _, e in ipairs(ev.events) do
      assert.is_nil(tostring(e.node):find("^observer%-"), e.kind .. " " .. tostring(e.node))
      assert.are_not.equal(c.self_name, e.node)
      if last then assert.is_true(e.time >= last, "in time order") end
      last = e.time
    end
    local _, snap = get_json("/api/cluster")
    for _, e in ipairs(snap.events) do
      assert.is_nil(tostring(e.node):find("^observer%-"), e.kind .. " " .. tostring(e.node))
    end
  end)

  it("the timeline: a node's coming and going still shows after more moves and restarts than it holds", function()
    get_json("/api/cluster") -- someone watches: the collector gathers at each nodeup and nodedown
    local n5 = c:start_node { name = "d5", seeds = { nodes[1] } }
    local function kinds_of(events, node)
      local seen = {}
      for _, e in ipairs(events) do
        if e.node == node then seen[e.kind] = true end
      end
      return seen
    end
    local ok, err = pcall(function()
      cluster.wait_until(function()
        local _, ev = get_json("/api/events?since=0")
        return kinds_of(ev.events, n5.name).node_up
      end, 10000, "d5's coming in the timeline")
      c:stop(n5)
      cluster.wait_until(function()
        local _, ev = get_json("/api/events?since=0")
        return kinds_of(ev.events, n5.name).node_down
      end, 10000, "d5's going in the timeline")
    end)
    if not n5.exited then c:kill(n5) end
    assert(ok, err)
    local okf, flooded = c:rpc(nodes[2], R, "flood", { 600 }, 5000)
    assert.is_true(okf and flooded, tostring(flooded))
    local ev
    cluster.wait_until(function()
      ev = select(2, get_json("/api/events?since=0"))
      local last = ev.events[#ev.events]
      return last and last.id == "flood600"
    end, 10000, "the flood in the timeline")
    local floods = 0
    for _, e in ipairs(ev.events) do
      if e.detail == "flooded" then floods = floods + 1 end
    end
    assert.is_true(floods >= 300, "the timeline still holds moves and restarts: " .. floods)
    local seen = kinds_of(ev.events, n5.name)
    assert.is_true(seen.node_up and seen.node_down, "d5 came and went in /api/events")
    local _, snap = get_json("/api/cluster")
    seen = kinds_of(snap.events, n5.name)
    assert.is_true(seen.node_up and seen.node_down, "d5 came and went in the page's snapshot")
    local last
    for _, e in ipairs(snap.events) do
      if last then assert.is_true(e.time >= last, "in time order") end
      last = e.time
    end
  end)

  -- the last spec of the file: a 4th node that stops answering (SIGSTOP)
  -- until every node sees it down, then stops cleanly
  it("/metrics: a node that is down stays with pogo_node_up 0; one that stopped cleanly drops out", function()
    local n4 = c:start_node { name = "d4", seeds = { nodes[1] } }
    local function peer_of(n)
      local _, p = c:rpc(n, R, "peer", { n4.name }, 1000)
      return p or {}
    end
    local function up_of(name)
      local _, _, text = client.get(port, "/metrics")
      local f = prom.parse(text).pogo_node_up
      for _, smp in ipairs(f.samples) do
        if smp.labels.node == name then return smp.value end
      end
      return nil
    end
    local ok, err = pcall(function()
      cluster.wait_until(function() return peer_of(nodes[1]).up end, 5000, "d1 connected to d4")
      cluster.wait_until(function() return up_of(n4.name) == 1 end, 5000, "pogo_node_up{d4} 1")
      assert.is_true(c:pause(n4))
      cluster.wait_until(function() return not peer_of(nodes[1]).up end, 5000, "d1 to see d4 down")
      -- after the link timed out: still there, 0, for as long as d1 redials it
      assert.are.equal(0, up_of(n4.name))
      local _, snap = get_json("/api/cluster")
      local listed
      for _, n in ipairs(snap.nodes) do
        if n.name == n4.name then listed = n end
      end
      assert.is_not_nil(listed)
      assert.matches("^down", listed.error)
      local status = get_json("/api/nodes/" .. n4.name)
      assert.are.equal(502, status)
      -- the timeline shows a real node's coming and going
      local _, ev = get_json("/api/events?since=0")
      local seen = {}
      for _, e in ipairs(ev.events) do
        if e.node == n4.name then seen[e.kind] = true end
      end
      assert.is_true(seen.node_up and seen.node_down, "d4 came and went in the timeline")
      c:resume(n4)
      cluster.wait_until(function() return up_of(n4.name) == 1 end, 5000, "pogo_node_up{d4} 1 again")
      c:stop(n4)
      cluster.wait_until(function() return peer_of(nodes[1]).left end, 5000, "d1 to see d4 stop")
      assert.is_nil(up_of(n4.name), "a node that stopped cleanly drops out")
    end)
    if not n4.exited then
      c:resume(n4)
      c:kill(n4)
    end
    assert(ok, err)
  end)
end)
