-- Specs for the process runtime (lua/pogo/init.lua over csrc/{proc,sched,mailbox,links,names,timer}.c).
local pogo = require "pogo"

local function is_msg(tag)
  return function(m) return type(m) == "table" and m[1] == tag end
end

-- Every test starts with an empty mailbox for the main chunk.
before_each(function()
  while pogo.receive(0) ~= nil do end
end)

-- Receive or fail: every wait is bounded.
local function must_receive(match, timeout)
  local m = pogo.receive(match, timeout or 1000)
  assert(m ~= nil, "expected a message")
  return m
end

describe("pids", function()
  it("print as <node.N>, compare with == and work as table keys", function()
    local a = pogo.spawn(function() pogo.receive() end)
    local b = pogo.spawn(function() pogo.receive() end)
    assert.matches("^<nonode@nohost%.%d+>$", tostring(a))
    assert.are_not.equal(a, b)
    local t = { [a] = "a", [b] = "b" }
    local got = pogo.spawn(function(parent) pogo.send(parent, { pogo.self() }) end, pogo.self())
    local m = must_receive()
    assert.equal(got, m[1])
    assert.equal("a", t[a])
    assert.equal("b", t[b])
    assert.equal(pogo.node(), pogo.node_of(a))
    assert.is_true(pogo.is_pid(a))
    assert.is_false(pogo.is_pid("x"))
    pogo.exit(a, "kill")
    pogo.exit(b, "kill")
  end)

  it("refs are unique, compare with == and print as #Ref<node.N>", function()
    local r1, r2 = pogo.make_ref(), pogo.make_ref()
    assert.is_true(pogo.is_ref(r1))
    assert.is_false(pogo.is_ref(pogo.self()))
    assert.are_not.equal(r1, r2)
    local t = { [r1] = 1 }
    assert.equal(1, t[r1])
    assert.matches("^#Ref<nonode@nohost%.%d+>$", tostring(r1))
  end)

  it("process_info describes a live process", function()
    local p = pogo.spawn(function() pogo.trap_exit(true); pogo.receive(function() return false end) end)
    pogo.send(p, "one")
    pogo.send(p, "two")
    pogo.sleep(1)
    local info = pogo.process_info(p)
    assert.equal("waiting", info.state)
    assert.equal(2, info.messages)
    assert.is_true(info.trap_exit)
    pogo.exit(p, "kill")
    pogo.sleep(1)
    assert.is_nil(pogo.process_info(p))
  end)

  it("self() of the main chunk is a pid that can receive", function()
    pogo.send(pogo.self(), "to me")
    assert.equal("to me", pogo.receive(100))
  end)
end)

