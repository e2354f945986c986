-- bench/remote.lua: message passing between two nodes on loopback, against
-- the physical limit measured in the same run.
--
--   lua5.4 bench/remote.lua [seconds] [rounds]   (default 1 s, 7 rounds)
--
-- The two ping-pongs alternate, `rounds` times `seconds` each, and the
-- medians over the rounds are reported, so that a busy machine slows both
-- alike. Prints:
--   bare TCP   a luv TCP ping-pong of 1-byte messages (TCP_NODELAY) between
--              two lua5.4 processes: round trips/s and median round trip (µs)
--   remote     pogo ping-pong between a process on this node and one on a node
--              started with bin/pogo: round trips/s, median round trip (µs)
--   one-way    100-byte strings sent by one process to a process on the other
--              node, counted there: messages/s (median of 3 runs of 1,000,000)
--   ... over TLS  the same two over mutual TLS 1.3 links (throwaway
--              certificates made with the openssl tool), measured in the
--              same run: the rounds alternate bare, plain and TLS (this node
--              restarts plain or with TLS, and talks to a plain or a TLS
--              node), so a busy machine slows them alike
-- Targets: remote round trips >= 0.9 x bare TCP; one-way >= 700,000 messages/s;
-- over TLS, round trips >= 0.8 x plain and one-way >= 0.5 x plain.
--
-- The other nodes run this very file as their script (`bin/pogo ... bench/remote.lua serve`).
local stats = require "bench.support.stats"
local pogo = require "pogo"
local uv = require "luv"

local mode = ...

-- ---- the other node's side ----
if mode == "serve" then
  local partner
  local echo = pogo.spawn(function()
    while true do
      local m = pogo.receive()
      if type(m) == "table" and m[1] == "partner" then partner = m[2]
      else pogo.send(partner, m) end
    end
  end)
  local sink = pogo.spawn(function()
    while true do
      local m = pogo.receive() -- {report, n}
      local report, n = m[1], m[2]
      for _ = 1, n do pogo.receive() end
      pogo.send(report, n)
    end
  end)
  pogo.register("bench", pogo.spawn(require("pogo.server").enter_loop, {
    handle_call = function(_, _, s) return s, s end, -- who echoes, who sinks
  }, { echo = echo, sink = sink }))
  return
end

local SECONDS = tonumber(arg and arg[1]) or 1
local ROUNDS = tonumber(arg and arg[2]) or 7
local LUA = os.getenv("LUA") or "lua5.4"
local here = (arg and arg[0] or "bench/remote.lua"):match("^(.*)/[^/]*$") or "."
local root = here .. "/.."

local median = stats.median

local children = {}
local function spawn_child(args, on_line)
  -- stdin is a pipe that closes when this process dies (bin/pogo --watch-stdin)
  local stdin, stdout = uv.new_pipe(false), uv.new_pipe(false)
  local handle, pid
  handle, pid = uv.spawn(LUA, { args = args, stdio = { stdin, stdout, 2 } }, function()
    children[pid] = nil
    handle:close()
  end)
  assert(handle, pid)
  children[pid] = true
  local buf = ""
  stdout:read_start(function(_, data)
    if not data then
      stdout:close()
      return
    end
    buf = buf .. data
    local line = buf:match("^([^\n]*)\n")
    if line and on_line then
      on_line(line)
      on_line = nil
    end
  end)
  return pid
end

local function kill_children()
  for pid in pairs(children) do uv.kill(pid, "sigkill") end
end

-- ---- bare luv TCP ping-pong (before this node starts) ----
local BARE_SERVER = [[
local uv = require "luv"
local s = uv.new_tcp()
s:bind("127.0.0.1", 0)
s:listen(16, function()
  local c = uv.new_tcp()
  s:accept(c)
  c:nodelay(true)
  c:read_start(function(_, data)
    if not data then c:close() return end
    c:write(data)
  end)
end)
print(s:getsockname().port)
io.stdout:flush()
uv.run()
]]

local function start_bare_server()
  local port
  spawn_child({ "-e", BARE_SERVER }, function(line) port = tonumber(line) end)
  local deadline = uv.now() + 5000
  while not port and uv.now() < deadline do uv.run("once") end
  assert(port, "the bare TCP server did not start")
  return port
end

-- One bare ping-pong of SECONDS on a fresh connection: rate, median µs.
local function bare_pingpong(port)
  local c = uv.new_tcp()
  local rtts, n = {}, 0
  local t0, last
  local warm, done = 0, false
  c:connect("127.0.0.1", port, function(err)
    assert(not err, err)
    c:nodelay(true)
    c:read_start(function(_, data)
      local now = uv.hrtime()
      if not data then return end
      if warm < 1000 then
        warm = warm + 1
        if warm == 1000 then t0 = now end
      else
        n = n + 1
        rtts[n] = now - last
      end
      if t0 and now - t0 >= SECONDS * 1e9 then
        c:close()
        done = true
        return
      end
      last = now
      c:write("x")
    end)
    last = uv.hrtime()
    c:write("x")
  end)
  while not done do uv.run("once") end
  return n / ((last - t0) / 1e9), median(rtts) / 1e3
end

-- ---- pogo ----
local function remote_pingpong(echo)
  pogo.send(echo, { "partner", pogo.self() })
  local rtts, n = {}, 0
  local hrtime = uv.hrtime
  local send, receive = pogo.send, pogo.receive
  for i = 1, 2000 do
    send(echo, i)
    receive()
  end
  local t0 = hrtime()
  local stop = t0 + SECONDS * 1e9
  local last = t0
  while last < stop do
    send(echo, n)
    receive()
    local now = hrtime()
    n = n + 1
    rtts[n] = now - last
    last = now
  end
  return n / ((last - t0) / 1e9), median(rtts) / 1e3
