-- bench/big_messages.lua: the largest messages a node accepts, and how long
-- they block a loop. A message is sent whole, in one frame (max_frame, 16 MiB
-- by default); the receiver decodes it only if it would take at most 8 times
-- that in Lua heap (128 MiB; less with max_memory). Encoding (in the sender's
-- process) and decoding (in the receiver's read callback) are single C calls:
-- each blocks its node's loop, heartbeats included. For the largest message
-- of each shape the receiver accepts, this prints its frame size, the heap it
-- takes, and the time to encode and to decode it, against timeout_ms (5000,
-- the default): target <= timeout_ms / 4 each. Also the time a send of a
-- 4,000,000-entry map takes to fail ("too large") at the frame limit.
-- Run: make bench (or lua5.4 bench/big_messages.lua with LUA_PATH/LUA_CPATH set).
local core = require("pogo").core
local uv = require "luv"

local MAX_FRAME = 16 * 1024 * 1024
local BOUND = 8 * MAX_FRAME
local TIMEOUT_MS = 5000
local HEADER = 64 -- frame header, kind, the pid it goes to

local function ms(t0) return (uv.hrtime() - t0) / 1e6 end

local shapes = {
  { "string", function(n) return string.rep("x", n) end, 1000000 },
  { "array of booleans", function(n)
      local t = {}
      for i = 1, n do t[i] = i % 3 == 0 end
      return t
    end, 100000 },
  { "map, string keys", function(n)
      local t = {}
      for i = 1, n do t["k" .. i] = i end
      return t
    end, 100000 },
  { "array of small tables", function(n)
      local t = {}
      for i = 1, n do t[i] = { i, "x" .. i, { a = i } } end
      return t
    end, 100000 },
}

-- Nearly the largest n (within 3%) whose message fits the frame and the bound:
-- from the bytes and heap per element of a sample, then checked.
local function largest(make, sample)
  local bytes = core.encode(make(sample), "msg", 0, true)
  local per_byte, per_heap = #bytes / sample, core.estimate(bytes) / sample
  local n = math.floor(math.min((MAX_FRAME - HEADER) / per_byte, BOUND / per_heap) * 0.97)
  while true do
    local ok, b = pcall(core.encode, make(n), "msg", MAX_FRAME - HEADER, true)
    if ok and core.estimate(b) <= BOUND then return n end
    n = math.floor(n * 0.97)
    collectgarbage()
  end
end

print(string.format("%-24s %10s %9s %9s %11s %11s %-12s %s", "largest accepted", "n", "frame MB", "heap MB",
                    "encode ms", "decode ms", "target", "status"))
for _, s in ipairs(shapes) do
  local name, make, start = s[1], s[2], s[3]
  local n = largest(make, start)
  local v = make(n)
  collectgarbage()
  local t0 = uv.hrtime()
  local bytes = core.encode(v, "msg", MAX_FRAME - HEADER, true)
  local enc = ms(t0)
  v = nil -- luacheck: ignore
  collectgarbage()
  local heap = core.estimate(bytes)
  t0 = uv.hrtime()
  assert(core.decode(bytes) ~= nil)
  local dec = ms(t0)
  collectgarbage()
  local ok = enc <= TIMEOUT_MS / 4 and dec <= TIMEOUT_MS / 4
  print(string.format("%-24s %10d %9.1f %9.1f %11.0f %11.0f %-12s %s", name, n, #bytes / 2 ^ 20, heap / 2 ^ 20,
                      enc, dec, "<= " .. TIMEOUT_MS // 4 .. " ms", ok and "ok" or "MISSED"))
end

local big = {}
for i = 1, 4000000 do big["k" .. i] = i end
collectgarbage()
local t0 = uv.hrtime()
local ok, err = pcall(core.encode, big, "msg", MAX_FRAME - HEADER, true)
local fail = ms(t0)
assert(not ok and err:find("too large", 1, true))
print(string.format("%-46s %11.0f %11s %-12s %s", "send of a 4,000,000-entry map fails after", fail, "",
                    "<= " .. TIMEOUT_MS // 4 .. " ms", fail <= TIMEOUT_MS / 4 and "ok" or "MISSED"))
