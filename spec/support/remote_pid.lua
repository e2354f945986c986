--- A pid of another node, made the way the transport decodes one (the
-- codec's pid extension): for specs that need a remote pid without a node.
local core = require("pogo").core

--- @tparam string node the node's name
-- @tparam integer serial
-- @tparam[opt=7] integer creation
-- @return a pid of `node`
return function(node, serial, creation)
  local payload = string.pack(">s2I4I4I4I4", node, creation or 7, 0, serial, serial)
  return core.decode("\xc7" .. string.char(#payload) .. "\x01" .. payload)
end
