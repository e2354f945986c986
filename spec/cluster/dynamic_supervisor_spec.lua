-- Pogo's own test suite (test/pogo/dynamic_supervisor_test.exs), ported to real
-- node OS processes, plus netsplits. Node placement differs from Pogo's (another
-- hash), so where Pogo names the node a child lands on, these specs check that
-- it runs exactly once, on the node the ring assigns to it.
local pogo = require "pogo"
local cluster = require "support.cluster"

local c
local R = "support.dsup_remote"

local function start_nodes(n, initial, extra)
  extra = extra or {}
  local list = {}
  local seed
  for _, node in ipairs(c.nodes) do
    if not node.exited and not node.gone then seed = node end
  end
  for i = 1, n do
    seed = seed or list[i - 1]
    local node = c:start_node { script = "spec/support/dsup_node.lua",
      args = { "dsup", tostring(initial or 0), extra.redistribute or "", extra.events or "",
        extra.local_module and "yes" or "", tostring(extra.settle_ms or "") },
      seeds = seed and { seed } or nil }
    list[i] = node
    c:connect(node)
  end
  return list
end

local function alive_nodes()
  local out = {}
  for _, node in ipairs(c.nodes) do
    if not node.exited and not node.gone then out[#out + 1] = node end
  end
  return out
end

-- Wait until every live node's supervisor sees exactly the live nodes.
local function await_ring(timeout)
  cluster.wait_until(function()
    local live = alive_nodes()
    for _, node in ipairs(live) do
      local ok, ns = c:rpc(node, R, "nodes", {}, 1000)
      if not ok or #ns ~= #live then return false end
    end
    return true
  end, timeout or 10000, "every supervisor to see every node")
end

local function local_children(nodes)
  local out = {}
  for _, node in ipairs(nodes) do
    out[node.name] = c:call(node, R, "children", { "local" })
  end
  return out
end

-- Wait until each scheduled worker runs exactly once, on its owner, and no other runs.
local function await_placement(scheduled, timeout)
  local want = {}
  for _, n in ipairs(scheduled) do want[n] = true end
  local last
  local ok, err = pcall(cluster.wait_until, function()
    local live = alive_nodes()
    local seen = {}
    for name, ns in pairs(local_children(live)) do
      for _, n in ipairs(ns) do
        if not want[n] or seen[n] then last = "worker " .. n .. " extra on " .. name; return false end
        seen[n] = name
      end
    end
    for n in pairs(want) do
      if not seen[n] then last = "worker " .. n .. " not running"; return false end
      local owner = c:call(live[1], R, "node_for", { n })
      if seen[n] ~= owner then last = "worker " .. n .. " on " .. seen[n] .. " not owner " .. owner; return false end
    end
    return true
  end, timeout or 10000, "placement")
  if not ok then error(tostring(err) .. " (last: " .. tostring(last) .. ")", 2) end
end

local function pick(list) return list[math.random(#list)] end

local function shuffle(t)
  for i = #t, 2, -1 do
    local j = math.random(i)
    t[i], t[j] = t[j], t[i]
  end
  return t
end

-- Every test gets a fresh cluster (this process's node is reused) and kills it.
before_each(function()
  c = cluster.new { timeout_ms = 1000, heartbeat_ms = 200 }
  c:start_self()
end)

after_each(function()
  c:teardown()
end)

describe("distributed supervisor (Pogo's suite)", function()
  it("starts a child on a single node though it is requested on two", function()
    local nodes = start_nodes(2)
    await_ring()
    assert.is_true(c:call(nodes[1], R, "start_child", { 1 }))
    assert.is_true(c:call(nodes[2], R, "start_child", { 1 }))
    await_placement({ 1 })
    local all = local_children(nodes)
    local count = #all[nodes[1].name] + #all[nodes[2].name]
    assert.equal(1, count)
  end)

  it("terminates a child from either node", function()
    local nodes = start_nodes(2)
    await_ring()
    for n = 1, 3 do c:call(nodes[1], R, "start_child", { n }) end
    await_placement({ 1, 2, 3 })
    assert.is_true(c:call(nodes[1], R, "terminate_child", { 1 }))
    await_placement({ 2, 3 })
    assert.is_true(c:call(nodes[2], R, "terminate_child", { 3 }))
    await_placement({ 2 })
    assert.same({ 2 }, (c:call(nodes[1], R, "children", { "global" })))
    assert.same({ 2 }, (c:call(nodes[2], R, "children", { "global" })))
  end)

  it("tracks the new pid when a child crashes and is restarted", function()
    local nodes = start_nodes(1)
    await_ring()
    c:call(nodes[1], R, "start_child", { 1 })
    await_placement({ 1 })
    local _, pids = c:call(nodes[1], R, "children", { "global" })
    local pid = pids[1]
    pogo.exit(pid, "kill")
    cluster.wait_until(function()
      local _, now = c:call(nodes[1], R, "children", { "global" })
      return now[1] and now[1] ~= pid and c:call(nodes[1], R, "alive", { now[1] })
    end, 5000, "a new pid")
  end)

  it("moves children when a node joins and back when it leaves", function()
    local first = start_nodes(1)
    await_ring()
    local ids = {}
    for n = 1, 20 do ids[n] = n; c:call(first[1], R, "start_child", { n }) end
    await_placement(ids)
    local second = start_nodes(1)
    await_ring()
    await_placement(ids)
    local moved = local_children({ second[1] })[second[1].name]
    assert.is_true(#moved > 0, "some children moved to the new node")
    c:stop(second[1])
    await_ring()
    await_placement(ids)
    assert.equal(20, #local_children(first)[first[1].name])
  end)

  it("restarts a child on another node when its node goes down", function()
    local nodes = start_nodes(3)
    await_ring()
    c:call(nodes[2], R, "start_child", { 1 })
    await_placement({ 1 })
    local owner = c:call(nodes[1], R, "node_for", { 1 })
    for _, node in ipairs(nodes) do
      if node.name == owner then c:kill(node) end
    end
    await_ring()
    await_placement({ 1 }, 5000)
  end)

  it("places initial children across 3 nodes, each once", function()
    start_nodes(3, 6)
    await_ring()
    await_placement({ 1, 2, 3, 4, 5, 6 })
  end)

  it("requests initial children again after the supervisor is killed", function()
    local nodes = start_nodes(3, 6)
    await_ring()
    await_placement({ 1, 2, 3, 4, 5, 6 })
    local old = c:call(nodes[2], R, "supervisor")
    c:call(nodes[2], R, "kill_supervisor")
    cluster.wait_until(function()
      local p = c:call(nodes[2], R, "supervisor")
      return p and p ~= old
    end, 5000, "the supervisor to restart")
    await_placement({ 1, 2, 3, 4, 5, 6 })
  end)

  it("which_children local lists this node's children, global every child from any node", function()
    local nodes = start_nodes(2)
    await_ring()
    c:call(nodes[1], R, "start_child", { 1 })
    c:call(nodes[1], R, "start_child", { 2 })
    await_placement({ 1, 2 })
    -- await_placement reads each node's local view; a node learns of the
    -- children of the other from pg, a moment later
    cluster.wait_until(function()
      return #c:call(nodes[1], R, "children", { "global" }) == 2 and #c:call(nodes[2], R, "children", { "global" }) == 2
    end, 5000, "both nodes to see both children")
    local g1, p1 = c:call(nodes[1], R, "children", { "global" })
    local g2, p2 = c:call(nodes[2], R, "children", { "global" })
    assert.same({ 1, 2 }, g1)
    assert.same(g1, g2)
    assert.equal(p1[1], p2[1])
    assert.equal(p1[2], p2[2])
    local l = local_children(nodes)
    local total = #l[nodes[1].name] + #l[nodes[2].name]
    assert.equal(2, total)
    for _, n in ipairs({ 1, 2 }) do
      assert.equal(c:call(nodes[1], R, "node_for", { n }), pogo.node_of(p1[n]))
    end
  end)

  it("chaos: nodes come and go while children are started and terminated", function()
    local seed = require("luv").hrtime() % 2147483648
    math.randomseed(seed)
    finally(function() print("chaos seed: " .. seed) end)
    local nodes = start_nodes(10)
    await_ring(20000)
    local scheduled = {}
    for n = 1, 60 do scheduled[n] = true; c:call(pick(nodes), R, "start_child", { n }) end
    local function list()
      local t = {}
      for n in pairs(scheduled) do t[#t + 1] = n end
      table.sort(t)
      return t
    end
    await_placement(list(), 20000)
    -- stop some nodes
    shuffle(nodes)
    for i = 1, 5 do c:stop(nodes[i]); nodes[i].gone = true end
    local live = alive_nodes()
    await_ring(20000)
    -- terminate some children, start some more
    local ids = shuffle(list())
    for i = 1, 45 do scheduled[ids[i]] = nil; c:call(pick(live), R, "terminate_child", { ids[i] }) end
    for n = 61, 120 do scheduled[n] = true; c:call(pick(live), R, "start_child", { n }) end
    -- start some more nodes
    start_nodes(10)
    live = alive_nodes()
    await_ring(20000)
    ids = shuffle(list())
    for i = 1, 30 do scheduled[ids[i]] = nil; c:call(pick(live), R, "terminate_child", { ids[i] }) end
    for n = 121, 150 do scheduled[n] = true; c:call(pick(live), R, "start_child", { n }) end
    await_placement(list(), 30000)

    -- every scheduled child runs exactly once, seen from any node; terminated ones nowhere
    local node = pick(live)
    local global, pids = c:call(node, R, "children", { "global" })
    assert.same(list(), global)
    for _, n in ipairs(global) do
      local owner_node
      for _, x in ipairs(live) do if x.name == pogo.node_of(pids[n]) then owner_node = x end end
      assert.is_true(c:call(owner_node, R, "alive", { pids[n] }))
    end
    -- every node tracks every spec; every spec is held in pg; no marker is left behind
    local want = list()
    cluster.wait_until(function()
      for _, x in ipairs(live) do
        if table.concat(c:call(x, R, "known_specs"), " ") ~= table.concat(want, " ") then return false end
      end
      local held = 0
      for _, entry in ipairs(c:call(node, R, "pg_state")) do
        local g, members = entry[1], entry[2]
        if type(g) == "table" and g[1] == "term" then return false end
        if type(g) == "table" and g[1] == "spec" then
          if not scheduled[g[3].id[2]] or #members == 0 then return false end
          held = held + 1
        end
      end
      return held == #want
    end, 10000, "every node to track every spec and no marker left")
  end)
end)

describe("distributed supervisor beyond Pogo", function()
  before_each(function()
    while pogo.receive(0) do end
  end)

  after_each(function()
    pcall(pogo.unregister, "dsup_events")
  end)

  local function event(kind, node_name, timeout)
    return cluster.expect(function(m)
      return type(m) == "table" and m[1] == "event" and m[2] == kind and (not node_name or m[3] == node_name)
    end, timeout or 5000, kind .. " on " .. tostring(node_name))
  end

  it("calls listeners on the node where it happened: node_up, child_moved, node_down", function()
    pogo.register("dsup_events", pogo.self())
    local me = pogo.node()
    local first = start_nodes(1, 0, { events = me })
    await_ring()
    local ids = {}
    for n = 1, 20 do ids[n] = n; c:call(first[1], R, "start_child", { n }) end
    await_placement(ids)
    local second = start_nodes(1, 0, { events = me })
    local up = event("node_up", first[1].name)
    assert.equal(second[1].name, up[4])
    local moved = event("child_moved", second[1].name)
    assert.equal(first[1].name, moved[5])
    assert.equal(second[1].name, moved[6])
    c:kill(second[1])
    second[1].gone = true
    local down = event("node_down", first[1].name)
    assert.equal(second[1].name, down[4])
    assert.is_string(down[5])
    await_placement(ids)
  end)

  it("does not wait settle_ms for a connected node that runs no supervisor of the scope", function()
    -- this process's node is connected to the new node and runs no "test"
    -- supervisor: the new node learns that from its keeper probe, not by
    -- waiting the 60 s settle
    start_nodes(1, 3, { settle_ms = 60000 })
    await_placement({ 1, 2, 3 }, 5000)
    -- a node that does run one is still waited for: the second node starts
    -- nothing before it sees the first one's supervisor, so no child runs twice
    start_nodes(1, 3, { settle_ms = 60000 })
    await_ring(5000)
    await_placement({ 1, 2, 3 }, 5000)
    assert.equal(2, #alive_nodes())
  end)

  it("never runs a child twice while nodes boot with the same initial children", function()
    -- every node requests workers 1..12 at boot, before its seed is connected;
    -- a booting node waits for its seed and the nodes of its peers' rings, so
    -- each worker stops on its old node before it starts on its new one
    pogo.register("dsup_events", pogo.self())
    local me = pogo.node()
    local ids = {}
    for n = 1, 12 do ids[n] = n end
    for _ = 1, 3 do
      start_nodes(1, 12, { events = me, settle_ms = 60000 })
      await_ring(5000)
      await_placement(ids, 5000)
    end
    local events = {}
    while true do
      local m = pogo.receive(function(msg) return type(msg) == "table" and msg[1] == "event" end, 200)
      if not m then break end
      if m[2] == "child_started" or m[2] == "child_stopped" then events[#events + 1] = m end
    end
    table.sort(events, function(a, b) return a.ns < b.ns end)
    local running, starts = {}, 0
    for _, m in ipairs(events) do
      local key = m[4][2]
      if m[2] == "child_started" then
        starts = starts + 1
        assert.is_nil(running[key], "worker " .. key .. " started on " .. m[3] .. " while running on "
          .. tostring(running[key]))
        running[key] = m[3]
      else
        assert.equal(m[3], running[key])
        running[key] = nil
      end
    end
    assert.is_true(starts >= 12)
  end)

  it("runs an OS process child and restarts it elsewhere when its node stops", function()
    local nodes = start_nodes(2)
    await_ring()
    assert.is_true(c:call(nodes[1], R, "start_os_child", { "sleeper" }))
    local first
    cluster.wait_until(function()
      first = c:call(nodes[2], R, "os_child", { "sleeper" })
      return first ~= nil
    end, 5000, "the OS process child")
    local host = nodes[1].name == first[1] and nodes[1] or nodes[2]
    c:stop(host)
    host.gone = true
    local second
    cluster.wait_until(function()
      for _, node in ipairs(alive_nodes()) do
        second = c:call(node, R, "os_child", { "sleeper" })
        if second and second[1] == node.name then return true end
      end
      return false
    end, 5000, "the OS process child on the other node")
    assert.are_not.equal(first[2], second[2])
    local function ended(ospid)
      return function()
        local f = io.open("/proc/" .. ospid .. "/stat")
        if not f then return true end
        local zombie = f:read("a"):match("%) (%a)") == "Z"
        f:close()
        return zombie
      end
    end
    -- the stopped node sent its program SIGTERM on the way out
    cluster.wait_until(ended(first[2]), 5000, "the first program to end")
    -- terminate_child stops the program too
    assert.is_true(c:call(alive_nodes()[1], R, "terminate_id", { "sleeper" }))
    cluster.wait_until(ended(second[2]), 5000, "the second program to end")
  end)

  it("whereis, call and count_children reach children on any node", function()
    local nodes = start_nodes(2)
    await_ring()
    for n = 1, 4 do c:call(nodes[1], R, "start_echo", { n }) end
    cluster.wait_until(function() return c:call(nodes[2], R, "global_count").active == 4 end, 5000, "4 echo servers")
    for n = 1, 4 do
      assert.equal("hi " .. n, c:call(nodes[2], R, "call_echo", { n, "hi " .. n }))
      assert.equal("hi " .. n, c:call(nodes[1], R, "call_echo", { n, "hi " .. n }))
    end
    assert.same({ specs = 4, active = 4, supervisors = 0, workers = 4 }, c:call(nodes[1], R, "global_count"))
  end)

  it("a child whose module is missing on its node is retried there, visibly, without harm", function()
    local nodes = start_nodes(1, 0, { local_module = true })
    local others = start_nodes(2)
    await_ring()
    -- find ids owned by a node without the module
    local picked
    for n = 1, 50 do
      local owner = c:call(nodes[1], R, "node_for_id", { "only" .. n })
      if owner ~= nodes[1].name then picked = { id = "only" .. n, owner = owner }; break end
    end
    assert.is_not_nil(picked)
    assert.is_true(c:call(nodes[1], R, "start_only_here", { picked.id }))
    local owner_node
    for _, x in ipairs(others) do if x.name == picked.owner then owner_node = x end end
    cluster.wait_until(function()
      for _, e in ipairs(c:call(owner_node, R, "local_entries")) do
        if e[1] == picked.id and e[2] == "restarting" and tostring(e[3]):match("only_here") then return true end
      end
      return false
    end, 5000, "the failure to show in which_children")
    assert.is_not_nil(c:call(owner_node, R, "supervisor"))
    -- the rest of the cluster still works
    c:call(owner_node, R, "start_child", { 1 })
    await_placement({ 1 })
  end)
end)

describe("distributed supervisor netsplits", function()
  it("each side runs the child during a split; one copy remains after it heals", function()
    local nodes = start_nodes(3)
    await_ring()
    local ids = {}
    for n = 1, 6 do ids[n] = n; c:call(nodes[1], R, "start_child", { n }) end
    await_placement(ids)
    -- isolate the owner of worker 1 from the two others
    local owner = c:call(nodes[1], R, "node_for", { 1 })
    local island, rest = nil, {}
    for _, node in ipairs(nodes) do
      if node.name == owner then island = node else rest[#rest + 1] = node end
    end
    for _, other in ipairs(rest) do c:call(island, "pogo", "block", { other.name, true }) end
    -- each side runs every child
    cluster.wait_until(function()
      local on_island = c:call(island, R, "children", { "local" })
      local on_rest = {}
      for _, node in ipairs(rest) do
        for _, n in ipairs((c:call(node, R, "children", { "local" }))) do on_rest[#on_rest + 1] = n end
      end
      return #on_island == 6 and #on_rest == 6
    end, 10000, "both sides to run all 6 children")
    -- heal
    for _, other in ipairs(rest) do c:call(island, "pogo", "block", { other.name, false }) end
    await_ring()
    await_placement(ids)
  end)

  it("with redistribute on_failure a running child stays put when a node joins", function()
    local first = start_nodes(1, 0, { redistribute = "on_failure" })
    await_ring()
    local ids = {}
    for n = 1, 20 do ids[n] = n; c:call(first[1], R, "start_child", { n }) end
    await_placement(ids)
    local second = start_nodes(1, 0, { redistribute = "on_failure" })
    await_ring()
    -- the new node knows every spec; still nothing moves, though it owns some of them
    cluster.wait_until(function() return #(c:call(second[1], R, "children", { "global" })) == 20 end,
      5000, "the new node to see every child")
    pogo.sleep(300)
    assert.equal(20, #local_children(first)[first[1].name])
    assert.equal(0, #local_children(second)[second[1].name])
    -- when the node they run on goes, they start on their owners
    c:kill(first[1])
    first[1].gone = true
    await_ring()
    cluster.wait_until(function()
      return #local_children(second)[second[1].name] == 20
    end, 5000, "all children on the surviving node")
  end)
end)
