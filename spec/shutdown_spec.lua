-- Specs for pogo.stop on one node (lua/pogo/shutdown.lua): which supervisors
-- are the roots of trees, the order in which the trees stop, the timeout, and
-- where it may be called from. The multi-node side (SIGTERM to bin/pogo,
-- children moving, peers) is in spec/cluster/stop_spec.lua.
local pogo = require "pogo"
local uv = require "luv"
local supervisor = require "pogo.supervisor"
local dsup = require "pogo.dynamic_supervisor"
local shutdown = require "pogo.shutdown"
local helpers = require "support.stop_remote"

local function is(kind, id)
  return function(m) return type(m) == "table" and m[1] == kind and (id == nil or m[3] == id) end
end

-- The ids of the "terminated" reports in the mailbox, in order.
local function terminated()
  local out = {}
  while true do
    local m = pogo.receive(is("terminated"), 0)
    if not m then return out end
    out[#out + 1] = m[3]
  end
end

local function flush()
  while pogo.receive(0) do end
end

-- Start a local supervisor from a process that stays (its parent), as a
-- script's supervisors have; returns the supervisor's pid.
local function start_root(children, opts)
  local me = pogo.self()
  pogo.spawn(function()
    pogo.send(me, { "root", (supervisor.start_link(children, opts)) })
    pogo.receive()
  end)
  return pogo.receive(is("root"), 2000)[2]
end

describe("pogo.stop", function()
  local me

  before_each(function()
    me = pogo.self()
    flush()
  end)

  it("stops every tree, the last started first, each supervisor's children in reverse start order", function()
    local r = helpers.spec
    local inner = { id = "inner", type = "supervisor",
      start = { "pogo.supervisor", "start_link", { r("i1", me), r("i2", me) } } }
    local first = start_root({ r("a1", me), inner, r("a2", me) })
    local second = start_root({ r("b1", me), r("b2", me) })
    local d = start_root({ { id = "d", start = { "pogo.dynamic_supervisor", "start_link", { name = "shutdown_d" } },
      type = "supervisor" } })
    assert.is_true(dsup.start_child("shutdown_d", r("d1", me)))
    assert.is_not_nil(pogo.receive(is("started", "d1"), 2000))
    assert.are.same({ first, second, d }, shutdown.roots()) -- "inner" and the distributed one are no roots
    assert.is_true(pogo.stop(5000))
    assert.are.same({ "d1", "b2", "b1", "a2", "i2", "i1", "a1" }, terminated())
    for _, pid in ipairs { first, second, d } do assert.is_false(pogo.alive(pid)) end
    assert.are.same({}, shutdown.roots())
  end)

  it("keeps the reverse start order when the roots' parent is linked to them all and does not trap exits", function()
    -- a script's pattern: one process start_links every root, then waits;
    -- the middle tree is slow to stop
    local parent = pogo.spawn(function()
      local r = helpers.spec
      pogo.send(me, { "root", (supervisor.start_link({ r("o1", me) })) })
      pogo.send(me, { "root", (supervisor.start_link({ r("o2", me, 300) })) })
      pogo.send(me, { "root", (supervisor.start_link({ r("o3", me) })) })
      pogo.receive()
    end)
    for _ = 1, 3 do assert.is_not_nil(pogo.receive(is("root"), 2000)) end
    local ref = pogo.monitor(parent)
    assert.is_true(pogo.stop(5000))
    local order = {}
    while true do
      local m = pogo.receive(is("terminated"), 0)
      if not m then break end
      order[#order + 1] = { m[3], m[5] }
    end
    assert.are.same({ "o3", "o2", "o1" },
      { order[1] and order[1][1], order[2] and order[2][1], order[3] and order[3][1] })
    -- and the parent still ends with its roots' exit, once they are down
    local down = pogo.receive(function(m) return type(m) == "table" and m[1] == "DOWN" and m[2] == ref end, 1000)
    assert.are.same("shutdown", down and down[4])
  end)

  it("from a child's terminate starts the stop and returns at once, and the stop goes on", function()
    local sup = start_root({ helpers.spec("t1", me), helpers.stopper_spec("t2", me), helpers.spec("t3", me) })
    local t0 = pogo.now()
    assert.is_true(pogo.stop(5000))
    assert.is_true(pogo.now() - t0 < 2000, (pogo.now() - t0) .. " ms")
    assert.are.same({ "stop_returned", "t2" }, { table.unpack(pogo.receive(is("stop_returned"), 0) or {}, 1, 2) })
    assert.are.same({ "t3", "t2", "t1" }, terminated())
    assert.is_false(pogo.alive(sup))
  end)

  it("from a terminate not run by a stop begins the stop, returns at once, and pogo.run returns", function()
    local sup = start_root({ helpers.spec("u1", me), helpers.stopper_spec("u2", me) })
    pogo.spawn(function() supervisor.terminate_child(sup, "u2") end)
    local t0 = pogo.now()
    local got = pogo.receive(is("stop_returned"), 3000)
    assert.is_not_nil(got)
    assert.is_nil(got[3]) -- at once, without the stop's result
    pogo.run() -- the stop the child began ends the loop
    assert.is_true(pogo.now() - t0 < 2000, (pogo.now() - t0) .. " ms")
    assert.are.same({ "u2", "u1" }, terminated())
    assert.is_false(pogo.alive(sup))
  end)

  it("kills what is left at the timeout and says it did", function()
    local lines = {}
    pogo.log.set_handler(function(level, msg, meta) lines[#lines + 1] = { level, msg, meta } end)
    finally(function() pogo.log.set_handler(nil) end)
    local sup = start_root({ helpers.spec("k1", me), helpers.stubborn_spec(), helpers.spec("k2", me) })
    local stubborn
    for _, c in ipairs(supervisor.which_children(sup)) do
      if c.id == "stubborn" then stubborn = c.pid end
    end
    local t0 = pogo.now()
    assert.is_false(pogo.stop(300))
    local took = pogo.now() - t0
    assert.is_true(took >= 290 and took < 1500, took .. " ms")
    assert.are.same({ "k2" }, terminated()) -- k1 was killed: no terminate
    assert.is_false(pogo.alive(stubborn))
    assert.is_false(pogo.alive(sup))
    local said
    for _, l in ipairs(lines) do
      if l[1] == "warning" and l[2]:find("did not stop within 300 ms", 1, true) then said = l end
    end
    assert.is_not_nil(said)
    assert.equal("pogo", said[3].module)
    -- the tree that was being stopped, named: its stubborn child held it
    assert.matches("trees still running, the one being stopped first: " .. tostring(sup), said[2], 1, true)
    assert.equal(tostring(sup), said[3].trees:match("^[^ ,]+"))
  end)

  it("from a process waits for the stop, and pogo.run returns", function()
    local sup = start_root({ helpers.spec("p1", me) })
    pogo.spawn(function()
      local clean = pogo.stop(2000)
      pogo.send(me, { "stopped", clean })
    end)
    pogo.run()
    assert.are.same({ "p1" }, terminated())
    assert.are.same({ "stopped", true }, pogo.receive(is("stopped"), 1000))
    assert.is_false(pogo.alive(sup))
  end)

  it("from a luv callback returns at once, and pogo.run returns once the trees are down", function()
    local sup = start_root({ helpers.spec("c1", me) })
    local t = uv.new_timer()
    local returned = "not called"
    t:start(5, 0, function()
      returned = pogo.stop()
      t:close()
    end)
    pogo.run()
    assert.is_nil(returned)
    assert.are.same({ "c1" }, terminated())
    assert.is_false(pogo.alive(sup))
  end)

  it("runs the on_stop hooks once the trees are down, and a second stop joins the first", function()
    local sup = start_root({ helpers.spec("h1", me) })
    local seen = {}
    local remove = pogo.on_stop(function() seen[#seen + 1] = pogo.alive(sup) end)
    finally(remove)
    pogo.spawn(function() pogo.stop(2000) end)
    pogo.spawn(function() pogo.stop(2000) end)
    pogo.run()
    assert.are.same({ false }, seen) -- once, with the supervisor gone
    assert.are.same({ "h1" }, terminated())
  end)

  it("refuses a bad timeout", function()
    assert.has_error(function() pogo.stop(-1) end,
      "pogo.stop: timeout_ms must be a non-negative number of ms, got -1")
    assert.has_error(function() pogo.stop("soon") end)
  end)
end)
