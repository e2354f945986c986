-- Mutual TLS on node links (issue 14), with certificates made at test time by
-- the openssl tool: TLS nodes mesh and run the distributed supervisor; the
-- bytes on the path are ciphertext and bytes injected there close the link;
-- a wrong CA, an expired certificate, no certificate, a node without TLS (both
-- directions) and plain bytes are refused, both sides log why, and the node
-- goes on answering rpc.
local pogo = require "pogo"
local uv = require "luv"
local cluster = require "support.cluster"
local certs = require "pogo.local_cluster.certs"
local tcp_proxy = require "support.tcp_proxy"

local R = "support.remote"
local D = "support.dsup_remote"

local dir, ca, good, expired, foreign
local c, a -- this spec's cluster (TLS with `good`) and its target node

local function await_log(node, text, what)
  cluster.wait_until(function() return node.err:find(text, 1, true) end, 5000,
    (what or "a log line") .. " from " .. tostring(node.name) .. ": " .. text)
end

-- `node` still works: it answers rpc and still sees this spec's node.
local function answers(node)
  assert.equal(node.name, (c:call(node, "pogo", "node")))
  local peers = c:call(node, R, "nodes")
  local seen = false
  for _, n in ipairs(peers) do seen = seen or n == c.self_name end
  assert.is_true(seen)
end

-- A plain node that this spec's (TLS) node cannot reach answers a probe's rpc.
local function plain_answers(node)
  local probe = c:start_node { tls = false, script = "spec/support/tls_probe.lua", args = { node.name } }
  cluster.wait_until(function() return probe.out:find("PROBE true " .. node.name, 1, true) end, 5000,
    "the probe's rpc to " .. node.name .. " (probe said: " .. probe.out .. probe.err .. ")")
end

setup(function()
  dir = certs.tmpdir()
  ca = certs.ca(dir, "ca")
  good = certs.node(ca, dir, "good")
  expired = certs.node(ca, dir, "expired", { expired = true })
  foreign = certs.node(certs.ca(dir, "other"), dir, "foreign")
  c = cluster.new { tls = good, timeout_ms = 1000, heartbeat_ms = 200 }
  c:start_self()
  a = c:start_node { name = "target" }
  c:connect(a)
end)

teardown(function()
  c:teardown()
  certs.remove(dir)
end)

describe("TLS nodes", function()
  it("mesh over TLS links only", function()
    local b = c:start_node { name = "tb", seeds = { a } }
    c:wait_meshed { a, b }
    for _, node in ipairs { a, b } do
      local info = c:call(node, R, "info")
      assert.is_true(info.tls)
      for _, l in ipairs(info.links) do
        if l.state == "up" then assert.is_true(l.tls, "a plain link on " .. node.name) end
      end
    end
    for _, l in ipairs(pogo.dist_info().links) do assert.is_true(l.tls) end
    c:stop(b)
  end)

  it("link when their CA file holds an intermediate CA, not its root", function()
    local mid = certs.intermediate(ca, dir, "mid")
    local x, y = certs.node(mid, dir, "midx"), certs.node(mid, dir, "midy")
    -- (this spec's node trusts the root only: the two link with each other,
    -- and their logs say so)
    local nx = c:start_node { name = "midx", tls = x }
    local ny = c:start_node { name = "midy", tls = y, seeds = { nx } }
    assert.are.equal(mid.cert, x.ca)
    await_log(ny, "connected to " .. nx.name)
    await_log(nx, "connected to " .. ny.name)
    assert.is_nil(nx.err:find("does not verify", 1, true), nx.err)
    c:kill(nx)
    c:kill(ny)
  end)

  it("run the distributed supervisor", function()
    local nodes = {}
    for i = 1, 3 do
      nodes[i] = c:start_node { script = "spec/support/dsup_node.lua", args = { "dsup", "0" },
                                seeds = { a } }
      c:connect(nodes[i])
    end
    cluster.wait_until(function()
      for _, node in ipairs(nodes) do
        local ok, ns = c:rpc(node, D, "nodes", {}, 1000)
        if not ok or #ns ~= 3 then return false end
      end
      return true
    end, 10000, "every supervisor to see 3 nodes")
    assert.is_true(c:call(nodes[1], D, "start_children", { 1, 6 }))
    -- each child runs once, on the node the ring gives it
    cluster.wait_until(function()
      local where = {}
      for _, node in ipairs(nodes) do
        for _, n in ipairs((c:call(node, D, "children", { "local" }))) do
          if where[n] then return false end
          where[n] = node.name
        end
      end
      for n = 1, 6 do
        if where[n] ~= c:call(nodes[1], D, "node_for", { n }) then return false end
      end
      return true
    end, 10000, "each child once, on its owner")
    -- a node killed: its children restart on the others, over TLS
    c:kill(nodes[3])
    cluster.wait_until(function()
      local count = 0
      for i = 1, 2 do count = count + #(c:call(nodes[i], D, "children", { "local" })) end
      return count == 6
    end, 10000, "the children of the killed node to restart elsewhere")
    for i = 1, 2 do c:stop(nodes[i]) end
  end)
end)

