--- The orderly stop of a node (`pogo.stop`), as OTP's application controller
-- stops its applications: every supervision tree of the node terminates, the
-- last started first, then the node leaves its peers.
--
-- **The trees.** A supervisor of either kind (`pogo.supervisor`,
-- `pogo.dynamic_supervisor`) that starts outside any supervision tree is the
-- root of one: it says so as it starts (`supervisor_started`), and the roots
-- are kept in start order. A supervisor is inside a tree when a supervisor
-- started it (directly, or through a starter acting for it), when a process
-- started that way started it (`pogo.proc_lib.in_tree`), or when the process
-- that started it is a child of a supervisor (`track`: each supervisor
-- records the children it starts).
--
-- **The stop** runs in a process of its own, the stopper:
--
-- 1. The roots, last started first, each stopped as `pogo.server.stop(root,
--    "shutdown")` would: its `terminate` stops its children (a local
--    supervisor in reverse start order, each within its `shutdown`; a
--    distributed one leaves the ring, stops its children, which start on
--    their new owners, and hands its requests over). A root started
--    meanwhile is stopped too.
-- 2. At the deadline (`timeout_ms` after the stop began), what is left is
--    killed (`"kill"`): every root and every child a supervisor started that
--    still lives. (An `pogo.os_process` child's watcher then SIGKILLs its
--    program.)
-- 3. The `pogo.on_stop` hooks run, in the order they were added.
-- 4. The node closes its links, telling its peers `"shutdown"`: they see
--    nodedown `"shutdown"` and do not dial it again, unless it is their seed.
-- 5. `pogo.run()` returns.
--
-- A process outside the trees linked to a root and not trapping exits (the
-- script that started the roots with `start_link`) would end with the first
-- root that stops, and its exit would stop the other roots it is linked to
-- at once, out of order. So each root is unlinked from such processes just
-- before it stops (as OTP's roots hang from their application master, not
-- from the shell), and they get the `"shutdown"` exit signal their root
-- would have sent once every tree has stopped, before the hooks.
--
-- **The caller.** `pogo.stop` from the main chunk drives the loop until the
-- stop is done, then waits (at most until the deadline, and 100 ms at least)
-- until the peers have closed their side of the links. From a process it
-- waits too, unless the stop is waiting for that process: from a process in
-- a supervision tree (a child's `terminate`, say) and from a stop hook it
-- starts or joins the stop and returns nil at once, as OTP's `init:stop()`
-- (waiting there would hold the stop until its deadline). A process outside
-- the trees that the stop ends (one linked to a root, above) ends while it
-- waits. From a luv callback (a signal handler) it cannot wait: it returns at
-- once, and `pogo.run()` returns when the stop is done. A stop asked while
-- one runs joins it.
-- @module pogo.shutdown
local core = require "pogo.core"
local log = require("pogo.log").with { module = "pogo" }

local M = {}

--- The default timeout of `pogo.stop` and of `bin/pogo --stop-timeout-ms`,
-- in ms: three times a child's default `shutdown` (5000 ms), under
-- Kubernetes' default grace period (30 s) and systemd's stop timeout (90 s).
M.DEFAULT_TIMEOUT_MS = 15000

local pogo -- the pogo table, given to install

local roots = {}      -- the roots of the node's supervision trees, in start order
local members = {}    -- pid -> true: every supervisor and every child a supervisor started
local nmembers = 0    -- entries in members
local prune_at = 256  -- members are pruned of the dead when they pass this count
local hooks = {}      -- {key =, fn =} of pogo.on_stop, in order
local current         -- the stop in progress: {pid =, timeout =, deadline =, clean =, done =}
local last            -- the last stop begun (its deadline serves the drain of bin/pogo)

--- Give this module the `pogo` table (it spawns, stops and closes the node's
-- links through it).
-- @tparam table p the `pogo` module
function M.install(p)
  pogo = p
end

--- A child a supervisor started: killed at the stop's deadline if it still
-- lives then, and a supervisor it starts is not a root.
-- @param pid
function M.track(pid)
  members[pid] = true
  nmembers = nmembers + 1
  if nmembers > prune_at then
    nmembers = 0
    for p in pairs(members) do
      if core.alive(p) then nmembers = nmembers + 1 else members[p] = nil end
    end
    prune_at = 2 * nmembers + 256
  end
end

--- A supervisor starts (called from its `init`): it is the root of a tree
-- unless it is inside one (see the module text), and the processes it starts
-- are inside its tree.
function M.supervisor_started()
  local proc_lib = require "pogo.proc_lib"
  local me, parent = core.self(), proc_lib.parent()
  if not proc_lib.in_tree() and not (parent and members[parent]) then
    for i = #roots, 1, -1 do -- the dead go, as the list is written anyway
      if not core.alive(roots[i]) then table.remove(roots, i) end
    end
    roots[#roots + 1] = me
  end
  proc_lib.enter_tree()
  M.track(me)
end

--- The roots of the node's supervision trees that live, in start order.
-- @treturn {pid,...}
function M.roots()
  local out = {}
  for _, pid in ipairs(roots) do
    if core.alive(pid) then out[#out + 1] = pid end
  end
  return out
end

--- Call `fn()` when the node stops (see `pogo.on_stop`).
-- @tparam function fn
-- @treturn function call it to remove `fn`
function M.on_stop(fn)
  if type(fn) ~= "function" then error("pogo.on_stop: function expected", 2) end
  local key = {}
  hooks[#hooks + 1] = { key = key, fn = fn }
  return function()
    for i, h in ipairs(hooks) do
      if h.key == key then table.remove(hooks, i); return end
    end
  end
end

-- The last root that lives (the dead at the end of the list go).
local function last_root()
  while #roots > 0 do
    local pid = roots[#roots]
    if core.alive(pid) then return pid end
    roots[#roots] = nil
  end
end

local function remaining(stop)
  return stop.deadline - core.now()
end

-- A supervision tree's root as text: its pid, and its registered name.
local function describe_root(pid)
  local info = pogo.process_info(pid)
  local name = info and info.registered_name
  return name and string.format("%s (%s)", tostring(pid), tostring(name)) or tostring(pid)
end

-- Kill every root and tracked child that still lives.
local function kill_left(stop)
  local n, trees = 0, {}
  for i = #roots, 1, -1 do
    if core.alive(roots[i]) then
      trees[#trees + 1] = describe_root(roots[i])
      pogo.exit(roots[i], "kill")
      n = n + 1
    end
  end
  for pid in pairs(members) do
    if core.alive(pid) then
      pogo.exit(pid, "kill")
      n = n + 1
    end
  end
  roots, members, nmembers, prune_at = {}, {}, 0, 256
  -- (the first tree named was being stopped when the time ran out; those
  -- after it, started before it, had not begun to stop: their children's
  -- terminate did not run)
  log.with({ trees = table.concat(trees, ", ") }).warning(
    "the supervision trees did not stop within %d ms: killed the %d processes left; trees still running, the "
    .. "one being stopped first: %s", stop.timeout, n, #trees > 0 and table.concat(trees, ", ") or "none")
  pogo.yield() -- their monitors fire (the watcher of an os_process program ends it)
end

local function run_hooks()
  for _, h in ipairs({ table.unpack(hooks) }) do
    local ok, err = pcall(h.fn)
    if not ok then log.error("a stop hook raised: %s", err) end
  end
end

-- A root's links that would break the order: a local process outside the
-- trees that does not trap exits (the script that started the roots with
-- `start_link`, say) would end with the first root it is linked to, and its
-- exit would reach the other roots it is linked to at once. Each such link is
-- taken off just before the root stops, and the process is noted in
-- `stop.held`; it gets the root's exit signal when every tree has stopped.
local function detach(stop, root)
  local info = pogo.process_info(root)
  local here = pogo.node()
  for _, p in ipairs(info and info.links or {}) do
    if not members[p] and pogo.node_of(p) == here then
      local pi = pogo.process_info(p)
      if pi and not pi.trap_exit then
        core.unlink_pair(root, p)
        if not stop.held[p] then
          stop.held[p] = true
          stop.held[#stop.held + 1] = p
        end
      end
    end
  end
end

-- Steps 1 and 2: the trees.
local function stop_trees(stop)
  local server = require "pogo.server"
  log.debug("stopping %d supervision trees (timeout %s ms)", #M.roots(), tostring(stop.timeout))
  while true do
    local root = last_root()
    if not root then break end
    detach(stop, root)
    local left = remaining(stop)
    if left <= 0 or not pcall(server.stop, root, "shutdown", left) then
      stop.clean = false
      break
    end
  end
  if not stop.clean then kill_left(stop) end
end

-- The processes held by `detach` get the exit signal their root would have
-- given them.
local function release_held(stop)
  for _, p in ipairs(stop.held) do
    if core.alive(p) then pcall(pogo.exit, p, "shutdown") end
  end
  stop.held = {}
end

local function stopper(stop)
  local t0 = core.now()
  local ok, err = pcall(stop_trees, stop)
  if not ok then
    stop.clean = false
    log.error("stopping the supervision trees failed: %s", err)
  end
  release_held(stop)
  run_hooks()
  ok, err = pcall(pogo.dist_stop)
  if not ok then log.error("closing the links failed: %s", err) end
  log.debug("stopped in %d ms", core.now() - t0)
  stop.done = true
  if current == stop then current = nil end
  core.stop_loop()
end

local function check_timeout(t)
  if t == nil then return M.DEFAULT_TIMEOUT_MS end
  if type(t) ~= "number" or t < 0 or t ~= t then
    error("pogo.stop: timeout_ms must be a non-negative number of ms, got " .. tostring(t), 3)
  end
  return t
end

--- Stop the node in order (see the module text and `pogo.stop`).
-- @tparam[opt] number timeout_ms (default `DEFAULT_TIMEOUT_MS`; `math.huge`: none)
-- @tparam[opt] string why what asked for the stop, for its log line (a
--  stop that begins logs `<why>: stopping (timeout N ms)` at notice;
--  default "pogo.stop"; bin/pogo gives "SIGTERM" and the like)
-- @treturn ?boolean true when every tree stopped in time, false when what was
--  left was killed; nil at once from a luv callback, from a process in a
--  supervision tree and from a stop hook (the stop goes on)
function M.stop(timeout_ms, why)
  local timeout = check_timeout(timeout_ms)
  local stop = current
  if not stop then
    log.notice("%s: stopping (%s)", type(why) == "string" and why or "pogo.stop",
               timeout == math.huge and "no timeout" or "timeout " .. (math.tointeger(timeout) or timeout) .. " ms")
    stop = { timeout = timeout, deadline = core.now() + timeout, clean = true, done = false, held = {} }
    current, last = stop, stop
    stop.pid = pogo.spawn(stopper, stop)
  end
  -- can the caller wait? a process yields, the main chunk drives the loop, a
  -- luv callback cannot (pogo.yield raises there)
  if not pcall(core.yield) then return nil end
  -- a process the stop ends (one in a supervision tree: its terminate, say)
  -- or the stopper itself (a hook) cannot wait: the stop waits for it
  local me = core.self()
  if not stop.done and (me == stop.pid or members[me] or require("pogo.proc_lib").in_tree()) then
    return nil
  end
  if not stop.done then
    local ref = pogo.monitor(stop.pid)
    pogo.receive(function(m) return type(m) == "table" and m[1] == "DOWN" and m[2] == ref end,
                 math.max(0, remaining(stop)) + 1000) -- the hooks may take a little longer
    pogo.demonitor(ref)
  end
  pogo.dist_stop(M.drain_ms())
  return stop.clean
end

--- How long the main chunk may wait for the peers to close their side of the
-- links once the last stop is done: what is left until its deadline, at least
-- 100 ms and at most 1000 ms.
-- @treturn integer ms
function M.drain_ms()
  local left = last and remaining(last) or 1000
  return math.tointeger(math.max(100, math.min(1000, math.floor(left)))) or 1000
end

--- Whether a stop is in progress.
-- @treturn boolean
function M.stopping()
  return current ~= nil
end

return M
