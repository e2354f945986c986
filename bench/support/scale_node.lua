-- Node script of bench/scale.lua: a distributed supervisor "scale". Given a
-- node count, it watches for the full mesh and ring of that many nodes.
local pogo = require "pogo"
local dsup = require "pogo.dynamic_supervisor"
local remote = require "scale_remote"
local expect = ...
local opts = remote.opts()
if expect then opts.listeners = { remote.mesh_listener(tonumber(expect)) } end
assert(dsup.start_link(opts))
if expect then remote.watch_mesh(tonumber(expect)) end
pogo.receive()
