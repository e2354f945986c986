-- bench/ring.lua: balance, movement, speed and memory of pogo.ring.
--
--   lua5.4 bench/ring.lua                 default vnodes, then libring's 128 for comparison
--   lua5.4 bench/ring.lua 256 1024 4096   those vnodes values
--
-- For 10 and 100 nodes and 100,000 string keys ("child:<i>"):
--   max/mean    keys of the busiest node over the mean (1.00 is perfect)
--   moved add   fraction of keys whose owner changes when one node joins, and its
--               ratio to the ideal 1/(n+1); mean of TRIALS joins (worst in brackets)
--   moved rm    the same when one node leaves, ideal 1/n
--   str/s       key_to_node lookups per second from Lua, string keys
--   tbl/s       the same for small table keys {"worker", i}
--   memory      r:memory(), C bytes held by the ring
-- Targets (default vnodes): max/mean <= 1.10 at 10 nodes, moved <= 1.1 x ideal,
-- >= 3,000,000 string lookups/s.
local ring = require "pogo.ring"

local NKEYS, TRIALS, MIN_TIME = 100000, 5, 0.3

local str_keys, tbl_keys = {}, {}
for i = 1, NKEYS do
  str_keys[i] = "child:" .. i
  tbl_keys[i] = {"worker", i}
end

local function node_name(i)
  return string.format("pogo%d@10.0.%d.%d:4370", i, i // 256, i % 256)
end

local function owners(r)
  local o = {}
  for i = 1, NKEYS do o[i] = r:key_to_node(str_keys[i]) end
  return o
end

local function moved(a, b)
  local m = 0
  for i = 1, NKEYS do
    if a[i] ~= b[i] then m = m + 1 end
  end
  return m / NKEYS
end

-- Lookups per second over keys, repeating passes for at least MIN_TIME of CPU.
local function rate(r, keys)
  local passes, t0 = 0, os.clock()
  local elapsed
  repeat
    for i = 1, #keys do r:key_to_node(keys[i]) end
    passes = passes + 1
    elapsed = os.clock() - t0
  until elapsed >= MIN_TIME
  return passes * #keys / elapsed
end

local function stats(list)
  local sum, worst = 0, 0
  for _, x in ipairs(list) do
    sum = sum + x
    worst = math.max(worst, x)
  end
  return sum / #list, worst
end

local function measure(n, vnodes)
  local r = ring.new{vnodes = vnodes}
  for i = 1, n do r:add(node_name(i)) end
  local base = owners(r)
  local count = {}
  for i = 1, NKEYS do count[base[i]] = (count[base[i]] or 0) + 1 end
  local max = 0
  for _, c in pairs(count) do max = math.max(max, c) end

  local add, rm = {}, {}
  for t = 1, TRIALS do
    local extra = node_name(n + t)
    r:add(extra)
    add[t] = moved(base, owners(r)) * (n + 1)
    r:remove(extra)
    local leaver = node_name(1 + (t - 1) * n // TRIALS)
    r:remove(leaver)
    rm[t] = moved(base, owners(r)) * n
    r:add(leaver)
  end
  local add_mean, add_worst = stats(add)
  local rm_mean, rm_worst = stats(rm)
  return {
    n = n, vnodes = vnodes, maxmean = max / (NKEYS / n),
    add = add_mean / (n + 1), add_ratio = add_mean, add_worst = add_worst,
    rm = rm_mean / n, rm_ratio = rm_mean, rm_worst = rm_worst,
    str = rate(r, str_keys), tbl = rate(r, tbl_keys), memory = r:memory(),
  }
end

local function human(x)
  if x >= 1e6 then return string.format("%.2fM", x / 1e6) end
  return string.format("%.0fk", x / 1e3)
end

local function bytes(x)
  if x >= 1024 * 1024 then return string.format("%.2f MiB", x / 1048576) end
  return string.format("%.1f KiB", x / 1024)
end

local HEAD = string.format("%5s %6s %8s  %-25s %-25s %8s %8s %10s", "nodes", "vnodes", "max/mean",
  "moved on add (ratio)", "moved on remove (ratio)", "str/s", "tbl/s", "memory")

local function row(m)
  return string.format("%5d %6d %8.3f  %-25s %-25s %8s %8s %10s", m.n, m.vnodes, m.maxmean,
    string.format("%.4f (%.3f, max %.3f)", m.add, m.add_ratio, m.add_worst),
    string.format("%.4f (%.3f, max %.3f)", m.rm, m.rm_ratio, m.rm_worst),
    human(m.str), human(m.tbl), bytes(m.memory))
end

local list = {}
for _, a in ipairs(arg) do list[#list + 1] = assert(math.tointeger(tonumber(a)), "vnodes must be integers") end
if #list == 0 then list = {ring.DEFAULT_VNODES, 128} end

print(string.format("pogo.ring: %d string keys, %d joins and %d leaves per row, default vnodes %d, %s",
  NKEYS, TRIALS, TRIALS, ring.DEFAULT_VNODES, _VERSION))
print(HEAD)
local failures = {}
for _, v in ipairs(list) do
  for _, n in ipairs{10, 100} do
    local m = measure(n, v)
    print(row(m))
    if v == ring.DEFAULT_VNODES then
      if n == 10 and m.maxmean > 1.10 then failures[#failures + 1] = "max/mean > 1.10 at 10 nodes" end
      if m.add_worst > 1.1 or m.rm_worst > 1.1 then
        failures[#failures + 1] = string.format("moved > 1.1 x ideal at %d nodes", n)
      end
      if m.str < 3e6 then failures[#failures + 1] = string.format("< 3M string lookups/s at %d nodes", n) end
    end
  end
end
if #failures == 0 then
  print(string.format("targets at vnodes %d: met (max/mean <= 1.10 at 10 nodes, moved <= 1.1 x ideal, " ..
    ">= 3M string lookups/s)", ring.DEFAULT_VNODES))
else
  print("targets missed: " .. table.concat(failures, "; "))
end
