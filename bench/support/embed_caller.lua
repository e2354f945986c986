-- Node script of bench/embed.lua, run as the first process of each node the
-- bench measures (bin/pogo, the cqueues program, Prosody's mod_pogo, the C
-- host, the 10 ms ticker): registers "caller", a server whose
--   call {"run", target, n}
-- makes n pogo.call's to target (after n / 10 to warm up) and returns the
-- round trips in µs, sorted.
local pogo = require "pogo"
local uv = require "luv"
local server = require "pogo.server"

local function run(target, n)
  for i = 1, math.max(1, n // 10) do pogo.call(target, i, 5000) end
  local us = {}
  for i = 1, n do
    local t0 = uv.hrtime()
    pogo.call(target, i, 5000)
    us[i] = (uv.hrtime() - t0) / 1e3
  end
  table.sort(us)
  return us
end

pogo.register("caller", pogo.spawn(server.enter_loop, {
  handle_call = function(req, from, state)
    -- answer from a process of its own, so the server is free meanwhile
    pogo.spawn(function() pogo.reply(from, run(req[2], req[3])) end)
    return nil, state, "noreply"
  end,
}, {}))
