-- pogo.profile (csrc/profile.c): where a node's processes spend their time,
-- by line.
local pogo = require "pogo"
local profile = require "pogo.profile"

local SRC = debug.getinfo(1, "S").short_src

-- The line of this file that holds `marker` (a comment at its end).
local function line_of(marker)
  local n = 0
  for l in io.lines(SRC) do
    n = n + 1
    if l:find(marker, 1, true) and not l:find("line_of", 1, true) then return SRC .. ":" .. n end
  end
  error("no line " .. marker)
end

local function find(report, where)
  for _, l in ipairs(report.lines) do
    if l.where == where then return l end
  end
  return nil
end

-- Run f in a process and wait for it to return.
local function run_in_process(f)
  local me = pogo.self()
  pogo.spawn(function()
    f()
    pogo.send(me, "ran")
  end)
  assert.equal("ran", pogo.receive(10000))
end

local function busy_lua(n)
  local x = 0
  for i = 1, n do x = x + i % 7 end -- @busy_lua
  return x
end

describe("pogo.profile", function()
  after_each(function() profile.stop() end)

  it("gives each line of a process the time it ran, the longest first", function()
    assert.is_true(profile.start())
    run_in_process(function() busy_lua(300000) end)
    local r = assert(profile.stop())
    local top = r.lines[1]
    assert.equal(line_of("@busy_lua"), top.where)
    assert.equal("busy_lua", top.fn)
    assert.is_true(top.ms > 0)
    for i = 2, #r.lines do assert.is_true(r.lines[i - 1].ms >= r.lines[i].ms) end
    assert.is_true(r.slices_ms >= top.ms)
    assert.is_true(r.wall_ms >= r.slices_ms)
  end)

  it("charges a C function's time to the line that called it", function()
    local big = {}
    for i = 1, 50000 do big[i] = (i * 7919) % 50021 end
    assert.is_true(profile.start())
    run_in_process(function()
      local x = 0
      for _ = 1, 10 do
        local t = table.move(big, 1, #big, 1, {})
        table.sort(t) -- @sorts
        for i = 1, 50 do x = x + i end -- @cheap
      end
    end)
    local r = assert(profile.stop())
    local sorts, cheap = find(r, line_of("@sorts")), find(r, line_of("@cheap"))
    assert.is_truthy(sorts)
    assert.is_truthy(cheap)
    assert.is_true(sorts.ms > 20 * cheap.ms,
      string.format("sort %.2f ms, the loop after it %.2f ms", sorts.ms, cheap.ms))
  end)

  it("counts the short slices of a server answering messages", function()
    local srv = pogo.spawn(function()
      while true do
        local from = pogo.receive()
        if from == "stop" then return end
        pogo.send(from, "pong") -- @answers
      end
    end)
    assert.is_true(profile.start())
    run_in_process(function()
      local me = pogo.self()
      for _ = 1, 2000 do
        pogo.send(srv, me)
        assert.equal("pong", pogo.receive(1000))
      end
    end)
    pogo.send(srv, "stop")
    local r = assert(profile.stop())
    local answers = find(r, line_of("@answers"))
    assert.is_truthy(answers)
    assert.is_true(answers.ms > 0)
  end)

  it("runs one profile at a time, and stop tells when none runs", function()
    local none, why = profile.stop()
    assert.is_nil(none)
    assert.equal("no profile runs on this node", why)
    assert.is_true(profile.start())
    local again, err = profile.start()
    assert.is_nil(again)
    assert.equal("a profile runs already on this node", err)
    assert.is_table(profile.stop())
  end)

  it("leaves no hook behind once stopped", function()
    local me = pogo.self()
    local p = pogo.spawn(function()
      while true do
        local m = pogo.receive()
        if m == "stop" then return end
        local x = 0
        for i = 1, 100 do x = x + i end -- lines run: a stale hook would fire here, and go
        pogo.send(me, { "hook", debug.gethook() ~= nil })
      end
    end)
    assert.is_true(profile.start())
    pogo.send(p, "go")
    assert.same({ "hook", true }, pogo.receive(1000))
    assert.is_table(profile.stop())
    pogo.send(p, "go")
    assert.same({ "hook", false }, pogo.receive(1000))
    pogo.send(p, "stop")
  end)

  it("keeps preemption working: a spinner does not hold up the others", function()
    local spin = pogo.spawn(function()
      local x = 0
      while true do x = x + 1 end
    end)
    assert.is_true(profile.start())
    run_in_process(function()
      for _ = 1, 20 do pogo.sleep(1) end
    end)
    pogo.exit(spin, "kill")
    local r = assert(profile.stop())
    assert.is_true(r.slices_ms > 0)
  end)

  it("profiles for a while with run(ms), as pogo.rpc calls it", function()
    local me = pogo.self()
    local worker = pogo.spawn(function()
      while pogo.receive(0) ~= "stop" do
        busy_lua(20000)
        pogo.sleep(0)
      end
      pogo.send(me, "stopped")
    end)
    local r = assert(profile.run(100))
    pogo.send(worker, "stop")
    assert.equal("stopped", pogo.receive(5000))
    assert.is_true(r.wall_ms >= 100)
    assert.is_truthy(find(r, line_of("@busy_lua")))
    local text = profile.format(r, 5)
    assert.matches("ms of wall time", text, 1, true)
    assert.matches(line_of("@busy_lua"), text, 1, true)
    assert.equal(SRC, profile.by_file(r)[1].file)
  end)

  it("raises on a bad argument, naming it", function()
    assert.has_error(function() profile.run("soon") end, "profile.run: ms must be a number >= 0, got soon")
    assert.has_error(function() profile.run(-1) end, "profile.run: ms must be a number >= 0, got -1")
  end)
end)
