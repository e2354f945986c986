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
--     there again (they ran on their ring owners while it was away);
--   * median of 3 runs of the time to move 1,000 children, each a pogo.server
--     with 1 KiB of state, on a join: from the start of a new node until the
--     1,000 children pinned to it (which ran on the 4 others) all run there,
--     with state handoff (each hands its 1 KiB to its new instance) and
--     without (a module without `handoff`: the new instance starts afresh).
-- Targets: placed within 1 s; failover median under 50 ms; after SIGTERM every
-- child runs elsewhere by the time its node exits (100 ms of slack); idle CPU
-- under 1% per node; pinned children back within 50 ms; the move with handoff
-- at most 2 x the move without.
-- POGO_BENCH_ONLY=handoff runs only the handoff rows; POGO_BENCH_VERBOSE=1 names
-- each child that moved with handoff but without its state (or the reverse).
-- Run: make bench (or lua5.4 bench/failover.lua with the Makefile's LUA_PATH/LUA_CPATH).
package.path = "bench/support/?.lua;" .. package.path
local stats = require "bench.support.stats"
local pogo = require "pogo"
local uv = require "luv"
local local_cluster = require "pogo.local_cluster"

local NODES = 5
local R = "failover_remote"

local c = local_cluster.new({ timeout_ms = 2000, heartbeat_ms = 500, quiet = true })
local me = c:start_self({ name = "bench", log = false })
pogo.register("bench", pogo.self())

local ms_since = stats.ms_since

local function start_nodes(n, settle_ms)
  local list = {}
  for i = 1, n do
    local seed
    for _, node in ipairs(c.nodes) do if not node.exited and node ~= list[i] then seed = node end end
    list[i] = c:start_node({ script = "bench/support/failover_node.lua", args = { me, settle_ms },
      seeds = seed and { seed } or nil })
    c:connect(list[i])
  end
  return list
end

local function await_ring(n)
  local_cluster.wait_until(function()
    for _, node in ipairs(c:alive()) do
      local ok, size = c:rpc(node, R, "ring_size", {}, 2000)
      if not ok or size ~= n then return false end
    end
    return true
  end, 20000, "the ring")
end

local function counts()
  local t, total = {}, 0
  for _, node in ipairs(c:alive()) do
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

-- 5. the move of 1,000 children with 1 KiB of state on a join, with and without
-- handoff: 4 nodes; 1,000 children without handoff pinned to a node that is
-- not there yet, 1,000 with handoff pinned to another (their names are known:
-- fixed ports). Each run starts the first node, times until its 1,000 run
-- there, SIGKILLs it (nothing is handed back: they run on the others again),
-- then the same with the second; the runs alternate, so both see the same
-- load of this shared machine. Returns the medians of 3 runs (ms) and
-- whether every child that moved with handoff got its state and every other
-- started afresh.
-- The join wait of these nodes: the default (1000 ms). With the 200 ms of
-- the other rows, on this loaded machine a joining node sometimes stopped
-- waiting for a peer's answer before it knew which children that peer ran,
-- and started them at once: without their state (and, for a moment, twice).
local SETTLE_MS = "1000"

local function free_port()
  local probe = uv.new_tcp()
  assert(probe:bind("127.0.0.1", 0))
  local port = probe:getsockname().port
  probe:close()
  return port
end

local function join_moves()
  for _, node in ipairs(c:alive()) do c:stop(node) end
  flush()
  start_nodes(NODES - 1, SETTLE_MS)
  await_ring(NODES - 1)
  local variants = {}
  for i, handoff in ipairs { false, true } do
    local port = free_port()
    local ids, from = {}, i * 10000
    for id = from + 1, from + 1000 do ids[id] = true end
    variants[i] = { handoff = handoff, port = port, name = "mv" .. i .. "@127.0.0.1:" .. port, ids = ids, runs = {} }
    pogo.spawn(function()
      c:call(c:alive()[1], R, "start_stateful", { from + 1, from + 1000, me, variants[i].name, handoff }, 60000)
    end)
    await_started(1000, uv.hrtime(), ids)
  end
  local as_expected = true
  for run = 1, 3 do
    for i, v in ipairs(variants) do
      flush()
      local t0 = uv.hrtime()
      local mv = c:start_node({ name = "mv" .. i, port = v.port, script = "bench/support/failover_node.lua",
        args = { me, SETTLE_MS }, seeds = { c:alive()[1] } })
      c:connect(mv)
      local seen, got, deadline = {}, 0, uv.now() + 30000
      while got < 1000 do
        local m = pogo.receive(math.max(1, deadline - uv.now()))
        if not m then error("only " .. got .. " of 1000 children moved to the new node") end
        if m[1] == "started" and m[3] == v.name and v.ids[m[2]] and not seen[m[2]] then
          seen[m[2]] = true
          got = got + 1
          if m[4] ~= v.handoff then
            as_expected = false
            if os.getenv("POGO_BENCH_VERBOSE") then
              io.stderr:write("unexpected: run ", run, " child ", m[2], " handed over: ", tostring(m[4]), "\n")
            end
          end
        end
        uv.update_time()
      end
      v.runs[run] = ms_since(t0)
      flush()
      c:kill(mv)
      await_started(1000, uv.hrtime(), v.ids)
    end
  end
  for _, v in ipairs(variants) do table.sort(v.runs) end
  return variants[1].runs, variants[2].runs, as_expected
end

local ONLY = os.getenv("POGO_BENCH_ONLY")
local results = {}
local ok, err = xpcall(function()
  if ONLY == "handoff" then
    results.move_plain, results.move_handoff, results.all_handed = join_moves()
    return
  end
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
  for i, node in ipairs(c:alive()) do before[i] = { c:call(node, R, "usage") } end
  local window = 5
  pogo.sleep(window * 1000)
  local cpu, rss = {}, {}
  for i, node in ipairs(c:alive()) do
    local secs, kib = c:call(node, R, "usage")
    cpu[i] = (secs - before[i][1]) / window * 100
    rss[i] = kib
  end
  results.cpu, results.rss = cpu, rss

  -- 2. failover: 1,000 children, SIGKILL one node, time until all run again
  for _, node in ipairs(c:alive()) do c:stop(node) end
  flush()
  nodes = start_nodes(NODES)
  await_ring(NODES)
  pogo.spawn(function() c:call(nodes[1], R, "start_children", { 1, 1000, me }, 60000) end)
  local _, where = await_started(1000, uv.hrtime())
  -- a node goes (SIGKILL, or SIGTERM: its orderly stop): the ms until its
  -- children all run again elsewhere (and, for SIGTERM, until it exited);
  -- then a new node takes its place
  local function lose_one(run, signal)
    local alive = c:alive()
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
      for _, node in ipairs(c:alive()) do
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
  local alive = c:alive()
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
      for _, node in ipairs(c:alive()) do
        if not c:call(node, R, "settled", {}, 5000) then return false end
      end
      return true
    end, 20000, "the cluster to settle")
  end
  table.sort(back)
  results.pinned = back

  results.move_plain, results.move_handoff, results.all_handed = join_moves()
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
local function handoff_rows()
  local plain, handed = results.move_plain[2], results.move_handoff[2]
  row("join: move 1,000 children with 1 KiB state, no handoff, median of 3", string.format("%.1f ms", plain), "",
    true)
  row("join: move 1,000 children with 1 KiB state, with handoff, median of 3",
    string.format("%.1f ms (%.2f x)", handed, handed / plain), "<= 2 x without", handed <= 2 * plain)
  row("join: runs without / with handoff (ms)", string.format("%.0f %.0f %.0f / %.0f %.0f %.0f",
    results.move_plain[1], results.move_plain[2], results.move_plain[3], results.move_handoff[1],
    results.move_handoff[2], results.move_handoff[3]), "", true)
  row("join: state handed over exactly with handoff", tostring(results.all_handed), "true", results.all_handed)
end
if ONLY == "handoff" then
  handoff_rows()
  os.exit(0)
end
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
handoff_rows()
os.exit(0)
