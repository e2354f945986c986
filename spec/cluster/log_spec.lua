-- pogo.log across the node: the transport's lines reach a handler set with
-- pogo.log.set_handler (module pogo.dist, peer), and a bin/pogo node writes
-- them, and its supervisor reports, as pogo.log's one-line default.
local pogo = require "pogo"
local cluster = require "support.cluster"

local ISO = "%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ"

describe("pogo.log on a node", function()
  local c

  setup(function()
    c = cluster.new { timeout_ms = 1000, heartbeat_ms = 200 }
    c:start_self()
  end)

  after_each(function()
    pogo.log.set_handler(nil)
    c:teardown()
  end)

  teardown(function()
    pogo.stop()
  end)

  it("gives the transport's lines to the handler, with module pogo.dist and the peer", function()
    local lines = {}
    pogo.log.set_handler(function(level, msg, meta) lines[#lines + 1] = { level = level, msg = msg, meta = meta } end)
    local n = c:start_node {}
    c:connect(n)
    local function line(pattern)
      return cluster.wait_until(function()
        for _, l in ipairs(lines) do
          if l.msg:match(pattern) then return l end
        end
      end, 5000, "a line " .. pattern)
    end
    local up = line("^connected to ")
    assert.are.same({ "info", "connected to " .. n.name, "pogo.dist", n.name, pogo.node() },
      { up.level, up.msg, up.meta.module, up.meta.peer, up.meta.node })
    assert.is_nil(up.meta.pid) -- no process logged it
    assert.equal("integer", math.type(up.meta.time))
    c:stop(n)
    local lost = line("^lost ")
    assert.are.same({ "info", "lost " .. n.name .. ": shutdown", n.name }, { lost.level, lost.msg, lost.meta.peer })
  end)

  it("writes a bin/pogo node's transport lines and supervisor reports as one-line events on stderr", function()
    local n = c:start_node { script = "spec/support/crash_node.lua" }
    c:connect(n)
    cluster.wait_until(function()
      return n.err:find(" report=restart", 1, true) and n.err:find("connected to ", 1, true)
    end, 5000, "the node's lines")
    local crash, up
    for l in n.err:gmatch("[^\n]+") do
      assert.matches("^" .. ISO .. " %a+ " .. n.name:gsub("%p", "%%%0") .. " ", l)
      if l:find(" report=crash", 1, true) then crash = l end
      if l:find(" connected to " .. c.self_name, 1, true) then up = l end
    end
    assert.matches(' error [^ ]+ child {"crasher", 1} %(<[^>]+>%) of supervisor crash_top crashed: '
      .. '[^ ]*worker%.lua:%d+: crashed on purpose module=pogo%.supervisor id="{\\"crasher\\", 1}" ', crash)
    assert.matches(' traceback="stack traceback:\\n\\t', crash, 1, true)
    assert.matches(" info [^ ]+ connected to " .. c.self_name:gsub("%p", "%%%0")
      .. " module=pogo%.dist peer=" .. c.self_name:gsub("%p", "%%%0") .. "$", up)
  end)

  it("writes no transport line with --quiet", function()
    local n = c:start_node { extra = { "--quiet" } }
    c:connect(n)
    assert.equal(c.self_name, (c:call(n, "pogo", "nodes"))[1])
    c:stop(n)
    assert.is_nil(n.err:find("pogo.dist", 1, true), n.err)
  end)
end)
