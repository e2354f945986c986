-- Monitors, links and exit signals across nodes; nodeup/nodedown.
local pogo = require "pogo"
local uv = require "luv"
local cluster = require "support.cluster"

local R = "support.remote"

local function down_for(ref)
  return function(m) return type(m) == "table" and m[1] == "DOWN" and m[2] == ref end
end

local function exit_from(pid)
  return function(m) return type(m) == "table" and m[1] == "EXIT" and m[2] == pid end
end

-- Bytes waiting in the receive queues of process pid's TCP sockets: its
-- socket inodes (/proc/PID/fd), their rx_queue in /proc/net/tcp.
local function unread_by(pid)
  local inodes = {}
  local dir = uv.fs_scandir("/proc/" .. pid .. "/fd")
  while dir do
    local name = uv.fs_scandir_next(dir)
    if not name then break end
    local target = uv.fs_readlink("/proc/" .. pid .. "/fd/" .. name)
    local inode = target and target:match("^socket:%[(%d+)%]$")
    if inode then inodes[inode] = true end
  end
  local n = 0
  for line in io.lines("/proc/net/tcp") do
    local rx, inode = line:match("^%s*%d+:%s+%S+%s+%S+%s+%x+%s+%x+:(%x+)%s+%S+%s+%S+%s+%d+%s+%d+%s+(%d+)")
    if rx and inodes[inode] then n = n + tonumber(rx, 16) end
  end
  return n
end

