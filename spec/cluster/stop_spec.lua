-- The orderly stop of a bin/pogo node (SIGTERM), seen from outside it: every
-- child's terminate, the distributed children on the other node, nodedown
-- "shutdown" at the peers, no dials afterwards, the timeout, a seed's redials.
-- The nodes run spec/support/stop_node.lua; their children report to this
-- process (registered as "stop_events") with uv.hrtime() stamps, a clock the
-- processes of one machine share.
local pogo = require "pogo"
local uv = require "luv"
local cluster = require "support.cluster"

local S = "spec/support/stop_node.lua"
local R = "support.stop_remote"

local function is(kind, node, id)
  return function(m)
    return type(m) == "table" and m[1] == kind and (node == nil or m[2] == node) and (id == nil or m[3] == id)
  end
end

-- Listen where a node listened, for `ms`: the connections made to it and
-- when (ms from the start).
local function count_dials(port, ms)
  local srv = uv.new_tcp()
  assert(srv:bind("127.0.0.1", port))
  local at, t0 = {}, uv.hrtime()
  assert(srv:listen(128, function(err)
    if err then return end
    local client = uv.new_tcp()
    if pcall(srv.accept, srv, client) then at[#at + 1] = (uv.hrtime() - t0) / 1e6 end
    client:close()
  end))
  pogo.sleep(ms)
  srv:close()
  return #at, at
end

local function port_of(node) return tonumber(node.addr:match(":(%d+)$")) end

describe("an orderly stop", function()
  local c

  setup(function()
    c = cluster.new { timeout_ms = 1000, heartbeat_ms = 200 }
    c:start_self()
    pogo.register("stop_events", pogo.self())
    pogo.monitor_nodes(true)
  end)

  after_each(function()
    c:teardown() -- every node, killed by pid
  end)

  teardown(function()
    pogo.stop()
  end)

  -- Two nodes running "dstop"; `a` also runs the local tree. Returns a, b.
  local function two_nodes(a_args, a_extra)
    local b = c:start_node { script = S, args = { c.self_name, "no" } }
    local a = c:start_node { script = S, args = a_args, seeds = { b }, extra = a_extra }
    c:wait_meshed { a, b }
    cluster.wait_until(function()
      for _, n in ipairs { a, b } do
        local ok, ns = c:rpc(n, R, "nodes", {}, 1000)
        if not ok or #ns ~= 2 then return false end
      end
      return true
    end, 10000, "both supervisors in the ring")
    return a, b
  end

  it("on SIGTERM runs every terminate, moves the distributed children before it exits, "
     .. "tells its peers, and is not dialed again", function()
    local marker = os.tmpname()
    os.remove(marker)
    finally(function() os.remove(marker) end)
    local a, b = two_nodes({ c.self_name, "yes", "", marker })
    for _, id in ipairs { "l1", "l2", "l3" } do cluster.expect(is("started", a.name, id), 5000, "local " .. id) end
    -- distributed children: two owned by a, one by b; the first of a's takes
    -- 500 ms to terminate, which holds up no other child's move
    local on_a, on_b, where = {}, {}, {}
    for i = 1, 200 do
      local id = "d" .. i
      local owner = c:call(a, R, "node_for", { id })
      if owner == a.name and #on_a < 2 then on_a[#on_a + 1] = id end
      if owner == b.name and #on_b < 1 then on_b[#on_b + 1] = id end
      if #on_a == 2 and #on_b == 1 then break end
    end
    assert.are.same({ 2, 1 }, { #on_a, #on_b })
    c:call(a, R, "request", { c.self_name, { on_a[1] }, 500 })
    c:call(a, R, "request", { c.self_name, { on_a[2], on_b[1] } })
    for _ = 1, 3 do
      local m = cluster.expect(is("started"), 5000, "a distributed child started")
      where[m[3]] = m[2]
    end
    assert.are.same({ a.name, a.name, b.name }, { where[on_a[1]], where[on_a[2]], where[on_b[1]] })

    assert.equal(0, uv.kill(a.pid, "sigterm"))
    assert.are.same({ code = 0, signal = 0 }, c:wait_exit(a, 20000))

    -- every terminate ran: the distributed supervisor's (started last) first,
    -- all at once, then the local tree's in reverse start order; each child
    -- of a started on b as soon as it had stopped on a, before a exited
    local terminated, stopped_at, moved = {}, {}, {}
    while #terminated < 5 or not (moved[on_a[1]] and moved[on_a[2]]) do
      local m = cluster.expect(function(x)
        return is("terminated", a.name)(x) or (is("started", b.name)(x) and where[x[3]] == a.name)
      end, 5000, "the terminates on a and the starts on b")
      if m[1] == "terminated" then
        terminated[#terminated + 1] = m[3]
        stopped_at[m[3]] = m[5]
      else
        moved[m[3]] = moved[m[3]] or m[4]
      end
    end
    assert.are.same({ on_a[2], on_a[1], "l3", "l2", "l1" }, terminated)
    for _, id in ipairs(on_a) do
      local after_stop, after_exit = (moved[id] - stopped_at[id]) / 1e6, (moved[id] - a.exit_ns) / 1e6
      assert.is_true(after_stop <= 100, id .. " started on b " .. after_stop .. " ms after it stopped on a")
      assert.is_true(after_exit <= 100, id .. " started on b " .. after_exit .. " ms after a exited")
    end
    -- they keep running there: their requests, made on a, are held by b now
    for _, id in ipairs(on_a) do
      cluster.wait_until(function()
        local node, held = c:call(b, R, "where", { id })
        return node == b.name and held
      end, 2000, id .. " held and run by b")
    end
    local f = assert(io.open(marker))
    assert.equal("TERM\n", f:read("a")) -- the program got its kill_signal
    f:close()

    -- both peers saw nodedown "shutdown"
    cluster.expect(function(m) return is("nodedown", a.name)(m) and m[3] == "shutdown" end, 5000, "nodedown here")
    cluster.expect(function(m) return is("nodedown", b.name, a.name)(m) and m[4] == "shutdown" end, 5000,
      "nodedown at b")
    -- and neither dials it again: no peer wants it, and no connection comes
    local here = pogo.dist_info().peers[a.name]
    assert.are.same({ false, true }, { here.wanted, here.left })
    local there = c:call(b, "pogo", "dist_info").peers[a.name]
    assert.are.same({ false, true }, { there.wanted, there.left })
    local dials = count_dials(port_of(a), 1000)
    assert.equal(0, dials)
  end)

  it("a child's terminate may call its own supervisor while it stops: every call is answered at once", function()
    local a, b = two_nodes({ c.self_name, "no" })
    local id
    for i = 1, 200 do
      if c:call(a, R, "node_for", { "t" .. i }) == a.name then id = "t" .. i break end
    end
    assert.is_not_nil(id)
    c:call(a, R, "request_calling", { c.self_name, id })
    cluster.expect(is("started", a.name, id), 5000, "the child on a")
    local t0 = uv.hrtime()
    assert.equal(0, uv.kill(a.pid, "sigterm"))
    local m = cluster.expect(is("calls", a.name, id), 5000, "the calls of its terminate")
    assert.are.same({ code = 0, signal = 0 }, c:wait_exit(a, 20000))
    -- (each waited for the child's whole shutdown time, 5 s, and the child was killed)
    local r = m[4]
    assert.is_true(r.ms < 1000, "the calls took " .. r.ms .. " ms")
    assert.is_true((a.exit_ns - t0) / 1e6 < 2000, "a exited " .. (a.exit_ns - t0) / 1e6 .. " ms after SIGTERM")
    cluster.expect(is("terminated", a.name, id), 1000, "its terminate done")
    -- the views read the state, as ever: it still runs on a, and the ring is b's alone
    assert.are.same({ "table" }, r.which)
    assert.are.same({ "number" }, r.count)
    assert.are.same({ true }, r.whereis)
    assert.are.same({ 1 }, r.nodes)
    -- a stopping supervisor records no request; b records the termination
    assert.are.same({ nil, "stopping" }, r.start)
    assert.are.same({ true }, r.terminate)
    cluster.wait_until(function()
      local node, held = c:call(b, R, "where", { id })
      return node == nil and not held
    end, 5000, id .. " run and held by no node")
    assert.is_nil((c:call(b, R, "where", { id .. "+" })))
  end)

  it("kills what is left at --stop-timeout-ms and still exits 0", function()
    local a = two_nodes({ c.self_name, "yes", "yes" }, { "--stop-timeout-ms", "1000" })
    for _, id in ipairs { "l1", "l2", "l3" } do cluster.expect(is("started", a.name, id), 5000, "local " .. id) end
    local t0 = uv.hrtime()
    assert.equal(0, uv.kill(a.pid, "sigterm"))
    assert.are.same({ code = 0, signal = 0 }, c:wait_exit(a, 20000))
    local ms = (a.exit_ns - t0) / 1e6
    assert.is_true(ms >= 950 and ms < 2500, "exited after " .. ms .. " ms")
    -- l3 stopped in order; then "stubborn" ignored its shutdown and held up
    -- l2 and l1, which were killed at the timeout (no terminate)
    cluster.expect(is("terminated", a.name, "l3"), 1000, "l3 terminated")
    assert.is_nil(pogo.receive(is("terminated", a.name), 200))
  end)

  it("dials a seed that stopped again every backoff_max (2 s), not in a burst", function()
    local seed = c:start_node { script = S, args = { c.self_name, "no" } }
    local t = c:start_node { script = S, args = { c.self_name, "no" }, seeds = { seed } }
    c:wait_meshed { seed, t }
    assert.are.same({ code = 0, signal = 0 }, c:stop(seed, 20000))
    local n, at = count_dials(port_of(seed), 2600)
    assert.equal(1, n, "dials at " .. table.concat(at, ", ") .. " ms")
    assert.is_true(at[1] >= 1500, "first dial after " .. at[1] .. " ms")
    local info = c:call(t, "pogo", "dist_info").peers[seed.name]
    assert.are.same({ false, true, true }, { info.wanted, info.left, info.seed })
  end)
end)
