-- DNS discovery (issue 14) against a real DNS server (dnsmasq, started here
-- on 127.0.0.1 at an ephemeral port, stopped by pid): every A record of a
-- name is a seed, read again each interval; SRV records give host and port;
-- a new record is joined within one interval; a record that disappears stops
-- being dialed once its node is down, and a connected node stays (not
-- redialed once lost); an address in DNS that reaches the node itself is
-- found out by its first dial (the handshake carries the node's own nonce
-- back) and never dialed again. `pogo status --discover` says which step
-- failed: the name, its addresses, the nodes there, the cookie.
local pogo = require "pogo"
local uv = require "luv"
local cluster = require "support.cluster"
local dnsmasq = require "support.dnsmasq"
local tcp_proxy = require "support.tcp_proxy"
local cli = require "support.pogo_cli"

local R = "support.remote"
local INTERVAL = 1000
local SLACK = 500 -- the dial and the handshake after the round that finds a record

local c, dns

before_each(function()
  c = cluster.new { timeout_ms = 1000, heartbeat_ms = 200 }
  c:start_self()
end)

after_each(function()
  c:teardown()
  if dns then dns.stop() end
  dns = nil
end)

-- A TCP port free on every one of the given loopback addresses right now.
local function common_port(ips)
  for _ = 1, 20 do
    local first = uv.new_tcp()
    assert(first:bind(ips[1], 0))
    local port = first:getsockname().port
    local held, ok = { first }, true
    for i = 2, #ips do
      local t = uv.new_tcp()
      held[#held + 1] = t
      if not t:bind(ips[i], port) then ok = false end
    end
    for _, t in ipairs(held) do t:close() end
    pogo.sleep(5)
    if ok then return port end
  end
  error("no port free on " .. table.concat(ips, ", "))
end


local function target(node, addr)
  for _, t in ipairs(c:call(node, R, "info").targets) do
    if t.addr == addr then return t end
  end
end

describe("DNS discovery", function()
  it("dials every A record, joins a new one within an interval, forgets one that leaves", function()
    local ips = { "127.0.0.2", "127.0.0.3", "127.0.0.4" }
    local port = common_port(ips)
    dns = dnsmasq.start { hosts = { "127.0.0.2 nodes.pogo.test", "127.0.0.3 nodes.pogo.test" } }
    local function discovering(name, ip)
      return c:start_node { name = name, port = port, extra = { "--host", ip,
        "--discover", "dns:nodes.pogo.test:" .. port, "--dns-server", "127.0.0.1:" .. dns.port,
        "--discover-interval-ms", tostring(INTERVAL) } }
    end
    local a = discovering("da", ips[1])
    local b = discovering("db", ips[2])
    -- no seeds: a and b find each other in DNS
    c:connect(a)
    cluster.wait_until(function() return c:sees(a, b.name) end, INTERVAL + 5000, "a and b to find each other")
    c:wait_meshed { a, b }
    assert.is_nil(target(a, ips[1] .. ":" .. port)) -- its own record is skipped
    assert.is_true(target(a, ips[2] .. ":" .. port).found)

    -- a new record: a node that knows no one is joined by the others
    local n = c:start_node { name = "dc", port = port, extra = { "--host", ips[3] } }
    dns.set_hosts { "127.0.0.2 nodes.pogo.test", "127.0.0.3 nodes.pogo.test", "127.0.0.4 nodes.pogo.test" }
    dns.reload()
    local t0 = uv.hrtime()
    cluster.wait_until(function() return c:sees(a, n.name) and c:sees(b, n.name) end, INTERVAL + SLACK,
      "the new record's node joined within one interval")
    assert.is_true((uv.hrtime() - t0) / 1e6 <= INTERVAL + SLACK)
    assert.truthy(a.err:find("discovery: 127.0.0.4:" .. port .. " found in DNS (nodes.pogo.test)", 1, true))

    -- its node goes down: still in DNS, so still dialed
    c:kill(n)
    cluster.wait_until(function() return not c:sees(a, n.name) end, 5000, "a to lose dc")
    local info = c:call(a, R, "info")
    assert.is_true(info.peers[n.name].wanted)
    assert.truthy(target(a, ips[3] .. ":" .. port))
    -- its record goes: no longer dialed
    dns.set_hosts { "127.0.0.2 nodes.pogo.test", "127.0.0.3 nodes.pogo.test" }
    dns.reload()
    cluster.wait_until(function()
      local i = c:call(a, R, "info")
      return not target(a, ips[3] .. ":" .. port) and not i.peers[n.name].wanted
    end, INTERVAL + SLACK, "a to stop dialing the node whose record left")
    assert.truthy(a.err:find(n.name .. " is no longer in DNS: not dialed any more", 1, true))

    -- the record of a connected node goes: it stays connected
    dns.set_hosts { "127.0.0.2 nodes.pogo.test" }
    dns.reload()
    cluster.wait_until(function() return not target(a, ips[2] .. ":" .. port) end, INTERVAL + SLACK,
      "a to drop db's record")
    assert.truthy(a.err:find(b.name .. " is no longer in DNS (still connected)", 1, true))
    assert.is_true(c:sees(a, b.name))
    assert.is_true(c:sees(b, a.name))
    -- then it crashes (no BYE): lost, it is not redialed (it left DNS), where
    -- a node merely lost is retried for forget_ms
    assert.is_true(c:call(a, R, "info").peers[b.name].wanted)
    c:kill(b)
    cluster.wait_until(function()
      local p = c:call(a, R, "info").peers[b.name]
      return not p.up and not p.wanted
    end, 3000, "a to lose db and not redial it")
    assert.truthy(a.err:find("lost " .. b.name, 1, true))
    assert.truthy(a.err:find("(no longer in DNS: not dialed any more)", 1, true))
  end)

  it("reads SRV records: host and port from each", function()
    local s1 = c:start_node { name = "s1", extra = { "--host", "127.0.0.5" } }
    local s2 = c:start_node { name = "s2", extra = { "--host", "127.0.0.6" } }
    local p1, p2 = s1.name:match(":(%d+)$"), s2.name:match(":(%d+)$")
    dns = dnsmasq.start { extra = {
      "--srv-host=_pogo._tcp.pogo.test,s1.pogo.test," .. p1, "--srv-host=_pogo._tcp.pogo.test,s2.pogo.test," .. p2,
      "--host-record=s1.pogo.test,127.0.0.5", "--host-record=s2.pogo.test,127.0.0.6" } }
    local d = c:start_node { name = "sd", extra = { "--discover", "dns:_pogo._tcp.pogo.test",
      "--dns-server", "127.0.0.1:" .. dns.port, "--discover-interval-ms", tostring(INTERVAL) } }
    c:connect(d)
    cluster.wait_until(function() return c:sees(d, s1.name) and c:sees(d, s2.name) end, INTERVAL + 5000,
      "the SRV records' nodes to be joined")
    assert.is_true(target(d, "127.0.0.5:" .. p1).found)
    assert.is_true(target(d, "127.0.0.6:" .. p2).found)
    c:wait_meshed { s1, s2, d }
  end)

  -- Occurrences of a plain-text line in s.
  local function count(s, line)
    local _, n = s:gsub(line:gsub("%p", "%%%0"), "")
    return n
  end

  -- Node n's dial of addr reaches n itself: one line, addr is n's own from
  -- then on, and over WINDOW ms (more than two of the 2 s redial periods a
  -- failed address gets) it is never dialed again. dialed() counts n's dials
  -- of addr so far.
  local WINDOW = 4500
  local function stops_dialing_itself(n, addr, dialed)
    local line = "discovery: " .. addr .. " reaches this node itself (an address of its own): not dialed any more"
    cluster.wait_until(function() return n.err:find(line, 1, true) end, INTERVAL + 5000,
      "the node to find out that " .. addr .. " is itself")
    assert.same({ addr }, c:call(n, R, "info").own)
    assert.is_nil(target(n, addr))
    local before = dialed()
    assert.is_true(before >= 1)
    pogo.sleep(WINDOW) -- an absence: watched for a while
    assert.equal(before, dialed(), "the node dialed itself again")
    assert.equal(1, count(n.err, line))
    assert.equal(0, count(n.err, "it uses this node's name"))
    assert.is_nil(n.err:find("cannot connect to " .. addr, 1, true))
    local info = c:call(n, R, "info")
    assert.same({ addr }, info.own)
    assert.is_nil(target(n, addr))
    for _, l in ipairs(info.links) do assert.is_not_equal(addr, l.peer) end
  end

  it("stops dialing an address of its own it did not know (on 0.0.0.0, a loopback alias)", function()
    local port = common_port { "0.0.0.0" }
    -- the node listens everywhere and advertises 127.0.0.1, which discovery
    -- skips; 127.0.0.2 is no interface's address, but reaches its listener
    dns = dnsmasq.start { hosts = { "127.0.0.1 self.pogo.test", "127.0.0.2 self.pogo.test" } }
    local n = c:start_node { name = "me", port = port, extra = { "--host", "0.0.0.0", "--advertise", "127.0.0.1",
      "--discover", "dns:self.pogo.test:" .. port, "--dns-server", "127.0.0.1:" .. dns.port,
      "--discover-interval-ms", "200" } }
    c:connect(n)
    local addr = "127.0.0.2:" .. port
    -- every dial of addr logs a line, on its accepting side or its dialing one
    stops_dialing_itself(n, addr, function()
      return count(n.err, "discovery: " .. addr .. " reaches this node itself")
             + count(n.err, "it uses this node's name") + count(n.err, "cannot connect to " .. addr)
    end)
  end)

  it("stops dialing a port mapping in front of itself", function()
    -- DNS names a port mapping (a container runtime's, say) that leads back
    -- to the node: neither the address's port nor its host is the node's
    local port = common_port { "127.0.0.1" }
    local map = tcp_proxy.new(port)
    local ok, err = pcall(function()
      dns = dnsmasq.start { hosts = { "127.0.0.1 mapped.pogo.test" } }
      local n = c:start_node { name = "mapped", port = port, extra = {
        "--discover", "dns:mapped.pogo.test:" .. map.port, "--dns-server", "127.0.0.1:" .. dns.port,
        "--discover-interval-ms", "200" } }
      c:connect(n)
      -- every dial of the mapping is a connection the proxy accepts
      stops_dialing_itself(n, "127.0.0.1:" .. map.port, function() return #map.pairs end)
    end)
    map.close()
    if not ok then error(err, 0) end
  end)

  it("logs a name without records once (a typo, or records not there yet)", function()
    dns = dnsmasq.start {}
    local d = c:start_node { name = "typo", extra = { "--discover", "dns:tpyo.pogo.test:4000",
      "--dns-server", "127.0.0.1:" .. dns.port, "--discover-interval-ms", "100" } }
    local line = "discovery: tpyo.pogo.test has no A or AAAA records in DNS (yet): looking again every 100 ms"
    cluster.wait_until(function() return d.err:find(line, 1, true) end, 10000, "the empty round to be logged")
    -- five more rounds, still one line (an absence: watched for a while)
    pogo.sleep(500)
    local _, n = d.err:gsub(line:gsub("%p", "%%%0"), "")
    assert.equal(1, n)
  end)

  it("logs a DNS server that does not answer, and the node goes on", function()
    dns = dnsmasq.start {}
    local dead = dns.port
    dns.stop() -- nothing listens there any more
    dns = nil
    local d = c:start_node { name = "lonely", extra = { "--discover", "dns:nodes.pogo.test:4000",
      "--dns-server", "127.0.0.1:" .. dead, "--discover-interval-ms", "100" } }
    cluster.wait_until(function() return d.err:find("discovery: cannot read nodes.pogo.test from DNS", 1, true) end,
      10000, "the failure to be logged")
    c:connect(d)
    assert.equal(d.name, (c:call(d, "pogo", "node")))
  end)
end)

describe("pogo status --discover", function()
  -- bin/pogo status through DNS; its exit status and stderr
  local function status(dns_name, cookie, wait_ms)
    local args = { "status", "--discover", "dns:" .. dns_name, "--dns-server", "127.0.0.1:" .. dns.port,
                   "--discover-interval-ms", "200", "--cookie", cookie or c.cookie,
                   "--wait-ms", tostring(wait_ms or 3000) }
    if c.tls then -- the cluster runs TLS (POGO_TEST_TLS=1): so does the tool
      for _, x in ipairs { "--tls-cert", c.tls.cert, "--tls-key", c.tls.key, "--tls-ca", c.tls.ca } do
        args[#args + 1] = x
      end
    end
    local code, _, err = cli.run(args, { timeout_ms = 15000 })
    return code, err
  end

  it("a name that does not resolve: c-ares's reason", function()
    dns = dnsmasq.start {}
    local code, err = status("nosuch.pogo.test:4000")
    assert.equal(1, code, err)
    assert.equal("pogo: cannot join the cluster: --discover: nosuch.pogo.test did not resolve: "
                 .. "Domain name not found\n", err)
  end)

  it("a name without addresses", function()
    dns = dnsmasq.start { extra = { "--txt-record=textonly.pogo.test,nothing here" } }
    local code, err = status("textonly.pogo.test:4000")
    assert.equal(1, code, err)
    assert.equal("pogo: cannot join the cluster: --discover: textonly.pogo.test resolved to no address "
                 .. "(DNS server returned answer with no data)\n", err)
  end)

  it("addresses where no node answers: each of them, with why", function()
    local port = common_port { "127.0.0.2", "127.0.0.3" } -- nothing listens there
    dns = dnsmasq.start { hosts = { "127.0.0.2 gone.pogo.test", "127.0.0.3 gone.pogo.test" } }
    local t0 = uv.hrtime()
    local code, err = status("gone.pogo.test:" .. port, nil, 10000)
    assert.equal(1, code, err)
    assert.equal(string.format("pogo: cannot join the cluster: --discover: no node answered at the addresses of "
                               .. "gone.pogo.test: 127.0.0.2:%d (connection refused), 127.0.0.3:%d "
                               .. "(connection refused)\n", port, port), err)
    assert.is_true((uv.hrtime() - t0) / 1e6 < 10000, "it waited for --wait-ms where it knew at once")
  end)

  it("a node that refuses the cookie; the right one joins", function()
    local port = common_port { "127.0.0.2" }
    dns = dnsmasq.start { hosts = { "127.0.0.2 one.pogo.test" } }
    local n = c:start_node { name = "one", port = port, extra = { "--host", "127.0.0.2" } }
    local code, err = status("one.pogo.test:" .. port, "not the cookie")
    assert.equal(1, code, err)
    assert.equal(string.format("pogo: cannot join the cluster: --discover: the cookie was refused at 127.0.0.2:%d "
                               .. "(refused by peer: authentication failed (wrong cookie?))\n", port), err)
    code, err = status("one.pogo.test:" .. port)
    assert.equal(0, code, err)
    assert.equal("", err)
    assert.truthy(n.name)
  end)
end)