describe("someone on the path", function()
  it("sees only TLS records, and bytes it injects close the link", function()
    local p = tcp_proxy.new(tonumber(a.addr:match(":(%d+)$")))
    local ok, err = pcall(function()
      -- b knows only the proxy: its one link with a goes through it
      local b = c:start_node { name = "onpath", seeds = { "127.0.0.1:" .. p.port } }
      cluster.wait_until(function()
        for _, n in ipairs(c:call(a, R, "nodes")) do if n == b.name then return true end end
      end, 5000, "a link from b to a through the proxy")
      c:connect(b)
      c:wait_meshed { a, b }
      local before = #table.concat(p.up)
      local marker = "MARKER-" .. tostring(uv.hrtime())
      local okr, got = c:call(b, "pogo", "rpc", { a.name, "string", "upper", { marker } })
      assert.is_true(okr)
      assert.equal(marker:upper(), got)
      local up, down = table.concat(p.up), table.concat(p.down)
      assert.is_true(#up > before, "the rpc did not go through the proxy")
      assert.equal("\22\3", up:sub(1, 2)) -- a TLS handshake record, not a pogo HELLO
      for _, secret in ipairs { marker, marker:upper(), b.name, a.name, "MARKER" } do
        assert.is_nil(up:find(secret, 1, true))
        assert.is_nil(down:find(secret, 1, true))
      end
      -- a forged frame, as a plain link would take it: TLS rejects it
      p.to:write("\0\0\0\5\48junk" .. string.rep("\0", 64))
      local ok2, err2 = pcall(await_log, a, "closing link to " .. b.name .. ": TLS: ", "the end of the tampered link")
      assert(ok2, tostring(err2) .. "\n" .. a.err .. b.err)
      c:wait_meshed { a, b } -- b comes back by name, without the proxy
      answers(a)
      c:stop(b)
    end)
    p.close()
    assert(ok, err)
  end)
end)

describe("a TLS node refuses", function()
  it("a certificate signed by another CA", function()
    local x = c:start_node { name = "wrongca", tls = { cert = foreign.cert, key = foreign.key, ca = ca.cert },
                             seeds = { a } }
    await_log(a, "TLS handshake failed: the peer's certificate was rejected: unable to get local issuer certificate")
    await_log(x, "cannot connect to " .. a.addr .. ": TLS: the peer rejected this node (tlsv1 alert unknown ca)")
    answers(a)
    c:kill(x)
  end)

  it("a node that trusts another CA", function()
    local x = c:start_node { name = "otherca", tls = foreign, seeds = { a } }
    await_log(x, "cannot connect to " .. a.addr .. ": TLS handshake failed: the peer's certificate was rejected")
    await_log(a, "TLS handshake failed: the peer rejected this node (tlsv1 alert unknown ca)")
    answers(a)
    c:kill(x)
  end)

  it("an expired certificate", function()
    local x = c:start_node { name = "expired", tls = expired, seeds = { a } }
    await_log(x, "certificate " .. expired.cert .. " does not verify against " .. ca.cert
                 .. " (certificate has expired)")
    await_log(a, "TLS handshake failed: the peer's certificate was rejected: certificate has expired")
    await_log(x, "cannot connect to " .. a.addr .. ": TLS: the peer rejected this node "
                 .. "(sslv3 alert certificate expired)")
    answers(a)
    c:kill(x)
  end)

  it("a client without a certificate", function()
    local host, port = a.addr:match("^(.*):(%d+)$")
    local stdin, out, errout = uv.new_pipe(false), uv.new_pipe(false), uv.new_pipe(false)
    local text = ""
    local handle, pid
    handle, pid = uv.spawn("openssl", {
      args = { "s_client", "-connect", host .. ":" .. port, "-tls1_3", "-CAfile", ca.cert },
      stdio = { stdin, out, errout } }, function() handle:close() end)
    assert(handle, pid)
    local function collect(_, data) if data then text = text .. data end end
    out:read_start(collect)
    errout:read_start(collect)
    local ok, err = pcall(function()
      await_log(a, "TLS handshake failed: the peer sent no certificate")
      cluster.wait_until(function() return text:find("alert certificate required", 1, true) end, 5000,
        "openssl s_client to hear why: " .. text)
      answers(a)
    end)
    if not handle:is_closing() then uv.kill(pid, "sigkill") end
    for _, h in ipairs { stdin, out, errout } do h:close() end
    pogo.sleep(20)
    assert(ok, err)
  end)

  it("a node without TLS, and both log why", function()
    local x = c:start_node { name = "plaindialer", tls = false, seeds = { a } }
    await_log(a, "a node without TLS dialed this TLS node (TLS must be on for every node or none)")
    await_log(x, "cannot connect to " .. a.addr .. ": refused by peer: this node requires TLS and the dialer "
                 .. "does not use it")
    answers(a)
    plain_answers(x)
    c:kill(x)
  end)

  it("plain bytes, with a plain answer", function()
    local host, port = a.addr:match("^(.*):(%d+)$")
    local me = pogo.self()
    local tcp = uv.new_tcp()
    local got = ""
    tcp:connect(host, tonumber(port), function(err)
      if err then pogo.send(me, { "raw", err }) return end
      tcp:read_start(function(_, data)
        if data then got = got .. data else pogo.send(me, { "raw", "closed" }) end
      end)
      tcp:write("GET / HTTP/1.0\r\n\r\n")
    end)
    local m = pogo.receive(function(msg) return msg[1] == "raw" end, 5000)
    if not tcp:is_closing() then tcp:close() end
    assert.same({ "raw", "closed" }, m)
    assert.truthy(got:find("this node requires TLS", 1, true))
    await_log(a, "not TLS (plain bytes at this TLS node's port)")
    answers(a)
  end)
end)

describe("a node without TLS refuses a TLS node", function()
  it("and both log why", function()
    local p = c:start_node { name = "plain", tls = false }
    local x = c:start_node { name = "tlsdialer", seeds = { p } }
    c:connect(x)
    await_log(p, "a TLS node dialed this node, which does not use TLS (TLS must be on for every node or none)")
    await_log(x, "cannot connect to " .. p.addr .. ": the peer does not use TLS (it refused: this node does not "
                 .. "use TLS and the dialer does)")
    plain_answers(p)
    answers(x)
    c:kill(x)
    c:kill(p)
  end)
end)
