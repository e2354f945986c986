-- The stateful child of bench/failover.lua's handoff rows: a pogo.server
-- holding 1 KiB of state. It reports {"started", id, node, handed} to the
-- process registered as "bench" on `report_node` at the end of its init
-- (`handed`: its state came from the instance before it). With `handoff`
-- its module hands the state over when it moves; without, the new instance
-- builds its 1 KiB again.
local pogo = require "pogo"
local server = require "pogo.server"

local M = {}

local Plain = {}

function Plain.init(arg, data)
  local id, report_node = arg[1], arg[2]
  local st = { id = id, blob = data and data.blob or string.rep(string.char(65 + id % 26), 1024) }
  if report_node then pcall(pogo.send, { "bench", report_node }, { "started", id, pogo.node(), data ~= nil }) end
  return st
end

function Plain.handle_info(_, st) return st end

local WithHandoff = setmetatable({}, { __index = Plain })

function WithHandoff.handoff(st) return { blob = st.blob } end

--- Start the child `id` (with `handoff`: its module hands its state over).
function M.start_link(id, report_node, handoff)
  return server.start_link(handoff and WithHandoff or Plain, { id, report_node })
end

return M
