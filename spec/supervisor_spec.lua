-- Specs for pogo.supervisor (local supervision) and pogo.child_spec.
local pogo = require "pogo"
local sup = require "pogo.supervisor"
local child_spec = require "pogo.child_spec"

before_each(function()
  while pogo.receive(0) ~= nil do end
end)

local function worker(id, opts, extra)
  local s = { id = id, start = { "support.worker", "start_link", id, opts } }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

-- Wait until `name` is registered to a pid other than `old`.
local function await_new(name, old, timeout)
  local deadline = pogo.now() + (timeout or 1000)
  while pogo.now() < deadline do
    local p = pogo.whereis(name)
    if p and p ~= old then return p end
    pogo.sleep(1)
  end
  error("no new process registered as " .. name)
end

local function stop_sup(s)
  local ref = pogo.monitor(s)
  pogo.unlink(s)
  pogo.exit(s, "shutdown")
  assert.is_not_nil(pogo.receive(function(m) return m[1] == "DOWN" and m[2] == ref end, 5000))
end

local function crash(name)
  local pid = pogo.whereis(name)
  pogo.send(pid, "crash")
  return pid
end

describe("child specs", function()
  it("fill in defaults", function()
    local s = assert(child_spec.normalize({ id = 1, start = { "support.worker", "start_link" } }))
    assert.equal("permanent", s.restart)
    assert.equal(5000, s.shutdown)
    assert.equal("worker", s.type)
    assert.same({ "support.worker" }, s.modules)
    local s2 = assert(child_spec.normalize({ id = 2, type = "supervisor",
      start = { "pogo.supervisor", "start_link", {} } }))
    assert.equal("infinity", s2.shutdown)
  end)

  it("expand the shorthands through child_spec(arg)", function()
    local s = assert(child_spec.normalize("support.worker"))
    assert.equal("worker", s.id)
    local s2 = assert(child_spec.normalize({ "support.worker", { id = "w7" } }))
    assert.equal("w7", s2.id)
  end)

  it("reject bad specs with a reason", function()
    local cases = {
      { { start = { "support.worker", "start_link" } }, "missing id" },
      { { id = 1, start = "support.worker" }, "start must be" },
      { { id = 1, start = { "support.worker" } }, "start must be" },
      { { id = 1, start = { "support.worker", "start_link" }, restart = "sometimes" }, "unknown restart" },
      { { id = 1, start = { "support.worker", "start_link" }, shutdown = -1 }, "shutdown" },
      { { id = 1, start = { "support.worker", "start_link" }, shutdown = "soon" }, "shutdown" },
      { { id = 1, start = { "no.such.module", "start_link" } }, "unknown module" },
      { { id = 1, start = { "support.worker", "nope" } }, "no function" },
      { { id = 1, start = { "support.worker", "start_link" }, type = "thing" }, "unknown type" },
      { "no.such.module", "unknown module" },
      { 42, "expected a table" },
      { { id = print, start = { "support.worker", "start_link" } }, "id: function cannot be sent" },
    }
    for _, c in ipairs(cases) do
      local s, err = child_spec.normalize(c[1])
      assert.is_nil(s)
      assert.matches("^invalid child spec: ", err)
      assert.matches(c[2], err, 1, true)
    end
  end)
end)

