-- Node script of bench/registry.lua: a node that notes when registrations
-- become visible here, without polling.
--
-- The registry process of this node reads its messages with core.receive (as
-- it finds it when it starts); this script wraps core.receive first, so the
-- wrapper runs each time the registry process has handled a message and asks
-- for the next one: the moment a change it applied becomes visible to every
-- process of the node. When a name awaited by the bench (sent to the
-- "reg_probe" process as {"expect", name, reporter}) is there, the wrapper
-- sends the reporter {"seen", node, name, hrtime_ns} (uv.hrtime: the
-- monotonic clock, the same in every process of the host).
local pogo = require "pogo"
local uv = require "luv"
local core = pogo.core

local expect, waiting = {}, 0
local whereis
local raw_receive = core.receive
core.receive = function(...)
  if waiting > 0 then
    local t = uv.hrtime()
    for name, to in pairs(expect) do
      if whereis(name) then
        expect[name], waiting = nil, waiting - 1
        pogo.send(to, {"seen", pogo.node(), name, t})
      end
    end
  end
  return raw_receive(...)
end

local registry = require "pogo.registry" -- starts the registry process, with the wrapper
whereis = registry.whereis

local M = {}

--- The Lua heap of this node after a full collection, in bytes.
function M.heap()
  collectgarbage("collect")
  collectgarbage("collect")
  return collectgarbage("count") * 1024
end

--- Whether every one of names prefix .. 1 .. n is here.
function M.all_seen(prefix, n)
  for i = 1, n do
    if not whereis(prefix .. i) then return false end
  end
  return true
end

--- CPU seconds this node has used.
function M.cpu() return os.clock() end

package.loaded["registry_node"] = M

if ... == "--node" then
  pogo.register("reg_probe", pogo.self())
  while true do
    local m = pogo.receive()
    if type(m) == "table" and m[1] == "expect" then
      if not expect[m[2]] then waiting = waiting + 1 end
      expect[m[2]] = m[3]
      pogo.send(m[3], {"expecting", pogo.node()})
    end
  end
end
return M
