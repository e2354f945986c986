-- Node script of bench/failover.lua: a distributed supervisor "bench".
--   failover_node.lua <report node> [settle_ms]
local pogo = require "pogo"
local dsup = require "pogo.dynamic_supervisor"
local report_node, settle_ms = ...
if report_node then assert(pogo.connect(report_node:match("@(.+)$"))) end
assert(dsup.start_link(require("failover_remote").opts(tonumber(settle_ms))))
pogo.receive()