describe("pogo.supervisor", function()
  it("starts children in order and restarts a crashed one with a new pid", function()
    local s = assert(sup.start_link({ worker("a"), worker("b") }))
    local a = pogo.whereis("a")
    local b = pogo.whereis("b")
    assert.is_true(pogo.is_pid(a) and pogo.is_pid(b))
    crash("a")
    local a2 = await_new("a", a)
    assert.are_not.equal(a, a2)
    assert.equal(b, pogo.whereis("b"))
    local kids = sup.which_children(s)
    assert.equal("a", kids[1][1])
    assert.equal(a2, kids[1][2])
    assert.equal("worker", kids[1][3])
    assert.same({ "support.worker" }, kids[1][4])
    assert.equal(a2, kids[1].pid)
    stop_sup(s)
    assert.is_nil(pogo.whereis("a"))
    assert.is_nil(pogo.whereis("b"))
  end)

  it("an id that cannot be sent is an invalid spec: start_link and start_child start nothing", function()
    local cyclic = {}
    cyclic.self = cyclic
    local before = #pogo.processes()
    local s, err = sup.start_link({ { id = cyclic, start = { "support.worker", "start_link", "cyc" } } })
    assert.is_nil(s)
    assert.equal("invalid child spec: id.self: cycle cannot be sent", err)
    s = assert(sup.start_link({}))
    for _, id in ipairs { cyclic, print, coroutine.create(print) } do
      local ok, why = sup.start_child(s, { id = id, start = { "support.worker", "start_link", "orphan" } })
      assert.is_nil(ok)
      assert.matches("^invalid child spec: id", why)
    end
    assert.is_nil(pogo.whereis("orphan"))
    assert.same({}, sup.which_children(s))
    stop_sup(s)
    assert.equal(before, #pogo.processes())
  end)

  it("invalid specs give nil and start nothing", function()
    local before = #pogo.processes()
    local s, err = sup.start_link({ worker("ok1"), { id = "bad", start = { "no.such", "f" } } })
    assert.is_nil(s)
    assert.matches("^invalid child spec", err)
    assert.equal(before, #pogo.processes())
    assert.is_nil(pogo.whereis("ok1"))
    s, err = sup.start_link({ worker("d"), worker("d") })
    assert.is_nil(s)
    assert.matches("duplicate id", err)
  end)

  it("a child that fails to start fails the supervisor start", function()
    local s, err = sup.start_link({ worker("fa"), worker("fb", { fail = true }) })
    assert.is_nil(s)
    assert.matches("fb", err)
    assert.is_nil(pogo.whereis("fa"))
  end)

  it("exceeding the restart intensity ends the supervisor", function()
    local s = assert(sup.start_link({ worker("i1") }, { intensity = 2, period_ms = 5000 }))
    pogo.unlink(s)
    local ref = pogo.monitor(s)
    local pid = pogo.whereis("i1")
    for _ = 1, 2 do
      crash("i1")
      pid = await_new("i1", pid)
    end
    crash("i1")
    local down = pogo.receive(function(m) return m[1] == "DOWN" and m[2] == ref end, 2000)
    assert.equal("shutdown", down[4])
    assert.is_nil(pogo.whereis("i1"))
  end)

  it("restarts outside the period do not count", function()
    local s = assert(sup.start_link({ worker("p1") }, { intensity = 1, period_ms = 30 }))
    local pid = pogo.whereis("p1")
    for _ = 1, 3 do
      crash("p1")
      pid = await_new("p1", pid)
      pogo.sleep(40)
    end
    assert.is_true(pogo.alive(s))
    stop_sup(s)
  end)

  it("one_for_all restarts every child", function()
    local s = assert(sup.start_link({ worker("x1"), worker("x2"), worker("x3") }, { strategy = "one_for_all" }))
    local p1, p2, p3 = pogo.whereis("x1"), pogo.whereis("x2"), pogo.whereis("x3")
    crash("x2")
    await_new("x1", p1)
    await_new("x2", p2)
    await_new("x3", p3)
    stop_sup(s)
  end)

  it("rest_for_one restarts the failed child and the ones after it", function()
    local s = assert(sup.start_link({ worker("r1"), worker("r2"), worker("r3") }, { strategy = "rest_for_one" }))
    local p1, p2, p3 = pogo.whereis("r1"), pogo.whereis("r2"), pogo.whereis("r3")
    crash("r2")
    await_new("r2", p2)
    await_new("r3", p3)
    assert.equal(p1, pogo.whereis("r1"))
    stop_sup(s)
  end)

  it("transient children restart only on abnormal exit, temporary never", function()
    local s = assert(sup.start_link({
      worker("t1", nil, { restart = "transient" }),
      worker("t2", nil, { restart = "temporary" }),
    }))
    local t1 = pogo.whereis("t1")
    local ref = pogo.monitor(t1)
    pogo.send(t1, "stop")
    pogo.receive(function(m) return m[2] == ref end, 1000)
    pogo.sleep(5)
    assert.is_nil(pogo.whereis("t1"))
    assert.equal("undefined", sup.which_children(s)[1][2])
    assert.is_not_nil(sup.restart_child(s, "t1"))
    local t1b = pogo.whereis("t1")
    crash("t1")
    await_new("t1", t1b)
    crash("t2")
    pogo.sleep(10)
    assert.is_nil(pogo.whereis("t2"))
    assert.equal(1, sup.count_children(s).specs)
    stop_sup(s)
  end)

  it("a child that ignores shutdown is killed after its shutdown ms", function()
    local s = assert(sup.start_link({ worker("stubborn", { trap = true, ignore_shutdown = true }, { shutdown = 50 }) }))
    local pid = pogo.whereis("stubborn")
    local ref = pogo.monitor(pid)
    local t0 = pogo.now()
    assert.is_true(sup.terminate_child(s, "stubborn"))
    local down = pogo.receive(function(m) return m[2] == ref end, 1000)
    assert.equal("killed", down[4])
    assert.is_true(pogo.now() - t0 >= 45)
    stop_sup(s)
  end)

  it("a trapping child that obeys shutdown exits with shutdown", function()
    local s = assert(sup.start_link({ worker("polite", { trap = true }, { shutdown = 1000 }) }))
    local pid = pogo.whereis("polite")
    local ref = pogo.monitor(pid)
    sup.terminate_child(s, "polite")
    assert.equal("shutdown", pogo.receive(function(m) return m[2] == ref end, 1000)[4])
    stop_sup(s)
  end)

  it("brutal_kill kills at once, infinity waits", function()
    local s = assert(sup.start_link({
      worker("bk", { trap = true, ignore_shutdown = true }, { shutdown = "brutal_kill" }),
      worker("inf", { trap = true }, { shutdown = "infinity" }),
    }))
    local ref = pogo.monitor(pogo.whereis("bk"))
    sup.terminate_child(s, "bk")
    assert.equal("killed", pogo.receive(function(m) return m[2] == ref end, 1000)[4])
    local ref2 = pogo.monitor(pogo.whereis("inf"))
    sup.terminate_child(s, "inf")
    assert.equal("shutdown", pogo.receive(function(m) return m[2] == ref2 end, 1000)[4])
    stop_sup(s)
  end)

  it("start_child, terminate_child, restart_child, delete_child", function()
    local s = assert(sup.start_link({}))
    local pid = assert(sup.start_child(s, worker("dyn")))
    assert.equal(pid, pogo.whereis("dyn"))
    local p2, err = sup.start_child(s, worker("dyn"))
    assert.is_nil(p2)
    assert.matches("already started", err)
    assert.is_nil(select(1, sup.start_child(s, { id = "bad" })))
    assert.matches("^invalid child spec", select(2, sup.start_child(s, { id = "bad" })))
    assert.same({ nil, "running" }, { sup.delete_child(s, "dyn") })
    assert.is_true(sup.terminate_child(s, "dyn"))
    assert.is_nil(pogo.whereis("dyn"))
    assert.same({ specs = 1, active = 0, supervisors = 0, workers = 1 }, sup.count_children(s))
    local p3 = assert(sup.restart_child(s, "dyn"))
    assert.equal(p3, pogo.whereis("dyn"))
    sup.terminate_child(s, "dyn")
    assert.is_true(sup.delete_child(s, "dyn"))
    assert.same({ nil, "not found" }, { sup.delete_child(s, "dyn") })
    assert.same({ nil, "not found" }, { sup.terminate_child(s, "dyn") })
    assert.same({ nil, "not found" }, { sup.terminate_child(s, function() end) })
    assert.is_true(pogo.alive(s))
    assert.same({}, sup.which_children(s))
    local p4, e4 = sup.start_child(s, worker("nostart", { fail = true }))
    assert.is_nil(p4)
    assert.equal("refused to start", e4)
    local p5, e5 = sup.start_child(s, worker("raiser", { raise = true }))
    assert.is_nil(p5)
    assert.matches("start exploded", e5)
    stop_sup(s)
  end)

  it("shorthand specs and nested supervisors", function()
    local s = assert(sup.start_link({
      { "support.worker", { id = "sh", name = "short" } },
      { id = "inner", type = "supervisor", start = { "pogo.supervisor", "start_link", { worker("deep") } } },
    }, { name = "outer_sup" }))
    assert.equal(s, pogo.whereis("outer_sup"))
    assert.is_not_nil(pogo.whereis("short"))
    assert.is_not_nil(pogo.whereis("deep"))
    local c = sup.count_children(s)
    assert.equal(1, c.supervisors)
    assert.equal(1, c.workers)
    stop_sup(s)
    assert.is_nil(pogo.whereis("deep"))
    assert.is_nil(pogo.whereis("outer_sup"))
  end)

  it("a supervisor exits when its parent does, terminating its children", function()
    local me = pogo.self()
    local parent = pogo.spawn(function()
      assert(sup.start_link({ worker("orphan") }))
      pogo.send(me, "up")
      pogo.receive()
    end)
    assert.equal("up", pogo.receive(1000))
    local ref = pogo.monitor(pogo.whereis("orphan"))
    pogo.exit(parent, "bye")
    assert.equal("shutdown", pogo.receive(function(m) return m[2] == ref end, 1000)[4])
  end)

  it("rejects bad options", function()
    assert.is_nil((sup.start_link({}, { strategy = "one_for_none" })))
    assert.is_nil((sup.start_link({}, { intensity = -1 })))
  end)

  it("rejects unknown options as pogo.dynamic_supervisor does: nil, \"unknown option: <name>\"", function()
    assert.same({ nil, "unknown option: bogus" }, { sup.start_link({}, { bogus = 1 }) })
    assert.same({ nil, "unknown option: max_restarts" },
      { sup.start_link({}, { name = "sup_unknown_opt", max_restarts = 1, max_seconds = 5 }) })
    assert.is_nil(pogo.whereis("sup_unknown_opt"))
    -- every documented option is accepted
    local s = assert(sup.start_link({}, { strategy = "one_for_all", intensity = 1, period_ms = 100,
                                          name = "sup_known_opts" }))
    assert.equal(s, pogo.whereis("sup_known_opts"))
    stop_sup(s)
  end)

  it("raises on opts that are not a table, naming opts", function()
    for _, bad in ipairs { 42, "one_for_all", true } do
      local ok, err = pcall(sup.start_link, {}, bad)
      assert.is_false(ok)
      assert.matches("opts must be a table, got " .. type(bad), err)
    end
    local ok, err = pcall(sup.start_link, "a")
    assert.is_false(ok)
    assert.matches("children must be an array of child specs, got string", err, 1, true)
  end)
end)
