-- State handoff of the distributed supervisor over real node processes: a
-- counter (support.handoff_remote) keeps its count when it moves on a join,
-- on `rebalance` and on an orderly stop, and two instances never overlap
-- (the new one starts after the old one's terminate, by the uv.hrtime()
-- stamps each reports to this process, registered as "handoff_events"); the
-- failures (old node SIGKILLed mid-handoff, a handoff past the child's
-- shutdown, data that cannot be serialized) start the new instance with nil;
-- after a netsplit heals, resolve_conflict merges the copy that stopped.
local pogo = require "pogo"
local uv = require "luv"
local cluster = require "support.cluster"

local S = "spec/support/handoff_node.lua"
local R = "support.handoff_remote"

local function is(kind, node, id)
  return function(m)
    return type(m) == "table" and m[1] == kind and (node == nil or m[2] == node) and (id == nil or m[3] == id)
  end
end

describe("state handoff", function()
  local c

  setup(function()
    c = cluster.new { timeout_ms = 1000, heartbeat_ms = 200 }
    c:start_self()
    pogo.register("handoff_events", pogo.self())
  end)

  before_each(function()
    while pogo.receive(0) do end
  end)

  after_each(function()
    c:teardown() -- every node, killed by pid
  end)

  teardown(function()
    pogo.stop()
  end)

  local function node(redistribute, seed, later)
    return c:start_node { script = S, args = { c.self_name, redistribute or "", later and "later" or "" },
                          seeds = seed and { seed } or nil }
  end

  -- The owner of `id` among `nodes`, as every supervisor's ring says.
  local function ring_owner(id, nodes)
    local r = require("pogo.ring").new()
    for _, n in ipairs(nodes) do r:add(n.name, 1) end
    return r:key_to_node(id)
  end

  -- (`mesh` false: other nodes are connected too, only the ring is awaited)
  local function await_ring(nodes, mesh)
    if mesh ~= false then c:wait_meshed(nodes) end
    cluster.wait_until(function()
      for _, n in ipairs(nodes) do
        local ok, ns = c:rpc(n, R, "nodes", {}, 1000)
        if not ok or #ns ~= #nodes then return false end
      end
      return true
    end, 10000, "every supervisor in the ring")
  end

  -- Two nodes (redistribute active) in one ring: a, b.
  local function two_nodes()
    local b = node()
    local a = node(nil, b)
    await_ring { a, b }
    return a, b
  end

  -- Ids for counters started before a second node joins. Which of them that
  -- node will own depends on its name, so on its ephemeral port: with 12,
  -- one in about 4,000 pairs of names gave it none (n12@127.0.0.1:42043 and
  -- n13@127.0.0.1:35873 did, in a CI run); with 24, one in millions.
  local function some_ids()
    local ids = {}
    for i = 1, 24 do ids[i] = "k" .. i end
    return ids
  end

  -- Those of `ids` that `via` says `owner` owns now (at least one).
  local function owned_among(via, ids, owner)
    local out = {}
    for _, id in ipairs(ids) do
      if c:call(via, R, "node_for", { id }) == owner then out[#out + 1] = id end
    end
    assert.is_true(#out > 0, "no counter moves to " .. owner)
    return out
  end

  -- Ids "<prefix>1".. that `via` says `owner` owns, `count` of them.
  local function owned_by(via, owner, count, prefix)
    local out = {}
    for i = 1, 1000 do
      local id = (prefix or "k") .. i
      if c:call(via, R, "node_for", { id }) == owner then
        out[#out + 1] = id
        if #out == count then return out end
      end
    end
    error("no id owned by " .. owner)
  end

  -- Request counters `ids` on `via` (each `arg`), wait for their starts,
  -- and add i to the i-th: returns id -> count.
  local function counters(via, ids, arg, shutdown)
    local want = {}
    for i, id in ipairs(ids) do
      local a = {}
      for k, v in pairs(arg or {}) do a[k] = v end
      c:call(via, R, "request", { c.self_name, id, a, shutdown })
      cluster.expect(is("started", nil, id), 5000, "counter " .. id .. " started")
      -- (the child reports from its init; `via` learns where it runs from pg)
      cluster.wait_until(function() return c:call(via, R, "where", { id }) ~= nil end, 5000,
        "counter " .. id .. " known on " .. via.name)
      assert.equal(i + 10, c:call(via, R, "add", { id, i + 10 }))
      want[id] = i + 10
    end
    return want
  end

  -- Wait until each of `ids` started on `to` (after it ran on `from`), and
  -- check: the new instance got the old one's count (`want[id]`, or 0 and no
  -- data when `want` is false), and (with `want`) it started after the old
  -- one's handoff and terminate had ended: the instances never overlap.
  local function moved(ids, from, to, want)
    local ends, terms, starts = {}, {}, {}
    local mine = {}
    for _, id in ipairs(ids) do mine[id] = true end
    local function complete()
      for _, id in ipairs(ids) do
        if not starts[id] or (want and not (ends[id] and terms[id])) then return false end
      end
      return true
    end
    while not complete() do
      local m = cluster.expect(function(x)
        return type(x) == "table" and mine[x[3]] and (is("handoff_end", from)(x) or is("terminated", from)(x)
          or is("started", to)(x))
      end, 10000, "the moves of " .. table.concat(ids, " "))
      if m[1] == "handoff_end" then ends[m[3]] = m[4]
      elseif m[1] == "terminated" then terms[m[3]] = m[5]
      else
        assert.is_nil(starts[m[3]], m[3] .. " started twice on " .. to)
        starts[m[3]] = m
      end
    end
    for _, id in ipairs(ids) do
      local s = starts[id]
      if want then
        assert.are.same({ want[id], true }, { s[4], s[5] }, id .. ": count and data on the new instance")
        assert.is_true(ends[id] < s[6], id .. ": the new instance started before the old one's handoff ended")
        assert.is_true(terms[id] < s[6], id .. ": the new instance started before the old one terminated")
      else
        assert.are.same({ 0, false }, { s[4], s[5] }, id .. ": the new instance starts with nil")
      end
    end
    return starts
  end

  it("the count survives a join (redistribute active), and the instances never overlap", function()
    local a = node()
    await_ring { a }
    local ids = some_ids()
    local want = counters(a, ids)
    local b = node(nil, a)
    await_ring { a, b }
    local to_b = owned_among(a, ids, b.name)
    moved(to_b, a.name, b.name, want)
    for _, id in ipairs(ids) do assert.equal(want[id], c:call(b, R, "get", { id })) end
  end)

  it("the count survives rebalance", function()
    local a = node("on_failure")
    await_ring { a }
    local ids = some_ids()
    local want = counters(a, ids)
    local b = node("on_failure", a)
    await_ring { a, b }
    pogo.sleep(300) -- on_failure: nothing moves on a join
    assert.is_nil(pogo.receive(is("started"), 0))
    local to_b = owned_among(a, ids, b.name)
    assert.is_true(c:call(b, R, "rebalance"))
    moved(to_b, a.name, b.name, want)
    for _, id in ipairs(ids) do assert.equal(want[id], c:call(a, R, "get", { id })) end
  end)

  it("the count survives a destination that goes during the handoff: the data comes back", function()
    local a = node("on_failure")
    await_ring { a }
    local ids = some_ids()
    local want = counters(a, ids, { slow_ms = 600 }) -- (each handoff takes 600 ms)
    local b = node("on_failure", a)
    await_ring { a, b }
    local to_b = owned_among(a, ids, b.name)
    assert.is_true(c:call(b, R, "rebalance"))
    -- the first handoff began: b goes while they run
    cluster.expect(function(m) return is("handoff_begin", a.name)(m) end, 5000, "a handoff")
    c:kill(b)
    -- each moving counter ends its handoff, gets no answer from b, and its
    -- data goes back to a's supervisor: it starts again on a with its count
    local mine, back = {}, {}
    for _, id in ipairs(to_b) do mine[id] = true end
    while next(mine) do
      local m = cluster.expect(function(x)
        return type(x) == "table" and mine[x[3]] and is("started", a.name)(x)
      end, 10000, "the counters back on a")
      mine[m[3]], back[m[3]] = nil, m
    end
    for _, id in ipairs(to_b) do
      assert.are.same({ want[id], true }, { back[id][4], back[id][5] }, id .. ": count and data back on a")
      assert.equal(want[id], c:call(a, R, "get", { id }))
    end
  end)

  it("the count survives an orderly stop (SIGTERM) of its node", function()
    local a, b = two_nodes()
    local ids = owned_by(a, a.name, 3)
    local want = counters(a, ids)
    assert.equal(0, uv.kill(a.pid, "sigterm"))
    moved(ids, a.name, b.name, want)
    assert.are.same({ code = 0, signal = 0 }, c:wait_exit(a, 20000))
    for _, id in ipairs(ids) do assert.equal(want[id], c:call(b, R, "get", { id })) end
  end)

  it("two nodes stopped at the same instant (SIGTERM): every count reaches the node that stays", function()
    local x = node()
    local a = node(nil, x)
    local b = node(nil, x)
    await_ring { x, a, b }
    -- ids that a runs and hands to b when a leaves alone (b, stopping too,
    -- must pass the data on to x), and the other way round
    local ids, per = {}, { [a.name] = 0, [b.name] = 0 }
    for i = 1, 5000 do
      local id = "k" .. i
      local first = ring_owner(id, { x, a, b })
      local other = first == a.name and b or a
      if first ~= x.name and per[first] < 3 and ring_owner(id, { x, other }) == other.name then
        per[first] = per[first] + 1
        ids[#ids + 1] = id
      end
      if #ids == 6 then break end
    end
    assert.equal(6, #ids)
    for _, id in ipairs(ids) do assert.equal(ring_owner(id, { x, a, b }), c:call(x, R, "node_for", { id })) end
    local want = counters(x, ids)
    assert.equal(0, uv.kill(a.pid, "sigterm"))
    assert.equal(0, uv.kill(b.pid, "sigterm"))
    local mine, got = {}, {}
    for _, id in ipairs(ids) do mine[id] = true end
    for _ = 1, #ids do
      local m = cluster.expect(function(m)
        return is("started", x.name)(m) and mine[m[3]] and not got[m[3]]
      end, 10000, "the counters on " .. x.name)
      got[m[3]] = { m[4], m[5] }
    end
    for _, id in ipairs(ids) do
      assert.are.same({ want[id], true }, got[id], id .. ": count and data on the node that stays")
    end
    assert.are.same({ code = 0, signal = 0 }, c:wait_exit(a, 20000))
    assert.are.same({ code = 0, signal = 0 }, c:wait_exit(b, 20000))
    for _, id in ipairs(ids) do assert.equal(want[id], c:call(x, R, "get", { id })) end
  end)

  it("a node that joins while the data travels: it goes on to the child's new owner", function()
    local a = node()
    await_ring { a }
    local b, d = node(nil, a, true), node(nil, a, true) -- in the mesh; their supervisors start later
    c:wait_meshed { a, b, d }
    -- ids that move from a to b when b's supervisor starts, then belong to d
    local ids = {}
    for i = 1, 5000 do
      local id = "k" .. i
      if ring_owner(id, { a, b }) == b.name and ring_owner(id, { a, b, d }) == d.name then ids[#ids + 1] = id end
      if #ids == 4 then break end
    end
    assert.equal(4, #ids)
    local want = counters(a, ids, { slow_ms = 600 }, 5000)
    assert(c:call(b, R, "start_sup_later"))
    await_ring({ a, b }, false)
    for _, id in ipairs(ids) do assert.equal(b.name, c:call(a, R, "node_for", { id })) end
    for _, id in ipairs(ids) do cluster.expect(is("handoff_begin", a.name, id), 5000, id .. " handing over to b") end
    assert(c:call(d, R, "start_sup_later")) -- while the data is on its way to b
    moved(ids, a.name, d.name, want)
    for _, id in ipairs(ids) do assert.equal(want[id], c:call(a, R, "get", { id })) end
  end)

  it("three of four nodes stopped at the same instant: every count reaches the node that stays", function()
    local x = node()
    local others = { node(nil, x), node(nil, x), node(nil, x) }
    await_ring { x, others[1], others[2], others[3] }
    local ids, want, started = {}, {}, {}
    for i = 1, 100 do
      ids[i] = "k" .. i
      c:call(x, R, "request", { c.self_name, ids[i] })
    end
    for _ = 1, #ids do started[cluster.expect(is("started"), 10000, "the counters' starts")[3]] = true end
    for i, id in ipairs(ids) do
      assert.is_true(started[id], id .. " started")
      cluster.wait_until(function() return c:call(x, R, "where", { id }) ~= nil end, 5000, id .. " known")
      want[id] = c:call(x, R, "add", { id, i })
    end
    for _, n in ipairs(others) do assert.equal(0, uv.kill(n.pid, "sigterm")) end
    for _, n in ipairs(others) do assert.are.same({ code = 0, signal = 0 }, c:wait_exit(n, 20000)) end
    for _, id in ipairs(ids) do
      cluster.wait_until(function() return c:call(x, R, "where", { id }) == x.name end, 5000, id .. " on " .. x.name)
      assert.equal(want[id], c:call(x, R, "get", { id }), id .. ": its count on the node that stays")
    end
  end)

  it("a node SIGKILLed mid-handoff: the new instance starts with nil", function()
    local a, b = two_nodes()
    local id = owned_by(a, a.name, 1)[1]
    counters(a, { id }, { slow_ms = 5000 }, 20000)
    assert.equal(0, uv.kill(a.pid, "sigterm"))
    cluster.expect(is("handoff_begin", a.name, id), 5000, "the handoff to begin")
    c:kill(a)
    moved({ id }, a.name, b.name, false)
    assert.equal(0, c:call(b, R, "get", { id }))
  end)

  it("a handoff past the child's shutdown time: killed, logged, the new instance starts with nil", function()
    local a = node("on_failure")
    await_ring { a }
    local ids = some_ids()
    counters(a, ids, { slow_ms = 3000 }, 300)
    local b = node("on_failure", a)
    await_ring { a, b }
    local to_b = owned_among(a, ids, b.name)
    local t0 = uv.hrtime()
    assert.is_true(c:call(a, R, "rebalance"))
    moved(to_b, a.name, b.name, false)
    local ms = (uv.hrtime() - t0) / 1e6
    assert.is_true(ms < 2500, "the moves took " .. ms .. " ms: not bounded by the 300 ms shutdown")
    for _, id in ipairs(to_b) do
      cluster.wait_until(function()
        return a.err:find("child " .. id .. " was killed while it handed over (its shutdown is 300 ms)", 1, true)
          and a.err:find("child " .. id .. " (<", 1, true)
          and a.err:find("did not stop within its shutdown of 300 ms: killed", 1, true)
      end, 2000, "the log line of " .. id .. " on " .. a.name)
    end
  end)

  it("data that cannot be serialized: logged, the new instance starts with nil", function()
    local a, b = two_nodes()
    local id = owned_by(a, a.name, 1)[1]
    counters(a, { id }, { unserializable = true })
    assert.is_true(c:call(b, R, "rebalance")) -- nothing moves: every child is on its owner
    assert.equal(0, uv.kill(a.pid, "sigterm"))
    moved({ id }, a.name, b.name, false)
    c:wait_exit(a, 20000)
    assert.matches("handoff data cannot be serialized, nil is handed over", a.err, 1, true)
  end)

  it("data too big for a frame: logged, the new instance starts with nil", function()
    local a, b = two_nodes()
    local id = owned_by(a, a.name, 1)[1]
    counters(a, { id }, { pad = 17 * 1024 * 1024 }) -- the frame limit is 16 MiB
    assert.equal(0, uv.kill(a.pid, "sigterm"))
    moved({ id }, a.name, b.name, false)
    c:wait_exit(a, 20000)
    assert.matches("handoff data cannot be sent to <" .. b.name, a.err, 1, true)
  end)

  -- Two nodes, a counter owned by a (`arg` as for `counters`), a netsplit
  -- during which a's copy gets 3 and b's own copy 4, then the heal: b's copy
  -- stops, and a's resolve_conflict gets its count. Returns a, b, the id,
  -- the count before the split and the "terminated" report of b's copy.
  local function split_and_heal(arg)
    local a, b = two_nodes()
    local id = owned_by(a, a.name, 1)[1]
    local want = counters(a, { id }, arg)[id]
    c:call(a, "pogo", "block", { b.name, true })
    -- b starts its own copy (from 0: a is gone for it), a keeps its own
    cluster.expect(is("started", b.name, id), 10000, "b's copy during the split")
    assert.equal(want + 3, c:call(a, R, "add", { id, 3 }))
    assert.equal(4, c:call(b, R, "add", { id, 4 }))
    c:call(a, "pogo", "block", { b.name, false })
    -- a's copy stays (a is the owner; with a name, a's registration came
    -- first too) and takes b's count
    local m = cluster.expect(is("resolved", a.name, id), 10000, "resolve_conflict on a")
    assert.are.same({ want + 3, 4 }, { m[4], m[5] })
    local t = cluster.expect(is("terminated", b.name, id), 5000, "b's copy stopped")
    assert.equal(want + 7, c:call(a, R, "get", { id }))
    cluster.wait_until(function() return c:call(b, R, "where", { id }) == a.name end, 5000, "one copy, on a")
    return a, b, id, want, t
  end

  it("after a netsplit heals, the copy that stops hands its count to the staying copy's resolve_conflict",
     function()
    local _, b, id, want = split_and_heal()
    assert.equal(want + 7, c:call(b, R, "get", { id }))
  end)

  it("after a netsplit heals, a copy named in pogo.registry that loses its name hands its count to the " ..
     "staying copy's resolve_conflict", function()
    -- without the handoff, the registry's exit signal would end b's copy first
    local _, b, id, want, t = split_and_heal { named = true }
    assert.are.same({ "name_conflict", id }, t[4])
    assert.equal(want + 7, c:call(b, "pogo", "call", { { "via", "pogo.registry", id }, "get", 5000 }))
  end)

  it("after a netsplit heals, a named copy whose name the owner's newer copy lost: one copy stays, on the " ..
     "owner, with both counts", function()
    local a, b = two_nodes()
    local id = owned_by(a, a.name, 1)[1]
    counters(a, { id }, { named = true })
    c:call(a, "pogo", "block", { b.name, true })
    cluster.expect(is("started", b.name, id), 10000, "b's copy during the split")
    -- a's copy restarts: its registration is now the newer one, and the
    -- registry keeps b's copy, while a owns the child
    pogo.exit(c:call(a, "pogo.dynamic_supervisor", "whereis", { "dhand", id }), "kill")
    cluster.expect(is("started", a.name, id), 10000, "a's copy restarted")
    assert.equal(3, c:call(a, R, "add", { id, 3 }))
    assert.equal(4, c:call(b, R, "add", { id, 4 }))
    c:call(a, "pogo", "block", { b.name, false })
    -- a's copy hands 3 to b's resolve_conflict and ends; b's copy then moves
    -- to a with 7 (before, both copies ended and a restarted from nil)
    local m = cluster.expect(is("resolved", b.name, id), 10000, "resolve_conflict on b")
    assert.are.same({ 4, 3 }, { m[4], m[5] })
    local s = cluster.expect(is("started", a.name, id), 10000, "the copy that stays, moved to a")
    assert.are.same({ 7, true }, { s[4], s[5] })
    assert.equal(7, c:call(b, R, "get", { id }))
    cluster.wait_until(function() return c:call(b, R, "where", { id }) == a.name end, 5000, "one copy, on a")
    assert.is_nil(pogo.receive(is("started"), 300), "a third start")
  end)
end)
