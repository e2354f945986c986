--- Node names as people type them.
--
-- A node's full name is "short@host:port". An operator types less: the
-- short part when one node of the cluster has it, or "host:port". The
-- command line (`bin/pogo --on`, `bin/pogo NODE ...`) and the web page's
-- `/api/nodes/NAME` take either, and name the full names when the one
-- typed is ambiguous or unknown.
-- @module pogo.node_name
local M = {}

--- The full name of node `spec` among `nodes`: the name itself, the part
-- before "@" when one node has it, or "host:port".
-- @tparam string spec
-- @tparam {string,...} nodes
-- @treturn ?string the name
-- @treturn ?string why not
function M.resolve(spec, nodes)
  local by_short, by_addr = {}, {}
  for _, n in ipairs(nodes) do
    if n == spec then return n end
    local short, addr = n:match("^([^@]*)@(.*)$")
    if short then
      if by_short[short] == nil then by_short[short] = n else by_short[short] = false end -- (false: shared)
      by_addr[addr] = n
    end
  end
  if by_short[spec] then return by_short[spec] end
  if by_addr[spec] then return by_addr[spec] end
  if by_short[spec] == false then return nil, "more than one node is named " .. spec .. ": give the full name" end
  local sorted = table.move(nodes, 1, #nodes, 1, {})
  table.sort(sorted)
  return nil, "no node " .. spec .. " in the cluster (nodes: " .. table.concat(sorted, ", ") .. ")"
end

return M
