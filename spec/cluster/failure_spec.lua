-- Failures: silent peers, wrong cookies, garbage on the wire, rpc errors.
local pogo = require "pogo"
local uv = require "luv"
local cluster = require "support.cluster"

local R = "support.remote"

local function has(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

-- Open a raw TCP connection to addr, write `bytes` (then shut our side if
-- `shut`), and wait until the node closes it. Returns ms until the close, or
-- nil if it stayed open for `within` ms.
local function raw_exchange(addr, bytes, shut, within)
  local host, port = addr:match("^(.*):(%d+)$")
  local me = pogo.self()
  local tcp = uv.new_tcp()
  local t0 = uv.hrtime()
  tcp:connect(host, tonumber(port), function(err)
    if err then pogo.send(me, { "raw", "connect failed: " .. err }) return end
    tcp:read_start(function(_, data)
      if not data then pogo.send(me, { "raw", "closed" }) end
    end)
    tcp:write(bytes)
    if shut then tcp:shutdown() end
  end)
  local m = pogo.receive(function(msg) return msg[1] == "raw" end, within)
  local elapsed = (uv.hrtime() - t0) / 1e6
  if not tcp:is_closing() then tcp:close() end
  pogo.sleep(5)
  if not m then return nil end
  assert.are.equal("closed", m[2])
  return elapsed
end

describe("failures", function()
  local c, a, b

  setup(function()
    c = cluster.new { timeout_ms = 1000, heartbeat_ms = 200 }
    c:start_self { log = false }
    a, b = c:pair({ name = "fa" }, { name = "fb" })
  end)

  teardown(function()
    c:teardown()
    pogo.stop()
  end)

  it("declares a SIGSTOPped node down within timeout_ms + one heartbeat, and it rejoins", function()
    local p = c:start_node { name = "paused" }
    c:connect(p)
    local e = c:call(p, R, "echo")
    local ref = pogo.monitor(e)
    pogo.monitor_nodes(true)
    pogo.sleep(50)
    local t0 = uv.hrtime()
    assert.is_true(c:pause(p))
    local down = cluster.expect(function(m) return m[1] == "nodedown" and m[2] == p.name end, 3000)
    local ms = (uv.hrtime() - t0) / 1e6
    assert.are.equal("timeout", down[3])
    assert.is_true(ms <= c.timeout_ms + c.heartbeat_ms + 100, "detected after " .. ms .. " ms")
    assert.is_true(ms >= c.timeout_ms - c.heartbeat_ms, "detected after only " .. ms .. " ms")
    assert.are.same({ "DOWN", ref, e, "noconnection" },
                    cluster.expect(function(m) return m[1] == "DOWN" and m[2] == ref end, 100))
    assert.is_true(c:resume(p))
    cluster.expect(function(m) return m[1] == "nodeup" and m[2] == p.name end, 5000, "the node to rejoin")
    pogo.monitor_nodes(false)
    c:kill(p)
  end)

  it("refuses a node with the wrong cookie, logging why on both sides", function()
    pogo.monitor_nodes(true)
    local w = c:start_node { name = "intruder", cookie = "not-the-cookie",
                             seeds = { c.self_name:match("@(.*)$") } }
    local name, err = pogo.connect(w.addr)
    assert.is_nil(name)
    assert.matches("authentication failed", err)
    cluster.wait_until(function()
      return w.err:find("authentication failed", 1, true) and w.err:find("refused", 1, true)
    end, 3000, "the intruder to log the refusals")
    assert.is_false(has(pogo.nodes(), w.name))
    assert.is_nil(pogo.receive(function(m) return m[1] == "nodeup" and m[2] == w.name end, 200))
    -- nobody else lets it in either
    assert.is_false(has(c:call(a, R, "nodes"), w.name))
    pogo.monitor_nodes(false)
    c:kill(w)
  end)

  it("closes a connection that sends garbage, and keeps serving", function()
    pogo.monitor_nodes(true)
    math.randomseed(42)
    local junk = {}
    for i = 1, 2000 do junk[i] = string.char(math.random(0, 255)) end
    junk = table.concat(junk)
    local ms = raw_exchange(a.addr, junk, false, 2000)
    assert.is_not_nil(ms, "random bytes: the connection stayed open")
    -- an oversize length prefix
    ms = raw_exchange(a.addr, "\255\255\255\240abc", false, 2000)
    assert.is_true(ms ~= nil and ms < 500, "oversize prefix")
    -- a frame of 16 MiB claimed before the handshake (limit 4 KiB)
    ms = raw_exchange(a.addr, "\1\0\0\0\32", false, 2000)
    assert.is_true(ms ~= nil and ms < 500, "oversize handshake frame")
    -- a truncated frame, then end of file
    ms = raw_exchange(a.addr, "\0\0\0\100\32\0\1", true, 2000)
    assert.is_true(ms ~= nil and ms < 500, "truncated frame then EOF")
    -- a truncated frame left hanging: closed at the handshake deadline
    ms = raw_exchange(a.addr, "\0\0\0\100\32\0\1", false, 3000)
    assert.is_not_nil(ms, "a hanging truncated frame")
    -- a valid HELLO that never answers the challenge: same
    ms = raw_exchange(a.addr, "\0\0\0\2\32\0", false, 3000)
    assert.is_not_nil(ms, "a half handshake")
    -- the node still serves, and no link went down
    assert.are.equal("slept", (c:call(a, R, "sleep", { 1 })))
    assert.is_true(has(c:call(b, R, "nodes"), a.name))
    assert.is_nil(pogo.receive(function(m) return m[1] == "nodedown" end, 50))
    pogo.monitor_nodes(false)
  end)

  it("drops an authenticated link that sends a malformed frame, and only that one", function()
    pogo.monitor_nodes(true)
    -- a's link to us carries an unknown frame kind: we close it (and the
    -- rpc's reply, queued behind the garbage, never arrives)
    c:rpc(a, R, "inject", { c.self_name, "\0\0\0\3\99\1\2" }, 2000)
    local down = cluster.expect(function(m) return m[1] == "nodedown" and m[2] == a.name end, 2000)
    assert.are.equal("protocol_error", down[3])
    cluster.expect(function(m) return m[1] == "nodeup" and m[2] == a.name end, 3000, "a to come back")
    -- our link to a carries a frame that lies about its length: a closes it
    assert.is_true(pogo.core.dist_inject(a.name, "\0\0\0\9\1\0\0"))
    pogo.core.dist_inject(a.name, "\0\0\0\1") -- then an empty tick... inside the lie
    down = cluster.expect(function(m) return m[1] == "nodedown" and m[2] == a.name end, 3000)
    assert.is_true(down[3] == "connection_closed" or down[3] == "timeout", down[3])
    cluster.expect(function(m) return m[1] == "nodeup" and m[2] == a.name end, 3000, "a to come back")
    -- a named send whose message does not decode
    assert.is_true(pogo.core.dist_inject(a.name, "\0\0\0\8\2\0\3abc\193\193"))
    down = cluster.expect(function(m) return m[1] == "nodedown" and m[2] == a.name end, 3000)
    assert.is_true(down[3] == "connection_closed" or down[3] == "timeout", down[3])
    cluster.expect(function(m) return m[1] == "nodeup" and m[2] == a.name end, 3000, "a to come back")
    -- b never lost a
    assert.is_true(has(c:call(b, R, "nodes"), a.name))
    pogo.monitor_nodes(false)
  end)

  it("reports every kind of rpc error", function()
    local ok, err = c:rpc(a, R, "fail", { "boom" })
    assert.is_false(ok)
    assert.are.equal("boom", err)
    ok, err = c:rpc(a, R, "fail_table")
    assert.is_false(ok)
    assert.are.same({ code = 42 }, err)
    ok, err = c:rpc(a, R, "fail_function")
    assert.is_false(ok)
    assert.matches("function", err)
    ok, err = c:rpc(a, "no.such.module", "f")
    assert.is_false(ok)
    assert.are.equal("undef: module 'no.such.module' not found", err)
    ok, err = c:rpc(a, R, "nosuch")
    assert.is_false(ok)
    assert.are.equal("undef: support.remote.nosuch is not a function", err)
    ok, err = c:rpc(a, R, "sleep", { 1000 }, 100)
    assert.is_false(ok)
    assert.matches("^timeout", err)
    -- the called function ends its process instead of returning
    ok, err = c:rpc(a, "pogo", "exit", { "bye" })
    assert.is_false(ok)
    assert.are.equal("exit: bye", err)
    ok, err = c:rpc("ghost@127.0.0.1:1", R, "nodes")
    assert.is_false(ok)
    assert.matches("^noconnection", err)
    ok, err = c:rpc(a, R, "unsendable")
    assert.is_false(ok)
    assert.matches("cannot be sent", err)
    -- arguments that cannot be sent fail in the caller
    ok, err = c:rpc(a, R, "nodes", { function() end })
    assert.is_false(ok)
    assert.are.equal("args[1]: function cannot be sent", err)
    -- results, nils included
    assert.are.same(table.pack(true, 1, nil, "three", nil), table.pack(c:rpc(a, R, "results")))
    assert.are.same(table.pack(true), table.pack(c:rpc(a, R, "nothing")))
    assert.are.same({ true, "ABC" }, { pogo.rpc(pogo.node(), "string", "upper", { "abc" }) })
    -- arguments with nils in them arrive whole (a holed array is sent as a map)
    local packed = select(2, c:rpc(a, "table", "pack", { 1, nil, 3 }))
    assert.are.same({ 1, nil, 3, n = 3 }, packed)
    packed = select(2, c:rpc(a, "table", "pack", { n = 3, [3] = "c" }))
    assert.are.same({ nil, nil, "c", n = 3 }, packed)
    -- a node that is not a node name is a programming error
    for _, bad in ipairs { "garbage", "x@y", 42 } do
      local raised, why = pcall(pogo.rpc, bad, R, "nodes")
      assert.is_false(raised)
      assert.matches("pogo.rpc: node must be a node name (name@host:port)", why, 1, true)
    end
    -- the node dies during the call
    local k = c:start_node { name = "dying" }
    c:connect(k)
    local me = pogo.self()
    pogo.spawn(function() pogo.send(me, { "rpc", c:rpc(k, R, "sleep", { 5000 }, 10000) }) end)
    pogo.sleep(100)
    c:kill(k)
    local m = cluster.expect(function(msg) return msg[1] == "rpc" end, 1000)
    assert.is_false(m[2])
    assert.matches("^noconnection", m[3])
  end)

  it("keeps running when the peer it writes to is SIGKILLed mid-stream (no SIGPIPE)", function()
    local k = c:start_node { name = "gone" }
    c:connect(k)
    c:call(a, R, "connect", { k.addr })
    cluster.wait_until(function() return has(c:call(a, R, "nodes"), k.name) end, 5000, "a linked to k")
    local me = pogo.self()
    local sink = c:call(k, R, "order_checker", { me, 1 })
    -- a streams 64 KiB messages to k: k dies with unread bytes (its kernel answers RST), a writes on
    pogo.spawn(function() pogo.send(me, { "flood", c:rpc(a, R, "flood", { sink, 400, 5, 65536, 1 }, 20000) }) end)
    cluster.expect(function(m) return m[1] == "order" end, 5000, "the stream to reach k")
    c:kill(k)
    local m = cluster.expect(function(msg) return msg[1] == "flood" end, 20000, "the flood to end")
    assert.is_true(m[2], tostring(m[3]) .. "; a exited: " .. tostring(a.exited and a.exited.signal))
    assert.is_nil(a.exited)
    assert.are.same({ true, "ABC" }, { c:rpc(a, "string", "upper", { "abc" }) })
    -- whether the race above came to a write after the RST or not: the node ignores SIGPIPE
    local ignored
    for line in io.lines("/proc/" .. a.pid .. "/status") do
      ignored = ignored or line:match("^SigIgn:%s*(%x+)")
    end
    assert.is_true(math.tointeger(tonumber(ignored, 16)) & (1 << 12) ~= 0, "SigIgn: " .. tostring(ignored))
  end)
end)
