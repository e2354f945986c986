-- Specs for the supervisor reports (lua/pogo/supervisor_report.lua) of both
-- supervisors, as a pogo.log handler receives them: a crash report with the
-- child id, the reason and the traceback, a restart report, a start error,
-- the report of a supervisor that gives up (or, distributed, backs off).
local pogo = require "pogo"
local supervisor = require "pogo.supervisor"
local dsup = require "pogo.dynamic_supervisor"
local report = require "pogo.supervisor_report"

local lines

local function capture()
  lines = {}
  pogo.log.set_handler(function(level, msg, meta) lines[#lines + 1] = { level = level, msg = msg, meta = meta } end)
end

-- Wait (up to 2 s) for the n-th report of kind `kind`; returns it.
local function await_report(kind, n)
  local deadline = pogo.now() + 2000
  while true do
    local k = 0
    for _, l in ipairs(lines) do
      if l.meta.report == kind then
        k = k + 1
        if k == (n or 1) then return l end
      end
    end
    if pogo.now() > deadline then error("no " .. kind .. " report", 2) end
    pogo.sleep(5)
  end
end

local function count(kind)
  local n = 0
  for _, l in ipairs(lines) do
    if l.meta.report == kind then n = n + 1 end
  end
  return n
end

local function worker(id, extra)
  local s = { id = id, start = { "support.worker", "start_link", false, {} } }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

local function child_pid(sup, id)
  for _, c in ipairs(supervisor.which_children(sup)) do
    if pogo.core.encode(c.id) == pogo.core.encode(id) then return c.pid end
  end
end

describe("supervisor reports", function()
  before_each(capture)
  after_each(function() pogo.log.set_handler(nil) end)

  describe("of pogo.supervisor", function()
    it("report a crash with the child id, pid, reason and traceback, then its restart", function()
      local sup = assert(supervisor.start_link({ worker({ "job", 7 }) }, { name = "reports_a" }))
      local pid = child_pid(sup, { "job", 7 })
      pogo.send(pid, "crash")
      local crash = await_report("crash")
      assert.equal("error", crash.level)
      assert.are.same({ "pogo.supervisor", "reports_a", '{"job", 7}', pid },
        { crash.meta.module, crash.meta.supervisor, crash.meta.id, crash.meta.pid })
      assert.matches("worker.lua:%d+: crashed on purpose$", crash.meta.reason)
      assert.matches("^stack traceback:\n", crash.meta.traceback)
      assert.matches("support/worker.lua", crash.meta.traceback, 1, true)
      assert.equal('child {"job", 7} (' .. tostring(pid) .. ") of supervisor reports_a crashed: " .. crash.meta.reason,
        crash.msg)
      local restart = await_report("restart")
      assert.equal("info", restart.level)
      assert.are.same({ "reports_a", '{"job", 7}', child_pid(sup, { "job", 7 }) },
        { restart.meta.supervisor, restart.meta.id, restart.meta.pid })
      assert.is_true(restart.meta.pid ~= pid)
      -- the default handler writes the crash as one line, the traceback as \n
      local line = pogo.log.format(crash.level, crash.msg, crash.meta)
      assert.is_nil(line:find("\n", 1, true))
      assert.matches(' traceback="stack traceback:\\n', line, 1, true)
      pogo.exit(sup, "shutdown")
    end)

    it("report nothing for a normal exit or a shutdown, but the restart of a permanent child", function()
      local sup = assert(supervisor.start_link({ worker("calm") }))
      pogo.send(child_pid(sup, "calm"), "stop")
      await_report("restart")
      assert.equal(0, count("crash"))
      pogo.exit(sup, "shutdown")
    end)

    it("report giving up when the restart intensity is exceeded", function()
      pogo.trap_exit(true)
      finally(function() pogo.trap_exit(false) end)
      local sup = assert(supervisor.start_link({ worker("flaky") }, { name = "reports_b", intensity = 1 }))
      pogo.send(child_pid(sup, "flaky"), "crash")
      await_report("restart")
      pogo.send(child_pid(sup, "flaky"), "crash")
      local gave_up = await_report("give_up")
      assert.equal("error", gave_up.level)
      assert.are.same({ "reports_b", "flaky", sup, "reached_max_restart_intensity", 1, 5000 },
        { gave_up.meta.supervisor, gave_up.meta.id, gave_up.meta.pid, gave_up.meta.reason,
          gave_up.meta.restarts, gave_up.meta.period_ms })
      assert.matches("^supervisor reports_b gave up: child flaky exceeded 1 restarts in 5000 ms", gave_up.msg)
      assert.equal(2, count("crash"))
      local m = pogo.receive(function(x) return type(x) == "table" and x[1] == "EXIT" and x[2] == sup end, 2000)
      assert.equal("shutdown", m[3])
    end)

    it("report a child that cannot be started again", function()
      local failures = 0 -- the starts that fail from now on
      package.loaded["spec.flaky_start"] = {
        start_link = function()
          if failures > 0 then
            failures = failures - 1
            return nil, "not today"
          end
          return require("support.worker").start_link()
        end,
      }
      finally(function() package.loaded["spec.flaky_start"] = nil end)
      local sup = assert(supervisor.start_link({ { id = "fs", start = { "spec.flaky_start", "start_link" } } },
        { name = "reports_c", intensity = 10 }))
      failures = 1
      pogo.send(child_pid(sup, "fs"), "crash")
      local err = await_report("start_error")
      assert.are.same({ "error", "reports_c", "fs", "not today" },
        { err.level, err.meta.supervisor, err.meta.id, err.meta.reason })
      await_report("restart") -- the next try starts it
      pogo.exit(sup, "shutdown")
    end)

    it("report a child that does not stop as asked: killed after its shutdown time, or another reason", function()
      local sup = assert(supervisor.start_link({
        worker("calm_s"),
        worker("stubborn_s", { shutdown = 100, start = { "support.worker", "start_link", false,
                                                         { trap = true, ignore_shutdown = true } } }),
        worker("odd_s", { start = { "support.worker", "start_link", false,
                                    { trap = true, exit_with = "odd" } } }),
        -- a transient child that ends "normal" when asked: as asked (OTP)
        worker("normal_s", { restart = "transient",
                             start = { "support.worker", "start_link", false,
                                       { trap = true, exit_with = "normal" } } }),
      }, { name = "reports_e" }))
      local stubborn, odd = child_pid(sup, "stubborn_s"), child_pid(sup, "odd_s")
      assert.is_true(supervisor.terminate_child(sup, "stubborn_s"))
      local killed = await_report("shutdown_error")
      assert.are.same({ "error", "reports_e", "stubborn_s", stubborn, "killed", 100 },
        { killed.level, killed.meta.supervisor, killed.meta.id, killed.meta.pid, killed.meta.reason,
          killed.meta.shutdown_ms })
      assert.equal("supervisor reports_e: child stubborn_s (" .. tostring(stubborn)
        .. ") did not stop within its shutdown of 100 ms: killed", killed.msg)
      pogo.trap_exit(true)
      finally(function() pogo.trap_exit(false) end)
      pogo.exit(sup, "shutdown") -- its children stop in reverse order: normal_s, odd_s, calm_s
      pogo.receive(function(x) return type(x) == "table" and x[1] == "EXIT" and x[2] == sup end, 2000)
      local failed = await_report("shutdown_error", 2)
      assert.are.same({ "odd_s", odd, "odd" }, { failed.meta.id, failed.meta.pid, failed.meta.reason })
      assert.equal("supervisor reports_e: child odd_s (" .. tostring(odd) .. ") failed to shut down: odd", failed.msg)
      assert.equal(2, count("shutdown_error"))
    end)
  end)

  describe("of pogo.dynamic_supervisor", function()
    it("report a child that does not stop as asked", function()
      local sup = assert(dsup.start_link { name = "reports_f" })
      local function started(id)
        local deadline, pid = pogo.now() + 2000
        repeat
          pid = dsup.whereis("reports_f", id)
          if not pid then pogo.sleep(5) end
        until pid or pogo.now() > deadline
        return assert(pid, "no child " .. id)
      end
      assert.is_true(dsup.start_child("reports_f", worker("stubborn_d", { shutdown = 100,
        start = { "support.worker", "start_link", false, { trap = true, ignore_shutdown = true } } })))
      assert.is_true(dsup.start_child("reports_f", worker("odd_d",
        { start = { "support.worker", "start_link", false, { trap = true, exit_with = { "odd", 1 } } } })))
      assert.is_true(dsup.start_child("reports_f", worker("calm_d")))
      local stubborn, odd = started("stubborn_d"), started("odd_d")
      started("calm_d")
      assert.is_true(dsup.terminate_child("reports_f", "calm_d"))
      assert.is_true(dsup.terminate_child("reports_f", "odd_d"))
      local failed = await_report("shutdown_error")
      assert.are.same({ "error", "reports_f", "odd_d", odd, '{"odd", 1}' },
        { failed.level, failed.meta.supervisor, failed.meta.id, failed.meta.pid, failed.meta.reason })
      assert.is_true(dsup.terminate_child("reports_f", "stubborn_d"))
      local killed = await_report("shutdown_error", 2)
      assert.are.same({ "stubborn_d", stubborn, "killed", 100 },
        { killed.meta.id, killed.meta.pid, killed.meta.reason, killed.meta.shutdown_ms })
      assert.equal(2, count("shutdown_error"))
      pogo.exit(sup, "shutdown")
    end)


    it("report a crash with the child id, pid, reason and traceback, a restart, and the backoff", function()
      local sup = assert(dsup.start_link { name = "reports_d", intensity = 1, min_backoff_ms = 10,
        max_backoff_ms = 20 })
      assert.is_true(dsup.start_child("reports_d", worker({ "dj", 1 })))
      local deadline = pogo.now() + 2000
      local pid
      repeat
        pid = dsup.whereis("reports_d", { "dj", 1 })
        if not pid then pogo.sleep(5) end
      until pid or pogo.now() > deadline
      pogo.send(pid, "crash")
      local crash = await_report("crash")
      assert.are.same({ "error", "pogo.dynamic_supervisor", "reports_d", '{"dj", 1}', pid },
        { crash.level, crash.meta.module, crash.meta.supervisor, crash.meta.id, crash.meta.pid })
      assert.matches("crashed on purpose$", crash.meta.reason)
      assert.matches("^stack traceback:\n", crash.meta.traceback)
      local restart = await_report("restart")
      assert.equal('{"dj", 1}', restart.meta.id)
      pogo.send(restart.meta.pid, "crash")
      local backoff = await_report("backoff")
      assert.are.same({ "error", "reports_d", '{"dj", 1}', 1, 5000 },
        { backoff.level, backoff.meta.supervisor, backoff.meta.id, backoff.meta.restarts, backoff.meta.period_ms })
      assert.is_number(backoff.meta.backoff_ms)
      await_report("restart", 2) -- it comes back after the backoff
      pogo.exit(sup, "shutdown")
    end)
  end)

  it("describe ids and reasons as text", function()
    assert.equal('{"a", 1, k = {"x"}}', report.describe({ "a", 1, k = { "x" } }))
    assert.are.same({ "boom", "tb" }, { report.reason({ error = "boom", traceback = "tb" }) })
    assert.equal("{cmd = \"sleep\", exit_status = 1}", (report.reason({ cmd = "sleep", exit_status = 1 })))
    assert.is_true(report.is_normal({ "shutdown", "x" }))
    assert.is_false(report.is_normal("killed"))
  end)
end)
