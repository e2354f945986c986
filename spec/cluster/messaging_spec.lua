-- Messages between nodes: ping-pong, order, names, calls, what cannot be sent.
local pogo = require "pogo"
local cluster = require "support.cluster"

local R = "support.remote"

describe("remote messages", function()
  local c, a, b

  setup(function()
    c = cluster.new { timeout_ms = 2000, heartbeat_ms = 200 }
    c:start_self { log = false }
    a, b = c:pair({ name = "ma", extra = { "--max-frame", "200000" } }, { name = "mb" })
  end)

  teardown(function()
    c:teardown()
    pogo.stop()
  end)

  it("ping-pongs with a remote process, values and pids intact", function()
    local echo = c:call(a, R, "echo")
    assert.is_true(pogo.is_pid(echo))
    assert.are.equal(a.name, pogo.node_of(echo))
    local me = pogo.self()
    local values = { 1, -7, 2 ^ 53, 1.5, "text", true, false, { 1, 2, { x = "y" } },
                     { pid = me, list = { me, echo } }, string.rep("z", 100000) }
    for round = 1, 200 do
      local v = values[round % #values + 1]
      pogo.send(echo, { me, { round, v } })
      local got = pogo.receive(2000)
      assert.are.same({ round, v }, got)
    end
    -- pids come back as the very same values
    pogo.send(echo, { me, me })
    assert.are.equal(me, pogo.receive(2000))
    pogo.send(echo, "stop")
  end)

  it("keeps the order of messages between two processes, both ways", function()
    local n = 20000
    local checker = c:call(a, R, "order_checker", { pogo.self(), n })
    for i = 1, n do pogo.send(checker, { i, "payload" }) end
    local m = cluster.expect(function(msg) return msg[1] == "order" end, 10000, "the order report")
    assert.are.same({ "order", n }, m)
    -- and from a remote process to us
    c:call(b, R, "send_numbered", { pogo.self(), n })
    for i = 1, n do
      local got = pogo.receive(5000)
      assert.are.equal(i, got and got[1])
    end
  end)

  it("sends to {name, node} and calls a remote server by name", function()
    c:call(a, R, "echo", { "echo1" })
    local me = pogo.self()
    pogo.send({ "echo1", a.name }, { me, "named" })
    assert.are.equal("named", pogo.receive(2000))
    -- an unknown name on that node: nothing happens
    pogo.send({ "nobody", a.name }, { me, "lost" })
    c:call(a, R, "server", { "srv" })
    assert.are.same({ "got", { 1, 2 } }, pogo.call({ "srv", a.name }, { 1, 2 }, 2000))
    -- from one remote node to another
    assert.are.same({ "got", "hi" }, c:call(b, R, "call", { { "srv", a.name }, "hi", 2000 }))
    local pid = c:call(a, R, "server")
    assert.are.same({ "got", "by pid" }, pogo.call(pid, "by pid", 2000))
    local ok, err = pcall(pogo.call, pid, "die", 2000)
    assert.is_false(ok)
    assert.matches("^exit: .* died", err)
    ok, err = pcall(pogo.call, { "nosuch", a.name }, "x", 2000)
    assert.is_false(ok)
    assert.matches("^noproc", err)
    ok, err = pcall(pogo.call, { "srv", a.name }, "slow", 100)
    assert.is_false(ok)
    assert.matches("^timeout", err)
  end)

  it("fails in the sender on a message that cannot be serialized", function()
    local echo = c:call(a, R, "echo")
    local ok, err = pcall(pogo.send, echo, { handler = function() end })
    assert.is_false(ok)
    assert.matches("msg.handler: function cannot be sent", err, 1, true)
    local cyc = {}
    cyc.self = cyc
    ok, err = pcall(pogo.send, { "echo1", a.name }, cyc)
    assert.is_false(ok)
    assert.matches("cycle", err)
    -- even to a node that is not connected
    ok, err = pcall(pogo.send, { "x", "ghost@127.0.0.1:1" }, { co = coroutine.create(print) })
    assert.is_false(ok)
    assert.matches("msg.co: coroutine cannot be sent", err, 1, true)
    -- the link is fine afterwards
    local me = pogo.self()
    pogo.send(echo, { me, "still here" })
    assert.are.equal("still here", pogo.receive(2000))
  end)

  it("fails in the sender on a message larger than the peer accepts", function()
    local echo = c:call(a, R, "echo") -- node ma accepts frames up to 200000 bytes
    local ok, err = pcall(pogo.send, echo, string.rep("x", 300000))
    assert.is_false(ok)
    assert.matches("too large", err)
    local me = pogo.self()
    pogo.send(echo, { me, string.rep("y", 150000) })
    assert.are.equal(150000, #pogo.receive(2000))
  end)

  it("drops messages to a node that is not connected", function()
    pogo.send({ "x", "ghost@127.0.0.1:1" }, "nobody hears this")
    local echo = c:call(a, R, "echo")
    assert.is_true(pogo.is_pid(echo))
  end)
end)
