-- Test fixture: a pogo.server that echoes calls and answers {"tell", pid} casts with "told".
local server = require "pogo.server"
local pogo = require "pogo"

local M = {}

function M.init() return {} end
function M.handle_call(req, _, state) return req, state end
function M.handle_cast(msg, state)
  if type(msg) == "table" and msg[1] == "tell" then pogo.send(msg[2], "told") end
  return state
end

function M.start_link(opts)
  return server.start_link(M, nil, opts)
end

return M