end

local function one_way(sink, count)
  local me = pogo.self()
  local data = string.rep("x", 100)
  local send = pogo.send
  local t0 = uv.hrtime()
  send(sink, { me, count })
  for _ = 1, count do send(sink, data) end
  local done = pogo.receive(60000)
  assert(done == count, "the sink did not report")
  return count / ((uv.hrtime() - t0) / 1e9)
end

-- Run fn(...) in a process and wait for its results.
local function in_process(fn, ...)
  local me = pogo.self()
  local args = table.pack(...)
  local ref = pogo.make_ref()
  local pid = pogo.spawn(function() pogo.send(me, { ref, table.pack(fn(table.unpack(args, 1, args.n))) }) end)
  local mref = pogo.monitor(pid)
  local m = pogo.receive(function(x) return x[1] == ref or (x[1] == "DOWN" and x[2] == mref) end, 120000)
  assert(m and m[1] == ref, "the benchmark process failed: " .. tostring(m and m[4]))
  pogo.demonitor(mref)
  return table.unpack(m[2], 1, m[2].n)
end

local certs_dir
local ok, err = pcall(function()
  local bare_port = start_bare_server()
  local cookie = "bench-" .. tostring(uv.hrtime())
  local certs = require "pogo.local_cluster.certs"
  certs_dir = certs.tmpdir()
  local tls = certs.node(certs.ca(certs_dir, "ca"), certs_dir, "node")
  local others = {}
  for kind, extra in pairs { plain = {}, tls = { "--tls-cert", tls.cert, "--tls-key", tls.key, "--tls-ca", tls.ca } } do
    local args = { root .. "/bin/pogo", "--name", "bench" .. kind, "--cookie", cookie, "--print-node", "--quiet",
                   "--watch-stdin" }
    for _, x in ipairs(extra) do args[#args + 1] = x end
    args[#args + 1] = here .. "/remote.lua"
    args[#args + 1] = "serve"
    spawn_child(args, function(line) others[kind] = line:match("^POGO_NODE (%S+)") end)
  end
  local current, pids = nil, {}
  -- this node, plain or with TLS, connected to the other node of that mode
  local function as(kind)
    if current == kind then return end
    if current then pogo.stop() end
    pogo.start { name = "bencha", cookie = cookie, log = false, tls = kind == "tls" and tls or nil }
    local deadline = uv.now() + 10000
    while not others[kind] and uv.now() < deadline do pogo.sleep(10) end
    assert(others[kind], "the " .. kind .. " node did not start")
    assert(pogo.connect(others[kind]:match("@(.*)$")))
    pids[kind] = pids[kind] or pogo.call({ "bench", others[kind] }, "pids", 5000)
    current = kind
  end

  local bare_rates, bare_us = {}, {}
  local rates, us = { plain = {}, tls = {} }, { plain = {}, tls = {} }
  local runs = { plain = {}, tls = {} }
  for r = 1, ROUNDS do
    bare_rates[r], bare_us[r] = bare_pingpong(bare_port)
    for _, kind in ipairs(r % 2 == 1 and { "plain", "tls" } or { "tls", "plain" }) do
      as(kind)
      rates[kind][r], us[kind][r] = in_process(remote_pingpong, pids[kind].echo)
    end
  end
  for i = 1, 3 do
    for _, kind in ipairs(i % 2 == 1 and { "plain", "tls" } or { "tls", "plain" }) do
      as(kind)
      runs[kind][i] = in_process(one_way, pids[kind].sink, 1000000)
    end
  end

  local bare_rate, rate, tls_rate = median(bare_rates), median(rates.plain), median(rates.tls)
  local ratio, tls_ratio = rate / bare_rate, tls_rate / rate
  local oneway, tls_oneway = median(runs.plain), median(runs.tls)
  local tls_oneway_ratio = tls_oneway / oneway
  local function verdict(v, target) return v >= target and "ok" or "MISSED" end
  print(string.format("%-34s %14s %14s   (medians of %d rounds of %g s)", "", "round trips/s", "median µs",
                      ROUNDS, SECONDS))
  print(string.format("%-34s %14.0f %14.1f", "bare luv TCP ping-pong (1 byte)", bare_rate, median(bare_us)))
  print(string.format("%-34s %14.0f %14.1f", "pogo remote ping-pong", rate, median(us.plain)))
  print(string.format("%-34s %14.0f %14.1f", "pogo remote ping-pong over TLS", tls_rate, median(us.tls)))
  print(string.format("%-34s %14.2f %14s   target >= 0.90: %s", "ratio remote / bare", ratio, "",
                      verdict(ratio, 0.9)))
  print(string.format("%-34s %14.2f %14s   target >= 0.80: %s", "ratio TLS / plain round trips", tls_ratio, "",
                      verdict(tls_ratio, 0.8)))
  print(string.format("%-34s %14.0f %14s   target >= 700000: %s", "one-way 100-byte messages/s",
                      oneway, "", verdict(oneway, 700000)))
  print(string.format("%-34s %14.0f", "one-way over TLS", tls_oneway))
  print(string.format("%-34s %14.2f %14s   target >= 0.50: %s", "ratio TLS / plain one-way", tls_oneway_ratio, "",
                      verdict(tls_oneway_ratio, 0.5)))
  pogo.stop()
end)
kill_children()
if certs_dir then require("pogo.local_cluster.certs").remove(certs_dir) end
if not ok then
  io.stderr:write("bench/remote.lua: ", tostring(err), "\n")
  os.exit(1)
end
