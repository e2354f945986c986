-- make demo: a local cluster on loopback doing real work.
--
-- Opens a few TCP ports on 127.0.0.1 as "services", starts three pogo nodes
-- (separate OS processes) running examples/service_monitor/node.lua, which
-- supervise one monitor per service with pogo.dynamic_supervisor; shows where
-- each monitor runs, SIGKILLs a node and times the failover, starts a node
-- again and shows the rebalance, SIGTERMs a node, then stops everything it
-- started and exits. Each monitor counts its probes (`checks`): the count
-- survives the moves of a join and of a SIGTERM (state handoff), and starts
-- again from zero after a SIGKILL, as the demo shows.
--
-- DASHBOARD=1 (make demo DASHBOARD=1): this process serves the cluster's
-- live web page (pogo.dashboard) on $DASHBOARD_ADDR (default
-- 127.0.0.1:8080, any free port if that one is taken) from the start, and
-- after the scenario keeps the cluster up until Ctrl-C.
-- SCREENSHOT=file.png (make screenshot): the same page, photographed by
-- headless Chromium (spec/support/browser.lua) after the scenario.
local pogo = require "pogo"
local uv = require "luv"
local local_cluster = require "pogo.local_cluster"

local DASHBOARD = os.getenv("DASHBOARD") == "1"
local SCREENSHOT = os.getenv("SCREENSHOT")
if SCREENSHOT == "" then SCREENSHOT = nil end

local DEADLINE_MS = 30000
local started_at = uv.hrtime()
local function elapsed_ms() return (uv.hrtime() - started_at) / 1e6 end
local function say(fmt, ...) io.stdout:write(string.format(fmt, ...), "\n"); io.stdout:flush() end

-- ---- the services: TCP listeners that accept and close ----
local service_names = { "billing", "search", "auth", "mail", "cache", "queue" }
local services, listeners = {}, {}
for i, name in ipairs(service_names) do
  local srv = uv.new_tcp()
  assert(srv:bind("127.0.0.1", 0))
  assert(srv:listen(64, function()
    local conn = uv.new_tcp()
    srv:accept(conn)
    conn:close()
  end))
  services[i] = { name = name, port = srv:getsockname().port }
  listeners[name] = srv
