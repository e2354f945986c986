-- pogo.registry on one node: the API, names dying with their processes,
-- monitors, and {"via", module, name} in send, call, cast and pogo.server's
-- name option. Multi-node behaviour is in spec/cluster/registry_spec.lua.
local pogo = require "pogo"
local registry = require "pogo.registry"
local server = require "pogo.server"
local core = pogo.core

local VIA = "pogo.registry"

local remote_pid = require "support.remote_pid"

-- A process that waits for one message: "crash" makes it raise, anything else ends it.
local function worker()
  return pogo.spawn(function()
    local m = pogo.receive()
    if m == "crash" then error("boom") end
  end)
end

local function down_of(ref)
  return function(m) return type(m) == "table" and m[1] == "DOWN" and m[2] == ref end
end

local function expect_down(ref, timeout_ms)
  local m = pogo.receive(down_of(ref), timeout_ms or 1000)
  assert.is_not_nil(m, "no DOWN for the name monitor")
  return m
end

-- Wait (bounded) until `name` is no longer registered.
local function gone(name)
  for _ = 1, 200 do
    if registry.whereis(name) == nil then return true end
    pogo.sleep(1)
  end
  return false
end

local n = 0
local function fresh(prefix)
  n = n + 1
  return (prefix or "name") .. n
end