describe("spawn", function()
  it("passes arguments and runs the body in a process", function()
    local me = pogo.self()
    pogo.spawn(function(a, b, c) pogo.send(me, { a, b, c, pogo.self() ~= me }) end, 1, "two", { 3 })
    local m = must_receive()
    assert.same({ 1, "two", { 3 }, true }, m)
  end)

  it("a process that returns exits with reason normal", function()
    local pid, ref = pogo.spawn_monitor(function() end)
    local m = must_receive(is_msg("DOWN"))
    assert.same({ "DOWN", ref, pid, "normal" }, m)
    assert.is_false(pogo.alive(pid))
  end)

  it("a Lua error ends only that process, with error and traceback as reason", function()
    local pid, ref = pogo.spawn_monitor(function() error({ code = 42 }) end)
    local other = pogo.spawn(function() pogo.receive() end)
    local m = must_receive(is_msg("DOWN"))
    assert.equal(ref, m[2])
    assert.equal(pid, m[3])
    assert.same({ code = 42 }, m[4].error)
    assert.matches("stack traceback", m[4].traceback)
    assert.is_true(pogo.alive(other))
    pogo.exit(other, "kill")
  end)

  it("string errors keep their position and print with their traceback", function()
    local _, ref = pogo.spawn_monitor(function() error("boom") end)
    local m = must_receive(function(x) return x[1] == "DOWN" and x[2] == ref end)
    assert.matches("boom", m[4].error)
    assert.matches("boom.*stack traceback", tostring(m[4]))
  end)

  it("rejects a non-function body", function()
    assert.has_error(function() pogo.spawn("nope") end)
  end)

  it("a process killed before its first run exits killed and never runs", function()
    local p, ref = pogo.spawn_monitor(function(t) pogo.send(t.to, "ran") end, { to = pogo.self() })
    pogo.exit(p, "kill") -- the main chunk has not let it run
    local m = must_receive(function(x) return type(x) == "table" and x[1] == "DOWN" and x[2] == ref end)
    assert.equal("killed", m[4])
    assert.is_nil(pogo.receive(function(x) return x == "ran" end, 20))
  end)

  it("a process's coroutine is reused once its body has returned (set_thread_pool(0): never)", function()
    local me = pogo.self()
    local function run_one()
      local _, ref = pogo.spawn_monitor(function() pogo.send(me, coroutine.running()) end)
      local co = must_receive(function(x) return type(x) == "thread" end)
      must_receive(function(x) return type(x) == "table" and x[2] == ref end)
      return co
    end
    local a = run_one()
    assert.equal(a, run_one()) -- from the pool, empty: a dead coroutine until then
    assert.equal("dead", coroutine.status(a))
    local prev = pogo.core.set_thread_pool(0)
    finally(function() pogo.core.set_thread_pool(prev) end)
    local b = run_one()
    assert.are_not.equal(b, run_one())
  end)

  it("a reused coroutine starts without the hook or the parent of the process before", function()
    local me = pogo.self()
    local proc_lib = require "pogo.proc_lib"
    local hook = function() end
    local first = assert(proc_lib.start(false, 1000, function(ack)
      debug.sethook(hook, "", 1000)
      ack(true)
    end))
    local _, ref = pogo.spawn_monitor(function() end) -- runs after `first` returned
    must_receive(function(x) return type(x) == "table" and x[2] == ref end)
    assert.is_false(pogo.alive(first))
    pogo.spawn(function() pogo.send(me, { debug.gethook() == hook, proc_lib.parent() or "none" }) end)
    local m = must_receive(function(x) return type(x) == "table" and x[2] ~= nil end)
    assert.same({ false, "none" }, m)
  end)

  it("a ref made after its cache took back an emptied chunk decodes to the very same value", function()
    local encode, decode = pogo.core.encode, pogo.core.decode
    for _ = 1, 4096 do pogo.make_ref() end -- 16 chunks of the ref cache, then nobody holds them
    collectgarbage()
    collectgarbage()
    local refs, keyed = {}, {}
    for i = 1, 4096 do -- their chunks are the emptied ones, taken back
      refs[i] = pogo.make_ref()
      keyed[refs[i]] = i
    end
    collectgarbage()
    for i = 1, #refs do
      local back = decode(encode(refs[i]))
      assert.is_true(rawequal(refs[i], back))
      assert.equal(i, keyed[back])
    end
  end)

  it("holds 100,000 live processes", function()
    local n = 100000
    local pids = {}
    local before = #pogo.processes()
    for i = 1, n do pids[i] = pogo.spawn(pogo.receive) end
    -- the run queue is FIFO: when this one has run, all of them have
    pogo.spawn(function(me) pogo.send(me, "all started") end, pogo.self())
    assert.equal("all started", pogo.receive(10000))
    assert.equal(before + n, #pogo.processes())
    assert.equal("waiting", pogo.process_info(pids[n]).state)
    for i = 1, n do pogo.send(pids[i], "bye") end
    local _, last = pogo.spawn_monitor(function() end)
    must_receive(function(m) return m[1] == "DOWN" and m[2] == last end, 10000)
    assert.is_false(pogo.alive(pids[1]))
    assert.is_false(pogo.alive(pids[n]))
  end)
end)

describe("receive", function()
  it("keeps mailbox order", function()
    local me = pogo.self()
    pogo.spawn(function() for i = 1, 100 do pogo.send(me, i) end end)
    for i = 1, 100 do assert.equal(i, pogo.receive(1000)) end
  end)

  it("returns nil on timeout", function()
    local t0 = pogo.now()
    assert.is_nil(pogo.receive(30))
    assert.is_true(pogo.now() - t0 >= 29)
    assert.is_nil(pogo.receive(0))
  end)

  it("selective receive takes the first match and leaves the rest in order", function()
    local me = pogo.self()
    for _, v in ipairs({ "a", 1, "b", 2, "c", 3 }) do pogo.send(me, v) end
    assert.equal(1, pogo.receive(function(m) return type(m) == "number" end, 100))
    assert.equal(2, pogo.receive(function(m) return type(m) == "number" end, 100))
    assert.equal("a", pogo.receive(100))
    assert.equal("b", pogo.receive(100))
    assert.equal("c", pogo.receive(100))
    assert.equal(3, pogo.receive(100))
  end)

  it("selective receive in a process waits for a later match", function()
    local me = pogo.self()
    local p = pogo.spawn(function()
      local got = pogo.receive(function(m) return m == "wanted" end, 1000)
      local rest = {}
      for _ = 1, 2 do rest[#rest + 1] = pogo.receive(0) end
      pogo.send(me, { got, rest })
    end)
    pogo.send(p, "x")
    pogo.send(p, "y")
    pogo.sleep(5)
    pogo.send(p, "wanted")
    local m = must_receive()
    assert.same({ "wanted", { "x", "y" } }, m)
  end)

  it("selective receive times out leaving non-matching messages", function()
    local me = pogo.self()
    pogo.send(me, "keep")
    assert.is_nil(pogo.receive(function(m) return m == "never" end, 20))
    assert.equal("keep", pogo.receive(0))
  end)

  it("a message to a process waiting in receive counts in its queue until it runs, and keeps its order", function()
    local me = pogo.self()
    local p = pogo.spawn(function()
      local got = {}
      for i = 1, 3 do got[i] = pogo.receive() end
      pogo.send(me, got)
    end)
    pogo.yield() -- it runs, and waits in receive
    assert.equal("waiting", pogo.process_info(p).status)
    pogo.send(p, 1) -- handed to it
    pogo.send(p, 2) -- queued behind it
    local info = pogo.process_info(p)
    assert.equal("runnable", info.status)
    assert.equal(2, info.message_queue_len)
    pogo.send(p, 3)
    assert.same({ 1, 2, 3 }, must_receive(function(x) return type(x) == "table" end))
  end)

  it("local messages are not copied", function()
    local t = {}
    local me = pogo.self()
    local p = pogo.spawn(function() local m = pogo.receive(); pogo.send(me, m) end)
    pogo.send(p, t)
    assert.equal(t, pogo.receive(1000))
  end)

  it("blocking from a coroutine nested in a process raises", function()
    local me = pogo.self()
    pogo.spawn(function()
      local co = coroutine.create(function() return pogo.receive(10) end)
      local ok, err = coroutine.resume(co)
      pogo.send(me, { ok, err })
    end)
    local m = must_receive()
    assert.is_false(m[1])
    assert.matches("nested", m[2])
  end)

  it("blocking from a luv callback raises a clear error", function()
    local uv = require "luv"
    local result
    local t = uv.new_timer()
    t:start(1, 0, function()
      local ok, err = pcall(pogo.receive, 10)
      result = { ok, err }
      t:close()
    end)
    pogo.sleep(20)
    assert.is_false(result[1])
    assert.matches("luv callback", result[2])
  end)

  it("a selective receive from a luv callback raises, and takes nothing, even when a message matches", function()
    local uv = require "luv"
    pogo.send(pogo.self(), "for the main chunk")
    local result
    local t = uv.new_timer()
    t:start(1, 0, function()
      result = { pcall(pogo.receive, function() return true end, 10) }
      t:close()
    end)
    pogo.sleep(20)
    assert.is_false(result[1])
    assert.matches("pogo.receive: cannot block inside a luv callback", result[2], 1, true)
    assert.equal("for the main chunk", pogo.receive(0))
  end)
end)

describe("sleep", function()
  it("sleeps in a process without blocking others", function()
    local me = pogo.self()
    pogo.spawn(function() pogo.sleep(30); pogo.send(me, "slow") end)
    pogo.spawn(function() pogo.send(me, "fast") end)
    assert.equal("fast", pogo.receive(1000))
    assert.equal("slow", pogo.receive(1000))
  end)

  it("rejects negative times and rounds fractions up", function()
    assert.has_error(function() pogo.sleep(-1) end)
    assert.has_error(function() pogo.receive(-1) end)
    assert.has_error(function() pogo.receive("soon") end)
    local t0 = pogo.now()
    pogo.sleep(0.5)
    assert.is_nil(pogo.receive(1.5))
    assert.is_true(pogo.now() - t0 >= 2)
  end)
end)

describe("send", function()
  it("to a registered name", function()
    local me = pogo.self()
    local p = pogo.spawn(function() pogo.send(me, pogo.receive()) end)
    pogo.register("echo1", p)
    pogo.send("echo1", "hi")
    assert.equal("hi", pogo.receive(1000))
  end)

  it("to {name, node} on this node", function()
    local me = pogo.self()
    local p = pogo.spawn(function() pogo.send(me, pogo.receive()) end)
    pogo.register("echo2", p)
    pogo.send({ "echo2", pogo.node() }, "hey")
    assert.equal("hey", pogo.receive(1000))
  end)

  it("to an unregistered name raises noproc", function()
    assert.has_error(function() pogo.send("nobody_here", 1) end, "noproc: no process registered as 'nobody_here'")
  end)

  it("to a dead pid is silently dropped", function()
    local pid, _ = pogo.spawn_monitor(function() end)
    must_receive(is_msg("DOWN"))
    assert.has_no.errors(function() pogo.send(pid, "lost") end)
  end)
end)

describe("links", function()
  it("a crash kills linked processes", function()
    local me = pogo.self()
    local b
    local a = pogo.spawn(function()
      b = pogo.spawn_link(function() pogo.receive() end)
      pogo.send(me, "linked")
      pogo.receive()
    end)
    must_receive()
    local ref = pogo.monitor(b)
    pogo.exit(a, "boom")
    local m = must_receive(is_msg("DOWN"))
    assert.equal(ref, m[2])
    assert.equal("boom", m[4])
  end)

  it("normal exits do not kill linked processes", function()
    local me = pogo.self()
    local b = pogo.spawn(function() pogo.receive() end)
    pogo.spawn(function() pogo.link(b); pogo.send(me, "done") end)
    must_receive()
    pogo.sleep(5)
    assert.is_true(pogo.alive(b))
    pogo.exit(b, "kill")
  end)

  it("trap_exit turns exit signals into EXIT messages", function()
    local me = pogo.self()
    local child
    local p = pogo.spawn(function()
      pogo.trap_exit(true)
      child = pogo.spawn_link(function() error("child died") end)
      local m = pogo.receive(is_msg("EXIT"), 1000)
      pogo.send(me, m)
    end)
    local m = must_receive()
    assert.equal("EXIT", m[1])
    assert.equal(child, m[2])
    assert.matches("child died", m[3].error)
    assert.is_not_nil(p)
  end)

  it("kill cannot be trapped and gives reason killed", function()
    local me = pogo.self()
    local p = pogo.spawn(function()
      pogo.trap_exit(true)
      pogo.send(me, "ready")
      pogo.receive()
    end)
    must_receive()
    local ref = pogo.monitor(p)
    pogo.exit(p, "kill")
    local m = must_receive(is_msg("DOWN"))
    assert.same({ "DOWN", ref, p, "killed" }, m)
  end)

  it("unlink stops propagation", function()
    local me = pogo.self()
    local b = pogo.spawn(function() pogo.receive() end)
    local a = pogo.spawn(function()
      pogo.link(b)
      pogo.unlink(b)
      pogo.send(me, "ok")
      pogo.receive()
    end)
    must_receive()
    pogo.exit(a, "die")
    pogo.sleep(5)
    assert.is_true(pogo.alive(b))
    pogo.exit(b, "kill")
  end)

  it("linking to a dead process raises noproc, or sends EXIT when trapping", function()
    local me = pogo.self()
    local dead = pogo.spawn(function() end)
    pogo.sleep(1)
    pogo.spawn(function()
      local ok, err = pcall(pogo.link, dead)
      pogo.trap_exit(true)
      pogo.link(dead)
      local m = pogo.receive(is_msg("EXIT"), 100)
      pogo.send(me, { ok, err, m and m[3] })
    end)
    local m = must_receive()
    assert.is_false(m[1])
    assert.matches("noproc", m[2])
    assert.equal("noproc", m[3])
  end)

  it("exit signals cascade through a long chain without recursion", function()
    local n = 20000
    local me = pogo.self()
    -- each link of the chain links to the one before it, then spawns the next:
    -- the tail reports only once the whole chain is linked
    local function link_of(prev, left)
      pogo.link(prev)
      if left == 0 then pogo.send(me, pogo.self()) else pogo.spawn(link_of, pogo.self(), left - 1) end
      pogo.receive()
    end
    local head = pogo.spawn(function()
      pogo.spawn(link_of, pogo.self(), n - 1)
      pogo.receive()
    end)
    local tail = must_receive(nil, 5000)
    local ref = pogo.monitor(tail)
    pogo.exit(head, "chain")
    local m = must_receive(is_msg("DOWN"), 5000)
    assert.equal(ref, m[2])
    assert.equal("chain", m[4])
  end)
end)

describe("monitors", function()
  it("DOWN for a process that is already dead is noproc", function()
    local pid = pogo.spawn(function() end)
    pogo.sleep(1)
    local ref = pogo.monitor(pid)
    assert.same({ "DOWN", ref, pid, "noproc" }, must_receive(is_msg("DOWN")))
  end)

  it("monitor by registered name", function()
    local p = pogo.spawn(function() pogo.receive() end)
    pogo.register("watched", p)
    local ref = pogo.monitor("watched")
    pogo.send(p, "go")
    assert.same({ "DOWN", ref, p, "normal" }, must_receive(is_msg("DOWN")))
    local ref2 = pogo.monitor("not_there")
    assert.same({ "DOWN", ref2, "not_there", "noproc" }, must_receive(is_msg("DOWN")))
  end)

  it("demonitor stops DOWN and flushes one already queued", function()
    local p = pogo.spawn(function() pogo.receive() end)
    local ref = pogo.monitor(p)
    assert.is_true(pogo.demonitor(ref))
    pogo.send(p, "go")
    pogo.sleep(5)
    assert.is_nil(pogo.receive(is_msg("DOWN"), 0))
    local q = pogo.spawn(function() end)
    local ref2 = pogo.monitor(q)
    pogo.sleep(5)
    assert.is_false(pogo.demonitor(ref2))
    assert.is_nil(pogo.receive(is_msg("DOWN"), 0))
  end)

  it("several monitors on one process each fire once", function()
    local p = pogo.spawn(function() pogo.receive() end)
    local r1, r2 = pogo.monitor(p), pogo.monitor(p)
    assert.are_not.equal(r1, r2)
    pogo.send(p, "go")
    local a = must_receive(is_msg("DOWN"))
    local b = must_receive(is_msg("DOWN"))
    assert.is_true((a[2] == r1 and b[2] == r2) or (a[2] == r2 and b[2] == r1))
    assert.is_nil(pogo.receive(is_msg("DOWN"), 5))
  end)
end)

describe("exit", function()
  it("exit(reason) ends the calling process with that reason", function()
    local _, ref = pogo.spawn_monitor(function()
      pcall(pogo.exit, "bye") -- cannot be caught
      error("not reached")
    end)
    local m = must_receive(is_msg("DOWN"))
    assert.equal(ref, m[2])
    assert.equal("bye", m[4])
  end)

  it("exit(pid, 'normal') does nothing to another process", function()
    local p = pogo.spawn(function() pogo.receive() end)
    pogo.exit(p, "normal")
    pogo.sleep(2)
    assert.is_true(pogo.alive(p))
    pogo.exit(p, "kill")
  end)

  it("a process can kill itself", function()
    local _, ref = pogo.spawn_monitor(function() pogo.exit(pogo.self(), "kill") end)
    assert.equal("killed", must_receive(function(m) return m[2] == ref end)[4])
  end)

  it("exit(pid) without a reason raises", function()
    assert.has_error(function() pogo.exit(pogo.self()) end)
  end)

  it("the main chunk is not a process that can exit", function()
    assert.has_error(function() pogo.exit("x") end)
  end)
end)

describe("registry", function()
  it("register, whereis, unregister, and release on exit", function()
    local p = pogo.spawn(function() pogo.receive() end)
    assert.is_true(pogo.register("reg1", p))
    assert.equal(p, pogo.whereis("reg1"))
    assert.has_error(function() pogo.register("reg1", pogo.self()) end)
    assert.has_error(function() pogo.register("reg2", p) end)
    assert.is_true(pogo.unregister("reg1"))
    assert.is_nil(pogo.whereis("reg1"))
    assert.is_false(pogo.unregister("reg1"))
    assert.has_error(function() pogo.register(42, p) end,
      "bad argument #1 to 'pogo.register' (string expected, got number)")
    assert.is_nil(pogo.whereis("42"))
    pogo.register("reg1", p)
    local ref = pogo.monitor(p)
    pogo.send(p, "bye")
    must_receive(function(m) return m[2] == ref end)
    assert.is_nil(pogo.whereis("reg1"))
    local found = false
    for _, n in ipairs(pogo.registered()) do found = found or n == "reg1" end
    assert.is_false(found)
  end)
end)

describe("call and cast", function()
  local function echo_server()
    return pogo.spawn(function()
      while true do
        local m = pogo.receive()
        if m[1] == "$call" then
          if m[3] == "die" then error("died in call") end
          if m[3] ~= "ignore" then pogo.reply(m[2], { "echo", m[3] }) end
        elseif m[1] == "$cast" then
          pogo.send(m[2][1], { "cast", m[2][2] })
        end
      end
    end)
  end

  it("call returns the reply", function()
    local s = echo_server()
    assert.same({ "echo", 1 }, pogo.call(s, 1))
    pogo.spawn(function(me) pogo.send(me, pogo.call(s, "from a process")) end, pogo.self())
    assert.same({ "echo", "from a process" }, pogo.receive(1000))
    pogo.exit(s, "kill")
  end)

  it("call raises timeout, noproc and exit", function()
    local s = echo_server()
    local ok, err = pcall(pogo.call, s, "ignore", 20)
    assert.is_false(ok)
    assert.matches("^timeout", err)
    ok, err = pcall(pogo.call, s, "die", 1000)
    assert.is_false(ok)
    assert.matches("^exit", err)
    ok, err = pcall(pogo.call, s, "x", 100)
    assert.is_false(ok)
    assert.matches("^noproc", err)
    ok, err = pcall(pogo.call, "no_such_server", "x", 100)
    assert.is_false(ok)
    assert.matches("^noproc", err)
    -- nothing is left behind in the mailbox
    assert.is_nil(pogo.receive(0))
  end)

  it("a reply that comes after the call timed out is dropped", function()
    local slow = pogo.spawn(function()
      while true do
        local m = pogo.receive()
        if m[1] == "$call" then pogo.sleep(m[3]); pogo.reply(m[2], "late") end
      end
    end)
    local ok, err = pcall(pogo.call, slow, 30, 5)
    assert.is_false(ok)
    assert.matches("^timeout", err)
    -- the late reply reaches the caller's node (here) and is dropped; a fresh call still works
    assert.equal("late", pogo.call(slow, 0, 1000))
    pogo.sleep(40)
    assert.is_nil(pogo.receive(0))
    pogo.exit(slow, "kill")
  end)

  it("call from a luv callback raises before the request goes out", function()
    local uv = require "luv"
    local calls = 0
    local s = pogo.spawn(function()
      while true do
        local m = pogo.receive()
        calls = calls + 1
        pogo.reply(m[2], "ok")
      end
    end)
    local result
    local t = uv.new_timer()
    t:start(1, 0, function()
      result = { pcall(pogo.call, s, "x", 100) }
      t:close()
    end)
    pogo.sleep(20)
    assert.is_false(result[1])
    assert.matches("pogo.call: cannot block inside a luv callback", result[2], 1, true)
    assert.equal("ok", pogo.call(s, "now", 1000)) -- the server got this one only
    assert.equal(1, calls)
    assert.is_nil(pogo.receive(0)) -- and no stray reply
    pogo.exit(s, "kill")
  end)

  it("a bad timeout or destination raises naming it, before anything is sent", function()
    local s = echo_server()
    for _, t in ipairs { -1, "y", 0 / 0, {} } do
      assert.has_error(function() pogo.call(s, 1, t) end,
        "pogo.call: timeout_ms must be a non-negative number of ms (or math.huge)")
    end
    for _, d in ipairs { 42, true } do
      assert.has_error(function() pogo.call(d, 1) end,
        'pogo.call: dest must be a pid, a registered name, {name, node} or {"via", module, name}')
      assert.has_error(function() pogo.cast(d, 1) end,
        'pogo.cast: dest must be a pid, a registered name, {name, node} or {"via", module, name}')
    end
    assert.has_error(function() pogo.receive(function() return false end, -5) end,
      "pogo.receive: timeout must be a non-negative number of ms")
    assert.has_error(function() pogo.receive(function() return false end, "x") end,
      "pogo.receive: timeout must be a non-negative number of ms")
    assert.same({ "echo", 2 }, pogo.call(s, 2, math.huge))
    assert.is_nil(pogo.receive(0))
    pogo.exit(s, "kill")
  end)

  it("cast delivers without waiting", function()
    local s = echo_server()
    pogo.cast(s, { pogo.self(), "c" })
    assert.same({ "cast", "c" }, pogo.receive(1000))
    assert.is_true(pogo.cast("nobody_registered", 1))
    pogo.exit(s, "kill")
  end)
end)

describe("a process's own coroutine", function()
  it("is the scheduler's: another process cannot resume or close it", function()
    local me = pogo.self()
    local co
    local a = pogo.spawn(function()
      co = coroutine.running()
      pogo.send(me, { "got", pogo.receive() })
    end)
    pogo.spawn(function()
      local r = { coroutine.resume(co) }
      r[3] = select(2, pcall(coroutine.close, co))
      pogo.send(me, r)
    end)
    assert.same({ false, "cannot resume a process's coroutine", "cannot close a process's coroutine" },
      pogo.receive(1000))
    assert.same({ false, "cannot resume a process's coroutine" }, { coroutine.resume(co) }) -- nor the main chunk
    assert.is_true(pogo.alive(a))
    pogo.send(a, "still waiting")
    assert.same({ "got", "still waiting" }, pogo.receive(1000))
    -- a process's nested coroutines are its own, as in Lua
    pogo.spawn(function()
      local c = coroutine.create(function() coroutine.yield(1) end)
      local r = { coroutine.resume(c) }
      r[#r + 1] = coroutine.close(c)
      r[#r + 1] = coroutine.status(c)
      pogo.send(me, r)
    end)
    assert.same({ true, 1, true, "dead" }, pogo.receive(1000))
  end)
end)

describe("the loop", function()
  it("run() returns after stop() and when nothing can happen", function()
    local count = 0
    pogo.spawn(function()
      for _ = 1, 3 do pogo.sleep(1); count = count + 1 end
      pogo.stop()
    end)
    pogo.run()
    assert.equal(3, count)
  end)

  it("stop() calls the on_stop hooks, in order, past one that raises", function()
    local calls = {}
    local remove_a = pogo.on_stop(function() calls[#calls + 1] = "a" end)
    local remove_b = pogo.on_stop(function() error("hook b fails") end)
    local remove_c = pogo.on_stop(function() calls[#calls + 1] = "c" end)
    local removed = pogo.on_stop(function() calls[#calls + 1] = "removed" end)
    removed()
    pogo.spawn(function() pogo.stop() end)
    pogo.run()
    remove_a(); remove_b(); remove_c()
    assert.same({ "a", "c" }, calls)
    assert.has_error(function() pogo.on_stop("not a function") end, "pogo.on_stop: function expected")
  end)

  it("luv timers run in the same loop as processes", function()
    local uv = require "luv"
    local me = pogo.self()
    local t = uv.new_timer()
    t:start(5, 0, function() pogo.send(me, "from luv"); t:close() end)
    assert.equal("from luv", pogo.receive(1000))
  end)

  it("pogo.yield lets other ready processes run first", function()
    local me = pogo.self()
    local order = {}
    pogo.spawn(function() order[#order + 1] = "a1"; pogo.yield(); order[#order + 1] = "a2"; pogo.send(me, "done") end)
    pogo.spawn(function() order[#order + 1] = "b" end)
    assert.equal("done", pogo.receive(1000))
    assert.same({ "a1", "b", "a2" }, order)
  end)

  it("coroutine.yield in a process just reschedules it", function()
    local me = pogo.self()
    pogo.spawn(function() coroutine.yield(); pogo.send(me, "after yield") end)
    assert.equal("after yield", pogo.receive(1000))
  end)
end)
