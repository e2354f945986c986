-- pogo.registry across real node processes: visibility, sends, calls and casts
-- through {"via", "pogo.registry", name}, monitors, SIGKILLed nodes and
-- conflicts after a netsplit heals. Single-node behaviour is in
-- spec/registry_spec.lua.
local pogo = require "pogo"
local uv = require "luv"
local registry = require "pogo.registry"
local cluster = require "support.cluster"

local R = "support.registry_remote"
local VIA = "pogo.registry"

local function eventually(pred, what, timeout_ms)
  return cluster.wait_until(pred, timeout_ms or 5000, what)
end

local function rw(tag)
  return function(m) return type(m) == "table" and m[1] == "rw" and m[2] == tag end
end

local function contains(list, x)
  for _, v in ipairs(list) do
    if v == x then return true end
  end
  return false
end

local function down_of(ref)
  return function(m) return type(m) == "table" and m[1] == "DOWN" and m[2] == ref end
end

describe("pogo.registry across nodes", function()
  local c, a, b, d

  -- Every node in `nodes` and this one sees the registry of all the others.
  local function registries_meet(nodes)
    for _, n in ipairs(nodes) do c:call(n, R, "start", {}) end
    eventually(function()
      if #registry.info().peers ~= #nodes then return false end
      for _, n in ipairs(nodes) do
        if #c:call(n, R, "peers", {}) ~= #nodes then return false end
      end
      return true
    end, "the registry processes to find each other")
  end

  local function whereis(node, name)
    if node == "self" then return registry.whereis(name) end
    return c:call(node, R, "whereis", {name})
  end

  -- Wait until every node in `where` (default: this one, a, b, d) has `pid` (nil: nothing) as `name`.
  local function converge(name, pid, where)
    for _, node in ipairs(where or {"self", a, b, d}) do
      eventually(function() return whereis(node, name) == pid end,
        string.format("%s to see %s as %s", node == "self" and "this node" or node.name,
          tostring(pid), tostring(name)))
    end
  end

  setup(function()
    c = cluster.new { timeout_ms = 2000, heartbeat_ms = 200 }
    c:start_self { log = false }
    a, b = c:pair({ name = "rga" }, { name = "rgb" })
    d = c:start_node { name = "rgd", seeds = { a } }
    c:wait_meshed { a, b, d }
    registries_meet { a, b, d }
  end)

  teardown(function()
    c:teardown()
    pogo.stop()
  end)

  before_each(function()
    while pogo.receive(0) do end
  end)

  it("shows a registration on A to B, C and this node, and refuses the name there", function()
    local h, ok = c:call(a, R, "holder", {"seen"})
    assert.is_true(ok)
    converge("seen", h)
    local found = false
    for _, name in ipairs(registry.names()) do found = found or name == "seen" end
    assert.is_true(found)
    local other, ok2, why = c:call(b, R, "holder", {"seen"})
    assert.is_nil(ok2)
    assert.are.equal("taken", why)
    assert.are.same({nil, "taken", h}, {registry.register("seen")})
    pogo.send(other, "stop")
    pogo.send(h, "stop")
    converge("seen", nil)
  end)

  it("sends, calls and casts via the registry, to a server it names", function()
    local srv = c:call(a, R, "counter", {"counter", 10})
    converge("counter", srv)
    assert.are.equal(11, pogo.call({"via", VIA, "counter"}, 1))
    assert.is_true(pogo.cast({"via", VIA, "counter"}, {"add", 5}))
    assert.are.equal(17, pogo.call({"via", VIA, "counter"}, 1))
    assert.is_true(c:call(b, R, "cast_via", {"counter", {"add", 3}}))
    assert.are.equal(21, c:call(b, R, "call_via", {"counter", 1}))
    -- a second server of that name, on another node, is refused
    local dup, why = c:call(d, R, "counter", {"counter", 0})
    assert.is_nil(dup)
    assert.are.equal("already started: " .. tostring(srv), why)
    -- plain sends, from here and from another node
    local h = c:call(b, R, "holder", {"fwd"})
    converge("fwd", h, {"self", d})
    pogo.send(h, {"forward", pogo.self()})
    cluster.expect(function(m) return type(m) == "table" and m[1] == "fwd" and m[3] == "forwarding" end, 2000)
    pogo.send({"via", VIA, "fwd"}, "from the spec")
    c:call(d, R, "send_via", {"fwd", "from rgd"})
    for _, want in ipairs {"from the spec", "from rgd"} do
      cluster.expect(function(m) return type(m) == "table" and m[1] == "fwd" and m[3] == want end, 2000, want)
    end
    pogo.send(h, "stop")
    pogo.exit(srv, "kill")
    converge("counter", nil)
    local ok, err = pcall(pogo.call, {"via", VIA, "counter"}, 1)
    assert.is_false(ok)
    assert.matches("^noproc", err)
  end)

  it("restarts a node's registry process that was killed: its names come back everywhere", function()
    local h = c:call(a, R, "holder", {"kept"})
    converge("kept", h)
    local old = c:call(a, R, "start", {})
    local ref = pogo.monitor(old)
    pogo.exit(old, "kill")
    cluster.expect(down_of(ref), 2000, "the registry process of " .. a.name .. " to go")
    -- (nothing calls the registry on a meanwhile: a call there would start it again)
    converge("kept", h, {"self", b, d}) -- dropped by the others while it was down, and sent again
    local now = c:call(a, R, "start", {})
    assert.is_true(now ~= old and pogo.alive(now))
    local other, ok, why = c:call(b, R, "holder", {"kept"})
    assert.are.same({nil, "taken"}, {ok, why}, tostring(other))
    pogo.send(other, "stop")
    pogo.send(h, "stop")
    converge("kept", nil)
  end)

  it("fires monitors on every node on unregister and on death", function()
    local me = pogo.self()
    local function watch(name, tag)
      local ref = registry.monitor(name)
      c:call(b, R, "watcher", {name, me, tag})
      cluster.expect(rw(tag), 2000, tag .. " ready")
      return ref
    end
    local function downs(ref, tag, name, pid)
      local here = cluster.expect(down_of(ref), 3000, "the DOWN of " .. name .. " here")
      local there = cluster.expect(rw(tag), 3000, "the DOWN of " .. name .. " on rgb")[3]
      assert.are.same({"DOWN", ref, {"via", VIA, name}}, {here[1], here[2], here[3]})
      assert.are.same({"via", VIA, name}, there[3])
      assert.are.equal(pid, here[5])
      assert.are.equal(pid, there[5])
      return here[4], there[4]
    end
    -- unregister by the holder
    local h1 = c:call(a, R, "holder", {"m1"})
    converge("m1", h1, {"self", b})
    local ref = watch("m1", "w1")
    pogo.send(h1, "unregister")
    assert.are.same({"unregistered", "unregistered"}, {downs(ref, "w1", "m1", h1)})
    -- unregister from another node: the holder's node removes it
    local h2 = c:call(a, R, "holder", {"m2"})
    converge("m2", h2, {"self", b})
    ref = watch("m2", "w2")
    assert.is_true(registry.unregister("m2"))
    assert.are.same({"unregistered", "unregistered"}, {downs(ref, "w2", "m2", h2)})
    converge("m2", nil)
    -- a normal exit, a crash, a kill
    for i, how in ipairs {"stop", "crash", "kill"} do
      local name = "m-exit-" .. i
      local h = c:call(a, R, "holder", {name})
      converge(name, h, {"self", b})
      ref = watch(name, "we" .. i)
      if how == "kill" then pogo.exit(h, "kill") else pogo.send(h, how) end
      local r1, r2 = downs(ref, "we" .. i, name, h)
      if how == "stop" then
        assert.are.same({"normal", "normal"}, {r1, r2})
      elseif how == "kill" then
        assert.are.same({"killed", "killed"}, {r1, r2})
      else
        -- a crash reason, as a process monitor gives it (rgb's was forwarded
        -- inside a message, as a plain table)
        assert.are.equal("pogo.crash", (getmetatable(r1) or {}).__name)
        assert.matches("holder crashed on purpose", tostring(r1))
        assert.matches("holder crashed on purpose", r2.error)
        assert.matches("registry_remote.lua", r2.traceback, 1, true)
      end
      converge(name, nil)
    end
  end)

  it("runs on every node from its start: a node that never required it sees the names", function()
    local p = c:start_node { name = "rgp", seeds = { a } }
    finally(function() c:kill(p) end)
    c:connect(p)
    -- nothing has required pogo.registry on rgp: pogo.start started its process
    local ok, pid = c:rpc(p, "pogo", "whereis", { "pogo.registry" })
    assert.is_true(ok, tostring(pid))
    assert.is_true(pogo.is_pid(pid), "no registry process on a plain node")
    local h = c:call(a, R, "holder", {"seen-by-plain"})
    eventually(function() return c:call(p, "pogo.registry", "whereis", {"seen-by-plain"}) == h end,
      "rgp to see rga's name")
  end)

  it("drops a SIGKILLed node's names everywhere within 100 ms", function()
    local k = c:start_node { name = "rgk", seeds = { a } }
    c:wait_meshed { a, b, d, k }
    registries_meet { a, b, d, k }
    local N = 50
    assert.are.equal(N, c:call(k, R, "many", {"k", N}))
    eventually(function()
      return registry.info().names >= N and not c:call(b, R, "none_of", {"k", N})
        and registry.whereis({"k", N}) ~= nil and c:call(b, R, "whereis", {{"k", N}}) ~= nil
    end, "rgk's names here and on rgb")
    local me = pogo.self()
    -- watchers stamp each DOWN with the monotonic clock when it arrives (a
    -- node drops all of rgk's names in the one step that sends the DOWN)
    require(R).watcher({"k", N}, me, "self")
    cluster.expect(rw("self"), 2000)
    for _, n in ipairs {b, d} do
      c:call(n, R, "watcher", {{"k", N}, me, n.name})
      cluster.expect(rw(n.name), 2000)
    end
    local t0 = uv.hrtime()
    assert.are.equal(0, uv.kill(k.pid, "sigkill"))
    for _, n in ipairs {"self", b, d} do
      local tag = n == "self" and "self" or n.name
      local m = cluster.expect(rw(tag), 2000, "the DOWN on " .. tag)
      local ms = (m[4] - t0) / 1e6
      assert.are.equal("noconnection", m[3][4])
      assert.is_true(ms < 100, tag .. " dropped the name after " .. ms .. " ms")
      -- every name of rgk is gone, not just the watched one
      if n == "self" then
        assert.is_true(require(R).none_of("k", N))
      else
        assert.is_true(c:call(n, R, "none_of", {"k", N}))
      end
    end
    c:wait_exit(k)
  end)

  it("fires no monitor of a name that moved between two processes of a node while it sent its sync", function()
    local me = pogo.self()
    local s = c:start_node { name = "rgs", seeds = { a } }
    local r = c:start_node { name = "rgr", seeds = { a } }
    c:wait_meshed { a, b, d, s, r }
    c:call(s, R, "start", {})
    c:call(s, R, "fill", {"x", 20000}, 60000)
    c:call(r, R, "block", {s.name, true})
    eventually(function() return not contains(c:call(r, R, "peers", {}), s.name) end, "rgr apart from rgs")
    local w = c:call(r, R, "move_watcher", {3000, me})
    -- the names move on rgs while it sends rgr its sync (with its pauses)
    c:call(s, R, "moves", {3000, me})
    c:call(r, R, "block", {s.name, false})
    c:call(r, "pogo", "connect", {s.addr})
    cluster.expect(function(m) return m == "moved" end, 60000, "the moves on rgs")
    eventually(function() return c:call(r, R, "count", {}) == c:call(s, R, "count", {}) end,
      "rgr to see rgs's names", 60000)
    pogo.send(w, "done")
    local m = cluster.expect(function(x) return type(x) == "table" and x[1] == "downs" end, 10000, "the watcher")
    assert.is_true(m[2] > 0)
    assert.are.same({}, m[3])
    c:kill(s)
    c:kill(r)
  end)

  it("resolves a conflict on heal the same way on every node", function()
    local me = pogo.self()
    -- rga and rgb part; this node and rgd still see both
    c:call(a, R, "block", {b.name, true})
    eventually(function()
      return not contains(c:call(a, "pogo", "nodes", {}), b.name)
        and not contains(c:call(b, "pogo", "nodes", {}), a.name)
        and not contains(c:call(a, R, "peers", {}), b.name)
        and not contains(c:call(b, R, "peers", {}), a.name)
    end, "rga and rgb apart")
    -- "x": rga registers first; "y": rgb first (the higher node name: time decides, not names)
    local ax, okx1 = c:call(a, R, "holder", {"x"})
    local bx, okx2 = c:call(b, R, "holder", {"x"})
    local by, oky1 = c:call(b, R, "holder", {"y"})
    local ay, oky2 = c:call(a, R, "holder", {"y"})
    assert.are.same({true, true, true, true}, {okx1, okx2, oky1, oky2})
    converge("x", ax, {a})
    converge("x", bx, {b})
    converge("y", by, {b})
    converge("y", ay, {a})
    -- the nodes that see both already agree: the first registration
    converge("x", ax, {"self", d})
    converge("y", by, {"self", d})
    -- "z": rga first, then rgb; rga's goes while they are apart, and the
    -- nodes that see both fall back on rgb's
    local az = c:call(a, R, "holder", {"z"})
    local bz, okz = c:call(b, R, "holder", {"z"})
    assert.is_true(okz)
    converge("z", az, {"self", d})
    pogo.send(az, "unregister")
    converge("z", bz, {"self", d})
    local mbz = pogo.monitor(bz)
    -- watchers of the losers on their own side, and of the winners here
    c:call(b, R, "watcher", {"x", me, "bx"})
    cluster.expect(rw("bx"), 2000)
    c:call(a, R, "watcher", {"y", me, "ay"})
    cluster.expect(rw("ay"), 2000)
    local wx, wy = registry.monitor("x"), registry.monitor("y")
    local mbx, may = pogo.monitor(bx), pogo.monitor(ay)
    -- heal
    c:call(a, R, "block", {b.name, false})
    c:wait_meshed { a, b, d }
    local dbx = cluster.expect(down_of(mbx), 5000, "the exit of rgb's x")
    local day = cluster.expect(down_of(may), 5000, "the exit of rga's y")
    assert.are.same({"name_conflict", "x"}, dbx[4])
    assert.are.same({"name_conflict", "y"}, day[4])
    local w1 = cluster.expect(rw("bx"), 3000, "rgb's monitor of x")[3]
    local w2 = cluster.expect(rw("ay"), 3000, "rga's monitor of y")[3]
    assert.are.same({"via", VIA, "x"}, w1[3])
    assert.are.same({"name_conflict", "x"}, w1[4])
    assert.are.equal(bx, w1[5])
    assert.are.same({"via", VIA, "y"}, w2[3])
    assert.are.same({"name_conflict", "y"}, w2[4])
    assert.are.equal(ay, w2[5])
    converge("x", ax)
    converge("y", by)
    converge("z", bz)
    assert.is_nil(pogo.receive(down_of(mbz), 0)) -- no conflict left for z
    -- the winners never stopped holding their names here
    assert.is_nil(pogo.receive(down_of(wx), 0))
    assert.is_nil(pogo.receive(down_of(wy), 0))
    registry.demonitor(wx)
    registry.demonitor(wy)
    pogo.send(ax, "stop")
    pogo.send(by, "stop")
    pogo.send(bz, "stop")
    pogo.send(az, "stop")
    converge("x", nil)
    converge("y", nil)
    converge("z", nil)
  end)
end)
