-- mod_pogo: run a pogo node inside Prosody (0.12, Lua 5.4) and join a cluster.
--
-- Prosody owns the loop (net.server, server_epoll by default); this module
-- drives the node from it as the README's "Hosts that own their loop" says:
-- pogo.fd() is watched with net.server's watchfd, and one Prosody timer is
-- kept armed for pogo.timeout(). Each time either fires, pogo.step() does
-- all the ready work; when it says more is ready at once (a busy node), the
-- timer is armed for 0 so that Prosody serves its own sockets and timers
-- first.
--
-- Config (prosody.cfg.lua, global section):
--
--   plugin_paths = { "/path/to/pogo/examples/embed/prosody" }
--   modules_enabled = { ..., "pogo" }
--   pogo = {
--     name = "xmpp",                  -- the node is name@host:port
--     host = "127.0.0.1", port = 4370, -- where it listens (0: any free port)
--     cookie = "secret",              -- default: $POGO_COOKIE, else ~/.pogo.cookie
--     seeds = { "10.0.0.5:4370" },    -- nodes of the cluster to join
--     heartbeat_ms = 1000, timeout_ms = 5000,
--     script = "/path/app.lua", args = { ... }, -- optional: run as the node's
--                                     -- first process, as bin/pogo runs its script
--   }
--
-- Other modules and the script use the node with `require "pogo"` (same Lua
-- state, same node). Blocking calls (receive, sleep, call, rpc, a
-- supervisor's start_link) belong in pogo processes: made from Prosody's
-- code, which is host code, they raise "cannot block in host code".
--
-- The node also registers a pogo.server "prosody": pogo.call({"prosody",
-- node}, "info") returns {version =, hosts = {...}, sessions = n}.
--
-- Stopping Prosody stops the node (peers see nodedown "shutdown"); so does
-- unloading the module, which a reload then starts again (module:reload).
-- Prosody runs its signal handlers (SIGTERM) from a Lua hook, at whatever
-- instruction comes next: possibly inside pogo.step, in a callback of the
-- node's loop, where the node cannot be stopped. A stop asked for there is
-- done as soon as that step returns.
module:set_global()

local server = require "net.server"
local timer = require "util.timer"
local socket = require "socket" -- (Prosody's own dependency: a clock and a sleep for the stop)

-- luv reads the global _THREAD when it loads: let it, without the warning
-- Prosody logs for a read of a missing global
prosody.unlock_globals()
local pogo = require "pogo"
prosody.lock_globals()

-- pogo's log lines (the transport's included) go to Prosody's log
local LEVELS = { debug = "debug", info = "info", notice = "info", warning = "warn", error = "error" }
pogo.log.set_handler(function(level, msg) module:log(LEVELS[level] or "info", "%s", msg) end)

local opts = module:get_option("pogo", {})
if type(opts) ~= "table" then error("mod_pogo: the option pogo must be a table") end

local name = pogo.start {
  name = opts.name, host = opts.host, port = opts.port,
  cookie = opts.cookie or os.getenv("POGO_COOKIE"),
  seeds = opts.seeds, heartbeat_ms = opts.heartbeat_ms, timeout_ms = opts.timeout_ms,
}
module:log("info", "pogo node %s started", name)

-- ---- driving the node from Prosody's loop ----

local timer_id -- the Prosody timer armed for pogo.timeout()
local drive

local function on_timer()
  timer_id = nil
  drive()
end

-- Keep one timer armed `ms` from now (none when ms < 0).
local function arm(ms)
  if ms < 0 then
    if timer_id then timer.stop(timer_id); timer_id = nil end
  elseif timer_id then
    timer.reschedule(timer_id, ms / 1000)
  else
    timer_id = timer.add_task(ms / 1000, on_timer)
  end
end

local stepping, stop_asked = false, false
local stop

function drive()
  stepping = true
  local ok, more = pcall(pogo.step)
  stepping = false
  if not ok then error(more, 0) end
  if stop_asked then return stop() end
  arm(more and 0 or pogo.timeout())
end

local watcher = server.watchfd(pogo.fd(), drive)

-- ---- what the node offers ----

local info_server = pogo.spawn(require("pogo.server").enter_loop, {
  handle_call = function(req, _, state)
    if req == "info" then
      local hosts, sessions = {}, 0
      for host in pairs(prosody.hosts) do hosts[#hosts + 1] = host end
      table.sort(hosts)
      for _ in pairs(prosody.full_sessions) do sessions = sessions + 1 end
      return { version = prosody.version, hosts = hosts, sessions = sessions }, state
    end
    return nil, state
  end,
}, {})
pogo.register("prosody", info_server)

local script_pid -- the script's process (ended with the module: see stop)
if opts.script then
  local chunk = assert(loadfile(opts.script))
  local script = opts.script
  script_pid = pogo.spawn(function(...)
    local ok, err = xpcall(chunk, debug.traceback, ...)
    if not ok then
      module:log("error", "the script %s failed: %s", script, err)
      error(err, 0)
    end
  end, table.unpack(opts.args or {}))
end
drive() -- host code ran: do its work now

-- ---- stopping ----

local stopped = false
function stop()
  if stopped then return end
  if stepping then -- a signal handler inside the step (see the top): when it returns
    module:log("debug", "stop asked inside a step of the node: done when the step returns")
    stop_asked = true
    return
  end
  stopped = true
  pogo.stop() -- host code: begins the orderly stop (the trees stop, then the links close)
  -- Prosody is stopping: drive the node here until it is done (within the
  -- stop's timeout, 15 s by default, and a second more), so that every
  -- child's terminate runs and the peers see nodedown "shutdown"
  local deadline = socket.gettime() + 16
  while socket.gettime() < deadline do
    pogo.step()
    local info = pogo.dist_info()
    if not info.started and #info.links == 0 then break end
    local t = pogo.timeout()
    socket.sleep(t >= 0 and math.min(t, 10) / 1000 or 0.01)
  end
  -- what this module spawned outside the trees ends with it (once the trees
  -- are down: the script may be their parent), so that a reload
  -- (module:reload("pogo"): unload, then load) finds no process of the old
  -- node still registered as "prosody"
  for _, pid in ipairs { info_server, script_pid } do
    if pogo.alive(pid) then pogo.exit(pid, "kill") end
  end
  pogo.step()
  arm(-1)
  watcher:close()
end

module:hook_global("server-stopping", stop)
function module.unload() stop() end
