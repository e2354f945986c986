--- Starters: a child's start function never runs inside the supervisor.
--
-- The supervisor starts each child from a short-lived starter process, so it
-- keeps serving (requests, pg changes, exits) while a child's start function
-- and its `init` run, and a child may call its own supervisor from there.
-- The starter runs the spec's start function acting for the supervisor
-- (`pogo.proc_lib.acting_for`: a `pogo.server` child takes the supervisor for
-- its parent and stops on its exit signal), then hands the child over:
--
--     starter                                supervisor
--     start(spec) -> pid or error
--     {"$dsup_start", starter, pid | nil, err}  ->  link(pid), join {"child", id}
--                                           <-  "$dsup_linked"
--     unlink(pid)
--     [the child's EXIT, if it died while linked to the starter]
--     {"$dsup_died", pid, reason}           ->  (only if it waits for one)
--
-- The start function links the child to its caller, the starter, which traps
-- exits: a child that dies before the supervisor links it leaves its exit
-- reason with the starter. The supervisor's link to a dead child gives it
-- `{"EXIT", pid, "noproc"}`; for a child whose hand-over may have raced its
-- death it then monitors the starter and takes the reason from its
-- `"$dsup_died"` (or `"noproc"` if the starter is gone without one). When the
-- child's exit reaches both, the supervisor's EXIT carries the reason and the
-- starter's report is ignored.
--
-- The supervisor monitors each starter until its `"$dsup_start"` comes, so a
-- starter that dies first (its start function called `pogo.exit`) is a failed
-- start. A starter monitors the supervisor: if the supervisor dies before it
-- has linked the child, the starter kills the child, which would otherwise
-- run unsupervised.
-- @module pogo.dynamic_supervisor.starter
local pogo = require "pogo"
local proc_lib = require "pogo.proc_lib"
local child_spec = require "pogo.child_spec"

local core = pogo.core
local send, self, is_pid = core.send, core.self, core.is_pid

local M = {}

local function is_linked_or_down(sref)
  return function(m)
    return m == "$dsup_linked" or (type(m) == "table" and m[1] == "DOWN" and m[2] == sref)
  end
end

local function body(sup, spec)
  core.trap_exit(true)
  local sref = pogo.monitor(sup)
  local me = self()
  local pid, err = proc_lib.acting_for(sup, child_spec.start, spec)
  if not is_pid(pid) then
    pogo.demonitor(sref)
    send(sup, { "$dsup_start", me, nil, err or "start did not return a pid" })
    return
  end
  send(sup, { "$dsup_start", me, pid })
  local m = pogo.receive(is_linked_or_down(sref))
  if m ~= "$dsup_linked" then
    -- the supervisor is gone before it took the child: no orphan
    pogo.exit(pid, "kill")
    return
  end
  pogo.demonitor(sref)
  pogo.unlink(pid)
  local e = pogo.receive(function(x) return type(x) == "table" and x[1] == "EXIT" and x[2] == pid end, 0)
  if e then send(sup, { "$dsup_died", pid, e[3] }) end
end

--- Start a starter for `spec`, monitored by the calling supervisor.
-- @param sup the supervisor's pid (the caller)
-- @tparam table spec a normalised child spec
-- @return the starter's pid and the monitor ref
function M.spawn(sup, spec)
  return pogo.spawn_monitor(body, sup, spec)
end

--- Tell a starter that the supervisor has linked its child.
-- @param starter
function M.linked(starter)
  send(starter, "$dsup_linked")
end

return M
