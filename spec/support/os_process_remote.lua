-- rpc targets of spec/os_process_spec.lua, run on a node OS process.
local pogo = require "pogo"
local os_process = require "pogo.os_process"

local M = {}

--- Start `sleep 30` under a holder process that outlives the rpc; returns its OS pid.
function M.start_sleeper()
  local me = pogo.self()
  pogo.spawn(function()
    local pid = assert(os_process.start_link({ cmd = "sleep", args = { "30" } }))
    pogo.send(me, { "sleeper", os_process.os_pid(pid) })
    pogo.receive()
  end)
  return pogo.receive(function(m) return m[1] == "sleeper" end, 5000)[2]
end

return M
