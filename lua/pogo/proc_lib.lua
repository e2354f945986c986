--- Starting a process that acknowledges its initialisation, in the manner of
-- Erlang's `proc_lib:start_link` / `init_ack`: the caller gets the pid once the
-- new process says it is ready, or the reason it gave up, or its exit reason
-- if it died first. Used by `pogo.server` and both supervisors.
--
-- The new process's *parent* is the caller, as in Erlang: a server that traps
-- exits stops when its parent's exit signal comes. A process that starts
-- processes on behalf of another (the distributed supervisor starts each child
-- from a short-lived starter process, so that no child's init runs inside the
-- supervisor) names that other process their parent with `acting_for`, as
-- OTP's supervisor is the parent of the children it starts.
--
-- It also knows which processes are in a supervision tree: a supervisor
-- says so of itself (`enter_tree`), and every process started here by a
-- process in a tree, or acting for one, is in it too. `pogo.stop` uses that
-- to find the node's trees: a supervisor that starts outside any tree is the
-- root of one (see `pogo.shutdown`).
-- @module pogo.proc_lib
local pogo = require "pogo"

local M = {}

-- coroutine of a process inside acting_for -> the parent it gives the
-- processes it starts (weak: an entry goes with its process)
local behalf = setmetatable({}, { __mode = "k" })
-- pid of a process started here -> its parent (weak, as above; by pid, not
-- coroutine: a coroutine whose process returned runs later ones, proc.c)
local parents = setmetatable({}, { __mode = "k" })
-- pid of a process in a supervision tree -> true (weak, as above)
local in_tree = setmetatable({}, { __mode = "k" })

--- Start `body(ack, parent, ...)` and wait until it calls `ack(true)` (ready)
-- or `ack(false, reason)` (failed: it then unlinks from the caller, so a
-- failed start never kills the caller).
-- @tparam boolean link link the new process to the caller
-- @tparam[opt] integer timeout_ms give up (and kill it) after this long; nil waits
-- @tparam function body
-- @return pid, or nil and the reason
function M.start(link, timeout_ms, body, ...)
  local caller, ref = pogo.self(), pogo.make_ref()
  local co = coroutine.running()
  local parent = behalf[co] or caller
  local tree = in_tree[caller] or behalf[co] ~= nil
  local function ack(ok, reason)
    if not ok and link then pogo.unlink(caller) end
    pogo.send(caller, { ref, ok and true or false, reason })
  end
  local function run(...)
    local me = pogo.self()
    parents[me] = parent
    if tree then in_tree[me] = true end
    return body(...)
  end
  local pid = (link and pogo.spawn_link or pogo.spawn)(run, ack, parent, ...)
  local mref = pogo.monitor(pid)
  local reply = pogo.receive(function(m)
    return type(m) == "table" and (m[1] == ref or (m[1] == "DOWN" and m[2] == mref))
  end, timeout_ms)
  pogo.demonitor(mref)
  if reply == nil then
    if link then pogo.unlink(pid) end
    pogo.exit(pid, "kill")
    return nil, "timeout: init did not return within " .. tostring(timeout_ms) .. " ms"
  end
  if reply[1] == "DOWN" then return nil, reply[4] end
  if reply[2] then return pid end
  return nil, reply[3]
end

local function done(co, ok, ...)
  behalf[co] = nil
  if not ok then error((...), 0) end
  return ...
end

--- Call `fn(...)` with `parent` as the parent of the processes it starts
-- through `start` (links are still made with the caller, which must hand
-- them over). Returns what `fn` returns; an error in `fn` is raised again.
-- @param parent a pid
-- @tparam function fn
-- @return the results of `fn`
function M.acting_for(parent, fn, ...)
  if not pogo.is_pid(parent) then error("pogo.proc_lib.acting_for: parent must be a pid", 2) end
  local co = coroutine.running()
  behalf[co] = parent
  return done(co, pcall(fn, ...))
end

--- The parent of the calling process, if `start` started it (nil otherwise).
-- @return pid or nil
function M.parent()
  return parents[pogo.self()]
end

--- Whether the calling process is in a supervision tree: a supervisor, or
-- started through `start` by a process in one (or acting for one).
-- @treturn boolean
function M.in_tree()
  return in_tree[pogo.self()] == true or behalf[coroutine.running()] ~= nil
end

--- Mark the calling process as part of a supervision tree (a supervisor
-- does, as it starts): the processes it starts through `start` are in it too.
function M.enter_tree()
  in_tree[pogo.self()] = true
end

return M
