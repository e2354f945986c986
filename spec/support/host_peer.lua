-- Node script of spec/host_spec.lua (run by bin/pogo): a peer for a hosted
-- node. Registers "echo" (support.echo_server: calls are answered with the
-- request) and "mirror" (sends each {pid, msg} it gets back to pid as msg).
local pogo = require "pogo"
local echo = require "support.echo_server"

pogo.register("echo", assert(echo.start_link()))
pogo.register("mirror", pogo.spawn(function()
  while true do
    local m = pogo.receive()
    pogo.send(m[1], m[2])
  end
end))
pogo.receive()
