-- Single-node specs for pogo.dynamic_supervisor (multi-node ones are in spec/cluster/).
local pogo = require "pogo"
local dsup = require "pogo.dynamic_supervisor"
local pg = require "pogo.pg"

local n = 0
local function fresh_name()
  n = n + 1
  return "dsup_" .. n
end

before_each(function()
  while pogo.receive(0) ~= nil do end
end)

-- Wait (bounded) until f() returns a truthy value; returns it.
local function await(f, timeout, what)
  local deadline = pogo.now() + (timeout or 2000)
  while true do
    local v = f()
    if v then return v end
    if pogo.now() > deadline then error("timed out waiting for " .. (what or "condition"), 2) end
    pogo.sleep(2)
  end
end

local function worker(id, opts, extra)
  local s = { id = id, start = { "support.worker", "start_link", nil, opts } }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

local function start(opts)
  opts.name = opts.name or fresh_name()
  local pid = assert(dsup.start_link(opts))
  return opts.name, pid
end

local function stop(pid)
  local ref = pogo.monitor(pid)
  pogo.unlink(pid)
  pogo.exit(pid, "shutdown")
  assert.is_not_nil(pogo.receive(function(m) return m[1] == "DOWN" and m[2] == ref end, 5000))
end

local function groups_tagged(scope, tag)
  local out = {}
  for _, g in ipairs(pg.which_groups(scope)) do
    if type(g) == "table" and g[1] == tag then out[#out + 1] = g end
  end
  return out
end

describe("pogo.dynamic_supervisor on one node", function()
  it("replicates a spec without its defaults, reads them back, and lists normalised copies", function()
    local sup, spid = start({})
    assert.is_true(dsup.start_child(sup, worker("lean")))
    assert.is_true(dsup.start_child(sup, worker("full", nil, { restart = "transient", shutdown = 250,
      type = "supervisor", modules = { "a", "b" } })))
    await(function() return dsup.whereis(sup, "lean") and dsup.whereis(sup, "full") end)
    local by_id = {}
    for _, g in ipairs(groups_tagged(sup, "spec")) do by_id[g[3].id] = g[3] end
    -- the group holds the spec without the fields normalize filled in
    assert.same({ id = "lean", start = { "support.worker", "start_link" } }, by_id.lean)
    assert.same({ id = "full", start = { "support.worker", "start_link" }, restart = "transient",
      shutdown = 250, type = "supervisor", modules = { "a", "b" } }, by_id.full)
    -- specs() gives every field, in tables of the caller's own
    local specs = {}
    for _, spec in ipairs(dsup.specs(sup)) do specs[spec.id] = spec end
    assert.same({ id = "lean", start = { "support.worker", "start_link" }, restart = "permanent", shutdown = 5000,
      type = "worker", modules = { "support.worker" } }, specs.lean)
    assert.is_nil(getmetatable(specs.lean))
    assert.equal("supervisor", specs.full.type)
    -- the views read the defaults back
    local g = dsup.which_children(sup, "global")
    assert.same({ "full", "lean" }, { g[1].id, g[2].id })
    assert.same({ "supervisor", { "a", "b" } }, { g[1].type, g[1].modules })
    assert.same({ "worker", { "support.worker" } }, { g[2][3], g[2][4] })
    assert.same({ specs = 2, active = 2, supervisors = 1, workers = 1 }, dsup.count_children(sup, "global"))
    -- the same spec again is the same request; another one is refused
    assert.is_true(dsup.start_child(sup, worker("lean")))
    assert.same({ nil, "already started: lean" }, { dsup.start_child(sup, worker("lean", nil,
      { restart = "temporary" })) })
    stop(spid)
  end)

  it("which_children global: a restarted child's entry has its new pid; the list is the caller's", function()
    local sup, spid = start({})
    assert.is_true(dsup.start_child(sup, worker("e1")))
    local pid = await(function() return dsup.whereis(sup, "e1") end)
    local g = dsup.which_children(sup, "global")
    assert.same({ "e1", pid, "worker", pogo.node() }, { g[1].id, g[1].pid, g[1].type, g[1].node })
    g[1] = nil
    assert.equal(pid, dsup.which_children(sup, "global")[1].pid)
    for _, f in ipairs { "which_children", "count_children" } do -- (any other mode gave the local view)
      assert.has_error(function() dsup[f](sup, "galaxy") end,
        "pogo.dynamic_supervisor." .. f .. ': mode must be "local" or "global", got galaxy')
    end
    pogo.exit(pid, "kill")
    local new = await(function()
      local p = dsup.whereis(sup, "e1")
      return p ~= pid and p
    end)
    await(function() return dsup.which_children(sup, "global")[1].pid == new end, 2000, "the new pid in the view")
    local e = dsup.which_children(sup, "global")[1]
    assert.same({ "e1", new, "worker", { "support.worker" } }, { e[1], e[2], e[3], e[4] })
    stop(spid)
  end)

  it("starts a requested child here and shows it locally and globally", function()
    local sup, spid = start({})
    assert.is_true(dsup.start_child(sup, worker("w1")))
    local pid = await(function() return dsup.whereis(sup, "w1") end)
    assert.equal(pogo.node(), pogo.node_of(pid))
    local l = dsup.which_children(sup, "local")
    assert.equal(1, #l)
    assert.equal("w1", l[1][1])
    assert.equal(pid, l[1][2])
    assert.equal("worker", l[1][3])
    local g = dsup.which_children(sup, "global")
    assert.equal(1, #g)
    assert.equal(pid, g[1].pid)
    assert.same({ specs = 1, active = 1, supervisors = 0, workers = 1 }, dsup.count_children(sup, "global"))
    assert.same({ specs = 1, active = 1, supervisors = 0, workers = 1 }, dsup.count_children(sup, "local"))
    assert.equal(pogo.node(), dsup.node_for(sup, "w1"))
    assert.same({ pogo.node() }, dsup.nodes(sup))
    stop(spid)
  end)

  it("tracks the new pid when a child crashes and restarts", function()
    local sup, spid = start({})
    dsup.start_child(sup, worker("w2"))
    local pid = await(function() return dsup.whereis(sup, "w2") end)
    pogo.exit(pid, "kill")
    local new = await(function()
      local p = dsup.whereis(sup, "w2")
      return p ~= pid and p
    end)
    assert.are_not.equal(pid, new)
    assert.equal(new, dsup.which_children(sup, "global")[1].pid)
    stop(spid)
  end)

  it("which_children local finds this node's children in every status, as a walk over every record does", function()
    local sup, spid = start({ min_backoff_ms = 10000, max_backoff_ms = 10000 })
    local gate = "gate_" .. sup
    pogo.register(gate, pogo.self())
    -- the oracle: every record of the state that has a child here, walked
    local st = require("pogo.dynamic_supervisor.views").state_of(sup)
    local function walked()
      local out = {}
      for _, c in pairs(st.children) do
        if c.proc then out[#out + 1] = c.proc.request.spec.id .. "=" .. c.proc.status end
      end
      table.sort(out)
      return table.concat(out, " ")
    end
    local function listed()
      local out = {}
      for _, e in ipairs(dsup.which_children(sup, "local")) do out[#out + 1] = e.id .. "=" .. e.status end
      table.sort(out) -- (the list is in the order of the ids' canonical keys: shorter strings first)
      return table.concat(out, " ")
    end
    assert.is_true(dsup.start_child(sup, worker("run")))
    assert.is_true(dsup.start_child(sup, worker("fail", { fail = true })))
    assert.is_true(dsup.start_child(sup, worker("stub", { trap = true, ignore_shutdown = true }, { shutdown = 5000 })))
    assert.is_true(dsup.start_child(sup, worker("slow", { gate = gate })))
    local held = pogo.receive(function(m) return type(m) == "table" and m[1] == "starting" end, 2000)
    assert.is_not_nil(held, "the slow start")
    -- "stub" ignores its shutdown: stopping until killed 5 s later
    local stub = await(function() return dsup.whereis(sup, "stub") end)
    local me = pogo.self()
    pogo.spawn(function() pogo.send(me, { "terminated", dsup.terminate_child(sup, "stub") }) end)
    local want = "fail=restarting run=running slow=starting stub=stopping"
    await(function() return walked() == want end, 3000, "every status")
    assert.equal(want, listed())
    -- the start goes on: running, and the others are where they were
    pogo.send(held[3], "go")
    want = "fail=restarting run=running slow=running stub=stopping"
    await(function() return walked() == want end, 3000, "the slow child running")
    assert.equal(want, listed())
    pogo.send(stub, { "exit", "shutdown" })
    local m = pogo.receive(function(x) return type(x) == "table" and x[1] == "terminated" end, 3000)
    assert.same({ "terminated", true }, m)
    want = "fail=restarting run=running slow=running"
    await(function() return walked() == want end, 3000, "the stopped child gone")
    assert.equal(want, listed())
    pogo.unregister(gate)
    stop(spid)
  end)

  it("count_children local, kept as counters, agrees with the local children as they change", function()
    local sup, spid = start({ max_backoff_ms = 40 })
    -- the counts a walk over which_children local gives
    local function walked() return require("support.dsup_remote").walked_counts(sup) end
    -- both agree on `want` (the children change between a start and the hand-over)
    local function counts(want, what)
      await(function()
        local c = dsup.count_children(sup, "local")
        local w = walked()
        return c.specs == want.specs and c.active == want.active and c.supervisors == want.supervisors
          and c.workers == want.workers and w.specs == want.specs and w.active == want.active
          and w.supervisors == want.supervisors and w.workers == want.workers
      end, 3000, what)
      assert.same(want, dsup.count_children(sup)) -- "local" is the default
    end
    counts({ specs = 0, active = 0, supervisors = 0, workers = 0 }, "no children")
    assert.is_true(dsup.start_child(sup, worker("a")))
    assert.is_true(dsup.start_child(sup, worker("s", nil, { type = "supervisor" })))
    assert.is_true(dsup.start_child(sup, worker("t", nil, { restart = "temporary" })))
    assert.is_true(dsup.start_child(sup, worker("f", { fail = true })))
    counts({ specs = 4, active = 3, supervisors = 1, workers = 3 }, "three running, one failing")
    local a = dsup.whereis(sup, "a")
    pogo.exit(a, "kill") -- restarted: active again with its new pid
    await(function() local p = dsup.whereis(sup, "a") return p and p ~= a end, 2000, "the restart")
    counts({ specs = 4, active = 3, supervisors = 1, workers = 3 }, "after a restart")
    pogo.send(dsup.whereis(sup, "t"), "crash") -- temporary: gone
    counts({ specs = 3, active = 2, supervisors = 1, workers = 2 }, "after a temporary child's exit")
    assert.is_true(dsup.terminate_child(sup, "s"))
    counts({ specs = 2, active = 1, supervisors = 0, workers = 2 }, "after terminate_child")
    assert.is_true(dsup.terminate_child(sup, "f")) -- terminated between its retries
    assert.is_true(dsup.terminate_child(sup, "a"))
    counts({ specs = 0, active = 0, supervisors = 0, workers = 0 }, "all terminated")
    stop(spid)
  end)

  it("terminates a child and forgets its spec, leaving no marker", function()
    local sup, spid = start({})
    dsup.start_child(sup, worker("w3"))
    local pid = await(function() return dsup.whereis(sup, "w3") end)
    assert.is_true(dsup.terminate_child(sup, "w3"))
    assert.is_false(pogo.alive(pid))
    assert.is_nil(dsup.whereis(sup, "w3"))
    await(function() return #groups_tagged(sup, "term") == 0 and #groups_tagged(sup, "spec") == 0 end)
    assert.same({}, dsup.which_children(sup, "local"))
    assert.same({ nil, "not found" }, { dsup.terminate_child(sup, "w3") })
    stop(spid)
  end)

  it("the repair passes sweep every record in slices, and go on after records come and go", function()
    local sup, spid = start({ sync_interval = 100, sweep_passes = 4 })
    for i = 1, 40 do assert.is_true(dsup.start_child(sup, worker("sw" .. i))) end
    await(function() return dsup.count_children(sup, "local").active == 40 end, 3000, "40 children")
    local st = require("pogo.dynamic_supervisor.views").state_of(sup)
    local state = require "pogo.dynamic_supervisor.state"
    local mark = state.mark
    local seen, marks, passes = {}, 0, 0
    local next_sync = st.next_sync
    state.mark = function(s, c)
      if s == st then
        if s.next_sync ~= next_sync then -- a new repair pass
          next_sync, passes = s.next_sync, passes + 1
        end
        seen[c.id], marks = true, marks + 1
      end
      return mark(s, c)
    end
    finally(function() state.mark = mark end)
    local function swept(ids, what)
      await(function()
        for _, id in ipairs(ids) do if not seen[id] then return false end end
        return true
      end, 3000, what)
    end
    local ids = {}
    for i = 1, 40 do ids[i] = "sw" .. i end
    swept(ids, "every record swept")
    -- a slice is a quarter of the records: four passes at least, and no more marks than the sweep's
    assert.is_true(passes >= 4, "passes: " .. passes)
    assert.is_true(marks <= 10 * (passes + 1), "marks: " .. marks .. " in " .. passes .. " passes")
    -- records go (the sweep's last key among them) and come: the next sweep finds the new ones
    for i = 1, 40, 2 do assert.is_true(dsup.terminate_child(sup, "sw" .. i)) end
    for i = 41, 60 do assert.is_true(dsup.start_child(sup, worker("sw" .. i))) end
    seen = {}
    ids = {}
    for i = 2, 60, 2 do ids[#ids + 1] = "sw" .. i end
    for i = 41, 59, 2 do ids[#ids + 1] = "sw" .. i end
    swept(ids, "the records after the changes swept")
    -- every record is in the order the sweep goes through
    assert.equal(0, require("support.dsup_remote").unordered(sup))
    stop(spid)
  end)

  it("the repair pass repairs a record that knows of no copy running though its child group has members",
     function()
    -- (a join the supervisor never saw: its global view and whether the
    -- request has run come back with the sweep)
    local views = require "pogo.dynamic_supervisor.views"
    local state = require "pogo.dynamic_supervisor.state"
    local tally = require "pogo.dynamic_supervisor.tally"
    local sup, spid = start({ sync_interval = 100, sweep_passes = 1 })
    assert.is_true(dsup.start_child(sup, worker("unseen")))
    await(function() return dsup.count_children(sup, "global").active == 1 end, 2000, "the child in the global view")
    local st = views.state_of(sup)
    local c = st.children[pogo.core.encode("unseen")]
    await(function() return st.version % 2 == 0 end, 2000, "the supervisor between callbacks")
    pogo.core.critical_enter()
    c.last_node, c.ran_uid = nil, nil
    state.touch(st, c)
    tally.settle(st)
    pogo.core.critical_leave()
    assert.equal(0, dsup.count_children(sup, "global").active)
    assert.same({}, dsup.which_children(sup, "global"))
    await(function() return dsup.count_children(sup, "global").active == 1 end, 2000, "the record repaired")
    assert.equal(pogo.node(), c.last_node)
    assert.is_not_nil(c.ran_uid)
    assert.equal(dsup.whereis(sup, "unseen"), dsup.which_children(sup, "global")[1].pid)
    stop(spid)
  end)

  it("keeps a tombstone a repair interval after its marker went, and no longer while it is busy", function()
    local views = require "pogo.dynamic_supervisor.views"
    local sup, spid = start({ sync_interval = 600 })
    dsup.start_child(sup, worker("tomb"))
    await(function() return dsup.whereis(sup, "tomb") end)
    assert.is_true(dsup.terminate_child(sup, "tomb"))
    await(function() return #groups_tagged(sup, "term") == 0 end)
    local went = pogo.now()
    local st = views.state_of(sup)
    assert.is_not_nil(next(st.markers), "the tombstone of the terminated request")
    -- a busy supervisor: a message every 20 ms
    local busy = pogo.spawn(function()
      while true do
        pogo.send(spid, { "noise" })
        pogo.sleep(20)
      end
    end)
    pogo.sleep(400)
    assert.is_not_nil(next(st.markers), "a tombstone lasts a repair interval")
    await(function() return next(st.markers) == nil end, 3000, "the tombstone forgotten")
    local age = pogo.now() - went
    -- the repair passes alone (every 600 ms) forgot it at the first one past
    -- its interval: up to 1,200 ms after it went
    assert.is_true(age < 850, "forgotten " .. age .. " ms after its marker went")
    pogo.exit(busy, "kill")
    stop(spid)
  end)

  it("a terminated id can be started again", function()
    local sup, spid = start({})
    dsup.start_child(sup, worker("again"))
    await(function() return dsup.whereis(sup, "again") end)
    dsup.terminate_child(sup, "again")
    assert.is_true(dsup.start_child(sup, worker("again")))
    await(function() return dsup.whereis(sup, "again") end)
    stop(spid)
  end)

  it("a terminated child whose start blocks is ended within its shutdown time; its id can be started again",
     function()
    local sup, spid = start({})
    local gate = "gate_" .. sup
    pogo.register(gate, pogo.self())
    finally(function() pogo.unregister(gate) end)
    -- its start waits for a "go" that never comes
    assert.is_true(dsup.start_child(sup, worker("stuck", { gate = gate }, { shutdown = 100 })))
    local starting = pogo.receive(function(m) return type(m) == "table" and m[1] == "starting" end, 2000)
    assert.is_true(dsup.terminate_child(sup, "stuck"))
    await(function() return not pogo.alive(starting[3]) end, 2000, "the blocked start to end")
    await(function() return dsup.count_children(sup, "local").specs == 0 end, 2000, "the record to go")
    assert.is_true(dsup.start_child(sup, worker("stuck")))
    await(function() return dsup.whereis(sup, "stuck") end, 2000, "the id started again")
    stop(spid)
  end)

  it("rejects bad specs and replicates nothing", function()
    local sup, spid = start({})
    local before = #pg.which_groups(sup)
    local ok, err = dsup.start_child(sup, { id = "bad", start = { "no.such.module", "f" } })
    assert.is_nil(ok)
    assert.matches("^invalid child spec", err)
    ok, err = dsup.start_child(sup, { start = { "support.worker", "start_link" } })
    assert.is_nil(ok)
    assert.matches("^invalid child spec: missing id", err)
    ok, err = dsup.start_child(sup, { id = function() end, start = { "support.worker", "start_link" } })
    assert.is_nil(ok)
    assert.matches("^invalid child spec", err)
    assert.equal(before, #pg.which_groups(sup))
    stop(spid)
  end)

  it("the same request twice runs one child; another spec for the id is refused", function()
    local sup, spid = start({})
    assert.is_true(dsup.start_child(sup, worker("dup")))
    assert.is_true(dsup.start_child(sup, worker("dup")))
    local ok, err = dsup.start_child(sup, worker("dup", nil, { shutdown = 10 }))
    assert.is_nil(ok)
    assert.matches("already started", err)
    await(function() return dsup.whereis(sup, "dup") end)
    assert.equal(1, #dsup.which_children(sup, "global"))
    stop(spid)
  end)

  it("a child whose start fails is retried with backoff and shown, never taking the supervisor down", function()
    local logged = {}
    local sup, spid = start({ log = function(level, msg) logged[#logged + 1] = level .. ": " .. msg end,
      max_backoff_ms = 40 })
    dsup.start_child(sup, worker("failing", { fail = true }))
    dsup.start_child(sup, worker("raising", { raise = true }))
    -- each start runs in a starter: between retries both show as restarting
    local entries = await(function()
      local l = dsup.which_children(sup, "local")
      return #l == 2 and l[1].pid == "restarting" and l[2].pid == "restarting" and l
    end)
    for _, e in ipairs(entries) do
      assert.equal("restarting", e.pid)
      assert.is_string(e.error)
    end
    await(function() return #logged >= 4 end, 2000, "retries")
    assert.is_true(pogo.alive(spid))
    stop(spid)
  end)

  it("starts its initial children, and requests them again after a restart", function()
    local name = fresh_name()
    local parent_sup = require "pogo.supervisor"
    local opts = { name = name, children = { worker("i1"), worker("i2") } }
    local top = assert(parent_sup.start_link({
      { id = "dsup", type = "supervisor", start = { "pogo.dynamic_supervisor", "start_link", opts } },
    }))
    await(function() return dsup.whereis(name, "i1") and dsup.whereis(name, "i2") end)
    -- a child requested later survives the supervisor process too (its keeper holds it)
    assert.is_true(dsup.start_child(name, worker("later")))
    local later = await(function() return dsup.whereis(name, "later") end)
    local old = pogo.whereis(name)
    pogo.exit(old, "kill")
    await(function()
      local p = pogo.whereis(name)
      return p and p ~= old
    end)
    await(function() return dsup.whereis(name, "i1") and dsup.whereis(name, "i2") end)
    local later2 = await(function() return dsup.whereis(name, "later") end)
    assert.are_not.equal(later, later2)
    assert.equal(3, #dsup.which_children(name, "global"))
    assert.equal(3, #dsup.specs(name))
    stop(top)
  end)

  it("temporary children are forgotten when they exit; transient ones on a normal exit", function()
    local sup, spid = start({})
    dsup.start_child(sup, worker("tmp", nil, { restart = "temporary" }))
    dsup.start_child(sup, worker("trn", nil, { restart = "transient" }))
    local t1 = await(function() return dsup.whereis(sup, "tmp") end)
    local t2 = await(function() return dsup.whereis(sup, "trn") end)
    pogo.send(t1, "crash")
    pogo.send(t2, "stop")
    await(function() return #dsup.which_children(sup, "local") == 0 end)
    await(function() return #groups_tagged(sup, "spec") == 0 end)
    stop(spid)
  end)

  it("calls and casts a child by id", function()
    local sup, spid = start({})
    dsup.start_child(sup, { id = "echo", start = { "support.echo_server", "start_link" } })
    await(function() return dsup.whereis(sup, "echo") end)
    assert.equal("hello", dsup.call(sup, "echo", "hello", 1000))
    assert.is_true(dsup.cast(sup, "echo", { "tell", pogo.self() }))
    assert.equal("told", pogo.receive(1000))
    assert.has_error(function() dsup.call(sup, "nobody", 1) end)
    assert.is_false(dsup.cast(sup, "nobody", 1))
    stop(spid)
  end)

  it("calls listeners, and survives a listener that raises", function()
    local seen = {}
    local sup, spid = start({
      log = function() end,
      listeners = {
        { child_started = function() error("listener bug") end },
        {
          child_started = function(id, pid) seen[#seen + 1] = { "started", id, pid } end,
          child_stopped = function(id, reason) seen[#seen + 1] = { "stopped", id, reason } end,
        },
      },
    })
    dsup.start_child(sup, worker("l1"))
    local pid = await(function() return dsup.whereis(sup, "l1") end)
    dsup.terminate_child(sup, "l1")
    await(function() return #seen >= 2 end)
    assert.same({ "started", "l1", pid }, seen[1])
    assert.same({ "stopped", "l1", "shutdown" }, seen[2])
    assert.is_true(pogo.alive(spid))
    stop(spid)
  end)

  it("lists children in the same order every time (by id)", function()
    local sup, spid = start({})
    for _, id in ipairs({ "c", "a", "b" }) do dsup.start_child(sup, worker(id)) end
    await(function() return #dsup.which_children(sup, "global") == 3 end)
    local ids = {}
    for _, e in ipairs(dsup.which_children(sup, "global")) do ids[#ids + 1] = e.id end
    assert.same({ "a", "b", "c" }, ids)
    ids = {}
    for _, e in ipairs(dsup.which_children(sup, "local")) do ids[#ids + 1] = e.id end
    assert.same({ "a", "b", "c" }, ids)
    stop(spid)
  end)

  it("scopes are independent", function()
    local a, apid = start({})
    local b, bpid = start({})
    dsup.start_child(a, worker("only_a"))
    await(function() return dsup.whereis(a, "only_a") end)
    assert.is_nil(dsup.whereis(b, "only_a"))
    assert.same({}, dsup.which_children(b, "global"))
    stop(apid)
    stop(bpid)
  end)

  it("answers bad requests without dying", function()
    local sup, spid = start({})
    local bad = function() end
    local ok, err = dsup.terminate_child(sup, bad)
    assert.is_nil(ok)
    assert.matches("bad request", err)
    assert.is_nil((dsup.whereis(sup, bad)))
    assert.is_nil((dsup.node_for(sup, bad)))
    assert.is_true(pogo.alive(spid))
    assert.is_true(dsup.start_child(sup, worker("still_fine")))
    stop(spid)
  end)

  it("rejects bad options", function()
    assert.is_nil((dsup.start_link({})))
    assert.is_nil((dsup.start_link({ name = "x", redistribute = "sometimes" })))
    assert.is_nil((dsup.start_link({ name = "x", listeners = { { node_up = 1 } } })))
    assert.same({ nil, "unknown listener event: child_exploded (events: node_up, node_down, child_started, "
                  .. "child_stopped, child_moved)" },
      { dsup.start_link({ name = "x", listeners = { { child_exploded = function() end } } }) })
    assert.is_nil((dsup.start_link({ name = "x", children = { { id = 1 } } })))
    assert.same({ nil, "weight must be a positive number, at most 100" },
      { dsup.start_link({ name = "x", weight = 0 }) })
    -- a weight of 4,000 took every node 1.25 s to build its ring; one over 8,192 raised in the ring
    assert.same({ nil, "weight must be a positive number, at most 100" },
      { dsup.start_link({ name = "x", weight = 4000 }) })
    assert.same({ nil, "vnodes * weight must be at most 1048576 ring points" },
      { dsup.start_link({ name = "x", vnodes = 20000, weight = 100 }) })
    assert.same({ nil, "nodes must be an array of node names, not empty" },
      { dsup.start_link({ name = "x", nodes = "a" }) })
    -- an empty list would empty the ring of every node of the scope
    assert.same({ nil, "nodes must be an array of node names, not empty" },
      { dsup.start_link({ name = "x", nodes = {} }) })
    assert.same({ nil, "sync_interval must be a number of ms, at least 100" },
      { dsup.start_link({ name = "x", sync_interval = 0 }) })
    assert.same({ nil, "invalid child spec: node must be a node name" },
      { dsup.start_link({ name = "x", children = { worker("p", nil, { node = 1 }) } }) })
    assert.is_nil(pogo.whereis("x"))
  end)

  it("raises on opts that are not a table, naming opts", function()
    for _, bad in ipairs { 42, "jobs", true } do
      local ok, err = pcall(dsup.start_link, bad)
      assert.is_false(ok)
      assert.matches("pogo.dynamic_supervisor.start_link: opts must be a table, got " .. type(bad), err, 1, true)
    end
  end)

  it("rejects unknown options: nil, \"unknown option: <name>\"", function()
    assert.same({ nil, "unknown option: sync_intervall" }, { dsup.start_link({ name = "x", sync_intervall = 10 }) })
    assert.same({ nil, "unknown option: max_restarts" },
      { dsup.start_link({ name = "x", max_restarts = 1, max_seconds = 5 }) })
    assert.is_nil(pogo.whereis("x"))
    -- every documented option is accepted
    local name, pid = start({ scope = fresh_name(), sync_interval = 5000, children = {}, redistribute = "active",
      listeners = {}, intensity = 3, period_ms = 5000, max_backoff_ms = 100, min_backoff_ms = 10, settle_ms = 100,
      vnodes = 64, tombstone_ms = 1000, sweep_passes = 3, log = function() end, nodes = { pogo.node() }, weight = 2 })
    assert.same({ pogo.node() }, dsup.nodes(name))
    stop(pid)
  end)

  it("pins: a child pinned to a node outside the ring runs on its ring owner; node_for and mine say so", function()
    local sup, spid = start({})
    assert.same({ nil, "invalid child spec: node must be a node name" },
      { dsup.start_child(sup, worker("pin0"), 42) })
    assert.is_true(dsup.start_child(sup, worker("pin1"), "elsewhere@127.0.0.1:1"))
    assert.is_true(dsup.start_child(sup, worker("pin2", nil, { node = pogo.node() })))
    await(function() return dsup.whereis(sup, "pin1") and dsup.whereis(sup, "pin2") end)
    assert.equal(pogo.node(), dsup.node_for(sup, "pin1"))
    assert.is_true(dsup.mine(sup, "pin1"))
    assert.is_true(dsup.mine(sup, "unknown id"))
    local pins = {}
    for _, spec in ipairs(dsup.specs(sup)) do pins[spec.id] = spec.node end
    assert.same({ pin1 = "elsewhere@127.0.0.1:1", pin2 = pogo.node() }, pins)
    -- the pin is part of the spec: the same id unpinned is another spec
    assert.same({ nil, "already started: pin1" }, { dsup.start_child(sup, worker("pin1")) })
    stop(spid)
  end)

  it("runs listeners in a notifier process that may call the supervisor", function()
    local seen = {}
    local sup
    local name = fresh_name()
    local sup_pid
    sup, sup_pid = start({ name = name, listeners = { {
      child_started = function(id, pid)
        local t0 = pogo.now()
        local here = dsup.whereis(name, id)
        local ok = dsup.start_child(name, worker({ "from listener", id }))
        seen[#seen + 1] = { id = id, pid = pid, here = here, ok = ok, ms = pogo.now() - t0, self = pogo.self() }
      end,
    } } })
    assert.is_true(dsup.start_child(sup, worker("l0")))
    await(function() return #seen >= 2 end)
    assert.equal("l0", seen[1].id)
    assert.equal(seen[1].pid, seen[1].here)
    assert.is_true(seen[1].ok)
    assert.is_true(seen[1].ms < 1000)
    assert.are_not.equal(sup_pid, seen[1].self)
    assert.same({ "from listener", "l0" }, seen[2].id)
    stop(sup_pid)
  end)

  it("a child whose start function calls its own supervisor does not freeze it (horde#211)", function()
    local name = fresh_name()
    local sup, spid = start({ name = name })
    package.loaded["spec.calls_sup"] = {
      start_link = function(sup_name)
        local t0 = pogo.now()
        assert(dsup.start_child(sup_name, worker("started from a start")))
        assert(dsup.whereis(sup_name, "calls") == nil) -- not running until its start returns
        assert(type(dsup.which_children(sup_name, "global")) == "table")
        assert(dsup.terminate_child(sup_name, "victim"))
        assert(pogo.now() - t0 < 1000)
        return require("support.worker").start_link()
      end,
    }
    assert.is_true(dsup.start_child(sup, worker("victim")))
    await(function() return dsup.whereis(sup, "victim") end)
    assert.is_true(dsup.start_child(sup, { id = "calls", start = { "spec.calls_sup", "start_link", name } }))
    await(function() return dsup.whereis(sup, "calls") and dsup.whereis(sup, "started from a start") end)
    await(function() return dsup.whereis(sup, "victim") == nil end)
    assert.is_true(pogo.alive(spid))
    stop(spid)
    package.loaded["spec.calls_sup"] = nil
  end)

  it("a child that dies before the supervisor takes it over is judged by its real exit reason", function()
    local stopped = {}
    local sup, spid = start({ listeners = { {
      child_stopped = function(id, reason) stopped[#stopped + 1] = { id, reason } end,
    } } })
    -- the start function returns the pid of a process that has already exited
    package.loaded["spec.dies_early"] = {
      start_link = function(reason)
        local pid = pogo.spawn_link(function() pogo.exit(reason) end)
        pogo.sleep(5)
        return pid
      end,
    }
    -- transient, exited "normal": over, not restarted
    assert.is_true(dsup.start_child(sup, { id = "early_normal", restart = "transient",
      start = { "spec.dies_early", "start_link", "normal" } }))
    await(function() return #stopped >= 1 end)
    assert.same({ "early_normal", "normal" }, stopped[1])
    await(function() return #dsup.specs(sup) == 0 end, 2000, "the transient child to be forgotten")
    -- transient, exited "boom": restarted (and dies again, each time with "boom")
    assert.is_true(dsup.start_child(sup, { id = "early_boom", restart = "transient",
      start = { "spec.dies_early", "start_link", "boom" } }))
    await(function() return #stopped >= 3 end)
    for i = 2, 3 do assert.same({ "early_boom", "boom" }, stopped[i]) end
    assert.is_true(dsup.terminate_child(sup, "early_boom"))
    stop(spid)
    package.loaded["spec.dies_early"] = nil
  end)

  it("logs through pogo.log, with module pogo.dynamic_supervisor", function()
    local lines = {}
    local previous = pogo.log.set_handler(function(level, msg, meta) lines[#lines + 1] = { level, msg, meta } end)
    finally(function() pogo.log.set_handler(previous) end)
    local sup, spid = start({ max_backoff_ms = 40 })
    dsup.start_child(sup, worker("logged", { fail = true }))
    local line = await(function()
      for _, l in ipairs(lines) do
        if l[3].module == "pogo.dynamic_supervisor" and l[2]:match("logged failed to start") then return l end
      end
    end)
    assert.equal("error", line[1]) -- a start error report, as OTP's supervisor gives
    assert.equal(sup, line[3].supervisor)
    assert.equal("start_error", line[3].report)
    assert.equal("logged", line[3].id)
    assert.equal("refused to start", line[3].reason)
    stop(spid)
  end)

  it("a start that does not return holds up no other child for long, nor the supervisor", function()
    local sup, spid = start({})
    package.loaded["spec.slow_start"] = {
      start_link = function()
        pogo.sleep(1500)
        return require("support.worker").start_link()
      end,
    }
    assert.is_true(dsup.start_child(sup, { id = "slow", start = { "spec.slow_start", "start_link" } }))
    await(function() return #dsup.which_children(sup, "local") == 1 end)
    local t0 = pogo.now()
    assert.is_true(dsup.start_child(sup, worker("quick")))
    await(function() return dsup.whereis(sup, "quick") end, 1000, "the quick child")
    assert.is_true(pogo.now() - t0 < 1000)
    local slow
    for _, e in ipairs(dsup.which_children(sup, "local")) do
      if e.id == "slow" then slow = e end
    end
    assert.same({ "slow", "undefined", "starting" }, { slow.id, slow.pid, slow.status })
    stop(spid)
    package.loaded["spec.slow_start"] = nil
  end)
end)
