-- pogo.pg across real node processes: replication, exits, node failures,
-- resync, scopes, table groups and monitors. Single-node behaviour is in
-- spec/pg_spec.lua.
local pogo = require "pogo"
local uv = require "luv"
local pg = require "pogo.pg"
local cluster = require "support.cluster"

local R = "support.pg_remote"

local function names(pids)
  local t = {}
  for i, p in ipairs(pids) do t[i] = tostring(p) end
  table.sort(t)
  return table.concat(t, " ")
end

local function same(a, b) return names(a) == names(b) end

local function eventually(pred, what, timeout_ms)
  return cluster.wait_until(pred, timeout_ms or 5000, what)
end

local function pg_msg(ref)
  return function(m) return type(m) == "table" and m[1] == "pg" and m[2] == ref end
end

local function pgw(tag, kind)
  return function(m) return type(m) == "table" and m[1] == "pgw" and m[2] == tag and m[3] == kind end
end

local function done_from(pid)
  return function(m) return type(m) == "table" and m[1] == "done" and m[2] == pid end
end

describe("pogo.pg across nodes", function()
  local c, a, b
  local scope_n = 0

  -- A fresh scope started here and on `nodes` (default a and b), once all of
  -- them see each other's scope process.
  local function start_all(nodes)
    nodes = nodes or {a, b}
    scope_n = scope_n + 1
    local s = "cl" .. scope_n
    pg.start(s)
    for _, n in ipairs(nodes) do c:call(n, R, "start", {s}) end
    eventually(function()
      if #pg.info(s).peers ~= #nodes then return false end
      for _, n in ipairs(nodes) do
        if #c:call(n, R, "peers", {s}) ~= #nodes then return false end
      end
      return true
    end, "the scope processes of " .. s .. " to find each other")
    return s
  end

  local function members(node, s, g)
    if node == "self" then return pg.get_members(s, g) end
    return c:call(node, R, "members", {s, g})
  end

  -- Wait until every node in `where` (default self, a, b) lists exactly `pids` in g.
  local function converge(s, g, pids, where)
    for _, node in ipairs(where or {"self", a, b}) do
      eventually(function() return same(members(node, s, g), pids) end,
        string.format("%s to list {%s} in %s", node == "self" and "this node" or node.name,
          names(pids), tostring(g)))
    end
  end

  setup(function()
    c = cluster.new { timeout_ms = 2000, heartbeat_ms = 200 }
    c:start_self { log = false }
    a, b = c:pair({ name = "pga" }, { name = "pgb" })
  end)

  teardown(function()
    c:teardown()
    pogo.stop()
  end)

  before_each(function()
    while pogo.receive(0) do end
  end)

  it("shows a join on every node, and a leave", function()
    local s = start_all()
    local me = pogo.self()
    local m = c:call(a, R, "member", {s, {"g"}})
    converge(s, "g", {m})
    assert.are.same({m}, c:call(a, R, "local_members", {s, "g"}))
    assert.are.same({}, pg.get_local_members(s, "g"))
    pg.join(s, "g", me)
    converge(s, "g", {m, me})
    pogo.send(m, {"leave", "g", me})
    cluster.expect(done_from(m), 2000)
    converge(s, "g", {me})
    pg.leave(s, "g", me)
    converge(s, "g", {})
    assert.are.same({}, pg.which_groups(s))
    assert.are.same({}, c:call(b, R, "groups", {s}))
    pogo.send(m, "stop")
  end)

  it("replicates multiple joins of one process", function()
    local s = start_all()
    local me = pogo.self()
    local m = c:call(a, R, "member", {s, {"g", "g"}})
    converge(s, "g", {m, m})
    pogo.send(m, {"leave", "g", me})
    cluster.expect(done_from(m), 2000)
    converge(s, "g", {m})
    pogo.send(m, "stop")
    converge(s, "g", {})
  end)

  it("removes a member that crashes from every node", function()
    local s = start_all()
    local m = c:call(a, R, "member", {s, {"g", {"h", 1}}})
    local m2 = c:call(b, R, "member", {s, {"g"}})
    converge(s, "g", {m, m2})
    converge(s, {"h", 1}, {m})
    pogo.send(m, "crash")
    converge(s, "g", {m2})
    converge(s, {"h", 1}, {})
    pogo.send(m2, "stop")
    converge(s, "g", {})
  end)

  it("removes a SIGKILLed node's members everywhere within 100 ms", function()
    local k = c:start_node { name = "pgk", seeds = { a } }
    c:wait_meshed { a, b, k }
    local s = start_all { a, b, k }
    c:call(k, R, "many", {s, "k", 50})
    eventually(function() return #pg.which_groups(s) == 50 and #c:call(b, R, "groups", {s}) == 50 end,
      "50 groups of pgk everywhere")
    local me = pogo.self()
    -- watchers stamp each notification with the monotonic clock when it arrives
    local w_self = require(R).watcher(s, {"k", 50}, me, "self")
    cluster.expect(pgw("self", "ready"), 2000)
    c:call(b, R, "watcher", {s, {"k", 50}, me, "b"})
    cluster.expect(pgw("b", "ready"), 2000)
    local t0 = uv.hrtime()
    assert.are.equal(0, uv.kill(k.pid, "sigkill"))
    local ms = cluster.expect(pgw("self", "leave"), 2000)
    local mb = cluster.expect(pgw("b", "leave"), 2000)
    local d_self, d_b = (ms[6] - t0) / 1e6, (mb[6] - t0) / 1e6
    assert.is_true(d_self < 100, "this node saw the leave after " .. d_self .. " ms")
    assert.is_true(d_b < 100, "pgb saw the leave after " .. d_b .. " ms")
    -- every member of pgk is gone at once, not just the watched one
    assert.are.same({}, pg.which_groups(s))
    assert.are.same({}, c:call(b, R, "groups", {s}))
    c:wait_exit(k)
    pogo.send(w_self, "stop")
  end)

  it("resyncs a node that restarts with the same name", function()
    local r = c:start_node { name = "pgr", seeds = { a } }
    c:wait_meshed { a, b, r }
    local s = start_all { a, b, r }
    local old = c:call(r, R, "member", {s, {"g", "only-old"}})
    converge(s, "g", {old})
    local port = tonumber(r.addr:match(":(%d+)$"))
    c:kill(r)
    converge(s, "g", {})
    converge(s, "only-old", {})
    local r2 = c:start_node { name = "pgr", port = port, seeds = { a } }
    assert.are.equal(r.name, r2.name)
    c:wait_meshed { a, b, r2 }
    c:call(r2, R, "start", {s})
    local new = c:call(r2, R, "member", {s, {"g"}})
    assert.are_not.equal(old, new)
    converge(s, "g", {new})
    converge(s, "only-old", {})
    -- and the restarted node got everyone else's members
    local m = c:call(a, R, "member", {s, {"from-a"}})
    converge(s, "from-a", {m}, {"self", b, r2})
    pogo.send(m, "stop")
    c:kill(r2)
  end)

  it("resyncs after a partition heals", function()
    local s = start_all()
    local m1 = c:call(a, R, "member", {s, {"g"}})
    converge(s, "g", {m1})
    local ref = pg.monitor_scope(s)
    pogo.block(a.name, true)
    local down = cluster.expect(pg_msg(ref), 3000, "the leave of pga's members")
    assert.are.same({"pg", ref, "leave", "g", {m1}}, down)
    assert.are.same({}, pg.get_members(s, "g"))
    -- while apart, pga's members change; pgb still sees pga
    c:call(b, R, "relay", {a.name, "send", {m1, {"leave", "g"}}})
    local m2 = select(2, assert(c:call(b, R, "relay", {a.name, "member", {s, {"h"}}})))
    converge(s, "h", {m2}, {b})
    converge(s, "g", {}, {b})
    assert.are.same({}, pg.get_members(s, "h"))
    pogo.block(a.name, false)
    c:wait_meshed { a, b }
    converge(s, "h", {m2})
    converge(s, "g", {})
    local up = cluster.expect(pg_msg(ref), 3000, "the join of pga's members after the heal")
    assert.are.same({"pg", ref, "join", "h", {m2}}, up)
    pg.demonitor(ref)
    pogo.send(m1, "stop")
    pogo.send(m2, "stop")
  end)

  it("restarts a killed scope process, which resyncs with its peers", function()
    local s = start_all()
    local me = pogo.self()
    local m = c:call(a, R, "member", {s, {"g"}})
    local gone = require(R).member(s, {"g", "gone"})
    pg.join(s, "g", me)
    converge(s, "g", {m, me, gone})
    local old = pogo.whereis("pg:" .. s)
    pogo.exit(old, "kill")
    -- while it is down (its guard has not run yet): a join, and a member that exits
    assert.is_true(pg.join(s, "during", me))
    pogo.send(gone, "stop")
    -- no pg.start: its guard starts it again, and the peers get every local member
    converge(s, "g", {m, me})
    converge(s, "during", {me})
    converge(s, "gone", {})
    assert.are_not.equal(old, pogo.whereis("pg:" .. s))
    assert.is_true(pg.started(s))
    local both = {a.name, b.name}
    table.sort(both)
    assert.are.same(both, pg.info(s).peers)
    -- and replicates as before, both ways
    local m2 = c:call(b, R, "member", {s, {"g"}})
    converge(s, "g", {m, me, m2})
    pg.leave(s, "g", me)
    pg.leave(s, "during", me)
    converge(s, "g", {m, m2})
    converge(s, "during", {})
    pogo.send(m, "stop")
    pogo.send(m2, "stop")
    converge(s, "g", {})
  end)

  it("converges to the same view on every node after concurrent churn", function()
    local s = start_all()
    local stay = {}
    for i, node in ipairs {a, b} do
      for _, p in ipairs(c:call(node, R, "churn", {s, 30, 40, 17 * i}, 20000)) do stay[#stay + 1] = p end
    end
    for _, p in ipairs(require(R).churn(s, 30, 40, 99)) do stay[#stay + 1] = p end
    local me = require(R).dump(s)
    eventually(function()
      me = require(R).dump(s)
      return me == c:call(a, R, "dump", {s}) and me == c:call(b, R, "dump", {s})
    end, "the same view of " .. s .. " everywhere")
    assert.is_true(#me > 0)
    for _, p in ipairs(stay) do pogo.send(p, "stop") end
    eventually(function()
      return require(R).dump(s) == "" and c:call(a, R, "dump", {s}) == "" and c:call(b, R, "dump", {s}) == ""
    end, "every member gone")
  end)

  it("keeps scopes apart", function()
    local s1, s2 = start_all(), start_all()
    local m = c:call(a, R, "member", {s1, {"g"}})
    converge(s1, "g", {m})
    pogo.sleep(50)
    assert.are.same({}, pg.get_members(s2, "g"))
    assert.are.same({}, c:call(b, R, "members", {s2, "g"}))
    assert.are.same({}, pg.which_groups(s2))
    -- a scope that pga does not run: pga takes no part
    scope_n = scope_n + 1
    local s3 = "cl" .. scope_n
    pg.start(s3)
    c:call(b, R, "start", {s3})
    pg.join(s3, "g", pogo.self())
    converge(s3, "g", {pogo.self()}, {"self", b})
    local ok, err = c:rpc(a, R, "members", {s3, "g"})
    assert.is_false(ok)
    assert.matches("pg scope '" .. s3 .. "' not started", tostring(err), 1, true)
    pg.leave(s3, "g", pogo.self())
    pogo.send(m, "stop")
  end)

  it("matches table groups across nodes whatever their construction order", function()
    local s = start_all()
    local g1 = {"spec", {id = 1, start = {"m", "f"}}}
    local m = c:call(a, R, "member", {s, {g1}})
    local inner = {}
    inner.start = {"m", "f"}
    inner.id = 1
    local g2 = {}
    g2[2] = inner
    g2[1] = "spec"
    converge(s, g2, {m})
    assert.are.same({g1}, pg.which_groups(s))
    pg.join(s, g2, pogo.self())
    local m3 = c:call(b, R, "member", {s, {{"spec", {start = {"m", "f"}, id = 1}}}})
    converge(s, g1, {m, pogo.self(), m3})
    assert.are.equal(1, #pg.which_groups(s))
    assert.are.equal(1, #c:call(a, R, "groups", {s}))
    assert.are.same({}, pg.get_members(s, {"spec", {id = 1.0, start = {"m", "f"}}})) -- 1.0 is not 1
    pg.leave(s, g1, pogo.self())
    pogo.send(m, "stop")
    pogo.send(m3, "stop")
    converge(s, g1, {})
  end)

  it("reports every kind of change to monitors on every node", function()
    local s = start_all()
    local me = pogo.self()
    local ref = pg.monitor_scope(s)
    local gref, pids = pg.monitor(s, "g")
    assert.are.same({}, pids)
    c:call(b, R, "scope_watcher", {s, me, "bs"})
    cluster.expect(pgw("bs", "ready"), 2000)
    local function expect(kind, group, who)
      for _, r in ipairs {ref, gref} do
        local msg = cluster.expect(pg_msg(r), 3000, kind .. " of " .. names(who))
        assert.are.same({"pg", r, kind, group, who}, msg)
      end
      local w = cluster.expect(pgw("bs", kind), 3000, "pgb's view of " .. kind)
      assert.are.same({group, who}, {w[4], w[5]})
    end
    -- a remote join, an explicit remote leave, a remote crash
    local m = c:call(a, R, "member", {s, {"g"}})
    expect("join", "g", {m})
    pogo.send(m, {"leave", "g"})
    expect("leave", "g", {m})
    pogo.send(m, {"join", "g"})
    expect("join", "g", {m})
    pogo.send(m, "crash")
    expect("leave", "g", {m})
    -- a local join, a local exit
    local lp = pogo.spawn(function() pogo.receive() end)
    pg.join(s, "g", {lp, lp})
    expect("join", "g", {lp, lp})
    pogo.send(lp, "stop")
    expect("leave", "g", {lp, lp})
    -- a node going away and coming back (resync)
    local mb = c:call(b, R, "member", {s, {"g"}})
    for _, r in ipairs {ref, gref} do
      assert.are.same({"pg", r, "join", "g", {mb}}, cluster.expect(pg_msg(r), 3000))
    end
    cluster.expect(pgw("bs", "join"), 3000)
    pogo.block(b.name, true)
    for _, r in ipairs {ref, gref} do
      assert.are.same({"pg", r, "leave", "g", {mb}}, cluster.expect(pg_msg(r), 3000))
    end
    pogo.block(b.name, false)
    for _, r in ipairs {ref, gref} do
      assert.are.same({"pg", r, "join", "g", {mb}}, cluster.expect(pg_msg(r), 5000))
    end
    c:wait_meshed { a, b }
    -- monitors on other groups hear nothing of g
    pg.demonitor(gref)
    pg.join(s, "other", me)
    assert.are.same({"pg", ref, "join", "other", {me}}, cluster.expect(pg_msg(ref), 2000))
    assert.is_nil(pogo.receive(pg_msg(gref), 50))
    pg.demonitor(ref)
    pg.leave(s, "other", me)
    pogo.send(mb, "stop")
  end)

  it("notifies a monitor taken while a peer's changes are applied of each change once, or not at all", function()
    -- a peer's batch of changes is applied by the scope process in slices
    -- that preemption cuts; a process that takes a monitor between them must
    -- find each change either in its snapshot or in a notification
    local s = start_all()
    local me = pogo.self()
    local n, rounds = 2000, 100
    local taker = pogo.spawn(function()
      local takes, wrong, events = 0, {}, 0
      local done = false
      while not done do
        local ref, snap = pg.monitor_scope(s)
        takes = takes + 1
        local has = {}
        for _, e in ipairs(snap) do
          for _, p in ipairs(e[2]) do has[e[1] .. " " .. tostring(p)] = true end
        end
        local stop = uv.hrtime() + 2e6
        repeat
          local m = pogo.receive(function(x) return x == "stop" or (type(x) == "table" and x[2] == ref) end, 1)
          if m == "stop" then
            done = true
          elseif m then
            events = events + 1
            for _, p in ipairs(m[5]) do
              local k = m[4] .. " " .. tostring(p)
              if (m[3] == "join") == (has[k] == true) then
                if #wrong < 5 then wrong[#wrong + 1] = m[3] .. " of " .. k end
              end
              has[k] = m[3] == "join" or nil
            end
          end
        until done or uv.hrtime() > stop
        pg.demonitor(ref)
      end
      pogo.send(me, {"taken", takes, events, wrong})
    end)
    c:call(a, R, "flip", {s, n, rounds, me})
    cluster.expect(function(m) return type(m) == "table" and m[1] == "flipped" end, 60000)
    converge(s, "f1", {})
    pogo.send(taker, "stop")
    local r = cluster.expect(function(m) return type(m) == "table" and m[1] == "taken" end, 10000)
    assert.is_true(r[2] >= 5, "monitors taken: " .. r[2])
    assert.is_true(r[3] > 0, "events seen: " .. r[3])
    assert.are.same({}, r[4])
  end)

  it("syncs a scope started late, in chunks", function()
    scope_n = scope_n + 1
    local s = "cl" .. scope_n
    pg.start(s)
    c:call(a, R, "start", {s})
    eventually(function() return #pg.info(s).peers == 1 end, "the scope of pga")
    local n = pg.SYNC_CHUNK * 2 + 10
    local m = c:call(a, R, "member_of_many", {s, "x", n})
    local m2 = c:call(a, R, "many", {s, "y", 20})
    eventually(function() return #pg.which_groups(s) == n + 20 end, "every group of pga here")
    c:call(b, R, "start", {s}) -- discovers both, gets both syncs
    eventually(function() return #c:call(b, R, "groups", {s}) == n + 20 end, "every group on pgb")
    assert.are.same({m}, c:call(b, R, "members", {s, {"x", n}}))
    assert.are.same({m2[7]}, c:call(b, R, "members", {s, {"y", 7}}))
    pogo.send(m, "stop")
    eventually(function() return #c:call(b, R, "groups", {s}) == 20 end, "pgb to drop x groups")
    for _, p in ipairs(m2) do pogo.send(p, "stop") end
  end)

  it("gives a new peer every join made while it is being added", function()
    -- A big scope makes the snapshot for the new peer long enough for the
    -- scope process's slice to end in it, so that it is preempted as soon as
    -- the snapshot returns, while local processes join without a pause: a
    -- join made between the snapshot and the addition of the peer was in
    -- neither, and that peer never got it.
    scope_n = scope_n + 1
    local s = "cl" .. scope_n
    pg.start(s)
    local me = pogo.self()
    local base = pogo.spawn(function()
      for i = 1, 5000 do pg.join(s, {"base", i}, pogo.self()) end
      pogo.send(me, {"done", pogo.self()})
      pogo.receive()
    end)
    cluster.expect(done_from(base), 10000)
    -- joiners that go on until pga is a peer here, and a little after
    local joiners = {}
    for j = 1, 3 do
      joiners[j] = pogo.spawn(function()
        local k, after = 0, 0
        while after < 200 and k < 50000 do
          k = k + 1
          pg.join(s, {"late", j, k}, pogo.self())
          if k % 4 == 0 then pogo.yield() end
          if after > 0 or #pg.info(s).peers > 0 then after = after + 1 end
        end
        pogo.send(me, {"done", pogo.self()})
        pogo.receive()
      end)
    end
    c:call(a, R, "start", {s}, 10000)
    for _, p in ipairs(joiners) do cluster.expect(done_from(p), 20000) end
    assert.are.same({a.name}, pg.info(s).peers)
    local here = #pg.which_groups(s)
    assert.is_true(here > 5000)
    local there
    local ok = pcall(eventually, function()
      there = c:call(a, R, "ngroups", {s}, 10000)
      return there == here
    end, "pga to list every group", 10000)
    assert.is_true(ok, string.format("pga lists %s of the %d groups", tostring(there), here))
    pogo.send(base, "stop")
    for _, p in ipairs(joiners) do pogo.send(p, "stop") end
    eventually(function() return c:call(a, R, "ngroups", {s}, 10000) == 0 end, "pga to drop every group", 10000)
  end)

  -- A node that takes in a sync of BIG groups: node s (the sender) holds
  -- them, node r (the receiver) starts the scope and so gets them in one
  -- sync. Before syncs were applied in steps, r froze 2.8 s for 200,000
  -- groups (its rpc round trip from here took 3.2 s, and its links, with a
  -- timeout of 2 s here, went down); now a step costs a few ms, and what is
  -- left is the collector and the growth of the index's tables.
  local BIG = 200000
  local SR = "bench.support.sync_remote"

  -- A sender (named `prefix` .. "s") holding `n` groups "x"..i in a new scope,
  -- and a receiver (`prefix` .. "r") that has not started that scope yet.
  local function sender_and_receiver(prefix, n)
    local s_node = c:start_node { name = prefix .. "s", seeds = { a } }
    local r_node = c:start_node { name = prefix .. "r", seeds = { a } }
    c:wait_meshed { a, b, s_node, r_node }
    scope_n = scope_n + 1
    local s = "cl" .. scope_n
    c:call(s_node, SR, "pg_start", {s})
    c:call(s_node, SR, "pg_fill", {s, "x", n}, 60000)
    return s_node, r_node, s
  end

  it("keeps a node answering while it takes in a sync of 200,000 groups, and lists them all", function()
    local s_node, r_node, s = sender_and_receiver("pgb", BIG)
    -- a group whose member stays through a resync, watched on r
    local stay = c:call(s_node, R, "member", {s, {"stay"}})
    local me = pogo.self()
    pogo.monitor_nodes(true)
    c:call(r_node, R, "start", {s})
    c:call(r_node, R, "watcher", {s, "stay", me, "r"})
    local worst, t0 = 0, uv.hrtime()
    while c:call(r_node, SR, "pg_count", {s}, 10000) < BIG + 1 do
      local t = uv.hrtime()
      c:call(r_node, SR, "pg_count", {s}, 10000)
      worst = math.max(worst, (uv.hrtime() - t) / 1e6)
      assert.is_true(uv.hrtime() - t0 < 60e9, "pgbr to take in the sync within 60 s")
      pogo.sleep(10)
    end
    assert.is_true(worst < 1500, "an rpc to pgbr took " .. worst .. " ms during the sync")
    assert.is_nil(pogo.receive(function(m) return type(m) == "table" and m[1] == "nodedown" end, 0),
      "a link went down during the sync")
    assert.is_true(c:call(r_node, SR, "sees", {s_node.name}))
    assert.are.same({true}, {c:call(r_node, SR, "pg_check", {s, "x", BIG, s_node.name, 1}, 60000)})
    local sample = {1, 7, 4242, BIG // 2}
    assert.are.same(c:call(s_node, SR, "pg_sample", {s, "x", sample}),
      c:call(r_node, SR, "pg_sample", {s, "x", sample}))
    -- the watcher got the join of "stay" (whether it came before or in the sync)
    local ready = cluster.expect(pgw("r", "ready"), 2000)
    if #ready[4] == 0 then
      local j = cluster.expect(pgw("r", "join"), 2000)
      assert.are.same({"stay", {stay}}, {j[4], j[5]})
    end
    -- the same sync again (pgbs answers a discover from a known peer with a
    -- sync): nothing changes, and the watcher of "stay" hears nothing
    pogo.send({"pg:" .. s, s_node.name}, {"discover", c:call(r_node, "pogo", "whereis", {"pg:" .. s})})
    c:call(s_node, R, "member", {s, {"after-resync"}})
    eventually(function() return c:call(r_node, SR, "pg_count", {s}) == BIG + 2 end,
      "the group made after the resync on pgbr", 30000)
    assert.is_nil(pogo.receive(function(m) return type(m) == "table" and m[1] == "pgw" and m[2] == "r" end, 0),
      "the watcher of a member that stayed heard of it")
    assert.are.same({true}, {c:call(r_node, SR, "pg_check", {s, "x", BIG, s_node.name, 2}, 60000)})
    pogo.monitor_nodes(false)
    c:kill(s_node)
    eventually(function() return c:call(r_node, SR, "pg_count", {s}, 10000) == 0 end,
      "pgbr to drop pgbs's groups", 30000)
    c:kill(r_node)
    while pogo.receive(0) do end
  end)

  it("leaves none of a node's members when it goes down in the middle of its sync", function()
    local s_node, r_node, s = sender_and_receiver("pgd", BIG // 2) -- (a sync long enough to be cut)
    c:call(r_node, R, "start", {s})
    -- the sender goes as soon as a part of its sync is in
    eventually(function() return c:call(r_node, SR, "pg_count", {s}, 10000) > 0 end, "the first groups on pgdr", 30000)
    assert.are.equal(0, uv.kill(s_node.pid, "sigkill"))
    eventually(function() return c:call(r_node, SR, "pg_count", {s}, 10000) == 0 end,
      "pgdr to drop every group of pgds", 30000)
    assert.are.same({}, c:call(r_node, R, "groups", {s}))
    c:wait_exit(s_node)
    c:kill(r_node)
    while pogo.receive(0) do end
  end)
end)
