-- Test fixture: a pogo.server whose init refuses to start (returns nil and a reason).
local server = require "pogo.server"

local M = {}

function M.init(reason) return nil, reason or "init refused" end

function M.start_link(reason)
  return server.start_link(M, reason)
end

return M
