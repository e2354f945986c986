-- Node script of bench/pg_sync.lua's receiver: watches its stalls from the
-- start (see sync_remote.stall) and starts the pg scope given, before it
-- meets any other node. SYNC_GC (the environment) sets the collector's
-- mode first ("incremental", "generational", "stop"), to see its share.
local pg = require "pogo.pg"
local remote = require "bench.support.sync_remote"
local scope = ...
if os.getenv("SYNC_GC") then collectgarbage(os.getenv("SYNC_GC")) end
remote.stall()
if scope then pg.start(scope) end
require("pogo").receive()
