-- The idle child of bench/failover.lua: reports {"started", id, node} to the
-- process registered as "bench" on `report_node` (when given), then waits.
local pogo = require "pogo"

local M = {}

function M.start_link(id, report_node)
  return pogo.spawn_link(function()
    if report_node then pcall(pogo.send, { "bench", report_node }, { "started", id, pogo.node() }) end
    pogo.receive()
  end)
end

return M
