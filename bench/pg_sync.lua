-- bench/pg_sync.lua: how long a node is held back while it takes in a peer's
-- pg sync or registry sync of many groups or names.
--
--   lua5.4 bench/pg_sync.lua [--sizes 100000,200000] [--runs 1] [--kinds pg,registry]
--
-- For each kind and size: node A (the sender) fills a pg scope with `size`
-- groups of one member each (size / 2 processes in two groups each, as a
-- distributed supervisor's children) or registers `size` names; node B (the
-- receiver) starts apart, then connects to A, which brings the sync. Printed
-- per run: B's worst stall (the longest gap between the wake-ups of a process
-- that sleeps 5 ms at a time), A's (the sender's), the slowest rpc round
-- trip to B while it takes the sync in (this node polls B every 10 ms), the
-- time until B lists everything, and whether B's link to A stayed up.
-- Nodes run with heartbeat_ms 500 and timeout_ms 5000.
local pogo = require "pogo"
local uv = require "luv"
local local_cluster = require "pogo.local_cluster"

local R = "bench.support.sync_remote"

local sizes, runs, kinds = { 100000, 200000 }, 1, { "pg", "registry" }
local args = { ... }
for i = 1, #args, 2 do
  local k, v = args[i], args[i + 1]
  local list = {}
  for x in tostring(v):gmatch("[^,]+") do list[#list + 1] = x end
  if k == "--sizes" then
    sizes = {}
    for j, x in ipairs(list) do sizes[j] = assert(tonumber(x)) end
  elseif k == "--runs" then runs = assert(tonumber(v))
  elseif k == "--kinds" then kinds = list
  else error("unknown option " .. tostring(k)) end
end

local c = local_cluster.new({ timeout_ms = 5000, heartbeat_ms = 500, quiet = true })
c:start_self({ name = "bench", log = false })

local function ms(ns) return ns / 1e6 end

local function one(kind, n)
  local scope = "big"
  local a = c:start_node({ name = "synca" })
  local b
  local ok, res = pcall(function()
    c:connect(a)
    if kind == "pg" then
      c:call(a, R, "pg_start", { scope })
      c:call(a, R, "pg_fill", { scope, "x", n }, 600000)
    else
      c:call(a, R, "reg_fill", { "x", n }, 600000)
    end
    c:call(a, R, "stall", {})
    -- B watches its stalls from its start, then meets A (through this node)
    b = c:start_node({ name = "syncb", script = "bench/support/sync_node.lua", args = { scope } })
    local t0 = uv.hrtime()
    c:connect(b)
    assert(c:call(b, R, "connect", { a.addr }, 60000))
    local count = kind == "pg" and function() return c:call(b, R, "pg_count", { scope }, 60000) end
      or function() return c:call(b, R, "reg_count", {}, 60000) end
    local worst = 0
    while true do
      local t = uv.hrtime()
      local k = count()
      worst = math.max(worst, uv.hrtime() - t)
      if k >= n then break end
      if uv.hrtime() - t0 > 120e9 then error("B did not get the sync in 120 s: " .. k) end
      pogo.sleep(10)
    end
    local took = uv.hrtime() - t0
    pogo.sleep(50)
    local up = c:call(b, R, "sees", { a.name })
    return { b = c:call(b, R, "stall", {}), a = c:call(a, R, "stall", {}), rpc = ms(worst), took = ms(took), up = up }
  end)
  c:kill(a)
  if b then c:kill(b) end
  if not ok then error(res, 0) end
  return res
end

print(string.format("%-9s %8s %4s %12s %12s %12s %12s %6s", "kind", "size", "run", "B stall ms",
  "A stall ms", "max rpc ms", "synced ms", "up"))
for _, kind in ipairs(kinds) do
  for _, n in ipairs(sizes) do
    for r = 1, runs do
      local x = one(kind, n)
      print(string.format("%-9s %8d %4d %12.1f %12.1f %12.1f %12.1f %6s", kind, n, r, x.b, x.a, x.rpc, x.took,
        tostring(x.up)))
      io.stdout:flush()
    end
  end
end
c:teardown()
pogo.stop()
