-- Specs for pogo.os_process: OS processes as children.
local pogo = require "pogo"
local uv = require "luv"
local os_process = require "pogo.os_process"
local supervisor = require "pogo.supervisor"
local cluster = require "support.cluster"

-- Whether OS process `ospid` runs (a zombie or a missing pid does not).
local function running(ospid)
  local f = io.open("/proc/" .. ospid .. "/stat")
  if not f then return false end
  local stat = f:read("a")
  f:close()
  return stat:match("%) (%a)") ~= "Z"
end

local function await_gone(ospid, what)
  cluster.wait_until(function() return not running(ospid) end, 5000, what or ("OS process " .. ospid .. " to end"))
end

-- The exit reason of `pid`; `ref`, if given, is a monitor set up before.
local function down_reason(pid, ref)
  ref = ref or pogo.monitor(pid)
  local m = pogo.receive(function(msg) return msg[1] == "DOWN" and msg[2] == ref end, 5000)
  assert.is_not_nil(m, "no DOWN within the time")
  return m[4]
end

-- Start a program under a holder process (its parent, not the spec's main
-- chunk). The holder returns on "stop", exits with R on {"exit", R}, and
-- tells us the program's process exit reason as {"child_exit", reason}.
local function start(opts)
  local me = pogo.self()
  local holder = pogo.spawn(function()
    pogo.trap_exit(true)
    local pid, err = os_process.start_link(opts)
    pogo.send(me, { "started", pid, err })
    while true do
      local m = pogo.receive()
      if m == "stop" then return end
      if m[1] == "exit" then pogo.exit(m[2]) end
      if m[1] == "EXIT" and m[2] == pid then pogo.send(me, { "child_exit", m[3] }) end
    end
  end)
  local m = pogo.receive(function(msg) return msg[1] == "started" end, 5000)
  return m[2], holder
end

-- The exit reason of the program's process, from its holder.
local function child_exit()
  local m = pogo.receive(function(msg) return msg[1] == "child_exit" end, 5000)
  assert.is_not_nil(m, "the program did not exit in time")
  return m[2]
end

before_each(function()
  while pogo.receive(0) ~= nil do end
end)

