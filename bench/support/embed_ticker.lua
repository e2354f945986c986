-- A host that steps its node every 10 ms and never watches pogo.fd()
-- (bench/embed.lua's last row):
--   lua5.4 bench/support/embed_ticker.lua --print-node [--name N] [--cookie C]
--     [--seeds a,b] [--heartbeat-ms MS] [--timeout-ms MS] [script args...]
--   lua5.4 bench/support/embed_ticker.lua --bare
-- Between steps it sleeps (LuaSocket's sleep: the thread, not the loop)
-- until the next 10 ms tick. With --bare it runs the same loop without pogo: what the
-- wake-ups alone cost. SIGTERM ends it.
local socket = require "socket" -- LuaSocket: gettime and a sleep finer than a ms

local PERIOD = 0.010
local function every_tick(fn)
  local tick = socket.gettime()
  while true do
    fn()
    tick = tick + PERIOD
    local now = socket.gettime()
    if tick < now then tick = now end
    socket.sleep(tick - now)
  end
end

if arg[1] == "--bare" then every_tick(function() end) end

local pogo = require "pogo"
local o, i = { seeds = {} }, 1
while arg[i] and arg[i]:match("^%-%-") do
  local k = arg[i]
  if k == "--print-node" then o.print = true; i = i + 1
  else
    local v = arg[i + 1]
    if k == "--seeds" then for s in v:gmatch("[^,]+") do o.seeds[#o.seeds + 1] = s end
    else o[k:sub(3):gsub("%-", "_")] = v end
    i = i + 2
  end
end

local name = pogo.start { name = o.name, cookie = o.cookie, seeds = o.seeds,
  heartbeat_ms = tonumber(o.heartbeat_ms), timeout_ms = tonumber(o.timeout_ms) }
if o.print then io.stdout:write("POGO_NODE ", name, "\n"); io.stdout:flush() end
if arg[i] then pogo.spawn(assert(loadfile(arg[i])), table.unpack(arg, i + 1)) end
every_tick(pogo.step)
