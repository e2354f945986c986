-- Nodes that leave on purpose are redialed by no one: one that stops cleanly
-- (BYE "shutdown") or disconnects (BYE "disconnect", as bin/pogo's observer
-- does when done) is not dialed again by the nodes that got its BYE, nor by
-- those that only knew its name from gossip (they are told: LEFT), nor
-- brought back by a gossip older than its BYE; a new incarnation under the
-- same name still joins.
local pogo = require "pogo"
local cluster = require "support.cluster"

local R = "support.remote"

describe("leaving on purpose", function()
  local c

  setup(function()
    c = cluster.new { timeout_ms = 1000, heartbeat_ms = 200 }
    c:start_self()
  end)

  teardown(function()
    c:teardown()
    pogo.stop()
  end)

  local function peer(node, name)
    local info = node and c:call(node, R, "info") or pogo.dist_info()
    return info.peers[name]
  end


  -- The spec's node is b, a's only peer at first. d joins through b, learns
  -- a from b's gossip and dials it; a refuses d (blocked there), so d never
  -- gets a's BYE: a leaves while d is still dialing it.
  for _, how in ipairs { "stop", "leave" } do
    it("a node learned from gossip and never reached is not redialed once it leaves (" .. how .. ")", function()
      local a = c:start_node { name = "la_" .. how }
      local port = tonumber(a.addr:match(":(%d+)$"))
      c:connect(a)
      local d = c:start_node { name = "ld_" .. how }
      c:call(a, R, "block", { d.name, true })
      c:connect(d) -- d joins b, whose gossip names a
      cluster.wait_until(function()
        local p = peer(d, a.name)
        return p and p.wanted and not p.up
      end, 3000, d.name .. " to dial " .. a.name .. " (learned from gossip)")
      if how == "stop" then
        c:stop(a) -- SIGTERM: pogo.stop, BYE "shutdown" to b
      else
        local leaver = c:call(a, R, "leaver")
        pogo.send(leaver, "leave") -- BYE "disconnect" to b, then a's links close
      end
      cluster.wait_until(function()
        local p = peer(nil, a.name)
        return p and not p.up and not p.wanted
      end, 3000, "b to see " .. a.name .. " leave")
      -- b told d, which stops dialing a
      cluster.wait_until(function()
        local p = peer(d, a.name)
        return not p.up and not p.wanted and p.left
      end, 3000, d.name .. " to stop dialing " .. a.name)
      if how == "leave" then c:kill(a) end
      -- a new incarnation under the same name joins both (it dials the names
      -- it learns; gossip about it does not make them dial it)
      c:wait_exit(a, 5000)
      local a2 = c:start_node { name = "la_" .. how, port = port, seeds = { c.self_name } }
      assert.are.equal(a.name, a2.name)
      cluster.wait_until(function() return c:sees(d, a2.name) end, 5000, a2.name .. " to reach " .. d.name)
      c:wait_meshed { a2, d }
      local p = peer(d, a2.name)
      assert.is_true(p.up and p.wanted and not p.left)
      c:kill(a2)
      c:kill(d)
    end)
  end

  -- The spec's node is x. The observer o disconnects x, then y (which x had
  -- kept away until then, and which is connected to o) connects to x: y's
  -- gossip lists o, but x got o's BYE: x must not dial o again. Then o
  -- leaves y too and its links close: no one dials it.
  it("an observer that disconnected is not brought back by another node's older gossip", function()
    local o = c:start_node { name = "observer-lo" }
    local y = c:start_node { name = "ly", seeds = { o } }
    pogo.block(y.name, true)
    finally(function() pogo.block(y.name, false) end)
    c:connect(o)
    cluster.wait_until(function() return c:sees(o, y.name) end, 3000, "y to join o")
    local leaver = c:call(o, R, "leaver")
    pogo.send(leaver, { "disconnect", c.self_name })
    cluster.wait_until(function()
      local p = peer(nil, o.name)
      return p and not p.up and not p.wanted
    end, 3000, "x to get o's BYE")
    pogo.block(y.name, false) -- x dials y: y's gossip lists o
    cluster.wait_until(function() return c:sees(y, c.self_name) end, 3000, "x and y to connect")
    c:call(y, R, "nodes") -- y's gossip (sent as the link came up) is in before this answer
    local p = peer(nil, o.name)
    assert.is_false(p.wanted, "x dials o again, from y's gossip")
    assert.is_false(p.up)
    -- o leaves y too (as an observer does), and closes its links
    c:call(y, R, "send", { leaver, "leave" })
    cluster.wait_until(function()
      local q = peer(y, o.name)
      return not q.up and not q.wanted
    end, 3000, "y to get o's BYE")
    c:kill(o)
    for _, node in ipairs { false, y } do
      local q = peer(node or nil, o.name)
      assert.is_false(q.wanted or q.up, (node and node.name or "x") .. " still dials o")
    end
    c:kill(y)
  end)
end)
