--- A node that dials the spec's node by address as soon as the spec's node's
-- own dial is being answered here (spec/cluster/mesh_spec.lua), and sends it numbered
-- messages at once: {"db", this node, 1}, ... {"db", this node, "done"} to
-- {"dial_back_sink", the spec's node}. It counts the nodedowns it sees.
-- Started by spec/support/dial_back_node.lua.
local pogo = require "pogo"

local M = {}

local downs = {}

--- Watch nodedowns; once the sink node's dial is in its handshake here, dial
-- `addr` and send `count` messages to the sink.
-- @tparam string addr the spec's node's host:port
-- @tparam string sink_node the spec's node's name
-- @tparam integer count
function M.start(addr, sink_node, count)
  pogo.spawn(function()
    pogo.monitor_nodes(true)
    while true do
      local m = pogo.receive()
      if type(m) == "table" and m[1] == "nodedown" then downs[#downs + 1] = m[2] .. ": " .. tostring(m[3]) end
    end
  end)
  pogo.spawn(function()
    -- once the spec's node's dial is being answered here, dial it too
    local deadline = pogo.now() + 5000
    local function answering()
      for _, l in ipairs(pogo.dist_info().links) do
        if not l.outgoing and l.state == "handshake" and l.peer == sink_node then return true end
      end
    end
    while not answering() and pogo.now() < deadline do pogo.yield() end
    local ok, err = pogo.connect(addr)
    if not ok then io.stderr:write("dial_back: connect failed: ", tostring(err), "\n") end
    local sink = { "dial_back_sink", sink_node }
    for i = 1, count do pogo.send(sink, { "db", pogo.node(), i }) end
    pogo.send(sink, { "db", pogo.node(), "done" })
  end)
end

--- rpc: the nodedowns this node saw, as "node: reason" strings.
function M.downs() return downs end

return M
