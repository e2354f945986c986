-- Preemption (csrc/preempt.c): a process that runs a time slice without
-- blocking yields to the others; process_info with Erlang's names.
local pogo = require "pogo"
local core = pogo.core

local function spinner()
  return pogo.spawn(function()
    local x = 0
    while true do x = x + 1 end
  end)
end

-- A process that answers "pong" to each pid sent to it, until "stop".
local function ponger()
  return pogo.spawn(function()
    while true do
      local m = pogo.receive()
      if m == "stop" then return end
      pogo.send(m, "pong")
    end
  end)
end

-- Round trips to `pong` from another process for `ms` milliseconds (short
-- slices, each ending in a receive); returns when they are done.
local function round_trips(pong, ms)
  local me, done = pogo.self(), false
  pogo.spawn(function()
    local s, t = pogo.self(), pogo.now()
    while pogo.now() - t < ms do
      pogo.send(pong, s)
      pogo.receive()
    end
    done = true
    pogo.send(me, "round trips done")
  end)
  assert.are.equal("round trips done", pogo.receive(5000))
  assert.is_true(done)
end

-- 50 round trips to `pong` from another process (within 10 s).
local function fifty_round_trips(pong)
  local me = pogo.self()
  pogo.spawn(function()
    for _ = 1, 50 do
      pogo.send(pong, pogo.self())
      assert(pogo.receive() == "pong")
    end
    pogo.send(me, "50 round trips")
  end)
  assert.are.equal("50 round trips", pogo.receive(10000))
end

