--- Starters: a child's start function never runs inside the supervisor.
--
-- The supervisor starts its children from starter processes, so it keeps
-- serving (requests, pg changes, exits) while a child's start function and
-- its `init` run, and a child may call its own supervisor from there.
--
-- **The pool.** Each supervisor keeps a few starters. The children a pass
-- of the supervisor decides to start wait in a queue; an idle starter gets
-- up to `BATCH` of them and starts them one after the other, as OTP's
-- supervisor starts its children in order. When it has reported the last one
-- it gets the next batch, if any, with the supervisor's acknowledgement. When
-- the queue holds children and every starter has been busy with its batch for
-- `STUCK_MS` (a start function that waits), the supervisor adds a starter, so
-- a start that never returns holds up only the later children of its own
-- batch. Idle starters beyond `IDLE` are let go. Starting 10,000 children
-- thus costs a few processes and one message per child.
--
-- **The hand-over.** A starter runs each spec's start function acting for
-- the supervisor (`pogo.proc_lib.acting_for`: a `pogo.server` child takes the
-- supervisor for its parent and stops on its exit signal), then hands the
-- children over:
--
--     starter                                   supervisor
--                                           <-  {"$dsup_batch", spec...; data = {[i] = data}}
--     for each spec of the batch:
--       start(spec) -> pid or error
--       {"$dsup_start", starter, i, pid | nil, err, takes}  ->  link(pid), join {"child", id}
--                        <-  the next batch, or {"$dsup_linked"} (after the last one)
--     unlink every child of the batch
--     [the EXIT of each child that died while linked to the starter]
--     {"$dsup_died", pid, reason}                ->  (used only if it waits for one)
--
-- A child that moved gets its old instance's handoff data (`data`, see
-- `children`): the starter runs its start function inside
-- `pogo.server.handing_over`, so the server it starts gets the data in its
-- `init`, and `takes` says whether that server handles `"$handoff"` (its
-- module has `handoff` or `resolve_conflict`).
--
-- The start function links each child to its caller, the starter, which
-- traps exits: a child that dies before the supervisor links it leaves its
-- exit reason with the starter. The supervisor's link to a dead child gives
-- it `{"EXIT", pid, "noproc"}`; for a child whose hand-over may have raced its
-- death it then monitors the starter and takes the reason from its
-- `"$dsup_died"` (or "noproc" if the starter is gone without one). When the
-- child's exit reaches both, the supervisor's EXIT carries the reason and the
-- starter's report is ignored.
--
-- The supervisor monitors its starters: one that dies (a start function
-- called `pogo.exit`) fails the starts it had not reported. A starter
-- monitors the supervisor: if the supervisor dies before it has linked the
-- children, the starter kills them, as they would otherwise run
-- unsupervised, and ends.
-- @module pogo.dynamic_supervisor.starter
local pogo = require "pogo"
local proc_lib = require "pogo.proc_lib"
local server = require "pogo.server"
local child_spec = require "pogo.child_spec"

local core = pogo.core
local send, self, is_pid = core.send, core.self, core.is_pid

local M = {}

--- The most children a starter gets at once.
M.BATCH = 32
--- How long every starter may be busy with its batch before another is added (ms).
M.STUCK_MS = 100
--- How many idle starters a supervisor keeps.
M.IDLE = 2

local receive, mbox_len = core.receive, core.mbox_len

-- Start the children of batch `b` ({"$dsup_batch", spec...; data = {[i] =
-- handoff data}}), report each; false if the supervisor went.
local function start_batch(sup, b, me, is_sup_down, children)
  local n = #b
  local data = b.data
  for i = 2, n do
    local pid, err, takes = proc_lib.acting_for(sup, server.handing_over, data and data[i], child_spec.start, b[i])
    if is_pid(pid) then
      children[#children + 1] = pid
      send(sup, { "$dsup_start", me, i - 1, pid, nil, takes or nil })
    else
      send(sup, { "$dsup_start", me, i - 1, nil, err or "start did not return a pid" })
    end
    if i < n and mbox_len() > 0 and pogo.receive(is_sup_down, 0) then return false end
  end
  return true
end

-- The next message from the supervisor, or "down" when it is gone. The
-- children's EXITs that come meanwhile are kept in `exits` (pid -> reason).
local function from_sup(sref, exits)
  while true do
    local m = receive()
    if type(m) == "table" then
      local tag = m[1]
      if tag == "DOWN" then
        if m[2] == sref then return "down" end
      elseif tag == "EXIT" then
        exits[m[2]] = m[3]
      elseif tag == "$dsup_batch" or tag == "$dsup_linked" or tag == "$dsup_idle_stop" then
        return m
      end
    end
  end
end

-- The children of the last batch are linked to the supervisor: let them go,
-- and report those that died before (their EXIT reached this starter).
local function let_go(sup, children, exits)
  for _, pid in ipairs(children) do pogo.unlink(pid) end
  if mbox_len() > 0 then
    -- EXITs that came before the unlinks
    local mine = {}
    for _, pid in ipairs(children) do mine[pid] = true end
    while true do
      local e = pogo.receive(function(x) return type(x) == "table" and x[1] == "EXIT" and mine[x[2]] end, 0)
      if not e then break end
      exits[e[2]] = e[3]
    end
  end
  for k = #children, 1, -1 do children[k] = nil end
  if next(exits) ~= nil then
    for pid, reason in pairs(exits) do
      send(sup, { "$dsup_died", pid, reason })
      exits[pid] = nil
    end
  end
end

local function body(sup)
  core.trap_exit(true)
  local sref = pogo.monitor(sup)
  local me = self()
  local function is_sup_down(m) return type(m) == "table" and m[1] == "DOWN" and m[2] == sref end
  local exits, children = {}, {}
  local m = from_sup(sref, exits)
  while m ~= "down" and m[1] == "$dsup_batch" do
    -- after a batch: "$dsup_linked" (idle now), or the next batch (which says linked too)
    m = start_batch(sup, m, me, is_sup_down, children) and from_sup(sref, exits)
    if not m or m == "down" then
      -- the supervisor is gone before it took them: no orphans
      for _, pid in ipairs(children) do pogo.exit(pid, "kill") end
      return
    end
    let_go(sup, children, exits)
    if m[1] == "$dsup_linked" then m = from_sup(sref, exits) end
  end
  -- the supervisor went, or let this starter go
end

--- Start a starter for the calling supervisor, monitored.
-- @param sup the supervisor's pid (the caller)
-- @return the starter's pid and the monitor ref
function M.spawn(sup)
  return pogo.spawn_monitor(body, sup)
end

--- A new batch message: `{"$dsup_batch", spec...}`, the specs (at most
-- `BATCH`) set by the supervisor, and in `data` the handoff data of the
-- children that have some (by index in the message; nil when none has).
-- @treturn table
function M.batch()
  return { "$dsup_batch" }
end

--- Give a starter a batch: when it is idle, or when it has reported the last
-- child of its batch (the new batch tells it they are linked, too).
-- @param starter
-- @tparam table b from `batch`
function M.give(starter, b)
  send(starter, b)
end

local LINKED = { "$dsup_linked" }

--- Tell a starter that the supervisor has linked all the children of its
-- batch, and that it has no other batch for it.
-- @param starter
function M.linked(starter)
  send(starter, LINKED)
end

local STOP = { "$dsup_idle_stop" }

--- Let an idle starter go.
-- @param starter
function M.stop(starter)
  send(starter, STOP)
end

return M
