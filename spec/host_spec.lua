-- The host API (DESIGN §3, "Hosts that own their loop"): pogo.fd(),
-- pogo.timeout() and pogo.step() as a host drives them, host code that wakes
-- the host, and blocking calls from host code. This file's main chunk is
-- host code throughout (it is hosted from its first step): it waits for the
-- fd with LuaSocket's select and never drives the loop itself.
local pogo = require "pogo"
local uv = require "luv"
local host = require "support.host"

local COOKIE = "host-spec-" .. tostring(uv.hrtime())

-- pogo.step(), checking that it says more is ready only when its budget
-- (2 ms: under valgrind, say) ran out, never after it left ready work.
local function step()
  local t0 = uv.hrtime()
  local more = pogo.step()
  local ms = (uv.hrtime() - t0) / 1e6
  assert(not more or ms >= 2, "a step left ready work after " .. ms .. " ms")
  return more
end

-- Run ready work until nothing is ready at once (a host would do this over
-- several turns of its loop).
-- Step until nothing is ready and nothing comes for 50 ms (a peer's answers,
-- such as its registry's sync after the link came up, may still be on the way).
local function settle()
  host.step_until(function() return not pogo.step() and pogo.timeout() ~= 0 and not host.readable(50) end, 5000,
    "the node to settle")
end

describe("a hosted node", function()
  it("fd() is an integer that is not readable while nothing is ready; timeout() is -1 with no timer", function()
    local fd = pogo.fd()
    assert.equal("integer", math.type(fd))
    settle()
    assert.is_false(host.readable(0))
    assert.equal(-1, pogo.timeout())
    assert.is_false(pogo.step())
  end)

  it("a spawn from host code makes fd() readable and timeout() 0; one step runs it", function()
    settle()
    local ran = false
    local pid = pogo.spawn(function() ran = true end)
    assert.is_true(host.readable(0))
    assert.equal(0, pogo.timeout())
    assert.is_false(ran)
    assert.is_false(pogo.step())
    assert.is_true(ran)
    assert.is_false(pogo.alive(pid))
    assert.is_false(host.readable(0))
    assert.equal(-1, pogo.timeout())
  end)

  it("a send from host code to a waiting process makes fd() readable", function()
    local me = pogo.self()
    local pid = pogo.spawn(function()
      local m = pogo.receive()
      pogo.send(me, { "got", m })
    end)
    settle()
    assert.is_false(host.readable(0))
    pogo.send(pid, "hello")
    assert.is_true(host.readable(0))
    assert.equal(0, pogo.timeout())
    assert.is_false(pogo.step())
    assert.same({ "got", "hello" }, pogo.receive(0))
    assert.is_nil(pogo.receive(0))
  end)

  it("timeout() is the ms until the next process timer, and the timer's work runs when it is due", function()
    local me = pogo.self()
    pogo.spawn(function() pogo.sleep(150); pogo.send(me, "woke") end)
    pogo.step()
    local t = pogo.timeout()
    assert.is_true(t > 100 and t <= 150, "timeout " .. t)
    local t0 = uv.hrtime()
    assert.is_false(host.readable(t - 20)) -- nothing comes before the timer
    local m = host.step_until(function() return pogo.receive(0) end, 1000, "the sleeper")
    assert.equal("woke", m)
    assert.is_true((uv.hrtime() - t0) / 1e6 >= t - 1)
    assert.equal(-1, pogo.timeout())
  end)

  it("step() returns true while more work is ready at once, and a busy process cannot hold it", function()
    settle()
    -- it computes, yielding now and then (preemption would yield for it)
    local busy = pogo.spawn(function()
      local x = 0
      while true do
        x = x + 1
        if x % 1000 == 0 then coroutine.yield() end
      end
    end)
    local t0 = uv.hrtime()
    assert.is_true(pogo.step())
    local ms = (uv.hrtime() - t0) / 1e6
    -- the budget is 2 ms (a whole scheduler batch of this process took 100 ms and more)
    assert.is_true(ms < 50, "one step took " .. ms .. " ms")
    assert.equal(0, pogo.timeout())
    assert.is_true(pogo.step())
    pogo.exit(busy, "kill")
    assert.is_false(pogo.step())
    assert.is_false(pogo.alive(busy))
    assert.equal(-1, pogo.timeout())
  end)

  it("raises on blocking calls from host code, not on receive(0); processes block as usual", function()
    local function cannot(what, f, ...)
      local ok, err = pcall(f, ...)
      assert.is_false(ok, what .. " did not raise")
      assert.matches(what .. ": cannot block in host code", err, 1, true)
      assert.matches("spawn a process", err, 1, true)
    end
    local me = pogo.self()
    cannot("pogo.receive", pogo.receive, 10)
    cannot("pogo.receive", pogo.receive)
    cannot("pogo.receive", pogo.receive, function() return true end, 10)
    cannot("pogo.sleep", pogo.sleep, 1)
    cannot("pogo.call", pogo.call, me, "req", 10)
    cannot("pogo.rpc", pogo.rpc, "x@127.0.0.1:1", "pogo", "nodes", {}, 10)
    cannot("pogo.connect", pogo.connect, "127.0.0.1:1")
    cannot("pogo.run", pogo.run)
    cannot("pogo.yield", pogo.yield)
    -- a call raised before sending anything: the mailbox is empty
    assert.is_nil(pogo.receive(0))
    -- the same calls inside a process block (yield) as always
    pogo.spawn(function()
      pogo.sleep(1)
      local m = pogo.receive(50)
      pogo.send(me, { "waited", m })
    end)
    local m = host.step_until(function() return pogo.receive(0) end, 2000, "the process")
    assert.same({ "waited" }, m)
  end)

  it("one step runs every ready process, also after processes sent to host code", function()
    local me = pogo.self()
    pogo.spawn(function() pogo.send(me, "to the host") end)
    settle()
    assert.equal("to the host", pogo.receive(0))
    local ran = 0
    for _ = 1, 500 do pogo.spawn(function() ran = ran + 1 end) end
    local steps = 1
    while step() do steps = steps + 1 end
    assert.equal(500, ran)
    assert.is_true(steps < 20, steps .. " steps")
  end)

  it("step() and fd() raise inside a process", function()
    local me = pogo.self()
    pogo.spawn(function()
      pogo.send(me, { pcall(pogo.step) })
      pogo.send(me, { pcall(pogo.fd) })
    end)
    settle()
    local a, b = pogo.receive(0), pogo.receive(0)
    assert.is_false(a[1]); assert.matches("pogo.step: called from a process", a[2], 1, true)
    assert.is_false(b[1]); assert.matches("pogo.fd: called from a process", b[2], 1, true)
  end)
end)

describe("a hosted node in a cluster", function()
  local peer

  setup(function()
    peer = host.start_peer("spec/support/host_peer.lua", nil, { cookie = COOKIE })
    pogo.start { name = "hosted", cookie = COOKIE, seeds = { peer.addr }, heartbeat_ms = 1000, timeout_ms = 10000 }
    host.step_until(function() return #pogo.nodes() == 1 end, 10000, "the link to the peer")
  end)

  teardown(function()
    host.stop_peer(peer)
  end)

  it("a send from host code to another node makes fd() readable; the reply wakes it again", function()
    settle()
    assert.is_false(host.readable(0))
    pogo.send({ "mirror", peer.name }, { pogo.self(), "ping" })
    assert.is_true(host.readable(0))
    assert.equal(0, pogo.timeout())
    pogo.step() -- writes the message
    local m = host.step_until(function() return pogo.receive(0) end, 5000, "the mirrored message")
    assert.equal("ping", m)
  end)

  it("a call from a process wakes the host once per round trip: the reply is read, the process runs and "
     .. "its next request is written in the same step", function()
    local me = pogo.self()
    local N = 10
    settle()
    pogo.spawn(function()
      for i = 1, N do assert(pogo.call({ "echo", peer.name }, i, 5000) == i) end
      pogo.send(me, "done")
    end)
    -- step at once while a step says more is ready, else only when the fd
    -- is readable: count those wake-ups
    local more = step()
    local wakes = 0
    local deadline = uv.hrtime() + 30e9
    local done
    while not done and uv.hrtime() < deadline do
      if more then
        more = step()
      elseif host.readable(1000) then
        wakes = wakes + 1
        more = step()
      end
      done = pogo.receive(0)
    end
    assert.equal("done", done)
    -- N replies, each handled in the step of its wake-up (a heartbeat may add one)
    assert.is_true(wakes <= N + 2, wakes .. " wake-ups for " .. N .. " calls")
  end)
end)
