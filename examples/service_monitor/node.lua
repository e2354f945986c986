-- The script each demo node runs (bin/pogo ... node.lua <services> <report node>):
-- a distributed supervisor "monitors" with one monitor child per service.
-- <services> is "name=port,name=port,..."; monitors report to {"demo", <report node>}.
local pogo = require "pogo"
local dsup = require "pogo.dynamic_supervisor"
local monitor = require "service_monitor.monitor"

local services, report_node = ...
local children = {}
for name, port in (services or ""):gmatch("([%w_%-]+)=(%d+)") do
  children[#children + 1] = monitor.child_spec({ name = name, port = tonumber(port), interval_ms = 200,
    report = "demo", report_node = report_node })
end

-- reports to a node we are not connected to would be dropped: connect first
if report_node then assert(pogo.connect(report_node:match("@(.+)$"))) end

assert(dsup.start_link({ name = "monitors", children = children, settle_ms = 300,
  listeners = { {
    child_moved = function(id, from, to)
      io.stderr:write(string.format("  [%s] monitor %s moved here from %s\n", pogo.node(), id, from, to))
    end,
  } } }))
pogo.receive() -- serve until the node stops
