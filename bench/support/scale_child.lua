-- The idle child of bench/scale.lua. Its start counts on its node (all the
-- processes of a node share one Lua state): how many children started here,
-- when the last one did (uv.hrtime, comparable across the processes of one
-- machine), and, for a spec that carries the time of its request, the delay
-- from start_child to running.
local pogo = require "pogo"
local uv = require "luv"

local M = { starts = 0, last = 0, delays = {} }

local function idle() pogo.receive() end

function M.start_link(_, requested)
  local pid = pogo.spawn_link(idle)
  local t = uv.hrtime()
  M.starts, M.last = M.starts + 1, t
  if requested then M.delays[#M.delays + 1] = (t - requested) / 1e6 end
  return pid
end

return M
