--- Supervisor reports, as OTP's supervisor writes them, for both supervisors.
--
-- Each report is one `pogo.log` event: a level, a one-line message that
-- names the supervisor, the child and what happened, and fields a handler
-- can read (the default handler writes them as `key=value`, newlines as
-- `\n`, so a report stays one line):
--
-- * `report`: what happened: `"crash"` (OTP's `child_terminated`: a child
--   exited abnormally; level error), `"restart"` (the progress report of a
--   restarted child; level info), `"start_error"` (a child could not be
--   started; level error), `"give_up"` (the restart intensity was exceeded
--   and a local supervisor shuts down, OTP's `shutdown` with
--   `reached_max_restart_intensity`; level error), `"backoff"` (the same for
--   a child of the distributed supervisor, which never gives up: it restarts
--   that child after a backoff; level error), `"shutdown_error"` (a child
--   asked to stop did not end as asked: it was killed at the end of its
--   `shutdown` time, or it ended with another reason, its `terminate`
--   raised say; OTP's `shutdown_error`; level error);
-- * `supervisor`: its name, or its pid as text;
-- * `id`: the child id as text (`describe`);
-- * `pid`: the child's pid (the supervisor's for `give_up`);
-- * `reason`: the exit reason, or the start error, as text (a crash's error
--   value);
-- * `traceback`: for a crash, the traceback of the error;
-- * `restarts`, `period_ms`: the intensity, for `give_up` and `backoff`;
-- * `shutdown_ms`: for a `shutdown_error` of a child killed at the end of
--   its `shutdown` time, that time.
--
-- Each function returns `level, msg, fields`; the supervisor logs them
-- through its own logger (see `log`).
-- @module pogo.supervisor_report
local M = {}

--- A value as text for log lines and errors: `{"job", 42}` for a table
-- (nested tables too, a few levels deep), `tostring` for the rest.
-- @param v
-- @param[opt] depth the nesting level (strings inside a table are quoted)
-- @treturn string
function M.describe(v, depth)
  if type(v) == "string" then return depth and string.format("%q", v) or v end
  if type(v) ~= "table" or (depth or 0) > 3 then return tostring(v) end
  local mt = getmetatable(v)
  if mt and mt.__tostring then return tostring(v) end
  local parts = {}
  for i, x in ipairs(v) do parts[i] = M.describe(x, (depth or 0) + 1) end
  local keys = {}
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > #v then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. " = " .. M.describe(v[k], (depth or 0) + 1) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

--- An exit reason as text, and its traceback when it is a crash (a table
-- `{error =, traceback =}`, as a process or a server handler that raised
-- gives).
-- @param reason
-- @treturn string
-- @treturn ?string the traceback
function M.reason(reason)
  if type(reason) == "table" and type(reason.traceback) == "string" then
    local ok, text = pcall(M.describe, reason.error)
    return ok and text or "?", reason.traceback
  end
  local ok, text = pcall(M.describe, reason)
  return ok and text or "?"
end

