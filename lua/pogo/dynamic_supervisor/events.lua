--- What a distributed supervisor tells the outside: listener events and log lines.
--
-- Listeners are tables of optional functions, one per event: `node_up(node)`,
-- `node_down(node, reason)` (a node's supervisor joined or left the ring),
-- `child_started(id, pid)`, `child_stopped(id, reason)` and
-- `child_moved(id, from_node, to_node)` (on the node where it happened).
--
-- They run in a notifier process of the node (one per supervisor, started
-- only when there are listeners), never inside the supervisor: the
-- supervisor sends each event to the notifier and goes on, and the notifier
-- calls the listeners in event order. So a listener may call its own
-- supervisor (`whereis`, `start_child`, ...), block, or be slow, and the
-- supervisor keeps working; later events wait for it. A listener that raises
-- is logged and the others still run. The notifier monitors the supervisor:
-- it calls the listeners for the events sent before the supervisor went,
-- then ends. The supervisor monitors the notifier and starts a new one if a
-- listener ended it (`pogo.exit`).
--
-- Log lines go to `pogo.log` (module `pogo.dynamic_supervisor`, with the
-- supervisor's name as `supervisor`), or to the `log` option's function; so
-- do the supervisor reports (`report`, see `pogo.supervisor_report`).
--
-- Every event, and every restart and failed start, is also counted for the
-- tools that look at the cluster (`pogo.observer.timeline`; a counter
-- increment, whether or not there are listeners).
-- @module pogo.dynamic_supervisor.events
local pogo = require "pogo"
local supervisor_report = require "pogo.supervisor_report"
local timeline = require "pogo.observer.timeline"

local M = {}

--- The events a listener may handle.
M.EVENTS = { "node_up", "node_down", "child_started", "child_stopped", "child_moved" }

--- Check the `listeners` option.
-- @param listeners
-- @treturn ?string why it is not an array of listener tables, or nil
function M.check(listeners)
  if listeners ~= nil and type(listeners) ~= "table" then return "listeners must be an array of tables" end
  for _, l in ipairs(listeners or {}) do
    if type(l) ~= "table" then return "listeners must be tables of functions" end
    for _, ev in ipairs(M.EVENTS) do
      if l[ev] ~= nil and type(l[ev]) ~= "function" then return "listener " .. ev .. " must be a function" end
    end
    for k in pairs(l) do -- (a misspelled event was accepted, and never called)
      local known = false
      for _, ev in ipairs(M.EVENTS) do known = known or k == ev end
      if not known then
        return "unknown listener event: " .. tostring(k) .. " (events: " .. table.concat(M.EVENTS, ", ") .. ")"
      end
    end
  end
end

--- A child id as text for log lines and errors: `{"job", 42}` for a table
-- (see `pogo.supervisor_report.describe`).
-- @function describe
-- @param id
-- @treturn string
M.describe = supervisor_report.describe
timeline.describe_with(M.describe)

--- A log line: to `opts.log(level, msg)` if given, else to `pogo.log`.
-- @tparam table st the supervisor's state
-- @tparam string level "debug", "info", "notice", "warning" or "error"
-- @tparam string fmt `string.format` format
function M.log(st, level, fmt, ...)
  if st.opts.log then
    local ok, msg = pcall(string.format, fmt, ...)
    pcall(st.opts.log, level, ok and msg or fmt)
  else
    st.logger.log(level, fmt, ...)
  end
end

--- A supervisor report (the `level, msg, fields` of a `pogo.supervisor_report`
-- function): to `pogo.log` with its fields, or to the `log` option's function.
-- @tparam table st the supervisor's state
-- @tparam string level
-- @tparam string msg
-- @tparam table fields
function M.report(st, level, msg, fields)
  if st.opts.log then
    pcall(st.opts.log, level, msg)
  else
    st.logger.with(fields).log(level, msg)
  end
end

-- Call every listener of `event` with the arguments.
local function call_listeners(st, event, ...)
  for _, l in ipairs(st.listeners) do
    local f = l[event]
    if f then
      local ok, err = pcall(f, ...)
      if not ok then M.log(st, "error", "listener %s raised: %s", event, tostring(err)) end
    end
  end
end

local function notifier(st, sup)
  local ref = pogo.monitor(sup)
  while true do
    local m = pogo.receive()
    if type(m) == "table" then
      if m[1] == "DOWN" and m[2] == ref then return end
      if m.n then call_listeners(st, table.unpack(m, 1, m.n)) end
    end
  end
end

--- Start the notifier of the calling supervisor (if it has listeners), monitored.
-- @tparam table st the supervisor's state
function M.start(st)
  if #st.listeners == 0 then return end
  st.notifier, st.notifier_ref = pogo.spawn_monitor(notifier, st, pogo.self())
end

--- The DOWN of monitor `ref`: if it is the notifier's, start a new one.
-- @tparam table st
-- @param ref
-- @param reason
-- @treturn boolean whether it was the notifier's
function M.notifier_down(st, ref, reason)
  if ref ~= st.notifier_ref then return false end
  M.log(st, "error", "the listener notifier exited (%s); starting a new one", tostring(reason))
  M.start(st)
  return true
end

--- Have the notifier call every listener of `event` with the arguments.
-- @tparam table st the supervisor's state
-- @tparam string event one of `EVENTS`
function M.notify(st, event, ...)
  timeline.supervisor_event(st, event, ...)
  local n = st.notifier
  if n then pogo.send(n, table.pack(event, ...)) end
end

--- The supervisor's name for tools and logs: its `name`, else its scope.
-- @tparam table st
-- @treturn string
function M.name(st)
  return tostring(st.name or st.scope)
end

--- Count a restart of child `id` (it exited with `reason` and starts again
-- here) for the tools (`pogo.observer.timeline`).
-- @tparam table st
-- @param id
-- @param reason
function M.restarting(st, id, reason)
  timeline.supervisor_event(st, "restart", id, reason)
end

--- Count a failed start of child `id` for the tools.
-- @tparam table st
-- @param id
-- @param err
function M.start_failed(st, id, err)
  timeline.supervisor_event(st, "start_failed", id, err)
end

--- Whether the calling process is this supervisor's notifier (a listener runs).
-- @tparam table st
-- @treturn boolean
function M.in_listener(st)
  return st.notifier ~= nil and st.notifier == pogo.self()
end

return M