describe("preemption", function()
  it("is on, through the watchdog's signal", function()
    local p = pogo.spawn(function() end) -- the watchdog comes with the first process
    pogo.sleep(1)
    assert.is_false(pogo.alive(p))
    local info = core.preempt_info()
    assert.are.equal(0.5, info.preempt_ms)
    assert.are.equal("signal", info.mechanism)
  end)

  it("lets other processes run while one spins, and exit(pid, 'kill') ends the spinner", function()
    local s = spinner()
    local pong = ponger()
    fifty_round_trips(pong)
    local ref = pogo.monitor(s)
    pogo.exit(s, "kill")
    assert.same({ "DOWN", ref, s, "killed" }, pogo.receive(1000))
    pogo.send(pong, "stop")
  end)

  it("leaves a critical section alone, and preempts again once it is left", function()
    local uv = require "luv"
    local me = pogo.self()
    local function spin(ms)
      local t0 = uv.hrtime()
      while uv.hrtime() - t0 < ms * 1e6 do end
    end
    -- `other` is in the run queue behind the spinner: it runs when the spinner is preempted
    local spinner_pid = pogo.spawn(function()
      core.critical_enter()
      core.critical_enter() -- (sections nest)
      local t0 = uv.hrtime()
      spin(20)
      core.critical_leave()
      spin(5) -- still inside the outer section
      local t1 = uv.hrtime()
      core.critical_leave()
      spin(20)
      pogo.send(me, { "spinner", t0, t1, uv.hrtime() })
    end)
    local ref = pogo.monitor(spinner_pid)
    pogo.spawn(function() pogo.send(me, { "other", uv.hrtime() }) end)
    local other = pogo.receive(function(m) return m[1] == "other" end, 5000)
    local sp = pogo.receive(function(m) return m[1] == "spinner" end, 5000)
    assert.is_truthy(other and sp, "no report")
    -- (it may be preempted between its report and its end: its DOWN is awaited)
    local down = pogo.receive(function(m) return m[1] == "DOWN" and m[2] == ref end, 5000)
    assert.is_truthy(down, "the spinner did not end")
    local t0, t1, t2 = sp[2], sp[3], sp[4]
    assert.is_true(other[2] > t1, "the other process ran inside the critical section")
    assert.is_true(other[2] < t2, "the spinner was not preempted once it left the section")
    assert.is_true(other[2] > t0)
  end)

  it("ends a critical section left open with the slice", function()
    local uv = require "luv"
    local me = pogo.self()
    local other_ran = false -- (both processes run on this node's Lua state)
    pogo.spawn(function()
      pcall(function()
        core.critical_enter()
        error("raised inside the section")
      end)
      pogo.sleep(1) -- a new slice
      pogo.send(me, { "spinning" })
      -- spin until `other` has run (it can only if this process is preempted
      -- again), or 5 s (it was not: its section outlived the slice)
      local t0 = uv.hrtime()
      while not other_ran and uv.hrtime() - t0 < 5e9 do end
      pogo.send(me, { "spinner", other_ran })
    end)
    -- this process gets "spinning" only when the spinner is preempted, and
    -- `other` runs before the spin ends only if it is preempted once more
    assert.is_truthy(pogo.receive(function(m) return m[1] == "spinning" end, 5000))
    pogo.spawn(function() other_ran = true end)
    local sp = pogo.receive(function(m) return m[1] == "spinner" end, 10000)
    assert.is_true(sp[2], "the spinner was never preempted: its section outlived the slice")
  end)

  it("ends a batch of short slices after 10 ms: a process that keeps yielding lets timers fire", function()
    local uv = require "luv"
    local worst, last = 0, uv.hrtime()
    local t = uv.new_timer()
    t:start(1, 1, function()
      local n = uv.hrtime()
      worst = math.max(worst, (n - last) / 1e6)
      last = n
    end)
    local me = pogo.self()
    pogo.spawn(function()
      -- 300 ms of slices of about 25 us, each ending in a yield: before the
      -- time bound, a batch ended only after 20,000 of them
      local t0, slices = pogo.now(), 0
      while pogo.now() - t0 < 300 do
        local x = 0
        for j = 1, 5000 do x = x + j end
        slices = slices + 1
        pogo.yield()
      end
      pogo.send(me, slices)
    end)
    local slices = pogo.receive(10000)
    t:close()
    pogo.sleep(1) -- (a turn of the loop runs the close: luv crashes at exit on a handle still closing)
    assert.is_number(slices)
    assert.is_true(worst < 100, "the loop waited " .. worst .. " ms for a turn (" .. slices .. " slices)")
  end)

  it("lets timers fire and the main chunk's receive time out while a process spins", function()
    local s = spinner()
    local t0 = pogo.now()
    assert.is_nil(pogo.receive(50))
    pogo.sleep(20)
    assert.is_true(pogo.now() - t0 < 2000)
    pogo.exit(s, "kill")
  end)

  it("preempts a process inside pcall and inside a server's handler", function()
    local s = pogo.spawn(function()
      pcall(function()
        local x = 0
        while true do x = x + 1 end
      end)
    end)
    local srv = assert(require("pogo.server").start({
      init = function() return 0 end,
      handle_call = function(req, _, n)
        if req == "spin" then
          local x = 0
          while true do x = x + 1 end
        end
        return n, n
      end,
    }))
    pogo.spawn(function() pcall(pogo.call, srv, "spin", 100000) end)
    assert.is_nil(pogo.receive(30)) -- both spin; this main chunk still gets its turn
    pogo.exit(s, "kill")
    pogo.exit(srv, "kill")
  end)

  it("preempts a loop in a coroutine nested in a process (a generator, two levels deep)", function()
    local gen = pogo.spawn(function()
      local g = coroutine.wrap(function() local x = 0 while true do x = x + 1 end end)
      g()
    end)
    local deep = pogo.spawn(function()
      local outer = coroutine.create(function()
        coroutine.resume(coroutine.create(function() while true do end end))
      end)
      coroutine.resume(outer)
    end)
    local pong = ponger()
    fifty_round_trips(pong)
    assert.is_true(core.process_info(gen).reductions > 1000)
    for _, p in ipairs { gen, deep } do
      local ref = pogo.monitor(p)
      pogo.exit(p, "kill")
      assert.same({ "DOWN", ref, p, "killed" }, pogo.receive(1000))
    end
    pogo.send(pong, "stop")
  end)

  it("gives resume and wrap in a process Lua's values and errors, across preemptions", function()
    local me = pogo.self()
    pogo.spawn(function()
      local c = coroutine.wrap(function(a)
        local x = 0
        for _ = 1, 3e7 do x = x + 1 end -- (preempted many times)
        local b = coroutine.yield(a + x)
        return b * 2, "end"
      end)
      local r = { c(1) }
      r[#r + 1] = table.pack(c(10))
      local co = coroutine.create(function() coroutine.yield() error("boom", 0) end)
      r[#r + 1] = table.pack(coroutine.resume(co)) -- a plain yield without values
      r[#r + 1] = table.pack(coroutine.resume(co))
      r[#r + 1] = coroutine.status(co)
      r[#r + 1] = table.pack(pcall(coroutine.wrap(function() error({ code = 7 }) end)))
      local dead = coroutine.wrap(function() end)
      dead()
      r[#r + 1] = select(2, pcall(function() local x = dead() return x end))
      r[#r + 1] = select(2, pcall(coroutine.resume, 1))
      r[#r + 1] = select(2, pcall(coroutine.wrap))
      pogo.send(me, r)
    end)
    local r = pogo.receive(30000)
    assert.are.equal(30000001, r[1])
    assert.same({ 20, "end", n = 2 }, r[2])
    assert.same({ true, n = 1 }, r[3])
    assert.same({ false, "boom", n = 2 }, r[4])
    assert.are.equal("dead", r[5])
    assert.same({ false, { code = 7 }, n = 2 }, r[6])
    assert.matches("^spec/preempt_spec.lua:%d+: cannot resume dead coroutine$", r[7]) -- (as Lua's: with the position)
    assert.are.equal("bad argument #1 to 'coroutine.resume' (coroutine expected, got number)", r[8])
    assert.are.equal("bad argument #1 to 'coroutine.wrap' (function expected, got no value)", r[9])
  end)

  it("leaves coroutines nested in a process alone: no spurious yield", function()
    local me = pogo.self()
    pogo.spawn(function()
      local gen = coroutine.wrap(function()
        for i = 1, 3 do
          local t0 = os.clock()
          while os.clock() - t0 < 0.005 do end -- 5 ms: longer than a time slice
          coroutine.yield(i)
        end
      end)
      local got = {}
      for _ = 1, 3 do got[#got + 1] = gen() end
      pogo.send(me, got)
    end)
    assert.same({ 1, 2, 3 }, pogo.receive(5000))
  end)

  it("does not change what a process's own slices compute when it is preempted", function()
    local me = pogo.self()
    pogo.spawn(function()
      local sum = 0
      for i = 1, 20000000 do sum = sum + i end
      pogo.send(me, sum)
    end)
    assert.are.equal(20000000 * 20000001 // 2, pogo.receive(30000))
  end)

  it("can be turned off and on (set_preempt_ms)", function()
    assert.are.equal(0.5, core.set_preempt_ms(false))
    assert.are.equal("off", core.preempt_info().mechanism)
    local p = pogo.spawn(function() pogo.receive() end)
    assert.are.equal(0, core.set_preempt_ms(2))
    assert.are.equal(2, core.preempt_info().preempt_ms)
    assert.are.equal(2, core.set_preempt_ms(0.5))
    local s = spinner()
    assert.is_nil(pogo.receive(20))
    pogo.exit(s, "kill")
    pogo.exit(p, "kill")
    assert.has_error(function() core.set_preempt_ms(-1) end)
  end)
end)

describe("process_info", function()
  it("gives status, message_queue_len, reductions, links and monitors (Erlang's names)", function()
    local me = pogo.self()
    local other = pogo.spawn(function() pogo.receive() end)
    local p = pogo.spawn(function()
      pogo.link(other)
      local ref = pogo.monitor(other)
      pogo.send(me, { "ref", ref })
      pogo.trap_exit(true)
      pogo.receive(function() return false end)
    end)
    local ref = pogo.receive(1000)[2]
    local mref = pogo.monitor(p)
    pogo.send(p, "one")
    pogo.send(p, "two")
    pogo.sleep(1)
    local info = pogo.process_info(p)
    assert.are.equal("waiting", info.status)
    assert.are.equal(2, info.message_queue_len)
    assert.is_true(math.type(info.reductions) == "integer" and info.reductions >= 2)
    assert.same({ other }, info.links)
    assert.same({ ref }, info.monitors)
    assert.same({ me }, info.monitored_by)
    assert.is_true(info.trap_exit)
    pogo.register("infoed", p)
    assert.are.equal("infoed", pogo.process_info(p).registered_name)
    pogo.demonitor(mref)
    pogo.exit(p, "kill")
    pogo.exit(other, "kill")
  end)

  it("counts the CPU time of a slice, not the time on the clock: a slice blocked in a system call goes on",
    function()
    local uv = require "luv"
    local me = pogo.self()
    pogo.sleep(5) -- the watchdog exists (it comes with the first process)
    local before = core.preempt_info().preemptions
    pogo.spawn(function()
      uv.sleep(250) -- blocks the node's thread for 250 ms without using its CPU
      local x = 0
      for i = 1, 1000 do x = x + i end -- Lua instructions, where an armed hook would yield
      pogo.send(me, { "done", x })
    end)
    assert.same({ "done", 500500 }, pogo.receive(5000))
    -- with the time on the clock the watchdog saw that slice at two looks
    -- and preempted it at its first instruction after the sleep
    assert.are.equal(before, core.preempt_info().preemptions)
  end)

  it("watches closely only the next slice of a process it preempted, not the node", function()
    local uv = require "luv"
    local me = pogo.self()
    local before = core.preempt_info().preemptions
    local p = pogo.spawn(function()
      -- spin until preempted (20 ms do on a quiet machine; under valgrind on
      -- a loaded one the watchdog may need longer to look twice), at most 5 s
      local t, x = uv.hrtime(), 0
      while core.preempt_info().preemptions == before and uv.hrtime() - t < 5e9 do x = x + 1 end
      pogo.send(me, "spun")
      pogo.receive()
    end)
    assert.are.equal("spun", pogo.receive(5000))
    assert.is_true(core.preempt_info().preemptions > before)
    local t0 = pogo.now()
    while pogo.process_info(p).status ~= "waiting" and pogo.now() - t0 < 5000 do pogo.sleep(1) end
    -- 100 ms of short slices (round trips) after it: the watchdog looks
    -- every 8 time slices (4 ms), about 25 times; watching the node closely
    -- for 100 ms after a preemption, as it did, it looked every 0.5 ms (200)
    local pong = ponger()
    local looks0 = core.preempt_info().looks
    round_trips(pong, 100)
    local looks = core.preempt_info().looks - looks0
    assert.is_true(looks <= 60, "the watchdog looked " .. looks .. " times in 100 ms")
    pogo.send(pong, "stop")
    pogo.exit(p, "kill")
  end)

  it("looks seldom at a node whose processes run often but briefly", function()
    local uv = require "luv"
    local me = pogo.self()
    -- 0.1 ms of work every 3 ms (a few % of a core): about one look in
    -- thirty finds it running. The watchdog looked every 4 ms as long as one
    -- look in a hundred did (250 times a second on every such node); now
    -- each look that finds the loop thread this idle doubles the wait
    local stop = false
    pogo.spawn(function()
      while not stop do
        local t = os.clock()
        while os.clock() - t < 0.0001 do end
        pogo.sleep(3)
      end
      pogo.send(me, "stopped")
    end)
    pogo.sleep(200) -- (the waits double from 4 ms up to 100 ms)
    local looks0, t0 = core.preempt_info().looks, uv.hrtime()
    pogo.sleep(500)
    local looks = core.preempt_info().looks - looks0
    local ms = (uv.hrtime() - t0) / 1e6
    stop = true
    assert.are.equal("stopped", pogo.receive(5000))
    assert.is_true(looks <= 50, string.format("the watchdog looked %d times in %.0f ms", looks, ms))
  end)

  it("keeps a busy node's calm watch with a timer on its CPU clock, and the first slice of a spinner ends", function()
    local me = pogo.self()
    -- 300 ms of short slices (round trips): the tick fires every 4 ms of the
    -- loop thread's CPU time, and the close watch does not look (a watchdog
    -- thread looked every 4 ms, 75 times, while the node was busy)
    local pong = ponger()
    local i0 = core.preempt_info()
    round_trips(pong, 300)
    local i1 = core.preempt_info()
    assert.is_true(i1.ticks > i0.ticks, "no tick while the node was busy")
    assert.is_true(i1.looks - i0.looks <= 3, "the watchdog looked " .. (i1.looks - i0.looks) .. " times in 300 ms")
    pogo.send(pong, "stop")
    -- a process never preempted before: its first slice is the tick's to end
    -- (the watchdog looks closely only at a process preempted last time)
    pogo.spawn(function()
      local x = 0
      while core.preempt_info().preemptions == i1.preemptions do x = x + 1 end
      pogo.send(me, "preempted")
    end)
    assert.are.equal("preempted", pogo.receive(5000))
    local i2 = core.preempt_info()
    assert.are.equal(i1.looks, i2.looks) -- not the close watch's
    assert.is_true(i2.signals > i1.signals)
    assert.is_true(i2.ticks >= i1.ticks + 2)
  end)

  it("keeps a time slice longer than 4.3 s (more than 32 bits of nanoseconds)", function()
    local uv = require "luv"
    local me = pogo.self()
    pogo.spawn(function()
      -- preempted once with the default slice, its next slice is watched closely
      local b, t = core.preempt_info().preemptions, uv.hrtime()
      while core.preempt_info().preemptions == b and uv.hrtime() - t < 5e9 do end
      core.set_preempt_ms(5000)
      -- 1.5 s of this slice: with the time slice kept in 32 bits, 5 s was
      -- 0.7 s, and the slice was preempted after 0.7 to 1.4 s
      local before = core.preempt_info().preemptions
      t = uv.hrtime()
      while uv.hrtime() - t < 1.5e9 do end
      pogo.send(me, { "spun", core.preempt_info().preemptions - before })
    end)
    local m = pogo.receive(10000)
    core.set_preempt_ms(0.5)
    assert.are.same({ "spun", 0 }, m)
  end)

  it("counts a spinning process's reductions by the microsecond", function()
    local s = spinner()
    local t0, r = pogo.now(), 0
    while r <= 20000 and pogo.now() - t0 < 5000 do -- 20 ms of spinning
      pogo.sleep(10)
      r = pogo.process_info(s).reductions
    end
    assert.is_true(r > 20000, "reductions " .. r)
    assert.is_true(core.preempt_info().preemptions > 0)
    pogo.exit(s, "kill")
  end)

  describe("where it cannot yield (a Lua function called from C)", function()
    -- a ticker process counts how often it runs: 0 while the node is frozen
    local function ticker()
      local me = pogo.self()
      return pogo.spawn(function()
        local n = 0
        while true do
          pogo.sleep(5)
          n = n + 1
          if n % 10 == 0 then pogo.send(me, { "tick", n }) end
        end
      end)
    end

    it("ends a process that loops inside tostring's __tostring after 2 s; the node goes on", function()
      local t = ticker()
      local p, ref = pogo.spawn_monitor(function()
        tostring(setmetatable({}, { __tostring = function() while true do end end }))
      end)
      local down = pogo.receive(function(m) return m[1] == "DOWN" and m[2] == ref end, 10000)
      assert(down, "the process was not ended")
      assert.matches("preempted: ran 2000 ms where it could not yield", tostring(down[4].error or down[4]), 1, true)
      assert.is_false(pogo.alive(p))
      assert(pogo.receive(function(m) return m[1] == "tick" end, 2000), "the node did not go on")
      pogo.exit(t, "kill")
    end)

    it("does not run the __close handlers of a process ended by that bound (its hooks are off): no freeze", function()
      local p, ref = pogo.spawn_monitor(function()
        local guard <close> = setmetatable({}, { __close = function() while true do end end }) -- luacheck: ignore
        table.sort({ 3, 2, 1 }, function() while true do end end)
      end)
      local down = pogo.receive(function(m) return m[1] == "DOWN" and m[2] == ref end, 10000)
      assert(down, "no DOWN: the __close froze the node")
      assert.matches("preempted: ran 2000 ms", tostring(down[4].error or down[4]), 1, true)
      assert.is_false(pogo.alive(p))
      local t = ticker()
      assert(pogo.receive(function(m) return m[1] == "tick" end, 2000), "the node did not go on")
      pogo.exit(t, "kill")
    end)

    it("cuts short a __close that loops when its process is killed, or crashes", function()
      for _, how in ipairs { "kill", "crash" } do
        local p, ref = pogo.spawn_monitor(function()
          local guard <close> = setmetatable({}, { __close = function() while true do end end }) -- luacheck: ignore
          if how == "crash" then error("boom", 0) end
          pogo.receive()
        end)
        if how == "kill" then
          pogo.yield()
          pogo.exit(p, "kill")
        end
        local down = pogo.receive(function(m) return m[1] == "DOWN" and m[2] == ref end, 10000)
        assert(down, how .. ": no DOWN")
        assert.is_false(pogo.alive(p))
        local t = ticker()
        assert(pogo.receive(function(m) return m[1] == "tick" end, 2000), how .. ": the node did not go on")
        pogo.exit(t, "kill")
      end
    end)
  end)
end)
