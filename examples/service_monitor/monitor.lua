--- A service monitor: one child per service, probing its TCP port with luv.
--
-- `start_link(service)` starts a process that connects to
-- `service.host:service.port` every `service.interval_ms` (default 200 ms) and
-- remembers whether the service answered. It reports to the process
-- registered as `service.report` on `service.report_node` (if given):
-- `{"monitor_started", name, node, pid, ns}` when it starts (`ns` is
-- `uv.hrtime()`, a monotonic clock shared by the processes of one host), and
-- `{"status", name, node, "up" | "down"}` when the status changes.
-- Calls: `"status"` -> {name =, up =, checks =, node =}.
-- @module service_monitor.monitor
local pogo = require "pogo"
local uv = require "luv"

local M = {}

-- Connect once; sends {"probe", ok} to `me` when done (runs as a luv callback).
local function probe(me, host, port, tag)
  local tcp = uv.new_tcp()
  local done = false
  local timer = uv.new_timer()
  local function finish(ok)
    if done then return end
    done = true
    timer:stop(); timer:close()
    if not tcp:is_closing() then tcp:close() end
    pogo.send(me, { "probe", tag, ok })
  end
  timer:start(500, 0, function() finish(false) end)
  local ok = pcall(tcp.connect, tcp, host, port, function(err) finish(err == nil) end)
  if not ok then finish(false) end
end

local function report(service, msg)
  if not service.report then return end
  local dest = service.report_node and { service.report, service.report_node } or service.report
  pcall(pogo.send, dest, msg)
end

--- Start a monitor for `service` = {name =, host =, port =, interval_ms =, report =, report_node =}.
function M.start_link(service)
  return pogo.spawn_link(function()
    local me = pogo.self()
    local state = { name = service.name, up = nil, checks = 0, node = pogo.node() }
    report(service, { "monitor_started", service.name, pogo.node(), me, uv.hrtime() })
    local interval = service.interval_ms or 200
    local seq = 0
    local next_probe = pogo.now()
    while true do
      local wait = next_probe - pogo.now()
      local m = pogo.receive(wait > 0 and wait or 0)
      if m == nil then
        seq = seq + 1
        probe(me, service.host or "127.0.0.1", service.port, seq)
        next_probe = pogo.now() + interval
      elseif m[1] == "probe" then
        state.checks = state.checks + 1
        if m[3] ~= state.up then
          state.up = m[3]
          report(service, { "status", service.name, pogo.node(), m[3] and "up" or "down" })
        end
      elseif m[1] == "$call" then
        pogo.reply(m[2], state)
      end
    end
  end)
end

--- A child spec: the child id is the service name.
function M.child_spec(service)
  return { id = service.name, start = { "service_monitor.monitor", "start_link", service }, shutdown = 1000 }
end

return M