describe("pogo.os_process", function()
  it("exits normal when the program exits with status 0", function()
    local pid, holder = start({ cmd = "sh", args = { "-c", "exit 0" } })
    assert.is_true(pogo.is_pid(pid))
    assert.equal("normal", child_exit())
    pogo.send(holder, "stop")
  end)

  it("crashes with the exit status or the signal of the program", function()
    local _, holder = start({ cmd = "sh", args = { "-c", "exit 3" } })
    assert.same({ exit_status = 3, cmd = "sh" }, child_exit())
    pogo.send(holder, "stop")
    _, holder = start({ cmd = "sh", args = { "-c", "kill -9 $$" } })
    assert.equal(9, child_exit().signal)
    pogo.send(holder, "stop")
  end)

  it("passes args, env (added to the node's) and cwd", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(uv.fs_mkdir(dir, 448))
    local script = 'printf "%s %s %s" "$1" "$POGO_T" "$PWD" > out; test -n "$PATH"'
    local pid = start({ cmd = "sh", args = { "-c", script, "sh", "a b" }, env = { POGO_T = "yes" }, cwd = dir })
    assert.is_true(pogo.is_pid(pid))
    assert.equal("normal", child_exit())
    local f = assert(io.open(dir .. "/out"))
    local out = f:read("a")
    f:close()
    os.remove(dir .. "/out")
    uv.fs_rmdir(dir)
    assert.equal("a b yes " .. dir, out)
  end)

  it("refuses bad options and programs that cannot run", function()
    assert.same({ nil, "pogo.os_process: cmd must be a non-empty string" }, { os_process.start_link({}) })
    assert.matches("args%[2%] must be a string", select(2, os_process.start_link({ cmd = "x", args = { "a", {} } })))
    assert.matches("stdio must be", select(2, os_process.start_link({ cmd = "x", stdio = "pipe" })))
    assert.matches("kill_timeout_ms", select(2, os_process.start_link({ cmd = "x", kill_timeout_ms = -1 })))
    assert.matches("kill_signal must be", select(2, os_process.start_link({ cmd = "x", kill_signal = "sigfoo" })))
    local pid, err = os_process.start_link({ cmd = "/nonexistent/pogo-program" })
    assert.is_nil(pid)
    assert.matches("cannot run /nonexistent/pogo%-program: ENOENT", err)
    -- a failed start never kills the caller
    assert.is_true(pogo.alive(pogo.self()))
  end)

  it("reports its OS pid and forwards signals", function()
    local pid, holder = start({ cmd = "sleep", args = { "30" } })
    local ospid = os_process.os_pid(pid)
    assert.is_true(math.type(ospid) == "integer" and running(ospid))
    assert.same({ nil, "unknown signal no-such-signal" }, { os_process.signal(pid, "no-such-signal") })
    assert.is_true(running(ospid))
    local ref = pogo.monitor(pid)
    assert.is_true(os_process.signal(pid, "USR1"))
    assert.same({ exit_status = 0, signal = 10, cmd = "sleep" }, down_reason(pid, ref))
    await_gone(ospid)
    pogo.send(holder, "stop")
  end)

  it("stops the program with kill_signal when its parent exits, SIGKILL after kill_timeout_ms", function()
    local pid, holder = start({ cmd = "sleep", args = { "30" } })
    local ospid = os_process.os_pid(pid)
    local ref = pogo.monitor(pid)
    pogo.send(holder, { "exit", "shutdown" })
    assert.equal("shutdown", down_reason(pid, ref))
    await_gone(ospid)
    -- a parent that returns: the program is stopped too
    pid, holder = start({ cmd = "sleep", args = { "30" } })
    ospid = os_process.os_pid(pid)
    ref = pogo.monitor(pid)
    pogo.send(holder, "stop")
    assert.equal("normal", down_reason(pid, ref))
    await_gone(ospid)
    -- a program that ignores SIGTERM (the ignore survives exec)
    pid, holder = start({ cmd = "sh", args = { "-c", 'trap "" TERM; exec sleep 30' }, kill_timeout_ms = 100 })
    ospid = os_process.os_pid(pid)
    cluster.wait_until(function() -- sh has set the trap once it has exec'd sleep
      local f = io.open("/proc/" .. ospid .. "/comm")
      local comm = f and f:read("l")
      if f then f:close() end
      return comm == "sleep"
    end, 5000, "the program to ignore SIGTERM")
    local t0 = uv.hrtime()
    ref = pogo.monitor(pid)
    pogo.send(holder, { "exit", "shutdown" })
    assert.equal("shutdown", down_reason(pid, ref))
    assert.is_true((uv.hrtime() - t0) / 1e6 >= 100, "waited kill_timeout_ms before SIGKILL")
    await_gone(ospid)
  end)

  it("SIGKILLs the program when its process is killed outright", function()
    local pid, holder = start({ cmd = "sleep", args = { "30" } })
    local ospid = os_process.os_pid(pid)
    local ref = pogo.monitor(pid)
    pogo.exit(pid, "kill")
    assert.equal("killed", down_reason(pid, ref))
    await_gone(ospid)
    pogo.send(holder, "stop")
  end)

  it("is restarted by a supervisor with a new OS pid, and stopped by terminate_child", function()
    local sup = assert(supervisor.start_link({
      { "pogo.os_process", { id = "sleeper", cmd = "sleep", args = { "30" }, kill_timeout_ms = 1000 } },
    }, { intensity = 5, period_ms = 5000 }))
    local pid = supervisor.which_children(sup)[1][2]
    local ospid = os_process.os_pid(pid)
    assert.is_true(running(ospid))
    os.execute("kill -9 " .. ospid)
    await_gone(ospid)
    local new_pid
    cluster.wait_until(function()
      new_pid = supervisor.which_children(sup)[1][2]
      return pogo.is_pid(new_pid) and new_pid ~= pid
    end, 5000, "the restart")
    local new_os = os_process.os_pid(new_pid)
    assert.are_not.equal(ospid, new_os)
    assert.is_true(running(new_os))
    assert.is_true(supervisor.terminate_child(sup, "sleeper"))
    await_gone(new_os)
    pogo.unlink(sup)
    pogo.exit(sup, "shutdown")
  end)

  it("a child spec needs valid options", function()
    local child_spec = require "pogo.child_spec"
    local spec, err = child_spec.normalize({ "pogo.os_process", { id = "x" } })
    assert.is_nil(spec)
    assert.matches("invalid child spec: .*cmd must be a non%-empty string", err)
    spec = assert(child_spec.normalize({ "pogo.os_process", { cmd = "sleep", kill_timeout_ms = 200 } }))
    assert.equal("sleep", spec.id)
    assert.equal(1200, spec.shutdown)
  end)
end)

describe("pogo.os_process on a node that stops", function()
  it("sends kill_signal to the programs still running", function()
    local c = cluster.new({ timeout_ms = 1000, heartbeat_ms = 200 })
    finally(function() c:teardown() end)
    c:start_self()
    local node = c:start_node({ script = "spec/support/script_node.lua" })
    c:connect(node)
    local ospid = c:call(node, "support.os_process_remote", "start_sleeper")
    assert.is_true(running(ospid))
    c:stop(node)
    await_gone(ospid)
  end)
end)
