-- max_memory (csrc/mem.c): an allocation past the limit fails in the process
-- that made it; its links and monitors fire; the node goes on.
local pogo = require "pogo"
local core = pogo.core
local supervisor = require "pogo.supervisor"

local hog = require("support.attack").alloc_forever

describe("max_memory", function()
  local limit

  before_each(function()
    collectgarbage()
    collectgarbage()
    limit = core.memory().total + 32 * 1024 * 1024
    assert.are.equal(0, core.set_max_memory(limit))
  end)

  after_each(function()
    core.set_max_memory(0)
    collectgarbage()
  end)

  it("counts the Lua heap as collectgarbage does", function()
    local lua = collectgarbage("count") * 1024
    local m = pogo.memory() -- (it allocates its table after reading the count)
    assert.are.equal(lua, m.total)
    assert.are.equal(limit, m.limit)
    assert.is_true(m.headroom >= 4 * 1024 * 1024)
  end)

  it("a process whose coroutine cannot be made when it first runs exits 'out of memory'", function()
    local prev = core.set_thread_pool(0) -- (else a coroutine kept from an earlier process runs it)
    finally(function() core.set_thread_pool(prev) end)
    -- the main chunk may use the headroom: it fills the heap past the limit
    -- with what a collection cannot free
    local base, fill, n = string.rep("x", 65536), {}, 0
    repeat
      while core.memory().total <= limit do
        n = n + 1
        fill[n] = base .. n
      end
      collectgarbage()
    until core.memory().total > limit
    local pid, ref = pogo.spawn_monitor(function() end)
    local down = pogo.receive(function(m) return m[1] == "DOWN" and m[2] == ref end, 10000)
    assert.are.equal(n, #fill) -- (held until now)
    assert.same({ "DOWN", ref, pid, "out of memory" }, down)
  end)

  it("ends the process that allocates past it with 'out of memory'; links and monitors fire", function()
    local watcher = pogo.spawn(function()
      pogo.trap_exit(true)
      local p = pogo.spawn_link(hog)
      local m = pogo.receive(10000)
      pogo.send(pogo.whereis("memory_spec") or pogo.self(), m)
      return p
    end)
    pogo.register("memory_spec", pogo.self())
    local pid, ref = pogo.spawn_monitor(hog)
    local down = pogo.receive(function(m) return m[1] == "DOWN" and m[2] == ref end, 10000)
    assert.same({ "DOWN", ref, pid, "out of memory" }, down)
    local exit = pogo.receive(function(m) return m[1] == "EXIT" end, 10000)
    assert.are.equal("out of memory", exit[3])
    pogo.unregister("memory_spec")
    assert.is_false(pogo.alive(watcher))
    assert.is_true(core.memory().refused > 0)
    -- the node goes on: processes run, messages flow
    local echo = pogo.spawn(function() pogo.send(pogo.receive(), "still here") end)
    pogo.send(echo, pogo.self())
    assert.are.equal("still here", pogo.receive(1000))
  end)

  it("ends a process that catches the error and goes on (pcall), at the end of its slice", function()
    local pid, ref = pogo.spawn_monitor(function()
      local ok = pcall(hog)
      assert(not ok)
      -- it goes on as if nothing happened (here: waits for a message)
      pogo.receive()
    end)
    local down = pogo.receive(function(m) return m[1] == "DOWN" and m[2] == ref end, 10000)
    assert.same({ "DOWN", ref, pid, "out of memory" }, down)
  end)

  it("fails only the process that allocates: another one holding memory lives", function()
    local me = pogo.self()
    local holder = pogo.spawn(function()
      local keep = {}
      for i = 1, 100000 do keep[i] = { i } end
      pogo.send(me, "holding")
      pogo.receive()
      pogo.send(me, #keep)
    end)
    assert.are.equal("holding", pogo.receive(5000))
    local _, ref = pogo.spawn_monitor(hog)
    assert.are.equal("out of memory", pogo.receive(function(m) return m[2] == ref end, 10000)[4])
    pogo.send(holder, "go")
    assert.are.equal(100000, pogo.receive(1000))
  end)

  it("lets a supervisor restart the child that ran out", function()
    local hog_server = {
      init = function() return {} end,
      handle_call = function(req, _, s)
        if req == "alloc" then hog() end
        return req, s
      end,
    }
    package.loaded["memory_spec.hog"] = {
      start_link = function() return require("pogo.server").start_link(hog_server, nil, { name = "mhog" }) end,
    }
    local sup = assert(supervisor.start_link({ { id = "hog", start = { "memory_spec.hog", "start_link" } } }))
    local first = pogo.whereis("mhog")
    local ok, err = pcall(pogo.call, "mhog", "alloc", 10000)
    assert.is_false(ok)
    assert.matches("out of memory", err)
    local again
    for _ = 1, 100 do
      again = pogo.whereis("mhog")
      if again and again ~= first then break end
      pogo.sleep(10)
    end
    assert.is_true(pogo.is_pid(again) and again ~= first)
    assert.are.equal("ok", pogo.call("mhog", "ok"))
    pogo.unlink(sup)
    pogo.exit(sup, "kill")
    package.loaded["memory_spec.hog"] = nil
  end)

  it("refuses a limit below what the heap holds now", function()
    assert.has_error(function() core.set_max_memory(1024) end)
    assert.are.equal(limit, core.memory().limit)
  end)
end)

describe("memory the collector freed", function()
  local UNDER_ASAN = (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) ~= nil

  local function rss_kib()
    local f = assert(io.open("/proc/self/statm"))
    local _, res = f:read("n", "n")
    f:close()
    return res * 4
  end

  it("goes back to the system once the heap has shrunk (a trim after the next batch)", function()
    collectgarbage()
    collectgarbage()
    local trims = pogo.memory().trims
    -- a burst of small tables (malloc serves them from its heap, not mmap),
    -- then one that stays, above them: free alone could not give them back
    local function burst()
      local t = {}
      for i = 1, 300000 do t[i] = { i, i, i, i } end
      return #t, rss_kib()
    end
    local n, peak = burst()
    assert.equal(300000, n)
    local pin = { "allocated after the burst" }
    collectgarbage()
    collectgarbage()
    -- the trim runs after a batch of the scheduler, at most every 250 ms
    local me = pogo.self()
    local deadline = pogo.now() + 2000
    repeat
      pogo.spawn(function() pogo.send(me, "ran") end)
      assert.equal("ran", pogo.receive(1000))
      if pogo.memory().trims > trims then break end
      pogo.sleep(20)
    until pogo.now() > deadline
    assert.is_true(pogo.memory().trims > trims)
    -- (AddressSanitizer's allocator and valgrind's are not glibc's: only the count applies there)
    if not UNDER_ASAN and os.getenv("POGO_VALGRIND") ~= "1" then
      assert.is_true(rss_kib() < peak - 16 * 1024, "RSS " .. rss_kib() .. " KiB after a peak of " .. peak)
    end
    assert.equal("allocated after the burst", pin[1])
  end)

  it("is seen in malloc_in_use and malloc_free (the process's malloc, glibc)", function()
    local m = pogo.memory()
    if m.malloc_in_use == nil then
      -- not glibc 2.33+: both are absent together
      assert.is_nil(m.malloc_free)
      return
    end
    assert.equal("integer", math.type(m.malloc_in_use))
    assert.equal("integer", math.type(m.malloc_free))
    assert.is_true(m.malloc_free >= 0)
    -- ASan's allocator and valgrind's keep their own books (glibc's, read here, stay near zero)
    if UNDER_ASAN or os.getenv("POGO_VALGRIND") == "1" then return end
    collectgarbage()
    collectgarbage()
    local before = pogo.memory().malloc_in_use
    local keep = {}
    for i = 1, 100000 do keep[i] = { i, i } end
    local during = pogo.memory().malloc_in_use
    assert.is_true(during - before >= 4 * 1024 * 1024, "in use " .. before .. " then " .. during)
    assert.equal(100000, #keep)
    keep = nil -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    local after = pogo.memory().malloc_in_use
    assert.is_true(after < during - 4 * 1024 * 1024, "in use " .. during .. " then " .. after)
  end)

  it("is not given back while the heap only grows", function()
    collectgarbage()
    local trims = pogo.memory().trims
    local keep = {}
    for i = 1, 100000 do keep[i] = { i } end
    local me = pogo.self()
    pogo.spawn(function() pogo.send(me, "ran") end)
    assert.equal("ran", pogo.receive(1000))
    assert.equal(trims, pogo.memory().trims)
    assert.equal(100000, #keep)
  end)
end)

describe("a mailbox that held a burst", function()
  it("is let go once it is empty: the heap comes back", function()
    local me = pogo.self()
    local sink = pogo.spawn(function()
      pogo.receive(function(m) return m == "go" end)
      local n = 0
      while true do
        local m = pogo.receive()
        if m == "done" then break end
        n = n + 1
      end
      pogo.send(me, { "drained", n })
      pogo.receive() -- (it lives on, its mailbox empty)
    end)
    collectgarbage("collect")
    local before = collectgarbage("count")
    for i = 1, 200000 do pogo.send(sink, i) end
    pogo.send(sink, "done")
    pogo.send(sink, "go")
    assert.are.same({ "drained", 200000 }, pogo.receive(function(m) return m[1] == "drained" end, 10000))
    collectgarbage("collect")
    collectgarbage("collect")
    local after = collectgarbage("count")
    assert.is_true(after < before * 1.10 + 64, string.format("heap %.0f KiB before, %.0f KiB after", before, after))
    pogo.exit(sink, "kill")
  end)
end)

describe("what ended processes leave", function()
  local N, AGE_MS = 20000, 1000 -- mem.c: ENDED_MIN, ENDED_AGE_MS

  -- a batch of the scheduler has run (and pogo_mem_tidy after it)
  local function one_batch()
    local me = pogo.self()
    pogo.spawn(function() pogo.send(me, "ran") end)
    assert.equal("ran", pogo.receive(5000))
  end

  -- the collections after processes ended, once any pending one has run
  -- (a high of an earlier spec, AGE_MS old, fires at the first quiet batch)
  local function settled()
    pogo.sleep(AGE_MS + 100)
    one_batch()
    return pogo.memory().collections
  end

  -- n processes waiting in receive, all of them started
  local function idle_processes(n)
    local pids = {}
    for i = 1, n do pids[i] = pogo.spawn(pogo.receive) end
    one_batch() -- (FIFO: it runs after all of them)
    return pids
  end

  local function end_all(pids)
    for i = 1, #pids do pogo.send(pids[i], "bye") end
    one_batch()
  end

  it("is collected once three quarters of 20,000 processes that lived a second have ended", function()
    local c0 = settled()
    local pids = idle_processes(N)
    collectgarbage() -- they live through collections: old, in the generational mode
    collectgarbage()
    pogo.sleep(AGE_MS + 100)
    one_batch()
    assert.equal(c0, pogo.memory().collections) -- all alive: nothing yet
    local with = collectgarbage("count")
    end_all(pids)
    pids = nil -- luacheck: ignore 311
    local deadline = pogo.now() + 5000
    while pogo.memory().collections == c0 and pogo.now() < deadline do
      pogo.sleep(10)
      one_batch()
    end
    assert.equal(c0 + 1, pogo.memory().collections)
    -- about 1.2 KiB each went with them
    local after = collectgarbage("count")
    assert.is_true(after < with - N * 0.75, ("heap %.0f KiB with them, %.0f after"):format(with, after))
  end)

  it("is left to the collector's pace after a burst that came and went at once", function()
    local c0 = settled()
    -- queued from here, all before the first runs; they end within a batch or
    -- two (N, past ENDED_MIN: spawned within AGE_MS under valgrind too)
    local body = function() end
    for _ = 1, N do pogo.spawn(body) end
    one_batch()
    one_batch()
    assert.equal(c0, pogo.memory().collections)
  end)

  it("is not collected while the host has stopped the collector", function()
    local c0 = settled()
    local pids = idle_processes(N)
    collectgarbage("stop")
    local ok, err = pcall(function()
      pogo.sleep(AGE_MS + 100)
      end_all(pids)
      pogo.sleep(20)
      one_batch()
      assert.equal(c0, pogo.memory().collections)
    end)
    collectgarbage("restart")
    assert(ok, err)
  end)
end)

describe("luv callbacks", function()
  it("that raise are logged, and the node goes on (luv alone would end the OS process)", function()
    local uv = require "luv"
    local t = uv.new_timer()
    t:start(1, 0, function()
      t:close()
      error("a callback that fails")
    end)
    local t2 = uv.new_timer()
    local fired = false
    t2:start(20, 0, function()
      t2:close()
      fired = true
    end)
    pogo.sleep(50)
    assert.is_true(fired)
  end)
end)

