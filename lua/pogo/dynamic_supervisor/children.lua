--- The child processes this node runs: start, stop, exit, restart with backoff,
-- and the restart types across the cluster.
--
-- A record's `proc` is what this node does with its child:
--
--     proc = {
--       status = "starting" | "running" | "restarting" | "stopping",
--       pid = pid,          -- while running or stopping (and starting, once handed over)
--       request = request,  -- the request it was started from (requests.lua)
--       starter = pid,      -- starting: its starter; then until the mailbox is drained after
--                           -- the hand-over (it may know the reason of a "noproc" exit; starter.lua)
--       awaiting = ref,     -- the monitor of that starter while its report is waited for
--       recheck = true,     -- starting: reconcile looked at it meanwhile (do it again once started)
--       cancel = true,      -- starting: it is to stop; its starter is killed at kill_at if the start
--                           -- has not ended by then (a start that blocks)
--       error = reason,     -- why its last start failed (or it exited past the intensity)
--       restarts = window,  -- its pogo.restart_intensity window (from its first exit)
--       restarted = true,   -- it exited (or failed to start): its next start is a restart (reported)
--       backoff = ms,       -- the delay before the next retry (0: restart at once)
--       retry_at = ms,      -- restarting: when it is started again
--       kill_at = ms,       -- stopping: when it is killed (its spec's shutdown time)
--       killed_after = ms,  -- stopping: it was killed at the end of that time (a shutdown_error report)
--       takes = true,       -- it is a pogo.server that takes part in the handoff (handoff.lua)
--       handing = true,     -- stopping: it was asked to hand its state over
--       late = data,        -- starting: handoff data that came after its start began (handoff.keep),
--       late_from = node,   -- and the node of the instance that sent it
--       handoff = data,     -- starting: the handoff data its start was given, with
--       handoff_from = node, -- the node it came from, until the start is reported
--                           -- (a node that stops meanwhile passes it on: handoff.pass_held)
--     }
--
-- A child starts in a starter process (starter.lua), so the supervisor never
-- runs a start function or an `init`: it goes on serving while the child
-- starts (status "starting"), and the record is reconciled again once the
-- child is handed over.
-- Then the child is linked to the supervisor (which traps exits) and joins
-- the pg group `{"child", id}`. It is restarted where it runs, at once within
-- the restart intensity, beyond it (and after a failed start) with a backoff
-- doubling from `min_backoff_ms` to `max_backoff_ms`, so a child that cannot
-- start never takes the supervisor down. Stopping sends "shutdown" and kills
-- after the spec's `shutdown` ms ("brutal_kill": kill at once). What happens
-- is reported as OTP's supervisor does (`pogo.supervisor_report`): a crash,
-- a restart, a failed start, a child beyond its restart intensity. A child
-- that moves while both nodes are up is asked to hand its state over instead
-- of getting "shutdown", within the same time (handoff.lua); its start on
-- the new owner gets the data.
--
-- **Restart types, cluster-wide** (as OTP's, for one supervisor):
--
-- * `permanent`: always runs again: after any exit, a failed start, or the
--   loss of its node (on its new owner).
-- * `transient`: runs again only after an abnormal exit. An exit with
--   "normal", "shutdown" or `{"shutdown", ...}` terminates it cluster-wide;
--   the loss of its node is abnormal, so it starts on its new owner.
-- * `temporary`: never runs again once it has exited, its start has failed,
--   or its node has gone. Its exit or failed start terminates it
--   cluster-wide. For the loss of its node, every node that saw it run (its
--   child group joined or left while its request counted: `ran_uid`) never
--   starts it: its owner marks it lost (requests.lua; terminated when its
--   node stopped in order, nodedown "shutdown"), which keeps the
--   nodes that did not see it run from starting it too, but stops no copy,
--   so a child beyond a netsplit runs on after the heal (and is terminated
--   only if no copy shows up within `tombstone_ms`: its node died). A
--   supervisor restarted on the same node remembers the temporary children
--   it started (`requests.memory`): their copy is gone for sure, and they
--   are terminated. It never moves to a new owner either (placement.lua),
--   since that would run it again.
-- @module pogo.dynamic_supervisor.children
local pogo = require "pogo"
local pg = require "pogo.pg"
local intensity = require "pogo.restart_intensity"
local state = require "pogo.dynamic_supervisor.state"
local requests = require "pogo.dynamic_supervisor.requests"
local placement = require "pogo.dynamic_supervisor.placement"
local starter = require "pogo.dynamic_supervisor.starter"
local handoff = require "pogo.dynamic_supervisor.handoff"
local events = require "pogo.dynamic_supervisor.events"
local tally = require "pogo.dynamic_supervisor.tally"
local report = require "pogo.supervisor_report"
local node_stop = require "pogo.shutdown"

local M = {}

local now = pogo.now

-- The next retry delay: doubled, within [min_backoff, max_backoff].
local function back_off(st, proc)
  proc.backoff = math.min(math.max(proc.backoff * 2, st.min_backoff), st.max_backoff)
  return proc.backoff
end

-- What child process `proc` adds to `count_children(sup, "local")`, in the
-- global view's encoding (tally.lua): nil for none, else one plus its active
-- copies (1 while running or stopping, with its pid), negative for a supervisor.
local function local_part(proc)
  if not proc then return nil end
  local n = (proc.status ~= "starting" and pogo.is_pid(proc.pid)) and 2 or 1
  if proc.request.spec.type == "supervisor" then return -n end
  return n
end

-- Move the local counts from what the child added `before` a change of its
-- `proc` (its status, pid or request) to what it adds now: every such
-- change goes through here, so `count_children(sup, "local")` is read, not
-- counted (`views.lua`).
local function recount(st, c, before)
  local after = local_part(c.proc)
  if after == before then return end
  tally.add(st.local_count, before, -1)
  tally.add(st.local_count, after, 1)
end

-- This node runs no child for record `c` any more.
local function drop(st, c)
  local before = local_part(c.proc)
  c.proc = nil
  st.timed[c] = nil
  recount(st, c, before)
end

--- Whether an exit reason ends a transient child for good (OTP's rule).
-- @function is_normal
-- @param reason
-- @treturn boolean
M.is_normal = report.is_normal

-- The supervisor's name in its reports.
local function sup_name(st) return tostring(st.name or st.scope) end

--- Whether the temporary child of request `req` has run (so it must not
-- start again): this node saw it in its child group, or started it.
-- @tparam table st
-- @tparam table c
-- @tparam table req
-- @treturn boolean
function M.has_run(st, c, req)
  return c.ran_uid == req.uid or st.memory.ran[req.uid] == true
end

--- Start record `c`'s child here from request `req`: it waits in the queue
-- for a starter (`launch`).
-- @tparam table st
-- @tparam table c
-- @tparam table req
function M.start(st, c, req)
  local proc = c.proc
  local before = local_part(proc)
  if not proc then
    proc = { backoff = 0 } -- its restart window comes with its first exit
    c.proc = proc
  end
  proc.request, proc.status, proc.pid, proc.retry_at, proc.starter = req, "starting", nil, nil, nil
  proc.cancel, proc.kill_at = nil, nil
  recount(st, c, before)
  proc.handoff, proc.handoff_from = nil, nil
  st.timed[c] = nil
  local tail = st.to_start_tail + 1
  st.to_start[tail], st.to_start_tail = c, tail
end

-- The next batch of the queue for starter `pid` (its pool entry `s`): the
-- batch message for it, or nil. The records array and the message are the
-- entry's own, used again for each batch: the starter has read the message of
-- its last batch before it reported that batch's last start.
local function take_batch(st, pid, s)
  local queue, head, n = st.to_start, st.to_start_head, st.to_start_tail
  if head > n then return nil end
  local last = math.min(n, head + starter.BATCH - 1)
  local records, msg = s.records, s.msg
  local k, data = 0, nil
  for i = head, last do
    local c = queue[i]
    queue[i] = nil
    k = k + 1
    records[k] = c
    msg[k + 1] = c.proc.request.spec
    c.proc.starter = pid
    if c.handoff ~= nil then -- it moved here: its old instance's data (handoff.lua)
      data = data or {}
      data[k + 1], c.proc.handoff, c.proc.handoff_from = c.handoff, c.handoff, c.handoff_from
      c.handoff, c.handoff_from, c.handoff_skip = nil, nil, nil
    end
  end
  msg.data = data
  for i = k + 2, #msg do msg[i] = nil end
  if last == n then
    st.to_start_head, st.to_start_tail = 1, 0 -- empty: the array is used again from the start
  else
    st.to_start_head = last + 1
  end
  s.n, s.done, s.since = k, 0, now()
  return msg
end

-- May the supervisor add a starter? When it has none, or every one has
-- been busy with its batch for STUCK_MS.
local function may_add_starter(st, t)
  for _, s in pairs(st.starters) do
    if s.n == 0 or t - s.since < starter.STUCK_MS then return false end
  end
  return true
end

--- Give the queued starts to idle starters, adding one when every starter
-- looks stuck (see starter.lua).
-- @tparam table st
function M.launch(st)
  while st.to_start_head <= st.to_start_tail do
    local pid = table.remove(st.idle)
    if not pid then
      if not may_add_starter(st, now()) then return end
      local ref
      pid, ref = starter.spawn(st.pid)
      st.starters[pid] = { ref = ref, records = {}, msg = starter.batch(), n = 0, done = 0 }
      st.start_refs[ref] = pid
    end
    starter.give(pid, take_batch(st, pid, st.starters[pid]))
  end
end

-- A starter reported the last start of its batch: the next batch, or it is idle.
local function batch_done(st, pid, s)
  local records, n = s.records, s.n
  for i = 1, n do records[i] = nil end
  s.n = 0
  local msg = take_batch(st, pid, s)
  if msg then return starter.give(pid, msg) end
  starter.linked(pid)
  if #st.idle < starter.IDLE then
    st.idle[#st.idle + 1] = pid
  else
    pogo.demonitor(s.ref)
    st.starters[pid] = nil
    st.start_refs[s.ref] = nil
    starter.stop(pid)
  end
end

-- The start of the `i`-th child of starter `from`'s batch is over: its record,
-- if that start is still the one the record waits for.
local function start_done(s, from, i)
  s.done = i
  local c = s.records[i]
  local proc = c.proc
  if proc and proc.status == "starting" and proc.starter == from then return c end
end

-- Record `c`'s start failed with `err`: a temporary child is terminated
-- cluster-wide; any other is retried after a backoff.
local function failed(st, c, err)
  local proc = c.proc
  local id = proc.request.spec.id
  proc.starter = nil
  if proc.cancel then -- it was to stop (terminated) while it started
    drop(st, c)
    state.mark(st, c)
    return
  end
  if proc.request.spec.restart == "temporary" then
    drop(st, c)
    requests.terminate(st, id)
    events.report(st, report.start_error(sup_name(st), id, err, "temporary: not retried"))
    return
  end
  -- the handoff data it was given (a start can fail for a moment: the old
  -- copy still holds its cluster-wide name, say), or that came while it
  -- started: for the next start
  if proc.handoff ~= nil then c.handoff, c.handoff_from = proc.handoff, proc.handoff_from end
  if proc.late ~= nil and c.handoff == nil then c.handoff, c.handoff_from = proc.late, proc.late_from end
  proc.handoff, proc.handoff_from, proc.late, proc.late_from = nil, nil, nil, nil
  local before = local_part(proc)
  proc.pid, proc.status, proc.error = nil, "restarting", err
  recount(st, c, before)
  events.start_failed(st, id, err)
  proc.retry_at = now() + back_off(st, proc)
  proc.restarted = true
  st.timed[c] = true
  events.report(st, report.start_error(sup_name(st), id, err, "retrying in " .. proc.backoff .. " ms"))
end

--- A starter's `{"$dsup_start", starter, i, pid | nil, err, takes}`: take the child
-- over (link it, join its pg group, tell the listeners), or note the failure.
-- After the last child of its batch the starter is told it may let them go.
-- @tparam table st
-- @param from the starter
-- @tparam integer i the child's place in the starter's batch
-- @param pid the child, or nil
-- @param err why the start failed
-- @param takes whether the child takes part in the handoff
function M.started(st, from, i, pid, err, takes)
  local s = st.starters[from]
  local c = s and i <= s.n and start_done(s, from, i)
  if not c then
    if pid then pogo.exit(pid, "kill") end -- not ours (any more): no child without a supervisor
  elseif not pid then
    failed(st, c, err)
  else
    local proc = c.proc
    pogo.link(pid) -- a child already dead gives {"EXIT", pid, "noproc"} (see exit_signal)
    local spec = proc.request.spec
    local id = spec.id
    local before = local_part(proc)
    proc.pid, proc.status, proc.error, proc.takes = pid, "running", nil, takes
    proc.handoff, proc.handoff_from = nil, nil -- (its init had it)
    proc.cancel, proc.kill_at = nil, nil -- (a stop meanwhile: recheck stops it now)
    if proc.late ~= nil then -- handoff data that came while it started
      handoff.deliver_late(st, c, proc.late)
      proc.late, proc.late_from = nil, nil
    end
    recount(st, c, before)
    st.by_pid[pid] = c
    st.handed[#st.handed + 1] = c
    node_stop.track(pid)
    if proc.restarted then
      proc.restarted = nil
      events.report(st, report.restart(sup_name(st), id, pid))
    end
    if spec.restart == "temporary" then st.memory.ran[proc.request.uid] = true end
    pg.join(st.scope, { "child", id }, pid)
    state.touch(st, c)
    local from_node = c.last_node
    c.last_node = st.me
    events.notify(st, "child_started", id, pid)
    if from_node and from_node ~= st.me then events.notify(st, "child_moved", id, from_node, st.me) end
    -- what changed while it started (its owner, its request) is looked at now
    if proc.recheck then
      proc.recheck = nil
      state.mark(st, c)
    end
  end
  if s and i == s.n then batch_done(st, from, s) end
end

--- The DOWN of monitor `ref`: a starter that died (its unreported starts
-- fail), or one asked for the exit reason of its child.
-- @tparam table st
-- @param ref
-- @param reason
-- @treturn boolean whether the ref was one of ours
function M.starter_down(st, ref, reason)
  local from = st.start_refs[ref]
  if from then
    local s = st.starters[from]
    st.starters[from], st.start_refs[ref] = nil, nil
    for k = #st.idle, 1, -1 do
      if st.idle[k] == from then table.remove(st.idle, k) end
    end
    for i = s.done + 1, s.n do
      local c = start_done(s, from, i)
      if c then failed(st, c, reason) end
    end
    return true
  end
  local c = st.awaiting[ref]
  if c then
    st.awaiting[ref] = nil
    M.exited(st, c, "noproc")
    return true
  end
  return false
end

--- `{"EXIT", pid, reason}` of record `c`'s child. A "noproc" right after the
-- hand-over may hide the real reason, which the starter has: it is asked for
-- it (see starter.lua).
-- @tparam table st
-- @tparam table c
-- @param reason
function M.exit_signal(st, c, reason)
  local proc = c.proc
  if reason == "noproc" and proc.starter and not proc.awaiting then
    proc.awaiting = pogo.monitor(proc.starter)
    st.awaiting[proc.awaiting] = c
    return
  end
  M.exited(st, c, reason)
end

--- The mailbox is drained: an EXIT that our link to a child already dead
-- queued at its hand-over has been read by now, so the children handed over
-- since the last call need their starters no more.
-- @tparam table st
function M.handed_over(st)
  local handed = st.handed
  if #handed == 0 then return end
  for i = 1, #handed do
    local proc = handed[i].proc
    if proc and not proc.awaiting then proc.starter = nil end
    handed[i] = nil
  end
end

--- `{"$dsup_died", pid, reason}`: the starter saw the child die before it
-- let it go. Used only if the supervisor waits for it.
-- @tparam table st
-- @param pid
-- @param reason
function M.died(st, pid, reason)
  local c = st.by_pid[pid]
  local proc = c and c.proc
  if not proc or proc.pid ~= pid or not proc.awaiting then return end
  pogo.demonitor(proc.awaiting)
  st.awaiting[proc.awaiting] = nil
  M.exited(st, c, reason)
end

--- Stop record `c`'s child here (if it runs): "shutdown", then "kill" after
-- its shutdown time. Its exit (`exited`) ends it. A child still starting is
-- looked at again once it is handed over. Given `dest` (the supervisor of
-- the node the child moves to, or of the copy that stays after a netsplit),
-- a child that takes part in the handoff is asked to hand its state to
-- `dest` instead of "shutdown" (handoff.lua).
-- @tparam table st
-- @tparam table c
-- @param[opt] dest pid
function M.stop(st, c, dest)
  local proc = c.proc
  if not proc or proc.status == "stopping" then return end
  if proc.status == "starting" then
    proc.recheck = true -- (looked at again once its start is reported)
    -- a start that does not end within the child's shutdown time (one that
    -- blocks) is ended with its starter (`due`)
    local shutdown = proc.request.spec.shutdown
    if proc.starter and not proc.cancel and shutdown ~= "infinity" then
      proc.cancel = true
      proc.kill_at = now() + (shutdown == "brutal_kill" and 0 or shutdown)
      st.timed[c] = true
    end
    return
  end
  if not pogo.is_pid(proc.pid) then return drop(st, c) end
  proc.status = "stopping" -- (still active: its part of the local counts stays)
  local shutdown = proc.request.spec.shutdown
  if shutdown == "brutal_kill" then
    pogo.exit(proc.pid, "kill")
  else
    if handoff.applies(proc, dest) then
      proc.handing = true
      -- (via: should `dest` go before it answers, the data comes back to this
      -- supervisor, which keeps it for the child's next start)
      handoff.ask(proc.pid, proc.request.spec.id, dest, st.pid)
    else
      pogo.exit(proc.pid, "shutdown")
    end
    if shutdown ~= "infinity" then
      proc.kill_at = now() + shutdown
      st.timed[c] = true
    end
  end
end

-- Whether an exit reason is pogo.registry's {"name_conflict", name}.
local function lost_name(reason)
  return type(reason) == "table" and reason[1] == "name_conflict" and #reason == 2
end

--- Record `c`'s child exited with `reason`: forgotten if it was stopped,
-- terminated cluster-wide if its restart type says so, else restarted.
-- @tparam table st
-- @tparam table c
-- @param reason
function M.exited(st, c, reason)
  local proc = c.proc
  local id = proc.request.spec.id
  st.by_pid[proc.pid] = nil
  if proc.awaiting then
    st.awaiting[proc.awaiting] = nil
    pogo.demonitor(proc.awaiting)
  end
  local pid, killed_after = proc.pid, proc.killed_after
  local before = local_part(proc)
  proc.pid, proc.kill_at, proc.starter, proc.awaiting, proc.handing = nil, nil, nil, nil, nil
  proc.killed_after = nil
  recount(st, c, before)
  events.notify(st, "child_stopped", id, reason)
  if proc.status ~= "stopping" and lost_name(reason) then
    -- a copy that lost the conflict over its cluster-wide name after a netsplit
    -- (pogo.registry): the copy that stays runs on; reconcile decides (it moves
    -- to its owner)
    events.log(st, "info", "child %s (%s) lost its name to the copy on another node: it ends here",
      events.describe(id), tostring(pid))
    drop(st, c)
    state.mark(st, c)
    return
  end
  if proc.status ~= "stopping" and not M.is_normal(reason) then
    events.report(st, report.crash(sup_name(st), id, pid, reason))
  elseif proc.status == "stopping" and not report.stopped_as_asked(reason, proc.request.spec) then
    events.report(st, report.shutdown_error(sup_name(st), id, pid, reason, killed_after))
  end
  if proc.status == "stopping" then
    drop(st, c)
    state.mark(st, c)
    return
  end
  local restart = proc.request.spec.restart
  if restart == "temporary" or (restart == "transient" and M.is_normal(reason)) then
    drop(st, c)
    requests.terminate(st, id)
    return
  end
  -- restart intensity: within it restart at once, beyond it back off
  local t = now()
  proc.status = "restarting"
  events.restarting(st, id, reason)
  proc.restarted = true
  st.timed[c] = true
  proc.restarts = proc.restarts or intensity.new(st.intensity, st.period)
  if proc.restarts:add(t) then
    proc.retry_at, proc.backoff = t, 0
  else
    proc.retry_at = t + back_off(st, proc)
    proc.error = reason
    events.report(st, report.backoff(sup_name(st), id, st.intensity, st.period, proc.backoff))
  end
end

--- Act on the deadlines that have come: restart the children whose retry is
-- due (if they still belong here), kill those that outlived their shutdown time.
-- @tparam table st
-- @tparam number t now
function M.due(st, t)
  if next(st.timed) == nil then return end
  for c in pairs(st.timed) do
    local proc = c.proc
    if not proc or st.children[c.key] ~= c then
      st.timed[c] = nil
    elseif proc.status == "restarting" then
      if proc.retry_at <= t then
        local req = st.requests[proc.request.uid]
        local live = req and not requests.terminated(st, req.uid)
        if live and (placement.owner(st, c, req) == st.me or st.redistribute == "on_failure") then
          M.start(st, c, req)
        else
          drop(st, c)
          state.mark(st, c)
        end
      end
    elseif proc.status == "starting" and proc.cancel and proc.kill_at then
      if proc.kill_at <= t then
        proc.kill_at = nil
        st.timed[c] = nil
        -- its start still runs: the starter goes, and the starts of its batch with it
        if proc.starter then
          events.log(st, "warning", "the start of child %s did not end within its shutdown time after it "
            .. "was to stop: its starter is killed", events.describe(proc.request.spec.id))
          pogo.exit(proc.starter, "kill")
        end
      end
    elseif proc.status == "stopping" and proc.kill_at then
      if proc.kill_at <= t then
        proc.kill_at = nil
        st.timed[c] = nil
        proc.killed_after = proc.request.spec.shutdown
        pogo.exit(proc.pid, "kill")
        if proc.handing then handoff.timed_out(st, proc.request.spec.id, proc.request.spec.shutdown) end
      end
    else
      st.timed[c] = nil
    end
  end
end

--- The records whose child this node runs, starts, restarts or stops (those
-- with a `proc`), each once, in no order. They are found where each status
-- keeps them, not by a walk over every record of the cluster: a running or
-- stopping child in `by_pid`, a restarting one (and a stopping one with a
-- deadline) in `timed`, a starting one in the queue for starters or in a
-- starter's batch. A record that is in none of them has no `proc`
-- (`count_children(sup, "local")`'s counters count the same records, and the
-- cluster specs check the two against each other).
-- @tparam table st
-- @treturn {table,...}
function M.local_records(st)
  local out, seen, n = {}, {}, 0
  local children = st.children
  local function add(c)
    if c and c.proc and not seen[c] and children[c.key] == c then
      seen[c] = true
      n = n + 1
      out[n] = c
    end
  end
  for _, c in pairs(st.by_pid) do add(c) end
  for c in pairs(st.timed) do add(c) end
  for i = st.to_start_head, st.to_start_tail do add(st.to_start[i]) end
  for _, s in pairs(st.starters) do
    for i = 1, s.n do add(s.records[i]) end
  end
  return out
end

--- Whether a start is on its way here: a child waits for a starter, or a
-- starter has been at its batch for less than `starter.STUCK_MS` (one that
-- takes longer waits for a start function that may never return).
-- @tparam table st
-- @tparam number t now
-- @treturn boolean
function M.starting(st, t)
  if st.to_start_head <= st.to_start_tail then return true end
  for _, s in pairs(st.starters) do
    if s.n > 0 and t - s.since < starter.STUCK_MS then return true end
  end
  return false
end

--- The soonest retry or kill deadline, or when a starter may be added for
-- the queued starts (or when the starts look stuck, for a peer waiting for an
-- answer about the ring); or nil.
-- @tparam table st
-- @treturn ?number
function M.next_deadline(st)
  local soonest
  if st.to_start_head <= st.to_start_tail or #st.ring_askers > 0 then
    for _, s in pairs(st.starters) do
      if s.n > 0 and (soonest == nil or s.since + starter.STUCK_MS < soonest) then
        soonest = s.since + starter.STUCK_MS
      end
    end
  end
  if next(st.timed) == nil then return soonest end
  for c in pairs(st.timed) do
    local proc = c.proc
    local d = proc and (proc.status == "restarting" and proc.retry_at or proc.kill_at)
    if d and (soonest == nil or d < soonest) then soonest = d end
  end
  return soonest
end

--- Terminate every child this node runs, all at once (as OTP's
-- simple_one_for_one supervisor does), each as its spec says: "shutdown",
-- then "kill" after its `shutdown` ms ("brutal_kill": at once; "infinity":
-- never), and wait until all are gone. The supervisor is terminating:
-- handoff data that comes meanwhile, for children it will not start, is
-- passed on to their owners and the stop waits for their answers
-- (handoff.on_passing); a call (`pogo.call`: a child's `terminate` may call
-- its own supervisor) is answered with `answer(request)` at once; every
-- other message is dropped. (Children still starting are ended by their
-- starters, which see the supervisor go.) With `dest_of`, a child that takes
-- part in the handoff is asked to hand its state to `dest_of(record)` (its
-- new owner's supervisor) instead of "shutdown". The state changes only
-- with `st.version` odd (views.lua), as in the supervisor's callbacks.
-- @tparam table st
-- @tparam[opt] function dest_of
-- @tparam[opt] function answer the reply to a call's request (nil: calls are dropped too)
function M.shutdown_all(st, dest_of, answer)
  local waiting, n, timed = {}, 0, {}
  for _, c in pairs(st.children) do
    local proc = c.proc
    local pid = proc and proc.pid
    if pogo.is_pid(pid) then
      local shutdown_ms = proc.request.spec.shutdown
      local w = { pid = pid }
      waiting[pogo.monitor(pid)] = w
      n = n + 1
      pogo.unlink(pid)
      local dest = dest_of and dest_of(c)
      if shutdown_ms == "brutal_kill" then
        pogo.exit(pid, "kill")
      elseif handoff.applies(proc, dest) then
        w.id = proc.request.spec.id
        handoff.ask(pid, w.id, dest, st.pid)
      else
        pogo.exit(pid, "shutdown")
      end
      if shutdown_ms ~= "brutal_kill" and shutdown_ms ~= "infinity" then
        w.kill_at, w.kill_ms = now() + shutdown_ms, shutdown_ms
        timed[#timed + 1] = w
      end
    end
  end
  table.sort(timed, function(a, b) return a.kill_at < b.kill_at end)
  local k = 1
  local passing = st.passing -- the data passed on, whose answers the stop waits for
  while n > 0 or passing.n > 0 do
    while timed[k] and timed[k].done do k = k + 1 end
    local wait = timed[k] and math.max(0, timed[k].kill_at - now()) or nil
    local pass_wait = passing.n > 0 and math.max(0, passing.until_ms - now()) or nil
    if pass_wait and (wait == nil or pass_wait < wait) then wait = pass_wait end
    local m = pogo.receive(wait)
    if m == nil then
      local t = now()
      if passing.n > 0 and passing.until_ms <= t then handoff.give_up_passing(st) end
      while timed[k] and timed[k].kill_at <= t do
        local w = timed[k]
        if not w.done then
          pogo.exit(w.pid, "kill")
          if w.id ~= nil then handoff.timed_out(st, w.id, w.kill_ms) end
        end
        k = k + 1
      end
    elseif type(m) == "table" then -- (anything else is dropped)
      if m[1] == "DOWN" and waiting[m[2]] then
        waiting[m[2]].done = true
        waiting[m[2]] = nil
        n = n - 1
      elseif m[1] == "$call" and type(m[2]) == "table" then
        if answer then pcall(pogo.reply, m[2], answer(m[3])) end
      else
        st.version = st.version + 1
        handoff.on_passing(st, m) -- data that came meanwhile, or an answer to data passed on
        st.version = st.version + 1
      end
    end
  end
end

return M
