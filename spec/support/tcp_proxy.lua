--- A TCP proxy on 127.0.0.1 for the cluster specs: a man in the middle that
-- records both directions (and can inject bytes), or a port mapping in front
-- of a node (as a container runtime or a load balancer would be).
--
--   local proxy = require("support.tcp_proxy").new(target_port) -- or new() and p.target = port later
--   p.port            -- where it listens
--   p.up, p.down      -- chunks read from the dialer / from the target
--   p.to              -- the socket to the target of the last connection (write to inject)
--   p.close()
local uv = require "luv"

local M = {}

function M.new(target)
  local p = { up = {}, down = {}, pairs = {}, target = target }
  local server = uv.new_tcp()
  assert(server:bind("127.0.0.1", 0))
  local function close(h)
    if not h:is_closing() then h:close() end
  end
  local function pipe(src, dst, log)
    src:read_start(function(_, data)
      if data then
        log[#log + 1] = data
        if not dst:is_closing() then dst:write(data) end
      else
        close(src)
        close(dst)
      end
    end)
  end
  server:listen(16, function()
    local from, to = uv.new_tcp(), uv.new_tcp()
    server:accept(from)
    p.pairs[#p.pairs + 1] = { from, to }
    to:connect("127.0.0.1", p.target, function(err)
      if err then
        close(from)
        close(to)
        return
      end
      pipe(from, to, p.up)
      pipe(to, from, p.down)
      p.to = to
    end)
  end)
  p.port = server:getsockname().port
  function p.close()
    for _, pair in ipairs(p.pairs) do
      close(pair[1])
      close(pair[2])
    end
    close(server)
  end
  return p
end

return M
