-- Node script of bench/scale.lua: a distributed supervisor "scale". Given a
-- node count, it watches for the full mesh and ring of that many nodes.
local pogo = require "pogo"
local dsup = require "pogo.dynamic_supervisor"
local remote = require "scale_remote"
local expect = ...
assert(dsup.start_link(remote.opts()))
if expect then remote.watch_mesh(tonumber(expect)) end
pogo.receive()
