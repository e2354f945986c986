-- Specs for bin/pogo's commands that look at a running cluster (status,
-- children, eval, remote, top, profile), run as real processes against a cluster of
-- 3 node processes that supervise 30 children, and for what an observer
-- costs the cluster (nothing: no ring, no join wait, no redial).
local pogo = require "pogo"
local uv = require "luv"
local cjson = require "cjson"
local cluster = require "support.cluster"
local cli = require "support.pogo_cli"

local N = 30
local R = "support.observed_node"

describe("bin/pogo observer commands", function()
  local c, nodes, seed, cookie

  local function run(args, opts)
    local full = {}
    for _, a in ipairs(args) do full[#full + 1] = a end
    if not (opts and opts.no_seed) then
      full[#full + 1] = "--seeds"
      full[#full + 1] = seed
    end
    if c.tls then -- the cluster runs TLS (POGO_TEST_TLS=1): so does the observer
      for _, x in ipairs { "--tls-cert", c.tls.cert, "--tls-key", c.tls.key, "--tls-ca", c.tls.ca } do
        full[#full + 1] = x
      end
    end
    opts = opts or {}
    opts.env = opts.env or { POGO_COOKIE = cookie }
    return cli.run(full, opts)
  end

  setup(function()
    c = cluster.new { quiet = true }
    cookie = c.cookie
    -- settle_ms 60 s: a supervisor that waited for an observer would hold its starts that long
    nodes = require(R).start_cluster(c, { prefix = "o", children = N, settle_ms = 60000 })
    seed = nodes[1].addr
  end)

  teardown(function() c:teardown() end)

  it("status: every node, its ring share, children and processes", function()
    local code, out, err = run { "status" }
    assert.are.equal(0, code, err)
    assert.are.equal("", err)
    for _, n in ipairs(nodes) do assert.matches(n.name, out, 1, true) end
    assert.matches("cluster of 3 nodes, seen from observer%-", out)
    assert.matches("supervisor jobs %(scope jobs%): " .. N .. " children running, " .. N .. " specs, ring of 3 nodes",
      out)
    local sum, share = 0, 0
    for _, n in ipairs(nodes) do
      local p, k = out:match(n.name:gsub("%p", "%%%0") .. "%s+([%d.]+)%%%s+(%d+)\n")
      assert.is_not_nil(p, out)
      sum, share = sum + tonumber(k), share + tonumber(p)
    end
    assert.are.equal(N, sum)
    assert.is_true(math.abs(share - 100) < 0.2, out)
    assert.is_nil(out:find("spec@", 1, true), "an observer is not listed as a node")
  end)

  it("status --json: the same for scripts", function()
    local code, out, err = run { "status", "--json" }
    assert.are.equal(0, code, err)
    local s = cjson.decode(out)
    assert.are.equal(3, #s.nodes)
    local names = {}
    for _, n in ipairs(s.nodes) do
      names[#names + 1] = n.name
      assert.is_true(n.processes > 0)
      assert.is_true(n.memory.lua > 0 and n.memory.rss > 0)
      assert.are.equal(2, #n.links)
      for _, l in ipairs(n.links) do assert.is_true(l.rtt_ms and l.rtt_ms > 0 and l.rtt_ms < 1000, out) end
    end
    table.sort(names)
    assert.are.same({ nodes[1].name, nodes[2].name, nodes[3].name }, names)
    local sup = s.supervisors[1]
    assert.are.equal("jobs", sup.name)
    assert.are.equal(N, sup.children)
    local total, shares = 0, 0
    for _, k in pairs(sup.per_node) do total = total + k end
    for _, x in pairs(sup.shares) do shares = shares + x end
    assert.are.equal(N, total)
    assert.is_true(math.abs(shares - 1) < 1e-9)
    assert.are.equal(3, #s.links)
    assert.matches("^observer%-", s.via)
  end)

  it("children SUP: the global view, and --json", function()
    local code, out, err = run { "children", "jobs" }
    assert.are.equal(0, code, err)
    local rows = 0
    for id, node, pid in out:gmatch("\n(job%d+)%s+(%S+)%s+(<%S+>)") do
      rows = rows + 1
      assert.are.equal(node, pid:match("^<(.*)%.%d+>$"), id)
    end
    assert.are.equal(N, rows)
    assert.matches(N .. " children of jobs on 3 nodes", out)
    code, out, err = run { "children", "jobs", "--json" }
    assert.are.equal(0, code, err)
    local j = cjson.decode(out)
    assert.are.equal(N, j.total)
    assert.are.equal(N, #j.children)
    local where = {}
    for _, e in ipairs(j.children) do where[e.id] = e.node end
    local ok, pid = c:rpc(nodes[2], "pogo.dynamic_supervisor", "whereis", { "jobs", "job7" })
    assert.is_true(ok)
    assert.are.equal(pogo.node_of(pid), where.job7)
    local _
    code, _, err = run { "children", "nosuch" }
    assert.are.equal(1, code)
    assert.matches("^pogo: no node of the cluster runs a distributed supervisor named nosuch\n$", err)
  end)

  it("eval NODE CODE: results printed readably, errors exit 1", function()
    local _
    local code, out, err = run { "eval", "o2", "pogo.node(), 1 + 1, {a = {1, 2}}" }
    assert.are.equal(0, code, err)
    assert.are.equal(string.format("%q\n2\n{\n  a = {\n    1,\n    2\n  }\n}\n", nodes[2].name), out)
    code, out = run { "eval", nodes[3].name, "local t = {} for i = 1, 3 do t[i] = i * i end print('sq') return t",
                      "--json" }
    assert.are.equal(0, code)
    local j = cjson.decode(out)
    assert.are.same({ { 1, 4, 9 } }, j.results)
    assert.are.equal("sq\n", j.output)
    assert.are.equal(nodes[3].name, j.node)
    code, out, err = run { "eval", "o1", "error('boom')" }
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.matches("^remote:1: boom\nstack traceback:", err)
    code, _, err = run { "eval", "nowhere", "1" }
    assert.are.equal(1, code)
    assert.matches("^pogo: no node nowhere in the cluster %(nodes: ", err)
    code, _, err = run { "eval", "o1", "1 +" }
    assert.are.equal(1, code)
    assert.matches("^remote:1: unexpected symbol near '1'\n$", err)
  end)

  it("profile NODE: where its processes spent their time, by line", function()
    local _
    local code, out, err = run { "profile", "o2", "--ms", "300", "--top", "5" }
    assert.are.equal(0, code, err)
    assert.matches("^profile of " .. nodes[2].name:gsub("%p", "%%%0") .. " for 300 ms\n", out)
    assert.matches("ms of wall time; processes ran ", out, 1, true)
    code, out, err = run { "profile", nodes[3].name, "--ms", "200", "--json" }
    assert.are.equal(0, code, err)
    local j = cjson.decode(out)
    assert.are.equal(nodes[3].name, j.node)
    assert.is_true(j.wall_ms >= 200)
    assert.is_true(j.slices_ms >= 0 and j.slices_ms <= j.wall_ms)
    assert.is_table(j.lines)
    code, _, err = run { "profile", "o1", "--ms", "0" }
    assert.are.equal(2, code)
    assert.matches("%-%-ms: a positive integer expected, got '0'", err)
  end)

  it("remote NODE: a console whose globals persist, fed from stdin", function()
    local input = table.concat({
      "x = 41",
      "x + 1",
      "print('hi from', pogo.node())",
      "for i = 1, 2 do",
      "  print(i)",
      "end",
      "y",
      "error('oops')",
      "pogo.self() == pogo.self()",
    }, "\n") .. "\n"
    local code, out, err = run({ "remote", "o2" }, { stdin = input })
    assert.are.equal(0, code, err)
    assert.are.equal("42\nhi from\t" .. nodes[2].name .. "\n1\n2\nnil\ntrue\n", out)
    assert.matches("remote:1: oops", err)
    code, out = run({ "remote", "o1", "--json" }, { stdin = "1, 'a'\n" })
    assert.are.equal(0, code)
    assert.are.same({ 1, "a" }, cjson.decode(out).results)
  end)

  it("remote's session is a pogo.server: an unknown request is answered at once, server.stop ends it", function()
    local server = require "pogo.server"
    local ok, s = c:rpc(nodes[2], "pogo.observer.console", "open", { pogo.self() }, 5000)
    assert.is_true(ok, tostring(s))
    local r = pogo.call(s, { "eval", "1 + 2" }, 5000)
    assert.is_true(r.ok)
    assert.are.same({ "3" }, r.text)
    -- (a session that did not answer would make this call raise "timeout" after 5 s)
    local t0 = pogo.now()
    assert.are.same({ nil, "unknown request" }, pogo.call(s, { "other" }, 5000))
    assert.are.same({ nil, "unknown request" }, pogo.call(s, "eval", 5000))
    assert.is_true(pogo.now() - t0 < 4000)
    local ref = pogo.monitor(s)
    assert.is_true(server.stop(s, "normal", 5000))
    local down = pogo.receive(function(m) return type(m) == "table" and m[1] == "DOWN" and m[2] == ref end, 5000)
    assert.is_not_nil(down)
    assert.are.equal("normal", down[4])
    -- and a session still ends when its owner goes
    local owner = pogo.spawn(function() pogo.receive() end)
    ok, s = c:rpc(nodes[2], "pogo.observer.console", "open", { owner }, 5000)
    assert.is_true(ok, tostring(s))
    ref = pogo.monitor(s)
    pogo.exit(owner, "kill")
    down = pogo.receive(function(m) return type(m) == "table" and m[1] == "DOWN" and m[2] == ref end, 5000)
    assert.is_not_nil(down, "the session ends with its owner")
  end)

  it("remote: a chunk past --call-timeout-ms is ended, the next runs in a fresh session; none spins on", function()
    local function idle(why)
      cluster.wait_until(function()
        local ok, n = c:rpc(nodes[2], R, "busy", {}, 2000)
        return ok and n == 0
      end, 10000, why)
    end
    local t0 = pogo.now()
    local code, out, err = run({ "remote", "o2", "--call-timeout-ms", "1000" },
      { stdin = "x = 5\nx\nwhile true do end\nx\n1 + 1\n", timeout_ms = 15000 })
    assert.are.equal(0, code, err)
    -- x was lost with the session the chunk ran in; the next chunks ran at once
    assert.are.equal("5\nnil\n2\n", out)
    assert.are.equal(1, select(2, err:gsub("\n", "")), err) -- one line
    assert.matches("^pogo: the chunk ran past %-%-call%-timeout%-ms %(1000 ms%)", err)
    assert.matches("fresh session", err)
    assert.is_true(pogo.now() - t0 < 8000)
    idle("the chunk past its timeout is ended on the node")
    -- a tool that dies while its chunk runs: the session ends with it
    local ok = pcall(run, { "remote", "o2", "--call-timeout-ms", "600000" },
      { stdin = "while true do end\n", timeout_ms = 2000 })
    assert.is_false(ok) -- (killed by the helper at its timeout)
    idle("the session of a dead tool is ended on the node")
  end)

  it("a node's children are counted while its supervisor is busy changing its state, not reported as 0", function()
    local function jobs_here()
      local st = c:call(nodes[1], "pogo.observer", "node_stats", {})
      for _, s in ipairs(st.supervisors) do
        if s.name == "jobs" then return s end
      end
    end
    local before = jobs_here()
    assert.is_true(before.active > 0)
    local ok, during = c:rpc(nodes[1], R, "stats_while_busy", { "jobs" }, 10000)
    assert.is_true(ok, tostring(during))
    assert.are.equal(before.active, during.active)
    assert.are.equal(before.specs, during.specs)
  end)

  it("a supervisor started with a scope and no name is found by its scope; one named as another's scope stays apart",
    function()
      -- "dup": only a scope, on o1 and o2; on o3 a supervisor named "dup" of another scope, "dup-named"
      for i = 1, 2 do
        local ok, started, why = c:rpc(nodes[i], R, "start_other", { { scope = "dup", settle_ms = 0 }, 4, "d" }, 15000)
        assert.is_true(ok and started, tostring(why or started))
      end
      local ok, started, why = c:rpc(nodes[3], R, "start_other",
        { { name = "dup", scope = "dup-named", settle_ms = 0 }, 3, "n" }, 15000)
      assert.is_true(ok and started, tostring(why or started))
      local snap
      cluster.wait_until(function()
        local code, out = run { "status", "--json" }
        if code ~= 0 then return false end
        snap = cjson.decode(out)
        local k = {}
        for _, sup in ipairs(snap.supervisors) do k[sup.scope] = sup.children end
        return k.dup == 4 and k["dup-named"] == 3
      end, 15000, "both supervisors' children running")
      local by_scope = {}
      for _, sup in ipairs(snap.supervisors) do by_scope[sup.scope] = sup end
      assert.are.equal("dup", by_scope.dup.name)
      assert.are.equal("dup", by_scope["dup-named"].name)
      assert.is_nil(by_scope.dup.per_node[nodes[3].name])
      assert.are.same({ [nodes[3].name] = 3 }, by_scope["dup-named"].per_node)
      -- children by scope: the scope-only one
      local code, out, err = run { "children", "dup-named", "--json" }
      assert.are.equal(0, code, err)
      assert.are.equal(3, #cjson.decode(out).children)
      code, out, err = run { "children", "dup", "--json" }
      assert.are.equal(0, code, err)
      local ids = {}
      for _, ch in ipairs(cjson.decode(out).children) do ids[#ids + 1] = ch.id end
      table.sort(ids)
      assert.are.same({ "d1", "d2", "d3", "d4" }, ids)
      -- and read by rpc as the web page does, on a node that has only the scope
      local okc, r, why2 = c:rpc(nodes[1], "pogo.observer", "children", { "dup", {} }, 5000)
      assert.is_true(okc and r ~= nil, tostring(why2 or r))
      assert.are.equal(4, r.total)
      -- /metrics: one series per supervisor and node, told apart by scope
      local text = require("pogo.metrics").render(require("pogo.observer").gather { timeout_ms = 5000 })
      local series = {}
      for line in text:gmatch("[^\n]+") do
        if not line:find("^#") then
          local key = line:match("^(%S+)")
          assert.is_nil(series[key], "a duplicate series: " .. key)
          series[key] = true
        end
      end
      assert.is_true(series['pogo_supervisor_specs{supervisor="dup"}'], text) -- (its scope is its name)
      assert.is_true(series['pogo_supervisor_specs{supervisor="dup",scope="dup-named"}'], text)
    end)

  it("top: refreshes -n times, plain or JSON lines when stdout is not a terminal", function()
    local code, out, err = run { "top", "-n", "2", "--interval-ms", "200" }
    assert.are.equal(0, code, err)
    local frames = 0
    for _ in out:gmatch("pogo top: 3 nodes, seen from observer%-") do frames = frames + 1 end
    assert.are.equal(2, frames)
    assert.is_nil(out:find("\27", 1, true), "no terminal escapes when stdout is not a terminal")
    assert.matches("SUPERVISOR%s+CHILDREN", out)
    code, out = run { "top", "-n", "3", "--interval-ms", "100", "--json" }
    assert.are.equal(0, code)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = cjson.decode(l) end
    assert.are.equal(3, #lines)
    assert.are.equal(3, #lines[3].nodes)
    assert.is_not_nil(lines[3].nodes[1].rates, "the second refresh on has rates")
    code, out = run { "top", "--once" }
    assert.are.equal(0, code)
    assert.matches("^pogo top: 3 nodes", out)
  end)

  -- top in a pseudo-terminal (script(1), from util-linux): the keys typed,
  -- and the exit code
  local function top_in_terminal(keys)
    local me, tag = pogo.self(), {}
    local cmd = { os.getenv("LUA") or "lua5.4", cluster.find_bin(), "top", "--interval-ms", "200", "--seeds", seed }
    if c.tls then
      for _, x in ipairs { "--tls-cert", c.tls.cert, "--tls-key", c.tls.key, "--tls-ca", c.tls.ca } do
        cmd[#cmd + 1] = x
      end
    end
    local inp, outp = uv.new_pipe(false), uv.new_pipe(false)
    -- under make asan: ASan preloaded for bin/pogo, not for script(1)
    local env, preload = {}, os.getenv("LD_PRELOAD")
    for _, kv in ipairs(cluster.env { POGO_COOKIE = cookie }) do
      if not kv:match("^LD_PRELOAD=") then env[#env + 1] = kv end
    end
    if preload then table.insert(cmd, 1, "env LD_PRELOAD=" .. preload) end
    local handle, pid
    handle, pid = uv.spawn("script", { args = { "-qfec", table.concat(cmd, " "), "/dev/null" },
                                       stdio = { inp, outp, nil }, env = env },
      function(code) handle:close(); pogo.send(me, { tag, "exit", code }) end)
    assert(handle, pid)
    local out = ""
    outp:read_start(function(_, d) if d then out = out .. d end end)
    local ok, res = pcall(function()
      cluster.wait_until(function() return out:find("(q quits)", 1, true) end, 10000, "top's first screen")
      assert.matches("\27%[H\27%[2J", out) -- it redraws in place
      local t0 = uv.hrtime()
      inp:write(keys)
      local m = pogo.receive(function(x) return type(x) == "table" and x[1] == tag end, 3000)
      assert.is_not_nil(m, "top did not quit on " .. keys)
      assert.is_true((uv.hrtime() - t0) / 1e6 < 1500)
      return m[3]
    end)
    if not handle:is_closing() then uv.kill(pid, "sigkill") end
    for _, p in ipairs { inp, outp } do if not p:is_closing() then p:close() end end
    assert(ok, res)
    return res
  end

  it("top in a terminal: redraws in place, quits at once on q or Ctrl-C", function()
    assert.are.equal(0, top_in_terminal("q"))
    assert.are.equal(0, top_in_terminal("\3"))
  end)

  it("formats sizes and rates readably", function()
    local fmt = require "pogo.cli"
    assert.are.equal("512 B", fmt.bytes(512.4))
    assert.are.equal("1.5 KiB", fmt.bytes(1536))
    assert.are.equal("12.0 MiB", fmt.bytes(12 * 1048576))
    assert.are.equal("-", fmt.bytes(nil))
    assert.are.equal("A    B\nxy  10\n", fmt.table({ "A", ">B" }, { { "xy", 10 } }))
  end)

  it("a wrong cookie: one clear line, exit 1, at once", function()
    local _
    local t0 = uv.hrtime()
    local code, out, err = run({ "status" }, { env = { POGO_COOKIE = "not-the-cookie" } })
    local took = (uv.hrtime() - t0) / 1e6
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.are.equal("pogo: cannot join the cluster: " .. seed .. ": refused by peer: authentication failed "
                     .. "(wrong cookie?)\n", err)
    assert.is_true(took < 3000, "took " .. took .. " ms")
    code, _, err = run({ "eval", "o1", "1", "--cookie", "wrong" })
    assert.are.equal(1, code)
    assert.matches("wrong cookie", err)
  end)

  it("an unreachable seed or no seed: a clear error, bounded", function()
    local probe = uv.new_tcp()
    probe:bind("127.0.0.1", 0)
    local port = probe:getsockname().port
    probe:close() -- nothing listens there now
    local t0 = uv.hrtime()
    local code, _, err = run({ "status", "--seeds", "127.0.0.1:" .. port, "--wait-ms", "1000" }, { no_seed = true })
    assert.are.equal(1, code)
    assert.matches("^pogo: cannot join the cluster: 127%.0%.0%.1:" .. port .. ": ", err)
    assert.is_true((uv.hrtime() - t0) / 1e6 < 4000)
    code, _, err = run({ "status" }, { no_seed = true })
    assert.are.equal(2, code)
    assert.matches("give %-%-seeds HOST:PORT or %-%-discover", err)
  end)

  it("a malformed --seeds: one line naming it, usage error", function()
    for _, bad in ipairs { "foo", "127.0.0.1", "127.0.0.1:99999" } do
      local code, out, err = run({ "status", "--seeds", bad }, { no_seed = true })
      assert.are.equal(2, code, err)
      assert.are.equal("", out)
      assert.matches("^pogo: [^\n]+\n$", err)
      assert.matches("--seeds: ", err, 1, true)
      assert.matches("'" .. bad .. "'", err, 1, true)
      assert.is_nil(err:find("%.lua:%d+:"), err)
      assert.is_nil(err:find("traceback", 1, true), err)
    end
  end)

  it("--json: an empty list is [], not {} (eval with no result, top's events)", function()
    local code, out, err = run { "eval", "o1", "local x = 1", "--json" }
    assert.are.equal(0, code, err)
    assert.matches('"results":[]', out, 1, true)
    -- the second refresh of a quiet cluster: no new event
    code, out, err = run { "top", "-n", "2", "--interval-ms", "100", "--json" }
    assert.are.equal(0, code, err)
    local last = out:match("\n([^\n]+)\n$")
    assert.matches('"events":[]', last, 1, true)
    assert.are.same({}, cjson.decode(last).events)
  end)

  it("children --on: a short name or host:port as eval's NODE; an unknown node fails", function()
    local want = {}
    local _, all = run { "children", "jobs", "--json" }
    for _, e in ipairs(cjson.decode(all).children) do
      if e.node == nodes[2].name then want[#want + 1] = e.id end
    end
    table.sort(want)
    for _, on in ipairs { "o2", nodes[2].addr, nodes[2].name } do
      local code, out, err = run { "children", "jobs", "--on", on, "--json" }
      assert.are.equal(0, code, err)
      local got = {}
      for _, e in ipairs(cjson.decode(out).children) do
        assert.are.equal(nodes[2].name, e.node)
        got[#got + 1] = e.id
      end
      table.sort(got)
      assert.are.same(want, got)
    end
    local code, out, err = run { "children", "jobs", "--on", "o9" }
    assert.are.equal(1, code, out)
    assert.matches("^pogo: %-%-on: no node o9 in the cluster %(nodes: ", err)
  end)

  it("an observer costs the cluster nothing: no ring, no join wait, no redial once gone", function()
    -- an observer that stays connected for a while
    local me, tag = pogo.self(), {}
    local outp = uv.new_pipe(false)
    local args = { cluster.find_bin(), "top", "--interval-ms", "100", "-n", "60", "--seeds", seed }
    if c.tls then
      for _, x in ipairs { "--tls-cert", c.tls.cert, "--tls-key", c.tls.key, "--tls-ca", c.tls.ca } do
        args[#args + 1] = x
      end
    end
    local handle, pid
    handle, pid = uv.spawn(os.getenv("LUA") or "lua5.4", { args = args, stdio = { nil, outp, nil },
                                                           env = cluster.env { POGO_COOKIE = cookie } },
      function(code) handle:close(); pogo.send(me, { tag, "exit", code }) end)
    assert(handle, pid)
    local out = ""
    outp:read_start(function(_, d) if d then out = out .. d; pogo.send(me, { tag, "out" }) end end)
    local ok, err = pcall(function()
      cluster.wait_until(function() return out:find("pogo top:", 1, true) end, 10000, "the observer's first frame")
      local observer_name = out:match("seen from (observer%-%S+@%S+) at")
      -- while it is connected: every node sees it, no supervisor waits for it, no ring holds it
      for _, n in ipairs(nodes) do
        local _, peer = c:rpc(n, R, "peer", { observer_name })
        assert.is_true(peer and peer.up, "every node is connected to the observer")
        assert.are.equal(0, c:call(n, R, "waiting", { "jobs" }))
        assert.are.equal(3, #c:call(n, "pogo.dynamic_supervisor", "nodes", { "jobs" }))
      end
      -- a child started now runs at once (a join wait would hold it for settle_ms, 60 s)
      local t0 = uv.hrtime()
      assert.is_true(c:call(nodes[1], "pogo.dynamic_supervisor", "start_child",
        { "jobs", { id = "late", start = { "support.worker", "start_link" } } }))
      cluster.wait_until(function()
        local _, p = c:rpc(nodes[2], "pogo.dynamic_supervisor", "whereis", { "jobs", "late" }, 1000)
        return p
      end, 5000, "the child started while an observer is connected")
      assert.is_true((uv.hrtime() - t0) / 1e6 < 2000)
      uv.kill(pid, "sigterm")
      local m = pogo.receive(function(x) return type(x) == "table" and x[1] == tag and x[2] == "exit" end, 5000)
      assert.is_not_nil(m, "top ended on SIGTERM")
      assert.are.equal(0, m[3])
      -- once it is gone, no node redials it
      for _, n in ipairs(nodes) do
        cluster.wait_until(function()
          local _, peer = c:rpc(n, R, "peer", { observer_name })
          return peer and not peer.up and not peer.wanted
        end, 3000, "nodes to forget the observer")
      end
      c:call(nodes[1], "pogo.dynamic_supervisor", "terminate_child", { "jobs", "late" })
    end)
    if not handle:is_closing() then uv.kill(pid, "sigkill") end
    if not outp:is_closing() then outp:close() end
    assert(ok, err)
  end)
  -- the last spec of the file: a 4th node that stops answering (SIGSTOP), is
  -- then down for every node, and at last stops cleanly
  it("status: a node that does not answer or is down is listed with its error, exit 1; "
     .. "one that stopped cleanly is not", function()
    local n4 = c:start_node { name = "o4", seeds = { nodes[1] } }
    local pat = n4.name:gsub("%p", "%%%0")
    local function peer_of(n) -- what node n's transport knows of o4
      local _, p = c:rpc(n, R, "peer", { n4.name }, 1000)
      return p or {}
    end
    local ok, err = pcall(function()
      for _, n in ipairs(nodes) do
        cluster.wait_until(function() return peer_of(n).up end, 5000, n.name .. " connected to o4")
      end
      -- o4 runs no supervisor: no children there, an empty list
      local code, out, e = run { "children", "jobs", "--on", "o4", "--json" }
      assert.are.equal(0, code, e)
      assert.matches('"children":[]', out, 1, true)
      code, out = run { "children", "jobs", "--on", "o4" }
      assert.are.equal(0, code)
      assert.matches("^0 children of jobs on 3 nodes", out)
      assert.is_true(c:pause(n4))
      code, out, e = run { "status", "--wait-ms", "1500" }
      assert.are.equal(1, code, e)
      assert.matches("cluster of 4 nodes, seen from observer%-%S+ at [%d:]+ %(1 did not answer: this view is "
                     .. "incomplete%)\n", out)
      assert.matches(pat .. "[%s%-]+no answer: %S", out)
      -- once every node saw it go down (link timeout): still listed
      for _, n in ipairs(nodes) do
        cluster.wait_until(function() return not peer_of(n).up end, 5000, n.name .. " to see o4 down")
      end
      code, out, e = run { "status", "--json", "--wait-ms", "1500" }
      assert.are.equal(1, code, e)
      local j = cjson.decode(out)
      assert.is_false(j.complete)
      assert.are.equal(4, #j.nodes)
      local listed
      for _, n in ipairs(j.nodes) do
        if n.name == n4.name then listed = n end
      end
      assert.is_not_nil(listed, out)
      assert.matches("^down", listed.error)
      code, out, e = run { "status" }
      assert.are.equal(1, code, e)
      assert.matches(pat .. "[%s%-]+no answer: down", out)
      -- top: its figures are dashes, why it did not answer under the table
      code, out, e = run { "top", "-n", "1", "--wait-ms", "1500" }
      assert.are.equal(0, code, e)
      assert.matches("\n" .. pat .. string.rep("%s+%-", 10) .. "\n", out)
      assert.matches("\n  " .. pat .. ": no answer: down", out)
      -- back, then stopped on purpose: no longer listed, exit 0
      c:resume(n4)
      for _, n in ipairs(nodes) do
        cluster.wait_until(function() return peer_of(n).up end, 5000, n.name .. " connected to o4 again")
      end
      c:stop(n4)
      for _, n in ipairs(nodes) do
        cluster.wait_until(function() return not peer_of(n).up end, 5000, n.name .. " to see o4 stop")
      end
      code, out, e = run { "status" }
      assert.are.equal(0, code, e)
      assert.matches("^cluster of 3 nodes", out)
      assert.is_nil(out:find(n4.name, 1, true), out)
    end)
    if not n4.exited then
      c:resume(n4)
      c:kill(n4)
    end
    assert(ok, err)
  end)
end)
