--- The node's own service processes (the `"$rpc"` server, the registry
-- process of `pogo.registry`), kept running as OTP's kernel supervisor keeps
-- `rex` and `global`: a guard process monitors one and starts it again when
-- it exits (killed by hand, out of memory under `ulimit -v`), with a warning.
-- Without it, every later rpc to the node got `noproc`, and a node's names
-- vanished from the others until something on it called the registry.
--
--     service.keep("$rpc", function() return pogo.spawn(...) end)
--
-- The guard runs no user code and holds nothing but the monitor; if it is
-- killed itself, the next `keep` of that name starts another.
-- @module pogo.service
local pogo = require "pogo"
local log = require("pogo.log").with { module = "pogo" }

local M = {}

local guards = {} -- service name -> its guard's pid (per node: every Lua state is a node)

-- Body of the guard of `name`: wait for the service's exit, start it again.
local function guard(name, start)
  while true do
    local pid = pogo.whereis(name)
    if not pid then
      local ok, p = pcall(start)
      if not ok or not pogo.is_pid(p) then
        log.error("the %s process cannot be started again: %s", name, tostring(ok and "no pid" or p))
        guards[name] = nil
        return
      end
      pid = p
    end
    local ref = pogo.monitor(pid)
    local m = pogo.receive(function(x) return type(x) == "table" and x[1] == "DOWN" and x[2] == ref end)
    log.warning("the %s process %s exited (%s): starting it again", name, tostring(pid), tostring(m[4]))
  end
end

--- Keep the service registered as `name` running: start it with `start`
-- (which returns its pid, registered as `name`) if it is not, and make sure
-- a guard watches it.
-- @tparam string name its registered name
-- @tparam function start starts it and registers it; returns its pid
-- @return the service's pid
function M.keep(name, start)
  if type(name) ~= "string" then error("pogo.service.keep: name must be a string, got " .. type(name), 2) end
  if type(start) ~= "function" then error("pogo.service.keep: start must be a function", 2) end
  local pid = pogo.whereis(name) or start()
  local g = guards[name]
  if not (g and pogo.core.alive(g)) then guards[name] = pogo.spawn(guard, name, start) end
  return pid
end

return M
