-- Test fixture: a pogo.server child whose init calls every API function of its
-- own distributed supervisor ("dsup") and reports how long each took
-- (support.dsup_remote.api_probe, where = "init").
local server = require "pogo.server"

local M = {}

function M.init(events_node)
  require("support.dsup_remote").api_probe("init", events_node)
  return {}
end

function M.start_link(events_node)
  return server.start_link(M, events_node)
end

return M
