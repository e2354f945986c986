--- What a distributed supervisor tells the outside: listener events and log lines.
--
-- Listeners are tables of optional functions, one per event: `node_up(node)`,
-- `node_down(node, reason)` (a node's supervisor joined or left the ring),
-- `child_started(id, pid)`, `child_stopped(id, reason)` and
-- `child_moved(id, from_node, to_node)` (on the node where it happened). They
-- run in the supervisor process, in event order; one that raises is logged
-- and the others still run.
-- @module pogo.dynamic_supervisor.events
local pogo = require "pogo"

local M = {}

--- The events a listener may handle.
M.EVENTS = { "node_up", "node_down", "child_started", "child_stopped", "child_moved" }

--- Check the `listeners` option.
-- @param listeners
-- @treturn ?string why it is not an array of listener tables, or nil
function M.check(listeners)
  for _, l in ipairs(listeners or {}) do
    if type(l) ~= "table" then return "listeners must be tables of functions" end
    for _, ev in ipairs(M.EVENTS) do
      if l[ev] ~= nil and type(l[ev]) ~= "function" then return "listener " .. ev .. " must be a function" end
    end
  end
end

--- A log line: to `opts.log(level, msg)` if given, else to stderr (not "debug").
-- @tparam table st the supervisor's state
-- @tparam string level
-- @tparam string fmt `string.format` format
function M.log(st, level, fmt, ...)
  local msg = string.format(fmt, ...)
  if st.opts.log then
    pcall(st.opts.log, level, msg)
  elseif level ~= "debug" then
    io.stderr:write(string.format("[pogo.dynamic_supervisor %s %s] %s: %s\n",
      tostring(st.name), pogo.node(), level, msg))
  end
end

--- Call every listener of `event` with the arguments.
-- @tparam table st the supervisor's state
-- @tparam string event one of `EVENTS`
function M.notify(st, event, ...)
  for _, l in ipairs(st.listeners) do
    local f = type(l) == "table" and l[event]
    if f then
      local ok, err = pcall(f, ...)
      if not ok then M.log(st, "error", "listener %s raised: %s", event, tostring(err)) end
    end
  end
end

return M
