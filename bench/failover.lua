-- bench/failover.lua: the distributed supervisor on 5 node OS processes (loopback).
-- Prints:
--   * the time from 10,000 start_child calls on one node until all 10,000 run,
--     and max/mean children per node;
--   * median and worst of 5 runs of the time from SIGKILL of one node (1,000
--     children in the cluster) until all 1,000 run again;
--   * median of 3 runs of the same for SIGTERM (the orderly stop), and of
--     the time until that node exited;
--   * CPU% and RSS per node while 10,000 children sit idle;
--   * median of 5 runs of the time from a node's supervisor rejoining (its
--     start_link returned) until the 200 children pinned to that node run
--     there again (they ran on their ring owners while it was away).
-- Targets: placed within 1 s; failover median under 50 ms; after SIGTERM every
-- child runs elsewhere by the time its node exits (100 ms of slack); idle CPU
-- under 1% per node; pinned children back within 50 ms.
-- Run: make bench (or lua5.4 bench/failover.lua with the Makefile's LUA_PATH/LUA_CPATH).
package.path = "bench/support/?.lua;" .. package.path
local pogo = require "pogo"
local uv = require "luv"
local local_cluster = require "pogo.local_cluster"

local NODES = 5
local R = "failover_remote"

local c = local_cluster.new({ timeout_ms = 2000, heartbeat_ms = 500, quiet = true })
local me = c:start_self({ name = "bench", log = false })
pogo.register("bench", pogo.self())

local function ms_since(t0) return (uv.hrtime() - t0) / 1e6 end

local function start_nodes(n)
  local list = {}
  for i = 1, n do
    local seed
    for _, node in ipairs(c.nodes) do if not node.exited and node ~= list[i] then seed = node end end
    list[i] = c:start_node({ script = "bench/support/failover_node.lua", args = { me },
      seeds = seed and { seed } or nil })
    c:connect(list[i])
  end
  return list
end

local function live()
  local out = {}
  for _, node in ipairs(c.nodes) do if not node.exited then out[#out + 1] = node end end
  return out
end

local function await_ring(n)
  local_cluster.wait_until(function()
    for _, node in ipairs(live()) do
      local ok, size = c:rpc(node, R, "ring_size", {}, 2000)
      if not ok or size ~= n then return false end
    end
    return true
  end, 20000, "the ring")
end

local function counts()
  local t, total = {}, 0
  for _, node in ipairs(live()) do
    local k = c:call(node, R, "local_count", {}, 5000)
    t[#t + 1] = k
    total = total + k
  end
  return t, total
end

-- Wait for `n` {"started", id} reports for ids in `want` (nil: any); returns ms of the last.
local function await_started(n, t0, want, timeout)
  local seen, got, last = {}, 0, 0
  local deadline = uv.now() + (timeout or 30000)
  while got < n do
    local left = deadline - uv.now()
    if left <= 0 then error(string.format("only %d of %d children started", got, n)) end
    local m = pogo.receive(left)
    if m and m[1] == "started" and (not want or want[m[2]]) and not seen[m[2]] then
      seen[m[2]] = m[3]
      got = got + 1
      last = ms_since(t0)
    end
    uv.update_time()
  end
  return last, seen
end

local function flush() while pogo.receive(0) do end end

local results = {}
local ok, err = xpcall(function()
  -- 1. placement of 10,000 children requested on one node
  local nodes = start_nodes(NODES)
  await_ring(NODES)
  flush()
  local t0 = uv.hrtime()
  local requester = pogo.spawn(function()
    c:call(nodes[1], R, "start_children", { 1, 10000, me }, 60000)
  end)
  local _ = requester
  local placed_ms = await_started(10000, t0)
  local per, total = counts()
  local max, sum = 0, 0
  for _, k in ipairs(per) do
    if k > max then max = k end
    sum = sum + k
  end
  results.placed_ms = placed_ms
  results.maxmean = max / (sum / #per)
  results.total = total

  -- 3. idle cost with 10,000 children (measured now, while they sit idle)
  pogo.sleep(1000)
  local before = {}
  for i, node in ipairs(live()) do before[i] = { c:call(node, R, "usage") } end
  local window = 5
  pogo.sleep(window * 1000)
  local cpu, rss = {}, {}
  for i, node in ipairs(live()) do
    local secs, kib = c:call(node, R, "usage")
    cpu[i] = (secs - before[i][1]) / window * 100
    rss[i] = kib
  end
  results.cpu, results.rss = cpu, rss

  -- 2. failover: 1,000 children, SIGKILL one node, time until all run again
  for _, node in ipairs(live()) do c:stop(node) end
  flush()
  nodes = start_nodes(NODES)
  await_ring(NODES)
  pogo.spawn(function() c:call(nodes[1], R, "start_children", { 1, 1000, me }, 60000) end)
  local _, where = await_started(1000, uv.hrtime())
  -- a node goes (SIGKILL, or SIGTERM: its orderly stop): the ms until its
  -- children all run again elsewhere (and, for SIGTERM, until it exited);
  -- then a new node takes its place
  local function lose_one(run, signal)
    local alive = live()
    local victim = alive[(run % #alive) + 1]
    local lost = {}
    local n_lost = 0
    for id, node in pairs(where) do
      if node == victim.name then lost[id] = true; n_lost = n_lost + 1 end
    end
    flush()
    local tk = uv.hrtime()
    assert(uv.kill(victim.pid, signal) == 0)
    local ms, seen = await_started(n_lost, tk, lost, 10000)
    local exit_ms
    c:wait_exit(victim, 30000)
    if signal == "sigterm" then exit_ms = (victim.exit_ns - tk) / 1e6 end
    for id, node in pairs(seen) do where[id] = node end
    -- a new node takes the victim's place; wait until the children that move to it have moved
    local fresh = start_nodes(1)[1]
    await_ring(NODES)
    local_cluster.wait_until(function()
      local _, tot = counts()
      if tot ~= 1000 or c:call(fresh, R, "local_count") == 0 then return false end
      for _, node in ipairs(live()) do
        if not c:call(node, R, "settled", {}, 5000) then return false end
      end
      return true
    end, 20000, "the rebalance")
    -- refresh placement from the reports of moved children
    while true do
      local m = pogo.receive(200)
      if not m then break end
      if m[1] == "started" then where[m[2]] = m[3] end
    end
    return ms, exit_ms
  end
  local runs = {}
  for run = 1, 5 do runs[run] = lose_one(run, "sigkill") end
  table.sort(runs)
  results.failover = runs
  local stop_back, exited, late = {}, {}, -math.huge
  for run = 1, 3 do
    stop_back[run], exited[run] = lose_one(run, "sigterm")
    late = math.max(late, stop_back[run] - exited[run])
  end
  table.sort(stop_back)
  table.sort(exited)
  results.stop_back, results.stop_exit, results.stop_late = stop_back, exited, late

  -- 4. pinned children return to their node when its supervisor rejoins
  local alive = live()
  local home = alive[2]
  local pinned = {}
  for id = 1001, 1200 do pinned[id] = true end
  flush()
  pogo.spawn(function() c:call(alive[1], R, "start_pinned", { 1001, 1200, me, home.name }, 60000) end)
  local _, at = await_started(200, uv.hrtime(), pinned)
  for id, node in pairs(at) do assert(node == home.name, "pinned child " .. id .. " on " .. node) end
  local back = {}
  for run = 1, 5 do
    flush()
    c:call(home, R, "stop_supervisor")
    await_started(200, uv.hrtime(), pinned, 10000) -- on their ring owners meanwhile
    flush()
    local rejoined = c:call(home, R, "restart_supervisor")
    local ms, seen = await_started(200, rejoined, pinned, 10000)
    for id, node in pairs(seen) do assert(node == home.name, "pinned child " .. id .. " back on " .. node) end
    back[run] = ms
    -- let the other children that came back settle before the next run
    local_cluster.wait_until(function()
      for _, node in ipairs(live()) do
        if not c:call(node, R, "settled", {}, 5000) then return false end
      end
      return true
    end, 20000, "the cluster to settle")
  end
  table.sort(back)
  results.pinned = back
end, debug.traceback)

for _, node in ipairs(c.nodes) do if not node.exited then c:stop(node, 2000) end end
c:teardown()
pogo.stop()
if not ok then
  io.stderr:write("bench failed: ", tostring(err), "\n")
  os.exit(1)
end

local function row(name, value, target, pass)
  print(string.format("%-52s %-22s %-14s %s", name, value, target, pass and "ok" or "MISSED"))
end
print(string.format("%-52s %-22s %-14s %s", "measure (5 nodes, loopback)", "value", "target", "status"))
row("10,000 start_child on one node until all run", string.format("%.0f ms", results.placed_ms), "<= 1000 ms",
  results.placed_ms <= 1000)
row("children per node, max/mean", string.format("%.2f (%d children)", results.maxmean, results.total), "", true)
local f = results.failover
row("failover of 1,000 children after SIGKILL, median", string.format("%.1f ms", f[3]), "< 50 ms", f[3] < 50)
row("failover, worst of 5", string.format("%.1f ms", f[5]), "", true)
row("SIGTERM of a node: its children all run elsewhere, median", string.format("%.1f ms", results.stop_back[2]),
  "", true)
row("SIGTERM of a node: it exited, median of 3", string.format("%.1f ms", results.stop_exit[2]), "", true)
row("SIGTERM: children back minus exit, worst of 3", string.format("%.1f ms", results.stop_late), "<= 100 ms",
  results.stop_late <= 100)
local maxcpu, maxrss = 0, 0
for i = 1, #results.cpu do
  if results.cpu[i] > maxcpu then maxcpu = results.cpu[i] end
  if results.rss[i] > maxrss then maxrss = results.rss[i] end
end
row("idle CPU per node, 10,000 children (worst node)", string.format("%.2f %%", maxcpu), "< 1 %", maxcpu < 1)
row("RSS per node, 10,000 children (worst node)", string.format("%.1f MiB", maxrss / 1024), "", true)
local b = results.pinned
row("200 pinned children back after their node's supervisor rejoins, median",
  string.format("%.1f ms", b[3]), "<= 50 ms", b[3] <= 50)
row("pinned children back, worst of 5", string.format("%.1f ms", b[5]), "", true)
os.exit(0)
