-- Node script of bench/failover.lua: a distributed supervisor "bench".
local pogo = require "pogo"
local dsup = require "pogo.dynamic_supervisor"
local report_node = ...
if report_node then assert(pogo.connect(report_node:match("@(.+)$"))) end
assert(dsup.start_link(require("failover_remote").opts()))
pogo.receive()
