-- The mesh: joining from one seed, one link per pair, simultaneous dials,
-- unreachable seeds, rejoining, disconnect and block.
local pogo = require "pogo"
local cluster = require "support.cluster"

local R = "support.remote"

describe("mesh", function()
  local c

  setup(function()
    c = cluster.new { timeout_ms = 1000, heartbeat_ms = 200 }
    c:start_self()
  end)

  teardown(function()
    c:teardown()
    pogo.stop()
  end)

  -- every node's up links, by peer: {[peer] = dialer}
  local function up_links(node)
    local info = node and c:call(node, R, "info") or pogo.dist_info()
    local ups, count = {}, 0
    for _, l in ipairs(info.links) do
      if l.state == "up" then
        count = count + 1
        ups[l.peer] = true
      end
    end
    local dialers = {}
    for peer, p in pairs(info.peers) do
      if p.up then dialers[peer] = p.dialer end
    end
    return ups, count, dialers, info
  end

  it("local_cluster's mesh(n) without a seed joins the spec's node too", function()
    local nodes = c:mesh(3, nil, 5000)
    assert.are.equal(3, #pogo.nodes())
    for _, n in ipairs(nodes) do c:kill(n) end
  end)

  it("joins 5 nodes meshed from a single seed each, one link per pair", function()
    local nodes = c:mesh(5, c.self_name)
    local all = { { name = c.self_name } }
    for _, n in ipairs(nodes) do all[#all + 1] = n end
    local dialer_of = {}
    for _, n in ipairs(all) do
      local remote = n.name ~= c.self_name and n or nil
      local ups, count, dialers = up_links(remote)
      assert.are.equal(#all - 1, count, n.name .. " has one up link per peer")
      for _, o in ipairs(all) do
        if o ~= n then
          assert.is_true(ups[o.name] ~= nil, n.name .. " has a link to " .. o.name)
          local key = n.name < o.name and n.name .. " " .. o.name or o.name .. " " .. n.name
          if dialer_of[key] then
            assert.are.equal(dialer_of[key], dialers[o.name], "both ends agree on " .. key)
          end
          dialer_of[key] = dialers[o.name]
        end
      end
    end
    for _, n in ipairs(nodes) do c:kill(n) end
  end)

  it("resolves simultaneous dials to one link both ends agree on", function()
    -- x and y learn of each other from the spec's node at the same moment
    -- (gossip when each comes up), so both dial at once
    for round = 1, 3 do
      local x = c:start_node { name = "x" .. round }
      local y = c:start_node { name = "y" .. round }
      c:connect(x)
      c:connect(y)
      cluster.wait_until(function()
        local _, cx = up_links(x)
        local _, cy = up_links(y)
        local ix, iy = c:call(x, R, "info"), c:call(y, R, "info")
        local pending = 0
        for _, l in ipairs(ix.links) do if l.state ~= "up" then pending = pending + 1 end end
        for _, l in ipairs(iy.links) do if l.state ~= "up" then pending = pending + 1 end end
        return cx == 2 and cy == 2 and pending == 0 -- the spec's node and each other
      end, 5000, "one settled link between " .. x.name .. " and " .. y.name)
      local _, _, dx = up_links(x)
      local _, _, dy = up_links(y)
      assert.are.equal(dx[y.name], dy[x.name])
      c:kill(x)
      c:kill(y)
    end
  end)

  it("a node and the spec's node dialing each other by address at once: one link, no nodedown, nothing lost",
     function()
    -- this node dials the node and stops its own loop for a moment once its
    -- HELLO is out; the node, seeing that handshake, dials this one and then
    -- sends. A dial that starts while the other's is being answered must wait
    -- for it: the two sides once settled on different links (this one
    -- dropped its own dial for the node's, which the node had brought up:
    -- the node saw a nodedown and what it had sent on it was lost)
    local me = pogo.node()
    local addr = me:match("@(.+)$")
    pogo.register("dial_back_sink", pogo.self())
    pogo.monitor_nodes(true)
    finally(function()
      pogo.monitor_nodes(false)
      pogo.unregister("dial_back_sink")
    end)
    for round = 1, 8 do
      local n = c:start_node { name = "db" .. round, script = "spec/support/dial_back_node.lua",
                               args = { addr, me, "100" } }
      pogo.spawn(function() c:connect(n) end)
      cluster.wait_until(function()
        for _, l in ipairs(pogo.dist_info().links) do
          if l.outgoing and l.state == "handshake" then return true end
        end
        return false
      end, 5000, "this node's dial to " .. n.name)
      pogo.yield() -- a turn of the loop: the HELLO goes out
      local t0 = os.clock()
      while os.clock() - t0 < 0.2 do end -- the node answers, sees the handshake and dials meanwhile
      local got = 0
      while true do
        local m = pogo.receive(function(x) return type(x) == "table" and x[1] == "db" and x[2] == n.name end, 5000)
        assert(m, string.format("round %d: %d of 100 messages, then nothing", round, got))
        if m[3] == "done" then break end
        got = got + 1
        assert.are.equal(got, m[3], "round " .. round .. ": the messages in order, none lost")
      end
      assert.are.equal(100, got)
      assert.are.same({}, c:call(n, "support.dial_back", "downs"))
      local down = pogo.receive(function(x) return type(x) == "table" and x[1] == "nodedown" and x[2] == n.name end, 0)
      assert.is_nil(down, "this node saw " .. n.name .. " go down")
      local function up() return pogo.receive(function(x) return x[1] == "nodeup" and x[2] == n.name end, 0) end
      assert.is_not_nil(up(), "a nodeup of " .. n.name)
      assert.is_nil(up(), "a second nodeup of " .. n.name)
      c:kill(n)
      cluster.expect(function(x) return x[1] == "nodedown" and x[2] == n.name end, 5000, n.name .. "'s nodedown")
    end
  end)

  it("an idle link carries one heartbeat exchange a beat, and both ends know its round trip", function()
    local a = c:start_node { name = "beat_a", heartbeat_ms = 50 }
    local b = c:start_node { name = "beat_b", heartbeat_ms = 50 }
    c:connect(a)
    c:connect(b)
    assert.are.equal(b.name, c:call(a, R, "connect", { b.addr }))
    local function link(node, peer)
      local l
      cluster.wait_until(function()
        l = c:call(node, R, "dist_stats").links[peer]
        return l and l.rtt_ms
      end, 3000, "the round trip of " .. node.name .. " to " .. peer)
      return l
    end
    local a0, b0 = link(a, b.name), link(b, a.name)
    local t0 = pogo.now()
    pogo.sleep(1000)
    local a1 = link(a, b.name)
    local beats = (pogo.now() - t0) / 50
    -- a PING or a PONG: a 4-byte length, a kind and an 8-byte token
    local frame = 13
    local frames = (a1.bytes_in - a0.bytes_in + a1.bytes_out - a0.bytes_out) / frame
    -- the dialer's PING and its PONG every beat, the other side's every 8th:
    -- 2.25 frames a beat (both sides PINGing every beat made it 4)
    assert.is_true(frames <= 2.7 * beats, string.format("%.0f frames in %.0f beats", frames, beats))
    assert.is_true(frames >= 1.5 * beats, string.format("%.0f frames in %.0f beats", frames, beats))
    assert.is_true(a1.rtt_ms > 0 and b0.rtt_ms > 0)
    c:kill(a)
    c:kill(b)
  end)

  it("retries an unreachable seed and joins once it listens", function()
    local s = c:start_node { name = "late" }
    local port = s.addr:match(":(%d+)$")
    c:stop(s)
    local m = c:start_node { name = "waiter", seeds = { s.addr } }
    c:connect(m)
    pogo.sleep(300) -- several failed dials
    assert.are.same({ c.self_name }, c:call(m, R, "nodes"))
    local s2 = c:start_node { name = "late", port = tonumber(port) }
    cluster.wait_until(function()
      for _, p in ipairs(c:call(m, R, "nodes")) do
        if p == s2.name then return true end
      end
    end, 3000, "the waiter to reach its seed")
    c:kill(m)
    c:kill(s2)
  end)

  it("lets a node that comes back rejoin the mesh", function()
    local nodes = c:mesh(3, c.self_name)
    pogo.monitor_nodes(true)
    local gone = nodes[2]
    local port = gone.addr:match(":(%d+)$")
    c:kill(gone)
    cluster.expect(function(m) return m[1] == "nodedown" and m[2] == gone.name end, 2000, "nodedown")
    local back = c:start_node { name = "n" .. gone.id, port = tonumber(port), seeds = { nodes[1] } }
    assert.are.equal(gone.name, back.name)
    cluster.expect(function(m) return m[1] == "nodeup" and m[2] == back.name end, 3000, "nodeup")
    c:wait_meshed { nodes[1], back, nodes[3] }
    -- the killed node's record stays in c.nodes; alive() lists the running ones
    local alive = {}
    for _, n in ipairs(c:alive()) do alive[n] = true end
    assert.is_nil(alive[gone])
    assert.is_true(alive[back] and alive[nodes[1]] and alive[nodes[3]])
    pogo.monitor_nodes(false)
    for _, n in ipairs { nodes[1], back, nodes[3] } do c:kill(n) end
  end)

  it("disconnects a node on both sides with reason disconnect, and neither redials", function()
    local a = c:start_node { name = "da", seeds = { c.self_name:match("@(.*)$") } }
    cluster.wait_until(function()
      for _, n in ipairs(pogo.nodes()) do if n == a.name then return true end end
    end, 3000, "da to dial its seed")
    local me = pogo.self()
    c:call(a, R, "node_watcher", { me })
    cluster.expect(function(m) return m[1] == "watching" end)
    pogo.monitor_nodes(true)
    assert.is_true(pogo.disconnect(a.name))
    local down = cluster.expect(function(m) return m[1] == "nodedown" end, 1000, "local nodedown")
    assert.are.same({ "nodedown", a.name, "disconnect" }, down)
    -- not even its seed entry brings it back
    assert.is_nil(pogo.receive(function(m) return m[1] == "nodeup" end, 400))
    -- the other side saw it too
    c:connect(a)
    local events = c:call(a, R, "node_events")
    assert.are.same({ "nodedown", c.self_name, "disconnect" }, events[#events - 1])
    assert.are.same({ "nodeup", c.self_name }, events[#events])
    pogo.monitor_nodes(false)
    c:kill(a)
  end)

  it("keeps a blocked node away until it is unblocked", function()
    local a = c:start_node { name = "ba" }
    c:connect(a)
    local function has_a()
      for _, n in ipairs(pogo.nodes()) do if n == a.name then return true end end
      return false
    end
    pogo.block(a.name, true)
    assert.is_false(has_a())
    -- its redials are refused, and ours fail
    local name, err = pogo.connect(a.addr)
    assert.is_nil(name)
    assert.matches("blocked", err)
    pogo.sleep(300)
    assert.is_false(has_a())
    pogo.block(a.name, false)
    cluster.wait_until(has_a, 3000, "reconnection after unblock")
    c:kill(a)
  end)
end)
