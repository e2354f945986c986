-- bench/dashboard.lua: the cluster's web page with 10,000 children, measured
-- in a real browser (Debian's headless Chromium over the DevTools pipe,
-- spec/support/browser.lua). 3 node OS processes on loopback run
-- distributed supervisor "jobs" with 10,000 children; the first serves the
-- page (--http). Each run opens the page in a fresh tab and reads the
-- Navigation Timing API and the page's own marks:
--   * first byte to DOM ready: responseStart -> domContentLoadedEventEnd
--     (the target: under 300 ms);
--   * first byte to the first snapshot drawn (mark pogo-first-render) and
--     to the first page of children drawn (mark pogo-children-render);
--   * the rows in the DOM (never 10,000: one page of 50).
-- Then the server side, from a plain HTTP client: /api/cluster (the
-- collector's snapshot), /api/children (page 1 of 10,000), /metrics (a
-- fresh gather), and one gather of the cluster on the serving node.
-- Median, min and max of RUNS runs each.
-- Run: make bench (or lua5.4 bench/dashboard.lua with the Makefile's LUA_PATH/LUA_CPATH).
local here = (arg and arg[0] or "bench/dashboard.lua"):match("^(.*)/[^/]*$") or "bench"
package.path = here .. "/../spec/?.lua;" .. package.path
local pogo = require "pogo"
local uv = require "luv"
local local_cluster = require "pogo.local_cluster"
local browser = require "support.browser"
local client = require "support.http_client"

local CHILDREN = 10000
local RUNS = 7

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  return s[(#s + 1) // 2], s[1], s[#s]
end

local c = local_cluster.new({ timeout_ms = 2000, heartbeat_ms = 500, quiet = true })
c:start_self({ name = "bench", log = false })
local b
local ok, err = xpcall(function()
  -- only the first node requests the children (the others learn them from it)
  local nodes, addr = require("support.observed_node").start_cluster(c, { prefix = "dash", children = CHILDREN,
    http = true, first_only = true })
  local port = tonumber(addr:match(":(%d+)$"))

  b = browser.launch { width = 1280, height = 1000 }
  local dom, first, kids, rows = {}, {}, {}, 0
  for run = 1, RUNS do
    local page = b:open("http://" .. addr .. "/")
    page:wait("performance.getEntriesByName('pogo-children-render').length > 0", 10000, "the children drawn")
    local t = page:eval([[(() => {
      const n = performance.getEntriesByType('navigation')[0];
      const f = performance.getEntriesByName('pogo-first-render')[0];
      const k = performance.getEntriesByName('pogo-children-render')[0];
      return [n.domContentLoadedEventEnd - n.responseStart, f.startTime - n.responseStart,
              k.startTime - n.responseStart, document.querySelectorAll('tr').length,
              +document.getElementById('children-total').textContent];
    })()]])
    dom[run], first[run], kids[run] = t[1], t[2], t[3]
    rows = math.max(rows, t[4])
    assert(t[5] == CHILDREN, "the page shows " .. tostring(t[5]) .. " children")
    b:send("Target.closeTarget", { targetId = page.target })
  end

  local function timed(path)
    local list = {}
    for i = 1, RUNS do
      local t0 = uv.hrtime()
      local status = client.get(port, path)
      assert(status == 200, path .. ": " .. tostring(status))
      list[i] = (uv.hrtime() - t0) / 1e6
    end
    return list
  end
  local api_cluster = timed("/api/cluster")
  local api_children = timed("/api/children?sup=jobs&page=1&per_page=50")
  local metrics = timed("/metrics")
  local gathers = {}
  for i = 1, RUNS do
    gathers[i] = c:call(nodes[1], "pogo.observer.console", "eval", {
      "local uv = require 'luv'; local t = uv.hrtime(); require('pogo.observer').gather(); "
      .. "return (uv.hrtime() - t) / 1e6" }, 10000).json[1]
  end

  print(string.format("the web page, 3 nodes, %d children, %d runs (ms; median [min, max])", CHILDREN, RUNS))
  print(string.format("%-44s %10s %16s", "measure", "median", "min .. max"))
  local function row(name, list, target)
    local m, lo, hi = median(list)
    print(string.format("%-44s %10.1f %7.1f .. %6.1f%s", name, m, lo, hi, target or ""))
  end
  row("browser: first byte -> DOM ready", dom, "   (target < 300)")
  row("browser: first byte -> cluster drawn", first)
  row("browser: first byte -> first page of children", kids)
  row("server: GET /api/cluster", api_cluster)
  row("server: GET /api/children (page 1 of 10,000)", api_children)
  row("server: GET /metrics (fresh gather)", metrics)
  row("serving node: one gather of the cluster", gathers)
  print(string.format("%-44s %10d", "table rows in the DOM (all tables)", rows))
end, debug.traceback)

if b then b:close() end
for _, node in ipairs(c.nodes) do
  if not node.exited then c:stop(node, 2000) end
end
c:teardown()
pogo.stop()
if not ok then
  io.stderr:write("bench/dashboard.lua failed: ", tostring(err), "\n")
  os.exit(1)
end
os.exit(0)
