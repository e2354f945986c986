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
    local node = c:start_node { name = extra.name, port = extra.port, script = "spec/support/dsup_node.lua",
      args = { "dsup", tostring(initial or 0), extra.redistribute or "", extra.events or "",
        extra.local_module and "yes" or "", tostring(extra.settle_ms or ""), extra.probe or "",
        extra.manual and "yes" or "" },
      seeds = seed and { seed } or nil }
    list[i] = node
    c:connect(node)
  end
  return list
end

local function alive_nodes()
  local out = {}
  for _, node in ipairs(c:alive()) do
    if not node.gone then out[#out + 1] = node end
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

-- Request workers 1..count on `via`'s supervisor; their ids.
local function request_workers(via, count)
  local ids = {}
  for n = 1, count do
    ids[n] = n
    assert.is_true(c:call(via, R, "start_child", { n }))
  end
  return ids
end

local function pick(list) return list[math.random(#list)] end

local function shuffle(t)
  for i = #t, 2, -1 do
    local j = math.random(i)
    t[i], t[j] = t[j], t[i]
  end
  return t
end

-- Ids of workers 1.. whose owner (asked of `via`) is `owner`, `count` of them.
local function owned_by(via, owner, count, exclude)
  local out = {}
  for n = 1, 1000 do
    if not (exclude and exclude[n]) and c:call(via, R, "node_for", { n }) == owner then
      out[#out + 1] = n
      if #out == count then return out end
    end
  end
  error("no worker id owned by " .. owner)
end

-- Wait until every live node knows exactly `want` (sorted worker numbers) as specs.
local function await_specs(want, timeout)
  local text = table.concat(want, " ")
  cluster.wait_until(function()
    for _, node in ipairs(alive_nodes()) do
      if table.concat(c:call(node, R, "known_specs"), " ") ~= text then return false end
    end
    return true
  end, timeout or 5000, "every node to know the specs {" .. text .. "}")
end

-- Two nodes, with workers `ids` requested on the first and placed.
local function placed_on_two(ids)
  local nodes = start_nodes(2)
  await_ring()
  for _, n in ipairs(ids) do assert.is_true(c:call(nodes[1], R, "start_child", { n })) end
  await_placement(ids)
  return nodes
end

-- Kill the supervisor of `node` with the rpc `how` and wait for its restart.
local function crash_supervisor(node, how)
  local old = c:call(node, R, "supervisor")
  c:call(node, R, how)
  cluster.wait_until(function()
    local p = c:call(node, R, "supervisor")
    return p and p ~= old
  end, 5000, "the supervisor to restart")
end

-- For a describe whose tests register "dsup_events" (the events and API
-- reports of the nodes): an empty mailbox before each, the name dropped after.
local function receives_events()
  before_each(function()
    while pogo.receive(0) do end
  end)
  after_each(function()
    pcall(pogo.unregister, "dsup_events")
  end)
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

  it("terminates a child from the node that does not own it", function()
    local nodes = start_nodes(2)
    await_ring()
    -- Pogo: "terminate using node1 even though the process is running on node2",
    -- "terminate using node2 even though the process was started using node1"
    local a = owned_by(nodes[1], nodes[2].name, 1)[1]
    local b = owned_by(nodes[1], nodes[1].name, 1)[1]
    local other = owned_by(nodes[1], nodes[2].name, 1, { [a] = true })[1]
    for _, n in ipairs({ a, b, other }) do assert.is_true(c:call(nodes[1], R, "start_child", { n })) end
    local all = { a, b, other }
    table.sort(all)
    await_placement(all)
    local on2 = { a, other }
    table.sort(on2)
    assert.same(on2, (c:call(nodes[2], R, "children", { "local" })))
    assert.is_true(c:call(nodes[1], R, "terminate_child", { a }))
    local rest = { b, other }
    table.sort(rest)
    await_placement(rest)
    assert.is_true(c:call(nodes[2], R, "terminate_child", { b }))
    await_placement({ other })
    cluster.wait_until(function()
      return #c:call(nodes[1], R, "children", { "global" }) == 1 and #c:call(nodes[2], R, "children", { "global" }) == 1
    end, 5000, "both nodes to see one child")
    assert.same({ other }, (c:call(nodes[1], R, "children", { "global" })))
    assert.same({ other }, (c:call(nodes[2], R, "children", { "global" })))
    await_specs({ other })
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

  it("when a node dies, only its children move: pins to it go to their ring owner, the others keep their pids",
    function()
      local nodes = start_nodes(4)
      await_ring()
      local victim = nodes[3]
      local ids = request_workers(nodes[1], 60)
      -- pinned to the node that dies, and to one that stays
      for n = 61, 64 do
        ids[n] = n
        assert.is_true(c:call(nodes[1], R, "start_pinned", { n, victim.name }))
      end
      for n = 65, 68 do
        ids[n] = n
        assert.is_true(c:call(nodes[2], R, "start_pinned", { n, nodes[4].name }))
      end
      await_placement(ids)
      local before, on_victim = {}, 0
      for _, n in ipairs(ids) do
        local pid, node = c:call(nodes[1], R, "whereis", { n }), c:call(nodes[1], R, "node_for", { n })
        before[n] = { pid = pid, node = node }
        if node == victim.name then on_victim = on_victim + 1 end
      end
      assert.is_true(on_victim >= 4, "the node that dies runs children")
      c:kill(victim)
      await_ring()
      await_placement(ids)
      local moved = 0
      for _, n in ipairs(ids) do
        local pid = c:call(nodes[1], R, "whereis", { n })
        if before[n].node == victim.name then
          moved = moved + 1
          assert.are_not.equal(victim.name, c:call(nodes[1], R, "node_for", { n }))
        else
          assert.are.equal(before[n].pid, pid, "worker " .. n .. " kept its pid")
          assert.are.equal(before[n].node, c:call(nodes[2], R, "node_for", { n }))
        end
      end
      assert.are.equal(on_victim, moved)
    end)

  it("places initial children across 3 nodes, each once", function()
    start_nodes(3, 6)
    await_ring()
    await_placement({ 1, 2, 3, 4, 5, 6 })
  end)

  it("requests its initial children again after a crash that lost every request (one node, as Pogo)", function()
    local nodes = start_nodes(1, 3)
    await_ring()
    await_placement({ 1, 2, 3 })
    assert.is_true(c:call(nodes[1], R, "start_child", { 4 }))
    await_placement({ 1, 2, 3, 4 })
    local _, before = c:call(nodes[1], R, "children", { "local" })
    -- the keeper goes too: no process of the node holds a request any more, as
    -- in Pogo, whose supervisor holds them; only a re-request brings 1..3 back
    crash_supervisor(nodes[1], "kill_supervisor_and_keeper")
    await_placement({ 1, 2, 3 })
    await_specs({ 1, 2, 3 }) -- 4 was requested once, and its request is gone
    local _, after = c:call(nodes[1], R, "children", { "local" })
    for n = 1, 3 do assert.are_not.equal(before[n], after[n]) end
  end)

  it("a killed supervisor's keeper keeps the requests made on its node (one node)", function()
    local nodes = start_nodes(1, 3)
    await_ring()
    assert.is_true(c:call(nodes[1], R, "start_child", { 4 }))
    await_placement({ 1, 2, 3, 4 })
    crash_supervisor(nodes[1], "kill_supervisor")
    await_placement({ 1, 2, 3, 4 })
    -- a child requested after the restart starts too (its uid is new)
    assert.is_true(c:call(nodes[1], R, "start_child", { 5 }))
    await_placement({ 1, 2, 3, 4, 5 })
  end)

  it("a supervisor restarted after a crash sees every child of the cluster in its global view", function()
    -- the child groups that were there before it monitored pg are the joins
    -- it would have been told of: it knows where each child runs
    local nodes = start_nodes(3)
    await_ring()
    local all = request_workers(nodes[1], 30)
    await_placement(all)
    crash_supervisor(nodes[3], "kill_supervisor")
    await_placement(all)
    -- (a repair pass comes every 5 s: the view is right well before one)
    cluster.wait_until(function()
      for _, node in ipairs(nodes) do
        if #c:call(node, R, "children", { "global" }) ~= 30 then return false end
        local n = c:call(node, R, "global_count")
        if n.active ~= 30 or n.specs ~= 30 then return false end
      end
      return true
    end, 3000, "every node's global view to show the 30 children")
    local g1, p1 = c:call(nodes[1], R, "children", { "global" })
    local g3, p3 = c:call(nodes[3], R, "children", { "global" })
    assert.same(g1, g3)
    assert.same(p1, p3)
  end)

  it("a supervisor its parent restarts (one_for_all) on the node that made the requests loses no child",
     function()
    -- its stop gives the requests up (its keeper goes); the owners take them
    -- over, but the restarted supervisor may own some again before they did,
    -- without knowing them (what no node holds is not in pg): the nodes that
    -- know them take them over after a while
    local nodes = start_nodes(3)
    await_ring()
    local all = request_workers(nodes[1], 20)
    await_placement(all)
    assert.is_truthy(c:call(nodes[1], R, "bounce_supervisor"))
    await_placement(all, 15000)
    await_specs(all)
  end)

  it("which_children local lists this node's children, each the right child (asked through its pid)", function()
    local nodes = placed_on_two({ 1, 2 })
    local seen = 0
    for _, node in ipairs(nodes) do
      local ns, pids = c:call(node, R, "children", { "local" })
      for _, n in ipairs(ns) do
        seen = seen + 1
        assert.equal(node.name, c:call(node, R, "node_for", { n }))
        assert.equal(node.name, pogo.node_of(pids[n]))
        -- Pogo: Worker.get_id(pid) == id; and the child's own self() is the listed pid
        assert.same({ n, pids[n] }, c:call(nodes[1], R, "ask_id", { pids[n] }))
      end
    end
    assert.equal(2, seen)
  end)

  it("which_children global lists every child from any node, each the right child", function()
    local nodes = placed_on_two({ 1, 2 })
    -- await_placement reads each node's local view; a node learns of the
    -- children of the other from pg, a moment later
    cluster.wait_until(function()
      return #c:call(nodes[1], R, "children", { "global" }) == 2 and #c:call(nodes[2], R, "children", { "global" }) == 2
    end, 5000, "both nodes to see both children")
    local g1, p1 = c:call(nodes[1], R, "children", { "global" })
    local g2, p2 = c:call(nodes[2], R, "children", { "global" })
    assert.same({ 1, 2 }, g1)
    assert.same(g1, g2)
    for _, n in ipairs({ 1, 2 }) do
      assert.equal(p1[n], p2[n])
      assert.equal(c:call(nodes[1], R, "node_for", { n }), pogo.node_of(p1[n]))
      assert.same({ n, p1[n] }, c:call(nodes[2], R, "ask_id", { p1[n] }))
    end
  end)

  it("chaos: nodes come and go while children are started and terminated", function()
    local seed = require("luv").hrtime() % 2147483648
    math.randomseed(seed)
    finally(function() print("chaos seed: " .. seed) end)
    -- as Pogo's test: the phases follow each other after a sleep, without
    -- waiting for the cluster to converge, so terminations race the moves
    local function started(list)
      -- a node's supervisor is up (a fact of that node, not of the cluster)
      for _, node in ipairs(list) do
        cluster.wait_until(function() return c:call(node, R, "supervisor") ~= nil end, 5000, "a supervisor")
      end
      return list
    end
    local nodes = started(start_nodes(10))
    local scheduled = {}
    for n = 1, 60 do scheduled[n] = true; c:call(pick(nodes), R, "start_child", { n }) end
    local function list()
      local t = {}
      for n in pairs(scheduled) do t[#t + 1] = n end
      table.sort(t)
      return t
    end
    pogo.sleep(1000)
    -- stop some nodes
    shuffle(nodes)
    for i = 1, 5 do c:stop(nodes[i]); nodes[i].gone = true end
    local live = alive_nodes()
    pogo.sleep(1000)
    -- terminate some children, start some more
    local ids = shuffle(list())
    for i = 1, 45 do scheduled[ids[i]] = nil; c:call(pick(live), R, "terminate_child", { ids[i] }) end
    for n = 61, 120 do scheduled[n] = true; c:call(pick(live), R, "start_child", { n }) end
    pogo.sleep(1000)
    -- start some more nodes
    started(start_nodes(10))
    live = alive_nodes()
    pogo.sleep(1000)
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
    -- each node's local counts (counters) match its local children, and add up to the global ones
    local active = 0
    for _, x in ipairs(live) do
      local counted, walked, listed, all, unordered = c:call(x, R, "local_counts")
      assert.same(walked, counted)
      assert.equal(all, listed) -- which_children local finds what a walk over every record finds
      assert.equal(0, unordered) -- every record is in the order the repair pass sweeps
      active = active + counted.active
    end
    assert.equal(#want, active)
  end)
end)

describe("distributed supervisor beyond Pogo", function()
  receives_events()

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
    -- (a failure shows the worker's events, in order)
    local function history(key)
      local lines = {}
      for _, e in ipairs(events) do
        if e[4][2] == key then lines[#lines + 1] = string.format("%.3f ms %s %s", e.ns / 1e6, e[2], e[3]) end
      end
      return table.concat(lines, "; ")
    end
    local running, starts = {}, 0
    for _, m in ipairs(events) do
      local key = m[4][2]
      if m[2] == "child_started" then
        starts = starts + 1
        assert.is_nil(running[key], "worker " .. key .. " started on " .. m[3] .. " while running on "
          .. tostring(running[key]) .. ": " .. history(key))
        running[key] = m[3]
      else
        assert.equal(m[3], running[key], "worker " .. key .. " stopped on " .. m[3] .. ": " .. history(key))
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

  it("a child whose init fails is retried on its owner, visibly; the supervisors live on", function()
    local nodes = start_nodes(2)
    await_ring()
    local sups = { c:call(nodes[1], R, "supervisor"), c:call(nodes[2], R, "supervisor") }
    -- an id owned by the node that does not request it
    local id
    for n = 1, 100 do
      if c:call(nodes[1], R, "node_for_id", { "failing" .. n }) == nodes[2].name then id = "failing" .. n; break end
    end
    assert.is_true(c:call(nodes[1], R, "start_spec", { { id = id, start = { "support.init_fails", "start_link" } } }))
    cluster.wait_until(function()
      for _, e in ipairs(c:call(nodes[2], R, "local_entries")) do
        if e[1] == id and e[2] == "restarting" and e[3] == "init refused" then return true end
      end
      return false
    end, 5000, "the failure to show in which_children")
    -- the cluster still works, and no supervisor restarted meanwhile
    c:call(nodes[2], R, "start_child", { 1 })
    await_placement({ 1 })
    assert.equal(sups[1], c:call(nodes[1], R, "supervisor"))
    assert.equal(sups[2], c:call(nodes[2], R, "supervisor"))
    assert.is_true(c:call(nodes[1], R, "terminate_id", { id }))
    cluster.wait_until(function()
      for _, e in ipairs(c:call(nodes[2], R, "local_entries")) do
        if e[1] == id then return false end
      end
      return true
    end, 5000, "the failing child gone")
    assert.equal(sups[2], c:call(nodes[2], R, "supervisor"))
  end)
end)

describe("distributed supervisor: calls from children and listeners", function()
  receives_events()

  it("a child's init and every listener may call every API function: each returns within 1 s", function()
    pogo.register("dsup_events", pogo.self())
    local me = pogo.node()
    local a = start_nodes(1, 0, { probe = me })[1]
    await_ring()
    -- the child that `call` reaches, pinned to the node that stays
    assert.is_true(c:call(a, R, "start_echo", { 1, a.name }))
    cluster.wait_until(function() return c:call(a, R, "whereis_id", { { "echo", 1 } }) ~= nil end, 5000, "echo")
    for n = 1, 20 do c:call(a, R, "start_child", { n }) end
    -- its init calls every function (support.dsup_api_child)
    local api_child = { id = "api_child", start = { "support.dsup_api_child", "start_link", me } }
    assert.is_true(c:call(a, R, "start_spec", { api_child }))
    local b = start_nodes(1, 0, { probe = me })[1] -- node_up on a; children move: started, stopped, moved
    await_ring()
    local wheres = { "init", "node_up", "node_down", "child_started", "child_stopped", "child_moved" }
    local names = { "whereis", "which_children", "count_children", "node_for", "mine", "nodes", "call",
      "start_child", "terminate_child" }
    local got, reports = {}, 0
    -- a node being stopped: its supervisor terminates meanwhile (an orderly
    -- stop), so a listener of its that still runs may see it go in the
    -- middle of a call; its reports no longer count
    local stopping
    local function collect(want, timeout)
      local deadline = pogo.now() + timeout
      while true do
        local missing
        for _, where in ipairs(want) do
          for _, name in ipairs(names) do
            if not (got[where] and got[where][name]) then missing = where .. "." .. name end
          end
        end
        if not missing then return end
        local m = pogo.receive(function(x) return type(x) == "table" and x[1] == "api" end,
          math.max(1, deadline - pogo.now()))
        if not m then error("timed out waiting for the API call report " .. missing) end
        if m[3] ~= stopping then
          reports = reports + 1
          got[m[2]] = got[m[2]] or {}
          -- every report counts: a call made twice must be fast twice
          local prev = got[m[2]][m[4]]
          if not prev or m[5] > prev.ms or not m[6] then
            got[m[2]][m[4]] = { ms = m[5], ok = m[6], err = m[7], node = m[3] }
          end
        end
      end
    end
    collect({ "init", "node_up", "child_started", "child_stopped", "child_moved" }, 15000)
    stopping = b.name
    c:stop(b)
    b.gone = true
    collect({ "node_down" }, 15000)
    for _, where in ipairs(wheres) do
      for _, name in ipairs(names) do
        local r = got[where][name]
        assert.is_true(r.ok, string.format("%s from %s on %s failed: %s", name, where, r.node, tostring(r.err)))
        assert.is_true(r.ms < 1000, string.format("%s from %s on %s took %.1f ms", name, where, r.node, r.ms))
      end
    end
    assert.is_true(reports >= #wheres * #names)
  end)
end)

describe("distributed supervisor placement controls", function()
  local function pinned_spec(n, node)
    local s = { id = { "worker", n }, start = { "support.worker", "start_link", false, { id = n } }, node = node }
    return s
  end

  local function runs_on(via, n, node_name)
    return function()
      local pid = c:call(via, R, "whereis", { n })
      return pid and pogo.node_of(pid) == node_name
    end
  end

  for _, mode in ipairs({ "active", "on_failure" }) do
    it("pins a child to a node, runs it on its ring owner while that node's supervisor is away, and moves it "
        .. "back when it returns (redistribute " .. mode .. ")", function()
      local nodes = start_nodes(3, 0, { redistribute = mode })
      await_ring()
      local target, owner = nodes[3], nodes[1]
      local ids = owned_by(nodes[2], owner.name, 2)
      -- start_child(sup, spec, node), and node = in the spec, from other nodes than the target
      assert.is_true(c:call(nodes[1], R, "start_pinned", { ids[1], target.name }))
      assert.is_true(c:call(nodes[2], R, "start_spec", { pinned_spec(ids[2], target.name) }))
      -- pinned to a node that runs no supervisor: its ring owner runs it
      local free = owned_by(nodes[2], nodes[2].name, 1)[1]
      assert.is_true(c:call(nodes[1], R, "start_pinned", { free, "nobody@127.0.0.1:1" }))
      for _, n in ipairs(ids) do
        cluster.wait_until(runs_on(nodes[1], n, target.name), 5000, "worker " .. n .. " on its pinned node")
        for _, node in ipairs(nodes) do
          assert.equal(target.name, c:call(node, R, "node_for", { n }))
          assert.equal(node == target, c:call(node, R, "mine", { n }))
        end
      end
      cluster.wait_until(runs_on(nodes[1], free, nodes[2].name), 5000, "the worker pinned to nobody")
      -- the target's supervisor goes: the pinned children run on their ring owner
      c:call(target, R, "stop_supervisor")
      for _, n in ipairs(ids) do
        cluster.wait_until(runs_on(nodes[2], n, owner.name), 5000, "worker " .. n .. " on its ring owner")
        assert.equal(owner.name, c:call(nodes[2], R, "node_for", { n }))
      end
      -- it returns: they go back
      c:call(target, R, "restart_supervisor")
      for _, n in ipairs(ids) do
        cluster.wait_until(runs_on(nodes[2], n, target.name), 5000, "worker " .. n .. " back on its pinned node")
      end
      local all = { ids[1], ids[2], free }
      table.sort(all)
      await_placement(all)
    end)
  end

  it("start_link{nodes = ...} limits the ring to those nodes; the others request and look", function()
    local nodes = start_nodes(3, 0, { manual = true })
    local allowed = { nodes[1].name, nodes[2].name }
    table.sort(allowed)
    for _, node in ipairs(nodes) do assert.is_true(c:call(node, R, "start_sup", { { nodes = allowed } })) end
    cluster.wait_until(function()
      for _, node in ipairs(nodes) do
        if table.concat(c:call(node, R, "nodes"), " ") ~= table.concat(allowed, " ") then return false end
      end
      return true
    end, 10000, "every node to have the ring of the two allowed nodes")
    assert.is_true(c:call(nodes[3], R, "start_children", { 1, 20 }))
    local ids = {}
    for n = 1, 20 do ids[n] = n end
    await_placement(ids)
    assert.same({}, (c:call(nodes[3], R, "children", { "local" })))
    cluster.wait_until(function() return #c:call(nodes[3], R, "children", { "global" }) == 20 end, 5000,
      "the node outside the ring to see every child")
    for n = 1, 20 do
      local owner = c:call(nodes[3], R, "node_for", { n })
      assert.is_true(owner == allowed[1] or owner == allowed[2])
      assert.is_false(c:call(nodes[3], R, "mine", { n }))
    end
  end)

  it("weight = n gives a node n times the share", function()
    local nodes = start_nodes(2, 0, { manual = true })
    assert.is_true(c:call(nodes[1], R, "start_sup", { { weight = 3 } }))
    assert.is_true(c:call(nodes[2], R, "start_sup", { {} }))
    await_ring()
    assert.is_true(c:call(nodes[2], R, "start_children", { 1, 200 }))
    local ids = {}
    for n = 1, 200 do ids[n] = n end
    await_placement(ids, 15000)
    -- 3/4 of 200 is 150 (weight 1 would give about 100, +-7)
    local heavy = #c:call(nodes[1], R, "children", { "local" })
    assert.is_true(heavy >= 125 and heavy <= 175, "the node of weight 3 runs " .. heavy .. " of 200")
  end)

  it("mine is true on the node that owns the child, and only there", function()
    local nodes = placed_on_two({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 })
    for n = 1, 10 do
      local owner = c:call(nodes[2], R, "node_for", { n })
      for _, node in ipairs(nodes) do assert.equal(node.name == owner, c:call(node, R, "mine", { n })) end
    end
  end)

  it("rebalance moves every child to its owner now, asked from any node (redistribute on_failure)", function()
    local first = start_nodes(1, 0, { redistribute = "on_failure" })[1]
    await_ring()
    local ids = {}
    for n = 1, 20 do ids[n] = n; c:call(first, R, "start_child", { n }) end
    await_placement(ids)
    local second = start_nodes(1, 0, { redistribute = "on_failure" })[1]
    await_ring()
    cluster.wait_until(function() return #(c:call(second, R, "children", { "global" })) == 20 end,
      5000, "the new node to see every child")
    assert.equal(20, #local_children({ first })[first.name])
    assert.is_true(c:call(second, R, "rebalance"))
    await_placement(ids)
    assert.is_true(#local_children({ second })[second.name] > 0)
  end)
end)

describe("distributed supervisor restart types across the cluster", function()
  receives_events()

  local function spec(n, restart, start)
    return { id = { "worker", n }, start = start or { "support.worker", "start_link", false, { id = n } },
      restart = restart }
  end

  -- The nodes of the child_started events of worker n that every live node
  -- reported so far, but those of node `except` (if given).
  local function starts_of(n, except)
    local me = pogo.node()
    for i, node in ipairs(alive_nodes()) do c:call(node, R, "flush_events", { me, i }) end
    local flushed, out = 0, {}
    while flushed < #alive_nodes() do
      local m = cluster.expect(function(x) return type(x) == "table" and (x[1] == "event" or x[1] == "flushed") end,
        5000, "the events")
      if m[1] == "flushed" then
        flushed = flushed + 1
      elseif m[2] == "child_started" and m[4][2] == n and m[3] ~= except then
        out[#out + 1] = m[3]
      end
    end
    return out
  end

  -- Request worker n (owned by `host`) with restart type `restart` from `via`;
  -- wait until it runs on `host`.
  local function start_on(via, host, restart)
    local n = owned_by(via, host.name, 1)[1]
    assert.is_true(c:call(via, R, "start_spec", { spec(n, restart) }))
    cluster.wait_until(function()
      local pid = c:call(via, R, "whereis", { n })
      return pid and pogo.node_of(pid) == host.name
    end, 5000, "the " .. restart .. " child on its owner")
    return n
  end

  local function kill(node)
    c:kill(node)
    node.gone = true
    await_ring()
  end

  -- `count` nodes that report their listener events here; the ring of them.
  local function reporting_nodes(count)
    pogo.register("dsup_events", pogo.self())
    local nodes = start_nodes(count, 0, { events = pogo.node() })
    await_ring()
    return nodes
  end

  local function forgotten_everywhere(n)
    await_specs({})
    for _, node in ipairs(alive_nodes()) do
      assert.same({}, (c:call(node, R, "children", { "global" })))
      for _, e in ipairs(c:call(node, R, "local_entries")) do assert.are_not.same({ "worker", n }, e[1]) end
    end
  end

  it("a temporary child never runs again once its node has gone", function()
    local nodes = reporting_nodes(3)
    local victim = nodes[3]
    local n = start_on(nodes[1], victim, "temporary")
    kill(victim)
    forgotten_everywhere(n)
    assert.same({}, starts_of(n, victim.name))
  end)

  it("a temporary child whose start fails is not retried, and is forgotten everywhere", function()
    local nodes = start_nodes(2)
    await_ring()
    assert.is_true(c:call(nodes[1], R, "start_spec", { spec(1, "temporary", { "support.init_fails", "start_link" }) }))
    -- nodes[1] knew it (it requested it): only a termination makes it forget
    forgotten_everywhere(1)
    cluster.wait_until(function()
      for _, entry in ipairs(c:call(nodes[1], R, "pg_state")) do
        if type(entry[1]) == "table" and (entry[1][1] == "term" or entry[1][1] == "spec") then return false end
      end
      return true
    end, 5000, "no spec or marker left in pg")
  end)

  it("a temporary child is not started again by its node's restarted supervisor", function()
    local nodes = reporting_nodes(2)
    local host = nodes[2]
    local n = start_on(nodes[1], host, "temporary")
    crash_supervisor(host, "kill_supervisor") -- its keeper stays, with its memory
    forgotten_everywhere(n)
    assert.same({ host.name }, starts_of(n))
  end)

  it("a temporary child is not started again when its node goes, by a supervisor restarted meanwhile", function()
    -- the restarted supervisor learns that it has run from its child group
    -- (which was there before it monitored pg), not from its own memory
    local nodes = reporting_nodes(2)
    local host = nodes[2]
    local n = start_on(nodes[1], host, "temporary")
    crash_supervisor(nodes[1], "kill_supervisor")
    kill(host)
    forgotten_everywhere(n)
    assert.same({}, starts_of(n, host.name))
  end)

  it("a transient child runs again after its node dies or it crashes, not after a normal exit", function()
    local nodes = start_nodes(3)
    await_ring()
    local n = start_on(nodes[1], nodes[3], "transient")
    kill(nodes[3])
    await_placement({ n })
    local pid = c:call(nodes[1], R, "whereis", { n })
    c:call(nodes[1], R, "send", { pid, "crash" })
    cluster.wait_until(function()
      local p = c:call(nodes[1], R, "whereis", { n })
      return p and p ~= pid
    end, 5000, "the crashed child to restart")
    c:call(nodes[1], R, "send", { c:call(nodes[1], R, "whereis", { n }), "stop" })
    forgotten_everywhere(n)
  end)
end)

describe("distributed supervisor terminate_child", function()
  it("on a node that has not heard of the request: another supervisor that knows it terminates it", function()
    local nodes = start_nodes(3)
    await_ring()
    local a, b, x = nodes[1], nodes[2], nodes[3]
    -- a and b cut off from each other, both still linked to x
    c:call(a, "pogo", "block", { b.name, true })
    finally(function() pcall(c.call, c, a, "pogo", "block", { b.name, false }) end)
    cluster.wait_until(function()
      return #c:call(a, R, "nodes") == 2 and #c:call(b, R, "nodes") == 2
    end, 10000, "a and b to see each other gone")
    local id = "cut-off"
    local spec = { id = id, start = { "support.worker", "start_link", false, { id = id } } }
    assert.is_true(c:call(a, R, "start_spec", { spec, a.name }))
    cluster.wait_until(function()
      return c:call(a, R, "whereis_id", { id }) ~= nil and #c:call(x, R, "specs_for", { id }) == 1
    end, 5000, "the child running on a, its request known on x")
    assert.same({}, c:call(b, R, "specs_for", { id }))
    assert.is_true(c:call(b, R, "terminate_id", { id }))
    cluster.wait_until(function()
      return c:call(a, R, "whereis_id", { id }) == nil and #c:call(a, R, "specs_for", { id }) == 0
        and #c:call(x, R, "specs_for", { id }) == 0
    end, 5000, "the child gone, and its request with it")
    -- an id no supervisor knows is still not found
    assert.same({ nil, "not found" }, { c:call(b, R, "terminate_id", { "nobody" }) })
  end)
end)

describe("distributed supervisor conflicting requests", function()
  local function spec(tag)
    return { id = "conflict", start = { "support.worker", "start_link", false, { id = tag } } }
  end

  it("another spec for an id that a node knows is refused: nil, \"already started: <id>\"", function()
    local nodes = start_nodes(2)
    await_ring()
    assert.is_true(c:call(nodes[1], R, "start_spec", { spec("a") }))
    assert.same({ nil, "already started: conflict" }, { c:call(nodes[1], R, "start_spec", { spec("b") }) })
    cluster.wait_until(function() return #c:call(nodes[2], R, "specs_for", { "conflict" }) == 1 end, 5000,
      "the second node to learn the request")
    assert.same({ nil, "already started: conflict" }, { c:call(nodes[2], R, "start_spec", { spec("b") }) })
    assert.is_true(c:call(nodes[2], R, "start_spec", { spec("a") })) -- the same spec again is fine
  end)

  it("specs requested on both sides of a split: the same one wins on every node, the other is dropped", function()
    local nodes = start_nodes(2)
    await_ring()
    local a, b = nodes[1], nodes[2]
    c:call(a, "pogo", "block", { b.name, true })
    cluster.wait_until(function()
      return #c:call(a, R, "nodes") == 1 and #c:call(b, R, "nodes") == 1
    end, 10000, "each side to see only itself")
    -- neither side can know the other's request: both callers get true
    assert.is_true(c:call(a, R, "start_spec", { spec("a") }))
    assert.is_true(c:call(b, R, "start_spec", { spec("b") }))
    c:call(a, "pogo", "block", { b.name, false })
    await_ring()
    -- the lowest uid wins: uids start with the node name
    local winner = a.name < b.name and "a" or "b"
    cluster.wait_until(function()
      for _, node in ipairs(nodes) do
        local specs = c:call(node, R, "specs_for", { "conflict" })
        if #specs ~= 1 or specs[1].start[4].id ~= winner then return false end
      end
      local groups = 0
      for _, entry in ipairs(c:call(a, R, "pg_state")) do
        if type(entry[1]) == "table" and entry[1][1] == "spec" then groups = groups + 1 end
      end
      local pid = c:call(b, R, "whereis_id", { "conflict" })
      return groups == 1 and pid and c:call(a, R, "ask_id", { pid })[1] == winner
        and #c:call(a, R, "local_entries") + #c:call(b, R, "local_entries") == 1
    end, 10000, "one spec (" .. winner .. "'s) everywhere, its child running once")
  end)
end)

describe("distributed supervisor netsplits", function()
  it("each side runs the child during a split; one copy remains after it heals", function()
    local nodes = start_nodes(3)
    await_ring()
    local ids = request_workers(nodes[1], 6)
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

describe("distributed supervisor netsplits and restart types", function()
  receives_events()

  local function spec(n, restart)
    return { id = { "worker", n }, start = { "support.worker", "start_link", false, { id = n } }, restart = restart }
  end

  -- Request, from nodes[1], `per` workers of each restart type in `types`
  -- owned by each node of `nodes`; wait until each runs on its owner. The
  -- ids (sorted), the ids by owner's name, and the pids by id.
  local function spread(nodes, per, types)
    local ids, by_node, exclude = {}, {}, {}
    for _, node in ipairs(nodes) do
      by_node[node.name] = {}
      for _, restart in ipairs(types) do
        for _, n in ipairs(owned_by(nodes[1], node.name, per, exclude)) do
          exclude[n] = true
          ids[#ids + 1] = n
          table.insert(by_node[node.name], n)
          assert.is_true(c:call(nodes[1], R, "start_spec", { spec(n, restart) }))
        end
      end
    end
    table.sort(ids)
    await_placement(ids)
    local _, pids = c:call(nodes[1], R, "children", { "global" })
    return ids, by_node, pids
  end

  -- The ids of `ids` but those of `drop` (sorted).
  local function without(ids, drop)
    local skip, out = {}, {}
    for _, n in ipairs(drop) do skip[n] = true end
    for _, n in ipairs(ids) do
      if not skip[n] then out[#out + 1] = n end
    end
    table.sort(out)
    return out
  end

  -- Cut `island` (a list of nodes) off from `rest`, with pogo.block on the
  -- nodes of `on`; wait until each side's supervisors see only its side.
  -- The nodes across the split from `node`.
  local function across(node, island, rest)
    for _, n in ipairs(rest) do
      if n == node then return island end
    end
    return rest
  end

  local function split(island, rest, on)
    for _, node in ipairs(on) do
      for _, other in ipairs(across(node, island, rest)) do
        c:call(node, "pogo", "block", { other.name, true })
      end
    end
    cluster.wait_until(function()
      for _, node in ipairs(island) do
        if #c:call(node, R, "nodes") ~= #island then return false end
      end
      for _, node in ipairs(rest) do
        if #c:call(node, R, "nodes") ~= #rest then return false end
      end
      return true
    end, 10000, "each side of the split to see only its own nodes")
  end

  local function heal(island, rest, on)
    for _, node in ipairs(on) do
      for _, other in ipairs(across(node, island, rest)) do
        if not node.gone then c:call(node, "pogo", "block", { other.name, false }) end
      end
    end
    await_ring()
  end

  -- Wait until every node of `nodes` knows exactly the specs `want` (sorted).
  local function await_known(nodes, want, what)
    local text = table.concat(want, " ")
    cluster.wait_until(function()
      for _, node in ipairs(nodes) do
        if table.concat(c:call(node, R, "known_specs"), " ") ~= text then return false end
      end
      return true
    end, 10000, what)
  end

  -- The groups of kind `kind` ("lost", "term") in pg, as `node` sees them.
  local function groups_of(node, kind)
    local n = 0
    for _, entry in ipairs(c:call(node, R, "pg_state")) do
      if type(entry[1]) == "table" and entry[1][1] == kind then n = n + 1 end
    end
    return n
  end

  -- Wait until every live node sees exactly the workers `ids` running, each
  -- once, with the pid it had in `pids` (nil: any), knows exactly their
  -- specs, and pg holds `lost` lost markers (default none) and no
  -- termination marker.
  local function await_kept(ids, pids, lost)
    local want, last = table.concat(ids, " "), nil
    local ok, err = pcall(cluster.wait_until, function()
      for _, node in ipairs(alive_nodes()) do
        local ns, ps = c:call(node, R, "children", { "global" })
        if table.concat(ns, " ") ~= want then
          last = node.name .. " runs {" .. table.concat(ns, " ") .. "}"
          return false
        end
        for _, n in ipairs(ids) do
          if pids[n] and ps[n] ~= pids[n] then
            last = "worker " .. n .. " has another pid on " .. node.name
            return false
          end
        end
        if table.concat(c:call(node, R, "known_specs"), " ") ~= want then
          last = node.name .. " knows other specs"
          return false
        end
        if groups_of(node, "term") ~= 0 or groups_of(node, "lost") ~= (lost or 0) then
          last = node.name .. ": markers left in pg"
          return false
        end
      end
      return true
    end, 10000, "the children {" .. want .. "} kept")
    if not ok then error(tostring(err) .. " (last: " .. tostring(last) .. ")", 2) end
  end

  -- Three nodes, two temporary children owned by each, and nodes[3] cut off
  -- from the others (by itself); once each side has given up the other
  -- side's children (never started there): the nodes, the ids, the ids by
  -- node name, the pids by id, the island and the rest.
  local function split_temporary()
    local nodes = start_nodes(3)
    await_ring()
    local ids, by_node, pids = spread(nodes, 2, { "temporary" })
    local island, rest = { nodes[3] }, { nodes[1], nodes[2] }
    split(island, rest, island)
    await_known(rest, without(ids, by_node[nodes[3].name]), "the majority to drop the island's children")
    await_known(island, by_node[nodes[3].name], "the island to drop the majority's children")
    return nodes, ids, by_node, pids, island, rest
  end

  it("a temporary child cut off by a split runs on after the heal, once, with the same pid", function()
    local _, ids, _, pids, island, rest = split_temporary()
    heal(island, rest, island)
    await_kept(ids, pids)
  end)

  it("a temporary child whose node was killed during a split never runs again; the other side's run on", function()
    pogo.register("dsup_events", pogo.self())
    local nodes = start_nodes(4, 0, { events = pogo.node() })
    await_ring()
    local ids, by_node, pids = spread(nodes, 2, { "temporary" })
    local victim = nodes[3]
    local island, rest = { nodes[3], nodes[4] }, { nodes[1], nodes[2] }
    split(island, rest, rest)
    local dead = by_node[victim.name]
    local survivors = without(ids, dead)
    local other = by_node[nodes[4].name]
    local away = table.move(other, 1, #other, #dead + 1, table.move(dead, 1, #dead, 1, {}))
    await_known(rest, without(ids, away), "the majority to drop the island's children")
    c:kill(victim)
    victim.gone = true
    await_known({ nodes[4] }, by_node[nodes[4].name], "the island's other node to drop the killed node's children")
    while pogo.receive(0) do end -- (the events so far: every child started once)
    heal(island, rest, rest)
    -- the killed node again, a new incarnation with the same name (so the
    -- same owner of its old children)
    local again = start_nodes(1, 0, { events = pogo.node(), name = victim.name:match("^([^@]+)"),
      port = tonumber(victim.name:match(":(%d+)$")) })[1]
    assert.equal(victim.name, again.name)
    await_ring()
    await_kept(survivors, pids, #dead)
    -- the new incarnation has settled: a child pinned to it runs
    local probe = { id = { "probe", 1 }, start = { "support.worker", "start_link", false, { id = "probe" } } }
    assert.is_true(c:call(again, R, "start_spec", { probe, again.name }))
    cluster.wait_until(function()
      local pid = c:call(nodes[1], R, "whereis_id", { probe.id })
      return pid and pogo.node_of(pid) == again.name
    end, 5000, "the pinned child on the new incarnation")
    await_kept(survivors, pids, #dead)
    -- no node started a child since the split but the probe
    local live = alive_nodes()
    for i, node in ipairs(live) do c:call(node, R, "flush_events", { pogo.node(), i }) end
    local flushed, started = 0, {}
    while flushed < #live do
      local m = cluster.expect(function(x) return type(x) == "table" and (x[1] == "event" or x[1] == "flushed") end,
        5000, "the events")
      if m[1] == "flushed" then
        flushed = flushed + 1
      elseif m[2] == "child_started" and m[4][1] == "worker" then
        started[#started + 1] = m[4][2] .. " on " .. m[3]
      end
    end
    assert.same({}, started)
  end)

  it("an orderly stop ends its node's temporary children for good: terminated, not lost", function()
    local nodes = start_nodes(3)
    await_ring()
    local ids, by_node, pids = spread(nodes, 2, { "temporary" })
    local victim = nodes[3]
    assert.are.same({ code = 0, signal = 0 }, c:stop(victim, 20000))
    victim.gone = true
    await_ring()
    -- no lost mark (nothing may still run), and the ids can be requested anew
    await_kept(without(ids, by_node[victim.name]), pids)
    local n = by_node[victim.name][1]
    assert.is_true(c:call(nodes[2], R, "start_spec", { spec(n, "temporary") }))
    await_placement(without(ids, { by_node[victim.name][2] }))
  end)

  it("terminate_child during a split, on either side, ends the child everywhere after the heal", function()
    local nodes, ids, by_node, pids, island, rest = split_temporary()
    -- from the majority, a child that runs on the island; and the other way round
    local far, near = by_node[nodes[3].name][1], by_node[nodes[1].name][1]
    assert.is_true(c:call(nodes[2], R, "terminate_child", { far }))
    assert.is_true(c:call(nodes[3], R, "terminate_child", { near }))
    heal(island, rest, island)
    await_kept(without(ids, { far, near }), pids)
  end)

  it("after a split heals, temporary, transient and permanent children each run once, none ended", function()
    local nodes = start_nodes(3)
    await_ring()
    local ids, by_node, pids = spread(nodes, 1, { "temporary", "transient", "permanent" })
    local island, rest = { nodes[3] }, { nodes[1], nodes[2] }
    split(island, rest, island)
    -- each side runs its own children and the other side's transient and
    -- permanent ones; not the other side's temporary ones
    local temporary = {}
    for _, node in ipairs(nodes) do temporary[node.name] = by_node[node.name][1] end
    await_known(rest, without(ids, { temporary[nodes[3].name] }), "the majority to drop the island's temporary child")
    await_known(island, without(ids, { temporary[nodes[1].name], temporary[nodes[2].name] }),
      "the island to drop the majority's temporary children")
    heal(island, rest, island)
    local kept = {}
    for _, n in pairs(temporary) do kept[n] = pids[n] end
    await_kept(ids, kept)
    await_placement(ids)
  end)
  it("a temporary child lost with its node can be requested again at once, and runs once", function()
    local nodes = start_nodes(3)
    await_ring()
    local ids, by_node = spread(nodes, 1, { "temporary" })
    local victim = nodes[3]
    local n = by_node[victim.name][1]
    c:kill(victim)
    victim.gone = true
    await_ring()
    await_known({ nodes[1], nodes[2] }, without(ids, { n }), "the dead node's child dropped")
    assert.is_true(c:call(nodes[2], R, "start_spec", { spec(n, "temporary") }))
    await_placement(ids)
    await_kept(ids, {})
  end)
end)
