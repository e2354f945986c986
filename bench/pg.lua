-- bench/pg.lua: speed and memory of pogo.pg (compare: bench/pg_erlang.escript
-- runs the same measurements on Erlang's pg).
--
--   lua5.4 bench/pg.lua            (from the repository root, as `make bench` does)
--
-- Prints one table:
--   local joins/s      pg.join calls per second on one node (CPU time), one
--                      process joining 100,000 distinct string groups, the same
--                      with table groups {"spec", i}, and 100,000 processes
--                      joining one group; leaves likewise
--   remote visibility  median and p99 time from pg.join on node A until a
--                      pg.monitor on node B delivers the notification (wall
--                      clock, loopback, one join every 0.5 ms); needs a second
--                      node (bin/pogo), reported as n/a without the transport
--   memory             Lua heap growth for 100,000 groups of one member each
--                      (one process in all of them, and one process per group)
--   get_members        ns per call for a one-member group with 10 and with
--                      100,000 groups in the scope (should not depend on it)
-- Targets: >= 200,000 local joins/s, remote p99 < 5 ms, get_members independent
-- of the number of groups.
local stats = require "bench.support.stats"
local pogo = require "pogo"
local pg = require "pogo.pg"
local uv = require "luv"

-- Node B of the remote-visibility measurement (started by node A, below, as
-- `bin/pogo ... bench/pg.lua --node-b`): note when each join reaches a
-- monitor here, and report the delays to whoever asks.
local function node_b()
  pg.start("bench_r")
  local ref = pg.monitor_scope("bench_r")
  pg.join("bench_r", "ready", pogo.self())
  local lat = {}
  while true do
    local m = pogo.receive()
    if m[1] == "pg" and m[2] == ref and m[3] == "join" and type(m[4]) == "table" and m[4][1] == "lat" then
      lat[#lat + 1] = uv.hrtime() - m[4][3]
    elseif m[1] == "report" then
      pogo.send(m[2], {"lat", lat})
    end
  end
end
if ... == "--node-b" then return node_b() end

local N = 100000
local rows, failures = {}, {}

local function row(what, value, note) stats.row(rows, what, value, note) end

local rate = stats.rate

local heap = stats.heap

local function mib(b) return string.format("%.1f MiB (%d B/group)", b / 1048576, math.floor(b / N + 0.5)) end

local function timed(f)
  local t0 = os.clock()
  f()
  return os.clock() - t0
end

local function spawn_idle(n)
  local t = {}
  for i = 1, n do t[i] = pogo.spawn(function() pogo.receive() end) end
  pogo.sleep(0) -- let them all reach receive
  return t
end

-- 1. local joins and leaves --------------------------------------------------
local me = pogo.self()
local sgroups, tgroups = {}, {}
for i = 1, N do
  sgroups[i] = "group:" .. i
  tgroups[i] = {"spec", i}
end

pg.start("bench_s")
local t = timed(function() for i = 1, N do pg.join("bench_s", sgroups[i], me) end end)
local join_rate = N / t
row("local joins/s, 1 pid x 100k string groups", rate(join_rate))
t = timed(function() for i = 1, N do pg.leave("bench_s", sgroups[i], me) end end)
row("local leaves/s, same", rate(N / t))

pg.start("bench_t")
t = timed(function() for i = 1, N do pg.join("bench_t", tgroups[i], me) end end)
row("local joins/s, 1 pid x 100k table groups", rate(N / t))
t = timed(function() for i = 1, N do pg.leave("bench_t", tgroups[i], me) end end)
row("local leaves/s, same", rate(N / t))

local procs = spawn_idle(N)
pg.start("bench_p")
t = timed(function() for i = 1, N do pg.join("bench_p", "one", procs[i]) end end)
row("local joins/s, 100k pids x 1 group", rate(N / t))
t = timed(function() for i = N, 1, -1 do pg.leave("bench_p", "one", procs[i]) end end)
row("local leaves/s, same (newest first)", rate(N / t))
if join_rate < 200000 then failures[#failures + 1] = "local joins < 200,000/s" end

-- 2. memory -------------------------------------------------------------------
pg.start("bench_m1")
local before = heap()
for i = 1, N do pg.join("bench_m1", sgroups[i], me) end
local m1 = heap() - before
row("memory, 100k groups x 1 member (one pid)", mib(m1), "group names held by the caller")

pg.start("bench_m2")
pogo.sleep(5)
before = heap()
for i = 1, N do pg.join("bench_m2", sgroups[i], procs[i]) end
pogo.sleep(50) -- the scope process monitors the new members
local m2 = heap() - before
row("memory, 100k groups x 1 member (own pid each)", mib(m2),
  "Lua heap; the member monitors' C records add about 120 B/member")

-- 3. get_members cost ---------------------------------------------------------
-- Both scopes exist while measuring (same heap, same GC work), and the rounds
-- alternate between them; the best round of each counts.
pg.start("bench_small")
pg.start("bench_tsmall")
for i = 1, 10 do
  pg.join("bench_small", sgroups[i], me)
  pg.join("bench_tsmall", tgroups[i], me)
end
for i = 1, N do pg.join("bench_t", tgroups[i], me) end
local function compare(scope_a, group_a, scope_b, group_b)
  local reps, best_a, best_b = 100000, math.huge, math.huge
  for _ = 1, 5 do
    best_a = math.min(best_a, timed(function()
      for _ = 1, reps do pg.get_members(scope_a, group_a) end
    end))
    best_b = math.min(best_b, timed(function()
      for _ = 1, reps do pg.get_members(scope_b, group_b) end
    end))
  end
  return best_a / reps * 1e9, best_b / reps * 1e9
end
local small, big = compare("bench_small", "group:5", "bench_m1", "group:50000")
row("get_members ns/call, 10 groups in scope", string.format("%.0f ns", small))
row("get_members ns/call, 100k groups in scope", string.format("%.0f ns", big),
  string.format("ratio %.2f", big / small))
local tsmall, tbig = compare("bench_tsmall", {"spec", 5}, "bench_t", {"spec", 50000})
row("get_members ns/call, table group, 10 groups", string.format("%.0f ns", tsmall))
row("get_members ns/call, table group, 100k groups", string.format("%.0f ns", tbig),
  string.format("ratio %.2f", tbig / tsmall))
if big / small > 1.5 or tbig / tsmall > 1.5 then
  failures[#failures + 1] = "get_members depends on the number of groups"
end

-- 4. remote visibility ----------------------------------------------------------
-- Node A (this process) starts node B (lua5.4 bin/pogo ... bench/pg.lua
-- --node-b), waits until their scopes see each other, then joins group
-- {"lat", i, t} every millisecond, t being the monotonic clock (uv.hrtime, the
-- same clock in both processes); B's monitor notes when each join reaches it.
-- Returns {median =, p99 =, note =} in ms, or nil and why not.
local LAT_JOINS = 1000

local percentile = stats.percentile

local function remote_visibility()
  if not (pogo.start and io.open("bin/pogo")) then
    return nil, "n/a: needs the transport (pogo.start) and bin/pogo (run from the repository root)"
  end
  local cookie = "pgbench" .. uv.hrtime()
  local name = pogo.start{name = "pgbench_a", cookie = cookie, log = false}
  local stdin = uv.new_pipe(false)
  local handle, pid = uv.spawn(os.getenv("LUA") or "lua5.4", {
    args = {"bin/pogo", "--name", "pgbench_b", "--cookie", cookie, "--quiet", "--watch-stdin",
            "--seeds", name:match("@(.*)$"), "bench/pg.lua", "--node-b"},
    stdio = {stdin, 1, 2},
  }, function() end)
  if not handle then return nil, "n/a: cannot start node B: " .. tostring(pid) end
  local function finish()
    uv.kill(pid, "sigterm")
    stdin:close()
    handle:close()
  end
  pg.start("bench_r")
  local deadline = pogo.now() + 10000
  while #pg.get_members("bench_r", "ready") == 0 or #pg.info("bench_r").peers == 0 do
    if pogo.now() > deadline then
      finish()
      return nil, "n/a: node B did not come up"
    end
    pogo.sleep(10)
  end
  local b = pg.get_members("bench_r", "ready")[1]
  pogo.sleep(20)
  for i = 1, LAT_JOINS do
    pg.join("bench_r", {"lat", i, uv.hrtime()}, me)
    pogo.sleep(1)
  end
  pogo.send(b, {"report", pogo.self()})
  local m = pogo.receive(function(msg) return type(msg) == "table" and msg[1] == "lat" end, 5000)
  finish()
  if not m then return nil, "n/a: no report from node B" end
  local lat = m[2]
  table.sort(lat)
  local note = string.format("loopback, %d of %d joins seen, one every 1 ms", #lat, LAT_JOINS)
  return {median = percentile(lat, 0.5) / 1e6, p99 = percentile(lat, 0.99) / 1e6, note = note}
end

local ok, res, why = pcall(remote_visibility)
if not ok then why = res; res = nil end
if res then
  row("remote visibility, median", string.format("%.3f ms", res.median), res.note)
  row("remote visibility, p99", string.format("%.3f ms", res.p99), res.note)
  if res.p99 >= 5 then failures[#failures + 1] = "remote p99 >= 5 ms" end
else
  row("remote visibility, median / p99", "n/a", tostring(why))
end

-- report ------------------------------------------------------------------------
print(string.format("pogo.pg: %d groups, %s", N, _VERSION))
stats.print_rows(rows)
if #failures == 0 then
  print("targets: met (>= 200k local joins/s, get_members independent of the number of groups" ..
    (res and ", remote p99 < 5 ms)" or "; remote visibility not measured)"))
else
  print("targets missed: " .. table.concat(failures, "; "))
end
os.exit(0)
