-- bench/scale.lua: the distributed supervisor at scale, on node OS processes
-- over loopback (pogo.local_cluster). Prints one table, with the targets of
-- issue 18 beside each figure:
--
--   * for each size (10,000, 50,000, 100,000 children on 5 nodes, requested
--     from one node): the time from the first start_child until every child
--     runs, and the rate; which_children(sup, "global") and
--     count_children(sup, "global") as timed inside a node (median of a few
--     calls); RSS and idle CPU of the worst node while the children sit idle
--     (a 5 s window from 6 s after the last start); count_children and
--     which_children(sup, "local") on the node that runs the most children
--     (timed there, one node at a time);
--   * for each mesh (25 and 50 nodes, each seeded with the first): the time
--     from the moment every node process listens until every node sees all
--     the others (full mesh) and until every supervisor's ring holds every
--     node; idle CPU per node with 1,000 children; the failover of 1,000
--     children (median of 3 SIGKILLs of one node: until its children run again);
--   * the cost of a child by the role of the node (10,000 children on 5 nodes,
--     all requested from the first and pinned to the second): the CPU each
--     node spent per child while they were placed, for the node that
--     requested them, the node that runs them, and the three others (mean),
--     and what a child costs the others in Lua heap and RSS once placed.
--     Every node holds every child's request and its place (README, "at
--     scale"): the last figures are what the design costs per child on a node
--     that has nothing else to do with it. With --profile, pogo.profile
--     times the lines of the requesting, the running and one other node during that
--     placement, and their longest lines are printed after the table;
--   * churn on 5 nodes: 1,000 start_child and 1,000 terminate_child per second
--     from one node (each child lives 1 s) after a 20 s warm-up: the growth of
--     each node's RSS, read every second, from the median of the first 10 s
--     to the median of the last 10 s of the 60 (the worst node's is shown),
--     and the p99 delay from start_child to the child running (measured by
--     the child, on the same machine's clock).
--
-- Times are taken on the nodes with uv.hrtime (CLOCK_MONOTONIC, one clock for
-- every process of the machine): a child counts its start on its node, and
-- the bench reads the counts and the time of the last start.
--
-- Run: lua5.4 bench/scale.lua [options] (with the Makefile's LUA_PATH/LUA_CPATH);
--   --sizes 10000,50000,100000   children on 5 nodes ("" to skip)
--   --meshes 25,50               node counts of the mesh rows ("" to skip)
--   --roles 10000                children of the rows by role (0 to skip)
--   --profile                    profile the nodes of the rows by role (pogo.profile)
--   --churn-seconds 60           measured churn (0 to skip); --churn-rate 1000
--   --repeat N                   runs per size (median); default 3 up to 10,000, else 1
--   --quick                      10,000 once, 25 nodes, 10 s of churn
-- The full run takes several minutes.
package.path = "bench/support/?.lua;" .. package.path
local pogo = require "pogo"
local uv = require "luv"
local argparse = require "argparse"
local local_cluster = require "pogo.local_cluster"
local stats = require "stats"

local function numbers(s)
  local out = {}
  for x in s:gmatch("[^,%s]+") do
    local n = math.tointeger(tonumber(x))
    if not n or n <= 0 then return nil, "positive integers expected, got '" .. x .. "'" end
    out[#out + 1] = n
  end
  return out
end

local parser = argparse("scale.lua", "The distributed supervisor at scale (issue 18).")
parser:option("--sizes", "children on 5 nodes, comma-separated (\"\" to skip)", "10000,50000,100000")
  :convert(numbers)
parser:option("--meshes", "node counts of the mesh rows (\"\" to skip)", "25,50"):convert(numbers)
parser:option("--roles", "children of the rows by role (0 to skip)", "10000"):convert(math.tointeger)
parser:flag("--profile", "profile the nodes of the rows by role (pogo.profile), printed after the table")
parser:option("--churn-seconds", "seconds of measured churn (0 to skip)", "60"):convert(math.tointeger)
parser:option("--churn-rate", "start_child (and terminate_child) per second", "1000"):convert(math.tointeger)
parser:option("--repeat", "runs per size, the median is shown (default 3 up to 10,000 children, else 1)")
  :convert(math.tointeger)
parser:flag("--quick", "10,000 children once, 25 nodes, 10 s of churn")
local args = parser:parse()
if args.quick then
  args.sizes, args.meshes, args.churn_seconds = { 10000 }, { 25 }, math.min(args.churn_seconds, 10)
  args["repeat"] = args["repeat"] or 1
end

local PLACE_NODES = 5
local R = "scale_remote"
-- churn before the first RSS reading: until the working set is steady. It
-- holds the children alive (1 s each) and the tombstones of the terminated
-- requests, each kept a repair interval (sync_interval, 5 s) after its
-- marker went; the collector then needs a few major cycles at that size.
-- Measured (RSS of a node every 5 s): 19, 22, 24, 26 MiB at 5, 10, 15, 20 s,
-- then flat within 1 MiB up to 75 s. A reading at 5 s counted that ramp as
-- growth (+54 %), which is not what the figure is for: memory that stays.
local WARM_MS = 20000
local IDLE_S = 5     -- the idle CPU window
-- from the last child's start to the idle window: the placement's tail (the
-- pg changes still in flight, the first repair pass after it, the collector
-- digesting the burst) is over. Measured at 50,000 children, CPU per node in
-- 5 s windows from the last start: 1.0-1.8 %, then 0.2-0.6 % from the second on.
local SETTLE_MS = 6000

-- a long silence timeout: a loaded machine must not drop a busy node (a SIGKILL closes its links at once)
local c = local_cluster.new({ timeout_ms = 10000, heartbeat_ms = 500, quiet = true })
c:start_self({ name = "bench", log = false })

local ms_since, median = stats.ms_since, stats.median
local T0 = uv.hrtime()
local function phase(what) io.stderr:write(string.format("[%6.1f s] %s\n", ms_since(T0) / 1000, what)) end

-- SIGKILL `node` and wait for its exit (a node started by another process
-- of the bench tells that process of its exit: watch `exited` instead).
local function kill(node)
  c:kill(node, 0)
  local_cluster.wait_until(function() return node.exited end, 5000, "the exit of " .. tostring(node.name))
end

local function kill_all()
  phase("kill")
  for _, node in ipairs(c:alive()) do c:kill(node, 0) end
  for _, node in ipairs(c.nodes) do kill(node) end
end

-- Start `n` nodes, each seeded with the previous one, and wait for the ring.
local function start_chain(n)
  local list = {}
  for i = 1, n do
    list[i] = c:start_node({ script = "bench/support/scale_node.lua", seeds = list[i - 1] and { list[i - 1] } })
    c:connect(list[i])
  end
  local_cluster.wait_until(function()
    for _, node in ipairs(list) do
      local ok, size = c:rpc(node, R, "ring_size", {}, 2000)
      if not ok or size ~= n then return false end
    end
    return true
  end, 30000, "the ring")
  return list
end

-- Run f(node) on every node in parallel (a process each); the results by node.
local function each(nodes, f)
  local me, out = pogo.self(), {}
  for i, node in ipairs(nodes) do
    pogo.spawn(function()
      local ok, r = pcall(function() return table.pack(f(node)) end)
      pogo.send(me, { "$each", i, ok, r })
    end)
  end
  for _ = 1, #nodes do
    local m = pogo.receive(function(x) return type(x) == "table" and x[1] == "$each" end, 180000)
    if not m then error("no answer from a node") end
    if not m[3] then error(m[4]) end
    out[m[2]] = m[4]
  end
  return out
end

-- Wait until the children started on `nodes` reach `n`; the uv.hrtime of
-- the last start.
local function await_starts(nodes, n, timeout_ms)
  local last
  local_cluster.wait_until(function()
    local total, l = 0, 0
    for _, r in ipairs(each(nodes, function(node) return c:call(node, R, "starts", {}, 120000) end)) do
      total = total + r[1]
      if r[1] > 0 and r[2] > l then l = r[2] end
    end
    last = l
    return total >= n
  end, timeout_ms, n .. " children")
  return last
end

-- Worst and mean idle CPU % and worst RSS (KiB) of `nodes` over IDLE_S.
local function idle(nodes)
  local before = each(nodes, function(node) return c:call(node, R, "usage", {}, 120000) end)
  pogo.sleep(IDLE_S * 1000)
  local after = each(nodes, function(node) return c:call(node, R, "usage", {}, 120000) end)
  local worst, sum, rss = 0, 0, 0
  for i = 1, #nodes do
    local cpu = (after[i][1] - before[i][1]) / IDLE_S * 100
    worst, sum = math.max(worst, cpu), sum + cpu
    rss = math.max(rss, after[i][2])
  end
  return worst, sum / #nodes, rss
end

-- ---- one size: n children on 5 nodes ----

local function placement_run(n)
  local nodes = start_chain(PLACE_NODES)
  phase(string.format("%d children: placing", n))
  local r = {}
  local u0 = each(nodes, function(node) return c:call(node, R, "usage", {}, 120000) end)
  local t0 = uv.hrtime()
  pogo.spawn(function() c:call(nodes[1], R, "start_children", { 1, n }, 600000) end)
  local last = await_starts(nodes, n, 600000)
  r.place_ms = (last - t0) / 1e6
  -- the CPU the nodes spent on it, less noisy than the time on a shared machine
  r.place_cpu = 0
  for i, u in ipairs(each(nodes, function(node) return c:call(node, R, "usage", {}, 120000) end)) do
    r.place_cpu = r.place_cpu + u[1] - u0[i][1]
  end
  phase("placed; idle")
  pogo.sleep(SETTLE_MS)
  local _
  r.cpu, _, r.rss = idle(nodes)
  phase("views")
  local wn = n >= 50000 and 3 or 5
  local ok, ms, k = pcall(c.call, c, nodes[2], R, "which_global", { wn }, 600000)
  r.which_ms = ok and ms or 0/0
  assert(not ok or k == n, string.format("%d children: which_children gave %d", n, k))
  if not ok then phase("which_children global failed: " .. tostring(ms)) end
  ok, ms, k = pcall(c.call, c, nodes[2], R, "count_global", { n >= 50000 and 5 or 21 }, 600000)
  r.count_ms = ok and ms or 0/0
  assert(not ok or k == n, string.format("%d children: count_children gave %d", n, k))
  if not ok then phase("count_children global failed: " .. tostring(ms)) end
  -- the local views of the node that holds the most children (a fifth of them, about)
  local most = 0
  for _, l in ipairs(each(nodes, function(node) return c:call(node, R, "local_views", { 1 }, 600000) end)) do
    most = math.max(most, l[2])
  end
  r.count_local_ms, r.which_local_ms, r.local_n = 0, 0, 0
  for _, node in ipairs(nodes) do -- one node at a time: each alone on the machine
    local count_ms, active, which_ms, entries = c:call(node, R, "local_views", { 5 }, 600000)
    assert(active == entries, string.format("count_children local %d, which_children local %d", active, entries))
    if active == most then r.count_local_ms, r.which_local_ms, r.local_n = count_ms, which_ms, active end
  end
  kill_all()
  return r
end

-- ---- the cost of a child by role: n children requested from the first
-- node and pinned to the second ----

local function roles(n)
  local nodes = start_chain(PLACE_NODES)
  phase(string.format("%d children pinned to one node: placing", n))
  local function usage()
    return each(nodes, function(node) return c:call(node, R, "usage", {}, 120000) end)
  end
  local m0 = { c:call(nodes[3], R, "memory", {}, 120000) }
  local profiled = { nodes[1], nodes[2], nodes[3] }
  if args.profile then
    each(profiled, function(node) assert(c:call(node, "pogo.profile", "start", {}, 120000)) end)
  end
  local u0 = usage()
  c:call(nodes[1], R, "start_children", { 1, n, nodes[2].name }, 600000)
  await_starts(nodes, n, 600000)
  local u1 = usage()
  local profiles = args.profile and each(profiled, function(node)
    return assert(c:call(node, "pogo.profile", "stop", {}, 120000))
  end)
  pogo.sleep(SETTLE_MS) -- the tail (see SETTLE_MS), then the memory of the placed children
  local m1 = { c:call(nodes[3], R, "memory", {}, 120000) }
  kill_all()
  local cpu = {}
  for i = 1, #nodes do cpu[i] = (u1[i][1] - u0[i][1]) / n * 1e6 end
  return {
    requesting = cpu[1], running = cpu[2], others = (cpu[3] + cpu[4] + cpu[5]) / 3,
    heap = (m1[2] - m0[2]) * 1024 / n, rss = (m1[3] - m0[3]) * 1024 / n,
    profiles = profiles and { requesting = profiles[1][1], running = profiles[2][1], other = profiles[3][1] },
  }
end

local function placement(n, runs)
  local all = {}
  for i = 1, runs do all[i] = placement_run(n) end
  local out = {}
  for _, k in ipairs { "place_ms", "place_cpu", "cpu", "rss", "which_ms", "count_ms", "count_local_ms",
    "which_local_ms", "local_n" } do
    local v = {}
    for i = 1, runs do v[i] = all[i][k] end
    out[k] = median(v)
  end
  return out
end

-- ---- one mesh: n nodes ----

local function mesh(n)
  local r = {}
  local t0 = uv.hrtime()
  local first = c:start_node({ script = "bench/support/scale_node.lua", args = { n } })
  local me, nodes = pogo.self(), { first }
  for i = 2, n do
    pogo.spawn(function()
      local ok, node = pcall(c.start_node, c, { script = "bench/support/scale_node.lua", args = { n },
        seeds = { first } })
      pogo.send(me, { "$started", i, ok, node })
    end)
  end
  for _ = 2, n do
    local m = pogo.receive(function(x) return type(x) == "table" and x[1] == "$started" end, 60000)
    if not m or not m[3] then error("a node did not start: " .. tostring(m and m[4])) end
    nodes[m[2]] = m[4]
  end
  local t_listen = uv.hrtime()
  phase(string.format("%d nodes listen", n))
  r.startup_ms = (t_listen - t0) / 1e6
  for _, node in ipairs(nodes) do
    -- a loaded machine may close a first dial: try again
    local_cluster.wait_until(function() return pcall(c.connect, c, node) end, 10000, "a link to " .. node.name)
  end
  local full, ring
  local_cluster.wait_until(function()
    full, ring = 0, 0
    for _, t in ipairs(each(nodes, function(node) return c:call(node, R, "mesh_times") end)) do
      if not t[1] or not t[2] then return false end
      full, ring = math.max(full, t[1]), math.max(ring, t[2])
    end
    return true
  end, 60000, "a full mesh of " .. n)
  r.mesh_ms = math.max(0, (full - t_listen) / 1e6)
  r.ring_ms = math.max(0, (ring - t_listen) / 1e6)

  -- 1,000 children, idle
  phase("meshed; 1,000 children")
  pogo.spawn(function() c:call(nodes[1], R, "start_children", { 1, 1000 }, 600000) end)
  await_starts(nodes, 1000, 60000)
  pogo.sleep(1000)
  r.cpu, r.cpu_mean = idle(nodes)

  phase("failover")
  -- failover: SIGKILL a node (not the requester), until its children run
  -- again. The nodes tell of each start as it happens: asking all of them
  -- every 10 ms (await_starts) was itself 50 calls a round on the 2 cores
  -- the failover needs.
  local runs = {}
  for run = 1, 3 do
    local victim = table.remove(nodes, run + 1)
    local k = c:call(victim, R, "local_count")
    each(nodes, function(node) return c:call(node, R, "watch_starts", { me }, 120000) end)
    local tk = uv.hrtime()
    kill(victim)
    local last = tk
    for _ = 1, k do
      local m = local_cluster.expect(function(x) return type(x) == "table" and x[1] == "$start" end, 20000,
        k .. " children")
      last = math.max(last, m[2])
    end
    each(nodes, function(node) return c:call(node, R, "watch_starts", {}, 120000) end)
    while pogo.receive(function(x) return type(x) == "table" and x[1] == "$start" end, 0) do end
    runs[run] = (last - tk) / 1e6
  end
  r.failover_ms = median(runs)
  r.failover_worst = math.max(table.unpack(runs))
  kill_all()
  return r
end

-- ---- churn ----

local SAMPLE_S = 10 -- RSS is read every second: the first and last SAMPLE_S readings are compared

local function churn(seconds, rate)
  local nodes = start_chain(PLACE_NODES)
  local r = {}
  local me = pogo.self()
  pogo.spawn(function()
    local ok, started, terminated = pcall(c.call, c, nodes[1], R, "churn",
      { 1, rate, WARM_MS + seconds * 1000, 1000 }, WARM_MS + seconds * 1000 + 120000)
    pogo.send(me, { "$churned", ok, started, terminated })
  end)
  phase("churn")
  pogo.sleep(WARM_MS)
  each(nodes, function(node) return c:call(node, R, "take_delays") end)
  local t0 = uv.hrtime()
  -- RSS of every node once a second: a single reading lands anywhere on the
  -- collector's sawtooth (a node's heap swings by half between collections)
  local samples, sampling = {}, true
  for i = 1, #nodes do samples[i] = {} end
  pogo.spawn(function()
    local next_at = uv.hrtime()
    while sampling do
      for i, u in ipairs(each(nodes, function(node) return c:call(node, R, "usage", {}, 120000) end)) do
        local s = samples[i]
        s[#s + 1] = u[2]
      end
      next_at = next_at + 1e9
      pogo.sleep(math.max(0, (next_at - uv.hrtime()) / 1e6))
    end
  end)
  local m = pogo.receive(function(x) return type(x) == "table" and x[1] == "$churned" end,
    seconds * 1000 + 180000)
  sampling = false
  if not m or not m[2] then error("churn failed: " .. tostring(m and m[3])) end
  local secs = ms_since(t0) / 1000
  phase("churned")
  -- the nodes' histograms of the delays (support/scale_child.lua), merged
  local n, counts, over = 0, {}, {}
  for _, d in ipairs(each(nodes, function(node) return c:call(node, R, "take_delays", {}, 30000) end)) do
    d = d[1]
    n = n + d.n
    for k, count in pairs(d.counts) do counts[k] = (counts[k] or 0) + count end
    table.move(d.over, 1, #d.over, #over + 1, over)
  end
  local buckets = {}
  for k in pairs(counts) do buckets[#buckets + 1] = k end
  table.sort(buckets)
  table.sort(over)
  local rank, seen = math.max(1, math.ceil(n * 0.99)), 0
  r.p99 = 0 / 0
  for _, k in ipairs(buckets) do
    seen = seen + counts[k]
    if seen >= rank then r.p99 = k / 10; break end -- (the bucket's upper bound)
  end
  if seen < rank and over[rank - seen] then r.p99 = over[rank - seen] end
  r.rate = n / secs
  r.rss0, r.rss1, r.growth = 0, 0, -math.huge
  for i = 1, #nodes do
    local s = samples[i]
    local k = math.min(SAMPLE_S, #s // 2)
    local first, last = median(table.move(s, 1, k, 1, {})), median(table.move(s, #s - k + 1, #s, 1, {}))
    local g = (last - first) / first * 100
    if g > r.growth then r.growth, r.rss0, r.rss1 = g, first, last end
  end
  kill_all()
  return r
end

-- ---- the run ----

local rows = {}
local function row(name, value, target, pass)
  rows[#rows + 1] = { name, value or "", target or "", pass == nil and "" or (pass and "ok" or "MISSED") }
end

local profiles -- of the rows by role, printed after the table
local ok, err = xpcall(function()
  local rate10k
  for _, n in ipairs(args.sizes) do
    local runs = args["repeat"] or (n <= 10000 and 3 or 1)
    local r = placement(n, runs)
    local rate = n / r.place_ms * 1000
    local label = string.format("%d children, 5 nodes", n)
    if runs > 1 then label = label .. string.format(" (median of %d)", runs) end
    row(label)
    if n == 10000 then rate10k = rate end
    local ptarget, pok = "", nil
    if n <= 10000 then ptarget, pok = "<= 500 ms", r.place_ms <= 500 end
    if n >= 100000 then ptarget, pok = "<= 5000 ms", r.place_ms <= 5000 end
    row("  placement, start_child until all run", string.format("%.0f ms", r.place_ms), ptarget, pok)
    local rtarget, rok = "", nil
    if rate10k and n > 10000 then
      rtarget, rok = string.format(">= %.0f/s (10k / 1.3)", rate10k / 1.3), rate >= rate10k / 1.3
    end
    row("  placement rate", string.format("%.0f/s", rate), rtarget, rok)
    row("  CPU of the 5 nodes for the placement", string.format("%.2f s (%.0f us a child)", r.place_cpu,
      r.place_cpu / n * 1e6), "", nil)
    local wt = n <= 10000 and 10 or (n >= 100000 and 150 or nil)
    row("  which_children global", string.format("%.1f ms", r.which_ms), wt and ("<= " .. wt .. " ms") or "",
      wt and r.which_ms <= wt)
    row("  count_children global", string.format("%.3f ms", r.count_ms), "<= 1 ms", r.count_ms <= 1)
    row(string.format("  count_children local (%d children)", r.local_n), string.format("%.3f ms",
      r.count_local_ms), "<= 1 ms", r.count_local_ms <= 1)
    row(string.format("  which_children local (%d children)", r.local_n), string.format("%.1f ms",
      r.which_local_ms), "", nil)
    local mt = n <= 10000 and 30 or (n >= 100000 and 150 or nil)
    row("  RSS per node (worst)", string.format("%.1f MiB", r.rss / 1024), mt and ("<= " .. mt .. " MiB") or "",
      mt and r.rss / 1024 <= mt)
    row("  idle CPU per node (worst)", string.format("%.2f %%", r.cpu), "< 1 %", r.cpu < 1)
  end
  for _, n in ipairs(args.meshes) do
    local r = mesh(n)
    row(string.format("%d nodes (processes up in %.0f ms)", n, r.startup_ms))
    row("  full mesh, from all listening", string.format("%.0f ms", r.mesh_ms), "<= 2000 ms", r.mesh_ms <= 2000)
    row("  ring agreement, from all listening", string.format("%.0f ms", r.ring_ms), "<= 2000 ms",
      r.ring_ms <= 2000)
    row("  idle CPU per node, 1,000 children (worst / mean)", string.format("%.2f / %.2f %%", r.cpu, r.cpu_mean),
      "< 1 %", r.cpu < 1)
    row("  failover of 1,000 children (median / worst of 3)",
      string.format("%.1f / %.1f ms", r.failover_ms, r.failover_worst), "< 50 ms", r.failover_ms < 50)
  end
  if args.roles > 0 then
    local r = roles(args.roles)
    row(string.format("a child's cost by role, %d pinned to 1 of 5 nodes", args.roles))
    row("  CPU a child: requesting / running / others", string.format("%.0f / %.0f / %.0f us", r.requesting,
      r.running, r.others), "", nil)
    row("  a child on each other node: Lua heap / RSS", string.format("%.0f / %.0f bytes", r.heap, r.rss), "", nil)
    profiles = r.profiles
  end
  if args.churn_seconds > 0 then
    local r = churn(args.churn_seconds, args.churn_rate)
    row(string.format("churn, %d start+terminate/s for %d s, 5 nodes", args.churn_rate, args.churn_seconds))
    row(string.format("  RSS (worst node), median of the first -> last %d s", SAMPLE_S),
      string.format("%.1f -> %.1f MiB (%+.1f%%)", r.rss0 / 1024,
      r.rss1 / 1024, r.growth), "<= +5 %", r.growth <= 5)
    row("  start_child -> running, p99", string.format("%.1f ms", r.p99), "", nil)
    row("  children started per second", string.format("%.0f/s", r.rate), string.format(">= %d/s",
      math.floor(args.churn_rate * 0.95)), r.rate >= args.churn_rate * 0.95)
  end
end, debug.traceback)

for _, node in ipairs(c.nodes) do if not node.exited then c:kill(node, 2000) end end
c:teardown()
pogo.stop()

-- the rows measured, even when a later part failed
print(string.format("%-52s %-26s %-22s %s", "measure (loopback, " .. os.date("!%H:%M UTC") .. ")", "value",
  "target", "status"))
for _, r in ipairs(rows) do print(string.format("%-52s %-26s %-22s %s", r[1], r[2], r[3], r[4])) end
if profiles then
  local format = require("pogo.profile").format
  for _, role in ipairs { "requesting", "running", "other" } do
    print(string.format("\nprofile of the %s node during the placement by role (pogo.profile):", role))
    print(format(profiles[role], 12))
  end
end
if not ok then
  io.stderr:write("bench failed: ", tostring(err), "\n")
  os.exit(1)
end
os.exit(0)