--- Whether `reason` is a normal end, no crash: "normal", "shutdown" or
-- `{"shutdown", ...}` (OTP's rule).
-- @param reason
-- @treturn boolean
function M.is_normal(reason)
  return reason == "normal" or reason == "shutdown" or (type(reason) == "table" and reason[1] == "shutdown")
end

--- A child exited abnormally.
-- @tparam string sup the supervisor, as text
-- @param id the child id
-- @param pid the child
-- @param reason its exit reason
-- @treturn string level
-- @treturn string msg
-- @treturn table fields
function M.crash(sup, id, pid, reason)
  local text, traceback = M.reason(reason)
  local ids = M.describe(id)
  return "error", string.format("child %s (%s) of supervisor %s crashed: %s", ids, tostring(pid), sup, text),
    { report = "crash", supervisor = sup, id = ids, pid = pid, reason = text, traceback = traceback }
end

--- A child was started again after it exited (or failed to start).
-- @tparam string sup
-- @param id
-- @param pid its new process
-- @treturn string level
-- @treturn string msg
-- @treturn table fields
function M.restart(sup, id, pid)
  local ids = M.describe(id)
  return "info", string.format("supervisor %s restarted child %s: %s", sup, ids, tostring(pid)),
    { report = "restart", supervisor = sup, id = ids, pid = pid }
end

--- A child could not be started.
-- @tparam string sup
-- @param id
-- @param err the error its start gave
-- @tparam[opt] string what more, e.g. "retrying in 40 ms"
-- @treturn string level
-- @treturn string msg
-- @treturn table fields
function M.start_error(sup, id, err, what)
  local text = M.reason(err)
  local ids = M.describe(id)
  return "error", string.format("supervisor %s: child %s failed to start%s: %s", sup, ids,
                                what and " (" .. what .. ")" or "", text),
    { report = "start_error", supervisor = sup, id = ids, reason = text }
end

--- A local supervisor gives up: child `id` exited once more than
-- `restarts` times in `period_ms`; it terminates its children and exits
-- with "shutdown".
-- @tparam string sup
-- @param pid the supervisor
-- @param id the child that exited last
-- @tparam integer restarts
-- @tparam number period_ms
-- @treturn string level
-- @treturn string msg
-- @treturn table fields
function M.give_up(sup, pid, id, restarts, period_ms)
  local ids = M.describe(id)
  return "error", string.format("supervisor %s gave up: child %s exceeded %d restarts in %s ms "
                                .. "(reached_max_restart_intensity); shutting down", sup, ids, restarts,
                                tostring(period_ms)),
    { report = "give_up", supervisor = sup, id = ids, pid = pid, reason = "reached_max_restart_intensity",
      restarts = restarts, period_ms = period_ms }
end

--- A distributed supervisor's child exceeded its restart intensity: it is
-- restarted after `backoff_ms` (the supervisor never gives up).
-- @tparam string sup
-- @param id
-- @tparam integer restarts
-- @tparam number period_ms
-- @tparam number backoff_ms
-- @treturn string level
-- @treturn string msg
-- @treturn table fields
function M.backoff(sup, id, restarts, period_ms, backoff_ms)
  local ids = M.describe(id)
  return "error", string.format("supervisor %s: child %s exceeded %d restarts in %s ms; restarting it in %s ms",
                                sup, ids, restarts, tostring(period_ms), tostring(backoff_ms)),
    { report = "backoff", supervisor = sup, id = ids, reason = "reached_max_restart_intensity",
      restarts = restarts, period_ms = period_ms, backoff_ms = backoff_ms }
end

--- Whether a child asked to stop (exit "shutdown", or "kill" when its
-- `shutdown` is "brutal_kill") ended as asked, as OTP's supervisor decides
-- before writing a `shutdown_error`: with "shutdown" ("killed" for
-- "brutal_kill"), or "normal" unless it is permanent (it ended on its own).
-- @param reason its exit reason
-- @tparam table spec its (normalised) spec
-- @treturn boolean
function M.stopped_as_asked(reason, spec)
  if reason == (spec.shutdown == "brutal_kill" and "killed" or "shutdown") then return true end
  return reason == "normal" and spec.restart ~= "permanent"
end

--- A child asked to stop did not end as asked (`stopped_as_asked`).
-- @tparam string sup
-- @param id
-- @param pid the child
-- @param reason its exit reason
-- @tparam[opt] number killed_after_ms its `shutdown` time, when it was killed at its end
-- @treturn string level
-- @treturn string msg
-- @treturn table fields
function M.shutdown_error(sup, id, pid, reason, killed_after_ms)
  local text, traceback = M.reason(reason)
  local ids = M.describe(id)
  local msg = killed_after_ms
    and string.format("supervisor %s: child %s (%s) did not stop within its shutdown of %s ms: killed", sup, ids,
                      tostring(pid), tostring(killed_after_ms))
    or string.format("supervisor %s: child %s (%s) failed to shut down: %s", sup, ids, tostring(pid), text)
  return "error", msg, { report = "shutdown_error", supervisor = sup, id = ids, pid = pid, reason = text,
                         traceback = traceback, shutdown_ms = killed_after_ms }
end

return M
