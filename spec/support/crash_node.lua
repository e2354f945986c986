-- A script for bin/pogo (spec/cluster/log_spec.lua): a supervisor whose child
-- crashes once (a crash report and a restart report on stderr), then waits.
local pogo = require "pogo"
local supervisor = require "pogo.supervisor"
local sup = assert(supervisor.start_link({ { id = { "crasher", 1 },
  start = { "support.worker", "start_link", "crasher", {} } } }, { name = "crash_top" }))
pogo.send("crasher", "crash")
local _ = sup
pogo.receive()
