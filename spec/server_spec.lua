-- Specs for pogo.server (gen_server-style processes).
local pogo = require "pogo"
local server = require "pogo.server"

before_each(function()
  while pogo.receive(0) ~= nil do end
end)

local function counter(extra)
  local m = {
    init = function(n)
      if n == "fail" then return nil, "bad start" end
      if n == "raise" then error("init exploded") end
      return n
    end,
    handle_call = function(req, from, s)
      if req == "get" then return s, s end
      if req == "inc" then return s + 1, s + 1 end
      if req == "later" then
        pogo.spawn(function() pogo.sleep(5); server.reply(from, "late reply") end)
        return nil, s, "noreply"
      end
      if req == "stop" then return "stopping", s, "stop", "done" end
      if req == "crash" then error("handler crashed") end
    end,
    handle_cast = function(msg, s)
      if msg == "halt" then return s, "stop", "halted" end
      return s + msg
    end,
    handle_info = function(msg, s)
      if type(msg) == "table" and msg[1] == "tell" then pogo.send(msg[2], s) end
      return s
    end,
  }
  for k, v in pairs(extra or {}) do m[k] = v end
  return m
end

describe("pogo.server", function()
  it("start_link runs init and serves calls, casts and infos", function()
    local pid = assert(server.start_link(counter(), 10))
    assert.equal(10, server.call(pid, "get"))
    assert.equal(11, server.call(pid, "inc"))
    server.cast(pid, 5)
    assert.equal(16, server.call(pid, "get"))
    pogo.send(pid, { "tell", pogo.self() })
    assert.equal(16, pogo.receive(1000))
    server.stop(pid)
    assert.is_false(pogo.alive(pid))
  end)

  it("accepts a module name", function()
    package.loaded["test.counter_mod"] = counter()
    local pid = assert(server.start_link("test.counter_mod", 1))
    assert.equal(1, server.call(pid, "get"))
    server.stop(pid)
    assert.is_nil((server.start_link("no.such.module", 1)))
  end)

  it("start_link returns nil, reason when init fails or raises, without killing the caller", function()
    local pid, err = server.start_link(counter(), "fail")
    assert.is_nil(pid)
    assert.equal("bad start", err)
    pid, err = server.start_link(counter(), "raise")
    assert.is_nil(pid)
    assert.matches("init exploded", tostring(err.error))
    assert.is_nil(pogo.receive(0))
  end)

  it("raises on opts that are not a table, naming opts, at the caller", function()
    for _, start in ipairs { server.start_link, server.start } do
      for _, bad in ipairs { "str", 42, true } do
        local ok, err = pcall(function() local pid = start(counter(), 1, bad) return pid end)
        assert.is_false(ok)
        assert.matches("server_spec%.lua:%d+: pogo%.server: opts must be a table, got " .. type(bad), err)
      end
      local ok, err = pcall(function() local pid = start(counter(), 1, { name = 42 }) return pid end)
      assert.is_false(ok)
      assert.matches("server_spec%.lua:%d+: pogo%.server: opts%.name must be a string", err)
    end
    assert.is_nil(pogo.receive(0))
  end)

  it("registers a name and refuses a second one", function()
    local pid = assert(server.start_link(counter(), 3, { name = "counter_a" }))
    assert.equal(pid, pogo.whereis("counter_a"))
    assert.equal(3, server.call("counter_a", "get"))
    local p2, err = server.start_link(counter(), 3, { name = "counter_a" })
    assert.is_nil(p2)
    assert.matches("already started", err)
    server.stop("counter_a")
    assert.is_nil(pogo.whereis("counter_a"))
  end)

  it("noreply with a later reply", function()
    local pid = assert(server.start_link(counter(), 0))
    assert.equal("late reply", server.call(pid, "later", 1000))
    server.stop(pid)
  end)

  it("a handler may stop the server, which runs terminate", function()
    local me = pogo.self()
    local pid = assert(server.start(counter({
      terminate = function(reason, s) pogo.send(me, { "terminated", reason, s }) end,
    }), 7))
    assert.equal("stopping", server.call(pid, "stop"))
    assert.same({ "terminated", "done", 7 }, pogo.receive(1000))
    local pid2 = assert(server.start(counter({
      terminate = function(reason) pogo.send(me, { "terminated", reason }) end,
    }), 1))
    local ref = pogo.monitor(pid2)
    server.cast(pid2, "halt")
    assert.same({ "terminated", "halted" }, pogo.receive(1000))
    local down = pogo.receive(function(m) return m[2] == ref end, 1000)
    assert.equal("halted", down[4])
  end)

  it("a crash in a handler ends the server with the error, after terminate", function()
    local me = pogo.self()
    local pid = assert(server.start(counter({
      terminate = function(reason) pogo.send(me, { "terminated", reason }) end,
    }), 0))
    local ok, err = pcall(server.call, pid, "crash", 1000)
    assert.is_false(ok)
    assert.matches("^exit", err)
    local t = pogo.receive(function(m) return m[1] == "terminated" end, 1000)
    assert.matches("handler crashed", tostring(t[2].error))
  end)

  it("a trapping server runs terminate when its parent exits", function()
    local me = pogo.self()
    local mod = counter({
      init = function() pogo.trap_exit(true); return 0 end,
      terminate = function(reason) pogo.send(me, { "terminated", reason }) end,
    })
    local parent = pogo.spawn(function()
      assert(server.start_link(mod, 0))
      pogo.send(me, "started")
      pogo.receive()
    end)
    assert.equal("started", pogo.receive(1000))
    pogo.exit(parent, "parent_gone")
    assert.same({ "terminated", "parent_gone" }, pogo.receive(1000))
  end)

  it("pogo.call and server.call are the same protocol", function()
    local pid = assert(server.start_link(counter(), 2))
    assert.equal(2, pogo.call(pid, "get"))
    server.stop(pid)
  end)

  it("timeout(state) bounds each wait; when it passes, handle_info gets \"timeout\"", function()
    local me = pogo.self()
    local pid = assert(server.start_link({
      init = function() return { due = pogo.now() + 30, fired = 0 } end,
      timeout = function(s) return s.due and s.due - pogo.now() or nil end,
      handle_info = function(msg, s)
        if msg == "timeout" then
          s.fired = s.fired + 1
          s.due = nil -- no more timeouts
          pogo.send(me, { "fired", pogo.now() })
        end
        return s
      end,
      handle_call = function(_, _, s) return s.fired, s end,
    }, nil))
    local t0 = pogo.now()
    local m = pogo.receive(function(x) return x[1] == "fired" end, 2000)
    assert.is_not_nil(m)
    assert.is_true(m[2] - t0 >= 25)
    assert.is_nil(pogo.receive(function(x) return x[1] == "fired" end, 100))
    assert.equal(1, server.call(pid, "fired"))
    server.stop(pid)
  end)

  it("a timeout callback that returns no number of ms ends the server through terminate, naming it", function()
    local me = pogo.self()
    for _, bad in ipairs { "abc", 0 / 0, {} } do
      local pid = assert(server.start({
        init = function() return {} end,
        timeout = function(s) if s.armed then return bad end end,
        handle_info = function(msg, s) s.armed = msg == "arm"; return s end,
        terminate = function(reason) pogo.send(me, { "terminated", reason }) end,
      }, nil))
      local ref = pogo.monitor(pid)
      pogo.send(pid, "arm")
      local t = pogo.receive(function(m) return m[1] == "terminated" end, 1000)
      assert.is_not_nil(t, "terminate ran for " .. tostring(bad))
      assert.is_true(server.is_crash(t[2]))
      assert.matches("^timeout callback returned ", tostring(t[2].error))
      local down = pogo.receive(function(m) return m[1] == "DOWN" and m[2] == ref end, 1000)
      assert.is_not_nil(down)
      assert.matches("^timeout callback returned ", tostring(down[4].error))
    end
    local pid = assert(server.start({
      init = function() return 1 end,
      timeout = function() return "abc" end,
      terminate = function(reason) pogo.send(me, { "terminated", reason }) end,
    }, nil))
    local t = pogo.receive(function(m) return m[1] == "terminated" end, 1000)
    assert.is_false(pogo.alive(pid))
    assert.matches("timeout callback returned \"abc\" %(string%)", tostring(t[2].error))
    -- a float past an integer's range waits forever, as math.huge does
    pid = assert(server.start_link({
      init = function() return 1 end,
      timeout = function() return 1e300 end,
      handle_call = function(_, _, s) return s, s end,
    }, nil))
    assert.equal(1, server.call(pid, "get", 1000))
    server.stop(pid)
  end)

  it("handle_drained runs after init and once per batch, when the mailbox is empty", function()
    local me = pogo.self()
    local pid = assert(server.start_link({
      init = function() return { n = 0 } end,
      handle_info = function(_, s) s.n = s.n + 1; return s end,
      handle_cast = function(_, s) s.n = s.n + 1; return s end,
      handle_drained = function(s)
        pogo.send(me, { "drained", s.n })
        s.n = 0
        return s
      end,
    }, nil))
    assert.same({ "drained", 0 }, pogo.receive(1000))
    -- queued before the server runs again: one batch
    for i = 1, 4 do pogo.send(pid, i) end
    server.cast(pid, "five")
    assert.same({ "drained", 5 }, pogo.receive(1000))
    pogo.send(pid, "one more")
    assert.same({ "drained", 1 }, pogo.receive(1000))
    assert.is_nil(pogo.receive(50))
    server.stop(pid)
  end)

  it("handle_drained may stop the server", function()
    local me = pogo.self()
    local pid = assert(server.start({
      init = function() return {} end,
      handle_info = function(msg, s) s.quit = msg == "quit"; return s end,
      handle_drained = function(s)
        if s.quit then return s, "stop", "drained_out" end
        return s
      end,
      terminate = function(reason) pogo.send(me, { "terminated", reason }) end,
    }, nil))
    local ref = pogo.monitor(pid)
    pogo.send(pid, "quit")
    assert.same({ "terminated", "drained_out" }, pogo.receive(function(m) return m[1] == "terminated" end, 1000))
    local down = pogo.receive(function(m) return m[1] == "DOWN" and m[2] == ref end, 1000)
    assert.equal("drained_out", down[4])
  end)

  it("terminate tells a crash from a stop with is_crash", function()
    local me = pogo.self()
    local mod = counter({
      terminate = function(reason) pogo.send(me, { "terminated", server.is_crash(reason) }) end,
    })
    local pid = assert(server.start(mod, 0))
    assert.is_false(pcall(server.call, pid, "crash", 1000))
    assert.same({ "terminated", true }, pogo.receive(function(m) return m[1] == "terminated" end, 1000))
    pid = assert(server.start(mod, 0))
    server.stop(pid, "shutdown")
    assert.same({ "terminated", false }, pogo.receive(function(m) return m[1] == "terminated" end, 1000))
    assert.is_false(server.is_crash("shutdown"))
    assert.is_false(server.is_crash({ error = "x", traceback = "y" }))
  end)

  it("enter_loop makes a spawned process a server without init", function()
    local pid = pogo.spawn(server.enter_loop, counter(), 41)
    assert.equal(42, server.call(pid, "inc"))
    server.cast(pid, 8)
    assert.equal(50, server.call(pid, "get"))
    server.stop(pid)
    assert.has_error(function() server.enter_loop(42) end)
  end)

  it("a \"$call\" whose from cannot be answered is an info, not a crash", function()
    local me = pogo.self()
    local pid = assert(server.start_link(counter({
      handle_info = function(msg, s)
        pogo.send(me, { "info", msg[1], msg[2] })
        return s
      end,
    }), 5))
    pogo.send(pid, { "$call", 42, "get" })
    assert.same({ "info", "$call", 42 }, pogo.receive(1000))
    assert.equal(5, server.call(pid, "get"))
    server.stop(pid)
  end)

  describe("state handoff", function()
    local function handing(extra)
      local m = counter(extra)
      m.init = function(n, data) return data and data.n or n end
      m.handoff = function(s) return { n = s } end
      m.terminate = function(reason) pogo.send(pogo.whereis("handoff_spec"), { "terminated", reason }) end
      return m
    end

    before_each(function() pogo.register("handoff_spec", pogo.self()) end)
    after_each(function() pogo.unregister("handoff_spec") end)

    it("\"$handoff\" runs handoff, sends the data, terminates with \"shutdown\"; handing_over gives init the data",
       function()
      local me = pogo.self()
      local old = assert(server.start(handing(), 5))
      server.cast(old, 2)
      local ref = pogo.monitor(old)
      pogo.send(old, { "$handoff", me, "k" })
      local d = pogo.receive(1000)
      assert.same({ "$handoff_data", "k", { n = 7 }, pogo.node(), old }, { d[1], d[2], d[3], d[4], d[5] })
      assert.same({ "terminated", "shutdown" }, pogo.receive(1000))
      -- it exits once the destination has answered that it has the data
      assert.is_nil(pogo.receive(function(x) return x[1] == "DOWN" end, 50))
      assert.is_true(pogo.alive(old))
      pogo.send(d[5], { "$handoff_ack", d[6] })
      assert.same({ "DOWN", ref, old, "shutdown" }, pogo.receive(1000))
      -- the first server the start function starts gets the data; a second one does not
      local new, err, takes = server.handing_over({ n = 7 }, function()
        local p = server.start(handing(), 0)
        local other = server.start(handing(), 1)
        assert.equal(1, server.call(other, "get"))
        server.stop(other)
        return p
      end)
      assert.is_nil(err)
      assert.is_true(takes)
      assert.equal(7, server.call(new, "get"))
      server.stop(new)
      local plain = server.handing_over(nil, server.start, counter(), 3)
      assert.same({ 3, false }, { server.call(plain, "get"), select(3, server.handing_over(nil, function()
        return server.start(counter(), 4)
      end)) })
    end)

    it("data that cannot be serialized is logged and nil is sent", function()
      local lines = {}
      pogo.log.set_handler(function(level, msg) lines[#lines + 1] = level .. " " .. msg end)
      finally(function() pogo.log.set_handler(nil) end)
      local m = handing()
      m.handoff = function() return { f = print } end
      local bad = assert(server.start(m, 1))
      pogo.send(bad, { "$handoff", pogo.self(), "b" })
      local d = pogo.receive(function(x) return x[1] ~= "terminated" end, 1000)
      assert.same({ "$handoff_data", "b", nil, pogo.node(), bad }, { d[1], d[2], d[3], d[4], d[5] })
      assert.matches("error handoff data cannot be serialized, nil is handed over", lines[1], 1, true)
      pogo.send(bad, { "$handoff_ack", d[6] })
    end)

    it("a destination that goes without answering lets the old server exit at once", function()
      local old = assert(server.start(handing(), 5))
      local ref = pogo.monitor(old)
      local dest = pogo.spawn(function() pogo.receive() end) -- takes the data, and ends
      pogo.send(old, { "$handoff", dest, "g" })
      assert.same({ "terminated", "shutdown" }, pogo.receive(1000))
      assert.same({ "DOWN", ref, old, "shutdown" }, pogo.receive(1000))
    end)

    it("with `via`, a destination that goes without answering: the data goes to `via`, which it waits for",
       function()
      local me = pogo.self()
      local old = assert(server.start(handing(), 5))
      local ref = pogo.monitor(old)
      local dest = pogo.spawn(function() pogo.receive() end) -- takes the data, and ends
      pogo.send(old, { "$handoff", dest, "v", me })
      assert.same({ "terminated", "shutdown" }, pogo.receive(1000))
      local d = pogo.receive(function(x) return x[1] == "$handoff_data" end, 1000)
      assert.same({ "$handoff_data", "v", { n = 5 }, pogo.node(), old, { pogo.node() } },
        { d[1], d[2], d[3], d[4], d[5], d[7] })
      -- it exits once `via` has answered
      assert.is_nil(pogo.receive(function(x) return x[1] == "DOWN" end, 50))
      pogo.send(d[5], { "$handoff_ack", d[6] })
      assert.same({ "DOWN", ref, old, "shutdown" }, pogo.receive(1000))
      -- a `via` that goes too: the server exits, and sends no more
      local gone = pogo.spawn(function() end)
      local other = assert(server.start(handing(), 6))
      ref = pogo.monitor(other)
      pogo.send(other, { "$handoff", gone, "w", gone })
      assert.same({ "terminated", "shutdown" }, pogo.receive(1000))
      assert.same({ "DOWN", ref, other, "shutdown" }, pogo.receive(1000))
    end)

    it("\"$resolve_conflict\" merges the data of the other copy; without resolve_conflict it is ignored", function()
      local m = handing()
      m.resolve_conflict = function(s, data) return s + data.n end
      local pid = assert(server.start(m, 5))
      pogo.send(pid, { "$resolve_conflict", { n = 4 } })
      assert.equal(9, server.call(pid, "get"))
      server.stop(pid)
      local plain = assert(server.start(counter(), 5))
      pogo.send(plain, { "$resolve_conflict", { n = 4 } })
      assert.equal(5, server.call(plain, "get"))
      server.stop(plain)
    end)
  end)
end)
