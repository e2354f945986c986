-- Specs for pogo.log (lua/pogo/log.lua): levels, the handler and its
-- metadata, calls that cannot raise, and the default line as a real
-- bin/pogo node writes it on stderr.
local pogo = require "pogo"
local log = require "pogo.log"
local uv = require "luv"
local cli = require "support.pogo_cli"

-- A handler that keeps every line; returns the list.
local function capture()
  local lines = {}
  log.set_handler(function(level, msg, meta) lines[#lines + 1] = { level = level, msg = msg, meta = meta } end)
  return lines
end

local function now_us()
  local s, us = uv.gettimeofday()
  return s * 1000000 + us
end

local ISO = "%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ"

describe("pogo.log", function()
  setup(function()
    pogo.start { name = "logspec", cookie = "logspec-cookie", log = false }
  end)

  teardown(function()
    log.set_handler(nil)
    log.set_level("info")
    pogo.stop()
  end)

  after_each(function()
    log.set_handler(nil)
    log.set_level("info")
  end)

  it("is pogo.log", function()
    assert.are.equal(log, pogo.log)
  end)

  it("drops the lines below the level (debug < info < notice < warning < error)", function()
    local lines = capture()
    assert.are.equal("info", log.level())
    log.debug("d")
    log.info("i")
    assert.are.equal("info", log.set_level("warning"))
    assert.are.equal("warning", log.level())
    log.info("i2")
    log.notice("n")
    log.warning("w")
    log.error("e")
    log.set_level("debug")
    log.debug("d2")
    local got = {}
    for _, l in ipairs(lines) do got[#got + 1] = l.level .. ":" .. l.msg end
    assert.are.same({ "info:i", "warning:w", "error:e", "debug:d2" }, got)
    assert.is_true(log.enabled("debug"))
    log.set_level("error")
    assert.is_false(log.enabled("warning"))
    assert.is_false(log.enabled("loud"))
  end)

  it("refuses an unknown level, naming it", function()
    local ok, err = pcall(log.set_level, "loud")
    assert.is_false(ok)
    assert.matches("unknown level 'loud'", err, 1, true)
    assert.are.equal("info", log.level())
    assert.has_error(function() log.log("verbose", "x") end)
    assert.has_error(function() log.set_handler(42) end, "pogo.log.set_handler: function or nil expected, got number")
  end)

  it("gives the handler the level, the message and meta (node, pid, module, time, fields)", function()
    local lines = capture()
    local before = now_us()
    log.info("%d jobs for %s", 3, "x")
    local worker = log.with { module = "spec.worker", job = 7 }
    local pid = pogo.spawn(function(parent)
      worker.warning("from a process")
      worker.with({ peer = "p" }):error("with a colon") -- log:error works too
      pogo.send(parent, "done")
    end, pogo.self())
    assert.are.equal("done", pogo.receive(1000))
    local after = now_us()
    assert.are.equal(3, #lines)
    local l1, l2, l3 = lines[1], lines[2], lines[3]
    assert.are.equal("info", l1.level)
    assert.are.equal("3 jobs for x", l1.msg)
    assert.are.equal(pogo.node(), l1.meta.node)
    assert.matches("^logspec@", l1.meta.node)
    assert.are.equal(pogo.self(), l1.meta.pid)
    assert.is_nil(l1.meta.module)
    assert.are.equal("integer", math.type(l1.meta.time))
    assert.is_true(l1.meta.time >= before and l1.meta.time <= after)
    assert.are.equal("warning", l2.level)
    assert.are.equal(pid, l2.meta.pid)
    assert.are.equal("spec.worker", l2.meta.module)
    assert.are.equal(7, l2.meta.job)
    assert.are.equal("with a colon", l3.msg)
    assert.are.same({ "spec.worker", 7, "p" }, { l3.meta.module, l3.meta.job, l3.meta.peer })
  end)

  it("never raises into the caller for a bad format or a non-string message", function()
    local lines = capture()
    log.info("%d items", "many")
    log.info(42, "and", nil)
    log.info(nil)
    log.info(setmetatable({}, { __tostring = function() error("no text") end }))
    log.info("%s", setmetatable({}, { __tostring = function() error("no text") end }))
    log.info("100% sure") -- no arguments: the text as it is
    assert.are.equal(6, #lines)
    assert.matches("%d items [log format error: ", lines[1].msg, 1, true)
    assert.matches("many", lines[1].msg, 1, true)
    assert.are.equal("42 and nil", lines[2].msg)
    assert.are.equal("nil", lines[3].msg)
    assert.matches("tostring failed", lines[4].msg, 1, true)
    assert.matches("tostring failed", lines[5].msg, 1, true)
    assert.are.equal("100% sure", lines[6].msg)
  end)

  it("does not break the caller when the handler raises", function()
    local calls = 0
    log.set_handler(function()
      calls = calls + 1
      error("broken handler")
    end)
    -- the lines go to stderr (see the bin/pogo case below); the caller goes on
    assert.has_no_error(function() log.error("still fine") end)
    assert.has_no_error(function() log.warning("still fine %d", 2) end)
    assert.are.equal(2, calls)
    local lines = capture()
    log.info("a working handler again")
    assert.are.equal(1, #lines)
  end)

  it("takes already formatted lines from the C core through emit", function()
    local lines = capture()
    log.emit("warning", "lost b: timeout", { module = "pogo.dist", peer = "b@127.0.0.1:1" })
    log.emit("debug", "filtered out")
    log.emit("chatty", 100) -- never raises: an unknown level is logged as an error
    assert.are.equal(2, #lines)
    assert.are.same({ "warning", "lost b: timeout", "pogo.dist", "b@127.0.0.1:1", pogo.node() },
                    { lines[1].level, lines[1].msg, lines[1].meta.module, lines[1].meta.peer, lines[1].meta.node })
    assert.are.equal("error", lines[2].level)
    assert.matches("unknown log level chatty", lines[2].msg, 1, true)
  end)

  it("formats the default line: ISO time, level, node, message, key=value", function()
    local line = log.format("warning", "two\nlines", { node = "a@h:1", pid = pogo.self(), time = 1700000000123456,
                                                      module = "m", peer = "x y", z = 'q"uote', a = 1 })
    assert.are.equal('2023-11-14T22:13:20.123Z warning a@h:1 two\\nlines module=m a=1 peer="x y" z="q\\"uote"',
                     line)
    -- a key that would read as two is quoted as a value is
    line = log.format("info", "m", { node = "a@h:1", time = 1700000000123456, ["weird key"] = "v=1", ["k=v"] = 2 })
    assert.are.equal('2023-11-14T22:13:20.123Z info a@h:1 m "k=v"=2 "weird key"="v=1"', line)
  end)
end)

describe("pogo.log in a bin/pogo node", function()
  -- the line of a stop that begins (the scripts end with pogo.stop())
  local STOPPING = " notice [^ ]+ pogo%.stop: stopping %(timeout 15000 ms%) module=pogo"

  it("writes one line per call on stderr, filtered by --log-level and POGO_LOG_LEVEL", function()
    local code, _, err = cli.run { "--cookie", "x", "--name", "logger", "spec/support/log_node.lua" }
    assert.are.equal(0, code, err)
    local lines = {}
    for l in err:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal(3, #lines, err)
    assert.matches("^" .. ISO .. " info logger@127%.0%.0%.1:%d+ an info line 42$", lines[1])
    assert.matches("^" .. ISO .. ' warning logger@127%.0%.0%.1:%d+ two\\nlines module=spec%.log n=3 peer="a b"$',
                   lines[2])
    assert.matches("^" .. ISO .. STOPPING .. "$", lines[3]) -- (the script's pogo.stop)
    local _, _, err2 = cli.run { "--cookie", "x", "--log-level", "debug", "spec/support/log_node.lua" }
    assert.matches(" debug [^ ]+ a debug line\n", err2)
    local script = { "--cookie", "x", "spec/support/log_node.lua" }
    local _, _, err3 = cli.run(script, { env = { POGO_LOG_LEVEL = "warning" } })
    assert.is_nil(err3:find("info line", 1, true))
    assert.matches(" warning [^ ]+ two", err3)
    local _, _, err4 = cli.run(script, { env = { POGO_LOG_LEVEL = "loud" } })
    assert.matches("POGO_LOG_LEVEL=loud is not a level", err4, 1, true)
    assert.matches("an info line 42", err4, 1, true)
  end)

  it("falls back to stderr for each line a raising handler fails on, and says so once", function()
    local code, _, err = cli.run { "--cookie", "x", "spec/support/log_node.lua", "raising" }
    assert.are.equal(0, code, err)
    local _, said = err:gsub("the log handler raised: [^\n]*the handler broke on purpose", "")
    assert.are.equal(1, said, err)
    assert.matches(" info [^ ]+ first line\n", err)
    assert.matches(" info [^ ]+ second line\n", err)
  end)

  it("carries pogo.stop's report of a stop hook that raised", function()
    local code, _, err = cli.run { "--cookie", "x", "spec/support/log_node.lua", "stophook" }
    assert.are.equal(0, code, err)
    assert.matches("^" .. ISO .. STOPPING .. "\n" .. ISO
                   .. " error [^ ]+ a stop hook raised: the hook broke on purpose module=pogo\n$", err)
  end)

  it("carries the core's report of a luv callback that raised: one line, its traceback in a field", function()
    local code, _, err = cli.run { "--cookie", "x", "spec/support/log_node.lua", "luverror" }
    assert.are.equal(0, code, err)
    assert.matches("^" .. ISO .. " error [^ ]+ a luv callback raised %(the node goes on%): "
                   .. "[^ ]*log_node%.lua:%d+: the callback broke on purpose module=pogo "
                   .. 'traceback="stack traceback:\\n[^\n]*"\n' .. ISO .. STOPPING .. "\n$", err)
  end)

  it("does not call a handler from inside itself", function()
    local code, _, err = cli.run { "--cookie", "x", "spec/support/log_node.lua", "recursive" }
    assert.are.equal(0, code, err)
    assert.matches("^" .. ISO .. " warning [^ ]+ the handler saw: outer line\n" .. ISO
                   .. " warning [^ ]+ the handler saw: pogo%.stop: stopping %(timeout 15000 ms%)\n$", err)
  end)
end)
