--- The child processes this node runs: start, stop, exit, restart with backoff.
--
-- A record's `proc` is what this node does with its child:
--
--     proc = {
--       status = "starting" | "running" | "restarting" | "stopping",
--       pid = pid,          -- while starting, running or stopping
--       request = request,  -- the request it was started from (requests.lua)
--       error = reason,     -- why its last start failed (or it exited past the intensity)
--       restarts = window,  -- its pogo.restart_intensity window (from its first exit)
--       backoff = ms,       -- the delay before the next retry (0: restart at once)
--       retry_at = ms,      -- restarting: when it is started again
--       kill_at = ms,       -- stopping: when it is killed (its spec's shutdown time)
--     }
--
-- A child is linked to the supervisor (which traps exits) and joins the pg
-- group `{"child", id}`. It is restarted where it runs, at once within the
-- restart intensity, beyond it (and after a failed start) with a backoff
-- doubling from `min_backoff_ms` to `max_backoff_ms`, so a child that cannot
-- start never takes the supervisor down. A temporary child, or a transient one
-- that exits normally, is terminated cluster-wide. Stopping sends "shutdown"
-- and kills after the spec's `shutdown` ms ("brutal_kill": kill at once).
-- @module pogo.dynamic_supervisor.children
local pogo = require "pogo"
local pg = require "pogo.pg"
local child_spec = require "pogo.child_spec"
local intensity = require "pogo.restart_intensity"
local state = require "pogo.dynamic_supervisor.state"
local requests = require "pogo.dynamic_supervisor.requests"
local events = require "pogo.dynamic_supervisor.events"

local M = {}

local now = pogo.now

-- The next retry delay: doubled, within [min_backoff, max_backoff].
local function back_off(st, proc)
  proc.backoff = math.min(math.max(proc.backoff * 2, st.min_backoff), st.max_backoff)
  return proc.backoff
end

-- This node runs no child for record `c` any more.
local function drop(st, c)
  c.proc = nil
  st.timed[c] = nil
end

--- Start record `c`'s child here from request `req`. A start that fails is
-- retried after a backoff.
-- @tparam table st
-- @tparam table c
-- @tparam table req
function M.start(st, c, req)
  local proc = c.proc
  if not proc then
    proc = { backoff = 0 } -- its restart window comes with its first exit
    c.proc = proc
  end
  local id = req.spec.id
  proc.request, proc.status = req, "starting"
  local pid, err = child_spec.start(req.spec)
  if not pid or not pogo.is_pid(pid) then
    err = err or "start did not return a pid"
    proc.pid, proc.status, proc.error = nil, "restarting", err
    proc.retry_at = now() + back_off(st, proc)
    st.timed[c] = true
    events.log(st, "warning", "child %s failed to start (retry in %d ms): %s", tostring(id), proc.backoff,
      tostring(err))
    return
  end
  pogo.link(pid)
  proc.pid, proc.status, proc.error, proc.retry_at = pid, "running", nil, nil
  st.timed[c] = nil
  st.by_pid[pid] = c
  pg.join(st.scope, { "child", id }, pid)
  local from = c.last_node
  c.last_node = st.me
  events.notify(st, "child_started", id, pid)
  if from and from ~= st.me then events.notify(st, "child_moved", id, from, st.me) end
end

--- Stop record `c`'s child here (if it runs): "shutdown", then "kill" after
-- its shutdown time. Its exit (`exited`) ends it.
-- @tparam table st
-- @tparam table c
function M.stop(st, c)
  local proc = c.proc
  if not proc or proc.status == "stopping" then return end
  if not pogo.is_pid(proc.pid) then return drop(st, c) end
  proc.status = "stopping"
  local shutdown = proc.request.spec.shutdown
  if shutdown == "brutal_kill" then
    pogo.exit(proc.pid, "kill")
  else
    pogo.exit(proc.pid, "shutdown")
    if shutdown ~= "infinity" then
      proc.kill_at = now() + shutdown
      st.timed[c] = true
    end
  end
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
  proc.pid, proc.kill_at = nil, nil
  events.notify(st, "child_stopped", id, reason)
  if proc.status == "stopping" then
    drop(st, c)
    state.mark(st, c)
    return
  end
  local restart = proc.request.spec.restart
  if restart == "temporary" or (restart == "transient" and (reason == "normal" or reason == "shutdown")) then
    drop(st, c)
    requests.terminate(st, id)
    return
  end
  -- restart intensity: within it restart at once, beyond it back off
  local t = now()
  proc.status = "restarting"
  st.timed[c] = true
  proc.restarts = proc.restarts or intensity.new(st.intensity, st.period)
  if proc.restarts:add(t) then
    proc.retry_at, proc.backoff = t, 0
  else
    proc.retry_at = t + back_off(st, proc)
    proc.error = reason
    events.log(st, "warning", "child %s exceeded %d restarts in %d ms; retrying in %d ms",
      tostring(id), st.intensity, st.period, proc.backoff)
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
        if live and (st.ring:key_to_node(c.id) == st.me or st.redistribute == "on_failure") then
          M.start(st, c, req)
        else
          drop(st, c)
          state.mark(st, c)
        end
      end
    elseif proc.status == "stopping" and proc.kill_at then
      if proc.kill_at <= t then
        proc.kill_at = nil
        st.timed[c] = nil
        pogo.exit(proc.pid, "kill")
      end
    else
      st.timed[c] = nil
    end
  end
end

--- The soonest retry or kill deadline, or nil.
-- @tparam table st
-- @treturn ?number
function M.next_deadline(st)
  if next(st.timed) == nil then return nil end
  local soonest
  for c in pairs(st.timed) do
    local proc = c.proc
    local d = proc and (proc.status == "restarting" and proc.retry_at or proc.kill_at)
    if d and (soonest == nil or d < soonest) then soonest = d end
  end
  return soonest
end

--- Terminate every child this node runs, each as its spec says, and wait for them.
-- @tparam table st
function M.shutdown_all(st)
  for _, c in pairs(st.children) do
    local proc = c.proc
    if proc and pogo.is_pid(proc.pid) then child_spec.shutdown(proc.pid, proc.request.spec.shutdown) end
  end
end

return M