describe("remote monitors and links", function()
  local c, a

  setup(function()
    c = cluster.new { timeout_ms = 2000, heartbeat_ms = 200 }
    c:start_self { log = false }
    a = c:start_node { name = "la" }
    c:connect(a)
  end)

  teardown(function()
    c:teardown()
    pogo.stop()
  end)

  it("fires DOWN with the remote exit reason", function()
    local e = c:call(a, R, "echo")
    local ref = pogo.monitor(e)
    pogo.send(e, "stop")
    assert.are.same({ "DOWN", ref, e, "normal" }, cluster.expect(down_for(ref), 2000))

    e = c:call(a, R, "echo")
    ref = pogo.monitor(e)
    pogo.send(e, { "exit", "bye" })
    assert.are.same({ "DOWN", ref, e, "bye" }, cluster.expect(down_for(ref), 2000))

    e = c:call(a, R, "echo")
    ref = pogo.monitor(e)
    pogo.send(e, { "crash", "boom" })
    local reason = cluster.expect(down_for(ref), 2000)[4]
    assert.matches("boom", reason.error)
    assert.matches("boom", tostring(reason)) -- a crash reason again, with its traceback
    assert.matches("traceback", tostring(reason))

    -- a pid that is already dead: noproc
    ref = pogo.monitor(e)
    assert.are.same({ "DOWN", ref, e, "noproc" }, cluster.expect(down_for(ref), 2000))
  end)

  it("alive asks the node of a remote pid", function()
    local e = c:call(a, R, "echo")
    assert.is_true(pogo.alive(e))
    local ref = pogo.monitor(e)
    pogo.send(e, "stop")
    cluster.expect(down_for(ref), 2000)
    assert.is_false(pogo.alive(e))
    assert.has_error(function() pogo.alive("not a pid") end)
  end)

  it("demonitors a remote process", function()
    local e = c:call(a, R, "echo")
    local ref = pogo.monitor(e)
    assert.is_true(pogo.demonitor(ref))
    pogo.send(e, "stop")
    local ref2 = pogo.monitor(e) -- ordered after the stop: noproc
    cluster.expect(down_for(ref2), 2000)
    assert.is_nil(pogo.receive(down_for(ref), 50))
  end)

  it("monitors {name, node}", function()
    c:call(a, R, "echo", { "watched" })
    local ref = pogo.monitor({ "watched", a.name })
    pogo.send({ "watched", a.name }, "stop")
    assert.are.same({ "DOWN", ref, { "watched", a.name }, "normal" }, cluster.expect(down_for(ref), 2000))
    ref = pogo.monitor({ "nobody", a.name })
    assert.are.same({ "DOWN", ref, { "nobody", a.name }, "noproc" }, cluster.expect(down_for(ref), 2000))
    -- demonitor by name
    c:call(a, R, "echo", { "watched2" })
    ref = pogo.monitor({ "watched2", a.name })
    pogo.demonitor(ref)
    pogo.send({ "watched2", a.name }, "stop")
    assert.is_nil(pogo.receive(down_for(ref), 100))
  end)

  it("lets a remote process monitor a local one", function()
    local p = pogo.spawn(function() pogo.receive() pogo.exit("bye") end)
    c:call(a, R, "monitorer", { p, pogo.self() })
    local ref = cluster.expect(function(m) return m[1] == "monitoring" end)[2]
    pogo.send(p, "go")
    local m = cluster.expect(function(msg) return msg[1] == "monitorer" end, 2000)
    assert.are.same({ "DOWN", ref, p, "bye" }, m[2])
  end)

  it("propagates exits over links both ways", function()
    -- remote exit -> local (the main chunk traps exits)
    local e = c:call(a, R, "echo")
    pogo.link(e)
    pogo.send(e, { "exit", "bye" })
    assert.are.same({ "EXIT", e, "bye" }, cluster.expect(exit_from(e), 2000))

    -- a local process that does not trap dies with the remote reason
    e = c:call(a, R, "echo")
    local p = pogo.spawn(function() pogo.link(e) pogo.receive() end)
    local pref = pogo.monitor(p)
    pogo.sleep(20)
    pogo.send(e, { "exit", "shutdown" })
    assert.are.equal("shutdown", cluster.expect(down_for(pref), 2000)[4])

    -- local exit -> remote trapping process
    local q = pogo.spawn(function() pogo.receive() pogo.exit("gone") end)
    c:call(a, R, "linker", { q, pogo.self() })
    pogo.sleep(50)
    pogo.send(q, "go")
    local m = cluster.expect(function(msg) return msg[1] == "linker" end, 2000)
    assert.are.same({ "EXIT", q, "gone" }, m[2])

    -- link to a dead remote pid: noproc
    pogo.link(e)
    assert.are.same({ "EXIT", e, "noproc" }, cluster.expect(exit_from(e), 2000))

    -- unlink: no exit signal
    e = c:call(a, R, "echo")
    pogo.link(e)
    pogo.unlink(e)
    pogo.send(e, { "exit", "bye" })
    assert.is_nil(pogo.receive(exit_from(e), 100))
  end)

  it("sends exit signals to remote processes", function()
    local e = c:call(a, R, "echo")
    local ref = pogo.monitor(e)
    pogo.exit(e, "normal") -- ignored: it does not trap exits
    pogo.exit(e, "kill")
    assert.are.same({ "DOWN", ref, e, "killed" }, cluster.expect(down_for(ref), 2000))
    e = c:call(a, R, "echo")
    ref = pogo.monitor(e)
    pogo.exit(e, { why = "custom" })
    assert.are.same({ "DOWN", ref, e, { why = "custom" } }, cluster.expect(down_for(ref), 2000))
  end)

  it("fires noconnection within 100 ms of SIGKILL of the peer", function()
    local k = c:start_node { name = "victim" }
    c:connect(k)
    local e1, e2, e3 = c:call(k, R, "echo"), c:call(k, R, "echo"), c:call(k, R, "echo", { "named" })
    local r1 = pogo.monitor(e1)
    local rn = pogo.monitor({ "named", k.name })
    pogo.link(e2)
    local p = pogo.spawn(function() pogo.link(e3) pogo.receive() end)
    local rp = pogo.monitor(p)
    pogo.monitor_nodes(true)
    pogo.sleep(50) -- the links and monitors have reached the peer
    local t0 = uv.hrtime()
    uv.kill(k.pid, "sigkill")
    local got = {}
    local function ms() return (uv.hrtime() - t0) / 1e6 end
    for _ = 1, 5 do
      local m = cluster.expect(function(msg)
        return msg[1] == "DOWN" or msg[1] == "EXIT" or msg[1] == "nodedown"
      end, 1000, "noconnection signals")
      got[#got + 1] = { m, ms() }
    end
    local seen = {}
    for _, g in ipairs(got) do
      local m, t = g[1], g[2]
      assert.is_true(t < 100, m[1] .. " after " .. t .. " ms")
      if m[1] == "DOWN" and m[2] == r1 then
        assert.are.same({ "DOWN", r1, e1, "noconnection" }, m)
        seen.monitor = true
      elseif m[1] == "DOWN" and m[2] == rn then
        assert.are.same({ "DOWN", rn, { "named", k.name }, "noconnection" }, m)
        seen.named = true
      elseif m[1] == "EXIT" then
        assert.are.same({ "EXIT", e2, "noconnection" }, m)
        seen.link = true
      elseif m[1] == "DOWN" and m[2] == rp then
        assert.are.equal("noconnection", m[4]) -- the linked process died of it
        seen.linked_proc = true
      elseif m[1] == "nodedown" then
        assert.are.same({ "nodedown", k.name, "connection_closed" }, m)
        seen.nodedown = true
      end
    end
    assert.are.same({ monitor = true, named = true, link = true, linked_proc = true, nodedown = true }, seen)
    pogo.monitor_nodes(false)
    c:wait_exit(k)
  end)

  it("says connection_closed for a peer killed with bytes unread (a reset, not a close)", function()
    local k = c:start_node { name = "stuck" }
    c:connect(k)
    local e = c:call(k, R, "echo")
    pogo.monitor_nodes(true)
    local sign = os.tmpname()
    os.remove(sign)
    pogo.spawn(function() pcall(c.call, c, k, R, "stall", { sign, 10000 }, 15000) end)
    cluster.wait_until(function()
      local f = io.open(sign)
      if f then f:close() end
      return f ~= nil
    end, 5000, "the node to block")
    os.remove(sign)
    -- its loop is blocked: these stay unread in its socket, so the kill resets the connection
    local chunk = string.rep("x", 64 * 1024)
    for _ = 1, 4 do pogo.send(e, chunk) end
    cluster.wait_until(function() return unread_by(k.pid) > 0 end, 5000, "bytes unread by the blocked node")
    uv.kill(k.pid, "sigkill")
    local m = cluster.expect(function(x) return x[1] == "nodedown" and x[2] == k.name end, 5000, "the nodedown")
    assert.are.same({ "nodedown", k.name, "connection_closed" }, m)
    pogo.monitor_nodes(false)
    c:wait_exit(k)
  end)

  it("tells monitor_nodes subscribers about nodeup and a clean nodedown", function()
    pogo.monitor_nodes(true)
    local g = c:start_node { name = "graceful" }
    c:connect(g)
    assert.are.same({ "nodeup", g.name },
                    cluster.expect(function(m) return m[1] == "nodeup" and m[2] == g.name end, 2000))
    -- a monitor on a remote process gets "noconnection" when its node stops
    local e = c:call(g, R, "echo")
    local ref = pogo.monitor(e)
    local exit = c:stop(g)
    assert.are.same({ code = 0, signal = 0 }, exit)
    assert.are.same({ "nodedown", g.name, "shutdown" },
                    cluster.expect(function(m) return m[1] == "nodedown" and m[2] == g.name end, 2000))
    assert.are.same({ "DOWN", ref, e, "noconnection" }, cluster.expect(down_for(ref), 2000))
    pogo.monitor_nodes(false)
    -- a monitor or link on a node that is not connected fires at once
    ref = pogo.monitor(e)
    assert.are.same({ "DOWN", ref, e, "noconnection" }, cluster.expect(down_for(ref), 100))
    pogo.link(e)
    assert.are.same({ "EXIT", e, "noconnection" }, cluster.expect(exit_from(e), 100))
  end)
end)
