--- A service monitor: one child per service, probing its TCP port with luv.
--
-- `start_link(service)` starts a process that connects to
-- `service.host:service.port` every `service.interval_ms` (default 200 ms) and
-- remembers whether the service answered, and how many probes it made (its
-- `checks` counter). It reports to the process
-- registered as `service.report` on `service.report_node` (if given):
-- `{"monitor_started", name, node, pid, ns, checks, handed}` when it starts
-- (`ns` is `uv.hrtime()`, a monotonic clock shared by the processes of one
-- host; `handed`: its count came from the instance before it),
-- `{"status", name, node, "up" | "down"}` when the status changes, and
-- `{"handoff", name, node, checks}` when it hands its count over.
--
-- **State handoff.** When its child moves while both nodes are up (a node
-- joins and owns it now, or its node stops with SIGTERM), the distributed
-- supervisor asks it for `handoff(state)`, and the new instance gets that
-- data in `init(service, data)`: the count of checks goes on where it was.
-- After a SIGKILL nothing is handed over, and the count starts from zero.
-- Calls: `"status"` -> {name =, up =, checks =, node =}.
-- @module service_monitor.monitor
local pogo = require "pogo"
local uv = require "luv"
local server = require "pogo.server"

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

-- The monitor is a pogo.server: its timeout is the time to the next probe.
local Monitor = {}

function Monitor.init(service, handed)
  local checks = handed and handed.checks or 0
  report(service, { "monitor_started", service.name, pogo.node(), pogo.self(), uv.hrtime(), checks, handed ~= nil })
  return {
    service = service,
    status = { name = service.name, up = nil, checks = checks, node = pogo.node() }, -- the "status" reply
    seq = 0,                 -- probes sent (a probe's tag)
    next_probe = pogo.now(), -- when the next probe is due
  }
end

function Monitor.timeout(st) return st.next_probe - pogo.now() end

function Monitor.handle_info(m, st)
  local service, status = st.service, st.status
  if m == "timeout" then
    st.seq = st.seq + 1
    probe(pogo.self(), service.host or "127.0.0.1", service.port, st.seq)
    st.next_probe = pogo.now() + (service.interval_ms or 200)
  elseif type(m) == "table" and m[1] == "probe" then
    status.checks = status.checks + 1
    if m[3] ~= status.up then
      status.up = m[3]
      report(service, { "status", service.name, pogo.node(), m[3] and "up" or "down" })
    end
  end
  return st
end

function Monitor.handle_call(_, _, st) return st.status, st end

-- The child moves: what the next instance starts from (its init's `handed`).
function Monitor.handoff(st)
  local status = st.status
  report(st.service, { "handoff", status.name, pogo.node(), status.checks })
  return { checks = status.checks }
end

--- Start a monitor for `service` = {name =, host =, port =, interval_ms =, report =, report_node =}.
function M.start_link(service)
  return server.start_link(Monitor, service)
end

--- A child spec: the child id is the service name.
function M.child_spec(service)
  return { id = service.name, start = { "service_monitor.monitor", "start_link", service }, shutdown = 1000 }
end

return M
