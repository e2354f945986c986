--- Starting a process that acknowledges its initialisation, in the manner of
-- Erlang's `proc_lib:start_link` / `init_ack`: the caller gets the pid once the
-- new process says it is ready, or the reason it gave up, or its exit reason
-- if it died first. Used by `pogo.server` and both supervisors.
-- @module pogo.proc_lib
local pogo = require "pogo"

local M = {}

--- Start `body(ack, parent, ...)` and wait until it calls `ack(true)` (ready)
-- or `ack(false, reason)` (failed: it then unlinks from the parent, so a
-- failed start never kills the caller).
-- @tparam boolean link link the new process to the caller
-- @tparam[opt] integer timeout_ms give up (and kill it) after this long; nil waits
-- @tparam function body
-- @return pid, or nil and the reason
function M.start(link, timeout_ms, body, ...)
  local parent, ref = pogo.self(), pogo.make_ref()
  local function ack(ok, reason)
    if not ok and link then pogo.unlink(parent) end
    pogo.send(parent, { ref, ok and true or false, reason })
  end
  local pid = (link and pogo.spawn_link or pogo.spawn)(body, ack, parent, ...)
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

return M
