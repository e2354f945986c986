#!/usr/bin/env lua5.4
-- examples/embed/cqueues/node.lua: a pogo node inside a cqueues program.
--
--   lua5.4 examples/embed/cqueues/node.lua [options] [script.lua [args...]]
--     --name NAME  --host HOST  --port PORT  --cookie COOKIE (else $POGO_COOKIE)
--     --seeds host:port[,...]  --heartbeat-ms MS  --timeout-ms MS
--     --print-node (print "POGO_NODE <name>" once listening)
--
-- cqueues owns the loop: its controller polls everything, pogo included. One
-- cqueues coroutine drives the node the way every host does (see the
-- README's "Hosts that own their loop"):
--
--   step; when step says more work is ready, let the other coroutines run
--   and step again; otherwise wait until pogo.fd() is readable or
--   pogo.timeout() has passed, and step.
--
-- The rest is the host's own work: a ticker coroutine, and a pogo process
-- registered as "cqueues" that answers pogo.call(..., "ticks") with the
-- ticker's count (the host and the node share the Lua state, so they share
-- data directly). The script, like bin/pogo's, runs as the node's first
-- process: blocking calls belong there, never in cqueues coroutines (host
-- code: they raise "cannot block in host code").
--
-- SIGTERM or SIGINT stop it: pogo.stop() (peers see nodedown "shutdown"),
-- steps until the links are closed (at most 2 s), exit 0.
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local signal = require "cqueues.signal"
local argparse = require "argparse"
local pogo = require "pogo"
local server = require "pogo.server"

local parser = argparse("node.lua", "a pogo node inside a cqueues program")
parser:option("--name", "node name")
parser:option("--host", "address to listen on", "127.0.0.1")
parser:option("--port", "port (0: any)", "0"):convert(tonumber)
parser:option("--cookie", "the cluster's cookie (default: $POGO_COOKIE)")
parser:option("--seeds", "seeds, host:port separated by commas")
parser:option("--heartbeat-ms"):convert(tonumber)
parser:option("--timeout-ms"):convert(tonumber)
parser:flag("--print-node", 'print "POGO_NODE <name>" once listening')
parser:argument("script", "run as the node's first process"):args("?")
parser:argument("args", "the script's arguments"):args("*")
local args = parser:parse()

local seeds = {}
for s in (args.seeds or ""):gmatch("[^,]+") do seeds[#seeds + 1] = s end

local chunk
if args.script then chunk = assert(loadfile(args.script)) end

-- signals are read through a descriptor (signalfd), so block them first
signal.block(signal.SIGTERM, signal.SIGINT)

local cq = cqueues.new()
local name = pogo.start { name = args.name, host = args.host, port = args.port,
  cookie = args.cookie or os.getenv("POGO_COOKIE"), seeds = seeds,
  heartbeat_ms = args.heartbeat_ms, timeout_ms = args.timeout_ms }
if args.print_node then
  io.stdout:write("POGO_NODE ", name, "\n")
  io.stdout:flush()
end

local running = true
local stop_cond = condition.new() -- wakes the coroutines when the program stops

-- ---- the host's own work ----
local ticks = 0
cq:wrap(function()
  while running do
    ticks = ticks + 1
    cqueues.poll(stop_cond, 0.1)
  end
end)
pogo.register("cqueues", pogo.spawn(server.enter_loop, {
  handle_call = function(req, _, state)
    if req == "ticks" then return ticks, state end
    return nil, state
  end,
}, {}))

if chunk then
  pogo.spawn(function(...)
    local ok, err = xpcall(chunk, debug.traceback, ...)
    if not ok then pogo.log.error("the script %s failed: %s", args.script, err); error(err, 0) end
  end, table.unpack(args.args or {}))
end

-- ---- driving the node ----
local pogo_fd = { pollfd = pogo.fd(), events = "r" } -- a cqueues pollable
cq:wrap(function()
  while running do
    if pogo.step() then
      cqueues.sleep(0) -- more is ready at once: let the other coroutines run, then step again
    else
      local t = pogo.timeout()
      if t < 0 then -- no timer (the node has stopped): wait for the fd or the end
        cqueues.poll(pogo_fd, stop_cond)
      elseif t > 0 then -- the hot path: the fd or pogo's next timer (a heartbeat at most a beat away)
        cqueues.poll(pogo_fd, t / 1000)
      end
    end
  end
end)

-- ---- stopping ----
local signals = signal.listen(signal.SIGTERM, signal.SIGINT)
cq:wrap(function()
  signals:wait()
  pogo.stop() -- host code: begins the orderly stop (the driver keeps stepping meanwhile)
  -- the trees stop, then the links close: within the stop's timeout (15 s
  -- by default) and a second more
  local deadline = cqueues.monotime() + 16
  local function done()
    local info = pogo.dist_info()
    return not info.started and #info.links == 0
  end
  while not done() and cqueues.monotime() < deadline do cqueues.sleep(0.01) end
  running = false
  stop_cond:signal()
end)

local ok, err = cq:loop()
if not ok then error(err) end
pogo.step() -- run the close callbacks of the handles closed last
os.exit(0, true)