describe("pogo.registry on one node", function()
  before_each(function()
    while pogo.receive(0) do end
  end)

  it("registers the caller or a pid, and refuses a taken name", function()
    local name, w = fresh(), worker()
    assert.is_true(registry.register(name))
    assert.are.equal(pogo.self(), registry.whereis(name))
    local ok, why, holder = registry.register(name, w)
    assert.is_nil(ok)
    assert.are.equal("taken", why)
    assert.are.equal(pogo.self(), holder)
    -- the same pid again is taken too, as in Erlang's global
    assert.are.same({nil, "taken", pogo.self()}, {registry.register(name)})
    local other = fresh()
    assert.is_true(registry.register(other, w))
    assert.are.equal(w, registry.whereis(other))
    assert.is_true(registry.unregister(name))
    assert.is_nil(registry.whereis(name))
    assert.is_false(registry.unregister(name))
    pogo.send(w, "stop")
    assert.is_true(gone(other))
  end)

  it("gives nil, noproc for a process that is not alive", function()
    local w = worker()
    local ref = pogo.monitor(w)
    pogo.send(w, "stop")
    pogo.receive(down_of(ref), 1000)
    assert.are.same({nil, "noproc"}, {registry.register(fresh(), w)})
  end)

  it("takes any serializable name; equal tables are one name", function()
    local name = {"worker", {id = 1, kind = "a"}}
    assert.is_true(registry.register(name))
    local inner = {}
    inner.kind = "a"
    inner.id = 1
    assert.are.equal(pogo.self(), registry.whereis({"worker", inner}))
    assert.is_nil(registry.whereis({"worker", {id = 1.0, kind = "a"}})) -- 1.0 is not 1
    assert.are.same({nil, "taken", pogo.self()}, {registry.register({"worker", inner})})
    local found = false
    for _, v in ipairs(registry.names()) do
      if type(v) == "table" and v[1] == "worker" and v[2].id == 1 then found = true end
    end
    assert.is_true(found)
    assert.is_true(registry.register(42))
    assert.are.equal(pogo.self(), registry.whereis(42))
    assert.is_true(registry.unregister({"worker", inner}))
    assert.is_true(registry.unregister(42))
    assert.is_nil(registry.whereis(name))
  end)

  it("lists every name", function()
    local a, b = fresh("list"), fresh("list")
    local before = #registry.names()
    registry.register(a)
    registry.register(b)
    local names = {}
    for _, v in ipairs(registry.names()) do names[v] = true end
    assert.is_true(names[a] and names[b])
    assert.are.equal(before + 2, #registry.names())
    registry.unregister(a)
    registry.unregister(b)
  end)

  it("raises for bad arguments, naming them", function()
    assert.has_error(function() registry.register(nil) end, "pogo.registry.register: name expected, got nil")
    assert.has_error(function() registry.register("x", 5) end, "pogo.registry.register: pid must be a pid, got number")
    local ok, err = pcall(registry.register, "x", remote_pid("elsewhere@127.0.0.1:1", 3))
    assert.is_false(ok)
    assert.matches("pid must be a process of this node", err, 1, true)
    ok, err = pcall(registry.register, {f = print})
    assert.is_false(ok)
    assert.matches("pogo.registry.register: name cannot be serialized", err, 1, true)
    ok, err = pcall(registry.register, "\193abc")
    assert.is_false(ok)
    assert.matches("pogo.registry.register: name: strings that begin with byte 0xC1 are reserved", err, 1, true)
    assert.has_error(function() registry.whereis(nil) end, "pogo.registry.whereis: name expected, got nil")
    assert.has_error(function() registry.unregister(nil) end, "pogo.registry.unregister: name expected, got nil")
    assert.has_error(function() registry.monitor(nil) end, "pogo.registry.monitor: name expected, got nil")
  end)

  it("releases every name of a process when it exits", function()
    local w = worker()
    local a, b = fresh(), fresh()
    assert.is_true(registry.register(a, w))
    assert.is_true(registry.register(b, w))
    pogo.send(w, "stop")
    assert.is_true(gone(a))
    assert.is_true(gone(b))
    assert.is_true(registry.register(a))
    registry.unregister(a)
  end)

  it("lets a new process take the name of one that has just exited", function()
    -- a supervisor restarts a named server at once: the old holder has exited
    -- but the registry process has not run yet
    local name = fresh()
    local w = worker()
    assert.is_true(registry.register(name, w))
    pogo.sleep(5) -- the registry process monitors w
    local ref = registry.monitor(name)
    pogo.exit(w, "kill")
    assert.is_false(core.alive(w))
    assert.are.equal(w, registry.whereis(name)) -- not seen yet
    assert.is_true(registry.register(name))
    assert.are.equal(pogo.self(), registry.whereis(name))
    local new_ref = registry.monitor(name) -- watches the new holder
    -- the monitor of the old holder still gets its exit reason
    local m = expect_down(ref)
    assert.are.same({"DOWN", ref, {"via", VIA, name}, "killed", w}, m)
    pogo.sleep(5)
    assert.are.equal(pogo.self(), registry.whereis(name)) -- w's exit took nothing more
    assert.is_nil(pogo.receive(down_of(new_ref), 0))
    registry.unregister(name)
    assert.are.same({"DOWN", new_ref, {"via", VIA, name}, "unregistered", pogo.self()}, expect_down(new_ref))
    -- a monitor of an old holder that is demonitored before its exit is seen
    local w2 = worker()
    assert.is_true(registry.register(name, w2))
    pogo.sleep(5)
    local ref2 = registry.monitor(name)
    pogo.exit(w2, "kill")
    assert.is_true(registry.register(name))
    assert.is_true(registry.demonitor(ref2))
    pogo.sleep(5)
    assert.is_nil(pogo.receive(down_of(ref2), 0))
    registry.unregister(name)
  end)

  describe("monitor", function()
    it("fires on unregister", function()
      local name = fresh()
      registry.register(name)
      local ref = registry.monitor(name)
      assert.is_true(registry.unregister(name))
      assert.are.same({"DOWN", ref, {"via", VIA, name}, "unregistered", pogo.self()}, expect_down(ref))
    end)

    it("fires on death with the exit reason", function()
      local name, w = fresh(), worker()
      registry.register(name, w)
      local ref = registry.monitor(name)
      pogo.send(w, "crash")
      local m = expect_down(ref)
      assert.are.equal(w, m[5])
      assert.are.same({"via", VIA, name}, m[3])
      assert.matches("boom", tostring(m[4]))
      assert.is_nil(registry.whereis(name))
    end)

    it("gives noproc at once for a name that is not registered", function()
      local name = fresh()
      local ref = registry.monitor(name)
      assert.are.same({"DOWN", ref, {"via", VIA, name}, "noproc"}, expect_down(ref, 0))
    end)

    it("fires once, and demonitor removes it and its pending DOWN", function()
      local name = fresh()
      registry.register(name)
      local r1, r2 = registry.monitor(name), registry.monitor(name)
      assert.is_true(registry.demonitor(r1))
      assert.is_false(registry.demonitor(r1))
      registry.unregister(name)
      expect_down(r2)
      assert.is_nil(pogo.receive(down_of(r1), 20))
      registry.register(name) -- a new holder: r2 fired already and stays quiet
      registry.unregister(name)
      assert.is_nil(pogo.receive(down_of(r2), 20))
      -- a DOWN already queued is flushed by demonitor
      registry.register(name)
      local r3 = registry.monitor(name)
      registry.unregister(name)
      assert.is_false(registry.demonitor(r3))
      assert.is_nil(pogo.receive(down_of(r3), 0))
    end)

    it("forgets the monitors of a watcher that exits", function()
      local name = fresh()
      registry.register(name)
      local before = registry.info().monitors
      local w = pogo.spawn(function()
        registry.monitor(name)
        registry.monitor(name)
        pogo.receive()
      end)
      pogo.sleep(5)
      assert.are.equal(before + 2, registry.info().monitors)
      pogo.send(w, "stop")
      for _ = 1, 100 do
        if registry.info().monitors == before then break end
        pogo.sleep(1)
      end
      assert.are.equal(before, registry.info().monitors)
      registry.unregister(name)
    end)
  end)

  describe("{\"via\", \"pogo.registry\", name}", function()
    it("works in send", function()
      local name = fresh()
      registry.register(name)
      pogo.send({"via", VIA, name}, "hello")
      assert.are.equal("hello", pogo.receive(0))
      registry.unregister(name)
      local ok, err = pcall(pogo.send, {"via", VIA, name}, "hello")
      assert.is_false(ok)
      assert.matches("^noproc: no process registered as '" .. name .. "' in pogo.registry", err)
    end)

    it("works in call and cast, and as pogo.server's name", function()
      local name = fresh()
      local mod = {
        init = function(start) return start end,
        handle_call = function(req, _, st) return st + req, st end,
        handle_cast = function(msg, st) return st + msg end,
      }
      local pid = assert(server.start_link(mod, 10, {name = {"via", VIA, name}}))
      assert.are.equal(pid, registry.whereis(name))
      assert.are.equal(11, pogo.call({"via", VIA, name}, 1))
      assert.is_true(pogo.cast({"via", VIA, name}, 5))
      assert.are.equal(16, server.call({"via", VIA, name}, 1))
      local again, why = server.start_link(mod, 0, {name = {"via", VIA, name}})
      assert.is_nil(again)
      assert.are.equal("already started: " .. tostring(pid), why)
      pogo.unlink(pid)
      assert.is_true(server.stop({"via", VIA, name}))
      assert.is_true(gone(name))
      local ok, err = pcall(pogo.call, {"via", VIA, name}, 1)
      assert.is_false(ok)
      assert.matches("^noproc: nothing registered as {via, pogo.registry, " .. name .. "}", err)
      assert.is_true(pogo.cast({"via", VIA, name}, 1)) -- a cast never fails
    end)

    it("works with any module that has whereis", function()
      local pid = pogo.self()
      package.loaded["spec.via_table"] = {whereis = function(name) return name == "me" and pid or nil end}
      pogo.send({"via", "spec.via_table", "me"}, "via a module of one's own")
      assert.are.equal("via a module of one's own", pogo.receive(0))
      assert.has_error(function() pogo.send({"via", "spec.via_table", "other"}, 1) end)
      package.loaded["spec.via_bad"] = {whereis = function() return 42 end}
      local ok, err = pcall(pogo.send, {"via", "spec.via_bad", "x"}, 1)
      assert.is_false(ok)
      assert.matches('whereis returned a number, not a pid or nil', err, 1, true)
      ok, err = pcall(pogo.send, {"via", "spec.no_such_module", "x"}, 1)
      assert.is_false(ok)
      assert.matches("spec.no_such_module", err, 1, true)
      ok, err = pcall(pogo.send, {"via", 7, "x"}, 1)
      assert.is_false(ok)
      assert.matches("module must be a string", err, 1, true)
      package.loaded["spec.via_table"], package.loaded["spec.via_bad"] = nil, nil
    end)

    it("works in pogo.monitor", function()
      local name, w = fresh(), worker()
      registry.register(name, w)
      local ref = pogo.monitor({"via", VIA, name})
      pogo.send(w, "stop")
      assert.are.same({"DOWN", ref, w, "normal"}, pogo.receive(down_of(ref), 1000))
      assert.is_true(gone(name))
      ref = pogo.monitor({"via", VIA, name})
      assert.are.same({"DOWN", ref, {"via", VIA, name}, "noproc"}, pogo.receive(down_of(ref), 0))
    end)

    it("raises for a via name without its name, in send and as a server's name (a mistake, not an absence)",
       function()
      local ok, err = pcall(pogo.send, {"via", VIA, nil}, "lost")
      assert.is_false(ok)
      assert.matches('{"via", module, name} has no name (nil)', err, 1, true)
      ok, err = pcall(pogo.send, {"x", "not-a-node"}, "lost")
      assert.is_false(ok)
      assert.matches("{name, node}: node must be a node name (name@host:port)", err, 1, true)
      ok, err = pcall(server.start_link, { init = function() return {} end }, nil, { name = {"via", VIA, nil} })
      assert.is_false(ok)
      assert.matches('pogo.server: opts.name {"via", module, name} has no name (nil)', err, 1, true)
    end)

    it("leaves {name, node} alone", function()
      pogo.register("via", pogo.self())
      pogo.send({"via", pogo.node()}, "to the local name via")
      assert.are.equal("to the local name via", pogo.receive(0))
      pogo.unregister("via")
    end)
  end)

  it("keeps its names when the registry process is killed, and starts it again", function()
    local name, wname, w = fresh(), fresh(), worker()
    registry.register(name)
    registry.register(wname, w)
    pogo.sleep(5)
    local old = registry.info().pid
    pogo.exit(old, "kill")
    pogo.sleep(1)
    assert.is_false(core.alive(old))
    assert.are.equal(pogo.self(), registry.whereis(name))
    local w2 = worker()
    assert.is_true(registry.register(fresh(), w2)) -- starts it again
    local new = registry.info().pid
    assert.are_not.equal(old, new)
    assert.are.equal(new, pogo.whereis("pogo.registry"))
    -- the new registry process watches the holders of before
    pogo.send(w, "stop")
    assert.is_true(gone(wname))
    pogo.send(w2, "stop")
    registry.unregister(name)
  end)
end)