end
local spec_arg = {}
for _, s in ipairs(services) do spec_arg[#spec_arg + 1] = s.name .. "=" .. s.port end
spec_arg = table.concat(spec_arg, ",")

-- ---- this process: a pogo node that collects the monitors' reports ----
local c = local_cluster.new({ timeout_ms = 1000, heartbeat_ms = 200, quiet = true })
local me = c:start_self({ name = "demo", log = false })
pogo.register("demo", pogo.self())
local page -- the web page this process serves (DASHBOARD, SCREENSHOT)
if DASHBOARD or SCREENSHOT then
  require("pogo.observer").set_observer(true) -- it looks at the cluster, it is not part of it
  local dashboard = require "pogo.dashboard"
  local addr = os.getenv("DASHBOARD_ADDR") or "127.0.0.1:8080"
  page = dashboard.start(addr) or assert(dashboard.start("127.0.0.1:0"))
end

local where = {}      -- service -> node
local status = {}     -- service -> "up" | "down" (latest report)
local went_down = {}  -- service -> node whose monitor reported it down
local started_ns = {} -- service -> uv.hrtime() when its latest monitor started
local checks_at = {}  -- service -> the check count its latest monitor started from
local handed_in = {}  -- service -> whether that count was handed over by the instance before
local handed_out = {} -- service -> the count its last moving monitor handed over
local node_label = {} -- node name -> short label
local function label(node) return node_label[node] or node end

local function report_loop(until_fn, timeout_ms)
  local deadline = uv.now() + timeout_ms
  while not until_fn() do
    local left = deadline - uv.now()
    if left <= 0 then return false end
    local m = pogo.receive(left)
    if m and m[1] == "monitor_started" then
      where[m[2]] = m[3]
      started_ns[m[2]] = m[5]
      checks_at[m[2]], handed_in[m[2]] = m[6], m[7]
    elseif m and m[1] == "handoff" then
      handed_out[m[2]] = m[4]
    elseif m and m[1] == "status" then
      status[m[2]] = m[4]
      if m[4] == "down" then went_down[m[2]] = m[3] end
    end
    uv.update_time()
  end
  return true
end

local function placement_table(title)
  say("\n%s", title)
  say("  %-10s %-6s %s", "service", "port", "monitored on")
  for _, s in ipairs(services) do say("  %-10s %-6d %s", s.name, s.port, label(where[s.name] or "-")) end
end

-- Ask `via` for the ring's owner of every service, once its ring is `ring_ok`.
local function ring_owners(via, ring_ok, what)
  local owners = {}
  local_cluster.wait_until(function()
    local okn, ring = c:rpc(via, "pogo.dynamic_supervisor", "nodes", { "monitors" }, 1000)
    if not okn or not ring_ok(ring) then return false end
    for _, s in ipairs(services) do
      local okr, owner = c:rpc(via, "pogo.dynamic_supervisor", "node_for", { "monitors", s.name }, 1000)
      if not okr then return false end
      owners[s.name] = owner
    end
    return true
  end, 10000, what)
  return owners
end

-- Wait until every monitor has reported from its owner.
local function await_placed(owners, what)
  local function misplaced()
    local out = {}
    for _, s in ipairs(services) do
      if where[s.name] ~= owners[s.name] then
        out[#out + 1] = string.format("%s reported from %s, owner %s", s.name, label(where[s.name] or "-"),
          label(owners[s.name]))
      end
    end
    return out
  end
  if not report_loop(function() return #misplaced() == 0 end, 10000) then
    error(what .. ": " .. table.concat(misplaced(), "; "))
  end
end

local function ring_of(list)
  return function(ring)
    if #ring ~= #list then return false end
    local in_ring = {}
    for _, node in ipairs(ring) do in_ring[node] = true end
    for _, node in ipairs(list) do if not in_ring[node.name] then return false end end
    return true
  end
end

-- Let the monitors probe (and count) for `ms`, reading their reports.
local function let_them_count(ms)
  say("\n(the monitors probe their services for %.1f s)", ms / 1000)
  report_loop(function() return false end, ms)
end

-- The check counts of the monitors of `svcs` on `node`, asked just before it goes.
local function checks_of(node, svcs)
  local out = {}
  for _, svc in ipairs(svcs) do
    local okc, st = c:rpc(node, "pogo.dynamic_supervisor", "call", { "monitors", svc, "status" }, 1000)
    out[svc] = okc and st.checks or -1
  end
  return out
end

-- What became of `svc`'s check count in its last move.
local function count_went_along(svc)
  if not handed_in[svc] then
    return string.format("its check count starts from %d (nothing handed over)", checks_at[svc])
  end
  return string.format("its check count went along: handed over %d, goes on from %d", handed_out[svc] or -1,
    checks_at[svc])
end

local ok, err = xpcall(function()
  say("pogo demo: %d services on 127.0.0.1, this node is %s", #services, me)
  if page then say("the cluster's live page: http://%s/", page.addr) end
  -- three nodes, each seeded with the first
  local nodes = {}
  for i = 1, 3 do
    nodes[i] = c:start_node({ name = "node" .. i, script = "examples/service_monitor/node.lua",
      args = { spec_arg, me }, seeds = i > 1 and { nodes[1] } or nil })
    node_label[nodes[i].name] = "node" .. i
    c:connect(nodes[i])
    say("started node%d = %s (os pid %d)", i, nodes[i].name, nodes[i].pid)
  end
  await_placed(ring_owners(nodes[1], ring_of(nodes), "the three nodes to form the ring"), "monitors did not start")
  placement_table("every service has one monitor, on the node the ring assigns it:")
  local function n_up()
    local n = 0
    for _, st in pairs(status) do if st == "up" then n = n + 1 end end
    return n
  end
  report_loop(function() return n_up() == #services end, 3000)
  say("probes: %d of %d services answer", n_up(), #services)

  -- kill the node with the most monitors
  local per = {}
  for _, node in pairs(where) do per[node] = (per[node] or 0) + 1 end
  local victim
  for _, node in ipairs(nodes) do
    if not victim or (per[node.name] or 0) > (per[victim.name] or 0) then victim = node end
  end
  let_them_count(1000)
  local lost, survivors = {}, {}
  for svc, node in pairs(where) do if node == victim.name then lost[#lost + 1] = svc end end
  table.sort(lost)
  for _, node in ipairs(nodes) do if node ~= victim then survivors[#survivors + 1] = node end end
  say("\nSIGKILL %s (os pid %d), which monitors: %s", label(victim.name), victim.pid, table.concat(lost, ", "))
  local was = checks_of(victim, lost)
  local t0 = uv.hrtime()
  c:kill(victim)
  await_placed(ring_owners(survivors[1], ring_of(survivors), "the survivors' ring"), "monitors were not restarted")
  for _, svc in ipairs(lost) do
    say("  %-10s restarted on %s, %.1f ms after the kill; its check count starts again from %d (it was %d): "
      .. "a killed node hands nothing over", svc, label(where[svc]), (started_ns[svc] - t0) / 1e6,
      checks_at[svc], was[svc])
  end
  placement_table("after the failover:")

  -- a node joins again: children whose ring owner it is move to it
  let_them_count(1000)
  say("\nstarting node4")
  local before = {}
  for k, v in pairs(where) do before[k] = v end
  local n4 = c:start_node({ name = "node4", script = "examples/service_monitor/node.lua",
    args = { spec_arg, me }, seeds = { survivors[1] } })
  node_label[n4.name] = "node4"
  c:connect(n4)
  local t_join = uv.hrtime()
  survivors[#survivors + 1] = n4
  await_placed(ring_owners(survivors[1], ring_of(survivors), "node4 to join the ring"),
    "monitors did not move to their new owners")
  for _, s in ipairs(services) do
    if before[s.name] ~= where[s.name] then
      say("  %-10s moved %s -> %s, %.1f ms after node4 connected; %s", s.name, label(before[s.name]),
        label(where[s.name]), (started_ns[s.name] - t_join) / 1e6, count_went_along(s.name))
    end
  end
  placement_table("after the rebalance:")

  -- an orderly stop: SIGTERM to the node with the most monitors
  let_them_count(1000)
  per = {}
  for _, node in pairs(where) do per[node] = (per[node] or 0) + 1 end
  local stopping
  for _, node in ipairs(survivors) do
    if not stopping or (per[node.name] or 0) > (per[stopping.name] or 0) then stopping = node end
  end
  local moving, rest = {}, {}
  for svc, node in pairs(where) do if node == stopping.name then moving[#moving + 1] = svc end end
  table.sort(moving)
  for _, node in ipairs(survivors) do if node ~= stopping then rest[#rest + 1] = node end end
  before = {}
  for k, v in pairs(where) do before[k] = v end
  say("\nSIGTERM %s (os pid %d), which monitors: %s", label(stopping.name), stopping.pid, table.concat(moving, ", "))
  local t_term = uv.hrtime()
  local exit = c:stop(stopping, 10000)
  say("  %s exited with status %s", label(stopping.name), tostring(exit and exit.code))
  await_placed(ring_owners(rest[1], ring_of(rest), "the ring without " .. label(stopping.name)),
    "monitors did not move on the orderly stop")
  for _, svc in ipairs(moving) do
    say("  %-10s moved %s -> %s, %.1f ms after the SIGTERM; %s", svc, label(before[svc]), label(where[svc]),
      (started_ns[svc] - t_term) / 1e6, count_went_along(svc))
  end
  placement_table("after the orderly stop:")

  -- a service goes down: its monitor notices
  local victim_svc = services[1].name
  listeners[victim_svc]:close()
  listeners[victim_svc] = nil
  assert(report_loop(function() return went_down[victim_svc] ~= nil end, 3000),
    "the monitor did not notice its service go down")
  say("\nclosed %s's port: its monitor on %s reports it down", victim_svc, label(went_down[victim_svc]))

  if SCREENSHOT then
    package.path = "spec/?.lua;" .. package.path
    local browser = require "support.browser"
    local b = browser.launch { width = 1280, height = 1480 }
    local shot_ok, shot_err = pcall(function()
      local tab = b:open("http://" .. page.addr .. "/")
      tab:wait("document.querySelectorAll('#nodes tr[data-state=up]').length === 3 && "
        .. "document.querySelectorAll('#children tr').length > 0", 10000, "the page drawn")
      pogo.sleep(1500) -- a second snapshot: rates
      tab:screenshot(SCREENSHOT, 1280, 1480)
    end)
    b:close()
    assert(shot_ok, shot_err)
    say("\nthe page, photographed: %s", SCREENSHOT)
  end
  if DASHBOARD then
    say("\nthe cluster stays up: http://%s/ (Ctrl-C stops it)", page.addr)
    local me_pid, stop = pogo.self(), {}
    local sig = uv.new_signal()
    sig:start("sigint", function() pogo.send(me_pid, stop) end)
    local term = uv.new_signal()
    term:start("sigterm", function() pogo.send(me_pid, stop) end)
    pogo.receive(function(m) return m == stop end)
    sig:close()
    term:close()
  end
end, debug.traceback)

-- always: stop every node we started (SIGTERM, then SIGKILL by pid), close services
for _, node in ipairs(c.nodes) do
  if not node.exited then c:stop(node, 2000) end
end
c:teardown()
for _, srv in pairs(listeners) do srv:close() end
pogo.stop()
say("\ndone in %.1f s; every node process stopped", elapsed_ms() / 1000)
if not ok then
  io.stderr:write("demo failed: ", tostring(err), "\n")
  os.exit(1)
end
if elapsed_ms() > DEADLINE_MS and not DASHBOARD then os.exit(1) end
os.exit(0)
