-- Pogo's own test suite (test/pogo/dynamic_supervisor_test.exs), ported to real
-- node OS processes, plus netsplits. Node placement differs from Pogo's (another
-- hash), so where Pogo names the node a child lands on, these specs check that
-- it runs exactly once, on the node the ring assigns to it.
local pogo = require "pogo"
local cluster = require "support.cluster"

local c
local R = "support.dsup_remote"

local function start_nodes(n, initial, extra)
  local list = {}
  local seed
  for _, node in ipairs(c.nodes) do
    if not node.exited and not node.gone then seed = node end
  end
  for i = 1, n do
    seed = seed or list[i - 1]
    local node = c:start_node { script = "spec/support/dsup_node.lua",
      args = { "dsup", tostring(initial or 0), extra and extra.redistribute },
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

describe("distributed supervisor (Pogo's suite)", function()
  before_each(function()
    c = cluster.new { timeout_ms = 1000, heartbeat_ms = 200 }
    c:start_self()
  end)

  after_each(function()
    c:teardown()
  end)

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
    math.randomseed(os.time())
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

describe("distributed supervisor netsplits", function()
  before_each(function()
    c = cluster.new { timeout_ms = 1000, heartbeat_ms = 200 }
    c:start_self()
  end)

  after_each(function()
    c:teardown()
  end)

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
