-- advertise (issue 14): a node listens on one address and is named and
-- reached by another, as in a container or a pod (listen on 0.0.0.0, be
-- known by the pod IP), or behind a port mapping.
local pogo = require "pogo"
local uv = require "luv"
local cluster = require "support.cluster"
local tcp_proxy = require "support.tcp_proxy"

local R = "support.remote"

local c

setup(function()
  c = cluster.new { timeout_ms = 1000, heartbeat_ms = 200 }
  c:start_self()
end)

teardown(function()
  c:teardown()
end)


describe("advertise", function()
  it("names a node listening on 0.0.0.0 by the address peers reach it at", function()
    local n = c:start_node { name = "wide", extra = { "--host", "0.0.0.0", "--advertise", "127.0.0.2" } }
    local port = n.name:match("^wide@127%.0%.0%.2:(%d+)$")
    assert.truthy(port, n.name)
    -- reached by its name: the spec dials 127.0.0.2:port
    assert.equal(n.name, (pogo.connect(n.name)))
    assert.equal(n.name, (c:call(n, "pogo", "node")))
    local info = c:call(n, R, "info")
    assert.equal("0.0.0.0:" .. port, info.listen)
    assert.equal(n.name, info.name)
    -- a node that only hears its name (gossip from this node) dials it by that name
    local m = c:start_node { name = "hearsay", seeds = { c.self_name:match("@(.*)$") } }
    c:wait_meshed { n, m }
    assert.is_true(c:sees(m, n.name))
    assert.is_true(c:sees(n, m.name))
    -- the warning is for 0.0.0.0 without advertise, not for this node
    assert.is_nil(n.err:find("without advertise", 1, true))
    c:stop(m)
    c:stop(n)
  end)

  it("gives the host and port of a port mapping in front of the node", function()
    local probe = uv.new_tcp() -- a free port for the node to listen on
    assert(probe:bind("127.0.0.1", 0))
    local port = probe:getsockname().port
    probe:close()
    local map = tcp_proxy.new(port)
    local ok, err = pcall(function()
      local n = c:start_node { name = "mapped", port = port, extra = { "--advertise", "127.0.0.1:" .. map.port } }
      assert.equal("mapped@127.0.0.1:" .. map.port, n.name)
      assert.equal(n.name, (pogo.connect(n.name)))
      assert.equal(n.name, (c:call(n, "pogo", "node")))
      assert.equal("127.0.0.1:" .. port, c:call(n, R, "info").listen)
      assert.is_true(#map.up > 0) -- through the mapping
      c:stop(n)
    end)
    map.close()
    assert(ok, err)
  end)

  it("warns about 0.0.0.0 without advertise", function()
    local n = c:start_node { name = "lost", extra = { "--host", "0.0.0.0" } }
    assert.truthy(n.name:find("^lost@0%.0%.0%.0:"))
    cluster.wait_until(function()
      return n.err:find("listening on 0.0.0.0 without advertise: peers cannot reach this node by its name", 1,
                        true)
    end, 5000, "the warning")
    c:kill(n)
  end)

  it("refuses a malformed address", function()
    local ok, err = pcall(c.start_node, c, { name = "bad", extra = { "--advertise", "127.0.0.1:99999" } })
    assert.is_false(ok)
    assert.truthy(tostring(err):find('--advertise: must be "host:port" or "host"', 1, true), err)
  end)
end)
