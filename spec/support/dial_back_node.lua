-- A script for bin/pogo (spec/cluster/mesh_spec.lua): dial_back_node.lua
-- <spec's host:port> <spec's node name> <count>; see support.dial_back.
local pogo = require "pogo"
local addr, sink_node, count = ...
require("support.dial_back").start(addr, sink_node, tonumber(count))
pogo.receive()
